//! JWT signing and verification keys.
//!
//! A [`KeySet`] holds exactly one RSA signing key and any number of verify-only keys, each known by its key
//! id (`kid`): the RFC 7638 JWK thumbprint of the public key (SHA-256, base64url), so the id is derived from
//! the key and never stored beside it. A [`KeyStore`] loads the set from PEM files, a JSON document or a
//! Secrets Manager secret (through [`crate::keys_aws`], the only module that talks to AWS) and swaps in a
//! freshly loaded set on [`KeyStore::reload`]; a failed reload keeps the previous set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::KeySource;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

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
    /// A file or document does not hold a usable RSA key.
    #[error("`{variable}` source `{path}` holds no usable RSA key: {problem}")]
    Invalid {
        variable: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// Key generation failed.
    #[error("cannot generate an RSA key")]
    Generate(#[source] rsa::Error),
    /// A Secrets Manager secret could not be read.
    #[error("cannot read `JWT_KEYS_SECRET_ID` secret `{secret_id}` ({stage}): {message}\nhint: check the secret id, the AWS credentials and region, and the `secretsmanager:GetSecretValue` permission")]
    SecretRead {
        secret_id: String,
        stage: &'static str,
        message: String,
    },
    /// The secret has no version labelled AWSCURRENT, so there is no signing key.
    #[error("`JWT_KEYS_SECRET_ID` secret `{secret_id}` has no AWSCURRENT version (or does not exist)\nhint: store an RSA private key PEM as its value, e.g. the output of `auth-service keygen`")]
    SecretNoCurrent { secret_id: String },
    /// A version of the secret does not hold a usable RSA private key.
    #[error("`JWT_KEYS_SECRET_ID` secret `{secret_id}` ({stage}) holds no usable RSA key: {problem}")]
    SecretInvalid {
        secret_id: String,
        stage: &'static str,
        problem: String,
    },
    /// A Secrets Manager source was opened through the synchronous loader.
    #[error("`JWT_KEYS_SECRET_ID` keys are loaded asynchronously; use `KeyStore::open`")]
    NeedsAsync,
}

/// The public half of a key, as published in the JWKS.
#[derive(Debug, Clone)]
struct PublicJwk {
    kid: String,
    n: String,
    e: String,
}

impl PublicJwk {
    fn from_public(key: &RsaPublicKey) -> Self {
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        // RFC 7638: the members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self { kid, n, e }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        })
    }
}

/// The RFC 7638 thumbprint of a public key: the `kid` this service uses for it.
pub fn kid_of(key: &RsaPublicKey) -> String {
    PublicJwk::from_public(key).kid
}

/// One signing key plus verify-only keys, ready for use.
pub struct KeySet {
    signing_kid: String,
    // Parsed once: parsing and checking an RSA private key costs as much as a signature.
    signing: RsaKeyPair,
    rng: SystemRandom,
    verifiers: BTreeMap<String, DecodingKey>,
    jwks: Arc<str>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("signing_kid", &self.signing_kid)
            .field("verify_kids", &self.verifiers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// Builds a set from a private signing key and verify-only public keys. The signing key's public half
    /// is always part of the verification set; duplicates are merged.
    pub fn new(signing: &RsaPrivateKey, verify: &[RsaPublicKey]) -> Result<Self, String> {
        let der = signing
            .to_pkcs1_der()
            .map_err(|e| format!("cannot encode the signing key: {e}"))?;
        let key_pair = RsaKeyPair::from_der(der.as_bytes()).map_err(|e| format!("signing key rejected: {e}"))?;
        let signing_public = signing.to_public_key();
        let signing_jwk = PublicJwk::from_public(&signing_public);

        let mut verifiers = BTreeMap::new();
        let mut published = vec![signing_jwk.to_json()];
        verifiers.insert(signing_jwk.kid.clone(), decoding_key(&signing_public));
        for key in verify {
            let jwk = PublicJwk::from_public(key);
            if verifiers.contains_key(&jwk.kid) {
                continue;
            }
            published.push(jwk.to_json());
            verifiers.insert(jwk.kid.clone(), decoding_key(key));
        }
        let jwks = serde_json::json!({ "keys": published }).to_string();
        Ok(Self {
            signing_kid: signing_jwk.kid,
            signing: key_pair,
            rng: SystemRandom::new(),
            verifiers,
            jwks: jwks.into(),
        })
    }

    /// The kid of the signing key.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// Signs `message` with RSASSA-PKCS1-v1_5 SHA-256 (RS256) under the signing key.
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        let mut signature = vec![0; self.signing.public_modulus_len()];
        self.signing
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)?;
        Ok(signature)
    }

    /// The verification key for a kid, if the set has it.
    pub fn decoding_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifiers.get(kid)
    }

    /// Every kid that verifies, signing key included.
    pub fn verify_kids(&self) -> impl Iterator<Item = &str> {
        self.verifiers.keys().map(String::as_str)
    }

    /// The JWKS document (`{"keys": [...]}`) as JSON text.
    pub fn jwks_json(&self) -> Arc<str> {
        self.jwks.clone()
    }
}

