//! The sandbox's data plane: the ECS agent (the tasks and the overlay suma reaches moto through), the
//! staging ALB's weighted proxy, the edge (the other ALBs and the front doors), Prometheus scraping the
//! tasks, the load generator and the Datadog stand-in.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{process, Result, Sandbox, State, AGENT_CLUSTERS, DATABASES, LOAD_RATE, REDIS_ADMIN, REDIS_GROUPS};

impl Sandbox {
    /// What seed.py stores in the secrets the task definition hands the service, per environment (JSON),
    /// and the admin login that may change the tasks' role password (the sandbox's trusted superuser).
    pub(super) fn service_urls(state: &State) -> String {
        let env = |(db, role): (&str, &str), (redis, group): (&str, &str)| {
            format!(
                r#"{{"database_url": "postgres://{role}:{}@127.0.0.1:{port}/{db}", "db_admin": {{"username": "postgres", "password": "", "host": "127.0.0.1", "port": {port}, "dbname": "{db}", "engine": "postgres"}}, "redis_url": "redis://:{}@127.0.0.1:{}/0", "redis_group": "{group}", "smtp_url": "smtp://127.0.0.1:{}"}}"#,
                state[&format!("{role}_password")],
                state[&format!("{redis}_token")],
                state[&format!("{redis}_port")],
                state["smtp_port"],
                port = state["postgres_port"],
            )
        };
        format!(
            r#"{{"staging": {}, "production": {}}}"#,
            env(DATABASES[0], REDIS_GROUPS[0]),
            env(DATABASES[1], REDIS_GROUPS[1])
        )
    }

