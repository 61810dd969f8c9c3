//! Passwords: policy, Argon2id hashing and verification.
//!
//! Hashing is CPU-bound (tens of milliseconds), so it runs on tokio's blocking pool behind a semaphore sized
//! to the CPUs: a login burst queues for the hasher instead of starving the async workers that serve every
//! other request. Verifying against an unknown account uses a dummy hash computed at start-up with the same
//! parameters, so unknown emails cost the same time as wrong passwords.
//!
//! Each thread keeps its Argon2 working memory (19 MiB at the current parameters) between hashes instead
//! of allocating it for every hash: a fresh allocation of that size is a fresh mapping, and the kernel
//! faults in and zeroes its 4,864 pages before Argon2 overwrites them all anyway. The memory holds only a
//! hash's intermediate blocks; tokio's blocking threads that stay idle for 10 s exit and free it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::Deserialize;
use tokio::sync::Semaphore;

/// Argon2id memory cost in KiB (OWASP's first recommended configuration).
pub const M_COST: u32 = 19_456;
/// Argon2id iterations.
pub const T_COST: u32 = 2;
/// Argon2id parallelism.
pub const P_COST: u32 = 1;
/// Shortest password accepted, in characters.
pub const MIN_LEN: usize = 12;
/// Longest password accepted, in characters.
pub const MAX_LEN: usize = 128;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// A password as received; never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a string.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The password text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a password is refused at registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("password must be at least {MIN_LEN} characters")]
    TooShort,
    #[error("password must be at most {MAX_LEN} characters")]
    TooLong,
    #[error("password is too common")]
    Common,
    #[error("password must not contain the email address")]
    ContainsEmail,
}

/// Checks the password policy: 12 to 128 characters, no composition rules, not a common password, not
/// containing the email's local part.
pub fn check_policy(password: &Password, email: &str) -> Result<(), PolicyError> {
    let pw = password.expose();
    let len = pw.chars().count();
    if len < MIN_LEN {
        return Err(PolicyError::TooShort);
    }
    if len > MAX_LEN {
        return Err(PolicyError::TooLong);
    }
    let lower = pw.to_lowercase();
    if COMMON.contains(lower.as_str()) {
        return Err(PolicyError::Common);
    }
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    if local.chars().count() >= 3 && lower.contains(&local) {
        return Err(PolicyError::ContainsEmail);
    }
    Ok(())
}

/// Hashing failed (a bug or an exhausted runtime, never a wrong password).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed")]
    Join(#[from] tokio::task::JoinError),
    #[error("password hasher is shut down")]
    Closed,
}

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matched.
    pub ok: bool,
    /// The stored hash uses other parameters than the current ones and should be replaced.
    pub needs_rehash: bool,
}

/// Argon2id hashing on the blocking pool with bounded concurrency.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

fn current_params() -> Params {
    Params::new(M_COST, T_COST, P_COST, None).expect("constant Argon2 parameters are valid")
}

thread_local! {
    /// This thread's Argon2 working memory, kept between hashes (see the module's documentation).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Argon2id (version 0x13) of `password` and the decoded `salt` under `params`, `len` bytes long, computed
/// in this thread's working memory.
fn argon2id(password: &[u8], salt: &[u8], params: &Params, len: usize) -> argon2::password_hash::Result<Output> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    MEMORY.with_borrow_mut(|memory| {
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        Output::init_with(len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])?)
        })
    })
}

/// Hashes synchronously; for benchmarks and start-up. Request paths use [`Hasher::hash`].
pub fn hash_blocking(password: &str) -> Result<String, HashError> {
    let hash = || -> argon2::password_hash::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        let mut decoded = [0u8; 64];
        let params = current_params();
        let output = argon2id(
            password.as_bytes(),
            salt.as_salt().decode_b64(&mut decoded)?,
            &params,
            Params::DEFAULT_OUTPUT_LEN,
        )?;
        Ok(PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        }
        .to_string())
    };
    hash().map_err(|e| HashError::Hash(e.to_string()))
}

/// Whether a PHC string is Argon2id version 0x13, the variant this service writes.
fn is_argon2id_v13(parsed: &PasswordHash<'_>) -> bool {
    parsed.algorithm == argon2::ARGON2ID_IDENT && parsed.version == Some(Version::V0x13.into())
}

