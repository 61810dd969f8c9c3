//! Whether the DR service runs the primary's image, judged by digest. A tag is a name that can move and
//! a registry path differs by region under ECR replication, so comparing image strings both fails a
//! correctly replicated image and passes a moved tag. What a service runs is the digest its running
//! tasks report (ECS resolves the tag when it starts them); a service with no task running (a pilot
//! light) would run what its image reference names in its registry now. [`read`] finds the digests,
//! [`judge`] (pure) compares them.

use std::collections::BTreeSet;

use super::check::CheckStatus;
use crate::aws::ecs::{EcrImage, ImageReference};
use crate::aws::AwsApis;
use crate::config::AwsRegion;

/// What a service's application container runs, as far as a digest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageDigests {
    /// Reported by its running tasks (more than one while a deployment replaces them).
    Running(Vec<String>),
    /// No task runs: what its image reference names in its registry now.
    Registry(String),
    /// Not known by digest, and why (not an ECR image, not in its registry, a read failed).
    Unknown(String),
}

impl ImageDigests {
    fn known(&self) -> Option<BTreeSet<&str>> {
        match self {
            Self::Running(digests) => Some(digests.iter().map(String::as_str).collect()),
            Self::Registry(digest) => Some(BTreeSet::from([digest.as_str()])),
            Self::Unknown(_) => None,
        }
    }

    /// `sha256:0123456789ab (running tasks)`, digests cut to 12 hex digits as `docker images` shows them.
    fn describe(&self) -> String {
        let short = |d: &str| {
            let (algorithm, hex) = d.split_once(':').unwrap_or(("", d));
            format!("{algorithm}:{}", hex.chars().take(12).collect::<String>())
        };
        match self {
            Self::Running(digests) => format!(
                "{} (running tasks)",
                digests.iter().map(|d| short(d)).collect::<Vec<_>>().join(", ")
            ),
            Self::Registry(digest) => format!("{} (registry)", short(digest)),
            Self::Unknown(why) => format!("digest unknown: {why}"),
        }
    }
}

/// A service's image as the check compares it: its family, its image reference, its digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImage<'a> {
    pub family: &'a str,
    pub image: &'a str,
    pub digests: &'a ImageDigests,
}

/// The check's status, the DR side's description (value) and the primary's (target).
pub fn judge(dr: &ServiceImage<'_>, primary: &ServiceImage<'_>) -> (CheckStatus, String, String) {
    let value = format!("{} {} {}", dr.family, dr.image, dr.digests.describe());
    let target = format!("{} {} {}", primary.family, primary.image, primary.digests.describe());
    let status = if dr.family != primary.family {
        CheckStatus::Fail
    } else {
        match (dr.digests.known(), primary.digests.known()) {
            (Some(dr), Some(primary)) if dr == primary && primary.len() == 1 => CheckStatus::Pass,
            (Some(dr), Some(primary)) if dr.is_disjoint(&primary) => CheckStatus::Fail,
            // Overlapping sets: one side is mid-deployment.
            (Some(_), Some(_)) => CheckStatus::Warn,
            // By name only: the same repository and tag (in any region's registry) may still be another
            // image, so at best a warning; another name is another image.
            _ if same_repository_and_reference(dr.image, primary.image) => CheckStatus::Warn,
            _ => CheckStatus::Fail,
        }
    };
    (status, value, target)
}

/// Whether two references name the same repository and tag or digest, the registry's region aside.
fn same_repository_and_reference(a: &str, b: &str) -> bool {
    match (EcrImage::parse(a), EcrImage::parse(b)) {
        (Some(a), Some(b)) => a.account == b.account && a.repository == b.repository && a.reference == b.reference,
        _ => a == b,
    }
}

/// Where a service runs and which regions suma's session spans (a registry elsewhere is not asked).
pub struct Placement<'a> {
    pub region: &'a AwsRegion,
    pub cluster: &'a str,
    pub service: &'a str,
    pub container: &'a str,
    pub session_regions: &'a [&'a AwsRegion],
}

