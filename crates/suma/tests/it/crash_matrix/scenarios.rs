//! The operations of the crash matrix and the invariants each must leave after `resume` or `abort`:
//! secret rotation, rollback, canary deploy, DR failover and failback, a runbook with a child operation,
//! monitors apply and a forced lock release, each on a seeded environment of its own.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{run_async, run_matrix, Env, Finish, Scenario};
use crate::common::Run;
use suma::aws::ecs::ServiceUpdate;
use suma::aws::elb::WeightedTarget;
use suma::canary::Strategy;
use suma::journal::OperationStatus;

/// `(stable, canary)` weights of the environment's rule.
pub(super) async fn weights(env: &Env) -> (i32, i32) {
    let alb = &env.env.alb;
    let targets = env
        .aws()
        .elb(&env.env.primary_region)
        .rule_weights(alb.rule_arn.as_str())
        .await
        .unwrap();
    let weight = |arn: &str| {
        targets
            .iter()
            .find(|t| t.target_group_arn == arn)
            .map_or(0, |t| t.weight)
    };
    (
        weight(alb.stable_target_group_arn.as_str()),
        weight(alb.canary_target_group_arn.as_str()),
    )
}

/// Desired count and the first container's image of `service` in the primary region.
async fn service(env: &Env, region: &suma::config::AwsRegion, cluster: &str, service: &str) -> (i32, String) {
    let ecs = env.aws().ecs(region);
    let found = ecs.describe_services(cluster, &[service.to_owned()]).await.unwrap();
    let svc = found.first().unwrap_or_else(|| panic!("service {service} exists"));
    let image = ecs
        .describe_task_definition(&svc.task_definition)
        .await
        .unwrap()
        .containers
        .first()
        .map(|c| c.image.clone())
        .unwrap_or_default();
    (svc.desired, image)
}

async fn stable(env: &Env) -> (i32, String) {
    let ecs = &env.env.ecs;
    service(env, &env.env.primary_region, &ecs.cluster, &ecs.service).await
}

async fn canary(env: &Env) -> (i32, String) {
    let ecs = &env.env.ecs;
    service(env, &env.env.primary_region, &ecs.cluster, &ecs.canary_service).await
}

/// The journal's last operation of `kind` ended with `status`.
pub(super) async fn ended(env: &Env, kind: &str, status: OperationStatus) -> Result<(), String> {
    match env.last_operation(kind).await {
        Some(op) if op.status == status => Ok(()),
        Some(op) => Err(format!(
            "the journal says `{}`, expected `{}`",
            op.status.as_str(),
            status.as_str()
        )),
        None => Err("no operation in the journal".to_owned()),
    }
}

