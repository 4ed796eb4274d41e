//! In place (emergency fix): a script sent by Run Command to the running instances in
//! batches. Each batch is taken out of the target group, drained, fixed, checked and put
//! back; the first failure stops the run, saying where each instance is and what to do
//! ([`crate::fixed`]: a fix has no rollback). The fix is recorded on the group as drift,
//! so the next bake includes it (an instance refresh would otherwise undo it silently),
//! and how it stands in tag `kiln:in-place`, for `kiln rollback`.

use std::time::Duration;

use kiln_cloud::{Cloud, Group, InstanceId, TargetGroup, TargetState};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{human, tolerate, Refusal, RolloutError, StopReason};
use crate::events::Emitter;
use crate::fixed::{self, Left};
use crate::gates::{
    run_command, Candidate, CommandOutcome, GateContext, GateState, FIX_COMMENT, PROBE_COMMENT,
};
use crate::outcome::{status, RolloutOutcome};
use crate::patient::or_cancel;
use crate::plan::RolloutPlan;
use crate::refresh::chrono_of;
use crate::run::{outcome, Timings};
use crate::spec::InPlaceSettings;

/// Group tag: the last in-place fix, for the next bake (`<time> <run>: <description>`).
pub const TAG_DRIFT: &str = "kiln:drift";
/// Slack over the deregistration delay before draining is called stuck: ELB reports the
/// end of draining at its next health check round.
const DRAIN_SLACK: Duration = Duration::from_secs(30);

/// The batches the fix goes through, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InPlacePlan {
    pub batches: Vec<Vec<InstanceId>>,
    pub script: Vec<String>,
    pub description: String,
}

/// Splits the in-service instances into batches, refusing what cannot run.
pub(crate) fn plan_part(
    group: &Group,
    settings: &InPlaceSettings,
    refusals: &mut Vec<Refusal>,
) -> Option<InPlacePlan> {
    let max = kiln_cloud::MAX_INSTANCES_PER_COMMAND;
    if settings.batch_size == 0 || settings.batch_size > max {
        refusals.push(Refusal {
            check: "batch_size".into(),
            reason: format!("batch_size {} is outside 1..={max}", settings.batch_size),
            fix: format!("Run Command takes at most {max} instances per call; set 1..={max}"),
        });
        return None;
    }
    if settings.script.iter().all(|l| l.trim().is_empty()) {
        refusals.push(Refusal {
            check: "script".into(),
            reason: "the in-place fix has no script".into(),
            fix: "set in_place.script to the shell lines of the fix".into(),
        });
        return None;
    }
    let batch = crate::preflight::check_in_place_batch(group, settings.batch_size);
    if !batch.is_empty() {
        refusals.extend(batch);
        return None;
    }
    let ids: Vec<InstanceId> = group
        .instances
        .iter()
        .filter(|i| i.in_service())
        .map(|i| i.id.clone())
        .collect();
    Some(InPlacePlan {
        batches: ids.chunks(settings.batch_size).map(<[_]>::to_vec).collect(),
        script: settings.script.clone(),
        description: settings.description.clone(),
    })
}

struct Run<'a> {
    cloud: &'a Cloud,
    plan: &'a RolloutPlan,
    emit: &'a Emitter<'a>,
    cancel: &'a CancellationToken,
}

/// Fixes batch after batch; the first failure stops with the instance and the reason.
pub(crate) async fn run(
    cloud: &Cloud,
    plan: &RolloutPlan,
    ip: &InPlacePlan,
    emit: &Emitter<'_>,
    cancel: &CancellationToken,
) -> Result<RolloutOutcome, RolloutError> {
    let r = Run {
        cloud,
        plan,
        emit,
        cancel,
    };
    let mut timings = Timings::new(&*cloud.clock);
    let total = ip.batches.len() as u64;
    let instances: usize = ip.batches.iter().map(Vec::len).sum();
    // Written before the first instance changes, so that a killed fix is known too.
    r.tag_state(format!("Running: 0 of {instances} fixed"))
        .await?;
    let mut fixed = 0;
    for (n, batch) in ip.batches.iter().enumerate() {
        if cancel.is_cancelled() {
            return r.stopped(ip, n, StopReason::Cancelled, timings).await;
        }
        // An error inside a batch stops the fix like a failed check: the batch may be
        // out of the target group, and the operator is told where each instance is.
        let stop = match r.batch(n + 1, batch, &ip.script).await {
            Ok(Ok(())) => None,
            Ok(Err(stop)) => Some(stop),
            Err(e) => Some(StopReason::Error {
                detail: e.to_string(),
            }),
        };
        if let Some(stop) = stop {
            return r.stopped(ip, n, stop, timings).await;
        }
        fixed += batch.len() as i32;
        emit.step(
            "in_place",
            &plan.spec.group,
            format!("batch {} fixed", n + 1),
            n as u64 + 1,
            total,
        );
    }
    timings.lap("in_place");
    if let Err(e) = r.record_drift(ip).await {
        let done = format!("the fix ran on all {fixed} instance(s) in service");
        return Err(e.after_done(&plan.spec.group, &cloud.region, done));
    }
    let version = plan.template.source_version;
    let mut out = outcome(plan, version, status::SUCCESSFUL, fixed, timings.list);
    // A fix changes no image: the instances stay on their version's.
    out.image = plan.template.source_image.clone();
    Ok(out)
}

