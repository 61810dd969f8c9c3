//! The one operation engine every mutating command runs on. An operation declares its steps (a
//! [`Steps`] implementation); the engine owns everything that makes a change safe to interrupt:
//!
//! - each step is journaled as started before it runs and as ended after, under the environment's lock,
//!   every write fenced by the lock's token; a runner whose lease is lost or about to run out stops before
//!   its next AWS mutation ([`Run::mutating`]);
//! - a step journals what it is about to do before doing it ([`Run::record`]), and a restarted step keeps
//!   the facts and the attempts of earlier runs;
//! - a decision to roll back or abort is journaled before it is acted on, and a resume carries the decision
//!   on instead of re-running the step that was interrupted;
//! - control commands (`pause`, `resume`, `abort`, `promote`) are read at every step boundary (and by long
//!   steps at every tick), for this operation only, and consumed when read;
//! - a signal stops the run at a safe point: the operation first gets to make the environment safe
//!   ([`Steps::on_interrupt`]: a canary puts all traffic back on stable), then the state is journaled as
//!   `interrupted`, resumable from any machine.

mod control;
#[cfg(feature = "fault-hooks")]
mod faults;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::aws::AwsError;
use crate::journal::lock::{LeaseLost, LockGuard};
use crate::journal::{Decision, DecisionKind, Journal, JournalError, Operation, OperationStatus, StepStatus};
use crate::report::Reporter;

pub use control::Control;

pub type Facts = BTreeMap<String, serde_json::Value>;

/// How a step ended well.
#[derive(Debug)]
pub enum StepEnd {
    Done(Facts),
    /// Nothing to do (a condition was false, the work was already done): journaled as skipped.
    Skipped {
        why: String,
        facts: Facts,
    },
    /// Failed, and the operation goes on (a runbook step with `on_failure: continue`): journaled as
    /// tolerated with its error.
    Tolerated {
        reason: String,
        facts: Facts,
    },
    /// Done, and the steps before `index` are skipped (a canary promoted during its analysis).
    JumpTo {
        index: usize,
        why: String,
        facts: Facts,
    },
}

/// How a step ended badly.
#[derive(Debug)]
pub enum StepError {
    /// It failed; [`Steps::on_failure`] says what follows.
    Failed { reason: String, facts: Facts },
    /// A precondition does not hold and nothing was changed: the operation ends `failed` at once.
    Refused { reason: String },
    /// The step (the analysis, a person through a control command) decided to roll back or abort.
    Decided(Decision),
    /// A signal, or the lease is lost: stop where we are, resumable.
    Interrupted,
}

impl StepEnd {
    pub fn skipped(why: impl Into<String>, facts: Facts) -> Self {
        Self::Skipped { why: why.into(), facts }
    }
}

impl StepError {
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::Failed {
            reason: reason.into(),
            facts: Facts::new(),
        }
    }

    pub fn refused(reason: impl Into<String>) -> Self {
        Self::Refused { reason: reason.into() }
    }
}

impl From<AwsError> for StepError {
    fn from(e: AwsError) -> Self {
        Self::failed(e.to_string())
    }
}

impl From<LeaseLost> for StepError {
    fn from(_: LeaseLost) -> Self {
        Self::Interrupted
    }
}

impl From<JournalError> for StepError {
    fn from(e: JournalError) -> Self {
        match e {
            // Our record was refused because the lock is no longer ours: stop, never go on unrecorded.
            JournalError::Fenced { .. } => Self::Interrupted,
            other => Self::failed(other.to_string()),
        }
    }
}

/// What follows a failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop resumable (status `interrupted`, the lock kept): the environment is half-changed, and a person
    /// chooses between `resume` and `abort`.
    Stop,
    /// End `failed`: nothing needs undoing.
    Fail,
    /// Decide to roll back (journaled), then [`Steps::undo`].
    RollBack,
}

