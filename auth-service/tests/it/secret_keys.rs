//! JWT keys from a Secrets Manager secret (`JWT_KEYS_SECRET_ID`) against the sandbox's moto
//! (`AWS_ENDPOINT_URL`): the three staging labels, a rotation by moving them, token introspection, and a
//! secret without AWSCURRENT. Each test creates its own uniquely named secret and deletes it at the end.

use std::process::Command;
use std::sync::Arc;

use auth_service::clock::ManualClock;
use auth_service::config::Config;
use auth_service::keys::KeyStore;
use auth_service::state::AppState;
use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::Client;
use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::common::{self, s, test_key, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_auth-service");

async fn client() -> Client {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: these tests need the sandbox's moto; `. target/sandbox/env.sh` exports it"
    );
    Client::new(&aws_config::defaults(BehaviorVersion::latest()).load().await)
}

/// A secret of the test's own; the test deletes it when it ends (a failed test leaves it behind, harmless
/// under its unique name).
struct Secret {
    client: Client,
    id: String,
}

impl Secret {
    /// A new secret whose AWSCURRENT holds `pem`; `None` creates it without any version.
    async fn create(pem: Option<&str>) -> Self {
        let client = client().await;
        let id = format!("/auth-service-tests/jwt-keys-{}", uuid::Uuid::new_v4().simple());
        let mut req = client.create_secret().name(&id);
        if let Some(pem) = pem {
            req = req.secret_string(pem);
        }
        req.send().await.unwrap();
        Self { client, id }
    }

    /// Stores `pem` as a new version with the given labels; returns its version id.
    async fn put(&self, pem: &str, stages: &[&str]) -> String {
        let mut req = self.client.put_secret_value().secret_id(&self.id).secret_string(pem);
        for stage in stages {
            req = req.version_stages(*stage);
        }
        req.send().await.unwrap().version_id.unwrap()
    }

    /// The version carrying a label.
    async fn version_of(&self, stage: &str) -> Option<String> {
        let described = self.client.describe_secret().secret_id(&self.id).send().await.unwrap();
        described
            .version_ids_to_stages?
            .into_iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id)
    }

    /// Moves a label to a version (from wherever it is); `to: None` only removes it.
    async fn move_label(&self, stage: &str, to: Option<&str>) {
        let from = self.version_of(stage).await;
        self.client
            .update_secret_version_stage()
            .secret_id(&self.id)
            .version_stage(stage)
            .set_remove_from_version_id(from)
            .set_move_to_version_id(to.map(str::to_owned))
            .send()
            .await
            .unwrap();
    }

    async fn delete(self) {
        let _ = self
            .client
            .delete_secret()
            .secret_id(&self.id)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
}

/// The test configuration with the secret as the key source.
fn config(dir: &std::path::Path, secret_id: &str) -> Config {
    let mut cfg = common::config(dir);
    cfg.jwt_signing_key_file = None;
    cfg.jwt_verify_keys_dir = None;
    cfg.jwt_keys_secret_id = Some(secret_id.to_owned());
    cfg.validate().unwrap();
    cfg
}

/// The app under test, its keys loaded from the secret.
async fn app(pool: PgPool, secret: &Secret) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &secret.id);
    let keys = KeyStore::open(cfg.key_source().unwrap()).await.unwrap();
    let clock = Arc::new(ManualClock::default());
    let state = AppState::with_keys(cfg, pool, clock.clone(), keys).unwrap();
    TestApp {
        router: auth_service::http::router(state.clone()),
        state,
        clock,
        keys_dir: dir,
        ip: "203.0.113.9".into(),
    }
}

fn sorted(mut kids: Vec<String>) -> Vec<String> {
    kids.sort();
    kids
}

