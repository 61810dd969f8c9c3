//! The canary's policy: its traffic steps and the analysis that gates them (thresholds, failure budget,
//! queries, and the Kayenta-style comparison with stable). An environment writes the analysis in place
//! or names a reusable template of the file's `analysis_templates`; `resolve_analysis_templates` merges
//! the two after parsing, the environment's own keys winning.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MetricQuery;

/// What to do when the provider returns no data for a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoDataPolicy {
    Fail,
    Inconclusive,
}

/// Progressive traffic shifting and its analysis thresholds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryPolicy {
    /// Canary weights in percent, strictly increasing, each held for its duration; 100 is the promotion.
    pub steps: Vec<CanaryStep>,
    /// An analysis template (top-level `analysis_templates`) whose settings this canary takes; a key set
    /// here as well wins over the template's.
    pub analysis: Option<String>,
    /// Time between two analyses.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub interval: Duration,
    /// Highest acceptable canary error rate, as a fraction (0.005 = 0.5%).
    pub max_error_rate: f64,
    /// Highest acceptable canary p95 latency in milliseconds.
    pub max_p95_latency_ms: f64,
    /// Failed analyses tolerated before rolling back, over the whole deployment (not per step).
    pub failure_limit: u32,
    /// Judged analyses a step needs before it may advance; it advances only when the last one passed.
    pub min_analyses: u32,
    /// A metric at or above this multiple of its maximum rolls back at once, without spending the
    /// failure budget (10 = ten times the limit); 0 turns fail-fast off.
    pub fail_fast_factor: f64,
    /// Consecutive metric-provider errors tolerated before rolling back.
    pub consecutive_error_limit: u32,
    /// Requests a window needs before its measurements count.
    pub min_samples: u64,
    pub no_data: NoDataPolicy,
    /// The range each query looks back over (`{{window}}` in templates).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub window: Duration,
    /// Query templates replacing the provider's defaults; `{{env}}`, `{{service}}`, `{{version}}`,
    /// `{{deployment}}` and `{{window}}` are substituted.
    pub queries: CanaryQueries,
    /// More metrics that must stay at or below their maximum.
    pub extra_metrics: Vec<ExtraMetric>,
    /// Compare the canary with stable over the same window, so a bad canary is caught even when the
    /// absolute thresholds are loose.
    pub baseline: Option<BaselineConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryQueries {
    /// A plain string is a `value`.
    pub error_rate: Option<MetricQuery>,
    /// A plain string is a `value`.
    pub p95_latency_ms: Option<MetricQuery>,
    /// Request count of the window (compared with `min_samples`); a plain string is a `count`.
    pub samples: Option<MetricQuery>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraMetric {
    pub name: String,
    /// A plain string is a `value`.
    pub query: MetricQuery,
    pub max: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig {
    /// The canary's error rate may exceed stable's by this fraction (0.5 = 50% more) ...
    #[serde(default = "default_relative_increase")]
    pub max_relative_error_increase: f64,
    /// ... plus this absolute allowance.
    #[serde(default = "default_allowance")]
    pub error_rate_allowance: f64,
    /// Significance level of the Mann-Whitney U tests (latency, and each compared metric).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// The error-rate comparison's share of the score.
    #[serde(default = "default_weight")]
    pub error_rate_weight: f64,
    /// The latency comparison's share of the score (where the provider returns per-interval buckets).
    #[serde(default = "default_weight")]
    pub latency_weight: f64,
    /// More metrics compared between canary and stable, each from per-interval samples of one side.
    #[serde(default)]
    pub compare: Vec<ComparedMetric>,
    /// Where the weighted score (0-100) passes, and below which it fails; in between it is marginal:
    /// not a failure, but not a pass a step may advance on.
    #[serde(default)]
    pub score: BaselineScoreThresholds,
}

/// A metric compared between canary and stable, Kayenta-style: the query answers one side's
/// per-interval values over the window (`{{deployment}}` and `{{version}}` select the side), and a
/// Mann-Whitney U test at `alpha` says whether the canary's differ in the bad direction.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComparedMetric {
    pub name: String,
    /// A PromQL range (subquery) or Datadog query template answering points over the window.
    pub query: String,
    /// Its share of the score.
    #[serde(default = "default_weight")]
    pub weight: f64,
    #[serde(default)]
    pub direction: Direction,
}

/// Which change of a compared metric is bad.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Higher on the canary is bad (latency, errors, CPU).
    #[default]
    Increase,
    /// Lower on the canary is bad (successful logins, cache hits).
    Decrease,
    /// Any difference is bad.
    Either,
}

/// The baseline score's thresholds, as Kayenta's `pass` and `marginal`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineScoreThresholds {
    pub pass: f64,
    pub marginal: f64,
}

