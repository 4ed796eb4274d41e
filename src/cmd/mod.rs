//! One module per subcommand, and what they share: loading a pipeline file into the
//! specs the libraries take.

pub mod bake;
pub mod gc;
pub mod iam_policy;
pub mod images;
pub mod inputs;
pub mod pipeline_run;
pub mod plan;
pub mod promote;
pub mod prune;
pub mod rollback;
pub mod rollout;
pub mod status;
pub mod validate;

use std::path::Path;

use kiln_builder::recipe::{self, RecipeError, RecipeErrorKind, RecipeSource, Rendered, Seg};
use kiln_builder::{BakeSpec, BuilderSettings, RootVolumeSettings, SourceImage, SubnetSelector};
use kiln_cloud::{Cloud, ImageId, SubnetId, TemplateRef};
use kiln_rollout::{RolloutSpec, Strategy};

use crate::cli::GlobalArgs;
use crate::exit::{self, Exit};
use crate::pipeline::{
    ImageSection, Pipeline, SourceSection, StrategyName, SubnetSection, TargetSection,
};

/// A pipeline file with its recipes rendered: everything checked, nothing touched.
pub struct Loaded {
    pub pipeline: Pipeline,
    /// The image's (top layer's) recipes.
    pub rendered: Rendered,
    /// The recipes of each of `pipeline.file.layers`, in the same order.
    pub layers: Vec<Rendered>,
}

impl Loaded {
    /// Every image to bake, in order: the layers, then the image.
    pub fn sections(&self) -> Vec<(&ImageSection, &Rendered)> {
        let layers = self.pipeline.file.layers.iter().zip(&self.layers);
        layers
            .chain([(&self.pipeline.file.image, &self.rendered)])
            .collect()
    }
}

/// Loads and checks a pipeline file and renders its recipes. Any refusal is bad input.
pub fn load(file: &Path) -> anyhow::Result<Loaded> {
    let pipeline = Pipeline::load(file).map_err(|e| Exit::new(exit::BAD_INPUT, e))?;
    let mut installed = Vec::new();
    let mut rendered = Vec::new();
    for image in pipeline.sections() {
        let source = RecipeSource {
            recipes_dir: pipeline.resolve(&image.recipes_dir),
            templates_dir: pipeline.resolve(&image.templates_dir),
        };
        // A layer on a channel has the recipes of the layers below it already.
        if !matches!(image.source, SourceSection::Channel(_)) {
            installed.clear();
        }
        secret_values(&pipeline, image, &source).map_err(|e| Exit::new(exit::BAD_INPUT, e))?;
        let layer = recipe::render_layer(&source, &installed, &image.recipes, &image.variables)
            .map_err(|e| Exit::new(exit::BAD_INPUT, in_pipeline(&pipeline, image, e)))?;
        installed.extend(image.recipes.iter().cloned());
        rendered.push(layer);
    }
    let image = rendered.pop().expect("the image is always a section");
    Ok(Loaded {
        pipeline,
        rendered: image,
        layers: rendered,
    })
}

/// A value for a variable a recipe marks secret is refused where the pipeline gives it:
/// secrets are read at boot from Parameter Store, and a value in the file would also be
/// hashed into the image's input hash, which is an AMI tag. A recipe that does not load
/// is left to the rendering, which says why.
fn secret_values(
    pipeline: &Pipeline,
    image: &ImageSection,
    source: &RecipeSource,
) -> Result<(), crate::pipeline::PipelineError> {
    let names = image.recipes.iter().map(String::as_str);
    for info in names
        .chain([recipe::HYGIENE])
        .filter_map(|n| recipe::describe(source, n).ok())
    {
        let secret = info.variables.iter().filter(|v| v.secret);
        let Some(given) = secret
            .map(|v| &v.name)
            .find(|n| image.variables.contains_key(*n))
        else {
            continue;
        };
        let mut at = pipeline.section_path(image);
        at.extend([Seg::Key("variables"), Seg::Key(given)]);
        return Err(pipeline.invalid_key(
            &at,
            format!(
                "variable `{given}` is a secret of recipe `{}`: the pipeline may not give \
                 its value",
                info.name
            ),
            "remove it: a secret lives in Parameter Store as a SecureString under the \
             image's parameter prefix, read at boot; a value here would be hashed into the \
             image's input hash, an AMI tag"
                .into(),
        ));
    }
    Ok(())
}

/// A recipe error caused by what the pipeline file says (a recipe it lists, a variable
/// it sets or leaves out) points at the pipeline's line; the others at the recipe's.
fn in_pipeline(pipeline: &Pipeline, image: &ImageSection, error: RecipeError) -> anyhow::Error {
    let mut at = pipeline.section_path(image);
    let named = |name: &&String| error.problem().contains(&format!("`{name}`"));
    let at_key = match error.kind() {
        RecipeErrorKind::UnknownRecipe | RecipeErrorKind::MissingRequirement => {
            at.push(Seg::Key("recipes"));
            at.extend(image.recipes.iter().position(|r| named(&r)).map(Seg::Index));
            false
        }
        RecipeErrorKind::UnknownVariable => {
            at.push(Seg::Key("variables"));
            at.extend(image.variables.keys().find(named).map(|n| Seg::Key(n)));
            // The name is what is wrong: point at it, not at its value.
            true
        }
        RecipeErrorKind::WrongKind | RecipeErrorKind::RefusedValue => {
            at.push(Seg::Key("variables"));
            at.extend(image.variables.keys().find(named).map(|n| Seg::Key(n)));
            false
        }
        RecipeErrorKind::MissingVariable => {
            at.push(Seg::Key("variables"));
            true
        }
        _ => return error.into(),
    };
    let hint = format!(
        "{} (recipes are read from {})",
        error.hint(),
        error.location()
    );
    let problem = error.problem().to_string();
    if at_key {
        return pipeline.invalid_key(&at, problem, hint).into();
    }
    pipeline.invalid_at(&at, problem, hint).into()
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
    Ok(open(global, pipeline).await?.1)
}

