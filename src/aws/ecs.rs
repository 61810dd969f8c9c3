//! ECS: services, their deployments, and task definitions.

use async_trait::async_trait;
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{to_chrono, AwsError, AwsErrorKind};

/// A service's state as `suma status` and the deploy logic see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EcsService {
    pub name: String,
    pub status: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub task_definition: String,
    pub deployments: Vec<EcsDeployment>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EcsDeployment {
    pub id: String,
    /// `PRIMARY`, `ACTIVE` or `INACTIVE`.
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED` (ECS deployment circuit breaker).
    pub rollout_state: Option<String>,
    pub rollout_reason: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDefinition {
    pub arn: String,
    pub family: String,
    pub revision: i32,
    /// `ACTIVE` or `INACTIVE` (deregistered).
    pub status: String,
    pub containers: Vec<ContainerImage>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerImage {
    pub name: String,
    pub image: String,
}

/// `family:revision` of a task-definition ARN or reference.
pub fn task_definition_label(arn_or_ref: &str) -> &str {
    arn_or_ref.rsplit('/').next().unwrap_or(arn_or_ref)
}

#[async_trait]
pub trait EcsApi: Send + Sync {
    /// The named services of a cluster; a service that does not exist is a `NotFound` error.
    async fn describe_services(&self, cluster: &str, services: &[String]) -> Result<Vec<EcsService>, AwsError>;
    async fn describe_task_definition(&self, reference: &str) -> Result<TaskDefinition, AwsError>;
    /// Registers a new revision of `base` that differs only in `container`'s image.
    async fn register_with_image(&self, base: &str, container: &str, image: &str) -> Result<TaskDefinition, AwsError>;
    async fn update_service(&self, cluster: &str, service: &str, update: &ServiceUpdate) -> Result<(), AwsError>;
    /// Registers a new revision of `base` that differs only in `container`'s environment variable `name`.
    async fn register_with_environment(
        &self,
        base: &str,
        container: &str,
        name: &str,
        value: &str,
    ) -> Result<TaskDefinition, AwsError> {
        let _ = (container, name, value);
        Err(AwsError::new(
            "ECS",
            "RegisterTaskDefinition",
            base,
            AwsErrorKind::Other,
            "not supported by this client",
        ))
    }
}

/// A change to a service; `None` leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceUpdate {
    pub task_definition: Option<String>,
    pub desired_count: Option<i32>,
    /// Start new tasks even if nothing changed (tasks re-read secrets at start).
    pub force_new_deployment: bool,
}

/// Where a service's rollout to a task definition stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    InProgress,
    Completed,
    /// The ECS deployment circuit breaker stopped it.
    Failed(String),
}

impl EcsService {
    /// Whether the service runs `task_definition` (ARN) and its rollout has finished.
    pub fn rollout(&self, task_definition: &str) -> Rollout {
        if self.task_definition != task_definition {
            return Rollout::InProgress;
        }
        let Some(primary) = self.deployments.iter().find(|d| d.status == "PRIMARY") else {
            return Rollout::InProgress;
        };
        if primary.task_definition != task_definition {
            // ECS creates a PRIMARY deployment for the new revision in the same call that changes the
            // service's task definition, so no deployment naming it means a stand-in that does not
            // track deployments (moto): judge by the service's own counts then.
            let tracked = self.deployments.iter().any(|d| d.task_definition == task_definition);
            return if !tracked && self.running == self.desired && self.pending == 0 {
                Rollout::Completed
            } else {
                Rollout::InProgress
            };
        }
        // A sole deployment always carries the service's own counts on ECS; counts that disagree are a
        // stand-in's stale record of an earlier deployment (moto never updates it): judge by the service then.
        if self.deployments.len() == 1 && (primary.running != self.running || primary.desired != self.desired) {
            return if self.running == self.desired && self.pending == 0 {
                Rollout::Completed
            } else {
                Rollout::InProgress
            };
        }
        match primary.rollout_state.as_deref() {
            Some("FAILED") => Rollout::Failed(primary.rollout_reason.clone().unwrap_or_default()),
            Some("COMPLETED") => Rollout::Completed,
            // Without the circuit breaker there is no rollout state: done when alone and at capacity.
            None if self.deployments.len() == 1 && primary.running == primary.desired => Rollout::Completed,
            _ => Rollout::InProgress,
        }
    }
}

pub struct SdkEcs {
    client: aws_sdk_ecs::Client,
}

impl SdkEcs {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_ecs::Client::new(config),
        }
    }
}

#[async_trait]
impl EcsApi for SdkEcs {
    async fn describe_services(&self, cluster: &str, services: &[String]) -> Result<Vec<EcsService>, AwsError> {
        let resource = format!("{cluster}/{}", services.join(","));
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .set_services(Some(services.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "DescribeServices", &resource, e))?;
        if let Some(failure) = out.failures().first() {
            let arn = failure.arn().unwrap_or(&resource).to_owned();
            let reason = failure.reason().unwrap_or("unknown reason");
            let kind = if reason == "MISSING" {
                AwsErrorKind::NotFound
            } else {
                AwsErrorKind::Other
            };
            return Err(AwsError::new(
                "ECS",
                "DescribeServices",
                arn,
                kind,
                format!("service {reason}"),
            ));
        }
        Ok(out
            .services()
            .iter()
            .map(|s| EcsService {
                name: s.service_name().unwrap_or_default().to_owned(),
                status: s.status().unwrap_or_default().to_owned(),
                desired: s.desired_count(),
                running: s.running_count(),
                pending: s.pending_count(),
                task_definition: s.task_definition().unwrap_or_default().to_owned(),
                deployments: s
                    .deployments()
                    .iter()
                    .map(|d| EcsDeployment {
                        id: d.id().unwrap_or_default().to_owned(),
                        status: d.status().unwrap_or_default().to_owned(),
                        task_definition: d.task_definition().unwrap_or_default().to_owned(),
                        desired: d.desired_count(),
                        running: d.running_count(),
                        pending: d.pending_count(),
                        rollout_state: d.rollout_state().map(|r| r.as_str().to_owned()),
                        rollout_reason: d.rollout_state_reason().map(str::to_owned),
                        created_at: d.created_at().and_then(to_chrono),
                    })
                    .collect(),
            })
            .collect())
    }

    async fn describe_task_definition(&self, reference: &str) -> Result<TaskDefinition, AwsError> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(reference)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "DescribeTaskDefinition", reference, e))?;
        let td = out.task_definition().ok_or_else(|| {
            AwsError::new(
                "ECS",
                "DescribeTaskDefinition",
                reference,
                AwsErrorKind::NotFound,
                "no task definition returned",
            )
        })?;
        Ok(task_definition_of(td))
    }

    async fn register_with_image(&self, base: &str, container: &str, image: &str) -> Result<TaskDefinition, AwsError> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(base)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "DescribeTaskDefinition", base, e))?;
        let td = out.task_definition().ok_or_else(|| {
            AwsError::new(
                "ECS",
                "DescribeTaskDefinition",
                base,
                AwsErrorKind::NotFound,
                "no task definition returned",
            )
        })?;
        if !td.container_definitions().iter().any(|c| c.name() == Some(container)) {
            return Err(AwsError::new(
                "ECS",
                "RegisterTaskDefinition",
                base,
                AwsErrorKind::NotFound,
                format!(
                    "the task definition has no container `{container}` (check `ecs.container` in the configuration)"
                ),
            ));
        }
        let containers = td
            .container_definitions()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if c.name() == Some(container) {
                    c.image = Some(image.to_owned());
                }
                c
            })
            .collect();
        let out = self
            .client
            .register_task_definition()
            .family(td.family().unwrap_or_default())
            .set_task_role_arn(td.task_role_arn().map(str::to_owned))
            .set_execution_role_arn(td.execution_role_arn().map(str::to_owned))
            .set_network_mode(td.network_mode().cloned())
            .set_container_definitions(Some(containers))
            .set_volumes(Some(td.volumes().to_vec()))
            .set_placement_constraints(Some(td.placement_constraints().to_vec()))
            .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
            .set_cpu(td.cpu().map(str::to_owned))
            .set_memory(td.memory().map(str::to_owned))
            .set_pid_mode(td.pid_mode().cloned())
            .set_ipc_mode(td.ipc_mode().cloned())
            .set_proxy_configuration(td.proxy_configuration().cloned())
            .set_ephemeral_storage(td.ephemeral_storage().cloned())
            .set_runtime_platform(td.runtime_platform().cloned())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "RegisterTaskDefinition", base, e))?;
        let registered = out.task_definition().ok_or_else(|| {
            AwsError::new(
                "ECS",
                "RegisterTaskDefinition",
                base,
                AwsErrorKind::Other,
                "no task definition returned",
            )
        })?;
        Ok(task_definition_of(registered))
    }

    async fn register_with_environment(
        &self,
        base: &str,
        container: &str,
        name: &str,
        value: &str,
    ) -> Result<TaskDefinition, AwsError> {
        use aws_sdk_ecs::types::KeyValuePair;
        let out = self
            .client
            .describe_task_definition()
            .task_definition(base)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "DescribeTaskDefinition", base, e))?;
        let td = out.task_definition().ok_or_else(|| {
            AwsError::new(
                "ECS",
                "DescribeTaskDefinition",
                base,
                AwsErrorKind::NotFound,
                "no task definition returned",
            )
        })?;
        if !td.container_definitions().iter().any(|c| c.name() == Some(container)) {
            return Err(AwsError::new(
                "ECS",
                "RegisterTaskDefinition",
                base,
                AwsErrorKind::NotFound,
                format!(
                    "the task definition has no container `{container}` (check `ecs.container` in the configuration)"
                ),
            ));
        }
        let containers = td
            .container_definitions()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if c.name() == Some(container) {
                    let mut vars: Vec<KeyValuePair> = c
                        .environment()
                        .iter()
                        .filter(|kv| kv.name() != Some(name))
                        .cloned()
                        .collect();
                    vars.push(KeyValuePair::builder().name(name).value(value).build());
                    c.environment = Some(vars);
                }
                c
            })
            .collect();
        let out = self
            .client
            .register_task_definition()
            .family(td.family().unwrap_or_default())
            .set_task_role_arn(td.task_role_arn().map(str::to_owned))
            .set_execution_role_arn(td.execution_role_arn().map(str::to_owned))
            .set_network_mode(td.network_mode().cloned())
            .set_container_definitions(Some(containers))
            .set_volumes(Some(td.volumes().to_vec()))
            .set_placement_constraints(Some(td.placement_constraints().to_vec()))
            .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
            .set_cpu(td.cpu().map(str::to_owned))
            .set_memory(td.memory().map(str::to_owned))
            .set_runtime_platform(td.runtime_platform().cloned())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "RegisterTaskDefinition", base, e))?;
        let registered = out.task_definition().ok_or_else(|| {
            AwsError::new(
                "ECS",
                "RegisterTaskDefinition",
                base,
                AwsErrorKind::Other,
                "no task definition returned",
            )
        })?;
        Ok(task_definition_of(registered))
    }

    async fn update_service(&self, cluster: &str, service: &str, update: &ServiceUpdate) -> Result<(), AwsError> {
        self.client
            .update_service()
            .cluster(cluster)
            .service(service)
            .set_task_definition(update.task_definition.clone())
            .set_desired_count(update.desired_count)
            .force_new_deployment(update.force_new_deployment)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "UpdateService", format!("{cluster}/{service}"), e))?;
        Ok(())
    }
}

fn task_definition_of(td: &aws_sdk_ecs::types::TaskDefinition) -> TaskDefinition {
    TaskDefinition {
        arn: td.task_definition_arn().unwrap_or_default().to_owned(),
        family: td.family().unwrap_or_default().to_owned(),
        revision: td.revision(),
        status: td.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        containers: td
            .container_definitions()
            .iter()
            .map(|c| ContainerImage {
                name: c.name().unwrap_or_default().to_owned(),
                image: c.image().unwrap_or_default().to_owned(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row<'a> = (&'a str, &'a str, Option<&'a str>, i32, i32);

    fn service(td: &str, deployments: Vec<Row<'_>>, running: i32, desired: i32) -> EcsService {
        EcsService {
            name: "s".into(),
            status: "ACTIVE".into(),
            desired,
            running,
            pending: 0,
            task_definition: td.into(),
            deployments: deployments
                .into_iter()
                .map(|(status, td, state, running, desired)| EcsDeployment {
                    id: "d".into(),
                    status: status.into(),
                    task_definition: td.into(),
                    desired,
                    running,
                    pending: 0,
                    rollout_state: state.map(Into::into),
                    rollout_reason: Some("tasks failed".into()),
                    created_at: None,
                })
                .collect(),
        }
    }

    #[test]
    fn rollout_states() {
        let s = service(
            "td:2",
            vec![
                ("PRIMARY", "td:2", Some("IN_PROGRESS"), 1, 4),
                ("ACTIVE", "td:1", Some("COMPLETED"), 3, 4),
            ],
            4,
            4,
        );
        assert_eq!(s.rollout("td:2"), Rollout::InProgress);
        assert_eq!(
            s.rollout("td:1"),
            Rollout::InProgress,
            "the service no longer runs td:1"
        );
        let s = service("td:2", vec![("PRIMARY", "td:2", Some("COMPLETED"), 4, 4)], 4, 4);
        assert_eq!(s.rollout("td:2"), Rollout::Completed);
        let s = service("td:2", vec![("PRIMARY", "td:2", Some("FAILED"), 0, 4)], 0, 4);
        assert_eq!(s.rollout("td:2"), Rollout::Failed("tasks failed".into()));
        let s = service("td:2", vec![("PRIMARY", "td:2", None, 4, 4)], 4, 4);
        assert_eq!(
            s.rollout("td:2"),
            Rollout::Completed,
            "no circuit breaker: alone at capacity"
        );
        // A stand-in that never records the new deployment: the service's own counts decide.
        let s = service("td:2", vec![("PRIMARY", "td:1", Some("COMPLETED"), 0, 0)], 1, 1);
        assert_eq!(s.rollout("td:2"), Rollout::Completed);
        let s = service("td:2", vec![("PRIMARY", "td:1", Some("COMPLETED"), 0, 0)], 0, 1);
        assert_eq!(s.rollout("td:2"), Rollout::InProgress);
    }
}
