//! What the agent does next for one service, decided from what it sees: pure, so the deployment rules
//! (minimum healthy percent, maximum percent, the circuit breaker) are table-tested without processes.
//!
//! As ECS does it: the PRIMARY deployment (the service's current task definition) is brought to
//! `desiredCount` tasks within `maximumPercent`; tasks of older deployments are stopped only while the
//! healthy tasks left stay at or above `minimumHealthyPercent`; a deployment whose tasks keep failing is
//! FAILED by the circuit breaker and starts no more tasks, and older tasks keep serving.

/// A task as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub id: String,
    pub primary: bool,
    /// Passed its health check (ECS: RUNNING and HEALTHY); otherwise still starting (PENDING).
    pub healthy: bool,
}

/// The service's deployment settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub desired: u32,
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            desired: 0,
            minimum_healthy_percent: 100,
            maximum_percent: 200,
        }
    }
}

/// Where the PRIMARY deployment stands (ECS `rolloutState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

/// The next actions for one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Tasks of the PRIMARY deployment to start.
    pub start: u32,
    /// Tasks to stop, by id.
    pub stop: Vec<String>,
}

/// The circuit breaker's threshold: failed tasks that fail a deployment (ECS: half the desired count,
/// at least 3, at most 200).
pub fn failure_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(3, 200)
}

/// The rollout state of the PRIMARY deployment.
pub fn rollout_state(settings: Settings, tasks: &[TaskView], failed_tasks: u32, others_left: bool) -> RolloutState {
    if failed_tasks >= failure_threshold(settings.desired) {
        return RolloutState::Failed;
    }
    let primary = tasks.iter().filter(|t| t.primary).count() as u32;
    let healthy = tasks.iter().filter(|t| t.primary && t.healthy).count() as u32;
    if primary == settings.desired && healthy == settings.desired && !others_left {
        RolloutState::Completed
    } else {
        RolloutState::InProgress
    }
}

