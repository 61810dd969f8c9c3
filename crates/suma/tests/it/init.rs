//! `suma init` against moto: a lock table created with suma's key schema, point-in-time recovery and
//! deletion protection and the operations index, then used by a real lock; a second run changes nothing;
//! a table with another key schema is refused and left alone; a table made before the operations index
//! gets it, and its journal stays listed.

use crate::common;

use common::{json, run, sandbox_config, suma, unique};

/// The sandbox configuration with `lock.table` renamed: the file's directory, its path, the table.
fn config_with_table(table: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let text = std::fs::read_to_string(sandbox_config()).unwrap();
    let mut config: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    config["lock"]["table"] = serde_norway::Value::String(table.to_owned());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suma.yaml");
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    (dir, path)
}

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    let region = common::lock_region();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.as_str().to_owned()))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// A table made outside suma, keyed by the string partition key `key` alone (no index, no protection).
async fn create_table_keyed_by(client: &aws_sdk_dynamodb::Client, table: &str, key: &str) {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    client
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn init_creates_a_hardened_lock_table_that_locks_work_on() {
    crate::require_sandbox!();
    let table = unique("suma-init");
    let (_dir, config) = config_with_table(&table);
    let config = config.to_str().unwrap();

    let dry = run(suma(&["--config", config, "init", "--dry-run", "--output", "json"]));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let plan = json(&dry);
    let steps: Vec<&str> = plan["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["create-table", "enable-point-in-time-recovery"]);
    let client = dynamodb().await;
    let missing = client.describe_table().table_name(&table).send().await;
    assert!(missing.is_err(), "a dry run creates nothing");

    let refused = run(suma(&["--config", config, "init"]));
    assert_eq!(refused.code, 2, "no terminal and no --yes: {}", refused.stderr);

    let out = run(suma(&["--config", config, "init", "--yes", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json(&out)["changed"], true);
    // Read back through the SDK, not through suma.
    let described = client.describe_table().table_name(&table).send().await.unwrap();
    let described = described.table.unwrap();
    let key = &described.key_schema()[0];
    assert_eq!(described.key_schema().len(), 1);
    assert_eq!(key.attribute_name(), "pk");
    assert_eq!(key.key_type().as_str(), "HASH");
    assert_eq!(described.attribute_definitions()[0].attribute_type().as_str(), "S");
    assert_eq!(described.deletion_protection_enabled(), Some(true));
    assert!(
        described
            .global_secondary_indexes()
            .iter()
            .any(|i| i.index_name() == Some(suma::aws::dynamodb::OPERATIONS_INDEX)),
        "created with the operations index: {described:?}"
    );
    let backups = client
        .describe_continuous_backups()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let pitr = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_owned());
    assert_eq!(pitr.as_deref(), Some("ENABLED"));

    // A second run finds nothing to do.
    let again = run(suma(&["--config", config, "init", "--yes", "--output", "json"]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(json(&again)["changed"], false);
    // A dry run on a ready table still answers in the one dry-run shape, with nothing planned.
    let ready = run(suma(&["--config", config, "init", "--dry-run", "--output", "json"]));
    assert_eq!(ready.code, 0, "{}", ready.stderr);
    assert_eq!(json(&ready)["dry_run"], true, "{}", ready.stdout);
    assert_eq!(json(&ready)["plan"], serde_json::json!([]), "{}", ready.stdout);

    // The table serves suma's lock: nobody holds staging's lock in a new table.
    let status = run(suma(&[
        "--config", config, "lock", "status", "--env", "staging", "--output", "json",
    ]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(json(&status)["lock"].is_null(), "{}", status.stdout);
}

#[tokio::test]
async fn init_refuses_a_table_keyed_another_way_and_leaves_it() {
    crate::require_sandbox!();
    let table = unique("suma-init-foreign");
    let client = dynamodb().await;
    create_table_keyed_by(&client, &table, "id").await;
    let (_dir, config) = config_with_table(&table);
    let out = run(suma(&["--config", config.to_str().unwrap(), "init", "--yes"]));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("`id` (S, HASH)") && out.stderr.contains("hint: set `lock.table`"),
        "{}",
        out.stderr
    );
    let described = client.describe_table().table_name(&table).send().await.unwrap();
    assert_ne!(
        described.table.unwrap().deletion_protection_enabled(),
        Some(true),
        "a refused table is not changed"
    );
}

/// A table made before the operations index: `ops list` still lists its operations (a scan), and
/// `suma init` adds the index and gives the operations journaled before it their `started_at`, so the
/// listing after it, a query of the index, finds them too.
#[tokio::test]
async fn init_indexes_a_table_made_before_the_operations_index_and_keeps_its_journal_listed() {
    crate::require_sandbox!();
    use aws_sdk_dynamodb::types::AttributeValue;
    let table = unique("suma-init-old");
    let client = dynamodb().await;
    create_table_keyed_by(&client, &table, "pk").await;
    // An operation as the journal wrote it before the index: no `started_at` attribute.
    let old = suma::journal::Operation::new("deploy-canary", "staging", "e2e-before-the-index", Vec::new());
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(format!("op#{}", old.id)))
        .item("environment", AttributeValue::S("staging".to_owned()))
        .item("status", AttributeValue::S(old.status.as_str().to_owned()))
        .item("document", AttributeValue::S(serde_json::to_string(&old).unwrap()))
        .send()
        .await
        .unwrap();
    let (_dir, config) = config_with_table(&table);
    let config = config.to_str().unwrap();
    let listed = |what: &str| {
        let out = run(suma(&[
            "--config", config, "ops", "list", "--env", "staging", "--output", "json",
        ]));
        assert_eq!(out.code, 0, "{what}: {}", out.stderr);
        json(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed("before init"),
        std::slice::from_ref(&old.id),
        "listed by a scan without the index"
    );

    let out = run(suma(&["--config", config, "init", "--yes", "--output", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let index = described
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(suma::aws::dynamodb::OPERATIONS_INDEX))
        .unwrap_or_else(|| panic!("no operations index: {described:?}"));
    let keys: Vec<&str> = index.key_schema().iter().map(|k| k.attribute_name()).collect();
    assert_eq!(keys, ["environment", "started_at"]);
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("op#{}", old.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        item.item()
            .and_then(|i| i.get("started_at"))
            .and_then(|v| v.as_s().ok()),
        Some(&suma::aws::dynamodb::started_at_key(old.started_at)),
        "backfilled from the document"
    );
    assert_eq!(
        listed("after init"),
        std::slice::from_ref(&old.id),
        "listed by the index"
    );
}
