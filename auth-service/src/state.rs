//! Shared application state.
//!
//! [`AppState`] is built once at start (or per test) and handed to every handler through axum's `State`.
//! Everything in it is cheap to clone: pools, connection managers and `Arc`s.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::clock::Clock;
use crate::config::Config;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::password::Hasher;
use crate::store::redis::SessionTimeouts;
use crate::store::{AuditEvent, Cache, Db};
use crate::tokens::JwtRules;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
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
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state from a validated configuration and a PostgreSQL pool. Loads the keys and computes
    /// the dummy password hash, so it takes a moment.
    pub fn new(config: Config, pool: PgPool, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let source = config.key_source()?;
        let keys = KeyStore::load(source)?;
        let cache = Cache::connect_lazy(&config.redis_url, &config.redis_key_prefix).context("invalid `REDIS_URL`")?;
        let hasher = Hasher::new(config.hash_concurrency())?;
        let jwt = JwtRules {
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            ttl_secs: config.access_token_ttl as i64,
            leeway_secs: config.jwt_leeway as i64,
        };
        let timeouts = SessionTimeouts {
            idle: Config::secs(config.session_timeout_idle),
            absolute: Config::secs(config.session_timeout_absolute),
        };
        Ok(Self {
            metrics: Metrics::new(&config.deployment_label),
            config: Arc::new(config),
            db: Db::new(pool),
            cache,
            keys: Arc::new(keys),
            hasher,
            clock,
            jwt: Arc::new(jwt),
            timeouts,
        })
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Writes an audit record. A failed write is logged, not returned: the request it describes has
    /// already happened.
    pub async fn audit(&self, event: AuditEvent) {
        if let Err(error) = self.db.audit(&event, self.now()).await {
            tracing::error!(error = %error, event = event.event, "cannot write audit record");
        }
    }
}
