//! RDS instances backed by a PostgreSQL server of their own.
//!
//! moto keeps RDS instances as records, and in the sandbox every endpoint reaches the one PostgreSQL. An
//! instance bound here (a test's streaming replica of that PostgreSQL) is different, as on RDS: the task
//! network resolves its endpoint to its own server, and `PromoteReadReplica` on it promotes that server
//! (`pg_promote()`, waiting until it takes writes) before moto records the promotion, so a DR switch
//! really moves the service onto a database that stopped replaying. Tests bind with
//! `POST /_agent/rds/bind` and unbind with `DELETE` on the same path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;

use super::redis_auth::Refused;
use super::task::HostRule;

/// One bound instance: its endpoint's host name and the server behind it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Binding {
    pub region: String,
    pub identifier: String,
    /// The endpoint address RDS answers (`ID.xxxx.REGION.rds.amazonaws.com`).
    pub host: String,
    /// `127.0.0.1:PORT` of the server.
    pub address: String,
}

#[derive(Debug)]
pub struct RdsServers {
    psql: PathBuf,
    bound: Mutex<BTreeMap<(String, String), Binding>>,
}

impl RdsServers {
    /// `psql` is the client the promotion runs.
    pub fn new(psql: PathBuf) -> Self {
        Self {
            psql,
            bound: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn bind(&self, binding: Binding) {
        self.bound
            .lock()
            .expect("rds servers")
            .insert((binding.region.clone(), binding.identifier.clone()), binding);
    }

    /// Whether the instance was bound.
    pub fn unbind(&self, region: &str, identifier: &str) -> bool {
        self.bound
            .lock()
            .expect("rds servers")
            .remove(&(region.to_owned(), identifier.to_owned()))
            .is_some()
    }

    /// The endpoints the task network resolves to their own servers, ahead of the catch-all rules.
    pub fn rules(&self) -> Vec<HostRule> {
        self.bound
            .lock()
            .expect("rds servers")
            .values()
            .map(|b| HostRule::exact(&b.host, &b.address))
            .collect()
    }

    /// Before moto sees a request: a `PromoteReadReplica` of a bound instance promotes its server, and
    /// a server that cannot be promoted refuses the request as RDS would.
    pub async fn promote(&self, region: &str, params: &BTreeMap<String, String>) -> Result<(), Refused> {
        if params.get("Action").map(String::as_str) != Some("PromoteReadReplica") {
            return Ok(());
        }
        let Some(identifier) = params.get("DBInstanceIdentifier") else {
            return Ok(());
        };
        let bound = self
            .bound
            .lock()
            .expect("rds servers")
            .get(&(region.to_owned(), identifier.clone()))
            .cloned();
        let Some(binding) = bound else {
            return Ok(());
        };
        let (host, port) = binding.address.rsplit_once(':').unwrap_or((&binding.address, "5432"));
        // Waits (up to a minute) until the server has left recovery and takes writes; `f` when it was
        // not in recovery, which RDS refuses as a promotion of an instance that is no replica.
        let answer = tokio::process::Command::new(&self.psql)
            .args(["-h", host, "-p", port, "-U", "postgres", "-d", "postgres", "-tAX"])
            .args(["-v", "ON_ERROR_STOP=1", "-c"])
            .arg("SELECT CASE WHEN pg_is_in_recovery() THEN pg_promote(true, 60) ELSE false END")
            .output()
            .await;
        let refused = |message: String| Refused {
            code: "InvalidDBInstanceState",
            message,
        };
        match answer {
            Ok(out) if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "t" => {
                tracing::info!(region, identifier, address = %binding.address, "promoted the replica's server");
                Ok(())
            }
            Ok(out) if out.status.success() => Err(refused(format!("DB Instance {identifier} is not a read replica."))),
            Ok(out) => Err(refused(format!(
                "promoting {identifier} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
            Err(e) => Err(refused(format!("cannot run {}: {e}", self.psql.display()))),
        }
    }
}
