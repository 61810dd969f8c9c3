//! The canary state machine against the in-memory account every engine test shares
//! (`suma_testkit::AwsWorld`): every transition, and a crash at every step
//! followed by `resume` and by `abort`, each ending consistent (weights 100/0, canary 0, one live
//! revision). Time is paused, so minutes of analysis take no wall time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::aws::dynamodb::LockTable;
use crate::journal::lock::Locks;
use crate::journal::{LocalLog, OperationStatus};
use crate::metrics::MetricError;
use crate::report::SilentReporter;
use suma_testkit::aws_world::{AwsWorld, RolloutEnd};
use suma_testkit::MemoryLockTable as MemoryTable;

use suma_testkit::environment::{CANARY_TG, REGION, RULE, STABLE_TG};

/// The shared in-memory account seen in the canary's terms: staging before a deploy runs 4 stable tasks
/// on `td:1`, the canary service at 0, all traffic on stable.
struct Staging(Arc<AwsWorld>);

impl Staging {
    fn new(rollout: RolloutEnd) -> Self {
        let world = AwsWorld::new();
        world.register("td:1", "repo/auth-service:1.4.2");
        world.run_service(REGION, "auth-service", "td:1", 4);
        world.run_service(REGION, "auth-service-canary", "td:1", 0);
        world.with(|s| {
            s.faults.rollout = rollout;
            s.rules.insert(
                RULE.into(),
                vec![
                    WeightedTarget {
                        target_group_arn: STABLE_TG.into(),
                        weight: 100,
                    },
                    WeightedTarget {
                        target_group_arn: CANARY_TG.into(),
                        weight: 0,
                    },
                ],
            );
        });
        Self(world)
    }

    /// (stable, canary) weights.
    fn weights(&self) -> (i32, i32) {
        let w = self.0.weights(RULE);
        (w[0], w[1])
    }

    /// (task definition, desired) of a service.
    fn service(&self, name: &str) -> (String, i32) {
        let s = self.0.service(REGION, name);
        (s.task_definition, s.desired)
    }

    /// Every change the account saw, in order.
    fn events(&self) -> Vec<String> {
        self.0.mutations()
    }
}

/// Scripted canary error rates, one per tick (the last one repeats); errors for `None`.
struct Script {
    error_rates: Mutex<Vec<Option<f64>>>,
    ticks: Mutex<usize>,
}

impl Script {
    fn new(rates: &[Option<f64>]) -> Arc<Self> {
        Arc::new(Self {
            error_rates: Mutex::new(rates.to_vec()),
            ticks: Mutex::new(0),
        })
    }
}

#[async_trait]
impl MetricSource for Script {
    fn name(&self) -> &'static str {
        "script"
    }
    async fn scalar(&self, query: &str) -> Result<Option<f64>, MetricError> {
        if query.contains("increase(") {
            *self.ticks.lock().unwrap() += 1;
            return Ok(Some(500.0));
        }
        if query.contains("histogram_quantile") {
            return Ok(Some(80.0));
        }
        let rates = self.error_rates.lock().unwrap();
        let tick = (*self.ticks.lock().unwrap()).saturating_sub(1).min(rates.len() - 1);
        rates[tick].map(Some).ok_or(MetricError::Failed {
            provider: "script",
            message: "503 from the provider".into(),
        })
    }
}

/// Cancels the run when a given step starts: a crash (or Ctrl-C) at that step.
struct CrashAt {
    step: usize,
    cancel: CancellationToken,
}

impl crate::report::Reporter for CrashAt {
    fn phase(&self, _: &str) {}
    fn step_started(&self, index: usize, _: usize, _: &str) {
        if index == self.step {
            self.cancel.cancel();
        }
    }
    fn step_finished(&self, _: usize, _: usize, _: &str, _: StepStatus, _: &str) {}
    fn info(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn finish(&self) {}
}

fn environment() -> Environment {
    suma_testkit::environment(
        "canary: { steps: [{ weight: 10, duration: 5m }, { weight: 50, duration: 10m }], interval: 60s, failure_limit: 1, consecutive_error_limit: 2, min_samples: 50, no_data: fail }\n",
    )
}

struct Harness {
    world: Staging,
    table: Arc<MemoryTable>,
    journal: Journal,
    locks: Locks,
    /// The strategy of the deploys [`Harness::op`] starts.
    strategy: Strategy,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(rollout: RolloutEnd) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(MemoryTable::default());
        Self {
            world: Staging::new(rollout),
            journal: Journal::new(table.clone(), LocalLog::new(dir.path())),
            locks: Locks::new(table.clone(), Duration::from_secs(60)),
            table,
            strategy: Strategy::Canary,
            _dir: dir,
        }
    }

