//! How library code tells the person at the terminal what is happening, without printing: it calls a
//! [`Reporter`], which the CLI renders (indicatif on a terminal, plain lines otherwise, nothing with `-q`).

use crate::operation::StepStatus;

pub trait Reporter: Send + Sync {
    /// A long-running phase began (e.g. "querying AWS"); ended by the next call.
    fn phase(&self, message: &str);
    fn step_started(&self, index: usize, total: usize, name: &str);
    fn step_finished(&self, index: usize, total: usize, name: &str, status: StepStatus, detail: &str);
    fn info(&self, message: &str);
    fn warn(&self, message: &str);
    /// The one-line live view of a long step (step, weight, time left, last measurement), redrawn in place on
    /// a terminal. Not a log line: renderers without a live area ignore it.
    fn live(&self, _message: &str) {}
    /// Ends any spinner or bar.
    fn finish(&self);
}

/// Reports nothing (tests and `-q`).
pub struct SilentReporter;

impl Reporter for SilentReporter {
    fn phase(&self, _: &str) {}
    fn step_started(&self, _: usize, _: usize, _: &str) {}
    fn step_finished(&self, _: usize, _: usize, _: &str, _: StepStatus, _: &str) {}
    fn info(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn finish(&self) {}
}
