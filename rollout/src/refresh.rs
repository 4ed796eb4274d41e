//! Rolling and canary: one instance refresh whose desired configuration carries the new
//! numbered version (the group itself is not touched, PITFALLS 2), watched to a terminal
//! status with the gates evaluated at every poll; a failing gate, the deadline or a
//! cancellation rolls it back.

use std::time::Duration;

use kiln_cloud::{
    Cloud, ErrorKind, GroupTemplate, InstanceRefresh, LaunchTemplateId, RefreshStatus,
    StartRefresh, Timestamp,
};
use tokio_util::sync::CancellationToken;

use crate::error::{human, tolerate, RolloutError, StopReason};
use crate::events::Emitter;
use crate::gates::{Candidate, GateContext, GateState};
use crate::patient::or_cancel;
use crate::plan::{RefreshPlan, RolloutPlan};

/// Where a watched refresh ended.
pub(crate) enum Watched {
    Succeeded,
    Stopped(StopReason, Option<Box<InstanceRefresh>>),
}

/// The fixed inputs of one watched refresh.
pub(crate) struct RefreshRun<'a> {
    pub cloud: &'a Cloud,
    pub plan: &'a RolloutPlan,
    pub emit: &'a Emitter<'a>,
    pub cancel: &'a CancellationToken,
    pub template_id: LaunchTemplateId,
    pub version: i64,
}

