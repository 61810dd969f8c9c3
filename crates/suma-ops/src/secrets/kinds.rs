//! What each kind of secret does at each step of the rotation ([`Rotation`]): `random` values, keyrings
//! and the service's JWT signing key; database credentials are [`super::database`]'s.

use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::Rng as _;
use serde::Serialize;
use serde_json::json;

pub use super::database::{alternate_user, CredentialForm, DbCredentials, DbPasswordRotation};
use super::{Facts, Rotation, RotationError};
use crate::config::{Alphabet, JwtSpec, RandomSpec};

fn failed(message: impl Into<String>) -> RotationError {
    RotationError::Failed(message.into())
}

/// `length` characters of `alphabet` from the operating system's CSPRNG.
pub fn random_string(length: usize, alphabet: Alphabet) -> String {
    let chars: &[u8] = match alphabet {
        Alphabet::Alphanumeric => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        Alphabet::Base64url => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        Alphabet::Hex => b"0123456789abcdef",
    };
    let mut rng = rand::rngs::OsRng;
    (0..length)
        .map(|_| char::from(chars[rng.gen_range(0..chars.len())]))
        .collect()
}

fn fits(value: &str, alphabet: Alphabet) -> bool {
    value.chars().all(|c| match alphabet {
        Alphabet::Alphanumeric => c.is_ascii_alphanumeric(),
        Alphabet::Base64url => c.is_ascii_alphanumeric() || c == '-' || c == '_',
        Alphabet::Hex => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
    })
}

/// Encryption keys, HMAC keys, API keys: a fresh random string; nothing downstream to set.
pub struct RandomRotation {
    pub spec: RandomSpec,
}

