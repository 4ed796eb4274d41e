//! What a rollout created, written to the run's [`Journal`] the moment each id exists.
//!
//! A rollout interrupted by SIGKILL cannot clean up (PITFALLS 11): what it made must
//! already be known, on disk with the CLI's journal, in AWS by tag. Each resource is
//! recorded right after its create call returns, and closed once it is deleted
//! ([`Ledger::removed`]) or has become the run's result ([`Ledger::kept`]: the green
//! group after a switch, the version a group uses), so that the run's summary says which.

use kiln_cloud::journal::{template_version_id, Fate, Journal, Record, ResourceKind};
use kiln_cloud::LaunchTemplateId;

/// The journal of one run, with the run's id and region.
pub(crate) struct Ledger<'a> {
    journal: &'a dyn Journal,
    region: String,
    run_id: String,
}

impl<'a> Ledger<'a> {
    pub fn new(journal: &'a dyn Journal, region: &str, run_id: &str) -> Self {
        Self {
            journal,
            region: region.to_string(),
            run_id: run_id.to_string(),
        }
    }

    pub fn record(&self, kind: ResourceKind, id: &str) {
        self.journal.record(Record {
            kind,
            id: id.to_string(),
            region: self.region.clone(),
            run_id: self.run_id.clone(),
        });
    }

    /// The resource is gone.
    pub fn removed(&self, kind: ResourceKind, id: &str) {
        self.journal.forget(kind, id, Fate::Removed);
    }

    /// The resource stays, as what the run made live.
    pub fn kept(&self, kind: ResourceKind, id: &str) {
        self.journal.forget(kind, id, Fate::Kept);
    }

    pub fn record_version(&self, template: &LaunchTemplateId, version: i64) {
        let id = template_version_id(template.as_str(), version);
        self.record(ResourceKind::LaunchTemplateVersion, &id);
    }

    pub fn removed_version(&self, template: &LaunchTemplateId, version: i64) {
        let id = template_version_id(template.as_str(), version);
        self.removed(ResourceKind::LaunchTemplateVersion, &id);
    }

    pub fn kept_version(&self, template: &LaunchTemplateId, version: i64) {
        let id = template_version_id(template.as_str(), version);
        self.kept(ResourceKind::LaunchTemplateVersion, &id);
    }
}
