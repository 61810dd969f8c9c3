//! Datadog monitors, dashboards and SLOs kept as templates in the repository
//! (`templates/datadog/monitors/*.yaml`, `templates/datadog/dashboards/*.json`,
//! `templates/datadog/slos/*.yaml`) and brought in line with Datadog by `suma monitors|dashboards|slos
//! apply`. This module is the pure part: loading templates with `${var}` substitution from the
//! environment's configuration (checked on the text, substituted into the parsed values), stamping what
//! marks a resource as suma's and which template it comes from ([`identity`]), normalising both sides, and
//! the per-field diff that decides create / update / unchanged / conflict / orphan. The Datadog calls live
//! in `suma-datadog`; the command in `commands::monitoring`.
//!
//! A template is matched to the managed resource carrying its key first (so a rename in the template is
//! an update in place), then to one of the same name (resources from before the key existed, which the
//! update stamps). A monitor stamped before the environment tag existed is recognised by
//! [`monitor_owner`] as [`Ownership::Legacy`]: updated (which stamps the tag), never pruned. Anything not
//! suma's, even with the same name, is never changed. Only the fields a template sets are compared:
//! Datadog adds its own (ids, timestamps, states, option defaults, widget ids). A monitor field dropped
//! from a template is reset to Datadog's default when its default is known (`reset.rs`: priority,
//! renotification, no-data, the warning threshold...); a dashboard is replaced whole by its update.

mod adopt;
pub mod apply;
pub mod identity;
pub mod report;
mod reset;
mod slo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use suma_core::subst::{self, Names};

use crate::config::Environment;

pub use adopt::adoptions;
pub use identity::*;
pub use slo::slo_problems;

/// What a template may refer to as `${name}`.
pub type Vars = BTreeMap<String, String>;

/// The variables of `environment` (named `name`): `env`, `service`, `canary_service`, `cluster`,
/// `region`, `dr_region`, `rds_instance`, `datadog_site`, and `scope`, the environment's Datadog tags
/// joined by commas (`service:auth-service,env:staging`), which is what queries filter on.
pub fn vars_for(name: &str, environment: &Environment) -> Vars {
    let tags = environment.datadog.as_ref().map(|d| d.tags.clone()).unwrap_or_default();
    let mut vars = Vars::new();
    vars.insert("env".into(), name.to_owned());
    vars.insert("service".into(), environment.ecs.service.clone());
    vars.insert("canary_service".into(), environment.ecs.canary_service.clone());
    vars.insert("cluster".into(), environment.ecs.cluster.clone());
    vars.insert("region".into(), environment.primary_region.to_string());
    vars.insert("dr_region".into(), environment.dr_region.to_string());
    vars.insert("rds_instance".into(), environment.rds.primary.identifier.clone());
    vars.insert(
        "datadog_site".into(),
        environment.datadog.as_ref().map(|d| d.site.clone()).unwrap_or_default(),
    );
    vars.insert(
        "scope".into(),
        if tags.is_empty() {
            "*".to_owned()
        } else {
            tags.join(",")
        },
    );
    vars
}

