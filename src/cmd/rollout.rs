//! `kiln rollout FILE --image ID`: roll an image out to the pipeline's targets.

use kiln_cloud::{Cloud, ImageId};
use kiln_rollout::{RolloutError, RolloutOutcome, StopReason};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, RolloutArgs};
use crate::exit::{self, Exit};
use crate::output::{print_result, Reporter};
use crate::pipeline::{Pipeline, StrategyName};

/// One target's rollout as printed.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutResult {
    pub target: String,
    pub group: String,
    pub strategy: String,
    pub launch_template_version: i64,
    pub status: String,
    pub desired: i32,
    pub on_new_image: i32,
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
    let reporter = Reporter::new(global, global.sim.is_some());
    let outcome = roll_out_all(&cloud, &pipeline, &image, args, &reporter, cancel).await;
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

/// Plans and runs one target's rollout, mapping a failure to its exit code.
pub async fn roll_out(
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
        .map_err(exit_for)?;
    kiln_rollout::rollout(cloud, &plan, reporter, cancel)
        .await
        .map_err(exit_for)
}

/// The exit code a rollout or rollback error ends the process with.
pub fn exit_for(error: RolloutError) -> anyhow::Error {
    let code = match &error {
        RolloutError::Preflight { .. } | RolloutError::Invalid { .. } => exit::BAD_INPUT,
        RolloutError::Locked { .. } => exit::LOCKED,
        RolloutError::Stopped { reason, .. } if matches!(**reason, StopReason::Cancelled) => {
            exit::INTERRUPTED
        }
        RolloutError::Stopped {
            rolled_back: true, ..
        } => exit::ROLLED_BACK,
        RolloutError::Stopped { .. } | RolloutError::RollbackFailed { .. } => exit::NEEDS_ATTENTION,
        RolloutError::Cloud(_) => exit::FAILED,
    };
    Exit::new(code, error).into()
}

pub fn rollouts_text(rollouts: &[RolloutResult]) -> String {
    rollouts
        .iter()
        .map(|r| {
            format!(
                "{} ({}): {} {} to launch template version {}, {}/{} on the new image\n",
                r.target,
                r.group,
                r.strategy,
                r.status,
                r.launch_template_version,
                r.on_new_image,
                r.desired
            )
        })
        .collect()
}
