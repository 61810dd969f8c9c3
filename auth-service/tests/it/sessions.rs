//! Sessions: logout, listing and revoking own sessions, idle and absolute timeouts.

use axum::http::{Method, StatusCode};
use chrono::Duration;
use sqlx::PgPool;

use crate::common::{s, TestApp, PASSWORD};

#[sqlx::test]
async fn logout_ends_the_session_and_its_refresh_tokens(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let login = app.signed_in("out@example.com").await;
    let access = s(&login, "access_token");
    let res = app.call(Method::POST, "/api/auth/logout", None, Some(access)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/auth/me", Some(access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(s(&login, "refresh_token")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call(Method::POST, "/api/auth/logout", None, Some(access))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call(Method::POST, "/api/auth/logout", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.audit("logout").await.len(), 1);
}

#[sqlx::test]
async fn users_list_and_revoke_their_own_sessions(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let one = app.signed_in("many@example.com").await;
    let two = app.login("many@example.com", PASSWORD).await.body;
    assert_ne!(one["session_id"], two["session_id"], "a new session id at every login");

    assert_eq!(
        app.get("/api/auth/sessions", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let list = app.get("/api/auth/sessions", Some(s(&two, "access_token"))).await;
    assert_eq!(list.status, StatusCode::OK);
    let sessions = list.body.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|x| x["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], two["session_id"]);
    assert_eq!(current[0]["ip"], "203.0.113.7");
    assert_eq!(current[0]["user_agent"], "it-test/1.0");

    // Someone else cannot see or end them.
    let other = app.signed_in("other@example.com").await;
    let uri = format!("/api/auth/sessions/{}", s(&one, "session_id"));
    let res = app
        .call(Method::DELETE, &uri, None, Some(s(&other, "access_token")))
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/auth/me", Some(s(&one, "access_token"))).await.status,
        StatusCode::OK
    );
    let unknown = format!("/api/auth/sessions/{}", uuid::Uuid::new_v4());
    assert_eq!(
        app.call(Method::DELETE, &unknown, None, Some(s(&two, "access_token")))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let res = app
        .call(Method::DELETE, &uri, None, Some(s(&two, "access_token")))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/auth/me", Some(s(&one, "access_token"))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(s(&one, "refresh_token")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let list = app.get("/api/auth/sessions", Some(s(&two, "access_token"))).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(app.audit("session_revoked").await.len(), 1);
}

#[sqlx::test]
async fn idle_timeout_slides_with_activity(pool: PgPool) {
    let app = TestApp::with(pool, |c| {
        c.session_timeout_idle = 60;
        c.session_timeout_absolute = 1000;
        c.access_token_ttl = 900;
    })
    .await;
    let login = app.signed_in("idle@example.com").await;
    let access = s(&login, "access_token");
    for _ in 0..3 {
        app.clock.advance(Duration::seconds(50));
        assert_eq!(
            app.get("/api/auth/me", Some(access)).await.status,
            StatusCode::OK,
            "activity slides the idle timeout"
        );
    }
    app.clock.advance(Duration::seconds(61));
    assert_eq!(
        app.get("/api/auth/me", Some(access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let expired = app.audit("session_expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].0, "idle_timeout");
    assert_eq!(expired[0].2["session_id"], login["session_id"]);
    // The session ended, and its refresh tokens with it.
    assert_eq!(
        app.refresh(s(&login, "refresh_token")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn refresh_after_idle_timeout_is_refused(pool: PgPool) {
    let app = TestApp::with(pool, |c| {
        c.session_timeout_idle = 60;
        c.session_timeout_absolute = 1000;
    })
    .await;
    let login = app.signed_in("idle2@example.com").await;
    app.clock.advance(Duration::seconds(30));
    let res = app.refresh(s(&login, "refresh_token")).await;
    assert_eq!(res.status, StatusCode::OK, "a refresh is activity");
    app.clock.advance(Duration::seconds(61));
    assert_eq!(
        app.refresh(s(&res.body, "refresh_token")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn absolute_timeout_ends_an_active_session(pool: PgPool) {
    let app = TestApp::with(pool, |c| {
        c.session_timeout_idle = 60;
        c.session_timeout_absolute = 100;
    })
    .await;
    let login = app.signed_in("abs@example.com").await;
    let access = s(&login, "access_token");
    app.clock.advance(Duration::seconds(50));
    assert_eq!(app.get("/api/auth/me", Some(access)).await.status, StatusCode::OK);
    app.clock.advance(Duration::seconds(50));
    assert_eq!(app.get("/api/auth/me", Some(access)).await.status, StatusCode::OK);
    app.clock.advance(Duration::seconds(2));
    assert_eq!(
        app.get("/api/auth/me", Some(access)).await.status,
        StatusCode::UNAUTHORIZED,
        "past the absolute timeout"
    );
    assert_eq!(app.audit("session_expired").await[0].0, "absolute_timeout");
    let list_login = app.login("abs@example.com", PASSWORD).await;
    let list = app
        .get("/api/auth/sessions", Some(s(&list_login.body, "access_token")))
        .await;
    assert_eq!(
        list.body.as_array().unwrap().len(),
        1,
        "the ended session is not listed"
    );
}

#[sqlx::test]
async fn password_change_ends_every_session(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let one = app.signed_in("change@example.com").await;
    let two = app.login("change@example.com", PASSWORD).await.body;
    let access = s(&two, "access_token");
    let change = |current: &str, new: &str| serde_json::json!({ "current_password": current, "new_password": new });

    let res = app
        .call(
            Method::POST,
            "/api/auth/password",
            Some(change("wrong passphrase!!", "a brand new passphrase")),
            Some(access),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.body["error"], "invalid_credentials");
    let res = app
        .call(
            Method::POST,
            "/api/auth/password",
            Some(change(PASSWORD, "short")),
            Some(access),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .call(
            Method::POST,
            "/api/auth/password",
            Some(change(PASSWORD, PASSWORD)),
            Some(access),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.body["error"], "password_reused");
    let res = app
        .call(
            Method::POST,
            "/api/auth/password",
            Some(change(PASSWORD, "a brand new passphrase")),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    let res = app
        .call(
            Method::POST,
            "/api/auth/password",
            Some(change(PASSWORD, "a brand new passphrase")),
            Some(access),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);
    for login in [&one, &two] {
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
        app.login("change@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("change@example.com", "a brand new passphrase").await.status,
        StatusCode::OK
    );
    let results: Vec<String> = app.audit("password_change").await.into_iter().map(|a| a.0).collect();
    assert_eq!(results, ["failure", "success"]);
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM password_history")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(history, 2);
}
