//! The admin API end to end: operator tokens minted the way suma mints them (the service's signing key,
//! `sub` = `ops:<actor>`, no `sid`), the audit query with filters and cursor paging, lock and unlock,
//! bulk revocation of refresh tokens and sessions, and the `admin_action` audit trail of every call.

use auth_service::clock::Clock as _;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{s, test_key, unique_email, Resp, TestApp, PASSWORD};

/// An operator token as suma mints it: RS256 with the service's signing key and its kid, the library's
/// default `typ` (`JWT`), `sub` = `ops:<actor>`, a `jti`, `roles: ["admin"]`, no `sid`, 5 minutes.
pub(crate) fn operator_claims(app: &TestApp, actor: &str) -> Value {
    let now = app.clock.now().timestamp();
    json!({
        "iss": app.state.config.jwt_issuer,
        "aud": app.state.config.jwt_audience,
        "sub": format!("ops:{actor}"),
        "iat": now,
        "exp": now + 300,
        "jti": Uuid::new_v4().to_string(),
        "roles": ["admin"],
    })
}

/// Signs claims with test key `index` (0 is the service's signing key).
fn sign(index: usize, claims: &Value) -> String {
    let (pem, kid) = test_key(index);
    crate::common::sign(&pem, json!({ "kid": kid, "typ": "JWT" }), claims)
}

pub(crate) fn operator_token(app: &TestApp) -> String {
    sign(0, &operator_claims(app, "alice"))
}

async fn admin_post(app: &TestApp, token: &str, uri: &str, body: Value) -> Resp {
    app.call(Method::POST, uri, Some(body), Some(token)).await
}

/// The `admin_action` records as (result, metadata), oldest first.
async fn admin_actions(app: &TestApp) -> Vec<(String, Value)> {
    app.audit("admin_action")
        .await
        .into_iter()
        .map(|(result, _, metadata)| (result, metadata))
        .collect()
}

/// A registered account's id.
async fn user_id(app: &TestApp, email: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
}