pub(super) fn expect(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// Weights 100/0 and the canary service at 0.
async fn no_canary_traffic(env: &Env) -> Result<(), String> {
    let (w, c) = (weights(env).await, canary(env).await.0);
    expect(w == (100, 0), || format!("weights {w:?}, expected (100, 0)"))?;
    expect(c == 0, || format!("canary desired {c}"))
}

pub(super) fn strings(args: Vec<&str>) -> Vec<String> {
    args.into_iter().map(str::to_owned).collect()
}

pub(super) fn exited(out: &Run, codes: &[i32]) -> Result<(), String> {
    expect(codes.contains(&out.code), || format!("exit {}", out.code))
}

/// A `random` secret rotated with its consumer redeployed.
struct Rotation;

const ROTATED: &str = "encryption-key";

impl Rotation {
    fn id(env: &Env) -> String {
        format!("/suma-finance/auth/{}/{ROTATED}", env.name)
    }

    /// Version id to labels of the rotated secret.
    async fn labels(env: &Env) -> std::collections::BTreeMap<String, Vec<String>> {
        env.session
            .secret_versions(&env.env.primary_region)
            .describe(&Self::id(env))
            .await
            .unwrap()
            .versions
            .into_iter()
            .collect()
    }

    /// No AWSPENDING, and AWSCURRENT either the original version or a new one whose AWSPREVIOUS is the
    /// original.
    async fn rotated_or_not(env: &Env, original: &Value) -> Result<(), String> {
        let labels = Self::labels(env).await;
        expect(Self::holder(&labels, "AWSPENDING").is_none(), || {
            format!("AWSPENDING left: {labels:?}")
        })?;
        let current = Self::holder(&labels, "AWSCURRENT");
        let previous = Self::holder(&labels, "AWSPREVIOUS");
        expect(
            current.as_deref() == original.as_str() || previous.as_deref() == original.as_str(),
            || format!("neither AWSCURRENT nor AWSPREVIOUS is the original version: {labels:?}"),
        )
    }

    fn holder(labels: &std::collections::BTreeMap<String, Vec<String>>, label: &str) -> Option<String> {
        labels
            .iter()
            .find(|(_, l)| l.iter().any(|x| x == label))
            .map(|(v, _)| v.clone())
    }
}

#[async_trait]
impl Scenario for Rotation {
    fn kind(&self) -> &'static str {
        suma::secrets::KIND
    }

    async fn prepare(&self, env: &Env) -> Value {
        json!(Self::holder(&Self::labels(env).await, "AWSCURRENT"))
    }

    fn command(&self) -> Vec<&'static str> {
        vec!["secrets", "rotate", ROTATED, "--yes"]
    }

    async fn finish(&self, _: &Env, finish: Finish) -> Vec<String> {
        strings(match finish {
            Finish::Resume => vec!["secrets", "resume", ROTATED, "--yes"],
            Finish::Abort => vec!["secrets", "abort", ROTATED, "--reason", "crash matrix", "--yes"],
        })
    }

    async fn safe(&self, env: &Env, original: &Value) -> Result<(), String> {
        Self::rotated_or_not(env, original).await
    }

    async fn check(&self, env: &Env, original: &Value, finish: Finish, out: &Run) -> Result<(), String> {
        exited(out, &[0])?;
        let labels = Self::labels(env).await;
        let current = Self::holder(&labels, "AWSCURRENT");
        expect(Self::holder(&labels, "AWSPENDING").is_none(), || {
            format!("AWSPENDING left: {labels:?}")
        })?;
        match finish {
            Finish::Resume => {
                expect(
                    current.as_ref() != original.as_str().map(str::to_owned).as_ref(),
                    || "AWSCURRENT did not move".to_owned(),
                )?;
                expect(
                    Self::holder(&labels, "AWSPREVIOUS").as_deref() == original.as_str(),
                    || format!("AWSPREVIOUS is not the original version: {labels:?}"),
                )?;
                ended(env, self.kind(), OperationStatus::Succeeded).await
            }
            Finish::Abort => {
                expect(current.as_deref() == original.as_str(), || {
                    format!("AWSCURRENT is not the original version: {labels:?}")
                })?;
                ended(env, self.kind(), OperationStatus::Aborted).await
            }
        }
    }
}

/// A rollback to an image while traffic is split onto a canary nobody runs any more.
struct Rollback;

const ROLLBACK_IMAGE: &str = "registry.local/auth-service:0.9.0-crash";

#[async_trait]
impl Scenario for Rollback {
    fn kind(&self) -> &'static str {
        suma::rollback::KIND
    }

    async fn prepare(&self, env: &Env) -> Value {
        let alb = &env.env.alb;
        let split = [
            WeightedTarget {
                target_group_arn: alb.stable_target_group_arn.to_string(),
                weight: 90,
            },
            WeightedTarget {
                target_group_arn: alb.canary_target_group_arn.to_string(),
                weight: 10,
            },
        ];
        let region = &env.env.primary_region;
        env.aws()
            .elb(region)
            .set_weights(alb.rule_arn.as_str(), &split)
            .await
            .unwrap();
        let one = ServiceUpdate {
            desired_count: Some(1),
            ..ServiceUpdate::default()
        };
        env.aws()
            .ecs(region)
            .update_service(&env.env.ecs.cluster, &env.env.ecs.canary_service, &one)
            .await
            .unwrap();
        json!(stable(env).await.1)
    }

    fn command(&self) -> Vec<&'static str> {
        vec!["rollback", "--to", ROLLBACK_IMAGE, "--reason", "crash matrix", "--yes"]
    }

    async fn finish(&self, _: &Env, finish: Finish) -> Vec<String> {
        strings(match finish {
            Finish::Resume => vec!["rollback", "--reason", "crash matrix", "--yes"],
            Finish::Abort => vec!["rollback", "abort", "--reason", "crash matrix", "--yes"],
        })
    }

    async fn safe(&self, env: &Env, _: &Value) -> Result<(), String> {
        no_canary_traffic(env).await
    }

    /// The split `prepare` left, and stable on its image.
    async fn untouched(&self, env: &Env, prepared: &Value) -> Result<(), String> {
        let (w, image) = (weights(env).await, stable(env).await.1);
        expect(w == (90, 10), || {
            format!("weights {w:?}, expected the untouched (90, 10)")
        })?;
        expect(prepared == &json!(image), || {
            format!("stable runs {image}, expected {prepared}")
        })
    }

    async fn check(&self, env: &Env, _: &Value, finish: Finish, out: &Run) -> Result<(), String> {
        let (w, c) = (weights(env).await, canary(env).await.0);
        expect(w == (100, 0), || format!("weights {w:?}, expected (100, 0)"))?;
        expect(c == 0, || format!("canary desired {c}"))?;
        match finish {
            Finish::Resume => {
                exited(out, &[0])?;
                let image = stable(env).await.1;
                expect(image == ROLLBACK_IMAGE, || format!("stable runs {image}"))?;
                ended(env, self.kind(), OperationStatus::Succeeded).await
            }
            Finish::Abort => {
                exited(out, &[1])?;
                ended(env, self.kind(), OperationStatus::Aborted).await
            }
        }
    }
}

