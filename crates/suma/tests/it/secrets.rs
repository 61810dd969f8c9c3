//! Secret rotation end to end: the real `suma` binary against moto's Secrets Manager and the sandbox's real
//! PostgreSQL. Every test works on secrets of its own, in an environment of its own (a copy of `staging`
//! under a unique name, so each has its own lock), and leaves the shared topology alone.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{json, run, sandbox_var, suma, unique};
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
    _staging: common::StagingShared,
    _dir: tempfile::TempDir,
    path: PathBuf,
    env: String,
}

fn fleet(secrets: Value) -> Fleet {
    let staging = common::staging_shared();
    let (dir, path, name) = common::staging_copy(secrets);
    Fleet {
        _staging: staging,
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

/// Logs in to the sandbox's PostgreSQL over TCP as `username` (the sandbox checks every role's password but
/// its own superuser's) and runs a query; the server's refusal otherwise.
async fn login_as(username: &str, password: &str) -> Result<(), String> {
    use sqlx::Connection as _;
    let creds: Value = serde_json::from_str(&credentials(username, password)).unwrap();
    let options = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(creds["port"].as_u64().unwrap() as u16)
        .database("postgres")
        .username(username)
        .password(password);
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(|e| e.to_string())?;
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(user, username);
    Ok(())
}

fn assert_refused(result: Result<(), String>, what: &str) {
    let error = result.expect_err(what);
    assert!(error.contains("password authentication failed"), "{what}: {error}");
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
    crate::require_sandbox!();
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
    let steps: Vec<String> = json(&plan)["secrets"][0]["plan"]
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
    crate::require_sandbox!();
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
    assert_refused(login_as(&role, password).await, "the old password stops working");
    login_as(&role, new["password"].as_str().unwrap())
        .await
        .expect("the new password works");
    assert_eq!(
        rotation["operation"]["steps"][4]["status"], "skipped",
        "no consumers configured"
    );
}

#[tokio::test]
async fn alternating_users_flip_between_the_role_and_its_clone_and_keep_the_previous_login_working() {
    crate::require_sandbox!();
    let client = secrets_client().await;
    let role = format!("alt_{}", &unique("r")[2..14]);
    let clone = format!("{role}_clone");
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
    let base = unique("alt");
    let (id, admin_id) = (
        format!("/suma-test/{base}/db-password"),
        format!("/suma-test/{base}/db-admin"),
    );
    create(&client, &id, &credentials(&role, password)).await;
    create(&client, &admin_id, &credentials("postgres", "")).await;
    let fleet = fleet(serde_json::json!([{"id": id, "kind": "db-password",
        "database": {"admin_secret": admin_id, "strategy": "alternating-users"}}]));
    let rotate = || async {
        let out = run(fleet.suma(&["secrets", "rotate", "db-password", "--yes", "--output", "json"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let value: Value = serde_json::from_str(&current(&client, &id).await).unwrap();
        (
            value["username"].as_str().unwrap().to_owned(),
            value["password"].as_str().unwrap().to_owned(),
        )
    };

    // First rotation: the clone is created and becomes current; the original login keeps working.
    let (user1, password1) = rotate().await;
    assert_eq!(user1, clone, "the secret's username changes to the clone");
    login_as(&clone, &password1).await.expect("the clone logs in");
    login_as(&role, password)
        .await
        .expect("the previous credentials still work");

    // Second rotation: back to the original role with a new password; the clone's login is the previous one.
    let (user2, password2) = rotate().await;
    assert_eq!(user2, role, "the username flips back");
    assert_ne!(password2, password);
    login_as(&role, &password2).await.expect("the new credentials work");
    assert_refused(
        login_as(&role, password).await,
        "the original password was replaced by this rotation",
    );
    login_as(&clone, &password1)
        .await
        .expect("the previous (clone) credentials keep working until the next rotation");

    // Third rotation: the clone gets a new password, so its previous one stops; the role's stays.
    let (user3, password3) = rotate().await;
    assert_eq!(user3, clone);
    assert_refused(
        login_as(&clone, &password1).await,
        "the clone's old password ends at the next rotation",
    );
    login_as(&clone, &password3)
        .await
        .expect("the clone's new password works");
    login_as(&role, &password2)
        .await
        .expect("the previous credentials still work");
}

/// An RDS instance of the test's own on moto, with `password` for its master user `auth_admin`.
async fn rds_instance(password: &str) -> String {
    sandbox_var("AWS_ENDPOINT_URL");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .load()
        .await;
    let id = unique("master");
    aws_sdk_rds::Client::new(&config)
        .create_db_instance()
        .db_instance_identifier(&id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("auth_admin")
        .master_user_password(password)
        .send()
        .await
        .unwrap();
    id
}

// moto runs no database behind an RDS instance: it keeps a new master password unchecked, shows no pending
// modification and nothing can log in with it. So these tests stop the rotation right after `set` (and abort
// it), and show the configured instance is the one called; the `test` step's connection is the one the
// `admin_secret` tests exercise against the real PostgreSQL.
#[tokio::test]
async fn an_rds_master_password_is_set_through_rds_and_put_back_by_abort() {
    crate::require_sandbox!();
    let client = secrets_client().await;
    let password = "initial-master-password-0123";
    let instance = rds_instance(password).await;
    let id = format!("/suma-test/{}/db-password", unique("master"));
    let mut value: Value = serde_json::from_str(&credentials("auth_admin", password)).unwrap();
    value["dbInstanceIdentifier"] = instance.clone().into();
    create(&client, &id, &value.to_string()).await;
    let original = current(&client, &id).await;
    let original_version = holder(&labels(&client, &id).await, "AWSCURRENT");
    let fleet = fleet(serde_json::json!([{"id": id, "kind": "db-password", "database": {"rds_master": instance}}]));

    let crashed = run(fleet
        .suma(&["secrets", "rotate", "db-password", "--yes"])
        .env("SUMA_FAULT_CRASH_AFTER_STEP", "set"));
    assert_ne!(crashed.code, 0, "{}", crashed.stderr);
    assert!(
        crashed.stderr.is_empty() || !crashed.stderr.contains("lease"),
        "killed, not stopped: {}",
        crashed.stderr
    );
    // The dead holder's lease runs out before anyone may take the lock over.
    common::expire_lease(&common::sandbox_session().await, &fleet.env).await;
    let out = run(fleet.suma(&[
        "secrets",
        "rotate",
        "db-password",
        "--abort",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The old spelling still works for one release, and says what replaces it.
    assert!(
        out.stderr.contains("`--abort` is deprecated") && out.stderr.contains("suma secrets abort NAME"),
        "{}",
        out.stderr
    );
    let rotation = &json(&out)["rotations"][0];
    assert_eq!(rotation["outcome"]["outcome"], "aborted");
    let set = &rotation["operation"]["steps"][1];
    assert_eq!(set["name"], "set");
    assert_eq!(set["status"], "succeeded", "{set}");
    assert_eq!(set["facts"]["rds_instance"], instance.as_str(), "{set}");
    assert_eq!(set["facts"]["status"], "available", "RDS applied it: {set}");
    assert_eq!(set["facts"]["role"], "auth_admin");
    let after = labels(&client, &id).await;
    assert_eq!(holder(&after, "AWSCURRENT"), original_version);
    assert_eq!(holder(&after, "AWSPENDING"), None, "{after:?}");
    assert_eq!(current(&client, &id).await, original);
    assert!(!out.stdout.contains(password), "no password in the journal");
}

#[tokio::test]
async fn an_rds_master_rotation_on_an_unknown_instance_fails_at_set_and_changes_nothing() {
    crate::require_sandbox!();
    let client = secrets_client().await;
    let id = format!("/suma-test/{}/db-password", unique("nomaster"));
    create(&client, &id, &credentials("auth_admin", "initial-master-password")).await;
    let before = labels(&client, &id).await;
    let unknown =
        fleet(serde_json::json!([{"id": id, "kind": "db-password", "database": {"rds_master": "no-such-instance"}}]));
    let out = run(unknown.suma(&["secrets", "rotate", "db-password", "--yes", "--output", "json"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let rotation = &json(&out)["rotations"][0];
    assert_eq!(rotation["outcome"]["step"], "set", "{rotation}");
    assert!(
        rotation["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("no-such-instance"),
        "{rotation}"
    );
    let after = labels(&client, &id).await;
    assert_eq!(holder(&after, "AWSCURRENT"), holder(&before, "AWSCURRENT"));
    assert_eq!(holder(&after, "AWSPENDING"), None);

    // Both ways of setting the password at once is a configuration error, found before any AWS call.
    let both = fleet(
        serde_json::json!([{"id": id, "kind": "db-password", "database": {"rds_master": "x", "admin_secret": "y"}}]),
    );
    let out = run(both
        .suma(&["secrets", "rotate", "db-password", "--yes"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("exactly one of"), "{}", out.stderr);
}

#[tokio::test]
async fn a_failing_set_step_leaves_awscurrent_unchanged_and_no_awspending() {
    crate::require_sandbox!();
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
    crate::require_sandbox!();
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
    crate::require_sandbox!();
    let fleet = fleet(serde_json::json!([]));
    let out = run(fleet
        .suma(&["secrets", "rotate", "nope", "--yes"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no managed secret `nope`"), "{}", out.stderr);
}

#[tokio::test]
async fn a_crash_after_any_step_is_finished_by_resume_or_undone_by_abort() {
    crate::require_sandbox!();
    let client = secrets_client().await;
    let session = common::sandbox_session().await;
    for step in ["create", "set", "test", "finish", "consumers"] {
        for finish_with in ["resume", "abort"] {
            let id = format!("/suma-test/{}/crash-key", unique("crash"));
            create(&client, &id, "original").await;
            let original_version = holder(&labels(&client, &id).await, "AWSCURRENT").unwrap();
            let fleet = fleet(serde_json::json!([{"id": id, "kind": "random", "consumers": ["auth-service"]}]));
            let crashed = run(fleet
                .suma(&["secrets", "rotate", "crash-key", "--yes"])
                .env("SUMA_FAULT_CRASH_AFTER_STEP", step));
            assert_ne!(crashed.code, 0, "crashed after `{step}`: {}", crashed.stderr);
            // The dead holder's lease runs out before anyone may take the lock over.
            common::expire_lease(&session, &fleet.env).await;
            let out = run(fleet.suma(&["secrets", finish_with, "crash-key", "--yes", "--output", "json"]));
            assert_eq!(
                out.code, 0,
                "{finish_with} after a crash after `{step}`: {}",
                out.stderr
            );
            let after = labels(&client, &id).await;
            assert_eq!(holder(&after, "AWSPENDING"), None, "{step} {finish_with}: {after:?}");
            let value = current(&client, &id).await;
            if finish_with == "resume" {
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

/// A registered account's fresh access token from the service at `base`.
async fn login(http: &reqwest::Client, base: &str, email: &str, password: &str) -> Option<String> {
    let body = serde_json::json!({"email": email, "password": password});
    let response = http
        .post(format!("{base}/api/auth/login"))
        .json(&body)
        .send()
        .await
        .ok()?;
    let answer: Value = response.json().await.ok()?;
    answer["access_token"].as_str().map(str::to_owned)
}

async fn me(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    http.get(format!("{base}/api/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn version(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

// Multi-threaded: the traffic task keeps running while the test thread waits for the `suma` process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_rotation_never_rejects_a_valid_token_and_retirement_ends_the_old_key() {
    crate::require_sandbox!();
    let _signing_key = common::staging_signing_key();
    // Staging's traffic must stay on staging's own tasks: a DR test failing staging over meanwhile would
    // answer from the DR region's tasks, which sign with the DR replica of the key.
    let _staging = common::staging_shared();
    let base = sandbox_var("AUTH_URL");
    let http = reqwest::Client::new();
    let id = "/suma-finance/auth/staging/jwt-signing-key";
    let fleet = fleet(serde_json::json!([{"id": id, "kind": "jwt-signing-key", "jwt": {
        "key_bits": 2048,
        "service_url": base,
        "issuer": sandbox_var("AUTH_JWT_ISSUER"),
        "audience": sandbox_var("AUTH_JWT_AUDIENCE"),
        "access_token_ttl": "8s",
        "clock_skew": "1s",
        "pickup_timeout": "60s",
    }}]));
    let email = format!("{}@example.com", unique("jwt"));
    let password = "a long enough passphrase for rotation";
    let register = http
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert!(register.status().is_success(), "{}", register.text().await.unwrap());
    let before = login(&http, &base, &email, password)
        .await
        .expect("a token before the rotation");
    let old_kid = version(&http, &base).await["signing_kid"].as_str().unwrap().to_owned();
    let old_key = published_key(&http, &base, &old_kid).await;

    // Tokens are issued and verified the whole time the rotation runs.
    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = {
        let (http, base, email, stop) = (http.clone(), base.clone(), email.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.is_cancelled() {
                match login(&http, &base, &email, password).await {
                    Some(token) => match me(&http, &base, &token).await {
                        200 => ok += 1,
                        status => failed.push(status),
                    },
                    None => failed.push(0),
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            (ok, failed)
        })
    };
    let out = run(fleet.suma(&["secrets", "rotate", "jwt-signing-key", "--yes", "--output", "json"]));
    stop.cancel();
    let (ok, failed) = traffic.await.unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        failed.is_empty(),
        "requests failed during the rotation: {failed:?} ({ok} succeeded)"
    );
    assert!(ok > 0);
    let rotation = &json(&out)["rotations"][0]["operation"];
    let new_kid = rotation["steps"][1]["facts"]["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(rotation["steps"][2]["facts"]["verified_kid"], new_kid.as_str());
    let now = version(&http, &base).await;
    assert_eq!(now["signing_kid"], new_kid.as_str());
    assert!(
        now["verify_kids"].to_string().contains(&old_kid),
        "the previous key still verifies: {now}"
    );
    assert_eq!(
        me(&http, &base, &before).await,
        200,
        "a token from before the rotation verifies during the overlap"
    );
    // The new key has the configured algorithm (ES256, the default); the old one keeps its own: on a fresh
    // sandbox the seeded RSA key (RS256), so the first rotation is a migration between algorithms.
    let new_key = published_key(&http, &base, &new_kid).await;
    assert_eq!(
        (&new_key["alg"], &new_key["kty"]),
        (&serde_json::json!("ES256"), &serde_json::json!("EC"))
    );
    assert_eq!(published_key(&http, &base, &old_kid).await, old_key);
    let after = login(&http, &base, &email, password)
        .await
        .expect("a token after the rotation");
    assert_eq!(
        jsonwebtoken::decode_header(&after).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );

    assert_eq!(
        introspect(&http, &base, &before).await["active"],
        true,
        "introspection accepts the previous key during the overlap"
    );

    // A new rotation inside the overlap would drop the key before; refused.
    let again = run(fleet.suma(&["secrets", "rotate", "jwt-signing-key", "--yes"]));
    assert_eq!(again.code, 3, "{}", again.stderr);
    assert!(again.stderr.contains("rotated recently"), "{}", again.stderr);
    let early = run(fleet.suma(&["secrets", "retire", "jwt-signing-key", "--yes"]));
    assert_eq!(
        early.code, 3,
        "retiring inside the overlap needs --force: {}",
        early.stderr
    );
    // After the overlap (8 s + 1 s here), retirement removes the old key; the service drops it on reload.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let retire = run(fleet.suma(&["secrets", "retire", "jwt-signing-key", "--yes"]));
    assert_eq!(retire.code, 0, "{}", retire.stderr);
    let client = secrets_client().await;
    let after = labels(&client, id).await;
    assert_eq!(
        holder(&after, "AWSPREVIOUS"),
        None,
        "the previous key is retired: {after:?}"
    );
    assert_eq!(holder(&after, "AWSPENDING"), None, "{after:?}");
    // Each task drops the retired key at its own next reload (every 2 s in the sandbox), and the front
    // door takes the tasks in turn: both answers are polled together, with margin, so the last pair comes
    // from tasks that all had their chance to reload.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (answer, published) = loop {
        let answer = introspect(&http, &base, &before).await;
        let published = version(&http, &base).await["verify_kids"].to_string();
        if (answer["active"] == false && !published.contains(&old_kid)) || std::time::Instant::now() >= deadline {
            break (answer, published);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(
        answer["active"], false,
        "a token signed by the retired key `{old_kid}` is still accepted 10 s after retirement: {answer}"
    );
    assert_eq!(answer["reason"], "unknown_kid", "{answer}");
    assert!(
        !published.contains(&old_kid),
        "the retired kid is no longer published: {published}"
    );
}

/// The JWK the service publishes under `kid`.
async fn published_key(http: &reqwest::Client, base: &str, kid: &str) -> Value {
    let jwks: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .cloned()
        .unwrap_or_else(|| panic!("kid `{kid}` is not published: {jwks}"))
}

/// `POST /api/auth/introspect`: whether the service's live key set accepts `token`. The call is made as
/// an operator whose token is signed by the key staging signs with now (AWSCURRENT).
async fn introspect(http: &reqwest::Client, base: &str, token: &str) -> Value {
    // By the version that holds the label, as the service reads it (moto's default version can lag a
    // label move).
    let client = secrets_client().await;
    let id = "/suma-finance/auth/staging/jwt-signing-key";
    let current = holder(&labels(&client, id).await, "AWSCURRENT").expect("an AWSCURRENT version");
    let pem = client
        .get_secret_value()
        .secret_id(id)
        .version_id(current)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned();
    let caller = suma::admin::operator_token(
        &pem,
        &sandbox_var("AUTH_JWT_ISSUER"),
        &sandbox_var("AUTH_JWT_AUDIENCE"),
        "tester",
    )
    .unwrap();
    let answer = http
        .post(format!("{base}/api/auth/introspect"))
        .bearer_auth(caller)
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(status, 200, "introspection as an operator: {body}");
    body
}
