//! Datadog through `datadog-api-client`, the only module that imports it: the metric queries that gate a
//! canary (v1 `/api/v1/query`), the monitors that must not already be alerting when one starts
//! (`/api/v1/monitor`), the monitors compliance checks require (same endpoint), events (`/api/v1/events`),
//! and the monitors and dashboards `suma monitors|dashboards apply` manage (`/api/v1/monitor`,
//! `/api/v1/dashboard`), muted and unmuted by runbooks (`/api/v1/monitor/{id}/mute`, `/unmute`: the client
//! has no call for these, so they go over the same HTTP stack by hand).
//!
//! Monitors and dashboards cross this module as JSON in the API's own shape ([`serde_json::Value`]), put
//! through the client's typed models on the way in and out ([`canonical_monitor`],
//! [`canonical_dashboard`]): what is compared is what the client would send and what it read back.
//!
//! The generated client keeps only the status and body of a failed response, but a 429's back-off lives in
//! its headers. [`RateLimitHeaders`], a middleware on the client's own HTTP stack, reads them from the very
//! response the client received and turns the 429 into a typed error that [`from_client`] maps to
//! [`MetricError::RateLimited`].

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use datadog_api_client::datadog::{self, APIKey, Configuration};
use datadog_api_client::datadogV1::api_dashboards::{DashboardsAPI, ListDashboardsOptionalParams};
use datadog_api_client::datadogV1::api_events::EventsAPI;
use datadog_api_client::datadogV1::api_metrics::MetricsAPI;
use datadog_api_client::datadogV1::api_monitors::{ListMonitorsOptionalParams, MonitorsAPI};
use datadog_api_client::datadogV1::model::{
    Dashboard, EventAlertType, EventCreateRequest, MetricsQueryResponse, Monitor, MonitorOverallStates,
    MonitorUpdateRequest,
};
use reqwest::header::HeaderMap;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use serde::Serialize;
use serde_json::Value;

use super::{MetricError, MetricSource};
use crate::config::DatadogConfig;
use crate::env_vars::SUMA_DATADOG_URL;
use crate::settings::EnvSource;

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

/// A monitor whose overall state is `Alert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertingMonitor {
    pub id: i64,
    pub name: String,
    /// Datadog's overall state, `Alert`.
    pub state: String,
}

/// A monitor as compliance checks see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitorSummary {
    pub id: i64,
    pub name: String,
    pub tags: Vec<String>,
    /// Silenced, or inside a downtime that is in effect.
    pub muted: bool,
    /// The `@` handles in the message (people, teams, integrations notified).
    pub notifies: Vec<String>,
}

/// The kind of a deployment event, which Datadog shows as its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAlert {
    Info,
    Success,
    Warning,
    Error,
}

