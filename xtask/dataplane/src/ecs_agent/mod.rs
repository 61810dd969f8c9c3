//! The sandbox's ECS agent: turns moto's ECS services into real `auth-service` processes on loopback, as
//! the ECS agent and scheduler do on AWS. For each service of the clusters it is given, in each region, it
//! keeps `desiredCount` tasks of the service's current task definition; a new task definition (or a forced
//! new deployment) is a new deployment, rolled out by the service's minimum healthy and maximum percent
//! ([`rollout`]); a task that fails its container health check is replaced, and repeated failures fail the
//! deployment (the circuit breaker). Healthy tasks are registered in the service's target groups, so the
//! weighted proxy routes to them, and listed in a Prometheus file-discovery document.
//!
//! moto keeps no task counts or rollout states of its own, so suma sees the agent's through [`overlay`]:
//! a pass-through proxy in front of moto that rewrites `DescribeServices` answers. Other clusters (the
//! test suite's throwaway environments) are left to moto alone.

pub mod overlay;
pub mod rds_failover;
pub mod rds_servers;
pub mod redis_auth;
pub mod rollout;
pub mod snapshot;
pub mod task;
pub mod tasks_api;

pub use snapshot::{snapshot_key, ServiceSnapshot, Snapshot, TaskSnapshot};

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ecs::types::{ContainerDefinition, HealthCheck, Service};

use rollout::{RolloutState, Settings, TaskView};
use task::{Launch, SecretRef, Task};

/// What the agent runs and where.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// moto's URL: the agent reads and registers there directly (not through the overlay).
    pub moto: reqwest::Url,
    pub regions: Vec<String>,
    /// The clusters whose services get real tasks.
    pub clusters: Vec<String>,
    /// The `auth-service` binary every image maps to.
    pub binary: PathBuf,
    /// Task logs and the Prometheus targets document go here.
    pub dir: PathBuf,
    /// Settings of the sandbox every task gets on top of its task definition (the task role's
    /// credentials and endpoint, log levels, limits sized for the load generator).
    pub task_env: Vec<(String, String)>,
    /// Names the task network resolves (RDS endpoints to the sandbox's PostgreSQL).
    pub hosts: Vec<task::HostRule>,
    /// Instances with a PostgreSQL server of their own, resolved ahead of `hosts`.
    pub rds_servers: Arc<rds_servers::RdsServers>,
    /// Time between health checks (ECS: the check's `interval`; shorter here, so a sandbox deploy takes
    /// seconds).
    pub health_interval: Duration,
    /// Time between reads of moto.
    pub interval: Duration,
}

/// A service as `(region, cluster, service)`.
pub type ServiceKey = (String, String, String);

/// One deployment of a service, PRIMARY first.
#[derive(Debug, Clone)]
struct Deployment {
    id: String,
    task_definition: String,
    created: f64,
    failed_tasks: u32,
    state: RolloutState,
    reason: String,
}

struct ServiceState {
    settings: Settings,
    task_definition: String,
    /// moto's deployment id: it changes on a forced new deployment.
    moto_deployment: String,
    deployments: Vec<Deployment>,
    tasks: Vec<Task>,
    target_groups: Vec<String>,
    registered: BTreeSet<String>,
    /// Whether moto still lists the service as ACTIVE.
    active: bool,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// AWS clients of one region, against moto.
struct RegionClients {
    ecr: aws_sdk_ecr::Client,
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

pub struct Agent {
    config: AgentConfig,
    clients: BTreeMap<String, RegionClients>,
    services: BTreeMap<ServiceKey, ServiceState>,
    task_definitions: BTreeMap<String, ContainerDefinition>,
    /// Each target group's deregistration delay (connection draining), read once.
    draining: BTreeMap<String, Duration>,
    next_ip: u32,
    snapshot: Arc<Mutex<Snapshot>>,
}

impl Agent {
    pub async fn new(config: AgentConfig, snapshot: Arc<Mutex<Snapshot>>) -> Self {
        let mut clients = BTreeMap::new();
        for region in &config.regions {
            let sdk = crate::aws_config(region, Some(&config.moto), 3, Duration::from_secs(10)).await;
            clients.insert(
                region.clone(),
                RegionClients {
                    ecr: aws_sdk_ecr::Client::new(&sdk),
                    ecs: aws_sdk_ecs::Client::new(&sdk),
                    elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
                    secrets: aws_sdk_secretsmanager::Client::new(&sdk),
                },
            );
        }
        Self {
            config,
            clients,
            services: BTreeMap::new(),
            task_definitions: BTreeMap::new(),
            draining: BTreeMap::new(),
            next_ip: 0,
            snapshot,
        }
    }

