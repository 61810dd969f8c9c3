//! Registration, login, enumeration resistance, lockout and rate limits.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::common::{s, TestApp, PASSWORD};

#[sqlx::test]
async fn register_login_me_happy_path(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = app.register("  Alice@Example.com ", PASSWORD).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert_eq!(res.body["status"], "accepted");

    let res = app.login("alice@example.COM", PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 900);
    assert_eq!(res.body["refresh_expires_in"], 604_800);
    let access = s(&res.body, "access_token");
    assert_eq!(s(&res.body, "refresh_token").len(), 43);

    let me = app.get("/api/auth/me", Some(access)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "alice@example.com", "stored lower-case");
    assert_eq!(me.body["email_verified"], false);
    assert_eq!(me.body["session_id"], res.body["session_id"]);

    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM password_history")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(history, 1);

    let results: Vec<String> = app.audit("login").await.into_iter().map(|a| a.0).collect();
    assert_eq!(results, ["success"]);
    let register = app.audit("register").await;
    assert_eq!(register.len(), 1);
    assert!(register[0].1.is_some());
}

#[sqlx::test]
async fn register_validates_email_and_password_policy(pool: PgPool) {
    let app = TestApp::new(pool).await;
    for (email, password, code) in [
        ("not-an-email", PASSWORD, "invalid_email"),
        ("bob@example.com", "short pw", "password_length"),
        ("bob@example.com", &"x".repeat(129), "password_length"),
        ("bob@example.com", "Password1234", "password_common"),
        ("roberto@example.com", "my name is roberto!", "password_contains_email"),
    ] {
        let res = app.register(email, password).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{email} {password}");
        assert_eq!(res.body["error"], code);
        assert!(!res.body.to_string().contains(password), "the password is not echoed");
    }
    let res = app
        .post("/api/auth/register", json!({ "email": "bob@example.com" }))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.body["error"], "bad_request");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[sqlx::test]