/// The Datadog API of one site (or of a base URL that stands in for it in tests).
pub struct Datadog {
    metrics: MetricsAPI,
    monitors: MonitorsAPI,
    events: EventsAPI,
    dashboards: DashboardsAPI,
    /// The client's HTTP stack, for the calls the client lacks (mute, unmute).
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
            dashboards: DashboardsAPI::with_client_and_config(config, client.clone()),
            http: client,
            api_key: api_key.trim().to_owned(),
            app_key: app_key.trim().to_owned(),
            endpoint,
            window,
        })
    }

    /// Monitors that carry every one of `tags` (e.g. `service:auth-service`, `auto-rollback:true`) and whose
    /// overall state is `Alert`.
    pub async fn alerting_monitors(&self, tags: &[String]) -> Result<Vec<AlertingMonitor>, MetricError> {
        let mut alerting = Vec::new();
        for page in 0..MAX_MONITOR_PAGES {
            let mut params = ListMonitorsOptionalParams::default()
                .page(page)
                .page_size(MONITOR_PAGE_SIZE);
            if !tags.is_empty() {
                params = params.monitor_tags(tags.join(","));
            }
            let monitors = self
                .monitors
                .list_monitors(params)
                .await
                .map_err(|e| from_client(e, &format!("listing monitors at {}", self.endpoint)))?;
            let last_page = monitors.len() < MONITOR_PAGE_SIZE as usize;
            // `monitor_tags` already filters; checking again keeps the answer right if Datadog's matching of
            // UI-created tags (which it prefixes with `service:`) ever differs from ours.
            alerting.extend(monitors.into_iter().filter_map(|m| alerting_monitor(m, tags)));
            if last_page {
                break;
            }
        }
        Ok(alerting)
    }

    /// Every monitor that carries all of `tags`, page by page, for compliance checks.
    pub async fn monitors(&self, tags: &[String]) -> Result<Vec<MonitorSummary>, MetricError> {
        let mut found = Vec::new();
        for page in 0..MAX_MONITOR_PAGES {
            let mut params = ListMonitorsOptionalParams::default()
                .page(page)
                .page_size(MONITOR_PAGE_SIZE);
            if !tags.is_empty() {
                params = params.monitor_tags(tags.join(","));
            }
            let monitors = self
                .monitors
                .list_monitors(params)
                .await
                .map_err(|e| from_client(e, &format!("listing monitors at {}", self.endpoint)))?;
            let last_page = monitors.len() < MONITOR_PAGE_SIZE as usize;
            found.extend(
                monitors
                    .into_iter()
                    .filter(|m| {
                        tags.iter()
                            .all(|t| m.tags.as_ref().is_some_and(|have| have.contains(t)))
                    })
                    .map(monitor_summary),
            );
            if last_page {
                break;
            }
        }
        Ok(found)
    }

    /// Posts an event (a deployment promoted, rolled back, ...) to the event stream.
    pub async fn deployment_event(
        &self,
        title: &str,
        text: &str,
        tags: &[String],
        alert_type: EventAlert,
    ) -> Result<(), MetricError> {
        self.event(title, text, alert_type, tags).await
    }

    /// Posts an event to the event stream: `title`, `text` (cut to Datadog's 4,000 characters), its kind
    /// (the colour Datadog shows) and `tags` (give the environment's tags so the event is found beside its
    /// monitors). Needs the API key only.
    pub async fn event(
        &self,
        title: &str,
        text: &str,
        alert_type: EventAlert,
        tags: &[String],
    ) -> Result<(), MetricError> {
        let text = if text.chars().count() > MAX_EVENT_TEXT {
            let mut t: String = text.chars().take(MAX_EVENT_TEXT - 1).collect();
            t.push('…');
            t
        } else {
            text.to_owned()
        };
        let alert_type = match alert_type {
            EventAlert::Info => EventAlertType::INFO,
            EventAlert::Success => EventAlertType::SUCCESS,
            EventAlert::Warning => EventAlertType::WARNING,
            EventAlert::Error => EventAlertType::ERROR,
        };
        let body = EventCreateRequest::new(text, title.to_owned())
            .tags(tags.to_vec())
            .alert_type(alert_type);
        self.events
            .create_event(body)
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("posting event `{title}` to {}", self.endpoint)))
    }
}

/// A monitor as Datadog holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteMonitor {
    pub id: i64,
    pub name: String,
    pub tags: Vec<String>,
    /// The whole monitor in the API's shape, server-owned fields (`id`, `created`, `overall_state`, ...)
    /// included.
    pub definition: Value,
}

/// A dashboard in Datadog's list: enough to recognise a managed one without reading it whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DashboardListing {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

/// Which monitor a runbook means: Datadog's id, or its exact name (which must then be unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorRef {
    Id(i64),
    Name(String),
}

impl std::fmt::Display for MonitorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "#{id}"),
            Self::Name(name) => write!(f, "`{name}`"),
        }
    }
}

/// `definition` put through the client's `Monitor` model and back: the JSON suma would send, or why it does
/// not fit (a missing `query`, an unknown `type`, a threshold that is not a number...).
pub fn canonical_monitor(definition: &Value) -> Result<Value, String> {
    let monitor: Monitor = serde_json::from_value(definition.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&monitor).map_err(|e| e.to_string())
}

/// `definition` put through the client's `Dashboard` model and back (see [`canonical_monitor`]).
pub fn canonical_dashboard(definition: &Value) -> Result<Value, String> {
    let dashboard: Dashboard = serde_json::from_value(definition.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&dashboard).map_err(|e| e.to_string())
}

fn remote_monitor(m: Monitor) -> RemoteMonitor {
    let definition = serde_json::to_value(&m).unwrap_or(Value::Null);
    RemoteMonitor {
        id: m.id.unwrap_or_default(),
        name: m.name.unwrap_or_default(),
        tags: m.tags.unwrap_or_default(),
        definition,
    }
}

fn unfit(what: &str, e: serde_json::Error) -> MetricError {
    failed(format!("the {what} does not fit Datadog's model: {e}"))
}

/// Monitors and dashboards: what `suma monitors|dashboards` and runbooks change.
impl Datadog {
    async fn monitor_pages(&self, name: Option<&str>, tags: &[String]) -> Result<Vec<Monitor>, MetricError> {
        let mut found = Vec::new();
        for page in 0..MAX_MONITOR_PAGES {
            let mut params = ListMonitorsOptionalParams::default()
                .page(page)
                .page_size(MONITOR_PAGE_SIZE);
            if let Some(name) = name {
                params = params.name(name.to_owned());
            }
            if !tags.is_empty() {
                params = params.monitor_tags(tags.join(","));
            }
            let monitors = self
                .monitors
                .list_monitors(params)
                .await
                .map_err(|e| from_client(e, &format!("listing monitors at {}", self.endpoint)))?;
            let last_page = monitors.len() < MONITOR_PAGE_SIZE as usize;
            found.extend(monitors);
            if last_page {
                break;
            }
        }
        Ok(found)
    }