impl Default for BaselineScoreThresholds {
    fn default() -> Self {
        Self {
            pass: 95.0,
            marginal: 75.0,
        }
    }
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            max_relative_error_increase: default_relative_increase(),
            error_rate_allowance: default_allowance(),
            alpha: default_alpha(),
            error_rate_weight: default_weight(),
            latency_weight: default_weight(),
            compare: Vec::new(),
            score: BaselineScoreThresholds::default(),
        }
    }
}

fn default_weight() -> f64 {
    50.0
}

fn default_relative_increase() -> f64 {
    0.5
}

fn default_allowance() -> f64 {
    0.001
}

fn default_alpha() -> f64 {
    0.05
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        Self {
            analysis: None,
            steps: vec![
                CanaryStep {
                    weight: 10,
                    duration: Duration::from_secs(300),
                },
                CanaryStep {
                    weight: 50,
                    duration: Duration::from_secs(600),
                },
            ],
            interval: Duration::from_secs(60),
            max_error_rate: 0.005,
            max_p95_latency_ms: 200.0,
            failure_limit: 1,
            min_analyses: 1,
            fail_fast_factor: 10.0,
            consecutive_error_limit: 3,
            min_samples: 50,
            no_data: NoDataPolicy::Inconclusive,
            window: Duration::from_secs(300),
            queries: CanaryQueries::default(),
            extra_metrics: Vec::new(),
            baseline: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryStep {
    /// Percent of traffic sent to the canary.
    pub weight: u8,
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub duration: Duration,
}

impl CanaryPolicy {
    /// The whole planned duration of the progressive steps.
    pub fn total_duration(&self) -> Duration {
        self.steps.iter().map(|s| s.duration).sum()
    }
}

/// Keys of a canary policy that belong to an environment's rollout, not to its analysis: a template may
/// not set them.
const ROLLOUT_KEYS: [&str; 2] = ["steps", "analysis"];

/// Merges each environment's named analysis template into its canary policy: every key the environment's
/// `canary:` does not write itself comes from the template. `raw` is the file as plain YAML, which tells
/// which keys were written (a parsed policy cannot tell a default from a value). Returns problems as
/// (key path, message, hint), like the other checks after parsing.
pub(super) fn resolve_analysis_templates(
    config: &mut super::ConfigFile,
    raw: &serde_norway::Value,
) -> Vec<(String, String, Option<String>)> {
    let mut problems = Vec::new();
    let keys_of = |value: &serde_norway::Value| -> BTreeSet<String> {
        value
            .as_mapping()
            .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    for name in config.analysis_templates.keys() {
        let written = keys_of(&raw["analysis_templates"][name.as_str()]);
        for key in ROLLOUT_KEYS.iter().filter(|k| written.contains(**k)) {
            problems.push((
                format!("analysis_templates.{name}.{key}"),
                format!("an analysis template holds the analysis only, not `{key}`"),
                Some(format!("write `{key}` in each environment's `canary:`")),
            ));
        }
    }
    let names = config
        .analysis_templates
        .keys()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    for (env_name, env) in &mut config.environments {
        let Some(template_name) = env.canary.analysis.clone() else {
            continue;
        };
        let Some(template) = config.analysis_templates.get(&template_name) else {
            problems.push((
                format!("environments.{env_name}.canary.analysis"),
                format!("names analysis template `{template_name}`, which is not defined"),
                Some(if names.is_empty() {
                    "define it under the top-level `analysis_templates:`".to_owned()
                } else {
                    format!("use one of {names}, or define it under `analysis_templates:`")
                }),
            ));
            continue;
        };
        let written = keys_of(&raw["environments"][env_name.as_str()]["canary"]);
        let merged = merge_unwritten(&env.canary, template, &written);
        env.canary = merged;
    }
    problems
}

/// `policy` with every analysis key it does not write taken from `template`.
fn merge_unwritten(policy: &CanaryPolicy, template: &CanaryPolicy, written: &BTreeSet<String>) -> CanaryPolicy {
    let to_map = |p: &CanaryPolicy| match serde_json::to_value(p).expect("a canary policy serializes") {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("a canary policy is a map"),
    };
    let mut merged = to_map(policy);
    for (key, value) in to_map(template) {
        if !written.contains(&key) && !ROLLOUT_KEYS.contains(&key.as_str()) {
            merged.insert(key, value);
        }
    }
    serde_json::from_value(serde_json::Value::Object(merged)).expect("a merged canary policy reads back")
}

/// The analysis templates of a file, by name.
pub type AnalysisTemplates = BTreeMap<String, CanaryPolicy>;

impl BaselineConfig {
    /// What is wrong with the comparison's settings; `at` turns a key under `canary.baseline` into its
    /// full path.
    pub(super) fn problems(&self, at: &dyn Fn(&str) -> String) -> Vec<(String, String, Option<String>)> {
        let mut problems = Vec::new();
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            problems.push((
                at("alpha"),
                format!("{} is not a significance level", self.alpha),
                Some("use a probability between 0 and 1, e.g. 0.05".to_owned()),
            ));
        }
        let score = self.score;
        if !(0.0..=100.0).contains(&score.marginal)
            || !(0.0..=100.0).contains(&score.pass)
            || score.marginal > score.pass
        {
            problems.push((
                at("score"),
                format!(
                    "pass {} and marginal {} are not 0 <= marginal <= pass <= 100",
                    score.pass, score.marginal
                ),
                Some("the score is a percentage: e.g. `score: { pass: 95, marginal: 75 }`".to_owned()),
            ));
        }
        let weights = [
            ("error_rate_weight", self.error_rate_weight),
            ("latency_weight", self.latency_weight),
        ];
        let compared = self.compare.iter().enumerate().map(|(i, c)| (i, c.weight));
        for (key, weight) in weights
            .iter()
            .map(|(k, w)| ((*k).to_owned(), *w))
            .chain(compared.map(|(i, w)| (format!("compare.{i}.weight"), w)))
        {
            if !(weight.is_finite() && weight >= 0.0) {
                problems.push((
                    at(&key),
                    format!("{weight} is not a weight"),
                    Some("use 0 or more; 0 leaves the comparison out of the score".to_owned()),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, metric) in self.compare.iter().enumerate() {
            if ["error_rate", "latency"].contains(&metric.name.as_str()) || !seen.insert(metric.name.as_str()) {
                problems.push((
                    at(&format!("compare.{i}.name")),
                    format!("`{}` is already a compared metric", metric.name),
                    Some("give each compared metric its own name".to_owned()),
                ));
            }
            if !metric.query.contains("{{deployment}}") && !metric.query.contains("{{version}}") {
                problems.push((
                    at(&format!("compare.{i}.query")),
                    "does not select a side: canary and stable would read the same numbers".to_owned(),
                    Some("filter it by `{{deployment}}` or `{{version}}`".to_owned()),
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse_str, ConfigError};
    use super::*;

    const EXAMPLE: &str = include_str!("../../../../deploy/suma.yaml");

    fn parse(text: &str) -> Result<super::super::ConfigFile, Vec<ConfigError>> {
        parse_str(text, Path::new("suma.yaml"))
    }

    #[test]
    fn an_environment_takes_its_templates_settings_and_keeps_its_own() {
        let config = parse(EXAMPLE).expect("the example is valid");
        let production = &config.environments["production"].canary;
        let template = &config.analysis_templates["standard"];
        assert_eq!(production.analysis.as_deref(), Some("standard"));
        // Written in the environment: its own.
        assert_eq!(production.max_p95_latency_ms, 150.0);
        assert_eq!(production.steps.len(), 2);
        // Not written there: the template's, the baseline whole.
        assert_eq!(production.max_error_rate, template.max_error_rate);
        assert_eq!(production.interval, Duration::from_secs(60));
        let baseline = production.baseline.as_ref().expect("from the template");
        assert_eq!(baseline.latency_weight, 30.0);
        assert_eq!(baseline.compare[0].name, "login_failure_ratio");
        assert_eq!((baseline.score.pass, baseline.score.marginal), (95.0, 75.0));
        // An environment that names no template keeps its defaults.
        assert!(config.environments["staging"].canary.baseline.is_none());
    }

    fn problems(edit: impl Fn(&str) -> String) -> String {
        let text = edit(EXAMPLE);
        let errors = parse(&text).expect_err("refused");
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn a_wrong_template_is_refused_where_it_is_written() {
        let unknown = problems(|t| t.replacen("analysis: standard", "analysis: strict", 1));
        assert!(
            unknown.contains(
                "`environments.production.canary.analysis`: names analysis template `strict`, which is not defined"
            ),
            "{unknown}"
        );
        assert!(unknown.contains("use one of `standard`"), "{unknown}");

        let with_steps = problems(|t| {
            t.replacen(
                "  standard:\n    interval: 60s\n",
                "  standard:\n    steps: [{ weight: 10, duration: 5m }]\n    interval: 60s\n",
                1,
            )
        });
        assert!(
            with_steps.contains("`analysis_templates.standard.steps`: an analysis template holds the analysis only"),
            "{with_steps}"
        );
        let line = EXAMPLE.lines().position(|l| l == "  standard:").unwrap() + 2;
        assert!(
            with_steps.contains(&format!("suma.yaml:{line}:5:")),
            "located: {with_steps}"
        );

        let scores = problems(|t| {
            t.replacen(
                "score: { pass: 95, marginal: 75 }",
                "score: { pass: 70, marginal: 75 }",
                1,
            )
        });
        assert!(
            scores.contains("`environments.production.canary.baseline.score`: pass 70 and marginal 75"),
            "{scores}"
        );
        let sideless = problems(|t| t.replace("deployment=\"{{deployment}}\"", "job=\"auth\""));
        assert!(
            sideless.contains("canary.baseline.compare.0.query`: does not select a side"),
            "{sideless}"
        );
    }
}
