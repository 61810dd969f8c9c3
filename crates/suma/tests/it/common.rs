//! Shared helpers of the integration tests: the sandbox's settings and running the real `suma` binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Whether `cargo xtask test` (or `. target/sandbox/env.sh`) exported the sandbox's variables.
pub fn sandbox_is_up() -> bool {
    std::env::var_os("AWS_ENDPOINT_URL").is_some() && std::env::var_os("SUMA_CONFIG").is_some()
}

/// The first line of a test that needs the sandbox: without it, the test says so and returns.
#[macro_export]
macro_rules! require_sandbox {
    () => {
        if !$crate::common::sandbox_is_up() {
            eprintln!(
                "skipped: the sandbox is not up; run `cargo xtask test`, or `cargo xtask sandbox up && . target/sandbox/env.sh`"
            );
            return;
        }
        let _timing = $crate::common::TestTiming::start();
    };
}

/// How long one sandbox test took, appended as `SECONDS NAME` to the file `SUMA_TEST_TIMES` names when
/// the test ends (passed or failed); `cargo xtask test` prints the slowest from it, which is where the
/// suite's time goes.
pub struct TestTiming {
    started: std::time::Instant,
}

impl TestTiming {
    pub fn start() -> Self {
        Self {
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for TestTiming {
    fn drop(&mut self) {
        let Some(path) = std::env::var_os("SUMA_TEST_TIMES") else {
            return;
        };
        // libtest names each test's thread after the test.
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        let line = format!("{:.1} {name}\n", self.started.elapsed().as_secs_f64());
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The checkout under test: the workspace root, two levels above this crate. Cargo's run-time value
/// wins, so a target directory shared by checkouts at different paths cannot point at another tree.
pub fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("../..").canonicalize().unwrap_or(manifest)
}

/// This crate's test fixtures.
pub fn fixture(path: &str) -> PathBuf {
    workspace_root().join("crates/suma/tests/fixtures").join(path)
}

/// Tests that change the `staging` topology (canary, task definitions) hold it exclusively; tests that
/// work in a copy of `staging` (whose secrets' consumers are staging's ECS services) hold it shared. One
/// test binary runs them all, so this keeps the one-at-a-time the separate binaries used to give.
///
/// Readers are preferred: a shared holder never waits for a writer that is only waiting, so a test holding
/// two shared guards (two fleets) cannot deadlock against a queued canary test, as it could with std's
/// `RwLock`, which makes new readers wait behind a queued writer.
struct StagingGate {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

static STAGING: StagingGate = StagingGate {
    state: Mutex::new((0, false)),
    changed: Condvar::new(),
};

/// Exclusive hold of `staging`, released on drop.
pub struct StagingExclusive(());

/// Shared hold of `staging`, released on drop.
pub struct StagingShared(());

impl StagingGate {
    fn state(&self) -> MutexGuard<'_, (usize, bool)> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait_until(&self, ready: impl Fn(&(usize, bool)) -> bool) -> MutexGuard<'_, (usize, bool)> {
        let mut state = self.state();
        while !ready(&state) {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state
    }
}

pub fn staging_exclusive() -> StagingExclusive {
    let mut state = STAGING.wait_until(|&(readers, writer)| readers == 0 && !writer);
    state.1 = true;
    StagingExclusive(())
}

pub fn staging_shared() -> StagingShared {
    let mut state = STAGING.wait_until(|&(_, writer)| !writer);
    state.0 += 1;
    StagingShared(())
}

impl Drop for StagingExclusive {
    fn drop(&mut self) {
        STAGING.state().1 = false;
        STAGING.changed.notify_all();
    }
}

impl Drop for StagingShared {
    fn drop(&mut self) {
        STAGING.state().0 -= 1;
        STAGING.changed.notify_all();
    }
}

/// Tests that rotate staging's JWT signing key (the key the sandbox's running services sign with) take
/// turns: two rotations of one secret at once move each other's staging labels. Taken before
/// [`staging_shared`], never while holding [`staging_exclusive`].
static SIGNING_KEY: Mutex<()> = Mutex::new(());

pub fn staging_signing_key() -> MutexGuard<'static, ()> {
    SIGNING_KEY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A variable that `cargo xtask test` exports from the sandbox.
pub fn sandbox_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: these tests run against the local sandbox; use `cargo xtask test`, or `cargo xtask sandbox up && . target/sandbox/env.sh` first")
    })
}

pub fn sandbox_config() -> PathBuf {
    PathBuf::from(sandbox_var("SUMA_CONFIG"))
}

/// `suma ARGS` with the sandbox environment, no stdin, colours off.
pub fn suma(args: &[&str]) -> Command {
    sandbox_var("AWS_ENDPOINT_URL");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_suma"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("SUMA_ENV")
        .env_remove("SUMA_OUTPUT")
        // Tables fit `COLUMNS` when it is set; the tests compare whole values.
        .env_remove("COLUMNS")
        .stdin(Stdio::null());
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> Run {
    ran(cmd.borrow_mut().output().expect("the suma binary runs"))
}

fn ran(Output { status, stdout, stderr }: Output) -> Run {
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Starts `cmd` in the background with its output captured, for a test that acts while it runs.
pub fn start(mut cmd: Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the suma binary runs")
}

/// Waits for a command [`start`] started: its exit and output, as [`run`] gives them.
pub fn finish(child: std::process::Child) -> Run {
    ran(child.wait_with_output().expect("the command's output"))
}

/// Sends `signal` (`TERM`, `STOP`, `CONT`, ...) to process `pid`, as `kill` does.
pub fn send_signal(pid: &str, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

pub fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", run.stdout, run.stderr))
}

/// An AWS session on the sandbox for the lock table's region.
pub async fn sandbox_session() -> suma::aws::AwsSession {
    sandbox_var("AWS_ENDPOINT_URL");
    let region = suma::config::AwsRegion::try_from("eu-west-1".to_owned()).unwrap();
    let options = suma::aws::AwsOptions {
        profile: None,
        operation_timeout: std::time::Duration::from_secs(20),
    };
    suma::aws::AwsSession::connect(&options, [&region]).await
}

pub fn lock_region() -> suma::config::AwsRegion {
    suma::config::AwsRegion::try_from("eu-west-1".to_owned()).unwrap()
}

/// Ends the lease of `environment`'s lock now, as a killed holder's lease running out would, and
/// returns the operation it held. Crash tests use it instead of waiting: a lease short enough to wait
/// out is too short to renew on a loaded machine.
pub async fn expire_lease(session: &suma::aws::AwsSession, environment: &str) -> Option<String> {
    let table = session.lock_store(&lock_region(), "suma-locks");
    let lock = table.get_lock(environment).await.unwrap()?;
    let past = chrono::Utc::now().timestamp() - 1;
    table.renew(environment, &lock.fence, past).await.unwrap();
    Some(lock.operation_id)
}

/// A name no other test uses, so tests can run in parallel against one lock table.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// An environment seeded on the running sandbox under its own names (`seed.py --environment`): both
/// regions, RDS primary and replica, DNS, ECS services, secrets. `config` is its `suma.yaml` section.
pub struct SeededEnvironment {
    pub name: String,
    pub config: serde_norway::Value,
}

/// `xtask/sandbox/seed.py ARGS` with the sandbox's Python.
fn seed_command(args: &[&str]) -> Command {
    let venv = std::env::var_os("SUMA_SANDBOX_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| sandbox_config().parent().unwrap().join("venv"));
    let mut command = Command::new(venv.join("bin/python"));
    command.arg(workspace_root().join("xtask/sandbox/seed.py")).args(args);
    command
}

/// Runs `xtask/sandbox/seed.py ARGS`; its standard output.
fn seed_py(args: &[&str]) -> Vec<u8> {
    let out = seed_command(args).output().expect("the sandbox's python runs");
    assert!(
        out.status.success(),
        "seed.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A secret `name` whose replication to the DR region failed (the DR region already held one of its name).
pub fn clashing_secret(name: &str) {
    seed_py(&["--clashing-secret", &sandbox_var("AWS_ENDPOINT_URL"), name]);
}

/// `seed.py --serve` processes between two environments: the suite seeds hundreds, and a process each
/// spent more time starting Python and loading boto3's service models than seeding. A caller takes an
/// idle one or starts one, so parallel tests seed in parallel.
static SEEDERS: Mutex<Vec<Seeder>> = Mutex::new(Vec::new());

/// One `seed.py --serve`: a request line in, an answer line out. It exits when its input closes.
struct Seeder {
    _process: std::process::Child,
    requests: std::process::ChildStdin,
    answers: std::io::BufReader<std::process::ChildStdout>,
}

impl Seeder {
    fn start() -> Self {
        let mut process = seed_command(&["--serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the sandbox's python runs");
        Self {
            requests: process.stdin.take().unwrap(),
            answers: std::io::BufReader::new(process.stdout.take().unwrap()),
            _process: process,
        }
    }

    fn ask(&mut self, request: &serde_json::Value) -> std::io::Result<serde_json::Value> {
        use std::io::{BufRead as _, Write as _};
        writeln!(self.requests, "{request}")?;
        self.requests.flush()?;
        let mut line = String::new();
        if self.answers.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("it exited (its errors are above)"));
        }
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }
}

pub fn seed_environment(name: &str) -> SeededEnvironment {
    let prometheus = std::env::var("PROMETHEUS_URL").unwrap_or_else(|_| "http://127.0.0.1:9".into());
    let request = serde_json::json!([
        name,
        sandbox_var("AWS_ENDPOINT_URL"),
        sandbox_var("AUTH_URL"),
        prometheus
    ]);
    let idle = SEEDERS.lock().unwrap().pop();
    let mut seeder = idle.unwrap_or_else(Seeder::start);
    let answer = seeder
        .ask(&request)
        .unwrap_or_else(|e| panic!("seed.py --serve did not seed `{name}`: {e}"));
    SEEDERS.lock().unwrap().push(seeder);
    match (answer.get("config"), answer.get("error")) {
        (Some(config), _) => SeededEnvironment {
            name: name.to_owned(),
            config: serde_json::from_value(config.clone()).unwrap(),
        },
        (None, error) => panic!(
            "seed.py could not seed `{name}`: {}",
            error.and_then(|e| e.as_str()).unwrap_or("no answer")
        ),
    }
}

/// A copy of the sandbox configuration with `staging` under a new name (a journal and lock of its own)
/// holding exactly `secrets`: the directory, the file, the name.
pub fn staging_copy(secrets: serde_json::Value) -> (tempfile::TempDir, PathBuf, String) {
    let text = std::fs::read_to_string(sandbox_config()).unwrap();
    let mut config: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let mut env = config["environments"]["staging"].clone();
    env["secrets"] = serde_norway::to_value(secrets).unwrap();
    let name = unique("staging-copy");
    config["environments"]
        .as_mapping_mut()
        .unwrap()
        .insert(serde_norway::Value::String(name.clone()), env);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suma.yaml");
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    (dir, path, name)
}

/// A new account at the service at `base`, registered: its sign-in body (`email`, `password`).
pub async fn register_account(http: &reqwest::Client, base: &str, prefix: &str) -> serde_json::Value {
    let body = serde_json::json!({
        "email": format!("{}@example.com", unique(prefix)),
        "password": format!("a long enough passphrase for {prefix}"),
    });
    let registered = http
        .post(format!("{base}/api/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(registered.status().is_success(), "{}", registered.text().await.unwrap());
    body
}

/// Verifies the address of the account `body` registered, with the link the service emailed to the
/// sandbox's SMTP sink (`SMTP_SINK_DIR`, a Maildir): only a verified address may enrol a second factor.
pub async fn verify_address(http: &reqwest::Client, base: &str, body: &serde_json::Value) {
    let address = body["email"].as_str().expect("registered with an email");
    let maildir = PathBuf::from(sandbox_var("SMTP_SINK_DIR"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let token = loop {
        let token = ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(maildir.join(sub)).into_iter().flatten().flatten())
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            // Quoted-printable: soft line breaks and `=3D` for `=`.
            .map(|raw| raw.replace("=\r\n", "").replace("=\n", "").replace("=3D", "="))
            .filter(|mail| mail.contains(address))
            .find_map(|mail| {
                let link = mail.split("verify-email?token=").nth(1)?;
                Some(
                    link.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                        .collect::<String>(),
                )
            });
        match token {
            Some(token) => break token,
            None if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            None => panic!("no verification email to {address} in {}", maildir.display()),
        }
    };
    let verified = http
        .post(format!("{base}/api/auth/verify-email"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 204, "{}", verified.text().await.unwrap());
}

/// `POST /api/auth/login` with `body` at the service at `base`: the answer's JSON.
pub async fn login_json(http: &reqwest::Client, base: &str, body: &serde_json::Value) -> serde_json::Value {
    http.post(format!("{base}/api/auth/login"))
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
