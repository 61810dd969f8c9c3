//! Where suma's own database connections go when the database's name is not reachable from where suma
//! runs: `SUMA_DB_CONNECT_TO=SUFFIX=HOST:PORT[,…]`, as curl's `--connect-to`.
//!
//! RDS sits in private subnets; an operator on a laptop reaches it through a port forward (SSM Session
//! Manager, a bastion) on a local port, while the names suma learns from RDS and from secrets stay the
//! real endpoints. A rule sends every connection to a host ending in `SUFFIX` to `HOST:PORT` instead,
//! whatever port was asked for; the sandbox uses the same rule to reach its PostgreSQL under the RDS
//! endpoints moto reports. Names, journals and messages keep the real endpoint.

/// One `SUFFIX=HOST:PORT` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRule {
    pub suffix: String,
    pub host: String,
    pub port: u16,
}

/// The rules, first match wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectTo(pub Vec<ConnectRule>);

impl ConnectTo {
    /// `SUFFIX=HOST:PORT` entries separated by commas; an empty text is no rule.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rules = text
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|rule| {
                let bad =
                    || format!("`{rule}` is not SUFFIX=HOST:PORT (for example `.rds.amazonaws.com=127.0.0.1:15432`)");
                let (suffix, target) = rule.split_once('=').ok_or_else(bad)?;
                let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
                let port = port.parse().map_err(|_| bad())?;
                if suffix.is_empty() || host.is_empty() {
                    return Err(bad());
                }
                Ok(ConnectRule {
                    suffix: suffix.to_ascii_lowercase(),
                    host: host.to_owned(),
                    port,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(rules))
    }

    /// Where a connection to `host:port` goes.
    pub fn route<'a>(&'a self, host: &'a str, port: u16) -> (&'a str, u16) {
        let name = host.to_ascii_lowercase();
        self.0
            .iter()
            .find(|r| name.ends_with(&r.suffix))
            .map_or((host, port), |r| (r.host.as_str(), r.port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_to_a_matching_name_go_to_the_forwarded_port() {
        let rules = ConnectTo::parse(".rds.amazonaws.com=127.0.0.1:15432, db.internal=10.0.0.5:6432").unwrap();
        let cases = [
            ("auth.abc.eu-west-1.rds.amazonaws.com", 5432, ("127.0.0.1", 15432)),
            ("AUTH.ABC.EU-WEST-1.RDS.AMAZONAWS.COM", 5432, ("127.0.0.1", 15432)),
            ("db.internal", 5432, ("10.0.0.5", 6432)),
            ("other.example", 5432, ("other.example", 5432)),
        ];
        for (host, port, want) in cases {
            assert_eq!(rules.route(host, port), want, "{host}");
        }
        assert_eq!(ConnectTo::parse("").unwrap(), ConnectTo::default());
        for bad in ["nohost", ".x=127.0.0.1", ".x=127.0.0.1:port", "=h:1", ".x=:1"] {
            assert!(ConnectTo::parse(bad).unwrap_err().contains("SUFFIX=HOST:PORT"), "{bad}");
        }
    }
}
