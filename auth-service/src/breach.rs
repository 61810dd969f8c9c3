//! Optional breached-password check by k-anonymity, speaking the protocol of the HIBP range API: only the
//! first 5 hex characters of the password's SHA-1 leave the service (`GET {base}/range/{prefix}` with
//! `Add-Padding: true`); the answer lists `SUFFIX:COUNT` lines, compared here.
//!
//! Fails open: when the API is slow or down the password is accepted and a warning is logged, so an
//! outage of a third party cannot stop registrations and resets.

use std::time::Duration;

use aws_lc_rs::digest;

/// The check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Seen in breaches this many times.
    Breached(u64),
    /// Not in the list.
    Clean,
    /// The check could not be made (disabled, timeout, error): accepted.
    Unknown,
}

/// A client of a range API.
#[derive(Debug, Clone)]
pub struct BreachChecker {
    client: reqwest::Client,
    base_url: String,
}

/// The uppercase hex SHA-1 of a password, split into the 5-character prefix and the 35-character suffix.
pub fn sha1_parts(password: &str) -> (String, String) {
    let d = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes());
    let hex = hex::encode_upper(d.as_ref());
    (hex[..5].to_owned(), hex[5..].to_owned())
}

/// Looks `suffix` up in a range answer; padding entries have a count of 0.
pub fn count_in_range(body: &str, suffix: &str) -> u64 {
    body.lines()
        .filter_map(|l| l.trim().split_once(':'))
        .find(|(s, _)| s.eq_ignore_ascii_case(suffix))
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

impl BreachChecker {
    /// A checker for the API at `base_url` (e.g. `https://api.pwnedpasswords.com`).
    pub fn new(base_url: &str, timeout: Duration) -> reqwest::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .user_agent("auth-service")
                .build()?,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Checks a password; never fails (see the module docs).
    pub async fn check(&self, password: &str) -> Verdict {
        let (prefix, suffix) = sha1_parts(password);
        let res = self
            .client
            .get(format!("{}/range/{prefix}", self.base_url))
            .header("Add-Padding", "true")
            .send()
            .await;
        let body = match res {
            Ok(r) if r.status().is_success() => r.text().await,
            Ok(r) => {
                tracing::warn!(
                    status = r.status().as_u16(),
                    "breached-password check failed; password accepted"
                );
                return Verdict::Unknown;
            }
            Err(e) => Err(e),
        };
        match body {
            Ok(body) => match count_in_range(&body, &suffix) {
                0 => Verdict::Clean,
                n => Verdict::Breached(n),
            },
            Err(e) => {
                tracing::warn!(error = %e, "breached-password check failed; password accepted");
                Verdict::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_prefix_and_suffix() {
        // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8
        assert_eq!(
            sha1_parts("password"),
            ("5BAA6".to_owned(), "1E4C9B93F3F0682250B6CF8331B7EE68FD8".to_owned())
        );
    }

    #[test]
    fn range_lookup_ignores_padding_and_case() {
        let body = "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n1e4c9b93f3f0682250b6cf8331b7ee68fd8:9545824\r\nFFFF:0\r\n";
        assert_eq!(count_in_range(body, "1E4C9B93F3F0682250B6CF8331B7EE68FD8"), 9_545_824);
        assert_eq!(count_in_range(body, "FFFF"), 0);
        assert_eq!(count_in_range(body, "ABCDEF"), 0);
    }
}
