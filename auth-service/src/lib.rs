//! auth-service: accounts, login, tokens and sessions for suma's fintech customers.
//!
//! The binary's `main` parses the command line and calls [`run`]. `serve` connects PostgreSQL and Redis,
//! loads the JWT keys, applies migrations (unless told not to), starts the key reloader (SIGHUP and
//! periodic) and serves HTTP until SIGTERM or Ctrl-C, then drains in-flight requests.

pub mod breach;
pub mod clock;
pub mod config;
pub mod database;
pub mod http;
pub mod keys;
pub mod keys_aws;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod password;
pub mod reset_tokens;
pub mod state;
pub mod store;
pub mod tokens;
pub mod totp;
pub mod totp_seal;
pub mod verified;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

use crate::config::{Command, Config, KeygenArgs, MigrateArgs};
use crate::state::AppState;
use crate::store::Db;

/// A small pool for a one-shot command (`migrate`, `purge`, `audit verify`).
async fn connect_for_a_command(database: &crate::database::DatabaseTarget) -> anyhow::Result<sqlx::PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(database.connect_options()?)
        .await
        .context("cannot connect to the database (`DATABASE_URL`, `DATABASE_HOST`)")
}

/// Runs a subcommand to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(config) => serve(*config).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Keygen(args) => keygen(args),
        Command::Purge(args) => purge(args).await,
        Command::Healthcheck(args) => healthcheck(args).await,
        Command::Audit(args) => match args.command {
            crate::config::AuditCommand::Verify(args) => audit_verify(args).await,
        },
    }
}

/// `auth-service audit verify`: the chain's verification as JSON on stdout; an error (exit 1) when broken.
async fn audit_verify(args: crate::config::AuditVerifyArgs) -> anyhow::Result<()> {
    let pool = connect_for_a_command(&args.database).await?;
    let report = Db::new(pool)
        .verify_audit()
        .await
        .context("cannot read the audit log")?;
    println!("{}", serde_json::to_string(&report)?);
    match &report.first_break {
        None => Ok(()),
        Some(at) => anyhow::bail!(
            "the audit chain is broken at position {} (record `{}`): {}\nhint: restore `audit_logs` from a backup taken before that record, and investigate who wrote to the database",
            at.chain_index,
            at.record_id,
            at.reason
        ),
    }
}

/// The database's upkeep until cancelled: links newly appended audit records into the hash chain every
/// second (and once more when cancelled), and prunes long-expired refresh tokens every minute.
pub fn spawn_housekeeping(state: AppState, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seal = tokio::time::interval(Duration::from_secs(1));
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    seal_audit(&state).await;
                    return;
                }
                _ = seal.tick() => seal_audit(&state).await,
                _ = prune.tick() => prune_refresh_tokens(&state).await,
            }
        }
    })
}

/// How long a refresh token's row outlives its expiry: long enough that a client presenting a token that
/// just expired is told so in the audit log with its account ("revoked_or_expired"), not as an unknown
/// token; no longer, so that the table holds about one token lifetime of rotations.
pub const REFRESH_TOKEN_ROW_MARGIN: chrono::Duration = chrono::Duration::days(1);

/// Deletes the rows of refresh tokens that expired more than [`REFRESH_TOKEN_ROW_MARGIN`] ago, a batch at
/// a time.
pub async fn prune_refresh_tokens(state: &AppState) {
    let before = state.now() - REFRESH_TOKEN_ROW_MARGIN;
    in_batches(
        5_000,
        &state.metrics.refresh_tokens_pruned,
        "prune expired refresh tokens",
        |batch| state.db.prune_refresh_tokens(before, batch),
    )
    .await
}

/// Seals every unsealed audit record, a batch at a time.
pub async fn seal_audit(state: &AppState) {
    in_batches(1_000, &state.metrics.audit_sealed, "seal the audit log", |batch| {
        state.db.seal_audit(batch)
    })
    .await
}

/// Runs `step` (which handles up to `batch` rows and says how many) until a batch comes back short,
/// counting the rows in `counter`; a failure is logged ("cannot {what}") and left to the next tick.
async fn in_batches<F, Fut>(batch: i64, counter: &prometheus::IntCounter, what: &str, step: F)
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    loop {
        match step(batch).await {
            Ok(done) => {
                counter.inc_by(done);
                if done < batch as u64 {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot {what}; the next tick tries again");
                return;
            }
        }
    }
}

/// `auth-service healthcheck`: one HTTP/1.1 GET on loopback, written by hand so that the container
/// health check needs nothing but this binary (a distroless image has no shell, curl or wget).
async fn healthcheck(args: crate::config::HealthcheckArgs) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ip = match args.bind_addr {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let address = SocketAddr::new(ip, args.port);
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("nothing listens on {address}"))?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
            args.path
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await?;
        let line = String::from_utf8_lossy(&head[..n]);
        let status = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        anyhow::Ok(status)
    };
    let status = tokio::time::timeout(Duration::from_secs(args.timeout), probe)
        .await
        .with_context(|| format!("GET {} did not answer within {} s", args.path, args.timeout))??;
    if status == "200" {
        Ok(())
    } else {
        anyhow::bail!("GET {} on {address} answered `{status}`, not 200", args.path)
    }
}

