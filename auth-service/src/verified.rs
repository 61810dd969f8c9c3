//! A bounded cache of access tokens whose signature and claims were verified, keyed by the SHA-256 of
//! the issuer and audience they were verified for and the token.
//!
//! Verifying a signature is the largest cost of an authenticated request once the session and profile
//! come from Redis (an ES256 verification is ~60 µs of a core), and a client presents the same token many
//! times in its life. What a verification decides about one exact token string never changes, except
//! time (`exp`, `nbf`) and the key set: so a hit re-checks the times against the clock, and the cache
//! belongs to one [`crate::keys::KeySet`], which a key reload replaces, so a retired key's tokens stop
//! verifying at the reload as before. The session is still checked on every request by the caller.
//! Only successes are kept: a flood of bad tokens cannot push good ones out for free.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::tokens::AccessClaims;

/// How many verified tokens a key set remembers: ~300 bytes each, so about 3 MiB at most.
pub const CAPACITY: usize = 10_000;

/// Verified tokens by their SHA-256.
#[derive(Debug)]
pub struct VerifiedTokens {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], AccessClaims>>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The key a token verified for `issuer` and `audience` is remembered under: a token accepted for one
    /// audience is never served from the cache for another.
    pub fn digest(issuer: &str, audience: &str, token: &str) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [issuer, audience] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.update(token.as_bytes());
        hash.finalize().into()
    }

    /// The claims of a token verified before, if remembered. The caller re-checks the times.
    pub fn get(&self, digest: &[u8; 32]) -> Option<AccessClaims> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
    }

    /// Remembers a verified token. When full, tokens expired by `now` (seconds) go first, then, if that
    /// frees nothing, every other entry: a rare full sweep costs one re-verification per live token.
    pub fn insert(&self, digest: [u8; 32], claims: AccessClaims, now: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            entries.retain(|_, c| c.exp > now);
            if entries.len() >= self.capacity {
                let mut keep = false;
                entries.retain(|_, _| {
                    keep = !keep;
                    keep
                });
            }
        }
        entries.insert(digest, claims);
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "iss".into(),
            sub: "sub".into(),
            aud: "aud".into(),
            exp,
            nbf: 0,
            iat: 0,
            jti: "jti".into(),
            sid: "sid".into(),
        }
    }

    #[test]
    fn stays_within_its_capacity_dropping_expired_tokens_first() {
        let cache = VerifiedTokens::with_capacity(4);
        for i in 0..4u8 {
            // Two expired by t=100, two live.
            cache.insert([i; 32], claims(if i < 2 { 50 } else { 500 }), 10);
        }
        cache.insert([9; 32], claims(500), 100);
        assert_eq!(cache.len(), 3, "the two expired ones made room");
        assert!(cache.get(&[0; 32]).is_none() && cache.get(&[2; 32]).is_some());
        // Full of live tokens: half go, the new one stays.
        cache.insert([10; 32], claims(500), 100);
        cache.insert([11; 32], claims(500), 100);
        assert!(cache.len() <= 4);
        assert!(cache.get(&[11; 32]).is_some());
        assert_eq!(
            VerifiedTokens::digest("i", "a", "t"),
            VerifiedTokens::digest("i", "a", "t")
        );
        assert_ne!(
            VerifiedTokens::digest("i", "a", "t"),
            VerifiedTokens::digest("i", "b", "t")
        );
        assert_ne!(
            VerifiedTokens::digest("ia", "", "t"),
            VerifiedTokens::digest("i", "a", "t")
        );
    }
}
