//! `kiln pipeline run FILE`: bake the image, then roll it out to every target in order.
//! The first failure stops the run; targets after it are not touched.

use kiln_cloud::ImageId;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use kiln_builder::distribute::DistributionReport;

use super::bake::{
    bake_all, distribution_failures, distribution_text, layers_text, leftovers, leftovers_text,
    Baked, ImageResult, LayerResult,
};
use super::rollout::{roll_out, rollouts_text, RolloutResult};
use crate::cli::{BakeArgs, GlobalArgs};
use crate::output::{print_result, Reporter};

/// The JSON contract of `kiln pipeline run --output json`: fields may be added, never
/// renamed.
#[derive(Debug, Serialize)]
pub struct PipelineResult {
    pub image: ImageResult,
    pub rollouts: Vec<RolloutResult>,
    pub leftovers: Vec<String>,
    /// Where the image was copied, shared and published; `null` when nowhere.
    pub distribution: Option<DistributionReport>,
    /// The lower layers baked (or reused) before the image, in order.
    pub layers: Vec<LayerResult>,
    /// The manifest file the builds were appended to.
    pub manifest: String,
}

pub async fn run(
    global: &GlobalArgs,
    args: &BakeArgs,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let loaded = super::load(&args.file)?;
    crate::manifest::check_writable(&args.manifest)?;
    let pipeline = &loaded.pipeline;
    let (account, cloud) = super::open(global, pipeline).await?;
    super::inputs::check(&cloud, pipeline).await?;
    let reporter = Reporter::new(global, global.sim.is_some());

    // The targets are checked before the bake: a misspelt group must not cost an hour
    // of baking first.
    let planned = ImageId::new(format!("(new image {})", pipeline.file.image.name));
    super::rollout::check_targets(&cloud, pipeline, None, None, &planned).await?;

    let all = bake_all(
        global,
        account.as_ref(),
        &cloud,
        &loaded,
        &reporter,
        cancel,
        args,
    )
    .await;
    let mut layers = match all {
        Ok(all) => all,
        Err(e) => {
            reporter.finish();
            return Err(e);
        }
    };
    let baked = layers.pop().expect("the image is always baked last");
    let rollouts =
        roll_out_every_target(global, &cloud, pipeline, &baked.outcome, &reporter, cancel).await;
    reporter.finish();
    let rollouts = rollouts?;

    let result = PipelineResult {
        image: ImageResult::from(&baked.outcome),
        rollouts,
        leftovers: leftovers(&layers, &baked),
        distribution: baked.distribution.clone(),
        layers: layers.iter().map(Baked::layer_result).collect(),
        manifest: args.manifest.display().to_string(),
    };
    print_result(global.output, &result, |r| {
        format!(
            "{}image {} {} ({}){}\n{}{}",
            layers_text(&r.layers),
            r.image.id,
            r.image.name,
            if r.image.reused { "reused" } else { "baked" },
            leftovers_text(&r.leftovers),
            distribution_text(r.distribution.as_ref()),
            rollouts_text(&r.rollouts)
        )
    })?;
    distribution_failures(layers.iter().chain([&baked]))
}

/// Rolls the baked image out to each target in order; the first failure stops the run
/// and says how far it got.
async fn roll_out_every_target(
    global: &GlobalArgs,
    cloud: &kiln_cloud::Cloud,
    pipeline: &crate::pipeline::Pipeline,
    baked: &kiln_builder::BakeOutcome,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> anyhow::Result<Vec<RolloutResult>> {
    let mut rollouts = Vec::new();
    for target in &pipeline.file.targets {
        let outcome = roll_out(
            global,
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
