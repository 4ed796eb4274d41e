//! What a sweep (`kiln gc`) reports, shared by the bake sweep and the rollout sweep:
//! a resource found, why it is removed or kept, and whether a run may still be going.
//!
//! Bakes and rollouts leave different resources, found in different ways, but one
//! command lists and removes them, under one rule for a run that is over. The types live
//! here, beside the journal, because kiln-builder and kiln-rollout do not import each
//! other.

use std::time::Duration;

use serde::Serialize;

use crate::journal::{ResourceKind, RunState};
use crate::types::Timestamp;

/// One resource found, and why it is (or is not) removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub kind: ResourceKind,
    pub id: String,
    /// The region the resource is in.
    pub region: String,
    pub run_id: String,
    pub reason: String,
}

/// A sweep's findings in one region.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Survey {
    pub region: String,
    /// To remove, in removal order.
    pub remove: Vec<Found>,
    /// Made by kiln but kept, with the reason.
    pub kept: Vec<Found>,
}

impl Survey {
    /// Files `found` under `kept` with the reason when there is one, else under `remove`.
    pub fn place(&mut self, found: Found, keep: Option<String>) {
        match keep {
            Some(reason) => self.kept.push(Found { reason, ..found }),
            None => self.remove.push(found),
        }
    }

    /// Adds another sweep's findings in the same region after these.
    pub fn extend(&mut self, other: &Survey) {
        self.remove.extend(other.remove.iter().cloned());
        self.kept.extend(other.kept.iter().cloned());
    }
}

/// What a sweep removed, and what it could not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub removed: Vec<Found>,
    /// Resources that could not be removed, each with the error.
    pub failed: Vec<(Found, String)>,
}

impl SweepReport {
    /// Records the result of removing `found`.
    pub fn note(&mut self, found: &Found, result: Result<(), String>) {
        match result {
            Ok(()) => {
                tracing::info!(kind = %found.kind, id = %found.id, "removed");
                self.removed.push(found.clone());
            }
            Err(why) => self.failed.push((found.clone(), why)),
        }
    }

    /// Adds another sweep's results after these.
    pub fn extend(&mut self, other: SweepReport) {
        self.removed.extend(other.removed);
        self.failed.extend(other.failed);
    }
}

/// Decides whether runs are over: what local journals say, else their age.
pub struct RunJudge<'a> {
    pub local: &'a dyn Fn(&str) -> RunState,
    /// An unknown run younger than this may still be running elsewhere.
    pub grace: Duration,
    pub now: Timestamp,
}

impl RunJudge<'_> {
    /// `None` when the run is over; else why its resources are kept. `started` is when
    /// the run began, as its id or its resources tell (`None`: unknown, so kept).
    pub fn keep_reason(&self, run_id: &str, started: Option<Timestamp>) -> Option<String> {
        match (self.local)(run_id) {
            RunState::Over => None,
            RunState::Live => Some("its run is still going (local journal, live process)".into()),
            RunState::Unknown => {
                let Some(started) = started else {
                    return Some("its run's start time is unknown".into());
                };
                let age = (self.now - started).to_std().unwrap_or_default();
                (age < self.grace).then(|| {
                    format!(
                        "its run started {} ago, within the grace period of {}",
                        humantime::format_duration(age),
                        humantime::format_duration(self.grace)
                    )
                })
            }
        }
    }
}
