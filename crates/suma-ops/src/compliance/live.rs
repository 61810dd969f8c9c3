//! Checks of the live service over HTTP: TLS, security headers, `/health` and `/ready`, the JWKS, and
//! the GDPR endpoints (which must exist and refuse unauthenticated calls). [`ServiceProbe`] is the seam;
//! [`evaluate`] is pure.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::evaluate::{error_finding, finding};
use super::Finding;

/// One HTTP answer: status, lower-case header names, and the body when it is JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub json: Option<serde_json::Value>,
}

/// An HTTP answer, or why there was none.
pub type Answer = Result<HttpAnswer, String>;

#[async_trait]
pub trait ServiceProbe: Send + Sync {
    /// Sends `method` to `url` without credentials.
    async fn request(&self, method: &str, url: &str) -> Answer;
    /// The protocol versions below TLS 1.2 that `host:port` accepts (empty: none).
    async fn legacy_tls(&self, host: &str, port: u16) -> Result<Vec<u16>, String>;
}

/// The GDPR endpoints and the method each answers to.
pub const GDPR_ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/api/gdpr/export"),
    ("POST", "/api/gdpr/delete"),
    ("GET", "/api/gdpr/consent"),
];

/// What the service answered.
#[derive(Debug, Clone)]
pub struct LiveFacts {
    pub url: String,
    pub health: Answer,
    pub ready: Answer,
    pub jwks: Answer,
    /// (method and path, answer) for each of [`GDPR_ENDPOINTS`].
    pub gdpr: Vec<(String, Answer)>,
    /// The versions below TLS 1.2 the server accepts; `None` for a plain-HTTP URL.
    pub legacy_tls: Option<Result<Vec<u16>, String>>,
}

/// Asks the service everything the checks need, concurrently.
pub async fn gather(probe: &dyn ServiceProbe, base_url: &str) -> LiveFacts {
    let base = base_url.trim_end_matches('/');
    let at = |path: &str| format!("{base}{path}");
    let gdpr = futures::future::join_all(GDPR_ENDPOINTS.iter().map(|(method, path)| {
        let url = at(path);
        async move { (format!("{method} {path}"), probe.request(method, &url).await) }
    }));
    let (health_url, ready_url, jwks_url) = (at("/health"), at("/ready"), at("/.well-known/jwks.json"));
    let legacy_tls = async {
        let url = reqwest::Url::parse(base).ok().filter(|u| u.scheme() == "https")?;
        let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
        Some(
            probe
                .legacy_tls(&host, url.port_or_known_default().unwrap_or(443))
                .await,
        )
    };
    let (health, ready, jwks, gdpr, legacy_tls) = tokio::join!(
        probe.request("GET", &health_url),
        probe.request("GET", &ready_url),
        probe.request("GET", &jwks_url),
        gdpr,
        legacy_tls
    );
    LiveFacts {
        url: base.to_owned(),
        health,
        ready,
        jwks,
        gdpr,
        legacy_tls,
    }
}

