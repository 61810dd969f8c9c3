//! `suma runbook` against the sandbox: the shipped runbooks validate, a broken one is reported at its
//! lines, `security-incident` revokes every refresh token and session and rotates the keys on the running
//! service, `database-failure` fails over to the Multi-AZ standby (or, without one, restores the latest
//! snapshot) and verifies the data, `redis-failure` waits out an unresponsive Redis, `deploy-rollback` points staging's real
//! tasks at another release and back, `region-failover` fails a seeded environment over to its DR region,
//! and a run stopped at a
//! failed step is resumed from that step with the outputs recorded before it.

mod aws_call;

use crate::common;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use common::{json, run, sandbox_config, sandbox_var, suma, unique};
use serde_json::{json as j, Value};

fn runbooks() -> String {
    common::workspace_root().join("runbooks").display().to_string()
}

/// How a test holds `staging` (see `common::staging_shared`).
enum StagingHold {
    /// The copy's consumers are staging's ECS services.
    Shared(#[allow(dead_code)] common::StagingShared),
    /// The test disturbs what staging runs on (its Redis), so nothing else may use it meanwhile.
    Exclusive(#[allow(dead_code)] common::StagingExclusive),
}

/// A configuration with `staging` copied to a new environment holding exactly `secrets`.
struct Fleet {
    _staging: StagingHold,
    dir: tempfile::TempDir,
    path: PathBuf,
    env: String,
}

impl Fleet {
    fn new(secrets: Value) -> Self {
        Self::copy_of_staging(secrets, StagingHold::Shared(common::staging_shared()))
    }

    fn copy_of_staging(secrets: Value, hold: StagingHold) -> Self {
        let text = std::fs::read_to_string(sandbox_config()).unwrap();
        let mut config: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let mut env = config["environments"]["staging"].clone();
        env["secrets"] = serde_norway::to_value(secrets).unwrap();
        let name = unique("rb")[..15].to_owned();
        config["environments"]
            .as_mapping_mut()
            .unwrap()
            .insert(serde_norway::Value::String(name.clone()), env);
        Self::write(config, name, hold)
    }

    /// A configuration holding only the seeded environment, with exactly `secrets`.
    fn seeded(seeded: &common::SeededEnvironment, secrets: Value) -> Self {
        let mut config: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(sandbox_config()).unwrap()).unwrap();
        let mut env = seeded.config.clone();
        env["secrets"] = serde_norway::to_value(secrets).unwrap();
        let mut environments = serde_norway::Mapping::new();
        environments.insert(seeded.name.clone().into(), env);
        config["environments"] = environments.into();
        config["defaults"]["environment"] = seeded.name.clone().into();
        Self::write(
            config,
            seeded.name.clone(),
            StagingHold::Shared(common::staging_shared()),
        )
    }

    /// `runbook run NAME` of the shipped runbooks with `params` (`key=value` each), confirmed (`--yes
    /// --skip-manual`), reporting JSON.
    fn runbook(&self, name: &str, params: &[String]) -> std::process::Command {
        let dir = runbooks();
        let mut args = vec!["runbook", "run", name, "--dir", &dir];
        for param in params {
            args.extend(["--param", param.as_str()]);
        }
        args.extend(["--yes", "--skip-manual", "--output", "json"]);
        self.suma(&args)
    }

    /// `runbook run` of the test fixture `runbooks/NAME` with `params`, confirmed (`--yes`), reporting JSON.
    fn fixture(&self, name: &str, params: &[String]) -> std::process::Command {
        let path = common::fixture(&format!("runbooks/{name}"));
        let mut args = vec!["runbook", "run", path.to_str().unwrap()];
        for param in params {
            args.extend(["--param", param.as_str()]);
        }
        args.extend(["--yes", "--output", "json"]);
        self.suma(&args)
    }

    /// Runs `runbook` to a successful end; its JSON report.
    fn completed(&self, name: &str, params: &[String]) -> Value {
        let out = run(self.runbook(name, params));
        assert_eq!(out.code, 0, "stderr:\n{}\nstdout:\n{}", out.stderr, out.stdout);
        json(&out)
    }

    fn write(config: serde_norway::Value, env: String, hold: StagingHold) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suma.yaml");
        std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
        Self {
            _staging: hold,
            dir,
            path,
            env,
        }
    }

    fn suma(&self, args: &[&str]) -> std::process::Command {
        let mut all = vec!["--config", self.path.to_str().unwrap(), "--env", &self.env];
        all.extend_from_slice(args);
        let mut cmd = suma(&all);
        cmd.env("SUMA_STATE_DIR", self.dir.path());
        cmd
    }
}

/// The SDK configuration of `region` on the sandbox (its endpoint and credentials come from env.sh).
async fn sandbox_aws(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .load()
        .await
}

async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    let config = sandbox_aws("eu-west-1").await;
    aws_sdk_secretsmanager::Client::new(&config)
}

async fn current_secret(client: &aws_sdk_secretsmanager::Client, id: &str) -> (String, String) {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    (
        out.version_id().unwrap().to_owned(),
        out.secret_string().unwrap().to_owned(),
    )
}

fn pg_port() -> u16 {
    let url = sandbox_var("DATABASE_URL");
    url.rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Credentials for the service's database (`auth` on the sandbox's PostgreSQL).
fn credentials(username: &str, password: &str) -> String {
    j!({"username": username, "password": password, "host": "127.0.0.1", "port": pg_port(), "dbname": "auth", "engine": "postgres"})
        .to_string()
}

async fn admin_db() -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(&sandbox_var("DATABASE_URL")).await.unwrap()
}

