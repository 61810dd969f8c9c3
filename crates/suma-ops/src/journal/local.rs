//! The local audit log: every saved operation state appended as one JSON line to
//! `STATE_DIR/operations.jsonl`.

use std::io::Write;
use std::path::PathBuf;

use super::{JournalError, Operation};

#[derive(Debug, Clone)]
pub struct LocalLog {
    path: PathBuf,
}

impl LocalLog {
    pub fn new(state_dir: &std::path::Path) -> Self {
        Self {
            path: state_dir.join("operations.jsonl"),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn append(&self, op: &Operation) -> Result<(), JournalError> {
        let err = |source| JournalError::Local {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut line = serde_json::to_string(op).expect("operations always serialize");
        line.push('\n');
        // One write call per line keeps concurrent appenders from interleaving within a line.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        file.write_all(line.as_bytes()).map_err(err)
    }

    /// Every recorded state of the operation `id`, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<Operation>, JournalError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(JournalError::Local {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<Operation>(line).ok())
            .filter(|op| op.id == id)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_reads_back_history() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::new(&dir.path().join("nested"));
        let mut op = Operation::new("rollback", "staging", "me@host", vec![]);
        log.append(&op).unwrap();
        op.set_status(super::super::OperationStatus::Succeeded);
        log.append(&op).unwrap();
        log.append(&Operation::new("rollback", "staging", "me@host", vec![]))
            .unwrap();
        let history = log.history(&op.id).unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].status, super::super::OperationStatus::Succeeded);
    }
}
