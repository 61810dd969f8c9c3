//! One task: what it runs (resolved from its task definition as the ECS agent would: the container's
//! `environment`, its `secrets` read from Secrets Manager at start, the image), the process, and its
//! container health check.
//!
//! Every image reference runs the locally built `auth-service`; the image tag is the release, and a tag
//! ending in `-errors` or `-slow` is a faulty release (5% errors, or 300 ms more on `/api/*`), passed to the
//! process as the service's own fault-injection settings. Each task gets its own loopback address, as
//! `awsvpc` gives each task its own network interface, so every task listens on the container port.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{ContainerDefinition, HealthCheck};

/// The tag of an image reference (after the last `:` of its last path segment), `latest` when it names
/// none: the release a task reports.
pub fn image_tag(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.rsplit_once(':').map_or("latest", |(_, tag)| tag)
}

/// What a faulty image does, from its tag.
pub fn faults_of(image: &str) -> Option<(&'static str, &'static str)> {
    let tag = image_tag(image);
    if tag.ends_with("-errors") {
        Some(("0.05", "0"))
    } else if tag.ends_with("-slow") {
        Some(("0", "300"))
    } else {
        None
    }
}

/// A `secrets` entry's `valueFrom`: a Secrets Manager ARN, optionally `:json-key:version-stage:version-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub region: String,
    pub secret_id: String,
    pub json_key: Option<String>,
    pub version_stage: Option<String>,
}

impl SecretRef {
    pub fn parse(value_from: &str) -> Result<Self, String> {
        let parts: Vec<&str> = value_from.splitn(7, ':').collect();
        let ["arn", _, "secretsmanager", region, _, "secret", rest] = parts.as_slice() else {
            return Err(format!(
                "`{value_from}` is not a Secrets Manager ARN (the sandbox's agent reads no SSM parameters)"
            ));
        };
        let mut fields = rest.split(':');
        let name = fields.next().unwrap_or_default();
        let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        let json_key = non_empty(fields.next());
        let version_stage = non_empty(fields.next());
        Ok(Self {
            region: (*region).to_owned(),
            secret_id: name.to_owned(),
            json_key,
            version_stage,
        })
    }

    /// The variable's value from the secret's string.
    pub fn pick(&self, secret: &str) -> Result<String, String> {
        let Some(key) = &self.json_key else {
            return Ok(secret.to_owned());
        };
        let doc: serde_json::Value = serde_json::from_str(secret)
            .map_err(|e| format!("secret `{}` is not JSON, so it has no key `{key}`: {e}", self.secret_id))?;
        match doc.get(key) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Ok(other.to_string()),
            None => Err(format!("secret `{}` has no key `{key}`", self.secret_id)),
        }
    }
}

/// Everything a task needs to start, resolved at start time (so a rotated secret is seen only by tasks
/// started after it, as on ECS).
#[derive(Debug, Clone)]
pub struct Launch {
    pub image: String,
    pub environment: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub health_check: Option<HealthCheck>,
    pub container_port: u16,
    pub stop_timeout: Duration,
}

impl Launch {
    /// The container's settings; `secrets` are resolved by the caller into `resolved`.
    pub fn of(container: &ContainerDefinition, resolved: BTreeMap<String, String>) -> Self {
        let mut environment: BTreeMap<String, String> = container
            .environment()
            .iter()
            .filter_map(|kv| Some((kv.name()?.to_owned(), kv.value().unwrap_or_default().to_owned())))
            .collect();
        environment.extend(resolved);
        let container_port = container
            .port_mappings()
            .first()
            .and_then(|p| p.container_port())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(8080);
        Self {
            image: container.image().unwrap_or_default().to_owned(),
            environment,
            command: container.command().to_vec(),
            health_check: container.health_check().cloned(),
            container_port,
            stop_timeout: Duration::from_secs(container.stop_timeout().map_or(30, |s| s.max(1) as u64)),
        }
    }
}

/// A name the task network resolves to a sandbox address, as a VPC's DNS resolves an RDS endpoint:
/// a value that is exactly `host` or `host:port` with `host` ending in `suffix` becomes `address`
/// (`ip:port`, or `ip:port`'s ip alone when the value had no port). The service resolves names itself,
/// so the agent rewrites the values it hands a task instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    pub suffix: String,
    pub address: String,
    /// The host must be `suffix` itself (one instance's endpoint), not merely end in it.
    pub exact: bool,
}

