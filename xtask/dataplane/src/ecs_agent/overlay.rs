//! The ECS overlay: a pass-through proxy in front of moto that puts the agent's task counts and
//! deployments into `DescribeServices` answers, so suma sees running and pending counts and rollout
//! states move as on ECS. Every other request, and services the agent does not run, pass unchanged.
//! `ListTasks` and `DescribeTasks` about the agent's services are answered from its tasks
//! ([`super::tasks_api`]). `GET /_agent/tasks` lists the agent's tasks (address, service, version, health) for tests and people.
//! An ElastiCache AUTH token change is applied to the sandbox's Redis first ([`super::redis_auth`]), and an
//! RDS Multi-AZ failover takes the time and changes the zone it does on RDS ([`super::rds_failover`]), and
//! the promotion of an instance with a server of its own promotes that server ([`super::rds_servers`]).

use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::{snapshot_key, Snapshot};

pub struct Overlay {
    pub upstream: reqwest::Url,
    pub client: reqwest::Client,
    pub snapshot: Arc<Mutex<Snapshot>>,
    pub redis: super::redis_auth::RedisGroups,
    pub rds: super::rds_failover::Failovers,
    pub rds_servers: Arc<super::rds_servers::RdsServers>,
}

pub fn router(overlay: Arc<Overlay>) -> Router {
    Router::new()
        .route("/_agent/tasks", axum::routing::get(tasks))
        .route("/_agent/settled", axum::routing::get(settled))
        .route("/_agent/summary", axum::routing::get(summary))
        .route("/_agent/rds/bind", axum::routing::post(bind).delete(unbind))
        .fallback(handle)
        .with_state(overlay)
}

async fn tasks(State(overlay): State<Arc<Overlay>>) -> impl IntoResponse {
    let snapshot = overlay.snapshot.lock().expect("snapshot").clone();
    axum::Json(snapshot)
}

/// 200 once every service the agent runs has completed its rollout, else 503 naming those that have not.
async fn settled(State(overlay): State<Arc<Overlay>>) -> Response {
    let snapshot = overlay.snapshot.lock().expect("snapshot").clone();
    let pending: Vec<String> = snapshot
        .services
        .iter()
        .filter(|(_, s)| s.deployments.first().and_then(|d| d["rolloutState"].as_str()) != Some("COMPLETED"))
        .map(|(name, s)| {
            let reason = s
                .deployments
                .first()
                .and_then(|d| d["rolloutStateReason"].as_str())
                .unwrap_or("");
            format!("{name}: {reason}")
        })
        .collect();
    if snapshot.services.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, "no service seen yet\n").into_response()
    } else if pending.is_empty() {
        (StatusCode::OK, "settled\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", pending.join("; "))).into_response()
    }
}

/// `tasks: 4 healthy of 4`.
async fn summary(State(overlay): State<Arc<Overlay>>) -> String {
    let snapshot = overlay.snapshot.lock().expect("snapshot").clone();
    let healthy = snapshot.tasks.iter().filter(|t| t.healthy).count();
    format!("tasks: {healthy} healthy of {}\n", snapshot.tasks.len())
}

/// Binds an RDS instance to a PostgreSQL server of its own ([`super::rds_servers`]).
async fn bind(
    State(overlay): State<Arc<Overlay>>,
    axum::Json(binding): axum::Json<super::rds_servers::Binding>,
) -> StatusCode {
    overlay.rds_servers.bind(binding);
    StatusCode::NO_CONTENT
}

#[derive(serde::Deserialize)]
struct InstanceKey {
    region: String,
    identifier: String,
}

