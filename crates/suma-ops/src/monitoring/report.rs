//! What a run of `suma monitors|dashboards diff|apply` shows: the plan, its summary, and the operation
//! that applied it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::PlanItem;

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
