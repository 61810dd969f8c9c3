//! What an operation needs, resolved before it runs: settings, the configuration, where progress goes,
//! and the cancellation Ctrl-C triggers; and the AWS session, journal and locks built from them. The
//! command layer wraps this with its printer; runbook actions and the engines take it as it is.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::aws::{AwsOptions, AwsSession};
use crate::config::{AwsRegion, ConfigFile, Environment, UnknownEnvironment};
use crate::journal::lock::Locks;
use crate::journal::{Journal, LocalLog};
use crate::report::Reporter;
use crate::settings::{Settings, SettingsError};

/// Why the selected environment cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Unknown(#[from] UnknownEnvironment),
}

#[derive(Clone)]
pub struct OpsContext {
    pub settings: Settings,
    pub config: ConfigFile,
    pub reporter: Arc<dyn Reporter>,
    /// Cancelled on Ctrl-C.
    pub cancel: CancellationToken,
}

impl OpsContext {
    /// The selected environment's name and configuration.
    pub fn environment(&self) -> Result<(&str, &Environment), EnvironmentError> {
        let name = self.settings.environment_name(&self.config)?;
        Ok((name, self.config.environment(name)?))
    }

    /// An AWS session covering `regions` plus the lock table's region.
    pub async fn aws<'a>(
        &'a self,
        profile: Option<&str>,
        regions: impl IntoIterator<Item = &'a AwsRegion>,
    ) -> AwsSession {
        let options = AwsOptions {
            profile: profile.map(str::to_owned),
            operation_timeout: self.settings.aws_operation_timeout,
        };
        let regions: Vec<&AwsRegion> = regions.into_iter().chain([&self.config.lock.region]).collect();
        AwsSession::connect(&options, regions).await
    }

    pub fn journal(&self, session: &AwsSession) -> Journal {
        Journal::new(
            session.lock_store(&self.config.lock.region, &self.config.lock.table),
            LocalLog::new(self.settings.state_dir()),
        )
    }

    pub fn locks(&self, session: &AwsSession) -> Locks {
        Locks::new(
            session.lock_store(&self.config.lock.region, &self.config.lock.table),
            self.config.lock.lease,
        )
    }
}

/// Every region an environment touches.
pub fn environment_regions(env: &Environment) -> Vec<&AwsRegion> {
    let mut regions = vec![&env.primary_region, &env.dr_region, &env.rds.primary.region];
    if let Some(replica) = &env.rds.replica {
        regions.push(&replica.region);
    }
    regions
}
