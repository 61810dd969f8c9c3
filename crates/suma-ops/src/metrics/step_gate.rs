//! When a canary step may advance: on its analyses, not on its clock. A step whose time is up advances
//! only when at least `min_analyses` of its analyses were judged (pass or fail; rate limits, provider
//! errors and missing data are not judgements) and the last judged one passed. Otherwise it keeps
//! analysing, for at most as many analyses again as its duration holds, and then rolls back: a canary
//! that cannot be shown healthy at this weight is not given more traffic. Pure, fed by the step loop.

use super::analysis::TickVerdict;

/// What a step's analyses have shown so far (earlier attempts of the step included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepProgress {
    /// Analyses that passed or failed.
    pub judged: u32,
    /// Whether the most recent of them passed.
    pub last_judged_passed: bool,
}

impl StepProgress {
    pub fn of<'a>(verdicts: impl IntoIterator<Item = &'a TickVerdict>) -> Self {
        let mut progress = Self::default();
        for verdict in verdicts {
            progress.observe(verdict);
        }
        progress
    }

    pub fn observe(&mut self, verdict: &TickVerdict) {
        match verdict {
            TickVerdict::Pass => {
                self.judged += 1;
                self.last_judged_passed = true;
            }
            // A marginal comparison with stable is judged, and is no pass to advance on.
            TickVerdict::Fail { .. } | TickVerdict::Marginal { .. } => {
                self.judged += 1;
                self.last_judged_passed = false;
            }
            TickVerdict::NoData { .. } | TickVerdict::RateLimited { .. } | TickVerdict::ProviderError { .. } => {}
        }
    }
}

/// What a step whose time is up does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEnding {
    Advance,
    /// Analyse once more; `why` says what is missing.
    KeepAnalysing {
        why: String,
    },
    RollBack {
        reason: String,
    },
}

/// Judges a step whose time is up. `overtime`: it has already analysed on for as long as the step lasts.
pub fn step_ending(step: &str, progress: StepProgress, min_analyses: u32, overtime: bool) -> StepEnding {
    let why = if progress.judged < min_analyses {
        format!(
            "{} of the {min_analyses} analyses it needs were judged",
            progress.judged
        )
    } else if !progress.last_judged_passed {
        "its last analysis did not pass".to_owned()
    } else {
        return StepEnding::Advance;
    };
    if overtime {
        StepEnding::RollBack {
            reason: format!("step `{step}` could not show a healthy canary: {why}, and its time is up twice over"),
        }
    } else {
        StepEnding::KeepAnalysing { why }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> TickVerdict {
        TickVerdict::Fail {
            reasons: vec!["error_rate = 0.02 above 0.005".into()],
            fail_fast: false,
        }
    }

    #[test]
    fn a_step_advances_on_a_passing_last_judgement_and_enough_of_them() {
        let pass = TickVerdict::Pass;
        let rate_limited = TickVerdict::RateLimited { retry_after_secs: 5 };
        let no_data = TickVerdict::NoData {
            reason: "no data for `error_rate`".into(),
        };
        let error = TickVerdict::ProviderError { message: "503".into() };
        let marginal = TickVerdict::Marginal {
            score: 83.0,
            reasons: vec!["cpu_ms higher than stable".into()],
        };
        // (case, the step's verdicts, min_analyses, overtime, expected)
        type Case<'a> = (&'a str, Vec<&'a TickVerdict>, u32, bool, fn(&StepEnding) -> bool);
        let f = fail();
        let cases: Vec<Case<'_>> = vec![
            ("one pass", vec![&pass], 1, false, |e| *e == StepEnding::Advance),
            ("a pass after a failure", vec![&f, &pass], 1, false, |e| {
                *e == StepEnding::Advance
            }),
            (
                "the last analysis failed (the budget allowed it): no more traffic yet",
                vec![&pass, &pass, &f],
                1,
                false,
                |e| matches!(e, StepEnding::KeepAnalysing { why } if why == "its last analysis did not pass"),
            ),
            (
                "only rate limits: nothing was judged",
                vec![&rate_limited, &rate_limited],
                1,
                false,
                |e| matches!(e, StepEnding::KeepAnalysing { why } if why.starts_with("0 of the 1")),
            ),
            (
                "a step shorter than an interval judged nothing",
                vec![],
                1,
                false,
                |e| matches!(e, StepEnding::KeepAnalysing { .. }),
            ),
            (
                "missing data and provider errors are not judgements",
                vec![&pass, &no_data, &error],
                3,
                false,
                |e| matches!(e, StepEnding::KeepAnalysing { why } if why.starts_with("1 of the 3")),
            ),
            (
                "missing data after a pass keeps the pass as the last judgement",
                vec![&pass, &no_data],
                1,
                false,
                |e| *e == StepEnding::Advance,
            ),
            (
                "still failing when the extra time is up",
                vec![&pass, &f],
                1,
                true,
                |e| matches!(e, StepEnding::RollBack { reason } if reason.contains("`shift-10`") && reason.contains("last analysis did not pass")),
            ),
            (
                "a marginal comparison with stable is no pass to advance on",
                vec![&pass, &marginal],
                1,
                false,
                |e| matches!(e, StepEnding::KeepAnalysing { why } if why == "its last analysis did not pass"),
            ),
            (
                "healthy at the last moment of the extra time",
                vec![&f, &pass],
                1,
                true,
                |e| *e == StepEnding::Advance,
            ),
        ];
        for (name, verdicts, min, overtime, expected) in cases {
            let ending = step_ending("shift-10", StepProgress::of(verdicts), min, overtime);
            assert!(expected(&ending), "{name}: {ending:?}");
        }
    }
}
