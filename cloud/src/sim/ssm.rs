//! SSM in the simulation: the agent's registration, Run Command invocations and their
//! statuses, and Parameter Store.
//!
//! Scripts are checked with `bash -n`, never run: the simulation models the control
//! plane, not the inside of a machine.

use crate::error::{CloudResult, ErrorKind};
use crate::types::*;

use super::model::*;
use super::world::World;

/// An invocation does not exist for 1 to 3 s after SendCommand (PITFALLS 18).
const HIDDEN_SECS: (u64, u64) = (1, 3);
/// The agent picks a command up a moment after it becomes visible.
const PICKUP_SECS: (u64, u64) = (1, 2);
/// Every script takes at least this long: the agent writes and starts it.
const SCRIPT_BASE_SECS: u64 = 3;
/// Each line of a script adds this much (package installs, file writes).
const SECS_PER_LINE: u64 = 2;
/// Spread added from the script's hash so steps differ, yet repeat run to run.
const SCRIPT_SPREAD_SECS: u64 = 20;
/// The instance is away this long when a script asks for a reboot.
const REBOOT_SECS: (u64, u64) = (30, 90);
/// AWS-RunShellScript's convention: this exit code asks the agent for a reboot.
const REBOOT_EXIT: &str = "exit 194";
/// Exit code bash gives for a syntax error found by `bash -n`.
const SYNTAX_EXIT: i32 = 2;
/// ListCommandInvocations shows only the first 2,500 characters of output (PITFALLS 19).
const LISTING_OUTPUT_LIMIT: usize = 2_500;
/// Agent version the simulated instances report.
const AGENT_VERSION: &str = "3.3.1142.0";

pub fn describe_instance_information(
    w: &mut World,
    ids: &[InstanceId],
) -> CloudResult<Vec<AgentInfo>> {
    let now = w.now;
    let registered =
        w.r.instances
            .values()
            .filter(|i| !i.state().is_ending() && i.agent_at.is_some_and(|at| at <= now));
    let wanted = registered.filter(|i| ids.is_empty() || ids.contains(i.id()));
    let info = wanted.map(|i| AgentInfo {
        instance_id: i.id().clone(),
        ping_status: if i.agent_online(now) {
            PingStatus::Online
        } else {
            PingStatus::ConnectionLost
        },
        agent_version: Some(AGENT_VERSION.into()),
        last_ping: Some(now),
    });
    Ok(info.collect())
}

/// The result of checking a script before it is "run".
pub struct Checked {
    pub syntax_error: Option<String>,
}

/// `bash -n` on the script: done before the state is locked, as it runs a process.
pub fn check_syntax(commands: &[String]) -> Checked {
    let script = commands.join("\n");
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(&script)
        .output();
    let syntax_error = match out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).into_owned()),
        Err(e) => {
            tracing::warn!(error = %e, "bash is not available; script syntax not checked");
            None
        }
    };
    Checked { syntax_error }
}

pub fn send_command(w: &mut World, req: &SendCommand, checked: &Checked) -> CloudResult<CommandId> {
    const OP: &str = "SendCommand";
    if req.instance_ids.is_empty() || req.instance_ids.len() > crate::MAX_INSTANCES_PER_COMMAND {
        let msg = format!(
            "{} instance ids given; SendCommand takes 1 to {}",
            req.instance_ids.len(),
            crate::MAX_INSTANCES_PER_COMMAND
        );
        return Err(w.err(
            ErrorKind::Validation,
            OP,
            "InstanceIds",
            "ValidationException",
            msg,
        ));
    }
    let grace = w.faults.invalid_instance_after_online.map(dur);
    for id in &req.instance_ids {
        let inst = w.r.instances.get(id.as_str());
        let online = inst.is_some_and(|i| i.agent_online(w.now));
        let settled = inst
            .and_then(|i| i.agent_at)
            .is_some_and(|at| grace.is_none_or(|g| at + g <= w.now));
        if !online || !settled {
            let msg = format!("instance {id} is not registered with SSM or not online");
            let code = "InvalidInstanceId";
            return Err(w.err(ErrorKind::InvalidInstance, OP, id.as_str(), code, msg));
        }
    }
    let id = CommandId::new(w.meta.uuid());
    let mut invocations = std::collections::BTreeMap::new();
    for instance in &req.instance_ids {
        let inv = plan_invocation(w, req, checked, &id, instance);
        invocations.insert(instance.0.clone(), inv);
    }
    let n = req.instance_ids.len();
    let command = SimCommand {
        id: id.clone(),
        comment: req.comment.clone(),
        document: req.document.clone(),
        sent_at: w.now,
        invocations,
        max_concurrency: req
            .max_concurrency
            .as_deref()
            .map(|c| rate(c, n, true).max(1)),
        max_errors: req.max_errors.as_deref().map(|e| rate(e, n, false)),
    };
    w.r.commands.insert(id.0.clone(), command);
    Ok(id)
}

