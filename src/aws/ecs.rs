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
    async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<Vec<EcsService>, AwsError>;
    async fn describe_task_definition(&self, reference: &str) -> Result<TaskDefinition, AwsError>;
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
    async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<Vec<EcsService>, AwsError> {
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
        Ok(TaskDefinition {
            arn: td.task_definition_arn().unwrap_or_default().to_owned(),
            family: td.family().unwrap_or_default().to_owned(),
            revision: td.revision(),
            containers: td
                .container_definitions()
                .iter()
                .map(|c| ContainerImage {
                    name: c.name().unwrap_or_default().to_owned(),
                    image: c.image().unwrap_or_default().to_owned(),
                })
                .collect(),
        })
    }
}
