//! What an in-place fix leaves behind, in words and in a group tag.
//!
//! A fix has no undo: the script ran where it ran. When it stops half-way, the operator
//! needs to know which instances it fixed, which it left out of the target group, and
//! what to do; `kiln rollback` later needs to know that the last rollout was a fix, and
//! to give the same advice instead of looking for a version to go back to. The run
//! writes how it stands to the group's tag `kiln:in-place` when it starts and when it
//! ends, and describes what it left ([`Left`]) in its error.

use kiln_cloud::{Group, ImageId, InstanceId, Tags, TargetState, TAG_RUN_ID};

use crate::error::StopReason;
use crate::sweep::run_started;

/// Group tag: the last in-place fix and how it ended
/// (`<run id> <status>: <what>; <n> of <m> fixed`).
pub const TAG_IN_PLACE: &str = "kiln:in-place";
/// AWS limits a tag value to 256 characters.
pub(crate) const TAG_VALUE_MAX: usize = 256;

/// Where the instances of a stopped fix are.
#[derive(Debug, Default)]
pub(crate) struct Left {
    /// Batches done: fixed, checked and back in service.
    pub fixed: Vec<InstanceId>,
    /// The batch the fix failed on, or the part of it an AWS error left out of the target
    /// group.
    pub out: Vec<InstanceId>,
    /// The batch that ran the fix, is back in the target group and failed its checks.
    pub failing: Vec<InstanceId>,
    /// Batches never started.
    pub untouched: Vec<InstanceId>,
    /// The batch an AWS error hit, still counted in service by its target group: the
    /// fix may or may not have run on them.
    pub unsure: Vec<InstanceId>,
    /// An AWS error stopped the batch, not the fix's own failure.
    pub error_hit: bool,
}

impl Left {
    /// The batches of a run stopped at batch `at` (0-based) for `reason`. A failed
    /// command stops before the batch is put back; any other stop comes after.
    pub fn of(batches: &[Vec<InstanceId>], at: usize, reason: &StopReason) -> Self {
        let flat = |b: &[Vec<InstanceId>]| b.iter().flatten().cloned().collect::<Vec<_>>();
        let mut left = Self {
            fixed: flat(&batches[..at]),
            untouched: flat(batches.get(at + 1..).unwrap_or_default()),
            ..Self::default()
        };
        let mut current = batches.get(at).cloned().unwrap_or_default();
        match reason {
            StopReason::Command { .. } => left.out = current,
            // Where the error hit is read from the target group ([`Left::place`]).
            StopReason::Error { .. } => {
                left.unsure = current;
                left.error_hit = true;
            }
            // Cancelled between batches: the next one was never touched.
            StopReason::Cancelled => {
                current.append(&mut left.untouched);
                left.untouched = current;
            }
            _ => left.failing = current,
        }
        left
    }

    /// Moves the instances an error hit that `out_of_service` names to [`Left::out`]:
    /// the batch had been taken out of the target group when the error came.
    pub fn place(&mut self, out_of_service: &[InstanceId]) {
        let (out, unsure) = std::mem::take(&mut self.unsure)
            .into_iter()
            .partition(|i| out_of_service.contains(i));
        self.out = out;
        self.unsure = unsure;
    }

    /// Where the instances are, in one sentence.
    pub fn describe(&self, target_group: Option<&str>) -> String {
        let tg = target_group.unwrap_or("its target group");
        let mut parts = Vec::new();
        let batch = if self.error_hit {
            "the batch the error hit"
        } else {
            "the batch the fix failed on"
        };
        if !self.out.is_empty() {
            parts.push(format!(
                "{} out of target group {tg} ({batch})",
                join(&self.out)
            ));
        }
        if !self.unsure.is_empty() {
            parts.push(format!(
                "{} in {tg}, the fix perhaps run on them ({batch})",
                join(&self.unsure)
            ));
        }
        if !self.failing.is_empty() {
            parts.push(format!(
                "{} ran the fix and are back in {tg}, failing the check that stopped it",
                join(&self.failing)
            ));
        }
        let fixed = if self.fixed.is_empty() {
            "none".to_string()
        } else {
            join(&self.fixed)
        };
        parts.push(format!("fixed and back in service: {fixed}"));
        if !self.untouched.is_empty() {
            parts.push(format!("not fixed: {}", join(&self.untouched)));
        }
        parts.join("; ")
    }
}

/// What to do after a fix, whatever it left: the advice of a failed fix and of
/// `kiln rollback`, the same words in both.
pub(crate) fn advice(
    out: &[InstanceId],
    target_group: Option<&str>,
    version: i64,
    image: Option<&ImageId>,
) -> String {
    let mut text = String::new();
    if !out.is_empty() {
        let tg = target_group.unwrap_or("its target group");
        let image = image.map_or(String::new(), |i| format!(" ({i})"));
        let them = if out.len() == 1 { "it" } else { "them" };
        text.push_str(&format!(
            "repair {ids} by hand and register {them} in target group {tg} again, or \
             terminate {them} (aws autoscaling terminate-instance-in-auto-scaling-group \
             --no-should-decrement-desired-capacity) so that the group replaces {them} from \
             launch template version {version}{image}; ",
            ids = join(out)
        ));
    }
    text.push_str(
        "`kiln rollback` cannot undo a fix: to take it back where it ran, roll out a fix \
         that reverts it (`kiln rollout --strategy in-place`), or replace the instances by \
         rolling out an image",
    );
    text
}

