//! Validated scalar types of the configuration. Each rejects a bad value while the YAML is being read,
//! so the error carries the line and column of the value.

use std::fmt;

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// An AWS region code such as `eu-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AwsRegion(String);

const REGION_DIRECTIONS: &[&str] = &[
    "north",
    "south",
    "east",
    "west",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

impl AwsRegion {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AwsRegion {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let parts: Vec<&str> = value.split('-').collect();
        let valid = match parts.as_slice() {
            [geo, direction, number] | [geo, _, direction, number] => {
                geo.len() == 2
                    && geo.bytes().all(|b| b.is_ascii_lowercase())
                    && REGION_DIRECTIONS.contains(direction)
                    && number.len() == 1
                    && number.bytes().all(|b| b.is_ascii_digit())
                    && (parts.len() == 3 || parts[1] == "gov" || parts[1].starts_with("iso"))
            }
            _ => false,
        };
        if valid {
            Ok(Self(value))
        } else {
            Err(format!(
                "`{value}` is not an AWS region code: expected something like `eu-west-1`"
            ))
        }
    }
}

impl From<AwsRegion> for String {
    fn from(value: AwsRegion) -> Self {
        value.0
    }
}

impl fmt::Display for AwsRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Amazon Resource Name (`arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Arn(String);

impl Arn {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region field of the ARN.
    pub fn region(&self) -> &str {
        self.0.split(':').nth(3).unwrap_or_default()
    }

    /// The last path segment, e.g. a target group's name in its ARN.
    pub fn short_name(&self) -> &str {
        let resource = self.0.splitn(6, ':').nth(5).unwrap_or_default();
        let mut parts = resource.split('/');
        // `targetgroup/NAME/ID`, `listener/app/LB/ID/ID`: the name is the second segment.
        parts.nth(1).unwrap_or(resource)
    }
}

impl TryFrom<String> for Arn {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        if parts.len() == 6 && parts[0] == "arn" && !parts[1].is_empty() && !parts[2].is_empty() && !parts[5].is_empty()
        {
            Ok(Self(value))
        } else {
            Err(format!(
                "`{value}` is not an ARN: expected `arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE`"
            ))
        }
    }
}

impl From<Arn> for String {
    fn from(value: Arn) -> Self {
        value.0
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute `http` or `https` URL, kept without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `base` joined with an absolute path such as `/health`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !value.contains(char::is_whitespace) => {
                Ok(Self(value.trim_end_matches('/').to_owned()))
            }
            _ => Err(format!(
                "`{value}` is not an http(s) URL: expected e.g. `https://auth.example.com`"
            )),
        }
    }
}

impl From<HttpUrl> for String {
    fn from(value: HttpUrl) -> Self {
        value.0
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for AwsRegion {
    fn schema_name() -> Cow<'static, str> {
        "AwsRegion".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": r"^[a-z]{2}(-gov|-iso[a-z]*)?-(north|south|east|west|central|northeast|northwest|southeast|southwest)-[0-9]$", "description": "An AWS region code, e.g. eu-west-1" })
    }
}

impl JsonSchema for Arn {
    fn schema_name() -> Cow<'static, str> {
        "Arn".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": r"^arn:[a-z-]+:[a-z0-9-]+:[a-z0-9-]*:[0-9]*:.+$", "description": "An Amazon Resource Name" })
    }
}

impl JsonSchema for HttpUrl {
    fn schema_name() -> Cow<'static, str> {
        "HttpUrl".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": r"^https?://[^/\s]+(/\S*)?$", "description": "An absolute http(s) URL" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in ["eu-west-1", "eu-central-1", "us-gov-west-1", "ap-southeast-2"] {
            assert!(AwsRegion::try_from(ok.to_owned()).is_ok(), "{ok}");
        }
        for bad in ["eu-wst-1", "EU-west-1", "eu-west", "eu-west-12", "europe-west-1", ""] {
            assert!(AwsRegion::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn arns() {
        let arn = Arn::try_from(
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/auth-stable/0123456789abcdef".to_owned(),
        )
        .unwrap();
        assert_eq!(arn.region(), "eu-west-1");
        assert_eq!(arn.short_name(), "auth-stable");
        assert!(Arn::try_from("auth-stable".to_owned()).is_err());
    }

    #[test]
    fn urls() {
        let url = HttpUrl::try_from("https://auth.example.com/".to_owned()).unwrap();
        assert_eq!(url.join("/health"), "https://auth.example.com/health");
        assert!(HttpUrl::try_from("auth.example.com".to_owned()).is_err());
        assert!(HttpUrl::try_from("ftp://x".to_owned()).is_err());
    }
}
