//! ECS task definitions from a template: `templates/ecs/auth-service.taskdef.yaml` holds the
//! `RegisterTaskDefinition` request in YAML with `${variable}` references, rendered per environment from the
//! configuration (and `--image`, `--var`), validated against the environment and suma's baseline, and
//! compared with a live revision after normalisation. Everything here is pure: the AWS calls live in
//! `aws::ecs`, the command in `commands::taskdef`.

pub mod diff;
/// The task definition model lives in `suma-core`: the AWS layer registers it, this module renders it.
pub use suma_core::taskdef as model;
pub mod template;
pub mod validate;

use std::path::{Path, PathBuf};

pub use diff::{diff, normalise, Change};
pub use model::TaskDefinitionSpec;
pub use template::{TemplateError, Variables};
pub use validate::{validate, Expectations, Problem};

use crate::config::{Environment, SecretKind};

/// Where the template is when `--template` is not given, relative to the configuration file's directory
/// (like every path in `suma.yaml`, so a repository holding both works from any working directory).
pub const DEFAULT_TEMPLATE: &str = "templates/ecs/auth-service.taskdef.yaml";

/// The template path: `--template` as given, or [`DEFAULT_TEMPLATE`] beside the configuration file.
pub fn template_path(flag: Option<&Path>, config_path: &Path) -> PathBuf {
    match flag {
        Some(path) => path.to_owned(),
        None => suma_core::settings::beside_config_or_here(config_path, DEFAULT_TEMPLATE),
    }
}

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:...` → (partition, account).
pub(crate) fn arn_account(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, _, _, account, _] if !account.is_empty() => Some((partition, account)),
        _ => None,
    }
}

/// The variables a template of environment `name` may use. `image` is `--image`; `extra` are `--var`
/// pairs, which add variables or override the derived ones.
///
/// | variable | from |
/// | --- | --- |
/// | `environment` | the environment's name |
/// | `region` | `primary_region` |
/// | `account_id`, `partition` | the account and partition of `alb.listener_arn` |
/// | `cluster`, `service`, `container`, `container_port` | `ecs.*` |
/// | `image` | `--image` (`diff` and `register` default to the live stable image) |
/// | `image_tag` | the tag of `image`: the version the service reports (`SERVICE_VERSION`) |
/// | `deployment_label` | `stable`: the label of the revision stable runs (a canary's copy says `canary`) |
/// | `public_url` | the environment's `url`, without a trailing `/` |
/// | `jwt_keys_secret_id`, `jwt_issuer`, `jwt_audience` | the environment's `jwt-signing-key` secret |
pub fn variables(name: &str, env: &Environment, image: Option<&str>, extra: &[(String, String)]) -> Variables {
    let mut vars = Variables::default();
    vars.set("environment", name);
    vars.set("region", env.primary_region.as_str());
    match arn_account(env.alb.listener_arn.as_str()) {
        Some((partition, account)) => {
            vars.set("account_id", account);
            vars.set("partition", partition);
        }
        None => {
            let how = "`alb.listener_arn` holds no account; pass `--var account_id=123456789012`";
            vars.missing("account_id", how);
            vars.missing("partition", how);
        }
    }
    vars.set("cluster", &env.ecs.cluster);
    vars.set("service", &env.ecs.service);
    vars.set("container", &env.ecs.container);
    vars.set("container_port", env.ecs.container_port.to_string());
    match image {
        Some(image) => {
            vars.set("image", image);
            vars.set("image_tag", suma_core::contract::image_tag(image));
        }
        None => {
            vars.missing("image", "pass `--image REPO:TAG`");
            vars.missing("image_tag", "pass `--image REPO:TAG`");
        }
    }
    vars.set("deployment_label", suma_core::contract::STABLE);
    match &env.url {
        Some(url) => vars.set("public_url", url.as_str().trim_end_matches('/')),
        None => vars.missing(
            "public_url",
            format!("environment `{name}` has no `url`; set it to the service's public base URL"),
        ),
    }
    match env.secrets.iter().find(|s| s.kind == SecretKind::JwtSigningKey) {
        Some(secret) => {
            vars.set("jwt_keys_secret_id", &secret.id);
            vars.set("jwt_issuer", &secret.jwt.issuer);
            vars.set("jwt_audience", &secret.jwt.audience);
        }
        None => {
            for var in ["jwt_keys_secret_id", "jwt_issuer", "jwt_audience"] {
                vars.missing(
                    var,
                    format!(
                        "the environment has no `jwt-signing-key` secret; configure one, or pass `--var {var}=...`"
                    ),
                );
            }
        }
    }
    for (k, v) in extra {
        vars.set(k, v.clone());
    }
    vars
}

/// A rendered template that failed validation.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}\nhint: fix the template; `suma taskdef render` shows the rendered result",
    problems_message(path, problems)
)]
pub struct InvalidTaskDefinition {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

fn problems_message(path: &Path, problems: &[Problem]) -> String {
    let mut lines = vec![format!(
        "the task definition rendered from `{}` has {} problem(s):",
        path.display(),
        problems.len()
    )];
    lines.extend(problems.iter().map(|p| format!("  {}: {}", p.key, p.message)));
    lines.join("\n")
}

#[derive(Debug, thiserror::Error)]
pub enum TaskdefError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Invalid(#[from] InvalidTaskDefinition),
}

/// Reads, renders and validates the template at `path`.
pub fn render_file(
    path: &Path,
    vars: &Variables,
    expect: &Expectations<'_>,
) -> Result<TaskDefinitionSpec, TaskdefError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.to_owned(),
        source,
    })?;
    render_text(&text, path, vars, expect)
}

/// Renders and validates template `text` (read from `path`).
pub fn render_text(
    text: &str,
    path: &Path,
    vars: &Variables,
    expect: &Expectations<'_>,
) -> Result<TaskDefinitionSpec, TaskdefError> {
    let spec = template::render(text, path, vars)?;
    let problems = validate(&spec, expect);
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(InvalidTaskDefinition {
            path: path.to_owned(),
            problems,
        }
        .into())
    }
}

/// The expectations of environment `env`.
pub fn expectations(env: &Environment) -> Expectations<'_> {
    Expectations {
        container: &env.ecs.container,
        container_port: env.ecs.container_port,
    }
}

/// Renders and validates the template for `env` with `image` (pure: reads the file only).
pub fn render_spec(
    name: &str,
    env: &Environment,
    path: &Path,
    image: Option<&str>,
    vars: &[(String, String)],
) -> Result<TaskDefinitionSpec, TaskdefError> {
    let vars = variables(name, env, image, vars);
    render_file(path, &vars, &expectations(env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staging() -> Environment {
        let path = crate::checkout_root().join("deploy/suma.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        crate::config::parse_str(&text, &path)
            .unwrap()
            .environment("staging")
            .unwrap()
            .clone()
    }

    #[test]
    fn the_shipped_template_renders_and_validates_for_each_example_environment() {
        let root = &crate::checkout_root();
        let path = template_path(None, &root.join("suma.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let config = crate::config::parse_str(
            &std::fs::read_to_string(root.join("deploy/suma.yaml")).unwrap(),
            &root.join("deploy/suma.yaml"),
        )
        .unwrap();
        for (name, env) in &config.environments {
            let vars = variables(name, env, Some("repo/auth-service:1.5.0"), &[]);
            let spec = render_text(&text, &path, &vars, &expectations(env)).unwrap();
            let c = spec.container(&env.ecs.container).unwrap();
            assert_eq!(c.image, "repo/auth-service:1.5.0");
            assert_eq!(spec.cpu.as_deref(), Some("1024"));
            assert_eq!(spec.memory.as_deref(), Some("2048"));
            let app_env = c.environment.iter().find(|e| e.name == "APP_ENV").unwrap();
            assert_eq!(&app_env.value, name);
            assert!(c.secrets.iter().all(|s| s.value_from.starts_with(&format!(
                "arn:aws:secretsmanager:{}:123456789012:secret:/suma-finance/auth/{name}/",
                env.primary_region
            ))));
            let log = c.log_configuration.as_ref().unwrap();
            assert_eq!(log.log_driver, "awslogs");
            assert_eq!(log.options["awslogs-region"], env.primary_region.as_str());
        }
    }

    #[test]
    fn variables_come_from_the_environment_and_flags() {
        let env = staging();
        let vars = variables("staging", &env, None, &[("log_level".into(), "debug".into())]);
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .and_then(|(_, v)| v)
                .map(str::to_owned)
        };
        assert_eq!(get("account_id").as_deref(), Some("123456789012"));
        assert_eq!(get("region").as_deref(), Some("eu-west-1"));
        assert_eq!(get("container_port").as_deref(), Some("8080"));
        assert_eq!(
            get("jwt_keys_secret_id").as_deref(),
            Some("/suma-finance/auth/staging/jwt-signing-key")
        );
        assert_eq!(get("log_level").as_deref(), Some("debug"));
        assert_eq!(get("image"), None, "no --image");
        let err = render_text(
            "family: x\ncontainerDefinitions:\n  - { name: auth-service, image: \"${image}\" }\n",
            Path::new("t.yaml"),
            &vars,
            &expectations(&env),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("t.yaml:3:35: variable `${image}` has no value"),
            "{err}"
        );
        assert!(err.to_string().contains("pass `--image REPO:TAG`"), "{err}");
    }

    #[test]
    fn validation_problems_are_listed_together() {
        let env = staging();
        let vars = variables("staging", &env, Some("r:1"), &[]);
        let text = "family: x\nrequiresCompatibilities: [FARGATE]\nnetworkMode: awsvpc\ncpu: 1024\nmemory: 512\ncontainerDefinitions:\n  - { name: auth-service, image: \"${image}\", user: root, portMappings: [{containerPort: 80}] }\n";
        let err = render_text(text, Path::new("t.yaml"), &vars, &expectations(&env)).unwrap_err();
        let TaskdefError::Invalid(invalid) = &err else {
            panic!("{err}")
        };
        let keys: Vec<&str> = invalid.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "memory",
                "containerDefinitions[0].portMappings",
                "containerDefinitions[0].user",
                "containerDefinitions[0].readonlyRootFilesystem"
            ]
        );
    }
}
