//! Settings resolution: flag > environment variable > configuration file > built-in default, done once,
//! into plain values that commands use without knowing where each came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::{ConfigFile, OutputFormat};
use crate::env_vars;

/// A file or directory the configuration refers to by convention (`templates/ecs/...`, `runbooks`):
/// `relative` beside the configuration file when it exists there, else in the current directory. A
/// repository with `suma.yaml` at its root, one with it under `deploy/` run from the root, and a
/// configuration kept elsewhere (the sandbox's) run from the repository all find the same files; one
/// rule for the task-definition template, the Datadog templates and the runbooks.
pub fn beside_config_or_here(config_path: &Path, relative: impl AsRef<Path>) -> PathBuf {
    let relative = relative.as_ref();
    config_path
        .parent()
        .map(|dir| dir.join(relative))
        .filter(|beside| beside.exists())
        .unwrap_or_else(|| relative.to_owned())
}

/// Reads environment variables; a trait so that tests resolve settings without touching the process env.
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl EnvSource for std::collections::HashMap<&str, &str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| (*v).to_owned())
    }
}

/// Where a setting's value came from, shown by `suma config show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Flag,
    Env,
    ConfigFile,
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved<T> {
    pub value: T,
    pub origin: Origin,
}

fn pick<T>(flag: Option<T>, env: Option<T>, file: Option<T>, default: impl FnOnce() -> T) -> Resolved<T> {
    if let Some(value) = flag {
        Resolved {
            value,
            origin: Origin::Flag,
        }
    } else if let Some(value) = env {
        Resolved {
            value,
            origin: Origin::Env,
        }
    } else if let Some(value) = file {
        Resolved {
            value,
            origin: Origin::ConfigFile,
        }
    } else {
        Resolved {
            value: default(),
            origin: Origin::Default,
        }
    }
}

/// The global flags as the command line gave them, before precedence; the CLI's parser fills this in,
/// so settings resolution never sees clap.
#[derive(Debug, Clone, Default)]
pub struct GlobalFlags {
    pub environment: Option<String>,
    pub config: Option<PathBuf>,
    pub output: Option<OutputFormat>,
    pub state_dir: Option<PathBuf>,
    pub no_color: bool,
}

/// The configuration file path: `--config`, then `SUMA_CONFIG`, then `./suma.yaml`.
pub fn config_path(global: &GlobalFlags, env: &dyn EnvSource) -> Resolved<PathBuf> {
    pick(
        global.config.clone(),
        env.var(env_vars::SUMA_CONFIG).map(PathBuf::from),
        None,
        || PathBuf::from("suma.yaml"),
    )
}

/// The output format: `--output`, then `SUMA_OUTPUT`, then the file's `defaults.output` (none for the
/// commands that read no configuration file), then a table.
pub fn output_format(
    global: &GlobalFlags,
    env: &dyn EnvSource,
    file_default: Option<OutputFormat>,
) -> Result<Resolved<OutputFormat>, SettingsError> {
    let env_output = match env.var(env_vars::SUMA_OUTPUT) {
        Some(value) => Some(
            value
                .parse::<OutputFormat>()
                .map_err(|reason| SettingsError::BadEnvValue {
                    var: env_vars::SUMA_OUTPUT,
                    value,
                    reason,
                })?,
        ),
        None => None,
    };
    Ok(pick(global.output, env_output, file_default, || OutputFormat::Table))
}

/// Colour unless `--no-color` or `NO_COLOR` (any value, as no-color.org asks) says otherwise.
pub fn color(global: &GlobalFlags, env: &dyn EnvSource) -> bool {
    !global.no_color && env.var(env_vars::NO_COLOR).is_none()
}

/// Problems with flags or variables, found before any AWS call.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("`{var}` is `{value}`: {reason}")]
    BadEnvValue {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("no environment selected\nhint: pass `--env NAME`, set `SUMA_ENV`, or set `defaults.environment` in the configuration; defined: {known}")]
    NoEnvironment { known: String },
}

/// Every setting after precedence has been applied.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub config_path: Resolved<PathBuf>,
    pub environment: Option<Resolved<String>>,
    pub output: Resolved<OutputFormat>,
    pub state_dir: Resolved<PathBuf>,
    pub color: bool,
    pub actor: Resolved<String>,
    #[serde(with = "humantime_serde")]
    pub aws_operation_timeout: Duration,
}

