//! Reading `suma.yaml` with precise errors: every problem names the file, line, column and key path.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ConfigFile;

/// A configuration problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the position is known.
    pub position: Option<(usize, usize)>,
    /// Dotted key path, e.g. `environments.production.primary_region`; empty for the document itself.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)?;
        } else {
            write!(f, ": `{}`: {}", self.key, self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates the file at `path`.
pub fn load_from_path(path: &Path) -> Result<ConfigFile, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.to_owned(),
            position: None,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
            hint: Some(
                "pass `--config PATH`, set `SUMA_CONFIG`, or create `./suma.yaml` (see deploy/suma.yaml)".to_owned(),
            ),
        }]
    })?;
    parse_str(&text, path)
}

/// Parses and validates configuration text; `file` is only used in messages.
pub fn parse_str(text: &str, file: &Path) -> Result<ConfigFile, Vec<ConfigError>> {
    let mut config: ConfigFile = deserialize(text, file)?;
    // It parsed, so it is YAML: the plain document says which keys each `canary:` writes.
    let raw: serde_norway::Value = serde_norway::from_str(text).unwrap_or_default();
    let mut problems = super::canary::resolve_analysis_templates(&mut config, &raw);
    problems.extend(config.semantic_problems());
    if problems.is_empty() {
        return Ok(config);
    }
    Err(located(text, file, problems))
}

/// Positions problems found after parsing: (dotted key path, message, hint).
pub fn located(text: &str, file: &Path, problems: Vec<(String, String, Option<String>)>) -> Vec<ConfigError> {
    let positions = super::positions::Positions::of(text);
    problems
        .into_iter()
        .map(|(key, message, hint)| ConfigError {
            file: file.to_owned(),
            position: positions.at(&key),
            key,
            message,
            hint,
        })
        .collect()
}

/// Deserializes YAML with the key path and position of the first problem (also used for runbooks).
pub fn deserialize<T: serde::de::DeserializeOwned>(text: &str, file: &Path) -> Result<T, Vec<ConfigError>> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = clean_path(&err.path().to_string());
        let inner = err.into_inner();
        // serde_norway's mark for a rejected value can point at the previous key, so the key path, when
        // it resolves, is the better position; syntax errors have no usable path and keep the mark.
        let position = super::positions::locate(text, &key)
            .filter(|_| !key.is_empty())
            .or_else(|| inner.location().map(|l| (l.line(), l.column())));
        let raw = inner.to_string();
        // serde_norway prefixes its message with the path we already show.
        let raw = raw
            .split_once(": ")
            .filter(|(prefix, _)| !prefix.contains(' '))
            .map_or(raw.as_str(), |(_, rest)| rest);
        let (message, hint) = describe(raw);
        vec![ConfigError {
            file: file.to_owned(),
            position,
            key,
            message,
            hint,
        }]
    })
}

/// serde_path_to_error writes `.` for the root and `?` for unknown segments.
fn clean_path(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        path.trim_end_matches(".?").to_owned()
    }
}

/// Splits serde_norway's message into ours plus a hint, dropping its trailing "at line X column Y".
fn describe(raw: &str) -> (String, Option<String>) {
    let message = match raw.find(" at line ") {
        Some(i) => raw[..i].to_owned(),
        None => raw.to_owned(),
    };
    let hint = if message.starts_with("unknown field") {
        Some("remove the key or fix its spelling; `suma config schema` lists every key".to_owned())
    } else if message.starts_with("missing field") {
        Some("add the field; deploy/suma.yaml shows a complete file".to_owned())
    } else if message.starts_with("invalid type") {
        Some("check the value's type against `suma config schema`".to_owned())
    } else if message.contains("while scanning") || message.contains("while parsing") || message.starts_with("found ") {
        Some("the file is not valid YAML here: check quotes, brackets and indentation".to_owned())
    } else {
        None
    };
    (message, hint)
}