    fn engine(
        &self,
        metrics: Arc<Script>,
        reporter: Arc<dyn crate::report::Reporter>,
        cancel: CancellationToken,
    ) -> Engine {
        Engine {
            environment: "staging".into(),
            env: environment(),
            aws: self.world.0.apis(),
            metrics,
            journal: self.journal.clone(),
            reporter,
            cancel,
            rollout_timeout: Duration::from_secs(120),
            rollout_poll: Duration::from_secs(5),
            gates: None,
            notifier: Default::default(),
            runbook_hooks: None,
        }
    }

    fn op(&self) -> Operation {
        let mut op = Operation::new(
            self.strategy.kind(),
            "staging",
            "tester@host",
            self.strategy
                .plan("staging", &environment(), "repo/auth-service:1.5.0", None),
        );
        op.parameters.insert("image".into(), json!("repo/auth-service:1.5.0"));
        op
    }

    /// A run from the start, or a resume of `op`, to its end; the lock is released unless interrupted.
    async fn run(&self, engine: &Engine, op: &mut Operation, takeover: bool) -> Outcome {
        let guard = self.locks.acquire(op, takeover).await.unwrap();
        let outcome = engine.run(op, &guard).await.unwrap();
        if matches!(outcome, Outcome::Interrupted { .. }) {
            guard.abandon();
        } else {
            guard.release().await.unwrap();
        }
        outcome
    }

    /// Runs a deploy that crashes when step `step` starts, checks the journal says so, and lets its
    /// lease run out: returns the operation as started and as the journal recorded it.
    async fn crash_at(&self, step: usize) -> (Operation, Operation) {
        let cancel = CancellationToken::new();
        let crashing = self.engine(
            Script::new(&[Some(0.0)]),
            Arc::new(CrashAt {
                step,
                cancel: cancel.clone(),
            }),
            cancel,
        );
        let mut op = self.op();
        let outcome = self.run(&crashing, &mut op, false).await;
        assert!(
            matches!(outcome, Outcome::Interrupted { .. }),
            "step {step}: {outcome:?}"
        );
        let recorded = self.journal.load(&op.id).await.unwrap().unwrap();
        assert_eq!(recorded.status, OperationStatus::Interrupted, "step {step}");
        // Another process picks it up after the lease ran out.
        self.expire_lease();
        (op, recorded)
    }

    /// The holder died long ago: its lease (wall-clock, as in DynamoDB) has run out.
    fn expire_lease(&self) {
        self.table.expire("staging", 0);
    }

    /// The invariant every finished run must leave.
    fn assert_consistent(&self, live: &str) {
        assert_eq!(self.world.weights(), (100, 0), "all traffic on stable");
        assert_eq!(self.world.service("auth-service-canary").1, 0, "canary scaled to zero");
        assert_eq!(self.world.service("auth-service").0, live, "one live revision");
    }
}

fn silent() -> Arc<dyn crate::report::Reporter> {
    Arc::new(SilentReporter)
}

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_is_promoted() {
    let h = Harness::new(RolloutEnd::Completes);
    let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    let mut op = h.op();
    assert_eq!(h.run(&engine, &mut op, false).await, Outcome::Promoted);
    h.assert_consistent("td:2");
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(
        op.fact("stable_task_definition"),
        Some(&json!("td:1")),
        "the rollback target is recorded"
    );
    // 5 minutes at 10% and 10 at 50%, one analysis a minute.
    let ticks = |i: usize| op.steps[i].facts["ticks"].as_array().unwrap().len();
    assert_eq!((ticks(2), ticks(3)), (5, 10));
    let events = h.world.events();
    assert_eq!(events.first().unwrap(), "register td:2 repo/auth-service:1.5.0");
    assert!(events.contains(&"weights 90/10".to_owned()) && events.contains(&"weights 50/50".to_owned()));
    assert!(h.table.get_lock("staging").await.unwrap().is_none(), "lock released");
}

