//! `kiln pipeline run FILE`: bake the image, then roll it out to every target in order.
//! The first failure stops the run; targets after it are not touched.

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::bake::{leftovers_text, ImageResult};
use super::rollout::{roll_out, rollouts_text, RolloutResult};
use crate::cli::{FileArgs, GlobalArgs};
use crate::output::{print_result, Reporter};

/// The JSON contract of `kiln pipeline run --output json`: fields may be added, never
/// renamed.
#[derive(Debug, Serialize)]
pub struct PipelineResult {
    pub image: ImageResult,
    pub rollouts: Vec<RolloutResult>,
    pub leftovers: Vec<String>,
}

pub async fn run(
    global: &GlobalArgs,
    args: &FileArgs,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let loaded = super::load(&args.file)?;
    let pipeline = &loaded.pipeline;
    let cloud = super::cloud(global, pipeline).await?;
    let reporter = Reporter::new(global, global.sim.is_some());

    let baked = super::bake::bake(&cloud, &loaded, &reporter, cancel).await;
    let rollouts = match &baked {
        Ok(baked) => roll_out_every_target(&cloud, pipeline, baked, &reporter, cancel).await,
        Err(_) => Ok(Vec::new()),
    };
    reporter.finish();
    let (baked, rollouts) = (baked?, rollouts?);

    let result = PipelineResult {
        image: ImageResult::from(&baked),
        rollouts,
        leftovers: baked.leftovers.clone(),
    };
    print_result(global.output, &result, |r| {
        format!(
            "image {} {} ({}){}\n{}",
            r.image.id,
            r.image.name,
            if r.image.reused { "reused" } else { "baked" },
            leftovers_text(&r.leftovers),
            rollouts_text(&r.rollouts)
        )
    })
}

/// Rolls the baked image out to each target in order; the first failure stops the run
/// and says how far it got.
async fn roll_out_every_target(
    cloud: &kiln_cloud::Cloud,
    pipeline: &crate::pipeline::Pipeline,
    baked: &kiln_builder::BakeOutcome,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> anyhow::Result<Vec<RolloutResult>> {
    let mut rollouts = Vec::new();
    for target in &pipeline.file.targets {
        let outcome = roll_out(
            cloud,
            pipeline,
            target,
            None,
            &baked.image.id,
            reporter,
            cancel,
        )
        .await
        .map_err(|e| {
            e.context(format!(
                "image {} was baked; target `{}` failed (targets done before it: {})",
                baked.image.id,
                target.name,
                rollouts.len()
            ))
        })?;
        rollouts.push(RolloutResult::from(&outcome));
    }
    Ok(rollouts)
}
