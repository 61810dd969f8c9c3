//! Datadog through `datadog-api-client`, the only crate that imports it, split by concern: [`metrics`]
//! (the queries that gate a canary, `/api/v1/query`), [`monitors`] (the monitors that must not be alerting
//! when a canary starts, those compliance requires, and those `suma monitors apply` manages,
//! `/api/v1/monitor`), [`downtimes`] (mute and unmute through v2 downtimes, `/api/v2/downtime`; the
//! old way's mutes are lifted over the same HTTP stack by hand), [`dashboards`] (`/api/v1/dashboard`),
//! [`slos`] (the service level objectives `suma slos apply` manages, `/api/v1/slo`) and
//! [`events`] (`/api/v1/events`). This file holds the client itself and the error plumbing they share.
//!
//! Monitors and dashboards cross this crate as JSON in the API's own shape ([`serde_json::Value`]), put
//! through the client's typed models on the way in and out ([`canonical_monitor`],
//! [`canonical_dashboard`]): what is compared is what the client would send and what it read back.
//!
//! The generated client keeps only the status and body of a failed response, but a 429's back-off lives in
//! its headers. `RateLimitHeaders`, a middleware on the client's own HTTP stack, reads them from the very
//! response the client received and turns the 429 into a typed error that `from_client` maps to
//! [`MetricError::RateLimited`].

pub mod dashboards;
pub mod downtimes;
pub mod events;
pub mod metrics;
pub mod monitors;
pub mod slos;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use datadog_api_client::datadog::{self, APIKey, Configuration};
use datadog_api_client::datadogV1::api_dashboards::DashboardsAPI;
use datadog_api_client::datadogV1::api_events::EventsAPI;
use datadog_api_client::datadogV1::api_metrics::MetricsAPI;
use datadog_api_client::datadogV1::api_monitors::MonitorsAPI;
use datadog_api_client::datadogV1::api_service_level_objectives::ServiceLevelObjectivesAPI;
use datadog_api_client::datadogV2::api_downtimes::DowntimesAPI;
use reqwest::header::HeaderMap;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use suma_core::config::DatadogConfig;
use suma_core::env_vars::SUMA_DATADOG_URL;
use suma_core::metrics::MetricError;
use suma_core::settings::EnvSource;

pub use dashboards::{canonical_dashboard, DashboardListing};
pub use downtimes::{MonitorRef, Mute, Unmute};
pub use events::EventAlert;
pub use monitors::{canonical_monitor, AlertingMonitor, MonitorSummary, RemoteMonitor};
pub use slos::{canonical_slo, RemoteSlo};

const PROVIDER: &str = "Datadog";
/// The API key, sent as `DD-API-KEY`.
pub const DD_API_KEY: &str = "DD_API_KEY";
/// The application key, sent as `DD-APPLICATION-KEY`; reading metrics and monitors needs one.
pub const DD_APP_KEY: &str = "DD_APP_KEY";

/// Upper bound on one API call. A canary tick asks several queries at once and must not hang on one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off when a 429 carries neither `X-RateLimit-Reset` nor a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);
const MONITOR_PAGE_SIZE: i32 = 100;
/// A runaway pager (a server ignoring `page`) stops here rather than looping forever.
const MAX_MONITOR_PAGES: i64 = 50;
/// Datadog rejects event texts longer than this.
const MAX_EVENT_TEXT: usize = 4000;