    /// The ECS agent: runs the staging and production clusters' services as auth-service processes, and
    /// serves the overlay suma reaches moto through.
    pub(super) fn start_agent(&self, state: &mut State) -> Result<()> {
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
        // Every RDS instance moto knows (primary, replica, promoted replica) is the one PostgreSQL: a DR
        // repoint's DATABASE_HOST then reaches the database the tasks already use.
        cmd.arg("--resolve").arg(Self::rds_route(state));
        // A test's streaming replica bound to an instance is promoted with it.
        cmd.arg("--psql").arg(super::ensure_postgres()?.join("psql"));
        // Each environment's replication group is its Redis; the overlay applies AUTH token changes there.
        for (component, group) in REDIS_GROUPS {
            cmd.arg("--redis-group")
                .arg(format!("{group}=127.0.0.1:{}", state[&format!("{component}_port")]));
        }
        cmd.env(
            "SANDBOX_REDIS_ADMIN",
            format!("{REDIS_ADMIN}:{}", state["redis_admin_password"]),
        );
        // What the sandbox adds to every task: the task role's credentials and the AWS endpoint (the
        // service reads its JWT keys itself), a key reload and JWKS cache age short enough for a rotation's
        // steps to take seconds, rate
        // limits and email verification off for the load generator, the breach check in its degraded mode
        // (no network), a short drain, quieter logs.
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
                ("RATE_LIMIT_REGISTER_PER_ACCOUNT", "0"),
                ("EMAIL_VERIFICATION", "optional"),
                // Offline: no breach API to ask. Refused at once (nothing listens) and, in the documented
                // degraded mode, accepted unchecked.
                ("BREACHED_PASSWORD_API_URL", "http://127.0.0.1:9"),
                ("BREACHED_PASSWORD_UNAVAILABLE", "accept"),
                ("SHUTDOWN_TIMEOUT", "5"),
                ("RUST_LOG", "info,sqlx=warn,tower_http=warn"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        // The scraper's token, the same for every task of the sandbox (Prometheus has one).
        task_env.push(("METRICS_TOKEN".to_owned(), state["metrics_token"].clone()));
        for (k, v) in &task_env {
            cmd.arg("--task-env").arg(format!("{k}={v}"));
        }
        let log = self.dir.join("agent.log");
        let pid = process::spawn_logged(&mut cmd, &log)?;
        process::wait_for_port(port, "ecs-agent", Duration::from_secs(20), &log)?;
        Self::started(state, "agent", pid);
        Ok(())
    }

    /// `SUFFIX=IP:PORT` that sends every RDS endpoint to the sandbox's PostgreSQL.
    pub(super) fn rds_route(state: &State) -> String {
        format!(".rds.amazonaws.com=127.0.0.1:{}", state["postgres_port"])
    }

    /// One of the agent's plain-text answers (`/_agent/settled`, `/_agent/summary`): status and body.
    pub(super) fn ask_agent(state: &State, path: &str) -> Option<(u16, String)> {
        let port = Self::port(state, "agent_port")?;
        let answer = crate::http::request(port, "GET", path, None, None).ok()?;
        Some((answer.status, answer.body.trim().to_owned()))
    }

    /// Waits until every service the agent runs has finished its rollout.
    pub(super) fn wait_settled(&self, state: &State) -> Result<()> {
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
    pub(super) fn tasks_summary(&self, state: &State) -> String {
        Self::ask_agent(state, "/_agent/summary").map_or_else(|| "tasks: unknown".to_owned(), |(_, body)| body)
    }

    /// The Datadog stand-in: checks the keys in env.sh, answers monitors from `datadog-monitors.json`, records
    /// events in `datadog-events.jsonl`.
    pub(super) fn start_datadog(&self, state: &mut State, vars: &[(String, String)]) -> Result<()> {
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
                // Metric queries are answered from the real traffic Prometheus scrapes.
                .arg("--prometheus")
                .arg(format!("http://127.0.0.1:{}", state["prometheus_port"]))
                .args(super::AGENT_CLUSTERS.iter().flat_map(|cluster| {
                    let env = cluster.trim_start_matches("suma-finance-");
                    ["--env-cluster".to_owned(), format!("{env}={cluster}")]
                }))
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            &log,
        )?;
        process::wait_for_port(port, "datadog-stub", Duration::from_secs(20), &log)?;
        Self::started(state, "datadog", pid);
        Ok(())
    }

    /// The shipped monitors and dashboard (`templates/datadog`) for both environments, as `suma monitors
    /// apply` and `suma dashboards apply` write them: only what differs, so a restart changes nothing.
    pub(super) fn apply_datadog_templates(&self, vars: &[(String, String)]) -> Result<()> {
        let templates = self.root.join("templates/datadog");
        for env in ["staging", "production"] {
            for group in ["monitors", "dashboards"] {
                let out = Command::new(self.binary("suma"))
                    .args([group, "apply", "--env", env, "--yes", "--output", "json", "--templates"])
                    .arg(&templates)
                    .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .env("SUMA_ACTOR", "sandbox")
                    .output()
                    .map_err(|e| format!("cannot run suma: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "`suma {group} apply --env {env}` failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The weighted proxy on the staging rule: each target group is served by its registered targets (the
    /// tasks the agent registered).
    pub(super) fn start_proxy(&self, state: &mut State, vars: &[(String, String)]) -> Result<()> {
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

    /// The edge: staging's DR ALB and test listener, production's ALB and DR ALB, and both environments' front doors, which
    /// follow their Route 53 failover records to the primary or the DR ALB (staging's primary ALB is the
    /// proxy).
    pub(super) fn start_edge(&self, state: &mut State, vars: &[(String, String)]) -> Result<()> {
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
                    at("edge_staging_test_port"),
                    "eu-west-1",
                    "-",
                    &["staging_canary_tg"],
                ))
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
    pub(super) fn start_prometheus(&self, state: &mut State) -> Result<()> {
        let port = Self::port(state, "prometheus_port").ok_or("no Prometheus port chosen")?;
        let dir = self.dir.join("prometheus");
        std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
        let config = dir.join("prometheus.yml");
        let scrape = prometheus_config(&self.dir.join("agent/scrape-targets.json"), &state["metrics_token"]);
        std::fs::write(&config, scrape).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
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

    pub(super) fn start_loadgen(&self, state: &mut State) -> Result<()> {
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
}

/// Scrapes every task every second, as the agent lists them. Their metrics carry the `deployment` label
/// themselves; the agent's target labels are prefixed `ecs_`, so none turns theirs into `exported_*`.
/// The tasks answer `/metrics` only to the bearer of `METRICS_TOKEN`, which the agent's overlay sets.
pub(super) fn prometheus_config(targets: &Path, token: &str) -> String {
    format!(
        "# Generated by `cargo xtask sandbox up`.\n\
         global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: auth-service\n    metrics_path: /metrics\n    \
         authorization:\n      type: Bearer\n      credentials: {token}\n    file_sd_configs:\n      \
         - files: ['{}']\n        refresh_interval: 5s\n",
        targets.display()
    )
}
