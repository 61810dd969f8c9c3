//! `cargo xtask bench compliance`: suma's compliance check (release build) over fleets of ECS task
//! definitions and services, RDS instances, secrets and Route 53 failover records, each fleet on moto servers
//! of its own (so the shared sandbox's account view is untouched; one for ECS, one for Secrets Manager and
//! one for the rest, see [`SERVERS`]): wall time and peak resident memory of the
//! `suma` process, sampled from `/proc` every 20 ms. On the 1,000-resource fleet, in the same run, Prowler
//! (from PyPI, in its own venv) over its checks of the same services against the same endpoint, when it can
//! be installed, started through `xtask/bench/prowler_moto.py` so that its STS client reaches moto too; its
//! resources and findings are counted from its json-ocsf output. Then suma alone over 10,000 resources. The
//! goals: 10,000 resources in under 10 s, and at least 20 times faster than Prowler on the same 1,000.
//! Each tool runs once untimed on a fleet, so that neither pays alone for what moto does on a service's
//! first request, then [`MEASURED_RUNS`] times; the median run is reported, with the range.
//!
//! The `## compliance` section of BENCHMARKS.md is rewritten between its markers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::update_section;
use crate::process::{self, Result};
use crate::sandbox::target_dir;

const PROWLER_VERSION: &str = "5.13.1";

struct Measured {
    exit: Option<i32>,
    wall: Duration,
    peak_rss_kib: u64,
    stdout: String,
}

/// Runs `cmd` to completion, sampling its resident memory; its stderr goes to `stderr_log`.
fn measure(cmd: &mut Command, stderr_log: &Path) -> Result<Measured> {
    let started = Instant::now();
    let log = std::fs::File::create(stderr_log).map_err(|e| format!("{}: {e}", stderr_log.display()))?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:").or_else(|| line.strip_prefix("VmRSS:")) {
                    let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kib);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Measured {
        exit: status.code(),
        wall: started.elapsed(),
        peak_rss_kib: peak,
        stdout: reader.join().unwrap_or_default(),
    })
}

/// A configuration whose environment `bench` spans only eu-west-1's inventory.
const CONFIG: &str = "version: 1
lock: { table: bench-locks, region: eu-west-1 }
environments:
  bench:
    primary_region: eu-west-1
    dr_region: eu-central-1
    ecs: { cluster: bench, service: svc-0, canary_service: none, container: app, container_port: 8080, desired_count: 2, dr: { cluster: bench, service: none } }
    alb: { listener_arn: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/none/1/2', rule_arn: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/none/1/2/3', stable_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/a/1', canary_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/b/2' }
    rds: { primary: { identifier: bench-db-0, region: eu-west-1 } }
    dns: { hosted_zone_id: Z, record_name: r0.bench.example.com }
    metrics: { provider: prometheus, prometheus_url: 'http://127.0.0.1:9' }
";

/// The fleet suma and Prowler both check, in the same run.
const COMPARED: usize = 1_000;
/// The fleet suma alone checks, for the scale goal.
const AT_SCALE: usize = 10_000;
/// The goals: the scale fleet's wall time, and how many times faster than Prowler on the compared one.
const SCALE_GOAL: Duration = Duration::from_secs(10);
const SPEEDUP_GOAL: f64 = 20.0;

/// The moto servers a fleet is spread over: AWS answers each service from endpoints of its own, while one
/// moto process (Python, one core at a time) would answer ECS, Secrets Manager and the rest one after the
/// other, though suma asks them at the same time. ECS and Secrets Manager, which take nearly all of the
/// requests (one `DescribeTaskDefinition` per task definition, one `GetResourcePolicy` per secret), get a
/// server each, named to every client by the SDKs' service-specific variables; RDS, KMS and Route 53 share
/// the default endpoint (RDS reads its KMS keys from the same process).
const SERVERS: [(&str, Option<&str>); 3] = [
    ("default", None),
    ("ecs", Some("AWS_ENDPOINT_URL_ECS")),
    ("secretsmanager", Some("AWS_ENDPOINT_URL_SECRETS_MANAGER")),
];

/// One moto server of a fleet.
struct Server {
    /// Its [`SERVERS`] name, for messages.
    name: &'static str,
    pid: u32,
    endpoint: String,
    /// Its request log, one line a request.
    log: PathBuf,
    /// The variable that points clients at it (`None`: `AWS_ENDPOINT_URL`).
    variable: Option<&'static str>,
}

/// A fleet seeded on moto servers of its own (`xtask/sandbox/compliance_fleet.py`), one per [`SERVERS`]
/// entry; stopped on drop.
struct Fleet {
    servers: Vec<Server>,
    /// What was seeded, as the script prints it.
    seeded: String,
}

