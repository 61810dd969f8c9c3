//! The terminal [`Reporter`]: an indicatif spinner when stderr is a terminal, plain timestamped lines
//! otherwise (CI logs), nothing with `-q`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::journal::StepStatus;
use crate::report::Reporter;

pub struct TerminalReporter {
    quiet: bool,
    interactive: bool,
    spinner: Mutex<Option<ProgressBar>>,
}

impl TerminalReporter {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            interactive: std::io::stderr().is_terminal(),
            spinner: Mutex::new(None),
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let spinner = self.spinner.lock().expect("reporter lock");
        match spinner.as_ref() {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }
}

impl Reporter for TerminalReporter {
    fn phase(&self, message: &str) {
        if self.quiet {
            return;
        }
        if !self.interactive {
            self.line(message);
            return;
        }
        self.live(message);
    }

    fn live(&self, message: &str) {
        if self.quiet || !self.interactive {
            return;
        }
        let mut spinner = self.spinner.lock().expect("reporter lock");
        let bar = spinner.get_or_insert_with(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}").expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        bar.set_message(message.to_owned());
    }

    fn step_started(&self, index: usize, total: usize, name: &str) {
        self.phase(&format!("[{}/{total}] {name}", index + 1));
    }

    fn step_finished(&self, index: usize, total: usize, name: &str, status: StepStatus, detail: &str) {
        let mark = match status {
            StepStatus::Succeeded => console::style("ok").green().to_string(),
            StepStatus::Failed => console::style("FAILED").red().bold().to_string(),
            StepStatus::Skipped => console::style("skipped").dim().to_string(),
            StepStatus::Tolerated => console::style("failed, going on").yellow().to_string(),
            StepStatus::Running => "...".to_owned(),
        };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        self.line(&format!("[{}/{total}] {name} {mark}{detail}", index + 1));
    }

    fn info(&self, message: &str) {
        self.line(message);
    }

    fn warn(&self, message: &str) {
        self.line(&format!("{}: {message}", console::style("warning").yellow().bold()));
    }

    fn finish(&self) {
        if let Some(bar) = self.spinner.lock().expect("reporter lock").take() {
            bar.finish_and_clear();
        }
    }
}
