//! `suma taskdef` against the sandbox: rendering with the environment's values, errors located before any
//! AWS call, the diff against moto's live revision, registration read back through the SDK, and a canary
//! whose register step registers the rendered template. Tests that change `staging` run one at a time.

use crate::common;

use std::sync::Arc;

use common::{json, run, sandbox_config, suma};
use suma::aws::AwsApis;
use suma::taskdef::TaskDefinitionSpec;

fn template() -> String {
    common::workspace_root()
        .join("templates/ecs/auth-service.taskdef.yaml")
        .display()
        .to_string()
}

fn staging() -> suma::config::Environment {
    let path = sandbox_config();
    let text = std::fs::read_to_string(&path).unwrap();
    suma::config::parse_str(&text, &path)
        .unwrap()
        .environment("staging")
        .unwrap()
        .clone()
}

async fn session(env: &suma::config::Environment) -> Arc<dyn AwsApis> {
    let options = suma::aws::AwsOptions {
        profile: None,
        operation_timeout: std::time::Duration::from_secs(20),
    };
    Arc::new(suma::aws::AwsSession::connect(&options, [&env.primary_region]).await)
}

fn fresh_image() -> String {
    format!(
        "registry.example/auth-service:td-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn render(image: &str) -> TaskDefinitionSpec {
    let t = template();
    let out = run(suma(&[
        "taskdef",
        "render",
        "--env",
        "staging",
        "--template",
        &t,
        "--image",
        image,
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not a task definition ({e}): {}", out.stdout))
}

#[test]
fn render_for_staging_is_json_with_the_environments_values() {
    crate::require_sandbox!();
    let image = fresh_image();
    let spec = render(&image);
    let env = staging();
    assert_eq!(spec.family, "auth-service");
    assert_eq!(
        (spec.cpu.as_deref(), spec.memory.as_deref()),
        (Some("1024"), Some("2048"))
    );
    let c = spec.container(&env.ecs.container).expect("the configured container");
    assert_eq!(c.image, image);
    assert_eq!(c.port_mappings[0].container_port, i32::from(env.ecs.container_port));
    let var = |name: &str| c.environment.iter().find(|e| e.name == name).map(|e| e.value.as_str());
    assert_eq!(var("APP_ENV"), Some("staging"));
    // The sandbox's JWT secret is configured with audience `suma`, unlike the built-in default.
    assert_eq!(var("JWT_AUDIENCE"), Some("suma"));
    assert_eq!(
        var("JWT_KEYS_SECRET_ID"),
        Some("/suma-finance/auth/staging/jwt-signing-key")
    );
    let db = c.secrets.iter().find(|s| s.name == "DATABASE_URL").unwrap();
    assert_eq!(
        db.value_from,
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:/suma-finance/auth/staging/database-url"
    );
    assert_eq!(
        c.log_configuration.as_ref().unwrap().options["awslogs-group"],
        "/ecs/staging/auth-service"
    );

    // `--output json` prints the same document.
    let t = template();
    let out = run(suma(&[
        "taskdef",
        "render",
        "--env",
        "staging",
        "--template",
        &t,
        "--image",
        &image,
        "--output",
        "json",
    ]));
    assert_eq!(serde_json::from_str::<TaskDefinitionSpec>(&out.stdout).unwrap(), spec);
}

#[test]
fn template_errors_are_located_before_any_aws_call() {
    crate::require_sandbox!();
    let dir = std::env::temp_dir().join(common::unique("taskdef"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.taskdef.yaml");
    let text = std::fs::read_to_string(template()).unwrap().replace(
        "awslogs-group: /ecs/${environment}/auth-service",
        "awslogs-group: /ecs/${enviroment}/auth-service",
    );
    std::fs::write(&path, &text).unwrap();
    let line = text.lines().position(|l| l.contains("${enviroment}")).unwrap() + 1;
    let p = path.display().to_string();
    // A dead endpoint: reaching AWS would fail differently (and slowly).
    for args in [
        vec!["taskdef", "diff", "--env", "staging", "--template", &p],
        vec!["taskdef", "register", "--env", "staging", "--template", &p, "--yes"],
        vec![
            "deploy",
            "canary",
            "--env",
            "staging",
            "--image",
            "r/a:1",
            "--taskdef-template",
            &p,
            "--yes",
        ],
    ] {
        let out = run(suma(&args).env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"));
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{p}:{line}:")) && out.stderr.contains("unknown variable `${enviroment}`"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("known variables: "), "{}", out.stderr);
    }
    // `render` without `--image`: the variable has no value, and the flag that gives it one is named.
    let out = run(suma(&[
        "taskdef",
        "render",
        "--env",
        "staging",
        "--template",
        &template(),
    ]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("variable `${image}` has no value"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--image REPO:TAG"), "{}", out.stderr);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn diff_register_and_read_back() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = staging();
    let aws = session(&env).await;
    let ecs = aws.ecs(&env.primary_region);
    let image = fresh_image();
    let t = template();

    // A fresh image always differs from what the stable service runs.
    let out = run(suma(&[
        "taskdef",
        "diff",
        "--env",
        "staging",
        "--template",
        &t,
        "--image",
        &image,
        "--exit-code",
        "--output",
        "json",
    ]));
    assert_eq!(out.code, 1, "with --exit-code, differences exit 1: {}", out.stderr);
    let report = json(&out);
    assert_eq!(report["identical"], false);
    let changes = report["changes"].as_array().unwrap();
    let image_change = changes
        .iter()
        .find(|c| c["path"] == "containerDefinitions.auth-service.image")
        .expect("the image differs");
    assert_eq!(image_change["rendered"], image.as_str());
    let live = report["live"]["task_definition"].as_str().unwrap().to_owned();

    // Human output names the fields.
    let out = run(suma(&[
        "taskdef",
        "diff",
        "--env",
        "staging",
        "--template",
        &t,
        "--image",
        &image,
    ]));
    assert_eq!(out.code, 0, "without --exit-code a diff is a report: {}", out.stderr);
    assert!(
        out.stdout.contains("~ containerDefinitions.auth-service.image: "),
        "{}",
        out.stdout
    );

    // Dry run: the plan and the document, nothing registered.
    let out = run(suma(&[
        "taskdef",
        "register",
        "--env",
        "staging",
        "--template",
        &t,
        "--image",
        &image,
        "--dry-run",
        "--output",
        "json",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dry = json(&out);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        dry["task_definition"]["containerDefinitions"][0]["image"],
        image.as_str()
    );

    // Without a terminal, `--yes` is required.
    let out = run(suma(&[
        "taskdef",
        "register",
        "--env",
        "staging",
        "--template",
        &t,
        "--image",
        &image,
    ]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);

    let out = run(suma(&[
        "taskdef",
        "register",
        "--env",
        "staging",
        "--template",
        &t,
        "--image",
        &image,
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let registered = json(&out);
    let arn = registered["task_definition"].as_str().unwrap().to_owned();
    assert_ne!(arn, live);

    // Read back through the SDK: moto keeps every field suma models, so the template and the new revision
    // are the same after normalisation.
    let described = ecs.describe_task_definition_spec(&arn).await.unwrap();
    assert_eq!(described.summary.status, "ACTIVE");
    assert_eq!(suma::taskdef::diff(&described.spec, &render(&image)), []);

    // The journal has the operation, with what was registered.
    let op = registered["operation"].as_str().unwrap();
    let out = run(suma(&["ops", "show", op, "--env", "staging", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = json(&out);
    let record = if record.get("operation").is_some() {
        &record["operation"]
    } else {
        &record
    };
    assert_eq!(record["kind"], "taskdef-register");
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["steps"][0]["facts"]["task_definition"], arn.as_str());

    // The stable service was not touched.
    let stable = ecs
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .unwrap();
    assert_eq!(stable[0].task_definition, live);
}

#[tokio::test]
async fn a_canary_from_the_template_registers_the_rendered_task_definition() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = staging();
    let aws = session(&env).await;
    let ecs = aws.ecs(&env.primary_region);
    let before = ecs
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .unwrap()[0]
        .task_definition
        .clone();
    let image = fresh_image();
    let t = template();

    let out = run(suma(&[
        "deploy",
        "canary",
        "--env",
        "staging",
        "--image",
        &image,
        "--taskdef-template",
        &t,
        "--dry-run",
        "--output",
        "json",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dry = json(&out);
    assert!(
        dry["plan"][0]["detail"].as_str().unwrap().contains("rendered from"),
        "{}",
        dry["plan"][0]
    );
    assert_eq!(
        dry["task_definition"]["containerDefinitions"][0]["image"],
        image.as_str()
    );

    let mut deploy = suma(&[
        "deploy",
        "canary",
        "--env",
        "staging",
        "--image",
        &image,
        "--taskdef-template",
        &t,
        "--yes",
        "--output",
        "json",
        "--timeout",
        "60s",
    ]);
    deploy.env("SUMA_ACTOR", "e2e-taskdef");
    let out = run(deploy);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = json(&out);
    assert_eq!(report["outcome"]["outcome"], "promoted");
    let op = &report["operation"];
    assert_eq!(op["parameters"]["task_definition"]["family"], "auth-service");
    let fact = |name: &str| op["steps"][0]["facts"][name].as_str().unwrap().to_owned();
    assert_eq!(op["steps"][0]["facts"]["stable_task_definition"], before.as_str());
    // What was registered is the template, not a copy of the stable revision; the canary's copy differs
    // only in its label.
    let release = ecs
        .describe_task_definition_spec(&fact("release_task_definition"))
        .await
        .unwrap();
    assert_eq!(suma::taskdef::diff(&release.spec, &render(&image)), []);
    let canary = ecs
        .describe_task_definition_spec(&fact("canary_task_definition"))
        .await
        .unwrap();
    let changes = suma::taskdef::diff(&canary.spec, &render(&image));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        changes[0].path,
        "containerDefinitions.auth-service.environment.DEPLOYMENT_LABEL"
    );

    // Back to the revision live before, for the other tests.
    let out = run(suma(&[
        "rollback",
        "--env",
        "staging",
        "--reason",
        "e2e: taskdef canary done",
        "--yes",
        "--output",
        "json",
        "--timeout",
        "60s",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stable = ecs
        .describe_services(&env.ecs.cluster, std::slice::from_ref(&env.ecs.service))
        .await
        .unwrap();
    assert_eq!(stable[0].task_definition, before);
}
