//! JWT signing keys, as auth-service uses them and as suma generates, rotates and signs with them.
//!
//! One crate for both products because the key is their contract: suma writes a PEM into the secret
//! store, the service reads it, and both must agree on the key's algorithm, its `kid` (the RFC 7638 JWK
//! thumbprint, derived from the public key and never stored beside it) and its JWK. Four algorithms:
//! ES256 (P-256, the default for new keys), EdDSA (Ed25519) and PS256, which the FAPI 2.0 Security
//! Profile allows, and RS256, kept so that keys issued before can still be read and migrated away from.
//!
//! The algorithm comes from the key: an EC key signs ES256 and an Ed25519 key EdDSA. An RSA key signs
//! RS256 unless its PEM declares `alg: PS256` in the explanatory text before the block (RFC 7468 §5.2:
//! text outside the encapsulation boundaries, which PEM readers such as OpenSSL skip). A declared
//! algorithm that does not fit the key is refused. A verifier never takes the algorithm from a token's
//! header alone: it checks the header against the key's.
//!
//! All cryptography is aws-lc-rs's; no other RSA implementation is linked.

mod algorithm;
mod pem;
mod public;
mod signing;

pub use algorithm::Algorithm;
pub use public::{PublicKey, PublicParams};
pub use signing::{generate, GeneratedKey, SigningKey};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The RSA sizes suma can generate (aws-lc-rs's supported sizes).
pub const RSA_GENERATED_BITS: [usize; 4] = [2048, 3072, 4096, 8192];

/// Why a key could not be read, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No PEM block in the text.
    #[error("no PEM block (`-----BEGIN …-----`) found")]
    NotPem,
    /// A PEM block without its end line, or with a body that is not base64.
    #[error("the `{label}` PEM block is malformed: {problem}")]
    MalformedPem { label: String, problem: String },
    /// A PEM block of a kind that holds no key used here.
    #[error("a `{label}` PEM block holds no key for signing tokens (expected PRIVATE KEY, EC PRIVATE KEY, RSA PRIVATE KEY, PUBLIC KEY or RSA PUBLIC KEY)")]
    Label { label: String },
    /// An encrypted (passphrase-protected) PEM.
    #[error("the key is encrypted; store it unencrypted in the secret store, which encrypts it at rest")]
    Encrypted,
    /// A public key where a private one is needed.
    #[error("a `{label}` block cannot sign: expected a private key")]
    NotPrivate { label: String },
    /// The block parses as none of the supported key types.
    #[error("the `{label}` block is neither an EC P-256, an Ed25519 nor an RSA key")]
    Unsupported { label: String },
    /// The declared `alg:` does not fit the key.
    #[error("`alg: {declared}` does not fit {key} (it signs {fits})")]
    Mismatch {
        declared: Algorithm,
        key: &'static str,
        fits: &'static str,
    },
    /// An RSA key below [`MIN_RSA_BITS`].
    #[error("the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")]
    RsaTooSmall { bits: usize },
    /// An RSA size suma cannot generate.
    #[error("RSA keys are generated with 2048, 3072, 4096 or 8192 bits, not {0}")]
    RsaSize(usize),
    /// An algorithm name that is not one of the four.
    #[error("unknown JWT algorithm `{0}`; expected ES256, EdDSA, PS256 or RS256")]
    UnknownAlgorithm(String),
    /// The cryptographic library refused to generate a key.
    #[error("cannot generate an {0} key")]
    Generate(Algorithm),
    /// The cryptographic library refused to sign.
    #[error("cannot sign with the {0} key")]
    Sign(Algorithm),
}

/// The base64url (no padding) text JOSE uses for every binary member.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