async fn registering_a_taken_email_does_not_reveal_it(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let first = app.register("carol@example.com", PASSWORD).await;
    let second = app.register("CAROL@example.com", "another fine passphrase").await;
    assert_eq!(first.status, second.status);
    assert_eq!(first.body, second.body);
    // The original password still works: the second registration changed nothing.
    assert_eq!(app.login("carol@example.com", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(
        app.login("carol@example.com", "another fine passphrase").await.status,
        StatusCode::UNAUTHORIZED
    );
    let results: Vec<String> = app.audit("register").await.into_iter().map(|a| a.0).collect();
    assert_eq!(results, ["success", "duplicate"]);
}

#[sqlx::test]
async fn registrations_of_one_address_are_limited_whether_or_not_it_is_taken(pool: PgPool) {
    let app = TestApp::with(pool, |c| c.rate_limit_register_per_account = 2).await;
    let email = crate::common::unique_email("flood");
    // The first creates the account, the second is a duplicate: both answer alike and email the address.
    for _ in 0..2 {
        assert_eq!(app.register(&email, PASSWORD).await.status, StatusCode::ACCEPTED);
    }
    let third = app.register(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", third.body);
    assert_eq!(third.body["error"], "rate_limited");
    // Another address is not held back.
    let other = crate::common::unique_email("flood");
    assert_eq!(app.register(&other, PASSWORD).await.status, StatusCode::ACCEPTED);
    // The new account got its verification link from the same statement that created it.
    let tokens: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM email_verification_tokens t JOIN users u ON u.id = t.user_id WHERE u.email = $1",
    )
    .bind(&email)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(tokens, 1);
}

#[sqlx::test]
async fn unknown_email_and_wrong_password_look_the_same(pool: PgPool) {
    let app = TestApp::with(pool, |c| c.max_login_attempts = 100).await;
    app.register("dave@example.com", PASSWORD).await;
    let wrong = app.login("dave@example.com", "not the right passphrase").await;
    let unknown = app.login("nobody@example.com", "not the right passphrase").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body["error"], "invalid_credentials");
    let headers = |h: &axum::http::HeaderMap| {
        let mut names: Vec<String> = h
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| k != "x-request-id" && k != "content-length")
            .collect();
        names.sort();
        names
    };
    assert_eq!(headers(&wrong.headers), headers(&unknown.headers));

    // Timing: the unknown path verifies a dummy hash, so both take about one Argon2id verification.
    // Loose bounds, for loaded CI machines: without the dummy hash the unknown path is >10 times faster.
    let mut known_ms = Vec::new();
    let mut unknown_ms = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        assert_eq!(
            app.login("dave@example.com", "still not the passphrase").await.status,
            StatusCode::UNAUTHORIZED
        );
        known_ms.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        assert_eq!(
            app.login(&format!("ghost{i}@example.com"), "still not the passphrase")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        unknown_ms.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (k, u) = (median(&mut known_ms), median(&mut unknown_ms));
    let ratio = u / k;
    assert!(
        (0.33..3.0).contains(&ratio),
        "unknown/known median time ratio {ratio:.2} ({u:.4}s vs {k:.4}s)"
    );
}

#[sqlx::test]
async fn lockout_after_max_failures(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.register("erin@example.com", PASSWORD).await;
    for _ in 0..5 {
        assert_eq!(
            app.login("erin@example.com", "wrong passphrase!!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = app.login("erin@example.com", PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password is refused while locked"
    );
    assert_eq!(locked.body["error"], "account_locked");
    let retry: u64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (850..=900).contains(&retry),
        "locked for 15 minutes, Retry-After {retry}"
    );

    // An unknown email locks the same way, so the lockout does not reveal accounts either.
    for _ in 0..5 {
        app.login("nobody@example.com", "wrong passphrase!!").await;
    }
    let res = app.login("nobody@example.com", "wrong passphrase!!").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.body, locked.body);

    let attempts = app.audit("login").await;
    assert_eq!(attempts.len(), 12);
    assert!(
        attempts.iter().all(|a| a.2["account"].is_string()),
        "attempts are correlatable"
    );
    assert!(
        !format!("{attempts:?}").contains("nobody@example.com"),
        "without storing the address"
    );
    let lock_events = app.audit("account_locked").await;
    assert_eq!(lock_events.len(), 2);
    assert!(lock_events[0].1.is_some());
    assert_eq!(app.state.metrics.lockouts.get(), 2);
}

#[sqlx::test]
async fn success_resets_the_failure_count(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.register("fay@example.com", PASSWORD).await;
    for _ in 0..4 {
        app.login("fay@example.com", "wrong passphrase!!").await;
    }
    assert_eq!(app.login("fay@example.com", PASSWORD).await.status, StatusCode::OK);
    for _ in 0..4 {
        assert_eq!(
            app.login("fay@example.com", "wrong passphrase!!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.login("fay@example.com", PASSWORD).await.status, StatusCode::OK);
}

#[sqlx::test]
async fn parallel_wrong_attempts_get_at_most_five_verifications(pool: PgPool) {
    let app = std::sync::Arc::new(TestApp::new(pool).await);
    app.register("gus@example.com", PASSWORD).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let app = app.clone();
        tasks.spawn(async move { app.login("gus@example.com", "wrong passphrase!!").await.status });
    }
    let mut unauthorized = 0;
    let mut locked = 0;
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => locked += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    // Every verification ends in a 401 and a `login failure` audit record.
    assert!(
        unauthorized <= 5,
        "{unauthorized} attempts reached password verification"
    );
    assert_eq!(unauthorized + locked, 50);
    let failures = app
        .audit("login")
        .await
        .into_iter()
        .filter(|a| a.0 == "failure")
        .count();
    assert_eq!(failures, unauthorized);
    assert!(
        app.state
            .metrics
            .login_failures
            .with_label_values(&["invalid_credentials"])
            .get()
            <= 5
    );
    assert_eq!(
        app.login("gus@example.com", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[sqlx::test]
async fn per_ip_and_per_account_rate_limits(pool: PgPool) {
    let app = TestApp::with(pool, |c| {
        c.rate_limit_login_per_ip = 3;
        c.rate_limit_login_per_account = 4;
        c.max_login_attempts = 100;
    })
    .await;
    let body = json!({ "email": "hal@example.com", "password": "whatever passphrase" });
    for _ in 0..3 {
        let res = app
            .call_from(
                "198.51.100.1",
                axum::http::Method::POST,
                "/api/auth/login",
                Some(body.clone()),
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = app
        .call_from(
            "198.51.100.1",
            axum::http::Method::POST,
            "/api/auth/login",
            Some(body.clone()),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.body["error"], "rate_limited");
    let retry: u64 = res.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));

    // Another IP may still try this account once more, then the account limit (4) applies.
    let res = app
        .call_from(
            "198.51.100.2",
            axum::http::Method::POST,
            "/api/auth/login",
            Some(body.clone()),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = app
        .call_from(
            "198.51.100.3",
            axum::http::Method::POST,
            "/api/auth/login",
            Some(body.clone()),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers.contains_key("retry-after"));
    assert_eq!(
        app.state
            .metrics
            .rate_limited
            .with_label_values(&["login_account"])
            .get(),
        1
    );
}

#[sqlx::test]
async fn weaker_hash_is_upgraded_at_login(pool: PgPool) {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher as _, SaltString};
    let app = TestApp::new(pool).await;
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(1024, 1, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
    .unwrap()
    .to_string();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at, password_changed_at)
         VALUES ($1, 'ivy@example.com', $2, now(), now(), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(&weak)
    .execute(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(app.login("ivy@example.com", PASSWORD).await.status, StatusCode::OK);
    let mut upgraded = String::new();
    for _ in 0..100 {
        upgraded = sqlx::query_scalar("SELECT password_hash FROM users")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
        if upgraded != weak {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{upgraded}");
    assert_eq!(app.login("ivy@example.com", PASSWORD).await.status, StatusCode::OK);
}

#[sqlx::test]
async fn rate_limits_spread_requests_and_key_an_ipv6_client_by_its_64(pool: PgPool) {
    let app = TestApp::with(pool, |c| {
        c.rate_limit_login_per_ip = 4;
        c.rate_limit_window = 60;
    })
    .await;
    let login = |ip: &'static str| {
        let body = json!({ "email": "nobody@example.com", "password": "not a password at all" });
        app.call_from(ip, axum::http::Method::POST, "/api/auth/login", Some(body), None)
    };
    // Four addresses of one /64: one client, one budget of 4.
    for ip in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2::3",
        "2001:db8:1:2:aaaa::4",
    ] {
        assert_eq!(login(ip).await.status, StatusCode::UNAUTHORIZED, "{ip}");
    }
    let refused = login("2001:db8:1:2::5").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", refused.body);
    // A steady rate of 4 a minute: the next request is due in 15 s, not when a fixed window ends.
    let wait: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15).contains(&wait), "retry after {wait} s");
    // Another /64 is another client.
    assert_eq!(login("2001:db8:1:3::1").await.status, StatusCode::UNAUTHORIZED);
}
