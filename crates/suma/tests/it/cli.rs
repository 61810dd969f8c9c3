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
    settings.add_filter(r"version \S+( \(.*\))?(, commit \S+)?", "version [VERSION]");
    settings.add_filter(r"signing key \S+ \(\d+ verifying\)", "signing key [KID]");
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
fn deploy_settings_that_could_never_work_are_reported_before_anything_runs() {
    crate::require_sandbox!();
    let (_, stderr) = config_error(|t| {
        t.replacen(
            "    bluegreen:\n",
            "    hooks:\n      post_step:\n      - name: h\n        url: health\n        attempts: 0\n    notifications:\n    - kind: slack\n    bluegreen:\n",
            1,
        )
        .replacen("bake: 20s", "bake: 2s", 1)
    });
    for expected in [
        "hooks.post_step.0.url`: `health` is neither an http(s) URL nor a path",
        "hooks.post_step.0.attempts`: 0 attempts",
        "notifications.0`: needs exactly one of `url_env` and `url_secret`",
        "bluegreen.bake`: 2s cannot hold the analyses the cutover needs (one every 5s)",
    ] {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
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

/// `suma ARGS` without the sandbox's environment: for what needs neither AWS nor a configuration.
fn offline(args: &[&str]) -> common::Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_suma"));
    cmd.args(args)
        .env_remove("SUMA_OUTPUT")
        .env_remove("SUMA_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    run(cmd)
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = offline(&["--version"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out.stdout.trim();
    let rest = line
        .strip_prefix(&format!("suma {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, date) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(common::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        // Built and tested from this checkout: the binary names its commit and that commit's date.
        Some(head) => {
            assert_eq!(commit, head, "{line}");
            assert!(chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(), "{line}");
        }
        None => assert_eq!(rest, "unknown unknown", "{line}"),
    }
}

#[test]
fn completion_scripts_cover_the_commands_and_bash_loads_its_own() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = offline(&["completion", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for word in ["deploy", "rollback", "compliance", "dry-run"] {
            assert!(out.stdout.contains(word), "{shell}: no `{word}`");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("suma.bash");
    std::fs::write(&script, offline(&["completion", "bash"]).stdout).unwrap();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p suma", script.display()))
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("suma"));
    let out = offline(&["completion", "tcsh"]);
    assert_eq!(out.code, 2, "an unknown shell is a usage error");
}

#[test]
fn man_pages_cover_every_visible_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = offline(&["man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for page in [
        "suma.1",
        "suma-deploy-canary.1",
        "suma-dr-resume.1",
        "suma-secrets-abort.1",
        "suma-rollback-abort.1",
        "suma-completion.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    assert!(
        !dir.path().join("suma-man.1").exists(),
        "the hidden generator has no page"
    );
    let canary = std::fs::read_to_string(dir.path().join("suma-deploy-canary.1")).unwrap();
    assert!(canary.contains("dry\\-run"), "flags are documented");
}

#[test]
fn the_offline_commands_honour_suma_output() {
    // No configuration file is read, and `SUMA_OUTPUT` still applies.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_suma"));
    cmd.args(["compliance", "list"])
        .env("SUMA_OUTPUT", "json")
        .env("SUMA_CONFIG", "/nonexistent/suma.yaml")
        .stdin(std::process::Stdio::null());
    let out = run(cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(json(&out).as_array().is_some_and(|checks| checks.len() >= 40));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_suma"));
    cmd.args(["runbook", "actions"]).env("SUMA_OUTPUT", "yaml");
    let out = run(cmd);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("`SUMA_OUTPUT` is `yaml`"), "{}", out.stderr);
}

#[test]
fn every_dry_run_prints_one_shape_and_changes_nothing() {
    crate::require_sandbox!();
    let _staging = common::staging_shared();
    let before = run(suma(&["ops", "list", "--env", "staging", "--output", "json"])).stdout;
    let template = common::workspace_root()
        .join("templates/ecs/auth-service.taskdef.yaml")
        .to_string_lossy()
        .into_owned();
    let runbooks = common::workspace_root().join("runbooks").to_string_lossy().into_owned();
    let datadog_templates = common::workspace_root()
        .join("templates/datadog")
        .to_string_lossy()
        .into_owned();
    for args in [
        &["deploy", "canary", "--image", "registry.example/auth-service:9.9.9"][..],
        // To an image: the previous revision exists only once a deploy has run.
        &[
            "rollback",
            "--reason",
            "dry run",
            "--to",
            "registry.example/auth-service:9.9.8",
        ],
        &["dr", "failover"],
        &["dr", "failback"],
        &["dr", "drill"],
        &["secrets", "rotate", "jwt-signing-key"],
        &["runbook", "run", "release-smoke", "--dir", &runbooks],
        &["monitors", "apply", "--templates", &datadog_templates],
        &[
            "taskdef",
            "register",
            "--template",
            &template,
            "--image",
            "registry.example/auth-service:9.9.9",
        ],
        &["init"],
    ] {
        let mut full = args.to_vec();
        full.extend(["--env", "staging", "--dry-run", "--output", "json"]);
        let out = run(suma(&full));
        assert!([0, 1].contains(&out.code), "{args:?}: {}", out.stderr);
        let report = json(&out);
        assert_eq!(report["dry_run"], true, "{args:?}: {report}");
        // One shape: a list of steps, each named and described.
        let steps = report["plan"]
            .as_array()
            .unwrap_or_else(|| panic!("{args:?}: `plan` is not a list: {report}"));
        for step in steps {
            assert!(
                step["name"].is_string() && step["detail"].is_string(),
                "{args:?}: a step of the plan is not {{name, detail}}: {step}"
            );
        }
    }
    let after = run(suma(&["ops", "list", "--env", "staging", "--output", "json"])).stdout;
    assert_eq!(before, after, "a dry run journals nothing");
}

#[test]
fn tables_fit_the_width_they_are_given() {
    crate::require_sandbox!();
    for (args, columns) in [
        (&["status", "--env", "production"][..], 80),
        (&["status", "--env", "production"], 120),
        (&["compliance", "list"], 100),
    ] {
        let out = run(suma(args).env("COLUMNS", columns.to_string()));
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        for line in out.stdout.lines() {
            assert!(
                console::measure_text_width(line) <= columns,
                "{args:?} at {columns} columns: {line}"
            );
        }
    }
    // Without a width (a pipe, no COLUMNS) rows keep whole values.
    let whole = run(suma(&["compliance", "list"]));
    assert!(whole.stdout.lines().any(|l| console::measure_text_width(l) > 100));
}
