//! Steps over SSM Run Command: one invocation per step, its result read until it ends.
//!
//! A send refused as `InvalidInstance` right after boot or a reboot is tried again until
//! the agent deadline (PITFALLS 16). An invocation that does not exist yet is "not yet"
//! for a bounded time (PITFALLS 18). kiln waits a little longer than the command's own
//! execution timeout and cancels any command it stops waiting for (PITFALLS 20). A command
//! that was never delivered is reported as unknown, not as a failing script (PITFALLS 21).

use std::time::Duration;

use kiln_cloud::{
    CommandId, ErrorKind, InstanceId, Invocation, InvocationStatus, Level, SendCommand,
};
use tokio::time::Instant;

use super::Run;
use crate::error::BakeError;
use crate::plan::{PlannedStep, StepPhase};
use crate::wait::{
    retry_throttled, sleep_unless_cancelled, wait_until, Poll, AGENT_POLL, INVOCATION_POLL,
};

/// The document every step runs through.
const DOCUMENT: &str = "AWS-RunShellScript";

/// How long SSM may try to deliver a step (`TimeoutSeconds`). The agent was Online a
/// moment before, so delivery takes seconds; two minutes covers a reconnecting agent.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2 * 60);

/// What kiln waits beyond delivery and execution: the agent reports the result some
/// seconds after the script ends.
const REPORT_GRACE: Duration = Duration::from_secs(60);

/// How long GetCommandInvocation may answer "not found" after SendCommand before that
/// means the command is lost: it usually exists within seconds (PITFALLS 18).
const NOT_FOUND_WINDOW: Duration = Duration::from_secs(60);

/// SSM refuses comments longer than this.
const MAX_COMMENT: usize = 100;

/// How many lines of output a failing step's error shows: enough for a compiler's or a
/// package manager's message, short enough to read in a CI log.
const LAST_LINES: usize = 20;

/// After a reboot step the agent may still read Online until it misses a ping, so kiln
/// lets the machine go down before it waits for the agent again. A step that reboots
/// through the agent (`exit 194`) only ends once the agent is back, so this is all it
/// costs there.
const REBOOT_SETTLE: Duration = Duration::from_secs(30);

