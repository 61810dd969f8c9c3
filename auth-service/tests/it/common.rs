//! Test harness: builds the real router on a fresh database (from `#[sqlx::test]`) and the Redis at
//! `REDIS_URL` with a random key prefix, with a manual clock, and drives it with `tower::ServiceExt::oneshot`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use auth_service::clock::ManualClock;
use auth_service::config::Config;
use auth_service::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use clap::Parser as _;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use sqlx::PgPool;
use tempfile::TempDir;
use tower::ServiceExt as _;

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// `REDIS_URL`, or a panic that says how to provide it.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| {
        panic!("REDIS_URL is not set: the auth-service tests need a real Redis (and DATABASE_URL a PostgreSQL superuser URL); `cargo xtask test` exports both from the sandbox")
    })
}

/// `DATABASE_URL`, or a panic that says how to provide it.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: the auth-service tests need a real PostgreSQL superuser URL; `cargo xtask test` exports it from the sandbox")
    })
}

/// A test RSA key (PKCS#8 PEM) and its kid. Generated once and cached under the target directory, since
/// RSA key generation is slow in debug builds. Index selects one of several distinct keys.
pub fn test_key(index: usize) -> (String, String) {
    /// (PEM, kid) per index.
    type Cached = Vec<Option<(String, String)>>;
    static KEYS: OnceLock<std::sync::Mutex<Cached>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| std::sync::Mutex::new(vec![None; 4]));
    let mut keys = keys.lock().unwrap();
    if let Some(k) = &keys[index] {
        return k.clone();
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("auth-service-test-keys");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("key-{index}.pem"));
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(_) => {
            let key = auth_service::keys::generate(2048).unwrap();
            let tmp = dir.join(format!("key-{index}.{}.tmp", uuid::Uuid::new_v4()));
            std::fs::write(&tmp, &key.pem).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            key.pem
        }
    };
    let kid = auth_service::keys::kid_of(&auth_service::keys::parse_private(&pem).unwrap().to_public_key());
    keys[index] = Some((pem.clone(), kid.clone()));
    (pem, kid)
}

/// The public key PEM (SPKI) of a test key.
pub fn public_pem(private_pem: &str) -> String {
    use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
    auth_service::keys::parse_private(private_pem)
        .unwrap()
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

/// A configuration for tests: test key 0 as the signing key in a temporary directory, generous rate
/// limits, one trusted proxy hop (so tests choose the client IP with `X-Forwarded-For`).
pub fn config(keys_dir: &Path) -> Config {
    let signing = keys_dir.join("signing.pem");
    if !signing.exists() {
        std::fs::write(&signing, test_key(0).0).unwrap();
    }
    let verify_dir = keys_dir.join("verify");
    std::fs::create_dir_all(&verify_dir).unwrap();
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let mut cfg = Config::try_parse_from([
        "serve",
        "--database-url",
        &database_url(),
        "--redis-url",
        &redis_url(),
        "--redis-key-prefix",
        &prefix,
        "--app-env",
        "test",
        "--deployment-label",
        "canary",
        "--jwt-issuer",
        "https://auth.test",
        "--jwt-audience",
        "suma-test",
        "--jwt-signing-key-file",
        signing.to_str().unwrap(),
        "--jwt-verify-keys-dir",
        verify_dir.to_str().unwrap(),
    ])
    .unwrap();
    cfg.rate_limit_login_per_ip = 1000;
    cfg.rate_limit_login_per_account = 1000;
    cfg.rate_limit_register_per_ip = 1000;
    cfg.rate_limit_refresh_per_ip = 1000;
    cfg.trusted_proxy_hops = 1;
    cfg
}

/// The application under test.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub keys_dir: TempDir,
    /// Client IP sent as `X-Forwarded-For`.
    pub ip: String,
}

/// A response, with the body parsed as JSON when it is JSON (else `Value::String`).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestApp {
    /// An app with the test configuration.
    pub async fn new(pool: PgPool) -> Self {
        Self::with(pool, |_| {}).await
    }

    /// An app with the test configuration adjusted by `tweak`.
    pub async fn with(pool: PgPool, tweak: impl FnOnce(&mut Config)) -> Self {
        let keys_dir = tempfile::tempdir().unwrap();
        let mut cfg = config(keys_dir.path());
        tweak(&mut cfg);
        Self::from_config(pool, cfg, keys_dir)
    }

    /// An app from a prepared configuration.
    pub fn from_config(pool: PgPool, cfg: Config, keys_dir: TempDir) -> Self {
        cfg.validate().unwrap();
        let clock = Arc::new(ManualClock::default());
        let state = AppState::new(cfg, pool, clock.clone()).unwrap();
        Self {
            router: auth_service::http::router(state.clone()),
            state,
            clock,
            keys_dir,
            ip: "203.0.113.7".into(),
        }
    }

    /// Sends a request.
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>, bearer: Option<&str>) -> Resp {
        self.call_from(&self.ip.clone(), method, uri, body, bearer).await
    }

    /// Sends a request from a given client IP.
    pub async fn call_from(
        &self,
        ip: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-forwarded-for", ip)
            .header("user-agent", "it-test/1.0");
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Resp { status, headers, body }
    }

    pub async fn get(&self, uri: &str, bearer: Option<&str>) -> Resp {
        self.call(Method::GET, uri, None, bearer).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> Resp {
        self.call(Method::POST, uri, Some(body), None).await
    }

    pub async fn register(&self, email: &str, password: &str) -> Resp {
        self.post("/api/auth/register", json!({ "email": email, "password": password }))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.post("/api/auth/login", json!({ "email": email, "password": password }))
            .await
    }

    pub async fn refresh(&self, token: &str) -> Resp {
        self.post("/api/auth/refresh", json!({ "refresh_token": token })).await
    }

    /// Registers and logs in; returns the login body.
    pub async fn signed_in(&self, email: &str) -> Value {
        assert_eq!(self.register(email, PASSWORD).await.status, StatusCode::ACCEPTED);
        let res = self.login(email, PASSWORD).await;
        assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
        res.body
    }

    /// Audit records of an event as (result, user_id is set).
    pub async fn audit(&self, event: &str) -> Vec<(String, Option<uuid::Uuid>, Value)> {
        sqlx::query_as("SELECT result, user_id, metadata FROM audit_logs WHERE event = $1 ORDER BY occurred_at, id")
            .bind(event)
            .fetch_all(self.state.db.pool())
            .await
            .unwrap()
    }
}

/// A string field of a JSON body.
pub fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {v}"))
}
