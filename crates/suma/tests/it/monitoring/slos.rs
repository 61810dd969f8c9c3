//! `suma slos diff|apply` against the Datadog stand-in: the shipped SLO templates created once and then
//! left alone, one threshold changed sent as one update, a rename updated in place, `--prune` deleting only
//! this environment's SLO that no template names any more, and a threshold Datadog would refuse stopped
//! before any call.

use serde_json::{json, Value};

use super::{actions, datadog, ok_json, writes, writes_since, Env};

#[tokio::test(flavor = "multi_thread")]
async fn slos_apply_once_change_in_place_and_prune_only_their_own() {
    crate::require_sandbox!();
    let env = Env::new("slo");
    let other = Env::new("slx");
    let dd = datadog();
    let templates = env.templates_copy();
    let availability = format!("auth-service availability ({})", env.name);
    let login = format!("auth-service login completion ({})", env.name);

    let diff = ok_json(&env.suma("slos", "diff", &templates, &[]), 0);
    assert_eq!(
        actions(&diff),
        [
            ("create".to_owned(), availability.clone()),
            ("create".to_owned(), login.clone())
        ]
    );
    let mark = writes().len();
    ok_json(&env.suma("slos", "apply", &templates, &["--yes"]), 0);
    let sent = writes_since(mark, &env.name);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(
        sent.iter().all(|w| w["method"] == "POST" && w["path"] == "/api/v1/slo"),
        "{sent:#?}"
    );
    let stored = dd.slos_named(&availability).await.unwrap();
    assert_eq!(stored.len(), 1);
    let id = stored[0].id.clone();
    for tag in [
        "managed-by:suma".to_owned(),
        format!("suma-env:{}", env.name),
        "suma-template:availability".to_owned(),
        format!("env:{}", env.name),
        "team:identity".to_owned(),
    ] {
        assert!(stored[0].tags.contains(&tag), "{tag} not in {:?}", stored[0].tags);
    }
    assert_eq!(
        stored[0].definition["query"]["denominator"],
        format!(
            "sum:trace.http.request.hits{{service:auth-service,env:{}}}.as_count()",
            env.name
        )
        .as_str()
    );
    // Another environment's SLOs of the same templates, which this one must never touch.
    ok_json(&other.suma("slos", "apply", &other.templates_copy(), &["--yes"]), 0);

    let mark = writes().len();
    let again = ok_json(&env.suma("slos", "apply", &templates, &["--yes"]), 0);
    assert_eq!(again["summary"]["unchanged"], 2, "{again}");
    assert_eq!(writes_since(mark, &env.name), Vec::<Value>::new());

    // One threshold tightened: one field, one update of the same SLO.
    let file = templates.join("slos/availability.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let tightened = text.replace(
        "  - timeframe: 7d\n    target: 99.9\n",
        "  - timeframe: 7d\n    target: 99.5\n",
    );
    assert_ne!(tightened, text);
    std::fs::write(&file, tightened).unwrap();
    let diff = ok_json(&env.suma("slos", "diff", &templates, &["--exit-code"]), 1);
    let item = diff["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == availability.as_str())
        .unwrap();
    assert_eq!(
        item["changes"],
        json!([{"path": "thresholds[1].target", "before": 99.9, "after": 99.5}]),
        "{item}"
    );
    let mark = writes().len();
    ok_json(&env.suma("slos", "apply", &templates, &["--yes"]), 0);
    let sent = writes_since(mark, &env.name);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        (&sent[0]["method"], &sent[0]["path"]),
        (&json!("PUT"), &json!(format!("/api/v1/slo/{id}")))
    );

    // Renamed in its template: the same SLO, its history kept.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "name: \"auth-service availability (${env})\"",
            "name: \"auth-service uptime (${env})\"",
        ),
    )
    .unwrap();
    let renamed = format!("auth-service uptime ({})", env.name);
    let applied = ok_json(&env.suma("slos", "apply", &templates, &["--yes"]), 0);
    assert!(
        actions(&applied).contains(&("update".to_owned(), renamed.clone())),
        "{applied}"
    );
    assert_eq!(dd.slos_named(&renamed).await.unwrap()[0].id, id);
    assert!(dd.slos_named(&availability).await.unwrap().is_empty());

    // The login template removed: an orphan, deleted with --prune; the other environment's stays.
    std::fs::remove_file(templates.join("slos/login-success.yaml")).unwrap();
    let kept = ok_json(&env.suma("slos", "apply", &templates, &["--yes"]), 0);
    assert!(actions(&kept).contains(&("orphan".to_owned(), login.clone())), "{kept}");
    let login_id = dd.slos_named(&login).await.unwrap()[0].id.clone();
    let mark = writes().len();
    ok_json(&env.suma("slos", "apply", &templates, &["--yes", "--prune"]), 0);
    let sent = writes_since(mark, "/api/v1/slo");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        (&sent[0]["method"], &sent[0]["path"]),
        (&json!("DELETE"), &json!(format!("/api/v1/slo/{login_id}")))
    );
    let other_login = format!("auth-service login completion ({})", other.name);
    assert_eq!(
        dd.slos_named(&other_login).await.unwrap().len(),
        1,
        "another environment's SLO is not ours to prune"
    );

    // A warning below its target: refused with the file before any call.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("    warning: 99.95\n", "    warning: 99.8\n", 1)).unwrap();
    let mark = writes().len();
    let refused = env.suma("slos", "apply", &templates, &["--yes"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("availability.yaml")
            && refused
                .stderr
                .contains("`thresholds[0].warning` (99.8) must be above the target (99.9)"),
        "{}",
        refused.stderr
    );
    assert_eq!(writes_since(mark, "/api/v1/slo"), Vec::<Value>::new());

    for slo in dd.slos_tagged(&["managed-by:suma".to_owned()]).await.unwrap() {
        if slo.name.contains(&env.name) || slo.name.contains(&other.name) {
            dd.delete_slo(&slo.id).await.unwrap();
        }
    }
}
