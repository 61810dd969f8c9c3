//! Access and refresh tokens.
//!
//! Access tokens are JWTs (`typ: at+jwt`, RFC 9068) signed with the signing key's algorithm (ES256, EdDSA,
//! PS256 or RS256) with a `kid` header. Verification looks the key up by `kid` in the live [`KeySet`] and
//! accepts only that key's algorithm (never the header's alone, so neither `none` nor an HMAC keyed with a
//! public key can pass), then checks issuer, audience, `exp` and `nbf` against the injected clock. Refresh
//! tokens are opaque: 32 bytes from the OS RNG, base64url, stored only as their SHA-256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::keys::KeySet;

/// The JWT `typ` header of access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// The session this token belongs to.
    pub sid: String,
}

/// Issuer, audience and timing rules shared by issuing and verifying, with the `Validation` of each
/// algorithm and kind of token built once from them (the fields are private so that the two cannot
/// disagree).
#[derive(Debug, Clone)]
pub struct JwtRules {
    /// `iss`.
    issuer: String,
    /// `aud`.
    audience: String,
    /// Lifetime of an access token, in seconds.
    ttl_secs: i64,
    /// Clock skew tolerated, in seconds.
    leeway_secs: i64,
    prepared: Vec<(Algorithm, TokenKind, Validation)>,
}

/// The kinds of token verified, by the registered claims each must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Access,
    Admin,
    Introspected,
}

impl TokenKind {
    const ALL: [TokenKind; 3] = [TokenKind::Access, TokenKind::Admin, TokenKind::Introspected];

    fn required(self) -> &'static [&'static str] {
        match self {
            TokenKind::Access => &["exp", "nbf", "iss", "aud", "sub"],
            TokenKind::Admin => &["exp", "iat", "iss", "aud", "sub"],
            TokenKind::Introspected => &["exp", "iss", "aud", "sub"],
        }
    }
}

impl JwtRules {
    /// Rules for tokens of `issuer` and `audience`, access tokens living `ttl_secs`, with `leeway_secs` of
    /// clock skew.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, ttl_secs: i64, leeway_secs: i64) -> Self {
        let mut rules = Self {
            issuer: issuer.into(),
            audience: audience.into(),
            ttl_secs,
            leeway_secs,
            prepared: Vec::new(),
        };
        rules.prepared = crate::keys::Algorithm::ALL
            .into_iter()
            .map(crate::keys::jose_algorithm)
            .flat_map(|algorithm| TokenKind::ALL.map(|kind| (algorithm, kind)))
            .map(|(algorithm, kind)| (algorithm, kind, rules.build_validation(algorithm, kind)))
            .collect();
        rules
    }

    /// Signature under `algorithm` only, issuer, audience and `kind`'s claims present; times are the
    /// caller's (see [`decode_signed`]).
    fn build_validation(&self, algorithm: Algorithm, kind: TokenKind) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(kind.required());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation
    }

    fn validation(&self, algorithm: Algorithm, kind: TokenKind) -> std::borrow::Cow<'_, Validation> {
        match self.prepared.iter().find(|(a, k, _)| *a == algorithm && *k == kind) {
            Some((_, _, validation)) => std::borrow::Cow::Borrowed(validation),
            None => std::borrow::Cow::Owned(self.build_validation(algorithm, kind)),
        }
    }
}

/// Why an access token is refused. The variants are for logs and tests; clients see one answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not accepted")]
    Algorithm,
    #[error("wrong token type")]
    Type,
    #[error("unknown key id")]
    UnknownKid,
    #[error("invalid signature or claims: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token lifetime (exp - iat) exceeds {ADMIN_TOKEN_MAX_LIFETIME_SECS} seconds")]
    LifetimeTooLong,
}

/// Signing an access token failed (a broken key; never caller input).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign an access token")]
pub struct SignError;

/// Signs an access token for a user's session; returns it with its expiry.
///
/// The JWS is assembled here (header and claims as JSON, base64url) and signed with the key set's parsed
/// key; verification goes through `jsonwebtoken`, and the tests check that it accepts what this produces.
pub fn issue_access(
    keys: &KeySet,
    rules: &JwtRules,
    user_id: Uuid,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), SignError> {
    let iat = now.timestamp();
    let exp = iat + rules.ttl_secs;
    let claims = AccessClaims {
        iss: rules.issuer.clone(),
        sub: user_id.to_string(),
        aud: rules.audience.clone(),
        exp,
        nbf: iat,
        iat,
        jti: Uuid::new_v4().to_string(),
        sid: session_id.to_string(),
    };
    let token = keys
        .signing()
        .sign_jwt(Some(ACCESS_TOKEN_TYP), &claims)
        .map_err(|_| SignError)?;
    let expires = DateTime::from_timestamp(exp, 0).unwrap_or(now);
    Ok((token, expires))
}

