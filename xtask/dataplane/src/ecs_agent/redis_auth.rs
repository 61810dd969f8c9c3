//! ElastiCache AUTH tokens applied to the sandbox's Redis servers.
//!
//! moto keeps replication groups but ignores `AuthToken` in `ModifyReplicationGroup`, and runs no Redis.
//! Each environment's replication group is one `redis-server` of the sandbox (`--redis-group
//! GROUP=IP:PORT`), whose `default` user's passwords are the group's tokens. The overlay applies a token
//! change as ElastiCache does before passing the call on to moto: strategy `ROTATE` adds the token beside
//! the one in use (`ACL SETUSER default >TOKEN`), `SET` leaves it alone (`resetpass >TOKEN`), `DELETE`
//! turns AUTH off (`nopass`). It signs in as an admin user of its own, which no rotation touches.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// The sandbox's Redis servers by replication group, and the admin login the overlay uses on them.
#[derive(Debug, Clone, Default)]
pub struct RedisGroups {
    pub groups: BTreeMap<String, SocketAddr>,
    pub admin_user: String,
    pub admin_password: String,
}

/// A token change that ElastiCache refuses, as its query-protocol error.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

impl Refused {
    /// The XML error document an AWS SDK reads from a query-protocol service.
    pub fn xml(&self) -> String {
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>sandbox</RequestId></ErrorResponse>",
            self.code, self.message
        )
    }
}

/// `GROUP=IP:PORT`.
pub fn parse_group(text: &str) -> Result<(String, SocketAddr), String> {
    let (group, address) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected GROUP=IP:PORT"))?;
    let address = address.parse().map_err(|e| format!("`{text}`: {e}"))?;
    Ok((group.to_owned(), address))
}