fn decoding_key(key: &RsaPublicKey) -> DecodingKey {
    DecodingKey::from_rsa_raw_components(&key.n().to_bytes_be(), &key.e().to_bytes_be())
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

    /// Loads the source again and swaps the new set in; on error the old set stays.
    pub async fn reload(&self) -> Result<ReloadOutcome, KeyError> {
        let set = match &self.secret {
            Some(secret) => secret.load().await?,
            None => load_set(&self.source)?,
        };
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let changed = current.signing_kid != set.signing_kid || !current.verifiers.keys().eq(set.verifiers.keys());
        let signing_kid = set.signing_kid.clone();
        *current = Arc::new(set);
        Ok(ReloadOutcome { changed, signing_kid })
    }
}

/// The JSON key set document read from `JWT_KEYSET_FILE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySetDocument {
    /// PEM of the RSA private signing key.
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
            KeySet::new(&signing, &verify).map_err(|problem| invalid("JWT_SIGNING_KEY_FILE", signing_key_file, problem))
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
            KeySet::new(&signing, &verify).map_err(|problem| invalid("JWT_KEYSET_FILE", keyset_file, problem))
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

fn check_size(bits: usize) -> Result<(), String> {
    if bits < MIN_RSA_BITS {
        return Err(format!("the key has {bits} bits, at least {MIN_RSA_BITS} are required"));
    }
    Ok(())
}

/// Parses an RSA private key from PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM.
pub fn parse_private(pem: &str) -> Result<RsaPrivateKey, String> {
    let key = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| format!("bad PKCS#1 private key: {e}"))?
    } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| format!("bad PKCS#8 private key: {e}"))?
    } else {
        return Err("expected a `PRIVATE KEY` or `RSA PRIVATE KEY` PEM block".into());
    };
    check_size(key.size() * 8)?;
    Ok(key)
}

/// Parses an RSA public key from SPKI (`PUBLIC KEY`) or PKCS#1 PEM, or takes the public half of a
/// private key PEM.
pub fn parse_public(pem: &str) -> Result<RsaPublicKey, String> {
    let key = if pem.contains("-----BEGIN PUBLIC KEY-----") {
        RsaPublicKey::from_public_key_pem(pem).map_err(|e| format!("bad public key: {e}"))?
    } else if pem.contains("-----BEGIN RSA PUBLIC KEY-----") {
        RsaPublicKey::from_pkcs1_pem(pem).map_err(|e| format!("bad PKCS#1 public key: {e}"))?
    } else {
        parse_private(pem)?.to_public_key()
    };
    check_size(key.size() * 8)?;
    Ok(key)
}

/// A new private key as PKCS#8 PEM, with its kid.
pub struct GeneratedKey {
    /// The private key PEM; a secret.
    pub pem: String,
    /// Its kid.
    pub kid: String,
}

// Hand-written so that the key material never reaches a log line.
impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Generates an RSA private key from the OS random number generator.
pub fn generate(bits: usize) -> Result<GeneratedKey, KeyError> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).map_err(KeyError::Generate)?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Generate(rsa::Error::Pkcs8(e)))?;
    let kid = kid_of(&key.to_public_key());
    Ok(GeneratedKey {
        pem: pem.to_string(),
        kid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // The example key of RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let e = "AQAB";
        let modulus = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(n).unwrap());
        let exponent = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(e).unwrap());
        let key = RsaPublicKey::new(modulus, exponent).unwrap();
        assert_eq!(kid_of(&key), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn rejects_non_keys() {
        assert!(parse_private("hello").is_err());
        assert!(parse_public("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
    }
}
