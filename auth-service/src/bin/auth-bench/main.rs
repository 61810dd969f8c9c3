//! Load generator for a running auth-service (`AUTH_URL`).
//!
//! In one run: the bare limits on this machine (`bare`: the Argon2id hash rate, JWT sign/verify rates, one
//! Redis round trip and one PostgreSQL commit), login throughput and p50/p95/p99 latency at increasing
//! concurrency, an open-loop login run at 80% of the peak rate (p99 goal), refresh throughput with its share
//! of HOT row updates, bearer-verified `GET /api/auth/me` throughput, the HTTP ceiling it is compared with
//! (`ceiling`), and each endpoint as a share of its limit. Prints a table to stdout and, with `--json FILE`
//! and `--markdown FILE`, writes the numbers for `cargo xtask bench auth`, which runs it twice: with
//! request logging off and at the production level (`--hot-path-only` the second time). Every phase has a
//! bounded duration and concurrency.
//!
//! The service under test must run with the login/refresh rate limits disabled (`RATE_LIMIT_*=0`), or the
//! phases measure 429s; those are counted and reported as errors.
//!
//! Exit codes: 0 done; 1 `--strict` and a goal was missed; 2 usage or runtime error.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::json;
use tokio::sync::Semaphore;

mod bare;
mod ceiling;
mod load;
mod report;

use bare::{hash_rate, jwt_rates, postgres_commits, redis_round_trips, table_updates};
use ceiling::ceiling_server;
use load::{alternating, closed_loop, step, Step};
use report::Report;

/// Benchmark a running auth-service.
#[derive(Debug, Parser)]
#[command(name = "auth-bench")]
struct Args {
    /// Base URL of the service.
    #[arg(long, env = "AUTH_URL")]
    url: String,
    /// Seconds per measured step.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Login concurrency levels, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    login_concurrency: Vec<usize>,
    /// Concurrency of the refresh phase.
    #[arg(long, default_value_t = 32)]
    refresh_concurrency: usize,
    /// Concurrency of the `/me` phase.
    #[arg(long, default_value_t = 64)]
    me_concurrency: usize,
    /// Accounts created for the login phases.
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// Threads for the bare hash-rate measurement (default: the service's default hasher, one fewer than
    /// the CPUs, at least one).
    #[arg(long)]
    hash_threads: Option<usize>,
    /// Skip the open-loop run at 80% of peak.
    #[arg(long)]
    skip_open_loop: bool,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Write the results as a Markdown fragment (machine, baselines, table, goals) to this file, for
    /// `cargo xtask bench auth` to put into BENCHMARKS.md.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
    /// Exit 1 when a goal is missed.
    #[arg(long)]
    strict: bool,
    /// The service's database: the bare PostgreSQL commit rate is measured on it, and the share of HOT
    /// updates of `refresh_tokens` read from its statistics.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// The service's Redis: the bare round-trip rate is measured on it.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Only the hot path: refresh, `/me` and the HTTP ceiling (no bare rates, no login steps), e.g. to
    /// run again against the service with other settings.
    #[arg(long)]
    hot_path_only: bool,
    /// Only the mixed step: a login burst beside `/me` (e.g. against a service with another
    /// `PASSWORD_HASH_CONCURRENCY`).
    #[arg(long, conflicts_with = "hot_path_only")]
    mixed_only: bool,
    /// Logins in flight during the mixed step (more than the hasher takes at once, so it stays busy).
    #[arg(long, default_value_t = 8)]
    mixed_login_concurrency: usize,
    /// `/me` calls in flight during the mixed step.
    #[arg(long, default_value_t = 16)]
    mixed_me_concurrency: usize,
}

