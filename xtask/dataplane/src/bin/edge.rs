//! `edge`: the sandbox's load balancers and Route 53 front doors in one process (see `dataplane::edge`).
//! AWS_ENDPOINT_URL and the credentials come from the environment.

use std::time::Duration;

use clap::Parser;
use dataplane::edge::{run_alb, run_front_door, AlbSpec, FrontDoorSpec};

#[derive(Parser)]
#[command(about = "The sandbox's ALBs and DNS front doors (sandbox only)")]
struct Args {
    /// An ALB: LISTEN|REGION|RULE_ARN or -|TARGET_GROUP_ARN,...; repeat for each.
    #[arg(long = "alb", value_parser = AlbSpec::parse)]
    albs: Vec<AlbSpec>,
    /// A front door: LISTEN|HOSTED_ZONE_ID|RECORD_NAME|DNS_NAME=URL,...; repeat for each.
    #[arg(long = "front-door", value_parser = FrontDoorSpec::parse)]
    front_doors: Vec<FrontDoorSpec>,
    /// Time between reads of the AWS API.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dataplane::init_logging();
    let args = Args::parse();
    let mut served = tokio::task::JoinSet::new();
    for alb in args.albs {
        served.spawn(run_alb(alb, args.interval));
    }
    for door in args.front_doors {
        served.spawn(run_front_door(door, args.interval));
    }
    // Any listener that stops ends the process: the sandbox restarts it whole.
    match served.join_next().await {
        Some(Ok(Err(e))) => {
            tracing::error!("{e}");
            std::process::ExitCode::from(2)
        }
        Some(Err(e)) => {
            tracing::error!("{e}");
            std::process::ExitCode::from(2)
        }
        _ => std::process::ExitCode::SUCCESS,
    }
}
