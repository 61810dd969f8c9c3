//! Forwarding one AWS API request to moto unchanged, for the proxies that stand in front of it (the
//! fault proxy, the ECS agent's overlay). moto does not check signatures, so headers pass as they are.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// moto's answer to a forwarded request.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn into_response(self) -> Response {
        let mut response = Response::builder().status(self.status);
        for (name, value) in &self.headers {
            if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING && name != header::CONNECTION {
                response = response.header(name, value);
            }
        }
        response.body(Body::from(self.body)).expect("a response")
    }
}

/// Sends `parts` and `body` to `upstream` (path and query kept).
pub async fn send(
    client: &reqwest::Client,
    upstream: &reqwest::Url,
    parts: &axum::http::request::Parts,
    body: Bytes,
) -> Result<Answer, String> {
    let mut url = upstream.clone();
    url.set_path(parts.uri.path());
    url.set_query(parts.uri.query());
    let mut request = client.request(parts.method.clone(), url).body(body);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.map_err(|e| format!("upstream: {e}"))?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.map_err(|e| format!("upstream body: {e}"))?;
    Ok(Answer { status, headers, body })
}

/// Forwards `request` to `upstream` and returns moto's answer as it is.
pub async fn forward(client: &reqwest::Client, upstream: &reqwest::Url, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 64 * 1024 * 1024).await else {
        return (StatusCode::BAD_REQUEST, "request body too large").into_response();
    };
    match send(client, upstream, &parts, body).await {
        Ok(answer) => answer.into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    }
}
