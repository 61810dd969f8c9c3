//! What a rotation needs, resolved from the configuration: the managed secret a name means, the
//! kind's [`Rotation`], the [`Rotator`] that drives it, and the refusal to rotate a JWT key while the
//! key before it may still verify live tokens. Shared by `suma secrets` and the runbook actions.

use std::time::Duration;

use chrono::Utc;

use super::kinds::{CredentialForm, DbPasswordRotation, JwtRotation, KeyringRotation, RandomRotation};
use super::{Rotation, Rotator};
use crate::aws::{AwsApis, AwsSession};
use crate::config::{Environment, ManagedSecret, SecretKind};
use crate::context::OpsContext;
use crate::journal::{JournalError, OperationStatus};

/// Why a rotation cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no managed secret `{name}` in `{environment}`\nhint: configured: {configured}")]
    Unknown {
        name: String,
        environment: String,
        configured: String,
    },
    #[error("`{name}` names several secrets in `{environment}`\nhint: use the full id")]
    Ambiguous { name: String, environment: String },
    #[error("the service URL `{url}` of the JWT checks is not a URL: {source}\nhint: fix `url` of the environment or `jwt.service_url` of the secret")]
    ServiceUrl {
        url: String,
        source: <reqwest::Url as std::str::FromStr>::Err,
    },
    #[error("`{secret}` was rotated recently: tokens signed by the key before it stay valid until {until}; rotating now would drop that key while they are\nhint: wait until then (the key's overlap is `jwt.access_token_ttl` + `jwt.clock_skew`)")]
    Overlap { secret: String, until: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The configured secret named `name`: its full id, or its last path segment.
pub fn find<'a>(env: &'a Environment, environment: &str, name: &str) -> Result<&'a ManagedSecret, SetupError> {
    let matches: Vec<&ManagedSecret> = env
        .secrets
        .iter()
        .filter(|s| s.id == name || s.id.rsplit('/').next() == Some(name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(SetupError::Unknown {
            name: name.to_owned(),
            environment: environment.to_owned(),
            configured: env.secrets.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", "),
        }),
        _ => Err(SetupError::Ambiguous {
            name: name.to_owned(),
            environment: environment.to_owned(),
        }),
    }
}

pub fn rotation(
    env: &Environment,
    secret: &ManagedSecret,
    session: &AwsSession,
) -> Result<Box<dyn Rotation>, SetupError> {
    Ok(match secret.kind {
        SecretKind::Random => Box::new(RandomRotation {
            spec: secret.random.clone(),
        }),
        SecretKind::Keyring => Box::new(KeyringRotation { key_bytes: 32 }),
        SecretKind::TotpKey => Box::new(super::totp_key::TotpKeyRotation),
        SecretKind::RedisAuth => Box::new(super::redis_auth::RedisAuthRotation {
            cache: session.cache(&env.primary_region),
            replication_group: secret
                .redis
                .as_ref()
                .expect("validated: redis-auth has `redis`")
                .replication_group
                .clone(),
            timeout: Duration::from_secs(30 * 60),
            poll: Duration::from_secs(5),
        }),
        SecretKind::DbPassword | SecretKind::DatabaseUrl => Box::new(DbPasswordRotation {
            secret_id: secret.id.clone(),
            form: (secret.kind == SecretKind::DatabaseUrl).then_some(CredentialForm::Url),
            spec: secret
                .database
                .clone()
                .expect("checked in `rotate`: db-password has `database`"),
            secrets: session.secret_versions(&env.primary_region),
            rds: session.rds(&env.primary_region),
            rds_timeout: Duration::from_secs(600),
            rds_poll: Duration::from_secs(5),
        }),
        SecretKind::JwtSigningKey => {
            let url = secret
                .jwt
                .service_url
                .as_ref()
                .or(env.url.as_ref())
                .expect("validated: a URL for the JWT checks");
            Box::new(JwtRotation {
                spec: secret.jwt.clone(),
                service_url: url.as_str().parse().map_err(|source| SetupError::ServiceUrl {
                    url: url.to_string(),
                    source,
                })?,
                http: suma_http::ServiceClient::new(Duration::from_secs(10)),
                poll: Duration::from_secs(1),
                ecs: session.ecs(&env.primary_region),
                cluster: env.ecs.cluster.clone(),
                services: if secret.consumers.is_empty() {
                    vec![env.ecs.service.clone()]
                } else {
                    secret.consumers.clone()
                },
            })
        }
    })
}

pub fn rotator(
    ctx: &OpsContext,
    env: &Environment,
    secret: &ManagedSecret,
    session: &AwsSession,
    timeout: Duration,
) -> Rotator {
    Rotator {
        secret: secret.clone(),
        secrets: session.secret_versions(&env.primary_region),
        ecs: session.ecs(&env.primary_region),
        cluster: env.ecs.cluster.clone(),
        journal: ctx.journal(session),
        reporter: ctx.reporter.clone(),
        cancel: ctx.cancel.clone(),
        rollout_timeout: timeout,
        rollout_poll: Duration::from_secs(5),
    }
}

/// When the previous JWT key of `secret` may stop verifying: recorded by the last rotation's `finish` step
/// (the longest access-token lifetime plus clock skew after the new key started signing).
pub async fn retirable_at(
    ctx: &OpsContext,
    environment: &str,
    secret: &ManagedSecret,
    session: &AwsSession,
) -> Result<Option<chrono::DateTime<Utc>>, SetupError> {
    let ops = ctx.journal(session).list(environment, 200).await?;
    Ok(ops
        .iter()
        .filter(|op| {
            op.kind == super::KIND && op.parameters.get("secret").and_then(|v| v.as_str()) == Some(secret.id.as_str())
        })
        .find(|op| op.status == OperationStatus::Succeeded)
        .and_then(|op| op.fact("previous_key_retirable_at"))
        .and_then(|v| serde_json::from_value(v.clone()).ok()))
}

/// A new JWT rotation moves AWSPREVIOUS off the key before the last one: refused while tokens that key
/// signed may still be valid, so no valid token is ever rejected.
pub async fn refuse_during_overlap(
    ctx: &OpsContext,
    environment: &str,
    secret: &ManagedSecret,
    session: &AwsSession,
) -> Result<(), SetupError> {
    if let Some(at) = retirable_at(ctx, environment, secret, session).await? {
        if at > Utc::now() {
            return Err(SetupError::Overlap {
                secret: secret.id.clone(),
                until: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            });
        }
    }
    Ok(())
}
