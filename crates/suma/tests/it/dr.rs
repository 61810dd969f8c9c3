//! `suma dr` against the sandbox: each test seeds its own environment (both regions, RDS primary and
//! cross-region replica, Route 53 failover records, ECS services, replicated secrets) with
//! `xtask/sandbox/seed.py --environment`, so a failover changes nothing another test or the `production`
//! snapshot reads. The replica lag is measured on a real PostgreSQL streaming replica of the sandbox's
//! database, started by the test.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::sandbox_agent::{wait_for_tasks_in, LoginTraffic};
use common::{json, run, sandbox_var, suma, unique};
use suma::aws::AwsApis;
use suma::config::Environment;

/// A fresh environment in its own copy of the sandbox configuration.
struct DrEnv {
    name: String,
    config: PathBuf,
    env: Environment,
    _dir: tempfile::TempDir,
}

impl DrEnv {
    fn seed() -> Self {
        let sandbox_config = PathBuf::from(sandbox_var("SUMA_CONFIG"));
        let name = unique("dr")[..11].to_owned();
        let seeded = common::seed_environment(&name).config;
        let mut config: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&sandbox_config).unwrap()).unwrap();
        // Only this environment: the test depends on nothing else in the sandbox configuration.
        let mut environments = serde_norway::Mapping::new();
        environments.insert(name.clone().into(), seeded);
        config["environments"] = environments.into();
        config["defaults"]["environment"] = name.clone().into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suma.yaml");
        std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
        let parsed = suma::config::parse_str(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        let env = parsed.environment(&name).unwrap().clone();
        Self {
            name,
            config: path,
            env,
            _dir: dir,
        }
    }

    /// The sandbox's own staging, whose tasks the ECS agent runs in both regions (take
    /// [`common::staging_exclusive`] first).
    /// Its lag is read from the test's streaming replica and its URL verifies the failover, as in a seeded
    /// environment.
    fn staging() -> Self {
        let sandbox_config = PathBuf::from(sandbox_var("SUMA_CONFIG"));
        let mut config: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&sandbox_config).unwrap()).unwrap();
        let staging = &mut config["environments"]["staging"];
        let url = staging["url"].clone();
        let dr = staging
            .as_mapping_mut()
            .unwrap()
            .entry("dr".into())
            .or_insert_with(|| serde_norway::Mapping::new().into());
        dr["replica_lag"] = "postgres".into();
        dr["dr_url"] = url;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suma.yaml");
        std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
        let parsed = suma::config::parse_str(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        Self {
            name: "staging".to_owned(),
            env: parsed.environment("staging").unwrap().clone(),
            config: path,
            _dir: dir,
        }
    }

    /// `suma ARGS --env NAME --config CONFIG`, with the replica's URL when given.
    fn suma(&self, args: &[&str], replica: Option<&StreamingReplica>) -> Command {
        let mut cmd = suma(args);
        cmd.args(["--env", &self.name, "--config"])
            .arg(&self.config)
            .env_remove("SUMA_DR_REPLICA_URL");
        if let Some(r) = replica {
            cmd.envs(dr_vars(r, self.env.primary_region.as_str()));
        }
        cmd
    }

    async fn aws(&self) -> Arc<dyn AwsApis> {
        let options = suma::aws::AwsOptions {
            profile: None,
            operation_timeout: std::time::Duration::from_secs(20),
        };
        Arc::new(suma::aws::AwsSession::connect(&options, [&self.env.primary_region, &self.env.dr_region]).await)
    }

    /// What a failover changes: service counts, databases, the PRIMARY record's target.
    async fn state(&self) -> State {
        let aws = self.aws().await;
        let ecs = &self.env.ecs;
        let count = |region, cluster: &str, service: &str| {
            let aws = aws.clone();
            let (cluster, service) = (cluster.to_owned(), service.to_owned());
            async move {
                let s = aws.ecs(region).describe_services(&cluster, &[service]).await.unwrap();
                (s[0].desired, s[0].task_definition.clone())
            }
        };
        let replica = self.env.rds.replica.as_ref().unwrap();
        let replica_db = aws
            .rds(&replica.region)
            .describe_instance(&replica.identifier)
            .await
            .unwrap();
        let primary_db = aws
            .rds(&self.env.rds.primary.region)
            .describe_instance(&self.env.rds.primary.identifier)
            .await
            .unwrap();
        let records = aws
            .route53()
            .failover_aliases(&self.env.dns.hosted_zone_id, &self.env.dns.record_name)
            .await
            .unwrap();
        let scaling = (
            aws.ecs(&self.env.primary_region)
                .scaling_suspension(&ecs.cluster, &ecs.service)
                .await
                .unwrap(),
            aws.ecs(&self.env.dr_region)
                .scaling_suspension(&ecs.dr.cluster, &ecs.dr.service)
                .await
                .unwrap(),
        );
        let placed = |db: &suma::aws::rds::DbInstance| suma::aws::rds::Placement {
            parameter_group: None,
            ..db.placement.clone()
        };
        State {
            placements: (placed(&primary_db), placed(&replica_db)),
            scaling,
            primary: count(&self.env.primary_region, &ecs.cluster, &ecs.service).await,
            canary: count(&self.env.primary_region, &ecs.cluster, &ecs.canary_service)
                .await
                .0,
            dr: count(&self.env.dr_region, &ecs.dr.cluster, &ecs.dr.service).await,
            replica: (replica_db.status, replica_db.multi_az, replica_db.backup_retention_days),
            primary_db: (primary_db.status, primary_db.multi_az),
            primary_records: records.iter().filter(|r| r.failover == "PRIMARY").count(),
            primary_target: {
                // One target when every PRIMARY record (an A and its AAAA twin) agrees.
                let mut targets: Vec<&str> = records
                    .iter()
                    .filter(|r| r.failover == "PRIMARY")
                    .map(|r| r.target_dns.as_str())
                    .collect();
                targets.sort_unstable();
                targets.dedup();
                match targets.as_slice() {
                    [one] => (*one).to_owned(),
                    split => format!("split between {split:?}"),
                }
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct State {
    primary: (i32, String),
    canary: i32,
    dr: (i32, String),
    replica: (String, bool, i32),
    primary_db: (String, bool),
    /// PRIMARY records of the name (a seeded environment's are an A and its AAAA twin).
    primary_records: usize,
    primary_target: String,
    /// Where the primary and the replica live (their parameter groups left out: moto reports its default).
    placements: (suma::aws::rds::Placement, suma::aws::rds::Placement),
    /// The services' Application Auto Scaling suspension (primary, DR).
    scaling: (
        Option<suma::aws::ecs::ScalingSuspension>,
        Option<suma::aws::ecs::ScalingSuspension>,
    ),
}

/// The port of the sandbox's PostgreSQL (the primary of every test replica).
fn sandbox_pg_port() -> String {
    let url = sandbox_var("DATABASE_URL");
    url.rsplit(':').next().unwrap().split('/').next().unwrap().to_owned()
}

/// `suma_dr_marker` on the sandbox's PostgreSQL, created once: the primary database of the seeded
/// environments' switchovers, which nothing else connects to.
pub fn marker_database_url() -> String {
    static CREATED: std::sync::Once = std::sync::Once::new();
    let admin = sandbox_var("DATABASE_URL");
    CREATED.call_once(|| {
        // "already exists" from an earlier run is fine.
        let _ = Command::new(pg_bin("psql"))
            .arg(&admin)
            .args(["-tAc", "CREATE DATABASE suma_dr_marker"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    });
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/suma_dr_marker"),
        None => admin,
    }
}

/// How the DR commands of an environment whose instances are moto's reach its databases, with
/// `replica` a streaming replica of the sandbox's PostgreSQL:
/// - the DR replica (its lag, a switchover's catch-up) at `replica`, signed into the marker database;
/// - the primary's database (where a switchover writes its marker and waits for sessions): the marker
///   database on the sandbox's PostgreSQL, which nothing else connects to;
/// - a failback reads both at the endpoints RDS reports: the DR instance's goes to the sandbox's
///   PostgreSQL (moto promotes nothing, so that is what DR tasks write to), the rebuilt primary's (any
///   instance of `primary_region`) to `replica`, which replays everything written there.
pub fn dr_vars(replica: &StreamingReplica, primary_region: &str) -> Vec<(String, String)> {
    let marker = marker_database_url();
    vec![
        ("SUMA_DR_REPLICA_URL".to_owned(), replica.url_of("suma_dr_marker")),
        ("SUMA_DR_PRIMARY_URL".to_owned(), marker),
        (
            "SUMA_DB_CONNECT_TO".to_owned(),
            format!(
                "{primary_region}.rds.amazonaws.com=127.0.0.1:{},{}",
                replica.port,
                sandbox_var("SUMA_DB_CONNECT_TO")
            ),
        ),
    ]
}

/// A PostgreSQL streaming replica of the sandbox's database, stopped on drop. It streams through a
/// replication slot of its own, as an RDS replica does: the primary keeps every WAL segment the replica
/// has not received (checkpoints the other tests' base backups force would otherwise recycle them under
/// a replica that is behind, which then never catches up). The slot is dropped with the replica.
pub struct StreamingReplica {
    dir: tempfile::TempDir,
    port: u16,
    slot: String,
}

fn as_postgres(program: &str) -> Command {
    // PostgreSQL refuses to run as root; the sandbox runs it as `postgres` then.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn pg_bin(name: &str) -> String {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin").join(name))
                .find(|p| p.is_file())
        })
        .map_or_else(|| name.to_owned(), |p| p.display().to_string())
}

impl StreamingReplica {
    pub fn start() -> Self {
        Self::start_streaming_through(None)
    }

    /// A replica whose WAL streams through `link` (a port forwarding to the primary) when given.
    fn start_streaming_through(link: Option<u16>) -> Self {
        Self::start_streaming(&sandbox_pg_port(), link)
    }

    /// A replica of the server on `primary_port` (another replica, promoted or not), streaming through
    /// `link` when given.
    fn start_streaming(primary_port: &str, link: Option<u16>) -> Self {
        // Any database of the primary answers the replica's `url_of`: the marker database is made
        // before the base backup copies the cluster.
        let _ = marker_database_url();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let slot = format!("suma_test_{}", unique("replica").replace('-', "_"));
        let _ = Command::new("chown").arg("postgres").arg(dir.path()).status();
        let status = as_postgres(&pg_bin("pg_basebackup"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                primary_port,
                "-U",
                "postgres",
                "-R",
                "-C",
                "-S",
                &slot,
                "-X",
                "stream",
                "-c",
                "fast",
                "-D",
            ])
            .arg(&data)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_basebackup of the sandbox database failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=300 -c fsync=off",
            data.display()
        );
        if let Some(link) = link {
            options.push_str(&format!(
                " -c primary_conninfo='host=127.0.0.1 port={link} user=postgres'"
            ));
        }
        let status = as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the replica did not start: {}",
            log(&dir.path().join("log"))
        );
        Self { dir, port, slot }
    }

    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// Its URL, signed into `database`.
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Waits until its WAL receiver streams from the primary.
    async fn wait_streaming(&self) {
        use sqlx::Connection as _;
        let start = std::time::Instant::now();
        loop {
            let mut conn = sqlx::PgConnection::connect(&self.url()).await.unwrap();
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM pg_stat_wal_receiver")
                .fetch_optional(&mut conn)
                .await
                .unwrap();
            if status.as_deref() == Some("streaming") {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "the replica does not stream: {status:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Drop for StreamingReplica {
    fn drop(&mut self) {
        let _ = as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
        let _ = Command::new(pg_bin("psql"))
            .arg(sandbox_var("DATABASE_URL"))
            .args(["-tAc", &format!("SELECT pg_drop_replication_slot('{}')", self.slot)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn item<'a>(report: &'a serde_json::Value, check: &str) -> &'a serde_json::Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["check"].as_str().unwrap().starts_with(check))
        .unwrap_or_else(|| panic!("no `{check}` in {report:#}"))
}

#[tokio::test]
async fn check_measures_the_lag_on_a_real_replica() {
    crate::require_sandbox!();
    let env = DrEnv::seed();
    let replica = StreamingReplica::start();
    let out = run(env.suma(&["dr", "check", "--output", "json"], Some(&replica)));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = json(&out);
    // Ready; the estimate may warn: the sandbox's DR service is a pilot light (no standby tasks).
    assert_ne!(report["status"], "fail", "{report:#}");
    assert_ne!(item(&report, "estimated failover time")["status"], "fail", "{report:#}");
    let lag = item(&report, "replica lag (postgres)");
    assert_eq!(lag["status"], "pass", "{lag}");
    assert!(lag["value"].as_str().unwrap().ends_with('s'), "{lag}");
    for check in [
        "DR service exists",
        "DR runs the primary's image",
        "replica is available",
        "replicates from the primary",
        "failover records",
        "primary has a health check",
        "TTL",
        "secondary points at the DR load balancer",
    ] {
        assert_eq!(item(&report, check)["status"], "pass", "{check}: {report:#}");
    }
    assert_eq!(
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["area"] == "secrets")
            .count(),
        env.env.secrets.len(),
        "every managed secret is checked in the DR region"
    );

    // A server that is not replaying WAL (the sandbox's primary itself) is not a replica: fail, exit 1.
    let mut cmd = env.suma(&["dr", "check", "--output", "json"], None);
    cmd.env("SUMA_DR_REPLICA_URL", sandbox_var("DATABASE_URL"));
    let out = run(cmd);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out);
    assert_eq!(item(&report, "replica lag")["status"], "fail");
    assert!(
        item(&report, "replica lag")["value"]
            .as_str()
            .unwrap()
            .contains("not replicating"),
        "{report:#}"
    );

    // No source at all: fail with the variable to set.
    let out = run(env.suma(&["dr", "check"], None));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.contains("SUMA_DR_REPLICA_URL"), "{}", out.stdout);
    assert!(out.stdout.contains("FAIL"), "{}", out.stdout);
}

/// The digest shown for one side of the image check (`sha256:` and 12 hex digits).
fn shown_digest(side: &serde_json::Value) -> String {
    let text = side.as_str().unwrap();
    let at = text.find("sha256:").unwrap_or_else(|| panic!("no digest in `{text}`"));
    text[at..at + "sha256:".len() + 12].to_owned()
}

#[tokio::test]
async fn check_reads_the_digest_the_primarys_running_tasks_started_with() {
    crate::require_sandbox!();
    // Production's tasks run what the sandbox started them with (no test deploys there); its DR service
    // is a pilot light, judged by its registry.
    let report = json(&run(suma(&["dr", "check", "--env", "production", "--output", "json"])));
    let parity = item(&report, "DR runs the primary's image");
    assert_eq!(parity["status"], "pass", "{parity:#}");
    let (dr, primary) = (&parity["value"], &parity["target"]);
    assert!(primary.as_str().unwrap().ends_with("(running tasks)"), "{parity:#}");
    assert!(dr.as_str().unwrap().ends_with("(registry)"), "{parity:#}");
    assert_eq!(shown_digest(dr), shown_digest(primary), "{parity:#}");
    // The digest is the one ECS (the agent) resolved each running task's image to when it started it.
    let url = format!("{}/_agent/tasks", sandbox_var("SUMA_SANDBOX_AGENT_URL"));
    let view: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let started: Vec<&str> = view["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["cluster"] == "suma-finance-production" && t["region"] == "eu-west-1")
        .filter(|t| t["service"] == "auth-service")
        .map(|t| t["image_digest"].as_str().expect("a digest"))
        .collect();
    assert!(!started.is_empty());
    assert!(
        started.iter().all(|d| d.starts_with(&shown_digest(primary))),
        "{started:?} {parity:#}"
    );
}

#[tokio::test]
async fn check_compares_the_regions_images_by_digest_not_by_name() {
    crate::require_sandbox!();
    let env = DrEnv::seed();
    let image_check = |env: &DrEnv| {
        let report = json(&run(env.suma(&["dr", "check", "--output", "json"], None)));
        item(&report, "DR runs the primary's image").clone()
    };
    // Each region pulls from its own registry, to which the release was replicated: two references,
    // one digest (a comparison of names failed here).
    let parity = image_check(&env);
    assert_eq!(parity["status"], "pass", "{parity:#}");
    let (dr, primary) = (&parity["value"], &parity["target"]);
    assert!(dr.as_str().unwrap().contains(".dkr.ecr.eu-central-1."), "{parity:#}");
    assert!(primary.as_str().unwrap().contains(".dkr.ecr.eu-west-1."), "{parity:#}");
    assert_eq!(shown_digest(dr), shown_digest(primary), "{parity:#}");

    // DR moved to the release before, which its registry also holds: another digest, a failure.
    let ecs = env.aws().await.ecs(&env.env.dr_region);
    let (cluster, service) = (&env.env.ecs.dr.cluster, &env.env.ecs.dr.service);
    let current = ecs
        .describe_services(cluster, std::slice::from_ref(service))
        .await
        .unwrap()[0]
        .task_definition
        .clone();
    let older = format!(
        "123456789012.dkr.ecr.{}.amazonaws.com/auth-service:1.3.0",
        env.env.dr_region
    );
    let change = suma::aws::ecs::ContainerChange {
        image: Some(older),
        environment: Vec::new(),
    };
    let revision = ecs
        .register_revision(&current, &env.env.ecs.container, &change)
        .await
        .unwrap();
    let update = suma::aws::ecs::ServiceUpdate {
        task_definition: Some(revision.arn),
        desired_count: None,
        force_new_deployment: false,
    };
    ecs.update_service(cluster, service, &update).await.unwrap();
    let parity = image_check(&env);
    assert_eq!(parity["status"], "fail", "{parity:#}");
    assert_ne!(
        shown_digest(&parity["value"]),
        shown_digest(&parity["target"]),
        "{parity:#}"
    );
}

#[tokio::test]
async fn check_fails_a_secret_whose_replication_to_the_dr_region_failed() {
    crate::require_sandbox!();
    let env = DrEnv::seed();
    let replica = StreamingReplica::start();
    let clashing = format!("/suma-finance/auth/{}/clashing", env.name);
    common::clashing_secret(&clashing);
    let mut config: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&env.config).unwrap()).unwrap();
    config["environments"][env.name.as_str()]["secrets"]
        .as_sequence_mut()
        .unwrap()
        .push(serde_norway::from_str(&format!("{{ id: '{clashing}', kind: random }}")).unwrap());
    std::fs::write(&env.config, serde_norway::to_string(&config).unwrap()).unwrap();

    let out = run(env.suma(&["dr", "check", "--output", "json"], Some(&replica)));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let report = json(&out);
    let secret = item(&report, &format!("`{clashing}`"));
    assert_eq!(secret["status"], "fail", "{secret}");
    let value = secret["value"].as_str().unwrap();
    assert!(
        value.contains("replication to eu-central-1 failed") && value.contains("already exists"),
        "Secrets Manager's reason is shown: {secret}"
    );
    // The seeded secrets replicated: in sync.
    let seeded = &env.env.secrets[0].id;
    assert_eq!(item(&report, &format!("`{seeded}`"))["status"], "pass", "{report:#}");
    assert!(
        item(&report, &format!("`{seeded}`"))["value"]
            .as_str()
            .unwrap()
            .contains("in sync"),
        "{report:#}"
    );
}

#[tokio::test]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    crate::require_sandbox!();
    let env = DrEnv::seed();
    let before = env.state().await;
    let out = run(env.suma(&["dr", "failover", "--dry-run", "--output", "json"], None));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan = json(&out);
    let steps: Vec<&str> = plan["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "readiness",
            "drain-primary",
            "promote-and-scale",
            "repoint-dr-service",
            "switch-dns",
            "verify",
            "resume-scaling",
            "announce"
        ]
    );
    assert!(plan["plan"][2]["detail"]
        .as_str()
        .unwrap()
        .contains(&env.env.rds.replica.as_ref().unwrap().identifier));
    assert!(plan["estimated_rto_secs"].as_u64().unwrap() <= plan["rto_secs"].as_u64().unwrap());
    let out = run(env.suma(&["dr", "failback", "--dry-run"], None));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("create-primary-replica") && out.stdout.contains("confirm"),
        "{}",
        out.stdout
    );
    assert_eq!(env.state().await, before, "a dry run changes nothing");

    // Without a TTY a real run needs `--yes`, and refuses before touching anything.
    let out = run(env.suma(&["dr", "failover"], None));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(env.state().await, before);
}

