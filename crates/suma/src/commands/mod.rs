//! One module per command group; [`dispatch`] is the single entry from the CLI. Commands receive
//! validated settings and never import clap's parser.

pub mod compliance;
pub mod config;
pub mod deploy;
pub mod dr;
pub mod iam;
pub mod init;
pub mod lock;
pub mod monitoring;
pub mod ops;
pub mod rollback;
pub mod runbook;
pub mod secrets;
pub mod shell;
pub mod taskdef;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::aws::AwsApis;
use crate::canary::Strategy;
use crate::cli::{
    Command, ComplianceCommand, ConfigCommand, DeployCommand, DrCommand, GlobalArgs, LockCommand, OpsCommand,
    OutputArg, SecretsCommand,
};
use crate::config::ConfigFile;
use crate::exit::ExitStatus;
use crate::monitoring::Kind;
use crate::render::Printer;
use crate::report::Reporter;
use crate::settings::{self, EnvSource, Settings};
use suma_ops::context::OpsContext;

/// A configuration problem, already printed with its positions.
#[derive(Debug, thiserror::Error)]
#[error("the configuration has {count} problem(s)")]
pub struct InvalidConfig {
    pub count: usize,
}

/// Everything a command needs, resolved before it runs: what an operation needs, and the printer.
pub struct Context {
    pub ops: OpsContext,
    pub printer: Printer,
}

/// Commands read the settings, configuration, reporter and session builders straight through.
impl std::ops::Deref for Context {
    type Target = OpsContext;

    fn deref(&self) -> &OpsContext {
        &self.ops
    }
}

pub use suma_ops::context::environment_regions;

/// Loads the configuration, or prints every problem in it and fails.
pub fn load_config(
    global: &GlobalArgs,
    env: &dyn EnvSource,
) -> anyhow::Result<(settings::Resolved<std::path::PathBuf>, ConfigFile)> {
    let path = settings::config_path(&global.flags(), env);
    match crate::config::load_from_path(&path.value) {
        Ok(config) => Ok((path, config)),
        Err(problems) => {
            let count = problems.len();
            for problem in problems {
                crate::render::error(&anyhow::Error::new(problem));
            }
            Err(InvalidConfig { count }.into())
        }
    }
}

/// How an unfinished operation is finished: `resume` carries it on, `abort` undoes what is safe to undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Resume,
    Abort,
}

impl Finish {
    pub fn verb(self) -> &'static str {
        match self {
            Self::Resume => "resume",
            Self::Abort => "abort",
        }
    }

    /// The journal's note: who finished it, and why when they said.
    pub fn note(self, actor: &str, reason: Option<&str>) -> String {
        let done = match self {
            Self::Resume => "resumed",
            Self::Abort => "aborted",
        };
        match reason {
            Some(reason) => format!("{done} by {actor}: {reason}"),
            None => format!("{done} by {actor}"),
        }
    }
}

/// How to finish an unfinished operation, whichever spelling asked for it (`suma dr abort` or the
/// deprecated `suma dr failover --abort`).
pub struct Unfinished<'a> {
    pub finish_with: Finish,
    pub timeout: Duration,
    pub mutation: &'a crate::cli::MutationArgs,
    pub reason: Option<&'a str>,
}

impl Unfinished<'_> {
    /// Asks `question` (or takes `--yes`), takes the lock for `op` (`takeover`: the lock still names it,
    /// its lease run out), and journals on `op` who finishes it and why, running again. `None` when not
    /// confirmed: nothing changed.
    pub async fn take_over(
        &self,
        ctx: &Context,
        session: &crate::aws::AwsSession,
        op: &mut crate::journal::Operation,
        question: &str,
        takeover: bool,
    ) -> anyhow::Result<Option<suma_ops::journal::lock::LockGuard>> {
        if !crate::render::confirm(question, self.mutation.yes)? {
            return Ok(None);
        }
        let guard = ctx.locks(session).acquire(op, takeover).await?;
        let actor = &ctx.settings.actor.value;
        op.note(actor, self.finish_with.note(actor, self.reason));
        op.set_status(crate::journal::OperationStatus::Running);
        Ok(Some(guard))
    }
}

/// `--dry-run` of `resume` or `abort`: the unfinished operation, its plan, each step's record; nothing runs.
pub fn print_unfinished(ctx: &Context, op: &crate::journal::Operation) -> ExitStatus {
    ctx.printer.either(
        &serde_json::json!({"dry_run": true, "plan": op.plan, "operation": op}),
        || crate::render::status::operation(op),
    );
    ExitStatus::Success
}

