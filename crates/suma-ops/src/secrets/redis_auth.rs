//! `redis-auth`: a Redis URL whose password is an ElastiCache replication group's AUTH token (the
//! service's `REDIS_URL`, `rediss://:TOKEN@HOST:PORT/DB`).
//!
//! ElastiCache rotates a token in two calls: ROTATE adds the new token beside the one in use, SET leaves
//! only the new one. So the rotation is: `create` rebuilds the URL with a new token; `set` ROTATEs it in
//! (tasks still on the old URL keep working); `test` signs in with the new URL; `finish` moves
//! `AWSCURRENT`; `consumers` redeploys the services onto the new URL; `revoke` SETs the new token, so
//! the old one stops working only after nothing uses it. Undo SETs the previous token back as the only
//! one. Each call leaves the group `modifying`; every step waits for `available` before the next.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use suma_aws::elasticache::{AuthToken, AuthTokenUpdate, CacheApi};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};

use super::kinds::random_string;
use super::{Facts, Rotation, RotationError};
use crate::config::Alphabet;

/// Characters of a new token: ElastiCache accepts 16 to 128 printable characters except `/`, `"`, `@`
/// and spaces; alphanumerics need no escaping in a URL either.
const TOKEN_LENGTH: usize = 64;

fn failed(message: impl Into<String>) -> RotationError {
    RotationError::Failed(message.into())
}

