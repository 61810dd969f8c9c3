//! The `suma.yaml` model: environments, their AWS topology, managed secrets, metric provider and canary
//! policy. Everything a command needs is validated here, before any AWS call, so that a typo fails with
//! the file, line, column and key instead of half-way through an operation.

mod canary;
mod deploy;
mod load;
mod metric_query;
mod placement;
mod positions;
#[cfg(test)]
mod tests;
mod types;

use canary::AnalysisTemplates;
pub use canary::{
    BaselineConfig, BaselineScoreThresholds, CanaryPolicy, CanaryQueries, CanaryStep, ComparedMetric, Direction,
    ExtraMetric, NoDataPolicy,
};
pub use deploy::{BlueGreenPolicy, DeployHook, DeployHooks, NotificationEvent, NotificationKind, NotificationTarget};
pub use load::{deserialize as deserialize_located, located};
pub use load::{load_from_path, parse_str, ConfigError};
pub use metric_query::{MetricQuery, MetricQueryKind};
pub use placement::DbPlacement;
pub use types::{Arn, AwsRegion, HttpUrl};

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Version of this file's format. Only `1` exists.
    pub version: u32,
    /// Defaults that flags and `SUMA_*` variables override.
    #[serde(default)]
    pub defaults: Defaults,
    /// The DynamoDB table that holds environment locks and the operation journal.
    pub lock: LockConfig,
    /// Reusable canary analyses, by name: an environment's `canary.analysis` names one and takes every
    /// analysis setting it does not write itself (thresholds, budget, queries, baseline), as Argo
    /// Rollouts' analysis templates. A template holds no `steps`.
    #[serde(default)]
    pub analysis_templates: AnalysisTemplates,
    /// The environments suma manages, by name (`staging`, `production`, ...).
    pub environments: BTreeMap<String, Environment>,
}

/// File-level defaults, the lowest layer of settings precedence above built-in defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Environment used when neither `--env` nor `SUMA_ENV` is given.
    pub environment: Option<String>,
    /// Output format used when neither `--output` nor `SUMA_OUTPUT` is given.
    pub output: Option<OutputFormat>,
    /// Directory of the local operation log (default `$XDG_STATE_HOME/suma`).
    pub state_dir: Option<std::path::PathBuf>,
    /// Upper bound on one AWS API operation, retries included (default `30s`).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub aws_operation_timeout: Option<Duration>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Table,
    Json,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown output format `{other}`: expected `table` or `json`")),
        }
    }
}

/// Where locks and operation records live.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LockConfig {
    /// DynamoDB table name (partition key `pk`, string).
    pub table: String,
    /// Region of the table. One table serves every environment.
    pub region: AwsRegion,
    /// How long a lock lasts without renewal; a running operation renews it every quarter of this.
    #[serde(default = "default_lease", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub lease: Duration,
}

fn default_lease() -> Duration {
    Duration::from_secs(60)
}

/// One environment's topology.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// What the environment is for: `production` turns on production's rules (no drills, stricter
    /// compliance thresholds). Required for an environment whose name looks like production, so a rule
    /// never depends on how an environment happens to be named.
    #[serde(default)]
    pub tier: Option<Tier>,
    /// Region that serves traffic normally.
    pub primary_region: AwsRegion,
    /// Region that takes over in a disaster.
    pub dr_region: AwsRegion,
    /// AWS profile to use; the standard credential chain applies when absent.
    #[serde(default)]
    pub aws_profile: Option<String>,
    /// Public base URL of the service, used for `/health` and `/version` checks.
    #[serde(default)]
    pub url: Option<HttpUrl>,
    pub ecs: EcsConfig,
    pub alb: AlbConfig,
    pub rds: RdsConfig,
    pub dns: DnsConfig,
    /// Secrets suma rotates and audits.
    #[serde(default)]
    pub secrets: Vec<ManagedSecret>,
    #[serde(default)]
    pub datadog: Option<DatadogConfig>,
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub canary: CanaryPolicy,
    /// Blue/green deploys (`suma deploy bluegreen`): judged by the canary's analysis settings.
    #[serde(default)]
    pub bluegreen: BlueGreenPolicy,
    /// Checks a deploy runs besides its analysis: before any traffic, after each traffic step, after the
    /// promotion. A failing one rolls the deploy back.
    #[serde(default)]
    pub hooks: DeployHooks,
    /// Where deploys are announced (Slack, or any JSON webhook): start, pause, promote, rollback, abort.
    #[serde(default)]
    pub notifications: Vec<NotificationTarget>,
    /// Compliance checks: accepted exceptions.
    #[serde(default)]
    pub compliance: ComplianceConfig,
    /// Cross-region disaster recovery targets and how readiness is measured.
    #[serde(default)]
    pub dr: DrPolicy,
}

