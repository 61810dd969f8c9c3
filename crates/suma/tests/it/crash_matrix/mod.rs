//! The crash matrix: the real `suma` binary, killed with SIGKILL at every kill point of a mutating
//! command (before each AWS change, and before and after each step's end is journaled), then finished by
//! `resume` and, on a second copy of the same crash, by `abort`. After each, the invariants are checked
//! on the real state in the sandbox (moto) and in the journal. One line per kill point, then
//! `N kill points, M consistent`; the test fails on any inconsistency.
//!
//! Each kill point runs on an environment of its own (`seed.py --environment`), so kill points run in
//! parallel with each other and with the other tests. `cargo xtask crash-matrix` runs only these.

mod database;
pub mod faults;
mod scenarios;
mod signals;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::common::{self, run, suma, unique, Run};
use suma::aws::{AwsApis, AwsSession};
use suma::journal::{Journal, LocalLog, Operation};

/// The lease of the matrix's environments. A killed holder's lease is ended by the matrix itself (as
/// if it had run out) rather than waited for: waiting proves nothing the lock tests do not, and a lease
/// this long keeps renewals safe while the machine is loaded by the parallel runs.
const LEASE_SECS: u64 = 30;
/// Kill points of one operation kind run at once (each on its own environment).
const PARALLEL: usize = 3;
/// Crashed runs in flight across all kinds (the kinds are separate tests, run in parallel).
const MAX_RUNNING: usize = 4;

static RUNNING: (std::sync::Mutex<usize>, std::sync::Condvar) = (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// A place among the [`MAX_RUNNING`] runs in flight, held until dropped.
struct Slot;

impl Slot {
    async fn take() -> Self {
        tokio::task::spawn_blocking(|| {
            let (count, freed) = &RUNNING;
            let mut running = count.lock().unwrap();
            while *running >= MAX_RUNNING {
                running = freed.wait(running).unwrap();
            }
            *running += 1;
            Slot
        })
        .await
        .unwrap()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (count, freed) = &RUNNING;
        *count.lock().unwrap() -= 1;
        freed.notify_one();
    }
}

/// Runs `cmd` to its end off the async workers.
pub async fn run_async(cmd: std::process::Command) -> Run {
    tokio::task::spawn_blocking(move || run(cmd)).await.unwrap()
}

/// One seeded environment and the configuration file that names only it.
pub struct Env {
    pub name: String,
    pub config: PathBuf,
    pub env: suma::config::Environment,
    pub session: AwsSession,
    dir: tempfile::TempDir,
    /// The operation the crashed command ran, read from the lock it left (a consistent point read; the
    /// journal's listing is an index query that may lag the last write).
    crashed: std::sync::Mutex<Option<String>>,
    /// The scenario's [`Scenario::vars`].
    vars: Vec<(String, String)>,
}

impl Env {
    async fn seed(prefix: &str, tweak: &(dyn Fn(&mut serde_norway::Value) + Sync)) -> Self {
        // moto answers a few of many parallel seeding calls with a 500; a fresh name is seeded again.
        let mut attempt = 0;
        let (name, mut seeded) = loop {
            attempt += 1;
            let name = unique(prefix)[..10].to_owned();
            let seeding = tokio::task::spawn_blocking({
                let name = name.clone();
                move || common::seed_environment(&name).config
            })
            .await;
            match seeding {
                Ok(config) => break (name, config),
                Err(e) if attempt < 5 => eprintln!("crash-matrix: seeding `{name}` failed, seeding another: {e}"),
                Err(e) => panic!("seeding failed five times: {e}"),
            }
        };
        tweak(&mut seeded);
        let mut config: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(common::sandbox_config()).unwrap()).unwrap();
        let mut environments = serde_norway::Mapping::new();
        environments.insert(name.clone().into(), seeded);
        config["environments"] = environments.into();
        config["defaults"]["environment"] = name.clone().into();
        config["lock"]["lease"] = format!("{LEASE_SECS}s").into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suma.yaml");
        std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
        let parsed = suma::config::parse_str(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        let env = parsed.environment(&name).unwrap().clone();
        let seeded = Self {
            name,
            config: path,
            session: suma::aws::AwsSession::connect(
                &suma::aws::AwsOptions {
                    profile: None,
                    operation_timeout: Duration::from_secs(20),
                },
                [&env.primary_region, &env.dr_region],
            )
            .await,
            env,
            dir,
            crashed: std::sync::Mutex::new(None),
            vars: Vec::new(),
        };
        seeded.settle().await;
        seeded
    }

    /// Every service runs what it desires, as ECS reports once its tasks are up: moto leaves a created
    /// service at 0 running until its desired count is set (#17 replaces this with a local ECS agent).
    async fn settle(&self) {
        let ecs = &self.env.ecs;
        let services = [
            (&self.env.primary_region, &ecs.cluster, &ecs.service),
            (&self.env.primary_region, &ecs.cluster, &ecs.canary_service),
            (&self.env.dr_region, &ecs.dr.cluster, &ecs.dr.service),
        ];
        for (region, cluster, service) in services {
            let api = self.session.ecs(region);
            let found = api
                .describe_services(cluster, std::slice::from_ref(service))
                .await
                .unwrap();
            let desired = found.first().map_or(0, |s| s.desired);
            let update = suma::aws::ecs::ServiceUpdate {
                desired_count: Some(desired),
                ..Default::default()
            };
            api.update_service(cluster, service, &update).await.unwrap();
        }
    }

    /// `suma ARGS --env NAME --config CONFIG` with this environment's state directory.
    pub fn suma(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = suma(args);
        cmd.args(["--env", &self.name, "--config"])
            .arg(&self.config)
            .env("SUMA_STATE_DIR", self.dir.path())
            .env("SUMA_RUNBOOKS_DIR", common::workspace_root().join("runbooks"))
            .env_remove("SUMA_DR_REPLICA_URL")
            .env_remove("SUMA_DR_PRIMARY_URL")
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn aws(&self) -> &dyn AwsApis {
        &self.session
    }

    fn journal(&self) -> Journal {
        Journal::new(
            self.session.lock_store(&common::lock_region(), "suma-locks"),
            LocalLog::new(self.dir.path()),
        )
    }

    /// The environment's most recent operation of `kind`, from the journal: the crashed one when it is
    /// of that kind, else the newest in a listing.
    pub async fn last_operation(&self, kind: &str) -> Option<Operation> {
        let crashed = self.crashed.lock().unwrap().clone();
        if let Some(id) = crashed {
            if let Some(op) = self.journal().load(&id).await.unwrap().filter(|op| op.kind == kind) {
                return Some(op);
            }
        }
        let ops = self.journal().list(&self.name, 20).await.unwrap();
        ops.into_iter().find(|op| op.kind == kind)
    }

    /// Sets `defaults.KEY` in the configuration file.
    fn set_default(&self, key: &str, value: &str) {
        let mut config: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&self.config).unwrap()).unwrap();
        config["defaults"][key] = value.into();
        std::fs::write(&self.config, serde_norway::to_string(&config).unwrap()).unwrap();
    }

    /// Ends the dead holder's lease now, as its running out would, and notes which operation it held.
    async fn expire_lease(&self) {
        if let Some(operation) = common::expire_lease(&self.session, &self.name).await {
            *self.crashed.lock().unwrap() = Some(operation);
        }
    }

    async fn locked(&self) -> bool {
        self.journal()
            .table()
            .get_lock(&self.name)
            .await
            .unwrap()
            .is_some_and(|l| !suma::journal::FINISHED_STATUSES.contains(&l.operation_status.as_str()))
    }
}

