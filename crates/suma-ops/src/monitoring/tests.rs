//! Templates, substitution, normalisation and the plan, on hand-written values and on the repository's own
//! templates.

use std::path::PathBuf;

use serde_json::json;

use super::*;

fn vars() -> Vars {
    Vars::from([
        ("env".to_owned(), "staging".to_owned()),
        ("service".to_owned(), "auth-service".to_owned()),
        ("scope".to_owned(), "service:auth-service,env:staging".to_owned()),
    ])
}

fn env_tags() -> Vec<String> {
    vec!["service:auth-service".to_owned(), "env:staging".to_owned()]
}

fn identity(v: &Value) -> Result<Value, String> {
    Ok(v.clone())
}

#[test]
fn variables_are_substituted_into_parsed_strings_and_dollars_escaped() {
    let text = "q: avg:x{${scope}} > 5\nname: ${env} $${x} $5 {{value}}";
    check_references(text, &vars(), "t.yaml").unwrap();
    let mut body: Value = serde_json::to_value(serde_norway::from_str::<serde_norway::Value>(text).unwrap()).unwrap();
    substitute(&mut body, &vars());
    assert_eq!(
        body,
        json!({"q": "avg:x{service:auth-service,env:staging} > 5", "name": "staging ${x} $5 {{value}}"})
    );
}