/// The findings of the live-service checks.
pub fn evaluate(facts: &LiveFacts) -> Vec<Finding> {
    let url = facts.url.as_str();
    let mut out = Vec::new();
    let https = url.starts_with("https://");
    const EXPECTED_TLS: &str = "HTTPS with TLS 1.2 or later only";
    match (&facts.health, &facts.legacy_tls, https) {
        (_, _, false) | (_, None, true) => {
            out.push(finding("service-tls", url, None, false, "plain HTTP", EXPECTED_TLS))
        }
        (Err(e), _, true) => out.push(finding(
            "service-tls",
            url,
            None,
            false,
            format!("no TLS 1.2+ handshake: {e}"),
            EXPECTED_TLS,
        )),
        (Ok(_), Some(Ok(legacy)), true) if legacy.is_empty() => out.push(finding(
            "service-tls",
            url,
            None,
            true,
            "TLS 1.2+ handshake succeeded; TLS 1.0 and 1.1 refused",
            EXPECTED_TLS,
        )),
        (Ok(_), Some(Ok(legacy)), true) => {
            let names: Vec<String> = legacy.iter().map(|v| super::legacy_tls::version_name(*v)).collect();
            out.push(finding(
                "service-tls",
                url,
                None,
                false,
                format!("also accepts {}", names.join(" and ")),
                EXPECTED_TLS,
            ));
        }
        (Ok(_), Some(Err(e)), true) => out.push(error_finding(
            "service-tls",
            url,
            None,
            &format!("probing for TLS 1.0/1.1: {e}"),
        )),
    }
    match &facts.health {
        Ok(answer) => {
            let h = |name: &str| answer.headers.get(name).map(String::as_str);
            let mut missing = Vec::new();
            if !h("strict-transport-security").is_some_and(|v| v.contains("max-age=") && !v.contains("max-age=0")) {
                missing.push("Strict-Transport-Security");
            }
            if !h("x-content-type-options").is_some_and(|v| v.eq_ignore_ascii_case("nosniff")) {
                missing.push("X-Content-Type-Options: nosniff");
            }
            let csp = h("content-security-policy");
            if h("x-frame-options").is_none() && !csp.is_some_and(|v| v.contains("frame-ancestors")) {
                missing.push("X-Frame-Options");
            }
            if csp.is_none() {
                missing.push("Content-Security-Policy");
            }
            out.push(finding(
                "service-security-headers",
                url,
                None,
                missing.is_empty(),
                if missing.is_empty() {
                    "HSTS, nosniff, frame options and CSP present".to_owned()
                } else {
                    format!("missing {}", missing.join(", "))
                },
                "HSTS, X-Content-Type-Options, X-Frame-Options, Content-Security-Policy",
            ));
        }
        Err(e) => out.push(error_finding("service-security-headers", url, None, e)),
    }
    match (&facts.health, &facts.ready) {
        (Err(e), _) | (_, Err(e)) => out.push(finding(
            "service-health-ready",
            url,
            None,
            false,
            format!("no answer: {e}"),
            "/health 200, /ready 200",
        )),
        (Ok(h), Ok(r)) => out.push(finding(
            "service-health-ready",
            url,
            None,
            h.status == 200 && r.status == 200,
            format!("/health {}, /ready {}", h.status, r.status),
            "/health 200, /ready 200",
        )),
    }
    match &facts.jwks {
        Err(e) => out.push(finding(
            "service-jwks",
            url,
            None,
            false,
            format!("no answer: {e}"),
            "200 with keys",
        )),
        Ok(a) => {
            let keys = a
                .json
                .as_ref()
                .and_then(|j| j.get("keys"))
                .and_then(|k| k.as_array())
                .map(Vec::len);
            out.push(finding(
                "service-jwks",
                url,
                None,
                a.status == 200 && keys.is_some_and(|k| k > 0),
                match keys {
                    Some(k) => format!("{} with {k} key(s)", a.status),
                    None => format!("{} without a key set", a.status),
                },
                "200 with keys",
            ));
        }
    }
    let mut answers = Vec::new();
    let mut ok = true;
    for (endpoint, answer) in &facts.gdpr {
        match answer {
            Ok(a) => {
                ok &= a.status == 401 || a.status == 403;
                answers.push(format!("{endpoint} {}", a.status));
            }
            Err(e) => {
                ok = false;
                answers.push(format!("{endpoint} no answer ({e})"));
            }
        }
    }
    out.push(finding(
        "service-gdpr-endpoints",
        url,
        None,
        ok,
        answers.join(", "),
        "401 or 403 without credentials",
    ));
    out
}

/// The probe over the service client (no redirects followed, TLS 1.2 at least), and the hand-made
/// ClientHello for the protocols below TLS 1.2.
pub struct LiveProbe {
    http: suma_http::ServiceClient,
}

impl LiveProbe {
    pub fn new(timeout: Duration) -> Self {
        Self {
            http: suma_http::ServiceClient::new(timeout),
        }
    }
}

#[async_trait]
impl ServiceProbe for LiveProbe {
    async fn request(&self, method: &str, url: &str) -> Answer {
        let response = self
            .http
            .send(method, url, suma_http::Request::default())
            .await
            .map_err(|e| e.reason)?;
        Ok(HttpAnswer {
            status: response.status,
            headers: response.headers,
            json: response.json,
        })
    }

