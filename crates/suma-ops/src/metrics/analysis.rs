//! Canary analysis, pure: from one tick's measurements and the policy, decide whether the canary is
//! healthy, and from the run so far whether to continue, pause or roll back. No I/O here; the deploy
//! state machine feeds it what the metric provider returned.

use serde::{Deserialize, Serialize};

use super::baseline::{compare, Standing};
pub use super::baseline::{BaselineMeasurements, BaselinePolicy, BaselineScore};

/// What the policy asks of each tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisPolicy {
    /// Failed ticks tolerated; one more rolls back.
    pub failure_limit: u32,
    /// Provider errors in a row tolerated; one more rolls back.
    pub consecutive_error_limit: u32,
    /// Requests a window needs for its measurements to count.
    pub min_samples: u64,
    /// A tick without data (or with too few samples) fails, or pauses for a person to decide.
    pub no_data_fails: bool,
    pub baseline: Option<BaselinePolicy>,
    /// Judged analyses (pass or fail) a step needs before it may advance.
    pub min_analyses: u32,
    /// A metric at or above this multiple of its maximum rolls back at once, whatever the budget left;
    /// 0 turns it off.
    pub fail_fast_factor: f64,
}

impl AnalysisPolicy {
    /// The analysis parameters of a configured canary policy.
    pub fn of(policy: &crate::config::CanaryPolicy) -> Self {
        Self {
            failure_limit: policy.failure_limit,
            consecutive_error_limit: policy.consecutive_error_limit,
            min_samples: policy.min_samples,
            no_data_fails: policy.no_data == crate::config::NoDataPolicy::Fail,
            baseline: policy.baseline.as_ref().map(BaselinePolicy::of),
            min_analyses: policy.min_analyses,
            fail_fast_factor: policy.fail_fast_factor,
        }
    }
}

/// One metric's measurement against its bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub metric: String,
    /// The rendered query, for the journal and `--dry-run`.
    pub query: String,
    /// `None`: the provider returned no data.
    pub value: Option<f64>,
    pub max: f64,
}

impl Check {
    pub fn passed(&self) -> Option<bool> {
        self.value.map(|v| v.is_finite() && v <= self.max)
    }
}

/// Everything measured in one tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Measurements {
    /// The provider answered.
    Answered {
        samples: Option<f64>,
        checks: Vec<Check>,
        baseline: Option<BaselineMeasurements>,
    },
    /// The provider asked us to slow down; not the canary's fault, not an error.
    RateLimited { retry_after_secs: u64 },
    /// The provider failed (network, 5xx, bad query).
    ProviderError { message: String },
}

/// The verdict on one tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum TickVerdict {
    Pass,
    Fail {
        reasons: Vec<String>,
        /// A metric far beyond its bound (the policy's fail-fast factor): no budget is spent on it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fail_fast: bool,
    },
    /// The thresholds held, but the comparison with stable scored between its marginal and pass
    /// marks: no failure budget is spent, and no step advances on it.
    Marginal {
        score: f64,
        reasons: Vec<String>,
    },
    /// Too little data to judge.
    NoData {
        reason: String,
    },
    RateLimited {
        retry_after_secs: u64,
    },
    ProviderError {
        message: String,
    },
}

/// What the run does next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    Continue,
    /// Stop shifting and ask a person (inconclusive data).
    Pause {
        reason: String,
    },
    Rollback {
        reason: String,
    },
}

/// Counters carried from tick to tick, over the whole operation: the failure budget does not restart
/// with a step or a resume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisState {
    pub ticks: u32,
    pub failures: u32,
    pub consecutive_errors: u32,
}

impl AnalysisState {
    /// The counters after the verdicts already journaled, oldest first (every step, every attempt), so
    /// a resumed or later step spends what is left of the budget rather than a fresh one.
    pub fn replay<'a>(policy: &AnalysisPolicy, verdicts: impl IntoIterator<Item = &'a TickVerdict>) -> Self {
        let mut state = Self::default();
        for verdict in verdicts {
            decide(policy, &mut state, verdict);
        }
        state
    }
}

/// Judges one tick.
pub fn judge(policy: &AnalysisPolicy, measurements: &Measurements) -> TickVerdict {
    judge_scored(policy, measurements).0
}

