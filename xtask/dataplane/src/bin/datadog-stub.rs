//! `datadog-stub`: the sandbox's Datadog API stand-in (see `dataplane::datadog_stub`).

use clap::Parser;
use dataplane::datadog_stub::{router, Config};

#[derive(Parser)]
#[command(about = "A Datadog API stand-in on loopback: monitors, dashboards, events (sandbox only)")]
struct Args {
    /// Where to listen, e.g. `127.0.0.1:8125`.
    #[arg(long)]
    listen: std::net::SocketAddr,
    #[arg(long, env = "DD_API_KEY", hide_env_values = true)]
    api_key: String,
    #[arg(long, env = "DD_APP_KEY", hide_env_values = true)]
    app_key: String,
    /// A JSON array of monitors to answer `GET /api/v1/monitor` with (re-read on every request).
    #[arg(long)]
    monitors: std::path::PathBuf,
    /// Received events are appended here, one JSON object per line.
    #[arg(long)]
    events: std::path::PathBuf,
    /// A JSON array of dashboards [default: `datadog-dashboards.json` beside the monitors file]
    #[arg(long)]
    dashboards: Option<std::path::PathBuf>,
    /// Every write request is appended here [default: `datadog-writes.jsonl` beside the monitors file]
    #[arg(long)]
    writes: Option<std::path::PathBuf>,
    /// The sandbox's Prometheus: metric queries are answered from it (else with no series)
    #[arg(long)]
    prometheus: Option<String>,
    /// `ENV=CLUSTER`: the cluster an `env:ENV` tag selects (repeatable)
    #[arg(long = "env-cluster", value_name = "ENV=CLUSTER")]
    env_clusters: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dataplane::init_logging();
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!("datadog-stub: `--listen {}` is not a loopback address", args.listen);
        return std::process::ExitCode::from(2);
    }
    let beside = |name: &str| args.monitors.with_file_name(name);
    let dashboards_file = args
        .dashboards
        .clone()
        .unwrap_or_else(|| beside("datadog-dashboards.json"));
    let writes_file = args.writes.clone().unwrap_or_else(|| beside("datadog-writes.jsonl"));
    let app = router(Config {
        api_key: args.api_key,
        app_key: args.app_key,
        monitors_file: args.monitors,
        events_file: args.events,
        dashboards_file,
        writes_file,
        prometheus_url: args.prometheus,
        env_clusters: args
            .env_clusters
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(env, cluster)| (env.to_owned(), cluster.to_owned()))
            .collect(),
    });
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("datadog-stub: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(2);
        }
    };
    tracing::info!(listen = %args.listen, "Datadog stand-in ready");
    match axum::serve(listener, app).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("datadog-stub: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
