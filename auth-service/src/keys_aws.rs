//! The JWT key set from an AWS Secrets Manager secret (`JWT_KEYS_SECRET_ID`); the only module that imports
//! the AWS SDK.
//!
//! Each version of the secret holds one private key as PEM (ES256, EdDSA, PS256 or RS256; see `jwt_keys`), and the staging labels of
//! the rotation protocol say what each key is for: AWSCURRENT signs, AWSPENDING (published before it signs)
//! and AWSPREVIOUS (still verifying the tokens it signed) are verify-only. A label that no version carries
//! is simply absent, except AWSCURRENT, without which there is no signing key. The client is configured
//! from the standard environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials chain), built once and
//! reused by every reload.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use aws_sdk_secretsmanager::Client;

use crate::keys::{parse_private, parse_public, KeyError, KeySet};

/// The staging label whose version signs.
pub const CURRENT: &str = "AWSCURRENT";
/// The staging label of a key being introduced: verify-only until it becomes current.
pub const PENDING: &str = "AWSPENDING";
/// The staging label of the key that signed before the current one: verify-only.
pub const PREVIOUS: &str = "AWSPREVIOUS";

/// How long one GetSecretValue may take, retries included, before the load fails (and a reload keeps the
/// previous set).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// A Secrets Manager secret holding the key set, with the client that reads it.
#[derive(Debug, Clone)]
pub struct SecretKeys {
    client: Client,
    secret_id: String,
}

impl SecretKeys {
    /// A reader of `secret_id` with a client configured from the environment.
    pub async fn from_env(secret_id: &str) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(TimeoutConfig::builder().operation_timeout(OPERATION_TIMEOUT).build())
            .load()
            .await;
        Self {
            client: Client::new(&config),
            secret_id: secret_id.to_owned(),
        }
    }

    /// The secret's id, as configured.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// Reads the three staging labels and builds the key set: AWSCURRENT signs, the others verify.
    pub async fn load(&self) -> Result<KeySet, KeyError> {
        let (current, pending, previous) = tokio::join!(self.fetch(CURRENT), self.fetch(PENDING), self.fetch(PREVIOUS));
        let current = current?.ok_or_else(|| KeyError::SecretNoCurrent {
            secret_id: self.secret_id.clone(),
        })?;
        let signing = parse_private(&current).map_err(|problem| self.invalid(CURRENT, problem))?;
        let mut verify = Vec::new();
        for (stage, pem) in [(PENDING, pending?), (PREVIOUS, previous?)] {
            if let Some(pem) = pem {
                let key = parse_public(&pem).map_err(|problem| self.invalid(stage, problem))?;
                verify.push(key);
            }
        }
        KeySet::new(signing, &verify).map_err(|problem| self.invalid(CURRENT, problem))
    }

    /// The value of the version carrying `stage`, or `None` when no version carries it.
    async fn fetch(&self, stage: &'static str) -> Result<Option<String>, KeyError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => return Ok(None),
            Err(e) => {
                return Err(KeyError::SecretRead {
                    secret_id: self.secret_id.clone(),
                    stage,
                    message: DisplayErrorContext(&e).to_string(),
                })
            }
        };
        if let Some(text) = output.secret_string {
            return Ok(Some(text));
        }
        match output.secret_binary {
            Some(blob) => String::from_utf8(blob.into_inner())
                .map(Some)
                .map_err(|_| self.invalid(stage, "the binary value is not UTF-8 PEM text".into())),
            None => Ok(None),
        }
    }

    fn invalid(&self, stage: &'static str, problem: String) -> KeyError {
        KeyError::SecretInvalid {
            secret_id: self.secret_id.clone(),
            stage,
            problem,
        }
    }
}