/// Whether `password` matches the PHC string `parsed`: Argon2id 0x13 in this thread's working memory (the
/// output compared in constant time), anything else by the library's own verification.
fn matches(password: &str, parsed: &PasswordHash<'_>) -> bool {
    match (
        is_argon2id_v13(parsed),
        Params::try_from(parsed),
        parsed.salt,
        parsed.hash,
    ) {
        (true, Ok(params), Some(salt), Some(expected)) => {
            let mut decoded = [0u8; 64];
            salt.decode_b64(&mut decoded)
                .and_then(|salt| argon2id(password.as_bytes(), salt, &params, expected.len()))
                .is_ok_and(|computed| computed == expected)
        }
        _ => Argon2::default().verify_password(password.as_bytes(), parsed).is_ok(),
    }
}

fn verify_blocking(password: &str, stored: &str) -> Verified {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified {
            ok: false,
            needs_rehash: false,
        };
    };
    let ok = matches(password, &parsed);
    let current = current_params();
    let needs_rehash = ok
        && (!is_argon2id_v13(&parsed)
            || Params::try_from(&parsed).map_or(true, |stored| {
                (current.m_cost(), current.t_cost(), current.p_cost())
                    != (stored.m_cost(), stored.t_cost(), stored.p_cost())
            }));
    Verified { ok, needs_rehash }
}

impl Hasher {
    /// A hasher allowing `concurrency` hashes at once. Computes the dummy hash, so it takes one hash's time.
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        let dummy = hash_blocking("dummy password that no account has; only its cost matters")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        })
    }

    /// Hashes a password with the current parameters.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Closed)?;
        let pw = password.clone();
        tokio::task::spawn_blocking(move || hash_blocking(pw.expose())).await?
    }

    /// Verifies a password against a stored hash, or against the dummy hash when there is no account, so
    /// both paths take the same time. Without an account the answer is always "no".
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<Verified, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Closed)?;
        let pw = password.clone();
        let known = stored.is_some();
        let hash: Arc<str> = stored.map(Arc::from).unwrap_or_else(|| self.dummy.clone());
        let verified = tokio::task::spawn_blocking(move || verify_blocking(pw.expose(), &hash)).await?;
        Ok(if known {
            verified
        } else {
            Verified {
                ok: false,
                needs_rehash: false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::PasswordHasher as _;

    use super::*;

    #[test]
    fn policy() {
        let p = |s: &str| check_policy(&Password::new(s), "alice.smith@example.com");
        assert_eq!(p("short"), Err(PolicyError::TooShort));
        assert_eq!(p(&"x".repeat(129)), Err(PolicyError::TooLong));
        assert!(p(&"é".repeat(128)).is_ok(), "length counts characters, not bytes");
        assert_eq!(p("Password1234"), Err(PolicyError::Common));
        assert_eq!(p("my-ALICE.SMITH-secret"), Err(PolicyError::ContainsEmail));
        assert!(p("correct horse battery").is_ok());
        assert!(p("alllowercaseletters").is_ok(), "no composition rules");
    }

    #[test]
    fn hash_uses_the_required_parameters_and_verifies() {
        let hash = hash_blocking("a long enough passphrase").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_eq!(
            verify_blocking("a long enough passphrase", &hash),
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(!verify_blocking("another passphrase!!", &hash).ok);
    }

    #[test]
    fn hashes_agree_with_the_librarys_own_in_both_directions() {
        let library = Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = library
            .hash_password(b"a long enough passphrase", &salt)
            .unwrap()
            .to_string();
        assert!(verify_blocking("a long enough passphrase", &theirs).ok);
        assert!(!verify_blocking("a long enough passphrasf", &theirs).ok);
        let ours = hash_blocking("a long enough passphrase").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(library.verify_password(b"a long enough passphrase", &parsed).is_ok());
        // The same thread's memory, reused for a hash of other parameters and back.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let small = small.hash_password(b"another passphrase", &salt).unwrap().to_string();
        assert!(verify_blocking("another passphrase", &small).ok);
        assert!(verify_blocking("a long enough passphrase", &ours).ok);
        // Other variants go through the library.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(64, 1, 1, None).unwrap());
        let argon2i = argon2i.hash_password(b"another passphrase", &salt).unwrap().to_string();
        assert!(verify_blocking("another passphrase", &argon2i).ok);
        assert!(!verify_blocking("other passphrase", &argon2i).ok);
    }

    #[test]
    fn weaker_hashes_are_flagged_for_rehash() {
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8, 1, 1, None).unwrap());
        let salt = SaltString::generate(&mut OsRng);
        let hash = weak
            .hash_password(b"a long enough passphrase", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            verify_blocking("a long enough passphrase", &hash),
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
    }
}
