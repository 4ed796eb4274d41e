//! The plan: everything a bake will do, decided before anything changes.
//!
//! [`plan`] only reads: it resolves the source AMI and the subnet, computes the input
//! hash, looks for an image to reuse, picks the version and the AMI name, and lists every
//! change the bake would make. The plan is what `kiln plan` and `--dry-run` print, and the
//! only input of [`crate::bake()`].

use std::fmt;
use std::time::Duration;

use kiln_cloud::{Cloud, ImageFilter, ImageId, ImageState, RootVolume, Subnet, SubnetId, Tags};
use serde::{Deserialize, Serialize};

use crate::error::BakeError;
use crate::hash::{input_hash, HashInputs};
use crate::naming::{self, ami_name, next_version, tag_value};
use crate::recipe::{Phase, Step};
use crate::spec::{BakeSpec, SourceImage, SubnetSelector, Timeouts};
use crate::wait::retry_throttled;

/// The device AL2023 and most current Linux AMIs boot from, for a source image that
/// names no block device.
const DEFAULT_ROOT_DEVICE: &str = "/dev/xvda";

/// Where a step runs in the bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    Build,
    Validate,
    Hygiene,
    Test,
}

impl From<&Phase> for StepPhase {
    fn from(phase: &Phase) -> Self {
        match phase {
            Phase::Build => Self::Build,
            Phase::Validate => Self::Validate,
            Phase::Hygiene => Self::Hygiene,
            Phase::Test => Self::Test,
        }
    }
}

impl fmt::Display for StepPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Build => "build",
            Self::Validate => "validate",
            Self::Hygiene => "hygiene",
            Self::Test => "test",
        })
    }
}

/// One step as the bake runs it.
#[derive(Clone, Serialize)]
pub struct PlannedStep {
    pub recipe: String,
    pub name: String,
    pub phase: StepPhase,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub reboot: bool,
    /// The bash script; left out of printed plans (it may be long).
    #[serde(skip)]
    pub script: String,
}

impl PlannedStep {
    /// `<recipe>/<step>`, as progress events and errors name it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.recipe, self.name)
    }
}

impl fmt::Debug for PlannedStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlannedStep")
            .field("label", &self.label())
            .field("phase", &self.phase)
            .field("timeout", &self.timeout)
            .field("reboot", &self.reboot)
            .finish_non_exhaustive()
    }
}

impl From<&Step> for PlannedStep {
    fn from(step: &Step) -> Self {
        Self {
            recipe: step.recipe.clone(),
            name: step.name.clone(),
            phase: StepPhase::from(&step.phase),
            timeout: step.timeout,
            reboot: step.reboot,
            script: step.script.clone(),
        }
    }
}

/// Secret values that must never appear in output kiln shows; printed as a count only.
#[derive(Clone, Default)]
pub struct Secrets(pub Vec<String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} values)", self.0.len())
    }
}

impl Secrets {
    /// `text` with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.0
            .iter()
            .filter(|s| !s.is_empty())
            .fold(text.to_string(), |acc, secret| {
                acc.replace(secret.as_str(), "***")
            })
    }
}

/// An image a bake made or reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BakedImage {
    pub id: ImageId,
    /// The AMI name (`<image_name>-<version>`).
    pub name: String,
    pub version: String,
    pub region: String,
    pub input_hash: String,
    pub source_image: ImageId,
}

/// The builder and test instances' launch settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedBuilder {
    pub instance_type: String,
    pub subnet_id: SubnetId,
    pub vpc_id: String,
    pub availability_zone: String,
    pub instance_profile: Option<String>,
    pub root_volume: RootVolume,
}

/// One change the bake would make, for `kiln plan` and `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    /// `create`, `launch`, `run`, `terminate`, `delete`, `tag`.
    pub action: String,
    pub resource: String,
    pub detail: String,
}

/// Everything the bake will do, decided up front.
#[derive(Debug, Clone, Serialize)]
pub struct BakePlan {
    /// The build id every created resource is tagged with.
    pub run_id: String,
    pub region: String,
    pub image_name: String,
    pub version: String,
    /// The AMI name the bake registers (or the reused image's).
    pub ami_name: String,
    pub source: SourceImage,
    pub source_image: ImageId,
    pub input_hash: String,
    /// An available image with the same input hash: the bake returns it and changes
    /// nothing.
    pub reuse: Option<BakedImage>,
    pub builder: ResolvedBuilder,
    pub recipes: Vec<String>,
    pub steps: Vec<PlannedStep>,
    pub commit: Option<String>,
    pub timeouts: Timeouts,
    /// The tags the new image (and its snapshots) will carry.
    pub image_tags: Tags,
    pub changes: Vec<PlannedChange>,
    /// Why the image is reused or baked: inputs unchanged, no image yet, a new source
    /// image, changed recipes or variables, or a layer below baked anew.
    pub reason: String,
    #[serde(skip)]
    pub secrets: Secrets,
}

