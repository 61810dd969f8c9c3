//! Command-line types (clap derive). No logic lives here: `settings` turns these into validated settings
//! and `commands` acts on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod monitoring;
mod parse;
mod runbook;
mod taskdef;

pub use monitoring::{MonitorsCommand, TemplatedCommand};
pub use parse::{parse, parse_from, runbook_run_args, Invocation};
pub use runbook::{
    RunbookAbortArgs, RunbookApproveArgs, RunbookCommand, RunbookContinueArgs, RunbookDirArgs, RunbookRunArgs,
};
pub use taskdef::{TaskdefCommand, TaskdefDiffArgs, TaskdefRegisterArgs, TaskdefRenderArgs, TemplateArgs};

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    the operation ran and the answer is no (a check failed, a canary was rolled back)
  2    usage or configuration error, found before anything ran: fix the command line or suma.yaml
  3    the run failed: AWS, Datadog or the service failed or did not answer, or the environment's state
       refused the operation (a held lock, a half-done rotation), or a run lost its lock and stopped;
       the state left behind is reported
  130  interrupted (Ctrl-C); the state left behind is reported

Environment: SUMA_CONFIG, SUMA_ENV, SUMA_OUTPUT, SUMA_STATE_DIR, SUMA_ACTOR, NO_COLOR, COLUMNS (table width), RUST_LOG,
and the AWS SDK's standard variables (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).";

/// `suma --version`: the package version, the commit it was built from and that commit's date (the build
/// script's `SUMA_BUILD_*`; a date that does not change between two builds of one commit keeps builds
/// reproducible).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SUMA_BUILD_COMMIT"),
    " ",
    env!("SUMA_BUILD_DATE"),
    ")"
);

/// Operate the auth-service on AWS: status, deploys, rollback, DR, secrets, compliance, runbooks.
#[derive(Debug, Parser)]
#[command(name = "suma", version = VERSION, about, after_help = EXIT_CODES, max_term_width = 110)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Environment to operate on [env: SUMA_ENV]
    #[arg(long = "env", short = 'e', global = true, value_name = "NAME")]
    pub environment: Option<String>,
    /// Configuration file [env: SUMA_CONFIG] [default: ./suma.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format [env: SUMA_OUTPUT] [default: table]
    #[arg(long, short = 'o', global = true, value_enum)]
    pub output: Option<OutputArg>,
    /// Directory of the local operation log [env: SUMA_STATE_DIR] [default: $XDG_STATE_HOME/suma]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Disable colours (also NO_COLOR)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    Table,
    Json,
    /// SARIF 2.1.0 (`compliance check` only)
    Sarif,
    /// JUnit XML (`compliance check` only)
    Junit,
}

