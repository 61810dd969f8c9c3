//! The account's posture around the service, judged: ECR repositories (images scanned on push, tags
//! immutable), ACM certificates (not within 30 days of expiry), CloudTrail (a multi-region trail logging,
//! its log files validated and encrypted) and the service's Application Auto Scaling. Pure.

use chrono::{DateTime, Utc};

use super::evaluate::{error_finding, finding, on_off};
use super::Finding;
use crate::aws::inventory::{CertificateFacts, EcrRepositoryFacts, EcsServiceFacts, ScalableTargetFacts, TrailFacts};

/// A certificate closer than this to its expiry fails.
pub const CERTIFICATE_MIN_DAYS: i64 = 30;

pub fn ecr_repository(r: &EcrRepositoryFacts) -> Vec<Finding> {
    let region = Some(r.region.as_str());
    vec![
        finding(
            "ecr-scan-on-push",
            &r.arn,
            region,
            r.scan_on_push,
            if r.scan_on_push {
                "images scanned on push"
            } else {
                "no scan on push (repository or registry rule)"
            },
            "images scanned on push",
        ),
        finding(
            "ecr-immutable-tags",
            &r.arn,
            region,
            r.immutable_tags,
            if r.immutable_tags {
                "tags immutable"
            } else {
                "tags mutable"
            },
            "tags immutable",
        ),
    ]
}

/// Issued (or expired) certificates; one still pending validation is not yet in force.
pub fn certificate(c: &CertificateFacts, now: DateTime<Utc>) -> Vec<Finding> {
    if !matches!(c.status.as_str(), "ISSUED" | "EXPIRED") {
        return Vec::new();
    }
    let expected = format!("valid for at least {CERTIFICATE_MIN_DAYS} more days");
    let region = Some(c.region.as_str());
    let Some(not_after) = c.not_after else {
        return vec![error_finding(
            "acm-certificate-expiry",
            &c.arn,
            region,
            "ACM gave no expiry date",
        )];
    };
    let days = (not_after - now).num_days();
    let use_note = if c.in_use { "in use" } else { "not in use" };
    let observed = if not_after <= now {
        format!("{}: expired {} ({use_note})", c.domain, not_after.format("%Y-%m-%d"))
    } else {
        format!(
            "{}: expires {} in {days} days ({use_note})",
            c.domain,
            not_after.format("%Y-%m-%d")
        )
    };
    vec![finding(
        "acm-certificate-expiry",
        &c.arn,
        region,
        days >= CERTIFICATE_MIN_DAYS,
        observed,
        expected,
    )]
}

/// The trails that apply to the account's region: one account-wide finding (a multi-region trail is
/// logging) and each trail's own.
pub fn trails(trails: &[TrailFacts], region: &str) -> Vec<Finding> {
    let account = format!("CloudTrail (seen from {region})");
    let logging_everywhere: Vec<&TrailFacts> = trails
        .iter()
        .filter(|t| t.multi_region && t.logging == Ok(true))
        .collect();
    let unreadable: Vec<&String> = trails
        .iter()
        .filter(|t| t.multi_region)
        .filter_map(|t| t.logging.as_ref().err())
        .collect();
    let mut out = vec![match (logging_everywhere.first(), unreadable.first()) {
        (Some(t), _) => finding(
            "cloudtrail-multi-region-logging",
            &account,
            None,
            true,
            format!("multi-region trail {} is logging", t.name),
            "a multi-region trail logging",
        ),
        (None, Some(e)) => error_finding("cloudtrail-multi-region-logging", &account, None, e),
        (None, None) => finding(
            "cloudtrail-multi-region-logging",
            &account,
            None,
            false,
            if trails.is_empty() {
                "no trail".to_owned()
            } else {
                format!("{} trail(s), none multi-region and logging", trails.len())
            },
            "a multi-region trail logging",
        ),
    }];
    for t in trails {
        let region = Some(t.home_region.as_str());
        out.push(finding(
            "cloudtrail-log-validation",
            &t.arn,
            region,
            t.log_file_validation,
            format!("log file validation {}", on_off(t.log_file_validation)),
            "log file validation on",
        ));
        out.push(finding(
            "cloudtrail-encrypted",
            &t.arn,
            region,
            t.kms_key_id.is_some(),
            match &t.kms_key_id {
                Some(k) => format!("encrypted with {k}"),
                None => "S3-managed encryption only".to_owned(),
            },
            "encrypted with a KMS key",
        ));
    }
    out
}

