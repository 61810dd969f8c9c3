//! Database credentials and the rotation of a PostgreSQL role's password (`db-password`, credentials
//! JSON; `database-url`, the `postgres://` URL the service reads): a single role or two alternating roles,
//! set through an admin connection, or an RDS instance's master user, set through RDS.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::kinds::random_string;
use super::{Facts, Rotation, RotationError};
use crate::aws::rds::{DatabaseApi, DbModification, MasterPassword};
use crate::aws::secrets::{SecretVersionsApi, VersionRef, AWSCURRENT};
use crate::config::{Alphabet, DbPasswordSpec, DbRotationStrategy};

fn failed(message: impl Into<String>) -> RotationError {
    RotationError::Failed(message.into())
}

/// How a secret spells database credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CredentialForm {
    /// The JSON Secrets Manager uses (`db-password`).
    #[default]
    Json,
    /// A `postgres://user:password@host:port/dbname?options` URL, as the service's `DATABASE_URL` reads it
    /// (`database-url`).
    Url,
}

/// Where suma's own database connections go (`SUMA_DB_CONNECT_TO`), installed once by the CLI before
/// any command runs; none installed means every connection goes where its credentials say.
static CONNECT_TO: std::sync::OnceLock<suma_core::connect_to::ConnectTo> = std::sync::OnceLock::new();

/// Installs the connection rules; the first call wins (the CLI makes one, at start).
pub fn route_connections(rules: suma_core::connect_to::ConnectTo) {
    let _ = CONNECT_TO.set(rules);
}

/// Where a connection suma opens to `host:port` (PostgreSQL, Redis) goes.
pub(crate) fn routed(host: &str, port: u16) -> (&str, u16) {
    CONNECT_TO.get().map_or((host, port), |rules| rules.route(host, port))
}

/// Database credentials, in either form; a rotation writes the new version in the form of the old.
#[derive(Clone, Serialize, Deserialize)]
pub struct DbCredentials {
    pub username: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub dbname: String,
    /// Other members (`engine`, `dbInstanceIdentifier`, …) are kept as they are.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    pub form: CredentialForm,
    /// A URL's query (`sslmode=require`, …), kept as it is.
    #[serde(skip)]
    pub query: Option<String>,
}

impl DbCredentials {
    /// Reads credentials JSON or a `postgres://` URL.
    pub fn parse(value: &str, what: &str) -> Result<Self, RotationError> {
        let trimmed = value.trim();
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            return Self::parse_url(trimmed, what);
        }
        serde_json::from_str(value).map_err(|e| {
            failed(format!(
                "{what} is neither database credentials JSON nor a postgres:// URL ({e})\nhint: the value must be {{\"username\", \"password\", \"host\", \"port\", \"dbname\"}} or postgres://USER:PASSWORD@HOST:PORT/DBNAME"
            ))
        })
    }

    fn parse_url(value: &str, what: &str) -> Result<Self, RotationError> {
        let bad = |why: &str| failed(format!("{what} is not a usable postgres:// URL: {why}"));
        let url = reqwest::Url::parse(value).map_err(|e| bad(&e.to_string()))?;
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| bad("a user name or password is not valid percent-encoded UTF-8"))
        };
        let username = decode(url.username())?;
        if username.is_empty() {
            return Err(bad("it names no user"));
        }
        Ok(Self {
            username,
            password: decode(url.password().unwrap_or_default())?,
            host: url.host_str().ok_or_else(|| bad("it names no host"))?.to_owned(),
            port: url.port().unwrap_or(5432),
            dbname: url.path().trim_start_matches('/').to_owned(),
            other: serde_json::Map::new(),
            form: CredentialForm::Url,
            query: url.query().map(str::to_owned),
        })
    }

    /// The credentials in their form: JSON, or the URL rebuilt with its options.
    pub fn render(&self) -> String {
        match self.form {
            CredentialForm::Json => serde_json::to_string(self).expect("credentials serialize"),
            CredentialForm::Url => {
                let mut url = reqwest::Url::parse("postgres://placeholder/").expect("a valid base URL");
                let _ = url.set_host(Some(&self.host));
                let _ = url.set_port(Some(self.port));
                let _ = url.set_username(&self.username);
                let _ = url.set_password(Some(&self.password));
                url.set_path(&self.dbname);
                url.set_query(self.query.as_deref());
                url.to_string()
            }
        }
    }

    pub(crate) fn options(&self) -> sqlx::postgres::PgConnectOptions {
        let (host, port) = routed(&self.host, self.port);
        sqlx::postgres::PgConnectOptions::new()
            .host(host)
            .port(port)
            .database(&self.dbname)
            .username(&self.username)
            .password(&self.password)
    }

    pub(crate) async fn connect(&self) -> Result<sqlx::PgConnection, RotationError> {
        use sqlx::Connection as _;
        tokio::time::timeout(
            Duration::from_secs(15),
            sqlx::PgConnection::connect_with(&self.options()),
        )
        .await
        .map_err(|_| {
            failed(format!(
                "connecting to {}:{} as `{}` timed out",
                self.host, self.port, self.username
            ))
        })?
        .map_err(|e| {
            failed(format!(
                "cannot connect to {}:{}/{} as `{}`: {e}",
                self.host, self.port, self.dbname, self.username
            ))
        })
    }
}

