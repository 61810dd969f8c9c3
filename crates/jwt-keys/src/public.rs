//! The public half of a key: its parameters, its algorithm, its JWK and its `kid`.

use sha2::{Digest, Sha256};

use crate::pem::{self, Block};
use crate::{b64, Algorithm, KeyError, SigningKey, MIN_RSA_BITS};

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte uncompressed point (RFC 5480).
const SPKI_P256: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32-byte key (RFC 8410).
const SPKI_ED25519: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The public parameters of a key, as big-endian bytes (JWK members before base64url).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicParams {
    /// A P-256 point.
    Ec { x: Vec<u8>, y: Vec<u8> },
    /// An Ed25519 key.
    Okp { x: Vec<u8> },
    /// An RSA modulus and exponent, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PublicParams {
    /// The parameters of an uncompressed P-256 point (`04 || x || y`).
    pub(crate) fn ec_point(point: &[u8]) -> Option<Self> {
        match point {
            [0x04, rest @ ..] if rest.len() == 64 => Some(Self::Ec {
                x: rest[..32].to_vec(),
                y: rest[32..].to_vec(),
            }),
            _ => None,
        }
    }

    /// What kind of key these are, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Ec { .. } => "an EC P-256 key",
            Self::Okp { .. } => "an Ed25519 key",
            Self::Rsa { .. } => "an RSA key",
        }
    }

    /// The algorithm a key of these parameters signs, given what its PEM declares.
    pub(crate) fn algorithm(&self, declared: Option<Algorithm>) -> Result<Algorithm, KeyError> {
        let (fits, default): (&[Algorithm], _) = match self {
            Self::Ec { .. } => (&[Algorithm::Es256], Algorithm::Es256),
            Self::Okp { .. } => (&[Algorithm::EdDsa], Algorithm::EdDsa),
            Self::Rsa { .. } => (&[Algorithm::Rs256, Algorithm::Ps256], Algorithm::Rs256),
        };
        match declared {
            None => Ok(default),
            Some(declared) if fits.contains(&declared) => Ok(declared),
            Some(declared) => Err(KeyError::Mismatch {
                declared,
                key: self.kind(),
                fits: match self {
                    Self::Ec { .. } => "ES256",
                    Self::Okp { .. } => "EdDSA",
                    Self::Rsa { .. } => "RS256 or PS256",
                },
            }),
        }
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order, base64url.
    fn thumbprint(&self) -> String {
        let canonical = match self {
            Self::Ec { x, y } => format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, b64(x), b64(y)),
            Self::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x)),
            Self::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n)),
        };
        b64(&Sha256::digest(canonical.as_bytes()))
    }
}

/// A verification key: its parameters, the algorithm it verifies and its `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: Algorithm,
    params: PublicParams,
    kid: String,
}

impl PublicKey {
    /// A key of `params` for `algorithm`; the kid is derived.
    pub fn new(algorithm: Algorithm, params: PublicParams) -> Self {
        let kid = params.thumbprint();
        Self { algorithm, params, kid }
    }

    /// Reads a public key (`PUBLIC KEY`, `RSA PUBLIC KEY`), or the public half of a private key PEM.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(text)?;
        let params = match block.label.as_str() {
            "PUBLIC KEY" => spki(&block)?,
            "RSA PUBLIC KEY" => rsa_public(&block)?,
            _ => return Ok(SigningKey::from_pem(text)?.public().clone()),
        };
        let algorithm = params.algorithm(block.declared)?;
        Ok(Self::new(algorithm, params))
    }

    /// The algorithm it verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The RFC 7638 thumbprint, the key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Its parameters.
    pub fn params(&self) -> &PublicParams {
        &self.params
    }

    /// The key as a SubjectPublicKeyInfo PEM (`PUBLIC KEY`), preceded by its `alg:` line, which
    /// [`PublicKey::from_pem`] reads back as this key.
    pub fn to_pem(&self) -> String {
        use aws_lc_rs::encoding::AsDer as _;
        let der = match &self.params {
            PublicParams::Ec { x, y } => [&SPKI_P256[..], &[0x04], x, y].concat(),
            PublicParams::Okp { x } => [&SPKI_ED25519[..], x].concat(),
            PublicParams::Rsa { n, e } => aws_lc_rs::rsa::PublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .as_der()
            .map(|der| der.as_ref().to_vec())
            // Components read from a key always encode; an empty body would fail to read back.
            .unwrap_or_default(),
        };
        pem::encode(self.algorithm, "PUBLIC KEY", &der)
    }

    /// The JWK published in a JWKS: key type, curve or modulus, `use: sig`, `alg` and `kid`.
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk = match &self.params {
            PublicParams::Ec { x, y } => serde_json::json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) }),
            PublicParams::Okp { x } => serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(x) }),
            PublicParams::Rsa { n, e } => serde_json::json!({ "kty": "RSA", "n": b64(n), "e": b64(e) }),
        };
        jwk["use"] = "sig".into();
        jwk["alg"] = self.algorithm.name().into();
        jwk["kid"] = self.kid.clone().into();
        jwk
    }
}

