//! Command line and environment configuration.
//!
//! Every setting is a clap derive field with an `env` fallback; this module holds the clap types and the
//! validation that turns a raw [`Config`] into one the rest of the service can trust. Field names match the
//! environment variable names, so clap's own parse errors already name the variable, and [`Config::validate`]
//! names it for the checks clap cannot express.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The `auth-service` binary.
#[derive(Debug, Parser)]
#[command(
    name = "auth-service",
    version,
    about = "Authentication service: accounts, login, tokens, sessions",
    after_help = "Without a subcommand, `serve` runs.\n\nExit codes: 0 ok; 1 a failed check (`healthcheck`: not healthy, `audit verify`: the chain is broken); 2 usage, configuration or runtime error."
)]
pub struct Cli {
    /// What to run; `serve` when omitted.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process arguments, treating a missing subcommand as `serve` so that
    /// `auth-service --enable-fault-injection` works like `auth-service serve --enable-fault-injection`.
    pub fn parse_with_default() -> Self {
        Self::parse_from(with_default_subcommand(std::env::args_os().collect()))
    }
}

/// Inserts `serve` after the program name unless the first argument already names a subcommand or asks
/// for help or the version.
pub fn with_default_subcommand(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory as _;
    let first = args.get(1).and_then(|a| a.to_str());
    // The subcommands as clap knows them, so a new one needs no edit here.
    let explicit = first.is_some_and(|first| {
        matches!(first, "help" | "-h" | "--help" | "-V" | "--version")
            || Cli::command().get_subcommands().any(|c| c.get_name() == first)
    });
    if !explicit {
        args.insert(1.min(args.len()), "serve".into());
    }
    args
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve(Box<Config>),
    /// Apply the embedded database migrations and exit.
    Migrate(MigrateArgs),
    /// Write a new private signing key (PKCS#8 PEM, preceded by its `alg:` line) and print its key id (RFC
    /// 7638 thumbprint).
    Keygen(KeygenArgs),
    /// Hard-delete the accounts erased (`POST /api/gdpr/delete`) more than the retention period ago, and
    /// scrub their audit rows of personal data; for a scheduled job.
    Purge(PurgeArgs),
    /// The audit log: `audit verify` checks its hash chain.
    Audit(AuditArgs),
    /// Ask the service running in this container whether it is alive (`GET /health` on loopback); exit 0
    /// when it answers 200, 1 otherwise. The container health check: it needs no shell, curl or wget.
    Healthcheck(HealthcheckArgs),
}

/// Arguments of `healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The port the service listens on (the same `PORT` as `serve`).
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// The address the service listens on (the same `BIND_ADDR` as `serve`); an unspecified address
    /// (`0.0.0.0`, `::`) is probed on loopback.
    #[arg(long, env = "BIND_ADDR", value_name = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: IpAddr,
    /// The path to probe: liveness, not readiness (a database outage is not fixed by replacing tasks).
    #[arg(long, default_value = "/health")]
    pub path: String,
    /// Seconds before the probe gives up.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// Arguments of `purge`.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub database: crate::database::DatabaseTarget,
    /// Days an erased account is kept before it is purged.
    #[arg(
        long,
        env = "GDPR_RETENTION_DAYS",
        value_name = "GDPR_RETENTION_DAYS",
        default_value_t = 30
    )]
    pub retention_days: u32,
}

/// Arguments of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// What `audit` does.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain (every link, and the content of every record not redacted by an erasure);
    /// print what was found (JSON); exit 1 when it is broken.
    Verify(AuditVerifyArgs),
}

/// Arguments of `audit verify`.
#[derive(Debug, Clone, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub database: crate::database::DatabaseTarget,
}

/// Arguments of `migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: crate::database::DatabaseTarget,
}

/// Arguments of `keygen`.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// File to write the private key to (mode 0600); refuses to overwrite an existing file.
    #[arg(long)]
    pub out: PathBuf,
    /// The JWS algorithm the key signs: ES256 (the default), EdDSA, PS256 or RS256.
    #[arg(long, default_value = "ES256")]
    pub algorithm: crate::keys::Algorithm,
    /// RSA modulus size in bits for PS256 and RS256 (2048, 3072 or 4096).
    #[arg(long, default_value_t = 2048)]
    pub bits: usize,
}

