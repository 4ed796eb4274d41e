//! The journal: every resource a bake or a rollout creates, recorded the moment its id
//! exists.
//!
//! A run that is interrupted must know what it made (PITFALLS 11). [`Journal`] is the
//! seam: the run calls [`Journal::record`] right after each create call returns and
//! [`Journal::forget`] once the resource is gone or has become the run's result.
//! [`MemoryJournal`] keeps the records in memory; kiln-builder's `FileJournal` writes
//! them to disk, so that what a killed process made can be found and removed afterwards.
//! The contract lives here, beside the ports, because bakes and rollouts both write it.

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What kind of resource a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    SecurityGroup,
    Instance,
    Image,
    Snapshot,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecurityGroup => "security group",
            Self::Instance => "instance",
            Self::Image => "image",
            Self::Snapshot => "snapshot",
        })
    }
}

/// One created resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub kind: ResourceKind,
    pub id: String,
    pub region: String,
    /// The build (run) id the resource is tagged with.
    pub run_id: String,
}

/// Where the bake writes what it creates and what it removed.
pub trait Journal: Send + Sync {
    /// A resource now exists; called before anything else is done with it.
    fn record(&self, record: Record);
    /// A resource is gone (deleted, or kept on purpose as the bake's result).
    fn forget(&self, kind: ResourceKind, id: &str);
}

/// A journal in memory: what this process made and has not yet removed.
#[derive(Debug, Default)]
pub struct MemoryJournal(Mutex<Vec<Record>>);

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// The resources recorded and not forgotten, in creation order.
    pub fn open_records(&self) -> Vec<Record> {
        self.0.lock().expect("journal lock").clone()
    }
}

impl Journal for MemoryJournal {
    fn record(&self, record: Record) {
        tracing::debug!(kind = %record.kind, id = %record.id, "journal: created");
        self.0.lock().expect("journal lock").push(record);
    }

    fn forget(&self, kind: ResourceKind, id: &str) {
        self.0
            .lock()
            .expect("journal lock")
            .retain(|r| !(r.kind == kind && r.id == id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: ResourceKind, id: &str) -> Record {
        Record {
            kind,
            id: id.into(),
            region: "ap-northeast-1".into(),
            run_id: "bake-1".into(),
        }
    }

    #[test]
    fn forget_removes_only_the_named_resource() {
        let journal = MemoryJournal::new();
        journal.record(record(ResourceKind::Instance, "i-1"));
        journal.record(record(ResourceKind::Image, "i-1"));
        journal.record(record(ResourceKind::Instance, "i-2"));
        journal.forget(ResourceKind::Instance, "i-1");
        let ids: Vec<_> = journal
            .open_records()
            .into_iter()
            .map(|r| (r.kind, r.id))
            .collect();
        assert_eq!(
            ids,
            vec![
                (ResourceKind::Image, "i-1".to_string()),
                (ResourceKind::Instance, "i-2".to_string())
            ]
        );
    }
}
