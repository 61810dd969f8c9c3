//! `suma monitors|dashboards diff|apply` (and, in `slos`, `suma slos`) against the sandbox's Datadog stand-in: idempotence read from the
//! stand-in's writes log, resources suma does not manage left alone, one field changed in a template copy
//! sent as exactly one update, the canary gate finding the applied auto-rollback monitor. Each test works in
//! an environment of its own name (its own Datadog tags), so it never meets another test's monitors.

mod slos;

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use suma::metrics::datadog::{Datadog, MonitorRef};

use common::{run, sandbox_var, suma, unique, Run};

/// A configuration holding one environment, a copy of the sandbox's staging under a unique name whose
/// Datadog tags are `service:auth-service` and `env:NAME`.
struct Env {
    name: String,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(prefix: &str) -> Self {
        Self::with_tags(prefix, None)
    }

    /// An environment whose Datadog tags are `tags` (default: `service:auth-service`, `env:NAME`).
    fn with_tags(prefix: &str, tags: Option<&[&str]>) -> Self {
        let name = unique(prefix)[..prefix.len() + 9].to_owned();
        let mut config: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(common::sandbox_config()).unwrap()).unwrap();
        let mut env = config["environments"]["staging"].clone();
        let tags: Vec<String> = match tags {
            Some(tags) => tags.iter().map(|t| (*t).to_owned()).collect(),
            None => vec!["service:auth-service".to_owned(), format!("env:{name}")],
        };
        env["datadog"]["tags"] = serde_norway::to_value(tags).unwrap();
        let mut environments = serde_norway::Mapping::new();
        environments.insert(name.clone().into(), env);
        config["environments"] = environments.into();
        config["defaults"]["environment"] = name.clone().into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suma.yaml");
        std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
        Self {
            name,
            config: path,
            dir,
        }
    }

    /// `suma GROUP ACTION --env NAME --config CONFIG --templates DIR -o json ARGS`.
    fn suma(&self, group: &str, action: &str, templates: &Path, args: &[&str]) -> Run {
        let mut cmd = suma(&[group, action]);
        cmd.args(["--env", &self.name, "--config"])
            .arg(&self.config)
            .arg("--templates")
            .arg(templates)
            .args(["-o", "json"])
            .args(args);
        run(cmd)
    }

    /// A copy of the repository's templates, to change.
    fn templates_copy(&self) -> PathBuf {
        let copy = self.dir.path().join("templates");
        for kind in ["monitors", "dashboards", "slos"] {
            std::fs::create_dir_all(copy.join(kind)).unwrap();
            for entry in std::fs::read_dir(repo_templates().join(kind)).unwrap() {
                let path = entry.unwrap().path();
                std::fs::copy(&path, copy.join(kind).join(path.file_name().unwrap())).unwrap();
            }
        }
        copy
    }

    fn tags(&self) -> Vec<String> {
        vec!["service:auth-service".to_owned(), format!("env:{}", self.name)]
    }
}

fn repo_templates() -> PathBuf {
    common::workspace_root().join("templates/datadog")
}

fn datadog() -> Datadog {
    Datadog::new(
        "datadoghq.eu",
        Some(&sandbox_var("SUMA_DATADOG_URL")),
        &sandbox_var("DD_API_KEY"),
        &sandbox_var("DD_APP_KEY"),
        Duration::from_secs(60),
    )
    .unwrap()
}