/// Where a layer's source will be when the run reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSource {
    /// As the spec says, read now (a parameter, an id, a channel).
    AsWritten,
    /// An image that exists: the layer below, reused, which the run publishes to the
    /// channel this layer reads before it gets here.
    Image(ImageId),
    /// The image the layer below will bake, which does not exist yet: named `ami_name`,
    /// made from `stand_in`, whose root device it keeps.
    Pending { ami_name: String, stand_in: ImageId },
}

/// The input hash of a layer whose source does not exist yet.
pub const HASH_PENDING: &str = "(known once the layer below is baked)";

impl BakePlan {
    /// Steps of the given phases, in bake order, with their position among all steps.
    pub fn steps_of(&self, phases: &[StepPhase]) -> Vec<(usize, &PlannedStep)> {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| phases.contains(&s.phase))
            .map(|(i, s)| (i + 1, s))
            .collect()
    }
}

/// Plans a bake without changing anything.
pub async fn plan(cloud: &Cloud, spec: &BakeSpec) -> Result<BakePlan, BakeError> {
    plan_layer(cloud, spec, &LayerSource::AsWritten).await
}

/// Plans the bake of one layer of a run, whose source may be the layer below's image
/// (existing, or still to be baked). Changes nothing.
pub async fn plan_layer(
    cloud: &Cloud,
    spec: &BakeSpec,
    source: &LayerSource,
) -> Result<BakePlan, BakeError> {
    validate(spec)?;
    let (source_image, root_device) = layer_source(cloud, spec, source).await?;
    let builder = resolve_builder(cloud, spec, root_device).await?;
    let (hash, reuse) = cache_lookup(cloud, spec, &source_image, source).await?;
    let version = match &reuse {
        Some(image) => image.version.clone(),
        None => decide_version(cloud, spec).await?,
    };
    let reason = match (source, &reuse) {
        (LayerSource::Pending { ami_name, .. }, _) => {
            format!("its source is baked anew in this run ({ami_name})")
        }
        (_, Some(image)) => format!("inputs unchanged: {} has the same input hash", image.id),
        (_, None) => rebuild_reason(cloud, &spec.image_name, &source_image).await?,
    };

    let mut plan = BakePlan {
        run_id: naming::run_id(cloud.clock.now()),
        region: cloud.region.clone(),
        image_name: spec.image_name.clone(),
        ami_name: ami_name(&spec.image_name, &version),
        version,
        source: spec.source.clone(),
        source_image,
        input_hash: hash,
        reuse,
        builder,
        recipes: spec.rendered.recipes.clone(),
        steps: spec.rendered.steps.iter().map(PlannedStep::from).collect(),
        commit: spec.commit.clone(),
        timeouts: spec.timeouts,
        image_tags: Tags::new(),
        changes: Vec::new(),
        reason,
        secrets: secret_values(spec),
    };
    if let Some(image) = &plan.reuse {
        plan.ami_name = image.name.clone();
    }
    plan.image_tags = image_tags(&plan);
    plan.changes = changes(&plan);
    Ok(plan)
}

/// The input hash and the image it lets the bake reuse; a layer whose source is still to
/// be baked has neither.
async fn cache_lookup(
    cloud: &Cloud,
    spec: &BakeSpec,
    source_image: &ImageId,
    source: &LayerSource,
) -> Result<(String, Option<BakedImage>), BakeError> {
    if matches!(source, LayerSource::Pending { .. }) {
        return Ok((HASH_PENDING.to_string(), None));
    }
    // The values the recipes see, defaults applied, so that a default written out hashes
    // as one left out; the spec's own on top, the same values when it was rendered from
    // them, so that none a caller gives is ever left out.
    let mut variables = spec.rendered.variables.clone();
    variables.extend(spec.variables.clone());
    let hash = input_hash(&HashInputs {
        source_image,
        image_name: &spec.image_name,
        files: &spec.rendered.inputs,
        variables: &variables,
        root_volume: &spec.builder.root_volume,
    });
    let reuse = find_reusable(cloud, &spec.image_name, &hash).await?;
    Ok((hash, reuse))
}