#[test]
fn a_value_holding_quotes_and_braces_stays_inside_its_string() {
    let mut vars = vars();
    vars.insert("env".into(), r#"st"aging", "x": {"#.into());
    let text = r#"{"title": "Auth ${env}", "widgets": []}"#;
    check_references(text, &vars, "d.json").unwrap();
    let mut body: Value = serde_json::from_str(text).unwrap();
    substitute(&mut body, &vars);
    assert_eq!(body, json!({"title": r#"Auth st"aging", "x": {"#, "widgets": []}));
}

#[test]
fn an_unknown_variable_names_file_line_and_variable() {
    let err = check_references("name: a\nquery: ${nope}\n", &vars(), "monitors/x.yaml").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("monitors/x.yaml:2: unknown variable `${nope}`"),
        "{text}"
    );
    assert!(
        text.contains("hint: known variables: `env`, `scope`, `service`"),
        "{text}"
    );
    let err = check_references("a\nb\nc: ${env\n}", &vars(), "f").unwrap_err();
    assert!(err.to_string().starts_with("f:3: `${` without a closing `}`"), "{err}");
    let err = check_references("a: ${ env }", &vars(), "f").unwrap_err();
    assert!(
        err.to_string().starts_with("f:1:4: `${ env }` is not a reference"),
        "{err}"
    );
}

#[test]
fn monitors_are_stamped_and_normalised() {
    let mut body = json!({"name": "m", "type": "metric alert", "query": "q", "message": "hello @team\n\n",
                          "tags": ["team:identity", "env:staging"], "id": 5, "overall_state": "Alert"});
    stamp_tags(&mut body, "staging", &env_tags(), "login-failures");
    let n = normalise_monitor(&body);
    assert_eq!(
        n,
        json!({"name": "m", "type": "query alert", "query": "q", "message": "hello @team",
               "tags": ["env:staging", "managed-by:suma", "service:auth-service", "suma-env:staging",
                        "suma-template:login-failures", "team:identity"]})
    );
    assert_eq!(
        template_of(n["tags"].as_array().unwrap().iter().filter_map(Value::as_str)).as_deref(),
        Some("login-failures")
    );
}

#[test]
fn a_monitor_is_owned_by_its_environment_tag_never_by_a_subset_of_tags() {
    let tags = |list: &[&str]| list.iter().map(|t| (*t).to_owned()).collect::<Vec<String>>();
    let staging = tags(&[
        "managed-by:suma",
        "suma-env:staging",
        "service:auth-service",
        "env:staging",
    ]);
    let legacy = tags(&["managed-by:suma", "service:auth-service", "env:staging"]);
    let stranger = tags(&["service:auth-service", "env:staging", "suma-env:staging"]);
    let staging_tags = tags(&["service:auth-service", "env:staging"]);
    let broad_tags = tags(&["service:auth-service"]);
    let cases: &[(&[String], &str, &[String], Ownership)] = &[
        (&staging, "staging", &staging_tags, Ownership::Owned),
        // An environment whose tags are a subset of staging's: staging's monitors are not its own.
        (&staging, "auth", &broad_tags, Ownership::NotOurs),
        (&staging, "staging2", &staging_tags, Ownership::NotOurs),
        // Stamped before the environment tag: staging updates it, the broader environment still may
        // not prune it (only owned monitors are listed for pruning).
        (&legacy, "staging", &staging_tags, Ownership::Legacy),
        (
            &legacy,
            "staging",
            &tags(&["service:auth-service", "env:prod"]),
            Ownership::NotOurs,
        ),
        // A legacy monitor matches any environment whose tags it carries, but only by name (templates
        // name their environment), and pruning lists owned monitors only.
        (&legacy, "auth", &broad_tags, Ownership::Legacy),
        // Without suma's tag nothing is ours, whatever else it carries.
        (&stranger, "staging", &staging_tags, Ownership::NotOurs),
    ];
    for (monitor, environment, env_tags, owner) in cases {
        assert_eq!(
            monitor_owner(monitor, environment, env_tags),
            *owner,
            "{monitor:?} from {environment}"
        );
    }
}

#[test]
fn dashboards_carry_the_marker_line_and_lose_widget_ids() {
    let mut body = json!({"title": "t", "description": "Auth.", "layout_type": "ordered", "id": "abc",
                          "widgets": [{"id": 1, "definition": {"type": "group", "widgets": [{"id": 2, "definition": {"type": "note"}}]}}]});
    stamp_dashboard(&mut body, "staging", "overview");
    let n = normalise_dashboard(&body);
    assert_eq!(
        n["description"],
        "Auth.\n\nmanaged-by:suma suma-env:staging\nsuma-template:overview"
    );
    assert_eq!(
        template_of(n["description"].as_str().unwrap().lines()).as_deref(),
        Some("overview")
    );
    assert!(dashboard_is_managed(n["description"].as_str(), "staging"));
    assert!(!dashboard_is_managed(n["description"].as_str(), "staging2"));
    assert!(!dashboard_is_managed(
        Some("managed-by:suma suma-env:staging2"),
        "staging"
    ));
    assert!(!dashboard_is_managed(None, "staging"));
    assert_eq!(n.get("id"), None);
    assert_eq!(
        n["widgets"],
        json!([{"definition": {"type": "group", "widgets": [{"definition": {"type": "note"}}]}}])
    );
}

#[test]
fn only_fields_the_template_sets_are_compared() {
    let desired = json!({"name": "m", "options": {"thresholds": {"critical": 5, "warning": 2}, "notify_no_data": false},
                         "priority": null, "tags": ["a", "b"]});
    let actual = json!({"id": 9, "name": "m", "overall_state": "OK",
                        "options": {"thresholds": {"critical": 5.0, "warning": 2.0}, "notify_no_data": false,
                                    "silenced": {}, "new_host_delay": 300},
                        "tags": ["a", "b"]});
    assert_eq!(field_changes(&desired, &actual), []);

    let changed = json!({"name": "m", "options": {"thresholds": {"critical": 4.0, "warning": 2.0}}, "tags": ["a"]});
    assert_eq!(
        field_changes(&desired, &changed),
        [
            FieldChange {
                path: "options.notify_no_data".into(),
                before: None,
                after: json!(false)
            },
            FieldChange {
                path: "options.thresholds.critical".into(),
                before: Some(json!(4.0)),
                after: json!(5)
            },
            FieldChange {
                path: "tags".into(),
                before: Some(json!(["a"])),
                after: json!(["a", "b"])
            },
        ]
    );
}

#[test]
fn arrays_of_objects_are_compared_element_by_element() {
    let desired = json!({"widgets": [{"definition": {"type": "note", "content": "a"}},
                                     {"definition": {"type": "timeseries", "title": "x"}}]});
    let actual = json!({"widgets": [{"id": 1, "definition": {"type": "note", "content": "a", "font_size": "14"}},
                                    {"id": 2, "definition": {"type": "timeseries", "title": "y"}}]});
    let changes = field_changes(&desired, &actual);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, "widgets[1].definition.title");
    // A widget more or less is a change of the whole list.
    let fewer = json!({"widgets": [{"definition": {"type": "note", "content": "a"}}]});
    assert_eq!(field_changes(&desired, &fewer)[0].path, "widgets");
}

fn desired(name: &str, body: Value) -> Desired {
    Desired {
        kind: Kind::Monitor,
        name: name.to_owned(),
        file: format!("{name}.yaml"),
        key: name.to_owned(),
        body,
    }
}

fn remote(id: &str, name: &str, managed: bool, body: Value) -> Remote {
    Remote {
        id: id.to_owned(),
        name: name.to_owned(),
        managed,
        template: None,
        body,
    }
}

#[test]
fn the_plan_creates_updates_keeps_refuses_and_reports_orphans() {
    let want = vec![
        desired("new", json!({"name": "new", "query": "q"})),
        desired("same", json!({"name": "same", "query": "q"})),
        desired("changed", json!({"name": "changed", "query": "q2"})),
        desired("taken", json!({"name": "taken", "query": "q"})),
    ];
    let have = vec![
        remote("1", "same", true, json!({"name": "same", "query": "q", "id": 1})),
        remote("2", "changed", true, json!({"name": "changed", "query": "q1"})),
        remote("3", "taken", false, json!({"name": "taken", "query": "other"})),
        remote("4", "gone", true, json!({"name": "gone"})),
        remote("5", "not ours", false, json!({"name": "not ours"})),
    ];
    let items = plan(&want, &have, false);
    let actions: Vec<(&str, Action, Option<&str>)> = items
        .iter()
        .map(|i| (i.name.as_str(), i.action, i.id.as_deref()))
        .collect();
    assert_eq!(
        actions,
        [
            ("new", Action::Create, None),
            ("same", Action::Unchanged, Some("1")),
            ("changed", Action::Update, Some("2")),
            ("taken", Action::Conflict, None),
            ("gone", Action::Orphan, Some("4")),
        ]
    );
    assert_eq!(items[2].changes[0].path, "query");
    assert!(items[3].body.is_none(), "a conflict sends nothing");
    assert!(items[3].note.as_deref().unwrap().contains("left alone"));
    let summary = summary(&items);
    assert_eq!(summary["create"], 1);
    assert_eq!(summary["conflict"], 1);
    let pruned = plan(&want, &have, true);
    assert_eq!(pruned.last().unwrap().action, Action::Delete);
    assert!(pruned.iter().filter(|i| i.action.writes()).count() == 3);
}

#[test]
fn a_managed_twin_wins_over_an_unmanaged_one() {
    let want = desired("m", json!({"name": "m", "query": "q"}));
    let item = plan_one(
        &want,
        &[
            remote("7", "m", false, json!({"name": "m", "query": "x"})),
            remote("12", "m", true, json!({"name": "m", "query": "q"})),
            remote("10", "m", true, json!({"name": "m", "query": "q"})),
        ],
    );
    assert_eq!(item.action, Action::Unchanged);
    assert_eq!(item.id.as_deref(), Some("10"));
    let note = item.note.unwrap();
    assert!(
        note.contains("2 managed monitors share this name") && note.contains("1 unmanaged"),
        "{note}"
    );
}

fn repo_templates() -> PathBuf {
    crate::checkout_root().join("templates/datadog")
}

#[test]
fn the_repository_templates_load_for_every_example_environment() {
    let config = crate::config::load_from_path(&crate::checkout_root().join("deploy/suma.yaml"))
        .expect("the example configuration is valid");
    for (name, env) in &config.environments {
        let vars = vars_for(name, env);
        let tags = env.datadog.as_ref().map(|d| d.tags.clone()).unwrap_or_default();
        let monitors = load(
            Kind::Monitor,
            &repo_templates().join("monitors"),
            &vars,
            name,
            &tags,
            &crate::metrics::datadog::canonical_monitor,
        )
        .unwrap();
        assert_eq!(monitors.len(), 9, "{name}");
        for m in &monitors {
            let tags: Vec<&str> = m.body["tags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(tags.contains(&MANAGED_BY_TAG), "{}", m.name);
            assert!(tags.contains(&format!("env:{name}").as_str()), "{}", m.name);
            assert!(
                m.name.contains(name.as_str()),
                "the name says the environment: {}",
                m.name
            );
            assert!(
                m.body["message"].as_str().unwrap().contains('@'),
                "{} notifies someone",
                m.name
            );
            assert!(!m.body.to_string().contains("${"), "{} fully substituted", m.name);
        }
        // The canary gate finds exactly one monitor: the environment's tags and `auto-rollback:true`.
        let mut gate = tags.clone();
        gate.push("auto-rollback:true".to_owned());
        let gating: Vec<&Desired> = monitors
            .iter()
            .filter(|m| {
                gate.iter()
                    .all(|t| m.body["tags"].as_array().unwrap().contains(&Value::String(t.clone())))
            })
            .collect();
        assert_eq!(gating.len(), 1, "{name}");
        assert!(
            gating[0].body["query"].as_str().unwrap().ends_with("> 5"),
            "{}",
            gating[0].body["query"]
        );
        // Every monitor compliance requires is among them.
        let summaries: Vec<crate::metrics::datadog::MonitorSummary> = monitors
            .iter()
            .enumerate()
            .map(|(i, m)| crate::metrics::datadog::MonitorSummary {
                id: i as i64,
                name: m.name.clone(),
                tags: Vec::new(),
                muted: false,
                notifies: vec!["@x".to_owned()],
            })
            .collect();
        let findings = crate::compliance::evaluate::datadog_monitors(&summaries, &tags);
        let missing: Vec<_> = findings
            .iter()
            .filter(|f| f.status == crate::compliance::Status::Fail)
            .collect();
        assert!(missing.is_empty(), "{missing:?}");

        let dashboards = load(
            Kind::Dashboard,
            &repo_templates().join("dashboards"),
            &vars,
            name,
            &tags,
            &crate::metrics::datadog::canonical_dashboard,
        )
        .unwrap();
        assert_eq!(dashboards.len(), 1);
        assert_eq!(dashboards[0].body["layout_type"], "ordered");
        assert!(dashboard_is_managed(dashboards[0].body["description"].as_str(), name));
        assert!(dashboards[0].body["widgets"].as_array().unwrap().len() >= 7);
    }
}

#[test]
fn template_files_are_checked_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let check = |files: &[(&str, &str)]| {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        load(Kind::Monitor, dir.path(), &vars(), "staging", &env_tags(), &identity)
            .unwrap_err()
            .to_string()
    };
    assert!(check(&[]).contains("holds no monitor"));
    let err = check(&[("a.yaml", "name: a\nquery: \"${nope}\"\n")]);
    assert!(err.contains("a.yaml:2: unknown variable `${nope}`"), "{err}");
    let err = check(&[("a.yaml", "query: q\n")]);
    assert!(err.ends_with("a.yaml: `name` is missing or empty"), "{err}");
    let err = check(&[("a.yaml", "name: a\nid: 3\n")]);
    assert!(err.contains("`id` is set by Datadog"), "{err}");
    let err = check(&[("a.yaml", "name: a\nquery: [\n")]);
    assert!(err.contains("a.yaml:"), "{err}");
    let err = check(&[("a.yaml", "name: x-${env}\n"), ("b.yaml", "name: x-staging\n")]);
    assert!(err.contains("both define `x-staging`"), "{err}");
    // The client's model is the last check.
    let err = load(Kind::Monitor, dir.path(), &vars(), "staging", &env_tags(), &|_| {
        Err("missing field `query`".to_owned())
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a valid Datadog monitor: missing field `query`"),
        "{err}"
    );
}

#[test]
fn a_template_renamed_updates_its_resource_in_place_found_by_its_key() {
    let renamed = desired(
        "Login failures (EU)",
        json!({"name": "Login failures (EU)", "query": "q"}),
    );
    let renamed = Desired {
        key: "login-failures".into(),
        ..renamed
    };
    let mut ours = remote(
        "41",
        "Login failures",
        true,
        json!({"name": "Login failures", "query": "q"}),
    );
    ours.template = Some("login-failures".into());
    let items = plan(std::slice::from_ref(&renamed), std::slice::from_ref(&ours), true);
    assert_eq!(items.len(), 1, "no create, no orphan, no delete: {items:?}");
    let item = &items[0];
    assert_eq!((item.action, item.id.as_deref()), (Action::Update, Some("41")));
    assert_eq!(item.changes.len(), 1);
    assert_eq!(item.changes[0].path, "name");
    let note = item.note.as_deref().unwrap();
    assert!(note.contains("renamed from `Login failures`"), "{note}");

    // Renamed into a stranger's name: nothing written, ours kept as it is (not an orphan either).
    let stranger = remote(
        "42",
        "Login failures (EU)",
        false,
        json!({"name": "Login failures (EU)"}),
    );
    let items = plan(std::slice::from_ref(&renamed), &[ours.clone(), stranger], true);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (items[0].action, items[0].id.as_deref()),
        (Action::Conflict, Some("41"))
    );
    assert!(items[0].note.as_deref().unwrap().contains("left as it is"), "{items:?}");

    // A resource from before the key existed is still found by its name; one whose key no template has,
    // and whose name none has, is an orphan.
    let mut unkeyed = ours.clone();
    unkeyed.template = None;
    unkeyed.name = "Login failures (EU)".into();
    let mut gone = remote("43", "Old check", true, json!({"name": "Old check"}));
    gone.template = Some("old-check".into());
    let items = plan(&[renamed], &[unkeyed, gone], false);
    let found: Vec<(Action, Option<&str>)> = items.iter().map(|i| (i.action, i.id.as_deref())).collect();
    assert_eq!(found, [(Action::Update, Some("41")), (Action::Orphan, Some("43"))]);
}

#[test]
fn a_plan_item_shows_as_a_step_of_every_dry_runs_plan() {
    let item = PlanItem {
        kind: Kind::Monitor,
        name: "auth-service 5xx (staging)".to_owned(),
        action: Action::Update,
        id: Some("41".to_owned()),
        file: Some("templates/datadog/monitors/5xx.yaml".to_owned()),
        changes: vec![FieldChange {
            path: "options.thresholds.critical".to_owned(),
            before: Some(json!(0.05)),
            after: json!(0.02),
        }],
        note: None,
        body: Some(json!({"name": "not shown"})),
    };
    let shown = serde_json::to_value(&item).unwrap();
    assert_eq!(
        shown["detail"],
        "update monitor `auth-service 5xx (staging)` (options.thresholds.critical)"
    );
    assert_eq!(
        (shown["name"].as_str(), shown["id"].as_str()),
        (Some(item.name.as_str()), Some("41"))
    );
    assert!(shown.get("body").is_none() && shown.get("note").is_none(), "{shown}");
    let conflict = PlanItem {
        action: Action::Conflict,
        changes: Vec::new(),
        note: Some("a monitor of that name is not suma's".to_owned()),
        ..item
    };
    assert_eq!(
        conflict.detail(),
        "conflict monitor `auth-service 5xx (staging)`: a monitor of that name is not suma's"
    );
}
