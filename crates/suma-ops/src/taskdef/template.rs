//! Rendering a task-definition template: `${name}` references replaced by the environment's values,
//! through the shared engine (`suma_core::subst`).
//!
//! References are found in the raw text first, so an unknown variable or one without a value is
//! reported with its file, line and column before anything else happens (and before any AWS call).
//! The values are then substituted into the parsed YAML's strings, not into the text, so a value holding
//! `: ` or `#` cannot change the document's structure. A scalar that is exactly one reference takes the
//! value's YAML type (`containerPort: ${container_port}` is a number). `$$` is a literal `$`; a `$` not
//! followed by `{` is kept as is (shell commands in a `CMD-SHELL` health check). Lines that are YAML
//! comments are not scanned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;
use suma_core::subst::{self, Names};

use super::model::TaskDefinitionSpec;

/// The value of a variable, or why it has none.
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    Set(String),
    /// Known but without a value here; the text says how to give it one.
    Missing(String),
}

/// The variables a template may use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variables {
    values: BTreeMap<String, VarValue>,
}

impl Variables {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.values.insert(name.to_owned(), VarValue::Set(value.into()));
    }

    pub fn missing(&mut self, name: &str, how: impl Into<String>) {
        self.values.insert(name.to_owned(), VarValue::Missing(how.into()));
    }

    pub fn get(&self, name: &str) -> Option<&VarValue> {
        self.values.get(name)
    }

    /// Every variable with its value (`None` when missing), for `render` to show what was used.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.values.iter().map(|(k, v)| {
            (
                k.as_str(),
                match v {
                    VarValue::Set(s) => Some(s.as_str()),
                    VarValue::Missing(_) => None,
                },
            )
        })
    }

    fn names(&self) -> String {
        self.values
            .keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One problem with a reference, located in the template.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceProblem {
    pub line: usize,
    pub column: usize,
    pub variable: String,
    pub kind: ReferenceProblemKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceProblemKind {
    Unknown,
    /// Known, without a value; how to give it one.
    Missing(String),
    /// `${` without `}` or a name outside `[A-Za-z0-9_]`.
    Malformed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the task-definition template `{path}`: {source}\nhint: pass `--template PATH`, or keep `templates/ecs/auth-service.taskdef.yaml` next to the configuration file or in the current directory")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", references_message(path, problems, known))]
    References {
        path: PathBuf,
        problems: Vec<ReferenceProblem>,
        known: String,
    },
    #[error("{path}{}: not valid YAML: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(), path = path.display())]
    Yaml {
        path: PathBuf,
        location: Option<(usize, usize)>,
        message: String,
    },
    #[error("{path}: at `{key}`: {message}\nhint: the template has the shape of the ECS RegisterTaskDefinition request (camelCase keys)", path = path.display())]
    Shape {
        path: PathBuf,
        key: String,
        message: String,
    },
}

fn references_message(path: &Path, problems: &[ReferenceProblem], known: &str) -> String {
    let mut lines = Vec::new();
    let mut hints = Vec::new();
    for p in problems {
        let at = format!("{}:{}:{}", path.display(), p.line, p.column);
        match &p.kind {
            ReferenceProblemKind::Unknown => {
                lines.push(format!("{at}: unknown variable `${{{}}}`", p.variable));
                let hint = format!(
                    "hint: known variables: {known}; add one with `--var NAME=VALUE`, write `$$` for a literal `$`"
                );
                if !hints.contains(&hint) {
                    hints.push(hint);
                }
            }
            ReferenceProblemKind::Missing(how) => {
                lines.push(format!("{at}: variable `${{{}}}` has no value", p.variable));
                hints.push(format!("hint: `{}`: {how}", p.variable));
            }
            ReferenceProblemKind::Malformed(why) => lines.push(format!("{at}: {why}")),
        }
    }
    lines.extend(hints);
    lines.join("\n")
}

/// Every problem with the template's references, located by line and column (1-based).
pub fn check_references(text: &str, vars: &Variables) -> Vec<ReferenceProblem> {
    subst::scan(text, Names::Identifier, Some('#'))
        .into_iter()
        .filter_map(|found| {
            let (variable, kind) = match found.reference {
                Err(why) => (String::new(), ReferenceProblemKind::Malformed(why)),
                Ok(name) => match vars.get(name) {
                    None => (name.to_owned(), ReferenceProblemKind::Unknown),
                    Some(VarValue::Missing(how)) => (name.to_owned(), ReferenceProblemKind::Missing(how.clone())),
                    Some(VarValue::Set(_)) => return None,
                },
            };
            Some(ReferenceProblem {
                line: found.line,
                column: found.column,
                variable,
                kind,
            })
        })
        .collect()
}

