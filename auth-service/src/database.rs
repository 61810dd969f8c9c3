//! Where the service's PostgreSQL is: `DATABASE_URL`, with its host moved by `DATABASE_HOST`.
//!
//! The URL (with the role's password) comes from a secret that Secrets Manager replicates to the DR
//! region, where a replica secret is read-only. After a DR failover the database is the promoted
//! replica, a different host with the same roles and passwords, so suma repoints the DR service by
//! registering a revision with `DATABASE_HOST` set to the promoted endpoint rather than by splitting the
//! secret from its primary (which would stop password rotations from reaching the DR region). The host is
//! not a secret, so it travels as plain container environment. Every subcommand that connects (`serve`,
//! `migrate`, `purge`) takes these two settings, so a migration run during a DR period reaches the same
//! database as the tasks.

use std::str::FromStr as _;

use clap::Args;
use sqlx::postgres::PgConnectOptions;

/// The database a subcommand connects to.
#[derive(Clone, Args)]
pub struct DatabaseTarget {
    /// PostgreSQL connection URL.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        hide_env_values = true
    )]
    pub url: String,
    /// Host, or `host:port`, that replaces the one in `DATABASE_URL` (set by a DR repoint to the promoted
    /// instance's endpoint; the role, password, database and options stay the URL's).
    #[arg(long = "database-host", env = "DATABASE_HOST", value_name = "DATABASE_HOST")]
    pub host: Option<String>,
}

/// Why the database settings cannot be used: the variable at fault and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("`{variable}` {problem}")]
pub struct TargetError {
    pub variable: &'static str,
    pub problem: String,
}

fn bad_url(problem: &str) -> TargetError {
    TargetError {
        variable: "DATABASE_URL",
        problem: format!("must be a postgres:// URL ({problem})"),
    }
}

// Hand-written so that the URL's password never reaches a log line.
impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseTarget")
            .field("url", &"[redacted]")
            .field("host", &self.host)
            .finish()
    }
}

impl DatabaseTarget {
    /// The connection options: the URL's, with the host (and port, when given) of `DATABASE_HOST`.
    pub fn connect_options(&self) -> Result<PgConnectOptions, TargetError> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(bad_url("another scheme"));
        }
        // sqlx's message may quote the URL, and with it the password: only its kind is kept.
        let options = PgConnectOptions::from_str(&self.url)
            .map_err(|e| bad_url(e.to_string().split(':').next().unwrap_or("unreadable")))?;
        let Some(host) = self.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(options);
        };
        let (name, port) = split_host(host).ok_or_else(|| TargetError {
            variable: "DATABASE_HOST",
            problem: format!("`{host}` is not a host or host:port (for example `db.example.internal:5432`)"),
        })?;
        let options = options.host(name);
        Ok(match port {
            Some(port) => options.port(port),
            None => options,
        })
    }
}

/// `host` or `host:port` (an IPv6 address in brackets); `None` when it is neither.
fn split_host(value: &str) -> Option<(&str, Option<u16>)> {
    let valid_name = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    };
    if let Some(rest) = value.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            port => Some(port.strip_prefix(':')?.parse().ok()?),
        };
        return valid_name(address).then_some((address, port));
    }
    let (name, port) = match value.rsplit_once(':') {
        Some((name, port)) => (name, Some(port.parse().ok()?)),
        None => (value, None),
    };
    (valid_name(name) && !name.contains(':')).then_some((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, host: Option<&str>) -> DatabaseTarget {
        DatabaseTarget {
            url: url.to_owned(),
            host: host.map(str::to_owned),
        }
    }

    #[test]
    fn the_host_variable_moves_host_and_port_and_keeps_the_rest() {
        let url = "postgres://auth:s3cret@old.example:5432/auth?sslmode=require";
        let cases = [
            (None, "old.example", 5432),
            (Some(""), "old.example", 5432),
            (Some("new.example"), "new.example", 5432),
            (Some("new.example:6543"), "new.example", 6543),
            (
                Some("db-dr.abc.eu-central-1.rds.amazonaws.com:5432"),
                "db-dr.abc.eu-central-1.rds.amazonaws.com",
                5432,
            ),
            (Some("[::1]:7000"), "::1", 7000),
        ];
        for (host, want_host, want_port) in cases {
            let options = target(url, host).connect_options().unwrap();
            assert_eq!(options.get_host(), want_host, "{host:?}");
            assert_eq!(options.get_port(), want_port, "{host:?}");
            assert_eq!(options.get_database(), Some("auth"), "{host:?}");
            assert_eq!(options.get_username(), "auth", "{host:?}");
        }
    }

    #[test]
    fn bad_settings_are_named_without_the_password() {
        for host in ["new.example:port", "a b", "host:1:2", "[::1", ":5432"] {
            let err = target("postgres://u:p@h/db", Some(host)).connect_options().unwrap_err();
            assert!(err.to_string().contains("DATABASE_HOST"), "{host}: {err}");
        }
        let err = target("mysql://u:topsecret@h/db", None).connect_options().unwrap_err();
        assert!(
            err.to_string().contains("DATABASE_URL") && !err.to_string().contains("topsecret"),
            "{err}"
        );
        let err = target("postgres://u:topsecret@h:notaport/db", None)
            .connect_options()
            .unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}
