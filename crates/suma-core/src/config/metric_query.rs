//! How a canary metric's query is read: the kind says how the provider's answer over the analysis window
//! becomes the one number a threshold judges. A plain string is a `value`; `samples` is a `count`.
//!
//! Why kinds: Datadog answers a series of buckets, and the mean of per-bucket values is wrong for all but
//! gauges (a request count is the buckets' sum, an error rate is the summed errors over the summed
//! requests, not the mean of each bucket's ratio); Prometheus answers one value per series, and adding
//! several series together is right for a count and wrong for a ratio or a percentile.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A metric query with the way its answer is read.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum MetricQuery {
    /// A query that answers one value for the window (a PromQL expression with its own aggregation; for
    /// Datadog, the mean of the window's points).
    Plain(String),
    Kind(MetricQueryKind),
}

/// A query of a named kind: `{count: QUERY}`, `{ratio: {numerator: QUERY, denominator: QUERY}}`,
/// `{percentile: QUERY}` or `{value: QUERY}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum MetricQueryKind {
    /// One value for the window; a query answering several series is refused (only the query knows how
    /// to aggregate them).
    Value(String),
    /// Every series' points over the window, summed: requests, errors.
    Count(String),
    /// The numerator's count over the denominator's, each summed over the window; no denominator is no
    /// data, no numerator is 0.
    Ratio { numerator: String, denominator: String },
    /// The worst (highest) point of the window: a window's percentile cannot be rebuilt from per-bucket
    /// percentiles, and the worst bucket is the reading that never hides a regression.
    Percentile(String),
}

impl MetricQuery {
    /// The kind, a plain string read as `plain_as`.
    pub fn kind(&self, plain_as: fn(String) -> MetricQueryKind) -> MetricQueryKind {
        match self {
            Self::Plain(query) => plain_as(query.clone()),
            Self::Kind(kind) => kind.clone(),
        }
    }
}

impl MetricQueryKind {
    /// The same kind with `f` applied to each query (template substitution).
    pub fn map(&self, f: impl Fn(&str) -> String) -> Self {
        match self {
            Self::Value(q) => Self::Value(f(q)),
            Self::Count(q) => Self::Count(f(q)),
            Self::Percentile(q) => Self::Percentile(f(q)),
            Self::Ratio { numerator, denominator } => Self::Ratio {
                numerator: f(numerator),
                denominator: f(denominator),
            },
        }
    }

    /// The query as one line, for plans and reports (`count(...)`, `(numerator) / (denominator)`).
    pub fn describe(&self) -> String {
        match self {
            Self::Value(q) => q.clone(),
            Self::Count(q) => format!("count of {q}"),
            Self::Percentile(q) => format!("worst point of {q}"),
            Self::Ratio { numerator, denominator } => format!("({numerator}) / ({denominator}), each counted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_string_and_each_kind_parse() {
        let parsed: Vec<MetricQuery> = serde_norway::from_str(
            "- 'sum(x)'\n- { count: 'sum:hits{*}.as_count()' }\n- { ratio: { numerator: e, denominator: h } }\n- { percentile: 'p95:t{*}' }\n- { value: v }",
        )
        .unwrap();
        assert_eq!(
            parsed[0].kind(MetricQueryKind::Value),
            MetricQueryKind::Value("sum(x)".into())
        );
        assert_eq!(
            parsed[0].kind(MetricQueryKind::Count),
            MetricQueryKind::Count("sum(x)".into())
        );
        assert_eq!(
            parsed[2].kind(MetricQueryKind::Value),
            MetricQueryKind::Ratio {
                numerator: "e".into(),
                denominator: "h".into()
            }
        );
        assert_eq!(
            parsed[3].kind(MetricQueryKind::Value),
            MetricQueryKind::Percentile("p95:t{*}".into())
        );
        assert!(serde_norway::from_str::<MetricQuery>("{ median: x }").is_err());
    }
}
