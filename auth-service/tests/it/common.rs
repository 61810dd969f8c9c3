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

/// The tests' TOTP encryption key (base64 of the 32 bytes `test-totp-encryption-key-32bytes`).
pub const TOTP_KEY: &str = "dGVzdC10b3RwLWVuY3J5cHRpb24ta2V5LTMyYnl0ZXM=";

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

/// `SMTP_URL` of the capturing SMTP server, or a panic that says how to provide it.
pub fn smtp_url() -> String {
    std::env::var("SMTP_URL").unwrap_or_else(|_| {
        panic!("SMTP_URL is not set: the auth-service tests send email to a capturing SMTP server (and read it from SMTP_SINK_DIR); `cargo xtask sandbox up` starts one and exports both in target/sandbox/env.sh")
    })
}

/// The Maildir the capturing SMTP server writes to.
pub fn smtp_sink_dir() -> PathBuf {
    PathBuf::from(std::env::var("SMTP_SINK_DIR").unwrap_or_else(|_| {
        panic!("SMTP_SINK_DIR is not set: the Maildir of the capturing SMTP server (see SMTP_URL)")
    }))
}

/// A captured email.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

fn decode_quoted_printable(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 3 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mail(raw: &str) -> Option<(String, Mail)> {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n")?;
    let header = |name: &str| {
        head.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| l[name.len() + 1..].trim().to_owned())
    };
    let to = header("To")?.trim_matches(|c| c == '<' || c == '>').to_lowercase();
    let subject = header("Subject").unwrap_or_default();
    let body = if header("Content-Transfer-Encoding").is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable")) {
        decode_quoted_printable(body)
    } else {
        body.to_owned()
    };
    Some((to, Mail { subject, body }))
}

/// Every captured email to `to` so far, oldest first.
pub fn mails_to(to: &str) -> Vec<Mail> {
    let dir = smtp_sink_dir();
    let mut found: Vec<(std::time::SystemTime, String, Mail)> = Vec::new();
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
            let Ok(raw) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            if let Some((addr, mail)) = parse_mail(&raw) {
                if addr == to.to_lowercase() {
                    let modified = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    found.push((modified, entry.file_name().to_string_lossy().into_owned(), mail));
                }
            }
        }
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    found.into_iter().map(|(_, _, m)| m).collect()
}

/// Waits (up to 30 s) until `count` emails to `to` with `subject` in their subject have arrived; returns
/// them. Email is sent in the background, so it lands a moment after the answer.
pub async fn wait_mails(to: &str, subject: &str, count: usize) -> Vec<Mail> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mails: Vec<Mail> = mails_to(to)
            .into_iter()
            .filter(|m| m.subject.contains(subject))
            .collect();
        if mails.len() >= count || std::time::Instant::now() > deadline {
            assert!(
                mails.len() >= count,
                "expected {count} email(s) `{subject}` to {to}, got {mails:?}"
            );
            return mails;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The newest email to `to` with `subject` (waiting for it).
pub async fn wait_mail(to: &str, subject: &str) -> Mail {
    wait_mails(to, subject, 1).await.pop().unwrap()
}

/// The token in a `…?token=` link of an email body.
pub fn link_token(body: &str) -> String {
    let start = body.find("?token=").expect("a link with a token") + "?token=".len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

/// A unique address, so tests sharing the SMTP sink never read each other's mail.
pub fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// The algorithm of each test key: the default first, so the service signs as it does by default, and
/// the others as verify-only keys beside it (a set mixes algorithms during a migration).
pub const TEST_KEY_ALGORITHMS: [auth_service::keys::Algorithm; 4] = [
    auth_service::keys::Algorithm::Es256,
    auth_service::keys::Algorithm::Rs256,
    auth_service::keys::Algorithm::EdDsa,
    auth_service::keys::Algorithm::Ps256,
];

/// A test key (PKCS#8 PEM with its `alg:` line) and its kid, of [`TEST_KEY_ALGORITHMS`]`[index]`.
/// Generated once and cached under the target directory, since RSA key generation is slow in debug builds.
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
    let algorithm = TEST_KEY_ALGORITHMS[index];
    let path = dir.join(format!("key-{index}-{algorithm}.pem"));
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(_) => {
            let key = auth_service::keys::generate(algorithm, 2048).unwrap();
            let tmp = dir.join(format!("key-{index}.{}.tmp", uuid::Uuid::new_v4()));
            std::fs::write(&tmp, &key.pem).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            key.pem
        }
    };
    let kid = auth_service::keys::parse_private(&pem).unwrap().kid().to_owned();
    keys[index] = Some((pem.clone(), kid.clone()));
    (pem, kid)
}

/// The public key PEM (SPKI) of a test key.
pub fn public_pem(private_pem: &str) -> String {
    auth_service::keys::parse_private(private_pem)
        .unwrap()
        .public()
        .to_pem()
}

/// A compact JWS of `claims` signed with the private key `pem` under its own algorithm; `header` gives
/// the other members (`kid`, `typ`), so a test can name another key's kid or leave one out.
pub fn sign(pem: &str, header: serde_json::Value, claims: &serde_json::Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let key = auth_service::keys::parse_private(pem).unwrap();
    let mut header = header;
    header["alg"] = key.algorithm().name().into();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).unwrap())
    )
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
        "--smtp-url",
        &smtp_url(),
        "--mail-from",
        "auth-service tests <no-reply@auth.test>",
        "--public-base-url",
        "https://app.test",
        "--reset-token-keys",
        "t1:dGVzdC1yZXNldC1rZXktdGhhdC1pcy1sb25nLWVub3VnaC0xMjM0NQ",
        "--totp-encryption-key",
        TOTP_KEY,
    ])
    .unwrap();
    cfg.rate_limit_login_per_ip = 1000;
    cfg.rate_limit_login_per_account = 1000;
    cfg.rate_limit_register_per_ip = 1000;
    cfg.rate_limit_register_per_account = 1000;
    cfg.rate_limit_refresh_per_ip = 1000;
    cfg.trusted_proxy_hops = Some(1);
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
        self.call_as(ip, "it-test/1.0", method, uri, body, bearer).await
    }

    /// Logs in from another user agent (another device).
    pub async fn login_with_agent(&self, email: &str, password: &str, agent: &str) -> Resp {
        let body = json!({ "email": email, "password": password });
        self.call_as(
            &self.ip.clone(),
            agent,
            Method::POST,
            "/api/auth/login",
            Some(body),
            None,
        )
        .await
    }

    /// Sends a request from a given client IP and user agent.
    pub async fn call_as(
        &self,
        ip: &str,
        agent: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-forwarded-for", ip)
            .header("user-agent", agent);
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

    /// Registers, logs in and verifies the address with the emailed link; returns the login body.
    pub async fn verified_signed_in(&self, email: &str) -> Value {
        let login = self.signed_in(email).await;
        let token = link_token(&wait_mail(email, "Verify your email address").await.body);
        let res = self.post("/api/auth/verify-email", json!({ "token": token })).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);
        login
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

/// Serves a stub (the SMS API, the breached-password API) on a loopback port for the test's lifetime;
/// returns its base URL.
pub async fn serve_stub(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// A string field of a JSON body.
pub fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {v}"))
}
