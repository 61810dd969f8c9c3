//! What the agent shows after each pass: the snapshot the overlay and `/_agent/*` answer from, the
//! Prometheus file-discovery document of healthy tasks, and the pid file a successor agent reads.

use serde::Serialize;

use super::{now, Agent, Task};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the overlay and `/_agent/tasks` show: the agent's view after its last pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub services: BTreeMap<String, ServiceSnapshot>,
    pub tasks: Vec<TaskSnapshot>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSnapshot {
    /// The task definition and moto deployment id the agent last acted on: when moto's differ, a change
    /// has not reached the agent yet.
    pub task_definition: String,
    pub moto_deployment: String,
    pub running: u32,
    pub pending: u32,
    /// ECS's JSON shape of `deployments`, PRIMARY first.
    pub deployments: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskSnapshot {
    pub id: String,
    pub region: String,
    pub cluster: String,
    pub service: String,
    pub task_definition: String,
    pub deployment: String,
    pub container: String,
    pub image: String,
    pub image_digest: Option<String>,
    pub version: String,
    pub address: String,
    pub healthy: bool,
    pub log: String,
}

/// The snapshot key of a service.
pub fn snapshot_key(region: &str, cluster: &str, service: &str) -> String {
    format!("{region}/{cluster}/{service}")
}

impl Agent {
    /// Where the agent records its tasks' pids, so a successor can stop what it left behind.
    pub(super) fn pid_file(&self) -> PathBuf {
        self.config.dir.join("task-pids")
    }

    /// The snapshot for the overlay, the Prometheus targets document and the pid file.
    pub(super) fn publish(&self) {
        let mut snapshot = Snapshot::default();
        let mut targets = Vec::new();
        for ((region, cluster, service), state) in &self.services {
            let running = state.tasks.iter().filter(|t| t.healthy).count() as u32;
            let pending = state.tasks.len() as u32 - running;
            let deployments = state
                .deployments
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let mine: Vec<&Task> = state.tasks.iter().filter(|t| t.deployment == d.id).collect();
                    let running = mine.iter().filter(|t| t.healthy).count();
                    serde_json::json!({
                        "id": d.id,
                        "status": if i == 0 { "PRIMARY" } else { "ACTIVE" },
                        "taskDefinition": d.task_definition,
                        "desiredCount": if i == 0 { state.settings.desired as usize } else { mine.len() },
                        "pendingCount": mine.len() - running,
                        "runningCount": running,
                        "failedTasks": d.failed_tasks,
                        "createdAt": d.created,
                        "updatedAt": now(),
                        "launchType": "FARGATE",
                        "rolloutState": d.state.as_str(),
                        "rolloutStateReason": d.reason,
                    })
                })
                .collect();
            snapshot.services.insert(
                snapshot_key(region, cluster, service),
                ServiceSnapshot {
                    task_definition: state.task_definition.clone(),
                    moto_deployment: state.moto_deployment.clone(),
                    running,
                    pending,
                    deployments,
                },
            );
            for t in &state.tasks {
                snapshot.tasks.push(TaskSnapshot {
                    id: t.id.clone(),
                    region: region.clone(),
                    cluster: cluster.clone(),
                    service: service.clone(),
                    task_definition: t.task_definition.clone(),
                    deployment: t.deployment.clone(),
                    container: t.container.clone(),
                    image: t.launch.image.clone(),
                    image_digest: t.image_digest.clone(),
                    version: t.version(),
                    address: t.address(),
                    healthy: t.healthy,
                    log: t.log.display().to_string(),
                });
                if t.healthy {
                    targets.push(serde_json::json!({
                        "targets": [t.address()],
                        "labels": {"ecs_region": region, "ecs_cluster": cluster, "ecs_service": service, "ecs_task": t.id, "ecs_version": t.version()},
                    }));
                }
            }
        }
        let document = self.config.dir.join("scrape-targets.json");
        let temporary = self.config.dir.join("scrape-targets.json.tmp");
        let text = serde_json::to_string_pretty(&targets).unwrap_or_default();
        if std::fs::read_to_string(&document).ok().as_deref() != Some(text.as_str())
            && std::fs::write(&temporary, &text).is_ok()
        {
            let _ = std::fs::rename(&temporary, &document);
        }
        let pids: String = self
            .services
            .values()
            .flat_map(|s| &s.tasks)
            .filter_map(|t| t.child.id())
            .map(|pid| format!("{pid}\n"))
            .collect();
        let _ = std::fs::write(self.pid_file(), pids);
        *self.snapshot.lock().expect("snapshot") = snapshot;
    }
}