impl Settings {
    pub fn resolve(
        global: &GlobalFlags,
        env: &dyn EnvSource,
        config_path: Resolved<PathBuf>,
        file: &ConfigFile,
    ) -> Result<Self, SettingsError> {
        let output = output_format(global, env, file.defaults.output)?;

        let environment = {
            let resolved = pick(
                global.environment.clone(),
                env.var(env_vars::SUMA_ENV),
                file.defaults.environment.clone(),
                String::new,
            );
            (resolved.origin != Origin::Default).then_some(resolved)
        };

        let state_dir = pick(
            global.state_dir.clone(),
            env.var(env_vars::SUMA_STATE_DIR).map(PathBuf::from),
            file.defaults.state_dir.clone(),
            || default_state_dir(env),
        );

        let actor = pick(None, env.var(env_vars::SUMA_ACTOR), None, || default_actor(env));
        let color = color(global, env);

        Ok(Self {
            config_path,
            environment,
            output,
            state_dir,
            color,
            actor,
            aws_operation_timeout: file.defaults.aws_operation_timeout.unwrap_or(Duration::from_secs(30)),
        })
    }

    /// The selected environment's name, or an error that says how to select one.
    pub fn environment_name(&self, file: &ConfigFile) -> Result<&str, SettingsError> {
        self.environment
            .as_ref()
            .map(|r| r.value.as_str())
            .ok_or_else(|| SettingsError::NoEnvironment {
                known: file.environment_names(),
            })
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir.value
    }
}

fn default_state_dir(env: &dyn EnvSource) -> PathBuf {
    if let Some(dir) = env.var(env_vars::XDG_STATE_HOME) {
        return PathBuf::from(dir).join("suma");
    }
    match env.var(env_vars::HOME) {
        Some(home) => PathBuf::from(home).join(".local/state/suma"),
        None => PathBuf::from(".suma-state"),
    }
}

