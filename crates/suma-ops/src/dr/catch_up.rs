//! Whether the DR replica has applied everything the primary wrote: the gate of a zero-data-loss
//! switchover. ECS counts a task out of `runningCount` as soon as it starts draining, while its process
//! still serves in-flight requests and holds its pool, so "no task runs" is not "no writer is left":
//! the switchover also waits until no other session is connected to the service's database on the
//! primary (its tasks, the DR region's standby tasks that write across regions, anything else). Then,
//! with no writer left, a marker record is written
//! into the primary's WAL (`pg_logical_emit_message`, which any role may call and which needs no table);
//! every acknowledged commit, asynchronous ones included, lies before it. The position after the marker
//! is exactly what the replica reports as replayed once it has applied the marker, so the replica has
//! caught up when its replayed position reaches it. (The bare insert position is not such a point: at a
//! page boundary it lies past the last record, and the replica reaches it only when someone writes
//! again.) A lag metric cannot say this: it is a sampled number of seconds, and zero seconds can still
//! hide the last commits.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::lag::{postgres_rows, LagError};

/// A PostgreSQL WAL position (`pg_lsn`, written `16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses PostgreSQL's `HIGH/LOW` hexadecimal form.
    pub fn parse(text: &str) -> Option<Self> {
        let (high, low) = text.trim().split_once('/')?;
        let high = u32::from_str_radix(high, 16).ok()?;
        let low = u32::from_str_radix(low, 16).ok()?;
        Some(Self((u64::from(high) << 32) | u64::from(low)))
    }

    /// Bytes of WAL from `self` to `later` (0 when `later` is not after it).
    pub fn bytes_to(self, later: Lsn) -> u64 {
        later.0.saturating_sub(self.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Where the replica stands against the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Everything up to the marker is replayed: promoting now loses no acknowledged write.
    CaughtUp,
    /// Still replaying; this many bytes of WAL to go.
    Behind(u64),
    /// The server is not in recovery: it is no replica (promoted already, or the wrong server).
    NotReplicating,
}

/// The decision, apart from how the positions are read.
pub fn judge(marker: Lsn, replayed: Option<Lsn>) -> CatchUp {
    match replayed {
        None => CatchUp::NotReplicating,
        Some(at) if at >= marker => CatchUp::CaughtUp,
        Some(at) => CatchUp::Behind(at.bytes_to(marker)),
    }
}

/// The two positions a switchover (or a failback's catch-up) reads; fakes stand in for them in engine
/// tests. "Primary" is the database that takes the writes, "replica" the one that replays them: in a
/// failback the DR database and the rebuilt primary-region instance.
#[async_trait]
pub trait ReplicationPositions: Send + Sync {
    /// Writes a marker record (`label`) into the primary's WAL; the position just after it.
    async fn write_marker(&self, label: &str) -> Result<Lsn, LagError>;
    /// The replica's last replayed position; `None` when the server is not in recovery.
    async fn replayed_position(&self) -> Result<Option<Lsn>, LagError>;
    /// The other client sessions on the primary's database (this one left out), each as
    /// `user from address (application)`: writers that are still connected.
    async fn other_sessions(&self) -> Result<Vec<String>, LagError>;
}

/// Builds a failback's positions from the endpoints (`host:port`) of the DR instance and of the rebuilt
/// primary-region instance; `Err` says what is missing to read them.
pub type FailbackPositions =
    std::sync::Arc<dyn Fn(&str, &str) -> Result<std::sync::Arc<dyn ReplicationPositions>, String> + Send + Sync>;

/// Both positions read over direct connections (a switchover's are `SUMA_DR_PRIMARY_URL` and
/// `SUMA_DR_REPLICA_URL`). Reading them needs no privilege beyond connecting.
pub struct PostgresPositions {
    pub primary_url: String,
    /// Where `primary_url` comes from, for hints (`SUMA_DR_PRIMARY_URL`).
    pub primary_named: String,
    pub replica_url: String,
    pub replica_named: String,
    pub timeout: Duration,
}

impl PostgresPositions {
    /// A switchover's: the primary's database at `SUMA_DR_PRIMARY_URL`, the DR replica at
    /// `SUMA_DR_REPLICA_URL`.
    pub fn switchover(primary_url: String, replica_url: String, timeout: Duration) -> Self {
        Self {
            primary_url,
            primary_named: format!("`{}`", crate::env_vars::SUMA_DR_PRIMARY_URL),
            replica_url,
            replica_named: format!("`{}`", crate::env_vars::SUMA_DR_REPLICA_URL),
            timeout,
        }
    }

    /// A failback's, each database read at the endpoint (`host:port`) RDS reports for it: the DR
    /// database, which takes the writes since the failover, at `dr_endpoint`, signed in as `dr_url`
    /// (`SUMA_DR_REPLICA_URL`) says; the rebuilt primary-region instance, which replays them, at
    /// `primary_endpoint`, signed in as `primary_url` (`SUMA_DR_PRIMARY_URL`) says (a physical replica has
    /// the roles of its source). The rebuilt instance is new, so no URL could name it before the run.
    pub fn failback(
        dr_url: &str,
        dr_endpoint: &str,
        primary_url: &str,
        primary_endpoint: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let named =
            |endpoint: &str, variable: &str| format!("the endpoint `{endpoint}` and the sign-in of `{variable}`");
        Ok(Self {
            primary_url: at_endpoint(dr_url, dr_endpoint, crate::env_vars::SUMA_DR_REPLICA_URL)?,
            primary_named: named(dr_endpoint, crate::env_vars::SUMA_DR_REPLICA_URL),
            replica_url: at_endpoint(primary_url, primary_endpoint, crate::env_vars::SUMA_DR_PRIMARY_URL)?,
            replica_named: named(primary_endpoint, crate::env_vars::SUMA_DR_PRIMARY_URL),
            timeout,
        })
    }
}

/// `url` (from `variable`) with its host and port replaced by `endpoint` (`host:port`).
pub fn at_endpoint(url: &str, endpoint: &str, variable: &str) -> Result<String, String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| format!("`{variable}` is not a URL: {e}"))?;
    let (host, port) = match endpoint.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>().map_err(|e| format!("endpoint `{endpoint}`: {e}"))?,
        ),
        None => (endpoint, 5432),
    };
    parsed
        .set_host(Some(host))
        .map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
    parsed
        .set_port(Some(port))
        .map_err(|()| format!("endpoint `{endpoint}`: the URL takes no port"))?;
    Ok(parsed.to_string())
}