#[sqlx::test]
async fn admin_tokens_are_checked_and_refusals_are_audited(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let audit = "/api/admin/audit";

    // No token, and a token signed by a key the service does not know: 401.
    let res = app.get(audit, None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.body["error"], "unauthorized");
    let res = app.get(audit, Some(&sign(1, &operator_claims(&app, "mallory")))).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // A lifetime over 15 minutes is refused, exactly 15 minutes is accepted.
    let mut long = operator_claims(&app, "alice");
    long["exp"] = json!(long["iat"].as_i64().unwrap() + 15 * 60 + 1);
    assert_eq!(
        app.get(audit, Some(&sign(0, &long))).await.status,
        StatusCode::UNAUTHORIZED
    );
    long["exp"] = json!(long["iat"].as_i64().unwrap() + 15 * 60);
    assert_eq!(app.get(audit, Some(&sign(0, &long))).await.status, StatusCode::OK);

    // Valid tokens without the admin role: 403 `forbidden` (an operator token with another role, and a
    // user's own access token from login).
    let mut viewer = operator_claims(&app, "bob");
    viewer["roles"] = json!(["viewer"]);
    let res = app.get(audit, Some(&sign(0, &viewer))).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{:?}", res.body);
    assert_eq!(res.body["error"], "forbidden");
    let login = app.signed_in(&unique_email("plain")).await;
    let res = app.get(audit, Some(s(&login, "access_token"))).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    // The operator token works on the admin API only: every other endpoint needs a session.
    let ops = operator_token(&app);
    assert_eq!(app.get(audit, Some(&ops)).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/auth/me", Some(&ops)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/auth/sessions", Some(&ops)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A token that names a session (a user's own admin token) must belong to a live one of its subject.
    let user = Uuid::parse_str(s(
        &app.get("/api/auth/me", Some(s(&login, "access_token"))).await.body,
        "id",
    ))
    .unwrap();
    let mut with_sid = operator_claims(&app, "unused");
    with_sid["sub"] = json!(user.to_string());
    with_sid["sid"] = login["session_id"].clone();
    assert_eq!(app.get(audit, Some(&sign(0, &with_sid))).await.status, StatusCode::OK);
    with_sid["sid"] = json!(Uuid::new_v4().to_string());
    assert_eq!(
        app.get(audit, Some(&sign(0, &with_sid))).await.status,
        StatusCode::UNAUTHORIZED
    );

    let results: Vec<(String, Value, Value)> = admin_actions(&app)
        .await
        .into_iter()
        .map(|(result, m)| (result, m["action"].clone(), m["actor"].clone()))
        .collect();
    assert_eq!(
        results,
        [
            ("unauthorized".to_owned(), json!("audit_query"), Value::Null),
            ("unauthorized".to_owned(), json!("audit_query"), Value::Null),
            ("unauthorized".to_owned(), json!("audit_query"), Value::Null),
            ("success".to_owned(), json!("audit_query"), json!("ops:alice")),
            ("forbidden".to_owned(), json!("audit_query"), json!("ops:bob")),
            ("forbidden".to_owned(), json!("audit_query"), json!(user.to_string())),
            ("success".to_owned(), json!("audit_query"), json!("ops:alice")),
            ("success".to_owned(), json!("audit_query"), json!(user.to_string())),
            ("unauthorized".to_owned(), json!("audit_query"), json!(user.to_string())),
        ],
        "a token that does not verify names no actor"
    );
}

#[sqlx::test]
async fn audit_query_filters_and_pages_forward(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let token = operator_token(&app);
    let start = app.clock.now();
    let alice = unique_email("alice");
    let bob = unique_email("bob");
    app.signed_in(&alice).await;
    app.clock.advance(chrono::Duration::seconds(60));
    app.signed_in(&bob).await;
    app.clock.advance(chrono::Duration::seconds(10));
    for _ in 0..3 {
        app.login(&alice, "wrong passphrase!!").await;
        app.clock.advance(chrono::Duration::seconds(1));
    }
    let alice_id = user_id(&app, &alice).await;

    // By user id and by email: the same events, oldest first, all of them alice's.
    let by_id = app
        .get(&format!("/api/admin/audit?user={alice_id}"), Some(&token))
        .await;
    assert_eq!(by_id.status, StatusCode::OK, "{:?}", by_id.body);
    let events = by_id.body["events"].as_array().unwrap().clone();
    assert_eq!(by_id.body["next"], Value::Null);
    let types: Vec<&str> = events.iter().map(|e| s(e, "event_type")).collect();
    assert_eq!(types, ["register", "login", "login", "login", "login"], "{events:?}");
    assert!(events.iter().all(|e| e["user_id"] == json!(alice_id)));
    for field in ["id", "result", "ip", "user_agent", "metadata", "created_at"] {
        assert!(events[0].get(field).is_some(), "no `{field}` in {}", events[0]);
    }
    let by_email = app
        .get(&format!("/api/admin/audit?user={}", alice.to_uppercase()), Some(&token))
        .await;
    assert_eq!(by_email.body["events"], json!(events));

    // By type and time window: bob's login is the only successful login after the first minute.
    let since = (start + chrono::Duration::seconds(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until = (start + chrono::Duration::seconds(61)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let res = app
        .get(
            &format!("/api/admin/audit?type=login&since={since}&until={until}"),
            Some(&token),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let logins = res.body["events"].as_array().unwrap();
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["result"], "success");
    assert_eq!(logins[0]["user_id"], json!(user_id(&app, &bob).await));

    // Paging: pages of 2 joined are exactly the unpaged answer, in order.
    let all = app.get("/api/admin/audit?type=login&limit=1000", Some(&token)).await;
    let all = all.body["events"].as_array().unwrap().clone();
    assert_eq!(all.len(), 5);
    let mut paged = Vec::new();
    let mut uri = "/api/admin/audit?type=login&limit=2".to_owned();
    loop {
        let page = app.get(&uri, Some(&token)).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let events = page.body["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        paged.extend(events.iter().cloned());
        match page.body["next"].as_str() {
            Some(next) => uri = format!("/api/admin/audit?type=login&limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let times: Vec<&str> = all.iter().map(|e| s(e, "created_at")).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first");

    // An email nobody has: an empty page.
    let res = app.get("/api/admin/audit?user=nobody@example.com", Some(&token)).await;
    assert_eq!(res.body, json!({ "events": [], "next": null }));

    // Bad parameters: 400 naming the parameter.
    for (query, named) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=2026-11-24T00:00:00Z&until=2026-11-23T00:00:00Z", "since"),
        ("user=bob", "user"),
        ("type=Login!", "type"),
        ("after=not-a-cursor", "after"),
        ("colour=blue", "accepted: user"),
    ] {
        let res = app.get(&format!("/api/admin/audit?{query}"), Some(&token)).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{query}: {:?}", res.body);
        assert_eq!(res.body["error"], "bad_request");
        assert!(s(&res.body, "message").contains(named), "{query}: {:?}", res.body);
    }

    // Each query is itself an admin action, with what it returned.
    let actions = admin_actions(&app).await;
    let first = &actions[0];
    assert_eq!(first.0, "success");
    assert_eq!(first.1["action"], "audit_query");
    assert_eq!(first.1["actor"], "ops:alice");
    assert_eq!(first.1["target"], json!(alice_id.to_string()));
    assert_eq!(first.1["count"], 5);
    assert!(actions
        .iter()
        .any(|(r, m)| r == "bad_request" && m["action"] == "audit_query"));
}

#[sqlx::test]
async fn lock_refuses_login_ends_sessions_and_unlock_restores(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let token = operator_token(&app);
    let email = unique_email("locked");
    let login = app.signed_in(&email).await;
    let id = user_id(&app, &email).await;
    let access = s(&login, "access_token").to_owned();
    let refresh = s(&login, "refresh_token").to_owned();

    let res = admin_post(
        &app,
        &token,
        &format!("/api/admin/users/{id}/lock"),
        json!({ "reason": "incident 42" }),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body, json!({ "user_id": id, "locked_until": null, "locked": true }));

    // Sessions and refresh tokens are gone.
    assert_eq!(
        app.get("/api/auth/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::UNAUTHORIZED);

    // The right password gets the lockout's answer; a wrong one the usual 401.
    let locked = app.login(&email, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        locked.body,
        json!({ "error": "account_locked", "message": "too many failed attempts; try again later" })
    );
    assert!(locked.headers.contains_key("retry-after"));
    let wrong = app.login(&email, "wrong passphrase!!").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["error"], "invalid_credentials");

    // The lock lives in PostgreSQL: losing every Redis key of the service changes nothing.
    flush_redis(&app).await;
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);

    // Failed logins meanwhile filled the Redis lockout; unlock clears it too.
    for _ in 0..5 {
        app.login(&email, "wrong passphrase!!").await;
    }
    let res = admin_post(&app, &token, &format!("/api/admin/users/{id}/unlock"), json!({})).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body, json!({ "user_id": id, "locked": false }));
    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);

    // A timed lock ends by itself.
    let res = admin_post(
        &app,
        &token,
        &format!("/api/admin/users/{id}/lock"),
        json!({ "reason": "cool-off", "minutes": 10 }),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let until = chrono::DateTime::parse_from_rfc3339(s(&res.body, "locked_until")).unwrap();
    assert_eq!(until.timestamp(), app.clock.now().timestamp() + 600);
    let locked = app.login(&email, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.headers["retry-after"], "600");
    app.clock.advance(chrono::Duration::seconds(601));
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::OK);

    // Refusals: unknown account 404, bad id, reason or minutes 400 (with a fresh token: the clock moved
    // past the first one's expiry).
    let token = operator_token(&app);
    let unknown = Uuid::new_v4();
    for (uri, body, status) in [
        (
            format!("/api/admin/users/{unknown}/lock"),
            json!({ "reason": "x" }),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/api/admin/users/{unknown}/unlock"),
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/admin/users/nope/lock".to_owned(),
            json!({ "reason": "x" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/admin/users/{id}/lock"),
            json!({ "reason": " " }),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/admin/users/{id}/lock"),
            json!({}),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/admin/users/{id}/lock"),
            json!({ "reason": "x", "minutes": 0 }),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let res = admin_post(&app, &token, &uri, body.clone()).await;
        assert_eq!(res.status, status, "{uri} {body}: {:?}", res.body);
    }

    let actions = admin_actions(&app).await;
    let summary: Vec<(String, Value, Value)> = actions
        .iter()
        .map(|(r, m)| (r.clone(), m["action"].clone(), m["target"].clone()))
        .collect();
    assert_eq!(
        summary[..3],
        [
            ("success".to_owned(), json!("lock_user"), json!(id.to_string())),
            ("success".to_owned(), json!("unlock_user"), json!(id.to_string())),
            ("success".to_owned(), json!("lock_user"), json!(id.to_string())),
        ]
    );
    assert_eq!(actions[0].1["reason"], "incident 42");
    assert_eq!(actions[0].1["sessions_ended"], 1);
    assert_eq!(actions[0].1["refresh_tokens_revoked"], 1);
    assert_eq!(actions[0].1["count"], 1);
    assert_eq!(actions.len(), 3 + 6, "every call audited, refused ones too");
    assert_eq!(
        app.state
            .metrics
            .admin_actions
            .with_label_values(&["lock_user", "success"])
            .get(),
        2
    );
    let metrics = app.get("/metrics", None).await;
    assert!(metrics
        .body
        .as_str()
        .unwrap()
        .contains("auth_admin_actions_total{action=\"lock_user\",deployment=\"canary\",result=\"success\"} 2"));
}

/// Deletes every Redis key of this app's prefix, as if Redis had been lost.
async fn flush_redis(app: &TestApp) {
    let client = redis::Client::open(crate::common::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{}*", app.state.config.redis_key_prefix);
    let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut c).await.unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut c).await.unwrap();
    }
}

#[sqlx::test]
async fn revoke_every_refresh_token_per_user_and_globally(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let token = operator_token(&app);
    let (a, b) = (unique_email("rta"), unique_email("rtb"));
    let a1 = app.signed_in(&a).await;
    let a2 = app.login(&a, PASSWORD).await.body;
    let b1 = app.signed_in(&b).await;
    let b2 = app.login(&b, PASSWORD).await.body;
    let a_id = user_id(&app, &a).await;

    let res = admin_post(
        &app,
        &token,
        "/api/admin/refresh-tokens/revoke",
        json!({ "user_id": a_id }),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body, json!({ "revoked": 2 }));
    for login in [&a1, &a2] {
        let res = app.refresh(s(login, "refresh_token")).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{:?}", res.body);
    }
    let b1_next = app.refresh(s(&b1, "refresh_token")).await;
    assert_eq!(b1_next.status, StatusCode::OK, "another user's tokens still work");

    // Globally: every unrevoked token (b's rotated one included) is revoked.
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(live, 3);
    let res = admin_post(&app, &token, "/api/admin/refresh-tokens/revoke", json!({})).await;
    assert_eq!(res.body, json!({ "revoked": 3 }));
    for t in [s(&b1_next.body, "refresh_token"), s(&b2, "refresh_token")] {
        assert_eq!(app.refresh(t).await.status, StatusCode::UNAUTHORIZED);
    }
    let res = admin_post(
        &app,
        &token,
        "/api/admin/refresh-tokens/revoke",
        json!({ "user_id": null }),
    )
    .await;
    assert_eq!(res.body, json!({ "revoked": 0 }));

    let unknown = admin_post(
        &app,
        &token,
        "/api/admin/refresh-tokens/revoke",
        json!({ "user_id": Uuid::new_v4() }),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad = admin_post(
        &app,
        &token,
        "/api/admin/refresh-tokens/revoke",
        json!({ "user_id": "x" }),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let actions = admin_actions(&app).await;
    let summary: Vec<(String, Value, Value, Value)> = actions
        .iter()
        .map(|(r, m)| (r.clone(), m["action"].clone(), m["target"].clone(), m["count"].clone()))
        .collect();
    assert_eq!(
        summary[..3],
        [
            (
                "success".into(),
                json!("revoke_refresh_tokens"),
                json!(a_id.to_string()),
                json!(2)
            ),
            ("success".into(), json!("revoke_refresh_tokens"), json!("all"), json!(3)),
            ("success".into(), json!("revoke_refresh_tokens"), json!("all"), json!(0)),
        ]
    );
    assert_eq!(actions.len(), 5);
    assert!(actions.iter().all(|(_, m)| m["actor"] == "ops:alice"));
}

#[sqlx::test]
async fn revoke_every_session_per_user_and_globally(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let token = operator_token(&app);
    let (a, b) = (unique_email("sa"), unique_email("sb"));
    let a1 = app.signed_in(&a).await;
    let a2 = app.login(&a, PASSWORD).await.body;
    let b1 = app.signed_in(&b).await;
    let b2 = app.login(&b, PASSWORD).await.body;
    let b3 = app.login(&b, PASSWORD).await.body;
    let a_id = user_id(&app, &a).await;
    // Another app on the same Redis (another prefix): a global revocation of this one leaves it alone.
    let other = TestApp::new(app.state.db.pool().clone()).await;
    let c = other.signed_in(&unique_email("sc")).await;

    let res = admin_post(&app, &token, "/api/admin/sessions/revoke", json!({ "user_id": a_id })).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body, json!({ "revoked": 2 }));
    for login in [&a1, &a2] {
        assert_eq!(
            app.get("/api/auth/me", Some(s(login, "access_token"))).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(s(login, "refresh_token")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.get("/api/auth/me", Some(s(&b1, "access_token"))).await.status,
        StatusCode::OK
    );

    let res = admin_post(&app, &token, "/api/admin/sessions/revoke", json!({})).await;
    assert_eq!(res.body, json!({ "revoked": 3 }));
    for login in [&b1, &b2, &b3] {
        assert_eq!(
            app.get("/api/auth/me", Some(s(login, "access_token"))).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let b_id = user_id(&app, &b).await;
    let stale: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL AND user_id = ANY($1)")
            .bind(vec![a_id, b_id])
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(stale, 0, "the ended sessions' refresh-token families are revoked");
    assert_eq!(
        other.get("/api/auth/me", Some(s(&c, "access_token"))).await.status,
        StatusCode::OK,
        "sessions under another key prefix are not this service's"
    );
    // Nothing left: a second call ends nothing.
    let res = admin_post(&app, &token, "/api/admin/sessions/revoke", json!({})).await;
    assert_eq!(res.body, json!({ "revoked": 0 }));

    let actions: Vec<(String, Value, Value, Value)> = admin_actions(&app)
        .await
        .into_iter()
        .map(|(r, m)| (r, m["action"].clone(), m["target"].clone(), m["count"].clone()))
        .collect();
    assert_eq!(
        actions,
        [
            (
                "success".into(),
                json!("revoke_sessions"),
                json!(a_id.to_string()),
                json!(2)
            ),
            ("success".into(), json!("revoke_sessions"), json!("all"), json!(3)),
            ("success".into(), json!("revoke_sessions"), json!("all"), json!(0)),
        ]
    );
}

#[sqlx::test]
async fn openapi_documents_the_admin_api(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let doc = app.get("/openapi.json", None).await.body;
    for path in [
        "/api/admin/audit",
        "/api/admin/users/{user_id}/lock",
        "/api/admin/users/{user_id}/unlock",
        "/api/admin/refresh-tokens/revoke",
        "/api/admin/sessions/revoke",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    let admin_tag = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "admin")
        .expect("an admin tag");
    assert!(s(admin_tag, "description").contains("no `sid`"));
    for schema in [
        "AuditPage",
        "AuditRecord",
        "LockRequest",
        "LockResponse",
        "RevokeRequest",
        "RevokeResponse",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "missing schema {schema}"
        );
    }
}