#[tokio::test]
async fn a_failover_without_a_measurable_lag_is_refused_unless_data_loss_is_accepted() {
    crate::require_sandbox!();
    let env = DrEnv::seed();
    let before = env.state().await;
    let out = run(env.suma(&["dr", "failover", "--yes", "--output", "json"], None));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let report = json(&out);
    assert_eq!(report["outcome"]["outcome"], "refused", "{report:#}");
    assert_eq!(env.state().await, before, "a refused failover changes nothing");

    let out = run(env.suma(&["dr", "failover", "--yes", "--accept-data-loss"], None));
    assert_eq!(out.code, 2, "`--accept-data-loss` needs `--reason`: {}", out.stderr);

    let out = run(env.suma(
        &[
            "dr",
            "failover",
            "--yes",
            "--accept-data-loss",
            "--reason",
            "drill: replica unmeasurable",
            "--output",
            "json",
        ],
        None,
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = json(&out);
    let events = report["operation"]["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("data loss accepted")
                && e["message"].as_str().unwrap().contains("drill: replica unmeasurable")),
        "{report:#}"
    );
}

#[tokio::test]
async fn failover_and_failback_change_what_they_should_and_nothing_else() {
    crate::require_sandbox!();
    let env = DrEnv::seed();
    let replica = StreamingReplica::start();
    let before = env.state().await;
    let dr_lb = env.env.alb.dr_load_balancer_dns.clone().unwrap();
    assert_ne!(before.primary_target, dr_lb);
    assert_eq!(before.primary_records, 2, "an A record and its AAAA twin");

    let out = run(env.suma(&["dr", "failover", "--yes", "--output", "json"], Some(&replica)));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = json(&out);
    assert_eq!(report["outcome"]["outcome"], "completed");
    assert_eq!(report["operation"]["status"], "succeeded");
    assert_eq!(report["timings"]["within_rto"], true);
    assert_eq!(report["timings"]["steps"].as_array().unwrap().len(), 8);
    let after = env.state().await;
    let desired = env.env.ecs.desired_count as i32;
    assert_eq!(after.primary.0, 0, "primary drained");
    assert_eq!(after.canary, 0);
    assert_eq!(after.dr.0, desired, "DR at production capacity");
    assert_ne!(
        after.dr.1, before.dr.1,
        "DR runs a revision pointing at the promoted database"
    );
    assert_eq!(
        after.replica,
        ("available".to_owned(), true, 7),
        "promoted, multi-AZ, backups on"
    );
    assert_eq!(after.primary_target, dr_lb, "DNS on the DR load balancer");
    // Autoscaling: the drained primary's stays suspended (it would scale back up in the region traffic
    // left), the DR service's is as it was (its scheduled scaling suspended by its owners).
    let all = suma::aws::ecs::ScalingSuspension::ALL;
    assert!(
        before.scaling.0.is_some() && before.scaling.0 != Some(all),
        "{before:?}"
    );
    assert_eq!(after.scaling, (Some(all), before.scaling.1));
    // Nothing else: the primary's revision and database are as they were.
    assert_eq!(after.primary.1, before.primary.1);
    assert_eq!(after.primary_db, before.primary_db);

    // The environment now serves from DR; `dr check` says so.
    let out = run(env.suma(&["dr", "check", "--output", "json"], Some(&replica)));
    assert_eq!(
        item(&json(&out), "traffic served by")["status"],
        "warn",
        "{}",
        out.stdout
    );

    let out = run(env.suma(&["dr", "failback", "--yes", "--output", "json"], Some(&replica)));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let back = env.state().await;
    assert_eq!(
        back.primary_target, before.primary_target,
        "DNS back on the primary load balancer"
    );
    assert_eq!(back.primary.0, desired, "primary at production capacity");
    assert_eq!(back.dr.0, env.env.ecs.dr.standby_count as i32, "DR back to its standby");
    assert_eq!(back.primary_db.0, "available");
    assert_eq!(back.scaling, before.scaling, "autoscaling as before the failover");
    // The new primary and the rebuilt replica live where the instances they replaced lived: each
    // region's key, subnet group and security group, protected, with IAM authentication.
    assert!(
        before
            .placements
            .1
            .kms_key_id
            .as_deref()
            .is_some_and(|k| k.contains(":eu-central-1:")),
        "{before:?}"
    );
    assert_eq!(back.placements, before.placements);

    // The DR posture is whole again.
    let out = run(env.suma(&["dr", "check", "--output", "json"], Some(&replica)));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let ops = run(env.suma(&["ops", "list", "--output", "json"], None));
    let kinds: Vec<String> = json(&ops)
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["dr-failback", "dr-failover"], "{}", ops.stdout);
}

