//! The local sandbox, all on loopback: a moto server standing in for the AWS APIs, seeded with the
//! service's topology for `staging` and `production`; PostgreSQL and Redis; an SMTP server (aiosmtpd) that
//! captures the auth-service's email into a Maildir (`SMTP_URL`, `SMTP_SINK_DIR`); and the data plane: the
//! ECS agent (`ecs-agent`), which runs every service of the staging and production clusters as real
//! auth-service processes from the task definition rendered from the shipped template, and the overlay in
//! front of moto that shows suma their counts and rollouts; a weighted proxy that splits requests between
//! the staging ALB rule's target groups by its weights (both read from moto every second), a steady load
//! generator through that proxy, and a Prometheus scraping every task every second.
//!
//! Idempotent: `up` starts only what is not running (or whose inputs changed), `down` stops only the
//! processes `up` recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::process::{self, Result};

mod dataplane;
mod demo;
mod env;
mod services;

pub use demo::demo;
pub use services::ensure_postgres;
use services::ensure_program;

/// The sandbox's Python packages, each pinned (moto's behaviour, and that of what it pulls in, is part of
/// what the tests assert against): moto's server, the SMTP sink that captures the auth-service's email, and
/// PyJWT and jwcrypto, the two independent JOSE libraries of `crates/jwt-keys/tests/interop.rs`.
const REQUIREMENTS: &str = "xtask/sandbox/requirements.txt";

/// The load generator's rate, in requests per second: enough samples for a canary at 10%, light on 2 cores.
const LOAD_RATE: &str = "40";

/// The edge's listeners besides `edge_port` (staging's front door, `AUTH_URL`): staging's DR ALB and
/// test listener (to the canary target group: blue/green's pre-traffic checks), production's ALB, DR
/// ALB and front door.
const EDGE_PORTS: [&str; 5] = [
    "edge_staging_dr_port",
    "edge_staging_test_port",
    "edge_production_port",
    "edge_production_dr_port",
    "edge_production_front_port",
];

/// What seed.py prints for the edge, per environment.
const EDGE_KEYS: [&str; 8] = [
    "rule_arn",
    "stable_tg",
    "canary_tg",
    "dr_tg",
    "zone",
    "record",
    "primary_dns",
    "dr_dns",
];

/// Each environment's database and the role its tasks log in as: staging, then production.
const DATABASES: [(&str, &str); 2] = [("auth", "auth_staging"), ("auth_production", "auth_production")];

/// Each environment's ElastiCache replication group, as a Redis server of its own (a component) whose
/// `default` user's password is the group's AUTH token: staging, then production.
const REDIS_GROUPS: [(&str, &str); 2] = [
    ("redis_staging", "suma-finance-staging-redis"),
    ("redis_production", "suma-finance-production-redis"),
];

/// The user the ECS agent's overlay applies AUTH token changes as (never rotated).
const REDIS_ADMIN: &str = "sandbox-admin";

/// The clusters whose services the ECS agent runs (seed.py's names for the two environments).
const AGENT_CLUSTERS: [&str; 2] = ["suma-finance-staging", "suma-finance-production"];

/// The services' token issuer and audience, exported as `AUTH_JWT_ISSUER` and `AUTH_JWT_AUDIENCE`.
const JWT_ISSUER: &str = "auth-service";
const JWT_AUDIENCE: &str = "suma";

pub struct Sandbox {
    root: PathBuf,
    dir: PathBuf,
}

/// Recorded pids, ports and inputs, as `KEY=VALUE` lines in `state`.
type State = BTreeMap<String, String>;

/// A process `up` starts.
struct Component {
    name: &'static str,
    /// A word of its command line, checked before a recorded pid is trusted or signalled.
    needle: &'static str,
    /// Whether it listens on `{name}_port`.
    listens: bool,
}

