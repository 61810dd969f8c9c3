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
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{self, Result};

/// moto's version is pinned: its behaviour is part of what the tests assert against.
const MOTO_VERSION: &str = "5.2.5";

/// The SMTP server that captures the auth-service's email into a Maildir (`SMTP_SINK_DIR`), pinned too.
const AIOSMTPD_VERSION: &str = "1.4.6";

/// The load generator's rate, in requests per second: enough samples for a canary at 10%, light on 2 cores.
const LOAD_RATE: &str = "40";

/// The edge's listeners besides `edge_port` (staging's front door, `AUTH_URL`): staging's DR ALB,
/// production's ALB, DR ALB and front door.
const EDGE_PORTS: [&str; 4] = [
    "edge_staging_dr_port",
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
const COMPONENTS: [Component; 10] = [
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
    Component {
        name: "redis",
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
            "moto" => format!(
                "front={}:{} prometheus={} postgres={} redis={} smtp={} seed=3",
                get("edge_port"),
                get("edge_production_front_port"),
                get("prometheus_port"),
                get("postgres_port"),
                get("redis_port"),
                get("smtp_port")
            ),
            // Tasks connect to PostgreSQL and Redis and read moto: any of them restarted, the tasks restart.
            // `v=2`: what the agent adds to every task (JWKS_MAX_AGE).
            "agent" => format!(
                "moto={}:{} postgres={} redis={} v=2",
                get("moto_pid"),
                get("moto_port"),
                get("postgres_pid"),
                get("redis_pid")
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
            // `api=2`: the stand-in serves monitor and dashboard writes (a stub from before is restarted).
            "datadog" => format!("keys={} api=2", get("datadog_keys")),
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
            _ => process::free_port()?,
        };
        state.insert(key, port.to_string());
        Ok(port)
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
        self.ensure_moto()?;
        self.ensure_aiosmtpd()?;
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
                state.insert(key.to_owned(), process::free_port()?.to_string());
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
        // The tasks' database passwords, one per sandbox; seed.py writes them into the secrets.
        for (_, role) in DATABASES {
            if let std::collections::btree_map::Entry::Vacant(entry) = state.entry(format!("{role}_password")) {
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
    fn venv(&self) -> PathBuf {
        std::env::var_os("SUMA_SANDBOX_VENV").map_or_else(|| self.dir.join("venv"), PathBuf::from)
    }

    fn binary(&self, name: &str) -> PathBuf {
        target_dir(&self.root).join("debug").join(name)
    }

    fn ensure_moto(&self) -> Result<()> {
        let marker = self.venv().join(".moto-version");
        if std::fs::read_to_string(&marker).is_ok_and(|v| v.trim() == MOTO_VERSION) {
            return Ok(());
        }
        eprintln!(
            "sandbox: installing moto[server]=={MOTO_VERSION} into {}",
            self.venv().display()
        );
        let python = ["python3", "python"]
            .iter()
            .find_map(|p| process::which(p))
            .ok_or("python3 is required for the moto server: install it (apt-get install python3 python3-venv)")?;
        process::run(Command::new(python).args(["-m", "venv"]).arg(self.venv()))?;
        process::run(
            Command::new(self.venv().join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("moto[server]=={MOTO_VERSION}")),
        )?;
        std::fs::write(&marker, MOTO_VERSION).map_err(|e| e.to_string())
    }

    fn start_moto(&self, state: &mut State) -> Result<()> {
        let port = process::free_port()?;
        let log = self.dir.join("moto.log");
        let pid = process::spawn_logged(
            Command::new(self.venv().join("bin/moto_server")).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
            &log,
        )?;
        process::wait_for_port(port, "moto", Duration::from_secs(60), &log)?;
        state.insert("moto_port".into(), port.to_string());
        // A fresh moto is empty: seed it and write the matching configuration. Both environments' `url`
        // is the proxy; the seed prints the staging rule and target groups the proxy follows.
        eprintln!("sandbox: seeding moto with the staging and production topology");
        self.set_role_passwords(state)?;
        let seeded = process::run(
            Command::new(self.venv().join("bin/python"))
                .env("SUMA_BIN", self.binary("suma"))
                .env(
                    "SANDBOX_TEMPLATE",
                    self.root.join("templates/ecs/auth-service.taskdef.yaml"),
                )
                .env("SANDBOX_SERVICE_URLS", Self::service_urls(state))
                .env(
                    "SANDBOX_PRODUCTION_URL",
                    format!("http://127.0.0.1:{}", state["edge_production_front_port"]),
                )
                .arg(self.root.join("xtask/sandbox/seed.py"))
                .arg(format!("http://127.0.0.1:{port}"))
                .arg(self.dir.join("suma.yaml"))
                .arg(format!("http://127.0.0.1:{}", state["edge_port"]))
                .arg(format!("http://127.0.0.1:{}", state["prometheus_port"])),
        )?;
        let printed: Vec<String> = ["staging", "production"]
            .iter()
            .flat_map(|env| EDGE_KEYS.map(|key| format!("{env}_{key}")))
            .collect();
        for key in &printed {
            state.remove(key);
        }
        state.extend(parse_state(&seeded));
        for key in &printed {
            if !state.contains_key(key) {
                return Err(format!("seed.py printed no `{key}`:\n{seeded}"));
            }
        }
        Self::started(state, "moto", pid);
        Ok(())
    }

    fn start_postgres(&self, state: &mut State, bin: &Path) -> Result<()> {
        let data = self.dir.join("pg");
        let log = self.dir.join("pg.log");
        let as_root = process::is_root();
        // PostgreSQL refuses to run as root: run it as the `postgres` system user then.
        let wrap = |program: &str| {
            let mut cmd = if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join(program));
                c
            } else {
                Command::new(bin.join(program))
            };
            cmd.env_remove("PGDATA");
            cmd
        };
        if !data.join("PG_VERSION").exists() {
            let _ = std::fs::remove_dir_all(&data);
            std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
            std::fs::write(&log, "").map_err(|e| e.to_string())?;
            if as_root {
                process::run(
                    Command::new("chown")
                        .args(["-R", "postgres:postgres"])
                        .arg(&data)
                        .arg(&log),
                )?;
            }
            process::run(
                wrap("initdb")
                    .args([
                        "--auth=trust",
                        "--username=postgres",
                        "--encoding=UTF8",
                        "--no-sync",
                        "-D",
                    ])
                    .arg(&data),
            )?;
        }
        let port = process::free_port()?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            data.display()
        );
        process::run(
            wrap("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options, "-w", "-t", "60", "start"]),
        )?;
        let pid = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
            .ok_or("PostgreSQL started but wrote no postmaster.pid")?;
        state.insert("postgres_port".into(), port.to_string());
        Self::started(state, "postgres", pid);
        Ok(())
    }

    /// Client authentication: the sandbox's own superuser `postgres` (what the services, tests and suma's
    /// admin secrets use) is trusted on loopback and the socket; every other role must give its password
    /// (SCRAM) over TCP, so a rotated role password is really checked. Written and reloaded only when it
    /// differs, so an existing sandbox gets it at its next `up`.
    fn ensure_pg_auth(&self, bin: &Path) -> Result<()> {
        const PG_HBA: &str = "\
# Written by `cargo xtask sandbox up`: `postgres` is trusted, other roles prove their password.
local   all             all                                     trust
host    all             postgres        127.0.0.1/32            trust
host    all             postgres        ::1/128                 trust
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     trust
host    replication     postgres        127.0.0.1/32            trust
host    replication     postgres        ::1/128                 trust
";
        let data = self.dir.join("pg");
        let path = data.join("pg_hba.conf");
        if std::fs::read_to_string(&path).is_ok_and(|t| t == PG_HBA) {
            return Ok(());
        }
        // Overwriting in place keeps the file's owner (`postgres` when the sandbox runs as root).
        std::fs::write(&path, PG_HBA).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let mut reload = if process::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join("pg_ctl"));
            c
        } else {
            Command::new(bin.join("pg_ctl"))
        };
        process::run(reload.env_remove("PGDATA").arg("-D").arg(&data).arg("reload")).map(drop)
    }

    fn ensure_aiosmtpd(&self) -> Result<()> {
        let marker = self.venv().join(".aiosmtpd-version");
        if std::fs::read_to_string(&marker).is_ok_and(|v| v.trim() == AIOSMTPD_VERSION) {
            return Ok(());
        }
        eprintln!(
            "sandbox: installing aiosmtpd=={AIOSMTPD_VERSION} into {}",
            self.venv().display()
        );
        process::run(
            Command::new(self.venv().join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("aiosmtpd=={AIOSMTPD_VERSION}")),
        )?;
        std::fs::write(&marker, AIOSMTPD_VERSION).map_err(|e| e.to_string())
    }

    /// An SMTP server on loopback that stores every message it receives in the Maildir `mail/`, where
    /// tests (and people) read the auth-service's verification, reset and notification emails.
    fn start_smtp(&self, state: &mut State) -> Result<()> {
        let port = process::free_port()?;
        let log = self.dir.join("smtp.log");
        let pid = process::spawn_logged(
            Command::new(self.venv().join("bin/python"))
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(self.dir.join("mail")),
            &log,
        )?;
        process::wait_for_port(port, "smtp", Duration::from_secs(20), &log)?;
        state.insert("smtp_port".into(), port.to_string());
        Self::started(state, "smtp", pid);
        Ok(())
    }

    fn start_redis(&self, state: &mut State) -> Result<()> {
        let port = process::free_port()?;
        let log = self.dir.join("redis.log");
        let pid = process::spawn_logged(
            Command::new("redis-server").args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ]),
            &log,
        )?;
        process::wait_for_port(port, "redis", Duration::from_secs(20), &log)?;
        state.insert("redis_port".into(), port.to_string());
        Self::started(state, "redis", pid);
        Ok(())
    }

    /// The environments' databases, `auth` (staging) and `auth_production`, each owned by the role its
    /// tasks log in as (`auth_staging`, `auth_production`), which must give its password: so a rotation of
    /// the `database-url` secret really changes what the tasks connect with. The password is set when moto
    /// is seeded ([`Self::set_role_passwords`]), the only time the secrets are written from the state.
    fn ensure_databases(&self, state: &State, pg_bin: &Path) -> Result<()> {
        for (db, role) in DATABASES {
            let sql = format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN; END IF; END $$"
            );
            self.psql(state, pg_bin, "postgres", &sql)?;
            // `createdb` fails when the database exists, which is what we want on a restart.
            let _ = process::run(Command::new(pg_bin.join("createdb")).args([
                "-h",
                "127.0.0.1",
                "-p",
                &state["postgres_port"],
                "-U",
                "postgres",
                "-O",
                role,
                db,
            ]));
            // A database from an older sandbox was created by `postgres`: hand it over.
            self.psql(
                state,
                pg_bin,
                "postgres",
                &format!("ALTER DATABASE {db} OWNER TO {role}"),
            )?;
            self.psql(
                state,
                pg_bin,
                db,
                &format!(
                    "GRANT ALL ON SCHEMA public TO {role}; GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"
                ),
            )?;
        }
        Ok(())
    }

    /// Gives the tasks' roles the passwords the seeded `database-url` secrets hold.
    fn set_role_passwords(&self, state: &State) -> Result<()> {
        let pg_bin = ensure_postgres()?;
        for (_, role) in DATABASES {
            let password = &state[&format!("{role}_password")];
            self.psql(
                state,
                &pg_bin,
                "postgres",
                &format!("ALTER ROLE {role} WITH LOGIN PASSWORD '{password}'"),
            )?;
        }
        Ok(())
    }

    /// `psql -c SQL` as the superuser on database `db`.
    fn psql(&self, state: &State, pg_bin: &Path, db: &str, sql: &str) -> Result<()> {
        process::run(
            Command::new(pg_bin.join("psql"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &state["postgres_port"],
                    "-U",
                    "postgres",
                    "-d",
                    db,
                ])
                .args(["-v", "ON_ERROR_STOP=1", "-qtAc", sql])
                .env_remove("PGDATA")
                .env_remove("PGPASSWORD"),
        )
        .map(drop)
    }

    /// What seed.py stores in the secrets the task definition hands the service, per environment (JSON),
    /// and the admin login that may change the tasks' role password (the sandbox's trusted superuser).
    fn service_urls(state: &State) -> String {
        let env = |(db, role): (&str, &str), redis_db: u8| {
            format!(
                r#"{{"database_url": "postgres://{role}:{}@127.0.0.1:{port}/{db}", "db_admin": {{"username": "postgres", "password": "", "host": "127.0.0.1", "port": {port}, "dbname": "{db}", "engine": "postgres"}}, "redis_url": "redis://127.0.0.1:{}/{redis_db}", "smtp_url": "smtp://127.0.0.1:{}"}}"#,
                state[&format!("{role}_password")],
                state["redis_port"],
                state["smtp_port"],
                port = state["postgres_port"],
            )
        };
        format!(
            r#"{{"staging": {}, "production": {}}}"#,
            env(DATABASES[0], 0),
            env(DATABASES[1], 1)
        )
    }

    /// The ECS agent: runs the staging and production clusters' services as auth-service processes, and
    /// serves the overlay suma reaches moto through.
    fn start_agent(&self, state: &mut State) -> Result<()> {
        let port = Self::choose_port(state, "agent")?;
        let dir = self.dir.join("agent");
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let moto = format!("http://127.0.0.1:{}", state["moto_port"]);
        let mut cmd = Command::new(self.binary("ecs-agent"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--moto")
            .arg(&moto)
            .args(["--region", "eu-west-1", "--region", "eu-central-1"])
            .arg("--binary")
            .arg(self.binary("auth-service"))
            .arg("--dir")
            .arg(&dir);
        for cluster in AGENT_CLUSTERS {
            cmd.args(["--cluster", cluster]);
        }
        // What the sandbox adds to every task: the task role's credentials and the AWS endpoint (the
        // service reads its JWT keys itself), a key reload and JWKS cache age short enough for a rotation's
        // steps to take seconds, rate
        // limits and email verification off for the load generator, a short drain, quieter logs.
        let mut task_env: Vec<(String, String)> = self
            .aws_vars_at(&moto)
            .into_iter()
            .filter(|(k, _)| k != "AWS_REGION" && k != "AWS_DEFAULT_REGION")
            .collect();
        task_env.extend(
            [
                ("JWT_KEYS_RELOAD_INTERVAL", "2"),
                // A JWT rotation waits this long after every task publishes a key; 60 s by default.
                ("JWKS_MAX_AGE", "5"),
                ("RATE_LIMIT_LOGIN_PER_IP", "0"),
                ("RATE_LIMIT_LOGIN_PER_ACCOUNT", "0"),
                ("RATE_LIMIT_REFRESH_PER_IP", "0"),
                ("RATE_LIMIT_REGISTER_PER_IP", "0"),
                ("EMAIL_VERIFICATION", "optional"),
                ("SHUTDOWN_TIMEOUT", "5"),
                ("RUST_LOG", "info,sqlx=warn,tower_http=warn"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        for (k, v) in &task_env {
            cmd.arg("--task-env").arg(format!("{k}={v}"));
        }
        let log = self.dir.join("agent.log");
        let pid = process::spawn_logged(&mut cmd, &log)?;
        process::wait_for_port(port, "ecs-agent", Duration::from_secs(20), &log)?;
        Self::started(state, "agent", pid);
        Ok(())
    }

    /// One of the agent's plain-text answers (`/_agent/settled`, `/_agent/summary`): status and body.
    fn ask_agent(state: &State, path: &str) -> Option<(u16, String)> {
        let port = Self::port(state, "agent_port")?;
        let answer = crate::http::request(port, "GET", path, None, None).ok()?;
        Some((answer.status, answer.body.trim().to_owned()))
    }

    /// Waits until every service the agent runs has finished its rollout.
    fn wait_settled(&self, state: &State) -> Result<()> {
        let start = Instant::now();
        loop {
            let answer = Self::ask_agent(state, "/_agent/settled");
            if matches!(answer, Some((200, _))) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(180) {
                return Err(format!(
                    "the sandbox's services did not settle: {}; see {} and {}",
                    answer.map_or_else(|| "the agent does not answer".to_owned(), |(_, body)| body),
                    self.dir.join("agent.log").display(),
                    self.dir.join("agent/tasks").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `tasks: 4 healthy of 4` for the status lines.
    fn tasks_summary(&self, state: &State) -> String {
        Self::ask_agent(state, "/_agent/summary").map_or_else(|| "tasks: unknown".to_owned(), |(_, body)| body)
    }

    /// The Datadog stand-in: checks the keys in env.sh, answers monitors from `datadog-monitors.json`, records
    /// events in `datadog-events.jsonl`.
    fn start_datadog(&self, state: &mut State, vars: &[(String, String)]) -> Result<()> {
        let port = Self::port(state, "datadog_port").ok_or("no Datadog stand-in port chosen")?;
        let log = self.dir.join("datadog.log");
        let monitors = self.dir.join("datadog-monitors.json");
        if !monitors.exists() {
            std::fs::write(&monitors, "[]\n").map_err(|e| format!("cannot write {}: {e}", monitors.display()))?;
        }
        let pid = process::spawn_logged(
            Command::new(self.binary("datadog-stub"))
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--monitors")
                .arg(&monitors)
                .arg("--events")
                .arg(self.dir.join("datadog-events.jsonl"))
                .arg("--dashboards")
                .arg(self.dir.join("datadog-dashboards.json"))
                .arg("--writes")
                .arg(self.dir.join("datadog-writes.jsonl"))
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            &log,
        )?;
        process::wait_for_port(port, "datadog-stub", Duration::from_secs(20), &log)?;
        Self::started(state, "datadog", pid);
        Ok(())
    }

    /// The weighted proxy on the staging rule: each target group is served by its registered targets (the
    /// tasks the agent registered).
    fn start_proxy(&self, state: &mut State, vars: &[(String, String)]) -> Result<()> {
        let port = Self::port(state, "proxy_port").ok_or("no proxy port chosen")?;
        let log = self.dir.join("proxy.log");
        let pid = process::spawn_logged(
            Command::new(self.binary("weighted-proxy"))
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--rule-arn")
                .arg(&state["staging_rule_arn"])
                .arg("--region")
                .arg("eu-west-1")
                .arg("--target-group")
                .arg(&state["staging_stable_tg"])
                .arg("--target-group")
                .arg(&state["staging_canary_tg"])
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            &log,
        )?;
        process::wait_for_port(port, "weighted-proxy", Duration::from_secs(20), &log)?;
        Self::started(state, "proxy", pid);
        Ok(())
    }

    /// The edge: staging's DR ALB, production's ALB and DR ALB, and both environments' front doors, which
    /// follow their Route 53 failover records to the primary or the DR ALB (staging's primary ALB is the
    /// proxy).
    fn start_edge(&self, state: &mut State, vars: &[(String, String)]) -> Result<()> {
        let port = Self::port(state, "edge_port").ok_or("no edge port chosen")?;
        let at = |key: &str| format!("127.0.0.1:{}", state[key]);
        let url = |key: &str| format!("http://127.0.0.1:{}", state[key]);
        let alb = |listen: String, region: &str, rule: &str, groups: &[&str]| {
            let groups: Vec<&str> = groups.iter().map(|g| state[*g].as_str()).collect();
            format!("{listen}|{region}|{rule}|{}", groups.join(","))
        };
        let door = |listen: String, env: &str, primary: String, dr: String| {
            format!(
                "{listen}|{}|{}|{}={primary},{}={dr}",
                state[&format!("{env}_zone")],
                state[&format!("{env}_record")],
                state[&format!("{env}_primary_dns")],
                state[&format!("{env}_dr_dns")],
            )
        };
        let log = self.dir.join("edge.log");
        let pid = process::spawn_logged(
            Command::new(self.binary("edge"))
                .arg("--alb")
                .arg(alb(at("edge_staging_dr_port"), "eu-central-1", "-", &["staging_dr_tg"]))
                .arg("--alb")
                .arg(alb(
                    at("edge_production_port"),
                    "eu-west-1",
                    &state["production_rule_arn"],
                    &["production_stable_tg", "production_canary_tg"],
                ))
                .arg("--alb")
                .arg(alb(
                    at("edge_production_dr_port"),
                    "eu-central-1",
                    "-",
                    &["production_dr_tg"],
                ))
                .arg("--front-door")
                .arg(door(
                    at("edge_port"),
                    "staging",
                    url("proxy_port"),
                    url("edge_staging_dr_port"),
                ))
                .arg("--front-door")
                .arg(door(
                    at("edge_production_front_port"),
                    "production",
                    url("edge_production_port"),
                    url("edge_production_dr_port"),
                ))
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            &log,
        )?;
        process::wait_for_port(port, "edge", Duration::from_secs(20), &log)?;
        Self::started(state, "edge", pid);
        Ok(())
    }

    /// Debian's Prometheus, run directly (not as the system service) with its config and data here.
    fn start_prometheus(&self, state: &mut State) -> Result<()> {
        let port = Self::port(state, "prometheus_port").ok_or("no Prometheus port chosen")?;
        let dir = self.dir.join("prometheus");
        std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, prometheus_config(&self.dir.join("agent/scrape-targets.json")))
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let log = self.dir.join("prometheus.log");
        let pid = process::spawn_logged(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg("--storage.tsdb.retention.time=1d")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .current_dir(&dir),
            &log,
        )?;
        process::wait_for_port(port, "prometheus", Duration::from_secs(30), &log)?;
        let start = Instant::now();
        while !crate::http::request(port, "GET", "/-/ready", None, None).is_ok_and(|r| r.status == 200) {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("Prometheus did not become ready; see {}", log.display()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Self::started(state, "prometheus", pid);
        Ok(())
    }

    fn start_loadgen(&self, state: &mut State) -> Result<()> {
        let log = self.dir.join("loadgen.log");
        let pid = process::spawn_logged(
            Command::new(self.binary("loadgen"))
                .arg("--url")
                .arg(format!("http://127.0.0.1:{}", state["edge_port"]))
                .args(["--rate", LOAD_RATE]),
            &log,
        )?;
        std::thread::sleep(Duration::from_millis(300));
        if !process::pid_alive(pid) {
            return Err(format!(
                "the load generator exited at once: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Self::started(state, "loadgen", pid);
        Ok(())
    }

    /// The variables that point an AWS client at moto: its endpoint, the region and dummy credentials.
    /// suma and the tests reach moto through the agent's overlay (which shows them task counts and
    /// rollouts); before the agent runs, moto itself.
    fn aws_vars(&self, state: &State) -> Vec<(String, String)> {
        let port = state
            .get("agent_port")
            .filter(|_| Self::running(state, "agent"))
            .unwrap_or(&state["moto_port"]);
        self.aws_vars_at(&format!("http://127.0.0.1:{port}"))
    }

    /// The variables that point an AWS client at `endpoint`, the region and dummy credentials.
    fn aws_vars_at(&self, endpoint: &str) -> Vec<(String, String)> {
        let credentials = self.dir.join("aws-credentials");
        // Dummy credentials in a file of our own, so that a real profile on this machine is never used.
        let _ = std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
        );
        [
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_SESSION_TOKEN", "testing".to_owned()),
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_DEFAULT_REGION", "eu-west-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.display().to_string()),
            ("AWS_CONFIG_FILE", credentials.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The variables that point suma, the tests and the service at the sandbox.
    fn env_vars(&self, state: &State) -> Vec<(String, String)> {
        let url = |key: &str| format!("http://127.0.0.1:{}", state[key]);
        let datadog_keys = state
            .get("datadog_keys")
            .and_then(|k| k.split_once(':'))
            .unwrap_or_default();
        let vars = [
            ("SUMA_CONFIG", self.dir.join("suma.yaml").display().to_string()),
            ("SUMA_STATE_DIR", self.dir.join("suma-state").display().to_string()),
            (
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:{}/postgres", state["postgres_port"]),
            ),
            ("REDIS_URL", format!("redis://127.0.0.1:{}/", state["redis_port"])),
            ("SMTP_URL", format!("smtp://127.0.0.1:{}", state["smtp_port"])),
            ("SMTP_SINK_DIR", self.dir.join("mail").display().to_string()),
            // The service as clients see it: staging's front door (its Route 53 record, then the ALB it names).
            ("AUTH_URL", url("edge_port")),
            ("AUTH_PRODUCTION_URL", url("edge_production_front_port")),
            // Staging's primary ALB alone (the weighted proxy).
            ("AUTH_ALB_URL", url("proxy_port")),
            // The ECS agent's overlay: `/_agent/tasks` lists every task with its address and version.
            ("SUMA_SANDBOX_AGENT_URL", url("agent_port")),
            // What the services' tokens carry, so that tests can mint tokens they accept.
            ("AUTH_JWT_ISSUER", JWT_ISSUER.to_owned()),
            ("AUTH_JWT_AUDIENCE", JWT_AUDIENCE.to_owned()),
            ("PROMETHEUS_URL", url("prometheus_port")),
            // Datadog through its stand-in: keys generated per sandbox, events recorded in a file.
            ("SUMA_DATADOG_URL", url("datadog_port")),
            ("DD_API_KEY", datadog_keys.0.to_owned()),
            ("DD_APP_KEY", datadog_keys.1.to_owned()),
            (
                "SUMA_SANDBOX_DATADOG_EVENTS",
                self.dir.join("datadog-events.jsonl").display().to_string(),
            ),
            (
                "SUMA_SANDBOX_DATADOG_MONITORS",
                self.dir.join("datadog-monitors.json").display().to_string(),
            ),
            // Every write the stand-in received (monitors, dashboards, events), one JSON object per line.
            (
                "SUMA_SANDBOX_DATADOG_WRITES",
                self.dir.join("datadog-writes.jsonl").display().to_string(),
            ),
            // Tests run xtask's tasks with this very binary.
            (
                "SUMA_SANDBOX_XTASK",
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ];
        let mut all = self.aws_vars(state);
        all.extend(vars.into_iter().map(|(k, v)| (k.to_owned(), v)));
        all
    }

    fn write_env_sh(&self, vars: &[(String, String)]) -> Result<()> {
        let mut text = String::from("# Generated by `cargo xtask sandbox up`: `. target/sandbox/env.sh` points suma at the sandbox.\nunset AWS_PROFILE\n");
        for (k, v) in vars {
            text.push_str(&format!("export {k}='{v}'\n"));
        }
        std::fs::write(self.dir.join("env.sh"), text).map_err(|e| format!("cannot write env.sh: {e}"))
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

/// Scrapes every task every second, as the agent lists them. Their metrics carry the `deployment` label
/// themselves; the agent's target labels are prefixed `ecs_`, so none turns theirs into `exported_*`.
fn prometheus_config(targets: &Path) -> String {
    format!(
        "# Generated by `cargo xtask sandbox up`.\n\
         global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: auth-service\n    metrics_path: /metrics\n    file_sd_configs:\n      \
         - files: ['{}']\n        refresh_interval: 5s\n",
        targets.display()
    )
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

/// The directory of PostgreSQL's server binaries, installing the Debian package when absent.
pub fn ensure_postgres() -> Result<PathBuf> {
    let find = || {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    };
    if let Some(bin) = find() {
        return Ok(bin);
    }
    apt_install(&["postgresql"])?;
    find().ok_or_else(|| "postgresql was installed but no initdb was found under /usr/lib/postgresql".to_owned())
}

/// Installs `package` from Debian when `program` is not on the PATH.
fn ensure_program(program: &str, package: &str) -> Result<()> {
    if process::which(program).is_some() {
        return Ok(());
    }
    apt_install(&[package])
}

fn apt_install(packages: &[&str]) -> Result<()> {
    if !process::is_root() {
        return Err(format!(
            "missing {}: install with `sudo apt-get install -y {}`",
            packages.join(", "),
            packages.join(" ")
        ));
    }
    eprintln!("sandbox: installing {} from Debian", packages.join(", "));
    process::run(Command::new("apt-get").args(["update", "-qq"]))?;
    process::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages),
    )?;
    Ok(())
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
    if !was_up {
        sandbox.down()?;
    }
    passed
}

/// `cargo xtask test`: the whole workspace's tests against a sandbox.
pub fn test(root: PathBuf, extra: &[&str]) -> Result<()> {
    let passed = with_test_sandbox(&root, |vars| {
        let run = |args: &[&str], extra: &[&str]| {
            process::run_visible(
                crate::cargo::command()
                    .current_dir(&root)
                    .args(args)
                    .args(extra)
                    .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            )
        };
        Ok(run(&["test", "--workspace", "--all-targets", "--no-fail-fast"], extra)?
            && run(&["test", "--workspace", "--doc"], &[])?)
    })?;
    match passed {
        true => Ok(()),
        false => Err("tests failed".to_owned()),
    }
}

/// `cargo xtask demo`: the main job end to end on the sandbox, with readable output.
pub fn demo(root: PathBuf) -> Result<()> {
    let sandbox = Sandbox::new(root.clone());
    let vars = sandbox.up()?;
    // The same single build as `up`'s: nothing compiles again.
    if !build_workspace(&root, BUILD_BINARIES)? {
        return Err("the workspace does not build".to_owned());
    }
    let target = target_dir(&root);
    let suma = target.join("debug/suma");
    let steps: &[(&str, &[&str])] = &[
        ("Validate the configuration", &["config", "validate"]),
        ("Staging at a glance", &["status", "--env", "staging"]),
        ("Production at a glance", &["status", "--env", "production"]),
        (
            "Who holds the production lock",
            &["lock", "status", "--env", "production"],
        ),
        ("Recent production operations", &["ops", "list", "--env", "production"]),
    ];
    for (title, args) in steps {
        println!("\n=== {title}: suma {}", args.join(" "));
        let ok = process::run_visible(
            Command::new(&suma)
                .args(*args)
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )?;
        if !ok {
            return Err(format!("`suma {}` failed", args.join(" ")));
        }
    }
    auth_demo(&vars)?;
    canary_demo(&sandbox, &suma, &vars)?;
    let ops = crate::demo_ops::Demo {
        dir: &sandbox.dir,
        python: sandbox.venv().join("bin/python"),
        seed: root.join("xtask/sandbox/seed.py"),
        suma: &suma,
        vars: &vars,
    };
    crate::demo_ops::secrets_demo(&ops)?;
    crate::demo_ops::dr_demo(&ops)?;
    crate::demo_runbooks::runbook_demo(&ops)?;
    println!("\nThe sandbox is still running. Try it yourself:\n  . {}\n  suma status --env production\nStop it with `cargo xtask sandbox down`.", sandbox.dir.join("env.sh").display());
    Ok(())
}

/// Two canaries on staging: a healthy build (promoted) and one answering 5% errors (rolled back by the
/// analysis), then the events Datadog's stand-in received.
fn canary_demo(sandbox: &Sandbox, suma: &Path, vars: &[(String, String)]) -> Result<()> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // A faulty release is a faulty image: the agent runs a tag ending in `-errors` with 5% errors.
    let runs = [
        ("A healthy canary: promoted", format!("demo-{secs}"), 0),
        (
            "A canary answering 5% errors: rolled back",
            format!("demo-{secs}-errors"),
            1,
        ),
    ];
    let result = (|| {
        for (title, version, expected) in &runs {
            let image = format!("registry.example/auth-service:{version}");
            let args = ["deploy", "canary", "--env", "staging", "--image", &image, "--yes"];
            println!("\n=== {title}: suma {}", args.join(" "));
            let status = Command::new(suma)
                .args(args)
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("SUMA_ACTOR", "demo")
                .status()
                .map_err(|e| format!("cannot run suma: {e}"))?;
            if status.code() != Some(*expected) {
                return Err(format!(
                    "`suma {}` exited {:?}, expected {expected}",
                    args.join(" "),
                    status.code()
                ));
            }
        }
        Ok(())
    })();
    result?;
    println!("\n=== What Datadog was told (the sandbox's stand-in records events)");
    let events = std::fs::read_to_string(sandbox.dir.join("datadog-events.jsonl")).unwrap_or_default();
    for line in events
        .lines()
        .rev()
        .take(runs.len())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let title = crate::http::json_str(line, "title").unwrap_or(line);
        println!("  {title}");
    }
    Ok(())
}

/// Registration, login, refresh and `/me` against the sandbox's auth-service.
fn auth_demo(vars: &[(String, String)]) -> Result<()> {
    use crate::http::{json_str, request};
    let url = vars
        .iter()
        .find(|(k, _)| k == "AUTH_URL")
        .map(|(_, v)| v.as_str())
        .ok_or("AUTH_URL is not set")?;
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("AUTH_URL has no port")?;
    println!("\n=== auth-service at {url}: register, login, refresh, /me");
    // A fresh account and password each run; nothing secret is fixed in the repository.
    let nonce = std::fs::read("/proc/sys/kernel/random/uuid").map_err(|e| e.to_string())?;
    let nonce = String::from_utf8_lossy(&nonce).trim().replace('-', "");
    let email = format!("demo-{}@example.com", &nonce[..8]);
    let credentials = format!(
        r#"{{"email":"{email}","password":"sandbox {} battery staple"}}"#,
        &nonce[8..24]
    );
    let show = |what: &str, status: u16, detail: &str| println!("{what:<28} {status}  {detail}");

    let r = request(port, "POST", "/api/auth/register", Some(&credentials), None)?;
    show("POST /api/auth/register", r.status, &email);
    let r = request(port, "POST", "/api/auth/login", Some(&credentials), None)?;
    let access = json_str(&r.body, "access_token")
        .ok_or_else(|| format!("login failed: {} {}", r.status, r.body))?
        .to_owned();
    let refresh = json_str(&r.body, "refresh_token")
        .ok_or("login gave no refresh token")?
        .to_owned();
    show(
        "POST /api/auth/login",
        r.status,
        &format!("session {}", json_str(&r.body, "session_id").unwrap_or("?")),
    );
    let r = request(
        port,
        "POST",
        "/api/auth/refresh",
        Some(&format!(r#"{{"refresh_token":"{refresh}"}}"#)),
        None,
    )?;
    let rotated = json_str(&r.body, "refresh_token").is_some_and(|t| t != refresh);
    show(
        "POST /api/auth/refresh",
        r.status,
        if rotated {
            "refresh token rotated"
        } else {
            "NOT rotated"
        },
    );
    let r = request(port, "GET", "/api/auth/me", None, Some(&access))?;
    show("GET /api/auth/me", r.status, &r.body);
    let r = request(
        port,
        "POST",
        "/api/auth/refresh",
        Some(&format!(r#"{{"refresh_token":"{refresh}"}}"#)),
        None,
    )?;
    show(
        "reuse of the old refresh",
        r.status,
        "within the grace window: same successor; later: family revoked",
    );
    let r = request(port, "GET", "/version", None, None)?;
    show("GET /version", r.status, &r.body);
    if !rotated {
        return Err("the refresh token was not rotated".to_owned());
    }
    Ok(())
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
        let config = prometheus_config(Path::new("/sandbox/agent/scrape-targets.json"));
        assert!(config.contains("scrape_interval: 1s"));
        assert!(config.contains("files: ['/sandbox/agent/scrape-targets.json']"));
    }
}
