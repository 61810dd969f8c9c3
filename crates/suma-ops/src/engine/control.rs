//! Control commands from other terminals: `suma deploy pause|resume|abort|promote` leaves one on the lock
//! item of the operation it names; the runner consumes it at the next step boundary or analysis tick.

use std::time::Duration;

/// How often a paused run looks for the command that ends the pause.
pub(super) const PAUSE_POLL: Duration = Duration::from_secs(2);

/// A command for a running operation, with who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Pause { by: String },
    Resume { by: String },
    Abort { by: String },
    Promote { by: String },
}

impl Control {
    /// The commands `suma` sends; anything else (a newer version's command) is ignored with a log line.
    pub const NAMES: [&'static str; 4] = ["pause", "resume", "abort", "promote"];

    pub fn parse(command: &str, by: String) -> Option<Self> {
        match command {
            "pause" => Some(Self::Pause { by }),
            "resume" => Some(Self::Resume { by }),
            "abort" => Some(Self::Abort { by }),
            "promote" => Some(Self::Promote { by }),
            other => {
                tracing::warn!(command = other, "unknown control command ignored");
                None
            }
        }
    }
}