fn verify_kids(version: &Value) -> Vec<String> {
    sorted(
        version["verify_kids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect(),
    )
}

/// Introspects `token` as an operator whose token is signed by `(pem, kid)`, a key the service trusts.
async fn introspect_as(app: &TestApp, (pem, kid): (&str, &str), token: &str) -> Value {
    let caller = mint(pem, kid, &crate::admin::operator_claims(app, "tester"));
    let res = introspect_with(app, &caller, json!({ "token": token })).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    res.body
}

/// `POST /api/auth/introspect` with `body`, as the bearer of `caller`.
async fn introspect_with(app: &TestApp, caller: &str, body: Value) -> common::Resp {
    app.call(
        axum::http::Method::POST,
        "/api/auth/introspect",
        Some(body),
        Some(caller),
    )
    .await
}

/// Introspects as an operator signed by the test signing key.
async fn introspect(app: &TestApp, token: &str) -> Value {
    let (pem, kid) = test_key(0);
    introspect_as(app, (&pem, &kid), token).await
}

/// A token as a rotation's test step mints it: the key's algorithm with a kid, no `typ`, no session;
/// `sub` is no user.
fn mint(pem: &str, kid: &str, claims: &Value) -> String {
    crate::common::sign(pem, json!({ "kid": kid }), claims)
}

fn claims(app: &TestApp, iss: &str, aud: &str, exp_in: i64) -> Value {
    let now = app.state.now().timestamp();
    json!({ "iss": iss, "aud": aud, "sub": "rotation-test", "iat": now, "nbf": now, "exp": now + exp_in })
}

#[sqlx::test]
async fn keys_load_from_the_three_staging_labels(pool: PgPool) {
    let ((k0, kid0), (k1, kid1), (k2, kid2)) = (test_key(0), test_key(1), test_key(2));
    // key 2 → AWSPREVIOUS once key 0 is put as AWSCURRENT; key 1 → AWSPENDING.
    let secret = Secret::create(Some(&k2)).await;
    secret.put(&k0, &["AWSCURRENT"]).await;
    secret.put(&k1, &["AWSPENDING"]).await;
    let app = app(pool, &secret).await;

    let version = app.get("/version", None).await.body;
    assert_eq!(version["signing_kid"], kid0.as_str());
    assert_eq!(verify_kids(&version), sorted(vec![kid0.clone(), kid1, kid2]));
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);

    let login = app.signed_in("staged@example.com").await;
    let header = jsonwebtoken::decode_header(s(&login, "access_token")).unwrap();
    assert_eq!(header.kid.as_deref(), Some(kid0.as_str()), "AWSCURRENT signs");
    secret.delete().await;
}

