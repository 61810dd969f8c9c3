//! The one detector of secrets in plain environment variables, shared by `taskdef validate` (before a
//! revision is registered) and the compliance check `ecs-no-plaintext-secrets` (on what is registered), so
//! what one accepts the other accepts. Pure; the value is never repeated in what it reports.
//!
//! A variable is judged by its name and by its value:
//! - the name, split into `_`-separated words, says it holds a secret (`DB_PASSWORD`, `MYSQL_PWD`,
//!   `STRIPE_API_KEY`, and words glued to a secret word such as libpq's `PGPASSWORD`) unless its last word makes it a reference to one or a setting about one
//!   (`JWT_KEYS_SECRET_ID`, `ACCESS_TOKEN_TTL`, `BREACHED_PASSWORD_API_URL`);
//! - the value looks like a credential whatever the name: a key's well-known shape (AWS, Stripe, Slack,
//!   GitHub, Twilio, a PEM block, a JWT), a URL with a password, or a long random-looking string (base64
//!   or hex).

use std::collections::HashMap;

/// Words in a variable name that say it holds a secret.
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD",
    "SECRET",
    "TOKEN",
    "KEY",
    "KEYS",
    "APIKEY",
    "CREDENTIAL",
    "CREDENTIALS",
    "PRIVATE",
    "HMAC",
    "SALT",
    "PEPPER",
];

/// Endings that make a word glued from several (`PGPASSWORD`, libpq's; `DBPASSWORD`, `APITOKEN`) say
/// secret too.
const SECRET_ENDINGS: &[&str] = &["PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY"];

/// Last words that make such a name about a secret rather than the secret itself.
const REFERENCE_WORDS: &[&str] = &[
    "ID",
    "ARN",
    "NAME",
    "FILE",
    "DIR",
    "PATH",
    "URL",
    "URI",
    "ENDPOINT",
    "REGION",
    "TTL",
    "INTERVAL",
    "PREFIX",
    "LEEWAY",
    "AGE",
    "TIMEOUT",
    "MS",
    "SECS",
    "SECONDS",
    "MINUTES",
    "HOURS",
    "DAYS",
    "BITS",
    "LENGTH",
    "ENABLED",
    "HEADER",
    "VERSION",
    "POLICY",
    "UNAVAILABLE",
];

/// Last words of names whose values are digests by design (a commit, an image digest): a long hex value
/// there is no key.
const DIGEST_WORDS: &[&str] = &["VERSION", "COMMIT", "SHA", "REVISION", "DIGEST", "HASH", "CHECKSUM"];

/// Prefixes of well-known credentials: (prefix, what it is).
const KEY_PREFIXES: &[(&str, &str)] = &[
    ("sk_live_", "Stripe secret key"),
    ("sk_test_", "Stripe secret key"),
    ("rk_live_", "Stripe restricted key"),
    ("xoxb-", "Slack token"),
    ("xoxp-", "Slack token"),
    ("ghp_", "GitHub token"),
    ("github_pat_", "GitHub token"),
    ("glpat-", "GitLab token"),
    ("AIza", "Google API key"),
];

/// Why a variable looks like a secret, if it does.
pub fn judge(name: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(['_', '-']).filter(|w| !w.is_empty()).collect();
    let reference = words.last().is_some_and(|w| REFERENCE_WORDS.contains(w));
    if !reference {
        let says_secret = |w: &&&str| SECRET_WORDS.contains(*w) || SECRET_ENDINGS.iter().any(|e| w.ends_with(e));
        if let Some(word) = words.iter().find(says_secret) {
            return Some(format!("its name says {word}"));
        }
    }
    let digest = words.last().is_some_and(|w| DIGEST_WORDS.contains(w));
    value_looks_secret(value, digest).map(|why| format!("its value: {why}"))
}

/// What kind of credential `value` looks like, whatever its name.
fn value_looks_secret(v: &str, digest_name: bool) -> Option<&'static str> {
    if v.starts_with("arn:") {
        // An ARN names a resource; its random-looking suffix is not a secret.
        return None;
    }
    let aws_key = (v.starts_with("AKIA") || v.starts_with("ASIA"))
        && v.len() == 20
        && v.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if aws_key {
        return Some("AWS access key id");
    }
    if let Some((_, what)) = KEY_PREFIXES
        .iter()
        .find(|(p, _)| v.starts_with(p) && v.len() >= p.len() + 16)
    {
        return Some(what);
    }
    let twilio =
        (v.starts_with("SK") || v.starts_with("AC")) && v.len() == 34 && v[2..].chars().all(|c| c.is_ascii_hexdigit());
    if twilio {
        return Some("Twilio key or account id");
    }
    if v.contains("-----BEGIN") {
        return Some("PEM key");
    }
    if v.starts_with("eyJ") && v.split('.').count() == 3 {
        return Some("JWT");
    }
    if let Some((_, rest)) = v.split_once("://") {
        let authority = rest.split('/').next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                return Some("password in URL");
            }
        }
        // Any other URL is an address, however random its path looks.
        return None;
    }
    if v.contains(char::is_whitespace) || v.contains(':') && !v.contains('=') {
        // Prose, lists, `host:port`: not one token.
        return None;
    }
    let hex = v.len() >= 32 && v.chars().all(|c| c.is_ascii_hexdigit());
    if hex && !digest_name {
        return Some("long hex string");
    }
    let base64ish = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_' | '.'));
    // A path (`/a/b`, `a/b/c`) is words and slashes; a key is one long run of mixed characters.
    let path_like = v.starts_with('/') || v.split('/').count() > 2;
    if base64ish && !path_like && v.len() >= 20 && shannon_entropy(v) >= 4.0 {
        return Some("high entropy");
    }
    None
}