/// `%XX` sequences decoded; `None` when they do not make UTF-8.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// SQL identifier quoting (`"name"`).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// SQL string literal quoting (`'value'`); `ALTER ROLE … PASSWORD` takes no bind parameters.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The other role of an alternating pair: `NAME` ↔ `NAME_clone`.
pub fn alternate_user(username: &str) -> String {
    username
        .strip_suffix("_clone")
        .map_or_else(|| format!("{username}_clone"), str::to_owned)
}

/// A PostgreSQL role's password, set through an admin connection (`ALTER ROLE`), or, for an RDS
/// instance's master user (`rds_master`), through RDS ModifyDBInstance.
pub struct DbPasswordRotation {
    pub secret_id: String,
    /// The form the secret must hold (`database-url`: a URL); `None` takes the current version's.
    pub form: Option<CredentialForm>,
    pub spec: DbPasswordSpec,
    pub secrets: Arc<dyn SecretVersionsApi>,
    /// RDS in the environment's primary region (used with `rds_master`).
    pub rds: Arc<dyn DatabaseApi>,
    /// How long RDS may take to apply a master password, and how often to look.
    pub rds_timeout: Duration,
    pub rds_poll: Duration,
}

impl DbPasswordRotation {
    async fn admin(&self) -> Result<sqlx::PgConnection, RotationError> {
        let id = self
            .spec
            .admin_secret
            .as_deref()
            .ok_or_else(|| failed("no `admin_secret` configured"))?;
        let admin = self
            .secrets
            .value(id, &VersionRef::Stage(AWSCURRENT))
            .await?
            .ok_or_else(|| failed(format!("the admin secret `{id}` has no AWSCURRENT version")))?;
        DbCredentials::parse(&admin.value, &format!("the admin secret `{id}`"))?
            .connect()
            .await
    }

    /// Sets the master user's password of `instance` and waits until RDS reports the instance
    /// `available` again (real RDS passes through `resetting-master-credentials`).
    async fn set_master_password(&self, instance: &str, password: &str) -> Result<Facts, RotationError> {
        let change = DbModification {
            master_user_password: Some(MasterPassword(password.to_owned())),
            ..DbModification::default()
        };
        let answered = self.rds.modify_instance(instance, &change).await?;
        let start = tokio::time::Instant::now();
        // The call's own answer may predate the change: look at least once.
        let status = loop {
            tokio::time::sleep(self.rds_poll).await;
            let status = self.rds.describe_instance(instance).await?.status;
            if status == "available" {
                break status;
            }
            if start.elapsed() >= self.rds_timeout {
                return Err(failed(format!(
                    "RDS instance `{instance}` is still `{status}` {} after its master password was changed\nhint: check the instance in the RDS console; `suma secrets resume NAME` continues",
                    humantime::format_duration(self.rds_timeout)
                )));
            }
        };
        Ok(Facts::from([
            ("rds_instance".to_owned(), json!(instance)),
            ("modify_answered".to_owned(), json!(answered.status)),
            ("status".to_owned(), json!(status)),
        ]))
    }

    async fn execute(&self, sql: &str) -> Result<(), RotationError> {
        let mut admin = self.admin().await?;
        // DDL takes no bind parameters: identifiers and literals are quoted by `ident` and `literal`.
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut admin)
            .await
            .map(drop)
            .map_err(|e| failed(format!("the database refused the password change: {e}")))
    }
}

#[async_trait]
impl Rotation for DbPasswordRotation {
    async fn generate(&self, current: &str) -> Result<String, RotationError> {
        let mut creds = DbCredentials::parse(current, &format!("AWSCURRENT of `{}`", self.secret_id))?;
        if self.spec.strategy == DbRotationStrategy::AlternatingUsers {
            creds.username = alternate_user(&creds.username);
        }
        creds.password = random_string(40, Alphabet::Alphanumeric);
        if self.form == Some(CredentialForm::Url) && creds.form != CredentialForm::Url {
            return Err(failed(format!(
                "AWSCURRENT of `{}` is credentials JSON, but a `database-url` secret holds a postgres:// URL (what the service reads as DATABASE_URL)\nhint: use `kind: db-password` for a JSON secret, or store the URL",
                self.secret_id
            )));
        }
        Ok(creds.render())
    }