/// The digests a service's container runs: its running tasks', else what `image` names in its registry.
pub async fn read(aws: &dyn AwsApis, placement: &Placement<'_>, image: Option<&str>) -> ImageDigests {
    let Placement {
        region,
        cluster,
        service,
        container,
        session_regions,
    } = placement;
    match aws.ecs(region).running_image_digests(cluster, service, container).await {
        Ok(digests) if !digests.is_empty() => return ImageDigests::Running(digests),
        Ok(_) => {}
        Err(e) => return ImageDigests::Unknown(format!("its tasks are unreadable: {e}")),
    }
    let Some(image) = image else {
        return ImageDigests::Unknown(format!("no container `{container}`"));
    };
    let Some(ecr) = EcrImage::parse(image) else {
        return ImageDigests::Unknown("not an ECR image".to_owned());
    };
    if let ImageReference::Digest(digest) = &ecr.reference {
        return ImageDigests::Registry(digest.clone());
    }
    let Some(registry_region) = session_regions.iter().find(|r| r.as_str() == ecr.region) else {
        return ImageDigests::Unknown(format!(
            "its registry is in {}, a region the environment does not span",
            ecr.region
        ));
    };
    match aws.ecs(registry_region).registry_image_digest(&ecr).await {
        Ok(Some(digest)) => ImageDigests::Registry(digest),
        Ok(None) => ImageDigests::Unknown(format!("not in the registry of {}", ecr.region)),
        Err(e) => ImageDigests::Unknown(format!("the registry is unreadable: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckStatus::{Fail, Pass, Warn};

    const PRIMARY: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-service:1.4.2";
    const REPLICATED: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/auth-service:1.4.2";
    const OLDER: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/auth-service:1.3.0";
    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn running(digests: &[&str]) -> ImageDigests {
        ImageDigests::Running(digests.iter().map(|d| (*d).to_owned()).collect())
    }

    fn registry(digest: &str) -> ImageDigests {
        ImageDigests::Registry(digest.to_owned())
    }

    fn unknown() -> ImageDigests {
        ImageDigests::Unknown("not an ECR image".to_owned())
    }

    #[test]
    fn the_digests_decide_where_they_are_known_and_the_names_only_warn_otherwise() {
        let cases = [
            // Regional replication: other registry, same digest.
            ("replicated", REPLICATED, running(&[A]), PRIMARY, running(&[A]), Pass),
            ("pilot light", REPLICATED, registry(A), PRIMARY, running(&[A]), Pass),
            // A tag moved after the primary's tasks started: same name, another image.
            ("moved tag", PRIMARY, registry(B), PRIMARY, running(&[A]), Fail),
            ("older release", OLDER, running(&[B]), PRIMARY, running(&[A]), Fail),
            (
                "primary mid-deployment",
                REPLICATED,
                registry(A),
                PRIMARY,
                running(&[A, B]),
                Warn,
            ),
            (
                "same name, digest unknown",
                PRIMARY,
                unknown(),
                PRIMARY,
                running(&[A]),
                Warn,
            ),
            (
                "replicated name, digest unknown",
                REPLICATED,
                unknown(),
                PRIMARY,
                unknown(),
                Warn,
            ),
            (
                "another name, digest unknown",
                OLDER,
                unknown(),
                PRIMARY,
                unknown(),
                Fail,
            ),
            (
                "not ECR, same name",
                "repo/auth:1",
                unknown(),
                "repo/auth:1",
                unknown(),
                Warn,
            ),
        ];
        for (case, dr_image, dr_digests, primary_image, primary_digests, expected) in cases {
            let dr = ServiceImage {
                family: "auth-service",
                image: dr_image,
                digests: &dr_digests,
            };
            let primary = ServiceImage {
                family: "auth-service",
                image: primary_image,
                digests: &primary_digests,
            };
            assert_eq!(judge(&dr, &primary).0, expected, "{case}");
        }
    }

    #[test]
    fn another_family_fails_whatever_it_runs() {
        let digests = running(&[A]);
        let image = |family| ServiceImage {
            family,
            image: PRIMARY,
            digests: &digests,
        };
        assert_eq!(judge(&image("auth-legacy"), &image("auth-service")).0, Fail);
    }

    #[test]
    fn the_report_shows_short_digests_and_where_they_come_from() {
        let (dr, primary) = (registry(A), running(&[A]));
        let (_, value, target) = judge(
            &ServiceImage {
                family: "auth-service",
                image: REPLICATED,
                digests: &dr,
            },
            &ServiceImage {
                family: "auth-service",
                image: PRIMARY,
                digests: &primary,
            },
        );
        assert_eq!(
            value,
            format!("auth-service {REPLICATED} sha256:aaaaaaaaaaaa (registry)")
        );
        assert_eq!(
            target,
            format!("auth-service {PRIMARY} sha256:aaaaaaaaaaaa (running tasks)")
        );
    }
}