/// Where the DR replica's lag is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LagSource {
    /// The `aws.rds.replica_lag` metric of the replica.
    Datadog,
    /// `now() - pg_last_xact_replay_timestamp()` on the replica, at the URL in `SUMA_DR_REPLICA_URL`.
    Postgres,
}

/// Recovery targets and the DR switch's settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DrPolicy {
    /// Recovery time objective: the longest a failover may take.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub rto: Duration,
    /// Recovery point objective: the most data a failover may lose (the replica lag it accepts).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub rpo: Duration,
    pub replica_lag: LagSource,
    /// Base URL of the DR region's endpoint (its load balancer), verified after a failover.
    pub dr_url: Option<HttpUrl>,
    /// Environment variable of the application container that names the database host (`host:port`);
    /// a failover registers a DR revision with the promoted instance's endpoint in it. auth-service reads
    /// `DATABASE_HOST`, which replaces the host of its `DATABASE_URL`.
    pub database_host_variable: String,
    /// The share of the primary's running tasks the DR service must reach on failover (1.0 = all of
    /// them): `dr check` fails when `ecs.desired_count` falls short, e.g. after autoscaling grew the
    /// primary beyond it.
    pub capacity_ratio: f64,
}

impl Default for DrPolicy {
    fn default() -> Self {
        Self {
            rto: Duration::from_secs(15 * 60),
            rpo: Duration::from_secs(5 * 60),
            replica_lag: LagSource::Datadog,
            dr_url: None,
            database_host_variable: "DATABASE_HOST".to_owned(),
            capacity_ratio: 1.0,
        }
    }
}

/// Settings of `suma compliance check` for one environment.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplianceConfig {
    /// Accepted exceptions: a matching failure shows as `muted`; an expired one is itself a failure.
    #[serde(default)]
    pub suppressions: Vec<SuppressionConfig>,
    /// The longest an exception may be accepted for, counted from the day of the check: a suppression
    /// that expires later is refused, so every exception is reviewed again within this many days.
    #[serde(default = "default_max_suppression_days")]
    pub max_suppression_days: u32,
    /// The AWS managed rule groups the load balancer's web ACL must run, each blocking (check
    /// `alb-waf`). The default is AWS's baseline for a web application with a SQL database and a login:
    /// the core rule set, known bad inputs, the Amazon IP reputation list and SQL injection.
    #[serde(default = "default_waf_rule_groups")]
    pub waf_rule_groups: Vec<String>,
}

fn default_max_suppression_days() -> u32 {
    90
}

fn default_waf_rule_groups() -> Vec<String> {
    [
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedRulesSQLiRuleSet",
    ]
    .map(String::from)
    .to_vec()
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        Self {
            suppressions: Vec::new(),
            max_suppression_days: default_max_suppression_days(),
            waf_rule_groups: default_waf_rule_groups(),
        }
    }
}

/// One accepted exception to a compliance check.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionConfig {
    /// Check id (as `suma compliance list` shows), or `*` for every check.
    pub check: String,
    /// Resource ARN or name as findings show it; a trailing `*` matches a prefix, `*` alone everything.
    pub resource: String,
    /// Why the exception is accepted, and by whom.
    pub reason: String,
    /// The ticket that tracks the exception (e.g. `SEC-1234`): whoever reads the report can find the
    /// decision and its owner.
    pub ticket: String,
    /// Last day the exception holds (`YYYY-MM-DD`).
    #[schemars(with = "String")]
    pub expires: chrono::NaiveDate,
}