/// Verifies an access token: known `kid`, that key's algorithm, `typ`, signature, issuer, audience, `exp`,
/// `nbf`.
///
/// A token verified before under the same key set is answered from the set's cache of verified tokens
/// ([`crate::verified`]); only its times are checked again.
pub fn verify_access(
    keys: &KeySet,
    rules: &JwtRules,
    token: &str,
    now: DateTime<Utc>,
) -> Result<AccessClaims, TokenError> {
    let digest = crate::verified::VerifiedTokens::digest(&rules.issuer, &rules.audience, token);
    if let Some(claims) = keys.verified().get(&digest) {
        check_times(claims.exp, Some(claims.nbf), rules, now)?;
        return Ok(claims);
    }
    let claims = verify_access_uncached(keys, rules, token, now)?;
    keys.verified().insert(digest, claims.clone(), now.timestamp());
    Ok(claims)
}

/// [`verify_access`] without the cache: every check, the signature included. What the benchmark's bare
/// verification rate measures.
pub fn verify_access_uncached(
    keys: &KeySet,
    rules: &JwtRules,
    token: &str,
    now: DateTime<Utc>,
) -> Result<AccessClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP))
    {
        return Err(TokenError::Type);
    }
    let (_, claims) = decode_signed::<AccessClaims>(keys, rules, token, header, TokenKind::Access)?;
    check_times(claims.exp, Some(claims.nbf), rules, now)?;
    Ok(claims)
}

/// The claims of `token` (whose `header` the caller has read) with its kid: the signature checked with
/// the key its `kid` names, under that key's algorithm only; issuer and audience against `rules`; every
/// claim `kind` requires present. Times are left to the caller, who checks them against the service clock
/// rather than the system clock.
fn decode_signed<T: serde::de::DeserializeOwned>(
    keys: &KeySet,
    rules: &JwtRules,
    token: &str,
    header: jsonwebtoken::Header,
    kind: TokenKind,
) -> Result<(String, T), TokenError> {
    let (kid, key, algorithm) = key_for(keys, header)?;
    let validation = rules.validation(algorithm, kind);
    let data = jsonwebtoken::decode::<T>(token, key, &validation)
        .map_err(|e| TokenError::Invalid(format!("{:?}", e.kind())))?;
    Ok((kid, data.claims))
}

/// `exp` and, when present, `nbf` against the service clock, with the configured leeway.
fn check_times(exp: i64, nbf: Option<i64>, rules: &JwtRules, now: DateTime<Utc>) -> Result<(), TokenError> {
    let now = now.timestamp();
    if exp + rules.leeway_secs <= now {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf - rules.leeway_secs > now) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// The key a token names by `kid`, and the one algorithm that key verifies; a header naming another
/// algorithm is refused before any signature is checked.
fn key_for(keys: &KeySet, header: jsonwebtoken::Header) -> Result<(String, &DecodingKey, Algorithm), TokenError> {
    let kid = header.kid.ok_or(TokenError::UnknownKid)?;
    let (key, algorithm) = keys.decoding_key(&kid).ok_or(TokenError::UnknownKid)?;
    if header.alg != algorithm {
        return Err(TokenError::Algorithm);
    }
    Ok((kid, key, algorithm))
}

/// The longest lifetime (`exp - iat`) an admin token may have: operator tokens are minted per call.
pub const ADMIN_TOKEN_MAX_LIFETIME_SECS: i64 = 900;

/// Claims of a token presented to the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AdminClaims {
    /// `ops:<actor>` for an operator token minted by suma; a user id for a user's own token.
    pub sub: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at; with `exp` it bounds the lifetime.
    pub iat: i64,
    /// Not before, when present.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Token id, recorded in the audit log.
    #[serde(default)]
    pub jti: Option<String>,
    /// The session of a user's token; operator tokens have none.
    #[serde(default)]
    pub sid: Option<String>,
    /// Roles; the admin API needs `admin`.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl AdminClaims {
    /// Whether the token carries the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

/// Verifies a token presented to the admin API: a `kid` of the live key set and that key's algorithm, signature,
/// issuer, audience, `exp`, `iat`, `nbf` when present, and a lifetime (`exp - iat`) of at most
/// [`ADMIN_TOKEN_MAX_LIFETIME_SECS`]. The `typ` header may be `at+jwt` (the service's own tokens), `JWT`
/// or absent (what a JWT library writes by default, as suma's operator tokens do); any other type is
/// refused. The role and the session (when `sid` is present) are the caller's to check.
pub fn verify_admin(
    keys: &KeySet,
    rules: &JwtRules,
    token: &str,
    now: DateTime<Utc>,
) -> Result<AdminClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if let Some(typ) = header.typ.as_deref() {
        if !(typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || typ.eq_ignore_ascii_case("JWT")) {
            return Err(TokenError::Type);
        }
    }
    let (_, claims) = decode_signed::<AdminClaims>(keys, rules, token, header, TokenKind::Admin)?;
    check_times(claims.exp, claims.nbf, rules, now)?;
    // `iat` bounds the lifetime below, so it may not lie in the future either.
    if claims.iat - rules.leeway_secs > now.timestamp() {
        return Err(TokenError::NotYetValid);
    }
    if claims.exp - claims.iat > ADMIN_TOKEN_MAX_LIFETIME_SECS {
        return Err(TokenError::LifetimeTooLong);
    }
    Ok(claims)
}

