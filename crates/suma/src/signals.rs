//! The signals that stop suma: SIGINT (Ctrl-C), SIGTERM (a CI runner cancelling the job, `kill`) and
//! SIGHUP (the terminal went away) are handled the same way. A mutating command then stops at a safe
//! point: a canary puts all traffic back on stable first, and every operation journals where it stopped,
//! so it can be resumed or aborted from any machine.

use tokio::signal::unix::{signal, SignalKind};

/// Resolves when one of the three signals arrives, with its name.
pub async fn stop_requested() -> &'static str {
    let listen = |kind| signal(kind).expect("installing a signal handler cannot fail on Unix");
    let (mut int, mut term, mut hup) = (
        listen(SignalKind::interrupt()),
        listen(SignalKind::terminate()),
        listen(SignalKind::hangup()),
    );
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}
