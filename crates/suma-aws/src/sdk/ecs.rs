//! The `aws-sdk` implementation of [`crate::ecs`]'s trait.

#[allow(unused_imports)]
use crate::ecs::*;
use crate::sdk::to_chrono;
use crate::{AwsError, AwsErrorKind};
use async_trait::async_trait;
use aws_config::SdkConfig;
use suma_core::taskdef::TaskDefinitionSpec;

use super::ecs_taskdef::{sdk_container, spec_of};

pub struct SdkEcs {
    client: aws_sdk_ecs::Client,
    /// The services' Application Auto Scaling targets.
    autoscaling: aws_sdk_applicationautoscaling::Client,
    /// What an image's tag names now, in this region's registry.
    ecr: aws_sdk_ecr::Client,
}

impl SdkEcs {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_ecs::Client::new(config),
            autoscaling: aws_sdk_applicationautoscaling::Client::new(config),
            ecr: aws_sdk_ecr::Client::new(config),
        }
    }

    async fn sdk_task_definition(&self, reference: &str) -> Result<aws_sdk_ecs::types::TaskDefinition, AwsError> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(reference)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "DescribeTaskDefinition", reference, e))?;
        out.task_definition.ok_or_else(|| {
            AwsError::new(
                "ECS",
                "DescribeTaskDefinition",
                reference,
                AwsErrorKind::NotFound,
                "no task definition returned",
            )
        })
    }

    /// Registers a new revision of `base` that differs only by `change` applied to `container`:
    /// every other field of the definition is copied as it is.
    async fn register_changed(
        &self,
        base: &str,
        container: &str,
        change: impl Fn(&mut aws_sdk_ecs::types::ContainerDefinition),
    ) -> Result<TaskDefinition, AwsError> {
        let td = self.sdk_task_definition(base).await?;
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
                    change(&mut c);
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
}

