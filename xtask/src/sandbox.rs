//! The local sandbox: a moto server standing in for the AWS APIs, PostgreSQL and Redis, all on loopback,
//! seeded with the service's topology for `staging` and `production`. Idempotent: `up` starts only what
//! is not running, `down` stops only the processes `up` recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Result};

/// moto's version is pinned: its behaviour is part of what the tests assert against.
const MOTO_VERSION: &str = "5.2.5";

pub struct Sandbox {
    root: PathBuf,
    dir: PathBuf,
}

/// Recorded pids and ports, as `KEY=VALUE` lines in `state`.
type State = BTreeMap<String, String>;

/// What `up` starts, in start order.
const COMPONENTS: [&str; 4] = ["moto", "postgres", "redis", "auth"];

impl Sandbox {
    pub fn new(root: PathBuf) -> Self {
        let dir = std::env::var_os("SUMA_SANDBOX_DIR")
            .map_or_else(|| root.join("target/sandbox"), PathBuf::from);
        Self { root, dir }
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn load_state(&self) -> State {
        std::fs::read_to_string(self.state_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn save_state(&self, state: &State) -> Result<()> {
        let text: String = state.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(self.state_path(), text)
            .map_err(|e| format!("cannot write sandbox state: {e}"))
    }

    fn port(state: &State, key: &str) -> Option<u16> {
        state.get(key).and_then(|v| v.parse().ok())
    }

    fn pid(state: &State, key: &str) -> Option<u32> {
        state.get(key).and_then(|v| v.parse().ok())
    }

    /// A component is up when its recorded process is alive and its port answers.
    fn running(state: &State, name: &str) -> bool {
        match (
            Self::pid(state, &format!("{name}_pid")),
            Self::port(state, &format!("{name}_port")),
        ) {
            (Some(pid), Some(port)) => process::pid_alive(pid) && process::port_open(port),
            _ => false,
        }
    }

    pub fn is_up(&self) -> bool {
        let state = self.load_state();
        COMPONENTS.iter().all(|c| Self::running(&state, c)) && self.dir.join("env.sh").exists()
    }

    pub fn up(&self) -> Result<Vec<(String, String)>> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        self.ensure_moto()?;
        let pg_bin = ensure_postgres()?;
        ensure_redis()?;

        let mut state = self.load_state();
        // The service's port is chosen first: the seeded configuration points `url` at it.
        let auth_port = match Self::port(&state, "auth_port") {
            Some(port) if Self::running(&state, "auth") || !process::port_open(port) => port,
            _ => process::free_port()?,
        };
        if !Self::running(&state, "moto") {
            self.start_moto(&mut state, auth_port)?;
        }
        if !Self::running(&state, "postgres") {
            self.start_postgres(&mut state, &pg_bin)?;
        }
        if !Self::running(&state, "redis") {
            self.start_redis(&mut state)?;
        }
        self.save_state(&state)?;
        if !Self::running(&state, "auth") {
            self.start_auth(&mut state, &pg_bin, auth_port)?;
            self.save_state(&state)?;
        }
        let vars = self.env_vars(&state);
        self.write_env_sh(&vars)?;
        eprintln!(
            "sandbox up: moto :{} postgres :{} redis :{} auth-service :{}\n  use it with: . {}",
            state["moto_port"],
            state["postgres_port"],
            state["redis_port"],
            state["auth_port"],
            self.dir.join("env.sh").display()
        );
        Ok(vars)
    }

    pub fn down(&self) -> Result<()> {
        let state = self.load_state();
        if let Some(pid) = Self::pid(&state, "auth_pid") {
            process::stop_pid(pid, Duration::from_secs(25));
        }
        if let Some(pid) = Self::pid(&state, "redis_pid") {
            process::stop_pid(pid, Duration::from_secs(5));
        }
        if let Some(pid) = Self::pid(&state, "moto_pid") {
            process::stop_pid(pid, Duration::from_secs(5));
        }
        if let Some(pid) = Self::pid(&state, "postgres_pid") {
            // SIGTERM is PostgreSQL's "smart" shutdown; SIGINT ("fast") does not wait for clients.
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(pid.to_string())
                .status();
            process::stop_pid(pid, Duration::from_secs(10));
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
            "aws-credentials",
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
        for name in COMPONENTS {
            let port = state
                .get(&format!("{name}_port"))
                .map_or("-", String::as_str);
            let up = if Self::running(&state, name) {
                "running"
            } else {
                "stopped"
            };
            println!("{name:<9} {up:<8} port {port}");
        }
        Ok(())
    }

    /// The moto venv; `SUMA_SANDBOX_VENV` moves it out of the work tree so CI can keep it between runs.
    fn venv(&self) -> PathBuf {
        std::env::var_os("SUMA_SANDBOX_VENV").map_or_else(|| self.dir.join("venv"), PathBuf::from)
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

    fn start_moto(&self, state: &mut State, auth_port: u16) -> Result<()> {
        let port = process::free_port()?;
        let log = self.dir.join("moto.log");
        let pid = process::spawn_logged(
            Command::new(self.venv().join("bin/moto_server")).args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]),
            &log,
        )?;
        process::wait_for_port(port, "moto", Duration::from_secs(60), &log)?;
        state.insert("moto_pid".into(), pid.to_string());
        state.insert("moto_port".into(), port.to_string());
        // A fresh moto is empty: seed it and write the matching configuration.
        eprintln!("sandbox: seeding moto with the staging and production topology");
        process::run(
            Command::new(self.venv().join("bin/python"))
                .arg(self.root.join("xtask/sandbox/seed.py"))
                .arg(format!("http://127.0.0.1:{port}"))
                .arg(self.dir.join("suma.yaml"))
                .arg(format!("http://127.0.0.1:{auth_port}")),
        )?;
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
        state.insert("postgres_pid".into(), pid.to_string());
        state.insert("postgres_port".into(), port.to_string());
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
        state.insert("redis_pid".into(), pid.to_string());
        state.insert("redis_port".into(), port.to_string());
        Ok(())
    }

    /// Builds and starts one auth-service against the sandbox's PostgreSQL (database `auth`) and Redis
    /// (key prefix `sandbox:`), with a signing key generated here and never committed.
    fn start_auth(&self, state: &mut State, pg_bin: &Path, port: u16) -> Result<()> {
        eprintln!("sandbox: building and starting auth-service");
        process::run(cargo().current_dir(&self.root).args([
            "build",
            "--quiet",
            "--package",
            "auth-service",
            "--bin",
            "auth-service",
        ]))?;
        let binary = target_dir(&self.root).join("debug/auth-service");
        let dir = self.dir.join("auth");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let key = dir.join("signing.pem");
        if !key.exists() {
            process::run(Command::new(&binary).arg("keygen").arg("--out").arg(&key))?;
        }
        let pg_port = &state["postgres_port"];
        // `createdb` fails when the database exists, which is what we want on a restart.
        let _ = process::run(Command::new(pg_bin.join("createdb")).args([
            "-h",
            "127.0.0.1",
            "-p",
            pg_port,
            "-U",
            "postgres",
            "auth",
        ]));
        let log = self.dir.join("auth.log");
        let pid = process::spawn_logged(
            Command::new(&binary)
                .arg("serve")
                .env(
                    "DATABASE_URL",
                    format!("postgres://postgres@127.0.0.1:{pg_port}/auth"),
                )
                .env(
                    "REDIS_URL",
                    format!("redis://127.0.0.1:{}/", state["redis_port"]),
                )
                .env("REDIS_KEY_PREFIX", "sandbox:")
                .env("BIND_ADDR", "127.0.0.1")
                .env("PORT", port.to_string())
                .env("APP_ENV", "sandbox")
                .env("DEPLOYMENT_LABEL", "stable")
                .env("JWT_SIGNING_KEY_FILE", &key),
            &log,
        )?;
        process::wait_for_port(port, "auth-service", Duration::from_secs(60), &log)?;
        let start = std::time::Instant::now();
        loop {
            match crate::http::request(port, "GET", "/ready", None, None) {
                Ok(r) if r.status == 200 => break,
                _ if start.elapsed() > Duration::from_secs(60) => {
                    return Err(format!(
                        "auth-service did not become ready; see {}",
                        log.display()
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        state.insert("auth_pid".into(), pid.to_string());
        state.insert("auth_port".into(), port.to_string());
        Ok(())
    }

    /// The variables that point suma, the tests and the service at the sandbox.
    fn env_vars(&self, state: &State) -> Vec<(String, String)> {
        let credentials = self.dir.join("aws-credentials");
        // Dummy credentials in a file of our own, so that a real profile on this machine is never used.
        let _ = std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
        );
        let vars = [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", state["moto_port"]),
            ),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_SESSION_TOKEN", "testing".to_owned()),
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_DEFAULT_REGION", "eu-west-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.display().to_string(),
            ),
            ("AWS_CONFIG_FILE", credentials.display().to_string()),
            (
                "SUMA_CONFIG",
                self.dir.join("suma.yaml").display().to_string(),
            ),
            (
                "SUMA_STATE_DIR",
                self.dir.join("suma-state").display().to_string(),
            ),
            (
                "DATABASE_URL",
                format!(
                    "postgres://postgres@127.0.0.1:{}/postgres",
                    state["postgres_port"]
                ),
            ),
            (
                "REDIS_URL",
                format!("redis://127.0.0.1:{}/", state["redis_port"]),
            ),
            (
                "AUTH_URL",
                format!("http://127.0.0.1:{}", state["auth_port"]),
            ),
        ];
        vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn write_env_sh(&self, vars: &[(String, String)]) -> Result<()> {
        let mut text = String::from("# Generated by `cargo xtask sandbox up`: `. target/sandbox/env.sh` points suma at the sandbox.\nunset AWS_PROFILE\n");
        for (k, v) in vars {
            text.push_str(&format!("export {k}='{v}'\n"));
        }
        std::fs::write(self.dir.join("env.sh"), text)
            .map_err(|e| format!("cannot write env.sh: {e}"))
    }
}

/// The directory of PostgreSQL's server binaries, installing the Debian package when absent.
fn ensure_postgres() -> Result<PathBuf> {
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
    find().ok_or_else(|| {
        "postgresql was installed but no initdb was found under /usr/lib/postgresql".to_owned()
    })
}

fn ensure_redis() -> Result<()> {
    if process::which("redis-server").is_some() {
        return Ok(());
    }
    apt_install(&["redis-server"])
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

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo xtask test`: the whole workspace's tests against a sandbox.
pub fn test(root: PathBuf, extra: &[&str]) -> Result<()> {
    let sandbox = Sandbox::new(root.clone());
    let was_up = sandbox.is_up();
    let vars = sandbox.up()?;
    let passed = process::run_visible(
        cargo()
            .current_dir(&root)
            .args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
            .args(extra)
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    let doc = match passed {
        Ok(true) => process::run_visible(
            cargo()
                .current_dir(&root)
                .args(["test", "--workspace", "--doc"])
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        ),
        other => other,
    };
    if !was_up {
        sandbox.down()?;
    }
    match doc? {
        true => Ok(()),
        false => Err("tests failed".to_owned()),
    }
}

/// `cargo xtask demo`: the main job end to end on the sandbox, with readable output.
pub fn demo(root: PathBuf) -> Result<()> {
    let sandbox = Sandbox::new(root.clone());
    let vars = sandbox.up()?;
    process::run(cargo().current_dir(&root).args([
        "build",
        "--quiet",
        "--package",
        "suma",
        "--bin",
        "suma",
    ]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let suma = target.join("debug/suma");
    let steps: &[(&str, &[&str])] = &[
        ("Validate the configuration", &["config", "validate"]),
        ("Staging at a glance", &["status", "--env", "staging"]),
        ("Production at a glance", &["status", "--env", "production"]),
        (
            "Who holds the production lock",
            &["lock", "status", "--env", "production"],
        ),
        (
            "Recent production operations",
            &["ops", "list", "--env", "production"],
        ),
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
    println!("\nThe sandbox is still running. Try it yourself:\n  . {}\n  suma status --env production\nStop it with `cargo xtask sandbox down`.", sandbox.dir.join("env.sh").display());
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
