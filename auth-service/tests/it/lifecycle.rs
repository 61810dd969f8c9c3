//! The account lifecycle end to end through the HTTP API, reading email from the capturing SMTP server:
//! email verification, password reset (single use, enumeration-safe, history, breached passwords),
//! security notifications, devices.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{link_token, mails_to, s, unique_email, wait_mail, wait_mails, TestApp, PASSWORD};

#[sqlx::test]
async fn registration_sends_a_single_use_verification_link(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("verify");
    let login = app.signed_in(&email).await;
    assert_eq!(login["email_verified"], false, "unverified accounts log in, flagged");
    let access = s(&login, "access_token").to_owned();
    // Fills the profile cache with the unverified state.
    assert_eq!(
        app.get("/api/auth/me", Some(&access)).await.body["email_verified"],
        false
    );

    let mail = wait_mail(&email, "Verify your email").await;
    assert!(
        mail.body.contains("https://app.test/verify-email?token="),
        "{}",
        mail.body
    );
    let token = link_token(&mail.body);
    assert_eq!(token.len(), 43, "256-bit token");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM email_verification_tokens")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_ne!(stored, token.as_bytes(), "stored hashed");

    let res = app.post("/api/auth/verify-email", json!({ "token": token })).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);
    assert_eq!(
        app.get("/api/auth/me", Some(&access)).await.body["email_verified"],
        true,
        "the cached profile was dropped"
    );

    // Replay, garbage and expiry.
    let res = app.post("/api/auth/verify-email", json!({ "token": token })).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.body["error"], "invalid_token");
    let res = app
        .post("/api/auth/verify-email", json!({ "token": "x".repeat(43) }))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let results: Vec<String> = app.audit("email_verification").await.into_iter().map(|a| a.0).collect();
    assert_eq!(results, ["success", "invalid_token", "invalid_token"]);
}

#[sqlx::test]
async fn verification_tokens_expire(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("expire");
    assert_eq!(app.register(&email, PASSWORD).await.status, StatusCode::ACCEPTED);
    let token = link_token(&wait_mail(&email, "Verify your email").await.body);
    app.clock
        .advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    let res = app.post("/api/auth/verify-email", json!({ "token": token })).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn duplicate_registration_answers_the_same_and_warns_the_owner(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("dup");
    let first = app.register(&email, PASSWORD).await;
    let second = app.register(&email, "another good passphrase").await;
    assert_eq!(first.status, second.status);
    assert_eq!(first.body, second.body);
    wait_mail(&email, "Verify your email").await;
    let notice = wait_mail(&email, "Someone tried to register").await;
    assert!(!notice.body.contains("token="), "no link for the duplicate");
}

#[sqlx::test]
async fn required_verification_refuses_login_until_verified(pool: PgPool) {
    let app = TestApp::with(pool, |c| {
        c.email_verification = Some(auth_service::config::EmailVerification::Required);
    })
    .await;
    let email = unique_email("required");
    assert_eq!(app.register(&email, PASSWORD).await.status, StatusCode::ACCEPTED);
    let first = link_token(&wait_mail(&email, "Verify your email").await.body);
    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.body["error"], "email_not_verified");
    // A wrong password still gets the usual 401: the 403 only follows a correct one.
    assert_eq!(
        app.login(&email, "wrong password here").await.status,
        StatusCode::UNAUTHORIZED
    );

    // Resend: the same answer for unknown addresses; a new link replaces the first.
    let known = app
        .post("/api/auth/verify-email/resend", json!({ "email": email }))
        .await;
    let unknown = app
        .post(
            "/api/auth/verify-email/resend",
            json!({ "email": unique_email("nobody") }),
        )
        .await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    let mails = wait_mails(&email, "Verify your email", 2).await;
    let second = link_token(&mails[1].body);
    assert_ne!(first, second);
    assert_eq!(
        app.post("/api/auth/verify-email", json!({ "token": first }))
            .await
            .status,
        StatusCode::BAD_REQUEST,
        "the replaced link no longer works"
    );
    assert_eq!(
        app.post("/api/auth/verify-email", json!({ "token": second }))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["email_verified"], true);
}