/// What `up` starts, in start order; `down` stops them in reverse.
const COMPONENTS: [Component; 12] = [
    Component {
        name: "moto",
        needle: "moto_server",
        listens: true,
    },
    Component {
        name: "postgres",
        needle: "postgres",
        listens: true,
    },
    // The tests' Redis (no AUTH); the environments' tasks use their replication group's.
    Component {
        name: "redis",
        needle: "redis-server",
        listens: true,
    },
    Component {
        name: "redis_staging",
        needle: "redis-server",
        listens: true,
    },
    Component {
        name: "redis_production",
        needle: "redis-server",
        listens: true,
    },
    Component {
        name: "smtp",
        needle: "aiosmtpd",
        listens: true,
    },
    Component {
        name: "agent",
        needle: "ecs-agent",
        listens: true,
    },
    Component {
        name: "proxy",
        needle: "weighted-proxy",
        listens: true,
    },
    Component {
        name: "edge",
        needle: "edge",
        listens: true,
    },
    Component {
        name: "prometheus",
        needle: "prometheus",
        listens: true,
    },
    Component {
        name: "loadgen",
        needle: "loadgen",
        listens: false,
    },
    Component {
        name: "datadog",
        needle: "datadog-stub",
        listens: true,
    },
];

/// Components of earlier versions of the sandbox, stopped by `down` when a state still records them.
const LEGACY: [Component; 3] = [
    Component {
        name: "auth",
        needle: "auth-service",
        listens: true,
    },
    Component {
        name: "stable",
        needle: "auth-service",
        listens: true,
    },
    Component {
        name: "canary",
        needle: "auth-service",
        listens: true,
    },
];

/// When `up` builds the workspace's binaries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Build {
    /// Whenever a process that runs one of them has to start (`up`, `test`, `demo`).
    Always,
    /// As `Always`, with the feature set of the test run that follows (`test`): dev-dependencies turn
    /// on features of shared crates (tokio's `test-util`, serde_json's `float_roundtrip`, ...), so a
    /// plain build and a test build compile the dependency tree twice on a cold target directory.
    ForTests,
}

/// What `cargo build` builds for `up` and `demo`: every binary of the workspace in one invocation, so
/// features unify as they do for the whole workspace and nothing compiles twice.
const BUILD_BINARIES: &[&str] = &["build", "--quiet", "--workspace", "--bins"];

/// What `cargo xtask test` builds before starting the sandbox: everything its `cargo test` runs, so that
/// run finds every unit fresh and the sandbox runs the binaries the tests run.
const BUILD_FOR_TESTS: &[&str] = &["test", "--quiet", "--workspace", "--all-targets", "--no-run"];

impl Sandbox {
    pub fn new(root: PathBuf) -> Self {
        let dir = std::env::var_os("SUMA_SANDBOX_DIR").map_or_else(|| root.join("target/sandbox"), PathBuf::from);
        Self { root, dir }
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn load_state(&self) -> State {
        parse_state(&std::fs::read_to_string(self.state_path()).unwrap_or_default())
    }

    fn save_state(&self, state: &State) -> Result<()> {
        let text: String = state.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(self.state_path(), text).map_err(|e| format!("cannot write sandbox state: {e}"))
    }

    fn port(state: &State, key: &str) -> Option<u16> {
        state.get(key).and_then(|v| v.parse().ok())
    }

    fn pid(state: &State, key: &str) -> Option<u32> {
        state.get(key).and_then(|v| v.parse().ok())
    }

    fn component(name: &str) -> &'static Component {
        COMPONENTS
            .iter()
            .chain(&LEGACY)
            .find(|c| c.name == name)
            .expect("a known component")
    }

    /// A component is up when its recorded process is alive (and is what we started), and its port answers.
    fn running(state: &State, name: &str) -> bool {
        let c = Self::component(name);
        let Some(pid) = Self::pid(state, &format!("{name}_pid")) else {
            return false;
        };
        if !process::pid_runs(pid, c.needle) {
            return false;
        }
        !c.listens || Self::port(state, &format!("{name}_port")).is_some_and(process::port_open)
    }