    async fn set(&self, current: &str, pending: &str) -> Result<Facts, RotationError> {
        let current = DbCredentials::parse(current, "the current version")?;
        let pending = DbCredentials::parse(pending, "the pending version")?;
        if let Some(instance) = &self.spec.rds_master {
            let mut facts = self.set_master_password(instance, &pending.password).await?;
            facts.insert("role".to_owned(), json!(pending.username));
            return Ok(facts);
        }
        let role = ident(&pending.username);
        if pending.username != current.username {
            // Alternating: the clone is created once, a member of the original role so it has its grants.
            let create = format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN CREATE ROLE {role} LOGIN IN ROLE {base}; END IF; END $$",
                name = literal(&pending.username),
                base = ident(pending.username.strip_suffix("_clone").unwrap_or(&current.username)),
            );
            self.execute(&create).await?;
        }
        self.execute(&format!(
            "ALTER ROLE {role} WITH LOGIN PASSWORD {}",
            literal(&pending.password)
        ))
        .await?;
        Ok(Facts::from([("role".to_owned(), json!(pending.username))]))
    }

    async fn test(&self, pending: &str) -> Result<Facts, RotationError> {
        let pending = DbCredentials::parse(pending, "the pending version")?;
        let mut conn = match pending.connect().await {
            Ok(conn) => conn,
            // RDS may still be applying the master password when the instance shows `available`.
            Err(_) if self.spec.rds_master.is_some() => {
                let start = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(self.rds_poll).await;
                    match pending.connect().await {
                        Ok(conn) => break conn,
                        Err(e) if start.elapsed() >= self.rds_timeout => return Err(e),
                        Err(_) => {}
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let (user, one): (String, i32) = sqlx::query_as("SELECT current_user::text, 1")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| failed(format!("a query with the new credentials failed: {e}")))?;
        if user != pending.username || one != 1 {
            return Err(failed(format!(
                "connected as `{user}`, expected `{}`",
                pending.username
            )));
        }
        Ok(Facts::from([("connected_as".to_owned(), json!(user))]))
    }

    async fn finished(&self, _new: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }

    async fn undo_set(&self, current: &str, pending: &str) -> Result<(), RotationError> {
        let current = DbCredentials::parse(current, "the current version")?;
        let pending = DbCredentials::parse(pending, "the pending version")?;
        if let Some(instance) = &self.spec.rds_master {
            self.set_master_password(instance, &current.password).await?;
            return Ok(());
        }
        if pending.username == current.username {
            // Single role: its password goes back to the one AWSCURRENT holds.
            self.execute(&format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                ident(&current.username),
                literal(&current.password)
            ))
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternating_users_switch_between_the_role_and_its_clone() {
        assert_eq!(alternate_user("auth"), "auth_clone");
        assert_eq!(alternate_user("auth_clone"), "auth");
    }

    #[test]
    fn sql_quoting_doubles_quotes() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn database_urls_round_trip_with_a_new_password() {
        let url = "postgres://auth_app:old%2Fpw@db.internal:6432/auth?sslmode=require";
        let mut creds = DbCredentials::parse(url, "test").unwrap();
        assert_eq!(creds.form, CredentialForm::Url);
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("auth_app", "old/pw")
        );
        assert_eq!(
            (creds.host.as_str(), creds.port, creds.dbname.as_str()),
            ("db.internal", 6432, "auth")
        );
        creds.password = "n3w p@ss".to_owned();
        let rendered = creds.render();
        assert_eq!(
            rendered,
            "postgres://auth_app:n3w%20p%40ss@db.internal:6432/auth?sslmode=require"
        );
        let back = DbCredentials::parse(&rendered, "test").unwrap();
        assert_eq!(back.password, "n3w p@ss");
        assert!(
            DbCredentials::parse("postgres://db.internal/auth", "the thing").is_err(),
            "no user"
        );
        let json = DbCredentials::parse(
            r#"{"username":"u","password":"p","host":"h","port":1,"dbname":"d"}"#,
            "t",
        )
        .unwrap();
        assert_eq!(json.form, CredentialForm::Json);
        assert!(json.render().starts_with('{'));
    }

    #[test]
    fn credentials_keep_unknown_members() {
        let text = r#"{"username":"auth","password":"x","host":"h","port":5432,"dbname":"d","engine":"postgres"}"#;
        let creds = DbCredentials::parse(text, "test").unwrap();
        let back: serde_json::Value = serde_json::from_str(&serde_json::to_string(&creds).unwrap()).unwrap();
        assert_eq!(back["engine"], "postgres");
        assert!(DbCredentials::parse("not json", "the thing").is_err());
    }
}