/// Decides, at send time, how the invocation on one instance will go.
fn plan_invocation(
    w: &mut World,
    req: &SendCommand,
    checked: &Checked,
    command: &CommandId,
    instance: &InstanceId,
) -> SimInvocation {
    let hidden = match w.faults.invocation_hidden_for {
        Some(d) => dur(d),
        None => w.meta.rng.secs(HIDDEN_SECS.0, HIDDEN_SECS.1),
    };
    let visible_at = w.now + hidden;
    let start_at = visible_at + w.meta.rng.secs(PICKUP_SECS.0, PICKUP_SECS.1);
    let mut outcome = outcome(w, req, checked);
    let mut end_at = start_at + outcome.duration;
    if outcome.duration > dur(req.execution_timeout) {
        end_at = start_at + dur(req.execution_timeout);
        outcome.status = InvocationStatus::TimedOut;
        outcome.details = "ExecutionTimedOut".into();
        outcome.code = -1;
    }
    let current = Invocation {
        command_id: command.clone(),
        instance_id: instance.clone(),
        status: InvocationStatus::Pending,
        status_details: "Pending".into(),
        response_code: -1,
        stdout: String::new(),
        stderr: String::new(),
        execution_start: None,
        execution_end: None,
    };
    SimInvocation {
        current,
        visible_at,
        start_at,
        end_at,
        final_status: outcome.status,
        final_details: outcome.details,
        final_code: outcome.code,
        final_stdout: cut(outcome.stdout),
        final_stderr: cut(outcome.stderr),
        reboot: outcome.reboot,
    }
}

struct Outcome {
    status: InvocationStatus,
    details: String,
    code: i32,
    stdout: String,
    stderr: String,
    duration: chrono::Duration,
    reboot: Option<(i64, i64)>,
}

fn outcome(w: &mut World, req: &SendCommand, checked: &Checked) -> Outcome {
    let step = step_name(&req.comment);
    let script = req.commands.join("\n");
    let duration = script_duration(&script);
    let reboot = req.commands.iter().any(|l| l.trim() == REBOOT_EXIT);
    let mut o = Outcome {
        status: InvocationStatus::Success,
        details: "Success".into(),
        code: 0,
        stdout: format!(
            "kiln-sim: {step}: {} lines checked, not executed\n",
            req.commands.len()
        ),
        stderr: String::new(),
        duration,
        reboot: None,
    };
    if let Some(err) = &checked.syntax_error {
        return failed(o, SYNTAX_EXIT, String::new(), err.clone());
    }
    if let Some(fault) = w.faults.take_step_fault(&req.comment) {
        let stdout = format!("{}{}", o.stdout, lines(&fault.stdout));
        if fault.exit_code == 0 {
            // Exit code 0: the step succeeds, printing what the fault says.
            o.stdout = stdout;
            o.stderr = lines(&fault.stderr);
            return o;
        }
        return failed(o, fault.exit_code, stdout, lines(&fault.stderr));
    }
    if w.faults.step_hangs(&req.comment) {
        o.duration = chrono::Duration::days(1);
    }
    if let Some(chars) = w.faults.output_chars(&req.comment) {
        o.stdout = filler(&step, chars);
    }
    if reboot {
        // The agent reboots the instance, then runs the script again from the start.
        let away = w.meta.rng.between(REBOOT_SECS.0, REBOOT_SECS.1) as i64;
        let first = duration.num_seconds();
        o.reboot = Some((first, away));
        o.duration = o.duration.max(secs((2 * first + away) as u64));
        o.stdout
            .push_str("kiln-sim: rebooted at the script's request (exit 194)\n");
    }
    o
}

fn failed(mut o: Outcome, code: i32, stdout: String, stderr: String) -> Outcome {
    o.status = InvocationStatus::Failed;
    o.details = "Failed".into();
    o.code = code;
    if !stdout.is_empty() {
        o.stdout = stdout;
    }
    o.stderr = stderr;
    o
}

fn lines(l: &[String]) -> String {
    l.iter().map(|s| format!("{s}\n")).collect()
}

/// Output of a given length, the way a chatty installer fills a log.
fn filler(step: &str, chars: usize) -> String {
    let line = format!("kiln-sim: {step}: progress line\n");
    line.repeat(chars / line.len() + 1)
        .chars()
        .take(chars)
        .collect()
}

/// SSM keeps only the first 24,000 characters inline (PITFALLS 19).
fn cut(s: String) -> String {
    if s.chars().count() <= crate::SSM_OUTPUT_LIMIT {
        return s;
    }
    s.chars().take(crate::SSM_OUTPUT_LIMIT).collect()
}

