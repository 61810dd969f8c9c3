//! ECS: services, their deployments, and task definitions (a revision's summary, or the whole of it in
//! `crate::taskdef`'s model for `suma taskdef`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AwsError, AwsErrorKind};
pub use suma_core::taskdef::ContainerChange;
use suma_core::taskdef::TaskDefinitionSpec;

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

/// A revision in full: its summary and everything suma's model holds of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisteredTaskDefinition {
    pub summary: TaskDefinition,
    pub spec: TaskDefinitionSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerImage {
    pub name: String,
    pub image: String,
}

/// An image in an ECR registry: `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY[:TAG|@DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    pub account: String,
    pub region: String,
    pub repository: String,
    pub reference: ImageReference,
}

/// How an image reference names its image: a tag (which can be moved) or a digest (which cannot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReference {
    Tag(String),
    Digest(String),
}

impl EcrImage {
    /// The parts of an ECR image reference; `None` for any other registry (Docker Hub, a mirror) or a
    /// reference that is not an image. No tag means `latest`, as a pull reads it.
    pub fn parse(image: &str) -> Option<Self> {
        let (host, path) = image.split_once('/')?;
        let mut labels = host.split('.');
        let account = labels.next()?;
        let fixed: Vec<&str> = labels.collect();
        let region = match fixed.as_slice() {
            ["dkr", "ecr", region, "amazonaws", "com"] | ["dkr", "ecr", region, "amazonaws", "com", "cn"] => *region,
            _ => return None,
        };
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (repository, reference) = match path.split_once('@') {
            Some((repository, digest)) => (repository, ImageReference::Digest(digest.to_owned())),
            None => match path.rsplit_once(':') {
                Some((repository, tag)) => (repository, ImageReference::Tag(tag.to_owned())),
                None => (path, ImageReference::Tag("latest".to_owned())),
            },
        };
        (!repository.is_empty()).then(|| Self {
            account: account.to_owned(),
            region: region.to_owned(),
            repository: repository.to_owned(),
            reference,
        })
    }
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
    /// Registers a new revision of `base` that differs only by `change` to `container`.
    async fn register_revision(
        &self,
        base: &str,
        container: &str,
        change: &ContainerChange,
    ) -> Result<TaskDefinition, AwsError>;
    async fn update_service(&self, cluster: &str, service: &str, update: &ServiceUpdate) -> Result<(), AwsError>;
    /// The suspension of the service's Application Auto Scaling target (`ecs:service:DesiredCount`);
    /// `None` when the service has no scalable target.
    async fn scaling_suspension(&self, cluster: &str, service: &str) -> Result<Option<ScalingSuspension>, AwsError>;
    /// Sets the suspension of the service's scalable target, which must exist.
    async fn set_scaling_suspension(
        &self,
        cluster: &str,
        service: &str,
        suspension: ScalingSuspension,
    ) -> Result<(), AwsError>;
    /// The image digests the service's running tasks report for `container` (DescribeTasks'
    /// `imageDigest`: what ECS resolved the image to when it started them), distinct and sorted; empty
    /// when no task runs or none reports a digest.
    async fn running_image_digests(
        &self,
        cluster: &str,
        service: &str,
        container: &str,
    ) -> Result<Vec<String>, AwsError>;
    /// The digest `image` names in this region's ECR now; `None` when its repository or tag is not
    /// there. `image` is in this region's registry (the caller picks the client by [`EcrImage::region`]).
    async fn registry_image_digest(&self, image: &EcrImage) -> Result<Option<String>, AwsError>;
    /// A revision (`family:revision` or ARN) in full, for comparing it with a template.
    async fn describe_task_definition_spec(&self, reference: &str) -> Result<RegisteredTaskDefinition, AwsError> {
        Err(AwsError::new(
            "ECS",
            "DescribeTaskDefinition",
            reference,
            AwsErrorKind::Other,
            "not supported by this client",
        ))
    }
    /// Registers `spec` as the next revision of its family.
    async fn register_task_definition(&self, spec: &TaskDefinitionSpec) -> Result<TaskDefinition, AwsError> {
        Err(AwsError::new(
            "ECS",
            "RegisterTaskDefinition",
            &spec.family,
            AwsErrorKind::Other,
            "not supported by this client",
        ))
    }
}

/// What Application Auto Scaling may not do to a service's desired count while suspended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ScalingSuspension {
    pub dynamic_in: bool,
    pub dynamic_out: bool,
    pub scheduled: bool,
}

impl ScalingSuspension {
    /// Nothing scales the service: what a DR switch sets while it moves capacity by hand.
    pub const ALL: Self = Self {
        dynamic_in: true,
        dynamic_out: true,
        scheduled: true,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    type Row<'a> = (&'a str, &'a str, Option<&'a str>, i32, i32);

    #[test]
    fn ecr_image_references_are_parsed_and_others_are_not() {
        let ecr = |account: &str, region: &str, repository: &str, reference: ImageReference| {
            Some(EcrImage {
                account: account.into(),
                region: region.into(),
                repository: repository.into(),
                reference,
            })
        };
        let tag = |t: &str| ImageReference::Tag(t.into());
        let cases = [
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-service:1.4.2",
                ecr("123456789012", "eu-west-1", "auth-service", tag("1.4.2")),
            ),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/auth@sha256:ab12",
                ecr(
                    "123456789012",
                    "us-east-1",
                    "team/auth",
                    ImageReference::Digest("sha256:ab12".into()),
                ),
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/auth",
                ecr("123456789012", "cn-north-1", "auth", tag("latest")),
            ),
            ("docker.io/library/postgres:16", None),
            ("auth-service:1.4.2", None),
            ("12345.dkr.ecr.eu-west-1.amazonaws.com/auth:1", None),
            ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/:1", None),
        ];
        for (image, expected) in cases {
            assert_eq!(EcrImage::parse(image), expected, "{image}");
        }
    }

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