/// The source image's id (a stand-in's name for one still to be baked) and root device.
async fn layer_source(
    cloud: &Cloud,
    spec: &BakeSpec,
    source: &LayerSource,
) -> Result<(ImageId, String), BakeError> {
    match source {
        LayerSource::AsWritten => resolve_source(cloud, &spec.source).await,
        LayerSource::Image(id) => resolve_source(cloud, &SourceImage::Id(id.clone())).await,
        LayerSource::Pending { ami_name, stand_in } => {
            let (_, root) = resolve_source(cloud, &SourceImage::Id(stand_in.clone())).await?;
            Ok((ImageId::new(format!("(new image {ami_name})")), root))
        }
    }
}

/// Why no image can be reused: none of this family yet, a new source image, or changed
/// recipes, templates or variables (compared with the newest image of the family).
async fn rebuild_reason(
    cloud: &Cloud,
    image_name: &str,
    source: &ImageId,
) -> Result<String, BakeError> {
    let filter = ImageFilter {
        owners: vec!["self".to_string()],
        tags: Tags::from([(
            kiln_cloud::TAG_MANAGED_BY.to_string(),
            image_name.to_string(),
        )]),
        ..ImageFilter::default()
    };
    let images = retry_throttled(|| cloud.compute.describe_images(&filter))
        .await
        .map_err(|e| BakeError::cloud(format!("listing the images of {image_name}"), e))?;
    let newest = images
        .into_iter()
        .filter(|i| {
            let status = i.tags.get(naming::TAG_STATUS).map(String::as_str);
            status != Some(naming::STATUS_FAILED) && status != Some(naming::STATUS_PENDING)
        })
        .max_by_key(|i| i.creation_date);
    let Some(newest) = newest else {
        return Ok(format!("no image of {image_name} in {} yet", cloud.region));
    };
    let was = newest
        .tags
        .get(naming::TAG_SOURCE_IMAGE)
        .cloned()
        .unwrap_or_default();
    if was != source.as_str() {
        return Ok(format!(
            "the source image changed: {} was baked from {was}, the source is now {source}",
            newest.name
        ));
    }
    Ok(format!(
        "recipes, templates or variables changed since {} (same source image)",
        newest.name
    ))
}

/// The values the pipeline gave to variables the recipes mark secret. Secrets are normally
/// read at boot from Parameter Store and never given to a bake; any that are given are kept
/// out of every message kiln shows.
fn secret_values(spec: &BakeSpec) -> Secrets {
    let values = spec
        .rendered
        .secrets
        .iter()
        .filter_map(|name| spec.variables.get(name))
        .map(|value| match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect();
    Secrets(values)
}

fn validate(spec: &BakeSpec) -> Result<(), BakeError> {
    let invalid = |reason: String| Err(BakeError::InvalidSpec { reason });
    if !naming::is_safe_name(&spec.image_name) {
        return invalid(format!(
            "image name {:?} must be letters, digits, '-', '_' or '.'",
            spec.image_name
        ));
    }
    if let Some(version) = &spec.version {
        if !naming::is_safe_name(version) {
            return invalid(format!(
                "version {version:?} must be letters, digits, '-', '_' or '.'"
            ));
        }
    }
    // The longest generated version is `YYYY.MM.DD-NNNN`.
    let longest = ami_name(
        &spec.image_name,
        spec.version.as_deref().unwrap_or("0000.00.00-0000"),
    );
    if longest.len() > naming::MAX_IMAGE_NAME {
        return invalid(format!("AMI name {longest} is longer than 128 characters"));
    }
    if spec.rendered.steps.is_empty() {
        return invalid(format!("no steps to run for image {}", spec.image_name));
    }
    Ok(())
}

/// The source AMI's id and root device name: the id as written, or what the parameter or
/// channel holds, refused unless the region has it available.
pub async fn resolve_source(
    cloud: &Cloud,
    source: &SourceImage,
) -> Result<(ImageId, String), BakeError> {
    let id = match source {
        SourceImage::Id(id) => id.clone(),
        SourceImage::Parameter(_) | SourceImage::Channel { .. } => {
            read_source_parameter(cloud, source).await?
        }
    };

    let filter = ImageFilter {
        ids: vec![id.clone()],
        ..ImageFilter::default()
    };
    let images = match retry_throttled(|| cloud.compute.describe_images(&filter)).await {
        Ok(images) => images,
        Err(e) if e.is(kiln_cloud::ErrorKind::NotFound) => Vec::new(),
        Err(e) => return Err(BakeError::cloud(format!("describing source image {id}"), e)),
    };
    let image =
        images
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| BakeError::SourceImageNotFound {
                image: id.clone(),
                region: cloud.region.clone(),
            })?;
    if image.state != ImageState::Available {
        return Err(BakeError::SourceImageUnavailable {
            image: id,
            region: cloud.region.clone(),
            state: format!("{:?}", image.state).to_lowercase(),
        });
    }
    let root_device = image
        .block_devices
        .first()
        .map(|d| d.device_name.clone())
        .unwrap_or_else(|| DEFAULT_ROOT_DEVICE.to_string());
    Ok((id, root_device))
}

