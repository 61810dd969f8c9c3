//! `loadgen`: a steady, rate-bounded load on the service's API through the sandbox's proxy.

use std::time::Duration;

use clap::Parser;
use dataplane::loadgen::{run, Config};

#[derive(Parser)]
#[command(about = "Steady load on auth-service's /api (sandbox only, loopback only)")]
struct Args {
    /// The service, usually through the weighted proxy.
    #[arg(long, env = "AUTH_URL")]
    url: reqwest::Url,
    /// Requests per second (at most 200).
    #[arg(long, default_value_t = 40.0)]
    rate: f64,
    /// Accounts registered at start.
    #[arg(long, default_value_t = 8)]
    users: usize,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    duration: Option<u64>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dataplane::init_logging();
    let args = Args::parse();
    let config = Config {
        url: args.url,
        rate: args.rate,
        users: args.users,
        max_in_flight: args.max_in_flight,
        duration: args.duration.map(Duration::from_secs),
    };
    match run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}
