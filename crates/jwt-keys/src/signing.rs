//! Private keys: reading them from PEM, generating them, and signing compact JWS with them.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256,
};
use serde::Serialize;

use crate::pem::{self, Block};
use crate::public::rsa_params;
use crate::{b64, Algorithm, KeyError, PublicKey, PublicParams};

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private key that signs, parsed once (parsing and checking an RSA key costs as much as a signature),
/// with its public half.
pub struct SigningKey {
    pair: Pair,
    public: PublicKey,
    rng: SystemRandom,
}

// Hand-written so that key material never reaches a log line.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.public.algorithm())
            .field("kid", &self.public.kid())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a private key: PKCS#8 (`PRIVATE KEY`: P-256, Ed25519 or RSA), SEC1 (`EC PRIVATE KEY`) or
    /// PKCS#1 (`RSA PRIVATE KEY`), with the algorithm its text declares (see the crate's doc).
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(text)?;
        let pair = match block.label.as_str() {
            "PRIVATE KEY" => pkcs8(&block)?,
            "EC PRIVATE KEY" => EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &block.der)
                .map(Pair::Ec)
                .map_err(|_| unsupported(&block))?,
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&block.der)
                .map(Pair::Rsa)
                .map_err(|_| unsupported(&block))?,
            "PUBLIC KEY" | "RSA PUBLIC KEY" => return Err(KeyError::NotPrivate { label: block.label }),
            _ => return Err(KeyError::Label { label: block.label }),
        };
        let params = match &pair {
            Pair::Ec(pair) => PublicParams::ec_point(pair.public_key().as_ref()).ok_or_else(|| unsupported(&block))?,
            Pair::Ed(pair) => PublicParams::Okp {
                x: pair.public_key().as_ref().to_vec(),
            },
            Pair::Rsa(pair) => rsa_params(PublicKeyComponents::<Vec<u8>>::from(pair.public_key()))?,
        };
        let algorithm = params.algorithm(block.declared)?;
        Ok(Self {
            pair,
            public: PublicKey::new(algorithm, params),
            rng: SystemRandom::new(),
        })
    }

    /// Its public half (algorithm, kid, JWK).
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The algorithm it signs.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    /// Its kid.
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// The JWS signature of `message` (for ES256, the fixed-width `r || s` JWS requires).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |_| KeyError::Sign(self.algorithm());
        match &self.pair {
            Pair::Ec(pair) => Ok(pair.sign(&self.rng, message).map_err(failed)?.as_ref().to_vec()),
            Pair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Rsa(pair) => {
                let padding = match self.algorithm() {
                    Algorithm::Ps256 => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &self.rng, message, &mut signature).map_err(failed)?;
                Ok(signature)
            }
        }
    }

    /// A compact JWS of `claims`, its header naming the key's `alg` and `kid` and, when given, `typ`.
    pub fn sign_jwt(&self, typ: Option<&str>, claims: &impl Serialize) -> Result<String, KeyError> {
        let mut header = serde_json::json!({ "alg": self.algorithm().name(), "kid": self.kid() });
        if let Some(typ) = typ {
            header["typ"] = typ.into();
        }
        // Serialising plain claims cannot fail; a claim type that does is a programming error.
        let claims = serde_json::to_vec(claims).map_err(|_| KeyError::Sign(self.algorithm()))?;
        let mut token = b64(header.to_string().as_bytes());
        token.push('.');
        token.push_str(&b64(&claims));
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64(&signature));
        Ok(token)
    }
}

/// A PKCS#8 key: P-256, then Ed25519 (v1 or v2), then RSA.
fn pkcs8(block: &Block) -> Result<Pair, KeyError> {
    let der = block.der.as_slice();
    if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
        return Ok(Pair::Ec(pair));
    }
    if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        return Ok(Pair::Ed(pair));
    }
    RsaKeyPair::from_pkcs8(der)
        .map(Pair::Rsa)
        .map_err(|_| unsupported(block))
}

fn unsupported(block: &Block) -> KeyError {
    KeyError::Unsupported {
        label: block.label.clone(),
    }
}

/// A new private key as PEM (PKCS#8, preceded by its `alg:` line), with its kid.
pub struct GeneratedKey {
    /// The PEM text; a secret.
    pub pem: String,
    /// Its kid.
    pub kid: String,
}

