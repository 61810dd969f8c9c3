//! TOTP secrets encrypted at rest: AES-256-GCM under a key from configuration.
//!
//! The service must read a TOTP secret to compute codes, so it cannot be hashed; it is sealed instead. A
//! sealed secret is one self-describing value, `0x01 ‖ key id (8) ‖ nonce (12) ‖ ciphertext + tag (36)`:
//! the version byte leaves room for another format, the key id names the key that sealed it (so keys can
//! rotate: [`TotpSealer::open`] tries the key the id names among every configured key, and
//! [`TotpSealer::seal`] always uses the newest), and the nonce is random per record. The user id is the
//! associated data, so a sealed secret copied onto another account does not open.
//!
//! The key id is derived from the key (truncated SHA-256), never configured, so an operator only ever
//! handles keys. Rows from before encryption are marked plaintext (`secret_format = 0`) and are sealed
//! the next time they are read (see `http::twofactor`).

use aes_gcm::aead::{Aead as _, KeyInit as _, Nonce, Payload};
use aes_gcm::Aes256Gcm;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// The format byte of a sealed secret.
const VERSION: u8 = 1;
/// Bytes of a key id.
const KEY_ID_LEN: usize = 8;
/// Bytes of an AES-GCM nonce.
const NONCE_LEN: usize = 12;
/// Bytes of the GCM tag.
const TAG_LEN: usize = 16;

/// The length of a sealed 20-byte TOTP secret (the database checks it too).
pub const SEALED_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN + 20 + TAG_LEN;

/// How a stored secret is encoded (`totp_credentials.secret_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFormat {
    /// The 20 raw bytes, written before secrets were encrypted.
    Plain,
    /// A sealed value (see the module documentation).
    Sealed,
}

impl SecretFormat {
    /// The column value.
    pub fn code(self) -> i16 {
        match self {
            SecretFormat::Plain => 0,
            SecretFormat::Sealed => 1,
        }
    }

    /// From the column value; `None` for a format this build does not know.
    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            0 => Some(SecretFormat::Plain),
            1 => Some(SecretFormat::Sealed),
            _ => None,
        }
    }
}

/// Why a key or a stored secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A configured key is not base64 of 32 bytes.
    #[error("is not base64 of 32 bytes (generate one with `openssl rand -base64 32`)")]
    BadKey,
    /// The secret was sealed with a key that is not configured.
    #[error("the TOTP secret was sealed with key `{0}`, which is not configured\nhint: add the old key to TOTP_ENCRYPTION_PREVIOUS_KEYS")]
    UnknownKey(String),
    /// The stored value is malformed, tampered with, or belongs to another account.
    #[error("the stored TOTP secret does not open (malformed, tampered with, or another account's)")]
    Corrupt,
    /// The column names a format this build does not know.
    #[error("the stored TOTP secret has an unknown format {0}")]
    UnknownFormat(i16),
}

struct Key {
    id: [u8; KEY_ID_LEN],
    cipher: Aes256Gcm,
}

/// Seals and opens TOTP secrets with the configured keys.
pub struct TotpSealer {
    /// The newest key first: it seals; all of them open.
    keys: Vec<Key>,
}