#[tokio::test(start_paused = true)]
async fn a_canary_with_errors_is_rolled_back_within_two_intervals_weights_first() {
    let h = Harness::new(RolloutEnd::Completes);
    // Healthy for two ticks, then 3% errors from the third (six times the limit: within the budget's
    // reach, short of failing fast).
    let engine = h.engine(
        Script::new(&[Some(0.0), Some(0.0), Some(0.03)]),
        silent(),
        CancellationToken::new(),
    );
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason.contains("error_rate = 0.0300 above 0.0050")),
        "{outcome:?}"
    );
    h.assert_consistent("td:1");
    assert_eq!(op.status, OperationStatus::Failed);
    let ticks = op.steps[2].facts["ticks"].as_array().unwrap();
    assert_eq!(ticks.len(), 4, "first bad tick tolerated (budget 1), second rolls back");
    assert_eq!(ticks[3]["decision"]["decision"], "rollback");
    let events = h.world.events();
    let weights_back = events.iter().rposition(|e| e == "weights 100/0").unwrap();
    let canary_down = events
        .iter()
        .rposition(|e| e.starts_with("update eu-west-1 auth-service-canary") && e.ends_with(" 0"))
        .unwrap();
    assert!(weights_back < canary_down, "blast radius first: {events:?}");
    assert!(op.events.iter().any(|e| e.message.starts_with("rolled back")));
    let summary = super::summary(&op);
    assert_eq!((summary.analyses, summary.failed_analyses), (4, 2));
    let first_failed = ticks[2]["at"].as_str().unwrap();
    assert_eq!(
        summary.first_failed_at.unwrap(),
        first_failed.parse::<chrono::DateTime<chrono::Utc>>().unwrap()
    );
    assert!(summary.weights_restored_at.unwrap() >= summary.first_failed_at.unwrap());
    assert!(summary.failure_to_restore_ms.is_some());
}

#[tokio::test(start_paused = true)]
async fn consecutive_provider_errors_roll_back_but_isolated_ones_do_not() {
    let h = Harness::new(RolloutEnd::Completes);
    let engine = h.engine(
        Script::new(&[Some(0.0), None, Some(0.0), None, None, None]),
        silent(),
        CancellationToken::new(),
    );
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason.contains("3 times in a row")),
        "{outcome:?}"
    );
    h.assert_consistent("td:1");
}

#[tokio::test(start_paused = true)]
async fn a_circuit_breaker_failure_rolls_back() {
    let h = Harness::new(RolloutEnd::CircuitBreaker);
    let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason.contains("circuit breaker")),
        "{outcome:?}"
    );
    h.assert_consistent("td:1");
}

#[tokio::test(start_paused = true)]
async fn a_rollout_that_never_finishes_times_out_and_rolls_back() {
    let h = Harness::new(RolloutEnd::Never);
    let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason.contains("did not finish its rollout within 2m")),
        "{outcome:?}"
    );
    h.assert_consistent("td:1");
}

