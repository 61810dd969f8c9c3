//! The operations part of `cargo xtask demo`: secret rotation (staging's status, a JWT signing-key rotation
//! the running services pick up, a PostgreSQL role password whose old value stops working) and DR (a
//! readiness check, a failover and a failback on an environment seeded for the demo, with the replica lag
//! measured on a real PostgreSQL streaming replica of the sandbox's database).
//!
//! Re-runnable on the same sandbox: every run seeds new names (role, secrets, DR environment) into its own
//! configuration files next to the sandbox's, and a JWT rotation refused because an earlier run rotated
//! inside the previous key's overlap is shown as what it is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::http::{json_str, request};
use crate::process::{self, Result};

/// Where the demo finds the sandbox and suma.
pub struct Demo<'a> {
    /// The sandbox directory (`target/sandbox`): its suma.yaml, and the demo's own files.
    pub dir: &'a Path,
    /// The sandbox's Python (with boto3), for seed.py.
    pub python: PathBuf,
    pub seed: PathBuf,
    pub suma: &'a Path,
    pub vars: &'a [(String, String)],
}

impl Demo<'_> {
    fn var(&self, name: &str) -> Result<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("{name} is not set by the sandbox"))
    }

    fn port_of(&self, name: &str) -> Result<u16> {
        let url = self.var(name)?;
        url.trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("{name} `{url}` has no port"))
    }

    pub(crate) fn suma_cmd(&self, config: Option<&Path>, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.suma);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(args)
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("SUMA_ACTOR", "demo");
        cmd
    }

    /// Runs `suma ARGS` in view, under a title; returns its exit code.
    pub(crate) fn show(
        &self,
        title: &str,
        config: Option<&Path>,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<i32> {
        println!("\n=== {title}: suma {}", args.join(" "));
        let code = crate::terminal::run_fitting(self.suma_cmd(config, args).envs(extra.iter().copied()))?;
        Ok(code.unwrap_or(-1))
    }

    pub(crate) fn expect(
        &self,
        title: &str,
        config: Option<&Path>,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<()> {
        match self.show(title, config, args, extra)? {
            0 => Ok(()),
            code => Err(format!("`suma {}` exited {code}", args.join(" "))),
        }
    }

    /// Runs seed.py's `--demo-config KIND ...` and returns the environment it wrote.
    fn seed(&self, kind: &str, output: &Path, nonce: &str, rest: &[&str]) -> Result<String> {
        let out = process::run(
            Command::new(&self.python)
                .arg(&self.seed)
                .args([
                    "--demo-config",
                    kind,
                    self.var("AWS_ENDPOINT_URL")?,
                    self.var("SUMA_CONFIG")?,
                ])
                .arg(output)
                .arg(nonce)
                .args(rest),
        )?;
        out.lines()
            .find_map(|l| l.strip_prefix("env="))
            .map(str::to_owned)
            .ok_or_else(|| format!("seed.py named no environment:\n{out}"))
    }
}

/// 8 fresh hex characters, so each run's names are its own.
fn nonce() -> Result<String> {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").map_err(|e| e.to_string())?;
    Ok(uuid.trim().replace('-', "")[..8].to_owned())
}

/// A program of the sandbox's PostgreSQL, as the `postgres` system user when running as root (PostgreSQL
/// refuses root).
fn pg(pg_bin: &Path, program: &str) -> Command {
    let mut cmd = if process::is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin.join(program));
        c
    } else {
        Command::new(pg_bin.join(program))
    };
    cmd.env_remove("PGDATA");
    cmd
}

/// The kid a service signs with, from its `/version`.
fn signing_kid(port: u16) -> Result<String> {
    let r = request(port, "GET", "/version", None, None)?;
    json_str(&r.body, "signing_kid")
        .map(str::to_owned)
        .ok_or_else(|| format!("/version gave no signing_kid: {} {}", r.status, r.body))
}

/// Staging's secrets against policy, a JWT signing-key rotation the running services pick up, and a
/// database password rotation whose old password stops working.
pub fn secrets_demo(demo: &Demo<'_>) -> Result<()> {
    demo.expect(
        "Staging's secrets against their rotation policy",
        None,
        &["secrets", "status", "--env", "staging"],
        &[],
    )?;

    // The JWT key: every staging task loads it from staging's secret and reloads every 2 s; the proxy
    // (the ALB) takes the tasks in turn, so a run of answers covers them all.
    let proxy = demo.port_of("AUTH_URL")?;
    let before = signing_kid(proxy)?;
    let args = ["secrets", "rotate", "jwt-signing-key", "--env", "staging", "--yes"];
    println!(
        "\n=== Rotate staging's JWT signing key (the services sign with `{before}`): suma {}",
        args.join(" ")
    );
    let out = demo
        .suma_cmd(None, &args)
        .output()
        .map_err(|e| format!("cannot run suma: {e}"))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    match out.status.code() {
        Some(0) => {
            // The rotation waited for every task; eight answers in a row through the proxy confirm it.
            let start = Instant::now();
            let kids = loop {
                let kids: Vec<String> = (0..8).map(|_| signing_kid(proxy)).collect::<Result<_>>()?;
                if kids.iter().all(|k| *k != before) || start.elapsed() > Duration::from_secs(15) {
                    break kids;
                }
                std::thread::sleep(Duration::from_millis(500));
            };
            if kids.contains(&before) {
                return Err(format!("a staging task still signs with `{before}`"));
            }
            println!(
                "  every staging task now signs with `{}`; `{before}` still verifies until retired",
                kids[0]
            );
        }
        Some(3) if stderr.contains("rotated recently") => println!(
            "  (refused: an earlier run rotated this key inside the previous key's overlap, and a second rotation \
             would drop a key that signed still-valid tokens; the services keep signing with `{before}`)"
        ),
        code => return Err(format!("`suma {}` exited {code:?}", args.join(" "))),
    }

    // A PostgreSQL role's password: a role and its secrets of this run's own.
    let pg_bin = crate::sandbox::ensure_postgres()?;
    let pg_port = demo.port_of("DATABASE_URL")?;
    let nonce = nonce()?;
    let role = format!("demo_app_{nonce}");
    let password = format!("demo-{nonce}-initial-password");
    process::psql(
        &pg_bin,
        pg_port,
        "postgres",
        None,
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
    )?;
    let config = demo.dir.join("demo-db.yaml");
    let env = demo.seed("db", &config, &nonce, &[&role, &password, &pg_port.to_string()])?;
    process::psql(&pg_bin, pg_port, &role, Some(&password), "postgres", "SELECT 1")
        .map_err(|e| format!("the role `{role}` cannot log in before the rotation: {e}"))?;
    demo.expect(
        &format!("Rotate the password of the PostgreSQL role `{role}` (its credentials are a secret)"),
        Some(&config),
        &["secrets", "rotate", "db-password", "--env", &env, "--yes"],
        &[],
    )?;
    match process::psql(&pg_bin, pg_port, &role, Some(&password), "postgres", "SELECT 1") {
        Err(refusal) if refusal.contains("password authentication failed") => {
            println!("  logging in as `{role}` with the old password: refused (password authentication failed)");
        }
        Err(other) => return Err(format!("logging in with the old password failed unexpectedly: {other}")),
        Ok(_) => return Err(format!("`{role}` still logs in with the old password")),
    }
    Ok(())
}

