//! The `aws-sdk` implementation of [`crate::ecs`]'s trait.

#[allow(unused_imports)]
use crate::ecs::*;
use crate::sdk::to_chrono;
use crate::{AwsError, AwsErrorKind};
use async_trait::async_trait;
use aws_config::SdkConfig;
use suma_core::taskdef as td_model;
use suma_core::taskdef::TaskDefinitionSpec;

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

fn non_empty<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    (!items.is_empty()).then(|| items.to_vec())
}

fn sdk_secret(s: &td_model::SecretVariable) -> Result<aws_sdk_ecs::types::Secret, aws_sdk_ecs::error::BuildError> {
    aws_sdk_ecs::types::Secret::builder()
        .name(&s.name)
        .value_from(&s.value_from)
        .build()
}

/// Our container definition as the SDK's; fields the model does not hold stay unset.
fn sdk_container(
    c: &td_model::ContainerDefinition,
) -> Result<aws_sdk_ecs::types::ContainerDefinition, aws_sdk_ecs::error::BuildError> {
    use aws_sdk_ecs::types::{
        ApplicationProtocol, HealthCheck, KernelCapabilities, KeyValuePair, LinuxParameters, LogConfiguration,
        LogDriver, MountPoint, PortMapping, TransportProtocol, Ulimit, UlimitName,
    };
    let health_check = match &c.health_check {
        Some(h) => Some(
            HealthCheck::builder()
                .set_command(Some(h.command.clone()))
                .set_interval(h.interval)
                .set_timeout(h.timeout)
                .set_retries(h.retries)
                .set_start_period(h.start_period)
                .build()?,
        ),
        None => None,
    };
    let log_configuration = match &c.log_configuration {
        Some(l) => Some(
            LogConfiguration::builder()
                .log_driver(LogDriver::from(l.log_driver.as_str()))
                .set_options((!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()))
                .set_secret_options(non_empty(
                    &l.secret_options.iter().map(sdk_secret).collect::<Result<Vec<_>, _>>()?,
                ))
                .build()?,
        ),
        None => None,
    };
    let ulimits = c
        .ulimits
        .iter()
        .map(|u| {
            Ulimit::builder()
                .name(UlimitName::from(u.name.as_str()))
                .soft_limit(u.soft_limit)
                .hard_limit(u.hard_limit)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secrets = c.secrets.iter().map(sdk_secret).collect::<Result<Vec<_>, _>>()?;
    Ok(aws_sdk_ecs::types::ContainerDefinition::builder()
        .name(&c.name)
        .image(&c.image)
        .set_essential(c.essential)
        .set_cpu(c.cpu)
        .set_memory(c.memory)
        .set_memory_reservation(c.memory_reservation)
        .set_user(c.user.clone())
        .set_readonly_root_filesystem(c.readonly_root_filesystem)
        .set_entry_point(non_empty(&c.entry_point))
        .set_command(non_empty(&c.command))
        .set_working_directory(c.working_directory.clone())
        .set_port_mappings(non_empty(
            &c.port_mappings
                .iter()
                .map(|p| {
                    PortMapping::builder()
                        .container_port(p.container_port)
                        .set_host_port(p.host_port)
                        .set_protocol(p.protocol.as_deref().map(TransportProtocol::from))
                        .set_name(p.name.clone())
                        .set_app_protocol(p.app_protocol.as_deref().map(ApplicationProtocol::from))
                        .build()
                })
                .collect::<Vec<_>>(),
        ))
        .set_environment(non_empty(
            &c.environment
                .iter()
                .map(|e| KeyValuePair::builder().name(&e.name).value(&e.value).build())
                .collect::<Vec<_>>(),
        ))
        .set_secrets(non_empty(&secrets))
        .set_mount_points(non_empty(
            &c.mount_points
                .iter()
                .map(|m| {
                    MountPoint::builder()
                        .source_volume(&m.source_volume)
                        .container_path(&m.container_path)
                        .set_read_only(m.read_only)
                        .build()
                })
                .collect::<Vec<_>>(),
        ))
        .set_ulimits(non_empty(&ulimits))
        .set_linux_parameters(c.linux_parameters.as_ref().map(|l| {
            LinuxParameters::builder()
                .set_init_process_enabled(l.init_process_enabled)
                .set_capabilities(l.capabilities.as_ref().map(|caps| {
                    KernelCapabilities::builder()
                        .set_add(non_empty(&caps.add))
                        .set_drop(non_empty(&caps.drop))
                        .build()
                }))
                .build()
        }))
        .set_health_check(health_check)
        .set_log_configuration(log_configuration)
        .set_stop_timeout(c.stop_timeout)
        .set_docker_labels((!c.docker_labels.is_empty()).then(|| c.docker_labels.clone().into_iter().collect()))
        .build())
}

/// A described revision in our model; what the model does not hold (and ECS's own metadata) is left out.
fn spec_of(td: &aws_sdk_ecs::types::TaskDefinition) -> TaskDefinitionSpec {
    let secret = |s: &aws_sdk_ecs::types::Secret| td_model::SecretVariable {
        name: s.name().to_owned(),
        value_from: s.value_from().to_owned(),
    };
    TaskDefinitionSpec {
        family: td.family().unwrap_or_default().to_owned(),
        task_role_arn: td.task_role_arn().map(str::to_owned),
        execution_role_arn: td.execution_role_arn().map(str::to_owned),
        network_mode: td.network_mode().map(|m| m.as_str().to_owned()),
        requires_compatibilities: td
            .requires_compatibilities()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        cpu: td.cpu().map(str::to_owned),
        memory: td.memory().map(str::to_owned),
        runtime_platform: td.runtime_platform().map(|p| td_model::RuntimePlatform {
            cpu_architecture: p.cpu_architecture().map(|a| a.as_str().to_owned()),
            operating_system_family: p.operating_system_family().map(|o| o.as_str().to_owned()),
        }),
        ephemeral_storage: td.ephemeral_storage().map(|e| td_model::EphemeralStorage {
            size_in_gib: e.size_in_gib(),
        }),
        volumes: td
            .volumes()
            .iter()
            .map(|v| td_model::Volume {
                name: v.name().unwrap_or_default().to_owned(),
            })
            .collect(),
        container_definitions: td
            .container_definitions()
            .iter()
            .map(|c| td_model::ContainerDefinition {
                name: c.name().unwrap_or_default().to_owned(),
                image: c.image().unwrap_or_default().to_owned(),
                essential: c.essential(),
                cpu: Some(c.cpu()),
                memory: c.memory(),
                memory_reservation: c.memory_reservation(),
                user: c.user().map(str::to_owned),
                readonly_root_filesystem: c.readonly_root_filesystem(),
                entry_point: c.entry_point().to_vec(),
                command: c.command().to_vec(),
                working_directory: c.working_directory().map(str::to_owned),
                port_mappings: c
                    .port_mappings()
                    .iter()
                    .map(|p| td_model::PortMapping {
                        container_port: p.container_port().unwrap_or_default(),
                        host_port: p.host_port(),
                        protocol: p.protocol().map(|x| x.as_str().to_owned()),
                        name: p.name().map(str::to_owned),
                        app_protocol: p.app_protocol().map(|x| x.as_str().to_owned()),
                    })
                    .collect(),
                environment: c
                    .environment()
                    .iter()
                    .map(|e| td_model::EnvironmentVariable {
                        name: e.name().unwrap_or_default().to_owned(),
                        value: e.value().unwrap_or_default().to_owned(),
                    })
                    .collect(),
                secrets: c.secrets().iter().map(secret).collect(),
                mount_points: c
                    .mount_points()
                    .iter()
                    .map(|m| td_model::MountPoint {
                        source_volume: m.source_volume().unwrap_or_default().to_owned(),
                        container_path: m.container_path().unwrap_or_default().to_owned(),
                        read_only: m.read_only(),
                    })
                    .collect(),
                ulimits: c
                    .ulimits()
                    .iter()
                    .map(|u| td_model::Ulimit {
                        name: u.name().as_str().to_owned(),
                        soft_limit: u.soft_limit(),
                        hard_limit: u.hard_limit(),
                    })
                    .collect(),
                linux_parameters: c.linux_parameters().map(|l| td_model::LinuxParameters {
                    init_process_enabled: l.init_process_enabled(),
                    capabilities: l.capabilities().map(|caps| td_model::Capabilities {
                        add: caps.add().to_vec(),
                        drop: caps.drop().to_vec(),
                    }),
                }),
                health_check: c.health_check().map(|h| td_model::HealthCheck {
                    command: h.command().to_vec(),
                    interval: h.interval(),
                    timeout: h.timeout(),
                    retries: h.retries(),
                    start_period: h.start_period(),
                }),
                log_configuration: c.log_configuration().map(|l| td_model::LogConfiguration {
                    log_driver: l.log_driver().as_str().to_owned(),
                    options: l.options().map(|o| o.clone().into_iter().collect()).unwrap_or_default(),
                    secret_options: l.secret_options().iter().map(secret).collect(),
                }),
                stop_timeout: c.stop_timeout(),
                docker_labels: c
                    .docker_labels()
                    .map(|d| d.clone().into_iter().collect())
                    .unwrap_or_default(),
            })
            .collect(),
    }
}
