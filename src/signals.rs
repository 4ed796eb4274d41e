//! Ctrl-C and SIGTERM: the first asks the run to stop and clean up, the second ends
//! the process at once.
//!
//! A CI job that is aborted sends SIGTERM and waits a little before SIGKILL; a person at
//! a terminal presses Ctrl-C and, if cleanup takes too long, presses it again. Both must
//! leave nothing behind that `kiln gc` cannot find.
//!
//! The listeners are installed once, before the first signal can arrive, and kept for
//! the life of the process: a listener made after a signal was delivered does not see
//! it, so one made anew for the second wait could miss a second signal that came while
//! the first was being handled.

use tokio_util::sync::CancellationToken;

use crate::exit;
use crate::output::say;

/// Cancels `token` on the first Ctrl-C or SIGTERM; exits on the second.
pub fn watch(token: CancellationToken) {
    let mut signals = Signals::install();
    tokio::spawn(async move {
        signals.next().await;
        say(
            "kiln: interrupted; cleaning up what this run started (interrupt again to exit \
             at once)\n",
        );
        token.cancel();
        signals.next().await;
        say("kiln: second interrupt; exiting without cleanup. `kiln gc` finds what this run left.\n");
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
}

/// The process's Ctrl-C and SIGTERM listeners.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            interrupt: signal(SignalKind::interrupt()).expect("install the SIGINT handler"),
            terminate: signal(SignalKind::terminate()).expect("install the SIGTERM handler"),
        }
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals(tokio::signal::windows::CtrlC);

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Self(tokio::signal::windows::ctrl_c().expect("install the Ctrl-C handler"))
    }

    async fn next(&mut self) {
        self.0.recv().await;
    }
}
