//! The sandbox's data plane, so what ships runs for real on one machine: an ECS agent that runs moto's
//! services as `auth-service` processes (and the overlay that shows suma their counts and rollouts), a
//! weighted HTTP proxy standing in for the ALB (it follows the forward rule's weights and target groups
//! read from the AWS API), a steady, rate-bounded load generator, a Datadog API stand-in that records
//! events, and a fault proxy in front of moto. All talk to loopback only. The binaries in `src/bin/` only
//! parse flags and boot.

pub mod aws_faults;
pub mod aws_forward;
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