/// The parameters of a SubjectPublicKeyInfo: P-256 and Ed25519 by their fixed DER prefix, else RSA.
fn spki(block: &Block) -> Result<PublicParams, KeyError> {
    let der = block.der.as_slice();
    if let Some(point) = der.strip_prefix(&SPKI_P256[..]) {
        return PublicParams::ec_point(point).ok_or_else(|| unsupported(block));
    }
    if let Some(key) = der.strip_prefix(&SPKI_ED25519[..]) {
        return match key.len() {
            32 => Ok(PublicParams::Okp { x: key.to_vec() }),
            _ => Err(unsupported(block)),
        };
    }
    rsa_public(block)
}

/// The parameters of an RSA public key, in SPKI or PKCS#1 DER.
fn rsa_public(block: &Block) -> Result<PublicParams, KeyError> {
    let key = aws_lc_rs::rsa::PublicKey::from_der(&block.der).map_err(|_| unsupported(block))?;
    rsa_params(aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(&key))
}

/// RSA parameters from their components, refusing a modulus below [`MIN_RSA_BITS`].
pub(crate) fn rsa_params(components: aws_lc_rs::rsa::PublicKeyComponents<Vec<u8>>) -> Result<PublicParams, KeyError> {
    let bits = components.n.len() * 8;
    if bits < MIN_RSA_BITS {
        return Err(KeyError::RsaTooSmall { bits });
    }
    Ok(PublicParams::Rsa {
        n: components.n,
        e: components.e,
    })
}

fn unsupported(block: &Block) -> KeyError {
    KeyError::Unsupported {
        label: block.label.clone(),
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    fn unb64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    #[test]
    fn rsa_thumbprint_matches_the_rfc_7638_example() {
        // The example key of RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let key = PublicKey::new(
            Algorithm::Rs256,
            PublicParams::Rsa {
                n: unb64(n),
                e: unb64("AQAB"),
            },
        );
        assert_eq!(key.kid(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn okp_thumbprint_matches_the_rfc_8037_example() {
        // RFC 8037 appendix A.3.
        let key = PublicKey::new(
            Algorithm::EdDsa,
            PublicParams::Okp {
                x: unb64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            },
        );
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn ec_thumbprint_follows_the_rfc_7638_member_order() {
        // The P-256 key of RFC 7517 appendix A.1; its canonical form hashed by hand.
        let (x, y) = (
            "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
        );
        let key = PublicKey::new(
            Algorithm::Es256,
            PublicParams::Ec {
                x: unb64(x),
                y: unb64(y),
            },
        );
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        assert_eq!(key.kid(), b64(&Sha256::digest(canonical.as_bytes())));
        let jwk = key.jwk();
        assert_eq!((jwk["kty"].as_str(), jwk["alg"].as_str()), (Some("EC"), Some("ES256")));
        assert_eq!((jwk["x"].as_str(), jwk["y"].as_str()), (Some(x), Some(y)));
    }

    #[test]
    fn a_declared_algorithm_must_fit_the_key() {
        let rsa = PublicParams::Rsa {
            n: vec![1; 256],
            e: vec![1, 0, 1],
        };
        let ec = PublicParams::Ec {
            x: vec![1; 32],
            y: vec![2; 32],
        };
        let okp = PublicParams::Okp { x: vec![3; 32] };
        let table = [
            (&rsa, None, Some(Algorithm::Rs256)),
            (&rsa, Some(Algorithm::Ps256), Some(Algorithm::Ps256)),
            (&rsa, Some(Algorithm::Es256), None),
            (&ec, None, Some(Algorithm::Es256)),
            (&ec, Some(Algorithm::Rs256), None),
            (&okp, None, Some(Algorithm::EdDsa)),
            (&okp, Some(Algorithm::Es256), None),
        ];
        for (params, declared, expected) in table {
            assert_eq!(
                params.algorithm(declared).ok(),
                expected,
                "{params:?} declared {declared:?}"
            );
        }
    }
}
