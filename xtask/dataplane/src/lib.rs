//! The sandbox's data plane, so what ships runs for real on one machine: an ECS agent that runs moto's
//! services as `auth-service` processes (and the overlay that shows suma their counts and rollouts), a
//! weighted HTTP proxy standing in for the ALB (it follows the forward rule's weights and target groups
//! read from the AWS API), a steady, rate-bounded load generator, a Datadog API stand-in that records
//! events, and a fault proxy in front of moto. All talk to loopback only. The binaries in `src/bin/` only
//! parse flags and boot.

pub mod aws_faults;
pub mod aws_forward;
pub mod datadog_downtimes;
pub mod datadog_metrics;
pub mod datadog_slos;
pub mod datadog_stub;
pub mod ecs_agent;
pub mod edge;
pub mod loadgen;
pub mod proxy;
pub mod weights;

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// The AWS SDK's configuration for the data plane: `region`, moto's endpoint when given (else
/// `AWS_ENDPOINT_URL` and the credentials from the environment), `attempts` per call and an operation
/// timeout; the data plane reads every second, so a slow answer is dropped rather than waited for.
pub async fn aws_config(
    region: &str,
    endpoint: Option<&reqwest::Url>,
    attempts: u32,
    operation_timeout: std::time::Duration,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(1))
                .operation_timeout(operation_timeout)
                .build(),
        );
    if let Some(endpoint) = endpoint {
        loader = loader
            .endpoint_url(endpoint.as_str())
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "sandbox",
            ));
    }
    loader.load().await
}

/// Binds `addr`, which must be on loopback, and prints the bound address on stdout for whoever started
/// the process (a port of 0 picks a free one).
pub async fn bind_loopback(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, String> {
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: loopback only"));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("{}", listener.local_addr().map_err(|e| e.to_string())?);
    Ok(listener)
}

/// Whether `url` points at this machine's loopback; the data plane never talks to anything else.
pub fn is_loopback_url(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(url.scheme(), "http" | "https")
        && (host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_url;

    #[test]
    fn only_loopback_urls_are_accepted() {
        for ok in ["http://127.0.0.1:8080", "http://localhost:1/x", "http://[::1]:80/"] {
            assert!(is_loopback_url(&ok.parse().unwrap()), "{ok}");
        }
        for bad in ["http://10.0.0.1:8080", "http://example.com", "ftp://127.0.0.1/"] {
            assert!(!is_loopback_url(&bad.parse().unwrap()), "{bad}");
        }
    }
}