    /// Reconciles until `stop` fires, then stops every task.
    pub async fn run(mut self, stop: tokio_util::sync::CancellationToken) {
        let leftovers = task::stop_leftovers(&self.pid_file(), &self.config.binary);
        if leftovers > 0 {
            tracing::warn!(leftovers, "stopped tasks a previous agent left running");
        }
        loop {
            self.pass().await;
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.config.interval) => {}
            }
        }
        let stopping: Vec<_> = self
            .services
            .values_mut()
            .flat_map(|s| s.tasks.drain(..))
            .map(|t| task::stop(t.child, t.launch.stop_timeout.min(Duration::from_secs(10))))
            .collect();
        tracing::info!(tasks = stopping.len(), "agent stopping: stopping every task");
        futures::future::join_all(stopping).await;
    }

    /// One pass: read moto, reconcile every service, publish the snapshot.
    pub async fn pass(&mut self) {
        for region in self.config.regions.clone() {
            for cluster in self.config.clusters.clone() {
                if let Err(e) = self.observe(&region, &cluster).await {
                    tracing::debug!(%region, %cluster, "cannot read the cluster: {e}");
                }
            }
        }
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for key in keys {
            self.reconcile(&key).await;
        }
        self.services.retain(|_, s| s.active || !s.tasks.is_empty());
        self.publish();
    }

    /// Reads the cluster's services from moto into `self.services`.
    async fn observe(&mut self, region: &str, cluster: &str) -> Result<(), String> {
        let ecs = self.clients[region].ecs.clone();
        let arns = ecs
            .list_services()
            .cluster(cluster)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?
            .service_arns
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for chunk in arns.chunks(10) {
            let out = ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            for service in out.services() {
                let Some(name) = service.service_name() else { continue };
                seen.insert(name.to_owned());
                self.observe_service(region, cluster, service);
            }
        }
        for ((r, c, name), state) in &mut self.services {
            if r == region && c == cluster && !seen.contains(name) {
                state.active = false;
                state.settings.desired = 0;
            }
        }
        Ok(())
    }