/// A deploy of a new image, canary or blue/green, with a short analysis against constant Prometheus
/// queries (always healthy). Blue/green has no test listener on a seeded environment: its pre-traffic
/// step is skipped.
struct Canary(Strategy);

const CANARY_IMAGE: &str = "registry.local/auth-service:2.0.0-crash";

#[async_trait]
impl Scenario for Canary {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn tweak(&self, env: &mut serde_norway::Value) {
        env["canary"] = serde_norway::from_str(
            "{ steps: [{ weight: 50, duration: 2s }], interval: 1s, window: 15s, min_samples: 1, failure_limit: 0, \
               no_data: fail, queries: { error_rate: 'vector(0)', p95_latency_ms: 'vector(10)', samples: 'vector(100)' } }",
        )
        .unwrap();
        env["bluegreen"] = serde_norway::from_str("{ bake: 2s, keep_blue: 1s }").unwrap();
    }

    async fn prepare(&self, env: &Env) -> Value {
        json!(stable(env).await.1)
    }

    fn command(&self) -> Vec<&'static str> {
        let strategy = match self.0 {
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "bluegreen",
        };
        vec!["deploy", strategy, "--image", CANARY_IMAGE, "--yes"]
    }

    async fn finish(&self, _: &Env, finish: Finish) -> Vec<String> {
        strings(match finish {
            Finish::Resume => vec!["deploy", "resume", "--yes"],
            Finish::Abort => vec!["deploy", "abort", "--yes"],
        })
    }

    async fn safe(&self, env: &Env, original: &Value) -> Result<(), String> {
        no_canary_traffic(env).await?;
        let image = stable(env).await.1;
        expect(
            image == CANARY_IMAGE || Some(image.as_str()) == original.as_str(),
            || format!("stable runs {image}, neither the original nor the new image"),
        )
    }

    async fn check(&self, env: &Env, original: &Value, finish: Finish, out: &Run) -> Result<(), String> {
        let (w, c) = (weights(env).await, canary(env).await.0);
        expect(w == (100, 0), || format!("weights {w:?}, expected (100, 0)"))?;
        expect(c == 0, || format!("canary desired {c}"))?;
        let image = stable(env).await.1;
        match finish {
            Finish::Resume => {
                exited(out, &[0])?;
                expect(image == CANARY_IMAGE, || format!("stable runs {image}"))?;
                ended(env, self.kind(), OperationStatus::Succeeded).await
            }
            Finish::Abort => {
                exited(out, &[1])?;
                expect(Some(image.as_str()) == original.as_str(), || {
                    format!("stable runs {image}, not the original {original}")
                })?;
                ended(env, self.kind(), OperationStatus::Aborted).await
            }
        }
    }
}

