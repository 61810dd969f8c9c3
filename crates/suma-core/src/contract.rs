//! What suma and the auth-service agree on, in one place: the container variables a deployment sets and
//! the service reads. ARCHITECTURE.md's contract table lists every such variable with the operation that
//! changes it; this module holds the ones suma writes itself, so that no operation spells them twice.

use crate::taskdef::ContainerChange;

/// The label that tells a canary from stable in the service's metrics and `/version`.
pub const DEPLOYMENT_LABEL: &str = "DEPLOYMENT_LABEL";
/// The release a task runs, reported by `/version`: the image tag.
pub const SERVICE_VERSION: &str = "SERVICE_VERSION";
/// `DEPLOYMENT_LABEL` of the revision the stable (and DR) service runs.
pub const STABLE: &str = "stable";
/// `DEPLOYMENT_LABEL` of the canary's revision.
pub const CANARY: &str = "canary";

/// The tag of an image reference (`repo:tag`, `registry:5000/repo:tag`, `repo@sha256:...`): the part
/// after the last `:` of its last path segment, or the digest's first 12 hex digits; `latest` when the
/// reference names neither, as Docker reads it.
pub fn image_tag(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        let hex = digest.rsplit(':').next().unwrap_or(digest);
        return hex.chars().take(12).collect();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.to_owned(),
        _ => "latest".to_owned(),
    }
}

/// The change that makes a revision run `image` as `label`: the image, the version it reports and the
/// label its metrics carry always move together.
pub fn release(image: &str, label: &str) -> ContainerChange {
    ContainerChange {
        image: Some(image.to_owned()),
        environment: vec![
            (SERVICE_VERSION.to_owned(), image_tag(image)),
            (DEPLOYMENT_LABEL.to_owned(), label.to_owned()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        for (image, tag) in [
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/auth-service:1.6.0",
                "1.6.0",
            ),
            ("localhost:5000/auth-service:1.6.0-errors", "1.6.0-errors"),
            ("localhost:5000/auth-service", "latest"),
            ("auth-service", "latest"),
            ("auth-service@sha256:0123456789abcdef0123", "0123456789ab"),
        ] {
            assert_eq!(image_tag(image), tag, "{image}");
        }
    }

    #[test]
    fn a_release_moves_image_version_and_label_together() {
        let change = release("repo/auth-service:2.0.0", CANARY);
        assert_eq!(change.image.as_deref(), Some("repo/auth-service:2.0.0"));
        assert_eq!(
            change.environment,
            vec![
                (SERVICE_VERSION.to_owned(), "2.0.0".to_owned()),
                (DEPLOYMENT_LABEL.to_owned(), CANARY.to_owned())
            ]
        );
    }
}
