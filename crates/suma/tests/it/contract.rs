//! suma and the service agree on what the service reads: rotations write values in the form each
//! consumer parses, the consumers pick them up by a redeploy, and a value they cannot use is put back.
//! Against the sandbox's real tasks (the ECS agent), under traffic through the front door.

use std::time::Duration;

use crate::common;
use crate::sandbox_agent::LoginTraffic;
use common::{run, sandbox_var, suma};
use suma::aws::secrets::{VersionRef, AWSCURRENT};

const DATABASE_URL_SECRET: &str = "/suma-finance/auth/staging/database-url";
const RESET_KEYS_SECRET: &str = "/suma-finance/auth/staging/reset-token-keys";
const TOTP_KEY_SECRET: &str = "/suma-finance/auth/staging/totp-encryption-key";
const REDIS_URL_SECRET: &str = "/suma-finance/auth/staging/redis-url";

async fn current(id: &str) -> String {
    let aws = common::sandbox_session().await;
    aws.secret_versions(&common::lock_region())
        .value(id, &VersionRef::Stage(AWSCURRENT))
        .await
        .unwrap()
        .expect("an AWSCURRENT version")
        .value
}

async fn staging_task_ids() -> Vec<String> {
    let tasks = crate::sandbox_agent::tasks_of("auth-service").await;
    tasks.iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
}

