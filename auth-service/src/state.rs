//! Shared application state.
//!
//! [`AppState`] is built once at start (or per test) and handed to every handler through axum's `State`;
//! it is one `Arc` around [`Shared`], so a clone costs one reference count.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::breach::BreachChecker;
use crate::clock::Clock;
use crate::config::Config;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::outbound::{Email, Mailer, NoMailer, NoSms, SmsSender, SmtpMailer, TwilioSms};
use crate::password::Hasher;
use crate::store::redis::SessionTimeouts;
use crate::store::{AuditEvent, Cache, Db};
use crate::tokens::JwtRules;

/// Everything a handler needs, behind one `Arc`: axum clones the state for every request, and this way a
/// clone is one reference count rather than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// PostgreSQL.
    pub db: Db,
    /// Redis.
    pub cache: Cache,
    /// JWT keys (reloadable).
    pub keys: Arc<KeyStore>,
    /// Password hashing.
    pub hasher: Hasher,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// JWT issuing and verification rules.
    pub jwt: Arc<JwtRules>,
    /// Session timeouts.
    pub timeouts: SessionTimeouts,
    /// Outbound email.
    pub mailer: Arc<dyn Mailer>,
    /// Outbound text messages.
    pub sms: Arc<dyn SmsSender>,
    /// The breached-password check, when configured.
    pub breach: Option<BreachChecker>,
    /// Password-reset HMAC keys.
    pub reset_keys: crate::reset_tokens::KeySource,
    /// Seals and opens TOTP secrets (AES-256-GCM under `TOTP_ENCRYPTION_KEY`).
    pub totp_sealer: Arc<crate::totp_seal::TotpSealer>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state from a validated configuration and a PostgreSQL pool. Loads the keys (from files:
    /// a Secrets Manager source needs [`KeyStore::open`] and [`AppState::with_keys`]) and computes the
    /// dummy password hash, so it takes a moment.
    pub fn new(config: Config, pool: PgPool, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let keys = KeyStore::load(config.key_source()?)?;
        Self::with_keys(config, pool, clock, keys)
    }

    /// Builds the state around keys already loaded.
    pub fn with_keys(config: Config, pool: PgPool, clock: Arc<dyn Clock>, keys: KeyStore) -> anyhow::Result<Self> {
        let cache = Cache::connect_lazy(&config.redis_url, &config.redis_key_prefix).context("invalid `REDIS_URL`")?;
        let hasher = Hasher::new(config.hash_concurrency())?;
        let jwt = JwtRules::new(
            config.jwt_issuer.clone(),
            config.jwt_audience.clone(),
            config.access_token_ttl as i64,
            config.jwt_leeway as i64,
        );
        let timeouts = SessionTimeouts {
            idle: Config::secs(config.session_timeout_idle),
            absolute: Config::secs(config.session_timeout_absolute),
        };
        let outbound_timeout = Config::secs(config.outbound_timeout);
        let mailer: Arc<dyn Mailer> = match &config.smtp_url {
            Some(url) => Arc::new(SmtpMailer::new(url, &config.mail_from, outbound_timeout)?),
            None => {
                tracing::warn!("SMTP_URL is not set: verification, reset and notification emails are not sent");
                Arc::new(NoMailer)
            }
        };
        let sms: Arc<dyn SmsSender> = match (
            &config.twilio_account_sid,
            &config.twilio_auth_token,
            &config.twilio_from,
        ) {
            (Some(sid), Some(token), Some(from)) => Arc::new(TwilioSms::new(
                &config.twilio_base_url,
                sid,
                token,
                from,
                outbound_timeout,
            )?),
            _ => Arc::new(NoSms),
        };
        let breach = match &config.breached_password_api_url {
            Some(url) => Some(
                BreachChecker::new(
                    url,
                    std::time::Duration::from_millis(config.breached_password_timeout_ms),
                )
                .context("cannot build the breached-password API client")?,
            ),
            None => None,
        };
        let reset_keys = config.reset_key_source();
        let (totp_key, previous_totp_keys) = config.totp_keys()?;
        if config.totp_encryption_key.is_none() {
            tracing::warn!("TOTP_ENCRYPTION_KEY is not set: TOTP secrets are sealed with a key of this process only and do not open after a restart");
        }
        let totp_sealer = Arc::new(crate::totp_seal::TotpSealer::new(totp_key, &previous_totp_keys));
        Ok(Self(Arc::new(Shared {
            totp_sealer,
            mailer,
            sms,
            breach,
            reset_keys,
            metrics: Metrics::new(&config.deployment_label),
            config: Arc::new(config),
            db: Db::new(pool),
            cache,
            keys: Arc::new(keys),
            hasher,
            clock,
            jwt: Arc::new(jwt),
            timeouts,
        })))
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Sends an email in the background: the answer to the request never waits for (or reveals) it.
    /// `kind` names the message in logs; the body is never logged.
    pub fn send_email(&self, kind: &'static str, email: Email) {
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            if let Err(error) = mailer.send(&email).await {
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::new(error)),
                    kind,
                    "cannot send email"
                );
            }
        });
    }

    /// Writes an audit record. A failed write is logged, not returned: the request it describes has
    /// already happened.
    pub async fn audit(&self, event: AuditEvent) {
        if let Err(error) = self.db.audit(&event, self.now()).await {
            self.metrics.audit_write_failures.inc();
            tracing::error!(error = %error, event = event.event, "cannot write audit record");
        }
    }
}