/// What to start and stop now.
pub fn plan(settings: Settings, tasks: &[TaskView], state: RolloutState) -> Plan {
    let desired = settings.desired;
    let (primary, older): (Vec<&TaskView>, Vec<&TaskView>) = tasks.iter().partition(|t| t.primary);
    let mut plan = Plan::default();
    let mut primary_kept = primary.len() as u32;
    if state != RolloutState::Failed {
        if primary_kept > desired {
            // Scale in: starting tasks first, then the newest healthy ones (the list is oldest first).
            let mut surplus: Vec<&TaskView> = primary.iter().filter(|t| !t.healthy).copied().collect();
            surplus.extend(primary.iter().rev().filter(|t| t.healthy));
            plan.stop.extend(
                surplus
                    .iter()
                    .take((primary_kept - desired) as usize)
                    .map(|t| t.id.clone()),
            );
            primary_kept = desired;
        }
        let ceiling = desired * settings.maximum_percent / 100;
        let running = primary_kept + older.len() as u32;
        plan.start = desired.saturating_sub(primary_kept).min(
            ceiling
                .saturating_sub(running)
                .max(u32::from(running == 0 && desired > 0)),
        );
    }
    // Older deployments: tasks still starting serve nothing and go at once; healthy ones go while the
    // healthy count stays at or above the minimum.
    let healthy_primary = primary
        .iter()
        .filter(|t| t.healthy && !plan.stop.contains(&t.id))
        .count() as u32;
    let floor = (desired * settings.minimum_healthy_percent).div_ceil(100);
    let mut healthy_total = healthy_primary + older.iter().filter(|t| t.healthy).count() as u32;
    for task in &older {
        if !task.healthy {
            plan.stop.push(task.id.clone());
        } else if state != RolloutState::Failed && healthy_total > floor {
            plan.stop.push(task.id.clone());
            healthy_total -= 1;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(spec: &str) -> Vec<TaskView> {
        // `P` healthy primary, `p` starting primary, `O` healthy older, `o` starting older.
        spec.chars()
            .enumerate()
            .map(|(i, c)| TaskView {
                id: format!("{c}{i}"),
                primary: c.eq_ignore_ascii_case(&'p'),
                healthy: c.is_ascii_uppercase(),
            })
            .collect()
    }

    fn settings(desired: u32, min: u32, max: u32) -> Settings {
        Settings {
            desired,
            minimum_healthy_percent: min,
            maximum_percent: max,
        }
    }

    /// Name, settings, tasks, rollout state, tasks to start, tasks to stop.
    type Case = (
        &'static str,
        Settings,
        &'static str,
        RolloutState,
        u32,
        &'static [&'static str],
    );

    #[test]
    fn plans() {
        let cases: &[Case] = &[
            (
                "fresh service starts all",
                settings(2, 100, 200),
                "",
                RolloutState::InProgress,
                2,
                &[],
            ),
            (
                "new revision starts beside the old",
                settings(2, 100, 200),
                "OO",
                RolloutState::InProgress,
                2,
                &[],
            ),
            (
                "old kept until new are healthy",
                settings(2, 100, 200),
                "OOpp",
                RolloutState::InProgress,
                0,
                &[],
            ),
            (
                "one new healthy frees one old",
                settings(2, 100, 200),
                "OOPp",
                RolloutState::InProgress,
                0,
                &["O0"],
            ),
            (
                "all new healthy frees all old",
                settings(2, 100, 200),
                "OOPP",
                RolloutState::InProgress,
                0,
                &["O0", "O1"],
            ),
            (
                "max 100% stops old first when min allows",
                settings(2, 50, 100),
                "OO",
                RolloutState::InProgress,
                0,
                &["O0"],
            ),
            (
                "max 100% then starts one",
                settings(2, 50, 100),
                "O",
                RolloutState::InProgress,
                1,
                &[],
            ),
            (
                "starting old tasks go at once",
                settings(1, 100, 200),
                "oP",
                RolloutState::InProgress,
                0,
                &["o0"],
            ),
            (
                "scale in stops starting tasks first",
                settings(1, 100, 200),
                "PPp",
                RolloutState::InProgress,
                0,
                &["p2", "P1"],
            ),
            (
                "scale to zero",
                settings(0, 100, 200),
                "PP",
                RolloutState::InProgress,
                0,
                &["P1", "P0"],
            ),
            (
                "failed deployment starts nothing, old keep serving",
                settings(2, 100, 200),
                "OO",
                RolloutState::Failed,
                0,
                &[],
            ),
            (
                "failed deployment with nothing else",
                settings(2, 100, 200),
                "",
                RolloutState::Failed,
                0,
                &[],
            ),
            ("steady", settings(2, 100, 200), "PP", RolloutState::Completed, 0, &[]),
        ];
        for (name, settings, spec, state, start, stop) in cases {
            let plan = plan(*settings, &tasks(spec), *state);
            assert_eq!(plan.start, *start, "{name}: start");
            assert_eq!(
                plan.stop,
                stop.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                "{name}: stop"
            );
        }
    }

    #[test]
    fn rollout_states() {
        let s = settings(2, 100, 200);
        assert_eq!(rollout_state(s, &tasks("PP"), 0, false), RolloutState::Completed);
        assert_eq!(
            rollout_state(s, &tasks("PP"), 0, true),
            RolloutState::InProgress,
            "old deployment left"
        );
        assert_eq!(rollout_state(s, &tasks("Pp"), 0, false), RolloutState::InProgress);
        assert_eq!(rollout_state(s, &tasks("OOpp"), 2, true), RolloutState::InProgress);
        assert_eq!(rollout_state(s, &tasks("OOpp"), 3, true), RolloutState::Failed);
        assert_eq!(
            rollout_state(settings(0, 100, 200), &[], 0, false),
            RolloutState::Completed
        );
        assert_eq!(failure_threshold(1), 3);
        assert_eq!(failure_threshold(10), 5);
        assert_eq!(failure_threshold(1000), 200);
    }
}