/// A PostgreSQL streaming replica of the sandbox's database, stopped on drop: what `dr check` measures the
/// replica lag on (moto's RDS replica has no server behind it).
struct StreamingReplica {
    pg_bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl StreamingReplica {
    fn start(pg_bin: &Path, dir: &Path, primary_port: u16) -> Result<Self> {
        let data = dir.join("data");
        if data.join("postmaster.pid").exists() {
            // A run that was killed left it running.
            let _ = process::run(
                pg(pg_bin, "pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "stop"]),
            );
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if process::is_root() {
            process::run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir))?;
        }
        process::run(
            pg(pg_bin, "pg_basebackup")
                .args(["-h", "127.0.0.1", "-p", &primary_port.to_string(), "-U", "postgres"])
                .args(["-R", "-X", "stream", "-c", "fast", "-D"])
                .arg(&data),
        )?;
        let port = process::free_port()?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=300 -c fsync=off",
            data.display()
        );
        process::run(
            pg(pg_bin, "pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]),
        )?;
        Ok(Self {
            pg_bin: pg_bin.to_owned(),
            data,
            port,
        })
    }

    /// Its URL, signed into `database`.
    fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for StreamingReplica {
    fn drop(&mut self) {
        let _ = process::run(
            pg(&self.pg_bin, "pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "stop"]),
        );
    }
}

/// DR on an environment seeded for this run: readiness, a failover to the DR region and a failback.
pub fn dr_demo(demo: &Demo<'_>) -> Result<()> {
    let nonce = nonce()?;
    let config = demo.dir.join("demo-dr.yaml");
    let env = demo.seed(
        "dr",
        &config,
        &nonce[..6],
        &[demo.var("AUTH_URL")?, demo.var("PROMETHEUS_URL")?],
    )?;
    println!(
        "\n=== DR on `{env}`, seeded for this run (both regions, RDS primary and cross-region replica, Route 53 \
         failover records), its replica lag measured on a streaming replica of the sandbox's PostgreSQL"
    );
    let pg_bin = crate::sandbox::ensure_postgres()?;
    // A database of its own stands for the service's: the failback's catch-up waits until nothing is
    // connected to it. Made before the replica's base backup, so the replica has it too ("already
    // exists" from an earlier run is fine).
    let admin = demo.var("DATABASE_URL")?.to_owned();
    let _ = process::run(
        pg(&pg_bin, "psql")
            .arg(&admin)
            .args(["-tAc", "CREATE DATABASE suma_dr_demo"]),
    );
    let replica = StreamingReplica::start(&pg_bin, &demo.dir.join("demo-replica"), demo.port_of("DATABASE_URL")?)?;
    let replica_url = replica.url_of("suma_dr_demo");
    let primary_url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/suma_dr_demo"),
        None => admin.clone(),
    };
    // moto promotes no server: the DR instance's endpoint reaches the sandbox's PostgreSQL (what DR
    // tasks write to), and the primary-region instance the failback rebuilds reaches the replica,
    // which replays everything written there, so the failback's catch-up reads real WAL positions.
    let connect_to = format!(
        "eu-west-1.rds.amazonaws.com=127.0.0.1:{},{}",
        replica.port,
        demo.var("SUMA_DB_CONNECT_TO")?
    );
    let lag = [
        ("SUMA_DR_REPLICA_URL", replica_url.as_str()),
        ("SUMA_DR_PRIMARY_URL", primary_url.as_str()),
        ("SUMA_DB_CONNECT_TO", connect_to.as_str()),
    ];
    demo.expect("DR readiness", Some(&config), &["dr", "check", "--env", &env], &lag)?;
    demo.expect(
        "Fail over to the DR region",
        Some(&config),
        &["dr", "failover", "--env", &env, "--yes"],
        &lag,
    )?;
    demo.expect(
        "Fail back to the primary region",
        Some(&config),
        &["dr", "failback", "--env", &env, "--yes"],
        &lag,
    )?;
    demo.expect(
        "What was done, from the journal",
        Some(&config),
        &["ops", "list", "--env", &env],
        &[],
    )?;
    drop(replica);
    Ok(())
}
