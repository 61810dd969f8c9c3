//! Exit codes, documented in `--help` and the README. CI tells "fix the command line or the configuration"
//! (2) from "the run failed" (3) by the code alone.

/// How `suma` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: success.
    Success,
    /// 1: the operation ran and the answer is no (a check failed, a canary was rolled back).
    No,
    /// 2: usage or configuration error, found before anything ran: the command line or the configuration
    /// must change.
    Usage,
    /// 3: the run failed: AWS, Datadog or the service answered with an error or not at all, or the
    /// environment's state refused the operation (a held lock, a half-done rotation).
    Error,
    /// 130: interrupted by Ctrl-C, SIGTERM or SIGHUP.
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::No => 1,
            Self::Usage => 2,
            Self::Error => 3,
            Self::Interrupted => 130,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// The command line or the configuration must change; found before any call that changes anything.
/// Exits 2, where every other failure exits 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] from a format string: `bail!(usage!("`--image {image}` …"))`.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        $crate::exit::UsageError(format!($($arg)*))
    };
}
