//! [`ApiCaller`] on the wire: the request built for the service's protocol, signed with SigV4 with the
//! session's credentials, sent to the region's endpoint (or `AWS_ENDPOINT_URL`, as the SDK clients do),
//! and the answer read back as JSON. Throttling and AWS-side failures of a read-only operation are
//! tried again, as the SDK's standard retry does; a mutating one is tried once, since its first try may
//! have taken effect.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sts::config::ProvideCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::Value;

use crate::api_call::{access, query, xml, Access, ApiCaller, Protocol, ServiceSpec};
use crate::{classify_code, AwsError, AwsErrorKind};

pub(crate) struct SdkApiCaller {
    config: SdkConfig,
    region: String,
    http: reqwest::Client,
}

impl SdkApiCaller {
    pub(crate) fn new(config: &SdkConfig, region: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build()
            .expect("a reqwest client with timeouts builds");
        Self {
            config: config.clone(),
            region: region.to_owned(),
            http,
        }
    }

    fn endpoint(&self, service: &ServiceSpec) -> String {
        match self.config.endpoint_url() {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://{}.{}.amazonaws.com", service.endpoint_prefix, self.region),
        }
    }

    async fn attempt(&self, service: &'static ServiceSpec, operation: &str, input: &Value) -> Result<Value, AwsError> {
        let error = |kind, detail: String| AwsError::new(service.display, "call", operation, kind, detail);
        let (content_type, target, body) = match service.protocol {
            Protocol::Json { version, target_prefix } => {
                let body = if input.is_null() {
                    "{}".to_owned()
                } else {
                    input.to_string()
                };
                (
                    format!("application/x-amz-json-{version}"),
                    Some(format!("{target_prefix}.{operation}")),
                    body,
                )
            }
            Protocol::Query { api_version } | Protocol::Ec2 { api_version } => {
                let ec2 = matches!(service.protocol, Protocol::Ec2 { .. });
                let body =
                    query::form_body(operation, api_version, input, ec2).map_err(|e| error(AwsErrorKind::Other, e))?;
                (
                    "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
                    None,
                    body,
                )
            }
        };
        let credentials = self
            .config
            .credentials_provider()
            .ok_or_else(|| {
                error(
                    AwsErrorKind::AccessDenied,
                    "no AWS credentials are configured".to_owned(),
                )
            })?
            .provide_credentials()
            .await
            .map_err(|e| {
                error(
                    AwsErrorKind::AccessDenied,
                    format!("the credentials did not resolve: {e}"),
                )
            })?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| error(AwsErrorKind::Other, format!("signing: {e}")))?
            .into();
        let url = format!("{}/", self.endpoint(service));
        let mut headers = vec![("content-type", content_type.as_str())];
        if let Some(target) = &target {
            headers.push(("x-amz-target", target.as_str()));
        }
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| error(AwsErrorKind::Other, format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| error(AwsErrorKind::Other, format!("signing: {e}")))?
            .into_parts();
        let mut request = self.http.post(&url).body(body.clone());
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| error(AwsErrorKind::Unreachable, format!("no answer from {url}: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| error(AwsErrorKind::Unreachable, format!("the answer was cut: {e}")))?;
        if status.is_success() {
            return match service.protocol {
                Protocol::Json { .. } if text.trim().is_empty() => Ok(Value::Object(Default::default())),
                Protocol::Json { .. } => serde_json::from_str(&text)
                    .map_err(|e| error(AwsErrorKind::Other, format!("the answer is not JSON: {e}"))),
                _ => xml::query_result(operation, &text).map_err(|e| error(AwsErrorKind::Other, e)),
            };
        }
        let (code, message) = match service.protocol {
            Protocol::Json { .. } => json_error(&text),
            _ => xml::query_error(&text),
        }
        .unwrap_or_else(|| (format!("HTTP {}", status.as_u16()), text.chars().take(300).collect()));
        let kind = match classify_code(&code) {
            AwsErrorKind::Other if status.is_server_error() => AwsErrorKind::ServerError,
            kind => kind,
        };
        Err(error(kind, format!("{code}: {message}")))
    }
}

/// The code and message of an AWS JSON error answer (`{"__type": "ns#Code", "message": "..."}`).
fn json_error(text: &str) -> Option<(String, String)> {
    let body: Value = serde_json::from_str(text).ok()?;
    let kind = body.get("__type").or_else(|| body.get("code"))?.as_str()?;
    let code = kind
        .rsplit('#')
        .next()
        .unwrap_or(kind)
        .split(':')
        .next()
        .unwrap_or(kind);
    let message = body
        .get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some((code.to_owned(), message.to_owned()))
}

/// Tries of a read-only call; the wait before the second doubles after each failure.
const READ_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

#[async_trait]
impl ApiCaller for SdkApiCaller {
    async fn call(&self, service: &'static ServiceSpec, operation: &str, input: &Value) -> Result<Value, AwsError> {
        let attempts = if access(service.name, operation) == Access::ReadOnly {
            READ_ATTEMPTS
        } else {
            1
        };
        let mut backoff = FIRST_BACKOFF;
        let mut tried = 1;
        loop {
            match self.attempt(service, operation, input).await {
                Err(e)
                    if tried < attempts
                        && matches!(
                            e.kind,
                            AwsErrorKind::Throttled | AwsErrorKind::ServerError | AwsErrorKind::Unreachable
                        ) =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    tried += 1;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_give_their_code_without_the_namespace() {
        let ecs = r#"{"__type":"com.amazonaws.ecs#ClusterNotFoundException","message":"Cluster not found."}"#;
        assert_eq!(
            json_error(ecs),
            Some(("ClusterNotFoundException".to_owned(), "Cluster not found.".to_owned()))
        );
        let secrets = r#"{"__type":"ResourceNotFoundException","Message":"no such secret"}"#;
        assert_eq!(
            json_error(secrets),
            Some(("ResourceNotFoundException".to_owned(), "no such secret".to_owned()))
        );
        let with_suffix = r#"{"__type":"ThrottlingException:http://internal","message":"slow down"}"#;
        assert_eq!(json_error(with_suffix).unwrap().0, "ThrottlingException");
        assert_eq!(json_error("<html/>"), None);
    }
}
