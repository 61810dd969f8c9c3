//! Refresh token rotation, reuse detection and the grace window.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::Duration;
use sqlx::PgPool;

use crate::common::{s, TestApp};

#[sqlx::test]
async fn refresh_rotates_and_stores_only_hashes(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let login = app.signed_in("rot@example.com").await;
    let first = s(&login, "refresh_token").to_owned();

    let res = app.refresh(&first).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let second = s(&res.body, "refresh_token").to_owned();
    assert_ne!(first, second);
    assert_eq!(res.body["session_id"], login["session_id"]);
    let me = app.get("/api/auth/me", Some(s(&res.body, "access_token"))).await;
    assert_eq!(me.status, StatusCode::OK);

    let res = app.refresh(&second).await;
    assert_eq!(res.status, StatusCode::OK);

    let rows: Vec<(Vec<u8>, i32, bool)> = sqlx::query_as(
        "SELECT token_hash, rotation_count, rotated_at IS NOT NULL FROM refresh_tokens ORDER BY rotation_count",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(rows.iter().map(|r| r.2).collect::<Vec<_>>(), [true, true, false]);
    assert_eq!(rows[0].0, auth_service::tokens::hash_refresh_token(&first).to_vec());
    let dump: String = sqlx::query_scalar("SELECT string_agg(t::text, '|') FROM refresh_tokens t")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(
        !dump.contains(&first) && !dump.contains(&second),
        "no plaintext token is stored"
    );
    assert_eq!(app.state.metrics.token_refresh.with_label_values(&["rotated"]).get(), 2);
}

#[sqlx::test]
async fn reuse_after_grace_revokes_the_family_and_is_audited(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let login = app.signed_in("reuse@example.com").await;
    let first = s(&login, "refresh_token").to_owned();
    let rotated = app.refresh(&first).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let second = s(&rotated.body, "refresh_token").to_owned();

    app.clock.advance(Duration::seconds(6));
    let res = app.refresh(&first).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.body["error"], "invalid_grant");

    // The whole family is dead: the legitimate successor and the session too.
    assert_eq!(app.refresh(&second).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/auth/me", Some(s(&rotated.body, "access_token")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(live, 0);
    let audit = app.audit("token_reuse_detected").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "family_revoked");
    assert_eq!(audit[0].2["family_id"], login["session_id"]);
    assert_eq!(app.state.metrics.token_reuse.get(), 1);
}

#[sqlx::test]
async fn retry_within_grace_gets_the_same_successor(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let login = app.signed_in("grace@example.com").await;
    let first = s(&login, "refresh_token").to_owned();
    let a = app.refresh(&first).await;
    app.clock.advance(Duration::seconds(4));
    let b = app.refresh(&first).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(b.status, StatusCode::OK, "{:?}", b.body);
    assert_eq!(a.body["refresh_token"], b.body["refresh_token"]);
    assert_eq!(app.state.metrics.token_reuse.get(), 0);
    // The successor still works.
    assert_eq!(app.refresh(s(&b.body, "refresh_token")).await.status, StatusCode::OK);
    assert_eq!(
        app.state
            .metrics
            .token_refresh
            .with_label_values(&["grace_retry"])
            .get(),
        1
    );
}

#[sqlx::test]
async fn concurrent_refreshes_of_one_token_agree(pool: PgPool) {
    let app = Arc::new(TestApp::new(pool).await);
    let login = app.signed_in("tabs@example.com").await;
    let token = s(&login, "refresh_token").to_owned();
    let (a, b) = tokio::join!(
        {
            let (app, token) = (app.clone(), token.clone());
            async move { app.refresh(&token).await }
        },
        {
            let (app, token) = (app.clone(), token.clone());
            async move { app.refresh(&token).await }
        }
    );
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(a.body["refresh_token"], b.body["refresh_token"]);
}

#[sqlx::test]
async fn unknown_malformed_and_expired_refresh_tokens_are_refused(pool: PgPool) {
    let app = TestApp::with(pool, |c| {
        c.refresh_token_ttl = 600;
        c.session_timeout_idle = 3600;
        c.session_timeout_absolute = 7200;
    })
    .await;
    let login = app.signed_in("exp@example.com").await;
    let (unknown, _) = auth_service::tokens::new_refresh_token();
    assert_eq!(app.refresh(&unknown).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh("not-a-token").await.status, StatusCode::UNAUTHORIZED);
    let res = app.post("/api/auth/refresh", serde_json::json!({})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    app.clock.advance(Duration::seconds(601));
    assert_eq!(
        app.refresh(s(&login, "refresh_token")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn rows_of_tokens_expired_past_the_margin_are_pruned_and_no_others(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let old = app.signed_in("old-rows@example.com").await;
    let rotated = app.refresh(s(&old, "refresh_token")).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let ttl = Duration::seconds(app.state.config.refresh_token_ttl as i64);
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM refresh_tokens")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
    };

    // Expired, but inside the margin: kept, and still refused as expired rather than unknown.
    app.clock.advance(ttl + Duration::seconds(1));
    auth_service::prune_refresh_tokens(&app.state).await;
    assert_eq!(count().await, 2);

    app.clock.advance(auth_service::REFRESH_TOKEN_ROW_MARGIN);
    let fresh = app.signed_in("new-rows@example.com").await;
    auth_service::prune_refresh_tokens(&app.state).await;
    assert_eq!(count().await, 1, "only the fresh login's token is left");
    assert_eq!(app.state.metrics.refresh_tokens_pruned.get(), 2);
    assert_eq!(app.refresh(s(&fresh, "refresh_token")).await.status, StatusCode::OK);
}
