//! GDPR rights end to end: versioned consent, export (only the caller's data, JSON and CSV), erasure at
//! once and the purge that leaves no personal data in any table.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::common::{s, unique_email, TestApp, PASSWORD};

#[sqlx::test]
async fn consent_is_versioned_and_withdrawal_is_a_new_record(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let login = app.signed_in(&unique_email("consent")).await;
    let access = s(&login, "access_token").to_owned();
    let post = |purpose: &str, version: &str, granted: bool| {
        app.call(
            Method::POST,
            "/api/gdpr/consent",
            Some(json!({ "purpose": purpose, "version": version, "granted": granted })),
            Some(&access),
        )
    };
    assert_eq!(post("marketing", "2026-01", true).await.status, StatusCode::CREATED);
    assert_eq!(post("marketing", "2026-01", false).await.status, StatusCode::CREATED);
    assert_eq!(post("terms", "v3", true).await.status, StatusCode::CREATED);
    let bad = post("spam", "v1", true).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let list = app.get("/api/gdpr/consent", Some(&access)).await;
    let records = list.body["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["granted"], true);
    assert_eq!(records[1]["granted"], false, "withdrawal appended, the grant kept");
    assert_eq!(records[2]["policy_version"], "v3");
    assert_eq!(records[0]["ip"], app.ip.as_str());
    assert_eq!(records[0]["user_agent"], "it-test/1.0");
    assert_eq!(app.audit("gdpr_request").await.len(), 3);
}

#[sqlx::test]
async fn export_holds_the_callers_data_and_nobody_elses(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let mine = unique_email("mine");
    let theirs = unique_email("theirs");
    let login = app.signed_in(&mine).await;
    let other = app.signed_in(&theirs).await;
    let access = s(&login, "access_token").to_owned();
    app.call(
        Method::POST,
        "/api/gdpr/consent",
        Some(json!({ "purpose": "privacy", "version": "p1", "granted": true })),
        Some(s(&other, "access_token")),
    )
    .await;
    let res = app.get("/api/gdpr/export", Some(&access)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["profile"]["email"], mine.as_str());
    assert_eq!(res.body["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(res.body["devices"].as_array().unwrap().len(), 1);
    assert!(res.body["consents"].as_array().unwrap().is_empty());
    let events: Vec<&str> = res.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"register") && events.contains(&"login"), "{events:?}");
    let text = res.body.to_string();
    assert!(!text.contains(&theirs), "nobody else's data");
    assert!(!text.contains(s(&other, "session_id")));

    let csv = app.get("/api/gdpr/export?format=csv", Some(&access)).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    let body = csv.body.as_str().unwrap();
    assert!(body.starts_with("section,index,field,value\n"));
    assert!(body.contains(&format!("profile,0,email,{mine}")));
    assert!(!body.contains(&theirs));
}

#[sqlx::test]
async fn erasure_is_immediate_and_purge_leaves_no_personal_data(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("erase");
    app.signed_in(&email).await;
    // An incident lock and unlock on the account: the admin records must not keep personal data either.
    let user: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let ops = crate::admin::operator_token(&app);
    for (action, body) in [
        ("lock", json!({ "reason": format!("phished, reported by {email}") })),
        ("unlock", json!({})),
    ] {
        let res = app
            .call(
                Method::POST,
                &format!("/api/admin/users/{user}/{action}"),
                Some(body),
                Some(&ops),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    }
    // The incident responder looks the person up by address: that query is in the trail too.
    let query = app
        .call(Method::GET, &format!("/api/admin/audit?user={email}"), None, Some(&ops))
        .await;
    assert_eq!(query.status, StatusCode::OK, "{:?}", query.body);
    let login = app.login(&email, PASSWORD).await.body;
    let access = s(&login, "access_token").to_owned();
    let refresh = s(&login, "refresh_token").to_owned();
    app.call(
        Method::POST,
        "/api/gdpr/consent",
        Some(json!({ "purpose": "terms", "version": "v1", "granted": true })),
        Some(&access),
    )
    .await;
    app.login(&email, "a wrong password!").await;
    let wrong = app
        .call(
            Method::POST,
            "/api/gdpr/delete",
            Some(json!({ "password": "nope nope nope" })),
            Some(&access),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let res = app
        .call(
            Method::POST,
            "/api/gdpr/delete",
            Some(json!({ "password": PASSWORD })),
            Some(&access),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{:?}", res.body);
    assert_eq!(
        app.get("/api/auth/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/gdpr/export", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::UNAUTHORIZED);

    // Not yet past the retention period: nothing purged.
    let db = &app.state.db;
    let key = |e: &str| {
        use sha2::Digest as _;
        hex::encode(&sha2::Sha256::digest(e.as_bytes())[..16])
    };
    assert_eq!(
        db.purge_deleted(chrono::Utc::now() - chrono::Duration::days(30), key)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        db.purge_deleted(chrono::Utc::now() + chrono::Duration::seconds(1), key)
            .await
            .unwrap(),
        1
    );

    // No table holds the address, the IP or the user agent any more: every table of the schema, as the
    // database lists them, so a table added later is covered without editing this test.
    let pool = db.pool();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.len() >= 10, "{tables:?}");
    let mut dump = String::new();
    for table in &tables {
        // The names come from the catalogue, not from input.
        let sql = sqlx::AssertSqlSafe(format!("SELECT row_to_json(t)::text FROM \"{table}\" t"));
        let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await.unwrap();
        dump.push_str(&rows.join(" "));
    }
    assert!(!dump.contains(&email), "address left: {dump}");
    assert!(!dump.contains(&app.ip), "ip left: {dump}");
    assert!(!dump.contains("it-test/1.0"), "user agent left");
    assert!(!dump.contains(&key(&email)), "account key left");
    assert!(!dump.contains(&user.to_string()), "account id left");
    let audit_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE event = 'gdpr_request'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(audit_rows, 2, "the audit trail is kept, without PII");
}

/// Erasure asks for the password again, and that check is no password oracle: wrong passwords count
/// towards the sign-in lockout (which then refuses even the right one, at erasure and at sign-in), each
/// refusal is audited, and the account is still there.
#[sqlx::test]
async fn erasure_password_checks_share_the_sign_in_lockout_and_are_audited(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("oracle");
    let login = app.signed_in(&email).await;
    let access = s(&login, "access_token").to_owned();
    let erase = |password: &'static str| {
        app.call(
            Method::POST,
            "/api/gdpr/delete",
            Some(json!({ "password": password })),
            Some(&access),
        )
    };
    for _ in 0..5 {
        assert_eq!(erase("a wrong guess, again").await.status, StatusCode::UNAUTHORIZED);
    }
    let locked = erase(PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", locked.body);
    assert_eq!(locked.body["error"], "account_locked");
    assert_eq!(
        app.login(&email, PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the guesses at erasure locked sign-in too"
    );
    let audited = app.audit("gdpr_delete").await;
    let results: Vec<&str> = audited.iter().map(|(r, _, _)| r.as_str()).collect();
    assert_eq!(
        results,
        ["failure", "failure", "failure", "failure", "failure", "locked"]
    );
    assert!(audited.iter().all(|(_, user, _)| user.is_some()), "{audited:?}");
    assert_eq!(app.state.metrics.lockouts.get(), 1);
    // Nothing was erased.
    assert_eq!(app.get("/api/auth/me", Some(&access)).await.status, StatusCode::OK);
}
