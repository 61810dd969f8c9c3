//! The task definition as suma models it: the `RegisterTaskDefinition` request in its JSON shape (camelCase),
//! restricted to the fields a Fargate service uses. Unknown fields are refused, so a misspelt key in a
//! template (`readOnlyRootFilesystem`) fails at render time instead of being silently dropped on register.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// What `RegisterTaskDefinition` takes, and what a live revision is compared on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinitionSpec {
    pub family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    /// `awsvpc` on Fargate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires_compatibilities: Vec<String>,
    /// Task CPU units as ECS spells them: a string (`"1024"`); a number is accepted.
    #[serde(
        default,
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu: Option<String>,
    /// Task memory in MiB, a string (`"2048"`); a number is accepted.
    #[serde(
        default,
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<RuntimePlatform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// Fargate task storage volumes (bind mounts of the task's ephemeral storage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    pub container_definitions: Vec<ContainerDefinition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimePlatform {
    /// `X86_64` or `ARM64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_architecture: Option<String>,
    /// `LINUX`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system_family: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EphemeralStorage {
    #[serde(rename = "sizeInGiB")]
    pub size_in_gib: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
    /// `uid`, `uid:gid` or a user name; never root for suma.
    #[serde(
        default,
        deserialize_with = "opt_scalar_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_point: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<EnvironmentVariable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretVariable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    /// Seconds between SIGTERM and SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub docker_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    pub container_port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    /// `tcp` (the default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `http`, `http2` or `grpc` (Service Connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// A plain environment variable: visible to anyone who can describe the task definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentVariable {
    pub name: String,
    #[serde(deserialize_with = "scalar_string")]
    pub value: String,
}

/// A variable ECS fills at task start from Secrets Manager (or SSM Parameter Store).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretVariable {
    pub name: String,
    pub value_from: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ulimit {
    /// e.g. `nofile`.
    pub name: String,
    pub soft_limit: i32,
    pub hard_limit: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinuxParameters {
    /// Runs an init process as PID 1 that forwards signals and reaps zombies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_process_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfiguration {
    /// `awslogs`, `awsfirelens`, ...
    pub log_driver: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_options: Vec<SecretVariable>,
}

impl TaskDefinitionSpec {
    pub fn container(&self, name: &str) -> Option<&ContainerDefinition> {
        self.container_definitions.iter().find(|c| c.name == name)
    }

    /// Applies `change` to the container `name`; false when there is no such container.
    pub fn change_container(&mut self, name: &str, change: &ContainerChange) -> bool {
        let Some(container) = self.container_definitions.iter_mut().find(|c| c.name == name) else {
            return false;
        };
        if let Some(image) = &change.image {
            container.image.clone_from(image);
        }
        for (name, value) in &change.environment {
            container.environment.retain(|v| &v.name != name);
            container.environment.push(EnvironmentVariable {
                name: name.clone(),
                value: value.clone(),
            });
        }
        true
    }
}

/// What a new revision changes in one container; everything else is copied from the base revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerChange {
    /// The new image, or the base's.
    pub image: Option<String>,
    /// Plain variables set (added, or replacing the base's value).
    pub environment: Vec<(String, String)>,
}

impl ContainerChange {
    /// One variable set, nothing else changed.
    pub fn variable(name: &str, value: &str) -> Self {
        Self {
            image: None,
            environment: vec![(name.to_owned(), value.to_owned())],
        }
    }
}

/// A YAML scalar (string, number or bool) as a string: `value: 8080` means `"8080"` to ECS.
fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(match Scalar::deserialize(d)? {
        Scalar::S(s) => s,
        Scalar::I(i) => i.to_string(),
        Scalar::F(f) => f.to_string(),
        Scalar::B(b) => b.to_string(),
    })
}

fn opt_scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    scalar_string(d).map(Some)
}
