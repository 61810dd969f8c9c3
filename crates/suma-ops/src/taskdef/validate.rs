//! Checks of a rendered task definition against what the environment and suma's security baseline expect:
//! a valid Fargate size, the configured container and port, a non-root user, a read-only root filesystem,
//! and no secret in plain environment variables. Pure; every problem is reported, not only the first.

use serde::Serialize;

use super::model::{ContainerDefinition, TaskDefinitionSpec};

/// What the environment's configuration says the task definition must hold.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// `ecs.container`.
    pub container: &'a str,
    /// `ecs.container_port`.
    pub container_port: u16,
}

/// One failed check: the key it is about and what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// The Fargate task sizes: CPU units and the memory (MiB) each allows.
fn fargate_memory(cpu: u32) -> Option<Vec<u32>> {
    let gib = |from: u32, to: u32, step: u32| (from..=to).step_by(step as usize).map(|g| g * 1024).collect();
    Some(match cpu {
        256 => vec![512, 1024, 2048],
        512 => gib(1, 4, 1),
        1024 => gib(2, 8, 1),
        2048 => gib(4, 16, 1),
        4096 => gib(8, 30, 1),
        8192 => gib(16, 60, 4),
        16384 => gib(32, 120, 8),
        _ => return None,
    })
}

/// Every problem of `spec` against `expect`; empty when it is fine.
pub fn validate(spec: &TaskDefinitionSpec, expect: &Expectations<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut push = |key: String, message: String| problems.push(Problem { key, message });
    if spec.family.trim().is_empty() {
        push("family".into(), "is empty".into());
    }
    let fargate = spec.requires_compatibilities.iter().any(|c| c == "FARGATE");
    if fargate && spec.network_mode.as_deref() != Some("awsvpc") {
        push(
            "networkMode".into(),
            format!(
                "is {}, but Fargate needs `awsvpc`",
                spec.network_mode
                    .as_deref()
                    .map_or("unset".to_owned(), |m| format!("`{m}`"))
            ),
        );
    }
    match (spec.cpu.as_deref(), spec.memory.as_deref()) {
        (Some(cpu), Some(memory)) => {
            match (cpu.trim().parse::<u32>(), memory.trim().parse::<u32>()) {
                (Ok(cpu), Ok(memory)) => match fargate_memory(cpu) {
                    None if fargate => push(
                        "cpu".into(),
                        format!("{cpu} is not a Fargate CPU size: use 256, 512, 1024, 2048, 4096, 8192 or 16384"),
                    ),
                    Some(allowed) if fargate && !allowed.contains(&memory) => push(
                        "memory".into(),
                        format!(
                            "{memory} MiB is not valid with cpu {cpu} on Fargate: use {} to {} MiB{}",
                            allowed[0],
                            allowed[allowed.len() - 1],
                            if allowed.len() > 3 {
                                format!(" in steps of {}", allowed[1] - allowed[0])
                            } else {
                                format!(" ({})", allowed.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))
                            }
                        ),
                    ),
                    _ => {}
                },
                _ => push(
                    "cpu".into(),
                    format!("cpu `{cpu}` and memory `{memory}` must be whole numbers (CPU units and MiB, e.g. \"1024\" and \"2048\")"),
                ),
            }
        }
        _ if fargate => push("cpu".into(), "Fargate needs both task-level `cpu` and `memory`".into()),
        _ => {}
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in spec.container_definitions.iter().enumerate() {
        if !seen.insert(c.name.as_str()) {
            push(
                format!("containerDefinitions[{i}].name"),
                format!("container `{}` is defined twice", c.name),
            );
        }
    }
    match spec
        .container_definitions
        .iter()
        .position(|c| c.name == expect.container)
    {
        None => push(
            "containerDefinitions".into(),
            format!(
                "no container is named `{}` (the configuration's `ecs.container`); found {}",
                expect.container,
                spec.container_definitions
                    .iter()
                    .map(|c| format!("`{}`", c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(i) => {
            let c = &spec.container_definitions[i];
            let at = |key: &str| format!("containerDefinitions[{i}].{key}");
            if !c
                .port_mappings
                .iter()
                .any(|p| p.container_port == i32::from(expect.container_port))
            {
                push(
                    at("portMappings"),
                    format!(
                        "no mapping of port {} (the configuration's `ecs.container_port`, which the load balancer targets)",
                        expect.container_port
                    ),
                );
            }
        }
    }
    for (i, c) in spec.container_definitions.iter().enumerate() {
        container_problems(i, c, &mut push);
        for (j, m) in c.mount_points.iter().enumerate() {
            if !spec.volumes.iter().any(|v| v.name == m.source_volume) {
                push(
                    format!("containerDefinitions[{i}].mountPoints[{j}].sourceVolume"),
                    format!("volume `{}` is not declared under `volumes`", m.source_volume),
                );
            }
        }
    }
    problems
}

fn container_problems(i: usize, c: &ContainerDefinition, push: &mut impl FnMut(String, String)) {
    let at = |key: &str| format!("containerDefinitions[{i}].{key}");
    if c.image.trim().is_empty() {
        push(at("image"), format!("container `{}` has no image", c.name));
    } else if !c.image.contains(':') && !c.image.contains('@') || c.image.ends_with(":latest") {
        push(
            at("image"),
            format!(
                "`{}` is not pinned: name a tag or digest other than `latest`, so a revision can be rolled back to",
                c.image
            ),
        );
    }
    match c.user.as_deref().map(str::trim) {
        None | Some("") => push(
            at("user"),
            format!("container `{}` sets no user, so it runs as the image's (often root): set a non-root uid, e.g. \"10001\"", c.name),
        ),
        Some(user) => {
            let uid = user.split(':').next().unwrap_or_default();
            if uid == "0" || uid == "root" {
                push(at("user"), format!("container `{}` runs as root (`{user}`): use a non-root uid, e.g. \"10001\"", c.name));
            }
        }
    }
    if c.readonly_root_filesystem != Some(true) {
        push(
            at("readonlyRootFilesystem"),
            format!("container `{}` must have a read-only root filesystem (`readonlyRootFilesystem: true`); mount a volume where it must write", c.name),
        );
    }
    let secret_names: std::collections::BTreeSet<&str> = c.secrets.iter().map(|s| s.name.as_str()).collect();
    let mut names = std::collections::BTreeSet::new();
    for (j, e) in c.environment.iter().enumerate() {
        if !names.insert(e.name.as_str()) {
            push(at(&format!("environment[{j}]")), format!("`{}` is set twice", e.name));
        }
        if secret_names.contains(e.name.as_str()) {
            push(
                at(&format!("environment[{j}]")),
                format!(
                    "`{}` is both a plain variable and a secret; keep only the secret",
                    e.name
                ),
            );
        } else if let Some(why) = crate::plaintext_secret::judge(&e.name, &e.value) {
            push(
                at(&format!("environment[{j}]")),
                format!(
                    "`{}` looks like a secret in a plain variable ({why}): move it to `secrets` with `valueFrom` a Secrets Manager ARN",
                    e.name
                ),
            );
        }
    }
    for (j, s) in c.secrets.iter().enumerate() {
        if s.value_from.trim().is_empty() {
            push(
                at(&format!("secrets[{j}].valueFrom")),
                format!("secret `{}` has no `valueFrom`", s.name),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taskdef::model::*;

    fn good() -> TaskDefinitionSpec {
        TaskDefinitionSpec {
            family: "auth-service".into(),
            network_mode: Some("awsvpc".into()),
            requires_compatibilities: vec!["FARGATE".into()],
            cpu: Some("1024".into()),
            memory: Some("2048".into()),
            container_definitions: vec![ContainerDefinition {
                name: "auth-service".into(),
                image: "repo/auth-service:1.5.0".into(),
                user: Some("10001".into()),
                readonly_root_filesystem: Some(true),
                port_mappings: vec![PortMapping {
                    container_port: 8080,
                    ..PortMapping::default()
                }],
                environment: vec![
                    EnvironmentVariable {
                        name: "JWT_KEYS_SECRET_ID".into(),
                        value: "/suma-finance/auth/staging/jwt-signing-key".into(),
                    },
                    EnvironmentVariable {
                        name: "REDIS_KEY_PREFIX".into(),
                        value: "auth:".into(),
                    },
                ],
                secrets: vec![SecretVariable {
                    name: "DATABASE_URL".into(),
                    value_from: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x".into(),
                }],
                ..ContainerDefinition::default()
            }],
            ..TaskDefinitionSpec::default()
        }
    }

    const EXPECT: Expectations<'static> = Expectations {
        container: "auth-service",
        container_port: 8080,
    };

    fn keys(spec: &TaskDefinitionSpec) -> Vec<String> {
        validate(spec, &EXPECT).into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_good_definition_passes() {
        assert_eq!(validate(&good(), &EXPECT), []);
    }

    #[test]
    fn fargate_sizes() {
        for (cpu, memory, ok) in [
            ("1024", "2048", true),
            ("1024", "8192", true),
            ("1024", "1024", false),
            ("256", "2048", true),
            ("256", "3072", false),
            ("8192", "20480", true),
            ("8192", "18432", false),
            ("1000", "2048", false),
            ("1 vCPU", "2 GB", false),
        ] {
            let mut spec = good();
            spec.cpu = Some(cpu.into());
            spec.memory = Some(memory.into());
            assert_eq!(
                keys(&spec).is_empty(),
                ok,
                "cpu {cpu} memory {memory}: {:?}",
                validate(&spec, &EXPECT)
            );
        }
        let mut spec = good();
        spec.memory = None;
        assert_eq!(keys(&spec), ["cpu"]);
        spec = good();
        spec.network_mode = Some("bridge".into());
        assert_eq!(keys(&spec), ["networkMode"]);
    }

    #[test]
    fn container_and_port_come_from_the_configuration() {
        let mut spec = good();
        spec.container_definitions[0].port_mappings[0].container_port = 3000;
        assert_eq!(keys(&spec), ["containerDefinitions[0].portMappings"]);
        spec = good();
        spec.container_definitions[0].name = "app".into();
        let problems = validate(&spec, &EXPECT);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("no container is named `auth-service`"),
            "{problems:?}"
        );
    }

    #[test]
    fn root_writable_and_unpinned_containers_fail() {
        let mut spec = good();
        let c = &mut spec.container_definitions[0];
        c.user = Some("0:0".into());
        c.readonly_root_filesystem = None;
        c.image = "repo/auth-service:latest".into();
        assert_eq!(
            keys(&spec),
            [
                "containerDefinitions[0].image",
                "containerDefinitions[0].user",
                "containerDefinitions[0].readonlyRootFilesystem"
            ]
        );
        spec.container_definitions[0].user = None;
        assert!(keys(&spec).contains(&"containerDefinitions[0].user".to_owned()));
    }

    #[test]
    fn secrets_in_plain_variables_fail() {
        for (name, value, secret) in [
            ("DB_PASSWORD", "hunter2", true),
            ("RESET_TOKEN_KEYS", "k1:abc", true),
            ("API_KEY", "x", true),
            ("CLIENT_SECRET", "x", true),
            ("DATABASE_URL", "postgres://auth:s3cr3t@db/auth", true),
            ("SIGNING", "-----BEGIN PRIVATE KEY-----", true),
            (
                "JWT_KEYS_SECRET_ID",
                "/suma-finance/auth/staging/jwt-signing-key",
                false,
            ),
            ("ACCESS_TOKEN_TTL", "900", false),
            ("REDIS_KEY_PREFIX", "auth:", false),
            ("JWT_KEYS_RELOAD_INTERVAL", "60", false),
            ("KEYBOARD_LAYOUT", "us", false),
            ("APP_ENV", "staging", false),
        ] {
            assert_eq!(
                crate::plaintext_secret::judge(name, value).is_some(),
                secret,
                "{name}={value}"
            );
        }
        let mut spec = good();
        spec.container_definitions[0].environment.push(EnvironmentVariable {
            name: "DATABASE_URL".into(),
            value: "postgres://db/auth".into(),
        });
        let problems = validate(&spec, &EXPECT);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("both a plain variable and a secret"),
            "{problems:?}"
        );
    }
}