/// Non-transactional: written at once, whatever the session's transaction does.
const MARKER_QUERY: &str = "SELECT pg_logical_emit_message(false, 'suma-switchover', $1)::text";
/// Every client session of the database but this one; a role without `pg_read_all_stats` still sees
/// each session's user, address and application.
const SESSIONS_QUERY: &str = "SELECT coalesce(usename::text, '?') || ' from ' || coalesce(host(client_addr), 'a local socket') \
    || coalesce(' (' || nullif(application_name, '') || ')', '') \
    FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
    ORDER BY 1";
const REPLICA_QUERY: &str = "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END";

impl PostgresPositions {
    /// Every row of `query` on `url`, named by `named` in errors.
    async fn fetch<T>(
        &self,
        url: &str,
        query: &'static str,
        argument: Option<&str>,
        named: &str,
    ) -> Result<Vec<T>, LagError>
    where
        (T,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
        T: Send + Unpin,
    {
        let hint = format!("check {named} and that the server accepts connections from here");
        postgres_rows(url, query, argument, self.timeout, &hint).await
    }

    /// The one value of `query`.
    async fn scalar(
        &self,
        url: &str,
        query: &'static str,
        argument: Option<&str>,
        named: &str,
    ) -> Result<Option<String>, LagError> {
        let rows: Vec<Option<String>> = self.fetch(url, query, argument, named).await?;
        Ok(rows.into_iter().next().flatten())
    }
}

fn parsed(text: Option<String>, what: &str) -> Result<Option<Lsn>, LagError> {
    text.map(|t| {
        Lsn::parse(&t).ok_or_else(|| LagError {
            source_name: "postgres",
            message: format!("{what} `{t}` is not a WAL position"),
            hint: None,
        })
    })
    .transpose()
}

#[async_trait]
impl ReplicationPositions for PostgresPositions {
    async fn write_marker(&self, label: &str) -> Result<Lsn, LagError> {
        let text = self
            .scalar(&self.primary_url, MARKER_QUERY, Some(label), &self.primary_named)
            .await?;
        parsed(text, "the marker's position")?.ok_or_else(|| LagError {
            source_name: "postgres",
            message: "the primary reported no WAL position".to_owned(),
            hint: None,
        })
    }