/// Why a [`Datadog`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatadogSetupError {
    #[error(
        "`{0}` is not set: the Datadog metric provider needs an API key and an application key\nhint: export `DD_API_KEY` and `DD_APP_KEY` (Datadog: Organization Settings > API Keys, Application Keys)"
    )]
    MissingKey(&'static str),
    #[error("`{0}` is not a usable Datadog key: it must be printable ASCII without spaces")]
    BadKey(&'static str),
    #[error("`{SUMA_DATADOG_URL}` is `{0}`: expected `http://HOST[:PORT]` or `https://HOST[:PORT]`")]
    BadBaseUrl(String),
    #[error("Datadog site `{0}` is not a host name\nhint: use the site alone, e.g. `datadoghq.com` or `datadoghq.eu`")]
    BadSite(String),
}

/// The Datadog API of one site (or of a base URL that stands in for it in tests).
pub struct Datadog {
    metrics: MetricsAPI,
    monitors: MonitorsAPI,
    events: EventsAPI,
    dashboards: DashboardsAPI,
    downtimes: DowntimesAPI,
    slos: ServiceLevelObjectivesAPI,
    /// The client's HTTP stack, for the calls the client lacks (the old way's unmute).
    http: ClientWithMiddleware,
    api_key: String,
    app_key: String,
    /// `https://api.datadoghq.eu`: where requests go, for messages.
    endpoint: String,
    /// The range a metric query looks back over (the canary policy's `window`).
    window: Duration,
}

impl Datadog {
    /// The provider for an environment's `datadog` section: keys from `DD_API_KEY` and `DD_APP_KEY`, and
    /// `SUMA_DATADOG_URL`, when set, in place of the site's API host.
    pub fn from_env(config: &DatadogConfig, window: Duration, env: &dyn EnvSource) -> Result<Self, DatadogSetupError> {
        let key = |var: &'static str| {
            env.var(var)
                .filter(|v| !v.trim().is_empty())
                .ok_or(DatadogSetupError::MissingKey(var))
        };
        let api_key = key(DD_API_KEY)?;
        let app_key = key(DD_APP_KEY)?;
        let base_url = env.var(SUMA_DATADOG_URL).filter(|v| !v.trim().is_empty());
        Self::new(&config.site, base_url.as_deref(), &api_key, &app_key, window)
    }

    /// `site` is Datadog's site (`datadoghq.com`, `datadoghq.eu`, ...); `base_url` (`http://127.0.0.1:PORT`)
    /// replaces its API host when given.
    pub fn new(
        site: &str,
        base_url: Option<&str>,
        api_key: &str,
        app_key: &str,
        window: Duration,
    ) -> Result<Self, DatadogSetupError> {
        let mut config = Configuration::new();
        for (var, operation, key) in [(DD_API_KEY, "apiKeyAuth", api_key), (DD_APP_KEY, "appKeyAuth", app_key)] {
            let key = key.trim();
            // The generated client panics on a key that is not a valid header value.
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
                return Err(DatadogSetupError::BadKey(var));
            }
            config.set_auth_key(
                operation,
                APIKey {
                    key: key.to_owned(),
                    prefix: String::new(),
                },
            );
        }
        // The client's servers: 0 and 2 are both `https://{subdomain}.{site}`, but 0 panics on a site outside
        // its list of known ones, so a new or mistyped site would crash suma instead of failing its request;
        // 1 is `{protocol}://{name}`, the override.
        match base_url {
            Some(url) => {
                let (protocol, name) =
                    split_base_url(url).ok_or_else(|| DatadogSetupError::BadBaseUrl(url.to_owned()))?;
                config.server_index = 1;
                config.server_variables = HashMap::from([("protocol".to_owned(), protocol), ("name".to_owned(), name)]);
            }
            None => {
                let site = site.trim();
                if site.is_empty() || !site.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
                    return Err(DatadogSetupError::BadSite(site.to_owned()));
                }
                config.server_index = 2;
                config.server_variables = HashMap::from([("site".to_owned(), site.to_owned())]);
            }
        }
        // Configuration::new() reads `DD_SITE`; the variables above replace what it set, so the config file
        // decides the site. No per-operation servers apply to the three operations used here.
        let endpoint = config.get_operation_host("v1.query_metrics");
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("the HTTP client builds with static settings");
        // Only our middleware: the client's own retry (off by default, and its `retry` feature not compiled
        // in) would retry a 429 blindly inside one call, while the canary loop waits for the reset between
        // ticks without spending its failure budget.
        let client = ClientBuilder::new(http).with(RateLimitHeaders).build();
        Ok(Self {
            metrics: MetricsAPI::with_client_and_config(config.clone(), client.clone()),
            monitors: MonitorsAPI::with_client_and_config(config.clone(), client.clone()),
            events: EventsAPI::with_client_and_config(config.clone(), client.clone()),
            dashboards: DashboardsAPI::with_client_and_config(config.clone(), client.clone()),
            slos: ServiceLevelObjectivesAPI::with_client_and_config(config.clone(), client.clone()),
            downtimes: DowntimesAPI::with_client_and_config(config, client.clone()),
            http: client,
            api_key: api_key.trim().to_owned(),
            app_key: app_key.trim().to_owned(),
            endpoint,
            window,
        })
    }
}