/// A Redis URL, checked as the service checks it (`redis://` or `rediss://`, a host).
pub fn parse_url(value: &str) -> Result<reqwest::Url, RotationError> {
    let url = reqwest::Url::parse(value.trim()).map_err(|e| failed(format!("the value is not a Redis URL: {e}")))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(failed(format!(
            "the value is a `{}` URL; the service needs redis:// or rediss://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(failed("the Redis URL has no host"));
    }
    Ok(url)
}

/// The URL's token (its password), percent-decoded.
fn token_of(url: &reqwest::Url) -> Result<String, RotationError> {
    let raw = url
        .password()
        .ok_or_else(|| failed("the Redis URL carries no AUTH token (no password)"))?;
    super::database::percent_decode(raw).ok_or_else(|| failed("the Redis URL's password is not valid percent-encoding"))
}

/// The rotation of one replication group's token.
pub struct RedisAuthRotation {
    pub cache: Arc<dyn CacheApi>,
    pub replication_group: String,
    /// How long a modification may keep the group `modifying`.
    pub timeout: Duration,
    pub poll: Duration,
}

impl RedisAuthRotation {
    /// Applies `token` with `update`, then waits until the group is `available` again.
    async fn apply(&self, token: String, update: AuthTokenUpdate) -> Result<Facts, RotationError> {
        let group = &self.replication_group;
        let aws = |e: suma_aws::AwsError| failed(e.to_string());
        self.cache
            .update_auth_token(group, &AuthToken(token), update)
            .await
            .map_err(aws)?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let state = self.cache.describe_replication_group(group).await.map_err(aws)?;
            if state.status == "available" {
                return Ok(Facts::from([
                    ("auth_token_update".to_owned(), json!(update.as_str())),
                    ("replication_group".to_owned(), json!(group)),
                ]));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(format!(
                    "replication group `{group}` is still `{}` {} after the {} token update\nhint: `suma secrets resume NAME` waits again once it is available",
                    state.status,
                    humantime::format_duration(self.timeout),
                    update.as_str()
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

#[async_trait]
impl Rotation for RedisAuthRotation {
    async fn generate(&self, current: &str) -> Result<String, RotationError> {
        let mut url = parse_url(current)?;
        // The kind is for a group with AUTH on: a URL without a token is not its URL.
        token_of(&url)?;
        url.set_password(Some(&random_string(TOKEN_LENGTH, Alphabet::Alphanumeric)))
            .map_err(|()| failed("the Redis URL cannot carry a password"))?;
        Ok(url.to_string())
    }
    async fn set(&self, _current: &str, pending: &str) -> Result<Facts, RotationError> {
        let token = token_of(&parse_url(pending)?)?;
        self.apply(token, AuthTokenUpdate::Rotate).await
    }
    async fn test(&self, pending: &str) -> Result<Facts, RotationError> {
        let url = parse_url(pending)?;
        sign_in(&url).await?;
        Ok(Facts::from([("signed_in".to_owned(), json!(url.host_str()))]))
    }
    async fn finished(&self, _new: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn undo_set(&self, current: &str, _pending: &str) -> Result<(), RotationError> {
        let token = token_of(&parse_url(current)?)?;
        self.apply(token, AuthTokenUpdate::Set).await.map(|_| ())
    }
    async fn revoke(&self, new: &str) -> Result<Facts, RotationError> {
        let token = token_of(&parse_url(new)?)?;
        self.apply(token, AuthTokenUpdate::Set).await
    }
}

/// `AUTH` and `PING` with the URL's credentials, over TLS for `rediss://`; the connection goes where
/// `SUMA_DB_CONNECT_TO` sends the host (a port forward), the TLS name stays the URL's host.
pub async fn sign_in(url: &reqwest::Url) -> Result<(), RotationError> {
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
    let port = url.port().unwrap_or(6379);
    let (to_host, to_port) = super::database::routed(&host, port);
    let work = async {
        let tcp = tokio::net::TcpStream::connect((to_host, to_port))
            .await
            .map_err(|e| failed(format!("cannot connect to Redis at {host}:{port}: {e}")))?;
        if url.scheme() == "rediss" {
            let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| failed(format!("TLS setup: {e}")))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| failed(format!("`{host}` is not a TLS server name: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| failed(format!("TLS with Redis at {host}:{port}: {e}")))?;
            authenticate(tls, url).await
        } else {
            authenticate(tcp, url).await
        }
    };
    tokio::time::timeout(Duration::from_secs(15), work)
        .await
        .map_err(|_| failed(format!("Redis at {host}:{port} did not answer in 15 s")))?
}

async fn authenticate(stream: impl AsyncRead + AsyncWrite + Unpin, url: &reqwest::Url) -> Result<(), RotationError> {
    let token = token_of(url)?;
    let user = super::database::percent_decode(url.username()).unwrap_or_default();
    let mut auth = vec!["AUTH".to_owned()];
    if !user.is_empty() {
        auth.push(user);
    }
    auth.push(token);
    let mut stream = BufReader::new(stream);
    for (command, want) in [(auth, "+OK"), (vec!["PING".to_owned()], "+PONG")] {
        let mut frame = format!("*{}\r\n", command.len());
        for part in &command {
            frame.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        stream
            .get_mut()
            .write_all(frame.as_bytes())
            .await
            .map_err(|e| failed(format!("Redis: {e}")))?;
        let mut line = String::new();
        stream
            .read_line(&mut line)
            .await
            .map_err(|e| failed(format!("Redis: {e}")))?;
        let line = line.trim_end();
        if line != want {
            // An error line names the reason (`-WRONGPASS …`); it never echoes the token.
            return Err(failed(format!(
                "Redis refused `{}` with the new token: {}",
                command[0],
                if line.is_empty() { "no answer" } else { line }
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use suma_aws::elasticache::ReplicationGroup;
    use suma_aws::AwsError;

    #[derive(Default)]
    struct Group {
        calls: Mutex<Vec<(String, &'static str)>>,
        modifying_polls: Mutex<u32>,
    }

    #[async_trait]
    impl CacheApi for Group {
        async fn describe_replication_group(&self, id: &str) -> Result<ReplicationGroup, AwsError> {
            let mut left = self.modifying_polls.lock().unwrap();
            let status = if *left > 0 {
                *left -= 1;
                "modifying"
            } else {
                "available"
            };
            Ok(ReplicationGroup {
                id: id.to_owned(),
                status: status.to_owned(),
                auth_token_enabled: true,
                transit_encryption: true,
                at_rest_encryption: true,
                primary_endpoint: None,
            })
        }
        async fn update_auth_token(
            &self,
            id: &str,
            token: &AuthToken,
            update: AuthTokenUpdate,
        ) -> Result<ReplicationGroup, AwsError> {
            self.calls.lock().unwrap().push((token.0.clone(), update.as_str()));
            *self.modifying_polls.lock().unwrap() = 2;
            self.describe_replication_group(id).await
        }
    }

    fn rotation(group: Arc<Group>) -> RedisAuthRotation {
        RedisAuthRotation {
            cache: group,
            replication_group: "auth-staging".to_owned(),
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn a_new_token_is_rotated_in_and_set_alone_after_the_consumers() {
        let group = Arc::new(Group::default());
        let rotation = rotation(group.clone());
        let current = "rediss://:old-token-0123456789abcdef@primary.cache.example:6379/0?protocol=resp3";
        let pending = rotation.generate(current).await.unwrap();
        let url = parse_url(&pending).unwrap();
        let token = token_of(&url).unwrap();
        assert_eq!(token.len(), TOKEN_LENGTH);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(
            pending.replace(&token, "T"),
            "rediss://:T@primary.cache.example:6379/0?protocol=resp3",
            "only the token changes"
        );
        rotation.set(current, &pending).await.unwrap();
        rotation.revoke(&pending).await.unwrap();
        rotation.undo_set(current, &pending).await.unwrap();
        let calls = group.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                (token.clone(), "ROTATE"),
                (token, "SET"),
                ("old-token-0123456789abcdef".to_owned(), "SET")
            ]
        );
    }

    #[tokio::test]
    async fn values_the_service_cannot_use_are_refused() {
        let rotation = rotation(Arc::new(Group::default()));
        for (value, message) in [
            ("not a url", "not a Redis URL"),
            ("postgres://u:p@h/db", "`postgres` URL"),
            ("redis://h:6379", "no AUTH token"),
        ] {
            let err = match rotation.generate(value).await {
                Err(e) => e.to_string(),
                Ok(v) => match rotation.set(value, &v).await {
                    Err(e) => e.to_string(),
                    Ok(_) => panic!("{value} accepted"),
                },
            };
            assert!(err.contains(message), "{value}: {err}");
        }
    }

    #[tokio::test]
    async fn a_group_stuck_modifying_is_reported_with_what_to_do() {
        let group = Arc::new(Group::default());
        let mut stuck = rotation(group.clone());
        stuck.timeout = Duration::from_millis(0);
        let err = stuck
            .set("", "redis://:t0123456789abcdef@h:6379")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("still `modifying`") && err.contains("suma secrets resume"),
            "{err}"
        );
    }
}
