//! Progress events: what the bake and the rollout tell the person or CI watching.
//!
//! The libraries emit events; the CLI decides how to show them (bars on a terminal,
//! one line per event for Jenkins, nothing with `--quiet`). Events are not results:
//! results are the return values.

use serde::Serialize;

use crate::types::Timestamp;

/// The `tracing` target under which the libraries mirror their progress events, so that
/// callers who do not watch events still get them as logs, and a caller who renders the
/// events itself (the CLI) can turn the mirror off.
pub const PROGRESS_TARGET: &str = "kiln_progress";

/// How an event reads to the watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A milestone: a phase or step began or ended.
    Info,
    /// Something went wrong but the run goes on (a cleanup that failed, a throttled poll).
    Warn,
    /// The run failed here.
    Error,
}

/// One thing that happened, naming the resource it happened to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Time in the world the ports talk to (simulated time on the simulated account).
    pub at: Timestamp,
    pub level: Level,
    /// The phase (`plan`, `builder`, `step`, `image`, `test`, `refresh`, `gate`...).
    pub phase: String,
    /// The resource or step the event is about (`i-0abc`, `proxysql/install-proxysql`).
    pub subject: String,
    pub message: String,
    /// For phases with a known size: work done and total (steps, instances, percent).
    pub position: Option<(u64, u64)>,
}

/// Where events go.
pub trait Progress: Send + Sync {
    fn event(&self, event: Event);
}

/// Drops every event: for library callers that do not watch.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _event: Event) {}
}

/// Keeps every event, for tests that assert what was reported.
#[derive(Debug, Default)]
pub struct Recorder(std::sync::Mutex<Vec<Event>>);

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().expect("recorder lock").clone()
    }
}

impl Progress for Recorder {
    fn event(&self, event: Event) {
        self.0.lock().expect("recorder lock").push(event);
    }
}
