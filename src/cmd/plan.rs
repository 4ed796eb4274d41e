//! `kiln plan FILE`: every change a bake and the rollouts would make; nothing is changed.

use serde::Serialize;

use crate::cli::{FileArgs, GlobalArgs};
use crate::output::print_result;

#[derive(Debug, Serialize)]
struct PlanResult {
    bake: kiln_builder::BakePlan,
    rollouts: Vec<kiln_rollout::RolloutPlan>,
}

pub async fn run(global: &GlobalArgs, args: &FileArgs) -> anyhow::Result<()> {
    let loaded = super::load(&args.file)?;
    let pipeline = &loaded.pipeline;
    let cloud = super::cloud(global, pipeline).await?;
    let spec = super::bake_spec(&loaded);
    let bake = kiln_builder::plan(&cloud, &spec).await?;
    let image = bake.image_for_rollout();
    let mut rollouts = Vec::new();
    for target in &pipeline.file.targets {
        let spec = super::rollout_spec(pipeline, target, None)?;
        rollouts.push(kiln_rollout::plan(&cloud, &spec, &image).await?);
    }
    let result = PlanResult { bake, rollouts };
    print_result(global.output, &result, |r| {
        let mut text = r.bake.to_string();
        for rollout in &r.rollouts {
            text.push_str(&rollout.to_string());
        }
        text
    })
}
