//! ElastiCache for Redis: the replication group's state and its AUTH token.
//!
//! An AUTH token rotates in two calls, as AWS documents it: `ModifyReplicationGroup` with strategy
//! `ROTATE` adds the new token while the old one keeps working (clients move at their own pace), and
//! `SET` then makes the new token the only one. Each call leaves the group `modifying` for a while.

use async_trait::async_trait;
use serde::Serialize;

use crate::AwsError;

/// A replication group as suma needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicationGroup {
    pub id: String,
    /// `available`, `modifying`, …
    pub status: String,
    pub auth_token_enabled: bool,
    pub transit_encryption: bool,
    pub at_rest_encryption: bool,
    /// The primary endpoint as `address:port`.
    pub primary_endpoint: Option<String>,
}

/// How a new AUTH token is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuthTokenUpdate {
    /// Accepted beside the token in use.
    Rotate,
    /// The only token accepted from now on.
    Set,
}

impl AuthTokenUpdate {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotate => "ROTATE",
            Self::Set => "SET",
        }
    }
}

/// An AUTH token on its way to ElastiCache: kept out of debug output and journals.
#[derive(Clone, PartialEq)]
pub struct AuthToken(pub String);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(..)")
    }
}

#[async_trait]
pub trait CacheApi: Send + Sync {
    async fn describe_replication_group(&self, id: &str) -> Result<ReplicationGroup, AwsError>;
    /// Applies `token` with `update`, immediately; returns the group as the call left it.
    async fn update_auth_token(
        &self,
        id: &str,
        token: &AuthToken,
        update: AuthTokenUpdate,
    ) -> Result<ReplicationGroup, AwsError>;
}