fn default_actor(env: &dyn EnvSource) -> String {
    let user = env.var(env_vars::USER).unwrap_or_else(|| "unknown".to_owned());
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::parse_str;

    fn file(defaults: &str) -> ConfigFile {
        let text = format!(
            "version: 1\ndefaults:\n{defaults}\nlock: {{ table: locks, region: eu-west-1 }}\nenvironments:\n  staging: {STAGING}\n  production: {PRODUCTION}\n"
        );
        parse_str(&text, Path::new("suma.yaml")).unwrap()
    }

    const PRODUCTION: &str = "{ tier: production, primary_region: eu-west-1, dr_region: eu-central-1, ecs: { cluster: c, service: s, canary_service: sc, container: app, container_port: 8080, desired_count: 2, dr: { cluster: c, service: s } }, alb: { listener_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/x/1/2', rule_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:listener-rule/app/x/1/2/3', stable_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/s/1', canary_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/c/1' }, rds: { primary: { identifier: db, region: eu-west-1 } }, dns: { hosted_zone_id: Z1, record_name: auth.example.com }, metrics: { provider: prometheus, prometheus_url: 'http://127.0.0.1:9090' } }";

    const STAGING: &str = "{ primary_region: eu-west-1, dr_region: eu-central-1, ecs: { cluster: c, service: s, canary_service: sc, container: app, container_port: 8080, desired_count: 2, dr: { cluster: c, service: s } }, alb: { listener_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/x/1/2', rule_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:listener-rule/app/x/1/2/3', stable_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/s/1', canary_target_group_arn: 'arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/c/1' }, rds: { primary: { identifier: db, region: eu-west-1 } }, dns: { hosted_zone_id: Z1, record_name: auth.example.com }, metrics: { provider: prometheus, prometheus_url: 'http://127.0.0.1:9090' } }";

    fn global(env: Option<&str>, output: Option<OutputFormat>) -> GlobalFlags {
        GlobalFlags {
            environment: env.map(str::to_owned),
            output,
            ..GlobalFlags::default()
        }
    }

    fn resolve(g: &GlobalFlags, env: &HashMap<&str, &str>, f: &ConfigFile) -> Settings {
        Settings::resolve(g, env, config_path(g, env), f).unwrap()
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let f = file("  environment: staging\n  output: json");
        let env = HashMap::from([("SUMA_ENV", "production"), ("SUMA_OUTPUT", "table")]);

        let s = resolve(&global(Some("staging"), Some(OutputFormat::Json)), &env, &f);
        assert_eq!(s.environment.as_ref().unwrap().value, "staging");
        assert_eq!(s.environment.unwrap().origin, Origin::Flag);
        assert_eq!(
            s.output,
            Resolved {
                value: OutputFormat::Json,
                origin: Origin::Flag
            }
        );

        let s = resolve(&global(None, None), &env, &f);
        assert_eq!(
            s.environment.unwrap(),
            Resolved {
                value: "production".to_owned(),
                origin: Origin::Env
            }
        );
        assert_eq!(
            s.output,
            Resolved {
                value: OutputFormat::Table,
                origin: Origin::Env
            }
        );

        let s = resolve(&global(None, None), &HashMap::new(), &f);
        assert_eq!(
            s.environment.unwrap(),
            Resolved {
                value: "staging".to_owned(),
                origin: Origin::ConfigFile
            }
        );
        assert_eq!(
            s.output,
            Resolved {
                value: OutputFormat::Json,
                origin: Origin::ConfigFile
            }
        );

        let bare = file("  {}");
        let s = resolve(&global(None, None), &HashMap::new(), &bare);
        assert!(s.environment.is_none());
        assert_eq!(
            s.output,
            Resolved {
                value: OutputFormat::Table,
                origin: Origin::Default
            }
        );
        assert!(matches!(
            s.environment_name(&bare),
            Err(SettingsError::NoEnvironment { .. })
        ));
    }

    #[test]
    fn config_path_precedence() {
        let env = HashMap::from([("SUMA_CONFIG", "/etc/suma.yaml")]);
        let mut g = GlobalFlags::default();
        assert_eq!(
            config_path(&g, &env),
            Resolved {
                value: "/etc/suma.yaml".into(),
                origin: Origin::Env
            }
        );
        g.config = Some("mine.yaml".into());
        assert_eq!(
            config_path(&g, &env),
            Resolved {
                value: "mine.yaml".into(),
                origin: Origin::Flag
            }
        );
        assert_eq!(
            config_path(&GlobalFlags::default(), &HashMap::new()),
            Resolved {
                value: "suma.yaml".into(),
                origin: Origin::Default
            }
        );
    }

    #[test]
    fn state_dir_follows_xdg() {
        let f = file("  {}");
        let env = HashMap::from([("XDG_STATE_HOME", "/x"), ("HOME", "/home/op")]);
        assert_eq!(
            resolve(&global(None, None), &env, &f).state_dir.value,
            PathBuf::from("/x/suma")
        );
        let env = HashMap::from([("HOME", "/home/op")]);
        assert_eq!(
            resolve(&global(None, None), &env, &f).state_dir.value,
            PathBuf::from("/home/op/.local/state/suma")
        );
        let env = HashMap::from([("HOME", "/home/op"), ("SUMA_STATE_DIR", "/var/suma")]);
        let s = resolve(&global(None, None), &env, &f);
        assert_eq!(
            s.state_dir,
            Resolved {
                value: "/var/suma".into(),
                origin: Origin::Env
            }
        );
    }

    #[test]
    fn bad_env_output_is_named() {
        let f = file("  {}");
        let env = HashMap::from([("SUMA_OUTPUT", "yaml")]);
        let g = global(None, None);
        let err = Settings::resolve(&g, &env, config_path(&g, &env), &f).unwrap_err();
        assert!(err.to_string().contains("`SUMA_OUTPUT` is `yaml`"), "{err}");
    }

    #[test]
    fn no_color_from_flag_or_env() {
        let f = file("  {}");
        assert!(resolve(&global(None, None), &HashMap::new(), &f).color);
        assert!(!resolve(&global(None, None), &HashMap::from([("NO_COLOR", "1")]), &f).color);
        let g = GlobalFlags {
            no_color: true,
            ..GlobalFlags::default()
        };
        assert!(!resolve(&g, &HashMap::new(), &f).color);
    }

    #[test]
    fn production_is_a_tier_and_a_production_looking_name_must_say_its_tier() {
        let with = |name: &str, tier: &str| {
            let env = STAGING.replacen("{ ", &format!("{{ {tier}"), 1);
            let text =
                format!("version: 1\nlock: {{ table: locks, region: eu-west-1 }}\nenvironments:\n  {name}: {env}\n");
            parse_str(&text, Path::new("suma.yaml"))
        };
        for name in ["production", "prod-eu", "live"] {
            let problems = with(name, "").unwrap_err();
            let text = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
            assert!(
                text.contains("does not say its tier") && text.contains("tier: production"),
                "{name}: {text}"
            );
            assert!(with(name, "tier: staging, ").is_ok(), "{name} as staging");
        }
        let file = with("eu-main", "tier: production, ").unwrap();
        assert!(
            file.environment("eu-main").unwrap().is_production(),
            "the tier decides, not the name"
        );
        let file = with("staging", "").unwrap();
        assert!(!file.environment("staging").unwrap().is_production());
    }
}
