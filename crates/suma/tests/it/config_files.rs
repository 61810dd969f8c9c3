//! The shipped configuration template and JSON Schema stay valid and in sync with the code.

use suma::config::{parse_str, ConfigFile};

#[test]
fn example_config_is_valid_and_describes_the_topology() {
    let path = crate::common::workspace_root().join("deploy/suma.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = parse_str(&text, &path)
        .unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")));
    let production = config.environment("production").unwrap();
    assert_eq!(production.primary_region.as_str(), "eu-west-1");
    assert_eq!(production.dr_region.as_str(), "eu-central-1");
    assert_eq!(production.ecs.cluster, "suma-finance-production");
    assert_eq!(
        (
            production.ecs.service.as_str(),
            production.ecs.desired_count,
            production.ecs.container_port
        ),
        ("auth-service", 4, 8080)
    );
    assert_eq!(production.dns.record_name, "auth.suma-finance.com");
    assert!(production
        .rds
        .replica
        .as_ref()
        .is_some_and(|r| r.region.as_str() == "eu-central-1"));
    for name in ["db-password", "jwt-signing-key", "encryption-key", "hmac-signing-key"] {
        let id = format!("/suma-finance/auth/production/{name}");
        assert!(production.secrets.iter().any(|s| s.id == id), "missing secret {id}");
    }
    assert!(config.environment("staging").is_ok());
}

#[test]
fn published_schema_is_current() {
    let path = crate::common::workspace_root().join("templates/suma.schema.json");
    let expected = serde_json::to_string_pretty(&ConfigFile::json_schema()).unwrap() + "\n";
    if std::env::var_os("SUMA_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == expected,
        "templates/suma.schema.json is stale: regenerate it with `SUMA_UPDATE_SCHEMA=1 cargo test -p suma --test it config_files`"
    );
}

#[test]
fn schema_names_every_top_level_key_and_rejects_unknown_ones() {
    let schema = ConfigFile::json_schema();
    let properties = schema["properties"].as_object().unwrap();
    for key in ["version", "defaults", "lock", "analysis_templates", "environments"] {
        assert!(properties.contains_key(key), "{key}");
    }
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
}
