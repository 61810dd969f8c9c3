//! `weighted-proxy`: the sandbox's stand-in for the ALB's data plane. Splits requests between target
//! groups' upstreams by the weights of an ALB forward rule, re-read from the AWS API every second.

use std::time::Duration;

use clap::Parser;
use dataplane::proxy::{log_counters, watch_targets, watch_weights, AlbRule, Proxy, Upstream};

#[derive(Parser)]
#[command(about = "Weighted HTTP proxy following an ALB forward rule's weights (sandbox only)")]
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
    /// TARGET_GROUP_ARN=URL: a target group served by one fixed URL; repeat for each.
    #[arg(long = "upstream", value_parser = Upstream::parse)]
    upstreams: Vec<Upstream>,
    /// A target group whose registered targets serve it, re-read every interval; repeat for each.
    #[arg(long = "target-group")]
    target_groups: Vec<String>,
    /// Seconds between reads of the rule.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dataplane::init_logging();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !args.listen.ip().is_loopback() {
        return Err(format!("--listen {}: loopback only", args.listen));
    }
    if !(0.2..=60.0).contains(&args.interval) {
        return Err("--interval must be between 0.2 and 60 seconds".to_owned());
    }
    // AWS_ENDPOINT_URL (moto) and the credentials come from the environment.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(args.region.clone()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(2))
                .build(),
        )
        .load()
        .await;
    let source = AlbRule {
        client: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
        rule_arn: args.rule_arn.clone(),
    };
    let mut upstreams = args.upstreams;
    upstreams.extend(args.target_groups.iter().map(|arn| Upstream::target_group(arn)));
    if upstreams.is_empty() {
        return Err("name the rule's target groups with --target-group or --upstream".to_owned());
    }
    // The first one serves until the rule is read.
    let initial = (0..upstreams.len()).map(|i| u32::from(i == 0)).collect();
    let proxy = Proxy::new(upstreams, initial);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(
        listen = %args.listen,
        rule = %args.rule_arn,
        upstreams = %proxy
            .upstreams()
            .iter()
            .map(|u| format!("{}={:?}", u.name(), u.targets().iter().map(|t| t.authority().to_owned()).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
            .join(" "),
        "proxy listening"
    );
    tokio::spawn(watch_targets(
        proxy.clone(),
        source.client.clone(),
        args.target_groups.clone(),
        Duration::from_secs_f64(args.interval),
    ));
    tokio::spawn(watch_weights(
        proxy.clone(),
        source,
        Duration::from_secs_f64(args.interval),
    ));
    tokio::spawn(log_counters(proxy.clone(), Duration::from_secs(10)));
    proxy.serve(listener).await.map_err(|e| format!("serving: {e}"))
}
