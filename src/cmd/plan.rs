//! `kiln plan FILE`: every change a bake and the rollouts would make; nothing is changed.

use std::fmt::Write;

use kiln_cloud::ImageId;
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
    // Not done: only the top image is planned, not the `layers` below it (whose channel
    // must already hold an image); goes when plan walks `Loaded::sections` as bake does.
    let spec = super::bake_spec(&loaded);
    let bake = kiln_builder::plan(&cloud, &spec).await?;
    // Before the bake the new image has no id yet; the rollout plan only compares it
    // with what the group runs.
    let image = match &bake.reuse {
        Some(reused) => reused.id.clone(),
        None => ImageId::new(format!("(new image {})", bake.ami_name)),
    };
    let mut rollouts = Vec::new();
    for target in &pipeline.file.targets {
        let spec = super::rollout_spec(pipeline, target, None)?;
        rollouts.push(kiln_rollout::plan(&cloud, &spec, &image).await?);
    }
    let result = PlanResult { bake, rollouts };
    print_result(global.output, &result, plan_text)
}

fn plan_text(plan: &PlanResult) -> String {
    let bake = &plan.bake;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "bake {} in {} (run {})",
        bake.ami_name, bake.region, bake.run_id
    );
    let _ = writeln!(text, "  source: {} ({})", bake.source_image, bake.source);
    let _ = writeln!(text, "  input hash: {}", bake.input_hash);
    match &bake.reuse {
        Some(image) => {
            let _ = writeln!(
                text,
                "  reuse {} ({}): inputs unchanged, nothing is launched",
                image.id, image.name
            );
        }
        None => {
            for change in &bake.changes {
                let _ = writeln!(
                    text,
                    "  {} {}: {}",
                    change.action, change.resource, change.detail
                );
            }
        }
    }
    for rollout in &plan.rollouts {
        text.push_str(&rollout.to_string());
    }
    text
}
