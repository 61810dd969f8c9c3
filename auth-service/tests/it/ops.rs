//! Operational endpoints, response headers, readiness against a Redis that goes away and comes back, key
//! reload, and fault injection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::common::{self, redis_url, s, test_key, TestApp, PASSWORD};

#[sqlx::test]
async fn health_version_and_security_headers(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = app.get("/health", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["status"], "ok");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ] {
        assert_eq!(
            res.headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name}"
        );
    }
    assert!(
        !res.headers["x-request-id"].is_empty(),
        "a request id is assigned and returned"
    );

    let res = app.get("/version", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["deployment"], "canary");
    assert_eq!(res.body["environment"], "test");
    assert_eq!(res.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(res.body["signing_kid"], test_key(0).1);

    let res = app.get("/nope", None).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.body["error"], "not_found");
    assert_eq!(res.headers["x-frame-options"], "DENY", "headers on errors too");
}

#[sqlx::test]
async fn jwks_publishes_signing_and_verify_keys_with_short_caching(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers["cache-control"], "public, max-age=60");
    let keys = res.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], test_key(0).1);
    // The default algorithm: an EC P-256 key with its point.
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert_eq!(keys[0]["use"], "sig");
    assert_eq!(keys[0]["x"].as_str().map(str::len), Some(43));
    assert_eq!(keys[0]["y"].as_str().map(str::len), Some(43));
    assert!(keys[0].get("d").is_none(), "no private parts");
}

