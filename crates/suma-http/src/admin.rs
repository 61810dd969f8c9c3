//! The auth-service admin API (`/api/admin/*`), which runbooks call to revoke refresh tokens, end
//! sessions and export the audit log. suma authenticates with a short-lived operator token it signs
//! itself with the environment's current JWT signing key (the AWSCURRENT version of the
//! `jwt-signing-key` secret, which suma already reads to rotate it): `roles: ["admin"]`, `sub:
//! ops:<actor>`, no session, five minutes. Nothing else in suma talks to the admin API.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Request, ServiceClient};

/// How long an operator token lives; the service refuses admin tokens living over 15 minutes.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot sign the operator token: {0}")]
    Token(String),
    #[error("{method} {url} failed: {message}")]
    Http {
        method: &'static str,
        url: String,
        message: String,
    },
}

/// One page of audit events.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AuditPage {
    pub events: Vec<Value>,
    pub next: Option<String>,
}

/// What the audit export asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub event_type: Option<String>,
    pub after: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait AdminApi: Send + Sync {
    /// Revokes every unrevoked refresh token (or one user's); the count revoked.
    async fn revoke_refresh_tokens(&self, user_id: Option<&str>) -> Result<u64, AdminError>;
    /// Ends every session (or one user's); the count ended.
    async fn revoke_sessions(&self, user_id: Option<&str>) -> Result<u64, AdminError>;
    async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, AdminError>;
}

#[derive(Serialize)]
struct OperatorClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
    roles: [&'static str; 1],
}

/// Signs an operator token with the key's own algorithm and kid: admin role, no session.
pub fn operator_token(private_key_pem: &str, issuer: &str, audience: &str, actor: &str) -> Result<String, AdminError> {
    let now = chrono::Utc::now().timestamp();
    let claims = OperatorClaims {
        iss: issuer,
        aud: audience,
        sub: format!("ops:{actor}"),
        iat: now,
        exp: now + TOKEN_LIFETIME.as_secs() as i64,
        jti: uuid::Uuid::new_v4().to_string(),
        roles: ["admin"],
    };
    let key = jwt_keys::SigningKey::from_pem(private_key_pem)
        .map_err(|e| AdminError::Token(format!("the JWT signing key cannot be read: {e}")))?;
    key.sign_jwt(Some("JWT"), &claims)
        .map_err(|e| AdminError::Token(e.to_string()))
}

/// The admin API over HTTP.
pub struct HttpAdmin {
    base: String,
    token: String,
    http: ServiceClient,
}

impl HttpAdmin {
    pub fn new(http: ServiceClient, base_url: &str, token: String) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            token,
            http,
        }
    }

    async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
        query: &[(&str, String)],
    ) -> Result<Value, AdminError> {
        let url = format!("{}{path}", self.base);
        let failed = |message: String| AdminError::Http {
            method,
            url: url.clone(),
            message,
        };
        let request = Request {
            body,
            bearer: Some(&self.token),
            query,
        };
        let response = self
            .http
            .send(method, &url, request)
            .await
            .map_err(|e| failed(e.reason))?;
        let body = response.json.unwrap_or(Value::Null);
        if !(200..300).contains(&response.status) {
            let hint = match response.status {
                401 | 403 => "\nhint: the service must trust the signing key suma used (the AWSCURRENT version of the `jwt-signing-key` secret) and accept operator tokens with the admin role",
                _ => "",
            };
            return Err(failed(format!("{}: {body}{hint}", response.status)));
        }
        Ok(body)
    }

    async fn post_count(&self, path: &str, user_id: Option<&str>) -> Result<u64, AdminError> {
        let body = json!({ "user_id": user_id });
        let answer = self.send("POST", path, Some(&body), &[]).await?;
        answer["revoked"].as_u64().ok_or_else(|| AdminError::Http {
            method: "POST",
            url: format!("{}{path}", self.base),
            message: format!("the answer has no `revoked` count: {answer}"),
        })
    }
}

