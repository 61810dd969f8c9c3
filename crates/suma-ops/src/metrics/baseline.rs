//! The canary against stable over the same window, scored as Kayenta scores a canary run, pure. Each
//! comparison (the error rate against stable's with an allowance, the per-interval latency, and every
//! configured metric, the last two by a Mann-Whitney U test) passes or finds the canary worse; the
//! score is the weighted share of comparisons that passed, among those with data. At or above `pass`
//! the comparison passes; below `marginal` it fails the analysis; in between it is marginal, which
//! spends no failure budget but is no pass a step may advance on. Every comparison's p-value goes into
//! the journal with the verdict.

use serde::{Deserialize, Serialize};

use super::mann_whitney::mann_whitney_u;
use crate::config::Direction;

/// What the comparison asks of each tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselinePolicy {
    /// The canary's error rate may exceed stable's by this fraction (0.5 = 50% more) ...
    pub max_relative_error_increase: f64,
    /// ... plus this absolute allowance, so a stable at 0% does not make any single error fatal.
    pub error_rate_allowance: f64,
    /// Significance level of the Mann-Whitney U tests.
    pub alpha: f64,
    pub error_rate_weight: f64,
    pub latency_weight: f64,
    pub compared: Vec<ComparedPolicy>,
    /// The score (0-100) at or above which the comparison passes ...
    pub pass: f64,
    /// ... and below which it fails.
    pub marginal: f64,
}

impl BaselinePolicy {
    pub fn of(config: &crate::config::BaselineConfig) -> Self {
        Self {
            max_relative_error_increase: config.max_relative_error_increase,
            error_rate_allowance: config.error_rate_allowance,
            alpha: config.alpha,
            error_rate_weight: config.error_rate_weight,
            latency_weight: config.latency_weight,
            compared: config
                .compare
                .iter()
                .map(|c| ComparedPolicy {
                    name: c.name.clone(),
                    weight: c.weight,
                    direction: c.direction,
                })
                .collect(),
            pass: config.score.pass,
            marginal: config.score.marginal,
        }
    }
}

/// A configured metric's share of the score and which way is bad.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedPolicy {
    pub name: String,
    pub weight: f64,
    pub direction: Direction,
}

/// Canary and stable over the same window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BaselineMeasurements {
    pub canary_error_rate: Option<f64>,
    pub stable_error_rate: Option<f64>,
    /// Per-interval latencies of each side, where the provider answers buckets.
    pub canary_latencies: Vec<f64>,
    pub stable_latencies: Vec<f64>,
    /// Per-interval values of each configured metric, in the policy's order.
    #[serde(default)]
    pub compared: Vec<ComparedSamples>,
}

/// One configured metric's per-interval values on each side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedSamples {
    pub name: String,
    pub canary: Vec<f64>,
    pub stable: Vec<f64>,
}

/// How one comparison came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    /// The canary is higher, and higher is bad.
    High,
    /// The canary is lower, and lower is bad.
    Low,
    /// A side had no data: left out of the score.
    NoData,
}

/// One comparison, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub metric: String,
    pub weight: f64,
    pub outcome: Outcome,
    /// The Mann-Whitney U test's p-value in the bad direction (two-sided for `either`); none for the
    /// error rate, which is judged against an allowance.
    pub p_value: Option<f64>,
    /// The canary's and stable's figure: the error rates, or the medians of the per-interval values.
    pub canary: Option<f64>,
    pub stable: Option<f64>,
}

/// The comparison of one tick: every metric's outcome and the weighted score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineScore {
    /// The weighted share of passing comparisons (0-100); none when no comparison had data.
    pub score: Option<f64>,
    pub pass: f64,
    pub marginal: f64,
    pub comparisons: Vec<Comparison>,
}

/// Where a score falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Pass,
    Marginal,
    Fail,
    /// Nothing to compare.
    Unscored,
}

impl BaselineScore {
    pub fn standing(&self) -> Standing {
        match self.score {
            None => Standing::Unscored,
            Some(s) if s >= self.pass => Standing::Pass,
            Some(s) if s >= self.marginal => Standing::Marginal,
            Some(_) => Standing::Fail,
        }
    }

    /// Why the score is short of a pass: each comparison that found the canary worse, then the score.
    pub fn reasons(&self, alpha: f64) -> Vec<String> {
        let mut reasons: Vec<String> = self
            .comparisons
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::High | Outcome::Low))
            .map(|c| describe(c, alpha))
            .collect();
        if let Some(score) = self.score {
            let bound = if score < self.marginal {
                format!("below the marginal {}", self.marginal)
            } else {
                format!("below the pass {}", self.pass)
            };
            reasons.push(format!("baseline score {score:.0} {bound}"));
        }
        reasons
    }
}