/// The tag value of a fix of `run_id` that is now `state`, cut to what AWS takes.
pub(crate) fn tag(run_id: &str, state: &str) -> Tags {
    let value = fit(format!("{run_id} {state}"));
    Tags::from([(TAG_IN_PLACE.to_string(), value)])
}

/// `value` cut to [`TAG_VALUE_MAX`] bytes, on a character boundary.
pub(crate) fn fit(mut value: String) -> String {
    if value.len() > TAG_VALUE_MAX {
        let mut cut = TAG_VALUE_MAX;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
    }
    value
}

/// A stop in a few words (the tag has no room for command output).
pub(crate) fn short(reason: &StopReason) -> String {
    match reason {
        StopReason::Command { instance, .. } => format!("the fix failed on {instance}"),
        StopReason::Probe { instance, .. } => format!("the probe failed on {instance}"),
        StopReason::Unhealthy { instance, .. } => format!("{instance} stayed unhealthy"),
        StopReason::Alarm { name, .. } => format!("alarm {name} went off"),
        StopReason::Error { .. } => "an AWS error".into(),
        other => other.kind().replace('_', " "),
    }
}

/// The last fix recorded in a group's `tags` (its run id and how it stands), when a fix
/// is the last rollout kiln made on the group: no later rollout's run id is there.
pub(crate) fn last_fix(tags: &Tags) -> Option<(String, String)> {
    let value = tags.get(TAG_IN_PLACE)?;
    let (run, state) = value.split_once(' ').unwrap_or((value.as_str(), ""));
    let later = tags.get(TAG_RUN_ID).is_some_and(|other| {
        other != run && run_started(run).is_some() && run_started(other) > run_started(run)
    });
    (!later).then(|| (run.to_string(), state.to_string()))
}

/// Instances of `g` that its target group does not count in service (deregistered,
/// draining or unused), from the target group's health.
pub(crate) fn out_of_service(g: &Group, health: &[kiln_cloud::TargetHealth]) -> Vec<InstanceId> {
    g.instances
        .iter()
        .filter(|i| i.in_service())
        .filter(|i| {
            !health.iter().any(|h| {
                h.target_id == i.id.as_str()
                    && !matches!(h.state, TargetState::Draining | TargetState::Unused)
            })
        })
        .map(|i| i.id.clone())
        .collect()
}

fn join(ids: &[InstanceId]) -> String {
    ids.iter()
        .map(InstanceId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<InstanceId> {
        names.iter().map(|n| InstanceId::new(*n)).collect()
    }

    #[test]
    fn a_stop_says_where_each_batch_is() {
        let batches = vec![ids(&["i-a"]), ids(&["i-b", "i-c"]), ids(&["i-d"])];
        let failed = StopReason::Command {
            instance: "i-b".into(),
            detail: "exit 1".into(),
        };
        let left = Left::of(&batches, 1, &failed);
        assert_eq!(
            left.describe(Some("web-tg")),
            "i-b, i-c out of target group web-tg (the batch the fix failed on); fixed and \
             back in service: i-a; not fixed: i-d"
        );
        let cancelled = Left::of(&batches, 1, &StopReason::Cancelled);
        assert_eq!(cancelled.untouched, ids(&["i-b", "i-c", "i-d"]));
        assert!(cancelled.out.is_empty() && cancelled.failing.is_empty());
        let probe = StopReason::Probe {
            instance: "i-d".into(),
            detail: "503".into(),
        };
        let last = Left::of(&batches, 2, &probe);
        assert_eq!(last.failing, ids(&["i-d"]));
        assert_eq!(last.fixed, ids(&["i-a", "i-b", "i-c"]));

        let error = StopReason::Error {
            detail: "RegisterTargets: access denied".into(),
        };
        let mut hit = Left::of(&batches, 1, &error);
        assert_eq!(hit.unsure, ids(&["i-b", "i-c"]));
        hit.place(&ids(&["i-c", "i-d"]));
        assert_eq!(
            hit.describe(Some("web-tg")),
            "i-c out of target group web-tg (the batch the error hit); i-b in web-tg, \
             the fix perhaps run on them (the batch the error hit); fixed and back in \
             service: i-a; not fixed: i-d"
        );
    }

    #[test]
    fn a_later_rollout_makes_the_fix_not_the_last() {
        let fix = "ro-20260105T010000-aaaa Successful: 3 of 3 fixed";
        let mut tags = Tags::from([(TAG_IN_PLACE.to_string(), fix.to_string())]);
        let (run, state) = last_fix(&tags).expect("the fix is the last");
        assert_eq!(
            (run.as_str(), state.as_str()),
            ("ro-20260105T010000-aaaa", "Successful: 3 of 3 fixed")
        );
        tags.insert(TAG_RUN_ID.into(), "ro-20260105T000000-bbbb".into());
        assert!(last_fix(&tags).is_some(), "an earlier rollout's id");
        tags.insert(TAG_RUN_ID.into(), "ro-20260105T020000-cccc".into());
        assert!(last_fix(&tags).is_none(), "a later rollout's id");
    }
}
