//! `kiln status FILE [--target NAME]`: what each target runs and did, read from the
//! account without changing it: its groups (blue and green alike), which one is live,
//! each instance's launch template version, image and target health, the running and
//! recent instance refreshes, and who holds the lock.

use std::fmt::Write as _;

use kiln_cloud::throttle::retry_throttled;
use std::path::Path;

use kiln_cloud::{Cloud, InstanceRefresh};
use kiln_rollout::{GroupStatus, TAG_TARGET};
use serde::Serialize;

use crate::cli::{GlobalArgs, TargetArgs};
use crate::cmd::rollout::exit_for;
use crate::exit::{self, Exit};
use crate::output::print_result;
use crate::pipeline::{Pipeline, TargetSection};

#[derive(Debug, Serialize)]
struct TargetStatus {
    target: String,
    groups: Vec<GroupStatus>,
}

#[derive(Debug, Serialize)]
struct StatusResult {
    targets: Vec<TargetStatus>,
}

pub async fn run(global: &GlobalArgs, args: &TargetArgs) -> anyhow::Result<()> {
    let pipeline = Pipeline::load(&args.file).map_err(|e| Exit::new(exit::BAD_INPUT, e))?;
    let targets = super::selected(&pipeline, args.target.as_deref())?;
    let cloud = super::cloud(global, &pipeline).await?;
    let mut result = StatusResult {
        targets: Vec::new(),
    };
    for target in targets {
        result
            .targets
            .push(target_status(&cloud, target, &pipeline.path).await?);
    }
    print_result(global.output, &result, |r| text(&r.targets, &pipeline.path))
}

/// The pipeline's group and every group kiln made for the target (green groups).
async fn target_status(
    cloud: &Cloud,
    target: &TargetSection,
    file: &Path,
) -> anyhow::Result<TargetStatus> {
    let all = retry_throttled(|| cloud.scaling.describe_groups(&[])).await?;
    let mut names: Vec<String> = all
        .iter()
        .filter(|g| g.name == target.group || g.tags.get(TAG_TARGET) == Some(&target.name))
        .map(|g| g.name.clone())
        .collect();
    names.sort();
    let mut groups = Vec::new();
    for name in names {
        let status = kiln_rollout::status(cloud, &name).await;
        groups.push(status.map_err(|e| exit_for(e, file))?);
    }
    Ok(TargetStatus {
        target: target.name.clone(),
        groups,
    })
}

fn text(targets: &[TargetStatus], file: &Path) -> String {
    let mut out = String::new();
    for t in targets {
        let _ = writeln!(out, "{}:", t.target);
        if t.groups.is_empty() {
            let _ = writeln!(out, "  no group found");
        }
        for g in &t.groups {
            let next = g.running.as_ref().map(|r| next_step(r, &t.target, file));
            group_text(&mut out, g, next.as_deref());
        }
    }
    out
}

/// The group, its lock, its last refresh (and `next`, what to do about it while it runs)
/// and its instances.
fn group_text(out: &mut String, g: &GroupStatus, next: Option<&str>) {
    let live = match g.live {
        Some(true) => " live",
        Some(false) => " not live",
        None => "",
    };
    let version = g
        .template
        .as_ref()
        .map_or("-".to_string(), |t| t.version.clone());
    // What `kiln rollback` would do; a running refresh has its own line below.
    let previous = match (g.previous_version, &g.last_fix) {
        _ if g.running.is_some() => String::new(),
        (_, Some(fix)) => format!(", last rollout an in-place fix ({fix}): no rollback"),
        (Some(v), None) if v.to_string() != version => format!(", rollback goes to version {v}"),
        (Some(_), None) => ", nothing to roll back".to_string(),
        (None, None) => String::new(),
    };
    let _ = writeln!(
        out,
        "  group {} ({}){live}: desired {} (min {}, max {}), version {version}{previous}",
        g.group, g.region, g.desired, g.min_size, g.max_size
    );
    let lock = match &g.lock {
        Some(h) if g.lock_expired => format!("{h} (expired)"),
        Some(h) => h.to_string(),
        None => "free".into(),
    };
    let _ = writeln!(out, "    lock: {lock}");
    let running = g.running.iter().chain(g.recent.iter().take(1));
    for r in running.take(1) {
        let _ = writeln!(
            out,
            "    refresh {}: {:?} {}%{}",
            r.id,
            r.status,
            r.percentage_complete,
            r.status_reason
                .as_ref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        );
    }
    if let Some(next) = next {
        let _ = writeln!(out, "      {next}");
    }
    instances_text(out, g);
}

/// What to do about a refresh that is not over: a refresh rolling back or cancelling goes
/// on in AWS without any kiln process (one killed while undoing it leaves it so).
fn next_step(r: &InstanceRefresh, target: &str, file: &Path) -> String {
    let rollback = format!("`kiln rollback {} --target {target}`", file.display());
    if kiln_rollout::preflight::is_undoing(r.status) {
        format!(
            "being undone by AWS: {rollback} waits for it to end and finishes the undo; a \
             rollout is refused until it ends"
        )
    } else {
        format!("running: a rollout is refused until it ends; {rollback} stops it")
    }
}

fn instances_text(out: &mut String, g: &GroupStatus) {
    for i in &g.instances {
        let _ = writeln!(
            out,
            "    {} {} {} {} version {} image {} target {}",
            i.id,
            i.availability_zone,
            i.lifecycle_state,
            i.health_status,
            i.version.as_deref().unwrap_or("-"),
            i.image.as_ref().map_or("-", |i| i.as_str()),
            i.target_health
                .map_or("-".to_string(), |h| format!("{h:?}"))
        );
    }
}
