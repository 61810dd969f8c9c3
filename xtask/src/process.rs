//! Running commands and background processes, waiting for ports, picking free ports, and the Python venvs
//! of pinned packages that some of those processes run in.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub type Result<T> = std::result::Result<T, String>;

/// Runs a command to completion; fails with its output when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<String> {
    let output = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{cmd:?} failed with {}:\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Runs a command with inherited stdio and returns whether it succeeded.
pub fn run_visible(cmd: &mut Command) -> Result<bool> {
    let status = cmd.status().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    Ok(status.success())
}

/// Runs `cargo test` with inherited stderr, echoing its stdout as it comes, and returns whether it
/// succeeded and the failure reports libtest printed (each failing test's panic message and the output
/// before it, see [`report_of`]): printed again after everything else, the reason a run failed is at the end
/// of a long log, where a reader of CI's tail sees it.
pub fn run_tests(cmd: &mut Command) -> Result<(bool, Vec<String>)> {
    use std::io::{BufRead, Write};
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut failures = FailureReports::default();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        failures.read(line);
    }
    let status = child.wait().map_err(|e| format!("cannot wait for {cmd:?}: {e}"))?;
    Ok((status.success(), failures.reports))
}

/// How many lines of a failing test's output [`run_tests`] keeps: the panic message is at its end.
const FAILURE_TAIL: usize = 60;

/// Lines of the test's own output kept before its panic, when a backtrace follows the panic message.
const BEFORE_PANIC: usize = 30;

/// The report of one failing test: from [`BEFORE_PANIC`] lines before its first panic to the panic
/// message's end (a backtrace, which would push the message out of the tail, is left out); without a
/// panic line, the last [`FAILURE_TAIL`] lines.
fn report_of(lines: &[String]) -> Vec<&str> {
    let Some(panic) = lines.iter().position(|l| l.contains("panicked at ")) else {
        return lines[lines.len().saturating_sub(FAILURE_TAIL)..]
            .iter()
            .map(String::as_str)
            .collect();
    };
    let end = lines[panic..]
        .iter()
        .position(|l| l.starts_with("stack backtrace:") || l.starts_with("note: run with `RUST_BACKTRACE"))
        .map_or(lines.len(), |n| panic + n);
    let end = end.min(panic + FAILURE_TAIL);
    lines[panic.saturating_sub(BEFORE_PANIC)..end]
        .iter()
        .map(String::as_str)
        .collect()
}

/// Lines of one section kept at most (a test that printed more is cut at its start).
const SECTION_LIMIT: usize = 5_000;

/// The `---- NAME stdout ----` sections of libtest's `failures:` block, each cut to its report.
#[derive(Default)]
struct FailureReports {
    reports: Vec<String>,
    current: Option<(String, std::collections::VecDeque<String>)>,
}