impl Fleet {
    fn seed(root: &Path, python: &Path, count: usize, work: &Path) -> Result<Self> {
        let mut fleet = Self {
            servers: Vec::new(),
            seeded: String::new(),
        };
        // From the first server on, an early return stops the ones started (drop).
        for (name, variable) in SERVERS {
            let port = process::free_port()?;
            let log = work.join(format!("moto-{count}-{name}.log"));
            // moto's server as the sandbox runs it (see the launcher).
            let pid = process::spawn_logged(
                Command::new(python)
                    .arg(root.join("xtask/sandbox/moto_server.py"))
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()]),
                &log,
            )?;
            fleet.servers.push(Server {
                name,
                pid,
                endpoint: format!("http://127.0.0.1:{port}"),
                log: log.clone(),
                variable,
            });
            process::wait_for_port(port, "moto", Duration::from_secs(30), &log)?;
        }
        eprintln!("bench: seeding {count} resources on {}", fleet.endpoints());
        let mut seed = Command::new(python);
        seed.arg(root.join("xtask/sandbox/compliance_fleet.py"))
            .arg(&fleet.servers[0].endpoint)
            .arg(count.to_string());
        fleet.aws_env(&mut seed);
        fleet.seeded = process::run(&mut seed)?.trim().to_owned();
        Ok(fleet)
    }

    /// The servers, for messages: `ecs http://...`, one after the other.
    fn endpoints(&self) -> String {
        self.servers
            .iter()
            .map(|server| format!("{} {}", server.name, server.endpoint))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `cmd` pointed at this fleet's servers with test credentials.
    fn aws_env(&self, cmd: &mut Command) {
        for server in &self.servers {
            cmd.env(server.variable.unwrap_or("AWS_ENDPOINT_URL"), &server.endpoint);
        }
        cmd.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_DEFAULT_REGION", "eu-west-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
    }

    /// The CPU time the fleet's servers have used so far (user and system, from `/proc`), summed.
    fn cpu(&self) -> Duration {
        self.servers.iter().map(|server| process_cpu(server.pid)).sum()
    }

    /// Requests the fleet's servers have logged so far.
    fn requests(&self) -> usize {
        let logged = |server: &Server| {
            std::fs::read_to_string(&server.log)
                .map(|text| text.lines().filter(|l| l.contains(" HTTP/1.")).count())
                .unwrap_or(0)
        };
        self.servers.iter().map(logged).sum()
    }
}

/// The CPU time a process has used so far (user and system, from `/proc`).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let per_second = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / per_second)
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for server in &self.servers {
            process::stop_pid(server.pid, Duration::from_secs(5));
        }
    }
}

/// Timed runs of a tool on a fleet, after one untimed run.
const MEASURED_RUNS: usize = 3;

/// The median of a tool's timed runs, and the wall time of each.
struct Median<T> {
    run: T,
    walls: Vec<Duration>,
}

impl<T> Median<T> {
    /// `1.15 s (0.88-1.40 s)`: the median run's wall time and the range of all.
    fn walls(&self) -> String {
        let secs = |d: &Duration| d.as_secs_f64();
        let min = self.walls.iter().map(secs).fold(f64::INFINITY, f64::min);
        let max = self.walls.iter().map(secs).fold(0.0, f64::max);
        let median = self.walls[self.walls.len() / 2].as_secs_f64();
        format!("{median:.2} s ({min:.2}-{max:.2} s)")
    }
}

/// Runs `run` once untimed, then [`MEASURED_RUNS`] times; returns the run whose wall time is the median.
fn median_run<T>(mut run: impl FnMut() -> Result<T>, wall: impl Fn(&T) -> Duration) -> Result<Median<T>> {
    run()?;
    let mut runs = (0..MEASURED_RUNS).map(|_| run()).collect::<Result<Vec<T>>>()?;
    runs.sort_by_key(&wall);
    let walls = runs.iter().map(&wall).collect();
    let run = runs.swap_remove(MEASURED_RUNS / 2);
    Ok(Median { run, walls })
}

/// suma's check of one fleet: the run, its resources and its findings.
struct SumaRun {
    run: Measured,
    resources: u64,
    findings: usize,
    /// The requests moto served during the run, and the CPU time it spent on them.
    requests: usize,
    moto_cpu: Duration,
}