/// The AMI id a parameter or a channel holds.
async fn read_source_parameter(cloud: &Cloud, source: &SourceImage) -> Result<ImageId, BakeError> {
    let name = source.parameter_name().unwrap_or_default();
    let parameter = retry_throttled(|| cloud.parameters.get_parameter(&name, false))
        .await
        .map_err(|e| BakeError::cloud(format!("reading source parameter {name}"), e))?;
    let missing = || match source {
        SourceImage::Channel { image, channel } => BakeError::ChannelEmpty {
            image: image.clone(),
            channel: channel.clone(),
            region: cloud.region.clone(),
        },
        _ => BakeError::SourceParameterMissing {
            parameter: name.clone(),
            region: cloud.region.clone(),
        },
    };
    let parameter = parameter.ok_or_else(missing)?;
    Ok(ImageId::new(parameter.value.trim()))
}

/// The subnet the builder launches into: the one of the id, or the first by id of those
/// carrying the tags, so that repeated plans pick the same one.
pub async fn find_subnet(cloud: &Cloud, selector: &SubnetSelector) -> Result<Subnet, BakeError> {
    let (ids, tags) = match selector {
        SubnetSelector::Id(id) => (vec![id.clone()], Tags::new()),
        SubnetSelector::Tags(tags) => (Vec::new(), tags.clone()),
    };
    let shown = selector.to_string();
    let mut subnets = match retry_throttled(|| cloud.compute.describe_subnets(&ids, &tags)).await {
        Ok(subnets) => subnets,
        Err(e) if e.is(kiln_cloud::ErrorKind::NotFound) => Vec::new(),
        Err(e) => return Err(BakeError::cloud(format!("describing {shown}"), e)),
    };
    subnets.sort_by(|a, b| a.id.cmp(&b.id));
    subnets
        .into_iter()
        .next()
        .ok_or_else(|| BakeError::NoSubnet {
            selector: shown,
            region: cloud.region.clone(),
        })
}

async fn resolve_builder(
    cloud: &Cloud,
    spec: &BakeSpec,
    root_device: String,
) -> Result<ResolvedBuilder, BakeError> {
    let subnet = find_subnet(cloud, &spec.builder.subnet).await?;
    let volume = &spec.builder.root_volume;
    Ok(ResolvedBuilder {
        instance_type: spec.builder.instance_type.clone(),
        subnet_id: subnet.id,
        vpc_id: subnet.vpc_id,
        availability_zone: subnet.availability_zone,
        instance_profile: spec.builder.instance_profile.clone(),
        root_volume: RootVolume {
            device_name: root_device,
            size_gib: volume.size_gib,
            volume_type: volume.volume_type.clone(),
            encrypted: volume.encrypted,
            kms_key_id: volume.kms_key_id.clone(),
        },
    })
}

/// The newest available image of this account with the same input hash that did not
/// fail its test.
async fn find_reusable(
    cloud: &Cloud,
    image_name: &str,
    hash: &str,
) -> Result<Option<BakedImage>, BakeError> {
    let filter = ImageFilter {
        owners: vec!["self".to_string()],
        tags: Tags::from([(naming::TAG_INPUT_HASH.to_string(), hash.to_string())]),
        ..ImageFilter::default()
    };
    let images = retry_throttled(|| cloud.compute.describe_images(&filter))
        .await
        .map_err(|e| {
            BakeError::cloud(format!("looking for an image of {image_name} to reuse"), e)
        })?;
    let best = images
        .into_iter()
        .filter(|i| i.state == ImageState::Available)
        .filter(|i| {
            // A failed image, or one whose bake never finished, is not reused.
            let status = i.tags.get(naming::TAG_STATUS).map(String::as_str);
            status != Some(naming::STATUS_FAILED) && status != Some(naming::STATUS_PENDING)
        })
        .max_by_key(|i| i.creation_date);
    Ok(best.map(|image| BakedImage {
        version: image
            .tags
            .get(naming::TAG_VERSION)
            .cloned()
            .unwrap_or_default(),
        source_image: ImageId::new(
            image
                .tags
                .get(naming::TAG_SOURCE_IMAGE)
                .cloned()
                .unwrap_or_default(),
        ),
        id: image.id,
        name: image.name,
        region: cloud.region.clone(),
        input_hash: hash.to_string(),
    }))
}