async fn unbind(
    State(overlay): State<Arc<Overlay>>,
    axum::extract::Query(key): axum::extract::Query<InstanceKey>,
) -> StatusCode {
    if overlay.rds_servers.unbind(&key.region, &key.identifier) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

/// The region of a signed request: the credential scope of its `Authorization` header.
pub fn region_of(headers: &axum::http::HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    credential.split('/').nth(2).map(str::to_owned)
}

/// An answer from moto slower than this is logged.
const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(2);

async fn handle(State(overlay): State<Arc<Overlay>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 64 * 1024 * 1024).await else {
        return (StatusCode::BAD_REQUEST, "request body too large").into_response();
    };
    let ecs_action = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AmazonEC2ContainerServiceV20141113."))
        .map(str::to_owned);
    let describe = ecs_action.as_deref() == Some("DescribeServices");
    let region = region_of(&parts.headers);
    if let (Some(action), Some(region)) = (&ecs_action, &region) {
        let answered = super::tasks_api::answer(action, &body, region, &overlay.snapshot.lock().expect("snapshot"));
        if let Some(answer) = answered {
            return (
                [(axum::http::header::CONTENT_TYPE, "application/x-amz-json-1.1")],
                answer.to_string(),
            )
                .into_response();
        }
    }
    // A query-protocol request's parameters, read once for ElastiCache's and RDS's parts.
    let params = super::redis_auth::form(&body);
    let region_name = region.clone().unwrap_or_default();
    let refused = match overlay.redis.apply(&params).await {
        Err(refused) => Some(refused),
        Ok(_) => match overlay.rds.check(&region_name, &params) {
            Err(refused) => Some(refused),
            Ok(()) => overlay.rds_servers.promote(&region_name, &params).await.err(),
        },
    };
    if let Some(refused) = refused {
        return (
            StatusCode::BAD_REQUEST,
            [(axum::http::header::CONTENT_TYPE, "text/xml")],
            refused.xml(),
        )
            .into_response();
    }
    let started = std::time::Instant::now();
    let action = crate::aws_faults::iam_action(&parts, &body);
    let forwarded = crate::aws_forward::send(&overlay.client, &overlay.upstream, &parts, body).await;
    // A slow moto stalls every suma run's lock renewals at once; the line says when and on what, so a
    // test that lost its lock can be matched to it (`cargo xtask test` prints these when tests fail).
    if started.elapsed() > SLOW_ANSWER {
        tracing::warn!(%action, seconds = started.elapsed().as_secs_f64(), "slow answer from moto");
    }
    match forwarded {
        Ok(mut answer) => {
            if answer.status.is_success() {
                overlay.rds.record(&region_name, &params);
                if let Some(shown) = std::str::from_utf8(&answer.body)
                    .ok()
                    .and_then(|text| overlay.rds.rewrite(&region_name, text))
                {
                    answer.body = Bytes::from(shown);
                }
            }
            if describe && answer.status.is_success() {
                if let Some(region) = region {
                    // Read under the lock: a copy of the snapshot (every task) per request is not needed.
                    let rewritten = rewrite(&answer.body, &region, &overlay.snapshot.lock().expect("snapshot"));
                    answer.body = rewritten.unwrap_or(answer.body);
                }
            }
            answer.into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("ecs overlay: {e}")).into_response(),
    }
}