impl RefreshRun<'_> {
    fn group(&self) -> &str {
        &self.plan.spec.group
    }

    /// Starts the refresh towards `self.version` with the plan's preferences.
    pub async fn start(&self, refresh: &RefreshPlan) -> Result<String, RolloutError> {
        let request = StartRefresh {
            group: self.group().to_string(),
            desired: Some(GroupTemplate {
                template_id: Some(self.template_id.clone()),
                template_name: None,
                version: self.version.to_string(),
            }),
            preferences: refresh.preferences.clone(),
        };
        let id = match self.cloud.scaling.start_instance_refresh(&request).await {
            Ok(id) => id,
            Err(e) if e.is(ErrorKind::Conflict) => {
                return Err(RolloutError::Preflight {
                    group: self.group().to_string(),
                    region: self.cloud.region.clone(),
                    refusals: vec![crate::error::Refusal {
                        check: "refresh_running".into(),
                        reason: format!(
                            "a refresh started on {} since the plan: {e}",
                            self.group()
                        ),
                        fix: "find out who started it; wait for it or roll it back".into(),
                    }],
                })
            }
            Err(e) => return Err(e.into()),
        };
        let p = &refresh.preferences;
        self.emit.info(
            "refresh",
            self.group(),
            format!(
                "instance refresh {id} started to version {}: min {}% max {}% ({}), warm-up \
                 {} s, checkpoints {:?}",
                self.version,
                p.min_healthy_percentage,
                p.max_healthy_percentage,
                refresh.order.describe(),
                p.instance_warmup.as_secs(),
                p.checkpoint_percentages
            ),
        );
        Ok(id)
    }

    /// Polls the refresh to a terminal status, the deadline, a failing gate or a cancel.
    pub async fn watch(&self, id: &str, deadline: Timestamp) -> Result<Watched, RolloutError> {
        let spec = &self.plan.spec;
        let ctx = GateContext {
            cloud: self.cloud,
            gates: &spec.gates,
            target_group: self.plan.target_group.as_ref(),
            unhealthy_after: self.plan.unhealthy_after,
            command_timeout: spec.timeouts.command,
            comment: format!("{} {}", crate::gates::PROBE_COMMENT, self.plan.run_id),
        };
        let mut gates = GateState::default();
        let mut last: Option<Box<InstanceRefresh>> = None;
        loop {
            let cancelled = tokio::select! {
                _ = self.cancel.cancelled() => true,
                _ = tokio::time::sleep(spec.timeouts.poll) => false,
            };
            if cancelled {
                return Ok(Watched::Stopped(StopReason::Cancelled, last));
            }
            if self.cloud.clock.now() >= deadline {
                let waited = human(spec.timeouts.rollout);
                return Ok(Watched::Stopped(StopReason::Timeout { waited }, last));
            }
            let Ok(read) = or_cancel(self.cancel, self.read(id)).await else {
                return Ok(Watched::Stopped(StopReason::Cancelled, last));
            };
            let Some(r) = read? else {
                continue;
            };
            self.report(&r, last.as_deref());
            last = Some(Box::new(r.clone()));
            if r.status == RefreshStatus::Successful {
                return Ok(Watched::Succeeded);
            }
            if r.status.is_terminal() {
                let reason = StopReason::RefreshEnded {
                    status: format!("{:?}", r.status),
                    reason: r.status_reason.clone().unwrap_or_default(),
                };
                return Ok(Watched::Stopped(reason, last));
            }
            if let Some(Err(stop)) = self.gates_once(&ctx, &mut gates).await? {
                return Ok(Watched::Stopped(stop, last));
            }
        }
    }

    /// One evaluation of the gates on the new instances; `None` when throttled, a stop
    /// when cancelled meanwhile.
    async fn gates_once(
        &self,
        ctx: &GateContext<'_>,
        gates: &mut GateState,
    ) -> Result<Option<Result<usize, StopReason>>, RolloutError> {
        let poll = async {
            let new = tolerate(self.new_instances().await, self.emit, "gate", self.group())?;
            let Some(new) = new else {
                return Ok(None);
            };
            tolerate(
                gates.evaluate(ctx, &new).await,
                self.emit,
                "gate",
                self.group(),
            )
        };
        match or_cancel(self.cancel, poll).await {
            Ok(gated) => gated,
            Err(cancelled) => Ok(Some(Err(cancelled))),
        }
    }

    /// Our refresh as AWS describes it now; `None` when a poll was throttled.
    async fn read(&self, id: &str) -> Result<Option<InstanceRefresh>, RolloutError> {
        match self
            .cloud
            .scaling
            .describe_instance_refreshes(self.group())
            .await
        {
            Ok(list) => Ok(list.into_iter().find(|r| r.id == id)),
            Err(e) if e.is_transient() => {
                self.emit.warn(
                    "refresh",
                    self.group(),
                    format!("poll failed, retrying: {e}"),
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn report(&self, r: &InstanceRefresh, last: Option<&InstanceRefresh>) {
        let changed = last.is_none_or(|l| {
            l.status != r.status
                || l.percentage_complete != r.percentage_complete
                || l.instances_to_update != r.instances_to_update
        });
        if changed {
            self.emit.step(
                "refresh",
                self.group(),
                format!(
                    "{:?}: {}% done, {} instance{} to update{}",
                    r.status,
                    r.percentage_complete,
                    r.instances_to_update,
                    if r.instances_to_update == 1 { "" } else { "s" },
                    r.status_reason
                        .as_ref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ),
                r.percentage_complete.max(0) as u64,
                100,
            );
        }
    }

    /// The group's instances launched from the new version.
    async fn new_instances(&self) -> Result<Vec<Candidate>, RolloutError> {
        let group = crate::lock::describe(self.cloud, self.group()).await?;
        let version = self.version.to_string();
        Ok(group
            .instances
            .iter()
            .filter(|i| {
                i.launch_template
                    .as_ref()
                    .is_some_and(|t| t.version == version)
            })
            .filter(|i| !i.lifecycle_state.starts_with("Terminat"))
            .map(|i| Candidate {
                id: i.id.clone(),
                in_service: i.in_service(),
            })
            .collect())
    }

    /// Undoes a refresh that was stopped: AWS's rollback when it is still running (and
    /// not on its way back already), else a new refresh back to the previous version for
    /// instances already replaced. Returns the final status.
    pub async fn roll_back(
        &self,
        id: &str,
        refresh: &RefreshPlan,
        last: Option<&InstanceRefresh>,
    ) -> Result<RefreshStatus, RolloutError> {
        let deadline = self.cloud.clock.now() + chrono_of(self.plan.spec.timeouts.rollback);
        let running = last.is_none_or(|r| !r.status.is_terminal());
        if running {
            let ended = self.stop_running(id, deadline).await?;
            // AWS's undo ran: its result stands. Cancelled or ended otherwise: what the
            // refresh replaced is refreshed back.
            if is_rolled_back(ended) {
                return Ok(ended);
            }
        } else if last.is_some_and(|r| r.status == RefreshStatus::RollbackSuccessful) {
            return Ok(RefreshStatus::RollbackSuccessful);
        }
        self.refresh_back(refresh, deadline).await
    }

    /// Ends a refresh that may still run: AWS's rollback, or, when AWS refuses it, a
    /// cancel; one already rolling back or cancelling (AWS's automatic rollback, an
    /// operator) is left to end, never cancelled half-way. Returns its final status.
    async fn stop_running(
        &self,
        id: &str,
        deadline: Timestamp,
    ) -> Result<RefreshStatus, RolloutError> {
        let group = self.group().to_string();
        let ending = |r: &Option<InstanceRefresh>| {
            r.as_ref()
                .is_some_and(|r| crate::preflight::is_undoing(r.status) || r.status.is_terminal())
        };
        if ending(&self.read(id).await?) {
            return self.wait_terminal(id, deadline).await;
        }
        self.emit.warn(
            "rollback",
            &group,
            format!("rolling back instance refresh {id}"),
        );
        let Err(e) = self.cloud.scaling.rollback_instance_refresh(&group).await else {
            return self.wait_terminal(id, deadline).await;
        };
        // Refused because it began its own undo or ended meanwhile: wait for that.
        if ending(&self.read(id).await?) {
            return self.wait_terminal(id, deadline).await;
        }
        self.emit.warn(
            "rollback",
            &group,
            format!("AWS rollback refused ({e}); cancelling, then refreshing back"),
        );
        if let Err(e) = self.cloud.scaling.cancel_instance_refresh(&group).await {
            if !e.is(ErrorKind::NotFound) && !e.is(ErrorKind::Validation) {
                return Err(e.into());
            }
        }
        self.wait_terminal(id, deadline).await
    }

    /// A refresh to the previous version, for instances already on the new one.
    async fn refresh_back(
        &self,
        refresh: &RefreshPlan,
        deadline: Timestamp,
    ) -> Result<RefreshStatus, RolloutError> {
        if self.new_instances().await?.is_empty() {
            return Ok(RefreshStatus::RollbackSuccessful);
        }
        let back = RefreshRun {
            version: self.plan.template.source_version,
            template_id: self.template_id.clone(),
            ..*self
        };
        let mut prefs = refresh.clone();
        prefs.preferences.auto_rollback = false;
        prefs.preferences.checkpoint_percentages.clear();
        prefs.preferences.checkpoint_delay = None;
        prefs.preferences.alarm_names.clear();
        let id = back.start(&prefs).await?;
        match back.wait_terminal(&id, deadline).await? {
            RefreshStatus::Successful => Ok(RefreshStatus::RollbackSuccessful),
            other => Ok(other),
        }
    }

    /// Polls without gates (a rollback must not be stopped by the alarm that caused it).
    pub async fn wait_terminal(
        &self,
        id: &str,
        deadline: Timestamp,
    ) -> Result<RefreshStatus, RolloutError> {
        let mut last = None;
        loop {
            if let Some(r) = self.read(id).await? {
                self.report(&r, last.as_ref());
                if r.status.is_terminal() {
                    return Ok(r.status);
                }
                last = Some(r);
            }
            if self.cloud.clock.now() >= deadline {
                return Err(RolloutError::RollbackFailed {
                    group: self.group().to_string(),
                    region: self.cloud.region.clone(),
                    detail: format!(
                        "instance refresh {id} not finished by the rollback deadline ({})",
                        human(self.plan.spec.timeouts.rollback)
                    ),
                    next: "look at the refresh in the console; `kiln status` shows the \
                           instances' versions"
                        .into(),
                });
            }
            tokio::time::sleep(self.plan.spec.timeouts.poll).await;
        }
    }
}

/// A refresh whose end came from AWS's rollback, successful or not.
pub(crate) fn is_rolled_back(status: RefreshStatus) -> bool {
    matches!(
        status,
        RefreshStatus::RollbackSuccessful | RefreshStatus::RollbackFailed
    )
}

pub(crate) fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