    async fn other_sessions(&self) -> Result<Vec<String>, LagError> {
        self.fetch(&self.primary_url, SESSIONS_QUERY, None, &self.primary_named)
            .await
    }

    async fn replayed_position(&self) -> Result<Option<Lsn>, LagError> {
        let text = self
            .scalar(&self.replica_url, REPLICA_QUERY, None, &self.replica_named)
            .await?;
        parsed(text, "the replica's position")
    }
}

/// Stands in when the positions cannot be read (a URL is not set): every read fails with the reason.
pub struct UnavailablePositions {
    pub reason: String,
    pub hint: String,
}

impl UnavailablePositions {
    fn error(&self) -> LagError {
        LagError {
            source_name: "postgres",
            message: self.reason.clone(),
            hint: Some(self.hint.clone()),
        }
    }
}

#[async_trait]
impl ReplicationPositions for UnavailablePositions {
    async fn write_marker(&self, _: &str) -> Result<Lsn, LagError> {
        Err(self.error())
    }

    async fn replayed_position(&self) -> Result<Option<Lsn>, LagError> {
        Err(self.error())
    }

    async fn other_sessions(&self) -> Result<Vec<String>, LagError> {
        Err(self.error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_as_postgresql_writes_them_and_order_by_value() {
        for (text, value) in [
            ("0/0", 0),
            ("0/16B3748", 0x16B_3748),
            ("16/B374D848", (0x16 << 32) | 0xB374_D848),
            ("FFFFFFFF/FFFFFFFF", u64::MAX),
        ] {
            let lsn = Lsn::parse(text).unwrap();
            assert_eq!(lsn.0, value, "{text}");
            assert_eq!(lsn.to_string(), text.to_uppercase(), "round trip of {text}");
        }
        for bad in ["", "16", "16/", "/1", "G/1", "1/2/3", "100000000/0"] {
            assert_eq!(Lsn::parse(bad), None, "`{bad}`");
        }
        // A higher segment outranks any offset in a lower one (a string comparison would not).
        assert!(Lsn::parse("10/0").unwrap() > Lsn::parse("9/FFFFFFFF").unwrap());
    }

    #[test]
    fn a_url_is_moved_to_an_endpoint_with_its_credentials_and_database() {
        let url = "postgres://auth:p%40ss@127.0.0.1:15432/auth?sslmode=require";
        assert_eq!(
            at_endpoint(url, "db.abc.eu-west-1.rds.amazonaws.com:5433", "V").unwrap(),
            "postgres://auth:p%40ss@db.abc.eu-west-1.rds.amazonaws.com:5433/auth?sslmode=require"
        );
        assert_eq!(
            at_endpoint(url, "db.abc.eu-west-1.rds.amazonaws.com", "V").unwrap(),
            "postgres://auth:p%40ss@db.abc.eu-west-1.rds.amazonaws.com:5432/auth?sslmode=require"
        );
        assert!(at_endpoint("not a url", "db:5432", "V").unwrap_err().contains("`V`"));
        assert!(at_endpoint(url, "db:port", "V").is_err());
    }

    #[test]
    fn the_replica_has_caught_up_only_at_or_past_the_marker() {
        let marker = Lsn::parse("1/100").unwrap();
        let cases = [
            (Some("1/100"), CatchUp::CaughtUp),
            (Some("1/200"), CatchUp::CaughtUp),
            (Some("2/0"), CatchUp::CaughtUp),
            (Some("1/FF"), CatchUp::Behind(1)),
            (Some("0/FFFFFFFF"), CatchUp::Behind(0x101)),
            (None, CatchUp::NotReplicating),
        ];
        for (replayed, expected) in cases {
            assert_eq!(
                judge(marker, replayed.map(|r| Lsn::parse(r).unwrap())),
                expected,
                "{replayed:?}"
            );
        }
    }
}
