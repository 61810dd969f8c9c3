//! What points suma, the tests and people at the sandbox: the AWS variables (the overlay, dummy
//! credentials of the sandbox's own), the services' URLs, and `env.sh`.

use super::{Result, Sandbox, State, JWT_AUDIENCE, JWT_ISSUER};

impl Sandbox {
    /// The variables that point an AWS client at moto: its endpoint, the region and dummy credentials.
    /// suma and the tests reach moto through the agent's overlay (which shows them task counts and
    /// rollouts); before the agent runs, moto itself.
    pub(super) fn aws_vars(&self, state: &State) -> Vec<(String, String)> {
        let port = state
            .get("agent_port")
            .filter(|_| Self::running(state, "agent"))
            .unwrap_or(&state["moto_port"]);
        self.aws_vars_at(&format!("http://127.0.0.1:{port}"))
    }

    /// The variables that point an AWS client at `endpoint`, the region and dummy credentials.
    pub(super) fn aws_vars_at(&self, endpoint: &str) -> Vec<(String, String)> {
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
    pub(super) fn env_vars(&self, state: &State) -> Vec<(String, String)> {
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
            // Every RDS endpoint moto reports is the one PostgreSQL, for suma's own connections (a runbook's
            // SQL on a restored instance) as for the tasks (the agent's `--resolve`).
            ("SUMA_DB_CONNECT_TO", Self::rds_route(state)),
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

    pub(super) fn write_env_sh(&self, vars: &[(String, String)]) -> Result<()> {
        let mut text = String::from("# Generated by `cargo xtask sandbox up`: `. target/sandbox/env.sh` points suma at the sandbox.\nunset AWS_PROFILE\n");
        for (k, v) in vars {
            text.push_str(&format!("export {k}='{v}'\n"));
        }
        std::fs::write(self.dir.join("env.sh"), text).map_err(|e| format!("cannot write env.sh: {e}"))
    }
}
