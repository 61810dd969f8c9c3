//! Secret rotation end to end: the real `suma` binary against moto's Secrets Manager and the sandbox's real
//! PostgreSQL. Every test works on secrets of its own, in an environment of its own (a copy of `staging`
//! under a unique name, so each has its own lock), and leaves the shared topology alone.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{json, run, sandbox_config, sandbox_var, suma, unique};
use serde_json::Value;

/// A Secrets Manager client for the sandbox's moto, to create the secrets a test rotates.
async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    sandbox_var("AWS_ENDPOINT_URL");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

async fn create(client: &aws_sdk_secretsmanager::Client, id: &str, value: &str) {
    client
        .create_secret()
        .name(id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

/// Version id to labels.
async fn labels(client: &aws_sdk_secretsmanager::Client, id: &str) -> BTreeMap<String, Vec<String>> {
    client
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .unwrap()
        .version_ids_to_stages()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn holder(labels: &BTreeMap<String, Vec<String>>, label: &str) -> Option<String> {
    labels
        .iter()
        .find(|(_, l)| l.iter().any(|x| x == label))
        .map(|(v, _)| v.clone())
}

async fn current(client: &aws_sdk_secretsmanager::Client, id: &str) -> String {
    client
        .get_secret_value()
        .secret_id(id)
        // Explicit: moto answers a request without a stage from its first version, not from AWSCURRENT.
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned()
}

/// A configuration file with `staging` copied to a new environment holding exactly `secrets`.
struct Fleet {
    _dir: tempfile::TempDir,
    path: PathBuf,
    env: String,
}

fn fleet(secrets: Value) -> Fleet {
    fleet_with_lease(secrets, None)
}

/// As [`fleet`], with the lock's lease set (crash tests wait for a dead holder's lease to run out).
fn fleet_with_lease(secrets: Value, lease: Option<&str>) -> Fleet {
    let text = std::fs::read_to_string(sandbox_config()).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    if let Some(lease) = lease {
        config["lock"]["lease"] = serde_yaml::Value::String(lease.to_owned());
    }
    let mut env = config["environments"]["staging"].clone();
    env["secrets"] = serde_yaml::to_value(secrets).unwrap();
    let name = unique("secrets");
    config["environments"]
        .as_mapping_mut()
        .unwrap()
        .insert(serde_yaml::Value::String(name.clone()), env);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suma.yaml");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    Fleet {
        _dir: dir,
        path,
        env: name,
    }
}

impl Fleet {
    fn suma(&self, args: &[&str]) -> std::process::Command {
        let mut all = vec!["--config", self.path.to_str().unwrap()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--env", &self.env]);
        let mut cmd = suma(&all);
        cmd.env("SUMA_STATE_DIR", self._dir.path());
        cmd
    }
}

/// Database credentials JSON for the sandbox's PostgreSQL.
fn credentials(username: &str, password: &str) -> String {
    let url = sandbox_var("DATABASE_URL");
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    serde_json::json!({"username": username, "password": password, "host": "127.0.0.1", "port": port, "dbname": "postgres", "engine": "postgres"}).to_string()
}

async fn admin() -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(&sandbox_var("DATABASE_URL")).await.unwrap()
}

/// The role's stored password hash: it changes when `ALTER ROLE … PASSWORD` ran.
async fn password_hash(role: &str) -> Option<String> {
    let mut conn = admin().await;
    sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(role)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_random_secret_rotates_through_the_staging_labels() {
    let client = secrets_client().await;
    let id = format!("/suma-test/{}/api-key", unique("rotation"));
    create(&client, &id, "initial-value").await;
    let before = labels(&client, &id).await;
    let old_version = holder(&before, "AWSCURRENT").unwrap();
    let fleet = fleet(
        serde_json::json!([{"id": id, "kind": "random", "random": {"length": 40, "alphabet": "hex"}, "consumers": ["auth-service"]}]),
    );

    let plan = run(fleet.suma(&["secrets", "rotate", "api-key", "--dry-run", "--output", "json"]));
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let steps: Vec<String> = json(&plan)["rotations"][0]["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps, ["create", "set", "test", "finish", "consumers"]);
    assert_eq!(labels(&client, &id).await, before, "a dry run changes nothing");

    let out = run(fleet.suma(&["secrets", "rotate", "api-key", "--yes", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = json(&out);
    let rotation = &report["rotations"][0];
    assert_eq!(rotation["outcome"]["outcome"], "rotated");
    let new_version = rotation["outcome"]["version"].as_str().unwrap();
    assert_eq!(
        rotation["operation"]["parameters"]["token"], new_version,
        "the client request token is the version id"
    );
    assert_eq!(
        rotation["operation"]["steps"][4]["facts"]["redeployed"],
        serde_json::json!(["auth-service"])
    );
    let after = labels(&client, &id).await;
    assert_eq!(holder(&after, "AWSCURRENT").as_deref(), Some(new_version));
    assert_eq!(holder(&after, "AWSPREVIOUS"), Some(old_version));
    assert_eq!(holder(&after, "AWSPENDING"), None);
    let value = current(&client, &id).await;
    assert_eq!(value.len(), 40);
    assert!(value.chars().all(|c| c.is_ascii_hexdigit()), "{value}");
    assert!(!out.stdout.contains(&value), "the value is never printed");

    let list = run(fleet.suma(&["secrets", "list", "--output", "json", "--fail-on-due"]));
    assert_eq!(list.code, 0, "just rotated: nothing due: {}", list.stderr);
    assert_eq!(json(&list)["secrets"][0]["due"], false);
}

#[tokio::test]
async fn a_database_password_rotation_changes_the_role_and_the_new_one_connects() {
    let client = secrets_client().await;
    let role = format!("app_{}", &unique("r")[2..14]);
    let password = "initial-password-0123456789";
    {
        let mut conn = admin().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{password}'"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let base = unique("db");
    let (id, admin_id) = (
        format!("/suma-test/{base}/db-password"),
        format!("/suma-test/{base}/db-admin"),
    );
    create(&client, &id, &credentials(&role, password)).await;
    create(&client, &admin_id, &credentials("postgres", "")).await;
    let hash_before = password_hash(&role).await;
    let fleet = fleet(serde_json::json!([{"id": id, "kind": "db-password", "database": {"admin_secret": admin_id}}]));

    let out = run(fleet.suma(&["secrets", "rotate", "db-password", "--yes", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rotation = &json(&out)["rotations"][0];
    assert_eq!(
        rotation["operation"]["steps"][2]["facts"]["connected_as"],
        role.as_str()
    );
    let new: Value = serde_json::from_str(&current(&client, &id).await).unwrap();
    assert_eq!(new["username"], role.as_str());
    assert_ne!(new["password"], password);
    assert_eq!(new["engine"], "postgres", "other members are kept");
    assert_ne!(password_hash(&role).await, hash_before, "ALTER ROLE ran");
    assert_eq!(
        rotation["operation"]["steps"][4]["status"], "skipped",
        "no consumers configured"
    );
}

#[tokio::test]
async fn a_failing_set_step_leaves_awscurrent_unchanged_and_no_awspending() {
    let client = secrets_client().await;
    let base = unique("broken");
    let (id, admin_id) = (
        format!("/suma-test/{base}/db-password"),
        format!("/suma-test/{base}/db-admin"),
    );
    let original = credentials("nobody", "unchanged-password-123");
    create(&client, &id, &original).await;
    // The admin login points at a port where no database listens: the database "refuses".
    let closed = serde_json::json!({"username": "postgres", "password": "", "host": "127.0.0.1", "port": 9, "dbname": "postgres"});
    create(&client, &admin_id, &closed.to_string()).await;
    let before = labels(&client, &id).await;
    let fleet = fleet(serde_json::json!([{"id": id, "kind": "db-password", "database": {"admin_secret": admin_id}}]));

    let out = run(fleet.suma(&["secrets", "rotate", "db-password", "--yes", "--output", "json"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let rotation = &json(&out)["rotations"][0];
    assert_eq!(rotation["outcome"]["outcome"], "failed");
    assert_eq!(rotation["outcome"]["step"], "set");
    assert_eq!(rotation["operation"]["status"], "failed");
    let after = labels(&client, &id).await;
    assert_eq!(holder(&after, "AWSCURRENT"), holder(&before, "AWSCURRENT"));
    assert_eq!(holder(&after, "AWSPENDING"), None, "{after:?}");
    assert_eq!(current(&client, &id).await, original);
}

#[tokio::test]
async fn all_due_rotates_exactly_the_secrets_past_policy() {
    let client = secrets_client().await;
    let base = unique("due");
    let (due, fresh) = (
        format!("/suma-test/{base}/due-key"),
        format!("/suma-test/{base}/fresh-key"),
    );
    create(&client, &due, "a").await;
    create(&client, &fresh, "b").await;
    let fleet = fleet(serde_json::json!([
        {"id": due, "kind": "random", "rotation_days": 0},
        {"id": fresh, "kind": "random", "rotation_days": 90},
    ]));
    let list = run(fleet.suma(&["secrets", "list", "--fail-on-due", "--output", "json"]));
    assert_eq!(list.code, 1, "one secret is past policy: {}", list.stderr);

    let out = run(fleet.suma(&["secrets", "rotate", "--all-due", "--yes", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rotated: Vec<&str> = json(&out)["rotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["secret"].as_str().unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|s| if s == due { "due" } else { "fresh" })
        .collect();
    assert_eq!(rotated, ["due"]);
    assert_ne!(current(&client, &due).await, "a");
    assert_eq!(current(&client, &fresh).await, "b");
}

#[tokio::test]
async fn an_unknown_secret_is_refused_before_any_aws_call() {
    let fleet = fleet(serde_json::json!([]));
    let out = run(fleet
        .suma(&["secrets", "rotate", "nope", "--yes"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no managed secret `nope`"), "{}", out.stderr);
}

#[tokio::test]
async fn a_crash_after_any_step_is_finished_by_resume_or_undone_by_abort() {
    let client = secrets_client().await;
    for step in ["create", "set", "test", "finish", "consumers"] {
        for finish_with in ["--resume", "--abort"] {
            let id = format!("/suma-test/{}/crash-key", unique("crash"));
            create(&client, &id, "original").await;
            let original_version = holder(&labels(&client, &id).await, "AWSCURRENT").unwrap();
            let fleet = fleet_with_lease(
                serde_json::json!([{"id": id, "kind": "random", "consumers": ["auth-service"]}]),
                Some("2s"),
            );
            let crashed = run(fleet
                .suma(&["secrets", "rotate", "crash-key", "--yes"])
                .env("SUMA_FAULT_CRASH_AFTER_STEP", step));
            assert_ne!(crashed.code, 0, "crashed after `{step}`: {}", crashed.stderr);
            // The dead holder's lease runs out (2 s, whole seconds) before anyone may take the lock over.
            tokio::time::sleep(std::time::Duration::from_secs(4)).await;
            let out = run(fleet.suma(&[
                "secrets",
                "rotate",
                "crash-key",
                finish_with,
                "--yes",
                "--output",
                "json",
            ]));
            assert_eq!(
                out.code, 0,
                "{finish_with} after a crash after `{step}`: {}",
                out.stderr
            );
            let after = labels(&client, &id).await;
            assert_eq!(holder(&after, "AWSPENDING"), None, "{step} {finish_with}: {after:?}");
            let value = current(&client, &id).await;
            if finish_with == "--resume" {
                assert_eq!(json(&out)["rotations"][0]["outcome"]["outcome"], "rotated", "{step}");
                assert_ne!(value, "original", "{step}: rotated");
                assert_eq!(holder(&after, "AWSPREVIOUS"), Some(original_version), "{step}");
            } else {
                assert_eq!(json(&out)["rotations"][0]["outcome"]["outcome"], "aborted", "{step}");
                assert_eq!(value, "original", "{step}: undone");
                assert_eq!(holder(&after, "AWSCURRENT"), Some(original_version), "{step}");
            }
        }
    }
}