impl Run<'_> {
    /// Runs the plan's steps of `phases` on `instance`, in order; the first failure stops.
    pub(super) async fn run_steps(
        &self,
        instance: &InstanceId,
        phases: &[StepPhase],
    ) -> Result<(), BakeError> {
        let total = self.plan.steps.len() as u64;
        for (position, step) in self.plan.steps_of(phases) {
            self.check_cancelled()?;
            let position = Some((position as u64, total));
            let label = step.label();
            let message = format!("{} step started on {instance}", step.phase);
            self.emit_at(Level::Info, self.phase_name(), &label, message, position);

            if let Err(error) = self.run_step(instance, step).await {
                let message = format!("{} step stopped the bake", step.phase);
                self.emit_at(Level::Error, self.phase_name(), &label, message, position);
                return Err(error);
            }

            let message = format!("{} step succeeded", step.phase);
            self.emit_at(Level::Info, self.phase_name(), &label, message, position);
            if step.reboot {
                self.after_reboot(instance).await?;
            }
        }
        Ok(())
    }

    async fn run_step(&self, instance: &InstanceId, step: &PlannedStep) -> Result<(), BakeError> {
        let command = self.send(instance, step).await?;
        let sent = Instant::now();
        let invocation = self
            .await_invocation(&command, instance, step, sent)
            .await?;
        self.judge(instance, step, &invocation)
    }

    /// Sends the step, retrying while SSM does not accept the instance yet.
    async fn send(
        &self,
        instance: &InstanceId,
        step: &PlannedStep,
    ) -> Result<CommandId, BakeError> {
        let request = SendCommand {
            instance_ids: vec![instance.clone()],
            document: DOCUMENT.to_string(),
            commands: step.script.lines().map(str::to_string).collect(),
            execution_timeout: step.timeout,
            delivery_timeout: DELIVERY_TIMEOUT,
            comment: comment(&step.label(), &self.plan.run_id),
            max_concurrency: None,
            max_errors: Some("0".to_string()),
            output_s3: None,
        };
        let budget = self.plan.timeouts.agent_online;
        let result = wait_until(budget, AGENT_POLL, self.cancel, || async {
            match self.cloud.commands.send_command(&request).await {
                Ok(id) => Ok(Poll::Ready(id)),
                Err(e) if e.is(ErrorKind::InvalidInstance) || e.is_transient() => {
                    tracing::debug!(%instance, error = %e, "send refused, trying again");
                    Ok(Poll::Pending)
                }
                Err(e) => Err(BakeError::cloud(
                    format!("sending step {} to {instance}", step.label()),
                    e,
                )),
            }
        })
        .await;
        self.finish_wait(result, |run| {
            run.agent_not_online(instance, run.role_of(instance), budget)
        })
    }

    /// Reads the invocation until it ends; cancels the command if kiln stops waiting.
    async fn await_invocation(
        &self,
        command: &CommandId,
        instance: &InstanceId,
        step: &PlannedStep,
        sent: Instant,
    ) -> Result<Invocation, BakeError> {
        let budget = DELIVERY_TIMEOUT + step.timeout + REPORT_GRACE;
        let result = wait_until(budget, INVOCATION_POLL, self.cancel, || async {
            match self
                .cloud
                .commands
                .get_command_invocation(command, instance)
                .await
            {
                Ok(inv) if inv.status.is_terminal() => Ok(Poll::Ready(inv)),
                Ok(_) => Ok(Poll::Pending),
                Err(e) if e.is(ErrorKind::NotFound) && sent.elapsed() < NOT_FOUND_WINDOW => {
                    Ok(Poll::Pending)
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(%command, error = %e, "invocation read failed, next poll");
                    Ok(Poll::Pending)
                }
                Err(e) => Err(BakeError::cloud(
                    format!("reading step {} (command {command})", step.label()),
                    e,
                )),
            }
        })
        .await;
        match result {
            Ok(invocation) => Ok(invocation),
            Err(crate::wait::WaitError::Failed(error)) => {
                self.cancel_command(command, instance).await;
                Err(error)
            }
            Err(crate::wait::WaitError::TimedOut) => {
                self.cancel_command(command, instance).await;
                Err(self.step_timed_out(instance, step, format!("kiln waited {budget:?}")))
            }
            Err(crate::wait::WaitError::Cancelled) => {
                self.cancel_command(command, instance).await;
                Err(self.cancelled())
            }
        }
    }

    /// Best effort: the bake already failed or stopped; a warning says what still runs.
    async fn cancel_command(&self, command: &CommandId, instance: &InstanceId) {
        let ids = [instance.clone()];
        if let Err(e) = retry_throttled(|| self.cloud.commands.cancel_command(command, &ids)).await
        {
            let message = format!("could not cancel command {command}: {e}");
            self.emit(Level::Warn, self.phase_name(), instance.as_str(), message);
        }
    }

    /// A finished invocation's verdict.
    fn judge(
        &self,
        instance: &InstanceId,
        step: &PlannedStep,
        invocation: &Invocation,
    ) -> Result<(), BakeError> {
        if invocation.status == InvocationStatus::Success {
            let output = format!("{}\n{}", invocation.stdout, invocation.stderr);
            if self.plan.secrets.redact(&output) != output {
                // A secret in captured output sits in SSM's command history, and the step
                // that printed it may have written it into the image: refuse the image.
                // (A failed step fails anyway, with its lines redacted.)
                return Err(BakeError::SecretInOutput {
                    recipe: step.recipe.clone(),
                    step: step.name.clone(),
                    instance: instance.clone(),
                    region: self.cloud.region.clone(),
                });
            }
            if invocation.output_truncated() {
                // The step passed, but its log is incomplete (PITFALLS 19): say so.
                let message = "step succeeded; SSM cut its output at 24,000 characters, \
                               so the log above is incomplete"
                    .to_string();
                self.emit(Level::Warn, self.phase_name(), &step.label(), message);
            }
            return Ok(());
        }
        // The status comes before the output: a command that never ran says nothing
        // about the script (PITFALLS 21).
        if invocation.is_undelivered() {
            return Err(BakeError::StepUndelivered {
                recipe: step.recipe.clone(),
                step: step.name.clone(),
                instance: instance.clone(),
                region: self.cloud.region.clone(),
                details: invocation.status_details.clone(),
            });
        }
        if invocation.status == InvocationStatus::TimedOut {
            let detail = format!("SSM: {}", invocation.status_details);
            return Err(self.step_timed_out(instance, step, detail));
        }
        Err(BakeError::StepFailed {
            recipe: step.recipe.clone(),
            step: step.name.clone(),
            exit_code: invocation.response_code,
            last_lines: self.plan.secrets.redact(&last_lines(invocation)),
            truncated: invocation.output_truncated(),
            instance: instance.clone(),
            region: self.cloud.region.clone(),
        })
    }

    fn step_timed_out(
        &self,
        instance: &InstanceId,
        step: &PlannedStep,
        detail: String,
    ) -> BakeError {
        BakeError::StepTimedOut {
            recipe: step.recipe.clone(),
            step: step.name.clone(),
            instance: instance.clone(),
            region: self.cloud.region.clone(),
            timeout: step.timeout,
            detail,
        }
    }

    /// After a reboot step: let the machine go down, then wait for the agent again.
    async fn after_reboot(&self, instance: &InstanceId) -> Result<(), BakeError> {
        let message = "rebooting: waiting for the SSM agent to come back".to_string();
        self.emit(Level::Info, self.phase_name(), instance.as_str(), message);
        if !sleep_unless_cancelled(REBOOT_SETTLE, self.cancel).await {
            return Err(self.cancelled());
        }
        self.wait_agent_online(instance, self.role_of(instance))
            .await
    }
}

