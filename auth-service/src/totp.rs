//! TOTP (RFC 6238 over RFC 4226 HOTP): HMAC-SHA-1, 6 digits, 30-second steps, one step of drift either
//! way; base32 secrets and `otpauth://` URIs for authenticator apps; recovery codes.
//!
//! Pure functions: the caller supplies the time and keeps the last accepted step, so a code is accepted
//! at most once (see `totp_credentials.last_used_step`).

use aws_lc_rs::hmac;
use rand::RngCore as _;

/// Seconds per step.
pub const STEP: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps of clock drift accepted either side.
pub const DRIFT: i64 = 1;

/// HOTP (RFC 4226) with HMAC-SHA-1: the `digits`-digit code for `counter`.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([mac[offset] & 0x7f, mac[offset + 1], mac[offset + 2], mac[offset + 3]]);
    binary % 10u32.pow(digits)
}

/// The time step of a Unix time.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP)
}

/// The code for a time step, zero-padded.
pub fn code_at(secret: &[u8], step: i64) -> String {
    format!("{:0width$}", hotp(secret, step as u64, DIGITS), width = DIGITS as usize)
}

/// The step a code matches within the drift window at `unix`, newer than `last_used` (so a code is never
/// accepted twice, nor an older one after a newer). Constant-time comparison of each candidate.
pub fn verify(secret: &[u8], code: &str, unix: i64, last_used: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix);
    let mut found = None;
    for step in (now - DRIFT)..=(now + DRIFT) {
        let candidate = code_at(secret, step);
        let equal = crate::tokens::constant_time_eq(candidate.as_bytes(), code.as_bytes());
        if equal && last_used.is_none_or(|last| step > last) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A new 160-bit secret (RFC 4226's recommended length for SHA-1).
pub fn new_secret() -> [u8; 20] {
    let mut s = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn uri_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `otpauth://totp/…` URI of a secret (Key Uri Format), for a QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        uri_escape(issuer),
        uri_escape(account),
        base32(secret),
        uri_escape(issuer)
    )
}

/// Ten recovery codes, `xxxxx-xxxxx` in lower-case base32 (50 bits each).
pub fn new_recovery_codes() -> Vec<String> {
    (0..10)
        .map(|_| {
            // 120 random bits: beyond guessing and offline search of the stored hashes (ASVS asks for
            // 112 or more when the hash is unsalted), in four groups of six to type.
            let mut raw = [0u8; RECOVERY_CODE_BYTES];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            group(&base32(&raw).to_lowercase())
        })
        .collect()
}

/// Random bytes in a recovery code (120 bits, 24 base32 characters).
const RECOVERY_CODE_BYTES: usize = 15;

/// Characters of a recovery code issued before codes had 120 bits (50 bits, `xxxxx-xxxxx`); still
/// accepted until used or replaced.
const LEGACY_RECOVERY_CODE_CHARS: usize = 10;

/// `s` in groups of six (five for a legacy code) joined by `-`.
fn group(s: &str) -> String {
    let size = if s.len() == LEGACY_RECOVERY_CODE_CHARS { 5 } else { 6 };
    s.as_bytes()
        .chunks(size)
        .map(|c| std::str::from_utf8(c).expect("ASCII"))
        .collect::<Vec<_>>()
        .join("-")
}

/// The normal form of a typed recovery code (case and separators ignored), current or legacy.
pub fn normalize_recovery_code(code: &str) -> Option<String> {
    let s: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == RECOVERY_CODE_BYTES * 8 / 5 || s.len() == LEGACY_RECOVERY_CODE_CHARS).then(|| group(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_carry_120_bits_and_legacy_ones_still_normalise() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        for code in &codes {
            let chars: String = code.chars().filter(|c| *c != '-').collect();
            assert_eq!(chars.len(), 24, "{code}: 24 base32 characters are 120 bits");
            assert_eq!(code.matches('-').count(), 3, "{code}");
            assert_eq!(
                normalize_recovery_code(&code.to_uppercase().replace('-', " ")).as_deref(),
                Some(code.as_str())
            );
        }
        let unique: std::collections::HashSet<&String> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        assert_eq!(
            normalize_recovery_code("ABCDE ABCDE").as_deref(),
            Some("abcde-abcde"),
            "legacy"
        );
        assert_eq!(normalize_recovery_code("abcde-abcd"), None);
    }

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits, secret "12345678901234567890").
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(secret, time / 30, 8), expected, "T = {time}");
        }
    }

    /// RFC 4226 Appendix D.
    #[test]
    fn rfc4226_hotp_vectors() {
        let secret = b"12345678901234567890";
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871, 520_489,
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(secret, counter as u64, 6), *code);
        }
    }

    #[test]
    fn drift_and_replay() {
        let secret = b"12345678901234567890";
        let t = 1_111_111_111;
        let now = step_of(t);
        let code = code_at(secret, now);
        assert_eq!(verify(secret, &code, t, None), Some(now));
        assert_eq!(verify(secret, &code, t, Some(now)), None, "replay refused");
        assert_eq!(verify(secret, &code_at(secret, now - 1), t, None), Some(now - 1));
        assert_eq!(verify(secret, &code_at(secret, now + 1), t, None), Some(now + 1));
        assert_eq!(verify(secret, &code_at(secret, now - 2), t, None), None, "beyond drift");
        assert_eq!(
            verify(secret, &code_at(secret, now - 1), t, Some(now)),
            None,
            "older than last used"
        );
        assert_eq!(verify(secret, "12345", t, None), None);
        assert_eq!(verify(secret, "abcdef", t, None), None);
    }

    #[test]
    fn base32_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected);
        }
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn uri_and_recovery_codes() {
        let uri = otpauth_uri("suma auth", "a@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/suma%20auth:a@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=suma%20auth&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(normalize_recovery_code(" ABCDE ghijk "), Some("abcde-ghijk".into()));
        assert_eq!(normalize_recovery_code("short"), None);
    }
}
