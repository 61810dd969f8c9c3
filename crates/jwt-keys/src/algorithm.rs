//! The four JWS algorithms by their JOSE names (RFC 7518, RFC 8037).

use std::fmt;
use std::str::FromStr;

use crate::KeyError;

/// A JWS signing algorithm.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256: the default for new keys.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// RSASSA-PSS with SHA-256.
    #[serde(rename = "PS256")]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: not allowed by FAPI 2.0; kept to read older keys and migrate.
    #[serde(rename = "RS256")]
    Rs256,
}

impl Algorithm {
    /// Every algorithm, FAPI's first.
    pub const ALL: [Self; 4] = [Self::Es256, Self::EdDsa, Self::Ps256, Self::Rs256];

    /// The JOSE name (`alg`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Ps256 => "PS256",
            Self::Rs256 => "RS256",
        }
    }

    /// Whether the FAPI 2.0 Security Profile allows it (PS256, ES256, EdDSA).
    pub fn fapi(self) -> bool {
        self != Self::Rs256
    }

    /// Whether its keys are RSA keys.
    pub fn rsa(self) -> bool {
        matches!(self, Self::Ps256 | Self::Rs256)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;

    /// The JOSE name; case is forgiven (`es256`), as operators type it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| KeyError::UnknownAlgorithm(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.name().parse::<Algorithm>().unwrap(), alg);
            assert_eq!(alg.name().to_lowercase().parse::<Algorithm>().unwrap(), alg);
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.name()));
            assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), alg);
        }
        assert!("HS256".parse::<Algorithm>().is_err());
        assert!("none".parse::<Algorithm>().is_err());
        assert_eq!(Algorithm::default(), Algorithm::Es256);
        assert!(!Algorithm::Rs256.fapi() && Algorithm::Ps256.fapi());
    }
}
