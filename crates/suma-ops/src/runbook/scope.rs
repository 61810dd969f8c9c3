//! What a run's expressions read besides its steps' outputs: `${params.*}` from the operation's record,
//! `${env.*}` from the environment's configuration and `${run.*}` from the operation itself. One place
//! for `suma runbook run|resume|abort` and for the runbooks deploys run as hooks.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::expr::Scope;
use crate::config::Environment;
use crate::journal::Operation;

/// The environment values runbooks reference as `${env.NAME}`.
pub fn env_scope(name: &str, env: &Environment) -> BTreeMap<String, Value> {
    let mut values = BTreeMap::from([
        ("name".to_owned(), json!(name)),
        // `tier: production` in the configuration, never a guess from the name.
        ("production".to_owned(), json!(env.is_production())),
        ("primary_region".to_owned(), json!(env.primary_region.as_str())),
        ("dr_region".to_owned(), json!(env.dr_region.as_str())),
        ("cluster".to_owned(), json!(env.ecs.cluster)),
        ("service".to_owned(), json!(env.ecs.service)),
        ("canary_service".to_owned(), json!(env.ecs.canary_service)),
        ("database".to_owned(), json!(env.rds.primary.identifier)),
        (
            "database_host_variable".to_owned(),
            json!(env.dr.database_host_variable),
        ),
    ]);
    if let Some(url) = &env.url {
        values.insert("url".to_owned(), json!(url.to_string().trim_end_matches('/')));
    }
    if let Some(url) = &env.dr.dr_url {
        values.insert("dr_url".to_owned(), json!(url.to_string().trim_end_matches('/')));
    }
    if let Some(replica) = &env.rds.replica {
        values.insert("replica".to_owned(), json!(replica.identifier));
    }
    values
}

/// The scope of run `op` on environment `name`.
pub fn scope_of(op: &Operation, name: &str, env: &Environment) -> Scope {
    let params = op
        .parameters
        .get("params")
        .and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Scope {
        params,
        outputs: BTreeMap::new(),
        env: env_scope(name, env),
        run: BTreeMap::from([
            ("id".to_owned(), json!(op.id)),
            ("actor".to_owned(), json!(op.actor)),
            ("started_at".to_owned(), json!(op.started_at.to_rfc3339())),
            (
                "runbook".to_owned(),
                op.parameters.get("runbook").cloned().unwrap_or(Value::Null),
            ),
        ]),
    }
}