    /// What a component was started from: when this changes, `up` restarts it. Dependencies' pids stand for
    /// "restarted" (a fresh moto is a fresh topology, a fresh PostgreSQL a fresh database); ports for
    /// "moved".
    fn inputs(state: &State, name: &str) -> String {
        let get = |key: &str| state.get(key).map_or("-", String::as_str);
        match name {
            // The seeded secrets hold the URLs of PostgreSQL, Redis and SMTP: when one moves, moto is
            // seeded again. `seed=2`: the task definition is rendered from the shipped template.
            // A restarted replication group's Redis has the seeded token again, so its secret is reseeded.
            // `launcher=2`: started through `xtask/sandbox/moto_server.py`.
            "moto" => format!(
                "front={}:{} prometheus={} postgres={} redis={} {} {} smtp={} seed=4 launcher=2",
                get("edge_port"),
                get("edge_production_front_port"),
                get("prometheus_port"),
                get("postgres_port"),
                get("redis_port"),
                get("redis_staging_pid"),
                get("redis_production_pid"),
                get("smtp_port")
            ),
            // Tasks connect to PostgreSQL and Redis and read moto: any of them restarted, the tasks restart.
            // `v=2`: what the agent adds to every task (JWKS_MAX_AGE).
            "agent" => format!(
                "moto={}:{} postgres={} redis={} {} v=3",
                get("moto_pid"),
                get("moto_port"),
                get("postgres_pid"),
                get("redis_staging_pid"),
                get("redis_production_pid")
            ),
            "proxy" => format!(
                "moto={}:{} agent={} rule={}",
                get("moto_pid"),
                get("moto_port"),
                get("agent_port"),
                get("staging_rule_arn")
            ),
            "prometheus" => "targets=agent/scrape-targets.json".to_owned(),
            "edge" => format!(
                "moto={}:{} proxy={} ports={} rule={}",
                get("moto_pid"),
                get("moto_port"),
                get("proxy_port"),
                EDGE_PORTS.map(get).join(","),
                get("production_rule_arn")
            ),
            "loadgen" => format!("front={}", get("edge_port")),
            // `api=3`: the stand-in answers metric queries from Prometheus (a stub from before is restarted).
            "datadog" => format!(
                "keys={} api=3 prometheus={}",
                get("datadog_keys"),
                get("prometheus_port")
            ),
            _ => String::new(),
        }
    }

    /// Running, and started from the current inputs.
    fn current(state: &State, name: &str) -> bool {
        Self::running(state, name) && state.get(&format!("{name}_inputs")) == Some(&Self::inputs(state, name))
    }

    /// Stops a component's recorded process if it is still ours.
    fn stop(state: &mut State, name: &str) {
        let c = Self::component(name);
        if let Some(pid) = Self::pid(state, &format!("{name}_pid")) {
            if process::pid_runs(pid, c.needle) {
                match name {
                    // SIGTERM is PostgreSQL's "smart" shutdown; SIGINT ("fast") does not wait for clients.
                    "postgres" => {
                        process::signal(pid, "INT");
                        process::stop_pid(pid, Duration::from_secs(10));
                    }
                    // The services drain for at most SHUTDOWN_TIMEOUT (set to 5 s below); the agent stops
                    // its tasks before it exits.
                    "stable" | "canary" | "auth" | "agent" => process::stop_pid(pid, Duration::from_secs(25)),
                    _ => process::stop_pid(pid, Duration::from_secs(5)),
                }
            }
        }
        state.remove(&format!("{name}_pid"));
        state.remove(&format!("{name}_inputs"));
    }

    /// Records a started component.
    fn started(state: &mut State, name: &str, pid: u32) {
        state.insert(format!("{name}_pid"), pid.to_string());
        let inputs = Self::inputs(state, name);
        state.insert(format!("{name}_inputs"), inputs);
    }

    /// The component's port: the recorded one while it runs or when it is free, else a new free one.
    fn choose_port(state: &mut State, name: &str) -> Result<u16> {
        let key = format!("{name}_port");
        let port = match Self::port(state, &key) {
            Some(port) if Self::running(state, name) || !process::port_open(port) => port,
            _ => Self::fresh_port(state)?,
        };
        state.insert(key, port.to_string());
        Ok(port)
    }