    fn observe_service(&mut self, region: &str, cluster: &str, service: &Service) {
        let key = (
            region.to_owned(),
            cluster.to_owned(),
            service.service_name().unwrap_or_default().to_owned(),
        );
        let active = service.status() == Some("ACTIVE");
        let config = service.deployment_configuration();
        let settings = Settings {
            desired: if active {
                service.desired_count().max(0) as u32
            } else {
                0
            },
            minimum_healthy_percent: config
                .and_then(|c| c.minimum_healthy_percent())
                .map_or(100, |p| p.max(0) as u32),
            maximum_percent: config
                .and_then(|c| c.maximum_percent())
                .map_or(200, |p| p.max(100) as u32),
        };
        let task_definition = service.task_definition().unwrap_or_default().to_owned();
        let moto_deployment = service
            .deployments()
            .first()
            .and_then(|d| d.id())
            .unwrap_or_default()
            .to_owned();
        let target_groups = service
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn().map(str::to_owned))
            .collect();
        let state = self.services.entry(key).or_insert_with(|| ServiceState {
            settings,
            task_definition: String::new(),
            moto_deployment: moto_deployment.clone(),
            deployments: Vec::new(),
            tasks: Vec::new(),
            target_groups: Vec::new(),
            registered: BTreeSet::new(),
            active,
        });
        state.settings = settings;
        state.active = active;
        state.target_groups = target_groups;
        let redeploy = state.moto_deployment != moto_deployment;
        if state.task_definition != task_definition || redeploy || state.deployments.is_empty() {
            tracing::info!(service = %service.service_name().unwrap_or_default(), %task_definition, "new deployment");
            state.deployments.insert(
                0,
                Deployment {
                    id: format!("ecs-svc/{}", short_id()),
                    task_definition: task_definition.clone(),
                    created: now(),
                    failed_tasks: 0,
                    state: RolloutState::InProgress,
                    reason: "ECS deployment in progress.".to_owned(),
                },
            );
            state.task_definition = task_definition;
            state.moto_deployment = moto_deployment;
        }
    }

    async fn reconcile(&mut self, key: &ServiceKey) {
        let binary = self.config.binary.clone();
        let interval = self.config.health_interval;
        let Some(state) = self.services.get_mut(key) else {
            return;
        };
        let Some(primary_id) = state.deployments.first().map(|d| d.id.clone()) else {
            return;
        };

        // Tasks whose process ended: stopped, and a failure of the deployment that started them.
        let mut failures: Vec<(String, String)> = Vec::new();
        state.tasks.retain_mut(|t| match t.child.try_wait() {
            Ok(Some(status)) => {
                failures.push((
                    t.deployment.clone(),
                    format!("task {} exited ({status}); see {}", t.id, t.log.display()),
                ));
                false
            }
            _ => true,
        });

        // Container health checks, every task due at once.
        let due: Vec<usize> = (0..state.tasks.len())
            .filter(|&i| state.tasks[i].last_check.is_none_or(|at| at.elapsed() >= interval))
            .collect();
        let results =
            futures::future::join_all(due.iter().map(|&i| task::check_health(&binary, &state.tasks[i]))).await;
        let mut unhealthy = Vec::new();
        for (&i, ok) in due.iter().zip(results) {
            let t = &mut state.tasks[i];
            t.last_check = Some(Instant::now());
            if ok {
                if !t.healthy {
                    tracing::info!(task = %t.id, address = %t.address(), "task healthy");
                }
                t.healthy = true;
                t.consecutive_failures = 0;
                continue;
            }
            let check = t.launch.health_check.as_ref();
            let start_period =
                Duration::from_secs(check.and_then(HealthCheck::start_period).unwrap_or(0).max(0) as u64);
            if !t.healthy && t.started.elapsed() < start_period.max(Duration::from_secs(20)) {
                continue;
            }
            t.consecutive_failures += 1;
            if t.consecutive_failures >= check.and_then(HealthCheck::retries).unwrap_or(3).max(1) as u32 {
                unhealthy.push(t.id.clone());
            }
        }
        for id in unhealthy {
            if let Some(pos) = state.tasks.iter().position(|t| t.id == id) {
                let t = state.tasks.remove(pos);
                failures.push((
                    t.deployment.clone(),
                    format!("task {} failed its container health check", t.id),
                ));
                Self::retire(&self.clients[&key.0], &mut self.draining, state, t).await;
            }
        }
        for (deployment, why) in failures {
            tracing::warn!(service = %key.2, "{why}");
            if let Some(d) = state.deployments.iter_mut().find(|d| d.id == deployment) {
                d.failed_tasks += 1;
                d.reason = why;
            }
        }

        // The decision, then its effects.
        let views: Vec<TaskView> = state
            .tasks
            .iter()
            .map(|t| TaskView {
                id: t.id.clone(),
                primary: t.deployment == primary_id,
                healthy: t.healthy,
            })
            .collect();
        let others_left = views.iter().any(|v| !v.primary);
        let primary = &mut state.deployments[0];
        let computed = rollout::rollout_state(state.settings, &views, primary.failed_tasks, others_left);
        if primary.state == RolloutState::InProgress && computed != RolloutState::InProgress {
            primary.state = computed;
            primary.reason = match computed {
                RolloutState::Completed => format!("ECS deployment {} completed.", primary.id),
                _ => format!(
                    "ECS deployment circuit breaker: tasks failed to start or stay healthy ({} failed): {}",
                    primary.failed_tasks, primary.reason
                ),
            };
            tracing::info!(service = %key.2, state = computed.as_str(), "{}", primary.reason);
        }
        let plan = rollout::plan(state.settings, &views, primary.state);
        for id in &plan.stop {
            if let Some(pos) = state.tasks.iter().position(|t| &t.id == id) {
                let t = state.tasks.remove(pos);
                tracing::info!(service = %key.2, task = %t.id, "stopping task");
                Self::retire(&self.clients[&key.0], &mut self.draining, state, t).await;
            }
        }
        let primary_td = state.deployments[0].task_definition.clone();
        for _ in 0..plan.start {
            match self.start_task(key, &primary_td, &primary_id).await {
                Ok(t) => {
                    if let Some(state) = self.services.get_mut(key) {
                        state.tasks.push(t);
                    }
                }
                Err(why) => {
                    tracing::warn!(service = %key.2, "cannot start a task: {why}");
                    if let Some(d) = self.services.get_mut(key).and_then(|s| s.deployments.first_mut()) {
                        d.failed_tasks += 1;
                        d.reason = why;
                    }
                    break;
                }
            }
        }
        let Some(state) = self.services.get_mut(key) else {
            return;
        };
        // Healthy tasks are the target groups' targets.
        let clients = &self.clients[&key.0];
        let wanted: Vec<(String, String)> = state
            .tasks
            .iter()
            .filter(|t| t.healthy && !state.registered.contains(&t.id))
            .map(|t| (t.id.clone(), t.ip.to_string()))
            .collect();
        for (id, ip) in wanted {
            let port = state
                .tasks
                .iter()
                .find(|t| t.id == id)
                .map_or(8080, |t| t.launch.container_port);
            let mut ok = true;
            for tg in &state.target_groups {
                let target = aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(&ip)
                    .port(i32::from(port))
                    .build();
                ok &= clients
                    .elb
                    .register_targets()
                    .target_group_arn(tg)
                    .targets(target)
                    .send()
                    .await
                    .is_ok();
            }
            if ok {
                state.registered.insert(id);
            }
        }
        // Older deployments with no task left are over.
        let live: BTreeSet<String> = state.tasks.iter().map(|t| t.deployment.clone()).collect();
        let mut first = true;
        state
            .deployments
            .retain(|d| std::mem::replace(&mut first, false) || live.contains(&d.id));
    }

    /// Stops a task as ECS does: out of its target groups first, then, once the groups' deregistration
    /// delay has let in-flight requests finish (the load balancer sends it nothing new), SIGTERM and, after
    /// the container's stop timeout, SIGKILL.
    async fn retire(
        clients: &RegionClients,
        draining: &mut BTreeMap<String, Duration>,
        state: &mut ServiceState,
        t: Task,
    ) {
        let mut drain = Duration::ZERO;
        if state.registered.remove(&t.id) {
            for tg in &state.target_groups {
                let target = aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(t.ip.to_string())
                    .port(i32::from(t.launch.container_port))
                    .build();
                let _ = clients
                    .elb
                    .deregister_targets()
                    .target_group_arn(tg)
                    .targets(target)
                    .send()
                    .await;
                if !draining.contains_key(tg) {
                    draining.insert(tg.clone(), Self::deregistration_delay(clients, tg).await);
                }
                drain = drain.max(draining[tg]);
            }
        }
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            task::stop(t.child, t.launch.stop_timeout).await;
        });
    }

    /// A target group's `deregistration_delay.timeout_seconds` (300 s, AWS's default, when unreadable).
    async fn deregistration_delay(clients: &RegionClients, tg: &str) -> Duration {
        let seconds = clients
            .elb
            .describe_target_group_attributes()
            .target_group_arn(tg)
            .send()
            .await
            .ok()
            .and_then(|out| {
                out.attributes()
                    .iter()
                    .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
                    .and_then(|a| a.value()?.parse().ok())
            })
            .unwrap_or(300);
        Duration::from_secs(seconds)
    }

    /// Resolves the task definition and its secrets (now, as ECS does at task start) and starts the process.
    async fn start_task(&mut self, key: &ServiceKey, task_definition: &str, deployment: &str) -> Result<Task, String> {
        let clients = &self.clients[&key.0];
        let container = match self.task_definitions.get(task_definition) {
            Some(c) => c.clone(),
            None => {
                let out = clients
                    .ecs
                    .describe_task_definition()
                    .task_definition(task_definition)
                    .send()
                    .await
                    .map_err(|e| format!("cannot describe `{task_definition}`: {e:?}"))?;
                let container = out
                    .task_definition()
                    .and_then(|td| {
                        td.container_definitions()
                            .iter()
                            .find(|c| c.essential() != Some(false))
                            .cloned()
                    })
                    .ok_or_else(|| format!("`{task_definition}` has no essential container"))?;
                self.task_definitions
                    .insert(task_definition.to_owned(), container.clone());
                container
            }
        };
        let mut resolved = BTreeMap::new();
        for secret in container.secrets() {
            let reference = SecretRef::parse(secret.value_from())?;
            let client = self
                .clients
                .get(&reference.region)
                .map_or(&clients.secrets, |c| &c.secrets);
            let value = client
                .get_secret_value()
                .secret_id(&reference.secret_id)
                // AWSCURRENT unless the reference names a stage, as ECS reads it. Explicit, because moto
                // answers a request without a stage from the version first created, whatever the labels.
                .version_stage(reference.version_stage.as_deref().unwrap_or("AWSCURRENT"))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "ResourceInitializationError: cannot read secret `{}` for `{}`: {e:?}",
                        reference.secret_id,
                        secret.name()
                    )
                })?;
            let text = value.secret_string().unwrap_or_default();
            resolved.insert(secret.name().to_owned(), reference.pick(text)?);
        }
        let mut launch = Launch::of(&container, resolved);
        let image_digest = self.image_digest(&launch.image).await;
        let mut rules = self.config.rds_servers.rules();
        rules.extend(self.config.hosts.iter().cloned());
        task::resolve_hosts(&mut launch.environment, &rules);
        let ip = self.allocate_ip(launch.container_port);
        let id = short_id();
        let logs = self.config.dir.join("tasks");
        std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
        let log = logs.join(format!("{}-{}-{}.log", key.0, key.2, &id[..12]));
        let child = task::spawn(&self.config.binary, &launch, ip, &self.config.task_env, &log)
            .map_err(|e| format!("cannot start {}: {e}", self.config.binary.display()))?;
        tracing::info!(service = %key.2, region = %key.0, task = %id, address = %format!("{ip}:{}", launch.container_port), image = %launch.image, "task started");
        Ok(Task {
            id,
            container: container.name().unwrap_or_default().to_owned(),
            image_digest,
            deployment: deployment.to_owned(),
            task_definition: task_definition.to_owned(),
            ip,
            launch,
            child,
            started: Instant::now(),
            healthy: false,
            consecutive_failures: 0,
            last_check: None,
            log,
        })
    }

    /// The digest `image` names in its region's registry (moto's ECR), as ECS resolves a tag when it
    /// starts a task and reports it in `DescribeTasks`; `None` for an image not in a registry of the
    /// agent's regions (the sandbox starts it anyway: every image runs the service's binary).
    async fn image_digest(&self, image: &str) -> Option<String> {
        let (host, path) = image.split_once('/')?;
        let region = host.strip_suffix(".amazonaws.com")?.rsplit('.').next()?;
        let (repository, tag) = path.rsplit_once(':').unwrap_or((path, "latest"));
        let found = self
            .clients
            .get(region)?
            .ecr
            .describe_images()
            .repository_name(repository)
            .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        match found {
            Ok(out) => out.image_details().first()?.image_digest().map(str::to_owned),
            Err(e) => {
                tracing::debug!(%image, error = ?e, "no digest for the image");
                None
            }
        }
    }

    /// The next task address: 127.10.0.1 onwards (each task its own address, as awsvpc gives each task
    /// its own network interface), skipping one another process listens on at `port` (a task still
    /// draining, or a second sandbox on the machine).
    fn allocate_ip(&mut self, port: u16) -> Ipv4Addr {
        loop {
            self.next_ip = (self.next_ip + 1) % (1 << 16);
            let low = (self.next_ip & 0xff) as u8;
            if low == 0 || low == 255 {
                continue;
            }
            let ip = Ipv4Addr::new(127, 10, (self.next_ip >> 8) as u8, low);
            let ours = self.services.values().flat_map(|s| &s.tasks).any(|t| t.ip == ip);
            if !ours && std::net::TcpListener::bind((ip, port)).is_ok() {
                return ip;
            }
        }
    }
}