impl std::fmt::Debug for TotpSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpSealer")
            .field(
                "key_ids",
                &self.keys.iter().map(|k| hex::encode(k.id)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Decodes a key: base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
pub fn parse_key(text: &str) -> Result<[u8; 32], SealError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or(SealError::BadKey)?;
    bytes.try_into().map_err(|_| SealError::BadKey)
}

/// The id of a key: the first 8 bytes of SHA-256 over a label and the key.
pub fn key_id(key: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::new()
        .chain_update(b"auth-service/totp-key-id/v1\0")
        .chain_update(key)
        .finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

impl TotpSealer {
    /// A sealer with `current` sealing and every key (current and `previous`) opening.
    pub fn new(current: [u8; 32], previous: &[[u8; 32]]) -> Self {
        let keys = std::iter::once(&current)
            .chain(previous)
            .map(|k| Key {
                id: key_id(k),
                cipher: Aes256Gcm::new(&(*k).into()),
            })
            .collect();
        Self { keys }
    }

    /// The id of the sealing key, hex.
    pub fn current_key_id(&self) -> String {
        hex::encode(self.keys[0].id)
    }

    /// Seals a secret for a user with the newest key and a fresh nonce.
    pub fn seal(&self, user_id: Uuid, secret: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(
                &Nonce::<Aes256Gcm>::from(nonce),
                Payload {
                    msg: secret,
                    aad: user_id.as_bytes(),
                },
            )
            // Only fails for inputs of gigabytes.
            .expect("AES-GCM seals a short secret");
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a stored secret of a user. Returns the secret and whether it should be sealed again (stored
    /// in clear, or sealed with a key other than the newest).
    pub fn open(&self, user_id: Uuid, stored: &[u8], format: i16) -> Result<(Vec<u8>, bool), SealError> {
        match SecretFormat::from_code(format).ok_or(SealError::UnknownFormat(format))? {
            SecretFormat::Plain => Ok((stored.to_vec(), true)),
            SecretFormat::Sealed => {
                if stored.len() < 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN || stored[0] != VERSION {
                    return Err(SealError::Corrupt);
                }
                let id = &stored[1..1 + KEY_ID_LEN];
                let nonce: [u8; NONCE_LEN] = stored[1 + KEY_ID_LEN..1 + KEY_ID_LEN + NONCE_LEN]
                    .try_into()
                    .map_err(|_| SealError::Corrupt)?;
                let (index, key) = self
                    .keys
                    .iter()
                    .enumerate()
                    .find(|(_, k)| k.id == id)
                    .ok_or_else(|| SealError::UnknownKey(hex::encode(id)))?;
                let secret = key
                    .cipher
                    .decrypt(
                        &Nonce::<Aes256Gcm>::from(nonce),
                        Payload {
                            msg: &stored[1 + KEY_ID_LEN + NONCE_LEN..],
                            aad: user_id.as_bytes(),
                        },
                    )
                    .map_err(|_| SealError::Corrupt)?;
                Ok((secret, index != 0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> [u8; 32] {
        [byte; 32]
    }

    #[test]
    fn seals_and_opens_and_binds_to_the_user() {
        let sealer = TotpSealer::new(key(1), &[]);
        let user = Uuid::new_v4();
        let secret = [7u8; 20];
        let sealed = sealer.seal(user, &secret);
        assert_eq!(sealed.len(), SEALED_LEN);
        assert!(
            !sealed.windows(20).any(|w| w == secret),
            "the secret must not appear in clear"
        );
        assert_ne!(sealed, sealer.seal(user, &secret), "a fresh nonce per record");
        assert_eq!(sealer.open(user, &sealed, 1).unwrap(), (secret.to_vec(), false));
        assert!(matches!(
            sealer.open(Uuid::new_v4(), &sealed, 1),
            Err(SealError::Corrupt)
        ));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(sealer.open(user, &tampered, 1), Err(SealError::Corrupt)));
        assert!(matches!(
            sealer.open(user, &sealed, 7),
            Err(SealError::UnknownFormat(7))
        ));
    }

    #[test]
    fn rotation_opens_with_old_keys_and_asks_to_reseal() {
        let user = Uuid::new_v4();
        let old = TotpSealer::new(key(1), &[]);
        let sealed = old.seal(user, &[3u8; 20]);
        let rotated = TotpSealer::new(key(2), &[key(1)]);
        assert_eq!(rotated.open(user, &sealed, 1).unwrap(), (vec![3u8; 20], true));
        let resealed = rotated.seal(user, &[3u8; 20]);
        assert_eq!(&resealed[1..9], &key_id(&key(2)));
        let without_old = TotpSealer::new(key(2), &[]);
        let err = without_old.open(user, &sealed, 1).unwrap_err();
        assert!(matches!(err, SealError::UnknownKey(_)), "{err}");
    }

    #[test]
    fn plaintext_rows_open_and_ask_to_reseal() {
        let sealer = TotpSealer::new(key(1), &[]);
        assert_eq!(
            sealer.open(Uuid::new_v4(), &[9u8; 20], 0).unwrap(),
            (vec![9u8; 20], true)
        );
    }

    #[test]
    fn keys_are_base64_of_32_bytes() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let raw = [0xfbu8; 32];
        assert_eq!(parse_key(&STANDARD.encode(raw)).unwrap(), raw);
        assert_eq!(parse_key(&URL_SAFE_NO_PAD.encode(raw)).unwrap(), raw);
        assert!(parse_key(&STANDARD.encode([1u8; 16])).is_err());
        assert!(parse_key("not base64!").is_err());
    }
}