/// The steps of one operation kind.
#[async_trait]
pub trait Steps: Send + Sync {
    /// Runs step `index` of `op`. Before each AWS mutation it calls [`Run::mutating`]; before an effect
    /// that undo must know about, [`Run::record`]. Steps are idempotent: a resume re-runs the step that was
    /// running, and it re-reads the world and converges rather than redoing blindly.
    async fn step(&self, run: &Run<'_>, op: &mut Operation, index: usize) -> Result<StepEnd, StepError>;

    /// What follows the failure of step `index`.
    fn on_failure(&self, _op: &Operation, _index: usize) -> OnFailure {
        OnFailure::Stop
    }

    /// Carries a decision out: puts the environment back as it was. Runs again, from the start, when a
    /// resume or abort finds the decision journaled but not finished, so it must be idempotent. Returns a
    /// note for the journal on what it did.
    async fn undo(&self, run: &Run<'_>, op: &mut Operation, decision: &Decision) -> Result<String, StepError>;

    /// Called when the run is interrupted during step `index` while the lease is still held: make the
    /// environment safe to leave (a canary puts all traffic back on stable). Returns a note, if it did
    /// anything.
    async fn on_interrupt(
        &self,
        _run: &Run<'_>,
        _op: &mut Operation,
        _index: usize,
    ) -> Result<Option<String>, StepError> {
        Ok(None)
    }

    /// Where `promote` jumps to, for operations that accept it (a canary: its promotion step).
    fn promote_index(&self, _op: &Operation) -> Option<usize> {
        None
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    Completed,
    /// A step failed and the operation stopped resumable there.
    Stopped {
        at_step: String,
        reason: String,
    },
    /// A precondition did not hold, or a step failed with nothing to undo.
    Failed {
        at_step: String,
        reason: String,
    },
    /// A decision to roll back or abort was carried out.
    Undone {
        decision: Decision,
        note: String,
    },
    /// A signal or a lost lease: resumable.
    Interrupted {
        at_step: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot {action} operation `{id}`: {reason}")]
    UndoRefused {
        id: String,
        action: &'static str,
        reason: String,
    },
    #[error("operation `{id}` decided to {action} ({reason}) but putting the environment back failed: {failure}\nhint: the decision is journaled; `suma ops show {id}` shows where it stopped, and resuming or aborting the operation retries it")]
    UndoFailed {
        id: String,
        action: &'static str,
        reason: String,
        failure: String,
    },
}

/// One run of an operation: the journal, the lock it runs under, and what stops it.
pub struct Run<'a> {
    pub journal: &'a Journal,
    pub guard: &'a LockGuard,
    pub reporter: &'a dyn Reporter,
    /// Cancelled by SIGINT, SIGTERM or SIGHUP.
    pub cancel: &'a CancellationToken,
    /// Time spent in [`Run::sleep`]: waiting for AWS (or a database) to get somewhere, as opposed to
    /// the engine's own work, which is what is left of an operation's time.
    slept_nanos: std::sync::atomic::AtomicU64,
}

impl<'a> Run<'a> {
    pub fn new(
        journal: &'a Journal,
        guard: &'a LockGuard,
        reporter: &'a dyn Reporter,
        cancel: &'a CancellationToken,
    ) -> Self {
        Self {
            journal,
            guard,
            reporter,
            cancel,
            slept_nanos: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Time this run has spent waiting between polls.
    pub fn slept(&self) -> Duration {
        Duration::from_nanos(self.slept_nanos.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Call before every AWS mutation: `Err(Interrupted)` when a signal arrived or the lease is lost or
    /// within its safety margin, so no change is made by a runner that may no longer own the environment.
    pub fn mutating(&self) -> Result<(), StepError> {
        if self.cancel.is_cancelled() {
            return Err(StepError::Interrupted);
        }
        self.held()
    }

    /// Call before every AWS mutation that makes the environment safe (undo, putting traffic back): these
    /// go on after a signal, but never without the lease.
    pub fn held(&self) -> Result<(), StepError> {
        self.guard.ensure_held()?;
        #[cfg(feature = "fault-hooks")]
        faults::kill_point(|| "before an AWS change".to_owned());
        Ok(())
    }

    /// Journals `facts` on the running step now (intent before effect).
    pub async fn record(&self, op: &mut Operation, facts: Facts) -> Result<(), StepError> {
        op.record_facts(facts);
        self.save(op).await?;
        Ok(())
    }

    /// Saves `op`, fenced by the lock. A refused write means the lock is no longer ours: the run is
    /// marked lost, so it changes nothing more.
    pub async fn save(&self, op: &Operation) -> Result<(), JournalError> {
        let saved = self.journal.save(op, Some(self.guard.fence())).await;
        if matches!(saved, Err(JournalError::Fenced { .. })) {
            self.guard.lost().cancel();
        }
        saved
    }

    /// Reads and consumes the control command left for this operation. A failed read is logged and
    /// treated as none (the next tick reads again); a refused one means the lock is gone.
    pub async fn control(&self) -> Result<Option<Control>, StepError> {
        match self.guard.take_control().await {
            Ok(Some((command, by))) => Ok(Control::parse(&command, by)),
            Ok(None) => Ok(None),
            Err(e) if e.kind == crate::aws::AwsErrorKind::ConditionFailed => Err(StepError::Interrupted),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the control command");
                Ok(None)
            }
        }
    }

    /// Sleeps `period`, or returns `Err(Interrupted)` as soon as a signal arrives or the lease is lost.
    pub async fn sleep(&self, period: Duration) -> Result<(), StepError> {
        let lost = self.guard.lost();
        let started = tokio::time::Instant::now();
        let slept = tokio::select! {
            () = tokio::time::sleep(period) => Ok(()),
            () = self.cancel.cancelled() => Err(StepError::Interrupted),
            () = lost.cancelled() => Err(StepError::Interrupted),
        };
        self.slept_nanos.fetch_add(
            started.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        slept
    }

    fn actor(&self) -> &str {
        self.guard.holder()
    }
}

/// A crash-matrix kill point outside the step loop (an operation's setup writes); nothing unless built
/// with the `fault-hooks` feature.
pub(crate) fn kill_point(what: impl FnOnce() -> String) {
    #[cfg(feature = "fault-hooks")]
    faults::kill_point(what);
    #[cfg(not(feature = "fault-hooks"))]
    let _ = what;
}

/// Runs (or resumes) `op` from its first unfinished step, or carries on the decision it journaled.
pub async fn drive(steps: &dyn Steps, run: &Run<'_>, op: &mut Operation) -> Result<RunEnd, EngineError> {
    if let Some(decision) = op.decision.clone() {
        return conclude(steps, run, op, decision).await;
    }
    let total = op.plan.len();
    let mut index = op.next_step();
    while index < total {
        if run.cancel.is_cancelled() || run.guard.ensure_held().is_err() {
            return interrupted(steps, run, op, index).await;
        }
        match at_boundary(steps, run, op).await {
            Ok(Boundary::Go) => {}
            Ok(Boundary::JumpTo(to)) if to > index => {
                skip_until(op, index, to, "promoted");
                run.save(op).await?;
                index = to;
                continue;
            }
            Ok(Boundary::JumpTo(_)) => {}
            Err(StepError::Decided(decision)) => return conclude(steps, run, op, decision).await,
            Err(_) => return interrupted(steps, run, op, index).await,
        }
        let name = op.plan[index].name.clone();
        op.start_step(index);
        run.save(op).await?;
        run.reporter.step_started(index, total, &name);
        let lost = run.guard.lost();
        let result = tokio::select! {
            biased;
            () = lost.cancelled() => Err(StepError::Interrupted),
            r = steps.step(run, op, index) => r,
        };
        #[cfg(feature = "fault-hooks")]
        if result.is_ok() {
            faults::kill_point(|| format!("after the work of `{name}`, before its end is journaled"));
        }
        match result {
            Ok(StepEnd::Done(facts)) => {
                let detail = summary(&facts);
                op.finish_step(StepStatus::Succeeded, None, facts);
                run.save(op).await?;
                run.reporter
                    .step_finished(index, total, &name, StepStatus::Succeeded, &detail);
                index += 1;
            }
            Ok(StepEnd::Skipped { why, facts }) => {
                op.finish_step(StepStatus::Skipped, Some(why.clone()), facts);
                run.save(op).await?;
                run.reporter
                    .step_finished(index, total, &name, StepStatus::Skipped, &why);
                index += 1;
            }
            Ok(StepEnd::Tolerated { reason, facts }) => {
                op.finish_step(StepStatus::Tolerated, Some(reason.clone()), facts);
                run.save(op).await?;
                run.reporter
                    .step_finished(index, total, &name, StepStatus::Tolerated, &reason);
                index += 1;
            }
            Ok(StepEnd::JumpTo { index: to, why, facts }) => {
                op.finish_step(StepStatus::Succeeded, None, facts);
                skip_until(op, index + 1, to, &why);
                run.save(op).await?;
                run.reporter
                    .step_finished(index, total, &name, StepStatus::Succeeded, &why);
                index = to.max(index + 1);
            }
            Err(StepError::Interrupted) => return interrupted(steps, run, op, index).await,
            Err(StepError::Decided(decision)) => {
                op.finish_step(StepStatus::Failed, Some(decision.reason.clone()), Facts::new());
                run.reporter
                    .step_finished(index, total, &name, StepStatus::Failed, &decision.reason);
                return conclude(steps, run, op, decision).await;
            }
            Err(StepError::Refused { reason }) => {
                op.finish_step(StepStatus::Failed, Some(reason.clone()), Facts::new());
                op.set_status(OperationStatus::Failed);
                run.save(op).await?;
                run.reporter
                    .step_finished(index, total, &name, StepStatus::Failed, &reason);
                return Ok(RunEnd::Failed { at_step: name, reason });
            }
            Err(StepError::Failed { reason, facts }) => {
                op.finish_step(StepStatus::Failed, Some(reason.clone()), facts);
                run.reporter
                    .step_finished(index, total, &name, StepStatus::Failed, &reason);
                match steps.on_failure(op, index) {
                    OnFailure::Stop => {
                        op.set_status(OperationStatus::Interrupted);
                        run.save(op).await?;
                        return Ok(RunEnd::Stopped { at_step: name, reason });
                    }
                    OnFailure::Fail => {
                        op.set_status(OperationStatus::Failed);
                        run.save(op).await?;
                        return Ok(RunEnd::Failed { at_step: name, reason });
                    }
                    OnFailure::RollBack => {
                        let decision = Decision::new(DecisionKind::RollBack, reason, run.actor());
                        return conclude(steps, run, op, decision).await;
                    }
                }
            }
        }
        #[cfg(feature = "fault-hooks")]
        faults::after_step_journaled(&name);
    }
    op.set_status(OperationStatus::Succeeded);
    run.save(op).await?;
    Ok(RunEnd::Completed)
}

/// Ends `op` by a person's abort: journals the decision, then undoes. Used by `abort` on an operation
/// whose runner stopped or died, under the lock taken over from it.
pub async fn abort(steps: &dyn Steps, run: &Run<'_>, op: &mut Operation, by: &str) -> Result<RunEnd, EngineError> {
    let decision = match op.decision.clone() {
        // An abort of an operation that already decided to roll back finishes that rollback.
        Some(decision) => decision,
        None => Decision::new(DecisionKind::Abort, format!("aborted by {by}"), by),
    };
    conclude(steps, run, op, decision).await
}

/// Journals `decision` (if it is not already) and carries it out.
async fn conclude(
    steps: &dyn Steps,
    run: &Run<'_>,
    op: &mut Operation,
    decision: Decision,
) -> Result<RunEnd, EngineError> {
    if op.decision.as_ref() != Some(&decision) {
        op.decision = Some(decision.clone());
        op.note(
            &decision.by,
            format!("decided to {}: {}", action(decision.kind), decision.reason),
        );
    }
    op.set_status(OperationStatus::Running);
    // The decision is on record before anything acts on it.
    run.save(op).await?;
    run.reporter
        .warn(&format!("{}: {}", action(decision.kind), decision.reason));
    match steps.undo(run, op, &decision).await {
        Ok(note) => {
            op.note(run.actor(), note.clone());
            op.set_status(match decision.kind {
                DecisionKind::Abort => OperationStatus::Aborted,
                DecisionKind::RollBack => OperationStatus::Failed,
            });
            run.save(op).await?;
            Ok(RunEnd::Undone { decision, note })
        }
        Err(StepError::Interrupted) => {
            let at_step = format!("{} (undo)", action(decision.kind));
            op.set_status(OperationStatus::Interrupted);
            let _ = run.save(op).await;
            Ok(RunEnd::Interrupted { at_step })
        }
        Err(StepError::Refused { reason }) => {
            // Past the point of no return: there is no way back, only forward. The decision is withdrawn so
            // that a resume finishes the operation instead of retrying an impossible undo.
            op.decision = None;
            op.note(run.actor(), format!("{} refused: {reason}", action(decision.kind)));
            op.set_status(OperationStatus::Interrupted);
            run.save(op).await?;
            Err(EngineError::UndoRefused {
                id: op.id.clone(),
                action: action(decision.kind),
                reason,
            })
        }
        Err(StepError::Failed { reason: failure, .. }) => {
            op.note(run.actor(), format!("{} failed: {failure}", action(decision.kind)));
            op.set_status(OperationStatus::Interrupted);
            let _ = run.save(op).await;
            Err(EngineError::UndoFailed {
                id: op.id.clone(),
                action: action(decision.kind),
                reason: decision.reason,
                failure,
            })
        }
        Err(StepError::Decided(_)) => unreachable!("undo does not decide"),
    }
}

fn action(kind: DecisionKind) -> &'static str {
    match kind {
        DecisionKind::RollBack => "roll back",
        DecisionKind::Abort => "abort",
    }
}

/// Where the run stands after the control command read at a step boundary.
enum Boundary {
    Go,
    JumpTo(usize),
}

/// Reads control at a step boundary: `abort` decides, `pause` holds here until `resume`, `abort` or
/// `promote`, `promote` jumps to the operation's promotion step.
async fn at_boundary(steps: &dyn Steps, run: &Run<'_>, op: &mut Operation) -> Result<Boundary, StepError> {
    let mut paused = false;
    loop {
        match run.control().await? {
            Some(Control::Abort { by }) => {
                return Err(StepError::Decided(Decision::new(
                    DecisionKind::Abort,
                    format!("aborted by {by}"),
                    &by,
                )))
            }
            Some(Control::Promote { by }) => match steps.promote_index(op) {
                Some(index) => {
                    op.note(&by, "promoted");
                    return Ok(Boundary::JumpTo(index));
                }
                None => run.reporter.warn(&format!(
                    "`promote` from {by} ignored: a {} cannot be promoted",
                    op.kind
                )),
            },
            Some(Control::Pause { by }) if !paused => {
                paused = true;
                op.note(&by, "paused");
                run.save(op).await?;
                run.reporter.warn(&format!(
                    "paused by {by} before the next step; `resume`, `abort` or `promote` continues"
                ));
            }
            Some(Control::Resume { by }) if paused => {
                op.note(&by, "resumed");
                run.save(op).await?;
                return Ok(Boundary::Go);
            }
            Some(_) | None if paused => run.sleep(control::PAUSE_POLL).await?,
            Some(_) | None => return Ok(Boundary::Go),
        }
    }
}

fn skip_until(op: &mut Operation, from: usize, to: usize, why: &str) {
    for index in from..to {
        op.start_step(index);
        op.finish_step(StepStatus::Skipped, Some(why.to_owned()), Facts::new());
    }
}

async fn interrupted(
    steps: &dyn Steps,
    run: &Run<'_>,
    op: &mut Operation,
    index: usize,
) -> Result<RunEnd, EngineError> {
    let at_step = op.plan.get(index).map_or_else(String::new, |p| p.name.clone());
    // Only a runner that still holds the lease may touch the environment on the way out.
    if run.guard.ensure_held().is_ok() {
        match steps.on_interrupt(run, op, index).await {
            Ok(Some(note)) => op.note(run.actor(), note),
            Ok(None) => {}
            Err(e) => op.note(run.actor(), format!("making `{at_step}` safe to leave failed: {e:?}")),
        }
    }
    op.note(run.actor(), format!("interrupted at `{at_step}`"));
    op.set_status(OperationStatus::Interrupted);
    // The lease may be gone (one way to get here): then the record cannot be written, and the lock item
    // keeps the last state saved under it.
    let _ = run.save(op).await;
    Ok(RunEnd::Interrupted { at_step })
}

/// `key=value` pairs of a step's facts, for the step's line (long values, like analysis ticks, left out).
fn summary(facts: &Facts) -> String {
    facts
        .iter()
        .filter(|(_, v)| !v.is_array() && !v.is_object())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