/// Configuration of `serve`.
///
/// Durations are whole seconds. Defaults follow the issue: 15 min access tokens, 7 day refresh tokens,
/// 15 min idle and 8 h absolute session timeouts, lockout after 5 failures for 15 min.
#[derive(Clone, Parser)]
#[command(name = "serve")]
pub struct Config {
    #[command(flatten)]
    pub database: crate::database::DatabaseTarget,
    /// Maximum PostgreSQL connections in the pool.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        value_name = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 20
    )]
    pub database_max_connections: u32,
    /// Apply pending migrations before serving.
    #[arg(long, env = "MIGRATE_ON_START", value_name = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// Redis connection URL (`redis://` or `rediss://`).
    #[arg(long, env = "REDIS_URL", value_name = "REDIS_URL", hide_env_values = true)]
    pub redis_url: String,
    /// Prefix of every Redis key, so several instances or test runs can share one Redis.
    #[arg(
        long,
        env = "REDIS_KEY_PREFIX",
        value_name = "REDIS_KEY_PREFIX",
        default_value = "auth:"
    )]
    pub redis_key_prefix: String,
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", value_name = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Environment name (production, staging, sandbox, development, ...).
    #[arg(long, env = "APP_ENV", value_name = "APP_ENV", default_value = "development")]
    pub app_env: String,
    /// Deployment label that tells a canary from stable in metrics and `/version`.
    #[arg(
        long,
        env = "DEPLOYMENT_LABEL",
        value_name = "DEPLOYMENT_LABEL",
        default_value = "stable"
    )]
    pub deployment_label: String,
    /// The release this process runs, reported by `/version` (the image tag, set by the deployment);
    /// the build's own version when unset.
    #[arg(long, env = "SERVICE_VERSION", value_name = "SERVICE_VERSION")]
    pub service_version: Option<String>,

    /// `iss` of issued access tokens, and the only issuer accepted.
    #[arg(long, env = "JWT_ISSUER", value_name = "JWT_ISSUER", default_value = "auth-service")]
    pub jwt_issuer: String,
    /// `aud` of issued access tokens, and the only audience accepted.
    #[arg(long, env = "JWT_AUDIENCE", value_name = "JWT_AUDIENCE", default_value = "suma")]
    pub jwt_audience: String,
    /// PEM file with the private signing key (PKCS#8, SEC1 or PKCS#1; ES256, EdDSA, PS256 or RS256).
    #[arg(long, env = "JWT_SIGNING_KEY_FILE", value_name = "JWT_SIGNING_KEY_FILE")]
    pub jwt_signing_key_file: Option<PathBuf>,
    /// Directory of `*.pem` files with verify-only keys (public or private keys).
    #[arg(long, env = "JWT_VERIFY_KEYS_DIR", value_name = "JWT_VERIFY_KEYS_DIR")]
    pub jwt_verify_keys_dir: Option<PathBuf>,
    /// JSON key set document `{"signing_key": PEM, "verify_keys": [PEM, ...]}`, instead of PEM files.
    #[arg(long, env = "JWT_KEYSET_FILE", value_name = "JWT_KEYSET_FILE", conflicts_with_all = ["jwt_signing_key_file", "jwt_verify_keys_dir"])]
    pub jwt_keyset_file: Option<PathBuf>,
    /// Secrets Manager secret (name or ARN) whose versions each hold one private key PEM: AWSCURRENT
    /// signs, AWSPENDING and AWSPREVIOUS verify. Instead of the key files; `AWS_*` variables configure the
    /// client.
    #[arg(long, env = "JWT_KEYS_SECRET_ID", value_name = "JWT_KEYS_SECRET_ID", conflicts_with_all = ["jwt_signing_key_file", "jwt_verify_keys_dir", "jwt_keyset_file"])]
    pub jwt_keys_secret_id: Option<String>,
    /// Seconds between periodic key reloads (0 disables; SIGHUP always reloads).
    #[arg(
        long,
        env = "JWT_KEYS_RELOAD_INTERVAL",
        value_name = "JWT_KEYS_RELOAD_INTERVAL",
        default_value_t = 60
    )]
    pub jwt_keys_reload_interval: u64,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    #[arg(long, env = "JWT_LEEWAY", value_name = "JWT_LEEWAY", default_value_t = 5)]
    pub jwt_leeway: u64,
    /// `max-age` of the JWKS response, in seconds.
    #[arg(long, env = "JWKS_MAX_AGE", value_name = "JWKS_MAX_AGE", default_value_t = 60)]
    pub jwks_max_age: u64,

    /// Access token lifetime.
    #[arg(
        long,
        env = "ACCESS_TOKEN_TTL",
        value_name = "ACCESS_TOKEN_TTL",
        default_value_t = 900
    )]
    pub access_token_ttl: u64,
    /// Refresh token lifetime.
    #[arg(
        long,
        env = "REFRESH_TOKEN_TTL",
        value_name = "REFRESH_TOKEN_TTL",
        default_value_t = 604_800
    )]
    pub refresh_token_ttl: u64,
    /// Window in which presenting an already rotated refresh token again returns the same successor
    /// instead of revoking the family.
    #[arg(
        long,
        env = "REFRESH_REUSE_GRACE",
        value_name = "REFRESH_REUSE_GRACE",
        default_value_t = 5
    )]
    pub refresh_reuse_grace: u64,
    /// Session idle timeout (sliding).
    #[arg(
        long,
        env = "SESSION_TIMEOUT_IDLE",
        value_name = "SESSION_TIMEOUT_IDLE",
        default_value_t = 900
    )]
    pub session_timeout_idle: u64,
    /// Session absolute timeout (from login).
    #[arg(
        long,
        env = "SESSION_TIMEOUT_ABSOLUTE",
        value_name = "SESSION_TIMEOUT_ABSOLUTE",
        default_value_t = 28_800
    )]
    pub session_timeout_absolute: u64,

    /// Failed logins that lock an account.
    #[arg(
        long,
        env = "MAX_LOGIN_ATTEMPTS",
        value_name = "MAX_LOGIN_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_login_attempts: u32,
    /// How long a locked account stays locked; also the window in which failures are counted.
    #[arg(
        long,
        env = "LOCKOUT_DURATION",
        value_name = "LOCKOUT_DURATION",
        default_value_t = 900
    )]
    pub lockout_duration: u64,
    /// Length of the rate limit window.
    #[arg(
        long,
        env = "RATE_LIMIT_WINDOW",
        value_name = "RATE_LIMIT_WINDOW",
        default_value_t = 60
    )]
    pub rate_limit_window: u64,
    /// Login attempts per client IP per window (0 disables).
    #[arg(
        long,
        env = "RATE_LIMIT_LOGIN_PER_IP",
        value_name = "RATE_LIMIT_LOGIN_PER_IP",
        default_value_t = 30
    )]
    pub rate_limit_login_per_ip: u32,
    /// Login attempts per account (email) per window (0 disables).
    #[arg(
        long,
        env = "RATE_LIMIT_LOGIN_PER_ACCOUNT",
        value_name = "RATE_LIMIT_LOGIN_PER_ACCOUNT",
        default_value_t = 10
    )]
    pub rate_limit_login_per_account: u32,
    /// Registrations per client IP per window (0 disables).
    #[arg(
        long,
        env = "RATE_LIMIT_REGISTER_PER_IP",
        value_name = "RATE_LIMIT_REGISTER_PER_IP",
        default_value_t = 10
    )]
    pub rate_limit_register_per_ip: u32,
    /// Registrations per address per window (0 disables): each sends the address an email.
    #[arg(
        long,
        env = "RATE_LIMIT_REGISTER_PER_ACCOUNT",
        value_name = "RATE_LIMIT_REGISTER_PER_ACCOUNT",
        default_value_t = 3
    )]
    pub rate_limit_register_per_account: u32,
    /// Refreshes per client IP per window (0 disables).
    #[arg(
        long,
        env = "RATE_LIMIT_REFRESH_PER_IP",
        value_name = "RATE_LIMIT_REFRESH_PER_IP",
        default_value_t = 120
    )]
    pub rate_limit_refresh_per_ip: u32,
    /// Token introspections per client IP per window (0 disables).
    #[arg(
        long,
        env = "RATE_LIMIT_INTROSPECT_PER_IP",
        value_name = "RATE_LIMIT_INTROSPECT_PER_IP",
        default_value_t = 600
    )]
    pub rate_limit_introspect_per_ip: u32,
    /// Reverse proxies in front of the service that append to `X-Forwarded-For`; the client IP is taken
    /// that many entries from the right. 0 uses the socket peer address. Required in production, where
    /// behind a load balancer a wrong value puts every client under the balancer's address (or lets a
    /// client choose its own); unset elsewhere means 0.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", value_name = "TRUSTED_PROXY_HOPS")]
    pub trusted_proxy_hops: Option<usize>,
    /// Password hashes computed at once (0 = one fewer than the CPUs, at least one); further requests wait
    /// their turn. One core is left to the other endpoints: beside a login burst, `/me`'s p99 was 5.1-5.3
    /// ms with one hasher against 7.3-8.1 ms with two on a 2-core machine, in two runs of `cargo xtask
    /// bench auth`'s mixed step whose throughputs disagreed (BENCHMARKS.md).
    #[arg(
        long,
        env = "PASSWORD_HASH_CONCURRENCY",
        value_name = "PASSWORD_HASH_CONCURRENCY",
        default_value_t = 0
    )]
    pub password_hash_concurrency: usize,

    /// Base URL of the web front end, for the links in emails (`…/verify-email?token=…`).
    #[arg(
        long,
        env = "PUBLIC_BASE_URL",
        value_name = "PUBLIC_BASE_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_base_url: String,
    /// `optional`: unverified accounts log in, flagged (`email_verified: false`); `required`: they are
    /// refused (403 `email_not_verified`) until verified. Unset: `required` in production, `optional`
    /// elsewhere (see [`Config::email_verification`]).
    #[arg(long, env = "EMAIL_VERIFICATION", value_name = "EMAIL_VERIFICATION")]
    pub email_verification: Option<EmailVerification>,
    /// SMTP server: `smtp://host:port` (plain), `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465`
    /// (TLS); credentials as `smtp://user:password@host`. Unset: no email is sent (logged as a warning).
    #[arg(long, env = "SMTP_URL", value_name = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of every email.
    #[arg(
        long,
        env = "MAIL_FROM",
        value_name = "MAIL_FROM",
        default_value = "auth-service <no-reply@example.com>"
    )]
    pub mail_from: String,
    /// Seconds an SMTP or SMS API exchange may take.
    #[arg(
        long,
        env = "OUTBOUND_TIMEOUT",
        value_name = "OUTBOUND_TIMEOUT",
        default_value_t = 10
    )]
    pub outbound_timeout: u64,
    /// Base URL of the Twilio API (a stub in tests and the sandbox).
    #[arg(
        long,
        env = "TWILIO_BASE_URL",
        value_name = "TWILIO_BASE_URL",
        default_value = "https://api.twilio.com"
    )]
    pub twilio_base_url: String,
    /// Twilio account SID; with `TWILIO_AUTH_TOKEN` and `TWILIO_FROM`, enables SMS codes.
    #[arg(long, env = "TWILIO_ACCOUNT_SID", value_name = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    /// Twilio auth token (a secret).
    #[arg(
        long,
        env = "TWILIO_AUTH_TOKEN",
        value_name = "TWILIO_AUTH_TOKEN",
        hide_env_values = true
    )]
    pub twilio_auth_token: Option<String>,
    /// Sender number (E.164) of text messages.
    #[arg(long, env = "TWILIO_FROM", value_name = "TWILIO_FROM")]
    pub twilio_from: Option<String>,
    /// Email verification token lifetime.
    #[arg(
        long,
        env = "EMAIL_VERIFICATION_TTL",
        value_name = "EMAIL_VERIFICATION_TTL",
        default_value_t = 86_400
    )]
    pub email_verification_ttl: u64,
    /// Password-reset token lifetime.
    #[arg(
        long,
        env = "RESET_TOKEN_TTL",
        value_name = "RESET_TOKEN_TTL",
        default_value_t = 3_600
    )]
    pub reset_token_ttl: u64,
    /// Password-reset HMAC keys, `kid:base64url-key` entries (first signs); a managed secret.
    #[arg(
        long,
        env = "RESET_TOKEN_KEYS",
        value_name = "RESET_TOKEN_KEYS",
        hide_env_values = true
    )]
    pub reset_token_keys: Option<String>,
    /// File holding the password-reset HMAC keys (same format), read at every use so rotation needs no
    /// restart.
    #[arg(long, env = "RESET_TOKEN_KEYS_FILE", value_name = "RESET_TOKEN_KEYS_FILE")]
    pub reset_token_keys_file: Option<PathBuf>,
    /// Forgot-password requests per client IP per window (0 disables).
    #[arg(
        long,
        env = "RATE_LIMIT_FORGOT_PER_IP",
        value_name = "RATE_LIMIT_FORGOT_PER_IP",
        default_value_t = 10
    )]
    pub rate_limit_forgot_per_ip: u32,
    /// Reset and verification emails per address per hour (0 disables).
    #[arg(
        long,
        env = "RATE_LIMIT_EMAILS_PER_ADDRESS",
        value_name = "RATE_LIMIT_EMAILS_PER_ADDRESS",
        default_value_t = 3
    )]
    pub rate_limit_emails_per_address: u32,
    /// Base URL of a breached-password range API (HIBP protocol, e.g. `https://api.pwnedpasswords.com`);
    /// unset disables the check. Required in production.
    #[arg(long, env = "BREACHED_PASSWORD_API_URL", value_name = "BREACHED_PASSWORD_API_URL")]
    pub breached_password_api_url: Option<String>,
    /// What a new password gets when the breached-password API does not answer in time: `refuse` (503
    /// `breach_check_unavailable`, try again; the default) or `accept` (a degraded mode: the password is
    /// accepted unchecked, logged and counted in `auth_breach_check_unavailable_total`).
    #[arg(
        long,
        env = "BREACHED_PASSWORD_UNAVAILABLE",
        value_name = "BREACHED_PASSWORD_UNAVAILABLE",
        default_value = "refuse"
    )]
    pub breached_password_unavailable: BreachUnavailable,
    /// The bearer token `GET /metrics` requires (the scraper's credential); unset leaves it open.
    /// Required in production: the metrics describe traffic, failures and lockouts an attacker could use.
    #[arg(long, env = "METRICS_TOKEN", value_name = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Milliseconds the breached-password check may take before it counts as unavailable.
    #[arg(
        long,
        env = "BREACHED_PASSWORD_TIMEOUT_MS",
        value_name = "BREACHED_PASSWORD_TIMEOUT_MS",
        default_value_t = 1_500
    )]
    pub breached_password_timeout_ms: u64,

    /// Key that encrypts TOTP secrets at rest: base64 of 32 random bytes (AES-256-GCM); a managed secret
    /// shared by every instance. Required in production; elsewhere a missing key means a random key for
    /// this process only (enrolments then do not survive a restart).
    #[arg(
        long,
        env = "TOTP_ENCRYPTION_KEY",
        value_name = "TOTP_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    pub totp_encryption_key: Option<String>,
    /// Earlier TOTP encryption keys (same format, separated by commas), still accepted for opening
    /// secrets after a rotation; a secret opened with one is sealed again with `TOTP_ENCRYPTION_KEY`.
    #[arg(
        long,
        env = "TOTP_ENCRYPTION_PREVIOUS_KEYS",
        value_name = "TOTP_ENCRYPTION_PREVIOUS_KEYS",
        hide_env_values = true
    )]
    pub totp_encryption_previous_keys: Option<String>,

    /// Seconds to wait for in-flight requests at shutdown.
    #[arg(
        long,
        env = "SHUTDOWN_TIMEOUT",
        value_name = "SHUTDOWN_TIMEOUT",
        default_value_t = 20
    )]
    pub shutdown_timeout: u64,

    /// Allow fault injection (refused when APP_ENV is production).
    #[arg(long = "enable-fault-injection")]
    pub enable_fault_injection: bool,
    /// Fraction (0..1) of API requests answered with 500 when fault injection is enabled.
    #[arg(
        long,
        env = "FAULT_ERROR_RATE",
        value_name = "FAULT_ERROR_RATE",
        default_value_t = 0.0
    )]
    pub fault_error_rate: f64,
    /// Milliseconds added to every API request when fault injection is enabled.
    #[arg(long, env = "FAULT_LATENCY_MS", value_name = "FAULT_LATENCY_MS", default_value_t = 0)]
    pub fault_latency_ms: u64,
}

