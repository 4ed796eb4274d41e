//! Ctrl-C and SIGTERM: the first asks the run to stop and clean up, the second ends
//! the process at once.
//!
//! A CI job that is aborted sends SIGTERM and waits a little before SIGKILL; a person at
//! a terminal presses Ctrl-C and, if cleanup takes too long, presses it again. Both must
//! leave nothing behind that `kiln gc` cannot find.

use tokio_util::sync::CancellationToken;

use crate::exit;

/// Cancels `token` on the first Ctrl-C or SIGTERM; exits on the second.
pub fn watch(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("kiln: interrupted; cleaning up what this run started (interrupt again to exit at once)");
        token.cancel();
        wait_for_signal().await;
        eprintln!(
            "kiln: second interrupt; exiting without cleanup. `kiln gc` finds what this run left."
        );
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