/// ECS services of the environment.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcsConfig {
    /// Cluster in the primary region.
    pub cluster: String,
    /// The stable service.
    pub service: String,
    /// The canary service, behind the canary target group.
    pub canary_service: String,
    /// Container that runs the application inside the task definition.
    pub container: String,
    /// Port the container listens on.
    pub container_port: u16,
    /// Production capacity of the stable service, in tasks.
    pub desired_count: u32,
    /// Tasks the canary service runs during a canary.
    #[serde(default = "default_canary_count")]
    pub canary_count: u32,
    /// The standby service in the DR region.
    pub dr: DrServiceConfig,
}

fn default_canary_count() -> u32 {
    1
}

/// The DR region's service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrServiceConfig {
    pub cluster: String,
    pub service: String,
    /// Tasks kept running in standby (pilot light); failover scales to `ecs.desired_count`.
    #[serde(default)]
    pub standby_count: u32,
}

/// The ALB rule that splits traffic between stable and canary.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlbConfig {
    pub listener_arn: Arn,
    /// The weighted forward rule.
    pub rule_arn: Arn,
    pub stable_target_group_arn: Arn,
    pub canary_target_group_arn: Arn,
    /// DNS name of the DR region's load balancer, the failover SECONDARY target.
    #[serde(default)]
    pub dr_load_balancer_dns: Option<String>,
}

/// RDS instances.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RdsConfig {
    pub primary: DbInstanceRef,
    /// Cross-region read replica used for DR.
    #[serde(default)]
    pub replica: Option<DbInstanceRef>,
}

/// A DB instance and its region.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbInstanceRef {
    pub identifier: String,
    pub region: AwsRegion,
    /// How suma creates this instance when it rebuilds it (failback, the restored replica); settings left
    /// out are copied from the instance it replaces.
    #[serde(default)]
    pub placement: Option<DbPlacement>,
}

/// Route 53 failover records.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    pub hosted_zone_id: String,
    /// Fully qualified record name, e.g. `auth.example.com`.
    pub record_name: String,
    #[serde(default)]
    pub primary_health_check_id: Option<String>,
    #[serde(default)]
    pub secondary_health_check_id: Option<String>,
}

/// What a secret holds decides how it is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    JwtSigningKey,
    /// Database credentials as Secrets Manager's JSON.
    DbPassword,
    /// Database credentials as a `postgres://` URL (what the service reads as `DATABASE_URL`).
    DatabaseUrl,
    /// `kid:base64url-key` entries, the first signs (the service's `RESET_TOKEN_KEYS`).
    Keyring,
    /// The key sealing TOTP secrets and the older ones that still open them, as
    /// `{"current": …, "previous": …}` (the service's `TOTP_ENCRYPTION_KEY` and
    /// `TOTP_ENCRYPTION_PREVIOUS_KEYS`).
    TotpKey,
    /// A Redis URL whose password is an ElastiCache replication group's AUTH token (the service's
    /// `REDIS_URL`): rotated with `ModifyReplicationGroup` ROTATE, then SET once the consumers moved.
    RedisAuth,
    Random,
}

impl SecretKind {
    /// Database credentials (`db-password`, `database-url`): rotated through the database.
    pub fn is_database(self) -> bool {
        matches!(self, Self::DbPassword | Self::DatabaseUrl)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JwtSigningKey => "jwt-signing-key",
            Self::DbPassword => "db-password",
            Self::DatabaseUrl => "database-url",
            Self::Keyring => "keyring",
            Self::TotpKey => "totp-key",
            Self::RedisAuth => "redis-auth",
            Self::Random => "random",
        }
    }
}

/// A secret suma manages.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedSecret {
    /// Secret name or ARN in the primary region.
    pub id: String,
    pub kind: SecretKind,
    /// Maximum age in days before the secret is due for rotation; `0` makes it due at every
    /// `suma secrets rotate --all-due` (a schedule that rotates each time it runs).
    #[serde(default = "default_rotation_days")]
    pub rotation_days: u32,
    /// ECS services that receive this secret.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// `random`: how new values are generated.
    #[serde(default)]
    pub random: RandomSpec,
    /// `db-password`: where the role lives and how it is rotated (required for that kind).
    #[serde(default)]
    pub database: Option<DbPasswordSpec>,
    /// `jwt-signing-key`: the key size and how the service proves it picked the key up.
    #[serde(default)]
    pub jwt: JwtSpec,
    /// `redis-auth`: the replication group whose AUTH token the URL carries (required for that kind).
    #[serde(default)]
    pub redis: Option<RedisAuthSpec>,
}

