//! `aws-fault-proxy`: between suma and moto, answers a share of the requests with throttling, 500, 503,
//! a too-slow answer or a reset, from a seeded generator (sandbox only). `GET /__faults` counts them;
//! `GET /__calls` lists the IAM action of every request (with `--rate 0` it only records).

use std::time::Duration;

use clap::Parser;
use dataplane::aws_faults::{router, FaultProxy};

#[derive(Parser)]
#[command(about = "Fault-injecting proxy in front of moto (sandbox only)")]
struct Args {
    /// Listen address; loopback only.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// moto's URL.
    #[arg(long)]
    upstream: reqwest::Url,
    /// Share of requests that fail, 0 to 1.
    #[arg(long, default_value_t = 0.3)]
    rate: f64,
    /// Seed of the generator choosing which request fails and how.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long a slow answer takes; more than the client's operation timeout.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    slow: Duration,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dataplane::init_logging();
    let args = Args::parse();
    if !dataplane::is_loopback_url(&args.upstream) {
        tracing::error!("--upstream: loopback only");
        return std::process::ExitCode::from(2);
    }
    if !(0.0..=1.0).contains(&args.rate) {
        tracing::error!("--rate must be between 0 and 1");
        return std::process::ExitCode::from(2);
    }
    let listener = match dataplane::bind_loopback(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let proxy = FaultProxy::new(args.upstream, args.rate, args.seed, args.slow);
    match axum::serve(listener, router(proxy)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}