#[tokio::test]
async fn a_drill_fails_over_and_back_and_reports_times_against_the_rto() {
    crate::require_sandbox!();
    let env = DrEnv::seed();
    let replica = StreamingReplica::start();
    let before = env.state().await;
    let out = run(env.suma(&["dr", "drill", "--yes"], Some(&replica)));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("DR drill"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("within RTO").count(), 2, "{}", out.stdout);
    let after = env.state().await;
    assert_eq!(after.primary_target, before.primary_target);
    assert_eq!(after.primary.0, env.env.ecs.desired_count as i32);

    // The failover time is now estimated from the drill's own measured steps, not the defaults.
    let out = run(env.suma(&["dr", "check", "--output", "json"], Some(&replica)));
    let report = json(&out);
    assert_eq!(
        report["rto_basis"], "the longest of each step over the last 1 failover(s)",
        "{report:#}"
    );
    assert!(
        report["estimated_rto_secs"].as_u64().unwrap() < 300,
        "the sandbox fails over in seconds, not the documented defaults: {report:#}"
    );

    // Never on production.
    let out = run(suma(&["dr", "drill", "--yes", "--env", "production"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("non-production"), "{}", out.stderr);
}

#[tokio::test]
async fn a_drill_killed_in_its_failover_is_finished_by_resume_back_home_under_one_lock() {
    crate::require_sandbox!();
    let env = DrEnv::seed();
    let replica = StreamingReplica::start();
    let before = env.state().await;
    // SIGKILL right after the failover has switched DNS: half a drill, failed over.
    let out = run(env
        .suma(&["dr", "drill", "--yes"], Some(&replica))
        .env(suma::env_vars::SUMA_FAULT_CRASH_AFTER_STEP, "switch-dns"));
    assert_ne!(out.code, 0, "the drill was killed: {}", out.stderr);
    assert!(out.stderr.contains("suma fault hook: killed"), "{}", out.stderr);
    let session = common::sandbox_session().await;
    let failover_id = common::expire_lease(&session, &env.name)
        .await
        .expect("the killed failover holds the lock");

    // Resuming the drill's failover goes on to its failback: the drill ends home.
    let out = run(env.suma(&["dr", "resume", "--yes", "--output", "json"], Some(&replica)));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let failback = common::json(&out)["operation"].clone();
    assert_eq!(failback["kind"], "dr-failback", "{failback}");
    assert_eq!(failback["status"], "succeeded", "{failback}");
    assert_eq!(failback["parameters"]["drill"], true);
    // Handed over from the failover's lock, never released between the halves.
    assert_eq!(failback["parameters"]["drill_failover"], failover_id.as_str());
    let shown = run(env.suma(&["ops", "show", &failover_id, "--output", "json"], None));
    assert_eq!(common::json(&shown)["status"], "succeeded", "{}", shown.stdout);
    let after = env.state().await;
    assert_eq!(after.primary_target, before.primary_target, "DNS is home");
    assert_eq!(after.primary.0, env.env.ecs.desired_count as i32, "the primary serves");
    let lock = run(env.suma(&["lock", "status", "--output", "json"], None));
    assert!(
        !lock.stdout.contains(failback["id"].as_str().unwrap()),
        "the lock is free: {}",
        lock.stdout
    );
}

/// Runs `cmd` off the test's threads (the multi-threaded tests keep serving while `suma` runs).
async fn run_blocking(cmd: Command) -> common::Run {
    tokio::task::spawn_blocking(move || run(cmd)).await.unwrap()
}

/// Logins at staging's URL for a few seconds: every one answered 200.
async fn logins_succeed(whence: &str) {
    let traffic = LoginTraffic::start().await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (ok, failed, failures) = traffic.stop().await;
    assert_eq!(
        failed, 0,
        "{whence}: {ok} logins answered, {failed} failed: {failures:?}"
    );
    assert!(ok > 10, "{whence}: the logins ran: {ok}");
}

/// The sandbox's own staging, whose tasks the ECS agent runs in both regions: a failover moves the
/// logins at its URL (the front door follows the failover record) onto tasks the agent starts in the DR
/// region against the promoted database, and a failback brings them home.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_staging_serves_its_logins_from_dr_tasks_and_failback_brings_them_home() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = DrEnv::staging();
    let replica = StreamingReplica::start();
    let (primary, dr) = (env.env.primary_region.to_string(), env.env.dr_region.to_string());
    let (service, dr_service) = (env.env.ecs.service.clone(), env.env.ecs.dr.service.clone());
    let desired = env.env.ecs.desired_count as usize;
    wait_for_tasks_in(&dr, &dr_service, 0).await;
    logins_succeed("before the failover").await;

    let out = run_blocking(env.suma(&["dr", "failover", "--yes", "--output", "json"], Some(&replica))).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // Nothing runs in the primary region: what answers is the DR region's tasks.
    wait_for_tasks_in(&primary, &service, 0).await;
    wait_for_tasks_in(&dr, &dr_service, desired).await;
    logins_succeed("served from the DR region").await;

    let out = run_blocking(env.suma(&["dr", "failback", "--yes", "--output", "json"], Some(&replica))).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    wait_for_tasks_in(&dr, &dr_service, env.env.ecs.dr.standby_count as usize).await;
    wait_for_tasks_in(&primary, &service, desired).await;
    logins_succeed("home again").await;
    // The DR posture is whole again. Image parity is left out: the canary tests promote new images on
    // staging's primary service, which its DR service follows only at its next deploy.
    let out = run(env.suma(&["dr", "check", "--output", "json"], Some(&replica)));
    let failing: Vec<String> = json(&out)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "fail" && i["check"] != "DR runs the primary's image")
        .map(|i| i.to_string())
        .collect();
    assert!(failing.is_empty(), "the DR posture is whole again: {failing:#?}");
}