/// What a new password gets when the breached-password check cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BreachUnavailable {
    /// Refused for now (fail closed): 503, try again.
    Refuse,
    /// Accepted unchecked (a documented degraded mode), logged and counted.
    Accept,
}

/// Whether unverified accounts may log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmailVerification {
    /// They log in, flagged as unverified.
    Optional,
    /// They are refused until verified.
    Required,
}

/// Where the JWT keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A private key PEM file and an optional directory of verify-only keys.
    Pem {
        signing_key_file: PathBuf,
        verify_keys_dir: Option<PathBuf>,
    },
    /// A JSON key set document.
    Json { keyset_file: PathBuf },
    /// A Secrets Manager secret, one private key PEM per version, chosen by staging label.
    SecretsManager { secret_id: String },
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: `{variable}` {problem}")]
pub struct ConfigError {
    /// The environment variable (and flag) at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

impl Config {
    /// Checks the relations between settings that clap cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = self.database.connect_options() {
            return Err(bad(e.variable, e.problem));
        }
        if !(self.redis_url.starts_with("redis://") || self.redis_url.starts_with("rediss://")) {
            return Err(bad("REDIS_URL", "must be a redis:// or rediss:// URL"));
        }
        if redis::Client::open(self.redis_url.as_str()).is_err() {
            return Err(bad("REDIS_URL", "is not a valid Redis URL"));
        }
        if self.database_max_connections == 0 {
            return Err(bad("DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        if self.redis_key_prefix.is_empty() || self.redis_key_prefix.len() > 64 {
            return Err(bad("REDIS_KEY_PREFIX", "must be 1 to 64 characters"));
        }
        let label_ok = |s: &str| {
            !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !label_ok(&self.deployment_label) {
            return Err(bad("DEPLOYMENT_LABEL", "must be 1 to 32 of [A-Za-z0-9_-]"));
        }
        let version_ok = |s: &str| {
            !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
        };
        if self.service_version.as_deref().is_some_and(|v| !version_ok(v)) {
            return Err(bad(
                "SERVICE_VERSION",
                "must be 1 to 128 of [A-Za-z0-9_.+-] (an image tag)",
            ));
        }
        if !label_ok(&self.app_env) {
            return Err(bad("APP_ENV", "must be 1 to 32 of [A-Za-z0-9_-]"));
        }
        if self.jwt_issuer.trim().is_empty() {
            return Err(bad("JWT_ISSUER", "must not be empty"));
        }
        if self.jwt_audience.trim().is_empty() {
            return Err(bad("JWT_AUDIENCE", "must not be empty"));
        }
        self.key_source()?;
        if self.access_token_ttl == 0 || self.access_token_ttl > 86_400 {
            return Err(bad("ACCESS_TOKEN_TTL", "must be between 1 and 86400 seconds"));
        }
        if self.refresh_token_ttl == 0 {
            return Err(bad("REFRESH_TOKEN_TTL", "must be at least 1 second"));
        }
        if self.refresh_reuse_grace >= self.refresh_token_ttl || self.refresh_reuse_grace > 60 {
            return Err(bad(
                "REFRESH_REUSE_GRACE",
                "must be at most 60 seconds and shorter than REFRESH_TOKEN_TTL",
            ));
        }
        if self.session_timeout_idle == 0 {
            return Err(bad("SESSION_TIMEOUT_IDLE", "must be at least 1 second"));
        }
        if self.session_timeout_absolute < self.session_timeout_idle {
            return Err(bad(
                "SESSION_TIMEOUT_ABSOLUTE",
                "must not be shorter than SESSION_TIMEOUT_IDLE",
            ));
        }
        if self.max_login_attempts == 0 {
            return Err(bad("MAX_LOGIN_ATTEMPTS", "must be at least 1"));
        }
        if self.lockout_duration == 0 {
            return Err(bad("LOCKOUT_DURATION", "must be at least 1 second"));
        }
        if self.rate_limit_window == 0 {
            return Err(bad("RATE_LIMIT_WINDOW", "must be at least 1 second"));
        }
        if !(0.0..=1.0).contains(&self.fault_error_rate) || self.fault_error_rate.is_nan() {
            return Err(bad("FAULT_ERROR_RATE", "must be between 0 and 1"));
        }
        if self.fault_latency_ms > 60_000 {
            return Err(bad("FAULT_LATENCY_MS", "must be at most 60000"));
        }
        if !(self.public_base_url.starts_with("https://") || self.public_base_url.starts_with("http://")) {
            return Err(bad("PUBLIC_BASE_URL", "must be an http:// or https:// URL"));
        }
        if self.outbound_timeout == 0 {
            return Err(bad("OUTBOUND_TIMEOUT", "must be at least 1 second"));
        }
        if self.email_verification_ttl == 0 {
            return Err(bad("EMAIL_VERIFICATION_TTL", "must be at least 1 second"));
        }
        if self.reset_token_ttl == 0 || self.reset_token_ttl > 86_400 {
            return Err(bad("RESET_TOKEN_TTL", "must be between 1 and 86400 seconds"));
        }
        let twilio = [
            self.twilio_account_sid.is_some(),
            self.twilio_auth_token.is_some(),
            self.twilio_from.is_some(),
        ];
        if twilio.iter().any(|s| *s) && !twilio.iter().all(|s| *s) {
            return Err(bad(
                "TWILIO_ACCOUNT_SID",
                "needs TWILIO_AUTH_TOKEN and TWILIO_FROM too (all three or none)",
            ));
        }
        if self.reset_token_keys.is_some() && self.reset_token_keys_file.is_some() {
            return Err(bad("RESET_TOKEN_KEYS", "and RESET_TOKEN_KEYS_FILE are exclusive"));
        }
        let reset_keys = self.reset_key_source();
        if let Err(e) = reset_keys.check() {
            let variable = if self.reset_token_keys_file.is_some() {
                "RESET_TOKEN_KEYS_FILE"
            } else {
                "RESET_TOKEN_KEYS"
            };
            return Err(bad(variable, e.to_string()));
        }
        if matches!(reset_keys, crate::reset_tokens::KeySource::Ephemeral(_)) && self.is_production() {
            return Err(bad(
                "RESET_TOKEN_KEYS",
                "is required in production (a managed secret shared by every instance)",
            ));
        }
        self.totp_keys()?;
        if self.totp_encryption_key.is_none() && self.is_production() {
            return Err(bad(
                "TOTP_ENCRYPTION_KEY",
                "is required in production (a managed secret shared by every instance; `openssl rand -base64 32`)",
            ));
        }
        if self.breached_password_api_url.is_none() && self.is_production() {
            return Err(bad(
                "BREACHED_PASSWORD_API_URL",
                "is required in production (new passwords are checked against breach corpora; e.g. `https://api.pwnedpasswords.com`)",
            ));
        }
        if self.trusted_proxy_hops.is_none() && self.is_production() {
            return Err(bad(
                "TRUSTED_PROXY_HOPS",
                "is required in production: the number of proxies that append to X-Forwarded-For (1 behind an ALB, 0 when clients connect directly)",
            ));
        }
        if self.metrics_token.as_deref().is_none_or(|t| t.trim().len() < 16) && self.is_production() {
            return Err(bad(
                "METRICS_TOKEN",
                "is required in production, at least 16 characters (the scraper's bearer token for /metrics; a managed secret)",
            ));
        }
        if self.enable_fault_injection && self.is_production() {
            return Err(bad(
                "APP_ENV",
                "is production, where --enable-fault-injection is refused",
            ));
        }
        Ok(())
    }

    /// Where the password-reset HMAC keys come from; a random per-process key when none is configured.
    pub fn reset_key_source(&self) -> crate::reset_tokens::KeySource {
        use crate::reset_tokens::KeySource;
        match (&self.reset_token_keys, &self.reset_token_keys_file) {
            (Some(keys), _) => KeySource::Inline(keys.clone()),
            (None, Some(path)) => KeySource::File(path.clone()),
            (None, None) => {
                static EPHEMERAL: std::sync::OnceLock<KeySource> = std::sync::OnceLock::new();
                EPHEMERAL.get_or_init(KeySource::ephemeral).clone()
            }
        }
    }

    /// The TOTP encryption keys: the sealing key (a random per-process key when none is configured) and
    /// the previous ones.
    pub fn totp_keys(&self) -> Result<([u8; 32], Vec<[u8; 32]>), ConfigError> {
        use crate::totp_seal::parse_key;
        let current = match &self.totp_encryption_key {
            Some(key) => parse_key(key).map_err(|e| bad("TOTP_ENCRYPTION_KEY", e.to_string()))?,
            None => {
                static EPHEMERAL: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
                *EPHEMERAL.get_or_init(rand::random)
            }
        };
        let previous = self
            .totp_encryption_previous_keys
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| parse_key(k).map_err(|e| bad("TOTP_ENCRYPTION_PREVIOUS_KEYS", format!("has an entry that {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((current, previous))
    }

    /// Whether unverified accounts may sign in: `EMAIL_VERIFICATION`, else `required` in production (a
    /// fintech's accounts belong to whoever proved the address) and `optional` elsewhere.
    pub fn email_verification(&self) -> EmailVerification {
        self.email_verification.unwrap_or(if self.is_production() {
            EmailVerification::Required
        } else {
            EmailVerification::Optional
        })
    }

    /// Whether this is the production environment.
    pub fn is_production(&self) -> bool {
        self.app_env.eq_ignore_ascii_case("production") || self.app_env.eq_ignore_ascii_case("prod")
    }

    /// The configured key source; exactly one must be given.
    pub fn key_source(&self) -> Result<KeySource, ConfigError> {
        if let Some(secret_id) = &self.jwt_keys_secret_id {
            if self.jwt_keyset_file.is_some()
                || self.jwt_signing_key_file.is_some()
                || self.jwt_verify_keys_dir.is_some()
            {
                return Err(bad(
                    "JWT_KEYS_SECRET_ID",
                    "conflicts with JWT_SIGNING_KEY_FILE, JWT_VERIFY_KEYS_DIR and JWT_KEYSET_FILE; set one source",
                ));
            }
            if secret_id.trim().is_empty() {
                return Err(bad("JWT_KEYS_SECRET_ID", "must not be empty"));
            }
            return Ok(KeySource::SecretsManager {
                secret_id: secret_id.trim().to_owned(),
            });
        }
        match (&self.jwt_keyset_file, &self.jwt_signing_key_file) {
            (Some(file), None) => Ok(KeySource::Json {
                keyset_file: file.clone(),
            }),
            (None, Some(file)) => Ok(KeySource::Pem {
                signing_key_file: file.clone(),
                verify_keys_dir: self.jwt_verify_keys_dir.clone(),
            }),
            (Some(_), Some(_)) => Err(bad("JWT_KEYSET_FILE", "conflicts with JWT_SIGNING_KEY_FILE; set one")),
            (None, None) => Err(bad(
                "JWT_SIGNING_KEY_FILE",
                "is not set (or set JWT_KEYSET_FILE or JWT_KEYS_SECRET_ID); hint: create a key with `auth-service keygen --out FILE`",
            )),
        }
    }

    /// Whether fault injection is active: the flag is given and there is something to inject.
    pub fn fault_injection_active(&self) -> bool {
        self.enable_fault_injection && (self.fault_error_rate > 0.0 || self.fault_latency_ms > 0)
    }

    /// Number of concurrent password hashes.
    pub fn hash_concurrency(&self) -> usize {
        if self.password_hash_concurrency > 0 {
            self.password_hash_concurrency
        } else {
            default_hash_concurrency()
        }
    }

    /// Seconds as a [`Duration`]; a small helper for the many second-valued settings.
    pub fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }
}

// Hand-written so that the URLs, which may carry passwords, never reach a log line.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database", &self.database)
            .field("redis_url", &"[redacted]")
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("bind_addr", &self.bind_addr)
            .field("port", &self.port)
            .field("app_env", &self.app_env)
            .field("deployment_label", &self.deployment_label)
            .field("service_version", &self.service_version)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("enable_fault_injection", &self.enable_fault_injection)
            .finish_non_exhaustive()
    }
}

/// The hasher's size unless configured: one fewer than the CPUs, at least one (see
/// `password_hash_concurrency`).
pub fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<&'static str> {
        vec![
            "serve",
            "--database-url",
            "postgres://u@localhost/db",
            "--redis-url",
            "redis://localhost:6379",
            "--jwt-signing-key-file",
            "/tmp/k.pem",
        ]
    }

