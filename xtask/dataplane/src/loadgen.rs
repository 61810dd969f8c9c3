//! A steady load on the service's API, bounded in rate: a few accounts registered at start, then mostly
//! `GET /api/auth/me` with valid bearer tokens, some refreshes and some logins. Every request is valid, so
//! in a healthy deployment every answer is 2xx and errors in the metrics come from faults only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{Mutex, Semaphore};

/// The highest rate the generator accepts: it is a steady background load, not a benchmark.
pub const MAX_RATE: f64 = 200.0;

#[derive(Debug, Clone)]
pub struct Config {
    /// The service (through the proxy); loopback only.
    pub url: reqwest::Url,
    /// Requests per second.
    pub rate: f64,
    /// Accounts registered at start.
    pub users: usize,
    /// Requests in flight at most; a tick that finds them all busy is skipped, so the rate stays bounded.
    pub max_in_flight: usize,
    /// Stop after this long; `None` runs until the process is killed.
    pub duration: Option<Duration>,
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if !crate::is_loopback_url(&self.url) {
            return Err(format!("`{}` is not on loopback", self.url));
        }
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(format!("the rate must be in (0, {MAX_RATE}] requests per second"));
        }
        if self.users == 0 || self.max_in_flight == 0 {
            return Err("users and max in flight must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// What one tick sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Me,
    Refresh,
    Login,
}

impl Op {
    /// 90% `/me`, 7% refresh, 3% login: logins (Argon2id) stay rare enough not to set the p95.
    pub fn pick(roll: u64) -> Self {
        match roll % 100 {
            0..=89 => Self::Me,
            90..=96 => Self::Refresh,
            _ => Self::Login,
        }
    }
}

/// SplitMix64: a small, seedable generator, enough to pick operations and accounts.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A seed that differs between runs.
    pub fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self::new(nanos ^ u64::from(std::process::id()).rotate_left(32))
    }
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

struct User {
    email: String,
    password: String,
    /// Held across a refresh or login, so one account never rotates its tokens twice at once.
    tokens: Mutex<Option<Tokens>>,
}

#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    unreachable: AtomicU64,
    skipped: AtomicU64,
}

