//! `ecs-agent`: the sandbox's ECS agent and the overlay in front of moto (see `dataplane::ecs_agent`).
//! Prints the overlay's address on stdout once it listens; stops every task on SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use dataplane::ecs_agent::overlay::{router, Overlay};
use dataplane::ecs_agent::{Agent, AgentConfig, Snapshot};

#[derive(Parser)]
#[command(about = "Runs moto's ECS services as real auth-service processes on loopback (sandbox only)")]
struct Args {
    /// The overlay's listen address (AWS_ENDPOINT_URL for suma); loopback only.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// moto's URL.
    #[arg(long)]
    moto: reqwest::Url,
    /// A region to run services of; repeat for each.
    #[arg(long = "region", required = true)]
    regions: Vec<String>,
    /// A cluster whose services get real tasks (in every region); repeat for each.
    #[arg(long = "cluster", required = true)]
    clusters: Vec<String>,
    /// The auth-service binary every image runs.
    #[arg(long)]
    binary: PathBuf,
    /// Task logs and `scrape-targets.json` go here.
    #[arg(long)]
    dir: PathBuf,
    /// KEY=VALUE every task gets on top of its task definition; repeat for each.
    #[arg(long = "task-env", value_parser = parse_pair)]
    task_env: Vec<(String, String)>,
    /// SUFFIX=IP:PORT: a task's setting that names a host ending in SUFFIX (with or without a port) is
    /// handed to it as IP:PORT, as a VPC's DNS resolves an RDS endpoint; repeat for each.
    #[arg(long = "resolve", value_parser = dataplane::ecs_agent::task::HostRule::parse)]
    resolve: Vec<dataplane::ecs_agent::task::HostRule>,
    /// GROUP=IP:PORT: the sandbox Redis server standing for an ElastiCache replication group, whose
    /// AUTH token changes the overlay applies to it; repeat for each.
    #[arg(long = "redis-group", value_parser = dataplane::ecs_agent::redis_auth::parse_group)]
    redis_groups: Vec<(String, std::net::SocketAddr)>,
    /// USER:PASSWORD of the admin user the overlay signs in to those servers as.
    #[arg(long, env = "SANDBOX_REDIS_ADMIN", hide_env_values = true, default_value = "")]
    redis_admin: String,
    /// How long an RDS Multi-AZ failover the overlay passes on keeps the instance rebooting (one to two
    /// minutes on RDS).
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    rds_failover_time: std::time::Duration,
    /// The PostgreSQL client that promotes an instance's own server (see `POST /_agent/rds/bind`).
    #[arg(long, default_value = "psql")]
    psql: PathBuf,
    /// Time between container health checks.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    health_interval: Duration,
    /// Time between reads of moto.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dataplane::init_logging();
    let args = Args::parse();
    if !dataplane::is_loopback_url(&args.moto) {
        tracing::error!("--moto: loopback only");
        return std::process::ExitCode::from(2);
    }
    let listener = match dataplane::bind_loopback(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    let rds_servers = Arc::new(dataplane::ecs_agent::rds_servers::RdsServers::new(args.psql));
    let config = AgentConfig {
        moto: args.moto.clone(),
        regions: args.regions,
        clusters: args.clusters,
        binary: args.binary,
        dir: args.dir,
        task_env: args.task_env,
        hosts: args.resolve,
        rds_servers: rds_servers.clone(),
        health_interval: args.health_interval,
        interval: args.interval,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let agent = tokio::spawn(Agent::new(config, snapshot.clone()).await.run(stop.clone()));
    let overlay = Arc::new(Overlay {
        upstream: args.moto,
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a plain HTTP client"),
        snapshot,
        rds: dataplane::ecs_agent::rds_failover::Failovers::new(args.rds_failover_time),
        rds_servers,
        redis: {
            let (admin_user, admin_password) = args.redis_admin.split_once(':').unwrap_or_default();
            dataplane::ecs_agent::redis_auth::RedisGroups {
                groups: args.redis_groups.into_iter().collect(),
                admin_user: admin_user.to_owned(),
                admin_password: admin_password.to_owned(),
            }
        },
    });
    let shutdown = {
        let stop = stop.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            stop.cancel();
        }
    };
    let served = axum::serve(listener, router(overlay))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = agent.await;
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}