/// Opens the account, and the ports of the pipeline's region.
pub async fn open(
    global: &GlobalArgs,
    pipeline: &Pipeline,
) -> anyhow::Result<(std::sync::Arc<dyn kiln_cloud::Account>, Cloud)> {
    let seed = crate::account::seed_of(pipeline);
    let account = crate::account::open(global, seed.as_deref()).await?;
    let region = region(global, pipeline);
    let cloud = match account.region(region).await {
        Ok(cloud) => cloud,
        // A region the account does not have is the pipeline's (or --region's) mistake.
        Err(e) if e.is(kiln_cloud::ErrorKind::NotFound) => {
            let message = format!("region {region} is not one this account has: {e}");
            let hint = "fix the region name (such as ap-northeast-1); on the simulated account, \
                        a region must be in its seed";
            let error = match &global.region {
                Some(_) => anyhow::anyhow!("--region {region}: {message}\n  hint: {hint}"),
                None => pipeline
                    .invalid_at(
                        &[Seg::Key("image"), Seg::Key("region")],
                        message,
                        hint.into(),
                    )
                    .into(),
            };
            return Err(Exit::new(exit::BAD_INPUT, error).into());
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("open region {region}"))),
    };
    Ok((account, cloud))
}

/// The regions a catalogue command acts in: `--regions`, else `--region`, else the
/// account's home region.
pub fn regions_of(
    global: &GlobalArgs,
    args: &crate::cli::RegionsArgs,
    account: &dyn kiln_cloud::Account,
) -> Vec<String> {
    if !args.regions.is_empty() {
        return args.regions.clone();
    }
    let home = global.region.as_deref().unwrap_or(account.home_region());
    vec![home.to_string()]
}

/// Opens every region a catalogue command acts in before it changes anything: a region
/// the account does not have is bad input, not a failure halfway through.
pub async fn check_regions(
    account: &dyn kiln_cloud::Account,
    regions: &[String],
) -> anyhow::Result<()> {
    for region in regions {
        match account.region(region).await {
            Ok(_) => {}
            Err(e) if e.is(kiln_cloud::ErrorKind::NotFound) => {
                let error = anyhow::anyhow!(
                    "region {region} is not one this account has: {e}\n  hint: fix the name \
                     in --regions or --region (such as ap-northeast-1); on the simulated \
                     account, a region must be in its seed"
                );
                return Err(Exit::new(exit::BAD_INPUT, error).into());
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("open region {region}"))),
        }
    }
    Ok(())
}

/// The bake of the pipeline's image (its top layer).
pub fn bake_spec(loaded: &Loaded) -> BakeSpec {
    section_spec(loaded, &loaded.pipeline.file.image, &loaded.rendered)
}

/// The bake of one image section (a layer or the image).
pub fn section_spec(loaded: &Loaded, image: &ImageSection, rendered: &Rendered) -> BakeSpec {
    let file = &loaded.pipeline.file;
    let builder = &file.builder;
    let volume = builder.root_volume.as_ref();
    let defaults = kiln_builder::Timeouts::default();
    let timeouts = &builder.timeouts;
    BakeSpec {
        image_name: image.name.clone(),
        source: source_of(image),
        builder: BuilderSettings {
            instance_type: builder.instance_type.clone(),
            subnet: subnet_of(&builder.subnet),
            instance_profile: Some(builder.instance_profile.clone()),
            root_volume: RootVolumeSettings {
                // In range: `Pipeline::load` refused any other size.
                size_gib: volume.map_or(ROOT_VOLUME_GIB, |v| {
                    v.size_gib.as_i32().expect("a size checked on load")
                }),
                volume_type: "gp3".into(),
                encrypted: volume.is_none_or(|v| v.encrypted),
                kms_key_id: volume.and_then(|v| v.kms_key_id.clone()),
            },
        },
        rendered: rendered.clone(),
        variables: image.variables.clone(),
        commit: commit_of(&loaded.pipeline),
        timeouts: kiln_builder::Timeouts {
            boot: timeouts.boot.unwrap_or(defaults.boot),
            agent_online: timeouts.agent_online.unwrap_or(defaults.agent_online),
            image_available: timeouts.image_available.unwrap_or(defaults.image_available),
            instance_terminated: timeouts
                .instance_terminated
                .unwrap_or(defaults.instance_terminated),
        },
        version: image.version.clone(),
    }
}

/// Where an image section's bake starts from.
pub fn source_of(image: &ImageSection) -> SourceImage {
    match &image.source {
        SourceSection::Parameter(name) => SourceImage::Parameter(name.clone()),
        SourceSection::ImageId(id) => SourceImage::Id(ImageId::new(id)),
        SourceSection::Channel(c) => SourceImage::Channel {
            image: c.image.clone(),
            channel: c.channel.clone(),
        },
    }
}

/// The builder's subnet, as the bake looks it up.
pub fn subnet_of(subnet: &SubnetSection) -> SubnetSelector {
    match subnet {
        SubnetSection::Id(id) => SubnetSelector::Id(SubnetId::new(id)),
        SubnetSection::Tags(tags) => SubnetSelector::Tags(tags.clone()),
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
                let mut at = pipeline.target_path(&target.name);
                at.push(Seg::Key("strategy"));
                let error = pipeline.invalid_at(
                    &at,
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
        allow_imdsv1: target.allow_imdsv1,
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
