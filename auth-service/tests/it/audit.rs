//! The audit log's integrity: an append-only hash chain that the admin API verifies, that the database
//! refuses to change except by sealing and redaction, that detects a record changed behind the service's
//! back, and that an erasure's redaction leaves verifiable. Request ids are the service's own.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::common::{unique_email, TestApp, PASSWORD};

async fn verify(app: &TestApp) -> Value {
    let ops = crate::admin::operator_token(app);
    let res = app.call(Method::GET, "/api/admin/audit/verify", None, Some(&ops)).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    res.body
}

/// Changes records the way whoever holds the database owner's password could: with the append-only rules
/// switched off for the one statement. `statement` returns the chain position it changed.
async fn tamper(db: &PgPool, statement: &'static str) -> i64 {
    let mut tx = db.begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_logs DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    let changed: i64 = sqlx::query_scalar(statement).fetch_one(&mut *tx).await.unwrap();
    sqlx::query("ALTER TABLE audit_logs ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    changed
}

/// Some traffic: a registration, a failed and a good sign-in.
async fn traffic(app: &TestApp, email: &str) {
    app.signed_in(email).await;
    assert_eq!(
        app.login(email, "not the password at all").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login(email, PASSWORD).await.status, StatusCode::OK);
}

#[sqlx::test]
async fn the_audit_log_is_a_chain_the_database_will_not_let_anyone_edit(pool: PgPool) {
    let app = TestApp::new(pool).await;
    traffic(&app, &unique_email("chain")).await;
    let report = verify(&app).await;
    assert_eq!(report["intact"], true, "{report}");
    assert!(report["sealed"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(report["unsealed"], 0, "sealed before verifying");

    let db = app.state.db.pool();
    for (what, statement) in [
        (
            "an edit",
            "UPDATE audit_logs SET result = 'success' WHERE result = 'failure'",
        ),
        ("a deletion", "DELETE FROM audit_logs"),
        ("a truncation", "TRUNCATE audit_logs"),
        ("re-sealing", "UPDATE audit_logs SET record_hash = content_hash"),
        ("a quiet scrub", "UPDATE audit_logs SET ip = NULL"),
    ] {
        let refused = sqlx::query(statement).execute(db).await.unwrap_err();
        assert!(refused.to_string().contains("audit_logs"), "{what}: {refused}");
    }
}

#[sqlx::test]
async fn a_record_changed_behind_the_services_back_breaks_the_chain_there(pool: PgPool) {
    let app = TestApp::new(pool).await;
    traffic(&app, &unique_email("tamper")).await;
    assert_eq!(verify(&app).await["intact"], true);
    // Whoever holds the database owner's password can switch the rules off; the chain still tells.
    let db = app.state.db.pool();
    let changed = tamper(
        db,
        "UPDATE audit_logs SET result = 'success' WHERE event = 'login' AND result = 'failure' RETURNING chain_index",
    )
    .await;

    let report = verify(&app).await;
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["first_break"]["chain_index"], changed, "{report}");
    assert!(
        report["first_break"]["reason"]
            .as_str()
            .unwrap()
            .contains("content differs"),
        "{report}"
    );
    // The verification itself is audited.
    let checks: Vec<Value> = app
        .audit("admin_action")
        .await
        .into_iter()
        .filter(|(_, _, m)| m["action"] == "audit_verify")
        .map(|(_, _, m)| m["intact"].clone())
        .collect();
    assert_eq!(checks, [json!(true), json!(false)]);
}

#[sqlx::test]
async fn an_erasure_redacts_personal_data_and_the_chain_still_verifies(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("redact");
    traffic(&app, &email).await;
    assert_eq!(verify(&app).await["intact"], true);
    let key = |e: &str| {
        use sha2::Digest as _;
        hex::encode(&sha2::Sha256::digest(e.as_bytes())[..16])
    };
    sqlx::query("UPDATE users SET deleted_at = now() - interval '1 day'")
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let purged = app.state.db.purge_deleted(chrono::Utc::now(), key).await.unwrap();
    assert_eq!(purged, 1);
    let report = verify(&app).await;
    assert_eq!(report["intact"], true, "{report}");
    assert!(report["redacted"].as_u64().unwrap() >= 3, "{report}");
}

#[sqlx::test]
async fn request_ids_are_the_services_and_the_clients_is_kept_apart(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let req = axum::http::Request::post("/api/auth/login")
        .header("x-request-id", "client-chosen-1")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            json!({ "email": unique_email("rid"), "password": "whatever it is" }).to_string(),
        ))
        .unwrap();
    use tower::ServiceExt as _;
    let res = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let ours = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&ours).is_ok(), "{ours}");
    let (request_id, client_request_id): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT request_id, client_request_id FROM audit_logs WHERE event = 'login'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(request_id.as_deref(), Some(ours.as_str()));
    assert_eq!(client_request_id.as_deref(), Some("client-chosen-1"));
}

#[sqlx::test]
async fn audit_verify_exits_0_on_an_intact_chain_and_1_on_a_broken_one(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    traffic(&app, &unique_email("cli")).await;
    app.state.db.seal_audit(1_000).await.unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_auth-service"))
            .args(["audit", "verify"])
            .env("DATABASE_URL", crate::cli::url_of(&pool))
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], true);

    tamper(
        &pool,
        "UPDATE audit_logs SET event = 'nothing_happened' WHERE chain_index = 2 RETURNING chain_index",
    )
    .await;
    let out = run();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken at position 2"), "{stderr}");
}

#[sqlx::test]
async fn a_refresh_commits_with_its_audit_record_or_not_at_all(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let login = app.signed_in(&unique_email("rotation")).await;
    let session = login["session_id"].as_str().unwrap().to_owned();
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    let db = app.state.db.pool();

    // The record cannot be written: the rotation is not committed either, and the token still works.
    sqlx::query("ALTER TABLE audit_logs ADD CONSTRAINT refuse_refresh CHECK (event <> 'token_refresh') NOT VALID")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(app.refresh(&first).await.status, StatusCode::INTERNAL_SERVER_ERROR);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE rotated_at IS NOT NULL")
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no rotation without its record");
    sqlx::query("ALTER TABLE audit_logs DROP CONSTRAINT refuse_refresh")
        .execute(db)
        .await
        .unwrap();

    let res = app.refresh(&first).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let records = app.audit("token_refresh").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let (result, user_id, metadata) = &records[0];
    assert_eq!(result, "success");
    assert!(user_id.is_some());
    assert_eq!(metadata, &json!({ "family_id": session, "kind": "rotated" }));
    let hashed: bool =
        sqlx::query_scalar("SELECT content_hash IS NOT NULL FROM audit_logs WHERE event = 'token_refresh'")
            .fetch_one(db)
            .await
            .unwrap();
    assert!(
        !hashed,
        "written inside the rotation, before its user was known to the service"
    );

    // The sealer hashes it as stored, so the chain verifies, and a later edit of it is caught.
    assert_eq!(verify(&app).await["intact"], true);
    let changed = tamper(
        db,
        "UPDATE audit_logs SET metadata = '{\"kind\": \"rotated\"}' WHERE event = 'token_refresh' RETURNING chain_index",
    )
    .await;
    let report = verify(&app).await;
    assert_eq!(report["first_break"]["chain_index"], changed, "{report}");
}