// Hand-written so that key material never reaches a log line.
impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Generates a key for `algorithm` from the operating system's RNG; `rsa_bits` sizes PS256 and RS256
/// keys (one of [`crate::RSA_GENERATED_BITS`]) and is ignored otherwise. RSA generation takes a
/// noticeable time: call it off the async runtime.
pub fn generate(algorithm: Algorithm, rsa_bits: usize) -> Result<GeneratedKey, KeyError> {
    let failed = |_| KeyError::Generate(algorithm);
    let der = match algorithm {
        Algorithm::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|pair| pair.to_pkcs8v1())
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        Algorithm::EdDsa => Ed25519KeyPair::generate()
            .and_then(|pair| pair.to_pkcs8v1())
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        Algorithm::Ps256 | Algorithm::Rs256 => {
            let size = match rsa_bits {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                8192 => KeySize::Rsa8192,
                other => return Err(KeyError::RsaSize(other)),
            };
            let pair = RsaKeyPair::generate(size).map_err(failed)?;
            pair.as_der().map_err(failed)?.as_ref().to_vec()
        }
    };
    let pem = pem::encode(algorithm, "PRIVATE KEY", &der);
    let kid = SigningKey::from_pem(&pem)?.kid().to_owned();
    Ok(GeneratedKey { pem, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verifies a compact JWS with aws-lc-rs directly, by the key's parameters.
    fn verifies(public: &PublicKey, token: &str) -> bool {
        use aws_lc_rs::signature::{self, UnparsedPublicKey};
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        match (public.algorithm(), public.params()) {
            (Algorithm::Es256, PublicParams::Ec { x, y }) => {
                let point = [&[4u8][..], x, y].concat();
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            }
            (Algorithm::EdDsa, PublicParams::Okp { x }) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(input.as_bytes(), &sig)
                .is_ok(),
            (alg, PublicParams::Rsa { n, e }) => {
                let params = match alg {
                    Algorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    _ => &signature::RSA_PKCS1_2048_8192_SHA256,
                };
                PublicKeyComponents { n, e }
                    .verify(params, input.as_bytes(), &sig)
                    .is_ok()
            }
            _ => false,
        }
    }

    #[test]
    fn every_algorithm_generates_a_key_that_reads_back_signs_and_verifies() {
        for algorithm in Algorithm::ALL {
            let generated = generate(algorithm, 2048).unwrap();
            assert!(generated
                .pem
                .starts_with(&format!("alg: {algorithm}\n-----BEGIN PRIVATE KEY-----\n")));
            let key = SigningKey::from_pem(&generated.pem).unwrap();
            assert_eq!((key.algorithm(), key.kid()), (algorithm, generated.kid.as_str()));
            // The public half read from the private PEM is the same key.
            assert_eq!(&PublicKey::from_pem(&generated.pem).unwrap(), key.public());
            let token = key
                .sign_jwt(Some("at+jwt"), &serde_json::json!({ "sub": "x" }))
                .unwrap();
            assert!(verifies(key.public(), &token), "{algorithm}");
            let header: serde_json::Value = serde_json::from_slice(
                &base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    token.split('.').next().unwrap(),
                )
                .unwrap(),
            )
            .unwrap();
            assert_eq!(header["alg"], algorithm.name());
            assert_eq!(header["kid"], generated.kid.as_str());
            assert_eq!(header["typ"], "at+jwt");
            // A signature by another key of the same algorithm does not verify.
            let other = SigningKey::from_pem(&generate(algorithm, 2048).unwrap().pem).unwrap();
            assert!(!verifies(other.public(), &token), "{algorithm}");
        }
    }

    #[test]
    fn an_rsa_key_without_a_declared_algorithm_signs_rs256_and_its_kid_ignores_the_algorithm() {
        let ps = generate(Algorithm::Ps256, 2048).unwrap();
        let bare = ps.pem.trim_start_matches("alg: PS256\n");
        let rs = SigningKey::from_pem(bare).unwrap();
        assert_eq!(rs.algorithm(), Algorithm::Rs256);
        assert_eq!(rs.kid(), ps.kid);
        assert!(matches!(
            SigningKey::from_pem(&format!("alg: ES256\n{bare}")),
            Err(KeyError::Mismatch { .. })
        ));
    }

    #[test]
    fn refuses_public_keys_small_rsa_sizes_and_odd_blocks() {
        assert!(matches!(
            SigningKey::from_pem("-----BEGIN PUBLIC KEY-----\nAQID\n-----END PUBLIC KEY-----\n"),
            Err(KeyError::NotPrivate { .. })
        ));
        assert!(matches!(
            SigningKey::from_pem("-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n"),
            Err(KeyError::Label { .. })
        ));
        assert!(matches!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----\n"),
            Err(KeyError::Unsupported { .. })
        ));
        assert!(matches!(generate(Algorithm::Rs256, 1024), Err(KeyError::RsaSize(1024))));
    }
}

#[cfg(test)]
mod public_pem_tests {
    use super::*;

    /// The SubjectPublicKeyInfo PEM of `key`, as `openssl pkey -pubout` writes it.
    fn spki_pem(key: &SigningKey) -> String {
        let der = match &key.pair {
            Pair::Ec(pair) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
            Pair::Ed(pair) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
            Pair::Rsa(pair) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
        };
        pem::encode(key.algorithm(), "PUBLIC KEY", &der)
            .split_once('\n')
            .unwrap()
            .1
            .to_owned()
    }

    #[test]
    fn public_key_pems_read_as_the_private_keys_public_half() {
        for algorithm in Algorithm::ALL {
            let key = SigningKey::from_pem(&generate(algorithm, 2048).unwrap().pem).unwrap();
            let public = PublicKey::from_pem(&spki_pem(&key)).unwrap();
            // A bare RSA public key reads as RS256; its kid is the same.
            let expected = if algorithm == Algorithm::Ps256 {
                Algorithm::Rs256
            } else {
                algorithm
            };
            assert_eq!((public.algorithm(), public.kid()), (expected, key.kid()), "{algorithm}");
            assert_eq!(public.params(), key.public().params());
            // Its own PEM reads back as the same key, algorithm included.
            assert_eq!(&PublicKey::from_pem(&key.public().to_pem()).unwrap(), key.public());
        }
    }
}