#[sqlx::test]
async fn forgot_password_answers_the_same_and_the_reset_works_once(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("reset");
    let login = app.signed_in(&email).await;
    let access = s(&login, "access_token").to_owned();
    let refresh = s(&login, "refresh_token").to_owned();

    let known = app.post("/api/auth/password/forgot", json!({ "email": email })).await;
    let nobody = unique_email("nobody");
    let unknown = app.post("/api/auth/password/forgot", json!({ "email": nobody })).await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!(
        (known.status, &known.body, known.headers.get("content-length")),
        (unknown.status, &unknown.body, unknown.headers.get("content-length"))
    );
    let mail = wait_mail(&email, "Reset your password").await;
    assert!(mail.body.contains("https://app.test/reset-password?token="));
    let token = link_token(&mail.body);
    assert!(token.starts_with("t1."), "signed with the configured key: {token}");

    // A forged token (MAC changed) and a token signed by an unknown key are refused.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let res = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": forged, "new_password": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.body["error"], "invalid_token");

    // History: the current password is among the last five.
    let res = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": token, "new_password": PASSWORD }),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.body["error"], "password_reused");

    let res = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": token, "new_password": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);
    // Every session ended, every refresh token revoked.
    assert_eq!(
        app.get("/api/auth/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, "a brand new passphrase").await.status, StatusCode::OK);
    // Single use.
    let res = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": token, "new_password": "yet another passphrase" }),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    wait_mail(&email, "Your password was changed").await;
    assert!(mails_to(&nobody).is_empty(), "nothing is sent to unknown addresses");

    let requests: Vec<String> = app
        .audit("password_reset_request")
        .await
        .into_iter()
        .map(|a| a.0)
        .collect();
    assert_eq!(requests.len(), 2);
    assert!(requests.contains(&"sent".to_owned()) && requests.contains(&"unknown_account".to_owned()));
    let resets: Vec<String> = app.audit("password_reset").await.into_iter().map(|a| a.0).collect();
    assert_eq!(resets, ["invalid_token", "success", "invalid_token"]);
}

#[sqlx::test]
async fn reset_tokens_expire_and_a_new_request_replaces_the_old_one(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("reset-exp");
    app.signed_in(&email).await;
    app.post("/api/auth/password/forgot", json!({ "email": email })).await;
    let first = link_token(&wait_mail(&email, "Reset your password").await.body);
    app.post("/api/auth/password/forgot", json!({ "email": email })).await;
    let second = link_token(&wait_mails(&email, "Reset your password", 2).await[1].body);
    let body = |t: &str| json!({ "token": t, "new_password": "a brand new passphrase" });
    assert_eq!(
        app.post("/api/auth/password/reset", body(&first)).await.status,
        StatusCode::BAD_REQUEST,
        "replaced"
    );
    app.clock.advance(chrono::Duration::minutes(61));
    assert_eq!(
        app.post("/api/auth/password/reset", body(&second)).await.status,
        StatusCode::BAD_REQUEST,
        "expired"
    );
}

#[sqlx::test]
async fn forgot_password_is_rate_limited_per_address(pool: PgPool) {
    let app = TestApp::with(pool, |c| c.rate_limit_emails_per_address = 2).await;
    let email = unique_email("limit");
    for _ in 0..2 {
        let res = app.post("/api/auth/password/forgot", json!({ "email": email })).await;
        assert_eq!(res.status, StatusCode::ACCEPTED);
    }
    let res = app.post("/api/auth/password/forgot", json!({ "email": email })).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers.contains_key("retry-after"));
}

#[sqlx::test]
async fn password_change_and_lockout_and_new_devices_are_notified(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("notify");
    let login = app.signed_in(&email).await;
    let access = s(&login, "access_token").to_owned();

    // The first device is not "new"; another user agent is, and is listed.
    let res = app.login_with_agent(&email, PASSWORD, "OtherBrowser/2.0").await;
    assert_eq!(res.status, StatusCode::OK);
    let mail = wait_mail(&email, "New sign-in").await;
    assert!(mail.body.contains("OtherBrowser/2.0"));
    let devices = app.get("/api/auth/devices", Some(&access)).await;
    assert_eq!(devices.status, StatusCode::OK);
    let list = devices.body["devices"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let res = app
        .call(Method::DELETE, &format!("/api/auth/devices/{id}"), None, Some(&access))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = app
        .call(Method::DELETE, &format!("/api/auth/devices/{id}"), None, Some(&access))
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);

    let res = app
        .call(
            Method::POST,
            "/api/auth/password",
            Some(json!({ "current_password": PASSWORD, "new_password": "changed passphrase 42" })),
            Some(&access),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);
    wait_mail(&email, "Your password was changed").await;

    for _ in 0..5 {
        app.login(&email, "not the password!").await;
    }
    let mail = wait_mail(&email, "Your account was locked").await;
    assert!(mail.body.contains("15 minutes"));
}

#[sqlx::test]
async fn breached_passwords_are_refused_and_the_check_fails_closed_unless_degraded(pool: PgPool) {
    let breached = "correct horse battery staple 1";
    let (prefix, suffix) = auth_service::breach::sha1_parts(breached);
    let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = hits.clone();
    let stub = axum::Router::new().route(
        "/range/{prefix}",
        axum::routing::get(move |axum::extract::Path(p): axum::extract::Path<String>| {
            let seen = seen.clone();
            let suffix = suffix.clone();
            async move {
                seen.lock().unwrap().push(p);
                format!(
                    "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n{suffix}:42\r\nFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0\r\n"
                )
            }
        }),
    );
    let url = crate::common::serve_stub(stub).await;
    let app = TestApp::with(pool.clone(), |c| c.breached_password_api_url = Some(url.clone())).await;
    let res = app.register(&unique_email("breach"), breached).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.body["error"], "password_breached");
    assert_eq!(
        hits.lock().unwrap().as_slice(),
        std::slice::from_ref(&prefix),
        "only the 5-character prefix leaves"
    );
    assert_eq!(
        app.register(&unique_email("clean"), PASSWORD).await.status,
        StatusCode::ACCEPTED
    );

    // Nothing listens there: the check fails closed, with a clear answer to try again.
    let down = TestApp::with(pool.clone(), |c| {
        c.breached_password_api_url = Some("http://127.0.0.1:9".into());
    })
    .await;
    let refused = down.register(&unique_email("closed"), PASSWORD).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", refused.body);
    assert_eq!(refused.body["error"], "breach_check_unavailable");
    assert_eq!(refused.headers["retry-after"], "60");
    // The documented degraded mode accepts it unchecked, and counts it.
    let degraded = TestApp::with(pool, |c| {
        c.breached_password_api_url = Some("http://127.0.0.1:9".into());
        c.breached_password_unavailable = auth_service::config::BreachUnavailable::Accept;
    })
    .await;
    assert_eq!(
        degraded.register(&unique_email("open"), breached).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(degraded.state.metrics.breach_check_unavailable.get(), 1, "counted");
}
