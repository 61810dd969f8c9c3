//! `cargo xtask bench <name>`: benchmarks whose results go into their own `## …` section of
//! `BENCHMARKS.md` at the workspace root. Each bench owns one section and rewrites only the generated part
//! of it (between `<!-- NAME:begin -->` and `<!-- NAME:end -->`), so notes written by hand in the section
//! and the other benches' sections stay as they are.
//!
//! `bench auth` builds `auth-service` and `auth-bench` in release, starts one release service on loopback
//! against the sandbox's PostgreSQL (its own database `auth_bench`, recreated each run) and Redis (prefix
//! `bench:`), runs `auth-bench` against it, stops it and writes the `## auth-service` section.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{self, Result};
use crate::sandbox::{self, Sandbox};

/// The benches `cargo xtask bench` knows, for the usage and the unknown-name error.
pub const NAMES: &[&str] = &["auth", "canary", "compliance", "cli", "switchover"];

/// The error for `cargo xtask bench NAME` with an unknown NAME.
pub fn unknown(name: &str) -> String {
    format!("unknown bench `{name}`\nhint: available benches: {}", NAMES.join(", "))
}

/// `cargo xtask bench auth [--algorithm ALG] [auth-bench flags…]`: the service signs with a key of ALG
/// (ES256, the default for new keys, EdDSA, PS256 or RS256); the other flags (e.g. `--duration 5`) go to
/// `auth-bench`.
pub fn auth(root: PathBuf, extra: &[&str]) -> Result<()> {
    let (algorithm, extra) = match extra {
        ["--algorithm", algorithm, rest @ ..] => (*algorithm, rest),
        rest => ("ES256", rest),
    };
    let sandbox = Sandbox::new(root.clone());
    if !sandbox.is_up() {
        eprintln!("bench: the sandbox is not up; starting it");
        sandbox.up()?;
    }
    let env = read_env_sh(&root.join("target/sandbox/env.sh"))?;
    let var = |k: &str| {
        env.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("`target/sandbox/env.sh` has no `{k}`\nhint: run `cargo xtask sandbox up`"))
    };
    let database_url = var("DATABASE_URL")?;
    let redis_url = var("REDIS_URL")?;
    let pg_port = port_of(&database_url).ok_or_else(|| format!("no port in DATABASE_URL `{database_url}`"))?;

    build_release(&root, "auth-service", &["--bins"])?;
    let release = sandbox::target_dir(&root).join("release");

    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key = dir.join(format!("signing-{algorithm}.pem"));
    if !key.exists() {
        process::run(
            Command::new(release.join("auth-service"))
                .args(["keygen", "--algorithm", algorithm, "--out"])
                .arg(&key),
        )?;
    }

    // A fresh database each run, so the tables' size does not drift from one run to the next.
    let pg_bin = sandbox::ensure_postgres()?;
    let pg = |tool: &str, extra: &[&str]| {
        let mut cmd = Command::new(pg_bin.join(tool));
        cmd.args(["-h", "127.0.0.1", "-p", &pg_port.to_string(), "-U", "postgres"])
            .args(extra);
        cmd
    };
    process::run(&mut pg("dropdb", &["--if-exists", "auth_bench"]))?;
    process::run(&mut pg("createdb", &["auth_bench"]))?;
    let bench_db = format!("postgres://postgres@127.0.0.1:{pg_port}/auth_bench");

    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // Once with request logs off, the whole run; once more at the production level (one JSON line per
    // request), the hot path only.
    // `hashers`: the hasher's size, or `None` for the service's own default.
    let run = |name: &str, rust_log: &str, bench_args: &[&str], hashers: Option<usize>| -> Result<String> {
        let port = process::free_port()?;
        let log = dir.join(format!("auth-service-{name}.log"));
        eprintln!("bench: starting a release auth-service on :{port} with RUST_LOG={rust_log}");
        let pid = process::spawn_logged(
            Command::new(release.join("auth-service"))
                .arg("serve")
                .env("DATABASE_URL", &bench_db)
                .env("REDIS_URL", &redis_url)
                .env("REDIS_KEY_PREFIX", "bench:")
                .env("BIND_ADDR", "127.0.0.1")
                .env("PORT", port.to_string())
                .env("APP_ENV", "bench")
                .env("DEPLOYMENT_LABEL", "bench")
                .env("JWT_SIGNING_KEY_FILE", &key)
                .env("RATE_LIMIT_LOGIN_PER_IP", "0")
                .env("RATE_LIMIT_LOGIN_PER_ACCOUNT", "0")
                .env("RATE_LIMIT_REFRESH_PER_IP", "0")
                .env("RATE_LIMIT_REGISTER_PER_IP", "0")
                .env("RATE_LIMIT_REGISTER_PER_ACCOUNT", "0")
                .env("SHUTDOWN_TIMEOUT", "5")
                .env("PASSWORD_HASH_CONCURRENCY", hashers.unwrap_or(0).to_string())
                .env("RUST_LOG", rust_log),
            &log,
        )?;
        let service = Stopper(pid);
        wait_ready(port, &log)?;
        let json = dir.join(format!("auth-{name}.json"));
        let markdown = dir.join(format!("auth-{name}.md"));
        let _ = std::fs::remove_file(&markdown);
        let ok = process::run_visible(
            Command::new(release.join("auth-bench"))
                .arg("--url")
                .arg(format!("http://127.0.0.1:{port}"))
                .args(["--database-url", &bench_db, "--redis-url", &redis_url])
                .arg("--json")
                .arg(&json)
                .arg("--markdown")
                .arg(&markdown)
                .args(bench_args)
                .args(extra),
        )?;
        drop(service);
        if !ok {
            return Err(format!("auth-bench failed; the service's log is {}", log.display()));
        }
        std::fs::read_to_string(&markdown).map_err(|e| format!("auth-bench wrote no {}: {e}", markdown.display()))
    };
    // Hashing on the service's default hasher (one core fewer than the machine has), then on every core
    // beside the same mixed load: whether a login burst leaves `/me` responsive is what sizes the hasher.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let quiet = run("logs-off", QUIET_LOGS, &[], None)?;
    let production = run("logs-info", PRODUCTION_LOGS, &["--hot-path-only"], None)?;
    let every_core = run("hashers-every-core", QUIET_LOGS, &["--mixed-only"], Some(cores))?;

    let head = head_commit(&root);
    let date = process::run(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let load = load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let generated = format!(
        "Run by `cargo xtask bench auth` on {date} at commit `{head}`: release `auth-service` and `auth-bench` on \
         the same machine, service against the sandbox's PostgreSQL and Redis, every rate limit off, access \
         tokens signed {algorithm}, passwords hashed on the service's default hasher (as many threads as the \
         bare hash rate below). Load \
         average before the run: {load} (the sandbox's load generator and anything else running share the \
         CPUs).\n\n#### Request logs off (`RUST_LOG={QUIET_LOGS}`)\n\n{quiet}\n#### Request logs at the \
         production level (`RUST_LOG={PRODUCTION_LOGS}`: one JSON line per request)\n\n{production}\n#### \
         Password hashing on every core ({cores} threads, `PASSWORD_HASH_CONCURRENCY={cores}`) instead of the \
         default, the mixed step only\n\n{every_core}"
    );
    let path = root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new = update_section(&old, "auth-service", "auth-bench", &generated);
    std::fs::write(&path, new).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("bench: wrote the `## auth-service` section of {}", path.display());
    Ok(())
}