    /// Monitors named exactly `name`, whatever their tags (Datadog's `name` filter matches substrings, so
    /// the list is narrowed here).
    pub async fn monitors_named(&self, name: &str) -> Result<Vec<RemoteMonitor>, MetricError> {
        let monitors = self.monitor_pages(Some(name), &[]).await?;
        Ok(monitors
            .into_iter()
            .filter(|m| m.name.as_deref() == Some(name))
            .map(remote_monitor)
            .collect())
    }

    /// Every monitor carrying all of `tags`, whole.
    pub async fn monitors_tagged(&self, tags: &[String]) -> Result<Vec<RemoteMonitor>, MetricError> {
        let monitors = self.monitor_pages(None, tags).await?;
        Ok(monitors
            .into_iter()
            .filter(|m| {
                tags.iter()
                    .all(|t| m.tags.as_ref().is_some_and(|have| have.contains(t)))
            })
            .map(remote_monitor)
            .collect())
    }

    /// Creates a monitor from its definition (the API's JSON: `name`, `type`, `query`, `message`, `tags`,
    /// `options`, ...).
    pub async fn create_monitor(&self, definition: &Value) -> Result<RemoteMonitor, MetricError> {
        let body: Monitor = serde_json::from_value(definition.clone()).map_err(|e| unfit("monitor", e))?;
        let name = body.name.clone().unwrap_or_default();
        self.monitors
            .create_monitor(body)
            .await
            .map(remote_monitor)
            .map_err(|e| from_client(e, &format!("creating monitor `{name}` at {}", self.endpoint)))
    }

    /// Replaces the fields of monitor `id` that `definition` sets.
    pub async fn update_monitor(&self, id: i64, definition: &Value) -> Result<RemoteMonitor, MetricError> {
        let body: MonitorUpdateRequest = serde_json::from_value(definition.clone()).map_err(|e| unfit("monitor", e))?;
        self.monitors
            .update_monitor(id, body)
            .await
            .map(remote_monitor)
            .map_err(|e| from_client(e, &format!("updating monitor #{id} at {}", self.endpoint)))
    }