/// The stand-in's writes log, one request per line.
fn writes() -> Vec<Value> {
    std::fs::read_to_string(sandbox_var("SUMA_SANDBOX_DATADOG_WRITES"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The writes after the first `since` whose body or path mentions `needle`.
fn writes_since(since: usize, needle: &str) -> Vec<Value> {
    writes()
        .into_iter()
        .skip(since)
        .filter(|w| w.to_string().contains(needle))
        .collect()
}

fn actions(report: &Value) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = report["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap().to_owned(),
                i["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    all.sort();
    all
}

fn ok_json(run: &Run, code: i32) -> Value {
    assert_eq!(run.code, code, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    common::json(run)
}

#[tokio::test(flavor = "multi_thread")]
async fn monitors_apply_once_leave_strangers_alone_and_update_one_field() {
    crate::require_sandbox!();
    let env = Env::new("mon");
    let dd = datadog();
    let repo = repo_templates();
    let redis_name = format!("auth-service Redis memory high ({})", env.name);

    // Someone's own monitor under the name of a template, without suma's identity.
    let stranger = dd
        .create_monitor(&json!({"name": redis_name, "type": "query alert",
                                "query": "avg(last_5m):avg:redis.mem.used{*} > 1", "message": "mine @me",
                                "tags": [format!("env:{}", env.name), "team:other"]}))
        .await
        .unwrap();

    // The templates are checked before anything is read.
    let bad = env.dir.path().join("bad");
    std::fs::create_dir_all(bad.join("monitors")).unwrap();
    std::fs::write(
        bad.join("monitors/x.yaml"),
        "name: x\ntype: query alert\nquery: \"${nope}\"\nmessage: m\n",
    )
    .unwrap();
    let before = writes().len();
    let r = env.suma("monitors", "diff", &bad, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("x.yaml:3: unknown variable `${nope}`"),
        "{}",
        r.stderr
    );

    let diff = ok_json(&env.suma("monitors", "diff", &repo, &[]), 0);
    let planned = actions(&diff);
    assert_eq!(planned.len(), 9, "{planned:?}");
    assert_eq!(planned.iter().filter(|(a, _)| a == "create").count(), 8, "{planned:?}");
    assert!(
        planned.contains(&("conflict".to_owned(), redis_name.clone())),
        "{planned:?}"
    );
    assert_eq!(env.suma("monitors", "diff", &repo, &["--exit-code"]).code, 1);

    let dry = ok_json(&env.suma("monitors", "apply", &repo, &["--dry-run"]), 1);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        writes_since(before, &env.name),
        Vec::<Value>::new(),
        "a dry run writes nothing"
    );
    let refused = env.suma("monitors", "apply", &repo, &[]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);

    // First apply: eight monitors created; the stranger is left as it was, so the run answers "no" (1).
    let applied = ok_json(&env.suma("monitors", "apply", &repo, &["--yes"]), 1);
    assert!(applied["operation"].is_string(), "journaled: {applied}");
    let created = writes_since(before, &env.name);
    assert_eq!(created.len(), 8, "{created:#?}");
    assert!(created
        .iter()
        .all(|w| w["method"] == "POST" && w["path"] == "/api/v1/monitor"));
    assert!(
        created.iter().all(|w| w["body"]["name"] != redis_name),
        "nothing created in the stranger's name"
    );
    let untouched = dd.monitors_named(&redis_name).await.unwrap();
    assert_eq!(untouched.len(), 1);
    // Listed with its downtimes (none), which a create's answer does not carry.
    let mut listed = untouched[0].definition.clone();
    assert_eq!(listed["matching_downtimes"], json!([]));
    listed.as_object_mut().unwrap().remove("matching_downtimes");
    assert_eq!(listed, stranger.definition, "the stranger is unchanged");

    // Second apply: nothing differs, nothing is sent.
    let mark = writes().len();
    let again = ok_json(&env.suma("monitors", "apply", &repo, &["--yes"]), 1);
    assert_eq!(again["summary"]["unchanged"], 8, "{again}");
    assert_eq!(writes_since(mark, &env.name), Vec::<Value>::new());
    let clean = env.suma("monitors", "diff", &repo, &["--exit-code"]);
    assert_eq!(clean.code, 1, "the conflict still differs");

    // An environment whose Datadog tags are a subset of this one's owns none of its monitors: they are
    // not its orphans, and its pruning apply would delete none of them.
    let broad = Env::with_tags("monb", Some(&["service:auth-service"]));
    let theirs = |report: &Value| -> Vec<(String, String)> {
        actions(report)
            .into_iter()
            .filter(|(_, name)| name.contains(&env.name))
            .collect()
    };
    let diff = ok_json(&broad.suma("monitors", "diff", &repo, &[]), 0);
    assert_eq!(theirs(&diff), Vec::<(String, String)>::new(), "{diff}");
    let pruning = ok_json(&broad.suma("monitors", "apply", &repo, &["--prune", "--dry-run"]), 0);
    assert_eq!(theirs(&pruning), Vec::<(String, String)>::new(), "{pruning}");

    // The canary gate finds the auto-rollback monitor by the environment's tags, and it is not alerting.
    let mut gate = env.tags();
    gate.push("auto-rollback:true".to_owned());
    let gating = dd.monitors_tagged(&gate).await.unwrap();
    assert_eq!(gating.len(), 1, "{gating:?}");
    assert!(gating[0].name.contains("canary auto-rollback"), "{}", gating[0].name);
    assert_eq!(dd.alerting_monitors(&gate).await.unwrap(), []);

    // A threshold changed in a copy of the templates: one field in the diff, one update sent.
    let copy = env.templates_copy();
    let file = copy.join("monitors/high-error-rate.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("    critical: 5\n", "    critical: 4\n")
            .replace("> 5\"", "> 4\""),
    )
    .unwrap();
    let diff = ok_json(&env.suma("monitors", "diff", &copy, &[]), 0);
    let updates: Vec<&Value> = diff["plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "update")
        .collect();
    assert_eq!(updates.len(), 1, "{diff}");
    let changes = updates[0]["changes"].as_array().unwrap();
    let mut paths: Vec<&str> = changes.iter().map(|c| c["path"].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(paths, ["options.thresholds.critical", "query"]);
    let critical = changes
        .iter()
        .find(|c| c["path"] == "options.thresholds.critical")
        .unwrap();
    assert_eq!((&critical["before"], &critical["after"]), (&json!(5.0), &json!(4.0)));
    let mark = writes().len();
    ok_json(&env.suma("monitors", "apply", &copy, &["--yes"]), 1);
    let sent = writes_since(mark, &env.name);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["method"], "PUT");
    assert_eq!(
        sent[0]["path"],
        format!("/api/v1/monitor/{}", updates[0]["id"].as_str().unwrap())
    );
    let mark = writes().len();
    ok_json(&env.suma("monitors", "apply", &copy, &["--yes"]), 1);
    assert_eq!(writes_since(mark, &env.name), Vec::<Value>::new());

    // A template removed: its monitor is reported, kept, and deleted only with --prune.
    std::fs::remove_file(copy.join("monitors/redis-memory.yaml")).unwrap();
    std::fs::remove_file(copy.join("monitors/account-lockout-spike.yaml")).unwrap();
    let diff = ok_json(&env.suma("monitors", "diff", &copy, &[]), 0);
    let lockout = format!("auth-service account lockout spike ({})", env.name);
    assert!(
        actions(&diff).contains(&("orphan".to_owned(), lockout.clone())),
        "{diff}"
    );
    assert!(
        !actions(&diff).iter().any(|(_, n)| n == &redis_name),
        "the stranger is not an orphan: it is not suma's"
    );
    let orphan = diff["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["action"] == "orphan")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mark = writes().len();
    let pruned = ok_json(&env.suma("monitors", "apply", &copy, &["--yes", "--prune"]), 0);
    assert_eq!(pruned["summary"]["delete"], 1, "{pruned}");
    let sent = writes_since(mark, &format!("/api/v1/monitor/{orphan}"));
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["method"], "DELETE");
    assert!(dd.monitors_named(&lockout).await.unwrap().is_empty());
    assert_eq!(
        dd.monitors_named(&redis_name).await.unwrap().len(),
        1,
        "the stranger survives --prune"
    );

    // Leave the shared monitors file as it was.
    let mut ours = dd.monitors_tagged(&env.tags()).await.unwrap();
    ours.extend(dd.monitors_named(&redis_name).await.unwrap());
    for m in ours {
        let _ = dd.delete_monitor(m.id).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitor_renamed_in_its_template_is_updated_in_place_not_recreated() {
    crate::require_sandbox!();
    let env = Env::new("monr");
    let dd = datadog();
    let templates = env.templates_copy();
    ok_json(&env.suma("monitors", "apply", &templates, &["--yes"]), 0);
    let old_name = format!("auth-service account lockout spike ({})", env.name);
    let before = dd.monitors_named(&old_name).await.unwrap();
    assert_eq!(before.len(), 1);
    assert!(
        before[0]
            .tags
            .contains(&"suma-template:account-lockout-spike".to_owned()),
        "{:?}",
        before[0].tags
    );

    let file = templates.join("monitors/account-lockout-spike.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let renamed = text.replace(
        "name: \"auth-service account lockout spike (${env})\"",
        "name: \"auth-service account lockouts above normal (${env})\"",
    );
    assert_ne!(renamed, text, "the template names the monitor as expected");
    std::fs::write(&file, renamed).unwrap();
    let new_name = format!("auth-service account lockouts above normal ({})", env.name);

    let mark = writes().len();
    let applied = ok_json(&env.suma("monitors", "apply", &templates, &["--yes", "--prune"]), 0);
    let planned = actions(&applied);
    assert!(
        planned.contains(&("update".to_owned(), new_name.clone())),
        "{planned:?}"
    );
    for (action, name) in &planned {
        assert!(
            !matches!(action.as_str(), "create" | "orphan" | "delete"),
            "{action} {name}: {planned:?}"
        );
    }
    let item = applied["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == new_name.as_str())
        .unwrap();
    assert!(item["note"].as_str().unwrap().contains("renamed from"), "{item}");
    let sent = writes_since(mark, &env.name);
    assert_eq!(sent.len(), 1, "one update, nothing created or deleted: {sent:#?}");
    assert_eq!(sent[0]["method"], "PUT");
    assert_eq!(sent[0]["path"], format!("/api/v1/monitor/{}", before[0].id).as_str());
    let after = dd.monitors_named(&new_name).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].id, before[0].id,
        "the same monitor, its history and links kept"
    );
    assert!(dd.monitors_named(&old_name).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitor_datadog_refuses_stops_diff_and_apply_before_anything_is_written() {
    crate::require_sandbox!();
    let env = Env::new("monv");
    let templates = env.templates_copy();
    // The query alerts above 5 while the threshold says 10: only Datadog's validation sees that.
    let file = templates.join("monitors/high-error-rate.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let mismatched = text.replace("    critical: 5\n", "    critical: 10\n");
    assert_ne!(mismatched, text);
    std::fs::write(&file, mismatched).unwrap();

    let mark = writes().len();
    let diff = env.suma("monitors", "diff", &templates, &[]);
    assert_eq!(diff.code, 2, "{}", diff.stderr);
    let expected = format!(
        "high-error-rate.yaml: monitor `auth-service high error rate ({})`: Alert threshold (10) does not match that used in the query (5).",
        env.name
    );
    assert!(diff.stderr.contains(&expected), "{}", diff.stderr);
    let apply = env.suma("monitors", "apply", &templates, &["--yes"]);
    assert_eq!(apply.code, 2, "{}", apply.stderr);
    assert!(apply.stderr.contains("nothing was written"), "{}", apply.stderr);
    assert_eq!(
        writes_since(mark, &env.name),
        Vec::<Value>::new(),
        "not even the eight monitors Datadog accepts"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_adopts_a_hand_made_monitor_under_a_template_name_and_apply_keeps_it_from_then_on() {
    crate::require_sandbox!();
    let env = Env::new("moni");
    let dd = datadog();
    let repo = repo_templates();
    let name = format!("auth-service Redis memory high ({})", env.name);
    let hand_made = dd
        .create_monitor(&json!({"name": name, "type": "query alert",
                                "query": "avg(last_15m):avg:aws.elasticache.database_memory_usage_percentage{*} > 90",
                                "message": "made by hand @me", "tags": ["team:identity"],
                                "options": {"thresholds": {"critical": 90}}}))
        .await
        .unwrap();
    let conflicted = ok_json(&env.suma("monitors", "diff", &repo, &[]), 0);
    assert!(
        actions(&conflicted).contains(&("conflict".to_owned(), name.clone())),
        "{conflicted}"
    );

    let dry = ok_json(&env.suma("monitors", "import", &repo, &["--dry-run"]), 0);
    assert_eq!(
        actions(&dry),
        [("adopt".to_owned(), name.clone())],
        "only the conflict: {dry}"
    );
    let mark = writes().len();
    let imported = ok_json(&env.suma("monitors", "import", &repo, &["--yes"]), 0);
    assert!(imported["operation"].is_string(), "journaled: {imported}");
    let sent = writes_since(mark, &env.name);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["method"], "PUT");
    assert_eq!(sent[0]["path"], format!("/api/v1/monitor/{}", hand_made.id).as_str());
    let adopted = dd.monitors_named(&name).await.unwrap();
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].id, hand_made.id, "the same monitor, its history kept");
    for tag in [
        "managed-by:suma",
        &format!("suma-env:{}", env.name),
        "suma-template:redis-memory",
    ] {
        assert!(adopted[0].tags.iter().any(|t| t == tag), "{tag}: {:?}", adopted[0].tags);
    }
    assert!(
        adopted[0].definition["query"].as_str().unwrap().ends_with("> 85"),
        "the template's query"
    );

    // From then on it is apply's: no conflict, nothing left to adopt.
    let planned = actions(&ok_json(&env.suma("monitors", "diff", &repo, &[]), 0));
    assert!(!planned.iter().any(|(a, _)| a == "conflict"), "{planned:?}");
    assert!(planned.contains(&("unchanged".to_owned(), name.clone())), "{planned:?}");
    let again = ok_json(&env.suma("monitors", "import", &repo, &["--dry-run"]), 0);
    assert_eq!(actions(&again), Vec::<(String, String)>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn fields_dropped_from_a_template_are_reset_in_datadog() {
    crate::require_sandbox!();
    let env = Env::new("monf");
    let dd = datadog();
    let templates = env.templates_copy();
    ok_json(&env.suma("monitors", "apply", &templates, &["--yes"]), 0);
    let file = templates.join("monitors/high-error-rate.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let dropped = [
        "  renotify_interval: 30\n",
        "    warning: 2\n",
        "  include_tags: true\n",
    ];
    let trimmed = dropped.iter().fold(text.clone(), |t, line| t.replace(line, ""));
    assert_eq!(trimmed.len() + dropped.concat().len(), text.len());
    std::fs::write(&file, trimmed).unwrap();
    // And by hand in Datadog: the tags left out of notification titles, a delay for new groups.
    let name = format!("auth-service high error rate ({})", env.name);
    let live = &dd.monitors_named(&name).await.unwrap()[0];
    let mut options = live.definition["options"].clone();
    options["include_tags"] = json!(false);
    options["new_group_delay"] = json!(120);
    dd.update_monitor(live.id, &json!({ "options": options }))
        .await
        .unwrap();

    let diff = ok_json(&env.suma("monitors", "diff", &templates, &[]), 0);
    let item = diff["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["action"] == "update")
        .unwrap_or_else(|| panic!("one update: {diff}"));
    let changes: Vec<(&str, &Value, &Value)> = item["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), &c["before"], &c["after"]))
        .collect();
    assert_eq!(
        changes,
        [
            ("options.renotify_interval", &json!(30), &Value::Null),
            ("options.include_tags", &json!(false), &json!(true)),
            ("options.new_group_delay", &json!(120), &Value::Null),
            ("options.thresholds.warning", &json!(2.0), &Value::Null),
        ]
    );
    let mark = writes().len();
    ok_json(&env.suma("monitors", "apply", &templates, &["--yes"]), 0);
    assert_eq!(writes_since(mark, &env.name).len(), 1, "one update");
    let stored = &dd.monitors_named(&name).await.unwrap()[0].definition;
    assert!(stored["options"]["renotify_interval"].is_null(), "{stored}");
    assert_eq!(stored["options"]["include_tags"], true, "{stored}");
    assert!(stored["options"]["new_group_delay"].is_null(), "{stored}");
    assert!(stored["options"]["thresholds"]["warning"].is_null(), "{stored}");
    let mark = writes().len();
    ok_json(&env.suma("monitors", "apply", &templates, &["--yes"]), 0);
    assert_eq!(
        writes_since(mark, &env.name),
        Vec::<Value>::new(),
        "in line after one apply"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mute_and_unmute_by_name_and_id() {
    crate::require_sandbox!();
    let env = Env::new("mute");
    let dd = datadog();
    let name = format!("mute test ({})", env.name);
    let created = dd
        .create_monitor(
            &json!({"name": name, "type": "query alert", "query": "avg(last_5m):avg:x{*} > 1",
                                "message": "@me", "tags": env.tags()}),
        )
        .await
        .unwrap();
    assert_eq!(
        created.definition["overall_state"], "OK",
        "new monitors never block a canary gate"
    );
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    let mark = writes().len();
    let muted = dd
        .mute_monitor(
            &MonitorRef::Name(name.clone()),
            Some("env:staging"),
            Some(end),
            "muted by the mute test",
        )
        .await
        .unwrap();
    assert_eq!(muted.monitor_id, created.id);
    let sent = writes_since(mark, "downtime");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        (&sent[0]["method"], &sent[0]["path"]),
        (&json!("POST"), &json!("/api/v2/downtime"))
    );
    let attributes = &sent[0]["body"]["data"]["attributes"];
    assert_eq!(attributes["monitor_identifier"], json!({"monitor_id": created.id}));
    assert_eq!(attributes["scope"], "env:staging");
    assert_eq!(attributes["message"], "muted by the mute test");
    let summary = dd.monitors(&env.tags()).await.unwrap();
    assert!(
        summary[0].muted,
        "compliance sees the downtime (monitors are read with their downtimes)"
    );

    // More downtimes than Datadog answers in one page (30): the unmute reads every page.
    let mut expected = vec![muted.downtime_id.clone()];
    for n in 0..30 {
        let scope = format!("host:h{n}");
        let more = dd
            .mute_monitor(&MonitorRef::Id(created.id), Some(&scope), Some(end), "paging")
            .await
            .unwrap();
        expected.push(more.downtime_id);
    }
    let unmuted = dd.unmute_monitor(&MonitorRef::Id(created.id), None).await.unwrap();
    let mut cancelled = unmuted.downtimes.clone();
    cancelled.sort();
    expected.sort();
    assert_eq!(cancelled, expected, "all 31 cancelled");
    assert!(!unmuted.legacy);
    assert!(!dd.monitors(&env.tags()).await.unwrap()[0].muted);
    let cancel = writes_since(mark, &muted.downtime_id);
    assert_eq!(cancel[0]["method"], "DELETE", "{cancel:#?}");

    // A monitor muted the old way (`options.silenced`) is unmuted as well.
    let old_way = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/monitor/{}/mute",
            sandbox_var("SUMA_DATADOG_URL"),
            created.id
        ))
        .header("DD-API-KEY", sandbox_var("DD_API_KEY"))
        .header("DD-APPLICATION-KEY", sandbox_var("DD_APP_KEY"))
        .send()
        .await
        .unwrap();
    assert!(old_way.status().is_success());
    assert!(dd.monitors(&env.tags()).await.unwrap()[0].muted);
    let unmuted = dd.unmute_monitor(&MonitorRef::Name(name.clone()), None).await.unwrap();
    assert!(unmuted.legacy && unmuted.downtimes.is_empty(), "{unmuted:?}");
    assert!(!dd.monitors(&env.tags()).await.unwrap()[0].muted);
    let missing = dd
        .mute_monitor(
            &MonitorRef::Name(format!("no such monitor {}", env.name)),
            None,
            None,
            "x",
        )
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("no monitor is named"), "{missing}");
    dd.delete_monitor(created.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_apply_once_and_update_one_widget() {
    crate::require_sandbox!();
    let env = Env::new("dash");
    let dd = datadog();
    let repo = repo_templates();
    let title = format!("auth-service ({})", env.name);

    let diff = ok_json(&env.suma("dashboards", "diff", &repo, &[]), 0);
    assert_eq!(actions(&diff), [("create".to_owned(), title.clone())]);

    let before = writes().len();
    let applied = ok_json(&env.suma("dashboards", "apply", &repo, &["--yes"]), 0);
    let id = applied["plan"][0]["id"].as_str().unwrap().to_owned();
    let sent = writes_since(before, &env.name);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        (&sent[0]["method"], &sent[0]["path"]),
        (&json!("POST"), &json!("/api/v1/dashboard"))
    );
    let stored = dd.dashboard(&id).await.unwrap();
    assert_eq!(stored["layout_type"], "ordered");
    assert!(stored["widgets"][0]["id"].is_i64(), "Datadog numbers the widgets");
    assert!(
        stored["description"].as_str().unwrap().ends_with(&format!(
            "managed-by:suma suma-env:{}\nsuma-template:auth-service",
            env.name
        )),
        "{}",
        stored["description"]
    );

    let mark = writes().len();
    let again = ok_json(&env.suma("dashboards", "apply", &repo, &["--yes"]), 0);
    assert_eq!(again["summary"]["unchanged"], 1);
    assert_eq!(writes_since(mark, &env.name), Vec::<Value>::new());
    assert_eq!(env.suma("dashboards", "diff", &repo, &["--exit-code"]).code, 0);

    // One widget's title changed in a copy: one field, one update.
    let copy = env.templates_copy();
    let file = copy.join("dashboards/auth-service.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("\"Redis CPU (%)\"", "\"Redis engine CPU (%)\"")).unwrap();
    let diff = ok_json(&env.suma("dashboards", "diff", &copy, &["--exit-code"]), 1);
    let changes = &diff["plan"][0]["changes"];
    assert_eq!(changes.as_array().unwrap().len(), 1, "{diff}");
    assert_eq!(changes[0]["path"], "widgets[6].definition.title");
    assert_eq!(changes[0]["before"], "Redis CPU (%)");
    let mark = writes().len();
    ok_json(&env.suma("dashboards", "apply", &copy, &["--yes"]), 0);
    let sent = writes_since(mark, &env.name);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        (&sent[0]["method"], &sent[0]["path"]),
        (&json!("PUT"), &json!(format!("/api/v1/dashboard/{id}")))
    );

    // Renamed in its template into the title of a dashboard that is not suma's: neither is written, ours
    // keeps its title (found by its template, so not an orphan either).
    let renamed = copy.join("dashboards/auth-service.json");
    let text = std::fs::read_to_string(&renamed).unwrap();
    std::fs::write(
        &renamed,
        text.replace("\"auth-service (${env})\"", "\"auth-service overview (${env})\""),
    )
    .unwrap();
    let other_title = format!("auth-service overview ({})", env.name);
    let stranger = dd
        .create_dashboard(
            &json!({"title": other_title, "layout_type": "ordered", "description": "hand-made",
                                  "widgets": [{"definition": {"type": "note", "content": "mine"}}]}),
        )
        .await
        .unwrap();
    let mark = writes().len();
    let conflicted = ok_json(&env.suma("dashboards", "apply", &copy, &["--yes"]), 1);
    assert_eq!(actions(&conflicted), [("conflict".to_owned(), other_title.clone())]);
    assert_eq!(conflicted["plan"][0]["id"], id.as_str(), "{conflicted}");
    assert_eq!(writes_since(mark, &env.name), Vec::<Value>::new());
    assert_eq!(dd.dashboard(&stranger).await.unwrap()["description"], "hand-made");

    dd.delete_dashboard(&stranger).await.unwrap();
    dd.delete_dashboard(&id).await.unwrap();
}
