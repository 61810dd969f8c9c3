//! The real `suma` binary against the sandbox: status output, configuration errors, exit codes.

use crate::common;

use common::{json, run, sandbox_config, suma};

#[test]
fn status_shows_the_whole_environment_for_people() {
    crate::require_sandbox!();
    let out = run(suma(&["status", "--env", "production"]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", "[TIME]");
    settings.add_filter(r"http://127\.0\.0\.1:\d+", "[AUTH_URL]");
    settings.add_filter(r"in \d+ ms", "in [N] ms");
    settings.add_filter(r"version: \{.*\}", "version: [VERSION]");
    settings.bind(|| insta::assert_snapshot!("status_production", out.stdout));
}

#[test]
fn status_json_is_structured() {
    crate::require_sandbox!();
    let out = run(suma(&["status", "--env", "production", "--output", "json"]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let report = json(&out);
    assert_eq!(report["environment"], "production");
    assert_eq!(report["primary_region"], "eu-west-1");
    assert_eq!(report["dr_region"], "eu-central-1");
    assert!(report["generated_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let services = report["services"]["data"].as_array().unwrap();
    let roles: Vec<&str> = services.iter().map(|s| s["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["stable", "canary", "dr"]);
    assert_eq!(services[0]["name"], "auth-service");
    // The sandbox runs 2 real tasks per environment (the ECS agent), all running once settled.
    assert_eq!(services[0]["desired"], 2);
    assert_eq!(services[0]["running"], 2);
    assert_eq!(services[0]["cluster"], "suma-finance-production");
    assert_eq!(services[2]["region"], "eu-central-1");
    assert!(services[0]["image"].as_str().unwrap().ends_with("auth-service:1.4.2"));
    assert!(services[0]["task_definition"]
        .as_str()
        .unwrap()
        .starts_with("auth-service:"));

    let traffic = &report["traffic"]["data"];
    assert_eq!(
        (traffic["stable_weight"].as_i64(), traffic["canary_weight"].as_i64()),
        (Some(100), Some(0))
    );
    assert_eq!(traffic["state"], "stable");

    let dbs = report["databases"]["data"].as_array().unwrap();
    assert_eq!(dbs[0]["role"], "primary");
    assert_eq!(dbs[0]["multi_az"], true);
    assert_eq!(dbs[0]["storage_encrypted"], true);
    assert_eq!(dbs[1]["role"], "replica");
    assert_eq!(dbs[1]["region"], "eu-central-1");
    assert!(dbs[1]["replica_source"]
        .as_str()
        .unwrap()
        .ends_with("suma-finance-production-db"));

    let dns = report["dns"]["data"].as_array().unwrap();
    let failover: Vec<&str> = dns.iter().map(|r| r["failover"].as_str().unwrap()).collect();
    assert_eq!(failover, ["PRIMARY", "SECONDARY"]);
    assert!(dns
        .iter()
        .all(|r| r["name"] == "auth.suma-finance.com" && r["health"] == "healthy"));

    let secrets = report["secrets"]["data"].as_array().unwrap();
    // Four of the original topology, and what the service reads: its database URL, reset-token keyring,
    // TOTP key set (rotated yearly: every older key is kept) and Redis URL.
    assert_eq!(secrets.len(), 8);
    assert!(secrets
        .iter()
        .all(|s| s["overdue"] == false && s["rotation_pending"] == false));
    let policies: Vec<(&str, u64)> = secrets
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s["policy_days"].as_u64().unwrap()))
        .collect();
    assert!(
        policies
            .iter()
            .all(|&(kind, days)| days == if kind == "totp-key" { 365 } else { 90 }),
        "{policies:?}"
    );
    assert_eq!(secrets[1]["kind"], "jwt-signing-key");

    assert_eq!(report["lock"]["status"], "ok");
    assert!(report["lock"]["data"].is_null());

    let health = &report["health"];
    // Production's `url` is its own front door (staging's is AUTH_URL).
    assert_eq!(health["url"], common::sandbox_var("AUTH_PRODUCTION_URL").as_str());
    assert_eq!(health["health"]["status_code"], 200);
    assert_eq!(health["version"]["status_code"], 200);
    assert_eq!(health["version"]["body"]["deployment"], "stable");
    assert!(health["version"]["body"]["signing_kid"]
        .as_str()
        .is_some_and(|kid| !kid.is_empty()));
}

#[test]
fn status_reports_an_unreachable_aws_per_section_and_exits_3() {
    crate::require_sandbox!();
    let out =
        run(suma(&["status", "--env", "production", "--output", "json"]).env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"));
    assert_eq!(out.code, 3, "{}", out.stderr);
    let report = json(&out);
    for section in ["services", "traffic", "databases", "dns", "lock"] {
        assert_eq!(report[section]["status"], "error", "{section}");
        assert!(
            report[section]["error"]
                .as_str()
                .unwrap()
                .contains("network access to AWS"),
            "{section}: {}",
            report[section]["error"]
        );
    }
}

/// Writes a broken copy of the sandbox configuration.
fn broken_config(edit: impl FnOnce(String) -> String) -> (tempfile::TempDir, std::path::PathBuf) {
    let text = std::fs::read_to_string(sandbox_config()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suma.yaml");
    std::fs::write(&path, edit(text)).unwrap();
    (dir, path)
}

/// Runs `suma status` on a broken file with AWS pointed at a closed port: the error must come from
/// validation, before any AWS call could be attempted.
fn config_error(edit: impl FnOnce(String) -> String) -> (String, String) {
    let (_dir, path) = broken_config(edit);
    let out = run(
        suma(&["--config", path.to_str().unwrap(), "status", "--env", "production"])
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    );
    assert_eq!(out.code, 2, "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    assert!(
        !out.stderr.contains("network access"),
        "no AWS call was attempted: {}",
        out.stderr
    );
    (path.display().to_string(), out.stderr)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn malformed_yaml_is_located() {
    crate::require_sandbox!();
    let (file, stderr) = config_error(|t| t.replacen("table: suma-locks", "table: \"suma-locks", 1));
    assert!(stderr.contains(&format!("error: {file}:")), "{stderr}");
    assert!(stderr.contains("not valid YAML"), "{stderr}");
}

#[test]
fn unknown_key_is_located_and_named() {
    crate::require_sandbox!();
    let mut target = 0;
    let (file, stderr) = config_error(|t| {
        let t = t.replacen(
            "    dr_region: eu-central-1\n",
            "    dr_region: eu-central-1\n    colour: blue\n",
            1,
        );
        target = line_of(&t, "colour: blue");
        t
    });
    assert!(
        stderr.contains(&format!(
            "{file}:{target}:5: `environments.staging.colour`: unknown field `colour`"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn missing_field_is_located_and_named() {
    crate::require_sandbox!();
    let (file, stderr) = config_error(|t| t.replace("  canary_service: auth-service-canary\n", "\n"));
    assert!(stderr.contains(&format!("error: {file}:")), "{stderr}");
    assert!(
        stderr.contains("`environments.staging.ecs`: missing field `canary_service`"),
        "{stderr}"
    );
}

#[test]
fn bad_region_is_located_and_explained() {
    crate::require_sandbox!();
    let mut target = 0;
    let (file, stderr) = config_error(|t| {
        let t = t.replacen("dr_region: eu-central-1", "dr_region: eu-centrl-1", 1);
        target = line_of(&t, "eu-centrl-1");
        t
    });
    assert!(
        stderr.contains(&format!("{file}:{target}:")) && stderr.contains("`eu-centrl-1` is not an AWS region code"),
        "{stderr}"
    );
}

#[test]
fn cross_field_problems_are_all_reported_with_positions() {
    crate::require_sandbox!();
    let (file, stderr) = config_error(|t| {
        t.replace("weight: 50", "weight: 5")
            .replacen("dr_region: eu-central-1", "dr_region: eu-west-1", 1)
            .replacen("interval: 5s", "interval: 30s", 1)
    });
    assert!(
        stderr.contains("canary.steps.1.weight`: weight 5 is out of order"),
        "{stderr}"
    );
    assert!(
        stderr.contains("canary.steps.0.duration`: 20s cannot hold the analysis it needs (one every 30s)"),
        "{stderr}"
    );
    assert!(stderr.contains("dr_region`: is the same as primary_region"), "{stderr}");
    assert!(
        stderr
            .lines()
            .filter(|l| l.starts_with(&format!("error: {file}:")))
            .count()
            >= 3,
        "{stderr}"
    );
}

#[test]
fn unknown_environment_lists_the_defined_ones() {
    crate::require_sandbox!();
    let out = run(suma(&["status", "--env", "prod"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("environment `prod` is not defined"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("`production`, `staging`"), "{}", out.stderr);
}

#[test]
fn config_validate_and_show() {
    crate::require_sandbox!();
    let out = run(suma(&["config", "validate", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json(&out)["environments"], serde_json::json!(["production", "staging"]));

    let out =
        run(suma(&["config", "show", "--env", "production", "--output", "json"]).env("DD_API_KEY", "not-a-real-key"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains("not-a-real-key"));
    let shown = json(&out);
    assert_eq!(shown["credentials"]["DD_API_KEY"], "<redacted>");
    assert_eq!(
        shown["settings"]["environment"],
        serde_json::json!({"value": "production", "origin": "flag"})
    );
    assert_eq!(shown["settings"]["config_path"]["origin"], "env");
    assert_eq!(shown["environment"]["ecs"]["service"], "auth-service");
}

#[test]
fn schema_needs_no_configuration() {
    crate::require_sandbox!();
    let out = run(suma(&["config", "schema"]).env("SUMA_CONFIG", "/nonexistent/suma.yaml"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json(&out)["title"], "ConfigFile");
}

#[test]
fn missing_config_file_says_how_to_provide_one() {
    crate::require_sandbox!();
    let out = run(suma(&["status"]).env("SUMA_CONFIG", "/nonexistent/suma.yaml"));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("/nonexistent/suma.yaml: cannot read the configuration file"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: pass `--config PATH`"), "{}", out.stderr);
}

#[test]
fn help_documents_exit_codes() {
    crate::require_sandbox!();
    let out = run(suma(&["--help"]));
    assert_eq!(out.code, 0);
    for line in [
        "0    success",
        "1    the operation ran and the answer is no",
        "2    usage or configuration error",
        "3    the run failed",
        "130  interrupted",
    ] {
        assert!(out.stdout.contains(line), "{line}");
    }
}

#[test]
fn usage_errors_exit_2() {
    crate::require_sandbox!();
    let out = run(suma(&["lock", "release", "--env", "staging"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("--force") && out.stderr.contains("--reason"),
        "{}",
        out.stderr
    );
}
