//! Why a rollout did not happen or did not finish: each error names the group, the region
//! and what to do next.

use std::fmt;
use std::time::Duration;

use kiln_cloud::CloudError;
use serde::{Deserialize, Serialize};

use crate::lock::LockHolder;
use crate::outcome::RolloutOutcome;

/// Stands for the pipeline file in the commands hints give: the library does not know
/// which file the target came from; the CLI writes the real one in its place.
pub const PIPELINE_FILE: &str = "FILE";

/// Preflight checks that refuse because of what the account is doing now (a refresh
/// running, a change made since the plan by someone else), not because of the input:
/// the same command succeeds once that is over.
pub const BUSY_CHECKS: [&str; 2] = ["refresh_running", "changed_since_plan"];

/// The command that rolls back `target`, as a hint gives it.
pub(crate) fn rollback_command(target: &str) -> String {
    format!("`kiln rollback {PIPELINE_FILE} --target {target}`")
}

/// The command that shows `target`'s groups and refreshes, as a hint gives it.
pub(crate) fn status_command(target: &str) -> String {
    format!("`kiln status {PIPELINE_FILE} --target {target}`")
}

/// One reason preflight refuses a rollout, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// A short stable key (`refresh_running`, `suspended_processes`...).
    pub check: String,
    pub reason: String,
    pub fix: String,
}

impl Refusal {
    /// Whether this refusal is the account being busy rather than the input being wrong.
    pub fn is_busy(&self) -> bool {
        BUSY_CHECKS.contains(&self.check.as_str())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (fix: {})", self.reason, self.fix)
    }
}

/// Why a rollout stopped before it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StopReason {
    /// The deadline passed.
    Timeout { waited: String },
    /// A new instance stayed not healthy in the target group for too long.
    Unhealthy {
        instance: String,
        state: String,
        detail: String,
        for_secs: u64,
    },
    /// A CloudWatch alarm went into ALARM.
    Alarm { name: String, reason: String },
    /// The HTTP probe failed on an instance.
    Probe { instance: String, detail: String },
    /// The run was cancelled (Ctrl-C, SIGTERM from CI).
    Cancelled,
    /// AWS ended the refresh without success.
    RefreshEnded { status: String, reason: String },
    /// A Run Command of an in-place fix failed on an instance.
    Command { instance: String, detail: String },
    /// An A/B canary step did worse than the baseline (the compared values in `detail`).
    Comparison { step: i32, detail: String },
    /// AWS answered an error in the middle of an in-place batch, which cannot be undone
    /// (the error in `detail`).
    Error { detail: String },
}

impl StopReason {
    /// The gate's or cause's short name (`timeout`, `unhealthy`, `alarm`...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Unhealthy { .. } => "unhealthy",
            Self::Alarm { .. } => "alarm",
            Self::Probe { .. } => "probe",
            Self::Cancelled => "cancelled",
            Self::RefreshEnded { .. } => "refresh_ended",
            Self::Command { .. } => "command",
            Self::Comparison { .. } => "comparison",
            Self::Error { .. } => "error",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { waited } => write!(f, "timeout: not finished after {waited}"),
            Self::Unhealthy {
                instance,
                state,
                detail,
                for_secs,
            } => write!(
                f,
                "unhealthy: new instance {instance} {state} in the target group for \
                 {for_secs} s ({detail})"
            ),
            Self::Alarm { name, reason } => write!(f, "alarm: {name} is in ALARM ({reason})"),
            Self::Probe { instance, detail } => {
                write!(f, "probe: HTTP probe failed on {instance}: {detail}")
            }
            Self::Cancelled => f.write_str("cancelled"),
            Self::RefreshEnded { status, reason } => {
                write!(f, "refresh ended {status}: {reason}")
            }
            Self::Command { instance, detail } => {
                write!(f, "command: the fix failed on {instance}: {detail}")
            }
            Self::Comparison { step, detail } => {
                write!(
                    f,
                    "comparison: the canary at {step}% did worse than the baseline: {detail}"
                )
            }
            Self::Error { detail } => write!(f, "error: {detail}"),
        }
    }
}