/// An RDS instance bound, in the sandbox's ECS agent, to a streaming replica of its own: DR tasks
/// repointed at the instance's endpoint reach the replica, and `PromoteReadReplica` on the instance
/// promotes it. Unbound on drop (before the replica stops, so declare it after the replica).
struct ReplicaBinding {
    region: String,
    identifier: String,
}

impl ReplicaBinding {
    async fn bind(env: &DrEnv, replica: &StreamingReplica) -> Self {
        let instance = env.env.rds.replica.as_ref().unwrap();
        let described = env
            .aws()
            .await
            .rds(&instance.region)
            .describe_instance(&instance.identifier)
            .await
            .unwrap();
        let host = described.host().unwrap();
        let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).to_owned();
        let answer = reqwest::Client::new()
            .post(format!("{}/_agent/rds/bind", sandbox_var("SUMA_SANDBOX_AGENT_URL")))
            .json(&serde_json::json!({
                "region": instance.region.to_string(),
                "identifier": instance.identifier,
                "host": host,
                "address": format!("127.0.0.1:{}", replica.port),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204, "the agent binds the replica");
        Self {
            region: instance.region.to_string(),
            identifier: instance.identifier.clone(),
        }
    }
}

impl Drop for ReplicaBinding {
    fn drop(&mut self) {
        use std::io::{Read as _, Write as _};
        let agent = sandbox_var("SUMA_SANDBOX_AGENT_URL");
        let address = agent.trim_start_matches("http://").trim_end_matches('/').to_owned();
        if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
            let _ = write!(
                stream,
                "DELETE /_agent/rds/bind?region={}&identifier={} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
                self.region, self.identifier
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

/// A TCP forwarder to the primary's PostgreSQL that, once a connection's replication handshake is done
/// (its first second), holds what the primary sends for `delay` before passing it on (what the replica
/// sends goes at once): a replica that keeps streaming but receives each commit `delay` late, as one
/// behind a saturated cross-region link. (Delaying the handshake too would cost several `delay`s of
/// round trips before the first byte of WAL.)
struct LaggingLink {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl LaggingLink {
    async fn start(upstream: u16, delay: std::time::Duration) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut from_replica, mut to_replica) = inbound.into_split();
                    let (mut from_primary, mut to_primary) = outbound.into_split();
                    let upstream = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut from_replica, &mut to_primary).await;
                    });
                    let (held, mut due) = tokio::sync::mpsc::unbounded_channel();
                    let opened = tokio::time::Instant::now();
                    let reader = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = from_primary.read(&mut buf).await {
                            let now = tokio::time::Instant::now();
                            let due = if now - opened < std::time::Duration::from_secs(1) {
                                now
                            } else {
                                now + delay
                            };
                            if held.send((due, buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                    });
                    while let Some((at, bytes)) = due.recv().await {
                        tokio::time::sleep_until(at).await;
                        if to_replica.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    upstream.abort();
                    reader.abort();
                });
            }
        });
        Self { port, task }
    }
}

