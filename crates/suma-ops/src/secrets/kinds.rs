//! What each kind of secret does at each step of the rotation ([`Rotation`]): `random` values, PostgreSQL
//! role passwords (single role or two alternating roles, set through an admin connection, or an RDS
//! instance's master user, set through RDS), and the service's JWT signing key.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::Rng as _;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Facts, Rotation, RotationError};
use crate::aws::rds::{DatabaseApi, DbModification, MasterPassword};
use crate::aws::secrets::{SecretVersionsApi, VersionRef, AWSCURRENT};
use crate::config::{Alphabet, DbPasswordSpec, DbRotationStrategy, JwtSpec, RandomSpec};

fn failed(message: impl Into<String>) -> RotationError {
    RotationError::Failed(message.into())
}

/// `length` characters of `alphabet` from the operating system's CSPRNG.
pub fn random_string(length: usize, alphabet: Alphabet) -> String {
    let chars: &[u8] = match alphabet {
        Alphabet::Alphanumeric => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        Alphabet::Base64url => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        Alphabet::Hex => b"0123456789abcdef",
    };
    let mut rng = rand::rngs::OsRng;
    (0..length)
        .map(|_| char::from(chars[rng.gen_range(0..chars.len())]))
        .collect()
}

fn fits(value: &str, alphabet: Alphabet) -> bool {
    value.chars().all(|c| match alphabet {
        Alphabet::Alphanumeric => c.is_ascii_alphanumeric(),
        Alphabet::Base64url => c.is_ascii_alphanumeric() || c == '-' || c == '_',
        Alphabet::Hex => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
    })
}

/// Encryption keys, HMAC keys, API keys: a fresh random string; nothing downstream to set.
pub struct RandomRotation {
    pub spec: RandomSpec,
}