impl FailureReports {
    fn read(&mut self, line: String) {
        let starts_section = line.starts_with("---- ") && line.ends_with(" ----");
        let ends_block = line == "failures:" || line.starts_with("test result:");
        if starts_section || ends_block {
            self.finish();
        }
        if starts_section {
            self.current = Some((line, std::collections::VecDeque::new()));
        } else if let Some((_, lines)) = &mut self.current {
            if lines.len() == SECTION_LIMIT {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    fn finish(&mut self) {
        if let Some((title, lines)) = self.current.take() {
            let body: Vec<String> = lines.into_iter().collect();
            let report = report_of(&body).join("\n");
            self.reports.push(format!("{title}\n{}", report.trim_end()));
        }
    }
}

/// Starts a long-running process detached from our stdio, logging to `log`; returns its pid.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<u32> {
    let file = std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    Ok(child.id())
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str, timeout: Duration, log: &Path) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if port_open(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(20).collect();
    Err(format!(
        "{what} did not open port {port} within {}s; last lines of {}:\n{}",
        timeout.as_secs(),
        log.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// Whether `pid` is alive and its command line mentions `needle`: a recorded pid may have been reused
/// by an unrelated process since (after a reboot, say), and that one must never be signalled.
pub fn pid_runs(pid: u32, needle: &str) -> bool {
    pid_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
}

/// Sends `signal` (e.g. `HUP`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// SIGTERM, then SIGKILL after `grace`.
pub fn stop_pid(pid: u32, grace: Duration) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let start = Instant::now();
    while start.elapsed() < grace {
        if !pid_alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
}

pub fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// A venv at `venv` (made with the system's Python when absent) with every package `requirements` pins. The
/// venv keeps the file it last installed, and pip runs only when the file has changed since; `what` names
/// the venv's user in the message.
pub fn ensure_venv(venv: &Path, requirements: &Path, what: &str) -> Result<()> {
    if !venv.join("bin/pip").is_file() {
        let python = ["python3", "python"].iter().find_map(|p| which(p)).ok_or_else(|| {
            format!("python3 is required for {what}: install it (apt-get install python3 python3-venv)")
        })?;
        run(Command::new(python).args(["-m", "venv"]).arg(venv))?;
    }
    let wanted =
        std::fs::read_to_string(requirements).map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let marker = venv.join(".installed-requirements");
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == wanted) {
        return Ok(());
    }
    eprintln!("{what}: installing {} into {}", requirements.display(), venv.display());
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(requirements))?;
    std::fs::write(&marker, wanted).map_err(|e| format!("cannot write {}: {e}", marker.display()))
}

pub fn is_root() -> bool {
    run(Command::new("id").arg("-u")).is_ok_and(|out| out.trim() == "0")
}

/// `psql -c SQL` as `user` on database `db` over TCP to 127.0.0.1:`port`, with `password` or none; the
/// server's answer, or its refusal (psql's stderr) as the error.
pub fn psql(pg_bin: &Path, port: u16, user: &str, password: Option<&str>, db: &str, sql: &str) -> Result<String> {
    let mut cmd = Command::new(pg_bin.join("psql"));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-d", db])
        .args(["-v", "ON_ERROR_STOP=1", "-qtAc", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGDATA");
    match password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD"),
    };
    let out = cmd.output().map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(output: &str) -> Vec<String> {
        let mut failures = FailureReports::default();
        output.lines().for_each(|l| failures.read(l.to_owned()));
        failures.reports
    }

    #[test]
    fn the_failure_block_of_libtest_gives_one_report_per_failing_test() {
        let output = "running 3 tests\ntest a ... ok\ntest b ... FAILED\n\nfailures:\n\n---- b stdout ----\n\
                      noise\nthread 'b' panicked at x.rs:1:2:\nassertion failed\n\n---- c stdout ----\nboom\n\n\
                      failures:\n    b\n    c\n\ntest result: FAILED. 1 passed; 2 failed\n";
        assert_eq!(
            reports(output),
            [
                "---- b stdout ----\nnoise\nthread 'b' panicked at x.rs:1:2:\nassertion failed",
                "---- c stdout ----\nboom"
            ]
        );
    }

    #[test]
    fn a_long_report_keeps_its_last_lines() {
        let body: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let output = format!(
            "failures:\n---- t stdout ----\n{}\ntest result: FAILED.\n",
            body.join("\n")
        );
        let report = &reports(&output)[0];
        assert_eq!(report.lines().count(), 1 + FAILURE_TAIL);
        assert!(report.ends_with("line 99") && !report.contains("line 39\n"));
    }

    #[test]
    fn a_backtrace_is_left_out_so_the_panic_message_stays() {
        let backtrace: Vec<String> = (0..100).map(|i| format!("  {i}: frame")).collect();
        let output = format!(
            "failures:\n---- t stdout ----\nprinted\nthread 't' panicked at a.rs:1:1:\nassertion `left == right` failed\n  left: 503\n right: 502\nstack backtrace:\n{}\ntest result: FAILED.\n",
            backtrace.join("\n")
        );
        assert_eq!(
            reports(&output),
            ["---- t stdout ----\nprinted\nthread 't' panicked at a.rs:1:1:\nassertion `left == right` failed\n  left: 503\n right: 502"]
        );
    }

    #[test]
    fn a_passing_run_has_no_reports() {
        assert!(reports("running 1 test\ntest a ... ok\n\ntest result: ok. 1 passed\n").is_empty());
    }
}
