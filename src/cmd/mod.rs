//! One module per subcommand, and what they share: loading a pipeline file into the
//! specs the libraries take.

pub mod bake;
pub mod pipeline_run;
pub mod plan;
pub mod rollback;
pub mod rollout;
pub mod status;
pub mod validate;

use std::path::Path;

use anyhow::Context;
use kiln_builder::recipe::{self, RecipeError, RecipeErrorKind, RecipeSource, Rendered};
use kiln_builder::{BakeSpec, BuilderSettings, RootVolumeSettings, SourceImage, SubnetSelector};
use kiln_cloud::{Cloud, ImageId, SubnetId, TemplateRef};
use kiln_rollout::{RolloutSpec, Strategy};

use crate::cli::GlobalArgs;
use crate::exit::{self, Exit};
use crate::pipeline::{Pipeline, SourceSection, StrategyName, SubnetSection, TargetSection};

/// A pipeline file with its recipes rendered: everything checked, nothing touched.
pub struct Loaded {
    pub pipeline: Pipeline,
    pub rendered: Rendered,
}

/// Loads and checks a pipeline file and renders its recipes. Any refusal is bad input.
pub fn load(file: &Path) -> anyhow::Result<Loaded> {
    let pipeline = Pipeline::load(file).map_err(|e| Exit::new(exit::BAD_INPUT, e))?;
    let image = &pipeline.file.image;
    let source = RecipeSource {
        recipes_dir: pipeline.resolve(&image.recipes_dir),
        templates_dir: pipeline.resolve(&image.templates_dir),
    };
    let rendered = recipe::render(&source, &image.recipes, &image.variables)
        .map_err(|e| Exit::new(exit::BAD_INPUT, in_pipeline(&pipeline, e)))?;
    Ok(Loaded { pipeline, rendered })
}

/// A recipe error caused by what the pipeline file says (a recipe it lists, a variable
/// it sets or leaves out) points at the pipeline's line; the others at the recipe's.
fn in_pipeline(pipeline: &Pipeline, error: RecipeError) -> anyhow::Error {
    let needle = match error.kind() {
        RecipeErrorKind::UnknownRecipe | RecipeErrorKind::MissingRequirement => {
            "recipes:".to_string()
        }
        RecipeErrorKind::UnknownVariable => pipeline
            .file
            .image
            .variables
            .keys()
            .find(|name| error.problem().contains(&format!("`{name}`")))
            .map_or_else(|| "variables:".to_string(), |name| format!("{name}:")),
        RecipeErrorKind::MissingVariable => "variables:".to_string(),
        _ => return error.into(),
    };
    let hint = format!(
        "{} (recipes are read from {})",
        error.hint(),
        error.location()
    );
    pipeline
        .invalid(&needle, error.problem().to_string(), hint)
        .into()
}

/// The region commands act in: `--region`, else the pipeline's.
pub fn region<'a>(global: &'a GlobalArgs, pipeline: &'a Pipeline) -> &'a str {
    global
        .region
        .as_deref()
        .unwrap_or(&pipeline.file.image.region)
}

/// Opens the account and the ports of the pipeline's region.
pub async fn cloud(global: &GlobalArgs, pipeline: &Pipeline) -> anyhow::Result<Cloud> {
    let seed = crate::account::seed_of(pipeline);
    let account = crate::account::open(global, seed.as_deref()).await?;
    let region = region(global, pipeline);
    account
        .region(region)
        .await
        .with_context(|| format!("open region {region}"))
}