/// How a finished DR switch (failover or failback, by its `kind`) must have ended: resumed, `arrived` holds and
/// the operation succeeded; aborted before the promotion, `stayed` holds and it was aborted; aborted past
/// the promotion, the abort is refused ("no way back") and a resume it asks for ends `arrived`. The two
/// states are futures, so only the one the branch needs is read.
async fn dr_switch_ended(
    env: &Env,
    kind: &str,
    finish: Finish,
    out: &Run,
    arrived: impl std::future::Future<Output = Result<(), String>>,
    stayed: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    match finish {
        Finish::Resume => {
            exited(out, &[0])?;
            arrived.await?;
            ended(env, kind, OperationStatus::Succeeded).await
        }
        Finish::Abort if out.stderr.contains("no way back") => {
            exited(out, &[3])?;
            let resumed = run_async(env.suma(&["dr", "resume", "--yes"])).await;
            exited(&resumed, &[0]).map_err(|e| format!("resume after the refused abort: {e}: {}", resumed.stderr))?;
            arrived.await?;
            ended(env, kind, OperationStatus::Succeeded).await
        }
        Finish::Abort => {
            exited(out, &[0, 1])?;
            stayed.await?;
            ended(env, kind, OperationStatus::Aborted).await
        }
    }
}

/// A failover with its data loss accepted (the matrix has no replica to measure the lag on).
const UNPLANNED_FAILOVER: [&str; 6] = [
    "dr",
    "failover",
    "--accept-data-loss",
    "--reason",
    "crash matrix",
    "--yes",
];

/// `suma dr resume` or `suma dr abort`: how any crashed DR switch is finished.
fn dr_finish(finish: Finish) -> Vec<String> {
    strings(match finish {
        Finish::Resume => vec!["dr", "resume", "--yes"],
        Finish::Abort => vec!["dr", "abort", "--reason", "crash matrix", "--yes"],
    })
}

/// A DR failover (data loss accepted: the matrix has no streaming replica to measure), or, with a
/// replica, a switchover (zero data loss: its catch-up reads the marker on the replica).
struct Failover {
    /// For a switchover: the streaming replica every kill point's switchover reads (a seeded
    /// environment's instances are moto's; the WAL positions are the sandbox PostgreSQL's).
    switchover: Option<crate::dr::StreamingReplica>,
}

impl Failover {
    /// Whether every PRIMARY record (an A record and its AAAA twin) points at the DR load balancer.
    async fn dns_on_dr(env: &Env) -> bool {
        let dns = &env.env.dns;
        let aliases = env
            .aws()
            .route53()
            .failover_aliases(&dns.hosted_zone_id, &dns.record_name)
            .await
            .unwrap();
        let secondary = aliases
            .iter()
            .find(|a| a.failover == "SECONDARY")
            .map(|a| &a.target_dns);
        let mut primaries = aliases.iter().filter(|a| a.failover == "PRIMARY").peekable();
        primaries.peek().is_some() && primaries.all(|a| Some(&a.target_dns) == secondary)
    }

    async fn counts(env: &Env) -> (i32, i32) {
        let ecs = &env.env.ecs;
        let primary = service(env, &env.env.primary_region, &ecs.cluster, &ecs.service)
            .await
            .0;
        let dr = service(env, &env.env.dr_region, &ecs.dr.cluster, &ecs.dr.service)
            .await
            .0;
        (primary, dr)
    }

    /// Still on the primary region: DNS names it, and it runs its `original` capacity.
    async fn still_home(env: &Env, original: &Value) -> Result<(), String> {
        let (primary, _) = Self::counts(env).await;
        let on_dr = Self::dns_on_dr(env).await;
        expect(!on_dr && Some(i64::from(primary)) == original.as_i64(), || {
            format!("DNS on DR: {on_dr}, primary desired {primary} (was {original})")
        })
    }

    /// Exactly one region serves: DNS and capacity agree.
    async fn failed_over(env: &Env) -> Result<(), String> {
        Self::serving(env, |on_dr, primary, dr| on_dr && primary == 0 && dr > 0).await
    }

    /// Whether the DNS and capacity of both regions (DNS on DR, primary desired, DR desired) are as `wanted`.
    async fn serving(env: &Env, wanted: impl Fn(bool, i32, i32) -> bool) -> Result<(), String> {
        let (primary, dr) = Self::counts(env).await;
        let on_dr = Self::dns_on_dr(env).await;
        expect(wanted(on_dr, primary, dr), || {
            format!("DNS on DR: {on_dr}, primary desired {primary}, DR desired {dr}")
        })
    }
}