#[sqlx::test]
async fn rotation_by_staging_labels_keeps_old_tokens_until_previous_is_removed(pool: PgPool) {
    let ((old_pem, old_kid), (new_pem, new_kid)) = (test_key(0), test_key(3));
    let secret = Secret::create(Some(&old_pem)).await;
    let old_version = secret.version_of("AWSCURRENT").await.unwrap();
    let app = app(pool, &secret).await;
    let before = app.signed_in("rotated@example.com").await;
    let old_access = s(&before, "access_token").to_owned();

    // Create: the new key as AWSPENDING is published, verify-only.
    let new_version = secret.put(&new_pem, &["AWSPENDING"]).await;
    auth_service::reload_keys(&app.state, "test").await;
    let version = app.get("/version", None).await.body;
    assert_eq!(version["signing_kid"], old_kid.as_str());
    assert_eq!(verify_kids(&version), sorted(vec![old_kid.clone(), new_kid.clone()]));
    let test_token = mint(&new_pem, &new_kid, &claims(&app, "https://auth.test", "suma-test", 300));
    let answer = introspect(&app, &test_token).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["kid"], new_kid.as_str());

    // Finish: AWSCURRENT moves to the new version; the old one becomes AWSPREVIOUS.
    secret.move_label("AWSCURRENT", Some(&new_version)).await;
    secret.move_label("AWSPENDING", None).await;
    assert_eq!(
        secret.version_of("AWSPREVIOUS").await.as_deref(),
        Some(old_version.as_str())
    );
    auth_service::reload_keys(&app.state, "test").await;
    let version = app.get("/version", None).await.body;
    assert_eq!(version["signing_kid"], new_kid.as_str());
    assert_eq!(verify_kids(&version), sorted(vec![old_kid.clone(), new_kid.clone()]));
    let after = app.login("rotated@example.com", common::PASSWORD).await.body;
    let header = jsonwebtoken::decode_header(s(&after, "access_token")).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()), "the new key signs");
    assert_eq!(
        app.get("/api/auth/me", Some(&old_access)).await.status,
        StatusCode::OK,
        "tokens of the old key still verify while it is AWSPREVIOUS"
    );
    assert_eq!(introspect(&app, &old_access).await["kid"], old_kid.as_str());

    // Retire: without AWSPREVIOUS the old key is gone and its tokens are rejected.
    secret.move_label("AWSPREVIOUS", None).await;
    auth_service::reload_keys(&app.state, "test").await;
    let version = app.get("/version", None).await.body;
    assert_eq!(verify_kids(&version), vec![new_kid.clone()]);
    assert_eq!(
        app.get("/api/auth/me", Some(&old_access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let answer = introspect_as(&app, (&new_pem, &new_kid), &old_access).await;
    assert_eq!(answer, json!({ "active": false, "reason": "unknown_kid" }));
    assert_eq!(
        app.get("/api/auth/me", Some(s(&after, "access_token"))).await.status,
        StatusCode::OK
    );
    assert_eq!(app.state.metrics.key_reloads.with_label_values(&["success"]).get(), 3);

    // A version that holds no key fails the reload, which keeps the keys in use. (AWSPENDING: moto does
    // not follow UpdateSecretVersionStage in PutSecretValue's AWSCURRENT handling, and would leave two
    // versions labelled AWSCURRENT here.)
    secret.put("not a key", &["AWSPENDING"]).await;
    auth_service::reload_keys(&app.state, "test").await;
    assert_eq!(app.get("/version", None).await.body["signing_kid"], new_kid.as_str());
    assert_eq!(app.state.metrics.key_reloads.with_label_values(&["failure"]).get(), 1);
    secret.delete().await;
}

#[sqlx::test]
async fn introspect_checks_signature_claims_and_the_session(pool: PgPool) {
    let app = TestApp::new(pool).await;
    // The caller must authenticate: no token, or a user's token without the admin role, is refused.
    let body = json!({ "token": "x" });
    assert_eq!(
        app.post("/api/auth/introspect", body.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let user = app.signed_in("not-an-operator@example.com").await;
    let res = app
        .call(
            axum::http::Method::POST,
            "/api/auth/introspect",
            Some(body),
            Some(s(&user, "access_token")),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{:?}", res.body);
    let (pem, kid) = test_key(0);
    let login = app.signed_in("introspect@example.com").await;
    let access = s(&login, "access_token");

    let answer = introspect(&app, access).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["kid"], kid.as_str());
    let me = app.get("/api/auth/me", Some(access)).await.body;
    assert_eq!(answer["sub"], me["id"]);
    assert!(answer["exp"].as_i64().unwrap() > app.state.now().timestamp());
    assert!(answer.get("reason").is_none());
    // After logout the token is inactive, though its signature and expiry still hold.
    assert_eq!(
        app.call(axum::http::Method::POST, "/api/auth/logout", None, Some(access))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let answer = introspect(&app, access).await;
    assert_eq!(
        (&answer["active"], &answer["reason"]),
        (&json!(false), &json!("session_revoked")),
        "{answer}"
    );

    // A session-less token minted with the signing key is active; its subject is no user.
    let minted = mint(&pem, &kid, &claims(&app, "https://auth.test", "suma-test", 60));
    let answer = introspect(&app, &minted).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], "rotation-test");

    let cases = [
        (
            mint(&pem, &kid, &claims(&app, "https://other", "suma-test", 60)),
            "invalid_issuer",
        ),
        (
            mint(&pem, &kid, &claims(&app, "https://auth.test", "other", 60)),
            "invalid_audience",
        ),
        (
            mint(&pem, &kid, &claims(&app, "https://auth.test", "suma-test", -60)),
            "expired",
        ),
        (
            mint(
                &test_key(1).0,
                &test_key(1).1,
                &claims(&app, "https://auth.test", "suma-test", 60),
            ),
            "unknown_kid",
        ),
        // Signed by another key of the signing key's algorithm under the signing kid.
        (
            mint(
                &auth_service::keys::generate(common::TEST_KEY_ALGORITHMS[0], 2048)
                    .unwrap()
                    .pem,
                &kid,
                &claims(&app, "https://auth.test", "suma-test", 60),
            ),
            "invalid_signature",
        ),
        // Signed with another algorithm (an RSA key) under the signing kid: refused before the signature.
        (
            mint(
                &test_key(1).0,
                &kid,
                &claims(&app, "https://auth.test", "suma-test", 60),
            ),
            "algorithm_not_accepted",
        ),
        ("not.a.jwt".to_owned(), "malformed"),
    ];
    for (token, reason) in cases {
        let answer = introspect(&app, &token).await;
        assert_eq!(answer, json!({ "active": false, "reason": reason }));
    }
    let mut early = claims(&app, "https://auth.test", "suma-test", 600);
    early["nbf"] = json!(app.state.now().timestamp() + 300);
    assert_eq!(
        introspect(&app, &mint(&pem, &kid, &early)).await["reason"],
        "not_yet_valid"
    );

    // Leeway (5 s in the test configuration) on exp.
    let token = mint(&pem, &kid, &claims(&app, "https://auth.test", "suma-test", 60));
    app.clock.advance(chrono::Duration::seconds(63));
    assert_eq!(introspect(&app, &token).await["active"], true);
    app.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(introspect(&app, &token).await["reason"], "expired");

    let res = introspect_with(&app, &crate::admin::operator_token(&app), json!({ "jwt": "x" })).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let doc = app.get("/openapi.json", None).await.body;
    assert!(doc["paths"]["/api/auth/introspect"]["post"].is_object());
}

#[sqlx::test]
async fn introspect_is_rate_limited_per_ip(pool: PgPool) {
    let app = TestApp::with(pool, |c| c.rate_limit_introspect_per_ip = 2).await;
    for _ in 0..2 {
        introspect(&app, "x").await;
    }
    let res = introspect_with(&app, &crate::admin::operator_token(&app), json!({ "token": "x" })).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_secret_without_awscurrent_fails_the_start_naming_the_variable() {
    let secret = Secret::create(None).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &secret.id);
    let err = KeyStore::open(cfg.key_source().unwrap()).await.unwrap_err();
    let message = format!("{:#}", anyhow::Error::new(err));
    assert!(
        message.contains("JWT_KEYS_SECRET_ID") && message.contains(&secret.id),
        "{message}"
    );
    assert!(message.contains("AWSCURRENT"), "{message}");

    // The binary refuses to start and says why.
    let res = Command::new(BIN)
        .arg("serve")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("REDIS_URL", "redis://127.0.0.1:1/")
        .env("MIGRATE_ON_START", "false")
        .env("JWT_KEYS_SECRET_ID", &secret.id)
        .env_remove("JWT_SIGNING_KEY_FILE")
        .env_remove("JWT_VERIFY_KEYS_DIR")
        .env_remove("JWT_KEYSET_FILE")
        .output()
        .unwrap();
    assert!(!res.status.success());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("JWT_KEYS_SECRET_ID") && stderr.contains("AWSCURRENT"),
        "{stderr}"
    );

    // A secret id that does not exist is the same failure.
    let missing = format!("/auth-service-tests/missing-{}", uuid::Uuid::new_v4().simple());
    let cfg = config(dir.path(), &missing);
    let err = KeyStore::open(cfg.key_source().unwrap()).await.unwrap_err();
    assert!(format!("{err}").contains(&missing), "{err}");
    secret.delete().await;
}

#[test]
fn the_secret_conflicts_with_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.jwt_keys_secret_id = Some("/some/secret".into());
    let err = cfg.validate().unwrap_err();
    assert_eq!(err.variable, "JWT_KEYS_SECRET_ID");
}
