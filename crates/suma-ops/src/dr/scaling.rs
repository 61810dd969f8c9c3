//! Application Auto Scaling during a switch. A service's target-tracking or scheduled scaling knows
//! nothing of a failover: on the drained primary it would scale the service back up (to its minimum
//! capacity, against a database about to be left behind), and on the DR service its scale-in would fight
//! the scale-up. So each service is suspended before suma moves its capacity, with what it was journaled
//! first, and restored when the move is done: the DR service at the end of the switch, the primary only
//! at the end of the failback (until then, scaling it up would start writers in the region traffic left).

use serde_json::json;

use super::{is_away_kind, Engine, Facts, Side};
use crate::aws::ecs::ScalingSuspension;
use crate::aws::AwsError;
use crate::engine::{Run, StepEnd, StepError};
use crate::journal::Operation;

/// The suspension journaled under `fact`: `Some(None)` when the service had no scalable target,
/// `None` when nothing was journaled.
fn journaled(op: &Operation, fact: &str) -> Option<Option<ScalingSuspension>> {
    op.fact(fact).map(|v| serde_json::from_value(v.clone()).unwrap_or(None))
}

impl Engine {
    /// Suspends the scaling of `side`'s service, after journaling what it was (once: a restarted step
    /// keeps what the first attempt saw, when the service may already be suspended).
    pub(super) async fn suspend_scaling(&self, run: &Run<'_>, op: &mut Operation, side: Side) -> Result<(), AwsOrStep> {
        let (region, cluster, service) = side.service(&self.env);
        let fact = side.scaling_fact();
        let ecs = self.aws.ecs(region);
        // What it is now: read once, when it is also what gets journaled; read again on a restart.
        let current = match journaled(op, fact) {
            Some(None) => return Ok(()),
            Some(Some(_)) => ecs.scaling_suspension(cluster, service).await?,
            None => {
                let before = ecs.scaling_suspension(cluster, service).await?;
                run.record(op, Facts::from([(fact.to_owned(), json!(before))])).await?;
                before
            }
        };
        // No scalable target, nothing to suspend.
        if current.is_some_and(|c| c != ScalingSuspension::ALL) {
            run.mutating()?;
            ecs.set_scaling_suspension(cluster, service, ScalingSuspension::ALL)
                .await?;
        }
        Ok(())
    }

    /// Puts the scaling of `side`'s service back as journaled before suma moved it; whether anything
    /// changed.
    pub(super) async fn restore_scaling(&self, run: &Run<'_>, op: &Operation, side: Side) -> Result<bool, StepError> {
        let (region, cluster, service) = side.service(&self.env);
        let fact = side.scaling_fact();
        let Some(Some(before)) = journaled(op, fact) else {
            return Ok(false);
        };
        let ecs = self.aws.ecs(region);
        if ecs.scaling_suspension(cluster, service).await? == Some(before) {
            return Ok(false);
        }
        run.mutating()?;
        ecs.set_scaling_suspension(cluster, service, before).await?;
        Ok(true)
    }

    /// The `resume-scaling` step: after a switch to DR, the DR service's scaling as it was (the
    /// primary's stays suspended); after a failback, both as they were before the failover.
    pub(super) async fn resume_scaling(&self, run: &Run<'_>, op: &Operation) -> Result<StepEnd, StepError> {
        let dr = self.restore_scaling(run, op, Side::Dr).await?;
        let mut facts = Facts::from([("dr_scaling_restored".to_owned(), json!(dr))]);
        if is_away_kind(&op.kind) {
            if matches!(journaled(op, "primary_scaling"), Some(Some(_))) {
                facts.insert(
                    "primary_scaling_state".to_owned(),
                    json!("left suspended until the failback"),
                );
            }
        } else {
            let primary = self.restore_scaling(run, op, Side::Primary).await?;
            facts.insert("primary_scaling_restored".to_owned(), json!(primary));
        }
        Ok(StepEnd::Done(facts))
    }
}

/// A suspension's failure: an AWS error the caller may judge (a degraded region), or the engine's own.
#[derive(Debug)]
pub(super) enum AwsOrStep {
    Aws(AwsError),
    Step(StepError),
}

impl From<AwsError> for AwsOrStep {
    fn from(e: AwsError) -> Self {
        Self::Aws(e)
    }
}

impl From<StepError> for AwsOrStep {
    fn from(e: StepError) -> Self {
        Self::Step(e)
    }
}

impl From<AwsOrStep> for StepError {
    fn from(e: AwsOrStep) -> Self {
        match e {
            AwsOrStep::Aws(e) => e.into(),
            AwsOrStep::Step(e) => e,
        }
    }
}