/// Everything that can go wrong in planning, rolling out, rolling back.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{}", preflight_message(.group, .region, .refusals))]
    Preflight {
        group: String,
        region: String,
        refusals: Vec<Refusal>,
    },
    #[error(
        "group {group} in {region} is locked by {holder}; wait for that rollout, or if it \
         is dead, run `kiln gc`, which releases the lock of a run that is over (it expires \
         at {expires})",
        expires = holder.expires
    )]
    Locked {
        group: String,
        region: String,
        holder: LockHolder,
    },
    #[error(
        "rollout of {group} in {region} stopped: {reason}; {after}",
        after = rolled_back_text(*.rolled_back, .outcome, .left.as_deref())
    )]
    Stopped {
        group: String,
        region: String,
        reason: Box<StopReason>,
        rolled_back: bool,
        outcome: Box<RolloutOutcome>,
        /// What a stop with no rollback left, and what to do (in place).
        left: Option<String>,
    },
    /// The rollout reached its end (the refresh succeeded, the switch is done and
    /// drained, every batch was fixed), then a call failed: it stands as it is.
    #[error(
        "rollout of {group} in {region} went through: {done}; then {error}. Nothing was \
         undone: `kiln status` shows the group, `kiln rollback` undoes the rollout"
    )]
    Unreported {
        group: String,
        region: String,
        /// What is live now.
        done: String,
        error: Box<RolloutError>,
    },
    /// The last rollout of the group was an in-place fix, which nothing can undo.
    #[error("rollback of {group} in {region} refused: {detail}. Next: {next}")]
    NoUndo {
        group: String,
        region: String,
        /// The fix, how it ended, and where the instances are.
        detail: String,
        next: String,
        /// Instances are out of service or the fix failed: someone must look now.
        needs_attention: bool,
    },
    #[error("rollback of {group} in {region} failed: {detail}; {next}")]
    RollbackFailed {
        group: String,
        region: String,
        detail: String,
        next: String,
    },
    #[error("{what} in {region}: {detail}")]
    Invalid {
        what: String,
        region: String,
        detail: String,
    },
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

fn preflight_message(group: &str, region: &str, refusals: &[Refusal]) -> String {
    let list: Vec<String> = refusals.iter().map(|r| format!("- {r}")).collect();
    format!(
        "preflight refused the rollout of group {group} in {region}:\n{}",
        list.join("\n")
    )
}

fn rolled_back_text(rolled_back: bool, outcome: &RolloutOutcome, left: Option<&str>) -> String {
    match (rolled_back, left) {
        (true, _) => format!(
            "rolled back to launch template version {} ({})",
            outcome.previous_version, outcome.status
        ),
        (false, Some(left)) => left.to_string(),
        (false, None) => format!(
            "not rolled back ({}); run {} to undo it",
            outcome.status,
            rollback_command(&outcome.target)
        ),
    }
}

impl RolloutError {
    /// A throttled or unreachable API: a later poll may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Cloud(e) if e.is_transient())
    }

    /// Refused only because the account is busy (every refusal is a [`BUSY_CHECKS`] one):
    /// the same command may succeed later, unlike bad input.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Preflight { refusals, .. }
            if !refusals.is_empty() && refusals.iter().all(Refusal::is_busy))
    }

    /// This error, met once the rollout had gone through (`done`: what is live).
    pub(crate) fn after_done(self, group: &str, region: &str, done: String) -> Self {
        Self::Unreported {
            group: group.to_string(),
            region: region.to_string(),
            done,
            error: Box::new(self),
        }
    }

    /// Whether the rollout went through before the error (it stands; nothing to undo).
    pub fn went_through(&self) -> bool {
        matches!(self, Self::Unreported { .. })
    }

    /// The stop reason, when the rollout started and then stopped.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        match self {
            Self::Stopped { reason, .. } => Some(reason.as_ref()),
            _ => None,
        }
    }
}

pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Turns a transient failure of one poll into `None` (warned), so that a throttling
/// storm delays a wait, bounded by its deadline, instead of abandoning it half-way.
pub(crate) fn tolerate<T>(
    result: Result<T, RolloutError>,
    emit: &crate::events::Emitter<'_>,
    phase: &str,
    subject: &str,
) -> Result<Option<T>, RolloutError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_transient() => {
            emit.warn(
                phase,
                subject,
                format!("poll failed, retrying at the next: {e}"),
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