impl GlobalArgs {
    /// The flags settings resolution takes (`suma_core::settings`).
    pub fn flags(&self) -> suma_core::settings::GlobalFlags {
        suma_core::settings::GlobalFlags {
            environment: self.environment.clone(),
            config: self.config.clone(),
            output: self.output.map(|o| match o {
                OutputArg::Table => suma_core::config::OutputFormat::Table,
                // Only `compliance check` accepts SARIF and JUnit (`commands::dispatch` refuses them
                // elsewhere); its machine formats are structured like JSON.
                OutputArg::Json | OutputArg::Sarif | OutputArg::Junit => suma_core::config::OutputFormat::Json,
            }),
            state_dir: self.state_dir.clone(),
            no_color: self.no_color,
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub mutation: MutationArgs,
}

/// Flags of every command that changes something.
#[derive(Debug, Clone, Default, Args)]
pub struct MutationArgs {
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One screen of an environment's live state: services, traffic, databases, DNS, secrets, lock, health
    Status,
    /// Validate, show or describe the configuration file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Operations recorded in the journal
    #[command(subcommand)]
    Ops(OpsCommand),
    /// The per-environment lock that serialises mutating operations
    #[command(subcommand)]
    Lock(LockCommand),
    /// Canary deployments: progressive traffic shifting gated by metric analysis, automatic rollback
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// Point the stable service back at the revision live before the last deploy (fast, no analysis)
    Rollback(RollbackArgs),
    /// Compliance checks of the live environment (PCI-DSS, SOC 2, GDPR, CIS), with reports for CI
    #[command(subcommand)]
    Compliance(ComplianceCommand),
    /// Cross-region disaster recovery: readiness check, failover, failback, drills
    #[command(subcommand)]
    Dr(DrCommand),
    /// Managed secrets: age against policy, and rotation through the Secrets Manager protocol
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Runbooks: reviewed, versioned procedures that on-call runs step by step, journaled and resumable
    #[command(subcommand)]
    Runbook(RunbookCommand),
    /// Datadog monitors from `templates/datadog/monitors`: show what differs, apply it
    #[command(subcommand)]
    Monitors(MonitorsCommand),
    /// Datadog dashboards from `templates/datadog/dashboards`: show what differs, apply it
    #[command(subcommand)]
    Dashboards(TemplatedCommand),
    /// Datadog service level objectives from `templates/datadog/slos`: show what differs, apply it
    #[command(subcommand)]
    Slos(TemplatedCommand),
    /// The ECS task definition from `templates/ecs`: render, diff against the live one, register
    #[command(subcommand)]
    Taskdef(TaskdefCommand),
    /// Create the DynamoDB table of locks and the journal (`lock.table`), or harden an existing one:
    /// point-in-time recovery and deletion protection
    Init(InitArgs),
    /// Print the least-privilege IAM policy of COMMAND (e.g. `deploy canary`), or of every command,
    /// narrowed to the lock table and the environment's secrets
    IamPolicy {
        /// Command words (`dr failover`); several commands separated by `,` (`status , deploy canary`)
        #[arg(value_name = "COMMAND")]
        words: Vec<String>,
    },
    /// Print the shell completion script: `suma completion bash > /etc/bash_completion.d/suma`
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write a man page per command into DIR (`cargo xtask man` calls this)
    #[command(hide = true)]
    Man {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Each managed secret: kind, versions and labels, age against its policy, consumers, half-done rotations
    List(SecretsListArgs),
    /// The same as `list`
    Status(SecretsListArgs),
    /// Rotate a secret (create, set, test, finish), or every secret past its policy with `--all-due`
    Rotate(SecretsRotateArgs),
    /// Finish the interrupted rotation of a secret from its journal
    Resume(SecretsContinueArgs),
    /// Undo the interrupted rotation of a secret: AWSCURRENT back on the previous version, no AWSPENDING
    Abort(SecretsAbortArgs),
    /// Stop trusting the previous JWT signing key (remove AWSPREVIOUS) once no token it signed can be valid
    Retire(SecretsRetireArgs),
}

#[derive(Debug, Args)]
pub struct SecretsContinueArgs {
    /// The secret's name as configured (`id`), or its last path segment (`db-password`)
    pub name: String,
    /// How long consumers' redeployment may take
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct SecretsAbortArgs {
    #[command(flatten)]
    pub unfinished: SecretsContinueArgs,
    /// Why (kept in the journal)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct SecretsRetireArgs {
    /// The `jwt-signing-key` secret, as configured (`id`) or by its last path segment
    pub name: String,
    /// Retire even though tokens signed by the previous key may still be valid (needs `--reason`)
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why (kept in the journal); required with `--force`
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct SecretsListArgs {
    /// Exit 1 if any secret is past its rotation policy (for scheduled CI)
    #[arg(long)]
    pub fail_on_due: bool,
}

#[derive(Debug, Args)]
pub struct SecretsRotateArgs {
    /// The secret's name as configured (`id`), or its last path segment (`db-password`)
    #[arg(required_unless_present = "all_due", conflicts_with = "all_due")]
    pub name: Option<String>,
    /// Rotate every secret past its policy, one after the other
    #[arg(long)]
    pub all_due: bool,
    /// Deprecated spelling of `suma secrets resume NAME`
    #[arg(long, hide = true, conflicts_with_all = ["abort", "all_due"], requires = "name")]
    pub resume: bool,
    /// Deprecated spelling of `suma secrets abort NAME`
    #[arg(long, hide = true, conflicts_with_all = ["resume", "all_due"], requires = "name")]
    pub abort: bool,
    /// How long consumers' redeployment may take
    #[arg(long, alias = "rollout-timeout", default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Deploy an image as a canary: 10% -> 50% -> 100% (per the environment's policy), analysed at each step
    Canary(CanaryArgs),
    /// Deploy an image blue/green: up on the idle service at full size, checked through the test listener,
    /// all traffic in one flip, analysed while the old side stays up (one flip back on failure)
    Bluegreen(CanaryArgs),
    /// The canary in flight (or the last one): step, weights, latest measurements
    Status,
    /// Stop shifting at the current weight until `resume`, `abort` or `promote`
    Pause(ControlArgs),
    /// Continue a paused canary, or finish one whose runner died
    Resume(ControlArgs),
    /// Roll the canary back: weights to stable 100 / canary 0, canary scaled to 0
    Abort(AbortArgs),
    /// Promote now, skipping the remaining analysis
    Promote(PromoteArgs),
}

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// Image to deploy, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-service:1.5.0`
    #[arg(long, value_name = "REPO:TAG")]
    pub image: String,
    /// Start even though a monitor tagged `auto-rollback:true` is already alerting (needs `--reason`)
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why (kept in the journal); required with `--force`
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Register the task definition rendered from this template (with `--image`) instead of the stable
    /// revision with a new image [default PATH: templates/ecs/auth-service.taskdef.yaml beside the config, else here]
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub taskdef_template: Option<Option<PathBuf>>,
    /// How long one ECS rollout may take
    #[arg(long, alias = "rollout-timeout", default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct ControlArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub takeover: TakeoverArgs,
}

/// What a control command needs when the deploy's runner died and it finishes the deploy itself.
#[derive(Debug, Clone, Args)]
pub struct TakeoverArgs {
    /// How long a service's rollout may take, when the runner died and this command finishes the deploy
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct AbortArgs {
    /// Why (kept in the journal)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Required: promoting skips the remaining analysis
    #[arg(long, required = true)]
    pub skip_analysis: bool,
    /// Why (kept in the journal)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub takeover: TakeoverArgs,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RollbackArgs {
    #[command(subcommand)]
    pub unfinished: Option<RollbackCommand>,
    /// `previous` (the revision live before the last deploy, from the journal), a revision
    /// (`family:N` or its ARN), or an image (`repo:tag`)
    #[arg(long, default_value = "previous", value_name = "TARGET")]
    pub to: String,
    /// Why (kept in the journal)
    #[arg(long, required = true, value_name = "TEXT")]
    pub reason: Option<String>,
    /// How long the ECS rollout may take
    #[arg(long, alias = "rollout-timeout", default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Deprecated spelling of `suma rollback abort`
    #[arg(long, hide = true)]
    pub abort: bool,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Subcommand)]
pub enum RollbackCommand {
    /// Finish the rollback whose runner died, from the journal
    Resume(RollbackContinueArgs),
    /// End the rollback whose runner died: all traffic on stable, the stable service left where the
    /// rollback took it
    Abort(RollbackAbortArgs),
}

#[derive(Debug, Args)]
pub struct RollbackContinueArgs {
    /// How long the ECS rollout may take
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct RollbackAbortArgs {
    /// Why (kept in the journal)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub unfinished: RollbackContinueArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the configuration file; exit 2 with file:line:column for each problem
    Validate,
    /// Print the resolved settings and the selected environment (secrets redacted)
    Show,
    /// Print the JSON Schema of suma.yaml
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Recent operations of the environment, newest first
    List {
        /// At most this many
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One operation: its plan, each step's record and the facts kept for undo or resume
    Show {
        /// Operation id (as printed by `suma ops list`)
        id: String,
        /// Every value on one line, however wide the terminal (tables otherwise wrap to fit it)
        #[arg(long)]
        wide: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Who holds the environment's lock, for which operation, until when
    Status,
    /// Remove the lock whoever holds it; journaled with the reason
    Release {
        /// Required: releasing someone else's lock can let two operations run at once (needs `--reason`)
        #[arg(long, required = true)]
        force: bool,
        /// Why the lock is being released (kept in the journal)
        #[arg(long, required = true, value_name = "TEXT")]
        reason: String,
        #[command(flatten)]
        mutation: MutationArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DrCommand {
    /// Readiness report (read-only): DR service, replica and lag, DNS failover, secrets, estimated RTO;
    /// exit 1 if anything fails
    Check,
    /// Planned move to the DR region with zero data loss: drain the primary until no task runs, wait
    /// until the replica has replayed a marker written into the primary's WAL, promote, scale DR, switch DNS,
    /// verify (needs SUMA_DR_PRIMARY_URL and SUMA_DR_REPLICA_URL; refused if the primary region does not
    /// answer)
    Switchover(DrSwitchArgs),
    /// Unplanned move to the DR region when the primary region is degraded: drain what answers, promote
    /// the replica, scale DR, switch DNS, verify (data loss bounded by the replica lag)
    Failover(DrFailoverArgs),
    /// Move back to the primary region after it recovered: rebuild a replica there, then switch back
    Failback(DrSwitchArgs),
    /// Rehearse on a non-production environment: switchover (zero data loss, so it needs
    /// SUMA_DR_PRIMARY_URL and SUMA_DR_REPLICA_URL), verification, failback, timings against RTO
    Drill(DrDrillArgs),
    /// Continue the unfinished switchover, failover or failback from the journal
    Resume(DrContinueArgs),
    /// End the unfinished switchover, failover or failback (undoes only what is safe to undo)
    Abort(DrAbortArgs),
}

#[derive(Debug, Args)]
pub struct DrContinueArgs {
    /// Longest wait for one step (promotion, rollout, DNS change)
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct DrAbortArgs {
    /// Why (kept in the journal)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub unfinished: DrContinueArgs,
}

#[derive(Debug, Args)]
pub struct DrFailoverArgs {
    /// Fail over even if the replica lag exceeds the RPO (journaled with who and `--reason`)
    #[arg(long, requires = "reason")]
    pub accept_data_loss: bool,
    /// Why (kept in the journal and the event); required with `--accept-data-loss`
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub switch: DrSwitchArgs,
}

#[derive(Debug, Args)]
pub struct DrSwitchArgs {
    /// Deprecated spelling of `suma dr resume`
    #[arg(long, hide = true, conflicts_with = "abort")]
    pub resume: bool,
    /// Deprecated spelling of `suma dr abort`
    #[arg(long, hide = true)]
    pub abort: bool,
    /// Longest wait for one step (promotion, rollout, DNS change)
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

#[derive(Debug, Args)]
pub struct DrDrillArgs {
    /// Longest wait for one step (promotion, rollout, DNS change)
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub mutation: MutationArgs,
}

const COMPLIANCE_EXIT_CODES: &str = "\
Exit codes:
  0  nothing at or above --fail-on failed, and every check could read what it judges
  1  a finding at or above --fail-on failed (muted findings never fail a run)
  2  usage or configuration error
  3  some check could not read its resources (status `error`): the run could not prove compliance";

#[derive(Debug, Subcommand)]
pub enum ComplianceCommand {
    /// Check the environment's live resources; findings as a table, JSON, SARIF or JUnit
    #[command(after_help = COMPLIANCE_EXIT_CODES)]
    Check(ComplianceCheckArgs),
    /// Every check with its id, severity, controls, risk and remediation
    List,
}

#[derive(Debug, Args)]
pub struct ComplianceCheckArgs {
    /// Only these checks (ids as `suma compliance list` shows them)
    #[arg(long, value_delimiter = ',', value_name = "ID,...", conflicts_with = "tags")]
    pub checks: Vec<String>,
    /// Only checks with any of these tags: a service (rds, ecs, alb, route53, secrets, datadog, service),
    /// a framework (pci-dss, soc2, gdpr, cis) or a topic (encryption, logging, ...)
    #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
    pub tags: Vec<String>,
    /// Only checks of this severity or higher
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub min_severity: Option<SeverityArg>,
    /// Exit 1 when a finding of this severity or higher fails
    #[arg(long, value_enum, default_value = "high", value_name = "SEVERITY")]
    pub fail_on: SeverityArg,
    /// `account`: every resource of the checked services in the environment's regions; `config`: only the
    /// resources the configuration names
    #[arg(long, value_enum, default_value = "account")]
    pub scope: ScopeArg,
    /// Base URL of the live service [default: the environment's `url`]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Write the report (in the `--output` format) to FILE; a summary line goes to stderr
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Account,
    Config,
}

#[cfg(test)]
mod examples;
#[cfg(test)]
mod tests;
