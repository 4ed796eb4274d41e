//! A thin emitter over [`Progress`]: stamps events with the account's clock and mirrors
//! milestones into `tracing`, so library callers who do not watch still get logs.

use kiln_cloud::progress::PROGRESS_TARGET;
use kiln_cloud::{Clock, Event, Level, Progress};

pub(crate) struct Emitter<'a> {
    pub progress: &'a dyn Progress,
    pub clock: &'a dyn Clock,
}

impl Emitter<'_> {
    pub fn info(&self, phase: &str, subject: &str, message: impl Into<String>) {
        self.emit(Level::Info, phase, subject, message.into(), None);
    }

    pub fn warn(&self, phase: &str, subject: &str, message: impl Into<String>) {
        self.emit(Level::Warn, phase, subject, message.into(), None);
    }

    pub fn error(&self, phase: &str, subject: &str, message: impl Into<String>) {
        self.emit(Level::Error, phase, subject, message.into(), None);
    }

    pub fn step(&self, phase: &str, subject: &str, message: String, done: u64, total: u64) {
        self.emit(Level::Info, phase, subject, message, Some((done, total)));
    }

    fn emit(
        &self,
        level: Level,
        phase: &str,
        subject: &str,
        message: String,
        position: Option<(u64, u64)>,
    ) {
        match level {
            Level::Info => tracing::info!(target: PROGRESS_TARGET, phase, subject, "{message}"),
            Level::Warn => tracing::warn!(target: PROGRESS_TARGET, phase, subject, "{message}"),
            Level::Error => tracing::error!(target: PROGRESS_TARGET, phase, subject, "{message}"),
        }
        self.progress.event(Event {
            at: self.clock.now(),
            level,
            phase: phase.to_string(),
            subject: subject.to_string(),
            message,
            position,
        });
    }
}