/// The bake the pipeline describes.
pub fn bake_spec(loaded: &Loaded) -> BakeSpec {
    let file = &loaded.pipeline.file;
    let builder = &file.builder;
    let volume = builder.root_volume.as_ref();
    let defaults = kiln_builder::Timeouts::default();
    let timeouts = &builder.timeouts;
    BakeSpec {
        image_name: file.image.name.clone(),
        source: match &file.image.source {
            SourceSection::Parameter(name) => SourceImage::Parameter(name.clone()),
            SourceSection::ImageId(id) => SourceImage::Id(ImageId::new(id)),
        },
        builder: BuilderSettings {
            instance_type: builder.instance_type.clone(),
            subnet: match &builder.subnet {
                SubnetSection::Id(id) => SubnetSelector::Id(SubnetId::new(id)),
                SubnetSection::Tags(tags) => SubnetSelector::Tags(tags.clone()),
            },
            instance_profile: Some(builder.instance_profile.clone()),
            root_volume: RootVolumeSettings {
                size_gib: volume.map_or(ROOT_VOLUME_GIB, |v| v.size_gib),
                volume_type: "gp3".into(),
                encrypted: volume.is_none_or(|v| v.encrypted),
                kms_key_id: volume.and_then(|v| v.kms_key_id.clone()),
            },
        },
        rendered: loaded.rendered.clone(),
        variables: file.image.variables.clone(),
        commit: commit_of(&loaded.pipeline),
        timeouts: kiln_builder::Timeouts {
            boot: timeouts.boot.unwrap_or(defaults.boot),
            agent_online: timeouts.agent_online.unwrap_or(defaults.agent_online),
            image_available: timeouts.image_available.unwrap_or(defaults.image_available),
            instance_terminated: timeouts
                .instance_terminated
                .unwrap_or(defaults.instance_terminated),
        },
        version: file.image.version.clone(),
    }
}

/// Amazon Linux 2023's own images have an 8 GiB root volume; the runtime, the
/// application and room for logs need more.
const ROOT_VOLUME_GIB: i32 = 20;

/// The commit the pipeline file belongs to, for the image's tags: CI's `GIT_COMMIT`
/// (Jenkins) or `KILN_COMMIT`.
fn commit_of(_pipeline: &Pipeline) -> Option<String> {
    std::env::var("KILN_COMMIT")
        .or_else(|_| std::env::var("GIT_COMMIT"))
        .ok()
        .filter(|c| !c.is_empty())
}

/// The rollout of one target, with the strategy the file or `--strategy` names.
pub fn rollout_spec(
    pipeline: &Pipeline,
    target: &TargetSection,
    strategy: Option<StrategyName>,
) -> anyhow::Result<RolloutSpec> {
    let strategy = match strategy.unwrap_or(target.strategy) {
        StrategyName::Rolling => Strategy::Rolling(target.rolling.clone().unwrap_or_default()),
        StrategyName::Canary => Strategy::Canary(target.canary.clone().unwrap_or_default()),
        StrategyName::BlueGreen => {
            Strategy::BlueGreen(target.blue_green.clone().unwrap_or_default())
        }
        StrategyName::InPlace => match &target.in_place {
            Some(settings) => Strategy::InPlace(settings.clone()),
            None => {
                let error = pipeline.invalid(
                    &format!("name: {}", target.name),
                    format!("target `{}` has no `in_place` settings", target.name),
                    "add `in_place: { script: [...] }` with the fix to run on each instance".into(),
                );
                return Err(Exit::new(exit::BAD_INPUT, error).into());
            }
        },
    };
    Ok(RolloutSpec {
        target: target.name.clone(),
        group: target.group.clone(),
        launch_template: TemplateRef::Name(target.launch_template.clone()),
        target_group: target.target_group.clone(),
        load_balancer: target.load_balancer.clone(),
        strategy,
        gates: target.gates.clone(),
        timeouts: target.timeouts.clone(),
    })
}

/// The pipeline's targets that `--target` selects (all when absent); an unknown name is
/// bad input.
pub fn selected<'a>(
    pipeline: &'a Pipeline,
    only: Option<&str>,
) -> anyhow::Result<Vec<&'a TargetSection>> {
    if let Some(name) = only {
        let target = pipeline
            .target(name)
            .map_err(|e| Exit::new(exit::BAD_INPUT, e))?;
        return Ok(vec![target]);
    }
    Ok(pipeline.file.targets.iter().collect())
}
