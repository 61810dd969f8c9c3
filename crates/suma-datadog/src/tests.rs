//! The client against a local HTTP stand-in that records every request.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::json;

use suma_core::metrics::MetricSource as _;

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
    let stub = Stub::start(|_| ok(json!({"status": "error", "error": "Error parsing query: unexpected `}`"}))).await;
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
            // Without it a monitor muted by a downtime would read as notifying.
            ("with_downtimes", "true"),
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
    let summary: Vec<(i64, bool, Vec<String>)> = monitors.iter().map(|m| (m.id, m.muted, m.notifies.clone())).collect();
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
