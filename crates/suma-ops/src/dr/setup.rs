//! The DR engine and readiness check built from an environment's configuration: the replica-lag source
//! it names, Datadog events when it has a `datadog` section, the service probe. Shared by `suma dr` and
//! the runbook actions.

use std::sync::Arc;
use std::time::Duration;

use super::catch_up::{FailbackPositions, PostgresPositions, ReplicationPositions, UnavailablePositions};
use super::lag::{MetricLag, PostgresLag, ReplicaLag, UnavailableLag};
use super::rto::RtoEstimate;
use super::{check, Engine, EventSink, Gate};
use crate::aws::AwsSession;
use crate::config::{Environment, LagSource};
use crate::context::OpsContext;
use crate::env_vars::{SUMA_DR_PRIMARY_URL, SUMA_DR_REPLICA_URL};
use crate::journal::Journal;
use crate::settings::EnvSource as _;

/// The configured replica-lag source; one that cannot be built fails every read with the reason.
pub fn lag_source(env: &Environment) -> Arc<dyn ReplicaLag> {
    let replica = env
        .rds
        .replica
        .as_ref()
        .map_or_else(String::new, |r| r.identifier.clone());
    match env.dr.replica_lag {
        LagSource::Postgres => match crate::settings::ProcessEnv.var(SUMA_DR_REPLICA_URL) {
            Some(url) => Arc::new(PostgresLag {
                url,
                timeout: Duration::from_secs(10),
            }),
            None => Arc::new(UnavailableLag {
                source_name: "postgres",
                reason: format!("`{SUMA_DR_REPLICA_URL}` is not set"),
                hint: Some(format!(
                    "export `{SUMA_DR_REPLICA_URL}` with a read-only PostgreSQL URL of replica `{replica}`"
                )),
            }),
        },
        LagSource::Datadog => {
            let built = match env.datadog.as_ref() {
                None => Err("`dr.replica_lag: datadog` needs a `datadog` section".to_owned()),
                Some(cfg) => crate::metrics::datadog::Datadog::from_env(
                    cfg,
                    Duration::from_secs(300),
                    &crate::settings::ProcessEnv,
                )
                .map_err(|e| e.to_string()),
            };
            match built {
                Ok(datadog) => Arc::new(MetricLag {
                    metrics: Arc::new(datadog),
                    replica_identifier: replica,
                }),
                Err(e) => Arc::new(UnavailableLag {
                    source_name: "datadog",
                    reason: e,
                    hint: None,
                }),
            }
        }
    }
}

/// The WAL positions a switchover compares, over `SUMA_DR_PRIMARY_URL` and `SUMA_DR_REPLICA_URL`; when
/// either is not set, every read fails naming it (and the switchover's readiness refuses).
pub fn replication_positions() -> Arc<dyn ReplicationPositions> {
    let var = |name: &str| crate::settings::ProcessEnv.var(name);
    match (var(SUMA_DR_PRIMARY_URL), var(SUMA_DR_REPLICA_URL)) {
        (Some(primary_url), Some(replica_url)) => Arc::new(PostgresPositions::switchover(
            primary_url,
            replica_url,
            Duration::from_secs(10),
        )),
        (primary, _) => {
            let missing = if primary.is_none() {
                SUMA_DR_PRIMARY_URL
            } else {
                SUMA_DR_REPLICA_URL
            };
            Arc::new(UnavailablePositions {
                reason: format!("`{missing}` is not set"),
                hint: format!(
                    "export `{SUMA_DR_PRIMARY_URL}` (the service's database on the primary: its sessions are the writers the switchover waits for) and `{SUMA_DR_REPLICA_URL}` (the DR replica) as PostgreSQL URLs"
                ),
            })
        }
    }
}

/// A failback's positions: the DR database takes the writes, the rebuilt primary-region instance
/// replays them; each read at its RDS endpoint, signed in as `SUMA_DR_REPLICA_URL` and
/// `SUMA_DR_PRIMARY_URL` say.
pub fn failback_positions() -> FailbackPositions {
    let var = |name: &str| crate::settings::ProcessEnv.var(name);
    let (dr_url, primary_url) = (var(SUMA_DR_REPLICA_URL), var(SUMA_DR_PRIMARY_URL));
    Arc::new(move |dr_endpoint: &str, primary_endpoint: &str| {
        let (Some(dr_url), Some(primary_url)) = (dr_url.as_deref(), primary_url.as_deref()) else {
            return Err(format!(
                "`{SUMA_DR_REPLICA_URL}` and `{SUMA_DR_PRIMARY_URL}` must both be set: a failback writes its marker on the DR database and reads the rebuilt primary-region instance's position, each at its endpoint, signed in as those URLs say"
            ));
        };
        let positions = PostgresPositions::failback(
            dr_url,
            dr_endpoint,
            primary_url,
            primary_endpoint,
            Duration::from_secs(10),
        )?;
        Ok(Arc::new(positions) as Arc<dyn ReplicationPositions>)
    })
}

/// Datadog events when the environment has a `datadog` section and the keys are set.
fn events(env: &Environment) -> Option<Arc<dyn EventSink>> {
    let cfg = env.datadog.as_ref()?;
    let datadog =
        crate::metrics::datadog::Datadog::from_env(cfg, Duration::from_secs(300), &crate::settings::ProcessEnv).ok()?;
    let mut tags = cfg.tags.clone();
    tags.push("source:suma-dr".to_owned());
    Some(Arc::new(super::DatadogEvents { datadog, tags }))
}

/// The DR engine for `env`, with its sources built from the configuration; `gate` answers the
/// failback's confirmation.
pub fn engine(
    ctx: &OpsContext,
    name: &str,
    env: &Environment,
    session: &AwsSession,
    timeout: Duration,
    gate: Arc<dyn Gate>,
) -> Engine {
    Engine {
        environment: name.to_owned(),
        env: env.clone(),
        aws: Arc::new(session.clone()),
        lag: lag_source(env),
        replication: replication_positions(),
        failback_replication: failback_positions(),
        probe: Arc::new(super::HttpServiceProbe::new(Duration::from_secs(10))),
        events: events(env),
        gate,
        journal: ctx.journal(session),
        reporter: ctx.reporter.clone(),
        cancel: ctx.cancel.clone(),
        wait_timeout: timeout,
        poll: Duration::from_secs(5),
    }
}

/// The readiness of `name`, its failover time estimated from the failovers `journal` holds.
pub async fn readiness(name: &str, env: &Environment, session: &AwsSession, journal: &Journal) -> check::Readiness {
    let lag = lag_source(env);
    let (seen, estimate) = tokio::join!(
        check::gather(env, session, lag.as_ref()),
        rto_estimate(name, env, journal)
    );
    check::evaluate(name, env, &seen, &estimate)
}

/// The failover time of `name`, from its journaled failovers (the recent ones; an unreadable journal
/// leaves the documented defaults, which the estimate's basis says).
pub async fn rto_estimate(name: &str, env: &Environment, journal: &Journal) -> RtoEstimate {
    let history = journal.list(name, HISTORY).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read past failovers; the failover time is estimated from defaults");
        Vec::new()
    });
    super::rto::estimate(name, env, &history)
}

/// Operations read back for the estimate: enough to hold the recent failovers among the other work.
const HISTORY: usize = 200;