/// Builds `package`'s release binaries (`targets`: `--bins`, `--bin NAME`). The release profile is used by
/// the benches alone, so building one package unifies no features differently from another release build.
/// The short commit the benchmarks ran at (`unknown` outside a git checkout).
/// The service's log filter with request logs off.
const QUIET_LOGS: &str = "warn";
/// The service's default log filter, as in production: one JSON line per request.
const PRODUCTION_LOGS: &str = "info,sqlx=warn";

pub fn head_commit(root: &Path) -> String {
    process::run(
        Command::new("git")
            .current_dir(root)
            .args(["rev-parse", "--short", "HEAD"]),
    )
    .map(|s| s.trim().to_owned())
    .unwrap_or_else(|_| "unknown".to_owned())
}

pub fn build_release(root: &Path, package: &str, targets: &[&str]) -> Result<()> {
    eprintln!("bench: building {package} in release");
    let start = Instant::now();
    let mut cargo = crate::cargo::command();
    cargo
        .current_dir(root)
        .args(["build", "--quiet", "--release", "--package", package])
        .args(targets);
    if !process::run_visible(&mut cargo)? {
        return Err(format!("the release build of {package} failed"));
    }
    eprintln!("bench: build done in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Stops the process it holds when dropped, so a failed run does not leave the service behind.
struct Stopper(u32);

impl Drop for Stopper {
    fn drop(&mut self) {
        process::stop_pid(self.0, Duration::from_secs(10));
    }
}

fn wait_ready(port: u16, log: &Path) -> Result<()> {
    process::wait_for_port(port, "auth-service", Duration::from_secs(60), log)?;
    let start = Instant::now();
    loop {
        match crate::http::request(port, "GET", "/ready", None, None) {
            Ok(r) if r.status == 200 => return Ok(()),
            _ if start.elapsed() > Duration::from_secs(60) => {
                return Err(format!(
                    "auth-service on :{port} not ready after 60s; see {}",
                    log.display()
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The `export K='V'` lines of the sandbox's `env.sh`.
fn read_env_sh(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e}\nhint: run `cargo xtask sandbox up`",
            path.display()
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect())
}

/// The port of a `scheme://user@host:port/…` URL.
fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// `doc` with the generated part of section `## {heading}` replaced by `generated`.
///
/// The generated part sits between `<!-- {marker}:begin -->` and `<!-- {marker}:end -->`; the rest of the
/// section (notes) and every other section are kept. A section without markers gets them after its heading;
/// a missing section is appended; a missing document gets a title.
pub fn update_section(doc: &str, heading: &str, marker: &str, generated: &str) -> String {
    let begin = format!("<!-- {marker}:begin -->");
    let end = format!("<!-- {marker}:end -->");
    let block = format!("{begin}\n{}\n{end}", generated.trim_end());
    let title = format!("## {heading}");
    let mut doc = if doc.trim().is_empty() {
        "# Benchmarks\n\nEach section is written by `cargo xtask bench <name>` between its markers; text outside \
         the markers is kept.\n"
            .to_owned()
    } else {
        doc.to_owned()
    };
    let Some(start) = find_heading(&doc, &title) else {
        if !doc.ends_with('\n') {
            doc.push('\n');
        }
        doc.push_str(&format!("\n{title}\n\n{block}\n"));
        return doc;
    };
    let body_start = start + title.len();
    let section_end = doc[body_start..]
        .find("\n## ")
        .map_or(doc.len(), |i| body_start + i + 1);
    let section = &doc[body_start..section_end];
    let replaced = match (section.find(&begin), section.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &section[..b], &section[e + end.len()..]),
        _ => format!("\n\n{block}\n{}", section.trim_start_matches('\n')),
    };
    format!("{}{replaced}{}", &doc[..body_start], &doc[section_end..])
}

/// The byte offset of a line that is exactly `title`.
fn find_heading(doc: &str, title: &str) -> Option<usize> {
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        if line.trim_end() == title {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_document_gets_a_title_and_the_section() {
        let doc = update_section("", "auth-service", "auth-bench", "numbers");
        assert!(doc.starts_with("# Benchmarks\n"));
        assert!(doc.ends_with("## auth-service\n\n<!-- auth-bench:begin -->\nnumbers\n<!-- auth-bench:end -->\n"));
    }

    #[test]
    fn only_the_generated_part_of_its_own_section_changes() {
        let doc = "# Benchmarks\n\n## auth-service\n\nintro\n<!-- auth-bench:begin -->\nold\n<!-- auth-bench:end -->\n\n### Notes\nkept\n\n## canary\n\n<!-- canary:begin -->\nx\n<!-- canary:end -->\n";
        let new = update_section(doc, "auth-service", "auth-bench", "new");
        assert_eq!(
            new,
            "# Benchmarks\n\n## auth-service\n\nintro\n<!-- auth-bench:begin -->\nnew\n<!-- auth-bench:end -->\n\n### Notes\nkept\n\n## canary\n\n<!-- canary:begin -->\nx\n<!-- canary:end -->\n"
        );
        assert_eq!(update_section(&new, "auth-service", "auth-bench", "new"), new);
    }

    #[test]
    fn a_section_is_appended_after_the_others() {
        let doc = "# Benchmarks\n\n## canary\n\nhand-written\n";
        let new = update_section(doc, "auth-service", "auth-bench", "n");
        assert!(new.starts_with(doc));
        assert!(new.ends_with("\n## auth-service\n\n<!-- auth-bench:begin -->\nn\n<!-- auth-bench:end -->\n"));
    }

    #[test]
    fn a_section_without_markers_gets_them_after_its_heading() {
        let doc = "## auth-service\nnotes\n## canary\nc\n";
        let new = update_section(doc, "auth-service", "auth-bench", "n");
        assert_eq!(
            new,
            "## auth-service\n\n<!-- auth-bench:begin -->\nn\n<!-- auth-bench:end -->\nnotes\n## canary\nc\n"
        );
    }

    #[test]
    fn ports_of_urls() {
        assert_eq!(port_of("postgres://postgres@127.0.0.1:40147/postgres"), Some(40147));
        assert_eq!(port_of("redis://127.0.0.1:43273/"), Some(43273));
        assert_eq!(port_of("redis://127.0.0.1/"), None);
    }
}