/// `recipe/step` from a comment holding `kiln:recipe/step`, or `script`.
fn step_name(comment: &str) -> String {
    let Some(at) = comment.find("kiln:") else {
        return "script".into();
    };
    let rest = &comment[at + "kiln:".len()..];
    rest.split_whitespace()
        .next()
        .unwrap_or("script")
        .to_string()
}

/// How long the script "runs": from its length, its `sleep`s and a stable hash.
fn script_duration(script: &str) -> chrono::Duration {
    let lines = script.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    let sleeps: u64 = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("sleep "))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum();
    let hash = script.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    secs(SCRIPT_BASE_SECS + SECS_PER_LINE * lines + sleeps + hash % SCRIPT_SPREAD_SECS)
}

/// A rate control value (`"10"` or `"25%"`) as a number of instances of `n`.
fn rate(value: &str, n: usize, round_up: bool) -> usize {
    match value.strip_suffix('%') {
        Some(pct) => {
            let pct: usize = pct.trim().parse().unwrap_or(100);
            let up = if round_up { 99 } else { 0 };
            (n * pct + up) / 100
        }
        None => value.trim().parse().unwrap_or(n),
    }
}

fn command<'w>(w: &'w World, op: &'static str, id: &CommandId) -> CloudResult<&'w SimCommand> {
    w.r.commands
        .get(id.as_str())
        .ok_or_else(|| w.not_found(op, id.as_str(), "InvalidCommandId"))
}

pub fn get_invocation(
    w: &mut World,
    id: &CommandId,
    instance: &InstanceId,
) -> CloudResult<Invocation> {
    const OP: &str = "GetCommandInvocation";
    let cmd = command(w, OP, id)?;
    match cmd.invocations.get(instance.as_str()) {
        Some(inv) if inv.visible_at <= w.now => Ok(inv.current.clone()),
        _ => {
            let resource = format!("{id} on {instance}");
            Err(w.not_found(OP, resource, "InvocationDoesNotExist"))
        }
    }
}

pub fn list_invocations(w: &mut World, id: &CommandId) -> CloudResult<Vec<Invocation>> {
    let cmd = command(w, "ListCommandInvocations", id)?;
    let visible = cmd.invocations.values().filter(|i| i.visible_at <= w.now);
    let listed = visible.map(|i| {
        let mut inv = i.current.clone();
        inv.stdout = inv.stdout.chars().take(LISTING_OUTPUT_LIMIT).collect();
        inv.stderr = inv.stderr.chars().take(LISTING_OUTPUT_LIMIT).collect();
        inv
    });
    Ok(listed.collect())
}

pub fn cancel(w: &mut World, id: &CommandId, instances: &[InstanceId]) -> CloudResult<()> {
    command(w, "CancelCommand", id)?;
    let now = w.now;
    let cmd = w.r.commands.get_mut(id.as_str()).expect("checked above");
    for (instance, inv) in cmd.invocations.iter_mut() {
        let wanted = instances.is_empty() || instances.iter().any(|i| &i.0 == instance);
        if wanted && !inv.current.status.is_terminal() {
            end(
                &mut inv.current,
                InvocationStatus::Cancelled,
                "Cancelled",
                now,
            );
            inv.reboot = None;
        }
    }
    Ok(())
}

/// Agent registrations, reboots and invocation statuses due at `w.now`.
pub fn step(w: &mut World) -> bool {
    let now = w.now;
    let mut reboots = Vec::new();
    let mut changed = false;
    for cmd in w.r.commands.values_mut() {
        let count = |s: &[InvocationStatus]| {
            cmd.invocations
                .values()
                .filter(|i| s.contains(&i.current.status))
                .count()
        };
        let running = count(&[InvocationStatus::InProgress]);
        let errors = count(&[InvocationStatus::Failed, InvocationStatus::TimedOut]);
        let stop = cmd.max_errors.is_some_and(|m| errors > m);
        let mut slots = cmd
            .max_concurrency
            .map_or(usize::MAX, |c| c.saturating_sub(running));
        for (instance, inv) in cmd.invocations.iter_mut() {
            if inv.current.status.is_terminal() {
                continue;
            }
            if stop && inv.current.status == InvocationStatus::Pending {
                // MaxErrors reached: the invocations not started are never sent.
                end(
                    &mut inv.current,
                    InvocationStatus::Cancelled,
                    "Terminated",
                    now,
                );
                changed = true;
                continue;
            }
            let alive =
                w.r.instances
                    .get(instance)
                    .is_some_and(|i| !i.state().is_ending());
            changed |= step_invocation(inv, now, alive, &mut slots, &mut reboots);
        }
    }
    for (instance, until) in reboots {
        if let Some(inst) = w.r.instances.get_mut(&instance) {
            inst.agent_offline_until = Some(until);
        }
    }
    changed
}