#[async_trait]
impl Rotation for RandomRotation {
    async fn generate(&self, _current: &str) -> Result<String, RotationError> {
        Ok(random_string(self.spec.length, self.spec.alphabet))
    }
    async fn set(&self, _current: &str, _pending: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn test(&self, pending: &str) -> Result<Facts, RotationError> {
        if pending.chars().count() != self.spec.length || !fits(pending, self.spec.alphabet) {
            return Err(failed(format!(
                "the stored value is not {} characters of {:?}",
                self.spec.length, self.spec.alphabet
            )));
        }
        Ok(Facts::from([("length".to_owned(), json!(self.spec.length))]))
    }
    async fn finished(&self, _new: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn undo_set(&self, _current: &str, _pending: &str) -> Result<(), RotationError> {
        Ok(())
    }
}

/// A keyring: `kid:base64url-key` entries separated by commas, the first signs and the others only
/// verify (the service's `RESET_TOKEN_KEYS`). A rotation puts a new key first and keeps the one that signed
/// until now, so what it signed still verifies through the overlap; older keys are dropped.
pub struct KeyringRotation {
    /// Bytes of each new key (at least 32).
    pub key_bytes: usize,
}

/// A keyring's entries as `(kid, key)`, checked: at least one, unique kids, keys of at least 32 bytes.
pub fn keyring_entries(value: &str) -> Result<Vec<(String, String)>, RotationError> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for entry in value.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty()) {
        let (kid, key) = entry
            .split_once(':')
            .ok_or_else(|| failed("an entry is not `kid:base64url-key`"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(key.trim_end_matches('='))
            .map_err(|_| failed(format!("the key of `{kid}` is not base64url")))?;
        if bytes.len() < 32 {
            return Err(failed(format!(
                "the key of `{kid}` has {} bytes; at least 32",
                bytes.len()
            )));
        }
        if entries.iter().any(|(k, _)| k == kid) {
            return Err(failed(format!("kid `{kid}` appears twice")));
        }
        entries.push((kid.to_owned(), key.to_owned()));
    }
    if entries.is_empty() {
        return Err(failed("the keyring has no entry"));
    }
    Ok(entries)
}

#[async_trait]
impl Rotation for KeyringRotation {
    async fn generate(&self, current: &str) -> Result<String, RotationError> {
        let current = keyring_entries(current)?;
        let mut key = vec![0u8; self.key_bytes.max(32)];
        rand::rngs::OsRng.fill(key.as_mut_slice());
        let kid = format!("k{}", random_string(10, Alphabet::Alphanumeric).to_ascii_lowercase());
        Ok(format!(
            "{kid}:{},{}:{}",
            URL_SAFE_NO_PAD.encode(&key),
            current[0].0,
            current[0].1
        ))
    }
    async fn set(&self, _current: &str, _pending: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn test(&self, pending: &str) -> Result<Facts, RotationError> {
        let entries = keyring_entries(pending)?;
        Ok(Facts::from([
            ("signing_kid".to_owned(), json!(entries[0].0)),
            (
                "verify_kids".to_owned(),
                json!(entries.iter().skip(1).map(|e| &e.0).collect::<Vec<_>>()),
            ),
        ]))
    }
    async fn finished(&self, _new: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn undo_set(&self, _current: &str, _pending: &str) -> Result<(), RotationError> {
        Ok(())
    }
}

/// The kid (RFC 7638 thumbprint) the service publishes a private key PEM under.
pub fn kid_of_pem(pem: &str) -> Result<String, RotationError> {
    let key = jwt_keys::PublicKey::from_pem(pem).map_err(|e| failed(format!("not a JWT signing key: {e}")))?;
    Ok(key.kid().to_owned())
}

/// The service's JWT signing key: published by every task and past the JWKS cache age before it signs,
/// tested with a real token, then made the signer.
pub struct JwtRotation {
    pub spec: JwtSpec,
    /// The service's base URL: the load balancer, which spreads the checks over the tasks.
    pub service_url: reqwest::Url,
    pub http: suma_http::ServiceClient,
    pub poll: Duration,
    /// The services whose tasks must all show a change (their running count sizes the confirmation).
    pub ecs: std::sync::Arc<dyn crate::aws::ecs::EcsApi>,
    pub cluster: String,
    pub services: Vec<String>,
}

/// Consecutive answers that must show a change before it counts as seen by every task: three per running
/// task, so a round-robin load balancer (the ALB's default) reaches each task at least three times.
pub fn confirmations(running_tasks: i32) -> u32 {
    3 * running_tasks.max(1) as u32
}

/// `max-age` of a `Cache-Control` header, in seconds.
pub fn max_age(cache_control: &str) -> Option<u64> {
    cache_control
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse().ok())
}

#[derive(Serialize)]
struct TestClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: i64,
    exp: i64,
}

impl JwtRotation {
    async fn get(&self, path: &str) -> Result<suma_http::Response, RotationError> {
        let url = self.service_url.join(path).map_err(|e| failed(e.to_string()))?;
        let response = self.http.get(url.as_str()).await.map_err(|e| failed(e.to_string()))?;
        if !response.is_success() {
            return Err(failed(format!("GET {url} answered {}", response.status)));
        }
        if response.json.is_none() {
            return Err(failed(format!("GET {url}: the answer is not JSON")));
        }
        Ok(response)
    }

    /// The running tasks of the services that use the key.
    async fn running_tasks(&self) -> Result<i32, RotationError> {
        let services = self
            .ecs
            .describe_services(&self.cluster, &self.services)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(services.iter().map(|s| s.running).sum())
    }

    /// Polls until `check` holds on [`confirmations`] consecutive answers (every task behind the load
    /// balancer), up to `pickup_timeout`; returns the time it took, the tasks counted and the last answer.
    async fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
        path: &str,
    ) -> Result<(Duration, i32, suma_http::Response), RotationError> {
        let start = tokio::time::Instant::now();
        let tasks = self.running_tasks().await?;
        let needed = confirmations(tasks);
        let mut in_a_row = 0;
        loop {
            let last = self.get(path).await;
            match &last {
                Ok(answer) if answer.json.as_ref().is_some_and(&check) => {
                    in_a_row += 1;
                    if in_a_row >= needed {
                        return Ok((start.elapsed(), tasks, last?));
                    }
                    // The next answer at once: it comes from the next task.
                    continue;
                }
                _ => in_a_row = 0,
            }
            if start.elapsed() >= self.spec.pickup_timeout {
                let seen = last.map_or_else(|e| e.to_string(), |v| v.json.unwrap_or_default().to_string());
                return Err(failed(format!(
                    "{what} did not happen on every task ({needed} answers in a row for {tasks} running task(s)) within {} (last answer of {path}: {seen})\nhint: check that every task reloads its key set (SIGHUP or its reload interval)",
                    humantime::format_duration(self.spec.pickup_timeout)
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

#[async_trait]
impl Rotation for JwtRotation {
    async fn generate(&self, _current: &str) -> Result<String, RotationError> {
        let (algorithm, bits) = (self.spec.algorithm, self.spec.key_bits);
        // RSA generation takes long enough to stall the runtime's other work.
        let key = tokio::task::spawn_blocking(move || jwt_keys::generate(algorithm, bits))
            .await
            .map_err(|e| failed(format!("key generation stopped: {e}")))?
            .map_err(|e| failed(e.to_string()))?;
        Ok(key.pem)
    }

    async fn set(&self, _current: &str, pending: &str) -> Result<Facts, RotationError> {
        let kid = kid_of_pem(pending)?;
        let has_kid = |jwks: &serde_json::Value| {
            jwks["keys"]
                .as_array()
                .is_some_and(|keys| keys.iter().any(|k| k["kid"] == kid.as_str()))
        };
        let (took, tasks, answer) = self
            .wait_for(
                &format!("the JWKS publishing kid `{kid}`"),
                has_kid,
                "/.well-known/jwks.json",
            )
            .await?;
        // Clients may cache the JWKS this long: a token signed with the new key before a cached copy
        // expires would be rejected by them.
        let cache_age = answer
            .headers
            .get("cache-control")
            .and_then(|v| max_age(v))
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(cache_age)).await;
        Ok(Facts::from([
            ("kid".to_owned(), json!(kid)),
            ("published_after_ms".to_owned(), json!(took.as_millis() as u64)),
            ("tasks_confirmed".to_owned(), json!(tasks)),
            ("jwks_cache_age_waited_s".to_owned(), json!(cache_age)),
        ]))
    }

    async fn test(&self, pending: &str) -> Result<Facts, RotationError> {
        let key = jwt_keys::SigningKey::from_pem(pending).map_err(|e| failed(format!("not a JWT signing key: {e}")))?;
        let kid = key.kid().to_owned();
        let now = chrono::Utc::now().timestamp();
        let claims = TestClaims {
            iss: &self.spec.issuer,
            aud: &self.spec.audience,
            sub: "suma-rotation-test",
            iat: now,
            exp: now + 120,
        };
        let token = key
            .sign_jwt(Some("JWT"), &claims)
            .map_err(|e| failed(format!("the new key cannot sign: {e}")))?;
        let url = self
            .service_url
            .join("/api/auth/introspect")
            .map_err(|e| failed(e.to_string()))?;
        // Introspection needs an authenticated caller: an operator token, signed with the new key too (the
        // service trusts it as a published verify key), so the call itself proves the key as well.
        let caller =
            suma_http::admin::operator_token(pending, &self.spec.issuer, &self.spec.audience, "suma-rotation-test")
                .map_err(|e| failed(e.to_string()))?;
        let body = json!({ "token": token });
        let request = suma_http::Request {
            body: Some(&body),
            bearer: Some(&caller),
            ..suma_http::Request::default()
        };
        let response = self
            .http
            .send("POST", url.as_str(), request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if response.status != 200 {
            return Err(failed(format!(
                "POST {url} answered {}: {}",
                response.status,
                response.json.unwrap_or_default()
            )));
        }
        let answer = response
            .json
            .ok_or_else(|| failed(format!("POST {url}: the answer is not JSON")))?;
        if answer["active"] != true {
            return Err(failed(format!(
                "the service rejected a token signed with the new key `{kid}`: {}",
                answer["reason"]
            )));
        }
        Ok(Facts::from([("verified_kid".to_owned(), json!(kid))]))
    }

    async fn finished(&self, new: &str) -> Result<Facts, RotationError> {
        let kid = kid_of_pem(new)?;
        let (took, _, _) = self
            .wait_for(
                &format!("the service signing with kid `{kid}`"),
                |version| version["signing_kid"] == kid.as_str(),
                "/version",
            )
            .await?;
        let retire_after = self.spec.access_token_ttl + self.spec.clock_skew;
        Ok(Facts::from([
            ("signing_kid".to_owned(), json!(kid)),
            ("signing_after_ms".to_owned(), json!(took.as_millis() as u64)),
            (
                "previous_key_retirable_at".to_owned(),
                json!(chrono::Utc::now() + chrono::Duration::from_std(retire_after).unwrap_or_default()),
            ),
        ]))
    }

    async fn undo_set(&self, _current: &str, _pending: &str) -> Result<(), RotationError> {
        // Removing AWSPENDING is the undo: the service drops the key at its next reload.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_have_the_length_and_alphabet_asked_for() {
        for alphabet in [Alphabet::Alphanumeric, Alphabet::Base64url, Alphabet::Hex] {
            let value = random_string(64, alphabet);
            assert_eq!(value.len(), 64);
            assert!(fits(&value, alphabet), "{value}");
        }
        assert_ne!(random_string(32, Alphabet::Hex), random_string(32, Alphabet::Hex));
        assert!(!fits("ABC", Alphabet::Hex));
    }
    #[test]
    fn every_task_is_asked_three_times_and_cache_ages_are_read() {
        assert_eq!(confirmations(0), 3, "no running task counted: still three answers");
        assert_eq!(confirmations(3), 9);
        assert_eq!(max_age("public, max-age=60"), Some(60));
        assert_eq!(max_age("max-age=5, must-revalidate"), Some(5));
        assert_eq!(max_age("no-store"), None);
    }

    #[tokio::test]
    async fn a_keyring_rotation_puts_a_new_key_first_and_keeps_the_signer() {
        let k = |byte: u8| URL_SAFE_NO_PAD.encode([byte; 32]);
        let current = format!("old:{},older:{}", k(1), k(2));
        let rotation = KeyringRotation { key_bytes: 32 };
        let pending = rotation.generate(&current).await.unwrap();
        let entries = keyring_entries(&pending).unwrap();
        assert_eq!(
            entries.len(),
            2,
            "the new key and the one that signed until now: {pending}"
        );
        assert_eq!(entries[1], ("old".to_owned(), k(1)));
        assert_ne!(entries[0].0, "old");
        rotation.test(&pending).await.unwrap();
        for bad in ["", "no-colon", "a:short", &format!("a:{},a:{}", k(1), k(2))] {
            assert!(keyring_entries(bad).is_err(), "{bad}");
        }
        assert!(
            rotation.generate("not a keyring").await.is_err(),
            "a value the service cannot parse is refused"
        );
    }
}