/// Judges one tick, with the comparison with stable that went into the verdict (for the journal).
pub fn judge_scored(policy: &AnalysisPolicy, measurements: &Measurements) -> (TickVerdict, Option<BaselineScore>) {
    let (samples, checks, baseline) = match measurements {
        Measurements::RateLimited { retry_after_secs } => {
            return (
                TickVerdict::RateLimited {
                    retry_after_secs: *retry_after_secs,
                },
                None,
            )
        }
        Measurements::ProviderError { message } => {
            return (
                TickVerdict::ProviderError {
                    message: message.clone(),
                },
                None,
            )
        }
        Measurements::Answered {
            samples,
            checks,
            baseline,
        } => (samples, checks, baseline),
    };
    match samples {
        None => {
            return (
                TickVerdict::NoData {
                    reason: "no request count for the canary".to_owned(),
                },
                None,
            )
        }
        Some(n) if *n < policy.min_samples as f64 => {
            return (
                TickVerdict::NoData {
                    reason: format!("{n:.0} requests, fewer than the {} required", policy.min_samples),
                },
                None,
            )
        }
        Some(_) => {}
    }
    // Every metric is looked at: one without data must not hide another that fails.
    let mut reasons = Vec::new();
    let mut missing = Vec::new();
    let mut fail_fast = false;
    for check in checks {
        match check.value {
            None => missing.push(format!("`{}`", check.metric)),
            Some(v) if check.passed() == Some(false) => {
                let far = policy.fail_fast_factor > 0.0
                    && check.max > 0.0
                    && v.is_finite()
                    && v >= check.max * policy.fail_fast_factor;
                fail_fast |= far;
                reasons.push(format!(
                    "{} = {} above {}{}",
                    check.metric,
                    fmt(v),
                    fmt(check.max),
                    if far {
                        format!(" (fail-fast: {}x the maximum or more)", policy.fail_fast_factor)
                    } else {
                        String::new()
                    }
                ))
            }
            Some(_) => {}
        }
    }
    let scored = policy
        .baseline
        .as_ref()
        .zip(baseline.as_ref())
        .map(|(p, b)| (p, compare(p, b)));
    let mut marginal = None;
    if let Some((baseline_policy, score)) = &scored {
        match score.standing() {
            Standing::Fail => reasons.extend(score.reasons(baseline_policy.alpha)),
            Standing::Marginal => marginal = score.score.map(|s| (s, score.reasons(baseline_policy.alpha))),
            Standing::Pass | Standing::Unscored => {}
        }
    }
    let verdict = if !reasons.is_empty() {
        TickVerdict::Fail { reasons, fail_fast }
    } else if !missing.is_empty() {
        TickVerdict::NoData {
            reason: format!("no data for {}", missing.join(", ")),
        }
    } else if let Some((score, reasons)) = marginal {
        TickVerdict::Marginal { score, reasons }
    } else {
        TickVerdict::Pass
    };
    (verdict, scored.map(|(_, score)| score))
}

/// A tick's verdict once the gating monitors (`auto-rollback:true`) have been read: any of them alerting
/// fails the tick at once (fail-fast), whatever the metrics said; the monitor is the operator's own
/// definition of "this release is hurting users".
pub fn with_alerting_monitors(verdict: TickVerdict, alerting: &[String]) -> TickVerdict {
    if alerting.is_empty() {
        return verdict;
    }
    let mut reasons = match verdict {
        TickVerdict::Fail { reasons, .. } => reasons,
        _ => Vec::new(),
    };
    reasons.extend(alerting.iter().map(|m| format!("monitor {m} is alerting")));
    TickVerdict::Fail {
        reasons,
        fail_fast: true,
    }
}