struct Bench {
    client: reqwest::Client,
    url: String,
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

impl Bench {
    async fn register(&self, email: &str, password: &str) -> anyhow::Result<()> {
        let res = self
            .client
            .post(format!("{}/api/auth/register", self.url))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await?;
        if res.status() != reqwest::StatusCode::ACCEPTED {
            bail!(
                "register answered {}: {}",
                res.status(),
                res.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    async fn login(&self, email: &str, password: &str) -> anyhow::Result<Tokens> {
        self.tokens("login", json!({ "email": email, "password": password }))
            .await
    }

    async fn refresh(&self, token: &str) -> anyhow::Result<Tokens> {
        self.tokens("refresh", json!({ "refresh_token": token })).await
    }

    /// `POST /api/auth/{endpoint}` with `body`, and the tokens it answers.
    async fn tokens(&self, endpoint: &str, body: serde_json::Value) -> anyhow::Result<Tokens> {
        let res = self
            .client
            .post(format!("{}/api/auth/{endpoint}", self.url))
            .json(&body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("{endpoint} answered {}", res.status());
        }
        let body: serde_json::Value = res.json().await?;
        Ok(Tokens {
            access: body["access_token"].as_str().unwrap_or_default().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap_or_default().to_owned(),
        })
    }

    async fn me(&self, access: &str) -> anyhow::Result<()> {
        let res = self
            .client
            .get(format!("{}/api/auth/me", self.url))
            .bearer_auth(access)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("me answered {}", res.status());
        }
        let _ = res.bytes().await?;
        Ok(())
    }
}

/// The login steps' operation: each call logs in as the next of the accounts, in turn, so that every
/// account takes its share whatever the worker.
struct LoginsInTurn {
    bench: Arc<Bench>,
    users: Arc<Vec<String>>,
    next: std::sync::atomic::AtomicUsize,
}

impl LoginsInTurn {
    fn new(bench: Arc<Bench>, users: Arc<Vec<String>>) -> Arc<Self> {
        Arc::new(Self {
            bench,
            users,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    async fn next(&self) -> anyhow::Result<()> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.bench
            .login(&self.users[i % self.users.len()], PASSWORD)
            .await
            .map(|_| ())
    }
}

/// The mixed step: `login_concurrency` workers log in back to back, keeping the password hasher busy,
/// while `me_concurrency` workers call `/me` with `access`. `/me`'s latency beside the burst is what the
/// hasher's size (`PASSWORD_HASH_CONCURRENCY`) leaves of the service's responsiveness; the logins' rate
/// is what it costs.
async fn mixed(
    bench: Arc<Bench>,
    users: Arc<Vec<String>>,
    access: Arc<Vec<String>>,
    (login_concurrency, me_concurrency): (usize, usize),
    duration: Duration,
) -> [Step; 2] {
    eprintln!("mixed: login concurrency {login_concurrency}, /me concurrency {me_concurrency} ...");
    let turns = LoginsInTurn::new(bench.clone(), users);
    let logins = closed_loop("mixed_login", login_concurrency.max(1), duration, move |_| {
        let turns = turns.clone();
        async move { turns.next().await }
    });
    let me = closed_loop("mixed_me", me_concurrency.max(1), duration, move |i| {
        let (b, access) = (bench.clone(), access.clone());
        async move { b.me(&access[i % access.len()]).await }
    });
    let (logins, me) = tokio::join!(logins, me);
    [logins, me]
}

/// Issues logins at a fixed rate for `duration` (open loop, at most `cap` in flight); latency counts from
/// the scheduled start, so a stalled service is not hidden by the generator waiting for it.
async fn open_loop_logins(
    bench: Arc<Bench>,
    users: Arc<Vec<String>>,
    rate: f64,
    duration: Duration,
    cap: usize,
) -> Step {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let permits = Arc::new(Semaphore::new(cap));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0usize;
    let mut dropped = 0u64;
    loop {
        let scheduled = start + interval.mul_f64(n as f64);
        if scheduled >= start + duration {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            dropped += 1;
            n += 1;
            continue;
        };
        let (bench, users) = (bench.clone(), users.clone());
        let email = users[n % users.len()].clone();
        tasks.spawn(async move {
            let _permit = permit;
            let ok = bench.login(&email, PASSWORD).await.is_ok();
            (ok, scheduled.elapsed())
        });
        n += 1;
    }
    let mut lat = Vec::new();
    let mut errors = dropped;
    while let Some(Ok((ok, d))) = tasks.join_next().await {
        if ok {
            lat.push(d);
        } else {
            errors += 1;
        }
    }
    step("login_open_loop_80pct", cap, start.elapsed(), lat, errors)
}

const PASSWORD: &str = "benchmark passphrase for load";

/// Turns of `/me` and of the HTTP ceiling in their step (each turn a tenth of the step's duration).
const ALTERNATIONS: u32 = 10;

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let url = args.url.trim_end_matches('/').to_owned();
    let duration = Duration::from_secs(args.duration.max(1));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let bench = Arc::new(Bench {
        client,
        url: url.clone(),
    });
    let health = bench
        .client
        .get(format!("{url}/ready"))
        .send()
        .await
        .with_context(|| format!("cannot reach `{url}` (AUTH_URL)"))?;
    if !health.status().is_success() {
        bail!(
            "`{url}/ready` answered {}; start the service and wait until it is ready",
            health.status()
        );
    }

    let threads = args
        .hash_threads
        .unwrap_or_else(auth_service::config::default_hash_concurrency);
    let full = !args.hot_path_only && !args.mixed_only;
    let (mut hash_per_sec, mut jwt, mut limits) = (0.0, Vec::new(), Vec::new());
    if full {
        eprintln!("measuring bare Argon2id hash rate on {threads} threads ...");
        hash_per_sec = tokio::task::spawn_blocking(move || hash_rate(threads, duration)).await?;
        eprintln!("measuring bare sign and verify rates of each JWT algorithm on one thread ...");
        jwt = tokio::task::spawn_blocking(move || jwt_rates(Duration::from_secs(2))).await??;
        if let Some(redis_url) = &args.redis_url {
            eprintln!(
                "measuring one Redis round trip, concurrency {} ...",
                args.me_concurrency
            );
            limits.push(redis_round_trips(redis_url, args.me_concurrency.max(1), duration).await?);
        }
        if let Some(database_url) = &args.database_url {
            eprintln!(
                "measuring one PostgreSQL commit, concurrency {} ...",
                args.refresh_concurrency
            );
            limits.push(postgres_commits(database_url, args.refresh_concurrency.max(1), duration).await?);
        }
    }

    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let users: Vec<String> = (0..args.users.max(1))
        .map(|i| format!("bench-{}-{i}@example.com", &run_id[..12]))
        .collect();
    eprintln!("registering {} accounts ...", users.len());
    for email in &users {
        bench.register(email, PASSWORD).await?;
    }
    let users = Arc::new(users);

    let mut steps = Vec::new();
    let mut peak = 0.0f64;
    let concurrency = (args.mixed_login_concurrency, args.mixed_me_concurrency);
    if args.mixed_only {
        let mut access = Vec::new();
        for email in users.iter() {
            access.push(bench.login(email, PASSWORD).await?.access);
        }
        steps.extend(mixed(bench.clone(), users.clone(), Arc::new(access), concurrency, duration).await);
    }
    let hot_path = !args.mixed_only;
    let login_levels = if full { &args.login_concurrency[..] } else { &[] };
    for &c in login_levels {
        eprintln!("login, concurrency {c} ...");
        let turns = LoginsInTurn::new(bench.clone(), users.clone());
        let s = closed_loop("login", c, duration, move |_| {
            let turns = turns.clone();
            async move { turns.next().await }
        })
        .await;
        peak = peak.max(s.throughput);
        steps.push(s);
    }

    if full && !args.skip_open_loop && peak > 0.0 {
        let rate = peak * 0.8;
        eprintln!("login open loop at {rate:.1}/s (80% of peak) ...");
        steps.push(open_loop_logins(bench.clone(), users.clone(), rate, duration, 512).await);
    }

    let mut hot_updates = None;
    if hot_path {
        let (hot, updates, access) = hot_path_steps(&bench, &users, &args, cpus, duration).await?;
        steps.extend(hot);
        hot_updates = updates;
        if full {
            steps.extend(mixed(bench.clone(), users.clone(), access, concurrency, duration).await);
        }
    }

    let report = Report {
        url,
        cpu_model: cpu_model(),
        cpus,
        duration,
        full,
        threads,
        hash_per_sec,
        jwt,
        limits,
        steps,
        peak,
        hot_updates,
    };
    report.print();
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.markdown()).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(report.goals().iter().all(|g| g.1))
}

/// The hot path: refresh (with the share of its row updates that were HOT), `/me`, and the HTTP ceiling
/// driven the same way; returns the steps, the HOT share and `/me`'s access tokens.
async fn hot_path_steps(
    bench: &Arc<Bench>,
    users: &Arc<Vec<String>>,
    args: &Args,
    cpus: usize,
    duration: Duration,
) -> anyhow::Result<(Vec<Step>, Option<(i64, i64)>, Arc<Vec<String>>)> {
    let mut steps = Vec::new();
    eprintln!("refresh, concurrency {} ...", args.refresh_concurrency);
    let mut chains = Vec::new();
    for i in 0..args.refresh_concurrency.max(1) {
        chains.push(tokio::sync::Mutex::new(
            bench.login(&users[i % users.len()], PASSWORD).await?,
        ));
    }
    let chains = Arc::new(chains);
    let (b, ch) = (bench.clone(), chains.clone());
    let updates_before = match &args.database_url {
        Some(url) => Some(table_updates(url, "refresh_tokens").await?),
        None => None,
    };
    steps.push(
        closed_loop("refresh", args.refresh_concurrency.max(1), duration, move |i| {
            let (b, ch) = (b.clone(), ch.clone());
            async move {
                let mut tokens = ch[i].lock().await;
                *tokens = b.refresh(&tokens.refresh).await?;
                Ok(())
            }
        })
        .await,
    );

    // The refresh step's share of HOT updates, once its backends have published their counts.
    let mut hot_updates = None;
    if let (Some(url), Some((updates, hot))) = (&args.database_url, updates_before) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (updates_after, hot_after) = table_updates(url, "refresh_tokens").await?;
        hot_updates = Some((updates_after - updates, hot_after - hot));
    }

    eprintln!(
        "me and the HTTP ceiling (a minimal handler) in turns, concurrency {} ...",
        args.me_concurrency
    );
    let mut access = Vec::new();
    for i in 0..args.me_concurrency.max(1) {
        let chain = chains[i % chains.len()].lock().await;
        access.push(chain.access.clone());
    }
    let access = Arc::new(access);
    let b = bench.clone();
    let me_access = access.clone();
    let me = move |i: usize| {
        let (b, access) = (b.clone(), me_access.clone());
        async move { b.me(&access[i]).await }
    };
    let ceiling_server = ceiling_server(cpus)?;
    let ceiling_access = access.clone();
    let ceiling_bench = Arc::new(Bench {
        client: bench.client.clone(),
        url: ceiling_server.url.clone(),
    });
    let ceiling = move |i: usize| {
        let (b, access) = (ceiling_bench.clone(), ceiling_access.clone());
        async move { b.me(&access[i]).await }
    };
    steps.extend(
        alternating(
            ("me", me),
            ("http_ceiling", ceiling),
            args.me_concurrency.max(1),
            duration,
            ALTERNATIONS,
        )
        .await,
    );
    drop(ceiling_server);
    Ok((steps, hot_updates, access))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let strict = args.strict;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if strict => ExitCode::from(1),
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
