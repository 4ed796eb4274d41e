//! kiln: bake golden AMIs over AWS Systems Manager and roll them out to Auto Scaling
//! groups.
//!
//! The library facade re-exports the three crates kiln is made of, and holds the
//! command-line tool's modules so that tests can drive it in process:
//! - [`cloud`]: domain types, the ports to AWS, the AWS adapter, the simulated account;
//! - [`builder`]: recipes, plans, the bake;
//! - [`rollout`]: preflight, locks, strategies, gates, rollback.

pub use kiln_builder as builder;
pub use kiln_cloud as cloud;
pub use kiln_rollout as rollout;

pub mod account;
pub mod app;
pub mod aws_names;
pub mod cli;
pub mod cmd;
pub mod distribute_input;
pub mod exit;
pub mod journal;
pub mod manifest;
pub mod output;
pub mod pipeline;
pub mod secrets;
pub mod signals;