    /// A free port that no component has recorded: ports are chosen early (the seeded configuration
    /// points at them) and bound only when their component starts, so the kernel's "free" is not enough.
    fn fresh_port(state: &State) -> Result<u16> {
        loop {
            let port = process::free_port()?;
            let reserved = state
                .iter()
                .any(|(key, value)| key.ends_with("_port") && value.parse() == Ok(port));
            if !reserved {
                return Ok(port);
            }
        }
    }

    pub fn is_up(&self) -> bool {
        let state = self.load_state();
        COMPONENTS.iter().all(|c| Self::running(&state, c.name)) && self.dir.join("env.sh").exists()
    }

    pub fn up(&self) -> Result<Vec<(String, String)>> {
        self.up_with(Build::Always)
    }

    /// `up` for `cargo xtask test`: builds what the tests run, with their features.
    fn up_for_tests(&self) -> Result<Vec<(String, String)>> {
        self.up_with(Build::ForTests)
    }

    /// Restarts component `name` with `start` unless it runs from its current inputs; records it.
    fn ensure(&self, state: &mut State, name: &str, start: impl FnOnce(&Self, &mut State) -> Result<()>) -> Result<()> {
        if !Self::current(state, name) {
            Self::stop(state, name);
            start(self, state)?;
            self.save_state(state)?;
        }
        Ok(())
    }

    fn up_with(&self, build: Build) -> Result<Vec<(String, String)>> {
        let start = Instant::now();
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        self.ensure_python_packages()?;
        let pg_bin = ensure_postgres()?;
        ensure_program("redis-server", "redis-server")?;
        ensure_program("prometheus", "prometheus")?;
        // Not sandbox services: the compliance tests' certificate and TLS 1.0/1.1 listener.
        ensure_program("openssl", "openssl")?;
        ensure_program("nginx", "nginx-light")?;

        let mut state = self.load_state();
        // The proxy's and Prometheus's ports come first: the seeded configuration points at them.
        Self::choose_port(&mut state, "proxy")?;
        Self::choose_port(&mut state, "edge")?;
        for key in EDGE_PORTS {
            let keep = Self::port(&state, key).is_some_and(|p| Self::running(&state, "edge") || !process::port_open(p));
            if !keep {
                let port = Self::fresh_port(&state)?;
                state.insert(key.to_owned(), port.to_string());
            }
        }
        Self::choose_port(&mut state, "prometheus")?;
        Self::choose_port(&mut state, "datadog")?;
        if !state.contains_key("datadog_keys") {
            state.insert(
                "datadog_keys".into(),
                format!("{}:{}", random_hex(16)?, random_hex(16)?),
            );
        }
        // The tasks' database passwords and Redis AUTH tokens, the Redis admin's password and the token
        // Prometheus scrapes the tasks' /metrics with, one per sandbox; seed.py writes the first two into
        // the secrets.
        let generated = DATABASES
            .iter()
            .map(|(_, role)| format!("{role}_password"))
            .chain(REDIS_GROUPS.iter().map(|(component, _)| format!("{component}_token")))
            .chain(["redis_admin_password".to_owned(), "metrics_token".to_owned()]);
        for key in generated {
            if let std::collections::btree_map::Entry::Vacant(entry) = state.entry(key) {
                entry.insert(random_hex(16)?);
            }
        }
        self.save_state(&state)?;

        if !Self::running(&state, "postgres") {
            self.start_postgres(&mut state, &pg_bin)?;
            self.save_state(&state)?;
        }
        self.ensure_pg_auth(&pg_bin)?;
        self.ensure_databases(&state, &pg_bin)?;
        if !Self::running(&state, "smtp") {
            self.start_smtp(&mut state)?;
            self.save_state(&state)?;
        }
        if !Self::running(&state, "redis") {
            self.start_redis(&mut state)?;
            self.save_state(&state)?;
        }
        for (component, _) in REDIS_GROUPS {
            if !Self::running(&state, component) {
                self.start_group_redis(&mut state, component)?;
                self.save_state(&state)?;
            }
        }

        // The binaries come before moto: seeding renders the task definition with suma.
        let binaries: Vec<PathBuf> = [
            "suma",
            "auth-service",
            "ecs-agent",
            "weighted-proxy",
            "loadgen",
            "datadog-stub",
        ]
        .into_iter()
        .map(|b| self.binary(b))
        .collect();
        let to_start: Vec<&str> = ["moto", "agent", "proxy", "loadgen", "datadog"]
            .into_iter()
            .filter(|c| !Self::current(&state, c))
            .collect();
        let missing = binaries.iter().any(|b| !b.is_file());
        let args = if build == Build::ForTests {
            BUILD_FOR_TESTS
        } else {
            BUILD_BINARIES
        };
        if !to_start.is_empty() || missing {
            build_binaries(&self.root, &binaries, args)?;
        }

        self.ensure(&mut state, "moto", |s, state| s.start_moto(state))?;
        self.ensure(&mut state, "agent", |s, state| s.start_agent(state))?;
        self.wait_settled(&state)?;
        let vars = self.env_vars(&state);
        self.ensure(&mut state, "proxy", |s, state| s.start_proxy(state, &vars))?;
        self.ensure(&mut state, "edge", |s, state| s.start_edge(state, &vars))?;
        self.ensure(&mut state, "prometheus", |s, state| s.start_prometheus(state))?;
        self.ensure(&mut state, "loadgen", |s, state| s.start_loadgen(state))?;
        self.ensure(&mut state, "datadog", |s, state| s.start_datadog(state, &vars))?;
        self.apply_datadog_templates(&vars)?;
        self.write_env_sh(&vars)?;
        let ports: Vec<String> = COMPONENTS
            .iter()
            .filter(|c| c.listens)
            .map(|c| {
                format!(
                    "{} :{}",
                    c.name,
                    state.get(&format!("{}_port", c.name)).map_or("-", String::as_str)
                )
            })
            .collect();
        eprintln!(
            "sandbox up in {:.1}s: {}; {}\n  use it with: . {}",
            start.elapsed().as_secs_f64(),
            ports.join(", "),
            self.tasks_summary(&state),
            self.dir.join("env.sh").display()
        );
        Ok(vars)
    }

