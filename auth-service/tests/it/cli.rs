//! The built binary: `keygen`, configuration errors, and `serve` with a graceful shutdown.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use crate::common::{database_url, redis_url};

const BIN: &str = env!("CARGO_BIN_EXE_auth-service");

#[test]
fn keygen_writes_a_private_key_and_prints_its_thumbprint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.pem");
    let res = Command::new(BIN).args(["keygen", "--out"]).arg(&out).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let kid = String::from_utf8(res.stdout).unwrap().trim().to_owned();
    let pem = std::fs::read_to_string(&out).unwrap();
    assert!(
        pem.starts_with("alg: ES256\n-----BEGIN PRIVATE KEY-----"),
        "ES256 by default: {pem}"
    );
    let key = auth_service::keys::parse_private(&pem).unwrap();
    assert_eq!(kid, key.kid());
    // Every algorithm by name; an RSA key for PS256 says so in its PEM.
    for algorithm in ["EdDSA", "PS256", "RS256"] {
        let out = dir.path().join(format!("{algorithm}.pem"));
        let res = Command::new(BIN)
            .args(["keygen", "--algorithm", algorithm, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
        let key = auth_service::keys::parse_private(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(key.algorithm().name(), algorithm);
    }
    let res = Command::new(BIN)
        .args(["keygen", "--algorithm", "HS256", "--out"])
        .arg(dir.path().join("hs.pem"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("ES256, EdDSA, PS256 or RS256"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let again = Command::new(BIN).args(["keygen", "--out"]).arg(&out).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "never overwrites");
}

#[test]
fn invalid_configuration_exits_2_naming_the_variable() {
    let res = Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", "postgres://u@localhost/db")
        .env("REDIS_URL", "redis://localhost")
        .env("JWT_SIGNING_KEY_FILE", "/nonexistent")
        .env("SESSION_TIMEOUT_IDLE", "600")
        .env("SESSION_TIMEOUT_ABSOLUTE", "60")
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains("SESSION_TIMEOUT_ABSOLUTE"), "{stderr}");

    let res = Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", "postgres://u@localhost/db")
        .env("REDIS_URL", "redis://localhost")
        .env("PORT", "eighty")
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("PORT"));
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    Some(out)
}

fn http_post(port: u16, path: &str, body: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    Some(out)
}

/// `DATABASE_URL` pointed at the test's own database.
pub(crate) fn url_of(pool: &PgPool) -> String {
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let base = database_url();
    let (without_query, query) = base
        .split_once('?')
        .map(|(a, b)| (a.to_owned(), format!("?{b}")))
        .unwrap_or((base.clone(), String::new()));
    let (server, _) = without_query.rsplit_once('/').unwrap();
    format!("{server}/{db}{query}")
}

#[sqlx::test(migrations = false)]
async fn migrate_applies_the_schema_and_exits(pool: PgPool) {
    let res = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", url_of(&pool))
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for table in [
        "audit_logs",
        "consent_records",
        "device_fingerprints",
        "email_verification_tokens",
        "otp_codes",
        "password_history",
        "password_reset_tokens",
        "refresh_tokens",
        "users",
    ] {
        assert!(tables.iter().any(|t| t == table), "missing {table} in {tables:?}");
    }
    let again = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", url_of(&pool))
        .output()
        .unwrap();
    assert!(again.status.success(), "idempotent");
}

/// After a DR failover the URL in the replicated secret still names the old primary; `DATABASE_HOST`
/// (set by suma's repoint) is what moves the service to the promoted instance.
#[sqlx::test(migrations = false)]
async fn database_host_moves_the_connection_off_the_urls_host(pool: PgPool) {
    let real = pool.connect_options();
    let (host, port) = (real.get_host().to_owned(), real.get_port());
    // The URL's host is a port where no database listens, as a failed primary would be.
    let dead = url_of(&pool).replacen(&format!("@{host}:{port}/"), "@127.0.0.1:9/", 1);
    assert_ne!(dead, url_of(&pool), "the test URL names {host}:{port}");
    let without = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", &dead)
        .output()
        .unwrap();
    assert!(!without.status.success(), "the dead host alone cannot be reached");
    let moved = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", &dead)
        .env("DATABASE_HOST", format!("{host}:{port}"))
        .output()
        .unwrap();
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'users'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 1, "migrated through DATABASE_HOST");

    let bad = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", &dead)
        .env("DATABASE_HOST", "db.example:port")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && stderr.contains("DATABASE_HOST"), "{stderr}");
}

#[sqlx::test(migrations = false)]
async fn serve_migrates_answers_and_shuts_down_gracefully(pool: PgPool) {
    let url = url_of(&pool);

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, crate::common::test_key(0).0).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .env("DATABASE_URL", &url)
        .env("REDIS_URL", redis_url())
        .env("REDIS_KEY_PREFIX", format!("test:{}:", uuid::Uuid::new_v4().simple()))
        .env("JWT_SIGNING_KEY_FILE", &key)
        .env("BIND_ADDR", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("DEPLOYMENT_LABEL", "canary")
        .env("SERVICE_VERSION", "1.6.0-rc.1")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = None;
    for _ in 0..100 {
        if let Some(res) = http_get(port, "/ready") {
            ready = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = ready.expect("the service never answered");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let version = http_get(port, "/version").unwrap();
    assert!(version.contains("\"deployment\":\"canary\""), "{version}");
    assert!(
        version.contains("\"version\":\"1.6.0-rc.1\""),
        "the image tag is the release: {version}"
    );
    let health = Command::new(BIN)
        .arg("healthcheck")
        .env("PORT", port.to_string())
        .output()
        .unwrap();
    assert!(health.status.success(), "{}", String::from_utf8_lossy(&health.stderr));
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = Command::new(BIN)
        .args(["healthcheck", "--port", &dead_port.to_string(), "--timeout", "1"])
        .output()
        .unwrap();
    assert_eq!(
        dead.status.code(),
        Some(1),
        "unhealthy exits 1: {}",
        String::from_utf8_lossy(&dead.stderr)
    );
    let not_found = Command::new(BIN)
        .args(["healthcheck", "--port", &port.to_string(), "--path", "/no-such-path"])
        .output()
        .unwrap();
    assert_eq!(not_found.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&not_found.stderr).contains("404"),
        "names the status"
    );
    let password = "a secret passphrase that must never be logged";
    let body = format!(r#"{{"email":"logs@example.com","password":"{password}"}}"#);
    let res = http_post(port, "/api/auth/register", &body).unwrap();
    assert!(res.starts_with("HTTP/1.1 202"), "{res}");
    let res = http_post(port, "/api/auth/login", &body).unwrap();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let json: serde_json::Value = serde_json::from_str(res.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let refresh = json["refresh_token"].as_str().unwrap().to_owned();
    let access = json["access_token"].as_str().unwrap().to_owned();
    let res = http_post(
        port,
        "/api/auth/refresh",
        &format!(r#"{{"refresh_token":"{refresh}"}}"#),
    )
    .unwrap();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("did not stop on SIGTERM; log:\n{stderr}")
    });
    assert!(status.success(), "exit {status}; log:\n{stderr}");
    // Logs are JSON lines.
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    assert!(stderr.contains("shutdown requested"));
    for secret in [password, refresh.as_str(), access.as_str()] {
        assert!(!stderr.contains(secret), "a secret reached the log:\n{stderr}");
    }
    assert!(
        stderr.contains("/api/auth/login"),
        "requests are logged (debug level):\n{stderr}"
    );
}