/// `http://127.0.0.1:8126/` → (`http`, `127.0.0.1:8126`), the client's `{protocol}://{name}` variables.
fn split_base_url(url: &str) -> Option<(String, String)> {
    let (protocol, rest) = url.trim().split_once("://")?;
    let name = rest.trim_end_matches('/');
    let valid = matches!(protocol, "http" | "https") && !name.is_empty() && !name.contains(char::is_whitespace);
    valid.then(|| (protocol.to_owned(), name.to_owned()))
}

/// A 429 seen by [`RateLimitHeaders`], with the wait its headers asked for.
#[derive(Debug, thiserror::Error)]
#[error("rate-limited; retry after {0:?}")]
struct RateLimit(Duration);

/// Stops a 429 in the client's HTTP stack, where its headers are still at hand.
struct RateLimitHeaders;

#[async_trait]
impl Middleware for RateLimitHeaders {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = next.run(req, extensions).await?;
        if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after(response.headers(), chrono::Utc::now());
            return Err(reqwest_middleware::Error::middleware(RateLimit(wait)));
        }
        Ok(response)
    }
}

/// Datadog's `X-RateLimit-Reset` (seconds until the period resets), else `Retry-After` (seconds or an HTTP
/// date), else 10 s.
fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Duration {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let seconds = |v: &str| v.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0);
    if let Some(s) = header("x-ratelimit-reset").and_then(seconds) {
        return Duration::from_secs_f64(s.ceil());
    }
    if let Some(v) = header("retry-after") {
        if let Some(s) = seconds(v) {
            return Duration::from_secs_f64(s.ceil());
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(v) {
            return (at.with_timezone(&chrono::Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO);
        }
    }
    DEFAULT_RETRY_AFTER
}

fn failed(message: String) -> MetricError {
    MetricError::Failed {
        provider: PROVIDER,
        message,
    }
}

/// What the client returned, as a [`MetricError`]; `context` says which call.
fn from_client<T>(e: datadog::Error<T>, context: &str) -> MetricError {
    match e {
        datadog::Error::ReqwestMiddleware(reqwest_middleware::Error::Middleware(e)) => {
            match e.downcast_ref::<RateLimit>() {
                Some(RateLimit(retry_after)) => MetricError::RateLimited {
                    provider: PROVIDER,
                    retry_after: *retry_after,
                },
                None => failed(format!("{context}: {e:#}")),
            }
        }
        datadog::Error::ReqwestMiddleware(reqwest_middleware::Error::Reqwest(e)) | datadog::Error::Reqwest(e) => {
            failed(format!("{context}: {}", suma_core::error::chain(&e)))
        }
        // Not reached while the middleware is installed; kept so a 429 can never count as a failure.
        datadog::Error::ResponseError(r) if r.status == reqwest::StatusCode::TOO_MANY_REQUESTS => {
            MetricError::RateLimited {
                provider: PROVIDER,
                retry_after: DEFAULT_RETRY_AFTER,
            }
        }
        datadog::Error::ResponseError(r) => {
            failed(format!("HTTP {}: {} ({context})", r.status, error_message(&r.content)))
        }
        datadog::Error::Serde(e) => failed(format!("unexpected response: {e} ({context})")),
        other => failed(format!("{other} ({context})")),
    }
}

/// Datadog's `{"errors": ["..."]}`, else the start of the body.
pub(crate) fn error_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<serde_json::Value>,
    }
    if let Ok(Errors { errors }) = serde_json::from_str(body) {
        if !errors.is_empty() {
            let errors: Vec<String> = errors
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                .collect();
            return errors.join("; ");
        }
    }
    let body = body.trim();
    if body.is_empty() {
        return "(empty response)".to_owned();
    }
    let mut start: String = body.chars().take(300).collect();
    if start.len() < body.len() {
        start.push('…');
    }
    start
}

/// A monitor or dashboard definition that the client's model refuses.
pub(crate) fn unfit(what: &str, e: serde_json::Error) -> MetricError {
    failed(format!("the {what} does not fit Datadog's model: {e}"))
}