/// An empty `--reason` is refused: the journal would keep nothing.
pub fn check_reason(reason: Option<&str>) -> anyhow::Result<()> {
    if reason.is_some_and(|r| r.trim().is_empty()) {
        anyhow::bail!(suma_core::usage!(
            "`--reason` is empty\nhint: say why; it is kept in the journal"
        ));
    }
    Ok(())
}

/// The printer of a command that reads no configuration file: `--output`/`SUMA_OUTPUT` and
/// `--no-color`/`NO_COLOR` resolved as for every other command.
pub fn offline_printer(global: &GlobalArgs) -> anyhow::Result<Printer> {
    let flags = global.flags();
    let env = settings::ProcessEnv;
    let output = settings::output_format(&flags, &env, None).context("invalid settings")?;
    Ok(Printer::new(output.value, settings::color(&flags, &env)))
}

/// Exit 2 when the command line or the configuration must change (the error is one of the kinds found
/// before anything runs), 3 for every other failure.
pub fn exit_status_of(err: &anyhow::Error) -> ExitStatus {
    use suma_ops::secrets::setup::SetupError;
    let usage = err.chain().any(|e| {
        e.is::<suma_core::exit::UsageError>()
            || e.is::<InvalidConfig>()
            || e.is::<settings::SettingsError>()
            || e.is::<suma_core::config::UnknownEnvironment>()
            || e.is::<suma_ops::context::EnvironmentError>()
            || e.is::<crate::render::ConfirmationRequired>()
            || e.is::<compliance::OutputOnlyForCheck>()
            || e.is::<suma_ops::compliance::SelectionError>()
            || e.is::<suma_ops::compliance::setup::SuppressionError>()
            || e.is::<suma_ops::taskdef::TemplateError>()
            || e.is::<suma_ops::taskdef::TaskdefError>()
            || e.is::<suma_ops::monitoring::TemplateError>()
            || matches!(
                e.downcast_ref::<SetupError>(),
                Some(SetupError::Unknown { .. } | SetupError::Ambiguous { .. } | SetupError::ServiceUrl { .. })
            )
    });
    if usage {
        ExitStatus::Usage
    } else {
        ExitStatus::Error
    }
}

