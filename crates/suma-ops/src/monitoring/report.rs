//! What a run of `suma monitors|dashboards|slos diff|apply` shows: the plan, each of its steps with the
//! one-line detail every dry run's plan has, its summary, and the operation that applied it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Action, FieldChange, Kind, PlanItem};

/// What a run of `diff` or `apply` shows.
#[derive(Debug, Serialize)]
pub struct Report {
    pub environment: String,
    pub kind: &'static str,
    pub templates: String,
    pub dry_run: bool,
    /// What differs, and what `apply` does about it: the `plan` of every dry run's JSON.
    #[serde(rename = "plan")]
    pub items: Vec<PlanItem>,
    pub summary: BTreeMap<&'static str, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

impl PlanItem {
    /// The step in one line, as every dry run's plan describes its steps: `update monitor `NAME`
    /// (options.thresholds.critical, priority)`.
    pub fn detail(&self) -> String {
        let mut detail = format!("{} {} `{}`", self.action.as_str(), self.kind.word(), self.name);
        if !self.changes.is_empty() {
            let paths: Vec<&str> = self.changes.iter().map(|c| c.path.as_str()).collect();
            detail.push_str(&format!(" ({})", paths.join(", ")));
        }
        if let Some(note) = &self.note {
            detail.push_str(&format!(": {note}"));
        }
        detail
    }
}

/// The plan's JSON: the fields, and the one-line `detail` every dry run's step has.
impl Serialize for PlanItem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            kind: Kind,
            name: &'a str,
            action: Action,
            detail: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            file: Option<&'a str>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            changes: &'a Vec<FieldChange>,
            #[serde(skip_serializing_if = "Option::is_none")]
            note: Option<&'a str>,
        }
        Shown {
            kind: self.kind,
            name: &self.name,
            action: self.action,
            detail: self.detail(),
            id: self.id.as_deref(),
            file: self.file.as_deref(),
            changes: &self.changes,
            note: self.note.as_deref(),
        }
        .serialize(serializer)
    }
}