    /// Deletes monitor `id`.
    pub async fn delete_monitor(&self, id: i64) -> Result<(), MetricError> {
        use datadog_api_client::datadogV1::api_monitors::DeleteMonitorOptionalParams;
        self.monitors
            .delete_monitor(id, DeleteMonitorOptionalParams::default())
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("deleting monitor #{id} at {}", self.endpoint)))
    }

    /// The id of `monitor`: a name must match exactly one monitor.
    pub async fn resolve_monitor(&self, monitor: &MonitorRef) -> Result<i64, MetricError> {
        match monitor {
            MonitorRef::Id(id) => Ok(*id),
            MonitorRef::Name(name) => {
                let found = self.monitors_named(name).await?;
                match found.as_slice() {
                    [one] => Ok(one.id),
                    [] => Err(failed(format!("no monitor is named `{name}` at {}", self.endpoint))),
                    many => Err(failed(format!(
                        "{} monitors are named `{name}` ({}); name one by its id",
                        many.len(),
                        many.iter().map(|m| format!("#{}", m.id)).collect::<Vec<_>>().join(", ")
                    ))),
                }
            }
        }
    }

    /// Mutes `monitor` (by id or exact name) so it notifies nobody: all of it, or only the groups in
    /// `scope` (e.g. `env:staging`), until `end` (never when `None`). Returns the monitor as muted.
    pub async fn mute_monitor(
        &self,
        monitor: &MonitorRef,
        scope: Option<&str>,
        end: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<RemoteMonitor, MetricError> {
        let id = self.resolve_monitor(monitor).await?;
        let mut query = Vec::new();
        if let Some(scope) = scope {
            query.push(("scope", scope.to_owned()));
        }
        if let Some(end) = end {
            query.push(("end", end.timestamp().to_string()));
        }
        self.monitor_action(id, "mute", &query).await
    }

    /// Unmutes `monitor` (by id or exact name): the mute of `scope`, or every mute when `scope` is `None`.
    /// Returns the monitor as unmuted.
    pub async fn unmute_monitor(
        &self,
        monitor: &MonitorRef,
        scope: Option<&str>,
    ) -> Result<RemoteMonitor, MetricError> {
        let id = self.resolve_monitor(monitor).await?;
        let query = match scope {
            Some(scope) => vec![("scope", scope.to_owned())],
            None => vec![("all_scopes", "true".to_owned())],
        };
        self.monitor_action(id, "unmute", &query).await
    }

    /// `POST /api/v1/monitor/{id}/{action}`, which the generated client does not offer.
    async fn monitor_action(
        &self,
        id: i64,
        action: &str,
        query: &[(&str, String)],
    ) -> Result<RemoteMonitor, MetricError> {
        let context = format!("{action} monitor #{id} at {}", self.endpoint);
        let response = self
            .http
            .post(format!("{}/api/v1/monitor/{id}/{action}", self.endpoint))
            .query(query)
            .header("DD-API-KEY", &self.api_key)
            .header("DD-APPLICATION-KEY", &self.app_key)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| from_client::<()>(datadog::Error::ReqwestMiddleware(e), &context))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| failed(format!("{context}: {}", chain(&e))))?;
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}: {} ({context})", error_message(&body))));
        }
        let monitor: Monitor =
            serde_json::from_str(&body).map_err(|e| failed(format!("unexpected response: {e} ({context})")))?;
        Ok(remote_monitor(monitor))
    }

    /// Every dashboard's id, title and description, page by page.
    pub async fn dashboard_listings(&self) -> Result<Vec<DashboardListing>, MetricError> {
        const PAGE: i64 = 100;
        let mut found = Vec::new();
        for page in 0..MAX_MONITOR_PAGES {
            let params = ListDashboardsOptionalParams::default().start(page * PAGE).count(PAGE);
            let summary = self
                .dashboards
                .list_dashboards(params)
                .await
                .map_err(|e| from_client(e, &format!("listing dashboards at {}", self.endpoint)))?;
            let dashboards = summary.dashboards.unwrap_or_default();
            let last_page = dashboards.len() < PAGE as usize;
            found.extend(dashboards.into_iter().map(|d| DashboardListing {
                id: d.id.unwrap_or_default(),
                title: d.title.unwrap_or_default(),
                description: d.description.flatten(),
            }));
            if last_page {
                break;
            }
        }
        Ok(found)
    }

    /// The whole dashboard `id` in the API's shape.
    pub async fn dashboard(&self, id: &str) -> Result<Value, MetricError> {
        let dashboard = self
            .dashboards
            .get_dashboard(id.to_owned())
            .await
            .map_err(|e| from_client(e, &format!("reading dashboard `{id}` at {}", self.endpoint)))?;
        serde_json::to_value(&dashboard).map_err(|e| failed(format!("dashboard `{id}`: {e}")))
    }

    /// Creates a dashboard from its definition (`title`, `layout_type`, `widgets`, ...); returns its id.
    pub async fn create_dashboard(&self, definition: &Value) -> Result<String, MetricError> {
        let body: Dashboard = serde_json::from_value(definition.clone()).map_err(|e| unfit("dashboard", e))?;
        let title = body.title.clone();
        self.dashboards
            .create_dashboard(body)
            .await
            .map(|d| d.id.unwrap_or_default())
            .map_err(|e| from_client(e, &format!("creating dashboard `{title}` at {}", self.endpoint)))
    }

    /// Replaces dashboard `id` with `definition` (Datadog's update is a whole replacement).
    pub async fn update_dashboard(&self, id: &str, definition: &Value) -> Result<(), MetricError> {
        let body: Dashboard = serde_json::from_value(definition.clone()).map_err(|e| unfit("dashboard", e))?;
        self.dashboards
            .update_dashboard(id.to_owned(), body)
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("updating dashboard `{id}` at {}", self.endpoint)))
    }

    /// Deletes dashboard `id`.
    pub async fn delete_dashboard(&self, id: &str) -> Result<(), MetricError> {
        self.dashboards
            .delete_dashboard(id.to_owned())
            .await
            .map(drop)
            .map_err(|e| from_client(e, &format!("deleting dashboard `{id}` at {}", self.endpoint)))
    }
}

#[async_trait]
impl MetricSource for Datadog {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// The mean of the last series' points over the last `window`.
    async fn scalar(&self, query: &str) -> Result<Option<f64>, MetricError> {
        let to = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs() as i64;
        let from = to - self.window.as_secs().max(1) as i64;
        let response = self
            .metrics
            .query_metrics(from, to, query.to_owned())
            .await
            .map_err(|e| from_client(e, &format!("{} (query: {query})", self.endpoint)))?;
        mean_of_last_series(&response).map_err(|message| failed(format!("{message} (query: {query})")))
    }
}

// `options.silenced` is deprecated in favour of downtimes, but monitors muted the old way still carry it.
#[allow(deprecated)]
fn monitor_summary(m: Monitor) -> MonitorSummary {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let silenced = m
        .options
        .as_ref()
        .and_then(|o| o.silenced.as_ref())
        .is_some_and(|s| s.values().any(|end| end.is_none_or(|end| end > now)));
    let in_downtime = m.matching_downtimes.as_ref().is_some_and(|d| {
        d.iter()
            .any(|d| d.start.is_none_or(|s| s <= now) && d.end.flatten().is_none_or(|e| e > now))
    });
    let notifies = m
        .message
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| w.len() > 1 && w.starts_with('@'))
        .map(|w| w.trim_end_matches([',', '.', ';', ')']).to_owned())
        .collect();
    MonitorSummary {
        id: m.id.unwrap_or_default(),
        name: m.name.unwrap_or_default(),
        tags: m.tags.unwrap_or_default(),
        muted: silenced || in_downtime,
        notifies,
    }
}