#[async_trait]
impl Scenario for Failover {
    fn kind(&self) -> &'static str {
        match self.switchover {
            Some(_) => suma::dr::Direction::Switchover.kind(),
            None => suma::dr::Direction::Failover.kind(),
        }
    }

    async fn prepare(&self, env: &Env) -> Value {
        json!(Self::counts(env).await.0)
    }

    fn command(&self) -> Vec<&'static str> {
        match self.switchover {
            Some(_) => vec!["dr", "switchover", "--yes"],
            None => UNPLANNED_FAILOVER.to_vec(),
        }
    }

    fn vars(&self, env: &Env) -> Vec<(String, String)> {
        self.switchover.as_ref().map_or_else(Vec::new, |replica| {
            crate::dr::dr_vars(replica, env.env.primary_region.as_str())
        })
    }

    async fn finish(&self, _: &Env, finish: Finish) -> Vec<String> {
        dr_finish(finish)
    }

    /// Exactly one region serves: failed over, or still on the primary at its capacity.
    async fn safe(&self, env: &Env, original: &Value) -> Result<(), String> {
        if Self::failed_over(env).await.is_ok() {
            return Ok(());
        }
        Self::still_home(env, original).await
    }

    async fn check(&self, env: &Env, original: &Value, finish: Finish, out: &Run) -> Result<(), String> {
        let stayed = Self::still_home(env, original);
        dr_switch_ended(env, self.kind(), finish, out, Self::failed_over(env), stayed).await
    }
}

/// A DR failback after a completed failover (run by `prepare`): the normal topology back, or, when
/// aborted before the primary's promotion, still failed over with the DR region serving.
struct Failback {
    /// What the rebuilt primary-region instance's endpoint reaches: a streaming replica of the sandbox's
    /// PostgreSQL, which every kill point's catch-up reads (the DR database of a moto failover is the
    /// sandbox's PostgreSQL itself).
    home: crate::dr::StreamingReplica,
}

impl Failback {
    fn new() -> Self {
        Self {
            home: crate::dr::StreamingReplica::start(),
        }
    }

    /// The normal topology: DNS names the primary region, which runs tasks.
    async fn home(env: &Env) -> Result<(), String> {
        Failover::serving(env, |on_dr, primary, _| !on_dr && primary > 0).await
    }
}

#[async_trait]
impl Scenario for Failback {
    fn kind(&self) -> &'static str {
        suma::dr::Direction::Failback.kind()
    }

    async fn prepare(&self, env: &Env) -> Value {
        let out = run_async(env.suma(&UNPLANNED_FAILOVER)).await;
        assert_eq!(out.code, 0, "the failover before the failback: {}", out.stderr);
        Value::Null
    }

    fn command(&self) -> Vec<&'static str> {
        vec!["dr", "failback", "--yes"]
    }

    fn vars(&self, env: &Env) -> Vec<(String, String)> {
        crate::dr::dr_vars(&self.home, env.env.primary_region.as_str())
    }

    async fn finish(&self, _: &Env, finish: Finish) -> Vec<String> {
        dr_finish(finish)
    }

    /// Exactly one region serves: home again, or still failed over.
    async fn safe(&self, env: &Env, _: &Value) -> Result<(), String> {
        match Self::home(env).await {
            Ok(()) => Ok(()),
            Err(home) => Failover::failed_over(env)
                .await
                .map_err(|away| format!("neither home ({home}) nor failed over ({away})")),
        }
    }

    async fn check(&self, env: &Env, _: &Value, finish: Finish, out: &Run) -> Result<(), String> {
        dr_switch_ended(
            env,
            self.kind(),
            finish,
            out,
            Self::home(env),
            Failover::failed_over(env),
        )
        .await
    }
}

/// `suma lock release --force` of the lock of a canary whose runner is gone (its lease still live: a
/// release takes a live lease too). Either way of finishing is running the release again, which finishes
/// the release that was cut short rather than starting another.
struct ForceRelease;

impl ForceRelease {
    async fn abandoned(env: &Env, held: &Value) -> Result<(), String> {
        let id = held.as_str().expect("prepare returns the held operation's id");
        let status = env.journal().load(id).await.unwrap().map(|op| op.status);
        expect(status == Some(OperationStatus::Abandoned), || {
            format!("the held operation is {status:?}, not abandoned")
        })
    }
}

