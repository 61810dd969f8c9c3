//! suma's task-definition model (`suma_core::taskdef`) as the SDK's types and back: what `suma taskdef`
//! registers and compares. Fields the model does not hold stay unset one way and are left out the other.

use suma_core::taskdef as td_model;
use suma_core::taskdef::TaskDefinitionSpec;

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
pub(super) fn sdk_container(
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
pub(super) fn spec_of(td: &aws_sdk_ecs::types::TaskDefinition) -> TaskDefinitionSpec {
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