/// What token introspection learns from a token whose signature and claims are valid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IntrospectedClaims {
    /// The subject; for tokens minted by rotation tests, not necessarily a user.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Not before, when present.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// The session of a user's token; none for a rotation test's token.
    #[serde(default)]
    pub sid: Option<String>,
}

/// Checks a JWT's signature against any key of the set (by `kid`, with that key's algorithm) and its issuer, audience, `exp`
/// and, when present, `nbf`, with the configured leeway. Unlike [`verify_access`] it neither requires the
/// access-token `typ` nor session claims: it answers whether the key set accepts a token, e.g. one signed
/// with a newly rotated key. Returns the kid with the claims.
pub fn introspect(
    keys: &KeySet,
    rules: &JwtRules,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(String, IntrospectedClaims), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    let (kid, claims) = decode_signed::<IntrospectedClaims>(keys, rules, token, header, TokenKind::Introspected)?;
    check_times(claims.exp, claims.nbf, rules, now)?;
    Ok((kid, claims))
}

/// A new refresh token and its SHA-256.
pub fn new_refresh_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// The SHA-256 a refresh token is stored as.
pub fn hash_refresh_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a string has the shape of a refresh token (43 base64url characters).
pub fn looks_like_refresh_token(token: &str) -> bool {
    token.len() == 43 && URL_SAFE_NO_PAD.decode(token).is_ok_and(|b| b.len() == 32)
}

fn grace_pad(presented: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"auth-service/refresh-grace/v1\0");
    h.update(presented.as_bytes());
    h.finalize().into()
}

/// Seals a successor token with a one-time pad derived from the token it replaces. Only a holder of the
/// old token can open it, so the stored value does not expose the successor.
pub fn seal_successor(presented: &str, successor: &str) -> Vec<u8> {
    let raw = URL_SAFE_NO_PAD.decode(successor).unwrap_or_default();
    let pad = grace_pad(presented);
    raw.iter().zip(pad.iter()).map(|(a, b)| a ^ b).collect()
}

/// Opens a sealed successor with the token it replaced.
pub fn open_successor(presented: &str, sealed: &[u8]) -> Option<String> {
    if sealed.len() != 32 {
        return None;
    }
    let pad = grace_pad(presented);
    let raw: Vec<u8> = sealed.iter().zip(pad.iter()).map(|(a, b)| a ^ b).collect();
    Some(URL_SAFE_NO_PAD.encode(raw))
}

