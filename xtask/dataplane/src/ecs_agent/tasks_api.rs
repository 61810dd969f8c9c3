//! ECS's `ListTasks` and `DescribeTasks` for the services the agent runs, answered from its snapshot:
//! moto knows none of the agent's tasks. A task carries what ECS reports of it and suma reads (its
//! container's image and the digest the image's tag named when the task started), so `dr check` judges
//! image parity by the running tasks' digests here as on ECS. Requests about anything else go to moto.

use axum::body::Bytes;
use serde_json::{json, Value};

use super::{snapshot_key, Snapshot, TaskSnapshot};

/// The account of the sandbox's ARNs (moto's default).
const ACCOUNT: &str = "123456789012";

/// The answer to `action` (`ListTasks`, `DescribeTasks`) from the agent's snapshot, when the request is
/// about the agent's tasks; `None` sends it on to moto.
pub fn answer(action: &str, body: &Bytes, region: &str, snapshot: &Snapshot) -> Option<Value> {
    let request: Value = serde_json::from_slice(body).ok()?;
    let cluster = request["cluster"]
        .as_str()
        .unwrap_or("default")
        .rsplit('/')
        .next()?
        .to_owned();
    match action {
        "ListTasks" => list(&request, region, &cluster, snapshot),
        "DescribeTasks" => describe(&request, region, &cluster, snapshot),
        _ => None,
    }
}

fn list(request: &Value, region: &str, cluster: &str, snapshot: &Snapshot) -> Option<Value> {
    let service = request["serviceName"].as_str()?;
    snapshot.services.get(&snapshot_key(region, cluster, service))?;
    // The agent's tasks are all meant to run; none is kept once stopped.
    let stopped = request["desiredStatus"].as_str() == Some("STOPPED");
    let arns: Vec<String> = snapshot
        .tasks
        .iter()
        .filter(|t| !stopped && t.region == region && t.cluster == cluster && t.service == service)
        .map(task_arn)
        .collect();
    Some(json!({ "taskArns": arns }))
}

fn describe(request: &Value, region: &str, cluster: &str, snapshot: &Snapshot) -> Option<Value> {
    let wanted: Vec<&str> = request["tasks"].as_array()?.iter().filter_map(Value::as_str).collect();
    let find = |reference: &str| {
        let id = reference.rsplit('/').next().unwrap_or(reference);
        snapshot
            .tasks
            .iter()
            .find(|t| t.id == id && t.region == region && t.cluster == cluster)
    };
    if !wanted.iter().any(|w| find(w).is_some()) {
        return None;
    }
    let (mut tasks, mut failures) = (Vec::new(), Vec::new());
    for reference in wanted {
        match find(reference) {
            Some(task) => tasks.push(shown(task)),
            None => failures.push(json!({ "arn": reference, "reason": "MISSING" })),
        }
    }
    Some(json!({ "tasks": tasks, "failures": failures }))
}

fn task_arn(task: &TaskSnapshot) -> String {
    format!(
        "arn:aws:ecs:{}:{ACCOUNT}:task/{}/{}",
        task.region, task.cluster, task.id
    )
}

/// A task as `DescribeTasks` shows it: a healthy task is RUNNING, one not yet healthy PENDING.
fn shown(task: &TaskSnapshot) -> Value {
    let status = if task.healthy { "RUNNING" } else { "PENDING" };
    let mut container = json!({
        "name": task.container,
        "image": task.image,
        "lastStatus": status,
        "taskArn": task_arn(task),
    });
    if let Some(digest) = &task.image_digest {
        container["imageDigest"] = digest.clone().into();
    }
    json!({
        "taskArn": task_arn(task),
        "clusterArn": format!("arn:aws:ecs:{}:{ACCOUNT}:cluster/{}", task.region, task.cluster),
        "taskDefinitionArn": task.task_definition,
        "group": format!("service:{}", task.service),
        "launchType": "FARGATE",
        "lastStatus": status,
        "desiredStatus": "RUNNING",
        "containers": [container],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs_agent::ServiceSnapshot;

    fn task(id: &str, service: &str, digest: Option<&str>) -> TaskSnapshot {
        TaskSnapshot {
            id: id.into(),
            region: "eu-west-1".into(),
            cluster: "auth-staging".into(),
            service: service.into(),
            task_definition: "arn:aws:ecs:eu-west-1:123456789012:task-definition/auth-service:3".into(),
            deployment: "d1".into(),
            container: "auth-service".into(),
            image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-service:1.4.2".into(),
            image_digest: digest.map(Into::into),
            version: "1.4.2".into(),
            address: "127.10.0.1:8080".into(),
            healthy: true,
            log: String::new(),
        }
    }

    fn snapshot() -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.services.insert(
            snapshot_key("eu-west-1", "auth-staging", "auth-service"),
            ServiceSnapshot {
                task_definition: "td:3".into(),
                moto_deployment: "d1".into(),
                running: 2,
                pending: 0,
                deployments: Vec::new(),
            },
        );
        snapshot.tasks = vec![
            task("a1", "auth-service", Some("sha256:aa")),
            task("b2", "auth-service", None),
            task("c3", "auth-service-canary", Some("sha256:cc")),
        ];
        snapshot
    }

    fn ask(action: &str, request: Value, region: &str) -> Option<Value> {
        answer(action, &Bytes::from(request.to_string()), region, &snapshot())
    }

    #[test]
    fn list_tasks_names_the_services_tasks_and_leaves_other_services_to_moto() {
        let listed = ask(
            "ListTasks",
            json!({"cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/auth-staging", "serviceName": "auth-service", "desiredStatus": "RUNNING"}),
            "eu-west-1",
        )
        .unwrap();
        assert_eq!(
            listed["taskArns"],
            json!([
                "arn:aws:ecs:eu-west-1:123456789012:task/auth-staging/a1",
                "arn:aws:ecs:eu-west-1:123456789012:task/auth-staging/b2"
            ])
        );
        let stopped = ask(
            "ListTasks",
            json!({"cluster": "auth-staging", "serviceName": "auth-service", "desiredStatus": "STOPPED"}),
            "eu-west-1",
        );
        assert_eq!(stopped.unwrap()["taskArns"], json!([]));
        assert_eq!(
            ask(
                "ListTasks",
                json!({"cluster": "auth-staging", "serviceName": "other"}),
                "eu-west-1"
            ),
            None
        );
        assert_eq!(
            ask(
                "ListTasks",
                json!({"cluster": "auth-staging", "serviceName": "auth-service"}),
                "eu-central-1"
            ),
            None,
            "another region's service of the same name"
        );
    }

    #[test]
    fn describe_tasks_shows_the_digest_each_task_started_with() {
        let described = ask(
            "DescribeTasks",
            json!({"cluster": "auth-staging", "tasks": ["arn:aws:ecs:eu-west-1:123456789012:task/auth-staging/a1", "b2", "zz"]}),
            "eu-west-1",
        )
        .unwrap();
        let tasks = described["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0]["containers"][0]["imageDigest"], "sha256:aa");
        assert_eq!(tasks[0]["containers"][0]["name"], "auth-service");
        assert_eq!(tasks[0]["lastStatus"], "RUNNING");
        assert!(tasks[1]["containers"][0].get("imageDigest").is_none());
        assert_eq!(described["failures"][0]["arn"], "zz");
        assert_eq!(
            ask(
                "DescribeTasks",
                json!({"cluster": "auth-staging", "tasks": ["zz"]}),
                "eu-west-1"
            ),
            None,
            "no task of the agent's: moto answers"
        );
    }
}