/// Updates the counters with a tick's verdict and decides what happens next.
pub fn decide(policy: &AnalysisPolicy, state: &mut AnalysisState, verdict: &TickVerdict) -> Decision {
    state.ticks += 1;
    match verdict {
        TickVerdict::Pass => {
            state.consecutive_errors = 0;
            Decision::Continue
        }
        TickVerdict::RateLimited { .. } => Decision::Continue,
        TickVerdict::Marginal { .. } => {
            state.consecutive_errors = 0;
            Decision::Continue
        }
        TickVerdict::ProviderError { message } => {
            state.consecutive_errors += 1;
            if state.consecutive_errors > policy.consecutive_error_limit {
                Decision::Rollback {
                    reason: format!(
                        "the metric provider failed {} times in a row: {message}",
                        state.consecutive_errors
                    ),
                }
            } else {
                Decision::Continue
            }
        }
        TickVerdict::NoData { reason } => {
            state.consecutive_errors = 0;
            if policy.no_data_fails {
                count_failure(policy, state, reason)
            } else {
                Decision::Pause {
                    reason: format!("inconclusive: {reason}"),
                }
            }
        }
        TickVerdict::Fail { reasons, fail_fast } => {
            state.consecutive_errors = 0;
            let decision = count_failure(policy, state, &reasons.join("; "));
            match decision {
                Decision::Continue if *fail_fast => Decision::Rollback {
                    reason: format!("{} (fail-fast)", reasons.join("; ")),
                },
                other => other,
            }
        }
    }
}

fn count_failure(policy: &AnalysisPolicy, state: &mut AnalysisState, reason: &str) -> Decision {
    state.failures += 1;
    if state.failures > policy.failure_limit {
        Decision::Rollback {
            reason: format!(
                "{reason} ({} failed analyses, {} tolerated)",
                state.failures, policy.failure_limit
            ),
        }
    } else {
        Decision::Continue
    }
}