fn describe(c: &Comparison, alpha: f64) -> String {
    let fig = |v: Option<f64>| v.map_or("-".to_owned(), super::analysis::fmt);
    let (canary, stable) = (fig(c.canary), fig(c.stable));
    let way = if c.outcome == Outcome::High { "higher" } else { "lower" };
    match c.p_value {
        None => format!("{} {canary} against stable {stable}", c.metric),
        Some(p) => format!(
            "{} {way} than stable (median {canary} against {stable}, Mann-Whitney U p = {p:.4} < {alpha})",
            c.metric
        ),
    }
}

/// Compares the canary with stable.
pub fn compare(policy: &BaselinePolicy, m: &BaselineMeasurements) -> BaselineScore {
    let mut comparisons = vec![error_rate(policy, m)];
    comparisons.push(samples(
        "latency",
        policy.latency_weight,
        Direction::Increase,
        policy.alpha,
        &m.canary_latencies,
        &m.stable_latencies,
    ));
    for wanted in &policy.compared {
        let found = m.compared.iter().find(|s| s.name == wanted.name);
        let (canary, stable) = found.map_or((&[][..], &[][..]), |s| (&s.canary[..], &s.stable[..]));
        comparisons.push(samples(
            &wanted.name,
            wanted.weight,
            wanted.direction,
            policy.alpha,
            canary,
            stable,
        ));
    }
    let scored = comparisons
        .iter()
        .filter(|c| c.outcome != Outcome::NoData && c.weight > 0.0);
    let (passed, total) = scored.fold((0.0, 0.0), |(passed, total), c| {
        (
            passed + if c.outcome == Outcome::Pass { c.weight } else { 0.0 },
            total + c.weight,
        )
    });
    BaselineScore {
        score: (total > 0.0).then(|| 100.0 * passed / total),
        pass: policy.pass,
        marginal: policy.marginal,
        comparisons,
    }
}

fn error_rate(policy: &BaselinePolicy, m: &BaselineMeasurements) -> Comparison {
    let outcome = match (m.canary_error_rate, m.stable_error_rate) {
        (Some(canary), Some(stable)) => {
            let allowed = stable * (1.0 + policy.max_relative_error_increase) + policy.error_rate_allowance;
            if canary > allowed || !canary.is_finite() {
                Outcome::High
            } else {
                Outcome::Pass
            }
        }
        _ => Outcome::NoData,
    };
    Comparison {
        metric: "error_rate".to_owned(),
        weight: policy.error_rate_weight,
        outcome,
        p_value: None,
        canary: m.canary_error_rate,
        stable: m.stable_error_rate,
    }
}