#[async_trait]
impl AdminApi for HttpAdmin {
    async fn revoke_refresh_tokens(&self, user_id: Option<&str>) -> Result<u64, AdminError> {
        self.post_count("/api/admin/refresh-tokens/revoke", user_id).await
    }

    async fn revoke_sessions(&self, user_id: Option<&str>) -> Result<u64, AdminError> {
        self.post_count("/api/admin/sessions/revoke", user_id).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, AdminError> {
        let path = "/api/admin/audit";
        let mut params: Vec<(&str, String)> = vec![("limit", query.limit.to_string())];
        if let Some(since) = query.since {
            params.push(("since", since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        }
        if let Some(t) = &query.event_type {
            params.push(("type", t.clone()));
        }
        if let Some(after) = &query.after {
            params.push(("after", after.clone()));
        }
        let answer = self.send("GET", path, None, &params).await?;
        serde_json::from_value(answer).map_err(|e| AdminError::Http {
            method: "GET",
            url: format!("{}{path}", self.base),
            message: format!("unexpected answer: {e}"),
        })
    }
}

/// Pages through the audit log, writing one JSON object per line; the count and the file's SHA-256.
pub async fn export_audit(
    api: &dyn AdminApi,
    mut query: AuditQuery,
    path: &std::path::Path,
) -> Result<(u64, String), AdminError> {
    use sha2::Digest as _;
    use std::io::Write as _;
    let io = |e: std::io::Error| AdminError::Http {
        method: "GET",
        url: path.display().to_string(),
        message: format!("cannot write the export: {e}"),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let mut hasher = sha2::Sha256::new();
    let mut count = 0u64;
    if query.limit == 0 {
        query.limit = 1000;
    }
    loop {
        let page = api.audit(&query).await?;
        for event in &page.events {
            let line = format!("{event}\n");
            hasher.update(line.as_bytes());
            file.write_all(line.as_bytes()).map_err(io)?;
            count += 1;
        }
        match page.next {
            Some(next) if !page.events.is_empty() => query.after = Some(next),
            _ => break,
        }
    }
    file.flush().map_err(io)?;
    Ok((count, format!("{:x}", hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    struct Pages(Mutex<Vec<AuditPage>>, Mutex<Vec<Option<String>>>);

    #[async_trait]
    impl AdminApi for Pages {
        async fn revoke_refresh_tokens(&self, _: Option<&str>) -> Result<u64, AdminError> {
            unreachable!()
        }
        async fn revoke_sessions(&self, _: Option<&str>) -> Result<u64, AdminError> {
            unreachable!()
        }
        async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, AdminError> {
            self.1.lock().unwrap().push(query.after.clone());
            Ok(self.0.lock().unwrap().remove(0))
        }
    }

    #[tokio::test]
    async fn export_follows_the_cursor_and_hashes_what_it_wrote() {
        let pages = Pages(
            Mutex::new(vec![
                AuditPage {
                    events: vec![json!({"id": 1}), json!({"id": 2})],
                    next: Some("c2".into()),
                },
                AuditPage {
                    events: vec![json!({"id": 3})],
                    next: None,
                },
            ]),
            Mutex::default(),
        );
        let path = std::env::temp_dir().join(format!("suma-audit-{}.jsonl", uuid::Uuid::new_v4().simple()));
        let (count, sha) = export_audit(&pages, AuditQuery::default(), &path).await.unwrap();
        assert_eq!(count, 3);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
        use sha2::Digest as _;
        assert_eq!(sha, format!("{:x}", sha2::Sha256::digest(text.as_bytes())));
        assert_eq!(*pages.1.lock().unwrap(), [None, Some("c2".to_owned())]);
    }

    #[test]
    fn operator_tokens_carry_the_admin_role_and_no_session() {
        let key = jwt_keys::generate(jwt_keys::Algorithm::Es256, 2048).unwrap();
        let token = operator_token(&key.pem, "auth-service", "suma", "ana").unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["roles"], json!(["admin"]));
        assert_eq!(claims["sub"], json!("ops:ana"));
        assert!(claims.get("sid").is_none());
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
    }
}