#[async_trait]
impl Scenario for ForceRelease {
    fn kind(&self) -> &'static str {
        suma::lock_release::KIND
    }

    async fn prepare(&self, env: &Env) -> Value {
        let step = suma::journal::PlannedStep {
            name: "shift-10".to_owned(),
            detail: String::new(),
        };
        let held = suma::journal::Operation::new(suma::canary::KIND, &env.name, "ci@runner-7", vec![step]);
        let locks = suma::journal::lock::Locks::new(
            env.session.lock_store(&crate::common::lock_region(), "suma-locks"),
            std::time::Duration::from_secs(super::LEASE_SECS),
        );
        let guard = locks.acquire(&held, false).await.unwrap();
        env.journal().save(&held, Some(guard.fence())).await.unwrap();
        guard.abandon();
        json!(held.id)
    }

    fn command(&self) -> Vec<&'static str> {
        vec!["lock", "release", "--force", "--reason", "crash matrix", "--yes"]
    }

    async fn finish(&self, _: &Env, _: Finish) -> Vec<String> {
        strings(self.command())
    }

    async fn safe(&self, env: &Env, held: &Value) -> Result<(), String> {
        Self::abandoned(env, held).await
    }

    async fn check(&self, env: &Env, held: &Value, _: Finish, out: &Run) -> Result<(), String> {
        exited(out, &[0])?;
        Self::abandoned(env, held).await?;
        ended(env, self.kind(), OperationStatus::Succeeded).await
    }
}

/// The shipped `secret-compromise` runbook: a Datadog event, a rotation as a child operation, a health
/// check. A resume must continue the child rotation, never start a second one.
struct RunbookRotation;

#[async_trait]
impl Scenario for RunbookRotation {
    fn kind(&self) -> &'static str {
        suma::runbook::engine::KIND
    }

    async fn prepare(&self, env: &Env) -> Value {
        json!(Rotation::holder(&Rotation::labels(env).await, "AWSCURRENT"))
    }

    fn command(&self) -> Vec<&'static str> {
        vec![
            "runbook",
            "run",
            "secret-compromise",
            "--param",
            "secret=encryption-key",
            "--param",
            "where=the crash matrix",
            "--yes",
            "--skip-manual",
        ]
    }

    async fn finish(&self, env: &Env, finish: Finish) -> Vec<String> {
        let id = env.last_operation(self.kind()).await.expect("the run is journaled").id;
        strings(match finish {
            Finish::Resume => vec!["runbook", "resume", &id, "--yes", "--skip-manual"],
            Finish::Abort => vec!["runbook", "abort", &id, "--reason", "crash matrix", "--yes"],
        })
    }

    async fn safe(&self, env: &Env, original: &Value) -> Result<(), String> {
        Rotation::rotated_or_not(env, original).await?;
        let rotation = env.last_operation(suma::secrets::KIND).await;
        expect(rotation.as_ref().is_none_or(|op| op.status.is_finished()), || {
            "a child rotation is left unfinished".to_owned()
        })
    }

    async fn check(&self, env: &Env, original: &Value, finish: Finish, out: &Run) -> Result<(), String> {
        let labels = Rotation::labels(env).await;
        let current = Rotation::holder(&labels, "AWSCURRENT");
        expect(Rotation::holder(&labels, "AWSPENDING").is_none(), || {
            format!("AWSPENDING left: {labels:?}")
        })?;
        let rotated = current.as_deref() != original.as_str();
        if rotated {
            expect(labels.len() == 2, || format!("rotated more than once: {labels:?}"))?;
            expect(
                Rotation::holder(&labels, "AWSPREVIOUS").as_deref() == original.as_str(),
                || format!("AWSPREVIOUS is not the original version: {labels:?}"),
            )?;
        }
        let rotation = env.last_operation(suma::secrets::KIND).await;
        expect(rotation.as_ref().is_none_or(|op| op.status.is_finished()), || {
            "a child rotation is left unfinished".to_owned()
        })?;
        match finish {
            Finish::Resume => {
                exited(out, &[0])?;
                expect(rotated, || "the secret was not rotated".to_owned())?;
                ended(env, self.kind(), OperationStatus::Succeeded).await
            }
            Finish::Abort => {
                exited(out, &[1])?;
                ended(env, self.kind(), OperationStatus::Aborted).await
            }
        }
    }
}