impl Stats {
    fn record(&self, outcome: &Result<reqwest::StatusCode, reqwest::Error>) {
        let counter = match outcome {
            Ok(s) if s.is_server_error() => &self.server_errors,
            Ok(s) if s.is_client_error() => &self.client_errors,
            Ok(_) => &self.ok,
            Err(_) => &self.unreachable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> [u64; 5] {
        [
            &self.ok,
            &self.client_errors,
            &self.server_errors,
            &self.unreachable,
            &self.skipped,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

struct Load {
    client: reqwest::Client,
    base: reqwest::Url,
    users: Vec<User>,
    stats: Stats,
}

/// Registers the accounts, then sends `config.rate` requests per second until `config.duration` ends
/// (or forever).
pub async fn run(config: Config) -> Result<(), String> {
    config.validate()?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut rng = SplitMix64::from_clock();
    let run_id = format!("{:08x}", rng.next_u64() as u32);
    let users = (0..config.users)
        .map(|i| User {
            email: format!("loadgen-{run_id}-{i}@example.com"),
            // Fresh per run; nothing secret is fixed in the repository.
            password: format!("steady load {:016x} {i}", rng.next_u64()),
            tokens: Mutex::new(None),
        })
        .collect();
    let load = Arc::new(Load {
        client,
        base: config.url.clone(),
        users,
        stats: Stats::default(),
    });
    load.register_all().await;
    tracing::info!(
        users = config.users,
        rate = config.rate,
        url = %config.url,
        "accounts ready; sending steady load"
    );

    let reporter = tokio::spawn(report(load.clone(), Duration::from_secs(10)));
    let limit = Arc::new(Semaphore::new(config.max_in_flight));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rate));
    // Never catch up with a burst after a stall: the rate is an upper bound.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = config.duration.map(|d| tokio::time::Instant::now() + d);
    loop {
        ticker.tick().await;
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            load.stats.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let op = Op::pick(rng.next_u64());
        let user = (rng.next_u64() % load.users.len() as u64) as usize;
        let load = load.clone();
        tokio::spawn(async move {
            load.send(op, user).await;
            drop(permit);
        });
    }
    reporter.abort();
    let [ok, client_errors, server_errors, unreachable, skipped] = load.stats.snapshot();
    tracing::info!(ok, client_errors, server_errors, unreachable, skipped, "done");
    Ok(())
}

impl Load {
    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    /// Registers and logs in every account, retrying while the service is starting or failing.
    async fn register_all(&self) {
        for user in &self.users {
            let body = json!({ "email": user.email, "password": user.password });
            let mut attempt = 0u32;
            loop {
                let sent = self
                    .client
                    .post(self.url("/api/auth/register"))
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => break,
                    other => {
                        attempt += 1;
                        if attempt % 10 == 1 {
                            tracing::warn!(email = %user.email, answer = ?other.map(|r| r.status()), "registration failed; retrying");
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        for i in 0..self.users.len() {
            while self.users[i].tokens.lock().await.is_none() {
                self.login(i).await;
                if self.users[i].tokens.lock().await.is_none() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn send(&self, op: Op, user: usize) {
        match op {
            Op::Me => self.me(user).await,
            Op::Refresh => self.refresh(user).await,
            Op::Login => self.login(user).await,
        }
    }

    async fn me(&self, i: usize) {
        let access = self.users[i].tokens.lock().await.as_ref().map(|t| t.access.clone());
        let Some(access) = access else {
            return self.login(i).await;
        };
        let sent = self
            .client
            .get(self.url("/api/auth/me"))
            .bearer_auth(&access)
            .send()
            .await;
        let outcome = sent.map(|r| r.status());
        self.stats.record(&outcome);
        if outcome.is_ok_and(|s| s == reqwest::StatusCode::UNAUTHORIZED) {
            // Expired or ended session: the next request for this account logs in again.
            let mut tokens = self.users[i].tokens.lock().await;
            if tokens.as_ref().is_some_and(|t| t.access == access) {
                *tokens = None;
            }
        }
    }

    async fn refresh(&self, i: usize) {
        let mut tokens = self.users[i].tokens.lock().await;
        let Some(current) = tokens.clone() else {
            drop(tokens);
            return self.login(i).await;
        };
        let sent = self
            .client
            .post(self.url("/api/auth/refresh"))
            .json(&json!({ "refresh_token": current.refresh }))
            .send()
            .await;
        match sent {
            Ok(r) => {
                let status = r.status();
                self.stats.record(&Ok(status));
                if status.is_success() {
                    *tokens = token_pair(r).await;
                } else if status.is_client_error() {
                    *tokens = None;
                }
            }
            Err(e) => self.stats.record(&Err(e)),
        }
    }

    async fn login(&self, i: usize) {
        let user = &self.users[i];
        let mut tokens = user.tokens.lock().await;
        let sent = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&json!({ "email": user.email, "password": user.password }))
            .send()
            .await;
        match sent {
            Ok(r) => {
                let status = r.status();
                self.stats.record(&Ok(status));
                if status.is_success() {
                    if let Some(pair) = token_pair(r).await {
                        *tokens = Some(pair);
                    }
                } else if status == reqwest::StatusCode::UNAUTHORIZED {
                    // The account is gone (a fresh database): register it again; the next login works.
                    let body = json!({ "email": user.email, "password": user.password });
                    let sent = self
                        .client
                        .post(self.url("/api/auth/register"))
                        .json(&body)
                        .send()
                        .await;
                    self.stats.record(&sent.map(|r| r.status()));
                }
            }
            Err(e) => self.stats.record(&Err(e)),
        }
    }
}

async fn token_pair(answer: reqwest::Response) -> Option<Tokens> {
    let body: Value = answer.json().await.ok()?;
    Some(Tokens {
        access: body.get("access_token")?.as_str()?.to_owned(),
        refresh: body.get("refresh_token")?.as_str()?.to_owned(),
    })
}

async fn report(load: Arc<Load>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let mut last = load.stats.snapshot();
    loop {
        ticker.tick().await;
        let now = load.stats.snapshot();
        let d: Vec<u64> = now.iter().zip(&last).map(|(n, l)| n - l).collect();
        tracing::info!(
            seconds = every.as_secs(),
            ok = d[0],
            client_errors = d[1],
            server_errors = d[2],
            unreachable = d[3],
            skipped = d[4],
            "load"
        );
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_mostly_me() {
        let mut rng = SplitMix64::new(7);
        let ops: Vec<Op> = (0..10_000).map(|_| Op::pick(rng.next_u64())).collect();
        let share = |op| ops.iter().filter(|&&o| o == op).count() as f64 / ops.len() as f64;
        assert!((share(Op::Me) - 0.90).abs() < 0.02);
        assert!((share(Op::Refresh) - 0.07).abs() < 0.01);
        assert!((share(Op::Login) - 0.03).abs() < 0.01);
    }

    #[test]
    fn configuration_is_bounded_and_loopback_only() {
        let ok = Config {
            url: "http://127.0.0.1:1".parse().unwrap(),
            rate: 40.0,
            users: 4,
            max_in_flight: 16,
            duration: None,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            Config {
                url: "http://203.0.113.9:80".parse().unwrap(),
                ..ok.clone()
            },
            Config {
                rate: 0.0,
                ..ok.clone()
            },
            Config {
                rate: 10_000.0,
                ..ok.clone()
            },
            Config { users: 0, ..ok.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
