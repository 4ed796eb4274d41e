//! `kiln rollout FILE --image ID`: roll an image out to the pipeline's targets.

use std::path::Path;

use kiln_builder::recipe::Seg;
use kiln_cloud::throttle::retry_throttled;
use kiln_cloud::{Cloud, ImageId, TemplateRef};
use kiln_rollout::{
    outcome_status as status, RolloutError, RolloutOutcome, StopReason, PIPELINE_FILE,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, RolloutArgs};
use crate::exit::{self, Exit};
use crate::journal;
use crate::output::{print_result, say, Reporter};
use crate::pipeline::{Pipeline, StrategyName};

/// One target's rollout (or rollback) as printed: the version its instances are on now
/// and that version's image; `on_new_image` of them run it (in place: were fixed).
#[derive(Debug, Clone, Serialize)]
pub struct RolloutResult {
    pub target: String,
    pub group: String,
    pub strategy: String,
    pub launch_template_version: i64,
    pub status: String,
    pub desired: i32,
    pub on_new_image: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Why nothing changed, when nothing did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl From<&RolloutOutcome> for RolloutResult {
    fn from(o: &RolloutOutcome) -> Self {
        Self {
            target: o.target.clone(),
            group: o.group.clone(),
            strategy: o.strategy.clone(),
            launch_template_version: o.launch_template_version,
            status: o.status.clone(),
            desired: o.desired,
            on_new_image: o.on_new_image,
            image: o.image.as_ref().map(ToString::to_string),
            note: o.note.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct RolloutsResult {
    image: String,
    rollouts: Vec<RolloutResult>,
}

pub async fn run(
    global: &GlobalArgs,
    args: &RolloutArgs,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let pipeline = Pipeline::load(&args.file).map_err(|e| Exit::new(exit::BAD_INPUT, e))?;
    if let Some(name) = &args.target {
        pipeline
            .target(name)
            .map_err(|e| Exit::new(exit::BAD_INPUT, e))?;
    }
    let cloud = super::cloud(global, &pipeline).await?;
    let image = image_of(&cloud, &pipeline, args).await?;
    check_image(&cloud, &image).await?;
    check_targets(
        &cloud,
        &pipeline,
        args.target.as_deref(),
        args.strategy,
        &image,
    )
    .await?;
    let reporter = Reporter::new(global, global.sim.is_some());
    let outcome = roll_out_all(global, &cloud, &pipeline, &image, args, &reporter, cancel).await;
    reporter.finish();
    let result = RolloutsResult {
        image: image.to_string(),
        rollouts: outcome?,
    };
    print_result(global.output, &result, |r| rollouts_text(&r.rollouts))
}

/// `--image`, or the image `--channel` of the pipeline's image points at in the groups'
/// region (refused when it failed its test or is gone).
async fn image_of(
    cloud: &Cloud,
    pipeline: &Pipeline,
    args: &RolloutArgs,
) -> anyhow::Result<ImageId> {
    if let Some(image) = &args.image {
        return Ok(ImageId::new(image));
    }
    let channel = args.channel.as_deref().unwrap_or_default();
    let name = &pipeline.file.image.name;
    kiln_builder::catalogue::resolve_channel(cloud, name, channel)
        .await
        .map_err(super::promote::exit_for)
}

async fn roll_out_all(
    global: &GlobalArgs,
    cloud: &Cloud,
    pipeline: &Pipeline,
    image: &ImageId,
    args: &RolloutArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> anyhow::Result<Vec<RolloutResult>> {
    let mut results = Vec::new();
    for target in &pipeline.file.targets {
        if args
            .target
            .as_ref()
            .is_some_and(|name| *name != target.name)
        {
            continue;
        }
        let outcome = roll_out(
            global,
            cloud,
            pipeline,
            target,
            args.strategy,
            image,
            reporter,
            cancel,
        );
        results.push(RolloutResult::from(&outcome.await?));
    }
    Ok(results)
}

/// Refuses an image id that is not one, or that the region does not hold as available,
/// before any launch template version is written.
async fn check_image(cloud: &Cloud, image: &ImageId) -> anyhow::Result<()> {
    let id = image.as_str();
    let shaped = id.strip_prefix("ami-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    if !shaped {
        let error = anyhow::anyhow!(
            "`{id}` is not an AMI id; give one such as ami-0123456789abcdef0 (see `kiln images`)"
        );
        return Err(Exit::new(exit::BAD_INPUT, error).into());
    }
    let filter = kiln_cloud::ImageFilter {
        ids: vec![image.clone()],
        ..Default::default()
    };
    let found = match retry_throttled(|| cloud.compute.describe_images(&filter)).await {
        Ok(images) => images,
        Err(e) if e.is(kiln_cloud::ErrorKind::NotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    match found.first() {
        Some(found) if found.state == kiln_cloud::ImageState::Available => Ok(()),
        Some(found) => {
            let error = anyhow::anyhow!(
                "image {id} in {} is {:?}, not available; roll out an available image",
                cloud.region,
                found.state
            );
            Err(Exit::new(exit::BAD_INPUT, error).into())
        }
        None => {
            let error = anyhow::anyhow!(
                "image {id} does not exist in {}; check the id and the region (`kiln images`)",
                cloud.region
            );
            Err(Exit::new(exit::BAD_INPUT, error).into())
        }
    }
}

/// Plans every selected target without changing anything, so that a misspelt group,
/// template, target group or alarm is refused before a bake or a rollout starts.
pub async fn check_targets(
    cloud: &Cloud,
    pipeline: &Pipeline,
    only: Option<&str>,
    strategy: Option<StrategyName>,
    image: &ImageId,
) -> anyhow::Result<()> {
    for target in &pipeline.file.targets {
        if only.is_some_and(|name| name != target.name) {
            continue;
        }
        let spec = super::rollout_spec(pipeline, target, strategy)?;
        let refused = |e: anyhow::Error| {
            let context = format!("target `{}` (group {})", target.name, target.group);
            Exit::new(exit::BAD_INPUT, e.context(context))
        };
        // Only blue/green and A/B read the load balancer, but a misspelt one is a
        // mistake whatever the strategy: checked before the plan.
        if let Some(missing) = missing_load_balancer(cloud, pipeline, target).await? {
            return Err(Exit::new(exit::BAD_INPUT, missing).into());
        }
        let planned = kiln_rollout::plan(cloud, &spec, image).await;
        if planned.is_err() {
            // A name the region does not have is refused at its line in the file. The
            // group and target group are looked for only then: after a blue/green switch
            // the target is served by another group, and the one named may be gone.
            if let Some(missing) = missing_resource(cloud, pipeline, target).await? {
                return Err(Exit::new(exit::BAD_INPUT, missing).into());
            }
        }
        match planned {
            Ok(_) => {}
            Err(RolloutError::Cloud(e)) if e.is(kiln_cloud::ErrorKind::NotFound) => {
                return Err(refused(e.into()).into());
            }
            Err(e) => return Err(exit_for(e, &pipeline.path)),
        }
        check_alarms(cloud, pipeline, target, &spec.gates.alarms)
            .await
            .map_err(refused)?;
    }
    Ok(())
}

/// The load balancer a target names, as an error at its line when the region lacks it.
async fn missing_load_balancer(
    cloud: &Cloud,
    pipeline: &Pipeline,
    target: &crate::pipeline::TargetSection,
) -> anyhow::Result<Option<crate::pipeline::PipelineError>> {
    let Some(name) = &target.load_balancer else {
        return Ok(None);
    };
    let elb = &cloud.load_balancing;
    let balancers = retry_throttled(|| elb.describe_load_balancers(std::slice::from_ref(name)));
    if found(balancers.await, |l| &l.name == name)? {
        return Ok(None);
    }
    let missing = ("load_balancer", "load balancer", name.as_str());
    Ok(Some(missing_at(cloud, pipeline, target, missing)))
}

/// The first resource a target names that its region does not have (group, launch
/// template, target group), as an error at its line; `None` when all exist.
async fn missing_resource(
    cloud: &Cloud,
    pipeline: &Pipeline,
    target: &crate::pipeline::TargetSection,
) -> anyhow::Result<Option<crate::pipeline::PipelineError>> {
    let Some(missing) = first_missing(cloud, target).await? else {
        return Ok(None);
    };
    Ok(Some(missing_at(cloud, pipeline, target, missing)))
}

/// What a target names and its region lacks (its key in the file, what it is, its name),
/// as an error at its line.
fn missing_at(
    cloud: &Cloud,
    pipeline: &Pipeline,
    target: &crate::pipeline::TargetSection,
    (key, what, name): (&'static str, &str, &str),
) -> crate::pipeline::PipelineError {
    let mut at = pipeline.target_path(&target.name);
    at.push(Seg::Key(key));
    pipeline.invalid_at(
        &at,
        format!("{what} `{name}` does not exist in {}", cloud.region),
        "fix the name, or the region it is looked for in (the image's `region:`, or --region)"
            .into(),
    )
}

/// The first resource the target names that the region lacks: its key in the file, what
/// it is, and its name.
async fn first_missing<'t>(
    cloud: &Cloud,
    target: &'t crate::pipeline::TargetSection,
) -> anyhow::Result<Option<(&'static str, &'static str, &'t str)>> {
    let (scaling, elb) = (&cloud.scaling, &cloud.load_balancing);
    let group = retry_throttled(|| scaling.describe_groups(std::slice::from_ref(&target.group)));
    if !found(group.await, |g| g.name == target.group)? {
        return Ok(Some(("group", "Auto Scaling group", &target.group)));
    }
    let template = TemplateRef::Name(target.launch_template.clone());
    let template = retry_throttled(|| cloud.compute.describe_launch_template(&template)).await;
    if !found(template.map(|t| vec![t]), |_| true)? {
        let name = &target.launch_template;
        return Ok(Some(("launch_template", "launch template", name)));
    }
    if let Some(name) = &target.target_group {
        let groups = retry_throttled(|| elb.describe_target_groups(std::slice::from_ref(name)));
        if !found(groups.await, |t| &t.name == name)? {
            return Ok(Some(("target_group", "target group", name)));
        }
    }
    Ok(None)
}

/// Whether a description found what `matches`; not found is `false`, not an error.
fn found<T>(
    described: Result<Vec<T>, kiln_cloud::CloudError>,
    matches: impl Fn(&T) -> bool,
) -> anyhow::Result<bool> {
    match described {
        Ok(items) => Ok(items.iter().any(matches)),
        Err(e) if e.is(kiln_cloud::ErrorKind::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Every alarm a gate names must exist, or the gate could never stop the rollout.
async fn check_alarms(
    cloud: &Cloud,
    pipeline: &Pipeline,
    target: &crate::pipeline::TargetSection,
    names: &[String],
) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let found = retry_throttled(|| cloud.metrics.describe_alarms(names)).await?;
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !found.iter().any(|alarm| &alarm.name == *name))
        .collect();
    let Some(first) = missing.first() else {
        return Ok(());
    };
    let mut at = pipeline.target_path(&target.name);
    at.extend([Seg::Key("gates"), Seg::Key("alarms")]);
    at.extend(names.iter().position(|n| n == *first).map(Seg::Index));
    let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
    let message = format!(
        "target `{}` gates on alarm(s) {} that do not exist in {}",
        target.name,
        list.join(", "),
        cloud.region
    );
    let hint = "fix the alarm names, or create the alarms first".into();
    Err(pipeline.invalid_at(&at, message, hint).into())
}

/// Plans and runs one target's rollout, mapping a failure to its exit code.
#[allow(clippy::too_many_arguments)] // one per input of a rollout, each passed as is
pub async fn roll_out(
    global: &GlobalArgs,
    cloud: &Cloud,
    pipeline: &Pipeline,
    target: &crate::pipeline::TargetSection,
    strategy: Option<StrategyName>,
    image: &ImageId,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> anyhow::Result<RolloutOutcome> {
    let spec = super::rollout_spec(pipeline, target, strategy)?;
    let plan = kiln_rollout::plan(cloud, &spec, image)
        .await
        .map_err(|e| exit_for(e, &pipeline.path))?;
    if plan.in_place.is_some() && plan.template.source_image.as_ref() != Some(image) {
        let now = plan
            .template
            .source_image
            .as_ref()
            .map_or("the image they run".to_string(), ToString::to_string);
        say(format!(
            "kiln: warning: target {}: an in-place fix changes no image; {image} is not \
             rolled out, the instances stay on {now}\n",
            target.name
        ));
    }
    roll_out_journaled(global, cloud, &plan, &pipeline.path, reporter, cancel).await
}

/// Runs one plan with every resource it creates journaled on disk the moment it exists
/// ([`crate::journal::dir`]), so that `kiln gc` can remove what a killed run left; an
/// unsuccessful rollout says what it removed and what is still there.
async fn roll_out_journaled(
    global: &GlobalArgs,
    cloud: &Cloud,
    plan: &kiln_rollout::RolloutPlan,
    file: &Path,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> anyhow::Result<RolloutOutcome> {
    if plan.no_change {
        // Nothing is created: no journal to keep.
        return kiln_rollout::rollout(cloud, plan, reporter, cancel)
            .await
            .map_err(|e| exit_for(e, file));
    }
    let journal = journal::create(global, &plan.run_id, cloud.clock.now())?;
    let result = kiln_rollout::rollout_with_journal(cloud, plan, reporter, cancel, &journal).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) if e.stop_reason() == Some(&StopReason::Cancelled) => "interrupted",
        Err(e) if e.went_through() => "went through, then failed",
        Err(_) => "failed",
    };
    if result.is_err() {
        say(journal::cleanup_text(
            &journal,
            "rollout",
            outcome,
            &cloud.region,
        ));
    }
    journal::close(journal, cloud.clock.now(), outcome);
    result.map_err(|e| exit_for(e, file))
}

/// The exit code a rollout or rollback error ends the process with; the commands its
/// hints give name `file`, the pipeline the command was given, where the library could
/// only say [`PIPELINE_FILE`].
pub fn exit_for(error: RolloutError, file: &Path) -> anyhow::Error {
    let code = match &error {
        // The account is busy (a refresh running, a change since the plan): try later.
        e if e.is_busy() => exit::LOCKED,
        RolloutError::Preflight { .. } | RolloutError::Invalid { .. } => exit::BAD_INPUT,
        RolloutError::Locked { .. } => exit::LOCKED,
        RolloutError::Stopped { reason, .. } if matches!(**reason, StopReason::Cancelled) => {
            exit::INTERRUPTED
        }
        RolloutError::Stopped {
            rolled_back: true, ..
        } => exit::ROLLED_BACK,
        RolloutError::Stopped { .. } | RolloutError::RollbackFailed { .. } => exit::NEEDS_ATTENTION,
        // A fix has no undo: look now if it left instances out, else nothing changed.
        RolloutError::NoUndo {
            needs_attention: true,
            ..
        } => exit::NEEDS_ATTENTION,
        RolloutError::NoUndo { .. } => exit::BAD_INPUT,
        // It went through, but what is live could not all be read: not a rollback's 4 or 5.
        RolloutError::Cloud(_) | RolloutError::Unreported { .. } => exit::FAILED,
    };
    let text = error.to_string();
    let commands = ["rollback", "status"].map(|c| format!("`kiln {c} {PIPELINE_FILE} "));
    if !commands.iter().any(|c| text.contains(c.as_str())) {
        return Exit::new(code, error).into();
    }
    let file = file.display();
    let named = commands.iter().fold(text, |text, c| {
        let real = c.replacen(PIPELINE_FILE, &file.to_string(), 1);
        text.replace(c.as_str(), &real)
    });
    Exit::new(code, anyhow::anyhow!(named)).into()
}

/// One line per target saying what is true now: which version and image its instances
/// are on, and how many.
pub fn rollouts_text(rollouts: &[RolloutResult]) -> String {
    rollouts.iter().map(result_line).collect()
}

fn result_line(r: &RolloutResult) -> String {
    let head = format!("{} ({}): ", r.target, r.group);
    let image = r.image.as_deref().unwrap_or("image unknown");
    let on = format!(
        "launch template version {} ({image})",
        r.launch_template_version
    );
    let count = format!("{}/{}", r.on_new_image, r.desired);
    let body = match (r.strategy.as_str(), r.status.as_str()) {
        (_, status::NOTHING_TO_ROLL_BACK) => format!(
            "nothing to roll back: {}; {count} instances on {on}",
            r.note.as_deref().unwrap_or("no earlier version recorded")
        ),
        (strategy, status::NO_CHANGE) => {
            format!("{strategy} NoChange: nothing to do, {count} instances already on {on}")
        }
        ("in_place", state) => format!(
            "in_place {state}: the fix ran on {count} instances, which stay on {on} (an \
             in-place fix makes no version)"
        ),
        (strategy, status::ROLLED_BACK) => {
            format!("{strategy} RolledBack: {count} instances back on {on}")
        }
        (strategy, state) => format!("{strategy} {state}: {count} instances on {on}"),
    };
    format!("{head}{body}\n")
}
