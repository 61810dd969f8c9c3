//! RDS snapshots as compliance judges them: a snapshot holds the whole database, so it must be encrypted
//! and never restorable by everyone (a manual snapshot shared with `all`). Pure.

use super::evaluate::{error_finding, finding};
use super::Finding;
use crate::aws::inventory::DbSnapshotFacts;

/// The findings about one snapshot.
pub fn db_snapshot(s: &DbSnapshotFacts) -> Vec<Finding> {
    let r = s.arn.as_str();
    let region = Some(s.region.as_str());
    let mut out = vec![finding(
        "rds-snapshot-encrypted",
        r,
        region,
        s.encrypted,
        format!(
            "{} snapshot of {}, {}",
            s.snapshot_type,
            s.instance,
            if s.encrypted { "encrypted" } else { "not encrypted" }
        ),
        "encrypted",
    )];
    out.push(match &s.restorable_by {
        Ok(accounts) => {
            let public = accounts.iter().any(|a| a == "all");
            finding(
                "rds-snapshot-not-public",
                r,
                region,
                !public,
                match (public, accounts.is_empty()) {
                    (true, _) => "restorable by all AWS accounts".to_owned(),
                    (false, true) => "restorable by this account only".to_owned(),
                    (false, false) => format!("shared with {}", accounts.join(", ")),
                },
                "not restorable by all AWS accounts",
            )
        }
        Err(e) => error_finding("rds-snapshot-not-public", r, region, e),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Status;

    fn snapshot() -> DbSnapshotFacts {
        DbSnapshotFacts {
            arn: "arn:aws:rds:eu-west-1:123456789012:snapshot:before-migration".into(),
            id: "before-migration".into(),
            region: "eu-west-1".into(),
            instance: "auth-db".into(),
            snapshot_type: "manual".into(),
            encrypted: true,
            restorable_by: Ok(Vec::new()),
        }
    }

    fn verdicts(s: &DbSnapshotFacts) -> Vec<(String, Status, String)> {
        db_snapshot(s)
            .into_iter()
            .map(|f| (f.check_id, f.status, f.observed))
            .collect()
    }

    #[test]
    fn snapshots_are_encrypted_and_not_public() {
        let row = |check: &str, status, observed: &str| (check.to_owned(), status, observed.to_owned());
        assert_eq!(
            verdicts(&snapshot()),
            [
                row(
                    "rds-snapshot-encrypted",
                    Status::Pass,
                    "manual snapshot of auth-db, encrypted"
                ),
                row(
                    "rds-snapshot-not-public",
                    Status::Pass,
                    "restorable by this account only"
                ),
            ]
        );
        let mut shared = snapshot();
        shared.restorable_by = Ok(vec!["210987654321".into()]);
        assert_eq!(verdicts(&shared)[1].2, "shared with 210987654321");
        let mut public = snapshot();
        public.encrypted = false;
        public.restorable_by = Ok(vec!["all".into()]);
        assert_eq!(
            verdicts(&public),
            [
                row(
                    "rds-snapshot-encrypted",
                    Status::Fail,
                    "manual snapshot of auth-db, not encrypted"
                ),
                row(
                    "rds-snapshot-not-public",
                    Status::Fail,
                    "restorable by all AWS accounts"
                ),
            ]
        );
        let mut unreadable = snapshot();
        unreadable.restorable_by = Err("AccessDenied".into());
        assert_eq!(verdicts(&unreadable)[1].1, Status::Error);
    }
}
