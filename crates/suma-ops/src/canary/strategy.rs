//! The deploy strategies the engine runs: how a release reaches users, the journal's kind of each, and
//! their plans.

use serde::Serialize;

use super::{bluegreen, plan_with, KIND};
use crate::config::Environment;
use crate::journal::PlannedStep;

/// Whether an operation of `kind` is a deploy (canary or blue/green): the kinds `deploy status`,
/// `deploy pause|resume|abort|promote` and `rollback` act on.
pub fn is_deploy(kind: &str) -> bool {
    kind == KIND || kind == bluegreen::KIND
}

/// How a release reaches users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Progressive weights, analysed at each step.
    Canary,
    /// All at once onto a second full-size service, analysed, one flip back on failure.
    BlueGreen,
}

impl Strategy {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Canary => KIND,
            Self::BlueGreen => bluegreen::KIND,
        }
    }

    /// The strategy of a deploy operation of `kind`.
    pub fn of(kind: &str) -> Self {
        if kind == bluegreen::KIND {
            Self::BlueGreen
        } else {
            Self::Canary
        }
    }

    /// How people name it in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::BlueGreen => "blue/green deploy",
        }
    }

    /// The steps of a deploy of `image` on `env` with this strategy.
    pub fn plan(
        self,
        environment: &str,
        env: &Environment,
        image: &str,
        template: Option<&std::path::Path>,
    ) -> Vec<PlannedStep> {
        match self {
            Self::Canary => plan_with(environment, env, image, template),
            Self::BlueGreen => bluegreen::plan(environment, env, image, template),
        }
    }
}
