//! `suma config validate|show|schema`.

use serde::Serialize;

use super::Context;
use crate::exit::ExitStatus;

/// Reaching here means the file parsed and passed every check.
pub fn validate(ctx: &Context) -> anyhow::Result<ExitStatus> {
    #[derive(Serialize)]
    struct Valid<'a> {
        file: String,
        valid: bool,
        environments: Vec<&'a str>,
    }
    let report = Valid {
        file: ctx.settings.config_path.value.display().to_string(),
        valid: true,
        environments: ctx.config.environments.keys().map(String::as_str).collect(),
    };
    ctx.printer.either(&report, || {
        format!(
            "{}: valid ({} environments: {})",
            report.file,
            report.environments.len(),
            report.environments.join(", ")
        )
    });
    Ok(ExitStatus::Success)
}

/// Credentials suma reads from the environment, shown only as set or unset.
const CREDENTIAL_VARS: &[&str] = &[
    "DD_API_KEY",
    "DD_APP_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

pub fn show(ctx: &Context) -> anyhow::Result<ExitStatus> {
    #[derive(Serialize)]
    struct Shown<'a> {
        settings: &'a crate::settings::Settings,
        credentials: std::collections::BTreeMap<&'static str, &'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        environment: Option<&'a crate::config::Environment>,
    }
    let environment = match &ctx.settings.environment {
        Some(_) => Some(ctx.environment()?.1),
        None => None,
    };
    let credentials = CREDENTIAL_VARS
        .iter()
        .map(|name| {
            (
                *name,
                if std::env::var_os(name).is_some() {
                    "<redacted>"
                } else {
                    "<unset>"
                },
            )
        })
        .collect();
    let shown = Shown {
        settings: &ctx.settings,
        credentials,
        environment,
    };
    ctx.printer
        .either(&shown, || serde_norway::to_string(&shown).expect("settings serialize"));
    Ok(ExitStatus::Success)
}