fn check(suma: &Path, config: &Path, fleet: &Fleet, log: &Path) -> Result<SumaRun> {
    let mut cmd = Command::new(suma);
    cmd.args([
        "--config",
        config.to_str().unwrap_or_default(),
        "compliance",
        "check",
        "--env",
        "bench",
    ])
    .args([
        "--tags",
        "rds,ecs,secrets,route53",
        "--output",
        "json",
        "--fail-on",
        "critical",
    ]);
    fleet.aws_env(&mut cmd);
    let (cpu, requests) = (fleet.cpu(), fleet.requests());
    let run = measure(&mut cmd, log)?;
    let (moto_cpu, requests) = (
        fleet.cpu().saturating_sub(cpu),
        fleet.requests().saturating_sub(requests),
    );
    if run.exit.is_none_or(|c| c > 1) {
        let stderr = std::fs::read_to_string(log).unwrap_or_default();
        return Err(format!(
            "suma compliance check failed (exit {:?}): {}",
            run.exit,
            stderr.trim()
        ));
    }
    Ok(SumaRun {
        resources: json_number(&run.stdout, "resources").unwrap_or(0),
        findings: run.stdout.matches("\"check_id\"").count(),
        run,
        requests,
        moto_cpu,
    })
}

pub fn compliance(root: PathBuf) -> Result<()> {
    let python = crate::sandbox::Sandbox::new(root.clone()).venv().join("bin/python");
    if !python.exists() {
        return Err(format!(
            "{} is missing: run `cargo xtask sandbox up` once to install moto",
            python.display()
        ));
    }
    eprintln!("bench: building suma (release)");
    process::run(
        crate::cargo::command()
            .args(["build", "--release", "--workspace", "--bin", "suma"])
            .current_dir(&root),
    )?;
    let suma = target_dir(&root).join("release/suma");
    let work = std::env::temp_dir().join(format!("suma-bench-compliance-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let result = (|| {
        let config = work.join("suma.yaml");
        std::fs::write(&config, CONFIG).map_err(|e| e.to_string())?;
        let compared = Fleet::seed(&root, &python, COMPARED, &work)?;
        // Each tool runs once untimed, then MEASURED_RUNS times, and its median run is the one reported: moto
        // loads a service's backend and botocore models on their first use (a first run of suma on a fresh
        // fleet took 3.0-3.4 s against 2.0 s after), a cost no AWS account has, and whichever tool ran first
        // would pay it alone; the median, because one run on this shared machine varies by a third.
        eprintln!("bench: suma compliance check, {COMPARED} resources (one untimed run, then {MEASURED_RUNS})");
        let small = median_run(
            || check(&suma, &config, &compared, &work.join("suma-compared.stderr")),
            |r| r.run.wall,
        )?;
        let prowler = median_run(
            || {
                prowler(
                    &root,
                    &compared.endpoints(),
                    &|c: &mut Command| compared.aws_env(c),
                    &work.join("prowler.stderr"),
                )
            },
            |p| p.run.wall,
        );
        let compared_seeded = compared.seeded.clone();
        drop(compared);
        let scale = Fleet::seed(&root, &python, AT_SCALE, &work)?;
        eprintln!("bench: suma compliance check, {AT_SCALE} resources (one untimed run, then {MEASURED_RUNS})");
        let large = median_run(
            || check(&suma, &config, &scale, &work.join("suma-scale.stderr")),
            |r| r.run.wall,
        )?;
        let date = process::run(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let row = |what: &str, m: &Median<SumaRun>| {
            let r = &m.run;
            format!(
                "| suma, {what} | {} | {} MiB | {} | {} |\n",
                m.walls(),
                r.run.peak_rss_kib / 1024,
                r.resources,
                r.findings
            )
        };
        let mut text = format!(
            "Run on {date}: moto servers of their own (per fleet one for ECS, one for Secrets Manager and one for \
             the rest, as AWS serves each service from its own endpoints) seeded with {} and {} \
             (`xtask/sandbox/compliance_fleet.py`), \
             `suma compliance check --tags rds,ecs,secrets,route53` (release build). Each tool runs once untimed \
             on a fleet (moto loads a service's models on first use), then {MEASURED_RUNS} times: the median run \
             is reported, the range in brackets.\n\n\
             | tool | wall time | peak RSS | resources | findings |\n| --- | --- | --- | --- | --- |\n",
            compared_seeded, scale.seeded,
        );
        text.push_str(&row(&format!("{COMPARED} resources"), &small));
        let speedup = prowler
            .as_ref()
            .ok()
            .map(|p| p.run.run.wall.as_secs_f64() / small.run.run.wall.as_secs_f64().max(0.001));
        match &prowler {
            Ok(p) => text.push_str(&format!(
                "| Prowler {PROWLER_VERSION} (`--service ecs rds secretsmanager route53`), the same {COMPARED} | {} | {} MiB | {} | {} |\n",
                p.walls(),
                p.run.run.peak_rss_kib / 1024,
                p.run.resources,
                p.run.findings,
            )),
            Err(why) => text.push_str(&format!("\nProwler not measured: {why}\n")),
        }
        text.push_str(&row(&format!("{AT_SCALE} resources"), &large));
        let busy = |m: &Median<SumaRun>| {
            let r = &m.run;
            format!(
                "{} requests, moto's servers busy {:.1} s (their CPU, summed) in the {:.1} s ({:.1} ms of moto's CPU a request)",
                r.requests,
                r.moto_cpu.as_secs_f64(),
                r.run.wall.as_secs_f64(),
                r.moto_cpu.as_secs_f64() * 1000.0 / r.requests.max(1) as f64
            )
        };
        text.push_str(&format!(
            "\nWhat moto spent serving suma: {COMPARED} resources, {}; {AT_SCALE} resources, {}.\n",
            busy(&small),
            busy(&large)
        ));
        if let Some(x) = speedup {
            text.push_str(&format!(
                "\nOn the same {COMPARED} resources, suma is {x:.1}x faster than Prowler.\n"
            ));
        }
        let scale_met = large.run.run.wall < SCALE_GOAL && large.run.resources >= AT_SCALE as u64 * 9 / 10;
        let met = |yes: bool| if yes { "met" } else { "not met" };
        text.push_str(&format!(
            "\nGoals: {AT_SCALE} resources under {} s: {}; at least {SPEEDUP_GOAL}x faster than Prowler: {}.\n",
            SCALE_GOAL.as_secs(),
            met(scale_met),
            speedup.map_or("not measured", |x| met(x >= SPEEDUP_GOAL)),
        ));
        let path = root.join("BENCHMARKS.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, update_section(&doc, "compliance", "bench-compliance", &text))
            .map_err(|e| e.to_string())?;
        eprintln!("{text}");
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Prowler's run and what it reported, counted from its json-ocsf output.
struct ProwlerRun {
    run: Measured,
    resources: u64,
    findings: u64,
}

/// Prowler from PyPI in its own venv, over the same services against the same endpoint. Its CLI runs through
/// `xtask/bench/prowler_moto.py`, which sends the STS client Prowler pins to `sts.<region>.amazonaws.com` to
/// the endpoint as well; the counts are read from the json-ocsf file afterwards, outside the measured run.
fn prowler(root: &Path, endpoint: &str, aws_env: &dyn Fn(&mut Command), log: &Path) -> Result<ProwlerRun> {
    let venv = std::env::var_os("SUMA_PROWLER_VENV").map_or_else(|| root.join("target/prowler-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    // Prowler and everything it pulls in, at the versions the file pins.
    let requirements = root.join("xtask/bench/prowler-requirements.txt");
    process::ensure_venv(&venv, &requirements, &format!("bench (prowler {PROWLER_VERSION})"))?;
    let launcher = root.join("xtask/bench/prowler_moto.py");
    eprintln!("bench: prowler against {endpoint}");
    let out = std::env::temp_dir().join(format!("suma-bench-prowler-{}", std::process::id()));
    let mut cmd = Command::new(&python);
    cmd.arg(&launcher)
        .args([
            "aws",
            "--service",
            "ecs",
            "rds",
            "secretsmanager",
            "route53",
            "--region",
            "eu-west-1",
        ])
        .args(["--output-formats", "json-ocsf", "--output-directory"])
        .arg(&out)
        .args(["--no-banner", "--ignore-exit-code-3"]);
    aws_env(&mut cmd);
    let run = measure(&mut cmd, log);
    let summary = match &run {
        Ok(r) if r.exit == Some(0) => process::run(Command::new(&python).arg(&launcher).arg("--summarize").arg(&out)),
        _ => Ok(String::new()),
    };
    let _ = std::fs::remove_dir_all(&out);
    let run = run?;
    if run.exit != Some(0) {
        let stderr = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("prowler exited with {:?}: {}", run.exit, tail.join(" / ")));
    }
    let summary = summary.map_err(|e| format!("cannot count Prowler's findings: {e}"))?;
    let count =
        |key| json_number(&summary, key).ok_or_else(|| format!("no `{key}` in Prowler's summary: {}", summary.trim()));
    Ok(ProwlerRun {
        resources: count("resources")?,
        findings: count("findings")?,
        run,
    })
}

fn json_number(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    text[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    /// The version the report names is the one the requirements file installs.
    #[test]
    fn the_prowler_pin_is_the_version_the_report_names() {
        let path = crate::workspace_root().join("xtask/bench/prowler-requirements.txt");
        let text = std::fs::read_to_string(&path).expect("the requirements file is in the repository");
        let pinned: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("prowler==")).collect();
        assert_eq!(pinned, [super::PROWLER_VERSION], "{}", path.display());
    }
}
