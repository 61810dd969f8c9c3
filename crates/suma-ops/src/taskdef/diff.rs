//! Comparing a rendered task definition with a live revision, field by field.
//!
//! Both sides go through [`normalise`] first: what ECS fills in by itself (a container `cpu` of 0,
//! `essential: true`, the `tcp` protocol, a host port equal to the container port under `awsvpc`, the
//! health check's defaults) is dropped, and lists whose order means nothing (variables, secrets,
//! compatibilities, volumes) are sorted. The revision's own metadata (ARN, revision, status, registration
//! time, `requiresAttributes`, `compatibilities`) never reaches the model, so it is never compared.
//! Named lists become maps keyed by name, so a change reads
//! `containerDefinitions.auth-service.environment.APP_ENV` rather than an index.

use serde::Serialize;
use serde_json::{Map, Value};

use super::model::TaskDefinitionSpec;

/// One field that differs; `None` on a side where the field is absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub live: Option<Value>,
    pub rendered: Option<Value>,
}

/// The spec without what ECS adds by itself, as JSON with named lists keyed by name.
pub fn normalise(spec: &TaskDefinitionSpec) -> Value {
    let mut spec = spec.clone();
    let awsvpc = spec.network_mode.as_deref() == Some("awsvpc");
    spec.requires_compatibilities.sort();
    spec.volumes.sort_by(|a, b| a.name.cmp(&b.name));
    for c in &mut spec.container_definitions {
        if c.cpu == Some(0) {
            c.cpu = None;
        }
        if c.essential == Some(true) {
            c.essential = None;
        }
        for p in &mut c.port_mappings {
            if p.protocol.as_deref() == Some("tcp") {
                p.protocol = None;
            }
            if awsvpc && p.host_port == Some(p.container_port) {
                p.host_port = None;
            }
        }
        for m in &mut c.mount_points {
            if m.read_only == Some(false) {
                m.read_only = None;
            }
        }
        if let Some(h) = &mut c.health_check {
            for (field, default) in [
                (&mut h.interval, 30),
                (&mut h.timeout, 5),
                (&mut h.retries, 3),
                (&mut h.start_period, 0),
            ] {
                if *field == Some(default) {
                    *field = None;
                }
            }
        }
        if let Some(l) = &mut c.linux_parameters {
            if let Some(caps) = &mut l.capabilities {
                caps.add.sort();
                caps.drop.sort();
            }
        }
    }
    let mut value = serde_json::to_value(&spec).expect("task definitions always serialize");
    if let Some(containers) = value.get_mut("containerDefinitions") {
        for c in containers.as_array_mut().into_iter().flatten() {
            for (list, field) in [("environment", "value"), ("secrets", "valueFrom")] {
                if let Some(items) = c.get_mut(list) {
                    *items = by_name(items, Some(field));
                }
            }
            if let Some(options) = c.pointer_mut("/logConfiguration/secretOptions") {
                *options = by_name(options, Some("valueFrom"));
            }
            if let Some(items) = c.get_mut("ulimits") {
                *items = by_name(items, None);
            }
        }
        *containers = by_name(containers, None);
    }
    if let Some(volumes) = value.get_mut("volumes") {
        *volumes = by_name(volumes, None);
    }
    value
}

/// `[{"name": "A", ...}]` as `{"A": ...}`: the whole object, or only `field` of it.
fn by_name(list: &Value, field: Option<&str>) -> Value {
    let mut map = Map::new();
    for item in list.as_array().into_iter().flatten() {
        let name = item.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut item = item.clone();
        let value = match field {
            Some(f) => item.get(f).cloned().unwrap_or(Value::Null),
            None => {
                if let Some(obj) = item.as_object_mut() {
                    obj.remove("name");
                }
                item
            }
        };
        map.insert(name, value);
    }
    Value::Object(map)
}

/// What differs between the live revision and the rendered template, in a stable order.
pub fn diff(live: &TaskDefinitionSpec, rendered: &TaskDefinitionSpec) -> Vec<Change> {
    let mut changes = Vec::new();
    compare("", &normalise(live), &normalise(rendered), &mut changes);
    changes
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn compare(path: &str, live: &Value, rendered: &Value, out: &mut Vec<Change>) {
    match (live, rendered) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let at = join(path, key);
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => compare(&at, x, y, out),
                    (x, y) => out.push(Change {
                        path: at,
                        live: x.cloned(),
                        rendered: y.cloned(),
                    }),
                }
            }
        }
        (a, b) if a != b => out.push(Change {
            path: path.to_owned(),
            live: Some(a.clone()),
            rendered: Some(b.clone()),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taskdef::model::*;

    fn spec() -> TaskDefinitionSpec {
        TaskDefinitionSpec {
            family: "auth-service".into(),
            network_mode: Some("awsvpc".into()),
            requires_compatibilities: vec!["FARGATE".into()],
            cpu: Some("1024".into()),
            memory: Some("2048".into()),
            container_definitions: vec![ContainerDefinition {
                name: "auth-service".into(),
                image: "repo/auth-service:1.5.0".into(),
                port_mappings: vec![PortMapping {
                    container_port: 8080,
                    ..PortMapping::default()
                }],
                environment: vec![
                    EnvironmentVariable {
                        name: "APP_ENV".into(),
                        value: "staging".into(),
                    },
                    EnvironmentVariable {
                        name: "PORT".into(),
                        value: "8080".into(),
                    },
                ],
                health_check: Some(HealthCheck {
                    command: vec!["CMD-SHELL".into(), "true".into()],
                    interval: Some(15),
                    ..HealthCheck::default()
                }),
                ..ContainerDefinition::default()
            }],
            ..TaskDefinitionSpec::default()
        }
    }

    #[test]
    fn what_ecs_fills_in_is_not_a_difference() {
        let rendered = spec();
        let mut live = spec();
        let c = &mut live.container_definitions[0];
        c.cpu = Some(0);
        c.essential = Some(true);
        c.port_mappings[0].protocol = Some("tcp".into());
        c.port_mappings[0].host_port = Some(8080);
        c.environment.reverse();
        c.health_check.as_mut().unwrap().retries = Some(3);
        c.health_check.as_mut().unwrap().timeout = Some(5);
        assert_eq!(diff(&live, &rendered), []);
    }

    #[test]
    fn differences_are_named_by_path() {
        let rendered = spec();
        let mut live = spec();
        live.memory = Some("4096".into());
        let c = &mut live.container_definitions[0];
        c.environment[0].value = "production".into();
        c.environment.pop();
        c.secrets.push(SecretVariable {
            name: "DB_PASSWORD".into(),
            value_from: "arn:x".into(),
        });
        c.user = Some("10001".into());
        let changes = diff(&live, &rendered);
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "containerDefinitions.auth-service.environment.APP_ENV",
                "containerDefinitions.auth-service.environment.PORT",
                "containerDefinitions.auth-service.secrets",
                "containerDefinitions.auth-service.user",
                "memory"
            ]
        );
        assert_eq!(changes[0].live, Some(Value::from("production")));
        assert_eq!(changes[0].rendered, Some(Value::from("staging")));
        assert_eq!(changes[1].live, None, "PORT is only in the template");
        assert_eq!(changes[3].rendered, None, "no user in the template");
    }
}
