//! Blue/green on the shared in-memory account: a healthy release promotes and a faulty one rolls back,
//! each with the traffic never split (every weight change is 100/0 or 0/100), and a crash at any step is
//! finished by `resume` or undone by `abort`.

use super::*;

fn blue_green(rollout: RolloutEnd) -> Harness {
    Harness {
        strategy: Strategy::BlueGreen,
        ..Harness::new(rollout)
    }
}

/// The weight changes the account saw, in order, a repeat of the same weights once (each traffic step
/// sets its weights as it starts, so a resumed one converges).
fn weight_changes(h: &Harness) -> Vec<String> {
    let mut changes: Vec<String> = h
        .world
        .events()
        .into_iter()
        .filter(|e| e.starts_with("weights"))
        .collect();
    changes.dedup();
    changes
}

fn assert_never_split(h: &Harness) {
    for change in weight_changes(h) {
        assert!(
            change == "weights 100/0" || change == "weights 0/100",
            "the traffic was split: {change}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_healthy_release_takes_all_traffic_at_once_and_is_promoted() {
    let h = blue_green(RolloutEnd::Completes);
    let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
    let mut op = h.op();
    assert_eq!(op.kind, crate::canary::bluegreen::KIND);
    let names: Vec<&str> = op.plan.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["register", "green-up", "pre-traffic", "cutover", "keep-blue", "promote"]
    );
    assert_eq!(h.run(&engine, &mut op, false).await, Outcome::Promoted);
    h.assert_consistent("td:2");
    assert_never_split(&h);
    assert_eq!(weight_changes(&h), ["weights 0/100", "weights 100/0"]);
    let events = h.world.events();
    // Green came up at blue's full size before any traffic reached it.
    let green_up = events
        .iter()
        .position(|e| e == "update eu-west-1 auth-service-canary td:3 4")
        .unwrap_or_else(|| panic!("green at 4 tasks: {events:?}"));
    let cutover = events.iter().position(|e| e == "weights 0/100").unwrap();
    assert!(green_up < cutover, "{events:?}");
    // Blue moved to the release only after the bake and the keep window, then took the traffic back.
    let blue_updated = events
        .iter()
        .position(|e| e.starts_with("update eu-west-1 auth-service td:2"))
        .unwrap();
    let home = events.iter().rposition(|e| e == "weights 100/0").unwrap();
    assert!(cutover < blue_updated && blue_updated < home, "{events:?}");
    let ticks = |name: &str| {
        op.steps.iter().find(|s| s.name == name).unwrap().facts["ticks"]
            .as_array()
            .unwrap()
            .len()
    };
    // 10 minutes of bake and 5 of keep window, one analysis a minute.
    assert_eq!((ticks("cutover"), ticks("keep-blue")), (10, 5));
    let skipped = op.steps.iter().find(|s| s.name == "pre-traffic").unwrap();
    assert_eq!(skipped.status, StepStatus::Skipped, "no test listener configured");
}

#[tokio::test(start_paused = true)]
async fn a_faulty_release_is_rolled_back_in_one_flip_and_blue_never_changed() {
    let h = blue_green(RolloutEnd::Completes);
    let engine = h.engine(
        Script::new(&[Some(0.0), Some(0.0), Some(0.03)]),
        silent(),
        CancellationToken::new(),
    );
    let mut op = h.op();
    let outcome = h.run(&engine, &mut op, false).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reason } if reason.contains("error_rate")),
        "{outcome:?}"
    );
    h.assert_consistent("td:1");
    assert_never_split(&h);
    assert_eq!(weight_changes(&h), ["weights 0/100", "weights 100/0"]);
    let events = h.world.events();
    assert!(
        !events
            .iter()
            .any(|e| e.starts_with("update eu-west-1 auth-service td:")),
        "blue was never touched: {events:?}"
    );
    let flip_back = events.iter().rposition(|e| e == "weights 100/0").unwrap();
    let green_down = events
        .iter()
        .rposition(|e| e.starts_with("update eu-west-1 auth-service-canary") && e.ends_with(" 0"))
        .unwrap();
    assert!(flip_back < green_down, "the flip back comes first: {events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_crash_at_any_step_is_finished_by_resume_or_undone_by_abort() {
    let steps = blue_green(RolloutEnd::Completes).op().plan.len();
    for crash_at in 0..steps {
        for abort in [false, true] {
            let h = blue_green(RolloutEnd::Completes);
            let (_, mut recorded) = h.crash_at(crash_at).await;
            let step = recorded.plan[crash_at].name.clone();
            if step == "promote" {
                // Green serves everything while blue moves to the release: the traffic stays there.
                assert_eq!(h.world.weights(), (0, 100), "interrupted in promote");
            } else {
                assert_eq!(h.world.weights(), (100, 0), "interrupted in {step}: traffic home");
            }
            let engine = h.engine(Script::new(&[Some(0.0)]), silent(), CancellationToken::new());
            let guard = h.locks.acquire(&recorded, true).await.unwrap();
            let outcome = if abort {
                engine.abort(&mut recorded, &guard, "oncall@host").await.unwrap()
            } else {
                engine.run(&mut recorded, &guard).await.unwrap()
            };
            guard.release().await.unwrap();
            if abort {
                assert!(matches!(outcome, Outcome::Aborted { .. }), "{step}: {outcome:?}");
                h.assert_consistent("td:1");
            } else {
                assert_eq!(outcome, Outcome::Promoted, "{step}");
                h.assert_consistent("td:2");
            }
            assert_never_split(&h);
        }
    }
}