async fn purge(args: crate::config::PurgeArgs) -> anyhow::Result<()> {
    let pool = connect_for_a_command(&args.database).await?;
    let before = chrono::Utc::now() - chrono::Duration::days(i64::from(args.retention_days));
    let purged = Db::new(pool)
        .purge_deleted(before, crate::http::auth::account_key)
        .await
        .context("cannot purge erased accounts")?;
    tracing::info!(purged, retention_days = args.retention_days, "erased accounts purged");
    println!("{purged}");
    Ok(())
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let pool = connect_for_a_command(&args.database).await?;
    Db::new(pool).migrate().await.context("cannot apply migrations")?;
    tracing::info!("migrations applied");
    Ok(())
}

fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    if args.algorithm.rsa() && ![2048, 3072, 4096].contains(&args.bits) {
        anyhow::bail!("`--bits` must be 2048, 3072 or 4096, not {}", args.bits);
    }
    let key = keys::generate(args.algorithm, args.bits).map_err(keys::KeyError::Generate)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&args.out).with_context(|| {
        format!(
            "cannot create `{}`\nhint: keygen never overwrites a key; choose a new file",
            args.out.display()
        )
    })?;
    file.write_all(key.pem.as_bytes())
        .with_context(|| format!("cannot write `{}`", args.out.display()))?;
    // The kid is data for scripts: stdout, alone on its line.
    println!("{}", key.kid);
    Ok(())
}

/// Reloads the keys on SIGHUP and every `interval` (if non-zero) until cancelled.
pub fn spawn_key_reloader(
    state: AppState,
    interval: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; key reload only periodic");
                None
            }
        };
        let period = if interval.is_zero() {
            Duration::from_secs(86_400 * 365)
        } else {
            interval
        };
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            #[cfg(unix)]
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup_recv = std::future::pending::<Option<()>>();
            let trigger = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick(), if !interval.is_zero() => "periodic",
                _ = hup_recv => "sighup",
            };
            reload_keys(&state, trigger).await;
        }
    })
}

/// Reloads the keys once, logging and counting the outcome.
pub async fn reload_keys(state: &AppState, trigger: &'static str) {
    match state.keys.reload().await {
        Ok(outcome) => {
            state.metrics.key_reloads.with_label_values(&["success"]).inc();
            if outcome.changed {
                tracing::info!(trigger, signing_kid = %outcome.signing_kid, "JWT keys reloaded with changes");
            } else {
                tracing::debug!(trigger, "JWT keys reloaded, unchanged");
            }
        }
        Err(e) => {
            state.metrics.key_reloads.with_label_values(&["failure"]).inc();
            tracing::error!(
                trigger,
                error = format!("{:#}", anyhow::Error::new(e)),
                "JWT key reload failed; keeping the current keys"
            );
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    if config.enable_fault_injection {
        tracing::warn!(
            error_rate = config.fault_error_rate,
            latency_ms = config.fault_latency_ms,
            "fault injection enabled"
        );
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(config.database.connect_options()?);
    if config.migrate_on_start {
        Db::new(pool.clone())
            .migrate()
            .await
            .context("cannot apply migrations at start\nhint: check `DATABASE_URL`, or run `auth-service migrate` separately and set MIGRATE_ON_START=false")?;
    }
    let addr = SocketAddr::new(config.bind_addr, config.port);
    let reload_every = Duration::from_secs(config.jwt_keys_reload_interval);
    let shutdown_timeout = Duration::from_secs(config.shutdown_timeout);
    let keys = keys::KeyStore::open(config.key_source()?)
        .await
        .context("cannot load the JWT keys")?;
    let state = AppState::with_keys(config, pool.clone(), Arc::new(clock::SystemClock), keys)?;
    tracing::info!(
        %addr,
        deployment = %state.config.deployment_label,
        environment = %state.config.app_env,
        signing_kid = %state.keys.current().signing_kid(),
        "starting auth-service"
    );

    let cancel = CancellationToken::new();
    let reloader = spawn_key_reloader(state.clone(), reload_every, cancel.clone());
    let housekeeping = spawn_housekeeping(state.clone(), cancel.clone());
    let app = http::router(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on `{addr}` (BIND_ADDR, PORT)"))?;

    let shutdown = cancel.clone();
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(
        async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested; draining in-flight requests");
            shutdown.cancel();
        },
    );
    let server = tokio::spawn(async move { server.await });
    cancel.cancelled().await;
    match tokio::time::timeout(shutdown_timeout, server).await {
        Ok(result) => result.context("server task failed")?.context("server failed")?,
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within SHUTDOWN_TIMEOUT; exiting")
        }
    }
    let _ = reloader.await;
    let _ = housekeeping.await;
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