/// A Mann-Whitney U comparison of per-interval values, in the direction that is bad.
fn samples(name: &str, weight: f64, direction: Direction, alpha: f64, canary: &[f64], stable: &[f64]) -> Comparison {
    let median = |values: &[f64]| {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => None,
            n if n % 2 == 1 => Some(sorted[n / 2]),
            n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
        }
    };
    let canary_values: Vec<f64> = canary.iter().copied().filter(|v| v.is_finite()).collect();
    let stable_values: Vec<f64> = stable.iter().copied().filter(|v| v.is_finite()).collect();
    let (outcome, p_value) = if canary_values.is_empty() || stable_values.is_empty() {
        (Outcome::NoData, None)
    } else {
        let higher = mann_whitney_u(&canary_values, &stable_values).p_value_greater;
        let lower = mann_whitney_u(&stable_values, &canary_values).p_value_greater;
        let (p, bad) = match direction {
            Direction::Increase => (higher, Outcome::High),
            Direction::Decrease => (lower, Outcome::Low),
            Direction::Either => (
                (2.0 * higher.min(lower)).min(1.0),
                if higher <= lower { Outcome::High } else { Outcome::Low },
            ),
        };
        (if p < alpha { bad } else { Outcome::Pass }, Some(p))
    };
    Comparison {
        metric: name.to_owned(),
        weight,
        outcome,
        p_value,
        canary: median(canary),
        stable: median(stable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(compared: Vec<ComparedPolicy>) -> BaselinePolicy {
        BaselinePolicy {
            max_relative_error_increase: 0.5,
            error_rate_allowance: 0.001,
            alpha: 0.05,
            error_rate_weight: 50.0,
            latency_weight: 50.0,
            compared,
            pass: 95.0,
            marginal: 75.0,
        }
    }

    fn around(centre: f64) -> Vec<f64> {
        (0..40).map(|i| centre + (i % 10) as f64).collect()
    }

    fn compared(name: &str, weight: f64, direction: Direction) -> ComparedPolicy {
        ComparedPolicy {
            name: name.into(),
            weight,
            direction,
        }
    }

    fn measured(canary_errors: f64, canary_latency: f64, extra: Vec<(&str, f64, f64)>) -> BaselineMeasurements {
        BaselineMeasurements {
            canary_error_rate: Some(canary_errors),
            stable_error_rate: Some(0.002),
            canary_latencies: around(canary_latency),
            stable_latencies: around(50.0),
            compared: extra
                .into_iter()
                .map(|(name, canary, stable)| ComparedSamples {
                    name: name.into(),
                    canary: around(canary),
                    stable: around(stable),
                })
                .collect(),
        }
    }

    #[test]
    fn the_score_is_the_weighted_share_of_passing_comparisons() {
        let cpu_and_logins = || {
            vec![
                compared("cpu_ms", 20.0, Direction::Increase),
                compared("logins_per_s", 30.0, Direction::Decrease),
            ]
        };
        // (case, policy, measurements, expected score, expected standing)
        type Case = (
            &'static str,
            BaselinePolicy,
            BaselineMeasurements,
            Option<f64>,
            Standing,
        );
        let cases: Vec<Case> = vec![
            (
                "all alike",
                policy(vec![]),
                measured(0.002, 50.0, vec![]),
                Some(100.0),
                Standing::Pass,
            ),
            (
                "errors above stable's allowance: half the weight fails",
                policy(vec![]),
                measured(0.02, 50.0, vec![]),
                Some(50.0),
                Standing::Fail,
            ),
            (
                "slower than stable",
                policy(vec![]),
                measured(0.002, 80.0, vec![]),
                Some(50.0),
                Standing::Fail,
            ),
            (
                "a light metric worse: marginal",
                policy(cpu_and_logins()),
                measured(0.002, 50.0, vec![("cpu_ms", 90.0, 50.0), ("logins_per_s", 50.0, 50.0)]),
                Some(100.0 * 130.0 / 150.0),
                Standing::Marginal,
            ),
            (
                "fewer logins, and lower is bad",
                policy(cpu_and_logins()),
                measured(0.002, 50.0, vec![("cpu_ms", 50.0, 50.0), ("logins_per_s", 10.0, 50.0)]),
                Some(80.0),
                Standing::Marginal,
            ),
            (
                "more logins are no harm when lower is bad",
                policy(cpu_and_logins()),
                measured(0.002, 50.0, vec![("cpu_ms", 50.0, 50.0), ("logins_per_s", 90.0, 50.0)]),
                Some(100.0),
                Standing::Pass,
            ),
            (
                "a side without data is left out of the score",
                policy(cpu_and_logins()),
                measured(0.002, 50.0, vec![("logins_per_s", 50.0, 50.0)]),
                Some(100.0),
                Standing::Pass,
            ),
            (
                "nothing with data: unscored",
                policy(vec![]),
                BaselineMeasurements::default(),
                None,
                Standing::Unscored,
            ),
            (
                "a weight of 0 leaves the latency out",
                BaselinePolicy {
                    latency_weight: 0.0,
                    ..policy(vec![])
                },
                measured(0.002, 80.0, vec![]),
                Some(100.0),
                Standing::Pass,
            ),
            (
                "either direction: a lower canary fails too",
                policy(vec![compared("pool_in_use", 50.0, Direction::Either)]),
                measured(0.002, 50.0, vec![("pool_in_use", 10.0, 50.0)]),
                Some(100.0 * 100.0 / 150.0),
                Standing::Fail,
            ),
        ];
        for (name, policy, measurements, score, standing) in cases {
            let scored = compare(&policy, &measurements);
            assert_eq!(
                scored.score.map(|s| (s * 1000.0).round()),
                score.map(|s| (s * 1000.0).round()),
                "{name}: {scored:?}"
            );
            assert_eq!(scored.standing(), standing, "{name}: {scored:?}");
        }
    }

    #[test]
    fn every_comparison_keeps_its_p_value_and_the_reasons_name_the_worse_ones() {
        let policy = policy(vec![compared("cpu_ms", 20.0, Direction::Increase)]);
        let scored = compare(&policy, &measured(0.002, 80.0, vec![("cpu_ms", 50.0, 50.0)]));
        let by_name = |n: &str| scored.comparisons.iter().find(|c| c.metric == n).unwrap();
        assert_eq!(by_name("error_rate").p_value, None);
        assert_eq!(by_name("error_rate").outcome, Outcome::Pass);
        let latency = by_name("latency");
        assert_eq!(latency.outcome, Outcome::High);
        assert!(latency.p_value.unwrap() < 0.001, "{latency:?}");
        assert_eq!((latency.canary, latency.stable), (Some(84.5), Some(54.5)));
        let cpu = by_name("cpu_ms");
        assert_eq!(cpu.outcome, Outcome::Pass);
        assert!(cpu.p_value.unwrap() > 0.4, "{cpu:?}");
        let reasons = scored.reasons(0.05);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons[0].starts_with("latency higher than stable (median 84.5 against 54.5, Mann-Whitney U p = 0.0000"),
            "{reasons:?}"
        );
        assert_eq!(reasons[1], "baseline score 58 below the marginal 75");
        // The journal keeps it whole.
        let back: BaselineScore = serde_json::from_value(serde_json::to_value(&scored).unwrap()).unwrap();
        assert_eq!(back, scored);
    }
}
