//! Gates: what must hold for a rollout to go on. Target health of the new instances
//! (bounded, PITFALLS 8), CloudWatch alarm states, and an HTTP probe of the health path
//! run on each new instance through Run Command. A failing gate names itself and the
//! value it saw, and the caller rolls back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kiln_cloud::{
    AlarmState, Cloud, CommandId, ErrorKind, InstanceId, Invocation, InvocationStatus, PingStatus,
    SendCommand, TargetGroup, TargetState, Timestamp, MAX_INSTANCES_PER_COMMAND,
};

use crate::error::{human, RolloutError, StopReason};
use crate::spec::Gates;

/// The probe's own limit on one request: an instance that takes longer is not healthy.
pub const PROBE_CURL_TIMEOUT_SECS: u64 = 5;
/// SSM's execution timeout for the probe: curl's limit plus the shell's start, rounded.
pub const PROBE_EXECUTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The comment of probe commands; `kiln:<area>/<step>` lets a simulated account's fault
/// plan target them, and tells an operator in the SSM console what sent them.
pub const PROBE_COMMENT: &str = "kiln:rollout/probe";
/// The comment of in-place fix commands.
pub const FIX_COMMENT: &str = "kiln:rollout/fix";
/// Pause between reads of a probe's invocations: Run Command reports within seconds.
pub const PROBE_POLL: Duration = Duration::from_secs(2);

/// The probe's shell line for a health path (`/health`).
pub fn probe_command(path: &str) -> String {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    format!("curl -fsS -m {PROBE_CURL_TIMEOUT_SECS} http://127.0.0.1{path}")
}

/// What the gates remember between two polls.
#[derive(Debug, Default)]
pub(crate) struct GateState {
    /// When each new instance was first seen not healthy (cleared once healthy).
    first_bad: BTreeMap<InstanceId, Timestamp>,
    /// Instances whose probe passed.
    probed: BTreeSet<InstanceId>,
}

/// The instances a gate looks at: the new ones, and whether they are in service.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub id: InstanceId,
    pub in_service: bool,
}

pub(crate) struct GateContext<'a> {
    pub cloud: &'a Cloud,
    pub gates: &'a Gates,
    pub target_group: Option<&'a TargetGroup>,
    /// The bound of the early unhealthy gate (the plan's, derived from the warm-up).
    pub unhealthy_after: Duration,
    pub command_timeout: Duration,
    pub comment: String,
}

impl GateState {
    /// Evaluates every gate once; `Ok` carries how many of `new` passed every gate
    /// (healthy, and probed when there is a probe), `Err` names the first gate that failed.
    pub async fn evaluate(
        &mut self,
        ctx: &GateContext<'_>,
        new: &[Candidate],
    ) -> Result<Result<usize, StopReason>, RolloutError> {
        if let Err(stop) = alarms(ctx).await? {
            return Ok(Err(stop));
        }
        let healthy = match self.target_health(ctx, new).await? {
            Ok(h) => h,
            Err(stop) => return Ok(Err(stop)),
        };
        let Some(path) = &ctx.gates.http_probe else {
            return Ok(Ok(healthy.len()));
        };
        let due: Vec<InstanceId> = healthy
            .iter()
            .filter(|id| !self.probed.contains(*id))
            .cloned()
            .collect();
        if !due.is_empty() {
            match probe(ctx, path, &due).await? {
                ProbeResult::Passed(ids) => self.probed.extend(ids),
                ProbeResult::Failed(stop) => return Ok(Err(stop)),
            }
        }
        Ok(Ok(healthy
            .iter()
            .filter(|id| self.probed.contains(*id))
            .count()))
    }

    /// The new instances that are healthy now; `Err` when one stayed not healthy past
    /// the bound.
    async fn target_health(
        &mut self,
        ctx: &GateContext<'_>,
        new: &[Candidate],
    ) -> Result<Result<Vec<InstanceId>, StopReason>, RolloutError> {
        let now = ctx.cloud.clock.now();
        let tg = match (ctx.target_group, ctx.gates.target_health) {
            (Some(tg), true) => tg,
            _ => {
                return Ok(Ok(new
                    .iter()
                    .filter(|c| c.in_service)
                    .map(|c| c.id.clone())
                    .collect()))
            }
        };
        let health = ctx
            .cloud
            .load_balancing
            .describe_target_health(&tg.arn)
            .await?;
        let mut healthy = Vec::new();
        for c in new {
            let th = health.iter().find(|h| h.target_id == c.id.as_str());
            if th.is_some_and(|h| h.state == TargetState::Healthy) {
                self.first_bad.remove(&c.id);
                healthy.push(c.id.clone());
                continue;
            }
            let since = *self.first_bad.entry(c.id.clone()).or_insert(now);
            let for_secs = (now - since).num_seconds().max(0) as u64;
            if for_secs > ctx.unhealthy_after.as_secs() {
                return Ok(Err(StopReason::Unhealthy {
                    instance: c.id.to_string(),
                    state: th.map_or("not registered".into(), |h| format!("{:?}", h.state)),
                    detail: th
                        .and_then(|h| h.reason.clone().or(h.description.clone()))
                        .unwrap_or_else(|| format!("in target group {}", tg.name)),
                    for_secs,
                }));
            }
        }
        Ok(Ok(healthy))
    }
}

