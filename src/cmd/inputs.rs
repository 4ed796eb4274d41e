//! What a pipeline names in the account, checked before anything changes: the builder's
//! subnet, each image's source (an AMI id, a parameter, a channel) and the secret
//! parameters. `plan`, `bake` and `pipeline run` refuse one the region does not have as
//! bad input at its line, as they refuse a misspelt group, instead of failing the bake
//! once it has started (or, for a layer, once the layers below it were baked).

use kiln_builder::recipe::Seg;
use kiln_builder::BakeError;
use kiln_cloud::throttle::retry_throttled;
use kiln_cloud::{Cloud, ImageFilter, ImageId};

use crate::exit::{self, Exit};
use crate::pipeline::{ImageSection, Pipeline, SourceSection, SubnetSection};

/// The fix for a name the region does not have, as for the targets' names.
const WRONG_NAME_OR_REGION: &str =
    "fix the name, or the region it is looked for in (the image's `region:`, or --region)";

/// Checks the subnet, every section's source and the secret parameters.
pub async fn check(cloud: &Cloud, pipeline: &Pipeline) -> anyhow::Result<()> {
    let subnet = &pipeline.file.builder.subnet;
    if let Err(error) = kiln_builder::plan::find_subnet(cloud, &super::subnet_of(subnet)).await {
        return Err(refused(pipeline, subnet_path(subnet), error, None));
    }
    for (index, section) in pipeline.sections().into_iter().enumerate() {
        if published_before(pipeline, index, section) {
            // A layer below publishes it in this run, before this section is baked.
            continue;
        }
        let source = super::source_of(section);
        match kiln_builder::plan::resolve_source(cloud, &source).await {
            Ok((image, root_device)) => root_size(cloud, pipeline, &image, &root_device).await?,
            Err(error) => {
                let mut at = pipeline.section_path(section);
                at.extend(source_path(section));
                return Err(refused(pipeline, at, error, Some(section)));
            }
        }
    }
    crate::secrets::check(cloud, pipeline).await
}

/// A root volume the file sizes below the source image's root snapshot: EC2 refuses the
/// builder (InvalidBlockDeviceMapping) once the bake has begun.
async fn root_size(
    cloud: &Cloud,
    pipeline: &Pipeline,
    image: &ImageId,
    root_device: &str,
) -> anyhow::Result<()> {
    let Some(wanted) = pipeline.file.builder.root_volume.as_ref() else {
        return Ok(());
    };
    let filter = ImageFilter {
        ids: vec![image.clone()],
        ..ImageFilter::default()
    };
    let images = retry_throttled(|| cloud.compute.describe_images(&filter)).await?;
    let snapshot = images
        .iter()
        .flat_map(|i| &i.block_devices)
        .find(|d| d.device_name == root_device)
        .and_then(|d| d.volume_size_gib);
    let Some(snapshot) = snapshot else {
        return Ok(());
    };
    if wanted.size_gib.0 >= i128::from(snapshot) {
        return Ok(());
    }
    let at = [
        Seg::Key("builder"),
        Seg::Key("root_volume"),
        Seg::Key("size_gib"),
    ];
    let message = format!(
        "root volume size {} GiB is smaller than the root snapshot of source image {image} \
         ({snapshot} GiB) in {}",
        wanted.size_gib, cloud.region
    );
    let hint = format!("set size_gib to {snapshot} or more");
    Err(Exit::new(exit::BAD_INPUT, pipeline.invalid_at(&at, message, hint)).into())
}

fn subnet_path(subnet: &SubnetSection) -> Vec<Seg<'static>> {
    let key = match subnet {
        SubnetSection::Id(_) => "id",
        SubnetSection::Tags(_) => "tags",
    };
    vec![Seg::Key("builder"), Seg::Key("subnet"), Seg::Key(key)]
}

fn source_path(section: &ImageSection) -> Vec<Seg<'static>> {
    let key = match &section.source {
        SourceSection::Parameter(_) => "parameter",
        SourceSection::ImageId(_) => "image_id",
        SourceSection::Channel(_) => "channel",
    };
    vec![Seg::Key("source"), Seg::Key(key)]
}

/// Whether a section baked before this one (the `index`th) publishes the channel it
/// reads, as each layer below the image is published to `distribute.channel` at once.
fn published_before(pipeline: &Pipeline, index: usize, section: &ImageSection) -> bool {
    let SourceSection::Channel(reads) = &section.source else {
        return false;
    };
    let channel = pipeline.file.distribute.channel.as_deref();
    let below = &pipeline.sections()[..index];
    channel == Some(reads.channel.as_str()) && below.iter().any(|s| s.name == reads.image)
}

/// A lookup's failure: bad input at `at` when the region lacks what the file names,
/// else the bake's own error with its exit code.
fn refused(
    pipeline: &Pipeline,
    at: Vec<Seg<'_>>,
    error: BakeError,
    section: Option<&ImageSection>,
) -> anyhow::Error {
    let Some((message, hint)) = missing(&error, section) else {
        return super::bake::exit_for(error);
    };
    Exit::new(exit::BAD_INPUT, pipeline.invalid_at(&at, message, hint)).into()
}

/// What the file names that the region lacks, and the fix; `None` for other failures.
fn missing(error: &BakeError, section: Option<&ImageSection>) -> Option<(String, String)> {
    let via = section.map(|s| &s.source);
    Some(match error {
        BakeError::NoSubnet { selector, region } => (
            format!("no subnet matches {selector} in {region}"),
            WRONG_NAME_OR_REGION.to_string(),
        ),
        BakeError::SourceParameterMissing { parameter, region } => (
            format!("source parameter `{parameter}` does not exist in {region}"),
            WRONG_NAME_OR_REGION.to_string(),
        ),
        BakeError::ChannelEmpty {
            image,
            channel,
            region,
        } => (
            format!(
                "channel `{channel}` of image `{image}` is empty in {region} (no parameter \
                 /kiln/{image}/{channel})"
            ),
            format!(
                "bake {image} and publish it to `{channel}` first (a layer of this file \
                 does so in the run when `distribute.channel` is `{channel}`), or `kiln \
                 promote` a version to it"
            ),
        ),
        BakeError::SourceImageNotFound { image, region } => (
            image_message(via, image, &format!("does not exist in {region}")),
            image_hint(via),
        ),
        BakeError::SourceImageUnavailable {
            image,
            region,
            state,
        } => (
            image_message(
                via,
                image,
                &format!("is {state} in {region}, not available"),
            ),
            image_hint(via),
        ),
        _ => return None,
    })
}

/// What is wrong with the source image, named as the file reaches it: by its id, or
/// through the parameter or channel that holds it.
fn image_message(source: Option<&SourceSection>, image: &ImageId, what: &str) -> String {
    match source {
        Some(SourceSection::Parameter(name)) => {
            format!("source parameter `{name}` holds {image}, which {what}")
        }
        Some(SourceSection::Channel(c)) => format!(
            "channel `{}` of image `{}` points at {image}, which {what}",
            c.channel, c.image
        ),
        _ => format!("source image {image} {what}"),
    }
}

fn image_hint(source: Option<&SourceSection>) -> String {
    match source {
        Some(SourceSection::Channel(_)) => "promote an available version to the channel \
                                            (`kiln promote`), or bake the image below again"
            .to_string(),
        Some(SourceSection::Parameter(_)) => "point the parameter at an available image, or \
                                              name another source"
            .to_string(),
        _ => format!("{WRONG_NAME_OR_REGION}, and check that this account may launch it"),
    }
}
