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
                "pass `--config PATH`, set `SUMA_CONFIG`, or create `./suma.yaml` (see templates/suma.example.yaml)"
                    .to_owned(),
            ),
        }]
    })?;
    parse_str(&text, path)
}

/// Parses and validates configuration text; `file` is only used in messages.
pub fn parse_str(text: &str, file: &Path) -> Result<ConfigFile, Vec<ConfigError>> {
    let mut config: ConfigFile = deserialize(text, file)?;
    // It parsed, so it is YAML: the plain document says which keys each `canary:` writes.
    let raw: serde_yaml::Value = serde_yaml::from_str(text).unwrap_or_default();
    let mut problems = super::canary::resolve_analysis_templates(&mut config, &raw);
    problems.extend(config.semantic_problems());
    if problems.is_empty() {
        return Ok(config);
    }
    Err(located(text, file, problems))
}

/// Positions problems found after parsing: (dotted key path, message, hint).
pub fn located(text: &str, file: &Path, problems: Vec<(String, String, Option<String>)>) -> Vec<ConfigError> {
    problems
        .into_iter()
        .map(|(key, message, hint)| ConfigError {
            file: file.to_owned(),
            position: locate(text, &key),
            key,
            message,
            hint,
        })
        .collect()
}

/// Deserializes YAML with the key path and position of the first problem (also used for runbooks).
pub fn deserialize<T: serde::de::DeserializeOwned>(text: &str, file: &Path) -> Result<T, Vec<ConfigError>> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = clean_path(&err.path().to_string());
        let inner = err.into_inner();
        // serde_yaml's mark for a rejected value can point at the previous key, so the key path, when
        // it resolves, is the better position; syntax errors have no usable path and keep the mark.
        let position = locate(text, &key)
            .filter(|_| !key.is_empty())
            .or_else(|| inner.location().map(|l| (l.line(), l.column())));
        let raw = inner.to_string();
        // serde_yaml prefixes its message with the path we already show.
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

/// Splits serde_yaml's message into ours plus a hint, dropping its trailing "at line X column Y".
fn describe(raw: &str) -> (String, Option<String>) {
    let message = match raw.find(" at line ") {
        Some(i) => raw[..i].to_owned(),
        None => raw.to_owned(),
    };
    let hint = if message.starts_with("unknown field") {
        Some("remove the key or fix its spelling; `suma config schema` lists every key".to_owned())
    } else if message.starts_with("missing field") {
        Some("add the field; templates/suma.example.yaml shows a complete file".to_owned())
    } else if message.starts_with("invalid type") {
        Some("check the value's type against `suma config schema`".to_owned())
    } else if message.contains("while scanning") || message.contains("while parsing") || message.starts_with("found ") {
        Some("the file is not valid YAML here: check quotes, brackets and indentation".to_owned())
    } else {
        None
    };
    (message, hint)
}

/// Finds the 1-based line and column of a dotted key path in block-style YAML, for errors raised after
/// parsing (which carry no position). Numeric segments select the n-th item of a sequence; sequences may
/// be indented under their key or level with it (as PyYAML writes them).
pub(crate) fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    if key.is_empty() {
        return Some((1, 1));
    }
    let lines: Vec<&str> = text.lines().collect();
    let raw_indent = |line: &str| line.len() - line.trim_start().len();
    let is_item = |line: &str| line.trim_start().starts_with("- ") || line.trim_start() == "-";
    // Where the line's key starts: after the dash of a sequence item.
    let key_indent = |line: &str| {
        let trimmed = line.trim_start();
        match trimmed.strip_prefix('-') {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => line.len() - rest.trim_start().len(),
            _ => raw_indent(line),
        }
    };
    let significant = |line: &str| !line.trim().is_empty() && !line.trim_start().starts_with('#');

    let (mut start, mut end) = (0usize, lines.len());
    let mut found = None;
    for segment in key.split('.') {
        let block: Vec<usize> = (start..end).filter(|&i| significant(lines[i])).collect();
        if let Ok(index) = segment.parse::<usize>() {
            let dash = block
                .iter()
                .filter(|&&i| is_item(lines[i]))
                .map(|&i| raw_indent(lines[i]))
                .min()?;
            let item = *block
                .iter()
                .filter(|&&i| is_item(lines[i]) && raw_indent(lines[i]) == dash)
                .nth(index)?;
            found = Some((item + 1, key_indent(lines[item]) + 1));
            start = item;
            end = (item + 1..end)
                .find(|&i| significant(lines[i]) && raw_indent(lines[i]) <= dash)
                .unwrap_or(end);
        } else {
            let child = key_indent(lines[*block.first()?]);
            let hit = *block.iter().find(|&&i| {
                let line = lines[i];
                let content = &line[key_indent(line).min(line.len())..];
                key_indent(line) == child
                    && (content
                        .strip_prefix(segment)
                        .or_else(|| content.strip_prefix(&format!("\"{segment}\"")[..])))
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })?;
            found = Some((hit + 1, child + 1));
            start = hit + 1;
            end = (hit + 1..end)
                .find(|&i| {
                    let line = lines[i];
                    significant(line) && (raw_indent(line) < child || (raw_indent(line) == child && !is_item(line)))
                })
                .unwrap_or(end);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: 1\nlock:\n  table: t\nenvironments:\n  staging:\n    primary_region: eu-west-1\n    canary:\n      steps:\n        - weight: 10\n          duration: 1m\n        - weight: 5\n          duration: 1m\n    secrets:\n    - id: a\n      kind: random\n    - id: b\n    # trailing comment\n  production:\n    primary_region: eu-west-1\n";

    #[test]
    fn locates_nested_keys_and_sequence_items() {
        assert_eq!(locate(DOC, "lock.table"), Some((3, 3)));
        assert_eq!(locate(DOC, "environments.staging.primary_region"), Some((6, 5)));
        assert_eq!(
            locate(DOC, "environments.staging.canary.steps.1.weight"),
            Some((11, 11))
        );
        assert_eq!(
            locate(DOC, "environments.staging.canary.steps.0.duration"),
            Some((10, 11))
        );
        // Sequences level with their key, as PyYAML writes them.
        assert_eq!(locate(DOC, "environments.staging.secrets.1.id"), Some((16, 7)));
        assert_eq!(locate(DOC, "environments.staging.secrets.0.kind"), Some((15, 7)));
        assert_eq!(locate(DOC, "environments.production.primary_region"), Some((19, 5)));
        assert_eq!(locate(DOC, "environments.qa"), None);
        assert_eq!(locate(DOC, "environments.staging.secrets.2"), None);
    }
}