/// The service's scaling: a target that can move (max above min) and is not suspended.
pub fn service_scaling(service: &EcsServiceFacts, targets: &[ScalableTargetFacts]) -> Finding {
    let id = format!("service/{}/{}", service.cluster, service.name);
    let target = targets.iter().find(|t| t.resource_id == id);
    let (pass, observed) = match target {
        None => (false, "no Application Auto Scaling target".to_owned()),
        Some(t) if t.suspended => (false, format!("min {} max {}, scaling suspended", t.min, t.max)),
        Some(t) if t.max <= t.min => (false, format!("min {} max {}: cannot scale", t.min, t.max)),
        Some(t) => (true, format!("min {} max {}", t.min, t.max)),
    };
    finding(
        "ecs-autoscaling",
        &service.arn,
        Some(service.region.as_str()),
        pass,
        observed,
        "an Application Auto Scaling target with max above min, not suspended",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Status;

    fn verdict(findings: &[Finding], check: &str) -> (Status, String) {
        let f = findings.iter().find(|f| f.check_id == check).unwrap();
        (f.status, f.observed.clone())
    }

    #[test]
    fn repositories_scan_on_push_and_keep_tags() {
        let good = EcrRepositoryFacts {
            arn: "arn:aws:ecr:eu-west-1:123456789012:repository/auth-service".into(),
            name: "auth-service".into(),
            region: "eu-west-1".into(),
            scan_on_push: true,
            immutable_tags: true,
        };
        assert!(ecr_repository(&good).iter().all(|f| f.status == Status::Pass));
        let bad = EcrRepositoryFacts {
            scan_on_push: false,
            immutable_tags: false,
            ..good
        };
        let f = ecr_repository(&bad);
        assert_eq!(
            verdict(&f, "ecr-scan-on-push"),
            (Status::Fail, "no scan on push (repository or registry rule)".into())
        );
        assert_eq!(verdict(&f, "ecr-immutable-tags"), (Status::Fail, "tags mutable".into()));
    }

    #[test]
    fn certificates_fail_within_thirty_days_of_expiry() {
        let now: DateTime<Utc> = "2026-12-05T00:00:00Z".parse().unwrap();
        let cert = |days: i64, status: &str| CertificateFacts {
            arn: "arn:aws:acm:eu-west-1:123456789012:certificate/c".into(),
            domain: "auth.example.com".into(),
            region: "eu-west-1".into(),
            status: status.into(),
            not_after: Some(now + chrono::Duration::days(days)),
            in_use: true,
        };
        type Verdict = Option<(Status, &'static str)>;
        let cases: &[(i64, &str, Verdict)] = &[
            (
                90,
                "ISSUED",
                Some((Status::Pass, "auth.example.com: expires 2027-03-05 in 90 days (in use)")),
            ),
            (
                30,
                "ISSUED",
                Some((Status::Pass, "auth.example.com: expires 2027-01-04 in 30 days (in use)")),
            ),
            (
                29,
                "ISSUED",
                Some((Status::Fail, "auth.example.com: expires 2027-01-03 in 29 days (in use)")),
            ),
            (
                -3,
                "EXPIRED",
                Some((Status::Fail, "auth.example.com: expired 2026-12-02 (in use)")),
            ),
            (5, "PENDING_VALIDATION", None),
        ];
        for (days, status, want) in cases {
            let got = certificate(&cert(*days, status), now)
                .first()
                .map(|f| (f.status, f.observed.clone()));
            assert_eq!(got, want.map(|(s, o)| (s, o.to_owned())), "{days} {status}");
        }
    }

    #[test]
    fn one_multi_region_trail_logging_covers_the_account() {
        let trail = |name: &str, multi: bool, logging: Result<bool, String>| TrailFacts {
            arn: format!("arn:aws:cloudtrail:eu-west-1:123456789012:trail/{name}"),
            name: name.into(),
            home_region: "eu-west-1".into(),
            multi_region: multi,
            log_file_validation: true,
            kms_key_id: Some("arn:aws:kms:eu-west-1:123456789012:key/k".into()),
            logging,
        };
        let account =
            |trails: &[TrailFacts]| verdict(&super::trails(trails, "eu-west-1"), "cloudtrail-multi-region-logging");
        assert_eq!(
            account(&[trail("org", true, Ok(true)), trail("local", false, Ok(true))]),
            (Status::Pass, "multi-region trail org is logging".into())
        );
        assert_eq!(account(&[]), (Status::Fail, "no trail".into()));
        assert_eq!(
            account(&[trail("org", true, Ok(false)), trail("local", false, Ok(true))]),
            (Status::Fail, "2 trail(s), none multi-region and logging".into())
        );
        assert_eq!(
            account(&[trail("org", true, Err("AccessDenied".into()))]).0,
            Status::Error
        );
        let mut plain = trail("plain", true, Ok(true));
        plain.log_file_validation = false;
        plain.kms_key_id = None;
        let f = super::trails(&[plain], "eu-west-1");
        assert_eq!(
            verdict(&f, "cloudtrail-log-validation"),
            (Status::Fail, "log file validation off".into())
        );
        assert_eq!(
            verdict(&f, "cloudtrail-encrypted"),
            (Status::Fail, "S3-managed encryption only".into())
        );
    }

    #[test]
    fn the_service_scales_when_its_target_can_move() {
        let service = EcsServiceFacts {
            arn: "arn:aws:ecs:eu-west-1:123456789012:service/auth/auth-service".into(),
            name: "auth-service".into(),
            cluster: "auth".into(),
            region: "eu-west-1".into(),
            ..EcsServiceFacts::default()
        };
        let target = |min, max, suspended| ScalableTargetFacts {
            resource_id: "service/auth/auth-service".into(),
            region: "eu-west-1".into(),
            min,
            max,
            suspended,
        };
        let cases = [
            (vec![target(2, 10, false)], Status::Pass, "min 2 max 10"),
            (vec![target(2, 2, false)], Status::Fail, "min 2 max 2: cannot scale"),
            (
                vec![target(2, 10, true)],
                Status::Fail,
                "min 2 max 10, scaling suspended",
            ),
            (vec![], Status::Fail, "no Application Auto Scaling target"),
        ];
        for (targets, status, observed) in cases {
            let f = service_scaling(&service, &targets);
            assert_eq!((f.status, f.observed.as_str()), (status, observed));
        }
    }
}
