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
            hint: Some("pass `--config PATH`, set `SUMA_CONFIG`, or create `./suma.yaml` (see templates/suma.example.yaml)".to_owned()),
        }]
    })?;
    parse_str(&text, path)
}

/// Parses and validates configuration text; `file` is only used in messages.
pub fn parse_str(text: &str, file: &Path) -> Result<ConfigFile, Vec<ConfigError>> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let config: ConfigFile = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = clean_path(&err.path().to_string());
        let inner = err.into_inner();
        let position = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .or_else(|| locate(text, &key));
        let (message, hint) = describe(&inner.to_string());
        vec![ConfigError { file: file.to_owned(), position, key, message, hint }]
    })?;
    let problems = config.semantic_problems();
    if problems.is_empty() {
        return Ok(config);
    }
    Err(problems
        .into_iter()
        .map(|(key, message, hint)| ConfigError {
            file: file.to_owned(),
            position: locate(text, &key),
            key,
            message,
            hint,
        })
        .collect())
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
    } else {
        None
    };
    (message, hint)
}

/// Finds the 1-based line and column of a dotted key path in block-style YAML, for errors raised after
/// parsing (which carry no position). Numeric segments select the n-th item of a sequence.
pub(crate) fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    if key.is_empty() {
        return Some((1, 1));
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize;
    let mut end = lines.len();
    let mut min_indent = 0usize;
    let mut found = None;
    for segment in key.split('.') {
        let mut hit = None;
        if let Ok(index) = segment.parse::<usize>() {
            let mut count = 0usize;
            let mut item_indent = None;
            for (i, line) in lines.iter().enumerate().take(end).skip(start) {
                let indent = line.len() - line.trim_start().len();
                let trimmed = line.trim_start();
                if trimmed.starts_with("- ") || trimmed == "-" {
                    if indent < min_indent || item_indent.is_some_and(|d| d != indent) {
                        continue;
                    }
                    item_indent = Some(indent);
                    if count == index {
                        hit = Some((i, indent + 2));
                        break;
                    }
                    count += 1;
                }
            }
        } else {
            for (i, line) in lines.iter().enumerate().take(end).skip(start) {
                let content = line.trim_start().trim_start_matches("- ");
                let indent = line.len() - content.len();
                if indent < min_indent || line.trim_start().starts_with('#') {
                    continue;
                }
                let bare = content
                    .strip_prefix(segment)
                    .or_else(|| content.strip_prefix(&format!("\"{segment}\"")));
                if bare.is_some_and(|rest| rest.trim_start().starts_with(':')) {
                    hit = Some((i, indent));
                    break;
                }
            }
        }
        let (line, indent) = hit?;
        found = Some((line + 1, indent + 1));
        // The block of this key: following lines indented deeper.
        start = line + 1;
        min_indent = indent + 1;
        end = lines
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#') && (l.len() - l.trim_start().len()) <= indent)
            .map_or(lines.len(), |(i, _)| i);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: 1\nlock:\n  table: t\nenvironments:\n  staging:\n    primary_region: eu-west-1\n    canary:\n      steps:\n        - weight: 10\n          duration: 1m\n        - weight: 5\n          duration: 1m\n";

    #[test]
    fn locates_nested_keys_and_sequence_items() {
        assert_eq!(locate(DOC, "lock.table"), Some((3, 3)));
        assert_eq!(locate(DOC, "environments.staging.primary_region"), Some((6, 5)));
        assert_eq!(locate(DOC, "environments.staging.canary.steps.1.weight"), Some((11, 11)));
        assert_eq!(locate(DOC, "environments.production"), None);
    }
}
