//! `kiln plan FILE`: every change a run of the file would make, for every layer and every
//! target, in the order the run makes them; nothing is changed.
//!
//! Each layer is planned with the source the run would give it: the layer below's image
//! when the run publishes it to the channel the layer reads (reused: that image; baked
//! anew: an image that does not exist yet, so the layer is baked anew too).

use std::fmt::Write;

use kiln_builder::{BakePlan, LayerSource};
use kiln_cloud::throttle::retry_throttled;
use kiln_cloud::{Account, Cloud, ImageFilter, ImageId, Tags};
use serde::Serialize;

use crate::cli::{FileArgs, GlobalArgs};
use crate::output::print_result;
use crate::pipeline::{ImageSection, SourceSection};

/// One image of the run: reused or baked, and distributed.
#[derive(Debug, Serialize)]
struct ImagePlan {
    /// `reuse` or `bake`.
    action: &'static str,
    bake: BakePlan,
    /// What distribution changes; `null` when the pipeline distributes nowhere.
    distribution: Option<DistributionPlan>,
}

/// What distributing one image changes.
#[derive(Debug, Serialize)]
struct DistributionPlan {
    /// The channel parameter set to the image in its region, and whether it already is.
    publish: Option<Publish>,
    /// One entry per region the image is copied to.
    copies: Vec<CopyPlan>,
    /// Accounts, organizations and units given launch permission.
    share_with: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Publish {
    parameter: String,
    /// The parameter already holds the image: nothing to change.
    unchanged: bool,
}

#[derive(Debug, Serialize)]
struct CopyPlan {
    region: String,
    /// The copy that exists already (same name and input hash): nothing to change.
    existing: Option<ImageId>,
}

/// `kiln plan --output json`: fields may be added, never renamed.
#[derive(Debug, Serialize)]
struct PlanResult {
    /// The image (the top layer); its bake plan is `bake`.
    #[serde(flatten)]
    image: ImagePlan,
    /// The lower layers, in bake order.
    layers: Vec<ImagePlan>,
    rollouts: Vec<kiln_rollout::RolloutPlan>,
}

pub async fn run(global: &GlobalArgs, args: &FileArgs) -> anyhow::Result<()> {
    let loaded = super::load(&args.file)?;
    let pipeline = &loaded.pipeline;
    let (account, cloud) = super::open(global, pipeline).await?;
    super::inputs::check(&cloud, pipeline).await?;
    let mut layers = plan_images(account.as_ref(), &cloud, &loaded).await?;
    let image = layers.pop().expect("the image is always planned last");
    // Before the bake the new image has no id yet; the rollout plan only compares it
    // with what the group runs.
    let image_id = match &image.bake.reuse {
        Some(reused) => reused.id.clone(),
        None => ImageId::new(format!("(new image {})", image.bake.ami_name)),
    };
    // A name the region does not have, or an alarm, is refused as the run refuses it.
    super::rollout::check_targets(&cloud, pipeline, None, None, &image_id).await?;
    let mut rollouts = Vec::new();
    for target in &pipeline.file.targets {
        let spec = super::rollout_spec(pipeline, target, None)?;
        let plan = kiln_rollout::plan(&cloud, &spec, &image_id).await;
        rollouts.push(plan.map_err(|e| super::rollout::exit_for(e, &pipeline.path))?);
    }
    let result = PlanResult {
        image,
        layers,
        rollouts,
    };
    print_result(global.output, &result, plan_text)
}

/// Every image of the file in bake order, each planned on the source the run gives it.
async fn plan_images(
    account: &dyn Account,
    cloud: &Cloud,
    loaded: &super::Loaded,
) -> anyhow::Result<Vec<ImagePlan>> {
    let channel = loaded.pipeline.file.distribute.channel.as_deref();
    let mut plans: Vec<ImagePlan> = Vec::new();
    // The real image each layer starts from: a layer still to be baked keeps the root
    // device of the image it is made from.
    let mut origins: Vec<ImageId> = Vec::new();
    for (section, rendered) in loaded.sections() {
        let below = plans.last().map(|p| &p.bake).zip(origins.last());
        let source = layer_source(section, channel, below);
        let spec = super::section_spec(loaded, section, rendered);
        let bake = kiln_builder::plan_layer(cloud, &spec, &source)
            .await
            .map_err(super::bake::exit_for)?;
        origins.push(match source {
            LayerSource::Pending { stand_in, .. } => stand_in,
            _ => bake.source_image.clone(),
        });
        let distribution = distribution_plan(account, cloud, loaded, &bake).await?;
        plans.push(ImagePlan {
            action: if bake.reuse.is_some() {
                "reuse"
            } else {
                "bake"
            },
            bake,
            distribution,
        });
    }
    Ok(plans)
}

/// The source a layer gets in the run: the layer below's image when the run publishes
/// it to the channel this layer reads; else the source as written, read now.
fn layer_source(
    section: &ImageSection,
    published: Option<&str>,
    below: Option<(&BakePlan, &ImageId)>,
) -> LayerSource {
    let (SourceSection::Channel(reads), Some((below, origin))) = (&section.source, below) else {
        return LayerSource::AsWritten;
    };
    if reads.image != below.image_name || Some(reads.channel.as_str()) != published {
        return LayerSource::AsWritten;
    }
    match &below.reuse {
        Some(image) => LayerSource::Image(image.id.clone()),
        None => LayerSource::Pending {
            ami_name: below.ami_name.clone(),
            stand_in: origin.clone(),
        },
    }
}

/// What distributing the planned image would change: the channel, the copies, sharing.
async fn distribution_plan(
    account: &dyn Account,
    cloud: &Cloud,
    loaded: &super::Loaded,
    bake: &BakePlan,
) -> anyhow::Result<Option<DistributionPlan>> {
    let section = &loaded.pipeline.file.distribute;
    if section.is_empty() {
        return Ok(None);
    }
    let mut publish = None;
    if let Some(channel) = &section.channel {
        let parameter = kiln_builder::naming::channel_parameter(&bake.image_name, channel);
        let current = cloud.parameters.get_parameter(&parameter, false).await?;
        let reused = bake.reuse.as_ref().map(|r| r.id.as_str());
        let unchanged = current.is_some_and(|p| Some(p.value.trim()) == reused);
        publish = Some(Publish {
            parameter,
            unchanged,
        });
    }
    let mut copies = Vec::new();
    for region in &section.regions {
        let existing = match &bake.reuse {
            Some(_) => existing_copy(account, region, bake).await?,
            None => None,
        };
        copies.push(CopyPlan {
            region: region.clone(),
            existing,
        });
    }
    let share_with = [
        &section.accounts,
        &section.organizations,
        &section.organizational_units,
    ];
    Ok(Some(DistributionPlan {
        publish,
        copies,
        share_with: share_with.into_iter().flatten().cloned().collect(),
    }))
}

/// The copy of a reused image that distribution would find in `region` and keep: an
/// image of the same name and input hash.
async fn existing_copy(
    account: &dyn Account,
    region: &str,
    bake: &BakePlan,
) -> anyhow::Result<Option<ImageId>> {
    let cloud = account.region(region).await?;
    let filter = ImageFilter {
        owners: vec!["self".into()],
        name: Some(bake.ami_name.clone()),
        tags: Tags::from([(
            kiln_builder::naming::TAG_INPUT_HASH.into(),
            bake.input_hash.clone(),
        )]),
        ..ImageFilter::default()
    };
    let images = retry_throttled(|| cloud.compute.describe_images(&filter)).await?;
    Ok(images.into_iter().next().map(|i| i.id))
}

fn plan_text(plan: &PlanResult) -> String {
    let mut text = String::new();
    for layer in &plan.layers {
        image_text(&mut text, "layer", layer);
    }
    image_text(&mut text, "image", &plan.image);
    for rollout in &plan.rollouts {
        text.push_str(&rollout.to_string());
    }
    text
}

/// One image's lines: what happens to it and why, each change, then its distribution.
fn image_text(text: &mut String, kind: &str, image: &ImagePlan) {
    let bake = &image.bake;
    let _ = match &bake.reuse {
        Some(reused) => writeln!(
            text,
            "{kind} {} in {}: reuse {} ({})",
            bake.image_name, bake.region, reused.id, reused.name
        ),
        None => writeln!(
            text,
            "{kind} {} in {}: bake {} (run {})",
            bake.image_name, bake.region, bake.ami_name, bake.run_id
        ),
    };
    let _ = writeln!(text, "  why: {}", bake.reason);
    let _ = writeln!(text, "  source: {} ({})", bake.source_image, bake.source);
    let _ = writeln!(text, "  input hash: {}", bake.input_hash);
    if bake.reuse.is_none() {
        for change in &bake.changes {
            let _ = writeln!(
                text,
                "  {} {}: {}",
                change.action, change.resource, change.detail
            );
        }
    }
    if let Some(distribution) = &image.distribution {
        distribution_text(text, bake, distribution);
    }
}

fn distribution_text(text: &mut String, bake: &BakePlan, plan: &DistributionPlan) {
    let image = match &bake.reuse {
        Some(reused) => reused.id.to_string(),
        None => "the new image".to_string(),
    };
    if let Some(publish) = &plan.publish {
        let _ = match publish.unchanged {
            true => writeln!(text, "  publish {}: already {image}", publish.parameter),
            false => writeln!(text, "  publish {}: set to {image}", publish.parameter),
        };
    }
    for copy in &plan.copies {
        let _ = match &copy.existing {
            Some(id) => writeln!(text, "  copy to {}: {id} exists, kept", copy.region),
            None => writeln!(text, "  copy to {}: copy {image} there", copy.region),
        };
    }
    if !plan.share_with.is_empty() {
        let _ = writeln!(
            text,
            "  share {image} with {} (launch permission)",
            plan.share_with.join(", ")
        );
    }
}