/// The command's comment: `kiln:<recipe>/<step> <run id>`, cut to SSM's limit with the
/// step's label kept whole where possible (the simulated account's faults match on it).
pub(crate) fn comment(label: &str, run_id: &str) -> String {
    let full = format!("kiln:{label} {run_id}");
    full.chars().take(MAX_COMMENT).collect()
}

/// The last lines of stdout, then of stderr when it has any.
pub(crate) fn last_lines(invocation: &Invocation) -> String {
    let mut out = tail(&invocation.stdout, LAST_LINES);
    let stderr = tail(&invocation.stderr, LAST_LINES);
    if !stderr.trim().is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("--- stderr ---\n");
        out.push_str(&stderr);
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_cloud::CommandId;

    fn invocation(stdout: &str, stderr: &str) -> Invocation {
        Invocation {
            command_id: CommandId::new("c-1"),
            instance_id: InstanceId::new("i-1"),
            status: InvocationStatus::Failed,
            status_details: "Failed".into(),
            response_code: 3,
            stdout: stdout.into(),
            stderr: stderr.into(),
            execution_start: None,
            execution_end: None,
        }
    }

    #[test]
    fn comment_keeps_the_label_and_fits_ssm() {
        let c = comment("proxysql/install", "bake-20261203T093000Z-0a1b2c3d");
        assert_eq!(c, "kiln:proxysql/install bake-20261203T093000Z-0a1b2c3d");
        let long = comment(&"x".repeat(150), "bake-1");
        assert_eq!(long.chars().count(), MAX_COMMENT);
        assert!(long.starts_with("kiln:xxx"));
    }

    #[test]
    fn last_lines_shows_the_end_of_both_streams() {
        let stdout: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let text = last_lines(&invocation(&stdout, "error: boom\n"));
        assert!(!text.contains("line 10\n"));
        assert!(text.starts_with("line 11\n"), "{text}");
        assert!(
            text.contains("line 30\n--- stderr ---\nerror: boom"),
            "{text}"
        );
    }

    #[test]
    fn last_lines_without_stderr_has_no_marker() {
        assert_eq!(last_lines(&invocation("a\nb\n", "  \n")), "a\nb");
    }
}
