//! The one HTTP client suma talks to the service with: health and version probes ([`probe`]), the admin
//! API ([`admin`]), the checks runbooks run (`http.check`), the DR verification, the live compliance
//! checks and the JWT rotation's JWKS and introspection calls all go through [`ServiceClient`].
//!
//! One client means one set of manners: a timeout on every call, `suma/VERSION` as the user agent,
//! TLS 1.2 at least, redirects never followed (a redirect is an answer worth reporting, and a check
//! must not be satisfied by whatever the redirect points at), and one way of describing a failure.

pub mod admin;
pub mod check;
pub mod probe;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A call that got no HTTP answer: which request, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{method} {url}: {reason}")]
pub struct HttpError {
    pub method: String,
    pub url: String,
    /// `timed out`, `connection failed: …`, or the client's own words.
    pub reason: String,
}

/// What the service answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case; values that are not text are left out.
    pub headers: BTreeMap<String, String>,
    /// The body when it is JSON.
    pub json: Option<Value>,
    /// The body as text when it is not JSON (the first 200 characters), for messages.
    pub text: Option<String>,
    pub latency: Duration,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A request beyond a plain GET: a JSON body, a bearer token, query parameters.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub body: Option<&'a Value>,
    pub bearer: Option<&'a str>,
    pub query: &'a [(&'a str, String)],
}

/// The client. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    client: reqwest::Client,
    timeout: Duration,
}

impl ServiceClient {
    /// A client whose every call ends within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .user_agent(concat!("suma/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        Self { client, timeout }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Response, HttpError> {
        self.send("GET", url, Request::default()).await
    }

    /// `POST url` with a JSON body.
    pub async fn post_json(&self, url: &str, body: &Value) -> Result<Response, HttpError> {
        let request = Request {
            body: Some(body),
            ..Request::default()
        };
        self.send("POST", url, request).await
    }

    /// `method url` with what `request` adds.
    pub async fn send(&self, method: &str, url: &str, request: Request<'_>) -> Result<Response, HttpError> {
        let failed = |reason: String| HttpError {
            method: method.to_owned(),
            url: url.to_owned(),
            reason,
        };
        let verb = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| failed(e.to_string()))?;
        let mut builder = self.client.request(verb, url);
        if !request.query.is_empty() {
            builder = builder.query(request.query);
        }
        if let Some(body) = request.body {
            builder = builder.json(body);
        }
        if let Some(token) = request.bearer {
            builder = builder.bearer_auth(token);
        }
        let started = Instant::now();
        let response = builder.send().await.map_err(|e| failed(describe(&e)))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
            .collect();
        let bytes = response.bytes().await.map_err(|e| failed(describe(&e)))?;
        let latency = started.elapsed();
        let json = serde_json::from_slice::<Value>(&bytes).ok();
        let text = json
            .is_none()
            .then(|| String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>())
            .filter(|t| !t.is_empty());
        Ok(Response {
            status,
            headers,
            json,
            text,
            latency,
        })
    }
}

/// A failed call in a few words: a timeout and a refused connection are told apart from the rest, and
/// the cause chain is kept (TLS and DNS errors hide in it).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        format!("connection failed: {}", suma_core::error::chain(e))
    } else {
        suma_core::error::chain(e)
    }
}