async fn connects(url: &str) -> Result<(), String> {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(url)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Rotates the staging secret `name` (`id`) under login traffic through the front door and checks what
/// every rotation of a value the tasks read at start must give: no failed request, and every task
/// replaced (so the tasks that answer afterwards started with the new value). The values before and after.
async fn rotate_under_traffic(name: &'static str, id: &str) -> (String, String) {
    let before = current(id).await;
    let tasks_before = staging_task_ids().await;
    let traffic = LoginTraffic::start().await;
    // Multi-threaded tests: the traffic keeps running while this waits for the `suma` process.
    let out = tokio::task::spawn_blocking(move || {
        run(suma(&[
            "secrets", "rotate", name, "--env", "staging", "--yes", "--output", "json",
        ]))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ok, failed, failures) = traffic.stop().await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(failed, 0, "{ok} logins answered, {failed} failed: {failures:?}");
    assert!(ok > 20, "the traffic ran throughout: {ok} logins");
    let after = current(id).await;
    assert_ne!(after, before);
    let tasks_after = staging_task_ids().await;
    assert!(
        tasks_after.iter().all(|t| !tasks_before.contains(t)),
        "every task was replaced: {tasks_before:?} -> {tasks_after:?}"
    );
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_url_rotation_under_login_traffic_fails_no_request_and_retires_the_old_password() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    connects(&current(DATABASE_URL_SECRET).await)
        .await
        .expect("the tasks' credentials work before");
    let (before, after) = rotate_under_traffic("database-url", DATABASE_URL_SECRET).await;
    assert!(
        after.starts_with("postgres://auth_staging:"),
        "the URL keeps its form: {after}"
    );
    connects(&after).await.expect("the new password works");
    let refused = connects(&before).await.expect_err("the old password is refused");
    assert!(refused.contains("password authentication failed"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_auth_rotation_under_login_traffic_fails_no_request_and_retires_the_old_token() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let signs_in = |url: String| async move {
        suma::secrets::redis_auth::sign_in(&url.parse().unwrap())
            .await
            .map_err(|e| e.to_string())
    };
    signs_in(current(REDIS_URL_SECRET).await)
        .await
        .expect("the tasks' token works before");
    // ElastiCache ROTATE adds the new token while the tasks still use the old one; SET, after every task
    // moved, leaves only the new one.
    let (before, after) = rotate_under_traffic("redis-url", REDIS_URL_SECRET).await;
    assert!(after.starts_with("redis://:"), "the URL keeps its form: {after}");
    signs_in(after).await.expect("the new token works");
    let refused = signs_in(before).await.expect_err("the old token is refused");
    assert!(refused.contains("WRONGPASS"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_the_consumers_cannot_parse_is_put_back_when_their_rollout_fails() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let before = current(RESET_KEYS_SECRET).await;
    // Declared `random`, the keyring would be replaced by a string the service refuses at start.
    let (dir, path, env) = common::staging_copy(
        serde_json::json!([{"id": RESET_KEYS_SECRET, "kind": "random", "consumers": ["auth-service"]}]),
    );
    let out = run(suma(&[
        "--config",
        path.to_str().unwrap(),
        "secrets",
        "rotate",
        "reset-token-keys",
        "--env",
        &env,
        "--yes",
        "--output",
        "json",
    ])
    .env("SUMA_STATE_DIR", dir.path()));
    assert_eq!(out.code, 1, "the rotation failed: {}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("circuit breaker") || out.stdout.contains("circuit breaker"),
        "{}",
        out.stderr
    );
    assert_eq!(
        current(RESET_KEYS_SECRET).await,
        before,
        "AWSCURRENT is back on the keyring"
    );
    // The consumers were redeployed on the previous value and serve again.
    let health = reqwest::get(format!("{}/ready", sandbox_var("AUTH_URL")))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Declared as what it is, it rotates: a new key first, the signer kept.
    let out = run(suma(&[
        "secrets",
        "rotate",
        "reset-token-keys",
        "--env",
        "staging",
        "--yes",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let after = current(RESET_KEYS_SECRET).await;
    let signer = before.split(',').next().unwrap();
    assert_eq!(after.split(',').nth(1), Some(signer), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_rotation_over_three_tasks_never_has_a_token_rejected_by_any_of_them() {
    crate::require_sandbox!();
    // The same order as the secrets tests: the signing key, then staging.
    let _signing_key = common::staging_signing_key();
    let _staging = common::staging_exclusive();
    crate::sandbox_agent::scale_staging(3).await;
    let base = sandbox_var("AUTH_URL");
    let (dir, path, env) = common::staging_copy(serde_json::json!([{
        "id": "/suma-finance/auth/staging/jwt-signing-key", "kind": "jwt-signing-key",
        "jwt": {"key_bits": 2048, "service_url": base, "issuer": sandbox_var("AUTH_JWT_ISSUER"),
                "audience": sandbox_var("AUTH_JWT_AUDIENCE"), "access_token_ttl": "8s", "clock_skew": "1s",
                "pickup_timeout": "60s"}
    }    ]));
    let http = reqwest::Client::new();
    let body = common::register_account(&http, &base, "jwt3").await;

    // Each token is used on three requests in a row: the ALB's round robin takes them to different tasks.
    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = {
        let (http, base, body, stop) = (http.clone(), base.clone(), body.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut rejected) = (0u32, Vec::new());
            while !stop.is_cancelled() {
                let login = common::login_json(&http, &base, &body).await;
                let token = login["access_token"].as_str().unwrap().to_owned();
                for _ in 0..3 {
                    let me = http
                        .get(format!("{base}/api/auth/me"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap();
                    match me.status().as_u16() {
                        200 => ok += 1,
                        status => rejected.push(format!("{status} from {:?}", me.headers().get("x-sandbox-upstream"))),
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (ok, rejected)
        })
    };
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = suma(&[
            "--config",
            path.to_str().unwrap(),
            "secrets",
            "rotate",
            "jwt-signing-key",
            "--env",
            &env,
            "--yes",
            "--output",
            "json",
        ]);
        cmd.env("SUMA_STATE_DIR", dir.path());
        run(cmd)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let (ok, rejected) = traffic.await.unwrap();
    crate::sandbox_agent::scale_staging(2).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        rejected.is_empty(),
        "tokens rejected during the rotation: {rejected:?} ({ok} accepted)"
    );
    assert!(ok > 30, "{ok} requests");
    let published = &common::json(&out)["rotations"][0]["operation"]["steps"][1]["facts"];
    assert_eq!(
        published["tasks_confirmed"], 3,
        "every running task was counted: {published}"
    );
    assert!(published["jwks_cache_age_waited_s"].as_u64().is_some(), "{published}");
}

/// RFC 4648 base32 without padding, as the service hands out TOTP secrets.
fn base32_decode(text: &str) -> Vec<u8> {
    let (mut bits, mut width, mut out) = (0u64, 0u32, Vec::new());
    for c in text.trim_end_matches('=').chars() {
        let value = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
            .find(c.to_ascii_uppercase())
            .expect("base32") as u64;
        bits = (bits << 5) | value;
        width += 5;
        if width >= 8 {
            width -= 8;
            out.push((bits >> width) as u8);
        }
    }
    out
}

/// The RFC 6238 code (HMAC-SHA-1, 6 digits, 30 s) of `secret` for the step `offset` steps from now.
fn totp_code(secret: &[u8], offset: i64) -> String {
    use aws_lc_rs::hmac;
    let step = (chrono::Utc::now().timestamp().div_euclid(30) + offset) as u64;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let at = (mac[mac.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([mac[at] & 0x7f, mac[at + 1], mac[at + 2], mac[at + 3]]);
    format!("{:06}", binary % 1_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_key_rotation_keeps_every_enrolled_second_factor_working() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let base = sandbox_var("AUTH_URL");
    let http = reqwest::Client::new();
    let body = common::register_account(&http, &base, "totp").await;
    common::verify_address(&http, &base, &body).await;
    let login = common::login_json(&http, &base, &body).await;
    let access = login["access_token"].as_str().expect("signed in").to_owned();
    let setup: serde_json::Value = http
        .post(format!("{base}/api/auth/2fa/totp/setup"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = base32_decode(setup["secret"].as_str().expect("a TOTP secret"));
    let confirm = http
        .post(format!("{base}/api/auth/2fa/totp/confirm"))
        .bearer_auth(&access)
        .json(&serde_json::json!({"code": totp_code(&secret, 0)}))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 200, "{}", confirm.text().await.unwrap());
    let before = current(TOTP_KEY_SECRET).await;
    let tasks_before = staging_task_ids().await;

    // The secret was sealed under the current key; the rotation makes a new one current.
    let (dir, path, env) = common::staging_copy(
        serde_json::json!([{"id": TOTP_KEY_SECRET, "kind": "totp-key", "consumers": ["auth-service"]}]),
    );
    let out = run(suma(&[
        "--config",
        path.to_str().unwrap(),
        "secrets",
        "rotate",
        "totp-encryption-key",
        "--env",
        &env,
        "--yes",
    ])
    .env("SUMA_STATE_DIR", dir.path()));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let after: serde_json::Value = serde_json::from_str(&current(TOTP_KEY_SECRET).await).unwrap();
    let old: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_ne!(after["current"], old["current"]);
    assert_eq!(
        after["previous"].as_str().unwrap().split(',').next(),
        old["current"].as_str(),
        "the old key still opens: {after}"
    );
    let tasks_after = staging_task_ids().await;
    assert!(
        tasks_after.iter().all(|t| !tasks_before.contains(t)),
        "every task was replaced and reads the new keys: {tasks_before:?} -> {tasks_after:?}"
    );

    // A new task opens the secret sealed under the old key: the second factor still signs in. The code
    // is the next step's, so it is newer than the one that confirmed the enrolment.
    let challenge = common::login_json(&http, &base, &body).await;
    assert_eq!(challenge["two_factor_required"], true, "{challenge}");
    let verified = http
        .post(format!("{base}/api/auth/2fa/verify"))
        .json(&serde_json::json!({"challenge_id": challenge["challenge_id"], "code": totp_code(&secret, 1)}))
        .send()
        .await
        .unwrap();
    let status = verified.status();
    let answer: serde_json::Value = verified.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer["access_token"].is_string(), "{answer}");
}
