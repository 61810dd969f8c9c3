//! Password-reset tokens: HMAC-SHA256-signed, single use, short-lived.
//!
//! A token is `kid.payload.mac` (base64url without padding): the payload holds the reset id, its expiry
//! and 128 random bits; the MAC is HMAC-SHA256 over `kid.payload` with the key named by `kid`. The
//! database stores only SHA-256 of the whole token (and consumes it atomically), so a database leak
//! yields no usable token, and a forged or tampered token is refused before any query.
//!
//! The keys are a managed secret: `RESET_TOKEN_KEYS` (or the file `RESET_TOKEN_KEYS_FILE`, read again at
//! every use so a rotation needs no restart) holds entries `kid:base64url-key` separated by commas or new
//! lines; the first signs, every entry verifies. To rotate, prepend a new entry and drop the old one after
//! `RESET_TOKEN_TTL`.

use std::path::PathBuf;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeZone as _, Utc};
use rand::RngCore as _;
use uuid::Uuid;

/// Where the keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// The keys themselves (from `RESET_TOKEN_KEYS`).
    Inline(String),
    /// A file read at every use.
    File(PathBuf),
    /// A random key for this process only (development: tokens die with the process and are not shared
    /// between instances).
    Ephemeral(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Inline(_) => f.write_str("Inline(<redacted>)"),
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Ephemeral(_) => f.write_str("Ephemeral(<redacted>)"),
        }
    }
}

/// Why keys or a token were refused.
#[derive(Debug, thiserror::Error)]
pub enum ResetTokenError {
    /// The key configuration cannot be used.
    #[error("reset token keys: {0}")]
    Keys(String),
    /// Malformed, forged, signed with an unknown key, or expired.
    #[error("invalid or expired reset token")]
    Invalid,
}

/// One key.
struct Key {
    kid: String,
    key: hmac::Key,
}

/// Parses `kid:base64url-key` entries; keys must be at least 32 bytes.
fn parse_keys(text: &str) -> Result<Vec<Key>, ResetTokenError> {
    let mut keys = Vec::new();
    for entry in text.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty()) {
        let (kid, b64) = entry
            .split_once(':')
            .ok_or_else(|| ResetTokenError::Keys("an entry is not `kid:base64url-key`".into()))?;
        if kid.is_empty() || !kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ResetTokenError::Keys("a kid must be 1 or more of [A-Za-z0-9_-]".into()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|_| ResetTokenError::Keys(format!("key `{kid}` is not base64url")))?;
        if bytes.len() < 32 {
            return Err(ResetTokenError::Keys(format!("key `{kid}` is shorter than 32 bytes")));
        }
        keys.push(Key {
            kid: kid.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        });
    }
    if keys.is_empty() {
        return Err(ResetTokenError::Keys("no key".into()));
    }
    Ok(keys)
}

impl KeySource {
    /// A random key for this process.
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        KeySource::Ephemeral(format!("ephemeral:{}", URL_SAFE_NO_PAD.encode(key)))
    }

    fn load(&self) -> Result<Vec<Key>, ResetTokenError> {
        match self {
            KeySource::Inline(text) | KeySource::Ephemeral(text) => parse_keys(text),
            KeySource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ResetTokenError::Keys(format!("cannot read `{}`: {e}", path.display())))?;
                parse_keys(&text)
            }
        }
    }

    /// Checks that the keys load (at start, so a bad secret fails fast).
    pub fn check(&self) -> Result<(), ResetTokenError> {
        self.load().map(|_| ())
    }

    /// A new token for reset `id`, valid until `expires_at`.
    pub fn issue(&self, id: Uuid, expires_at: DateTime<Utc>) -> Result<String, ResetTokenError> {
        let keys = self.load()?;
        let signer = &keys[0];
        let mut payload = Vec::with_capacity(40);
        payload.extend_from_slice(id.as_bytes());
        payload.extend_from_slice(&expires_at.timestamp().to_be_bytes());
        let mut random = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut random);
        payload.extend_from_slice(&random);
        let signed = format!("{}.{}", signer.kid, URL_SAFE_NO_PAD.encode(&payload));
        let mac = hmac::sign(&signer.key, signed.as_bytes());
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref())))
    }

    /// Checks a token's MAC (constant time) and expiry at `now`; returns the reset id.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Uuid, ResetTokenError> {
        if token.len() > 256 {
            return Err(ResetTokenError::Invalid);
        }
        let (signed, mac) = token.rsplit_once('.').ok_or(ResetTokenError::Invalid)?;
        let (kid, payload) = signed.split_once('.').ok_or(ResetTokenError::Invalid)?;
        let keys = self.load()?;
        let key = keys.iter().find(|k| k.kid == kid).ok_or(ResetTokenError::Invalid)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| ResetTokenError::Invalid)?;
        hmac::verify(&key.key, signed.as_bytes(), &mac).map_err(|_| ResetTokenError::Invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| ResetTokenError::Invalid)?;
        if payload.len() != 40 {
            return Err(ResetTokenError::Invalid);
        }
        let id = Uuid::from_slice(&payload[..16]).map_err(|_| ResetTokenError::Invalid)?;
        let exp = i64::from_be_bytes(payload[16..24].try_into().map_err(|_| ResetTokenError::Invalid)?);
        let expires_at = Utc.timestamp_opt(exp, 0).single().ok_or(ResetTokenError::Invalid)?;
        if expires_at <= now {
            return Err(ResetTokenError::Invalid);
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, byte: u8) -> String {
        format!("{kid}:{}", URL_SAFE_NO_PAD.encode([byte; 32]))
    }

    #[test]
    fn round_trip_tamper_expiry_and_rotation() {
        let now = Utc::now();
        let old = KeySource::Inline(key("k1", 1));
        let id = Uuid::new_v4();
        let token = old.issue(id, now + chrono::Duration::hours(1)).unwrap();
        assert_eq!(old.verify(&token, now).unwrap(), id);
        assert!(old.verify(&token, now + chrono::Duration::hours(2)).is_err(), "expired");

        // Any changed character of payload or MAC is refused.
        let mut tampered = token.clone().into_bytes();
        let i = tampered.len() - 5;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        assert!(old.verify(std::str::from_utf8(&tampered).unwrap(), now).is_err());

        // After rotation the old key still verifies; once dropped, its tokens die.
        let rotated = KeySource::Inline(format!("{},{}", key("k2", 2), key("k1", 1)));
        assert_eq!(rotated.verify(&token, now).unwrap(), id);
        assert!(rotated.issue(id, now).unwrap().starts_with("k2."));
        let dropped = KeySource::Inline(key("k2", 2));
        assert!(dropped.verify(&token, now).is_err());
        // Same kid, different key: refused.
        assert!(KeySource::Inline(key("k1", 9)).verify(&token, now).is_err());
    }

    #[test]
    fn bad_key_configuration() {
        assert!(KeySource::Inline(String::new()).check().is_err());
        assert!(KeySource::Inline("k1:c2hvcnQ".into()).check().is_err(), "too short");
        assert!(KeySource::Inline("nokid".into()).check().is_err());
        assert!(KeySource::ephemeral().check().is_ok());
    }
}