/// How a crashed command is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Resume,
    Abort,
}

/// One mutating command of the matrix.
#[async_trait]
pub trait Scenario: Send + Sync {
    /// The journal's kind of the operation.
    fn kind(&self) -> &'static str;
    /// Changes to the seeded environment's configuration (short canary steps, a managed secret, ...).
    fn tweak(&self, _env: &mut serde_norway::Value) {}
    /// Sets up what the command works on; what it returns is handed to [`Scenario::check`].
    async fn prepare(&self, _env: &Env) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn command(&self) -> Vec<&'static str>;
    /// Variables every `suma` of the run on `env` gets (the database URLs a switchover or a failback
    /// reads).
    fn vars(&self, _env: &Env) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The command that finishes the crashed one (it may need the journal: a run's id).
    async fn finish(&self, env: &Env, finish: Finish) -> Vec<String>;
    /// The invariants after the finishing command `out`: `Err` says which one is broken.
    async fn check(&self, env: &Env, prepared: &serde_json::Value, finish: Finish, out: &Run) -> Result<(), String>;
    /// What must hold once the operation has ended, however it ended (completed, rolled back, undone):
    /// never a half state. The fault runs check this.
    async fn safe(&self, env: &Env, prepared: &serde_json::Value) -> Result<(), String>;
    /// What must hold when the command failed before it journaled an operation (an AWS error while it
    /// read or took the lock): nothing changed. Most scenarios start from a state their `safe` accepts.
    async fn untouched(&self, env: &Env, prepared: &serde_json::Value) -> Result<(), String> {
        self.safe(env, prepared).await
    }
}

/// Where a run was killed: the fault hook's description and the step the journal shows running.
struct KillPoint {
    what: String,
    step: String,
}

/// The result of one kill point: where, and what resume and abort left.
struct Row {
    n: usize,
    at: KillPoint,
    resume: Result<(), String>,
    abort: Result<(), String>,
}

/// Runs `scenario`'s command killed at kill point `n`; `None` when the command finished before reaching it.
async fn crash(scenario: &dyn Scenario, env: &Env, n: usize) -> Option<KillPoint> {
    let mut cmd = env.suma(&scenario.command());
    cmd.env("SUMA_FAULT_CRASH_AT", n.to_string());
    let out = run_async(cmd).await;
    let Some(line) = out
        .stderr
        .lines()
        .find(|l| l.starts_with("suma fault hook: killed at "))
    else {
        assert_eq!(
            out.code,
            0,
            "`{}` without a crash at point {n}: {}",
            scenario.kind(),
            out.stderr
        );
        return None;
    };
    assert_eq!(out.code, -1, "killed by a signal: {}", out.stderr);
    let what = line
        .trim_start_matches("suma fault hook: killed at ")
        .split_once(": ")
        .map_or(line, |(_, what)| what)
        .to_owned();
    env.expire_lease().await;
    let step = env
        .last_operation(scenario.kind())
        .await
        .and_then(|op| op.steps.last().map(|s| s.name.clone()))
        .unwrap_or_else(|| "-".to_owned());
    Some(KillPoint { what, step })
}

/// One kill point finished one way, on a fresh environment: `None` when the command has no point `n`.
async fn finish_one(scenario: &dyn Scenario, n: usize, finish: Finish) -> Option<(KillPoint, Result<(), String>)> {
    let _slot = Slot::take().await;
    let mut env = Env::seed("crash", &|e| scenario.tweak(e)).await;
    env.vars = scenario.vars(&env);
    let prepared = scenario.prepare(&env).await;
    let at = crash(scenario, &env, n).await?;
    let args = scenario.finish(&env, finish).await;
    let out = run_async(env.suma(&args.iter().map(String::as_str).collect::<Vec<_>>())).await;
    let mut result = scenario.check(&env, &prepared, finish, &out).await;
    if result.is_ok() && env.locked().await {
        result = Err("the environment is still locked".to_owned());
    }
    Some((
        at,
        result.map_err(|e| format!("{e}\n      stderr: {}", out.stderr.trim())),
    ))
}

/// Runs the whole matrix of `scenario`, prints its lines, and fails if any kill point was inconsistent.
pub async fn run_matrix(scenario: Arc<dyn Scenario>) {
    let mut rows = Vec::new();
    let mut next = 1;
    'batches: loop {
        let batch: Vec<usize> = (next..next + PARALLEL).collect();
        next += PARALLEL;
        let results: Vec<(usize, Option<Row>)> = futures::stream::iter(batch)
            .map(|n| {
                let scenario = scenario.clone();
                async move {
                    let (resumed, aborted) = tokio::join!(
                        finish_one(scenario.as_ref(), n, Finish::Resume),
                        finish_one(scenario.as_ref(), n, Finish::Abort)
                    );
                    let row = match (resumed, aborted) {
                        (Some((at, resume)), Some((_, abort))) => Some(Row { n, at, resume, abort }),
                        (None, None) => None,
                        _ => panic!("kill point {n} of `{}` was reached in one run only", scenario.kind()),
                    };
                    (n, row)
                }
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let mut results = results;
        results.sort_by_key(|(n, _)| *n);
        for (_, row) in results {
            match row {
                Some(row) => rows.push(row),
                None => break 'batches,
            }
        }
    }
    let verdict = |r: &Result<(), String>| match r {
        Ok(()) => "consistent".to_owned(),
        Err(e) => format!("INCONSISTENT: {e}"),
    };
    let mut consistent = 0;
    for row in &rows {
        consistent += usize::from(row.resume.is_ok()) + usize::from(row.abort.is_ok());
        eprintln!(
            "crash-matrix {:<16} kill point {:>2} in `{}` ({}): resume {}, abort {}",
            scenario.kind(),
            row.n,
            row.at.step,
            row.at.what,
            verdict(&row.resume),
            verdict(&row.abort)
        );
    }
    eprintln!(
        "crash-matrix {:<16} {} kill points, {} runs, {consistent} consistent",
        scenario.kind(),
        rows.len(),
        rows.len() * 2
    );
    assert!(!rows.is_empty(), "`{}` reached no kill point", scenario.kind());
    assert_eq!(
        consistent,
        rows.len() * 2,
        "`{}`: inconsistent kill points above",
        scenario.kind()
    );
}