    pub fn down(&self) -> Result<()> {
        let mut state = self.load_state();
        for c in COMPONENTS.iter().rev().chain(&LEGACY) {
            Self::stop(&mut state, c.name);
        }
        for leftover in [
            "state",
            "env.sh",
            "suma.yaml",
            "pg",
            "pg.log",
            "moto.log",
            "redis.log",
            "redis_staging.log",
            "redis_production.log",
            "suma-state",
            "auth",
            "auth.log",
            "stable.log",
            "canary.log",
            "agent",
            "agent.log",
            "proxy.log",
            "edge.log",
            "loadgen.log",
            "prometheus.log",
            "prometheus",
            "aws-credentials",
            "datadog.log",
            "datadog-monitors.json",
            "datadog-events.jsonl",
            "datadog-dashboards.json",
            "datadog-writes.jsonl",
        ] {
            let path = self.dir.join(leftover);
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
        eprintln!("sandbox down");
        Ok(())
    }

    pub fn status(&self) -> Result<()> {
        let state = self.load_state();
        for c in &COMPONENTS {
            let port = state
                .get(&format!("{}_port", c.name))
                .filter(|_| c.listens)
                .map_or("-", String::as_str);
            let pid = state.get(&format!("{}_pid", c.name)).map_or("-", String::as_str);
            let up = if !Self::running(&state, c.name) {
                "stopped"
            } else if Self::current(&state, c.name) {
                "running"
            } else {
                "stale"
            };
            let detail = match c.name {
                "agent" => self.tasks_summary(&state),
                "proxy" => format!("weights {}", self.proxy_weights()),
                "loadgen" => format!("{LOAD_RATE} req/s"),
                "datadog" => format!("events in {}", self.dir.join("datadog-events.jsonl").display()),
                _ => String::new(),
            };
            println!("{:<11}{up:<9}port {port:<7}pid {pid:<9}{detail}", c.name);
        }
        Ok(())
    }

    /// The proxy's current weights, from the last change it logged.
    fn proxy_weights(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy.log"))
            .ok()
            .and_then(|log| {
                log.lines()
                    .rev()
                    .find_map(|l| l.split_once(" to=").map(|(_, w)| w.trim().to_owned()))
            })
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// The moto venv; `SUMA_SANDBOX_VENV` moves it out of the work tree so CI can keep it between runs.
    pub fn venv(&self) -> PathBuf {
        std::env::var_os("SUMA_SANDBOX_VENV").map_or_else(|| self.dir.join("venv"), PathBuf::from)
    }

    /// The agent's slow answers from moto, printed when tests failed: how many per action and the
    /// longest, then the 20 slowest lines (a stall of moto is what makes runs lose their locks, and the
    /// log is gone with the sandbox).
    fn print_slow_answers(&self) {
        let log = std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
        let mut slow: Vec<(f64, &str, &str)> = log
            .lines()
            .filter(|l| l.contains("slow answer from moto"))
            .filter_map(|l| {
                let field = |key: &str| l.split(key).nth(1)?.split_whitespace().next();
                Some((field("seconds=")?.parse().ok()?, field("action=")?, l))
            })
            .collect();
        eprintln!("sandbox: {} answers from moto took over 2 s during the run", slow.len());
        let mut by_action: std::collections::BTreeMap<&str, (usize, f64)> = std::collections::BTreeMap::new();
        for (seconds, action, _) in &slow {
            let entry = by_action.entry(action).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(*seconds);
        }
        for (action, (count, longest)) in &by_action {
            eprintln!("  {count:>5} x {action} (longest {longest:.1} s)");
        }
        slow.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, _, line) in slow.iter().take(20) {
            eprintln!("  {line}");
        }
    }

    fn binary(&self, name: &str) -> PathBuf {
        target_dir(&self.root).join("debug").join(name)
    }
}

/// `bytes` random bytes from the kernel, as hex.
fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// `KEY=VALUE` lines; other lines are ignored.
fn parse_state(text: &str) -> State {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `cargo ARGS` (one of [`BUILD_BINARIES`] and [`BUILD_FOR_TESTS`]); whether it succeeded.
fn build_workspace(root: &Path, args: &[&str]) -> Result<bool> {
    eprintln!("sandbox: building the workspace (cargo {})", args.join(" "));
    let start = Instant::now();
    let built = process::run_visible(crate::cargo::command().current_dir(root).args(args))?;
    eprintln!("sandbox: build done in {:.1}s", start.elapsed().as_secs_f64());
    Ok(built)
}

/// One cargo invocation for the whole workspace, so features unify as they do for the workspace and
/// nothing compiles twice. When the workspace does not build (someone is mid-change in
/// another crate), the binaries of the last build are used if there are any: building the sandbox's
/// packages alone would unify other features and recompile half the dependency tree.
fn build_binaries(root: &Path, binaries: &[PathBuf], args: &[&str]) -> Result<()> {
    if build_workspace(root, args)? {
        return Ok(());
    }
    if binaries.iter().all(|b| b.is_file()) {
        eprintln!("sandbox: warning: the workspace does not build; using the binaries of its last build");
        return Ok(());
    }
    eprintln!("sandbox: the workspace does not build; building auth-service and dataplane only");
    if process::run_visible(crate::cargo::command().current_dir(root).args([
        "build",
        "--quiet",
        "--package",
        "auth-service",
        "--package",
        "dataplane",
        "--bins",
    ]))? {
        Ok(())
    } else {
        Err("cannot build the sandbox's binaries".to_owned())
    }
}

pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Runs `tests` with the variables of a sandbox up for tests, and takes the sandbox down afterwards
/// unless it was already up. Whether the tests passed.
pub fn with_test_sandbox(root: &Path, tests: impl FnOnce(&[(String, String)]) -> Result<bool>) -> Result<bool> {
    let sandbox = Sandbox::new(root.to_owned());
    let was_up = sandbox.is_up();
    let vars = sandbox.up_for_tests()?;
    let passed = tests(&vars);
    if !matches!(passed, Ok(true)) {
        sandbox.print_slow_answers();
    }
    if !was_up {
        sandbox.down()?;
    }
    passed
}

/// `cargo xtask test`: the whole workspace's tests against a sandbox.
pub fn test(root: PathBuf, extra: &[&str]) -> Result<()> {
    let times = target_dir(&root).join("test-times.txt");
    let _ = std::fs::remove_file(&times);
    let mut failures = Vec::new();
    let passed = with_test_sandbox(&root, |vars| {
        let mut run = |args: &[&str], extra: &[&str]| {
            let (passed, reports) = process::run_tests(
                crate::cargo::command()
                    .current_dir(&root)
                    .args(args)
                    .args(extra)
                    .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .env("SUMA_TEST_TIMES", &times),
            )?;
            failures.extend(reports);
            Ok::<_, String>(passed)
        };
        Ok(run(&["test", "--workspace", "--all-targets", "--no-fail-fast"], extra)?
            && run(&["test", "--workspace", "--doc"], &[])?)
    })?;
    print_slowest_tests(&times);
    if !failures.is_empty() {
        eprintln!(
            "\nwhy the {} failing tests failed (the end of each one's output):",
            failures.len()
        );
        for report in &failures {
            eprintln!("{report}\n");
        }
    }
    match passed {
        true => Ok(()),
        false => Err("tests failed".to_owned()),
    }
}

/// The 20 slowest sandbox tests of the run (`SECONDS NAME` lines the tests append), so the suite's time
/// can be seen where it goes.
fn print_slowest_tests(times: &Path) {
    let Ok(text) = std::fs::read_to_string(times) else {
        return;
    };
    let mut tests: Vec<(f64, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(seconds, name)| Some((seconds.parse().ok()?, name)))
        .collect();
    tests.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total: f64 = tests.iter().map(|t| t.0).sum();
    eprintln!(
        "sandbox tests: {} took {total:.0} s together; the slowest:",
        tests.len()
    );
    for (seconds, name) in tests.iter().take(20) {
        eprintln!("  {seconds:>7.1} s  {name}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(&str, &str)]) -> State {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn state_lines_round_trip_and_ignore_noise() {
        let s = parse_state("moto_port=1\nnoise\nstaging_rule_arn=arn:a/b=c\n =x\n");
        assert_eq!(s["moto_port"], "1");
        assert_eq!(s["staging_rule_arn"], "arn:a/b=c");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_moved_database_reseeds_moto_and_restarts_the_tasks() {
        let before = state(&[
            ("postgres_pid", "10"),
            ("postgres_port", "5432"),
            ("redis_pid", "11"),
            ("redis_port", "6379"),
            ("moto_pid", "12"),
            ("moto_port", "5000"),
            ("proxy_port", "1003"),
        ]);
        let mut after = before.clone();
        after.insert("postgres_port".into(), "5433".into());
        assert_ne!(
            Sandbox::inputs(&before, "moto"),
            Sandbox::inputs(&after, "moto"),
            "secrets hold the URL"
        );
        let mut restarted = before.clone();
        restarted.insert("postgres_pid".into(), "13".into());
        assert_ne!(Sandbox::inputs(&before, "agent"), Sandbox::inputs(&restarted, "agent"));
        for name in ["proxy", "prometheus", "loadgen"] {
            assert_eq!(
                Sandbox::inputs(&before, name),
                Sandbox::inputs(&restarted, name),
                "{name}"
            );
        }
    }

    #[test]
    fn prometheus_scrapes_both_services_every_second() {
        let config = dataplane::prometheus_config(Path::new("/sandbox/agent/scrape-targets.json"), "t0ken");
        assert!(config.contains("scrape_interval: 1s"));
        assert!(config.contains("credentials: t0ken"), "{config}");
        assert!(config.contains("files: ['/sandbox/agent/scrape-targets.json']"));
    }
}