impl HostRule {
    /// `SUFFIX=IP:PORT`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (suffix, address) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected SUFFIX=IP:PORT"))?;
        if suffix.is_empty() || !address.contains(':') {
            return Err(format!("`{text}`: expected SUFFIX=IP:PORT"));
        }
        Ok(Self {
            suffix: suffix.to_owned(),
            address: address.to_owned(),
            exact: false,
        })
    }

    /// One host name (an instance's endpoint) to `address`.
    pub fn exact(host: &str, address: &str) -> Self {
        Self {
            suffix: host.to_owned(),
            address: address.to_owned(),
            exact: true,
        }
    }

    /// The value as the task sees it.
    fn apply(&self, value: &str) -> Option<String> {
        let (host, port) = match value.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => (host, true),
            _ => (value, false),
        };
        let named = !host.contains(['/', '@'])
            && if self.exact {
                host == self.suffix
            } else {
                host.len() > self.suffix.len() && host.ends_with(&self.suffix)
            };
        match (named, port) {
            (false, _) => None,
            (true, true) => Some(self.address.clone()),
            (true, false) => self.address.rsplit_once(':').map(|(ip, _)| ip.to_owned()),
        }
    }
}

/// The environment with every value a rule names resolved.
pub fn resolve_hosts(environment: &mut BTreeMap<String, String>, rules: &[HostRule]) {
    for value in environment.values_mut() {
        if let Some(resolved) = rules.iter().find_map(|rule| rule.apply(value)) {
            *value = resolved;
        }
    }
}

/// A started task.
pub struct Task {
    pub id: String,
    /// The task definition's container the agent runs.
    pub container: String,
    /// What the image's tag named in its registry when the task started.
    pub image_digest: Option<String>,
    pub deployment: String,
    pub task_definition: String,
    pub ip: Ipv4Addr,
    pub launch: Launch,
    pub child: tokio::process::Child,
    pub started: Instant,
    pub healthy: bool,
    pub consecutive_failures: u32,
    pub last_check: Option<Instant>,
    pub log: PathBuf,
}

impl Task {
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, self.launch.container_port)
    }

    pub fn version(&self) -> String {
        image_tag(&self.launch.image).to_owned()
    }
}

/// Starts the process of a task: `binary` for any image, the container's environment with the task's
/// own address, the agent's `extra` settings and a faulty image's faults.
pub fn spawn(
    binary: &Path,
    launch: &Launch,
    ip: Ipv4Addr,
    extra: &[(String, String)],
    log: &Path,
) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(&launch.command)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(&launch.environment)
        .env("BIND_ADDR", ip.to_string())
        .env("PORT", launch.container_port.to_string())
        .envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some((error_rate, latency_ms)) = faults_of(&launch.image) {
        cmd.arg("--enable-fault-injection")
            .env("FAULT_ERROR_RATE", error_rate)
            .env("FAULT_LATENCY_MS", latency_ms);
    }
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true);
    cmd.spawn()
}

