//! The bare limits the endpoints are compared with, measured in the same run: Argon2id hashes per second
//! on the hashing threads, and access-token signatures and verifications per second of each algorithm on
//! one thread, with the service's own code.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bare Argon2id hashes per second with `threads` threads for `duration`.
pub(crate) fn hash_rate(threads: usize, duration: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = auth_service::password::hash_blocking("benchmark passphrase 123");
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// Bare sign and verify rates of access tokens (one thread each) with the service's own token code, for
/// each algorithm (RSA keys of 2048 bits).
pub(crate) fn jwt_rates(duration: Duration) -> anyhow::Result<Vec<JwtRate>> {
    auth_service::keys::Algorithm::ALL
        .into_iter()
        .map(|algorithm| jwt_rate(algorithm, duration))
        .collect()
}

/// What one algorithm signs and verifies per second on one thread.
pub(crate) struct JwtRate {
    pub(crate) algorithm: auth_service::keys::Algorithm,
    pub(crate) signs: f64,
    pub(crate) verifies: f64,
}

fn jwt_rate(algorithm: auth_service::keys::Algorithm, duration: Duration) -> anyhow::Result<JwtRate> {
    let key = auth_service::keys::generate(algorithm, 2048)?;
    let private = auth_service::keys::parse_private(&key.pem).map_err(anyhow::Error::msg)?;
    let set = auth_service::keys::KeySet::new(private, &[]).map_err(anyhow::Error::msg)?;
    let rules = auth_service::tokens::JwtRules {
        issuer: "bench".into(),
        audience: "bench".into(),
        ttl_secs: 900,
        leeway_secs: 5,
    };
    let (user, session) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let now = chrono::Utc::now();
    let start = Instant::now();
    let mut signed = 0u64;
    let mut token = String::new();
    while start.elapsed() < duration {
        token = auth_service::tokens::issue_access(&set, &rules, user, session, now)?.0;
        signed += 1;
    }
    let sign_rate = signed as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut verified = 0u64;
    while start.elapsed() < duration {
        auth_service::tokens::verify_access_uncached(&set, &rules, &token, now)?;
        verified += 1;
    }
    Ok(JwtRate {
        algorithm,
        signs: sign_rate,
        verifies: verified as f64 / start.elapsed().as_secs_f64(),
    })
}
