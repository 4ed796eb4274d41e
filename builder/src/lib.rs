//! kiln-builder: recipes, plans and input hashes, the bake, distribution and the image
//! catalogue.
//!
//! A bake is planned first ([`plan()`], which changes nothing), then run ([`bake()`]).

// A bake fails at most once, so the size of its error is of no consequence; keeping the
// variants' fields inline keeps them easy to match on.
#![allow(clippy::result_large_err)]

pub mod bake;
pub mod catalogue;
pub mod distribute;
pub mod error;
pub mod hash;
/// The journal contract, shared with rollouts (re-exported: `crate::journal` reads as before).
pub use kiln_cloud::journal;
pub mod journal_file;
pub mod naming;
pub mod plan;
pub mod recipe;
pub mod spec;
pub mod sweep;
pub mod wait;

pub use bake::{bake, bake_with_journal, BakeOutcome};
pub use error::BakeError;
pub use journal::{Fate, Journal, MemoryJournal, Record, ResourceKind};
pub use journal_file::{read_journals, FileJournal, RunJournal};
pub use plan::{
    plan, plan_layer, BakePlan, BakedImage, LayerSource, PlannedChange, PlannedStep, StepPhase,
};
pub use spec::{
    BakeSpec, BuilderSettings, RootVolumeSettings, SourceImage, SubnetSelector, Timeouts,
};