fn alerting_monitor(m: Monitor, tags: &[String]) -> Option<AlertingMonitor> {
    let state = m.overall_state?;
    let carries_all = tags
        .iter()
        .all(|t| m.tags.as_ref().is_some_and(|have| have.contains(t)));
    (state == MonitorOverallStates::ALERT && carries_all).then(|| AlertingMonitor {
        id: m.id.unwrap_or_default(),
        name: m.name.unwrap_or_default(),
        state: state.to_string(),
    })
}

/// The mean of the last series' non-null points; `None` when there is no series or no point. A query
/// without an aggregation returns a series per tag group; the last one is taken, so gating queries should
/// aggregate (`sum:`, `avg:`, ...).
fn mean_of_last_series(response: &MetricsQueryResponse) -> Result<Option<f64>, String> {
    if response.status.as_deref() == Some("error") {
        return Err(response.error.clone().unwrap_or_else(|| "query failed".to_owned()));
    }
    let Some(series) = response.series.as_ref().and_then(|s| s.last()) else {
        return Ok(None);
    };
    let values: Vec<f64> = series
        .pointlist
        .iter()
        .flatten()
        .filter_map(|point| point.get(1).copied().flatten())
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return Ok(None);
    }
    Ok(Some(values.iter().sum::<f64>() / values.len() as f64))
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
            failed(format!("{context}: {}", chain(&e)))
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
fn error_message(body: &str) -> String {
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

/// An error and its causes, `: `-separated (reqwest keeps "connection refused" in the chain).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::{Body, Bytes};
    use axum::extract::Query;
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::Response;
    use serde_json::json;

    use super::*;

    /// One request as the stub received it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: Method,
        path: String,
        query: Vec<(String, String)>,
        headers: HeaderMap,
        body: Bytes,
    }

    /// What the stub answers.
    struct Canned {
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: serde_json::Value,
    }

    fn ok(body: serde_json::Value) -> Canned {
        Canned {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }

    /// A Datadog stand-in on 127.0.0.1 that records every request.
    struct Stub {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Stub {
        async fn start(respond: impl Fn(&Seen) -> Canned + Send + Sync + 'static) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let respond = Arc::new(respond);
            let record = seen.clone();
            let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (record, respond) = (record.clone(), respond.clone());
                async move {
                    let seen = Seen {
                        method,
                        path: uri.path().to_owned(),
                        query: Query::<Vec<(String, String)>>::try_from_uri(&uri).unwrap().0,
                        headers,
                        body,
                    };
                    let canned = respond(&seen);
                    record.lock().unwrap().push(seen);
                    let mut response = Response::builder()
                        .status(canned.status)
                        .header("content-type", "application/json");
                    for (name, value) in canned.headers {
                        response = response.header(name, value);
                    }
                    response.body(Body::from(canned.body.to_string())).unwrap()
                }
            });
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            Self { url, seen }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    struct Keys {
        api: String,
        app: String,
    }

    fn keys() -> Keys {
        Keys {
            api: format!("dummy-api-{}", uuid::Uuid::new_v4().simple()),
            app: format!("dummy-app-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn client(stub: &Stub, keys: &Keys) -> Datadog {
        Datadog::new(
            "datadoghq.eu",
            Some(&stub.url),
            &keys.api,
            &keys.app,
            Duration::from_secs(300),
        )
        .unwrap()
    }

    fn assert_keys(seen: &Seen, keys: &Keys) {
        assert_eq!(seen.headers["dd-api-key"], keys.api.as_str());
        assert_eq!(seen.headers["dd-application-key"], keys.app.as_str());
    }

    fn unix_now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn series(points: serde_json::Value) -> serde_json::Value {
        json!({"metric": "trace.http.request.hits", "pointlist": points, "scope": "service:auth-service"})
    }

    #[tokio::test]
    async fn a_series_is_averaged_from_an_exact_query() {
        let stub = Stub::start(|_| {
            ok(json!({
                "status": "ok",
                "res_type": "time_series",
                "series": [
                    series(json!([[1.7e12, 100.0]])),
                    series(json!([[1.7e12, 1.0], [1.7e12, null], [1.7e12, 2.0], [1.7e12, 6.0]])),
                ],
            }))
        })
        .await;
        let keys = keys();
        let query = "sum:trace.http.request.errors{service:auth-service,env:staging,version:1.5.0}.as_count()";
        let before = unix_now();
        let value = client(&stub, &keys).scalar(query).await.unwrap();
        assert_eq!(value, Some(3.0), "mean of the last series' non-null points");

        let seen = stub.seen();
        assert_eq!(seen.len(), 1);
        let request = &seen[0];
        assert_eq!(
            (&request.method, request.path.as_str()),
            (&Method::GET, "/api/v1/query")
        );
        let names: Vec<&str> = request.query.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["from", "to", "query"]);
        let from: i64 = request.query[0].1.parse().unwrap();
        let to: i64 = request.query[1].1.parse().unwrap();
        assert_eq!(to - from, 300, "the window");
        assert!((before..=unix_now()).contains(&to), "`to` is now: {to}");
        assert_eq!(request.query[2].1, query);
        assert_keys(request, &keys);
    }

    #[tokio::test]
    async fn no_series_or_only_nulls_is_no_data() {
        let stub = Stub::start(|seen| {
            if seen.query.iter().any(|(_, v)| v.contains("nulls")) {
                ok(json!({"status": "ok", "series": [series(json!([[1.7e12, null], [1.7e12, null]]))]}))
            } else {
                ok(json!({"status": "ok", "res_type": "time_series", "series": []}))
            }
        })
        .await;
        let datadog = client(&stub, &keys());
        assert_eq!(datadog.scalar("avg:empty{*}").await, Ok(None));
        assert_eq!(datadog.scalar("avg:nulls{*}").await, Ok(None));
        assert_eq!(stub.seen().len(), 2);
    }

    #[tokio::test]
    async fn a_query_error_in_a_200_is_a_failure() {
        let stub =
            Stub::start(|_| ok(json!({"status": "error", "error": "Error parsing query: unexpected `}`"}))).await;
        let err = client(&stub, &keys()).scalar("avg:x{").await.unwrap_err();
        let MetricError::Failed { provider, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(provider, "Datadog");
        assert!(
            message.contains("Error parsing query") && message.contains("avg:x{"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_429_backs_off_by_the_rate_limit_headers() {
        let stub = Stub::start(|seen| {
            let headers = match seen.query.get(2).map_or("", |(_, q)| q.as_str()) {
                "reset" => vec![
                    ("X-RateLimit-Limit", "100"),
                    ("X-RateLimit-Period", "10"),
                    ("X-RateLimit-Remaining", "0"),
                    ("X-RateLimit-Reset", "7"),
                    ("Retry-After", "30"),
                ],
                "retry-after" => vec![("Retry-After", "3")],
                _ => Vec::new(),
            };
            Canned {
                status: 429,
                headers,
                body: json!({"errors": ["Rate limit of 100 requests in 10 seconds reached"]}),
            }
        })
        .await;
        let datadog = client(&stub, &keys());
        let rate_limited = |secs| {
            Err(MetricError::RateLimited {
                provider: "Datadog",
                retry_after: Duration::from_secs(secs),
            })
        };
        assert_eq!(datadog.scalar("reset").await, rate_limited(7));
        assert_eq!(stub.seen().len(), 1, "no retry inside the client");
        assert_eq!(datadog.scalar("retry-after").await, rate_limited(3));
        assert_eq!(datadog.scalar("bare").await, rate_limited(10));
        // The other calls back off the same way.
        assert_eq!(
            datadog.alerting_monitors(&[]).await,
            Err(MetricError::RateLimited {
                provider: "Datadog",
                retry_after: Duration::from_secs(10)
            })
        );
    }

    #[tokio::test]
    async fn a_403_fails_naming_the_status_and_datadogs_message() {
        let stub = Stub::start(|_| Canned {
            status: 403,
            headers: Vec::new(),
            body: json!({"errors": ["Forbidden"]}),
        })
        .await;
        let err = client(&stub, &keys()).scalar("avg:x{*}").await.unwrap_err();
        let MetricError::Failed { message, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("HTTP 403 Forbidden: Forbidden"), "{message}");
        assert!(message.contains("avg:x{*}"), "{message}");
    }

    #[tokio::test]
    async fn an_unreachable_api_is_a_failure_naming_it() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let keys = keys();
        let url = format!("http://127.0.0.1:{port}");
        let datadog = Datadog::new(
            "datadoghq.com",
            Some(&url),
            &keys.api,
            &keys.app,
            Duration::from_secs(60),
        )
        .unwrap();
        let err = datadog.scalar("avg:x{*}").await.unwrap_err();
        assert!(
            matches!(&err, MetricError::Failed { message, .. } if message.contains(&url)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn alerting_monitors_are_filtered_by_tags_and_state() {
        let monitor = |id: i64, state: &str, tags: &[&str]| {
            json!({
                "id": id,
                "name": format!("monitor {id}"),
                "type": "metric alert",
                "query": "avg(last_5m):avg:trace.http.request.errors{service:auth-service} > 5",
                "overall_state": state,
                "tags": tags,
            })
        };
        let both = ["service:auth-service", "auto-rollback:true", "team:identity"];
        let stub = Stub::start(move |_| {
            ok(json!([
                monitor(1, "Alert", &both),
                monitor(2, "OK", &both),
                monitor(3, "Alert", &["service:auth-service"]),
                monitor(4, "Warn", &both),
                monitor(5, "No Data", &both),
            ]))
        })
        .await;
        let keys = keys();
        let tags = vec!["service:auth-service".to_owned(), "auto-rollback:true".to_owned()];
        let alerting = client(&stub, &keys).alerting_monitors(&tags).await.unwrap();
        assert_eq!(
            alerting,
            [AlertingMonitor {
                id: 1,
                name: "monitor 1".into(),
                state: "Alert".into()
            }]
        );
        let seen = stub.seen();
        assert_eq!(seen.len(), 1, "a short page is the last");
        assert_eq!(
            (&seen[0].method, seen[0].path.as_str()),
            (&Method::GET, "/api/v1/monitor")
        );
        let query: Vec<(&str, &str)> = seen[0].query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            query,
            [
                ("monitor_tags", "service:auth-service,auto-rollback:true"),
                ("page", "0"),
                ("page_size", "100"),
            ]
        );
        assert_keys(&seen[0], &keys);
    }

    #[tokio::test]
    async fn monitors_are_read_page_by_page() {
        let stub = Stub::start(|seen| {
            let page: usize = seen.query.iter().find(|(k, _)| k == "page").unwrap().1.parse().unwrap();
            let count = if page == 0 { 100 } else { 1 };
            let monitors: Vec<_> = (0..count)
                .map(|i| {
                    json!({"id": page * 1000 + i, "name": "m", "type": "metric alert", "query": "q",
                           "overall_state": "Alert", "tags": ["service:auth-service"]})
                })
                .collect();
            ok(json!(monitors))
        })
        .await;
        let alerting = client(&stub, &keys())
            .alerting_monitors(&["service:auth-service".to_owned()])
            .await
            .unwrap();
        assert_eq!(alerting.len(), 101);
        assert_eq!(alerting.last().unwrap().id, 1000);
        assert_eq!(stub.seen().len(), 2);
    }

    #[tokio::test]
    async fn monitor_summaries_show_mutes_and_notification_handles() {
        let stub = Stub::start(|_| {
            ok(json!([
                {"id": 1, "name": "auth-service high error rate", "type": "metric alert", "query": "q",
                 "message": "Errors high. @pagerduty-auth @slack-identity.", "tags": ["service:auth-service", "env:production"]},
                {"id": 2, "name": "auth-service redis memory", "type": "metric alert", "query": "q",
                 "message": "no handle", "options": {"silenced": {"*": null}},
                 "tags": ["service:auth-service", "env:production"]},
                {"id": 3, "name": "auth-service lockout spike", "type": "metric alert", "query": "q",
                 "message": "@team", "matching_downtimes": [{"id": 9, "start": 1, "end": null}],
                 "tags": ["service:auth-service", "env:production"]},
                {"id": 4, "name": "other env", "type": "metric alert", "query": "q",
                 "tags": ["service:auth-service", "env:staging"]},
            ]))
        })
        .await;
        let tags = vec!["service:auth-service".to_owned(), "env:production".to_owned()];
        let monitors = client(&stub, &keys()).monitors(&tags).await.unwrap();
        let summary: Vec<(i64, bool, Vec<String>)> =
            monitors.iter().map(|m| (m.id, m.muted, m.notifies.clone())).collect();
        assert_eq!(
            summary,
            [
                (
                    1,
                    false,
                    vec!["@pagerduty-auth".to_owned(), "@slack-identity".to_owned()]
                ),
                (2, true, vec![]),
                (3, true, vec!["@team".to_owned()]),
            ]
        );
        let seen = stub.seen();
        assert_eq!(seen[0].path, "/api/v1/monitor");
        assert!(seen[0].query.contains(&(
            "monitor_tags".to_owned(),
            "service:auth-service,env:production".to_owned()
        )));
    }

    #[tokio::test]
    async fn a_deployment_event_posts_its_body() {
        let stub = Stub::start(|_| Canned {
            status: 202,
            headers: Vec::new(),
            body: json!({"status": "ok", "event": {"id": 1, "title": "t"}}),
        })
        .await;
        let keys = keys();
        let tags = vec![
            "service:auth-service".to_owned(),
            "env:staging".to_owned(),
            "version:1.5.0".to_owned(),
        ];
        client(&stub, &keys)
            .deployment_event(
                "auth-service 1.5.0 promoted in staging",
                "canary promoted by alice@host after 15m",
                &tags,
                EventAlert::Success,
            )
            .await
            .unwrap();
        let seen = stub.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (&seen[0].method, seen[0].path.as_str()),
            (&Method::POST, "/api/v1/events")
        );
        assert!(seen[0].query.is_empty());
        assert_eq!(seen[0].headers["content-type"], "application/json");
        // Posting events takes the API key alone.
        assert_eq!(seen[0].headers["dd-api-key"], keys.api.as_str());
        assert!(!seen[0].headers.contains_key("dd-application-key"));
        let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(
            body,
            json!({
                "title": "auth-service 1.5.0 promoted in staging",
                "text": "canary promoted by alice@host after 15m",
                "tags": ["service:auth-service", "env:staging", "version:1.5.0"],
                "alert_type": "success",
            })
        );
    }

    #[tokio::test]
    async fn keys_and_base_url_come_from_the_environment() {
        let config = DatadogConfig {
            site: "datadoghq.eu".into(),
            tags: Vec::new(),
        };
        let window = Duration::from_secs(60);
        let keys = keys();
        let env = HashMap::from([(DD_APP_KEY, keys.app.as_str())]);
        assert_eq!(
            Datadog::from_env(&config, window, &env).err(),
            Some(DatadogSetupError::MissingKey(DD_API_KEY))
        );
        let env = HashMap::from([(DD_API_KEY, keys.api.as_str())]);
        let err = Datadog::from_env(&config, window, &env).err().unwrap();
        assert_eq!(err, DatadogSetupError::MissingKey(DD_APP_KEY));
        assert!(err.to_string().starts_with("`DD_APP_KEY` is not set"), "{err}");

        let env = HashMap::from([(DD_API_KEY, keys.api.as_str()), (DD_APP_KEY, keys.app.as_str())]);
        let datadog = Datadog::from_env(&config, window, &env).unwrap();
        assert_eq!(
            datadog.endpoint, "https://api.datadoghq.eu",
            "the configured site, not `DD_SITE`"
        );

        let stub = Stub::start(|_| ok(json!({"status": "ok", "series": [series(json!([[1.7e12, 0.5]]))]}))).await;
        let url = format!("{}/", stub.url);
        let env = HashMap::from([
            (DD_API_KEY, keys.api.as_str()),
            (DD_APP_KEY, keys.app.as_str()),
            (SUMA_DATADOG_URL, url.as_str()),
        ]);
        let datadog = Datadog::from_env(&config, window, &env).unwrap();
        assert_eq!(datadog.endpoint, stub.url);
        assert_eq!(datadog.scalar("avg:x{*}").await, Ok(Some(0.5)));
        let seen = stub.seen();
        assert_eq!(seen[0].path, "/api/v1/query");
        assert_keys(&seen[0], &keys);
    }

    #[test]
    fn bad_settings_are_refused() {
        let w = Duration::from_secs(60);
        assert_eq!(
            Datadog::new("datadoghq.com", Some("127.0.0.1:8080"), "a", "b", w).err(),
            Some(DatadogSetupError::BadBaseUrl("127.0.0.1:8080".into()))
        );
        assert_eq!(
            Datadog::new("https://app.datadoghq.com/", None, "a", "b", w).err(),
            Some(DatadogSetupError::BadSite("https://app.datadoghq.com/".into()))
        );
        assert_eq!(
            Datadog::new("datadoghq.com", None, "a b", "b", w).err(),
            Some(DatadogSetupError::BadKey(DD_API_KEY))
        );
        // A site the client does not list still builds (server 2, not 0).
        let datadog = Datadog::new("us9.datadoghq.com", None, "a", "b", w).unwrap();
        assert_eq!(datadog.endpoint, "https://api.us9.datadoghq.com");
    }

    #[test]
    fn retry_after_prefers_the_rate_limit_reset() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T21:00:00Z")
            .unwrap()
            .to_utc();
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let secs = Duration::from_secs;
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "7"), ("retry-after", "30")]), now),
            secs(7)
        );
        assert_eq!(retry_after(&headers(&[("x-ratelimit-reset", "2.2")]), now), secs(3));
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "soon"), ("retry-after", "4")]), now),
            secs(4)
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "Sun, 22 Nov 2026 21:00:12 GMT")]), now),
            secs(12)
        );
        assert_eq!(retry_after(&headers(&[]), now), secs(10));
    }

    #[test]
    fn error_messages_come_from_datadogs_errors() {
        assert_eq!(
            error_message(r#"{"errors": ["Forbidden", "bad key"]}"#),
            "Forbidden; bad key"
        );
        assert_eq!(error_message("<html>bad gateway</html>"), "<html>bad gateway</html>");
        assert_eq!(error_message(""), "(empty response)");
    }
}
