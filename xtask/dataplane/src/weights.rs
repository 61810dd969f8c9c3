//! Weighted choice between upstreams, and reading the weights from an ALB forward rule.
//!
//! The choice is smooth weighted round robin (as in nginx): deterministic, and over any run of
//! `sum(weights)` requests each upstream gets exactly its weight, interleaved rather than in bursts. A
//! real ALB picks at random; a counter-based choice keeps the sandbox's split exact and its tests stable.

use aws_sdk_elasticloadbalancingv2::types::Rule;

/// A rule's target-group ARNs with their weights.
pub type Forward = Vec<(String, u32)>;

/// Smooth weighted round robin over upstream indices.
#[derive(Debug, Clone, Default)]
pub struct SmoothWeighted {
    weights: Vec<u32>,
    current: Vec<i64>,
}

impl SmoothWeighted {
    pub fn new(weights: Vec<u32>) -> Self {
        let current = vec![0; weights.len()];
        Self { weights, current }
    }

    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// Replaces the weights; returns whether they changed. Unchanged weights keep the rotation's position.
    pub fn set_weights(&mut self, weights: Vec<u32>) -> bool {
        if weights == self.weights {
            return false;
        }
        *self = Self::new(weights);
        true
    }

    /// The next upstream's index, or `None` when every weight is 0.
    pub fn next_index(&mut self) -> Option<usize> {
        let total: i64 = self.weights.iter().map(|&w| i64::from(w)).sum();
        if total == 0 {
            return None;
        }
        for (current, &w) in self.current.iter_mut().zip(&self.weights) {
            *current += i64::from(w);
        }
        // The largest running total wins (the first on a tie), then pays back the round's total.
        let best =
            (1..self.current.len()).fold(0, |best, i| if self.current[i] > self.current[best] { i } else { best });
        self.current[best] -= total;
        Some(best)
    }
}

/// The target groups of a rule's forward action with their weights, in the rule's order.
///
/// A forward action without a `ForwardConfig` sends everything to its single target group; a target
/// group listed without a weight has weight 1, as on AWS.
pub fn forward_weights(rule: &Rule) -> Result<Forward, String> {
    let forward = rule
        .actions()
        .iter()
        .find(|a| a.r#type().map(|t| t.as_str()) == Some("forward"))
        .ok_or("the rule has no forward action")?;
    if let Some(config) = forward.forward_config() {
        let groups: Vec<(String, u32)> = config
            .target_groups()
            .iter()
            .filter_map(|tg| {
                let arn = tg.target_group_arn()?.to_owned();
                let weight = tg.weight().map_or(1, |w| u32::try_from(w).unwrap_or(0));
                Some((arn, weight))
            })
            .collect();
        if !groups.is_empty() {
            return Ok(groups);
        }
    }
    forward
        .target_group_arn()
        .map(|arn| vec![(arn.to_owned(), 1)])
        .ok_or_else(|| "the forward action names no target group".to_owned())
}

/// The weight of each upstream (by target-group ARN) under `forward`; groups the rule does not name get 0.
/// Also returns the rule's target groups that no upstream serves.
pub fn upstream_weights(upstream_arns: &[&str], forward: &[(String, u32)]) -> (Vec<u32>, Vec<String>) {
    let weights = upstream_arns
        .iter()
        .map(|arn| forward.iter().filter(|(a, _)| a == arn).map(|(_, w)| *w).sum())
        .collect();
    let unknown = forward
        .iter()
        .filter(|(a, w)| *w > 0 && !upstream_arns.contains(&a.as_str()))
        .map(|(a, _)| a.clone())
        .collect();
    (weights, unknown)
}

/// A short name for a target group: `auth-staging-canary` from `arn:…:targetgroup/auth-staging-canary/abc`.
pub fn target_group_name(arn: &str) -> &str {
    arn.split_once(":targetgroup/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple};

    fn picks(weights: Vec<u32>, n: usize) -> Vec<usize> {
        let mut s = SmoothWeighted::new(weights);
        (0..n).map(|_| s.next_index().unwrap()).collect()
    }

    #[test]
    fn split_is_exact_over_each_round() {
        for (weights, rounds) in [
            (vec![90, 10], 3),
            (vec![50, 50], 5),
            (vec![1, 2], 7),
            (vec![0, 100], 2),
            (vec![100, 0], 2),
            (vec![5, 3, 2], 4),
        ] {
            let total: u32 = weights.iter().sum();
            let seq = picks(weights.clone(), (total as usize) * rounds);
            for (i, &w) in weights.iter().enumerate() {
                let got = seq.iter().filter(|&&p| p == i).count();
                assert_eq!(got, w as usize * rounds, "weights {weights:?}, upstream {i}");
            }
        }
    }

    #[test]
    fn choices_are_interleaved_not_bursty() {
        assert_eq!(picks(vec![1, 1], 4), [0, 1, 0, 1]);
        // 90/10: the canary's turns are spread out, one in every ten.
        let seq = picks(vec![90, 10], 100);
        let canary: Vec<usize> = (0..100).filter(|&i| seq[i] == 1).collect();
        assert_eq!(canary.len(), 10);
        assert!(canary.windows(2).all(|w| w[1] - w[0] == 10), "{canary:?}");
    }

    #[test]
    fn no_choice_when_every_weight_is_zero() {
        assert_eq!(SmoothWeighted::new(vec![0, 0]).next_index(), None);
        assert_eq!(SmoothWeighted::new(vec![]).next_index(), None);
    }

    #[test]
    fn unchanged_weights_keep_the_rotation() {
        let mut s = SmoothWeighted::new(vec![1, 1]);
        assert_eq!(s.next_index(), Some(0));
        assert!(!s.set_weights(vec![1, 1]));
        assert_eq!(s.next_index(), Some(1));
        assert!(s.set_weights(vec![0, 1]));
        assert_eq!(s.next_index(), Some(1));
    }

    fn rule(action: Action) -> Rule {
        Rule::builder().actions(action).build()
    }

    #[test]
    fn weights_from_a_weighted_forward_rule() {
        let config = ForwardActionConfig::builder()
            .target_groups(TargetGroupTuple::builder().target_group_arn("arn:s").weight(90).build())
            .target_groups(TargetGroupTuple::builder().target_group_arn("arn:c").weight(10).build())
            .build();
        let action = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(config)
            .build();
        let forward = forward_weights(&rule(action)).unwrap();
        assert_eq!(forward, [("arn:s".to_owned(), 90), ("arn:c".to_owned(), 10)]);
        assert_eq!(upstream_weights(&["arn:c", "arn:s"], &forward), (vec![10, 90], vec![]));
        assert_eq!(
            upstream_weights(&["arn:s"], &forward),
            (vec![90], vec!["arn:c".to_owned()])
        );
    }

    #[test]
    fn weights_from_a_plain_forward_rule_and_errors() {
        let plain = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("arn:s")
            .build();
        assert_eq!(forward_weights(&rule(plain)).unwrap(), [("arn:s".to_owned(), 1)]);
        let redirect = Action::builder().r#type(ActionTypeEnum::Redirect).build();
        assert!(forward_weights(&rule(redirect)).is_err());
    }

    #[test]
    fn target_group_names() {
        assert_eq!(
            target_group_name(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/auth-staging-canary/50dc6c495c0c9188"
            ),
            "auth-staging-canary"
        );
        assert_eq!(target_group_name("other"), "other");
    }
}