/// A login role that may read the service's tables, and its credentials as a secret (plus the admin
/// login that may change its password): what the runbooks' SQL checks and DB rotations use.
async fn database_role(prefix: &str) -> (String, String, Value) {
    let role = unique("rb").replace('-', "_")[..14].to_owned();
    let password = uuid::Uuid::new_v4().simple().to_string();
    let mut conn = admin_db().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN PASSWORD '{password}'; GRANT pg_read_all_data TO {role};"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let client = secrets_client().await;
    let id = format!("{prefix}/{role}/db-password");
    let admin_id = format!("{prefix}/{role}/db-admin");
    for (name, value) in [
        (&id, credentials(&role, &password)),
        (&admin_id, credentials("postgres", "")),
    ] {
        client
            .create_secret()
            .name(name.as_str())
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let secret = j!({"id": id, "kind": "db-password", "database": {"admin_secret": admin_id}});
    (role, password, secret)
}

/// Connects as `role` over TCP; the server's refusal otherwise.
async fn login_db(role: &str, password: &str) -> Result<(), String> {
    use sqlx::Connection as _;
    let options = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(pg_port())
        .database("postgres")
        .username(role)
        .password(password);
    sqlx::PgConnection::connect_with(&options)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

fn events_mentioning(needle: &str) -> Vec<Value> {
    std::fs::read_to_string(sandbox_var("SUMA_SANDBOX_DATADOG_EVENTS"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn step<'a>(op: &'a Value, id: &str) -> &'a Value {
    op["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {op:#}"))
}

#[test]
fn every_shipped_runbook_validates() {
    crate::require_sandbox!();
    let out = run(suma(&["runbook", "validate", "--dir", &runbooks()]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let files = std::fs::read_dir(common::workspace_root().join("runbooks"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "yaml"))
        .count();
    assert!(files >= 6);
    assert_eq!(out.stdout.trim(), format!("{files} runbook(s) checked, 0 problem(s)"));
    let list = json(&run(suma(&[
        "runbook",
        "list",
        "--dir",
        &runbooks(),
        "--output",
        "json",
    ])));
    let names: Vec<&str> = list["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for required in [
        "database-failure",
        "deploy-rollback",
        "dns-failover",
        "redis-failure",
        "region-failover",
        "secret-compromise",
        "security-incident",
    ] {
        assert!(names.contains(&required), "{names:?}");
    }
}

#[test]
fn a_broken_runbook_is_reported_at_each_line_before_anything_runs() {
    crate::require_sandbox!();
    let fixture = common::fixture("runbooks/broken.yaml");
    let fixture = fixture.to_str().unwrap();
    let out = run(suma(&["runbook", "validate", fixture]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    for expected in [
        "broken.yaml:9:5: `steps.1.action`: unknown action `service.restart`",
        "broken.yaml:13:7: `steps.2.with.count`: `count`: `two` is not an integer",
        "broken.yaml:17:7: `steps.3.with.title`: `steps.look.outputs.runing`: action `service.status` has no output `runing`; it has running, desired, pending, task_definition",
    ] {
        assert!(out.stderr.contains(expected), "missing `{expected}` in:\n{}", out.stderr);
    }
    // `run` refuses it the same way, before any AWS call: the endpoint is unreachable and nothing is locked.
    let fleet = Fleet::new(j!([]));
    let mut cmd = fleet.suma(&["runbook", "run", fixture, "--yes"]);
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let out = run(cmd);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown action `service.restart`"),
        "{}",
        out.stderr
    );
}

/// Registers an account and logs in: (access token, refresh token).
async fn account(http: &reqwest::Client, base: &str) -> (String, String) {
    let body = common::register_account(http, base, "incident").await;
    let login = common::login_json(http, base, &body).await;
    (
        login["access_token"].as_str().expect("an access token").to_owned(),
        login["refresh_token"].as_str().expect("a refresh token").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_incident_revokes_every_token_and_session_and_rotates_the_keys() {
    crate::require_sandbox!();
    let _signing_key = common::staging_signing_key();
    let base = sandbox_var("AUTH_URL");
    let http = reqwest::Client::new();
    let jwt_id = "/suma-finance/auth/staging/jwt-signing-key";
    let (role, old_password, db_secret) = database_role("/suma-test/incident").await;
    let db_id = db_secret["id"].as_str().unwrap().to_owned();
    let fleet = Fleet::new(j!([
        db_secret,
        {"id": jwt_id, "kind": "jwt-signing-key", "jwt": {
            "service_url": base, "issuer": sandbox_var("AUTH_JWT_ISSUER"), "audience": sandbox_var("AUTH_JWT_AUDIENCE"),
            "access_token_ttl": "8s", "clock_skew": "1s", "pickup_timeout": "60s"}},
    ]));
    let accounts = [account(&http, &base).await, account(&http, &base).await];
    for (access, _) in &accounts {
        let me = http
            .get(format!("{base}/api/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
    }
    let client = secrets_client().await;
    let (jwt_before, _) = current_secret(&client, jwt_id).await;
    let (_, db_before) = current_secret(&client, &db_id).await;

    let report = fleet.completed(
        "security-incident",
        &[
            "reason=a leaked signing key (test)".to_owned(),
            format!("db_secret={db_id}"),
            format!("jwt_secret={jwt_id}"),
        ],
    );
    assert_eq!(report["outcome"]["outcome"], "completed");
    let op = &report["operation"];
    assert!(
        step(op, "revoke-refresh-tokens")["facts"]["outputs"]["revoked"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(
        step(op, "end-sessions")["facts"]["outputs"]["revoked"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert_eq!(
        step(op, "revoke-refresh-tokens")["facts"]["confirmed_by"],
        format!("{} (--yes)", op["actor"].as_str().unwrap())
    );
    assert_eq!(step(op, "notify")["status"], "skipped");

    // Every refresh token and session of before the run is dead.
    for (access, refresh) in &accounts {
        let me = http
            .get(format!("{base}/api/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 401, "an access token of an ended session still works");
        let refreshed = http
            .post(format!("{base}/api/auth/refresh"))
            .json(&j!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap();
        assert!(
            refreshed.status().is_client_error(),
            "a revoked refresh token still refreshes: {}",
            refreshed.status()
        );
    }
    // Both secrets rotated; the old database password no longer logs in.
    let (jwt_after, _) = current_secret(&client, jwt_id).await;
    assert_ne!(jwt_after, jwt_before);
    let (_, db_after) = current_secret(&client, &db_id).await;
    assert_ne!(db_after, db_before);
    let refused = login_db(&role, &old_password)
        .await
        .expect_err("the old password still logs in");
    assert!(refused.contains("password authentication failed"), "{refused}");
    let new_password: Value = serde_json::from_str(&db_after).unwrap();
    login_db(&role, new_password["password"].as_str().unwrap())
        .await
        .unwrap();

    // The forensics export is complete and hashed; the events carry the run.
    let export = &step(op, "export-audit")["facts"]["outputs"];
    let text = std::fs::read_to_string(export["path"].as_str().unwrap()).unwrap();
    assert_eq!(text.lines().count() as u64, export["count"].as_u64().unwrap());
    assert!(export["count"].as_u64().unwrap() > 0);
    use sha2::Digest as _;
    assert_eq!(
        export["sha256"].as_str().unwrap(),
        format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
    );
    let run_id = op["id"].as_str().unwrap();
    assert_eq!(events_mentioning(run_id).len(), 2, "the opening and closing events");

    let timeline = run(fleet.suma(&["runbook", "timeline", run_id]));
    assert_eq!(timeline.code, 0, "{}", timeline.stderr);
    assert!(timeline.stdout.contains("`security-incident`"), "{}", timeline.stdout);
    assert!(timeline.stdout.contains("| skipped |"), "{}", timeline.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_compromise_rotates_the_exposed_secret_and_the_old_value_stops_working() {
    crate::require_sandbox!();
    let (role, old_password, db_secret) = database_role("/suma-test/compromise").await;
    let db_id = db_secret["id"].as_str().unwrap().to_owned();
    let fleet = Fleet::new(j!([db_secret]));
    let client = secrets_client().await;
    let (_, before) = current_secret(&client, &db_id).await;

    let report = fleet.completed(
        "secret-compromise",
        &[format!("secret={db_id}"), "where=a support ticket (test)".to_owned()],
    );
    let op = &report["operation"];
    let rotate = step(op, "rotate");
    assert_eq!(rotate["status"], "succeeded", "{rotate}");
    assert!(rotate["facts"]["confirmed_by"].as_str().unwrap().ends_with("(--yes)"));
    let child = rotate["facts"]["outputs"]["operation"].as_str().unwrap();
    assert!(
        child.starts_with(op["id"].as_str().unwrap()),
        "the rotation is the run's child: {child}"
    );
    assert_eq!(
        step(op, "end-sessions")["status"],
        "skipped",
        "only asked for the signing key"
    );
    assert_eq!(step(op, "health")["facts"]["outputs"]["status"], 200);
    assert_eq!(
        step(op, "purge")["status"],
        "skipped",
        "a manual step under --skip-manual"
    );

    // The exposed value no longer logs in; the new one does.
    let (_, after) = current_secret(&client, &db_id).await;
    assert_ne!(after, before);
    let refused = login_db(&role, &old_password)
        .await
        .expect_err("the exposed password still logs in");
    assert!(refused.contains("password authentication failed"), "{refused}");
    let new_password: Value = serde_json::from_str(&after).unwrap();
    login_db(&role, new_password["password"].as_str().unwrap())
        .await
        .unwrap();
    let run_id = op["id"].as_str().unwrap();
    let events = events_mentioning(run_id);
    assert_eq!(events.len(), 2, "the opening and closing events: {events:?}");
    assert!(
        events.iter().any(|e| e.to_string().contains(child)),
        "the closing event names the rotation: {events:?}"
    );
}

/// A seeded environment of its own whose runbooks may read the service's database (a role and its
/// secret), an RDS client of its primary region, and its primary's identifier.
async fn database_fleet(prefix: &str) -> (common::SeededEnvironment, Fleet, aws_sdk_rds::Client, String) {
    let seeded = common::seed_environment(&unique(prefix)[..10]);
    let (_, _, db_secret) = database_role(&format!("/suma-test/{prefix}")).await;
    let fleet = Fleet::seeded(&seeded, j!([db_secret]));
    let rds = aws_sdk_rds::Client::new(&sandbox_aws("eu-west-1").await);
    let primary = format!("suma-finance-{}-db", seeded.name);
    (seeded, fleet, rds, primary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_failure_without_multi_az_restores_the_latest_snapshot_and_verifies_the_data() {
    crate::require_sandbox!();
    // Its own environment: the repoint step changes the service's task definition.
    let (seeded, fleet, rds, primary) = database_fleet("db").await;
    let aws = sandbox_aws("eu-west-1").await;
    rds.modify_db_instance()
        .db_instance_identifier(&primary)
        .multi_az(false)
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    let snapshot = format!("{primary}-before");
    rds.create_db_snapshot()
        .db_instance_identifier(&primary)
        .db_snapshot_identifier(&snapshot)
        .send()
        .await
        .unwrap();
    let target = format!("{}-restored", seeded.name);

    let report = fleet.completed("database-failure", &[format!("restored_identifier={target}")]);
    let op = &report["operation"];
    assert_eq!(step(op, "primary")["facts"]["outputs"]["multi_az"], false);
    assert_eq!(step(op, "failover")["status"], "skipped");
    let restored = &step(op, "restore")["facts"]["outputs"];
    assert_eq!(restored["identifier"], target.as_str());
    assert_eq!(restored["snapshot"], snapshot.as_str());
    let db = rds
        .describe_db_instances()
        .db_instance_identifier(&target)
        .send()
        .await
        .unwrap();
    let endpoint = db.db_instances()[0].endpoint().unwrap();
    let host = format!("{}:{}", endpoint.address().unwrap(), endpoint.port().unwrap());
    assert_eq!(restored["endpoint"], endpoint.address().unwrap());
    assert_eq!(restored["host"], host.as_str());

    // The service now points at the restored instance.
    let ecs = aws_sdk_ecs::Client::new(&aws);
    let td = step(op, "repoint")["facts"]["outputs"]["task_definition"]
        .as_str()
        .unwrap()
        .to_owned();
    let service = ecs
        .describe_services()
        .cluster(format!("suma-finance-{}", seeded.name))
        .services("auth-service")
        .send()
        .await
        .unwrap();
    assert_eq!(service.services()[0].task_definition(), Some(td.as_str()));
    let registered = ecs
        .describe_task_definition()
        .task_definition(&td)
        .send()
        .await
        .unwrap();
    let environment = registered.task_definition().unwrap().container_definitions()[0].environment();
    assert!(
        environment
            .iter()
            .any(|kv| kv.name() == Some("DATABASE_HOST") && kv.value() == Some(host.as_str())),
        "{environment:?}"
    );

    // The verification queries read the real data, read-only, on the restored instance: its RDS name
    // reaches the sandbox's PostgreSQL only through `SUMA_DB_CONNECT_TO` (env.sh), as a port forward
    // would on a laptop, and the secret's host is another.
    let users = &step(op, "users")["facts"]["outputs"];
    let mut conn = {
        use sqlx::Connection as _;
        let url = sandbox_var("DATABASE_URL");
        let auth = format!("{}/auth", url.rsplit_once('/').unwrap().0);
        sqlx::PgConnection::connect(&auth).await.unwrap()
    };
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let seen = users["users"].as_i64().unwrap();
    assert!(
        seen > 0 && seen <= count,
        "query saw {seen} users, the table has {count}"
    );
    assert_eq!(users["value"], users["users"]);
    assert!(users["newest_user"].is_string());
    assert!(step(op, "audit")["facts"]["outputs"]["newest_event"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_failure_with_multi_az_fails_over_to_the_standby_and_waits_for_the_zone_to_change() {
    crate::require_sandbox!();
    // Its own environment: the failover moves the primary to another zone.
    let (_, fleet, rds, primary) = database_fleet("az").await;
    let zone = |db: &aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput| {
        let db = &db.db_instances()[0];
        (
            db.db_instance_status().unwrap().to_owned(),
            db.availability_zone().unwrap().to_owned(),
        )
    };
    let describe = || rds.describe_db_instances().db_instance_identifier(&primary).send();
    assert_eq!(
        zone(&describe().await.unwrap()),
        ("available".to_owned(), "eu-west-1a".to_owned())
    );

    let report = fleet.completed("database-failure", &[]);
    let op = &report["operation"];
    assert_eq!(step(op, "primary")["facts"]["outputs"]["multi_az"], true);
    assert_eq!(step(op, "restore")["status"], "skipped");
    let failover = &step(op, "failover")["facts"];
    // RDS answers `available` for a moment after the request; the step waited for the standby's zone.
    assert_eq!(
        failover["outputs"]["previous_availability_zone"], "eu-west-1a",
        "{failover}"
    );
    assert_eq!(failover["outputs"]["availability_zone"], "eu-west-1b", "{failover}");
    assert_eq!(failover["outputs"]["status"], "available");
    assert_eq!(
        zone(&describe().await.unwrap()),
        ("available".to_owned(), "eu-west-1b".to_owned())
    );
    // The failover was journaled as a child operation of the run, finished.
    let child = failover["child_operation"].as_str().expect("the child operation's id");
    let shown = run(fleet.suma(&["ops", "show", child, "--output", "json"]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown = json(&shown);
    let record = shown.get("operation").unwrap_or(&shown);
    assert_eq!(record["kind"], "database-failover", "{record}");
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["steps"][0]["facts"]["failover_requested"], true, "{record}");
    assert_eq!(record["steps"][0]["facts"]["zone_after"], "eu-west-1b", "{record}");
    // The checks read the database the failover left serving.
    assert!(step(op, "users")["facts"]["outputs"]["users"].as_i64().unwrap() > 0);

    // While an instance reboots, RDS refuses another failover, as the sandbox does.
    rds.reboot_db_instance()
        .db_instance_identifier(&primary)
        .force_failover(true)
        .send()
        .await
        .unwrap();
    let again = rds
        .reboot_db_instance()
        .db_instance_identifier(&primary)
        .force_failover(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_rds::error::ProvideErrorMetadata::code(&again),
        Some("InvalidDBInstanceState")
    );
}

/// A loopback port nothing listens on (free when asked).
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// A sandbox process frozen with SIGSTOP (a node that stops answering, its connections left open) until
/// dropped, which thaws it with SIGCONT even when the test fails.
struct Frozen(String);

impl Frozen {
    fn process(pid: String) -> Self {
        common::send_signal(&pid, "STOP");
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // Not `send_signal`: a failed thaw must not panic inside a drop that may run during a panic.
        let _ = std::process::Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

/// A value of the sandbox's state file (`KEY=VALUE` lines beside `suma.yaml`).
fn sandbox_state(key: &str) -> String {
    let path = sandbox_config().parent().unwrap().join("state");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no `{key}` in {}", path.display()))
}

#[test]
fn redis_failure_waits_for_redis_to_come_back_and_says_so() {
    crate::require_sandbox!();
    // Staging's Redis stops answering: nothing else may use staging meanwhile.
    let fleet = Fleet::copy_of_staging(j!([]), StagingHold::Exclusive(common::staging_exclusive()));
    let frozen = Frozen::process(sandbox_state("redis_staging_pid"));
    let child = common::start(fleet.runbook("redis-failure", &[]));
    // ElastiCache's automatic failover takes a while; here Redis answers again after 15 s.
    std::thread::sleep(std::time::Duration::from_secs(15));
    drop(frozen);
    let out = common::finish(child);
    assert_eq!(out.code, 0, "stderr:\n{}\nstdout:\n{}", out.stderr, out.stdout);
    let report = json(&out);
    let op = &report["operation"];
    let outputs = |id: &str| step(op, id)["facts"]["outputs"].clone();
    assert_eq!(outputs("ready-before")["status"], 503, "{}", outputs("ready-before"));
    let waited = outputs("wait-failover");
    assert_eq!(waited["status"], 200, "{waited}");
    assert!(waited["attempts"].as_i64().unwrap() > 1, "{waited}");
    assert_eq!(step(op, "restore")["status"], "skipped");
    assert_eq!(outputs("ready-after")["status"], 200);
    let closed = events_mentioning(&format!("run {}", op["id"].as_str().unwrap()));
    let titles: Vec<&str> = closed.iter().map(|e| e["title"].as_str().unwrap()).collect();
    assert!(
        titles.iter().any(|t| t.ends_with("runbook started"))
            && titles.iter().any(|t| t.ends_with("service ready again")),
        "{titles:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rollback_points_staging_at_another_release_on_its_real_tasks_and_back() {
    crate::require_sandbox!();
    // The rollback replaces staging's tasks: nothing else may use staging meanwhile.
    let fleet = Fleet::copy_of_staging(j!([]), StagingHold::Exclusive(common::staging_exclusive()));
    let roll =
        |to: &str, reason: &str| fleet.completed("deploy-rollback", &[format!("to={to}"), format!("reason={reason}")]);
    let tag = format!("rb-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let report = roll(
        &format!("registry.example/auth-service:{tag}"),
        "e2e: the release is bad",
    );
    let op = &report["operation"];
    let outputs = |id: &str| step(op, id)["facts"]["outputs"].clone();
    let before = outputs("before")["task_definition"].as_str().unwrap().to_owned();
    let after = outputs("after")["task_definition"].as_str().unwrap().to_owned();
    assert_ne!(before, after);
    assert_eq!(outputs("rollback")["task_definition"], after.as_str());
    assert_eq!(outputs("health")["status"], 200);
    // Every stable task was replaced and runs the release it was pointed at.
    for answer in crate::sandbox_agent::versions_of("auth-service").await {
        assert_eq!(answer["version"], tag.as_str(), "{answer}");
    }
    let closed = events_mentioning(&format!("from {before} to {after}"));
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(
        closed[0]["title"].as_str().unwrap().ends_with("rolled back"),
        "{}",
        closed[0]
    );

    // Staging back as it was, through the same runbook and a revision named by its ARN.
    let back = roll(&before, "e2e: back to the release before the test");
    assert_eq!(
        step(&back["operation"], "after")["facts"]["outputs"]["task_definition"],
        before.as_str()
    );
}

/// The PRIMARY failover record of the seeded environment: (alias target without the trailing dot,
/// health check).
async fn primary_record(route53: &aws_sdk_route53::Client, env: &Value) -> (String, Option<String>) {
    let zone = env["dns"]["hosted_zone_id"].as_str().unwrap();
    let name = env["dns"]["record_name"].as_str().unwrap();
    let sets = route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(name)
        .send()
        .await
        .unwrap();
    let primary = sets
        .resource_record_sets()
        .iter()
        .find(|r| r.failover().map(|f| f.as_str()) == Some("PRIMARY"))
        .expect("a PRIMARY record");
    (
        primary
            .alias_target()
            .unwrap()
            .dns_name()
            .trim_end_matches('.')
            .to_owned(),
        primary.health_check_id().map(str::to_owned),
    )
}

/// A seeded environment of its own (its configuration as JSON), a Route 53 client, and its DR load
/// balancer's name (without the trailing dot).
async fn dns_fleet(prefix: &str) -> (Value, Fleet, aws_sdk_route53::Client, String) {
    let seeded = common::seed_environment(&unique(prefix)[..10]);
    let fleet = Fleet::seeded(&seeded, j!([]));
    let env: Value = serde_json::to_value(&seeded.config).unwrap();
    let route53 = aws_sdk_route53::Client::new(&sandbox_aws("eu-west-1").await);
    let dr_lb = env["alb"]["dr_load_balancer_dns"]
        .as_str()
        .unwrap()
        .trim_end_matches('.')
        .to_owned();
    (env, fleet, route53, dr_lb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_failover_promotes_the_replica_moves_dns_and_scales_the_dr_region() {
    crate::require_sandbox!();
    // Its own environment: the failover promotes its replica and moves its record.
    let (env, fleet, route53, dr_lb) = dns_fleet("reg").await;
    assert_ne!(primary_record(&route53, &env).await.0, dr_lb);

    let report = fleet.completed(
        "region-failover",
        &[
            "reason=drill: the primary region is impaired".to_owned(),
            "accept_data_loss=true".to_owned(),
        ],
    );
    let op = &report["operation"];
    // The failover is a child operation of the run, finished, with its RTO.
    let failover = &step(op, "failover")["facts"];
    let child = failover["child_operation"].as_str().expect("the child operation's id");
    assert_eq!(failover["outputs"]["operation"], child);
    assert!(failover["outputs"]["rto_secs"].as_f64().is_some(), "{failover}");
    let shown = json(&run(fleet.suma(&["ops", "show", child, "--output", "json"])));
    let record = shown.get("operation").unwrap_or(&shown);
    assert_eq!(record["kind"], "dr-failover", "{record}");
    assert_eq!(record["status"], "succeeded", "{record}");
    // DNS answers with the DR region's load balancer; the promoted replica replicates from nothing.
    assert_eq!(primary_record(&route53, &env).await.0, dr_lb);
    let replica = env["rds"]["replica"]["identifier"].as_str().unwrap();
    let dr = aws_sdk_rds::Client::new(&sandbox_aws(env["dr_region"].as_str().unwrap()).await);
    let promoted = dr
        .describe_db_instances()
        .db_instance_identifier(replica)
        .send()
        .await
        .unwrap();
    assert_eq!(promoted.db_instances()[0].db_instance_status(), Some("available"));
    assert_eq!(step(op, "health")["facts"]["outputs"]["status"], 200);
    let events = events_mentioning(&format!("run {}", op["id"].as_str().unwrap()));
    let titles: Vec<&str> = events.iter().map(|e| e["title"].as_str().unwrap()).collect();
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("Region failover of") && t.contains(" done in ")),
        "{titles:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failover_moves_the_primary_record_to_the_dr_load_balancer_and_back() {
    crate::require_sandbox!();
    // Its own environment: the record it moves is the environment's.
    let (env, fleet, route53, dr_lb) = dns_fleet("dns").await;
    let dr_lb = dr_lb.as_str();
    let (home, home_check) = primary_record(&route53, &env).await;
    assert_ne!(home, dr_lb);
    assert_eq!(home_check.as_deref(), env["dns"]["primary_health_check_id"].as_str());

    let move_to = |to: &str| {
        let report = fleet.completed(
            "dns-failover",
            &[format!("to={to}"), "reason=drill of the DNS path".to_owned()],
        );
        report["operation"].clone()
    };

    let op = move_to("dr");
    // The DR service runs nothing in the seeded environment: a person is asked (here skipped).
    assert_eq!(step(&op, "empty")["facts"]["skipped"], "--skip-manual");
    let switched = &step(&op, "switch")["facts"]["outputs"];
    assert_eq!(switched["previous_target"], home.as_str());
    assert_eq!(switched["target"], dr_lb);
    assert_eq!(switched["changed"], true);
    assert!(!switched["change_id"].as_str().unwrap().is_empty());
    assert_eq!(
        primary_record(&route53, &env).await,
        (
            dr_lb.to_owned(),
            env["dns"]["secondary_health_check_id"].as_str().map(str::to_owned)
        )
    );
    let run_id = op["id"].as_str().unwrap();
    assert_eq!(events_mentioning(run_id).len(), 1);

    // Already there: nothing is written.
    let op = move_to("dr");
    let again = &step(&op, "switch")["facts"]["outputs"];
    assert_eq!(again["changed"], false);
    assert_eq!(again["change_id"], "");

    // Back home: the primary load balancer, found from the configured listener, and its own check.
    let op = move_to("primary");
    assert_eq!(step(&op, "empty")["status"], "skipped");
    let back = &step(&op, "switch")["facts"]["outputs"];
    assert_eq!(back["previous_target"], dr_lb);
    assert_eq!(back["target"], home.as_str());
    assert_eq!(primary_record(&route53, &env).await, (home, home_check));
}

/// Answers every request `200` once it is started: the service a stopped run was waiting for.
fn serve_ok(listener: std::net::TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
}

#[test]
fn a_step_with_retry_is_tried_again_until_the_service_answers() {
    crate::require_sandbox!();
    let fleet = Fleet::new(j!([]));
    let port = free_port();
    // Nothing listens for the first seconds: the first tries are refused.
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(2500));
        serve_ok(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    });
    let out = run(fleet.fixture("retry.yaml", &[format!("url=http://127.0.0.1:{port}/health")]));
    assert_eq!(out.code, 0, "stderr:\n{}\nstdout:\n{}", out.stderr, out.stdout);
    let report = json(&out);
    let check = &report["operation"]["steps"][0];
    assert_eq!(check["status"], "succeeded");
    assert_eq!(check["facts"]["outputs"]["status"], 200);
    let tries = check["attempts"].as_array().expect("the failed tries are journaled");
    assert!(!tries.is_empty(), "{check}");
    for attempt in tries {
        assert_eq!(attempt["status"], "failed", "{attempt}");
        assert!(
            attempt["error"].as_str().unwrap().contains(&port.to_string()),
            "{attempt}"
        );
    }
    assert!(out.stderr.contains("trying again in"), "{}", out.stderr);
    let run_id = report["operation"]["id"].as_str().unwrap();
    let timeline = run(fleet.suma(&["runbook", "timeline", run_id]));
    assert!(timeline.stdout.contains("## Earlier tries"), "{}", timeline.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_read_rows_and_json_answers_and_say_where_they_lead_nowhere() {
    crate::require_sandbox!();
    let (_, _, db_secret) = database_role("/suma-test/sel").await;
    let fleet = Fleet::new(j!([db_secret]));
    let url = std::env::var("AUTH_URL").unwrap();
    let out = run(fleet.fixture("selectors.yaml", &[format!("url={url}")]));
    assert_eq!(out.code, 1, "the last step's selector leads nowhere: {}", out.stderr);
    let report = json(&out);
    let op = &report["operation"];
    assert_eq!(step(op, "ready")["facts"]["outputs"]["json"]["status"], "ready", "{op}");
    let records = &step(op, "releases")["facts"]["outputs"]["records"];
    assert_eq!(
        records,
        &j!([{"n": 1, "name": "first"}, {"n": 2, "name": "second"}, {"n": 3, "name": "third"}])
    );
    let latest = step(op, "latest");
    assert_eq!(
        latest["status"], "succeeded",
        "its `when` held on selected values: {latest}"
    );
    assert_eq!(
        latest["facts"]["args"]["url"],
        format!("{url}/health?latest=third&all=[1,2,3]").as_str(),
        "{latest}"
    );
    let missing = step(op, "missing");
    assert_eq!(missing["status"], "failed", "{missing}");
    let error = missing["error"].as_str().unwrap();
    assert!(
        error.contains("steps.releases.outputs.records[9].name") && error.contains("the list has 3 element(s)"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_step_checks_the_service_its_database_and_its_tasks_at_once() {
    crate::require_sandbox!();
    let (_, _, db_secret) = database_role("/suma-test/par").await;
    let fleet = Fleet::new(j!([db_secret]));
    let url = std::env::var("AUTH_URL").unwrap();
    let out = run(fleet.fixture("parallel.yaml", &[format!("url={url}")]));
    assert_eq!(out.code, 0, "stderr:\n{}\nstdout:\n{}", out.stderr, out.stdout);
    let op = &json(&out)["operation"];
    let branches = &step(op, "checks")["facts"]["branches"];
    for id in ["ready", "data", "tasks"] {
        assert_eq!(branches[id]["status"], "succeeded", "{id}: {branches}");
    }
    let running = branches["tasks"]["outputs"]["running"].as_u64().unwrap();
    assert!(running >= 1, "{branches}");
    assert_eq!(
        step(op, "summary")["facts"]["args"]["url"],
        format!("{url}/health?redis=ok&answer=42&running={running}").as_str()
    );
    let timeline = run(fleet.suma(&["runbook", "timeline", op["id"].as_str().unwrap()]));
    assert!(
        timeline
            .stdout
            .contains("`data` succeeded; `ready` succeeded; `tasks` succeeded"),
        "{}",
        timeline.stdout
    );
}

/// Credentials of `role` assumed with session name `person`, as each on-call engineer's SSO session is:
/// STS names them `assumed-role/ROLE/PERSON`, which is what tells approvers apart.
async fn assumed(role: &str, person: &str) -> [(&'static str, String); 3] {
    let sts = aws_sdk_sts::Client::new(&sandbox_aws("eu-west-1").await);
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::123456789012:role/{role}"))
        .role_session_name(person)
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    [
        ("AWS_ACCESS_KEY_ID", c.access_key_id().to_owned()),
        ("AWS_SECRET_ACCESS_KEY", c.secret_access_key().to_owned()),
        ("AWS_SESSION_TOKEN", c.session_token().to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_step_goes_on_only_once_two_identities_approved_and_yes_counts_once() {
    crate::require_sandbox!();
    let fleet = Fleet::new(j!([]));
    let out = run(fleet.fixture("approval.yaml", &[]));
    assert_eq!(out.code, 1, "one approval of two stops the run: {}", out.stderr);
    let report = json(&out);
    let op = &report["operation"];
    let id = op["id"].as_str().unwrap().to_owned();
    let runner = step(op, "sign-off")["facts"]["approvals"][0]["identity"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        runner.starts_with("arn:aws:"),
        "the runner's `--yes` is recorded under STS's answer: {runner}"
    );
    let reason = report["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("waiting for approvals: 1 of 2"), "{reason}");
    assert!(
        reason.contains(&format!("suma runbook approve {id} --step sign-off")),
        "{reason}"
    );
    assert_eq!(op["steps"].as_array().unwrap().len(), 2, "`after` did not run: {op}");

    // The runner approving again from outside the run is refused; so is a step that is not an approval.
    let again = run(fleet.suma(&["runbook", "approve", &id, "--yes"]));
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("has already approved step `sign-off`"),
        "{}",
        again.stderr
    );
    let wrong = run(fleet.suma(&["runbook", "approve", &id, "--step", "look", "--yes"]));
    assert!(wrong.stderr.contains("not an `approve` step"), "{}", wrong.stderr);
    // Resumed with `--yes` by the same identity: still one approval, still stopped.
    let resumed = run(fleet.suma(&["runbook", "resume", &id, "--yes", "--output", "json"]));
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    assert!(json(&resumed)["outcome"]["reason"].as_str().unwrap().contains("1 of 2"));

    // A second person, under their own role session, approves from their machine.
    let mut second = fleet.suma(&[
        "runbook",
        "approve",
        &id,
        "--reason",
        "checked the task count",
        "--yes",
        "--output",
        "json",
    ]);
    second.envs(assumed("oncall", "bo").await);
    let approved = run(second);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    let approved = json(&approved);
    assert_eq!(
        approved["approval"]["identity"],
        "arn:aws:sts::123456789012:assumed-role/oncall/bo"
    );
    assert_eq!(approved["approval"]["reason"], "checked the task count");
    assert_eq!(
        (
            approved["approvals"].as_array().unwrap().len(),
            approved["enough"].as_bool()
        ),
        (2, Some(true))
    );

    let done = run(fleet.suma(&["runbook", "resume", &id, "--yes", "--output", "json"]));
    assert_eq!(done.code, 0, "{}", done.stderr);
    let op = &json(&done)["operation"];
    assert_eq!(
        step(op, "sign-off")["facts"]["outputs"]["approved_by"],
        j!([runner, "arn:aws:sts::123456789012:assumed-role/oncall/bo"])
    );
    assert_eq!(step(op, "after")["status"], "succeeded");
    let late = run(fleet.suma(&["runbook", "approve", &id, "--yes"]));
    assert!(late.stderr.contains("is succeeded"), "{}", late.stderr);
}

#[test]
fn a_step_that_may_fail_lets_the_run_go_on_when_datadog_is_down() {
    crate::require_sandbox!();
    let fleet = Fleet::new(j!([]));
    let refused = format!("http://127.0.0.1:{}", free_port());
    let mut cmd = fleet.fixture("tolerant.yaml", &[]);
    cmd.env("SUMA_DATADOG_URL", &refused);
    let out = run(cmd);
    assert_eq!(out.code, 0, "stderr:\n{}\nstdout:\n{}", out.stderr, out.stdout);
    let report = json(&out);
    let op = &report["operation"];
    assert_eq!(op["status"], "succeeded");
    let announce = step(op, "announce");
    assert_eq!(announce["status"], "tolerated", "{announce}");
    assert!(!announce["error"].as_str().unwrap().is_empty(), "{announce}");
    assert_eq!(step(op, "look")["status"], "succeeded");
    assert!(out.stderr.contains("the run goes on"), "{}", out.stderr);
}

#[test]
fn a_signal_runs_the_on_cancel_handlers_and_leaves_the_run_resumable() {
    crate::require_sandbox!();
    let fleet = Fleet::new(j!([]));
    // Nothing listens: the check keeps trying until the signal.
    let url = format!("http://127.0.0.1:{}/health", free_port());
    let child = common::start(fleet.fixture("signal.yaml", &[format!("url={url}")]));
    std::thread::sleep(std::time::Duration::from_secs(4));
    common::send_signal(&child.id().to_string(), "TERM");
    let out = common::finish(child);
    let stderr = &out.stderr;
    let report = json(&out);
    let run_id = report["operation"]["id"].as_str().unwrap();
    assert_eq!(report["operation"]["status"], "interrupted", "{stderr}");
    let told = events_mentioning(&format!("run {run_id}"));
    let titles: Vec<&str> = told.iter().map(|e| e["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["a run interrupted at check"], "{stderr}");
    let abort = run(fleet.suma(&["runbook", "abort", run_id, "--reason", "test over", "--yes"]));
    assert_eq!(abort.code, 1, "{}", abort.stderr);
}

#[test]
fn a_run_stopped_at_a_failed_step_resumes_there_with_the_earlier_outputs() {
    crate::require_sandbox!();
    let fleet = Fleet::new(j!([]));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/health");
    let out = run(fleet.fixture("resume.yaml", &[format!("url={url}")]));
    assert_eq!(out.code, 1, "a stopped run answers no: {}", out.stderr);
    let first = json(&out);
    assert_eq!(
        first["outcome"],
        j!({"outcome": "stopped", "step": "check", "reason": first["outcome"]["reason"]})
    );
    assert!(first["outcome"]["reason"].as_str().unwrap().contains(&url));
    let run_id = first["operation"]["id"].as_str().unwrap().to_owned();
    let first_step_started = first["operation"]["steps"][0]["started_at"].clone();
    // The on_failure handler told Datadog where the run stopped, unattended, and the run notes it.
    let told = events_mentioning(&format!("run {run_id}: "));
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["title"], "a run stopped at check");
    let notes = first["operation"]["events"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["message"]
            .as_str()
            .unwrap()
            .starts_with("on_failure `tell-stopped`: done")),
        "{notes:?}"
    );

    // The environment stays locked by the run: another run is refused, naming it.
    let blocked = run(fleet.fixture("resume.yaml", &[format!("url={url}")]));
    assert_eq!(blocked.code, 3, "{}", blocked.stderr);
    assert!(blocked.stderr.contains(&run_id), "{}", blocked.stderr);

    serve_ok(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    let out = run(fleet.suma(&["runbook", "resume", &run_id, "--yes", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let resumed = json(&out);
    assert_eq!(resumed["outcome"]["outcome"], "completed");
    let op = &resumed["operation"];
    assert_eq!(op["id"], run_id.as_str());
    assert_eq!(
        op["steps"][0]["started_at"], first_step_started,
        "the first step did not run again"
    );
    assert_eq!(op["steps"][1]["facts"]["outputs"]["status"], 200);
    let task_definition = op["steps"][0]["facts"]["outputs"]["task_definition"].as_str().unwrap();
    let events = events_mentioning(&format!("resume test {run_id}"));
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["text"],
        format!("stable ran {task_definition}; check answered 200").as_str()
    );
    // Finished: the lock is free again.
    let lock = json(&run(fleet.suma(&["lock", "status", "--output", "json"])));
    assert!(lock["lock"].is_null(), "{lock}");
    let timeline = run(fleet.suma(&["runbook", "timeline", &run_id]));
    assert!(timeline.stdout.contains("resumed by"), "{}", timeline.stdout);
}
