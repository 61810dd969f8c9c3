//! How far the DR replica is behind its primary, in seconds, from the configured source: the replica's
//! `aws.rds.replica_lag` metric in Datadog, or a direct query on the replica. `None` means the source has
//! no value (no series, or a server that is not replaying WAL): the replica is not replicating.

use std::time::Duration;

use async_trait::async_trait;

use crate::metrics::MetricSource;

/// The replica lag seam: the readiness check and the failover gate read it, fakes stand in for it.
#[async_trait]
pub trait ReplicaLag: Send + Sync {
    /// Where the value comes from, for reports (`datadog`, `postgres`).
    fn source(&self) -> &'static str;
    /// Seconds behind the primary; `None` or a negative value when it is not replicating.
    async fn lag_seconds(&self) -> Result<Option<f64>, LagError>;
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read the replica lag from {source_name}: {message}{}", hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
pub struct LagError {
    pub source_name: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

/// `aws.rds.replica_lag` of the replica (seconds; -1 when replication is broken).
pub struct MetricLag {
    pub metrics: std::sync::Arc<dyn MetricSource>,
    pub replica_identifier: String,
}

impl MetricLag {
    pub fn query(replica_identifier: &str) -> String {
        format!("max:aws.rds.replica_lag{{dbinstanceidentifier:{replica_identifier}}}")
    }
}

/// The lag a window of points stands for: the worst, never a mean, and broken (`-1`) if any point says
/// so, since a mean of 300 and -1 would read as a healthy 150. `None` without points.
pub fn worst_lag(points: &[f64]) -> Option<f64> {
    if points.iter().any(|&p| p < 0.0) {
        return Some(-1.0);
    }
    points.iter().copied().reduce(f64::max)
}

#[async_trait]
impl ReplicaLag for MetricLag {
    fn source(&self) -> &'static str {
        "datadog"
    }

    async fn lag_seconds(&self) -> Result<Option<f64>, LagError> {
        self.metrics
            .points(&Self::query(&self.replica_identifier))
            .await
            .map(|points| worst_lag(&points))
            .map_err(|e| LagError {
                source_name: "datadog",
                message: e.to_string(),
                hint: None,
            })
    }
}

/// The replay delay measured on the replica itself. An idle primary sends no transactions, so when
/// everything received has been replayed the lag is zero rather than the time since the last commit.
pub const LAG_QUERY: &str = "SELECT CASE \
    WHEN NOT pg_is_in_recovery() THEN NULL \
    WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
    ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END";

pub struct PostgresLag {
    pub url: String,
    pub timeout: Duration,
}

#[async_trait]
impl ReplicaLag for PostgresLag {
    fn source(&self) -> &'static str {
        "postgres"
    }

    async fn lag_seconds(&self) -> Result<Option<f64>, LagError> {
        let hint = format!(
            "check `{}` and that the replica accepts read-only connections from here",
            crate::env_vars::SUMA_DR_REPLICA_URL
        );
        let rows: Vec<Option<f64>> = postgres_rows(&self.url, LAG_QUERY, None, self.timeout, &hint).await?;
        Ok(rows.into_iter().next().flatten())
    }
}

/// Every row of `query` (one column, bound to `argument` when given) on a fresh connection to `url`,
/// within `timeout`. A failure keeps the URL (and its password) out of the message and carries `hint`.
pub(super) async fn postgres_rows<T>(
    url: &str,
    query: &'static str,
    argument: Option<&str>,
    timeout: Duration,
    hint: &str,
) -> Result<Vec<T>, LagError>
where
    (T,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    T: Send + Unpin,
{
    use sqlx::Connection as _;
    let failed = |message: String| LagError {
        source_name: "postgres",
        message,
        hint: Some(hint.to_owned()),
    };
    let read = async {
        // Connections go where `SUMA_DB_CONNECT_TO` sends their host (a port forward to a private RDS).
        let options: sqlx::postgres::PgConnectOptions = url.parse()?;
        let (host, port) = crate::secrets::database::routed(options.get_host(), options.get_port());
        let (host, port) = (host.to_owned(), port);
        let mut conn = sqlx::PgConnection::connect_with(&options.host(&host).port(port)).await?;
        let mut statement = sqlx::query_scalar(query);
        if let Some(argument) = argument {
            statement = statement.bind(argument);
        }
        let rows: Vec<T> = statement.fetch_all(&mut conn).await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(rows)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => Err(failed(e.to_string().replace(url, "<url>"))),
        Err(_) => Err(failed(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))),
    }
}

/// Stands in when the source cannot be built (e.g. no URL): every read fails with the reason.
pub struct UnavailableLag {
    pub source_name: &'static str,
    pub reason: String,
    pub hint: Option<String>,
}

#[async_trait]
impl ReplicaLag for UnavailableLag {
    fn source(&self) -> &'static str {
        self.source_name
    }

    async fn lag_seconds(&self) -> Result<Option<f64>, LagError> {
        Err(LagError {
            source_name: self.source_name,
            message: self.reason.clone(),
            hint: self.hint.clone(),
        })
    }
}
