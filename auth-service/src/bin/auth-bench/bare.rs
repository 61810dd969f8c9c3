//! The bare limits the endpoints are compared with, measured in the same run: Argon2id hashes per second
//! on the hashing threads, access-token signatures and verifications per second of each algorithm on one
//! thread, with the service's own code, and one Redis round trip and one PostgreSQL commit, driven the
//! way the endpoints are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::Step;

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
    let rules = auth_service::tokens::JwtRules::new("bench", "bench", 900, 5);
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

/// One Redis round trip (`PING` on one multiplexed connection, as the service's connection manager
/// uses), `concurrency` at a time for `duration`: the ceiling of an endpoint that makes one round trip.
pub(crate) async fn redis_round_trips(url: &str, concurrency: usize, duration: Duration) -> anyhow::Result<Step> {
    let client = redis::Client::open(url).context("invalid Redis URL")?;
    let connection = client
        .get_connection_manager()
        .await
        .context("cannot connect to Redis")?;
    Ok(crate::closed_loop("redis_round_trip", concurrency, duration, move |_| {
        let mut connection = connection.clone();
        async move {
            let _: String = redis::cmd("PING").query_async(&mut connection).await?;
            Ok(())
        }
    })
    .await)
}

/// One PostgreSQL commit (a one-row insert in its own transaction, into a table with a primary key),
/// `concurrency` at a time over a pool of that many connections for `duration`: the ceiling of an
/// endpoint that commits once.
pub(crate) async fn postgres_commits(url: &str, concurrency: usize, duration: Duration) -> anyhow::Result<Step> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(concurrency as u32)
        .connect(url)
        .await
        .context("cannot connect to PostgreSQL")?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_commits (id UUID PRIMARY KEY, at TIMESTAMPTZ NOT NULL)")
        .execute(&pool)
        .await?;
    let insert_pool = pool.clone();
    let step = crate::closed_loop("postgres_commit", concurrency, duration, move |_| {
        let pool = insert_pool.clone();
        async move {
            sqlx::query("INSERT INTO bench_commits (id, at) VALUES ($1, now())")
                .bind(uuid::Uuid::now_v7())
                .execute(&pool)
                .await?;
            Ok(())
        }
    })
    .await;
    sqlx::query("DROP TABLE bench_commits").execute(&pool).await?;
    pool.close().await;
    Ok(step)
}

/// Updates of `table` since the statistics were last read, and how many of them were HOT (the row
/// rewritten on its own page, no index touched). PostgreSQL publishes a backend's counts about once a
/// second, so a reading right after a step may miss its last second.
pub(crate) async fn table_updates(url: &str, table: &str) -> anyhow::Result<(i64, i64)> {
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .context("cannot connect to PostgreSQL")?;
    Ok(
        sqlx::query_as("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = $1")
            .bind(table)
            .fetch_optional(&mut connection)
            .await?
            .unwrap_or((0, 0)),
    )
}