/// Runs one command.
pub async fn dispatch(
    command: Command,
    global: &GlobalArgs,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
) -> anyhow::Result<ExitStatus> {
    // Completion scripts and man pages come from the definition alone.
    match &command {
        Command::Completion { shell } => return shell::completion(*shell),
        Command::Man { out } => return shell::man(out),
        _ => {}
    }
    // The schema needs no configuration file.
    if let Command::Config(ConfigCommand::Schema) = command {
        let printer = Printer::new(crate::config::OutputFormat::Json, false);
        printer.json(&ConfigFile::json_schema());
        return Ok(ExitStatus::Success);
    }
    if let Some(output @ (OutputArg::Sarif | OutputArg::Junit)) = global.output {
        if !matches!(command, Command::Compliance(ComplianceCommand::Check(_))) {
            return Err(compliance::OutputOnlyForCheck(output).into());
        }
    }
    if let Command::Runbook(runbook_command) = &command {
        if runbook::needs_no_config(runbook_command) {
            return runbook::offline(runbook_command, global);
        }
    }
    // The list of checks needs no configuration file.
    if let Command::Compliance(ComplianceCommand::List) = command {
        return compliance::list(global);
    }
    let env = settings::ProcessEnv;
    let (path, config) = load_config(global, &env)?;
    let settings = Settings::resolve(&global.flags(), &env, path, &config).context("invalid settings")?;
    let printer = Printer::new(settings.output.value, settings.color);
    let ctx = Context {
        ops: OpsContext {
            settings,
            config,
            reporter,
            cancel,
        },
        printer,
    };
    match command {
        Command::Status => status_command(&ctx).await,
        Command::Config(ConfigCommand::Validate) => config::validate(&ctx),
        Command::Config(ConfigCommand::Show) => config::show(&ctx),
        Command::Config(ConfigCommand::Schema) => unreachable!("handled above"),
        Command::Ops(OpsCommand::List { limit }) => ops::list(&ctx, limit).await,
        Command::Ops(OpsCommand::Show { id, wide }) => {
            if wide {
                crate::render::tables::set_wide();
            }
            ops::show(&ctx, &id).await
        }
        Command::Lock(LockCommand::Status) => lock::status(&ctx).await,
        Command::Lock(LockCommand::Release {
            force: _,
            reason,
            mutation,
        }) => lock::release(&ctx, &reason, &mutation).await,
        Command::Deploy(DeployCommand::Canary(args)) => deploy::start(&ctx, &args, Strategy::Canary).await,
        Command::Deploy(DeployCommand::Bluegreen(args)) => deploy::start(&ctx, &args, Strategy::BlueGreen).await,
        Command::Deploy(DeployCommand::Status) => deploy::status(&ctx).await,
        Command::Deploy(DeployCommand::Pause(args)) => deploy::control(&ctx, "pause", &args).await,
        Command::Deploy(DeployCommand::Resume(args)) => deploy::control(&ctx, "resume", &args).await,
        Command::Deploy(DeployCommand::Abort(args)) => deploy::abort(&ctx, &args).await,
        Command::Deploy(DeployCommand::Promote(args)) => deploy::promote(&ctx, &args).await,
        Command::Rollback(args) => rollback::rollback(&ctx, &args).await,
        Command::Compliance(ComplianceCommand::Check(args)) => compliance::check(&ctx, &args, global.output).await,
        Command::Compliance(ComplianceCommand::List) => unreachable!("handled above"),
        Command::Dr(DrCommand::Check) => dr::check(&ctx).await,
        Command::Dr(DrCommand::Failover(args)) => dr::failover(&ctx, &args).await,
        Command::Dr(DrCommand::Switchover(args)) => dr::switchover(&ctx, &args).await,
        Command::Dr(DrCommand::Failback(args)) => dr::failback(&ctx, &args).await,
        Command::Dr(DrCommand::Drill(args)) => dr::drill(&ctx, &args).await,
        Command::Dr(DrCommand::Resume(args)) => dr::resume(&ctx, &args).await,
        Command::Dr(DrCommand::Abort(args)) => dr::abort(&ctx, &args).await,
        Command::Secrets(SecretsCommand::List(args) | SecretsCommand::Status(args)) => secrets::list(&ctx, &args).await,
        Command::Secrets(SecretsCommand::Rotate(args)) => secrets::rotate(&ctx, &args).await,
        Command::Secrets(SecretsCommand::Retire(args)) => secrets::retire(&ctx, &args).await,
        Command::Secrets(SecretsCommand::Resume(args)) => secrets::resume(&ctx, &args).await,
        Command::Secrets(SecretsCommand::Abort(args)) => secrets::abort(&ctx, &args).await,
        Command::Runbook(command) => runbook::run(&ctx, command).await,
        Command::Monitors(command) => monitoring::monitors(&ctx, command).await,
        Command::Dashboards(command) => monitoring::templated(&ctx, Kind::Dashboard, command).await,
        Command::Slos(command) => monitoring::templated(&ctx, Kind::Slo, command).await,
        Command::Taskdef(command) => taskdef::run(&ctx, command).await,
        Command::Init(args) => init::init(&ctx, &args).await,
        Command::IamPolicy { words } => iam::policy(&ctx, &words),
        Command::Completion { .. } | Command::Man { .. } => unreachable!("handled above"),
    }
}

async fn status_command(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let (name, env) = ctx.environment()?;
    ctx.reporter.phase(&format!("reading `{name}` from AWS"));
    let session = ctx.aws(env.aws_profile.as_deref(), environment_regions(env)).await;
    let sources = crate::status::StatusSources {
        locks: ctx.locks(&session),
        aws: Arc::new(session) as Arc<dyn AwsApis>,
        probe: Arc::new(suma_http::ServiceClient::new(Duration::from_secs(5))),
    };
    let report = crate::status::gather(name, env, &sources).await;
    ctx.reporter.finish();
    ctx.printer.either(&report, || crate::render::status::status(&report));
    Ok(if report.has_errors() {
        ExitStatus::Error
    } else {
        ExitStatus::Success
    })
}

/// The one shape of a dry run's plan, `[{"name", "detail"}]`: a plan of one step.
pub(crate) fn one_step_plan(name: &str, detail: String) -> Vec<crate::journal::PlannedStep> {
    vec![crate::journal::PlannedStep {
        name: name.to_owned(),
        detail,
    }]
}

/// Plans of several operations (a drill's switchover and failback, each secret's rotation) as one plan
/// of the one shape: each step named `PART/STEP`.
pub(crate) fn joined_plans<'p>(
    parts: impl IntoIterator<Item = (&'p str, &'p [crate::journal::PlannedStep])>,
) -> Vec<crate::journal::PlannedStep> {
    parts
        .into_iter()
        .flat_map(|(part, plan)| {
            plan.iter().map(move |step| crate::journal::PlannedStep {
                name: format!("{part}/{}", step.name),
                detail: step.detail.clone(),
            })
        })
        .collect()
}