/// Where a `redis-auth` secret's token lives.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisAuthSpec {
    /// ElastiCache replication group id, in the environment's primary region.
    pub replication_group: String,
}

fn default_rotation_days() -> u32 {
    90
}

/// New values of a `random` secret.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomSpec {
    #[serde(default = "default_random_length")]
    pub length: usize,
    #[serde(default)]
    pub alphabet: Alphabet,
}

impl Default for RandomSpec {
    fn default() -> Self {
        Self {
            length: default_random_length(),
            alphabet: Alphabet::default(),
        }
    }
}

fn default_random_length() -> usize {
    48
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Alphabet {
    /// `A-Z a-z 0-9`
    #[default]
    Alphanumeric,
    /// `A-Z a-z 0-9 - _`
    Base64url,
    /// `0-9 a-f`
    Hex,
}

/// A PostgreSQL role's password. The secret's value is the JSON Secrets Manager uses for databases:
/// `{"username", "password", "host", "port", "dbname"}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbPasswordSpec {
    /// A secret in the same format holding an admin login that may `ALTER ROLE`. Exactly one of
    /// `admin_secret` and `rds_master`.
    #[serde(default)]
    pub admin_secret: Option<String>,
    /// The role is the master user of this RDS instance (in the environment's primary region): the new
    /// password is set with RDS ModifyDBInstance (`MasterUserPassword`), not through a database session.
    #[serde(default)]
    pub rds_master: Option<String>,
    #[serde(default)]
    pub strategy: DbRotationStrategy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DbRotationStrategy {
    /// One role; its password changes (connections opened with the old one keep working until they close).
    #[default]
    SingleUser,
    /// Two roles with the same grants (`NAME` and `NAME_clone`); each rotation sets a new password on the one
    /// not in use and makes it current, so the previous credentials stay valid until the next rotation.
    AlternatingUsers,
}

/// The JWT signing key: a private key PEM per version (see the `jwt-keys` crate), ES256 by default.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// The algorithm of the keys the rotation generates: ES256 (the default), EdDSA, PS256 or RS256. A
    /// rotation to another algorithm than the current key's is a migration: the new key is published
    /// beside the old one, signs once every task has it, and the old one verifies until it retires.
    #[serde(default)]
    pub algorithm: jwt_keys::Algorithm,
    /// The RSA modulus size for PS256 and RS256 keys: 2048, 3072, 4096 or 8192.
    #[serde(default = "default_key_bits")]
    pub key_bits: usize,
    /// The service to check (JWKS, token introspection, `/version`); the environment's `url` by default.
    #[serde(default)]
    pub service_url: Option<HttpUrl>,
    /// Issuer and audience of the test token signed with the new key.
    #[serde(default = "default_jwt_issuer")]
    pub issuer: String,
    #[serde(default = "default_jwt_audience")]
    pub audience: String,
    /// The longest access-token lifetime: the previous key verifies at least this long (plus `clock_skew`).
    #[serde(default = "default_access_token_ttl", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub access_token_ttl: Duration,
    #[serde(default = "default_clock_skew", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub clock_skew: Duration,
    /// How long the service may take to publish or start using a key (its reload interval and more).
    #[serde(default = "default_pickup_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub pickup_timeout: Duration,
}

impl Default for JwtSpec {
    fn default() -> Self {
        Self {
            algorithm: jwt_keys::Algorithm::default(),
            key_bits: default_key_bits(),
            service_url: None,
            issuer: default_jwt_issuer(),
            audience: default_jwt_audience(),
            access_token_ttl: default_access_token_ttl(),
            clock_skew: default_clock_skew(),
            pickup_timeout: default_pickup_timeout(),
        }
    }
}

fn default_key_bits() -> usize {
    4096
}
fn default_jwt_issuer() -> String {
    "auth-service".to_owned()
}
fn default_jwt_audience() -> String {
    "suma-finance".to_owned()
}
fn default_access_token_ttl() -> Duration {
    Duration::from_secs(900)
}
fn default_clock_skew() -> Duration {
    Duration::from_secs(60)
}
fn default_pickup_timeout() -> Duration {
    Duration::from_secs(180)
}