/// Renders `text` (read from `path`, for messages) with `vars`.
pub fn render(text: &str, path: &Path, vars: &Variables) -> Result<TaskDefinitionSpec, TemplateError> {
    let problems = check_references(text, vars);
    if !problems.is_empty() {
        return Err(TemplateError::References {
            path: path.to_owned(),
            problems,
            known: vars.names(),
        });
    }
    let mut value: Value = serde_norway::from_str(text).map_err(|e| TemplateError::Yaml {
        path: path.to_owned(),
        location: e.location().map(|l| (l.line(), l.column())),
        message: e.to_string(),
    })?;
    // References were checked on the raw text; one in a line the scan took for a comment (a `#` inside a
    // block scalar) is left as written.
    let mut resolve = |name: &str| -> Result<String, std::convert::Infallible> {
        Ok(match vars.get(name) {
            Some(VarValue::Set(v)) => v.clone(),
            _ => format!("${{{name}}}"),
        })
    };
    subst::substitute_yaml(&mut value, Names::Identifier, &mut resolve).map_err(|e| TemplateError::Yaml {
        path: path.to_owned(),
        location: None,
        message: e.to_string(),
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| TemplateError::Shape {
        path: path.to_owned(),
        key: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        let mut v = Variables::default();
        v.set("environment", "staging");
        v.set("image", "repo/auth-service:1.5.0");
        v.set("container_port", "8080");
        v.set("odd", "a: b # c");
        v.missing("jwt_issuer", "configure a `jwt-signing-key` secret");
        v
    }

    const TEMPLATE: &str = "\
family: auth-service
# a comment may say ${anything}
containerDefinitions:
  - name: auth-service
    image: ${image}
    portMappings:
      - containerPort: ${container_port}
    environment:
      - { name: APP_ENV, value: \"${environment}\" }
      - name: PORT
        value: ${container_port}
      - { name: ODD, value: \"${odd}\" }
      - { name: SHELL, value: \"$$HOME and $PATH\" }
";

    #[test]
    fn renders_values_with_their_types() {
        let spec = render(TEMPLATE, Path::new("t.yaml"), &vars()).unwrap();
        let c = &spec.container_definitions[0];
        assert_eq!(c.image, "repo/auth-service:1.5.0");
        assert_eq!(c.port_mappings[0].container_port, 8080);
        let env: Vec<(&str, &str)> = c
            .environment
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("APP_ENV", "staging"),
                ("PORT", "8080"),
                ("ODD", "a: b # c"),
                ("SHELL", "$HOME and $PATH")
            ]
        );
    }

    #[test]
    fn unknown_and_missing_variables_are_located() {
        let text = "family: x\ncontainerDefinitions:\n  - name: ${environment}-${nope}\n    image: ${jwt_issuer}\n";
        let err = render(text, Path::new("t.yaml"), &vars()).unwrap_err();
        let TemplateError::References { problems, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 2);
        assert_eq!((problems[0].line, problems[0].column), (3, 26));
        assert_eq!(problems[0].kind, ReferenceProblemKind::Unknown);
        assert_eq!(problems[1].variable, "jwt_issuer");
        let text = err.to_string();
        assert!(text.contains("t.yaml:3:26: unknown variable `${nope}`"), "{text}");
        assert!(
            text.contains("t.yaml:4:12: variable `${jwt_issuer}` has no value"),
            "{text}"
        );
        assert!(text.contains("hint: known variables: `container_port`"), "{text}");
    }

    #[test]
    fn malformed_references_are_located() {
        let problems = check_references("a: ${oops\nb: ${not-a-name}\n", &vars());
        assert_eq!(problems.len(), 2);
        assert_eq!((problems[0].line, problems[0].column), (1, 4));
        assert!(matches!(problems[1].kind, ReferenceProblemKind::Malformed(_)));
    }

    #[test]
    fn misspelt_keys_are_refused_with_their_path() {
        let text = "family: x\ncontainerDefinitions:\n  - name: a\n    image: b\n    readOnlyRootFilesystem: true\n";
        let err = render(text, Path::new("t.yaml"), &vars()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("at `containerDefinitions[0]"), "{text}");
        assert!(text.contains("readOnlyRootFilesystem"), "{text}");
    }

    #[test]
    fn invalid_yaml_is_located() {
        let err = render("family: [x\n", Path::new("t.yaml"), &vars()).unwrap_err();
        assert!(matches!(err, TemplateError::Yaml { location: Some(_), .. }), "{err}");
    }
}
