//! `weighted-proxy`: the sandbox's stand-in for one ALB's data plane. Splits requests between an ALB
//! forward rule's target groups by its weights, over each group's registered targets, both re-read from
//! the AWS API every second (see `dataplane::edge::run_alb`, which `edge` runs for the other ALBs).

use std::time::Duration;

use clap::Parser;
use dataplane::edge::{run_alb, AlbSpec};

#[derive(Parser)]
#[command(about = "Weighted HTTP proxy following an ALB forward rule's weights and targets (sandbox only)")]
struct Args {
    /// Listen address; loopback only.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The forward rule whose target-group weights split the traffic.
    #[arg(long)]
    rule_arn: String,
    /// The rule's region.
    #[arg(long, default_value = "eu-west-1")]
    region: String,
    /// A target group of the rule; repeat for each (the first serves until the rule is read).
    #[arg(long = "target-group", required = true)]
    target_groups: Vec<String>,
    /// Seconds between reads of the rule and the targets.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dataplane::init_logging();
    let args = Args::parse();
    if !args.listen.ip().is_loopback() || !(0.2..=60.0).contains(&args.interval) {
        tracing::error!("--listen must be on loopback and --interval between 0.2 and 60 seconds");
        return std::process::ExitCode::from(2);
    }
    let spec = AlbSpec {
        listen: args.listen,
        region: args.region,
        rule_arn: Some(args.rule_arn),
        target_groups: args.target_groups,
    };
    match run_alb(spec, Duration::from_secs_f64(args.interval)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}