/// Why templates could not be used. Raised before any call to Datadog.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "{file}:{line}: unknown variable `${{{name}}}`\nhint: known variables: {known}; write `$$` for a literal `$`"
    )]
    UnknownVariable {
        file: String,
        line: usize,
        name: String,
        known: String,
    },
    #[error("{file}:{line}: `${{` without a closing `}}`\nhint: write `${{name}}`, or `$$` for a literal `$`")]
    Unterminated { file: String, line: usize },
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{dir}` holds no {what} templates\nhint: pass `--templates DIR`, the directory holding `monitors/`, `dashboards/` and `slos/`")]
    Empty { dir: String, what: &'static str },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{first} and {second} both define `{name}`\nhint: names must be unique, they are how suma finds the resource in Datadog")]
    Duplicate {
        first: String,
        second: String,
        name: String,
    },
}

/// Checks every `${name}` in a template's raw text, before it is parsed: the first unknown variable or
/// malformed reference is the error, with the template's file and line.
pub fn check_references(text: &str, vars: &Vars, file: &str) -> Result<(), TemplateError> {
    for found in subst::scan(text, Names::Identifier, None) {
        match found.reference {
            Ok(name) if vars.contains_key(name) => {}
            Ok(name) => {
                return Err(TemplateError::UnknownVariable {
                    file: file.to_owned(),
                    line: found.line,
                    name: name.to_owned(),
                    known: vars.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                })
            }
            Err(message) if message.contains("without a closing") => {
                return Err(TemplateError::Unterminated {
                    file: file.to_owned(),
                    line: found.line,
                })
            }
            Err(message) => {
                return Err(TemplateError::Invalid {
                    file: format!("{file}:{}:{}", found.line, found.column),
                    message,
                })
            }
        }
    }
    Ok(())
}

/// Substitutes `vars` into every string of a parsed template (after [`check_references`]): a value
/// holding a quote or a brace stays inside its string. `$$` stands for a literal `$`.
pub fn substitute(body: &mut Value, vars: &Vars) {
    let mut resolve = |name: &str| -> Result<String, std::convert::Infallible> {
        Ok(vars.get(name).cloned().unwrap_or_else(|| format!("${{{name}}}")))
    };
    // Checked on the raw text, so nothing here is malformed; a string that still is stays as written.
    let _ = subst::substitute_json(body, Names::Identifier, &mut resolve);
}

/// Monitors, dashboards or service level objectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Monitor,
    Dashboard,
    Slo,
}

impl Kind {
    /// `monitor` or `dashboard`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Monitor => "monitor",
            Self::Dashboard => "dashboard",
            Self::Slo => "SLO",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Self::Monitor => "monitors",
            Self::Dashboard => "dashboards",
            Self::Slo => "slos",
        }
    }

    /// The field that names a resource: `name` for monitors and SLOs, `title` for dashboards.
    pub fn name_field(self) -> &'static str {
        match self {
            Self::Monitor | Self::Slo => "name",
            Self::Dashboard => "title",
        }
    }

    /// The resources carry their identity in tags (monitors, SLOs), not in a description (dashboards).
    pub fn tagged(self) -> bool {
        matches!(self, Self::Monitor | Self::Slo)
    }
}

/// A resource as a template renders it for one environment, ownership stamped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub kind: Kind,
    pub name: String,
    /// The template it came from.
    pub file: String,
    /// The template's key ([`template_key`]), which the resource carries whatever its name.
    pub key: String,
    /// The API's JSON, normalised.
    pub body: Value,
}

impl Desired {
    /// Whether `remote` is this template's resource by name or by the template key it carries (for a
    /// managed one, what keeps it from being an orphan).
    pub fn claims(&self, remote: &Remote) -> bool {
        remote.name == self.name || remote.template.as_deref() == Some(self.key.as_str())
    }
}

/// Fields Datadog owns: never sent, never compared.
const SERVER_FIELDS: &[&str] = &[
    "id",
    "created",
    "created_at",
    "modified",
    "modified_at",
    "creator",
    "overall_state",
    "overall_state_modified",
    "org_id",
    "deleted",
    "matching_downtimes",
    "state",
    "url",
    "author_handle",
    "author_name",
];

/// A monitor body as compared: server fields dropped, `metric alert` spelled `query alert` (Datadog
/// answers either for the same monitor), tags sorted without repeats, the message without trailing blanks.
pub fn normalise_monitor(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        for field in SERVER_FIELDS {
            object.remove(*field);
        }
        if object.get("type").and_then(Value::as_str) == Some("metric alert") {
            object.insert("type".into(), "query alert".into());
        }
        if let Some(tags) = object.get_mut("tags").and_then(Value::as_array_mut) {
            let mut sorted: Vec<String> = tags.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect();
            sorted.sort();
            sorted.dedup();
            *tags = sorted.into_iter().map(Value::String).collect();
        }
        if let Some(message) = object.get("message").and_then(Value::as_str) {
            let trimmed = message.trim_end().to_owned();
            object.insert("message".into(), Value::String(trimmed));
        }
    }
    body
}

/// An SLO body as compared: server fields dropped, tags sorted without repeats, the description without
/// trailing blanks.
pub fn normalise_slo(body: &Value) -> Value {
    let mut body = normalise_monitor(body);
    if let Some(object) = body.as_object_mut() {
        if let Some(description) = object.get("description").and_then(Value::as_str) {
            let trimmed = description.trim_end().to_owned();
            object.insert("description".into(), Value::String(trimmed));
        }
    }
    body
}

/// A body as compared, by its kind.
pub fn normalise(kind: Kind, body: &Value) -> Value {
    match kind {
        Kind::Monitor => normalise_monitor(body),
        Kind::Dashboard => normalise_dashboard(body),
        Kind::Slo => normalise_slo(body),
    }
}

/// A dashboard body as compared: server fields dropped at the top and in every widget (`id`).
pub fn normalise_dashboard(body: &Value) -> Value {
    fn strip_widget_ids(widgets: &mut Value) {
        for widget in widgets.as_array_mut().into_iter().flatten() {
            if let Some(object) = widget.as_object_mut() {
                object.remove("id");
            }
            if let Some(children) = widget.pointer_mut("/definition/widgets") {
                strip_widget_ids(children);
            }
        }
    }
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        for field in SERVER_FIELDS {
            object.remove(*field);
        }
        if let Some(description) = object.get("description").and_then(Value::as_str) {
            let trimmed = description.trim_end().to_owned();
            object.insert("description".into(), Value::String(trimmed));
        }
        if let Some(widgets) = object.get_mut("widgets") {
            strip_widget_ids(widgets);
        }
    }
    body
}

/// Every `*.yaml`/`*.yml` (monitors, SLOs) or `*.json` (dashboards) file in `dir`, sorted by name.
fn template_files(dir: &Path, kind: Kind) -> Result<Vec<PathBuf>, TemplateError> {
    let read = |e: std::io::Error| TemplateError::Read {
        path: dir.display().to_string(),
        source: e,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let wanted = match kind {
            Kind::Monitor | Kind::Slo => matches!(ext, "yaml" | "yml"),
            Kind::Dashboard => ext == "json",
        };
        if wanted && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses one rendered template (YAML for monitors and SLOs, JSON for dashboards) into a JSON object.
fn parse(kind: Kind, text: &str, file: &str) -> Result<Value, TemplateError> {
    let invalid = |message: String| TemplateError::Invalid {
        file: file.to_owned(),
        message,
    };
    let value: Value = match kind {
        Kind::Monitor | Kind::Slo => {
            let yaml: serde_norway::Value = serde_norway::from_str(text).map_err(|e| TemplateError::Invalid {
                file: match e.location() {
                    Some(l) => format!("{file}:{}:{}", l.line(), l.column()),
                    None => file.to_owned(),
                },
                message: e.to_string(),
            })?;
            serde_json::to_value(yaml).map_err(|e| invalid(format!("not representable as JSON: {e}")))?
        }
        Kind::Dashboard => serde_json::from_str(text).map_err(|e| TemplateError::Invalid {
            file: format!("{file}:{}:{}", e.line(), e.column()),
            message: e.to_string(),
        })?,
    };
    if !value.is_object() {
        return Err(invalid(
            format!("a {kind:?} template must be one object (a mapping)").to_lowercase(),
        ));
    }
    let name_field = kind.name_field();
    match value.get(name_field).and_then(Value::as_str) {
        Some(name) if !name.trim().is_empty() => {}
        _ => return Err(invalid(format!("`{name_field}` is missing or empty"))),
    }
    if let Some(field) = SERVER_FIELDS.iter().find(|f| value.get(**f).is_some()) {
        return Err(invalid(format!(
            "`{field}` is set by Datadog, not by a template\nhint: remove it; exported monitors and dashboards carry it"
        )));
    }
    Ok(value)
}

/// Loads the templates of `kind` from `dir` (`…/monitors` or `…/dashboards`) for one environment:
/// references checked, parsed, substituted, checked by `check` (the client's model), stamped with the environment's ownership,
/// normalised.
pub fn load(
    kind: Kind,
    dir: &Path,
    vars: &Vars,
    environment: &str,
    env_tags: &[String],
    check: &dyn Fn(&Value) -> Result<Value, String>,
) -> Result<Vec<Desired>, TemplateError> {
    let files = template_files(dir, kind)?;
    if files.is_empty() {
        return Err(TemplateError::Empty {
            dir: dir.display().to_string(),
            what: match kind {
                Kind::Monitor => "monitor (`*.yaml`)",
                Kind::Dashboard => "dashboard (`*.json`)",
                Kind::Slo => "SLO (`*.yaml`)",
            },
        });
    }
    let mut desired: Vec<Desired> = Vec::new();
    for path in files {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| TemplateError::Read {
            path: file.clone(),
            source: e,
        })?;
        check_references(&text, vars, &file)?;
        let mut body = parse(kind, &text, &file)?;
        substitute(&mut body, vars);
        let key = template_key(&path);
        if kind.tagged() {
            stamp_tags(&mut body, environment, env_tags, &key);
        } else {
            stamp_dashboard(&mut body, environment, &key);
        }
        let body = check(&body).map_err(|message| TemplateError::Invalid {
            file: file.clone(),
            message: format!("not a valid Datadog {}: {message}", kind.word()),
        })?;
        let body = normalise(kind, &body);
        let name = body[kind.name_field()].as_str().unwrap_or_default().to_owned();
        if let Some(first) = desired.iter().find(|d| d.name == name) {
            return Err(TemplateError::Duplicate {
                first: first.file.clone(),
                second: file,
                name,
            });
        }
        desired.push(Desired {
            kind,
            name,
            file,
            key,
            body,
        });
    }
    Ok(desired)
}

/// A resource in Datadog as the plan sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remote {
    pub id: String,
    pub name: String,
    /// Carries this environment's managed-by identity.
    pub managed: bool,
    /// The template key it carries ([`template_of`]), if any.
    pub template: Option<String>,
    /// The API's JSON (for a dashboard only known once read whole; `Null` until then).
    pub body: Value,
}

/// One field that differs: `path` like `options.thresholds.critical` or `widgets[2].definition.title`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub path: String,
    /// `None` when Datadog does not have the field.
    pub before: Option<Value>,
    pub after: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// A resource of the same name that suma does not manage: left alone, nothing created.
    Conflict,
    /// Managed by suma for this environment but in no template: reported, deleted only with `--prune`.
    Orphan,
    /// An orphan that `--prune` deletes.
    Delete,
    /// A monitor without suma's identity under a template's name, made suma's (`suma monitors import`).
    Adopt,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Unchanged => "unchanged",
            Self::Conflict => "conflict",
            Self::Orphan => "orphan",
            Self::Delete => "delete",
            Self::Adopt => "adopt",
        }
    }

    /// Whether applying it writes to Datadog.
    pub fn writes(self) -> bool {
        matches!(self, Self::Create | Self::Update | Self::Delete | Self::Adopt)
    }
}

/// What apply would do to one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanItem {
    pub kind: Kind,
    pub name: String,
    pub action: Action,
    /// Datadog's id when the resource exists.
    pub id: Option<String>,
    pub file: Option<String>,
    pub changes: Vec<FieldChange>,
    pub note: Option<String>,
    /// What is sent on create or update (not shown).
    pub body: Option<Value>,
}

/// Numbers compare by value (`5` and `5.0` are one threshold); `null` and absent are the same.
fn same_scalar(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => desired == actual,
    }
}

fn diff_into(path: &str, desired: &Value, actual: Option<&Value>, out: &mut Vec<FieldChange>) {
    let actual = actual.filter(|a| !a.is_null());
    match (desired, actual) {
        (Value::Null, _) => {}
        (_, None) => out.push(FieldChange {
            path: path.to_owned(),
            before: None,
            after: desired.clone(),
        }),
        (Value::Object(want), Some(Value::Object(have))) => {
            for (key, value) in want {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff_into(&child, value, have.get(key), out);
            }
        }
        (Value::Array(want), Some(Value::Array(have))) if want.len() == have.len() => {
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                diff_into(&format!("{path}[{i}]"), w, Some(h), out);
            }
        }
        (want, Some(have)) => {
            let equal = match (want, have) {
                (Value::Array(_), Value::Array(_)) | (Value::Object(_), _) | (Value::Array(_), _) => false,
                _ => same_scalar(want, have),
            };
            if !equal {
                out.push(FieldChange {
                    path: path.to_owned(),
                    before: Some(have.clone()),
                    after: want.clone(),
                });
            }
        }
    }
}

/// The fields `desired` sets that `actual` does not hold the same way. Fields only `actual` has (Datadog's
/// own, or defaults) are not differences.
pub fn field_changes(desired: &Value, actual: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff_into("", desired, Some(actual), &mut out);
    out
}

/// What to do with `desired`, given the Datadog resources of the same name (`same_name`, managed or not;
/// a managed one's `body` already read and normalised).
pub fn plan_one(desired: &Desired, same_name: &[Remote]) -> PlanItem {
    let mut item = PlanItem {
        kind: desired.kind,
        name: desired.name.clone(),
        action: Action::Create,
        id: None,
        file: Some(desired.file.clone()),
        changes: Vec::new(),
        note: None,
        body: Some(desired.body.clone()),
    };
    let mut managed: Vec<&Remote> = same_name.iter().filter(|r| r.managed).collect();
    // The oldest first when Datadog holds more than one (ids grow for monitors; any stable order will do).
    managed.sort_by_key(|r| (r.id.len(), r.id.clone()));
    let unmanaged = same_name.len() - managed.len();
    let Some(existing) = managed.first() else {
        if unmanaged > 0 {
            item.action = Action::Conflict;
            item.body = None;
            item.note = Some(format!(
                "{unmanaged} {} named like this exist(s) without suma's managed-by identity: left alone, nothing created\nhint: delete or rename it, or add the managed-by identity to adopt it",
                desired.kind.plural()
            ));
        }
        return item;
    };
    item.id = Some(existing.id.clone());
    if existing.name != desired.name && unmanaged > 0 {
        // Renaming ours into a stranger's name would leave two of that name: nothing is written.
        item.action = Action::Conflict;
        item.body = None;
        item.note = Some(format!(
            "renaming `{}` (found by its template) to this name would give it the name of {unmanaged} {} without suma's managed-by identity: left as it is\nhint: rename or delete the other one, or choose another name",
            existing.name,
            desired.kind.plural()
        ));
        return item;
    }
    item.changes = field_changes(&desired.body, &existing.body);
    if desired.kind == Kind::Monitor {
        let mut body = desired.body.clone();
        item.changes.extend(reset::resets(&mut body, &existing.body));
        item.body = Some(body);
    }
    item.action = if item.changes.is_empty() {
        item.body = None;
        Action::Unchanged
    } else {
        Action::Update
    };
    let mut notes = Vec::new();
    if existing.name != desired.name {
        notes.push(format!(
            "renamed from `{}` (the same {}, found by its template)",
            existing.name,
            desired.kind.word()
        ));
    }
    if managed.len() > 1 {
        notes.push(format!(
            "{} managed {} share this name; `{}` is kept in line, the others are left alone",
            managed.len(),
            desired.kind.plural(),
            existing.id
        ));
    }
    if unmanaged > 0 {
        notes.push(format!("{unmanaged} unmanaged one(s) of the same name left alone"));
    }
    if !notes.is_empty() {
        item.note = Some(notes.join("; "));
    }
    item
}

/// The plan for every template, then the managed resources no template names (`orphans`, deleted when
/// `prune`).
pub fn plan(desired: &[Desired], remote: &[Remote], prune: bool) -> Vec<PlanItem> {
    let mut items: Vec<PlanItem> = desired
        .iter()
        .map(|d| {
            let by_key = |r: &&Remote| r.managed && r.template.as_deref() == Some(d.key.as_str());
            let candidates: Vec<Remote> = if remote.iter().any(|r| by_key(&r)) {
                // The resource of this template, renamed or not, and strangers under the new name.
                remote
                    .iter()
                    .filter(|r| by_key(r) || (!r.managed && r.name == d.name))
                    .cloned()
                    .collect()
            } else {
                remote.iter().filter(|r| r.name == d.name).cloned().collect()
            };
            plan_one(d, &candidates)
        })
        .collect();
    let mut seen: std::collections::BTreeSet<String> = items.iter().filter_map(|i| i.id.clone()).collect();
    for r in remote.iter().filter(|r| r.managed) {
        if desired.iter().any(|d| d.claims(r)) || !seen.insert(r.id.clone()) {
            continue;
        }
        items.push(PlanItem {
            kind: desired.first().map_or(Kind::Monitor, |d| d.kind),
            name: r.name.clone(),
            action: if prune { Action::Delete } else { Action::Orphan },
            id: Some(r.id.clone()),
            file: None,
            changes: Vec::new(),
            note: Some(if prune {
                "managed by suma, in no template: deleted (--prune)".to_owned()
            } else {
                "managed by suma, in no template: kept\nhint: pass `--prune` to delete it".to_owned()
            }),
            body: None,
        });
    }
    items
}

/// How many items take each action.
pub fn summary(items: &[PlanItem]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for action in [
        Action::Create,
        Action::Update,
        Action::Unchanged,
        Action::Conflict,
        Action::Orphan,
        Action::Delete,
        Action::Adopt,
    ] {
        counts.insert(action.as_str(), items.iter().filter(|i| i.action == action).count());
    }
    counts
}

#[cfg(test)]
mod tests;