/// Bits per character.
fn shannon_entropy(s: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in s.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let len = s.chars().count() as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::judge;

    /// Real-looking credentials (made up here, never valid): each must be caught whatever its name.
    #[test]
    fn a_corpus_of_credentials_is_caught_by_value() {
        for value in [
            "AKIAIOSFODNN7EXAMPLE",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "rk_live_51H8x2eKqP0aZ9bXcYdV3fGh",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "SK0123456789abcdef0123456789abcdef",
            "AC0123456789abcdef0123456789abcdef",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            "-----BEGIN PRIVATE KEY-----\nMIIE...",
            "postgres://auth:s3cr3t@db.internal:5432/auth",
            // base64 of random bytes, with `/` and `+` (half of all such keys contain a slash)
            "q2J8k/Pz9+Xw4LmN7vB1cR5tY0uIoP3aSdFgHjKl=",
            "3q2+7w/9yVbXc1ZkLmNp0aQr8sTu4vWx5yZ6AbCdE2f=",
            // hex tokens, whose alphabet keeps their entropy under 4 bits per character
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert!(judge("SOMETHING", value).is_some(), "missed {value}");
        }
    }

    #[test]
    fn names_that_say_secret_are_caught_and_references_are_judged_by_value() {
        for name in [
            "DB_PASSWORD",
            "DB_PASS",
            "MYSQL_PWD",
            "PGPASSWORD",
            "DBPASSWORD",
            "GITHUB_APITOKEN",
            "CLIENT_SECRET",
            "STRIPE_API_KEY",
            "RESET_TOKEN_KEYS",
            "HMAC",
            "PASSWORD_PEPPER",
        ] {
            assert!(judge(name, "x").is_some(), "missed {name}");
        }
        for (name, value) in [
            ("JWT_KEYS_SECRET_ID", "/suma-finance/auth/staging/jwt-signing-key"),
            ("ACCESS_TOKEN_TTL", "900"),
            ("REFRESH_TOKEN_TTL_SECS", "2592000"),
            ("PASSWORD_MIN_LENGTH", "12"),
            ("REDIS_KEY_PREFIX", "auth:"),
            ("JWT_KEYS_RELOAD_INTERVAL", "60"),
            ("BREACHED_PASSWORD_API_URL", "https://api.pwnedpasswords.com"),
            ("BREACHED_PASSWORD_TIMEOUT_MS", "1500"),
            ("BREACHED_PASSWORD_UNAVAILABLE", "refuse"),
            (
                "DB_PASSWORD_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-password-Xk9fQ2",
            ),
            ("SESSION_TOKEN_HEADER", "Authorization"),
            ("GIT_COMMIT", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"),
            ("SERVICE_VERSION", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"),
        ] {
            assert_eq!(judge(name, value), None, "{name}={value}");
        }
        // A reference-like name still has its value judged.
        assert!(judge("JWT_SECRET_ID", "-----BEGIN PRIVATE KEY-----").is_some());
        assert!(judge("DATABASE_URL", "postgres://auth:s3cr3t@db/auth").is_some());
    }

    /// Harmless values a task definition carries every day.
    #[test]
    fn a_corpus_of_harmless_values_passes() {
        for value in [
            "staging",
            "0.0.0.0",
            "8080",
            "info,sqlx=warn,tower_http=warn",
            "https://auth.example.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-service:1.4.2",
            "/suma-finance/auth/production/jwt-signing-key",
            "eu-west-1",
            "auth-service <no-reply@example.com>",
            "postgres://db.internal:5432/auth",
            "a3f9c2e",
            "2026-12-05T03:00:00Z",
            "canary",
            "auth_service.login",
            "arn:aws:iam::123456789012:role/auth-service-task",
        ] {
            assert_eq!(judge("SETTING", value), None, "{value}");
        }
    }
}
