//! The key that seals the service's TOTP secrets at rest (`totp-key`).
//!
//! A sealed TOTP secret names the key that sealed it, and the service reseals a secret with the current
//! key only when it reads it (at the owner's next sign-in). So a rotation cannot drop the old key: an
//! account that has not signed in since would lose its second factor. The secret therefore holds both
//! settings the service reads, as JSON the task definition picks apart with ECS's `ARN:json-key::` form:
//! `{"current": "<base64 of 32 bytes>", "previous": "<base64>,<base64>"}` → `TOTP_ENCRYPTION_KEY` and
//! `TOTP_ENCRYPTION_PREVIOUS_KEYS`. A rotation makes a new key current and moves the old one to the front
//! of `previous`; both move together, in one secret version, so no task ever sees a current key without
//! the keys that opened what it has to read. A plain base64 value (the format before this kind) is read
//! as a current key with no previous ones.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Facts, Rotation, RotationError};

/// Bytes of a TOTP sealing key (AES-256-GCM).
const KEY_BYTES: usize = 32;

/// The secret's value, as the service's two settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpKeys {
    /// `TOTP_ENCRYPTION_KEY`: seals every secret written from now on.
    pub current: String,
    /// `TOTP_ENCRYPTION_PREVIOUS_KEYS`: comma-separated, newest first; they only open.
    #[serde(default)]
    pub previous: String,
}

fn failed(message: impl Into<String>) -> RotationError {
    RotationError::Failed(message.into())
}

/// One key, checked as the service checks it: base64 of exactly 32 bytes.
fn check_key(key: &str, which: &str) -> Result<(), RotationError> {
    match STANDARD.decode(key.trim()) {
        Ok(bytes) if bytes.len() == KEY_BYTES => Ok(()),
        Ok(bytes) => Err(failed(format!(
            "{which} has {} bytes; the service needs {KEY_BYTES}",
            bytes.len()
        ))),
        Err(_) => Err(failed(format!("{which} is not base64"))),
    }
}

impl TotpKeys {
    /// The value as the service would read it (JSON, or the plain key of before), checked.
    pub fn parse(value: &str) -> Result<Self, RotationError> {
        let keys = if value.trim_start().starts_with('{') {
            serde_json::from_str(value)
                .map_err(|e| failed(format!("the value is not {{\"current\": …, \"previous\": …}}: {e}")))?
        } else {
            Self {
                current: value.trim().to_owned(),
                previous: String::new(),
            }
        };
        check_key(&keys.current, "`current`")?;
        for (i, key) in keys.previous_keys().enumerate() {
            check_key(key, &format!("entry {} of `previous`", i + 1))?;
        }
        if keys.previous_keys().any(|k| k == keys.current) {
            return Err(failed("`previous` repeats the current key"));
        }
        Ok(keys)
    }

    pub fn previous_keys(&self) -> impl Iterator<Item = &str> {
        self.previous.split(',').map(str::trim).filter(|k| !k.is_empty())
    }

    /// A new current key; the old one first among the previous.
    fn rotated(&self, new_key: String) -> Self {
        let previous: Vec<&str> = std::iter::once(self.current.as_str())
            .chain(self.previous_keys())
            .collect();
        Self {
            current: new_key,
            previous: previous.join(","),
        }
    }
}

/// Rotation of the TOTP sealing key; nothing downstream to set, the consumers' redeploy reads it.
pub struct TotpKeyRotation;

#[async_trait]
impl Rotation for TotpKeyRotation {
    async fn generate(&self, current: &str) -> Result<String, RotationError> {
        let keys = TotpKeys::parse(current)?;
        let mut key = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let rotated = keys.rotated(STANDARD.encode(key));
        serde_json::to_string(&rotated).map_err(|e| failed(e.to_string()))
    }
    async fn set(&self, _current: &str, _pending: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn test(&self, pending: &str) -> Result<Facts, RotationError> {
        let keys = TotpKeys::parse(pending)?;
        Ok(Facts::from([(
            "previous_keys".to_owned(),
            json!(keys.previous_keys().count()),
        )]))
    }
    async fn finished(&self, _new: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn undo_set(&self, _current: &str, _pending: &str) -> Result<(), RotationError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; KEY_BYTES])
    }

    #[tokio::test]
    async fn a_rotation_makes_a_new_key_current_and_keeps_every_older_one() {
        let cases = [
            // The plain key of before this kind.
            (key(1), vec![key(1)]),
            (json!({"current": key(1)}).to_string(), vec![key(1)]),
            (
                json!({"current": key(2), "previous": format!("{},{}", key(1), key(0))}).to_string(),
                vec![key(2), key(1), key(0)],
            ),
        ];
        for (current, want_previous) in cases {
            let pending = TotpKeyRotation.generate(&current).await.unwrap();
            let keys = TotpKeys::parse(&pending).unwrap();
            assert_eq!(keys.previous_keys().collect::<Vec<_>>(), want_previous, "{current}");
            assert!(!want_previous.contains(&keys.current), "a new key: {pending}");
            let facts = TotpKeyRotation.test(&pending).await.unwrap();
            assert_eq!(facts["previous_keys"], json!(want_previous.len()));
        }
    }

    #[test]
    fn values_the_service_cannot_read_are_refused() {
        let short = STANDARD.encode([1u8; 16]);
        let cases = [
            ("", "0 bytes"),
            ("not base64!", "not base64"),
            (short.as_str(), "16 bytes"),
            (r#"{"current": 1}"#, "not {"),
            (r#"{"current": "x", "extra": 1}"#, "not {"),
        ];
        for (value, message) in cases {
            let err = TotpKeys::parse(value).unwrap_err().to_string();
            assert!(err.contains(message), "{value}: {err}");
        }
        let repeated = json!({"current": key(1), "previous": key(1)}).to_string();
        assert!(TotpKeys::parse(&repeated).unwrap_err().to_string().contains("repeats"));
        let bad_previous = json!({"current": key(1), "previous": format!("{},{short}", key(2))}).to_string();
        assert!(TotpKeys::parse(&bad_previous)
            .unwrap_err()
            .to_string()
            .contains("entry 2 of `previous`"));
    }
}