/// The first watched alarm in ALARM, if any.
async fn alarms(ctx: &GateContext<'_>) -> Result<Result<(), StopReason>, RolloutError> {
    if ctx.gates.alarms.is_empty() {
        return Ok(Ok(()));
    }
    let alarms = ctx.cloud.metrics.describe_alarms(&ctx.gates.alarms).await?;
    if let Some(missing) = ctx
        .gates
        .alarms
        .iter()
        .find(|n| !alarms.iter().any(|a| &a.name == *n))
    {
        tracing::warn!(alarm = %missing, "gate alarm not found; it cannot stop the rollout");
    }
    Ok(
        match alarms.into_iter().find(|a| a.state == AlarmState::Alarm) {
            Some(a) => Err(StopReason::Alarm {
                name: a.name,
                reason: a.reason.unwrap_or_else(|| "no reason given".into()),
            }),
            None => Ok(()),
        },
    )
}

pub(crate) enum ProbeResult {
    Passed(Vec<InstanceId>),
    Failed(StopReason),
}

/// Runs the probe on the instances whose SSM agent is online; the others are probed at
/// a later poll (PITFALLS 16).
async fn probe(
    ctx: &GateContext<'_>,
    path: &str,
    ids: &[InstanceId],
) -> Result<ProbeResult, RolloutError> {
    let online: Vec<InstanceId> = ctx
        .cloud
        .commands
        .describe_instance_information(ids)
        .await?
        .into_iter()
        .filter(|a| a.ping_status == PingStatus::Online)
        .map(|a| a.instance_id)
        .collect();
    if online.is_empty() {
        return Ok(ProbeResult::Passed(Vec::new()));
    }
    let lines = vec![probe_command(path)];
    let outcome = match run_command(ctx, &online, &lines, PROBE_EXECUTION_TIMEOUT).await {
        Ok(o) => o,
        // The agent went away between the two calls: probe at a later poll.
        Err(RolloutError::Cloud(e)) if e.is(ErrorKind::InvalidInstance) => {
            return Ok(ProbeResult::Passed(Vec::new()));
        }
        Err(e) => return Err(e),
    };
    match outcome {
        CommandOutcome::AllSucceeded => Ok(ProbeResult::Passed(online)),
        CommandOutcome::Failed { instance, detail } => {
            Ok(ProbeResult::Failed(StopReason::Probe { instance, detail }))
        }
    }
}

/// The end of one Run Command over a set of instances.
pub(crate) enum CommandOutcome {
    AllSucceeded,
    /// The first instance that did not succeed, with its status and last output.
    Failed {
        instance: String,
        detail: String,
    },
}

/// Sends `lines` to `ids` (in calls of at most 50) and waits for every invocation, up
/// to the command deadline; a command kiln stops waiting for is cancelled (PITFALLS 20).
pub(crate) async fn run_command(
    ctx: &GateContext<'_>,
    ids: &[InstanceId],
    lines: &[String],
    execution_timeout: Duration,
) -> Result<CommandOutcome, RolloutError> {
    for chunk in ids.chunks(MAX_INSTANCES_PER_COMMAND) {
        let request = SendCommand {
            instance_ids: chunk.to_vec(),
            document: "AWS-RunShellScript".into(),
            commands: lines.to_vec(),
            execution_timeout,
            delivery_timeout: ctx.command_timeout,
            comment: ctx.comment.clone(),
            max_concurrency: None,
            max_errors: Some("0".into()),
            output_s3: None,
        };
        let command = ctx.cloud.commands.send_command(&request).await?;
        if let CommandOutcome::Failed { instance, detail } =
            wait_invocations(ctx, &command, chunk).await?
        {
            return Ok(CommandOutcome::Failed { instance, detail });
        }
    }
    Ok(CommandOutcome::AllSucceeded)
}

async fn wait_invocations(
    ctx: &GateContext<'_>,
    command: &CommandId,
    ids: &[InstanceId],
) -> Result<CommandOutcome, RolloutError> {
    let start = ctx.cloud.clock.now();
    let mut pending: Vec<InstanceId> = ids.to_vec();
    while !pending.is_empty() {
        let waited = (ctx.cloud.clock.now() - start).to_std().unwrap_or_default();
        if waited > ctx.command_timeout {
            let _ = ctx.cloud.commands.cancel_command(command, &pending).await;
            return Ok(CommandOutcome::Failed {
                instance: pending[0].to_string(),
                detail: format!(
                    "no result after {} (command {command} cancelled)",
                    human(waited)
                ),
            });
        }
        tokio::time::sleep(PROBE_POLL).await;
        let mut still = Vec::new();
        for id in pending {
            match ctx
                .cloud
                .commands
                .get_command_invocation(command, &id)
                .await
            {
                Ok(inv) if inv.status.is_terminal() => {
                    if inv.status != InvocationStatus::Success {
                        return Ok(CommandOutcome::Failed {
                            instance: id.to_string(),
                            detail: describe_failure(&inv),
                        });
                    }
                }
                Ok(_) => still.push(id),
                // Not visible for a moment after SendCommand (PITFALLS 18).
                Err(e) if e.is(ErrorKind::NotFound) || e.is_transient() => still.push(id),
                Err(e) => return Err(e.into()),
            }
        }
        pending = still;
    }
    Ok(CommandOutcome::AllSucceeded)
}

/// The status first, then the exit code and the last line of output (PITFALLS 21).
fn describe_failure(inv: &Invocation) -> String {
    if inv.is_undelivered() {
        return format!(
            "unknown: the command was not delivered ({}); the SSM agent may be offline",
            inv.status_details
        );
    }
    let last = |s: &str| s.lines().last().unwrap_or("").trim().to_string();
    let out = if inv.stderr.trim().is_empty() {
        last(&inv.stdout)
    } else {
        last(&inv.stderr)
    };
    format!(
        "{:?} ({}), exit code {}: {out}",
        inv.status, inv.status_details, inv.response_code
    )
}