#[tokio::test(start_paused = true)]
async fn a_crash_at_any_step_is_finished_by_resume() {
    for crash_at in 0..5 {
        let h = Harness::new(RolloutEnd::Completes);
        let (_, mut resumed) = h.crash_at(crash_at).await;
        let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
        assert_eq!(
            h.run(&engine, &mut resumed, true).await,
            Outcome::Promoted,
            "step {crash_at}"
        );
        h.assert_consistent("td:2");
        assert_eq!(
            h.world.0.with(|s| s.task_definitions.len()),
            3,
            "step {crash_at}: registered once (the base, the release and its canary copy)"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_at_any_step_is_undone_by_abort() {
    for crash_at in 0..5 {
        let h = Harness::new(RolloutEnd::Completes);
        let (op, mut recorded) = h.crash_at(crash_at).await;
        let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
        let guard = h.locks.acquire(&recorded, true).await.unwrap();
        let outcome = engine.abort(&mut recorded, &guard, "oncall@host").await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Aborted {
                by: "oncall@host".into()
            },
            "step {crash_at}"
        );
        guard.release().await.unwrap();
        assert_eq!(h.world.weights(), (100, 0), "step {crash_at}");
        assert_eq!(h.world.service("auth-service-canary").1, 0, "step {crash_at}");
        assert_eq!(
            h.world.service("auth-service").0,
            "td:1",
            "step {crash_at}: stable untouched"
        );
        assert_eq!(
            h.journal.load(&op.id).await.unwrap().unwrap().status,
            OperationStatus::Aborted
        );
    }
}

/// Starts a deploy in the background; returns its id and the handle that yields its outcome.
fn spawn_deploy(h: &Harness, engine: Engine) -> (String, tokio::task::JoinHandle<(Outcome, Operation)>) {
    let mut op = h.op();
    let id = op.id.clone();
    let locks = h.locks.clone();
    let handle = tokio::spawn(async move {
        let guard = locks.acquire(&op, false).await.unwrap();
        let outcome = engine.run(&mut op, &guard).await.unwrap();
        guard.release().await.unwrap();
        (outcome, op)
    });
    (id, handle)
}

#[tokio::test(start_paused = true)]
async fn another_terminal_can_abort_promote_or_pause() {
    // Abort during the 10% step (two minutes in).
    let h = Harness::new(RolloutEnd::Completes);
    let (id, run) = spawn_deploy(
        &h,
        h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new()),
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    h.table
        .put_control("staging", &id, "abort", "oncall@laptop")
        .await
        .unwrap();
    let (outcome, op) = run.await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Aborted {
            by: "oncall@laptop".into()
        }
    );
    h.assert_consistent("td:1");
    assert_eq!(op.status, OperationStatus::Aborted);

    // Promote skips the rest of the analysis.
    let h = Harness::new(RolloutEnd::Completes);
    let (id, run) = spawn_deploy(
        &h,
        h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new()),
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    h.table
        .put_control("staging", &id, "promote", "lead@laptop")
        .await
        .unwrap();
    let (outcome, op) = run.await.unwrap();
    assert_eq!(outcome, Outcome::Promoted);
    h.assert_consistent("td:2");
    assert_eq!(op.steps[3].status, StepStatus::Skipped, "the 50% step was skipped");

    // Pause holds the weights (even through bad data) until resumed.
    let h = Harness::new(RolloutEnd::Completes);
    let (id, run) = spawn_deploy(
        &h,
        h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new()),
    );
    tokio::time::sleep(Duration::from_secs(90)).await;
    h.table
        .put_control("staging", &id, "pause", "oncall@laptop")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(h.world.weights(), (90, 10), "still paused at 10% an hour later");
    h.table
        .put_control("staging", &id, "resume", "oncall@laptop")
        .await
        .unwrap();
    let (outcome, op) = run.await.unwrap();
    assert_eq!(outcome, Outcome::Promoted);
    assert!(op.events.iter().any(|e| e.message == "paused") && op.events.iter().any(|e| e.message == "resumed"));
}

#[tokio::test(start_paused = true)]
async fn a_command_for_another_operation_never_reaches_this_one() {
    // An abort sent to a deploy that has since finished cannot be left for the next one.
    let h = Harness::new(RolloutEnd::Completes);
    let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    let mut first = h.op();
    assert_eq!(h.run(&engine, &mut first, false).await, Outcome::Promoted);
    let refused = h.table.put_control("staging", &first.id, "abort", "late@laptop").await;
    assert!(refused.is_err(), "no lock is held for the finished deploy");

    // While a deploy runs, a command naming another operation is refused, and the deploy goes on.
    let (id, run) = spawn_deploy(
        &h,
        h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new()),
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    let refused = h
        .table
        .put_control("staging", &first.id, "promote", "late@laptop")
        .await;
    assert!(refused.is_err(), "the lock names {id}, not {}", first.id);
    let (outcome, op) = run.await.unwrap();
    assert_eq!(outcome, Outcome::Promoted);
    assert_eq!(
        op.steps[3].status,
        StepStatus::Succeeded,
        "analysed in full, not promoted early"
    );
}