/// The parameters of a query-protocol request body.
pub(super) fn form(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    reqwest::Url::parse(&format!("http://form/?{text}"))
        .map(|url| {
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The ACL arguments a `ModifyReplicationGroup` body asks for, on which group; `Ok(None)` when it changes
/// no token. Tokens are checked as ElastiCache checks them.
pub fn token_change(params: &BTreeMap<String, String>) -> Result<Option<(String, Vec<String>)>, Refused> {
    if params.get("Action").map(String::as_str) != Some("ModifyReplicationGroup") {
        return Ok(None);
    }
    let Some(group) = params.get("ReplicationGroupId") else {
        return Ok(None);
    };
    let strategy = params.get("AuthTokenUpdateStrategy").map(String::as_str);
    let token = params.get("AuthToken");
    let invalid = |message: &str| Refused {
        code: "InvalidParameterValue",
        message: message.to_owned(),
    };
    let acl = match (strategy, token) {
        (None, None) => return Ok(None),
        (Some("DELETE"), _) => vec!["nopass".to_owned()],
        (_, None) => {
            return Err(invalid(
                "AuthToken is required with AuthTokenUpdateStrategy ROTATE or SET",
            ))
        }
        (strategy, Some(token)) => {
            let printable = token
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '"' | '@'));
            if !(16..=128).contains(&token.len()) || !printable {
                return Err(invalid(
                    "AuthToken must be 16 to 128 printable characters without '/', '\"' or '@'",
                ));
            }
            match strategy {
                Some("ROTATE") => vec![format!(">{token}")],
                // SET, and a token without a strategy (ElastiCache's default is SET).
                Some("SET") | None => vec!["resetpass".to_owned(), format!(">{token}")],
                Some(other) => {
                    return Err(invalid(&format!(
                        "AuthTokenUpdateStrategy `{other}` is not ROTATE, SET or DELETE"
                    )))
                }
            }
        }
    };
    Ok(Some((group.clone(), acl)))
}

impl RedisGroups {
    /// Applies the token change `body` asks for to the group's server; `Ok(false)` when there is none,
    /// or the group is not one of the sandbox's.
    pub async fn apply(&self, params: &BTreeMap<String, String>) -> Result<bool, Refused> {
        let Some((group, acl)) = token_change(params)? else {
            return Ok(false);
        };
        let Some(address) = self.groups.get(&group) else {
            return Ok(false);
        };
        let mut command = vec![
            "ACL".to_owned(),
            "SETUSER".to_owned(),
            "default".to_owned(),
            "on".to_owned(),
        ];
        command.extend(acl);
        self.run(*address, command).await.map_err(|e| Refused {
            code: "InvalidReplicationGroupState",
            message: format!("the sandbox Redis of `{group}` did not take the token: {e}"),
        })?;
        tracing::info!(group = %group, "AUTH token applied to the sandbox Redis");
        Ok(true)
    }

    /// `AUTH admin` then `command`, each answered `+OK`.
    async fn run(&self, address: SocketAddr, command: Vec<String>) -> Result<(), String> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = BufReader::new(stream);
        let auth = vec!["AUTH".to_owned(), self.admin_user.clone(), self.admin_password.clone()];
        for command in [auth, command] {
            let mut frame = format!("*{}\r\n", command.len());
            for part in &command {
                frame.push_str(&format!("${}\r\n{part}\r\n", part.len()));
            }
            stream
                .get_mut()
                .write_all(frame.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut line = String::new();
            stream.read_line(&mut line).await.map_err(|e| e.to_string())?;
            if line.trim_end() != "+OK" {
                return Err(format!("`{}` answered {}", command[0], line.trim_end()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(params: &[(&str, &str)]) -> Vec<u8> {
        let mut url = reqwest::Url::parse("http://x/").unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.query().unwrap().as_bytes().to_vec()
    }

    /// A request's form fields and the ACL change expected (`Err` holds a word of the refusal).
    type Case<'a> = (&'a [(&'a str, &'a str)], Result<Option<Vec<String>>, &'a str>);

    #[test]
    fn token_updates_become_acl_changes_of_the_default_user() {
        let token = "a-token-of-sixteen+chars";
        let cases: [Case<'_>; 7] = [
            (
                &[
                    ("Action", "ModifyReplicationGroup"),
                    ("ReplicationGroupId", "g"),
                    ("AuthToken", token),
                    ("AuthTokenUpdateStrategy", "ROTATE"),
                ],
                Ok(Some(vec![format!(">{token}")])),
            ),
            (
                &[
                    ("Action", "ModifyReplicationGroup"),
                    ("ReplicationGroupId", "g"),
                    ("AuthToken", token),
                    ("AuthTokenUpdateStrategy", "SET"),
                ],
                Ok(Some(vec!["resetpass".into(), format!(">{token}")])),
            ),
            (
                &[
                    ("Action", "ModifyReplicationGroup"),
                    ("ReplicationGroupId", "g"),
                    ("AuthTokenUpdateStrategy", "DELETE"),
                ],
                Ok(Some(vec!["nopass".into()])),
            ),
            (
                &[
                    ("Action", "ModifyReplicationGroup"),
                    ("ReplicationGroupId", "g"),
                    ("SnapshotRetentionLimit", "7"),
                ],
                Ok(None),
            ),
            (
                &[("Action", "DescribeReplicationGroups"), ("ReplicationGroupId", "g")],
                Ok(None),
            ),
            (
                &[
                    ("Action", "ModifyReplicationGroup"),
                    ("ReplicationGroupId", "g"),
                    ("AuthToken", "short"),
                    ("AuthTokenUpdateStrategy", "ROTATE"),
                ],
                Err("16 to 128"),
            ),
            (
                &[
                    ("Action", "ModifyReplicationGroup"),
                    ("ReplicationGroupId", "g"),
                    ("AuthToken", "with/a/slash/0123456789"),
                    ("AuthTokenUpdateStrategy", "SET"),
                ],
                Err("without"),
            ),
        ];
        for (params, want) in cases {
            let got = token_change(&form(&body(params)));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got.map(|(g, acl)| (assert_eq!(g, "g"), acl).1), want, "{params:?}"),
                (Err(got), Err(want)) => assert!(
                    got.message.contains(want) && got.xml().contains("InvalidParameterValue"),
                    "{got:?}"
                ),
                (got, want) => panic!("{params:?}: {got:?}, wanted {want:?}"),
            }
        }
        assert_eq!(parse_group("auth-staging=127.0.0.1:6380").unwrap().1.port(), 6380);
        assert!(parse_group("auth-staging").is_err());
    }
}