/// Whether two secrets are equal, in time that depends on their length only (not on where they differ),
/// so comparing a presented code or token to the expected one leaks nothing by timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_access_tokens_verify_and_defects_are_refused() {
        for algorithm in crate::keys::Algorithm::ALL {
            issued_access_tokens_verify_and_defects_are_refused_with(algorithm);
        }
    }

    /// A key set of one new key of `algorithm` (its PEM too), and rules with a 60 s lifetime and 5 s leeway.
    fn fixture(algorithm: crate::keys::Algorithm) -> (String, KeySet, JwtRules) {
        let pem = crate::keys::generate(algorithm, 2048).unwrap().pem;
        let keys = KeySet::new(crate::keys::parse_private(&pem).unwrap(), &[]).unwrap();
        let rules = JwtRules::new("iss", "aud", 60, 5);
        (pem, keys, rules)
    }

    fn issued_access_tokens_verify_and_defects_are_refused_with(algorithm: crate::keys::Algorithm) {
        let (_, keys, rules) = fixture(algorithm);
        let now = Utc::now();
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, expires) = issue_access(&keys, &rules, user, session, now).unwrap();
        assert_eq!(expires.timestamp(), now.timestamp() + 60);
        let claims = verify_access(&keys, &rules, &token, now).unwrap();
        assert_eq!(claims.sub, user.to_string());
        assert_eq!(claims.sid, session.to_string());
        assert_eq!(
            verify_access(&keys, &rules, &token, now + chrono::Duration::seconds(66)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify_access(&keys, &rules, &token, now - chrono::Duration::seconds(6)),
            Err(TokenError::NotYetValid)
        );
        let other = JwtRules::new("iss", "other", 60, 5);
        assert!(matches!(
            verify_access(&keys, &other, &token, now),
            Err(TokenError::Invalid(_))
        ));
        let mut forged = token.clone();
        forged.truncate(token.len() - 4);
        forged.push_str("AAAA");
        assert!(verify_access(&keys, &rules, &forged, now).is_err());
    }

    #[test]
    fn a_header_naming_another_algorithm_than_its_keys_is_refused_before_the_signature() {
        let (_, keys, rules) = fixture(crate::keys::Algorithm::Es256);
        let kid = keys.signing_kid().to_owned();
        let (token, _) = issue_access(&keys, &rules, Uuid::new_v4(), Uuid::new_v4(), Utc::now()).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        for alg in ["HS256", "none", "RS256", "EdDSA"] {
            let header = serde_json::json!({ "alg": alg, "kid": kid, "typ": ACCESS_TOKEN_TYP });
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
            let refused = verify_access(&keys, &rules, &forged, Utc::now()).unwrap_err();
            // `none` is not even a header jsonwebtoken parses.
            assert!(
                matches!(refused, TokenError::Algorithm | TokenError::Malformed),
                "{alg}: {refused:?}"
            );
        }
    }

    #[test]
    fn a_cached_verification_still_checks_the_times_and_belongs_to_its_key_set() {
        let (pem, keys, rules) = fixture(crate::keys::Algorithm::Es256);
        let now = Utc::now();
        let (token, _) = issue_access(&keys, &rules, Uuid::new_v4(), Uuid::new_v4(), now).unwrap();
        assert!(keys.verified().is_empty());
        let first = verify_access(&keys, &rules, &token, now).unwrap();
        assert_eq!(keys.verified().len(), 1, "remembered once verified");
        assert_eq!(verify_access(&keys, &rules, &token, now).unwrap(), first);
        assert_eq!(
            verify_access(&keys, &rules, &token, now + chrono::Duration::seconds(66)),
            Err(TokenError::Expired),
            "a remembered token still expires"
        );
        let mut forged = token.clone();
        forged.truncate(token.len() - 4);
        forged.push_str("AAAA");
        assert!(
            verify_access(&keys, &rules, &forged, now).is_err(),
            "another string is verified anew"
        );
        assert_eq!(keys.verified().len(), 1, "failures are not remembered");
        // A reloaded set (the same key here) starts empty.
        let reloaded = KeySet::new(crate::keys::parse_private(&pem).unwrap(), &[]).unwrap();
        assert!(reloaded.verified().is_empty());
    }

    #[test]
    fn refresh_tokens_are_256_bit_and_distinct() {
        let (a, ha) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert!(looks_like_refresh_token(&a));
        assert_eq!(ha, hash_refresh_token(&a));
        assert!(!looks_like_refresh_token("short"));
    }

    #[test]
    fn successor_seal_round_trips_only_with_the_old_token() {
        let (old, _) = new_refresh_token();
        let (next, _) = new_refresh_token();
        let sealed = seal_successor(&old, &next);
        assert_eq!(open_successor(&old, &sealed).as_deref(), Some(next.as_str()));
        let (other, _) = new_refresh_token();
        assert_ne!(open_successor(&other, &sealed).as_deref(), Some(next.as_str()));
    }
}