/// Every operation kind of the matrix, for the fault runs.
pub fn all() -> Vec<Arc<dyn Scenario>> {
    vec![
        Arc::new(Rotation),
        Arc::new(Rollback),
        Arc::new(Canary(Strategy::Canary)),
        Arc::new(Canary(Strategy::BlueGreen)),
        Arc::new(Failover { switchover: None }),
        Arc::new(Failback::new()),
        Arc::new(RunbookRotation),
        Arc::new(TemplatesApply("monitors")),
        Arc::new(TemplatesApply("dashboards")),
        Arc::new(ForceRelease),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbook_with_a_child_rotation() {
    crate::require_sandbox!();
    run_matrix(Arc::new(RunbookRotation)).await;
}

/// `monitors apply` or `dashboards apply` (the field: `monitors` or `dashboards`) of the shipped templates.
/// An apply is not resumed: the next apply supersedes a dead one and plans from Datadog's state; `lock
/// release --force` is its abort.
struct TemplatesApply(&'static str);

impl TemplatesApply {
    fn templates() -> String {
        crate::common::workspace_root()
            .join("templates/datadog")
            .display()
            .to_string()
    }
}

#[async_trait]
impl Scenario for TemplatesApply {
    fn kind(&self) -> &'static str {
        match self.0 {
            "monitors" => "monitors-apply",
            _ => "dashboards-apply",
        }
    }

    fn command(&self) -> Vec<&'static str> {
        // Leaked once per process: the templates' path is the same for every kill point.
        let templates: &'static str = Box::leak(Self::templates().into_boxed_str());
        vec![self.0, "apply", "--templates", templates, "--yes"]
    }

    async fn finish(&self, _: &Env, finish: Finish) -> Vec<String> {
        match finish {
            Finish::Resume => strings(self.command()),
            Finish::Abort => strings(vec!["lock", "release", "--force", "--reason", "crash matrix", "--yes"]),
        }
    }

    async fn safe(&self, env: &Env, _: &Value) -> Result<(), String> {
        let diff = run_async(env.suma(&[self.0, "diff", "--templates", &Self::templates(), "-o", "json"])).await;
        exited(&diff, &[0])?;
        let plan: Value = serde_json::from_str(&diff.stdout).map_err(|e| format!("diff output: {e}"))?;
        let twice = plan["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["note"].as_str().is_some_and(|n| n.contains("share this name")))
            .count();
        expect(twice == 0, || format!("{twice} {} exist twice", self.0))
    }

    async fn check(&self, env: &Env, _: &Value, finish: Finish, out: &Run) -> Result<(), String> {
        exited(out, &[0])?;
        let diff = run_async(env.suma(&[self.0, "diff", "--templates", &Self::templates(), "-o", "json"])).await;
        exited(&diff, &[0])?;
        let plan: Value = serde_json::from_str(&diff.stdout).map_err(|e| format!("diff output: {e}"))?;
        let items = plan["items"].as_array().cloned().unwrap_or_default();
        // Never a monitor twice: a create cut short and applied again is found by name, not created again.
        let twice = items
            .iter()
            .filter(|i| i["note"].as_str().is_some_and(|n| n.contains("share this name")) || i["action"] == "conflict")
            .count();
        expect(twice == 0, || {
            format!("{twice} {} exist twice: {}", self.0, diff.stdout)
        })?;
        match finish {
            Finish::Resume => {
                let pending = items.iter().filter(|i| i["action"] != "unchanged").count();
                expect(pending == 0, || {
                    format!("{pending} {} still differ after the apply", self.0)
                })?;
                // The killed apply is superseded (or had finished), never left running.
                let killed = env.last_operation(self.kind()).await;
                expect(killed.is_some_and(|op| op.status.is_finished()), || {
                    "the killed apply is still unfinished".to_owned()
                })
            }
            Finish::Abort => Ok(()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_apply() {
    crate::require_sandbox!();
    run_matrix(Arc::new(TemplatesApply("monitors"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_apply() {
    crate::require_sandbox!();
    run_matrix(Arc::new(TemplatesApply("dashboards"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_rotation() {
    crate::require_sandbox!();
    run_matrix(Arc::new(Rotation)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback() {
    crate::require_sandbox!();
    run_matrix(Arc::new(Rollback)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_deploy() {
    crate::require_sandbox!();
    run_matrix(Arc::new(Canary(Strategy::Canary))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bluegreen_deploy() {
    crate::require_sandbox!();
    run_matrix(Arc::new(Canary(Strategy::BlueGreen))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dr_failover() {
    crate::require_sandbox!();
    run_matrix(Arc::new(Failover { switchover: None })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dr_switchover() {
    crate::require_sandbox!();
    let replica = crate::dr::StreamingReplica::start();
    run_matrix(Arc::new(Failover {
        switchover: Some(replica),
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dr_failback() {
    crate::require_sandbox!();
    run_matrix(Arc::new(Failback::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_force_release() {
    crate::require_sandbox!();
    run_matrix(Arc::new(ForceRelease)).await;
}