fn end(cur: &mut Invocation, status: InvocationStatus, details: &str, now: Timestamp) {
    cur.status = status;
    cur.status_details = details.into();
    cur.execution_end = Some(now);
}

fn step_invocation(
    inv: &mut SimInvocation,
    now: Timestamp,
    alive: bool,
    slots: &mut usize,
    reboots: &mut Vec<(String, Timestamp)>,
) -> bool {
    let cur = &mut inv.current;
    if !alive {
        let pending = cur.status == InvocationStatus::Pending;
        let details = if pending { "Undeliverable" } else { "Failed" };
        end(cur, InvocationStatus::Failed, details, now);
        return true;
    }
    if cur.status == InvocationStatus::Pending {
        if now < inv.start_at || *slots == 0 {
            return false;
        }
        // Started late when MaxConcurrency held it back: the run keeps its length.
        *slots -= 1;
        inv.end_at += now - inv.start_at;
        inv.start_at = now;
        cur.status = InvocationStatus::InProgress;
        cur.status_details = "InProgress".into();
        cur.execution_start = Some(now);
        return true;
    }
    if let Some((after, away)) = inv.reboot {
        if now >= inv.start_at + chrono::Duration::seconds(after) {
            inv.reboot = None;
            let back = inv.start_at + chrono::Duration::seconds(after + away);
            reboots.push((cur.instance_id.0.clone(), back));
        }
    }
    if now < inv.end_at {
        return false;
    }
    cur.response_code = inv.final_code;
    cur.stdout = inv.final_stdout.clone();
    cur.stderr = inv.final_stderr.clone();
    end(cur, inv.final_status, &inv.final_details.clone(), now);
    true
}

// ---------------------------------------------------------------------------------------
// Parameter Store

/// What GetParameter returns for a SecureString read without decryption.
fn encrypted(value: &str) -> String {
    use base64::Engine as _;
    let sealed = format!("kiln-sim-kms:{}", value.len());
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

fn shown(p: &Parameter, decrypt: bool) -> Parameter {
    let mut p = p.clone();
    if p.kind == ParameterType::SecureString && !decrypt {
        p.value = encrypted(&p.value);
    }
    p
}

pub fn get_parameter(w: &mut World, name: &str, decrypt: bool) -> CloudResult<Option<Parameter>> {
    let latest = w.r.parameters.get(name).and_then(|h| h.last());
    Ok(latest.map(|p| shown(p, decrypt)))
}

pub fn get_by_path(w: &mut World, path: &str, decrypt: bool) -> CloudResult<Vec<Parameter>> {
    let prefix = format!("{}/", path.trim_end_matches('/'));
    let under =
        w.r.parameters
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix));
    Ok(under
        .filter_map(|(_, h)| h.last())
        .map(|p| shown(p, decrypt))
        .collect())
}

pub fn history(w: &mut World, name: &str, decrypt: bool) -> CloudResult<Vec<Parameter>> {
    let Some(h) = w.r.parameters.get(name) else {
        return Err(w.not_found("GetParameterHistory", name, "ParameterNotFound"));
    };
    Ok(h.iter().map(|p| shown(p, decrypt)).collect())
}

pub fn put_parameter(w: &mut World, req: &PutParameter) -> CloudResult<i64> {
    const OP: &str = "PutParameter";
    if req.name.starts_with("/aws/") || req.name.starts_with("aws") {
        let msg = "names beginning with aws are reserved";
        return Err(w.err(
            ErrorKind::AccessDenied,
            OP,
            &req.name,
            "AccessDeniedException",
            msg,
        ));
    }
    if req.data_type.as_deref() == Some("aws:ec2:image") && !req.value.starts_with("ami-") {
        let msg = format!("{} is not an AMI id (data type aws:ec2:image)", req.value);
        let code = "InvalidParameterValue";
        return Err(w.err(ErrorKind::Validation, OP, &req.name, code, msg));
    }
    let now = w.now;
    if w.r.parameters.contains_key(&req.name) && !req.overwrite {
        let msg = "the parameter already exists; set overwrite to replace it";
        let e = ErrorKind::Conflict;
        return Err(w.err(e, OP, &req.name, "ParameterAlreadyExists", msg));
    }
    let history = w.r.parameters.entry(req.name.clone()).or_default();
    let version = history.last().map_or(1, |p| p.version + 1);
    history.push(Parameter {
        name: req.name.clone(),
        value: req.value.clone(),
        kind: req.kind,
        version,
        last_modified: Some(now),
        description: req.description.clone(),
    });
    Ok(version)
}

pub fn delete_parameter(w: &mut World, name: &str) -> CloudResult<()> {
    if w.r.parameters.remove(name).is_none() {
        return Err(w.not_found("DeleteParameter", name, "ParameterNotFound"));
    }
    Ok(())
}