#[test]
fn canary_tasks_follow_the_weight() {
    // (stable running, weight, configured canary count, tasks)
    let cases = [
        (4, 10, 1, 1),
        (4, 50, 1, 2),
        (10, 25, 1, 3),
        (2, 50, 1, 1),
        (0, 10, 0, 1),
        (4, 10, 2, 2),
    ];
    for (running, weight, configured, expected) in cases {
        assert_eq!(
            super::canary_tasks(running, weight, configured),
            expected,
            "{running} {weight}% {configured}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_canary_grows_with_its_weight_and_promotion_keeps_an_autoscaled_stable() {
    let h = Harness::new(RolloutEnd::Completes);
    // Autoscaling grew stable from the configured 4 to 6.
    h.world.0.with(|s| {
        s.services
            .get_mut(&(REGION.into(), "auth-service".into()))
            .unwrap()
            .desired = 6
    });
    let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    let mut op = h.op();
    assert_eq!(h.run(&engine, &mut op, false).await, Outcome::Promoted);
    let events = h.world.events();
    let at = |e: &str| {
        events
            .iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("{e}: {events:?}"))
    };
    // 10% of 6 is one task (the configured count); 50% is three, started before the traffic moves.
    assert!(
        at("update eu-west-1 auth-service-canary td:3 3") < at("weights 50/50"),
        "{events:?}"
    );
    assert_eq!(
        h.world.service("auth-service"),
        ("td:2".to_owned(), 6),
        "still 6 after the promotion"
    );
}

#[tokio::test(start_paused = true)]
async fn a_canary_far_beyond_a_limit_rolls_back_at_that_analysis_without_spending_the_budget() {
    let h = Harness::new(RolloutEnd::Completes);
    // 50% errors at the second analysis: a hundred times the limit.
    let engine = h.engine(Script::new(&[Some(0.0), Some(0.5)]), silent(), CancellationToken::new());
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason.contains("fail-fast")),
        "{outcome:?}"
    );
    h.assert_consistent("td:1");
    assert_eq!(op.steps[2].facts["ticks"].as_array().unwrap().len(), 2);
}

/// Gating monitors that alert from the `from`th read on.
struct AlertFrom {
    from: usize,
    reads: Mutex<usize>,
}

