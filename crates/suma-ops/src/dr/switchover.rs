//! The switchover's own steps, which make it lose no acknowledged write: its readiness (both regions and
//! both databases answer), the wait until the drained services run no task, and the catch-up: no session
//! left on the primary's database, a marker written into its WAL, the promotion only once the replica
//! has replayed it (the decision in [`super::catch_up`]).

use std::time::Duration;

use serde_json::json;

use super::{catch_up, lag, Engine, Facts};
use crate::engine::{Run, StepEnd, StepError};
use crate::journal::Operation;

/// How often a switchover looks at the drain and at the replica's position: both end within a second
/// or two, and every poll while the primary is drained is downtime.
const DRAIN_POLL: Duration = Duration::from_secs(1);
const CATCH_UP_POLL: Duration = Duration::from_millis(100);

impl Engine {
    /// Waits until no task of `names` runs or is pending in the primary region: a task still draining
    /// its connections can still commit.
    pub(super) async fn wait_drained(&self, run: &Run<'_>, names: &[String]) -> Result<Duration, StepError> {
        self.wait_drained_in(
            run,
            &self.env.primary_region,
            &self.env.ecs.cluster,
            names,
            "scales the primary back",
        )
        .await
    }

    /// Waits until no task of `names` in `cluster` (`region`) runs or is pending; `undo` says what an
    /// abort does, for the hint.
    pub(super) async fn wait_drained_in(
        &self,
        run: &Run<'_>,
        region: &crate::config::AwsRegion,
        cluster: &str,
        names: &[String],
        undo: &str,
    ) -> Result<Duration, StepError> {
        let ecs = self.aws.ecs(region);
        let started = tokio::time::Instant::now();
        let deadline = started + self.wait_timeout;
        loop {
            let found = ecs.describe_services(cluster, names).await?;
            let left: Vec<String> = found
                .iter()
                .filter(|s| s.running + s.pending > 0)
                .map(|s| format!("`{}` ({} running, {} pending)", s.name, s.running, s.pending))
                .collect();
            if left.is_empty() {
                return Ok(started.elapsed());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::failed(format!(
                    "tasks still run in {region} after {}: {}\nhint: `suma dr resume` waits again; `suma dr abort` {undo}",
                    humantime::format_duration(self.wait_timeout),
                    left.join(", ")
                )));
            }
            run.sleep(self.poll.min(DRAIN_POLL)).await?;
        }
    }

    /// The gate of a switchover, and of a failback on its way home: a marker written into the writing
    /// database's WAL once nothing writes to it, and the replica caught up when it has replayed up to
    /// it. A switchover writes on the primary and waits for the DR replica; a failback writes on the DR
    /// database and waits for the primary-region instance it rebuilt. The marker's position is journaled
    /// before the wait.
    pub(super) async fn catch_up(&self, run: &Run<'_>, op: &mut Operation) -> Result<StepEnd, StepError> {
        let replica = self.replica()?;
        let primary = &self.env.rds.primary;
        let failback = op.kind == super::FAILBACK;
        let (positions, writer, reader, undo) = if failback {
            let dr_endpoint = self.endpoint_of(&replica.region, &replica.identifier).await?;
            let rebuilt = self.endpoint_of(&primary.region, &primary.identifier).await?;
            let positions = (self.failback_replication)(&dr_endpoint, &rebuilt).map_err(|e| {
                StepError::failed(format!(
                    "cannot compare the DR database with the rebuilt `{}`: {e}\nhint: set them and `suma dr resume --env {env}`; `suma dr abort --env {env}` scales DR back (nothing was promoted)",
                    primary.identifier,
                    env = self.environment
                ))
            })?;
            (
                positions,
                replica.identifier.clone(),
                primary.identifier.clone(),
                "scales DR back",
            )
        } else {
            (
                self.replication.clone(),
                primary.identifier.clone(),
                replica.identifier.clone(),
                "scales the primary back",
            )
        };
        let unreadable = |what: &str, e: lag::LagError| {
            StepError::failed(format!(
                "cannot read {what}: {e}\nhint: `suma dr resume --env {env}` reads it again; `suma dr abort --env {env}` {undo}",
                env = self.environment
            ))
        };
        let started = tokio::time::Instant::now();
        let deadline = started + self.wait_timeout;
        // Draining tasks leave `runningCount` before their processes exit: wait for their sessions.
        loop {
            let sessions = positions
                .other_sessions()
                .await
                .map_err(|e| unreadable(&format!("the sessions on `{writer}`"), e))?;
            if sessions.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::failed(format!(
                    "{} session(s) still connected to `{writer}` after {}: {}; a write through any of them after the promotion would be lost\nhint: stop what holds them (a DR standby task writes to the primary too), then `suma dr resume --env {env}`; `suma dr abort --env {env}` {undo}",
                    sessions.len(),
                    humantime::format_duration(self.wait_timeout),
                    sessions.join(", "),
                    env = self.environment
                )));
            }
            run.sleep(self.poll.min(CATCH_UP_POLL)).await?;
        }
        let sessions_closed_ms = started.elapsed().as_millis() as u64;
        let marker = positions
            .write_marker(&op.id)
            .await
            .map_err(|e| unreadable(&format!("`{writer}`'s WAL position after the drain"), e))?;
        run.record(op, Facts::from([("marker_lsn".to_owned(), json!(marker.to_string()))]))
            .await?;
        let marked = tokio::time::Instant::now();
        loop {
            let replayed = positions
                .replayed_position()
                .await
                .map_err(|e| unreadable(&format!("`{reader}`'s replayed WAL position"), e))?;
            match catch_up::judge(marker, replayed) {
                catch_up::CatchUp::CaughtUp => {
                    return Ok(StepEnd::Done(Facts::from([
                        ("marker_lsn".to_owned(), json!(marker.to_string())),
                        ("replayed_lsn".to_owned(), json!(replayed.map(|l| l.to_string()))),
                        ("sessions_closed_after_ms".to_owned(), json!(sessions_closed_ms)),
                        ("caught_up_after_ms".to_owned(), json!(marked.elapsed().as_millis() as u64)),
                    ])))
                }
                catch_up::CatchUp::NotReplicating => {
                    let named = if failback {
                        format!(
                            "the endpoint RDS reports for `{reader}` (and `{}` for its sign-in)",
                            crate::env_vars::SUMA_DR_PRIMARY_URL
                        )
                    } else {
                        format!("`{}`", crate::env_vars::SUMA_DR_REPLICA_URL)
                    };
                    return Err(StepError::failed(format!(
                        "`{reader}` is not in recovery, so it is not replaying `{writer}`: nothing was promoted\nhint: check that {named} reaches the replica; `suma dr abort --env {}` {undo}",
                        self.environment
                    )));
                }
                catch_up::CatchUp::Behind(bytes) if tokio::time::Instant::now() >= deadline => {
                    return Err(StepError::failed(format!(
                        "`{reader}` is still {bytes} bytes of WAL behind the marker {marker} after {}\nhint: `suma dr resume` waits again; `suma dr abort` {undo} (nothing was promoted)",
                        humantime::format_duration(self.wait_timeout)
                    )))
                }
                catch_up::CatchUp::Behind(_) => run.sleep(self.poll.min(CATCH_UP_POLL)).await?,
            }
        }
    }

    /// `host:port` of an instance as RDS reports it.
    pub(super) async fn endpoint_of(
        &self,
        region: &crate::config::AwsRegion,
        identifier: &str,
    ) -> Result<String, StepError> {
        self.aws
            .rds(region)
            .describe_instance(identifier)
            .await?
            .host()
            .ok_or_else(|| {
                StepError::failed(format!(
                    "`{identifier}` has no endpoint yet\nhint: `suma dr resume --env {}` tries again",
                    self.environment
                ))
            })
    }

    /// A switchover's readiness: the primary region must answer and both WAL positions be readable
    /// (the replica's from a server in recovery) before the failover's own checks; nothing changes
    /// until all of them pass.
    pub(super) async fn switchover_readiness(&self, op: &mut Operation) -> Result<StepEnd, StepError> {
        let refused = |what: String| {
            StepError::refused(format!(
                "{what}\nhint: a switchover needs both regions and both databases; if the primary region is degraded, `suma dr failover` is the unplanned way"
            ))
        };
        let cfg = &self.env.ecs;
        self.aws
            .ecs(&self.env.primary_region)
            .describe_services(&cfg.cluster, std::slice::from_ref(&cfg.service))
            .await
            .map_err(|e| refused(format!("{} does not answer: {e}", self.env.primary_region)))?;
        let marker = self
            .replication
            .write_marker(&format!("{} readiness", op.id))
            .await
            .map_err(|e| refused(format!("no marker can be written on the primary: {e}")))?;
        let replayed = self
            .replication
            .replayed_position()
            .await
            .map_err(|e| refused(format!("the replica's WAL position cannot be read: {e}")))?;
        if replayed.is_none() && op.fact("replica_lag_checked").is_none() {
            return Err(refused(format!(
                "the server at `{}` is not in recovery: it is not the replica",
                crate::env_vars::SUMA_DR_REPLICA_URL
            )));
        }
        let StepEnd::Done(mut facts) = self.failover_readiness(op).await? else {
            unreachable!("the failover's readiness is never skipped")
        };
        facts.insert("primary_lsn_at_start".to_owned(), json!(marker.to_string()));
        Ok(StepEnd::Done(facts))
    }
}
