//! kiln-rollout: roll an image out to an Auto Scaling group, safely.
//!
//! preflight → lock → launch template version → strategy → gates → finish or roll back.
//!
//! [`plan`] reads the account and refuses what would stall or hurt, with the reason and
//! the fix; [`rollout`] executes a plan under a lock visible in AWS; [`rollback`] undoes
//! the last rollout by hand; [`status`] shows what a group runs and does. Everything goes
//! through the ports of `kiln-cloud`, so the same code runs on AWS and on the simulated
//! account.

mod bluegreen;
mod error;
mod events;
mod gates;
mod inplace;
mod lock;
mod outcome;
mod plan;
pub mod preflight;
mod refresh;
mod rollback;
mod run;
mod spec;
mod status;

pub use bluegreen::{
    BlueGreenPlan, ListenerSwitch, TAG_BLUE_GROUP, TAG_BLUE_TARGET_GROUP, TAG_BLUE_UNTIL, TAG_LIVE,
};
pub use error::{Refusal, RolloutError, StopReason};
pub use gates::probe_command;
pub use inplace::{InPlacePlan, TAG_DRIFT};
pub use lock::{LockHolder, LOCK_TAG};
pub use outcome::{status as outcome_status, RolloutOutcome};
pub use plan::{
    canary_steps, plan, GroupFacts, InstanceFacts, RefreshPlan, RolloutPlan, TemplatePlan,
};
pub use preflight::{Capacity, ReplacementOrder};
pub use rollback::rollback;
pub use run::{rollout, TAG_IMAGE, TAG_PREVIOUS_VERSION, TAG_TARGET, TAG_VERSION};
pub use spec::*;
pub use status::{status, GroupStatus, InstanceStatus};

/// The cancellation token `rollout` and `rollback` take (re-exported so callers need not
/// depend on tokio-util themselves).
pub use tokio_util::sync::CancellationToken;