#[async_trait]
impl super::GateWatch for AlertFrom {
    async fn alerting(&self) -> Result<Vec<String>, String> {
        let mut reads = self.reads.lock().unwrap();
        *reads += 1;
        Ok(if *reads >= self.from {
            vec!["`canary gate` (#7)".to_owned()]
        } else {
            Vec::new()
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_gating_monitor_alerting_mid_canary_rolls_back_at_that_analysis() {
    let h = Harness::new(RolloutEnd::Completes);
    let mut engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    engine.gates = Some(Arc::new(AlertFrom {
        from: 3,
        reads: Mutex::new(0),
    }));
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason.contains("monitor `canary gate` (#7) is alerting")),
        "{outcome:?}"
    );
    h.assert_consistent("td:1");
    assert_eq!(
        op.steps[2].facts["ticks"].as_array().unwrap().len(),
        3,
        "the first alerting read decides"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_whose_last_analysis_failed_analyses_on_before_any_more_traffic() {
    let h = Harness::new(RolloutEnd::Completes);
    // The 10% step's fifth and last analysis fails (the budget tolerates one); the sixth passes.
    let engine = h.engine(
        Script::new(&[Some(0.0), Some(0.0), Some(0.0), Some(0.0), Some(0.03), Some(0.0)]),
        silent(),
        CancellationToken::new(),
    );
    let mut op = h.op();
    assert_eq!(h.run(&engine, &mut op, false).await, Outcome::Promoted);
    let ticks = |i: usize| op.steps[i].facts["ticks"].as_array().unwrap().len();
    assert_eq!((ticks(2), ticks(3)), (6, 10), "one more analysis at 10% before 50%");
    assert_eq!(op.steps[2].facts["ticks"][4]["verdict"]["verdict"], "fail");
}

#[tokio::test(start_paused = true)]
async fn the_failure_budget_is_the_deployments_not_each_steps() {
    let h = Harness::new(RolloutEnd::Completes);
    // One failure at 10% (tolerated, then healthy), one at 50%: two in all, one tolerated.
    let mut rates = vec![Some(0.0), Some(0.03), Some(0.0), Some(0.0), Some(0.0), Some(0.0)];
    rates.push(Some(0.03));
    let engine = h.engine(Script::new(&rates), silent(), CancellationToken::new());
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason.contains("2 failed analyses, 1 tolerated")),
        "{outcome:?}"
    );
    assert_eq!(
        op.steps[3].facts["ticks"].as_array().unwrap().len(),
        2,
        "rolled back at 50%'s second analysis"
    );
    h.assert_consistent("td:1");
}

#[tokio::test(start_paused = true)]
async fn a_rollback_cut_short_resumes_as_a_rollback_and_never_reexposes_traffic() {
    let h = Harness::new(RolloutEnd::Completes);
    // Healthy for two ticks at 10%, then failing: the analysis decides to roll back. The canary's
    // scale-down then fails, so the rollback stops half done (weights back, canary still up).
    h.world
        .0
        .with(|s| s.faults.throttle_next = Some("update eu-west-1 auth-service-canary td:3 0".into()));
    let engine = h.engine(
        Script::new(&[Some(0.0), Some(0.0), Some(0.05)]),
        silent(),
        CancellationToken::new(),
    );
    let mut op = h.op();
    let guard = h.locks.acquire(&op, false).await.unwrap();
    let failed = engine.run(&mut op, &guard).await;
    assert!(matches!(failed, Err(EngineError::UndoFailed { .. })), "{failed:?}");
    guard.abandon();
    h.expire_lease();
    let recorded = h.journal.load(&op.id).await.unwrap().unwrap();
    let decision = recorded
        .decision
        .clone()
        .expect("the decision is journaled before it is acted on");
    assert_eq!(decision.kind, crate::journal::DecisionKind::RollBack);
    assert_eq!(recorded.status, OperationStatus::Interrupted);
    assert_eq!(h.world.weights(), (100, 0), "weights went back first");
    let changes_before_resume = h.world.events().len();

    // `resume` carries the rollback on; it does not re-run the 10% step.
    let mut resumed = recorded;
    let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    let outcome = h.run(&engine, &mut resumed, true).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if *reason == decision.reason),
        "{outcome:?}"
    );
    h.assert_consistent("td:1");
    let after: Vec<String> = h.world.events()[changes_before_resume..].to_vec();
    assert!(
        !after.iter().any(|e| e.starts_with("weights") && e != "weights 100/0"),
        "no traffic to the canary after the decision: {after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_a_traffic_step_puts_all_traffic_on_stable_and_resume_finishes() {
    let h = Harness::new(RolloutEnd::Completes);
    let cancel = CancellationToken::new();
    let engine = h.engine(Script::new(&[Some(0.0)]), silent(), cancel.clone());
    let mut op = h.op();
    let guard = h.locks.acquire(&op, false).await.unwrap();
    let id = op.id.clone();
    let run = tokio::spawn(async move {
        let outcome = engine.run(&mut op, &guard).await.unwrap();
        guard.abandon();
        outcome
    });
    tokio::time::sleep(Duration::from_secs(400)).await;
    assert_eq!(h.world.weights(), (50, 50), "in the 50% step");
    cancel.cancel();
    assert_eq!(
        run.await.unwrap(),
        Outcome::Interrupted {
            at_step: "shift-50".into()
        }
    );
    assert_eq!(
        h.world.weights(),
        (100, 0),
        "nobody watches the analysis: traffic back on stable"
    );
    let mut recorded = h.journal.load(&id).await.unwrap().unwrap();
    assert!(recorded.events.iter().any(|e| e.message.contains(WEIGHTS_RESTORED)));
    assert_eq!(recorded.status, OperationStatus::Interrupted);
    h.expire_lease();
    let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    assert_eq!(h.run(&engine, &mut recorded, true).await, Outcome::Promoted);
    h.assert_consistent("td:2");
    assert_eq!(
        recorded.steps[3].attempts.len(),
        1,
        "the interrupted attempt is on the timeline"
    );
}

#[tokio::test(start_paused = true)]
async fn no_data_pauses_when_the_policy_says_inconclusive() {
    let h = Harness::new(RolloutEnd::Completes);
    let mut engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    engine.env.canary.no_data = crate::config::NoDataPolicy::Inconclusive;
    engine.env.canary.min_samples = 10_000;
    let mut op = h.op();
    let id = op.id.clone();
    let guard = h.locks.acquire(&op, false).await.unwrap();
    let engine = Arc::new(engine);
    let run = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run(&mut op, &guard).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_secs(1800)).await;
    assert_eq!(h.world.weights(), (90, 10), "paused, not rolled back, not promoted");
    h.table
        .put_control("staging", &id, "abort", "oncall@laptop")
        .await
        .unwrap();
    assert_eq!(
        run.await.unwrap(),
        Outcome::Aborted {
            by: "oncall@laptop".into()
        }
    );
    assert_eq!(h.world.weights(), (100, 0));
    let _ = BTreeMap::<String, String>::new();
}

mod blue_green;
mod runbook_hooks;