#[async_trait]
impl Rotation for RandomRotation {
    async fn generate(&self, _current: &str) -> Result<String, RotationError> {
        Ok(random_string(self.spec.length, self.spec.alphabet))
    }
    async fn set(&self, _current: &str, _pending: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn test(&self, pending: &str) -> Result<Facts, RotationError> {
        if pending.chars().count() != self.spec.length || !fits(pending, self.spec.alphabet) {
            return Err(failed(format!(
                "the stored value is not {} characters of {:?}",
                self.spec.length, self.spec.alphabet
            )));
        }
        Ok(Facts::from([("length".to_owned(), json!(self.spec.length))]))
    }
    async fn finished(&self, _new: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn undo_set(&self, _current: &str, _pending: &str) -> Result<(), RotationError> {
        Ok(())
    }
}

/// A keyring: `kid:base64url-key` entries separated by commas, the first signs and the others only
/// verify (the service's `RESET_TOKEN_KEYS`). A rotation puts a new key first and keeps the one that signed
/// until now, so what it signed still verifies through the overlap; older keys are dropped.
pub struct KeyringRotation {
    /// Bytes of each new key (at least 32).
    pub key_bytes: usize,
}

/// A keyring's entries as `(kid, key)`, checked: at least one, unique kids, keys of at least 32 bytes.
pub fn keyring_entries(value: &str) -> Result<Vec<(String, String)>, RotationError> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for entry in value.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty()) {
        let (kid, key) = entry
            .split_once(':')
            .ok_or_else(|| failed("an entry is not `kid:base64url-key`"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(key.trim_end_matches('='))
            .map_err(|_| failed(format!("the key of `{kid}` is not base64url")))?;
        if bytes.len() < 32 {
            return Err(failed(format!(
                "the key of `{kid}` has {} bytes; at least 32",
                bytes.len()
            )));
        }
        if entries.iter().any(|(k, _)| k == kid) {
            return Err(failed(format!("kid `{kid}` appears twice")));
        }
        entries.push((kid.to_owned(), key.to_owned()));
    }
    if entries.is_empty() {
        return Err(failed("the keyring has no entry"));
    }
    Ok(entries)
}

#[async_trait]
impl Rotation for KeyringRotation {
    async fn generate(&self, current: &str) -> Result<String, RotationError> {
        let current = keyring_entries(current)?;
        let mut key = vec![0u8; self.key_bytes.max(32)];
        rand::rngs::OsRng.fill(key.as_mut_slice());
        let kid = format!("k{}", random_string(10, Alphabet::Alphanumeric).to_ascii_lowercase());
        Ok(format!(
            "{kid}:{},{}:{}",
            URL_SAFE_NO_PAD.encode(&key),
            current[0].0,
            current[0].1
        ))
    }
    async fn set(&self, _current: &str, _pending: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn test(&self, pending: &str) -> Result<Facts, RotationError> {
        let entries = keyring_entries(pending)?;
        Ok(Facts::from([
            ("signing_kid".to_owned(), json!(entries[0].0)),
            (
                "verify_kids".to_owned(),
                json!(entries.iter().skip(1).map(|e| &e.0).collect::<Vec<_>>()),
            ),
        ]))
    }
    async fn finished(&self, _new: &str) -> Result<Facts, RotationError> {
        Ok(Facts::new())
    }
    async fn undo_set(&self, _current: &str, _pending: &str) -> Result<(), RotationError> {
        Ok(())
    }
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
        sqlx::postgres::PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
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
fn percent_decode(s: &str) -> Option<String> {
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
                    "RDS instance `{instance}` is still `{status}` {} after its master password was changed\nhint: check the instance in the RDS console; `suma secrets rotate NAME --resume` continues",
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

/// The RFC 7638 thumbprint of an RSA public key: the `kid` the service publishes it under.
pub fn kid_of(key: &rsa::RsaPublicKey) -> String {
    let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The kid of a PKCS#8 PEM private key.
pub fn kid_of_pem(pem: &str) -> Result<String, RotationError> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| failed(format!("not an RSA private key: {e}")))?;
    Ok(kid_of(&key.to_public_key()))
}

/// The service's JWT signing key: published by every task and past the JWKS cache age before it signs,
/// tested with a real token, then made the signer.
pub struct JwtRotation {
    pub spec: JwtSpec,
    /// The service's base URL: the load balancer, which spreads the checks over the tasks.
    pub service_url: reqwest::Url,
    pub http: suma_http::ServiceClient,
    pub poll: Duration,
    /// The services whose tasks must all show a change (their running count sizes the confirmation).
    pub ecs: std::sync::Arc<dyn crate::aws::ecs::EcsApi>,
    pub cluster: String,
    pub services: Vec<String>,
}

/// Consecutive answers that must show a change before it counts as seen by every task: three per running
/// task, so a round-robin load balancer (the ALB's default) reaches each task at least three times.
pub fn confirmations(running_tasks: i32) -> u32 {
    3 * running_tasks.max(1) as u32
}

/// `max-age` of a `Cache-Control` header, in seconds.
pub fn max_age(cache_control: &str) -> Option<u64> {
    cache_control
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse().ok())
}

#[derive(Serialize)]
struct TestClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: i64,
    exp: i64,
}

impl JwtRotation {
    async fn get(&self, path: &str) -> Result<suma_http::Response, RotationError> {
        let url = self.service_url.join(path).map_err(|e| failed(e.to_string()))?;
        let response = self.http.get(url.as_str()).await.map_err(|e| failed(e.to_string()))?;
        if !response.is_success() {
            return Err(failed(format!("GET {url} answered {}", response.status)));
        }
        if response.json.is_none() {
            return Err(failed(format!("GET {url}: the answer is not JSON")));
        }
        Ok(response)
    }

    /// The running tasks of the services that use the key.
    async fn running_tasks(&self) -> Result<i32, RotationError> {
        let services = self
            .ecs
            .describe_services(&self.cluster, &self.services)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(services.iter().map(|s| s.running).sum())
    }

    /// Polls until `check` holds on [`confirmations`] consecutive answers (every task behind the load
    /// balancer), up to `pickup_timeout`; returns the time it took, the tasks counted and the last answer.
    async fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
        path: &str,
    ) -> Result<(Duration, i32, suma_http::Response), RotationError> {
        let start = tokio::time::Instant::now();
        let tasks = self.running_tasks().await?;
        let needed = confirmations(tasks);
        let mut in_a_row = 0;
        loop {
            let last = self.get(path).await;
            match &last {
                Ok(answer) if answer.json.as_ref().is_some_and(&check) => {
                    in_a_row += 1;
                    if in_a_row >= needed {
                        return Ok((start.elapsed(), tasks, last?));
                    }
                    // The next answer at once: it comes from the next task.
                    continue;
                }
                _ => in_a_row = 0,
            }
            if start.elapsed() >= self.spec.pickup_timeout {
                let seen = last.map_or_else(|e| e.to_string(), |v| v.json.unwrap_or_default().to_string());
                return Err(failed(format!(
                    "{what} did not happen on every task ({needed} answers in a row for {tasks} running task(s)) within {} (last answer of {path}: {seen})\nhint: check that every task reloads its key set (SIGHUP or its reload interval)",
                    humantime::format_duration(self.spec.pickup_timeout)
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

#[async_trait]
impl Rotation for JwtRotation {
    async fn generate(&self, _current: &str) -> Result<String, RotationError> {
        let bits = self.spec.key_bits;
        let key = tokio::task::spawn_blocking(move || rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits))
            .await
            .map_err(|e| failed(format!("key generation stopped: {e}")))?
            .map_err(|e| failed(format!("cannot generate a {bits}-bit RSA key: {e}")))?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| failed(format!("cannot encode the key: {e}")))?;
        Ok(pem.to_string())
    }

    async fn set(&self, _current: &str, pending: &str) -> Result<Facts, RotationError> {
        let kid = kid_of_pem(pending)?;
        let has_kid = |jwks: &serde_json::Value| {
            jwks["keys"]
                .as_array()
                .is_some_and(|keys| keys.iter().any(|k| k["kid"] == kid.as_str()))
        };
        let (took, tasks, answer) = self
            .wait_for(
                &format!("the JWKS publishing kid `{kid}`"),
                has_kid,
                "/.well-known/jwks.json",
            )
            .await?;
        // Clients may cache the JWKS this long: a token signed with the new key before a cached copy
        // expires would be rejected by them.
        let cache_age = answer
            .headers
            .get("cache-control")
            .and_then(|v| max_age(v))
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(cache_age)).await;
        Ok(Facts::from([
            ("kid".to_owned(), json!(kid)),
            ("published_after_ms".to_owned(), json!(took.as_millis() as u64)),
            ("tasks_confirmed".to_owned(), json!(tasks)),
            ("jwks_cache_age_waited_s".to_owned(), json!(cache_age)),
        ]))
    }

    async fn test(&self, pending: &str) -> Result<Facts, RotationError> {
        let kid = kid_of_pem(pending)?;
        let now = chrono::Utc::now().timestamp();
        let claims = TestClaims {
            iss: &self.spec.issuer,
            aud: &self.spec.audience,
            sub: "suma-rotation-test",
            iat: now,
            exp: now + 120,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.clone());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pending.as_bytes())
            .map_err(|e| failed(format!("the new key cannot sign: {e}")))?;
        let token = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| failed(format!("cannot sign: {e}")))?;
        let url = self
            .service_url
            .join("/api/auth/introspect")
            .map_err(|e| failed(e.to_string()))?;
        let answer = self
            .http
            .post_json(url.as_str(), &json!({ "token": token }))
            .await
            .map_err(|e| failed(e.to_string()))?
            .json
            .ok_or_else(|| failed(format!("POST {url}: the answer is not JSON")))?;
        if answer["active"] != true {
            return Err(failed(format!(
                "the service rejected a token signed with the new key `{kid}`: {}",
                answer["reason"]
            )));
        }
        Ok(Facts::from([("verified_kid".to_owned(), json!(kid))]))
    }

    async fn finished(&self, new: &str) -> Result<Facts, RotationError> {
        let kid = kid_of_pem(new)?;
        let (took, _, _) = self
            .wait_for(
                &format!("the service signing with kid `{kid}`"),
                |version| version["signing_kid"] == kid.as_str(),
                "/version",
            )
            .await?;
        let retire_after = self.spec.access_token_ttl + self.spec.clock_skew;
        Ok(Facts::from([
            ("signing_kid".to_owned(), json!(kid)),
            ("signing_after_ms".to_owned(), json!(took.as_millis() as u64)),
            (
                "previous_key_retirable_at".to_owned(),
                json!(chrono::Utc::now() + chrono::Duration::from_std(retire_after).unwrap_or_default()),
            ),
        ]))
    }

    async fn undo_set(&self, _current: &str, _pending: &str) -> Result<(), RotationError> {
        // Removing AWSPENDING is the undo: the service drops the key at its next reload.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_have_the_length_and_alphabet_asked_for() {
        for alphabet in [Alphabet::Alphanumeric, Alphabet::Base64url, Alphabet::Hex] {
            let value = random_string(64, alphabet);
            assert_eq!(value.len(), 64);
            assert!(fits(&value, alphabet), "{value}");
        }
        assert_ne!(random_string(32, Alphabet::Hex), random_string(32, Alphabet::Hex));
        assert!(!fits("ABC", Alphabet::Hex));
    }

    #[test]
    fn alternating_users_switch_between_the_role_and_its_clone() {
        assert_eq!(alternate_user("auth"), "auth_clone");
        assert_eq!(alternate_user("auth_clone"), "auth");
    }

    #[test]
    fn every_task_is_asked_three_times_and_cache_ages_are_read() {
        assert_eq!(confirmations(0), 3, "no running task counted: still three answers");
        assert_eq!(confirmations(3), 9);
        assert_eq!(max_age("public, max-age=60"), Some(60));
        assert_eq!(max_age("max-age=5, must-revalidate"), Some(5));
        assert_eq!(max_age("no-store"), None);
    }

    #[test]
    fn sql_quoting_doubles_quotes() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[tokio::test]
    async fn a_keyring_rotation_puts_a_new_key_first_and_keeps_the_signer() {
        let k = |byte: u8| URL_SAFE_NO_PAD.encode([byte; 32]);
        let current = format!("old:{},older:{}", k(1), k(2));
        let rotation = KeyringRotation { key_bytes: 32 };
        let pending = rotation.generate(&current).await.unwrap();
        let entries = keyring_entries(&pending).unwrap();
        assert_eq!(
            entries.len(),
            2,
            "the new key and the one that signed until now: {pending}"
        );
        assert_eq!(entries[1], ("old".to_owned(), k(1)));
        assert_ne!(entries[0].0, "old");
        rotation.test(&pending).await.unwrap();
        for bad in ["", "no-colon", "a:short", &format!("a:{},a:{}", k(1), k(2))] {
            assert!(keyring_entries(bad).is_err(), "{bad}");
        }
        assert!(
            rotation.generate("not a keyring").await.is_err(),
            "a value the service cannot parse is refused"
        );
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

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 section 3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let n = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(n).unwrap());
        let key = rsa::RsaPublicKey::new(n, rsa::BigUint::from(65537u32)).unwrap();
        assert_eq!(kid_of(&key), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