#[sqlx::test]
async fn metrics_answer_only_the_scrapers_token_when_one_is_set(pool: PgPool) {
    let app = TestApp::with(pool, |c| {
        c.metrics_token = Some("the scraper's token, 32 chars.".into())
    })
    .await;
    assert_eq!(app.get("/metrics", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/metrics", Some("not the scraper's token, 32 ch")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let res = app.get("/metrics", Some("the scraper's token, 32 chars.")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.as_str().unwrap().contains("auth_login_attempts_total"));
}

#[sqlx::test]
async fn metrics_carry_the_deployment_label(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.signed_in("metrics@example.com").await;
    app.login("metrics@example.com", "wrong passphrase!!").await;
    let res = app.get("/metrics", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let text = res.body.as_str().unwrap();
    for name in [
        "auth_login_attempts_total{deployment=\"canary\"} 2",
        "auth_login_success_total{deployment=\"canary\"} 1",
        "auth_login_failures_total{deployment=\"canary\",reason=\"invalid_credentials\"} 1",
        "auth_registration_total{deployment=\"canary\"} 1",
        "auth_session_created_total{deployment=\"canary\"} 1",
        "http_requests_total{deployment=\"canary\",method=\"POST\",route=\"/api/auth/login\",status=\"200\"} 1",
        "http_request_duration_seconds_bucket{deployment=\"canary\",method=\"POST\",route=\"/api/auth/login\"",
    ] {
        assert!(text.contains(name), "missing `{name}` in\n{text}");
    }
    for name in [
        "auth_token_refresh_total",
        "auth_token_reuse_detected_total",
        "auth_account_lockouts_total",
    ] {
        assert!(text.contains(&format!("# TYPE {name} counter")), "missing {name}");
    }
}

#[sqlx::test]
async fn openapi_document_lists_every_endpoint(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = app.get("/openapi.json", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let paths = res.body["paths"].as_object().unwrap();
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/auth/sessions",
        "/api/auth/sessions/{id}",
        "/api/auth/password",
        "/api/auth/verify-email",
        "/api/auth/verify-email/resend",
        "/api/auth/password/forgot",
        "/api/auth/password/reset",
        "/api/auth/devices",
        "/api/auth/devices/{id}",
        "/api/auth/2fa/totp/setup",
        "/api/auth/2fa/totp/confirm",
        "/api/auth/2fa/disable",
        "/api/auth/2fa/send",
        "/api/auth/2fa/verify",
        "/api/auth/phone",
        "/api/gdpr/consent",
        "/api/gdpr/export",
        "/api/gdpr/delete",
        "/.well-known/jwks.json",
        "/health",
        "/ready",
        "/metrics",
        "/version",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    assert!(res.body["components"]["securitySchemes"]["bearer"].is_object());
    for schema in [
        "TokenResponse",
        "LoginRequest",
        "RegisterRequest",
        "ErrorBody",
        "SessionView",
        "Ready",
        "LoginResponse",
        "ChallengeResponse",
        "ResetRequest",
        "RecoveryCodesResponse",
        "DevicesResponse",
        "ExportResponse",
        "ConsentRequest",
    ] {
        assert!(
            res.body["components"]["schemas"][schema].is_object(),
            "missing schema {schema}"
        );
    }
    assert_eq!(
        res.body["components"]["schemas"]["LoginRequest"]["properties"]["password"]["format"],
        "password"
    );
}

#[sqlx::test(migrations = false)]
async fn ready_is_503_until_migrations_are_applied(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = app.get("/ready", None).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.body["migrations"], "pending");
    app.state.db.migrate().await.unwrap();
    let res = app.get("/ready", None).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["status"], "ready");
}

/// A TCP proxy to the real Redis that can be cut and restored on the same port.
struct RedisProxy {
    addr: SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl RedisProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Self {
            addr,
            upstream,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the listener and every proxied connection.
    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port.
    async fn restart(&self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        let mut tries = 0;
        loop {
            match socket.bind(self.addr) {
                Ok(()) => break,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind the proxy: {e}"),
            }
        }
        self.serve(socket.listen(128).unwrap());
    }
}

/// `host:port` of a redis:// URL.
fn host_port(url: &str) -> (String, String) {
    let rest = url.split_once("://").unwrap().1;
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap_or((rest, String::new()));
    let (userinfo, hostport) = authority
        .rsplit_once('@')
        .map(|(u, h)| (format!("{u}@"), h))
        .unwrap_or((String::new(), authority));
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:6379")
    };
    (hostport, format!("{userinfo}\u{0}{path}"))
}

async fn wait_ready(app: &TestApp, want: StatusCode) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let res = app.get("/ready", None).await;
        if res.status == want {
            return res.body;
        }
        last = res.body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/ready never answered {want}; last body {last}");
}

#[sqlx::test]
async fn ready_is_503_while_redis_is_unreachable_and_recovers(pool: PgPool) {
    let url = redis_url();
    let (upstream, template) = host_port(&url);
    let proxy = RedisProxy::start(upstream).await;
    let scheme = url.split_once("://").unwrap().0;
    let proxied = format!("{scheme}://{}", template.replace('\u{0}', &proxy.addr.to_string()));
    let app = TestApp::with(pool, |c| c.redis_url = proxied).await;

    let body = wait_ready(&app, StatusCode::OK).await;
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["postgres"], "ok");

    proxy.stop();
    let body = wait_ready(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_ne!(body["redis"], "ok");
    assert_eq!(body["postgres"], "ok");
    assert_eq!(
        app.get("/health", None).await.status,
        StatusCode::OK,
        "liveness does not depend on Redis"
    );
    // Login fails closed without Redis (no lockout state) and says so without details.
    let res = app.login("x@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.body["error"], "unavailable");

    proxy.restart().await;
    let body = wait_ready(&app, StatusCode::OK).await;
    assert_eq!(body["redis"], "ok");
}

fn write_key(path: &std::path::Path, pem: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, pem).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[sqlx::test]
async fn key_rotation_by_reload(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (old_pem, old_kid) = test_key(0);
    let (new_pem, new_kid) = test_key(2);
    let before = app.signed_in("rotate@example.com").await;
    let old_access = s(&before, "access_token").to_owned();

    // Rotate: the new key signs, the old one stays as verify-only.
    let dir = app.keys_dir.path();
    write_key(&dir.join("verify").join("previous.pem"), &common::public_pem(&old_pem));
    write_key(&dir.join("signing.pem"), &new_pem);
    auth_service::reload_keys(&app.state, "test").await;

    assert_eq!(app.get("/version", None).await.body["signing_kid"], new_kid);
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    // Both keys, the signing key first; a migration between algorithms: each under its own.
    let published: Vec<(&str, &str)> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["alg"].as_str().unwrap()))
        .collect();
    assert_eq!(published, [(new_kid.as_str(), "EdDSA"), (old_kid.as_str(), "ES256")]);
    assert_eq!(
        app.get("/api/auth/me", Some(&old_access)).await.status,
        StatusCode::OK,
        "old tokens still verify"
    );
    let after = app.login("rotate@example.com", PASSWORD).await.body;
    let header = jsonwebtoken::decode_header(s(&after, "access_token")).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);

    // Retire the old key: its tokens stop working.
    std::fs::remove_file(dir.join("verify").join("previous.pem")).unwrap();
    auth_service::reload_keys(&app.state, "test").await;
    assert_eq!(
        app.get("/api/auth/me", Some(&old_access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/auth/me", Some(s(&after, "access_token"))).await.status,
        StatusCode::OK
    );

    // A broken file keeps the current keys.
    write_key(&dir.join("signing.pem"), "not a key");
    auth_service::reload_keys(&app.state, "test").await;
    assert_eq!(app.get("/version", None).await.body["signing_kid"], new_kid);
    assert_eq!(app.state.metrics.key_reloads.with_label_values(&["failure"]).get(), 1);
}

#[sqlx::test]
async fn periodic_and_sighup_reload_pick_up_a_new_key(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let reloader = auth_service::spawn_key_reloader(app.state.clone(), Duration::from_millis(200), cancel.clone());
    write_key(&app.keys_dir.path().join("signing.pem"), &test_key(2).0);
    let mut seen = String::new();
    for _ in 0..50 {
        seen = app.get("/version", None).await.body["signing_kid"]
            .as_str()
            .unwrap()
            .to_owned();
        if seen == test_key(2).1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, test_key(2).1, "the periodic reload picked up the new key");
    cancel.cancel();
    reloader.await.unwrap();

    // SIGHUP, with the periodic reload off.
    let cancel = tokio_util::sync::CancellationToken::new();
    let reloader = auth_service::spawn_key_reloader(app.state.clone(), Duration::ZERO, cancel.clone());
    tokio::time::sleep(Duration::from_millis(200)).await; // let the task install its SIGHUP handler
    write_key(&app.keys_dir.path().join("signing.pem"), &test_key(3).0);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..50 {
        seen = app.get("/version", None).await.body["signing_kid"]
            .as_str()
            .unwrap()
            .to_owned();
        if seen == test_key(3).1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, test_key(3).1, "SIGHUP reloaded the keys");
    cancel.cancel();
    reloader.await.unwrap();
}

#[sqlx::test]
async fn keys_load_from_a_json_document(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    let doc = serde_json::json!({
        "signing_key": test_key(2).0,
        "verify_keys": [common::public_pem(&test_key(0).0), test_key(1).0],
    });
    let file = dir.path().join("keyset.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    cfg.jwt_signing_key_file = None;
    cfg.jwt_verify_keys_dir = None;
    cfg.jwt_keyset_file = Some(file);
    let app = TestApp::from_config(pool, cfg, dir);
    assert_eq!(app.get("/version", None).await.body["signing_kid"], test_key(2).1);
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
}

#[sqlx::test]
async fn bad_key_configuration_names_the_variable(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.jwt_signing_key_file = Some(dir.path().join("missing.pem"));
    let err = auth_service::state::AppState::new(cfg, pool, Arc::new(auth_service::clock::SystemClock)).unwrap_err();
    assert!(format!("{err:#}").contains("JWT_SIGNING_KEY_FILE"), "{err:#}");
}

#[sqlx::test]
async fn fault_injection_fails_api_requests_only(pool: PgPool) {
    let app = TestApp::with(pool, |c| {
        c.enable_fault_injection = true;
        c.fault_error_rate = 1.0;
        c.fault_latency_ms = 10;
    })
    .await;
    let res = app.login("x@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.body["error"], "injected_fault");
    assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
    assert_eq!(app.get("/version", None).await.status, StatusCode::OK);
    assert_eq!(app.state.metrics.faults.with_label_values(&["error"]).get(), 1);
}

#[sqlx::test]
async fn fault_settings_without_the_flag_do_nothing(pool: PgPool) {
    let app = TestApp::with(pool, |c| c.fault_error_rate = 1.0).await;
    let res = app.register("flagless@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
}