/// `DescribeServices`' answer with the agent's counts and deployments for the services it runs.
pub fn rewrite(body: &Bytes, region: &str, snapshot: &Snapshot) -> Option<Bytes> {
    let mut doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    for service in doc.get_mut("services")?.as_array_mut()? {
        let cluster = service.get("clusterArn")?.as_str()?.rsplit('/').next()?.to_owned();
        let name = service.get("serviceName")?.as_str()?.to_owned();
        let Some(ours) = snapshot.services.get(&snapshot_key(region, &cluster, &name)) else {
            continue;
        };
        service["runningCount"] = ours.running.into();
        service["pendingCount"] = ours.pending.into();
        let mut deployments = ours.deployments.clone();
        // A change the agent has not acted on yet (it reads moto every second) is already a new PRIMARY
        // deployment on ECS, which creates it in the same call: show it so, in progress.
        let moto_deployment = service["deployments"][0]["id"].as_str().unwrap_or_default().to_owned();
        let task_definition = service["taskDefinition"].as_str().unwrap_or_default().to_owned();
        if task_definition != ours.task_definition || moto_deployment != ours.moto_deployment {
            for d in &mut deployments {
                d["status"] = "ACTIVE".into();
            }
            deployments.insert(
                0,
                serde_json::json!({
                    "id": moto_deployment,
                    "status": "PRIMARY",
                    "taskDefinition": task_definition,
                    "desiredCount": service["desiredCount"].clone(),
                    "pendingCount": 0,
                    "runningCount": 0,
                    "failedTasks": 0,
                    "launchType": "FARGATE",
                    "rolloutState": "IN_PROGRESS",
                    "rolloutStateReason": "ECS deployment in progress.",
                }),
            );
        }
        service["deployments"] = serde_json::Value::Array(deployments);
    }
    serde_json::to_vec(&doc).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs_agent::ServiceSnapshot;

    #[test]
    fn describe_services_carries_the_agents_counts_for_its_services_only() {
        let body = Bytes::from(
            serde_json::json!({"services": [
                {"clusterArn": "arn:aws:ecs:eu-west-1:1:cluster/auth-staging", "serviceName": "auth-service",
                 "taskDefinition": "td:1", "runningCount": 9, "pendingCount": 0, "deployments": [{"id": "moto"}]},
                {"clusterArn": "arn:aws:ecs:eu-west-1:1:cluster/other", "serviceName": "auth-service",
                 "runningCount": 9, "deployments": [{"id": "moto"}]}
            ], "failures": []})
            .to_string(),
        );
        let mut snapshot = Snapshot::default();
        snapshot.services.insert(
            snapshot_key("eu-west-1", "auth-staging", "auth-service"),
            ServiceSnapshot {
                task_definition: "td:1".into(),
                moto_deployment: "moto".into(),
                running: 1,
                pending: 1,
                deployments: vec![serde_json::json!({"id": "ecs-svc/a", "rolloutState": "IN_PROGRESS"})],
            },
        );
        let out: serde_json::Value = serde_json::from_slice(&rewrite(&body, "eu-west-1", &snapshot).unwrap()).unwrap();
        assert_eq!(out["services"][0]["runningCount"], 1);
        assert_eq!(out["services"][0]["pendingCount"], 1);
        assert_eq!(out["services"][0]["deployments"][0]["rolloutState"], "IN_PROGRESS");
        assert_eq!(out["services"][1]["runningCount"], 9, "not the agent's cluster");
        let other_region: serde_json::Value =
            serde_json::from_slice(&rewrite(&body, "eu-central-1", &snapshot).unwrap()).unwrap();
        assert_eq!(other_region["services"][0]["runningCount"], 9);

        // moto already runs td:2 (UpdateService returned), the agent has not seen it: a new PRIMARY.
        let changed = Bytes::from(body_text(&body).replace("\"td:1\"", "\"td:2\""));
        let out: serde_json::Value =
            serde_json::from_slice(&rewrite(&changed, "eu-west-1", &snapshot).unwrap()).unwrap();
        let deployments = out["services"][0]["deployments"].as_array().unwrap();
        assert_eq!(deployments[0]["taskDefinition"], "td:2");
        assert_eq!(deployments[0]["status"], "PRIMARY");
        assert_eq!(deployments[0]["rolloutState"], "IN_PROGRESS");
        assert_eq!(deployments[1]["status"], "ACTIVE");
    }

    fn body_text(body: &Bytes) -> String {
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[test]
    fn the_region_comes_from_the_signature() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261204/eu-central-1/ecs/aws4_request, SignedHeaders=host, Signature=x"
                .parse()
                .unwrap(),
        );
        assert_eq!(region_of(&headers).as_deref(), Some("eu-central-1"));
    }
}
