//! kiln-rollout: roll an image out to an Auto Scaling group, safely.
//!
//! preflight → lock → launch template version → strategy → gates → finish or roll back.
//!
//! [`plan`] reads the account and refuses what would stall or hurt, with the reason and
//! the fix; [`rollout`] executes a plan under a lock visible in AWS; [`rollback`] undoes
//! the last rollout by hand; [`status`] shows what a group runs and does. Everything goes
//! through the ports of `kiln-cloud`, so the same code runs on AWS and on the simulated
//! account.
//!
//! What a rollout creates (template version, green group and target group, testers'
//! rule) is recorded in a journal the moment it exists ([`rollout_with_journal`]) and
//! removed again when the rollout stops, fails or is cancelled; [`sweep`] finds what a
//! killed rollout left, for `kiln gc`.
//!
//! A target as a pipeline file writes it ([`RolloutSpec`]; every other field has a
//! documented default):
//!
//! ```yaml
//! target: poc-web
//! group: poc-web-asg
//! launch_template: poc-web-lt        # or lt-…
//! target_group: poc-web-tg
//! load_balancer: poc-poc-alb         # blue/green and A/B only
//! strategy:
//!   kind: rolling                    # canary | blue_green | in_place
//!   min_healthy_percentage: 100
//!   max_healthy_percentage: 150
//! gates: { alarms: [poc-web-5xx], http_probe: /health }
//! timeouts: { rollout: 45m }
//! ```
//!
//! - rolling: one instance refresh, every preference stated, gates at every poll;
//! - canary: the same refresh with checkpoints (`steps`), gates watched for `bake` at each;
//!   or, with `mode: ab`, a canary group in its own target group (blue/green's machinery)
//!   taking `traffic_steps` percent of the requests (5, 25, 50, 100), each step's 5xx
//!   rate and latency compared with the baseline's ([`AbThresholds`]);
//! - blue/green: green group and target group beside blue, optional testers' rule and
//!   weighted A/B `traffic_steps`, one listener change, blue kept for `rollback_window`
//!   ([`retire`] removes it after, and so does [`sweep`] for `kiln gc`);
//! - in place: a fix by Run Command in batches, each drained, fixed, probed, put back;
//!   the fix is recorded on the group (tag `kiln:drift`).

mod bluegreen;
mod compare;
mod error;
mod events;
mod fixed;
mod gates;
mod inplace;
mod ledger;
mod limits;
mod lock;
mod outcome;
mod patient;
mod plan;
pub mod preflight;
mod refresh;
mod remove;
mod rollback;
mod run;
mod spec;
mod status;
mod summary;
pub mod sweep;

pub use bluegreen::{
    retire, serving_group, BlueGreenPlan, ListenerSwitch, Retired, ROLE_GREEN, ROLE_PREVIEW,
    TAG_BLUE_GROUP, TAG_BLUE_RETIRED, TAG_BLUE_TARGET_GROUP, TAG_BLUE_UNTIL, TAG_LIVE,
};
pub use error::{Refusal, RolloutError, StopReason, BUSY_CHECKS, PIPELINE_FILE};
pub use fixed::TAG_IN_PLACE;
pub use gates::{probe_command, FIX_COMMENT, PROBE_COMMENT};
pub use inplace::{InPlacePlan, TAG_DRIFT};
pub use limits::{Field, SpecProblem};
pub use lock::{LockHolder, LOCK_MARGIN, LOCK_TAG};
pub use outcome::{status as outcome_status, RolloutOutcome};
pub use plan::{
    canary_steps, plan, GroupFacts, InstanceFacts, RefreshPlan, RolloutPlan, TemplatePlan,
};
pub use preflight::{Capacity, ReplacementOrder};
pub use rollback::rollback;
pub use run::{
    rollout, rollout_with_journal, TAG_IMAGE, TAG_PREVIOUS_VERSION, TAG_TARGET, TAG_VERSION,
};
pub use spec::*;
pub use status::{status, GroupStatus, InstanceStatus};

/// The cancellation token `rollout` and `rollback` take (re-exported so callers need not
/// depend on tokio-util themselves).
pub use tokio_util::sync::CancellationToken;