    #[test]
    fn defaults_are_valid() {
        let cfg = Config::try_parse_from(base()).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.port, 8080);
        assert_eq!(cfg.session_timeout_idle, 900);
        assert_eq!(cfg.session_timeout_absolute, 28_800);
        assert_eq!(cfg.max_login_attempts, 5);
        assert_eq!(cfg.deployment_label, "stable");
        assert_eq!(cfg.redis_key_prefix, "auth:");
        assert_eq!(cfg.email_verification(), EmailVerification::Optional);
    }

    #[test]
    fn email_verification_is_required_in_production_unless_set() {
        let mut args = base();
        args.extend(["--app-env", "production"]);
        let cfg = Config::try_parse_from(args.clone()).unwrap();
        assert_eq!(cfg.email_verification(), EmailVerification::Required);
        args.extend(["--email-verification", "optional"]);
        let cfg = Config::try_parse_from(args).unwrap();
        assert_eq!(cfg.email_verification(), EmailVerification::Optional, "set explicitly");
    }

    #[test]
    fn fault_injection_is_refused_in_production() {
        use base64::Engine as _;
        // Production needs the reset-token and TOTP keys; this test's own, so that only fault injection is
        // wrong.
        let keys = format!(
            "test:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        );
        let totp = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let mut args: Vec<&str> = base();
        args.extend([
            "--app-env",
            "production",
            "--enable-fault-injection",
            "--reset-token-keys",
            &keys,
            "--totp-encryption-key",
            &totp,
            "--breached-password-api-url",
            "https://api.pwnedpasswords.com",
            "--trusted-proxy-hops",
            "1",
            "--metrics-token",
            "a scraper token of the test",
        ]);
        let err = Config::try_parse_from(args).unwrap().validate().unwrap_err();
        assert_eq!(err.variable, "APP_ENV");
    }

    #[test]
    fn errors_name_the_variable() {
        let mut args = base();
        args.extend(["--session-timeout-absolute", "10", "--session-timeout-idle", "20"]);
        let err = Config::try_parse_from(args).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("SESSION_TIMEOUT_ABSOLUTE"), "{err}");

        let mut args = base();
        args.extend(["--fault-error-rate", "1.5"]);
        let err = Config::try_parse_from(args).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("FAULT_ERROR_RATE"), "{err}");

        let err = Config::try_parse_from(["serve", "--port", "x"]).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
    }

    #[test]
    fn totp_encryption_key_is_checked_and_required_in_production() {
        let mut args = base();
        args.extend(["--totp-encryption-key", "c2hvcnQ="]);
        let err = Config::try_parse_from(args).unwrap().validate().unwrap_err();
        assert_eq!(err.variable, "TOTP_ENCRYPTION_KEY", "{err}");

        let mut args = base();
        args.extend(["--totp-encryption-previous-keys", "x"]);
        let err = Config::try_parse_from(args).unwrap().validate().unwrap_err();
        assert_eq!(err.variable, "TOTP_ENCRYPTION_PREVIOUS_KEYS", "{err}");

        use base64::Engine as _;
        let reset = format!(
            "test:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        );
        let totp = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let mut args: Vec<&str> = base();
        args.extend(["--app-env", "production", "--reset-token-keys", &reset]);
        let err = Config::try_parse_from(args.clone()).unwrap().validate().unwrap_err();
        assert_eq!(err.variable, "TOTP_ENCRYPTION_KEY", "{err}");
        args.extend(["--totp-encryption-key", &totp]);
        let err = Config::try_parse_from(args.clone()).unwrap().validate().unwrap_err();
        assert_eq!(err.variable, "BREACHED_PASSWORD_API_URL", "{err}");
        args.extend(["--breached-password-api-url", "https://api.pwnedpasswords.com"]);
        let err = Config::try_parse_from(args.clone()).unwrap().validate().unwrap_err();
        assert_eq!(err.variable, "TRUSTED_PROXY_HOPS", "{err}");
        args.extend(["--trusted-proxy-hops", "1"]);
        let err = Config::try_parse_from(args.clone()).unwrap().validate().unwrap_err();
        assert_eq!(err.variable, "METRICS_TOKEN", "{err}");
        args.extend(["--metrics-token", "a scraper token of the test"]);
        let cfg = Config::try_parse_from(args).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.breached_password_unavailable,
            BreachUnavailable::Refuse,
            "fail closed by default"
        );
    }

    #[test]
    fn missing_key_source_is_reported() {
        let cfg = Config::try_parse_from(&base()[..5]).unwrap();
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.variable, "JWT_SIGNING_KEY_FILE");
    }

    #[test]
    fn serve_is_the_default_subcommand() {
        let args = with_default_subcommand(vec!["auth-service".into(), "--enable-fault-injection".into()]);
        assert_eq!(args[1], "serve");
        let args = with_default_subcommand(vec!["auth-service".into(), "migrate".into()]);
        assert_eq!(args[1], "migrate");
        let args = with_default_subcommand(vec!["auth-service".into()]);
        assert_eq!(args, vec![std::ffi::OsString::from("auth-service"), "serve".into()]);
    }
}