/// Runs the container's health check command once (`CMD` with the image's binary mapped to the local
/// one, or `CMD-SHELL` through `sh -c`); true when it exits 0 within its timeout.
pub async fn check_health(binary: &Path, task: &Task) -> bool {
    let Some(check) = &task.launch.health_check else {
        // No health check: a task is healthy while its process runs, as on ECS.
        return true;
    };
    let command = check.command();
    let mut cmd = match command.first().map(String::as_str) {
        Some("CMD") if command.len() > 1 => {
            let program = &command[1];
            let program = if program.ends_with("auth-service") {
                binary.to_path_buf()
            } else {
                PathBuf::from(program)
            };
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(&command[2..]);
            cmd
        }
        Some("CMD-SHELL") if command.len() > 1 => {
            let mut cmd = tokio::process::Command::new("sh");
            cmd.arg("-c").arg(&command[1]);
            cmd
        }
        _ => return false,
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(&task.launch.environment)
        .env("BIND_ADDR", task.ip.to_string())
        .env("PORT", task.launch.container_port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let timeout = Duration::from_secs(check.timeout().unwrap_or(5).clamp(1, 60) as u64);
    matches!(
        tokio::time::timeout(timeout, cmd.status()).await,
        Ok(Ok(status)) if status.success()
    )
}

/// SIGTERM, then SIGKILL after the container's stop timeout.
pub async fn stop(mut child: tokio::process::Child, timeout: Duration) {
    if let Some(pid) = child.id() {
        terminate(pid);
    }
    if tokio::time::timeout(timeout, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Sends SIGTERM to `pid` (through kill(1): the workspace forbids `unsafe`, and so `libc::kill`).
pub fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Stops tasks a previous agent left running (one killed before it could stop them): the pids it
/// recorded in `file` whose command line still names `binary`.
pub fn stop_leftovers(file: &Path, binary: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(file) else {
        return 0;
    };
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stopped = 0;
    for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !name.is_empty() && String::from_utf8_lossy(&cmdline).contains(&name) {
            terminate(pid);
            stopped += 1;
        }
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references() {
        let plain =
            SecretRef::parse("arn:aws:secretsmanager:eu-west-1:123456789012:secret:/suma/auth/staging/database-url")
                .unwrap();
        assert_eq!(plain.region, "eu-west-1");
        assert_eq!(plain.secret_id, "/suma/auth/staging/database-url");
        assert_eq!(plain.json_key, None);
        assert_eq!(plain.pick("postgres://x").unwrap(), "postgres://x");

        let keyed = SecretRef::parse("arn:aws:secretsmanager:eu-central-1:1:secret:db-creds:password::").unwrap();
        assert_eq!(keyed.secret_id, "db-creds");
        assert_eq!(keyed.json_key.as_deref(), Some("password"));
        assert_eq!(keyed.version_stage, None);
        assert_eq!(keyed.pick(r#"{"username":"u","password":"p w"}"#).unwrap(), "p w");
        assert!(keyed
            .pick(r#"{"username":"u"}"#)
            .unwrap_err()
            .contains("no key `password`"));
        assert!(keyed.pick("not json").unwrap_err().contains("not JSON"));

        let staged = SecretRef::parse("arn:aws:secretsmanager:eu-west-1:1:secret:k::AWSPREVIOUS:").unwrap();
        assert_eq!(staged.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert!(SecretRef::parse("arn:aws:ssm:eu-west-1:1:parameter/x").is_err());
    }

    #[test]
    fn rds_endpoints_resolve_to_the_sandbox_database() {
        let rules = [HostRule::parse(".rds.amazonaws.com=127.0.0.1:5544").unwrap()];
        let mut env: BTreeMap<String, String> = [
            ("DATABASE_HOST", "auth-dr.abc123.eu-central-1.rds.amazonaws.com:5432"),
            ("NAME_ONLY", "auth.abc123.eu-west-1.rds.amazonaws.com"),
            ("URL", "postgres://u:p@auth.abc.eu-west-1.rds.amazonaws.com:5432/db"),
            ("OTHER", "db.example:5432"),
            ("SUFFIX_ALONE", ".rds.amazonaws.com"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        resolve_hosts(&mut env, &rules);
        assert_eq!(env["DATABASE_HOST"], "127.0.0.1:5544");
        assert_eq!(env["NAME_ONLY"], "127.0.0.1");
        assert_eq!(
            env["URL"], "postgres://u:p@auth.abc.eu-west-1.rds.amazonaws.com:5432/db",
            "whole values only"
        );
        assert_eq!(env["OTHER"], "db.example:5432");
        // An instance with a server of its own is resolved ahead of the catch-all, and only its own name.
        let bound = HostRule::exact("auth-dr.abc123.eu-central-1.rds.amazonaws.com", "127.0.0.1:6001");
        let mut bound_env: BTreeMap<String, String> = [
            ("DATABASE_HOST", "auth-dr.abc123.eu-central-1.rds.amazonaws.com:5432"),
            ("OTHER", "x-auth-dr.abc123.eu-central-1.rds.amazonaws.com:5432"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        resolve_hosts(&mut bound_env, &[bound, rules[0].clone()]);
        assert_eq!(bound_env["DATABASE_HOST"], "127.0.0.1:6001");
        assert_eq!(bound_env["OTHER"], "127.0.0.1:5544");
        assert_eq!(env["SUFFIX_ALONE"], ".rds.amazonaws.com");
        assert!(HostRule::parse("no-address").is_err());
        assert!(HostRule::parse(".x=127.0.0.1").is_err());
    }

    #[test]
    fn faulty_images() {
        assert_eq!(faults_of("repo/auth-service:1.6.0-errors"), Some(("0.05", "0")));
        assert_eq!(faults_of("localhost:5000/auth-service:1.6.0-slow"), Some(("0", "300")));
        assert_eq!(faults_of("localhost:5000/auth-service:1.6.0"), None);
        assert_eq!(
            faults_of("localhost:5000/errors-slow"),
            None,
            "the tag, not the repository"
        );
    }
}
