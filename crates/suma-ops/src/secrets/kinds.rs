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

/// The JSON Secrets Manager uses for database credentials.
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
}

impl DbCredentials {
    pub fn parse(value: &str, what: &str) -> Result<Self, RotationError> {
        serde_json::from_str(value).map_err(|e| {
            failed(format!(
                "{what} is not database credentials JSON ({e})\nhint: the value must be {{\"username\", \"password\", \"host\", \"port\", \"dbname\"}}"
            ))
        })
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
        Ok(serde_json::to_string(&creds).expect("credentials serialize"))
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

/// The service's JWT signing key: published before use, tested with a real token, then made the signer.
pub struct JwtRotation {
    pub spec: JwtSpec,
    /// The service's base URL.
    pub service_url: reqwest::Url,
    pub http: suma_http::ServiceClient,
    pub poll: Duration,
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
    async fn get_json(&self, path: &str) -> Result<serde_json::Value, RotationError> {
        let url = self.service_url.join(path).map_err(|e| failed(e.to_string()))?;
        let response = self.http.get(url.as_str()).await.map_err(|e| failed(e.to_string()))?;
        if !response.is_success() {
            return Err(failed(format!("GET {url} answered {}", response.status)));
        }
        response
            .json
            .ok_or_else(|| failed(format!("GET {url}: the answer is not JSON")))
    }

    /// Polls until `check` holds, up to `pickup_timeout`.
    async fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
        path: &str,
    ) -> Result<Duration, RotationError> {
        let start = tokio::time::Instant::now();
        loop {
            let last = self.get_json(path).await;
            if last.as_ref().is_ok_and(&check) {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= self.spec.pickup_timeout {
                let seen = last.map_or_else(|e| e.to_string(), |v| v.to_string());
                return Err(failed(format!(
                    "{what} did not happen within {} (last answer of {path}: {seen})\nhint: check that the service reloads its key set (SIGHUP or its reload interval)",
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
        let took = self
            .wait_for(
                &format!("the JWKS publishing kid `{kid}`"),
                has_kid,
                "/.well-known/jwks.json",
            )
            .await?;
        Ok(Facts::from([
            ("kid".to_owned(), json!(kid)),
            ("published_after_ms".to_owned(), json!(took.as_millis() as u64)),
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
        let took = self
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
    fn sql_quoting_doubles_quotes() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(literal("it's"), "'it''s'");
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