impl Run<'_> {
    fn target_group(&self) -> Option<&TargetGroup> {
        self.plan.target_group.as_ref()
    }

    /// The group's instances in service that its target group does not count in service.
    async fn out_of_target_group(&self) -> Result<Vec<InstanceId>, RolloutError> {
        let Some(tg) = self.target_group() else {
            return Ok(Vec::new());
        };
        let g = crate::lock::describe(self.cloud, &self.plan.spec.group).await?;
        let health = self
            .cloud
            .load_balancing
            .describe_target_health(&tg.arn)
            .await?;
        Ok(fixed::out_of_service(&g, &health))
    }

    fn ctx(&self, comment: &str) -> GateContext<'_> {
        GateContext {
            cloud: self.cloud,
            gates: &self.plan.spec.gates,
            target_group: self.target_group(),
            unhealthy_after: self.plan.unhealthy_after,
            command_timeout: self.plan.spec.timeouts.command,
            comment: format!("{comment} {}", self.plan.run_id),
        }
    }

    /// Out of the target group, drained, fixed, probed, back in and healthy.
    async fn batch(
        &self,
        number: usize,
        ids: &[InstanceId],
        script: &[String],
    ) -> Result<Result<(), StopReason>, RolloutError> {
        let group = &self.plan.spec.group;
        if let Some(tg) = self.target_group() {
            self.cloud
                .load_balancing
                .deregister_targets(&tg.arn, ids)
                .await?;
            self.drain(tg, ids).await?;
        }
        // The batch in the comment tells an operator in the SSM console which batch a
        // command fixed, and lets a fault plan fail one batch (`rollout/fix-batch-2`).
        let ctx = self.ctx(&format!("{FIX_COMMENT} {FIX_COMMENT}-batch-{number}"));
        let execution = self.plan.spec.timeouts.command;
        if let CommandOutcome::Failed { instance, detail } =
            run_command(&ctx, ids, script, execution).await?
        {
            self.emit.error(
                "in_place",
                &instance,
                format!("fix failed; {instance} stays out of the target group: {detail}"),
            );
            return Ok(Err(StopReason::Command { instance, detail }));
        }
        self.emit
            .info("in_place", group, format!("fix ran on {}", join(ids)));
        if let Some(tg) = self.target_group() {
            self.cloud
                .load_balancing
                .register_targets(&tg.arn, ids)
                .await?;
        }
        self.until_healthy(ids).await
    }

    /// Waits until ELB has finished draining the batch (deregistration delay).
    async fn drain(&self, tg: &TargetGroup, ids: &[InstanceId]) -> Result<(), RolloutError> {
        let until = self.cloud.clock.now() + chrono_of(tg.deregistration_delay + DRAIN_SLACK);
        loop {
            let read = self
                .cloud
                .load_balancing
                .describe_target_health(&tg.arn)
                .await;
            // A throttled read counts as "still draining" until the deadline.
            let health = tolerate(read.map_err(Into::into), self.emit, "in_place", &tg.name)?;
            let draining = health.is_none_or(|health| {
                health.iter().any(|h| {
                    h.state == TargetState::Draining
                        && ids.iter().any(|i| i.as_str() == h.target_id)
                })
            });
            if !draining {
                return Ok(());
            }
            if self.cloud.clock.now() >= until {
                self.emit.warn(
                    "in_place",
                    &tg.name,
                    format!(
                        "still draining after {}; fixing anyway",
                        human(tg.deregistration_delay)
                    ),
                );
                return Ok(());
            }
            tokio::time::sleep(self.plan.spec.timeouts.poll).await;
        }
    }

    /// Every instance of the batch passes the gates (health, probe), or the first fails.
    async fn until_healthy(
        &self,
        ids: &[InstanceId],
    ) -> Result<Result<(), StopReason>, RolloutError> {
        let ctx = self.ctx(PROBE_COMMENT);
        let mut gates = GateState::default();
        let candidates: Vec<Candidate> = ids
            .iter()
            .map(|id| Candidate {
                id: id.clone(),
                in_service: true,
            })
            .collect();
        let subject = self.plan.spec.group.as_str();
        let deadline = self.cloud.clock.now() + chrono_of(self.plan.spec.timeouts.rollout);
        loop {
            if self.cloud.clock.now() >= deadline {
                let waited = human(self.plan.spec.timeouts.rollout);
                return Ok(Err(StopReason::Timeout { waited }));
            }
            let evaluated = match or_cancel(self.cancel, gates.evaluate(&ctx, &candidates)).await {
                Ok(evaluated) => evaluated,
                Err(cancelled) => return Ok(Err(cancelled)),
            };
            match tolerate(evaluated, self.emit, "in_place", subject)? {
                Some(Ok(n)) if n >= candidates.len() => return Ok(Ok(())),
                Some(Err(stop)) => return Ok(Err(stop)),
                Some(Ok(_)) | None => {}
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Ok(Err(StopReason::Cancelled)),
                _ = tokio::time::sleep(self.plan.spec.timeouts.poll) => {}
            }
        }
    }

    /// How the fix stands, in tag `kiln:in-place`.
    async fn tag_state(&self, state: String) -> Result<(), RolloutError> {
        let tags = fixed::tag(&self.plan.run_id, &state);
        self.cloud
            .scaling
            .put_group_tags(&self.plan.spec.group, &tags)
            .await?;
        Ok(())
    }

    async fn record_drift(&self, ip: &InPlacePlan) -> Result<(), RolloutError> {
        let value = fixed::fit(format!(
            "{} {}: {}",
            self.cloud.clock.now().format("%Y-%m-%dT%H:%MZ"),
            self.plan.run_id,
            ip.description
        ));
        let n: usize = ip.batches.iter().map(Vec::len).sum();
        let mut tags = fixed::tag(&self.plan.run_id, &format!("Successful: {n} of {n} fixed"));
        tags.insert(TAG_DRIFT.to_string(), value);
        self.cloud
            .scaling
            .put_group_tags(&self.plan.spec.group, &tags)
            .await?;
        self.emit.info(
            "in_place",
            &self.plan.spec.group,
            format!("drift recorded in tag {TAG_DRIFT}: bake it into the next image"),
        );
        Ok(())
    }

    /// Stops at batch `at` (0-based): where each instance is, and what to do, in the
    /// error and (in short) in the group's tag.
    async fn stopped(
        &self,
        ip: &InPlacePlan,
        at: usize,
        reason: StopReason,
        mut timings: Timings<'_>,
    ) -> Result<RolloutOutcome, RolloutError> {
        timings.lap("in_place");
        let (plan, group) = (self.plan, &self.plan.spec.group);
        let mut left = Left::of(&ip.batches, at, &reason);
        if !left.unsure.is_empty() {
            match self.out_of_target_group().await {
                Ok(out) => left.place(&out),
                Err(e) => {
                    let text = format!("could not read where the batch is: {e}");
                    self.emit.warn("in_place", group, text);
                }
            }
        }
        let label = match reason {
            StopReason::Cancelled => status::CANCELLED,
            _ => status::FAILED,
        };
        let state = format!(
            "{label} at batch {} of {}: {}; {} of {} fixed",
            at + 1,
            ip.batches.len(),
            fixed::short(&reason),
            left.fixed.len(),
            ip.batches.iter().map(Vec::len).sum::<usize>()
        );
        if let Err(e) = self.tag_state(state).await {
            let text = format!(
                "could not record the fix's state in {}: {e}",
                fixed::TAG_IN_PLACE
            );
            self.emit.warn("in_place", group, text);
        }
        let tg = self.target_group().map(|t| t.name.as_str());
        let (version, image) = (plan.template.source_version, &plan.template.source_image);
        let next = fixed::advice(&left.out, tg, version, image.as_ref());
        let fixed_count = left.fixed.len() as i32;
        let mut out = outcome(plan, version, label, fixed_count, timings.list);
        out.image = image.clone();
        Err(RolloutError::Stopped {
            group: group.clone(),
            region: self.cloud.region.clone(),
            reason: Box::new(reason),
            rolled_back: false,
            outcome: Box::new(out),
            left: Some(format!(
                "an in-place fix has no rollback. Now: {}. Next: {next}",
                left.describe(tg)
            )),
        })
    }
}

fn join(ids: &[InstanceId]) -> String {
    ids.iter()
        .map(InstanceId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