pub(super) fn fmt(v: f64) -> String {
    if v != 0.0 && v.abs() < 1.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AnalysisPolicy {
        AnalysisPolicy {
            failure_limit: 1,
            consecutive_error_limit: 2,
            min_samples: 50,
            no_data_fails: true,
            baseline: None,
            min_analyses: 1,
            fail_fast_factor: 10.0,
        }
    }

    fn answered(samples: f64, error_rate: Option<f64>, p95: Option<f64>) -> Measurements {
        Measurements::Answered {
            samples: Some(samples),
            checks: vec![
                Check {
                    metric: "error_rate".into(),
                    query: "q1".into(),
                    value: error_rate,
                    max: 0.005,
                },
                Check {
                    metric: "p95_latency_ms".into(),
                    query: "q2".into(),
                    value: p95,
                    max: 200.0,
                },
            ],
            baseline: None,
        }
    }

    /// A named case: measurements and what the verdict must satisfy.
    type Case = (&'static str, Measurements, fn(&TickVerdict) -> bool);

    #[test]
    fn judges_thresholds_samples_and_missing_data() {
        let cases: &[Case] = &[
            ("healthy", answered(100.0, Some(0.001), Some(80.0)), |v| {
                *v == TickVerdict::Pass
            }),
            ("at the bound passes", answered(100.0, Some(0.005), Some(200.0)), |v| {
                *v == TickVerdict::Pass
            }),
            (
                "errors",
                answered(100.0, Some(0.05), Some(80.0)),
                |v| matches!(v, TickVerdict::Fail { reasons, .. } if reasons.len() == 1 && reasons[0].starts_with("error_rate = 0.0500")),
            ),
            (
                "slow",
                answered(100.0, Some(0.0), Some(350.0)),
                |v| matches!(v, TickVerdict::Fail { reasons, .. } if reasons[0].contains("p95_latency_ms = 350.0 above 200.0")),
            ),
            (
                "both",
                answered(100.0, Some(0.2), Some(900.0)),
                |v| matches!(v, TickVerdict::Fail { reasons, .. } if reasons.len() == 2),
            ),
            ("NaN fails", answered(100.0, Some(f64::NAN), Some(10.0)), |v| {
                matches!(v, TickVerdict::Fail { .. })
            }),
            (
                "too few samples",
                answered(10.0, Some(0.0), Some(10.0)),
                |v| matches!(v, TickVerdict::NoData { reason } if reason.contains("fewer than the 50")),
            ),
            (
                "no value",
                answered(100.0, None, Some(10.0)),
                |v| matches!(v, TickVerdict::NoData { reason } if reason.contains("error_rate")),
            ),
            (
                "no samples",
                Measurements::Answered {
                    samples: None,
                    checks: vec![],
                    baseline: None,
                },
                |v| matches!(v, TickVerdict::NoData { .. }),
            ),
            (
                "a failing metric is not hidden by a missing one",
                answered(100.0, Some(0.02), None),
                |v| matches!(v, TickVerdict::Fail { reasons, fail_fast: false } if reasons.len() == 1 && reasons[0].starts_with("error_rate")),
            ),
            (
                "every missing metric is named",
                answered(100.0, None, None),
                |v| matches!(v, TickVerdict::NoData { reason } if reason == "no data for `error_rate`, `p95_latency_ms`"),
            ),
            (
                "ten times the maximum fails fast",
                answered(100.0, Some(0.05), Some(80.0)),
                |v| matches!(v, TickVerdict::Fail { reasons, fail_fast: true } if reasons[0].contains("fail-fast")),
            ),
            (
                "just under ten times spends the budget",
                answered(100.0, Some(0.0499), Some(80.0)),
                |v| matches!(v, TickVerdict::Fail { fail_fast: false, .. }),
            ),
            (
                "a NaN fails without failing fast",
                answered(100.0, Some(f64::NAN), Some(80.0)),
                |v| matches!(v, TickVerdict::Fail { fail_fast: false, .. }),
            ),
            ("429", Measurements::RateLimited { retry_after_secs: 7 }, |v| {
                *v == TickVerdict::RateLimited { retry_after_secs: 7 }
            }),
            (
                "provider down",
                Measurements::ProviderError { message: "503".into() },
                |v| matches!(v, TickVerdict::ProviderError { .. }),
            ),
        ];
        for (name, measurements, expected) in cases {
            let verdict = judge(&policy(), measurements);
            assert!(expected(&verdict), "{name}: {verdict:?}");
        }
    }

    #[test]
    fn failure_budget_tolerates_then_rolls_back() {
        let p = policy();
        let mut s = AnalysisState::default();
        let fail = TickVerdict::Fail {
            reasons: vec!["error_rate = 0.05 above 0.005".into()],
            fail_fast: false,
        };
        assert_eq!(
            decide(&p, &mut s, &fail),
            Decision::Continue,
            "first failure is within the budget"
        );
        assert_eq!(decide(&p, &mut s, &TickVerdict::Pass), Decision::Continue);
        assert!(
            matches!(decide(&p, &mut s, &fail), Decision::Rollback { reason } if reason.contains("2 failed analyses, 1 tolerated"))
        );
        let strict = AnalysisPolicy {
            failure_limit: 0,
            ..policy()
        };
        assert!(matches!(
            decide(&strict, &mut AnalysisState::default(), &fail),
            Decision::Rollback { .. }
        ));
    }

    #[test]
    fn a_fail_fast_verdict_rolls_back_with_budget_left() {
        let p = AnalysisPolicy {
            failure_limit: 5,
            ..policy()
        };
        let far = TickVerdict::Fail {
            reasons: vec!["error_rate = 0.5 above 0.005".into()],
            fail_fast: true,
        };
        assert!(
            matches!(decide(&p, &mut AnalysisState::default(), &far), Decision::Rollback { reason } if reason.ends_with("(fail-fast)"))
        );
        let off = AnalysisPolicy {
            fail_fast_factor: 0.0,
            ..p
        };
        assert!(matches!(
            judge(&off, &answered(100.0, Some(0.5), Some(80.0))),
            TickVerdict::Fail { fail_fast: false, .. }
        ));
    }

    #[test]
    fn an_alerting_gate_monitor_fails_the_tick_fast_whatever_the_metrics_say() {
        let alerting = ["`canary auto-rollback` (#1002)".to_owned()];
        let cases = [
            TickVerdict::Pass,
            TickVerdict::NoData {
                reason: "no data for `error_rate`".into(),
            },
            TickVerdict::RateLimited { retry_after_secs: 3 },
            TickVerdict::Fail {
                reasons: vec!["error_rate = 0.02 above 0.005".into()],
                fail_fast: false,
            },
        ];
        for verdict in cases {
            let judged = with_alerting_monitors(verdict.clone(), &alerting);
            assert!(
                matches!(&judged, TickVerdict::Fail { reasons, fail_fast: true } if reasons.last().unwrap() == "monitor `canary auto-rollback` (#1002) is alerting"),
                "{verdict:?} -> {judged:?}"
            );
            assert!(matches!(
                decide(&policy(), &mut AnalysisState::default(), &judged),
                Decision::Rollback { .. }
            ));
            assert_eq!(
                with_alerting_monitors(verdict.clone(), &[]),
                verdict,
                "no alert, no change"
            );
        }
    }

    #[test]
    fn the_budget_is_the_operations_not_the_steps() {
        let p = policy();
        let fail = TickVerdict::Fail {
            reasons: vec!["error_rate = 0.02 above 0.005".into()],
            fail_fast: false,
        };
        // The first step spent the one failure tolerated (then passed); the next step's first failure
        // rolls back.
        let mut later = AnalysisState::replay(&p, [&fail, &TickVerdict::Pass]);
        assert_eq!(later.failures, 1);
        assert!(matches!(decide(&p, &mut later, &fail), Decision::Rollback { .. }));
        // Rate limits and provider errors in the journal spend nothing.
        let quiet = AnalysisState::replay(
            &p,
            [
                &TickVerdict::RateLimited { retry_after_secs: 3 },
                &TickVerdict::ProviderError { message: "503".into() },
                &TickVerdict::Pass,
            ],
        );
        assert_eq!((quiet.failures, quiet.consecutive_errors), (0, 0));
    }

    #[test]
    fn provider_errors_roll_back_only_when_consecutive() {
        let p = policy();
        let mut s = AnalysisState::default();
        let err = TickVerdict::ProviderError {
            message: "connection refused".into(),
        };
        assert_eq!(decide(&p, &mut s, &err), Decision::Continue);
        assert_eq!(decide(&p, &mut s, &err), Decision::Continue);
        assert_eq!(
            decide(&p, &mut s, &TickVerdict::Pass),
            Decision::Continue,
            "a good tick resets the streak"
        );
        assert_eq!(decide(&p, &mut s, &err), Decision::Continue);
        assert_eq!(decide(&p, &mut s, &err), Decision::Continue);
        assert!(
            matches!(decide(&p, &mut s, &err), Decision::Rollback { reason } if reason.contains("3 times in a row"))
        );
        assert_eq!(s.failures, 0, "provider errors do not burn the failure budget");
    }

    #[test]
    fn rate_limits_burn_nothing() {
        let p = AnalysisPolicy {
            failure_limit: 0,
            consecutive_error_limit: 0,
            ..policy()
        };
        let mut s = AnalysisState::default();
        for _ in 0..10 {
            assert_eq!(
                decide(&p, &mut s, &TickVerdict::RateLimited { retry_after_secs: 3 }),
                Decision::Continue
            );
        }
        assert_eq!((s.failures, s.consecutive_errors), (0, 0));
    }

    #[test]
    fn no_data_policy_fails_or_pauses() {
        let nodata = TickVerdict::NoData {
            reason: "no data for `error_rate`".into(),
        };
        let mut s = AnalysisState::default();
        assert_eq!(decide(&policy(), &mut s, &nodata), Decision::Continue);
        assert!(matches!(decide(&policy(), &mut s, &nodata), Decision::Rollback { .. }));
        let inconclusive = AnalysisPolicy {
            no_data_fails: false,
            ..policy()
        };
        let mut s = AnalysisState::default();
        assert!(
            matches!(decide(&inconclusive, &mut s, &nodata), Decision::Pause { reason } if reason.starts_with("inconclusive"))
        );
        assert_eq!(s.failures, 0);
    }

    fn with_baseline(
        canary: f64,
        stable: f64,
        canary_lat: Vec<f64>,
        stable_lat: Vec<f64>,
    ) -> (AnalysisPolicy, Measurements) {
        let p = AnalysisPolicy {
            baseline: Some(BaselinePolicy {
                max_relative_error_increase: 0.5,
                error_rate_allowance: 0.001,
                alpha: 0.05,
                error_rate_weight: 50.0,
                latency_weight: 50.0,
                compared: Vec::new(),
                pass: 95.0,
                marginal: 75.0,
            }),
            ..policy()
        };
        let m = Measurements::Answered {
            samples: Some(500.0),
            // Loose absolute thresholds: only the baseline comparison can catch these canaries.
            checks: vec![Check {
                metric: "error_rate".into(),
                query: "q".into(),
                value: Some(canary),
                max: 0.5,
            }],
            baseline: Some(BaselineMeasurements {
                canary_error_rate: Some(canary),
                stable_error_rate: Some(stable),
                canary_latencies: canary_lat,
                stable_latencies: stable_lat,
                compared: Vec::new(),
            }),
        };
        (p, m)
    }

    #[test]
    fn baseline_catches_a_canary_worse_than_stable_under_loose_thresholds() {
        let (p, m) = with_baseline(0.004, 0.003, vec![], vec![]);
        assert_eq!(judge(&p, &m), TickVerdict::Pass, "within 50% + 0.1 points of stable");
        let (p, m) = with_baseline(0.03, 0.003, vec![], vec![]);
        assert!(matches!(judge(&p, &m), TickVerdict::Fail { reasons, .. } if reasons[0].contains("against stable")));

        let stable: Vec<f64> = (0..40).map(|i| 50.0 + (i % 10) as f64).collect();
        let slower: Vec<f64> = (0..40).map(|i| 70.0 + (i % 10) as f64).collect();
        let (p, m) = with_baseline(0.0, 0.0, slower, stable.clone());
        assert!(matches!(judge(&p, &m), TickVerdict::Fail { reasons, .. } if reasons[0].contains("Mann-Whitney")));
        let (p, m) = with_baseline(0.0, 0.0, stable.clone(), stable);
        assert_eq!(judge(&p, &m), TickVerdict::Pass);
    }

    #[test]
    fn a_marginal_comparison_spends_no_budget_and_a_failing_metric_still_fails() {
        let mut p = with_baseline(0.002, 0.002, vec![], vec![]).0;
        if let Some(b) = p.baseline.as_mut() {
            b.compared = vec![super::super::baseline::ComparedPolicy {
                name: "cpu_ms".into(),
                weight: 20.0,
                direction: crate::config::Direction::Increase,
            }];
        }
        let around = |c: f64| (0..40).map(|i| c + (i % 10) as f64).collect::<Vec<f64>>();
        let measured = |error_rate: f64, cpu: f64| Measurements::Answered {
            samples: Some(500.0),
            checks: vec![Check {
                metric: "error_rate".into(),
                query: "q".into(),
                value: Some(error_rate),
                max: 0.01,
            }],
            baseline: Some(BaselineMeasurements {
                canary_error_rate: Some(error_rate),
                stable_error_rate: Some(0.002),
                canary_latencies: around(50.0),
                stable_latencies: around(50.0),
                compared: vec![super::super::baseline::ComparedSamples {
                    name: "cpu_ms".into(),
                    canary: around(cpu),
                    stable: around(50.0),
                }],
            }),
        };
        // CPU alone worse: 100 of 120 is 83, between the marginal 75 and the pass 95.
        let (verdict, score) = judge_scored(&p, &measured(0.002, 90.0));
        assert!(
            matches!(&verdict, TickVerdict::Marginal { score, reasons } if score.round() == 83.0 && reasons[0].starts_with("cpu_ms higher than stable")),
            "{verdict:?}"
        );
        let score = score.expect("scored");
        assert_eq!(score.comparisons.len(), 3, "every comparison is kept for the journal");
        assert!(score
            .comparisons
            .iter()
            .all(|c| c.metric == "error_rate" || c.p_value.is_some()));
        let mut state = AnalysisState::default();
        assert_eq!(decide(&p, &mut state, &verdict), Decision::Continue);
        assert_eq!(state.failures, 0, "marginal spends no budget");
        // A threshold broken as well: a failure, whatever the score.
        let (verdict, _) = judge_scored(&p, &measured(0.05, 90.0));
        assert!(matches!(verdict, TickVerdict::Fail { .. }), "{verdict:?}");
        // All alike: a pass with its score.
        let (verdict, score) = judge_scored(&p, &measured(0.002, 50.0));
        assert_eq!(verdict, TickVerdict::Pass);
        assert_eq!(score.unwrap().score, Some(100.0));
    }
}