/// A service's scalable target: `service/CLUSTER/SERVICE`, its desired count.
fn scalable_target(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

#[async_trait]
impl EcsApi for SdkEcs {
    async fn running_image_digests(
        &self,
        cluster: &str,
        service: &str,
        container: &str,
    ) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ECS", "ListTasks", service, e))?;
            arns.extend(page.task_arns().iter().cloned());
        }
        let mut digests = std::collections::BTreeSet::new();
        // DescribeTasks takes at most 100 tasks a call.
        for chunk in arns.chunks(100) {
            let out = self
                .client
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ECS", "DescribeTasks", service, e))?;
            digests.extend(
                out.tasks()
                    .iter()
                    .flat_map(|t| t.containers())
                    .filter(|c| c.name() == Some(container))
                    .filter_map(|c| c.image_digest().map(str::to_owned)),
            );
        }
        Ok(digests.into_iter().collect())
    }

    async fn registry_image_digest(&self, image: &EcrImage) -> Result<Option<String>, AwsError> {
        use aws_sdk_ecr::types::ImageIdentifier;
        let id = match &image.reference {
            ImageReference::Tag(tag) => ImageIdentifier::builder().image_tag(tag).build(),
            // A digest names itself; asking says whether the registry still holds it.
            ImageReference::Digest(digest) => ImageIdentifier::builder().image_digest(digest).build(),
        };
        let answer = self
            .ecr
            .describe_images()
            .registry_id(&image.account)
            .repository_name(&image.repository)
            .image_ids(id)
            .send()
            .await;
        match answer {
            Ok(out) => Ok(out
                .image_details()
                .iter()
                .find_map(|d| d.image_digest().map(str::to_owned))),
            Err(e) => {
                let error = AwsError::from_sdk("ECR", "DescribeImages", &image.repository, e);
                match error.kind {
                    AwsErrorKind::NotFound => Ok(None),
                    _ => Err(error),
                }
            }
        }
    }

    async fn scaling_suspension(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<crate::ecs::ScalingSuspension>, AwsError> {
        use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
        let resource = scalable_target(cluster, service);
        let out = self
            .autoscaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(&resource)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ApplicationAutoScaling", "DescribeScalableTargets", &resource, e))?;
        Ok(out.scalable_targets().first().map(|t| {
            let s = t.suspended_state();
            crate::ecs::ScalingSuspension {
                dynamic_in: s.and_then(|s| s.dynamic_scaling_in_suspended()).unwrap_or(false),
                dynamic_out: s.and_then(|s| s.dynamic_scaling_out_suspended()).unwrap_or(false),
                scheduled: s.and_then(|s| s.scheduled_scaling_suspended()).unwrap_or(false),
            }
        }))
    }

    async fn set_scaling_suspension(
        &self,
        cluster: &str,
        service: &str,
        suspension: crate::ecs::ScalingSuspension,
    ) -> Result<(), AwsError> {
        use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};
        let resource = scalable_target(cluster, service);
        self.autoscaling
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&resource)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .suspended_state(
                SuspendedState::builder()
                    .dynamic_scaling_in_suspended(suspension.dynamic_in)
                    .dynamic_scaling_out_suspended(suspension.dynamic_out)
                    .scheduled_scaling_suspended(suspension.scheduled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ApplicationAutoScaling", "RegisterScalableTarget", &resource, e))?;
        Ok(())
    }

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
        Ok(task_definition_of(&self.sdk_task_definition(reference).await?))
    }

    async fn register_revision(
        &self,
        base: &str,
        container: &str,
        change: &ContainerChange,
    ) -> Result<TaskDefinition, AwsError> {
        use aws_sdk_ecs::types::KeyValuePair;
        self.register_changed(base, container, |c| {
            if let Some(image) = &change.image {
                c.image = Some(image.clone());
            }
            let mut vars: Vec<KeyValuePair> = c
                .environment()
                .iter()
                .filter(|kv| !change.environment.iter().any(|(name, _)| kv.name() == Some(name)))
                .cloned()
                .collect();
            vars.extend(
                change
                    .environment
                    .iter()
                    .map(|(name, value)| KeyValuePair::builder().name(name).value(value).build()),
            );
            c.environment = Some(vars);
        })
        .await
    }

    async fn describe_task_definition_spec(&self, reference: &str) -> Result<RegisteredTaskDefinition, AwsError> {
        let td = self.sdk_task_definition(reference).await?;
        Ok(RegisteredTaskDefinition {
            summary: task_definition_of(&td),
            spec: spec_of(&td),
        })
    }

    async fn register_task_definition(&self, spec: &TaskDefinitionSpec) -> Result<TaskDefinition, AwsError> {
        use aws_sdk_ecs::types::{
            Compatibility, CpuArchitecture, EphemeralStorage, NetworkMode, OsFamily, RuntimePlatform, Volume,
        };
        let bad = |e: aws_sdk_ecs::error::BuildError| {
            AwsError::new(
                "ECS",
                "RegisterTaskDefinition",
                &spec.family,
                AwsErrorKind::Other,
                e.to_string(),
            )
        };
        let containers = spec
            .container_definitions
            .iter()
            .map(sdk_container)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let out = self
            .client
            .register_task_definition()
            .family(&spec.family)
            .set_task_role_arn(spec.task_role_arn.clone())
            .set_execution_role_arn(spec.execution_role_arn.clone())
            .set_network_mode(spec.network_mode.as_deref().map(NetworkMode::from))
            .set_requires_compatibilities(Some(
                spec.requires_compatibilities
                    .iter()
                    .map(|c| Compatibility::from(c.as_str()))
                    .collect(),
            ))
            .set_cpu(spec.cpu.clone())
            .set_memory(spec.memory.clone())
            .set_runtime_platform(spec.runtime_platform.as_ref().map(|p| {
                RuntimePlatform::builder()
                    .set_cpu_architecture(p.cpu_architecture.as_deref().map(CpuArchitecture::from))
                    .set_operating_system_family(p.operating_system_family.as_deref().map(OsFamily::from))
                    .build()
            }))
            .set_ephemeral_storage(
                spec.ephemeral_storage
                    .as_ref()
                    .map(|e| EphemeralStorage::builder().size_in_gib(e.size_in_gib).build()),
            )
            .set_volumes(Some(
                spec.volumes
                    .iter()
                    .map(|v| Volume::builder().name(&v.name).build())
                    .collect(),
            ))
            .set_container_definitions(Some(containers))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS", "RegisterTaskDefinition", &spec.family, e))?;
        let registered = out.task_definition().ok_or_else(|| {
            AwsError::new(
                "ECS",
                "RegisterTaskDefinition",
                &spec.family,
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