/// Datadog account settings. Keys come from `DD_API_KEY` and `DD_APP_KEY`, never from this file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatadogConfig {
    /// Datadog site, e.g. `datadoghq.eu`.
    pub site: String,
    /// Tags that select this environment's metrics, monitors and events.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Which metric provider gates canaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricProvider {
    Datadog,
    Prometheus,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub provider: MetricProvider,
    /// Base URL of the Prometheus HTTP API (required with `provider: prometheus`).
    #[serde(default)]
    pub prometheus_url: Option<HttpUrl>,
}

/// What an environment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Production,
    Staging,
    Development,
}

impl Environment {
    /// Whether production's rules apply: by the explicit `tier`, never by the name.
    pub fn is_production(&self) -> bool {
        self.tier == Some(Tier::Production)
    }
}

/// Names that look like production: such an environment must say its tier.
fn looks_like_production(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "production" || name.starts_with("prod") || name == "live"
}

impl ConfigFile {
    /// The JSON Schema of this file, published as `templates/suma.schema.json`.
    pub fn json_schema() -> serde_json::Value {
        let schema = schemars::schema_for!(ConfigFile);
        serde_json::to_value(schema).expect("a JSON schema always serializes")
    }

    /// Checks that need more than one field; each returns the key path it is about.
    fn semantic_problems(&self) -> Vec<(String, String, Option<String>)> {
        let mut problems = Vec::new();
        if self.version != 1 {
            problems.push((
                "version".to_owned(),
                format!("unsupported version {}", self.version),
                Some("this suma reads `version: 1`".to_owned()),
            ));
        }
        if let Some(name) = &self.defaults.environment {
            if !self.environments.contains_key(name) {
                problems.push((
                    "defaults.environment".to_owned(),
                    format!("names environment `{name}`, which is not defined"),
                    Some(format!(
                        "define it under `environments` or use one of: {}",
                        self.environment_names()
                    )),
                ));
            }
        }
        if self.environments.is_empty() {
            problems.push((
                "environments".to_owned(),
                "no environment is defined".to_owned(),
                Some("add at least one, e.g. `environments: { staging: ... }`".to_owned()),
            ));
        }
        for (name, env) in &self.environments {
            if env.tier.is_none() && looks_like_production(name) {
                problems.push((
                    format!("environments.{name}"),
                    format!("`{name}` looks like production but does not say its tier"),
                    Some("add `tier: production` (or `staging`, `development`): production's rules follow the tier, not the name".to_owned()),
                ));
            }
            let at = |key: &str| format!("environments.{name}.{key}");
            if env.primary_region == env.dr_region {
                problems.push((
                    at("dr_region"),
                    format!("is the same as primary_region `{}`", env.primary_region),
                    Some("the DR region must be a different region".to_owned()),
                ));
            }
            for (role, instance) in [
                ("primary", Some(&env.rds.primary)),
                ("replica", env.rds.replica.as_ref()),
            ] {
                let Some(placement) = instance.and_then(|i| i.placement.as_ref().map(|p| (p, &i.region))) else {
                    continue;
                };
                for (field, problem, hint) in placement.0.problems(placement.1) {
                    problems.push((at(&format!("rds.{role}.placement.{field}")), problem, Some(hint)));
                }
            }
            if env.metrics.provider == MetricProvider::Prometheus && env.metrics.prometheus_url.is_none() {
                problems.push((
                    at("metrics.prometheus_url"),
                    "is required when `provider` is `prometheus`".to_owned(),
                    None,
                ));
            }
            for (i, secret) in env.secrets.iter().enumerate() {
                let at_secret = |field: &str| format!("environments.{name}.secrets.{i}.{field}");
                match secret.kind {
                    SecretKind::JwtSigningKey if secret.jwt.service_url.is_none() && env.url.is_none() => problems
                        .push((
                            at_secret("jwt.service_url"),
                            format!(
                                "the `jwt-signing-key` secret `{}` needs the service's URL to check the new key",
                                secret.id
                            ),
                            Some("set `jwt.service_url`, or the environment's `url`".to_owned()),
                        )),
                    SecretKind::JwtSigningKey
                        if secret.jwt.algorithm.rsa()
                            && !jwt_keys::RSA_GENERATED_BITS.contains(&secret.jwt.key_bits) =>
                    {
                        problems.push((
                            at_secret("jwt.key_bits"),
                            format!("{} is not an RSA key size suma generates", secret.jwt.key_bits),
                            Some("use 2048, 3072, 4096 or 8192".to_owned()),
                        ))
                    }
                    SecretKind::RedisAuth if secret.redis.is_none() => problems.push((
                        at_secret("redis"),
                        format!(
                            "the `redis-auth` secret `{}` needs the replication group whose AUTH token it holds",
                            secret.id
                        ),
                        Some("add `redis: { replication_group: ID }`".to_owned()),
                    )),
                    SecretKind::Random if !(16..=4096).contains(&secret.random.length) => problems.push((
                        at_secret("random.length"),
                        format!("{} characters: expected 16 to 4096", secret.random.length),
                        None,
                    )),
                    _ => {}
                }
                if let Some(db) = secret.database.as_ref().filter(|_| secret.kind.is_database()) {
                    if db.admin_secret.is_some() == db.rds_master.is_some() {
                        problems.push((
                            at_secret("database"),
                            format!(
                                "the `{}` secret `{}` needs exactly one of `admin_secret` and `rds_master`",
                                secret.kind.as_str(),
                                secret.id
                            ),
                            Some("`admin_secret: SECRET` sets the password with ALTER ROLE; `rds_master: INSTANCE` with RDS ModifyDBInstance".to_owned()),
                        ));
                    } else if db.rds_master.is_some() && db.strategy == DbRotationStrategy::AlternatingUsers {
                        problems.push((
                            at_secret("database.strategy"),
                            "`alternating-users` needs two roles; an RDS instance has one master user".to_owned(),
                            Some("use `strategy: single-user` with `rds_master`".to_owned()),
                        ));
                    }
                }
            }
            if env.metrics.provider == MetricProvider::Datadog && env.datadog.is_none() {
                problems.push((
                    at("datadog"),
                    "is required when `metrics.provider` is `datadog`".to_owned(),
                    Some("add `datadog: { site: datadoghq.eu, tags: [...] }`".to_owned()),
                ));
            }
            let mut previous = 0u8;
            for (i, step) in env.canary.steps.iter().enumerate() {
                if step.weight == 0 || step.weight >= 100 || step.weight <= previous {
                    problems.push((
                        format!("environments.{name}.canary.steps.{i}.weight"),
                        format!("weight {} is out of order", step.weight),
                        Some(
                            "weights are percentages from 1 to 99, strictly increasing; 100 is the promotion"
                                .to_owned(),
                        ),
                    ));
                }
                previous = previous.max(step.weight);
                let needed = env.canary.interval * env.canary.min_analyses.max(1);
                if step.duration < needed {
                    problems.push((
                        format!("environments.{name}.canary.steps.{i}.duration"),
                        format!(
                            "{} cannot hold the {} it needs (one every {}): the step could never be judged",
                            humantime::format_duration(step.duration),
                            match env.canary.min_analyses.max(1) {
                                1 => "analysis".to_owned(),
                                n => format!("{n} analyses"),
                            },
                            humantime::format_duration(env.canary.interval),
                        ),
                        Some(format!(
                            "make the step at least {} long, or shorten `canary.interval`",
                            humantime::format_duration(needed)
                        )),
                    ));
                }
            }
            let stages = [
                (
                    "pre_traffic",
                    &env.hooks.pre_traffic,
                    env.bluegreen.test_url.is_some(),
                    "bluegreen.test_url",
                ),
                ("post_step", &env.hooks.post_step, env.url.is_some(), "url"),
                ("post_promote", &env.hooks.post_promote, env.url.is_some(), "url"),
            ];
            for (stage, hooks, has_base, base) in stages {
                for (i, hook) in hooks.iter().enumerate() {
                    let key = at(&format!("hooks.{stage}.{i}"));
                    let url = match (&hook.url, &hook.runbook) {
                        (Some(url), None) => url,
                        (None, Some(_)) => continue,
                        _ => {
                            problems.push((
                                key,
                                "needs exactly one of `url` and `runbook`".to_owned(),
                                Some(
                                    "an HTTP check names its `url`; a runbook of checks its `runbook` file".to_owned(),
                                ),
                            ));
                            continue;
                        }
                    };
                    let absolute = url.starts_with("https://") || url.starts_with("http://");
                    if !absolute && !url.starts_with('/') {
                        problems.push((
                            format!("{key}.url"),
                            format!("`{url}` is neither an http(s) URL nor a path"),
                            Some("write `https://host/path`, or `/path` on the URL this stage asks".to_owned()),
                        ));
                    } else if !absolute && !has_base {
                        problems.push((
                            format!("{key}.url"),
                            format!("the path `{url}` needs `{base}`, which is not set"),
                            Some(format!("set `{base}`, or write the hook's whole URL")),
                        ));
                    }
                    if !(1..=10).contains(&hook.attempts) {
                        problems.push((
                            format!("{key}.attempts"),
                            format!("{} attempts", hook.attempts),
                            Some("from 1 to 10".to_owned()),
                        ));
                    }
                }
            }
            for (i, target) in env.notifications.iter().enumerate() {
                if target.url_env.is_some() == target.url_secret.is_some() {
                    problems.push((
                        at(&format!("notifications.{i}")),
                        "needs exactly one of `url_env` and `url_secret`".to_owned(),
                        Some(
                            "name the environment variable or the Secrets Manager secret that holds the URL; the URL itself never goes in this file"
                                .to_owned(),
                        ),
                    ));
                }
            }
            let needed = env.canary.interval * env.canary.min_analyses.max(1);
            if env.bluegreen.bake < needed {
                problems.push((
                    at("bluegreen.bake"),
                    format!(
                        "{} cannot hold the analyses the cutover needs (one every {})",
                        humantime::format_duration(env.bluegreen.bake),
                        humantime::format_duration(env.canary.interval),
                    ),
                    Some(format!(
                        "make the bake at least {} long, or shorten `canary.interval`",
                        humantime::format_duration(needed)
                    )),
                ));
            }
            if env.canary.min_analyses == 0 {
                problems.push((
                    at("canary.min_analyses"),
                    "0 would let a step advance on no analysis at all".to_owned(),
                    Some("use 1 or more".to_owned()),
                ));
            }
            if env.canary.interval.is_zero() {
                problems.push((
                    at("canary.interval"),
                    "is 0".to_owned(),
                    Some("analyse every few seconds at least, e.g. `interval: 30s`".to_owned()),
                ));
            }
            if let Some(baseline) = &env.canary.baseline {
                problems.extend(baseline.problems(&|key| at(&format!("canary.baseline.{key}"))));
            }
            let factor = env.canary.fail_fast_factor;
            if !(factor == 0.0 || factor > 1.0) {
                problems.push((
                    at("canary.fail_fast_factor"),
                    format!("{factor} would make every failed analysis fail fast"),
                    Some("use a multiple above 1 (10 = ten times the maximum), or 0 to turn it off".to_owned()),
                ));
            }
            if !(env.dr.capacity_ratio > 0.0 && env.dr.capacity_ratio <= 1.0) {
                problems.push((
                    at("dr.capacity_ratio"),
                    format!("{} is not a share of the primary's tasks", env.dr.capacity_ratio),
                    Some("use a fraction above 0 and at most 1 (0.5 = half the primary's running tasks)".to_owned()),
                ));
            }
            if !(0.0..1.0).contains(&env.canary.max_error_rate) {
                problems.push((
                    at("canary.max_error_rate"),
                    format!("{} is not a fraction", env.canary.max_error_rate),
                    Some("write 0.5% as 0.005".to_owned()),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for (i, secret) in env.secrets.iter().enumerate() {
                if !seen.insert(secret.id.as_str()) {
                    problems.push((
                        format!("environments.{name}.secrets.{i}.id"),
                        format!("secret `{}` is listed twice", secret.id),
                        None,
                    ));
                }
            }
        }
        problems
    }

    pub fn environment_names(&self) -> String {
        self.environments
            .keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The named environment, or an error that lists the defined ones.
    pub fn environment(&self, name: &str) -> Result<&Environment, UnknownEnvironment> {
        self.environments.get(name).ok_or_else(|| UnknownEnvironment {
            name: name.to_owned(),
            known: self.environment_names(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("environment `{name}` is not defined in the configuration\nhint: defined environments: {known}")]
pub struct UnknownEnvironment {
    pub name: String,
    pub known: String,
}