    async fn legacy_tls(&self, host: &str, port: u16) -> Result<Vec<u16>, String> {
        use super::legacy_tls::{accepts, TLS1_0, TLS1_1};
        let (tls10, tls11) = tokio::join!(
            accepts(host, port, TLS1_0, self.http.timeout()),
            accepts(host, port, TLS1_1, self.http.timeout())
        );
        Ok([(TLS1_0, tls10?), (TLS1_1, tls11?)]
            .into_iter()
            .filter_map(|(version, accepted)| accepted.then_some(version))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Status;

    fn answer(status: u16, headers: &[(&str, &str)], json: Option<serde_json::Value>) -> Answer {
        Ok(HttpAnswer {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            json,
        })
    }

    const GOOD_HEADERS: &[(&str, &str)] = &[
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ];

    fn facts(url: &str, headers: &[(&str, &str)], gdpr_status: u16) -> LiveFacts {
        LiveFacts {
            url: url.into(),
            health: answer(200, headers, None),
            ready: answer(200, &[], None),
            jwks: answer(200, &[], Some(serde_json::json!({"keys": [{"kid": "a"}]}))),
            gdpr: GDPR_ENDPOINTS
                .iter()
                .map(|(m, p)| (format!("{m} {p}"), answer(gdpr_status, &[], None)))
                .collect(),
            legacy_tls: url.starts_with("https://").then(|| Ok(Vec::new())),
        }
    }

    fn status_of(findings: &[Finding], check: &str) -> (Status, String) {
        let f = findings.iter().find(|f| f.check_id == check).unwrap();
        (f.status, f.observed.clone())
    }

    #[test]
    fn a_compliant_https_service_passes_everything() {
        let findings = evaluate(&facts("https://auth.example.com", GOOD_HEADERS, 401));
        assert!(findings.iter().all(|f| f.status == Status::Pass), "{findings:#?}");
        assert_eq!(findings.len(), 5);
    }

    #[test]
    fn each_live_check_fails_on_its_own_cause() {
        let cases: Vec<(LiveFacts, &str, &str)> = vec![
            (
                facts("http://127.0.0.1:1", GOOD_HEADERS, 401),
                "service-tls",
                "plain HTTP",
            ),
            (
                {
                    let mut f = facts("https://a", GOOD_HEADERS, 401);
                    f.legacy_tls = Some(Ok(vec![
                        super::super::legacy_tls::TLS1_0,
                        super::super::legacy_tls::TLS1_1,
                    ]));
                    f
                },
                "service-tls",
                "also accepts TLS 1.0 and TLS 1.1",
            ),
            (
                facts("https://a", &GOOD_HEADERS[1..], 401),
                "service-security-headers",
                "missing Strict-Transport-Security",
            ),
            (
                {
                    let mut f = facts("https://a", GOOD_HEADERS, 401);
                    f.ready = answer(503, &[], None);
                    f
                },
                "service-health-ready",
                "/health 200, /ready 503",
            ),
            (
                {
                    let mut f = facts("https://a", GOOD_HEADERS, 401);
                    f.jwks = answer(200, &[], Some(serde_json::json!({"keys": []})));
                    f
                },
                "service-jwks",
                "200 with 0 key(s)",
            ),
            (
                facts("https://a", GOOD_HEADERS, 404),
                "service-gdpr-endpoints",
                "GET /api/gdpr/export 404, POST /api/gdpr/delete 404, GET /api/gdpr/consent 404",
            ),
            (
                facts("https://a", GOOD_HEADERS, 200),
                "service-gdpr-endpoints",
                "GET /api/gdpr/export 200, POST /api/gdpr/delete 200, GET /api/gdpr/consent 200",
            ),
        ];
        for (facts, check, observed) in cases {
            let findings = evaluate(&facts);
            assert_eq!(
                status_of(&findings, check),
                (Status::Fail, observed.to_owned()),
                "{check}"
            );
        }
    }

    #[test]
    fn an_unreachable_service_is_an_error_for_headers_and_a_failure_for_health() {
        let mut f = facts("https://a", GOOD_HEADERS, 401);
        f.health = Err("connection failed".into());
        let findings = evaluate(&f);
        assert_eq!(status_of(&findings, "service-security-headers").0, Status::Error);
        assert_eq!(status_of(&findings, "service-health-ready").0, Status::Fail);
        assert_eq!(status_of(&findings, "service-tls").0, Status::Fail);
    }

    #[test]
    fn tls_passes_only_when_the_old_versions_are_refused_and_a_failed_probe_is_an_error() {
        let findings = evaluate(&facts("https://a", GOOD_HEADERS, 401));
        assert_eq!(
            status_of(&findings, "service-tls"),
            (
                Status::Pass,
                "TLS 1.2+ handshake succeeded; TLS 1.0 and 1.1 refused".to_owned()
            )
        );
        let mut f = facts("https://a", GOOD_HEADERS, 401);
        f.legacy_tls = Some(Err("no TLS answer from a:443 within 5s".into()));
        let findings = evaluate(&f);
        let tls = findings.iter().find(|f| f.check_id == "service-tls").unwrap();
        assert_eq!(tls.status, Status::Error);
        assert!(tls.detail.as_deref().unwrap().contains("within 5s"));
    }
}
