//! The journal: every resource a bake or a rollout creates, recorded the moment its id
//! exists.
//!
//! A run that is interrupted must know what it made (PITFALLS 11). [`Journal`] is the
//! seam: the run calls [`Journal::record`] right after each create call returns and
//! [`Journal::forget`] once the resource is gone or has become the run's result, saying
//! which ([`Fate`]): a summary must never call "removed" what a run kept on purpose.
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
    /// A numbered launch template version; its id is `<template id>:<version>`
    /// ([`template_version_id`]).
    LaunchTemplateVersion,
    /// An Auto Scaling group, by name (blue/green's green group).
    AutoScalingGroup,
    /// A target group, by ARN.
    TargetGroup,
    /// A listener rule, by ARN (blue/green's testers' rule).
    ListenerRule,
    /// A group's lock (the `kiln:lock` tag), by the group's name. Never journaled: a
    /// sweep finds it on the group and releases it once its run is over.
    GroupLock,
}

/// The record id of a launch template version: `lt-0abc:7`.
pub fn template_version_id(template: &str, version: i64) -> String {
    format!("{template}:{version}")
}

/// The template id and version of a [`template_version_id`].
pub fn parse_template_version_id(id: &str) -> Option<(&str, i64)> {
    let (template, version) = id.rsplit_once(':')?;
    Some((template, version.parse().ok()?))
}

/// What is known locally about a run, for a sweep (`kiln gc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Its process is alive: leave its resources alone.
    Live,
    /// It finished, or its process is gone.
    Over,
    /// No local journal: the run is over once it is older than the grace period.
    Unknown,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecurityGroup => "security group",
            Self::Instance => "instance",
            Self::Image => "image",
            Self::Snapshot => "snapshot",
            Self::LaunchTemplateVersion => "launch template version",
            Self::AutoScalingGroup => "auto scaling group",
            Self::TargetGroup => "target group",
            Self::ListenerRule => "listener rule",
            Self::GroupLock => "group lock",
        })
    }
}

/// Why a record is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Deleted (or found already gone): nothing of it is left.
    Removed,
    /// Kept on purpose as the run's result (a bake's image, the green group a switch made
    /// live, the version a group now runs): it exists, and is no leftover.
    Kept,
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

/// Where a bake or a rollout writes what it creates and what it removed.
pub trait Journal: Send + Sync {
    /// A resource now exists; called before anything else is done with it.
    fn record(&self, record: Record);
    /// A resource is no longer the run's to clean up: gone, or kept as its result.
    fn forget(&self, kind: ResourceKind, id: &str, fate: Fate);
}

/// A journal in memory: what this process made and has not yet removed.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    open: Mutex<Vec<Record>>,
    closed: Mutex<Vec<(Record, Fate)>>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// The resources recorded and not forgotten, in creation order.
    pub fn open_records(&self) -> Vec<Record> {
        self.open.lock().expect("journal lock").clone()
    }

    /// The resources forgotten with `fate`, in the order they were.
    pub fn closed(&self, fate: Fate) -> Vec<Record> {
        let closed = self.closed.lock().expect("journal lock");
        closed
            .iter()
            .filter(|(_, f)| *f == fate)
            .map(|(r, _)| r.clone())
            .collect()
    }
}

impl Journal for MemoryJournal {
    fn record(&self, record: Record) {
        tracing::debug!(kind = %record.kind, id = %record.id, "journal: created");
        // Recorded again (a kept image held by its distribution), it is open again.
        self.closed
            .lock()
            .expect("journal lock")
            .retain(|(r, _)| !(r.kind == record.kind && r.id == record.id));
        self.open.lock().expect("journal lock").push(record);
    }

    fn forget(&self, kind: ResourceKind, id: &str, fate: Fate) {
        let mut open = self.open.lock().expect("journal lock");
        if let Some(at) = open.iter().position(|r| r.kind == kind && r.id == id) {
            let record = open.remove(at);
            let mut closed = self.closed.lock().expect("journal lock");
            // A resource has one fate: the last one.
            closed.retain(|(r, _)| !(r.kind == kind && r.id == id));
            closed.push((record, fate));
        }
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
    fn a_template_version_id_reads_back() {
        let id = template_version_id("lt-0abc", 7);
        assert_eq!(id, "lt-0abc:7");
        assert_eq!(parse_template_version_id(&id), Some(("lt-0abc", 7)));
        assert_eq!(parse_template_version_id("lt-0abc"), None);
        assert_eq!(parse_template_version_id("lt-0abc:x"), None);
    }

    #[test]
    fn forget_removes_only_the_named_resource() {
        let journal = MemoryJournal::new();
        journal.record(record(ResourceKind::Instance, "i-1"));
        journal.record(record(ResourceKind::Image, "i-1"));
        journal.record(record(ResourceKind::Instance, "i-2"));
        journal.forget(ResourceKind::Instance, "i-1", Fate::Removed);
        journal.forget(ResourceKind::Image, "i-9", Fate::Kept);
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
        assert_eq!(
            journal.closed(Fate::Removed),
            [record(ResourceKind::Instance, "i-1")]
        );
        assert_eq!(journal.closed(Fate::Kept), [], "nothing named i-9 was open");
        journal.forget(ResourceKind::Image, "i-1", Fate::Kept);
        assert_eq!(
            journal.closed(Fate::Kept),
            [record(ResourceKind::Image, "i-1")]
        );
        // Held again and then removed, it is removed only.
        journal.record(record(ResourceKind::Image, "i-1"));
        journal.forget(ResourceKind::Image, "i-1", Fate::Removed);
        assert_eq!(journal.closed(Fate::Kept), []);
        assert_eq!(journal.closed(Fate::Removed).len(), 2);
    }
}