/// The explicit version if free, else the next one of the day.
async fn decide_version(cloud: &Cloud, spec: &BakeSpec) -> Result<String, BakeError> {
    let pattern = match &spec.version {
        Some(version) => ami_name(&spec.image_name, version),
        None => format!(
            "{}-{}-*",
            spec.image_name,
            naming::version_day(cloud.clock.now())
        ),
    };
    let filter = ImageFilter {
        owners: vec!["self".to_string()],
        name: Some(pattern.clone()),
        ..ImageFilter::default()
    };
    let existing = retry_throttled(|| cloud.compute.describe_images(&filter))
        .await
        .map_err(|e| BakeError::cloud(format!("listing images named {pattern}"), e))?;

    match &spec.version {
        Some(version) => match existing.into_iter().find(|i| i.name == pattern) {
            Some(taken) => Err(BakeError::NameTaken {
                name: pattern,
                image: taken.id,
                region: cloud.region.clone(),
            }),
            None => Ok(version.clone()),
        },
        None => Ok(next_version(
            &spec.image_name,
            cloud.clock.now(),
            existing.iter().map(|i| i.name.as_str()),
        )),
    }
}

fn image_tags(plan: &BakePlan) -> Tags {
    let mut tags = Tags::from([
        (naming::TAG_INPUT_HASH.to_string(), plan.input_hash.clone()),
        (naming::TAG_VERSION.to_string(), plan.version.clone()),
        (
            naming::TAG_SOURCE_IMAGE.to_string(),
            plan.source_image.to_string(),
        ),
        (
            naming::TAG_RECIPES.to_string(),
            tag_value(&plan.recipes.join(",")),
        ),
        (kiln_cloud::TAG_RUN_ID.to_string(), plan.run_id.clone()),
        (
            kiln_cloud::TAG_ROLE.to_string(),
            naming::ROLE_IMAGE.to_string(),
        ),
        (
            kiln_cloud::TAG_MANAGED_BY.to_string(),
            plan.image_name.clone(),
        ),
        (naming::TAG_NAME.to_string(), plan.ami_name.clone()),
        (
            naming::TAG_STATUS.to_string(),
            naming::STATUS_PENDING.to_string(),
        ),
    ]);
    if let Some(commit) = &plan.commit {
        tags.insert(naming::TAG_COMMIT.to_string(), tag_value(commit));
    }
    if matches!(plan.source, SourceImage::Channel { .. }) {
        let parent = plan.source_image.to_string();
        tags.insert(naming::TAG_PARENT_IMAGE.to_string(), parent);
    }
    tags
}

fn changes(plan: &BakePlan) -> Vec<PlannedChange> {
    let change = |action: &str, resource: String, detail: String| PlannedChange {
        action: action.to_string(),
        resource,
        detail,
    };
    if let Some(image) = &plan.reuse {
        return vec![change(
            "reuse",
            format!("image {} ({})", image.id, image.name),
            "same input hash: nothing is launched or created".to_string(),
        )];
    }
    let b = &plan.builder;
    let count = |phases: &[StepPhase]| plan.steps_of(phases).len();
    let build = count(&[StepPhase::Build, StepPhase::Validate, StepPhase::Hygiene]);
    let test = count(&[StepPhase::Test]);
    vec![
        change(
            "create",
            format!("security group {}", security_group_name(plan)),
            format!("in {}, no ingress; deleted at the end", b.vpc_id),
        ),
        change(
            "launch",
            "builder instance".to_string(),
            format!(
                "{} from {} in {}",
                b.instance_type, plan.source_image, b.subnet_id
            ),
        ),
        change(
            "run",
            format!("{build} steps"),
            "on the builder, one at a time".into(),
        ),
        change(
            "create",
            format!("image {}", plan.ami_name),
            "from the builder".into(),
        ),
        change(
            "launch",
            "test instance".to_string(),
            format!(
                "{} from the new image, runs {test} test steps",
                b.instance_type
            ),
        ),
        change(
            "terminate",
            "builder and test instances".to_string(),
            "at the end, whatever the outcome".into(),
        ),
        change(
            "delete",
            format!("security group {}", security_group_name(plan)),
            "after the instances are terminated".into(),
        ),
    ]
}

/// The builder security group's name: one per bake.
pub fn security_group_name(plan: &BakePlan) -> String {
    format!("kiln-{}", plan.run_id)
}