impl Drop for LaggingLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registrations of fresh accounts at staging's URL until stopped; the addresses the service
/// acknowledged (2xx), in order.
struct Registrations {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<(Vec<String>, u64)>,
}

impl Registrations {
    fn start() -> Self {
        let base = sandbox_var("AUTH_URL");
        let stop = tokio_util::sync::CancellationToken::new();
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .unwrap();
                let (mut acknowledged, mut refused) = (Vec::new(), 0);
                while !stop.is_cancelled() {
                    let email = format!("{}@example.com", unique("switch"));
                    let body = serde_json::json!({"email": email, "password": "a long enough passphrase for a switch"});
                    match http.post(format!("{base}/api/auth/register")).json(&body).send().await {
                        Ok(r) if r.status().is_success() => acknowledged.push(email),
                        _ => {
                            refused += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
                (acknowledged, refused)
            })
        };
        Self { stop, task }
    }

    async fn stop(self) -> (Vec<String>, u64) {
        self.stop.cancel();
        self.task.await.unwrap()
    }
}

/// The facts a step of the reported operation journaled.
fn step_facts(report: &serde_json::Value, step: &str) -> serde_json::Value {
    report["operation"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .unwrap_or_else(|| panic!("no `{step}` step: {report:#}"))["facts"]
        .clone()
}

/// Which of `emails` are accounts in staging's database (`auth`) on the server at `port`.
async fn emails_among(port: &str, emails: &[String]) -> Vec<String> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&format!("postgres://postgres@127.0.0.1:{port}/auth"))
        .await
        .unwrap();
    sqlx::query_scalar("SELECT email FROM users WHERE email = ANY($1)")
        .bind(emails)
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// Staging switched over while accounts register at its URL the whole time: its DR instance is a real
/// streaming replica, promoted by the switch, and every registration the service acknowledged, before
/// the drain or after the DNS switch, is an account on the promoted database; the DR tasks then log
/// users in against it. A failback brings staging home.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_under_continuous_registrations_loses_no_acknowledged_write() {
    crate::require_sandbox!();
    let _staging = common::staging_exclusive();
    let env = DrEnv::staging();
    let primary_port = sandbox_pg_port();
    // The WAL reaches the replica 8 s after the primary wrote it, as over a slow cross-region link:
    // promoting as soon as the drain ends would lose the commits of those last seconds.
    let link = LaggingLink::start(primary_port.parse().unwrap(), std::time::Duration::from_secs(8)).await;
    let replica = StreamingReplica::start_streaming_through(Some(link.port));
    replica.wait_streaming().await;
    let _binding = ReplicaBinding::bind(&env, &replica).await;
    let (dr, dr_service) = (env.env.dr_region.to_string(), env.env.ecs.dr.service.clone());
    wait_for_tasks_in(&dr, &dr_service, 0).await;

    let writes = Registrations::start();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut cmd = env.suma(
        &["dr", "switchover", "--yes", "--timeout", "2m", "--output", "json"],
        Some(&replica),
    );
    // The service's own database: its sessions are the writers the switchover waits for.
    cmd.env(
        "SUMA_DR_PRIMARY_URL",
        format!("postgres://postgres@127.0.0.1:{primary_port}/auth"),
    );
    let out = run_blocking(cmd).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // Writes go on against the DR region for a while.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (acknowledged, refused) = writes.stop().await;
    let report = json(&out);
    let facts = step_facts(&report, "catch-up");
    assert!(facts["marker_lsn"].is_string(), "{report:#}");
    assert!(facts["replayed_lsn"].is_string(), "{report:#}");
    eprintln!(
        "switchover: {} registrations acknowledged, {refused} refused; sessions gone {} ms after the drain, the marker replayed {} ms after it was written; orchestration {} ms",
        acknowledged.len(),
        facts["sessions_closed_after_ms"],
        facts["caught_up_after_ms"],
        step_facts(&report, "announce")["orchestration_ms"]
    );

    let on_primary = emails_among(&primary_port, &acknowledged).await.len() as i64;
    let on_promoted = emails_among(&replica.port.to_string(), &acknowledged).await.len() as i64;
    let announced = step_facts(&report, "announce");
    // `cargo xtask bench switchover` runs this test and reads its figures from here.
    if let Some(out) = std::env::var_os("SUMA_BENCH_OUT") {
        use std::io::Write as _;
        let figures = serde_json::json!({
            "acknowledged": acknowledged.len(),
            "lost": acknowledged.len() - on_promoted as usize,
            "refused": refused,
            "sessions_closed_after_ms": facts["sessions_closed_after_ms"],
            "caught_up_after_ms": facts["caught_up_after_ms"],
            "orchestration_ms": announced["orchestration_ms"],
            "waited_ms": announced["waited_ms"],
        });
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(out).unwrap();
        writeln!(file, "{figures}").unwrap();
    }
    if on_promoted as usize != acknowledged.len() {
        // Where the lost ones went, and when, against the switch's steps.
        let promoted = emails_among(&replica.port.to_string(), &acknowledged).await;
        let lost: Vec<String> = acknowledged.iter().filter(|e| !promoted.contains(e)).cloned().collect();
        let mut conn = sqlx::PgConnection::connect(&format!("postgres://postgres@127.0.0.1:{primary_port}/auth"))
            .await
            .unwrap();
        let on_old_primary: Vec<(String, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT email, created_at FROM users WHERE email = ANY($1) ORDER BY created_at")
                .bind(&lost)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let steps: Vec<String> = report["operation"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{} {} .. {}", s["name"], s["started_at"], s["ended_at"]))
            .collect();
        panic!(
            "{} of {} acknowledged registrations are not on the promoted database; on the old primary: {on_old_primary:#?}\nsteps: {steps:#?}",
            lost.len(),
            acknowledged.len()
        );
    }
    assert!(
        on_primary > 0,
        "writes were acknowledged by the primary before the drain"
    );
    assert!(
        (on_primary as usize) < acknowledged.len(),
        "writes were acknowledged by the DR region after the switch ({on_primary} of {})",
        acknowledged.len()
    );
    assert_eq!(
        on_promoted as usize,
        acknowledged.len(),
        "every acknowledged registration is on the promoted database ({refused} refused during the switch)"
    );
    // The promoted replica takes writes: it left recovery.
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&replica.url()).await.unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!in_recovery, "the switch promoted the replica's server");
    logins_succeed("served from the DR region on the promoted replica").await;

    // The failback rebuilds the primary as a replica of the promoted database: here a streaming replica
    // of it, which the rebuilt instance's endpoint reaches. Its catch-up writes the marker on the
    // promoted database (the DR instance's endpoint), where the DR tasks wrote, and promotes the
    // primary only once the new replica has replayed it.
    let home = StreamingReplica::start_streaming(&replica.port.to_string(), None);
    home.wait_streaming().await;
    let mut cmd = env.suma(&["dr", "failback", "--yes", "--output", "json"], Some(&replica));
    cmd.env("SUMA_DR_REPLICA_URL", replica.url_of("auth")).env(
        "SUMA_DB_CONNECT_TO",
        format!(
            "{}.rds.amazonaws.com=127.0.0.1:{},{dr}.rds.amazonaws.com=127.0.0.1:{},{}",
            env.env.primary_region,
            home.port,
            replica.port,
            sandbox_var("SUMA_DB_CONNECT_TO")
        ),
    );
    let out = run_blocking(cmd).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let caught_up = step_facts(&json(&out), "catch-up");
    assert!(caught_up["replayed_lsn"].is_string(), "{caught_up}");
    // Every registration the DR region acknowledged is on the rebuilt primary.
    let on_home = emails_among(&home.port.to_string(), &acknowledged).await;
    assert_eq!(
        on_home.len(),
        acknowledged.len(),
        "nothing the DR region took is left behind"
    );
    logins_succeed("home again").await;
}
