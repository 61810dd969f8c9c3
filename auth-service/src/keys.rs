//! JWT signing and verification keys.
//!
//! A [`KeySet`] holds exactly one signing key and any number of verify-only keys, each known by its key id
//! (`kid`): the RFC 7638 JWK thumbprint of the public key, so the id is derived from the key and never
//! stored beside it. A key's algorithm (ES256, EdDSA, PS256 or RS256) comes from the key itself, as the
//! `jwt-keys` crate reads it, which suma shares so that both sides agree on the contract; a set may mix
//! algorithms, which is how a migration (RS256 to ES256, say) overlaps the old and the new key. A
//! [`KeyStore`] loads the set from PEM files, a JSON document or a Secrets Manager secret (through
//! [`crate::keys_aws`], the only module that talks to AWS) and swaps in a freshly loaded set on
//! [`KeyStore::reload`]; a failed reload keeps the previous set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use jsonwebtoken::DecodingKey;
use jwt_keys::{b64, PublicParams};
pub use jwt_keys::{generate, Algorithm, GeneratedKey, PublicKey, SigningKey};
use serde::Deserialize;

use crate::config::KeySource;

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read.
    #[error("cannot read `{variable}` file `{path}`")]
    Read {
        variable: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or document does not hold a usable key.
    #[error("`{variable}` source `{path}` holds no usable signing key: {problem}")]
    Invalid {
        variable: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// Key generation failed.
    #[error("cannot generate a key")]
    Generate(#[source] jwt_keys::KeyError),
    /// A Secrets Manager secret could not be read.
    #[error("cannot read `JWT_KEYS_SECRET_ID` secret `{secret_id}` ({stage}): {message}\nhint: check the secret id, the AWS credentials and region, and the `secretsmanager:GetSecretValue` permission")]
    SecretRead {
        secret_id: String,
        stage: &'static str,
        message: String,
    },
    /// The secret has no version labelled AWSCURRENT, so there is no signing key.
    #[error("`JWT_KEYS_SECRET_ID` secret `{secret_id}` has no AWSCURRENT version (or does not exist)\nhint: store a private key PEM (ES256, EdDSA, PS256 or RS256) as its value, e.g. the output of `auth-service keygen`")]
    SecretNoCurrent { secret_id: String },
    /// A version of the secret does not hold a usable private key.
    #[error("`JWT_KEYS_SECRET_ID` secret `{secret_id}` ({stage}) holds no usable signing key: {problem}")]
    SecretInvalid {
        secret_id: String,
        stage: &'static str,
        problem: String,
    },
    /// A Secrets Manager source was opened through the synchronous loader.
    #[error("`JWT_KEYS_SECRET_ID` keys are loaded asynchronously; use `KeyStore::open`")]
    NeedsAsync,
}

/// A verification key, ready for `jsonwebtoken`: the algorithm its key verifies and nothing else.
struct Verifier {
    algorithm: jsonwebtoken::Algorithm,
    key: DecodingKey,
}

/// One signing key plus verify-only keys, ready for use.
pub struct KeySet {
    // Parsed once: parsing and checking a private key costs as much as a signature.
    signing: SigningKey,
    verifiers: BTreeMap<String, Verifier>,
    jwks: Arc<str>,
    // Tokens this set verified; a reload that changes the keys builds a new set, so a retired key's tokens
    // are forgotten with it.
    verified: crate::verified::VerifiedTokens,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("signing_kid", &self.signing.kid())
            .field("algorithm", &self.signing.algorithm())
            .field("verify_kids", &self.verifiers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// Builds a set from a private signing key and verify-only public keys. The signing key's public half
    /// is always part of the verification set; duplicates (by kid) are merged, the first one kept.
    pub fn new(signing: SigningKey, verify: &[PublicKey]) -> Result<Self, String> {
        let mut verifiers = BTreeMap::new();
        let mut published = Vec::new();
        for key in std::iter::once(signing.public()).chain(verify) {
            if verifiers.contains_key(key.kid()) {
                continue;
            }
            published.push(key.jwk());
            verifiers.insert(key.kid().to_owned(), verifier(key)?);
        }
        let jwks = serde_json::json!({ "keys": published }).to_string();
        Ok(Self {
            signing,
            verifiers,
            jwks: jwks.into(),
            verified: crate::verified::VerifiedTokens::default(),
        })
    }

    /// The kid of the signing key.
    pub fn signing_kid(&self) -> &str {
        self.signing.kid()
    }

    /// The signing key (its algorithm, kid and signatures).
    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    /// The verification key for a kid, with the one algorithm it verifies, if the set has it.
    pub fn decoding_key(&self, kid: &str) -> Option<(&DecodingKey, jsonwebtoken::Algorithm)> {
        self.verifiers.get(kid).map(|v| (&v.key, v.algorithm))
    }

    /// Every kid that verifies, signing key included.
    pub fn verify_kids(&self) -> impl Iterator<Item = &str> {
        self.verifiers.keys().map(String::as_str)
    }

    /// The access tokens this set has verified.
    pub fn verified(&self) -> &crate::verified::VerifiedTokens {
        &self.verified
    }

    /// The JWKS document (`{"keys": [...]}`) as JSON text.
    pub fn jwks_json(&self) -> Arc<str> {
        self.jwks.clone()
    }
}

/// `jsonwebtoken`'s name for an algorithm.
pub(crate) fn jose_algorithm(algorithm: Algorithm) -> jsonwebtoken::Algorithm {
    match algorithm {
        Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::Ps256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
    }
}

fn verifier(key: &PublicKey) -> Result<Verifier, String> {
    let problem = |e: jsonwebtoken::errors::Error| format!("key `{}` cannot verify: {e}", key.kid());
    let decoding = match key.params() {
        PublicParams::Ec { x, y } => DecodingKey::from_ec_components(&b64(x), &b64(y)).map_err(problem)?,
        PublicParams::Okp { x } => DecodingKey::from_ed_components(&b64(x)).map_err(problem)?,
        PublicParams::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
    };
    Ok(Verifier {
        algorithm: jose_algorithm(key.algorithm()),
        key: decoding,
    })
}

/// The outcome of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Whether the signing key or the verification set changed.
    pub changed: bool,
    /// The signing kid now in use.
    pub signing_kid: String,
}

/// The live key set and where it comes from.
pub struct KeyStore {
    source: KeySource,
    // The Secrets Manager client, built once, when the keys come from a secret.
    secret: Option<crate::keys_aws::SecretKeys>,
    current: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Loads the key set from a file source; a Secrets Manager source needs [`KeyStore::open`].
    pub fn load(source: KeySource) -> Result<Self, KeyError> {
        let set = load_set(&source)?;
        Ok(Self {
            source,
            secret: None,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// Loads the key set from any source: files, or a Secrets Manager secret (with the client configured
    /// from the standard `AWS_*` environment).
    pub async fn open(source: KeySource) -> Result<Self, KeyError> {
        let secret = match &source {
            KeySource::SecretsManager { secret_id } => Some(crate::keys_aws::SecretKeys::from_env(secret_id).await),
            _ => None,
        };
        let set = match &secret {
            Some(secret) => secret.load().await?,
            None => load_set(&source)?,
        };
        Ok(Self {
            source,
            secret,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// The key set in use.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Loads the source again and swaps the new set in when it differs; on error the old set stays. A set
    /// that signs with the same key and publishes the same keys (the same JWKS, algorithms included) is the
    /// same set: the current one stays, and with it the tokens it has verified, which a periodic reload
    /// would otherwise forget every interval.
    pub async fn reload(&self) -> Result<ReloadOutcome, KeyError> {
        let set = match &self.secret {
            Some(secret) => secret.load().await?,
            None => load_set(&self.source)?,
        };
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let changed = current.signing_kid() != set.signing_kid() || current.jwks != set.jwks;
        let signing_kid = set.signing_kid().to_owned();
        if changed {
            *current = Arc::new(set);
        }
        Ok(ReloadOutcome { changed, signing_kid })
    }
}

/// The JSON key set document read from `JWT_KEYSET_FILE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySetDocument {
    /// PEM of the private signing key.
    signing_key: String,
    /// PEMs of verify-only keys (public or private).
    #[serde(default)]
    verify_keys: Vec<String>,
}

fn load_set(source: &KeySource) -> Result<KeySet, KeyError> {
    match source {
        KeySource::Pem {
            signing_key_file,
            verify_keys_dir,
        } => {
            let pem = read(signing_key_file, "JWT_SIGNING_KEY_FILE")?;
            let signing =
                parse_private(&pem).map_err(|problem| invalid("JWT_SIGNING_KEY_FILE", signing_key_file, problem))?;
            let mut verify = Vec::new();
            if let Some(dir) = verify_keys_dir {
                let entries = std::fs::read_dir(dir).map_err(|source| KeyError::Read {
                    variable: "JWT_VERIFY_KEYS_DIR",
                    path: dir.clone(),
                    source,
                })?;
                let mut files: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "pem"))
                    .collect();
                files.sort();
                for file in files {
                    let pem = read(&file, "JWT_VERIFY_KEYS_DIR")?;
                    let key = parse_public(&pem).map_err(|problem| invalid("JWT_VERIFY_KEYS_DIR", &file, problem))?;
                    verify.push(key);
                }
            }
            KeySet::new(signing, &verify).map_err(|problem| invalid("JWT_SIGNING_KEY_FILE", signing_key_file, problem))
        }
        KeySource::Json { keyset_file } => {
            let text = read(keyset_file, "JWT_KEYSET_FILE")?;
            let doc: KeySetDocument = serde_json::from_str(&text)
                .map_err(|e| invalid("JWT_KEYSET_FILE", keyset_file, format!("not a key set document: {e}")))?;
            let signing = parse_private(&doc.signing_key)
                .map_err(|problem| invalid("JWT_KEYSET_FILE", keyset_file, format!("signing_key: {problem}")))?;
            let verify = doc
                .verify_keys
                .iter()
                .enumerate()
                .map(|(i, pem)| {
                    parse_public(pem).map_err(|problem| {
                        invalid("JWT_KEYSET_FILE", keyset_file, format!("verify_keys[{i}]: {problem}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            KeySet::new(signing, &verify).map_err(|problem| invalid("JWT_KEYSET_FILE", keyset_file, problem))
        }
        KeySource::SecretsManager { .. } => Err(KeyError::NeedsAsync),
    }
}

fn read(path: &Path, variable: &'static str) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        variable,
        path: path.to_owned(),
        source,
    })
}

fn invalid(variable: &'static str, path: &Path, problem: String) -> KeyError {
    KeyError::Invalid {
        variable,
        path: path.to_owned(),
        problem,
    }
}

/// Reads a private signing key PEM (see `jwt_keys::SigningKey::from_pem`).
pub fn parse_private(pem: &str) -> Result<SigningKey, String> {
    SigningKey::from_pem(pem).map_err(|e| e.to_string())
}

/// Reads a verify-only key: a public key PEM, or the public half of a private key PEM.
pub fn parse_public(pem: &str) -> Result<PublicKey, String> {
    PublicKey::from_pem(pem).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mixed_set_publishes_each_key_under_its_own_algorithm_and_verifies_each_with_it_only() {
        let signing = parse_private(&generate(Algorithm::Es256, 2048).unwrap().pem).unwrap();
        let old = parse_public(&generate(Algorithm::Rs256, 2048).unwrap().pem).unwrap();
        let ed = parse_public(&generate(Algorithm::EdDsa, 2048).unwrap().pem).unwrap();
        let signing_kid = signing.kid().to_owned();
        let set = KeySet::new(signing, &[old.clone(), ed.clone(), old.clone()]).unwrap();
        let jwks: serde_json::Value = serde_json::from_str(&set.jwks_json()).unwrap();
        let published: Vec<(&str, &str, &str)> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["kid"].as_str().unwrap(),
                    k["kty"].as_str().unwrap(),
                    k["alg"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            published,
            vec![
                (signing_kid.as_str(), "EC", "ES256"),
                (old.kid(), "RSA", "RS256"),
                (ed.kid(), "OKP", "EdDSA")
            ]
        );
        assert_eq!(set.decoding_key(old.kid()).unwrap().1, jsonwebtoken::Algorithm::RS256);
        assert_eq!(set.decoding_key(ed.kid()).unwrap().1, jsonwebtoken::Algorithm::EdDSA);
        assert_eq!(
            set.decoding_key(&signing_kid).unwrap().1,
            jsonwebtoken::Algorithm::ES256
        );
    }

    #[tokio::test]
    async fn a_reload_that_finds_the_same_keys_keeps_the_set_and_the_tokens_it_verified() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("signing.pem");
        std::fs::write(&file, generate(Algorithm::Es256, 2048).unwrap().pem).unwrap();
        let store = KeyStore::load(KeySource::Pem {
            signing_key_file: file.clone(),
            verify_keys_dir: None,
        })
        .unwrap();
        let before = store.current();
        let claims = crate::tokens::AccessClaims {
            iss: "iss".into(),
            sub: "sub".into(),
            aud: "aud".into(),
            exp: i64::MAX,
            nbf: 0,
            iat: 0,
            jti: "jti".into(),
            sid: "sid".into(),
        };
        before.verified().insert([1; 32], claims, 0);

        let outcome = store.reload().await.unwrap();
        assert!(!outcome.changed);
        assert!(Arc::ptr_eq(&before, &store.current()), "the same keys: the same set");
        assert_eq!(store.current().verified().len(), 1, "its verified tokens kept");

        std::fs::write(&file, generate(Algorithm::Es256, 2048).unwrap().pem).unwrap();
        let outcome = store.reload().await.unwrap();
        assert!(outcome.changed);
        assert_eq!(outcome.signing_kid, store.current().signing_kid());
        assert!(
            store.current().verified().is_empty(),
            "a new key: a new set, nothing verified yet"
        );
    }

    #[test]
    fn rejects_non_keys() {
        assert!(parse_private("hello").is_err());
        assert!(parse_public("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
    }
}
