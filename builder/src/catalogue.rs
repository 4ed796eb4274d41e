//! The image catalogue: which versions exist in which region, which channels point at
//! them, and what uses them; promotion between channels, and retention.
//!
//! Retention never touches an image that any launch template version (not only the
//! default one), any Auto Scaling group, any running instance or any channel uses
//! (PITFALLS 13). A pruned image is deprecated first, then deregistered, then every
//! snapshot of every block device is deleted, in every region (PITFALLS 14).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kiln_cloud::{
    Account, Cloud, CloudError, ErrorKind, Image, ImageFilter, ImageId, ImageState, InstanceFilter,
    SnapshotId, Tags, Timestamp,
};
use serde::Serialize;

use crate::distribute::{is_failed, put_channel};
use crate::naming::{self, version_key};
use crate::wait::retry_throttled;

/// The root of every channel parameter.
pub const CHANNEL_ROOT: &str = "/kiln";

/// Why a catalogue operation failed: each names the image, the region and the next step.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("{action} failed: {source}; check permissions and retry")]
    Cloud {
        action: String,
        #[source]
        source: CloudError,
    },
    #[error(
        "no available image {image} version {version} in {regions}; list versions with \
         `kiln images --image {image}`"
    )]
    VersionNotFound {
        image: String,
        version: String,
        regions: String,
    },
    #[error(
        "image {image} version {version} ({id} in {region}) failed its test or was removed \
         and can never be promoted; bake a new version"
    )]
    NotPromotable {
        image: String,
        version: String,
        id: ImageId,
        region: String,
    },
    #[error(
        "channel {parameter} is empty in {region}; publish an image to it with a bake or \
         `kiln promote`"
    )]
    ChannelEmpty { parameter: String, region: String },
    #[error(
        "channel {parameter} in {region} points at {id}, which {problem}; promote a good \
         version to the channel"
    )]
    ChannelBroken {
        parameter: String,
        region: String,
        id: ImageId,
        problem: String,
    },
}

fn cloud_error(action: String) -> impl FnOnce(CloudError) -> CatalogueError {
    move |source| CatalogueError::Cloud { action, source }
}

/// One image of the catalogue, in one region.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogueEntry {
    pub region: String,
    pub id: ImageId,
    /// The AMI name.
    pub name: String,
    /// The image family (`kiln:managed-by`).
    pub image: String,
    pub version: String,
    /// `available`, `pending`, `failed`, ...
    pub state: String,
    /// True when the image failed its test (`kiln:status=failed`).
    pub test_failed: bool,
    pub created: Option<Timestamp>,
    pub deprecated_at: Option<Timestamp>,
    pub parent: Option<String>,
    /// Channel parameters that point at this image.
    pub channels: Vec<String>,
    /// Launch template versions, groups and instances that use this image.
    pub used_by: Vec<String>,
    #[serde(skip)]
    pub snapshots: Vec<SnapshotId>,
}

impl CatalogueEntry {
    fn from_image(region: &str, image: Image) -> Self {
        let tag = |key: &str| image.tags.get(key).cloned();
        Self {
            region: region.to_string(),
            name: image.name.clone(),
            image: tag(kiln_cloud::TAG_MANAGED_BY).unwrap_or_default(),
            version: tag(naming::TAG_VERSION).unwrap_or_default(),
            state: format!("{:?}", image.state).to_lowercase(),
            test_failed: is_failed(&image),
            created: image.creation_date,
            deprecated_at: image.deprecation_time,
            parent: tag(naming::TAG_PARENT_IMAGE),
            channels: Vec::new(),
            used_by: Vec::new(),
            snapshots: image
                .block_devices
                .iter()
                .filter_map(|d| d.snapshot_id.clone())
                .collect(),
            id: image.id,
        }
    }

    /// Why retention must not touch this image, if anything forbids it.
    pub fn protected_because(&self) -> Option<String> {
        if !self.used_by.is_empty() {
            return Some(format!("in use by {}", self.used_by.join(", ")));
        }
        if !self.channels.is_empty() {
            return Some(format!("in channel {}", self.channels.join(", ")));
        }
        None
    }
}

/// What uses which image in one region.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub users: BTreeMap<ImageId, Vec<String>>,
}

impl Usage {
    fn add(&mut self, image: &ImageId, user: String) {
        let users = self.users.entry(image.clone()).or_default();
        if !users.contains(&user) {
            users.push(user);
        }
    }
}

/// Every launch template version (all of them, not only the default), every group and
/// every instance not terminated, by the image they use.
pub async fn usage(cloud: &Cloud) -> Result<Usage, CatalogueError> {
    let mut usage = Usage::default();
    let region = &cloud.region;
    let templates = retry_throttled(|| cloud.compute.describe_launch_templates())
        .await
        .map_err(cloud_error(format!("listing launch templates in {region}")))?;
    let mut by_version = BTreeMap::new();
    for template in &templates {
        let reference = kiln_cloud::TemplateRef::Id(template.id.clone());
        let versions = retry_throttled(|| {
            cloud
                .compute
                .describe_launch_template_versions(&reference, &[])
        })
        .await
        .map_err(cloud_error(format!(
            "reading versions of {}",
            template.name
        )))?;
        for v in versions {
            if let Some(image) = &v.data.image_id {
                let user = format!("launch template {} version {}", template.name, v.version);
                usage.add(image, user);
                by_version.insert((template.name.clone(), v.version), image.clone());
                by_version.insert((template.id.to_string(), v.version), image.clone());
            }
        }
    }
    groups_usage(cloud, &templates, &by_version, &mut usage).await?;
    instances_usage(cloud, &mut usage).await?;
    Ok(usage)
}

async fn groups_usage(
    cloud: &Cloud,
    templates: &[kiln_cloud::LaunchTemplate],
    by_version: &BTreeMap<(String, i64), ImageId>,
    usage: &mut Usage,
) -> Result<(), CatalogueError> {
    let region = &cloud.region;
    let groups = retry_throttled(|| cloud.scaling.describe_groups(&[]))
        .await
        .map_err(cloud_error(format!("listing groups in {region}")))?;
    for group in groups {
        let pinned = group.launch_template.iter();
        let instances = group
            .instances
            .iter()
            .filter_map(|i| i.launch_template.as_ref());
        for lt in pinned.chain(instances) {
            let key = lt
                .template_name
                .clone()
                .or_else(|| lt.template_id.as_ref().map(ToString::to_string))
                .unwrap_or_default();
            let version = match lt.numbered_version() {
                Some(n) => Some(n),
                None => templates
                    .iter()
                    .find(|t| t.name == key || t.id.as_str() == key)
                    .map(|t| match lt.version.as_str() {
                        "$Latest" => t.latest_version,
                        _ => t.default_version,
                    }),
            };
            if let Some(image) = version.and_then(|v| by_version.get(&(key.clone(), v))) {
                usage.add(image, format!("group {}", group.name));
            }
        }
    }
    Ok(())
}

async fn instances_usage(cloud: &Cloud, usage: &mut Usage) -> Result<(), CatalogueError> {
    let filter = InstanceFilter {
        exclude_terminated: true,
        ..InstanceFilter::default()
    };
    let region = &cloud.region;
    let instances = retry_throttled(|| cloud.compute.describe_instances(&filter))
        .await
        .map_err(cloud_error(format!("listing instances in {region}")))?;
    for instance in instances.iter().filter(|i| !i.state.is_ending()) {
        usage.add(&instance.image_id, format!("instance {}", instance.id));
    }
    Ok(())
}

/// Channel parameter names by the image they point at.
pub async fn channels(cloud: &Cloud) -> Result<BTreeMap<ImageId, Vec<String>>, CatalogueError> {
    let region = &cloud.region;
    let parameters =
        retry_throttled(|| cloud.parameters.get_parameters_by_path(CHANNEL_ROOT, false))
            .await
            .map_err(cloud_error(format!(
                "listing channels under {CHANNEL_ROOT} in {region}"
            )))?;
    let mut channels: BTreeMap<ImageId, Vec<String>> = BTreeMap::new();
    for parameter in parameters {
        let id = ImageId::new(parameter.value.trim());
        channels.entry(id).or_default().push(parameter.name);
    }
    Ok(channels)
}

/// Every kiln image of one region (of one family when `image_name` is given), oldest
/// version first, with its channels and users.
pub async fn list(
    cloud: &Cloud,
    image_name: Option<&str>,
) -> Result<Vec<CatalogueEntry>, CatalogueError> {
    let mut tags = Tags::from([(kiln_cloud::TAG_ROLE.into(), naming::ROLE_IMAGE.into())]);
    if let Some(name) = image_name {
        tags.insert(kiln_cloud::TAG_MANAGED_BY.into(), name.into());
    }
    let filter = ImageFilter {
        owners: vec!["self".into()],
        tags,
        ..ImageFilter::default()
    };
    let region = &cloud.region;
    let images = retry_throttled(|| cloud.compute.describe_images(&filter))
        .await
        .map_err(cloud_error(format!("listing images in {region}")))?;
    let usage = usage(cloud).await?;
    let channels = channels(cloud).await?;
    let mut entries: Vec<CatalogueEntry> = images
        .into_iter()
        .map(|image| {
            let mut entry = CatalogueEntry::from_image(region, image);
            entry.used_by = usage.users.get(&entry.id).cloned().unwrap_or_default();
            entry.channels = channels.get(&entry.id).cloned().unwrap_or_default();
            entry
        })
        .collect();
    entries.sort_by_key(|e| (e.image.clone(), version_key(&e.version), e.id.clone()));
    Ok(entries)
}

/// [`list`] in every region given, region by region.
pub async fn list_regions(
    account: &dyn Account,
    regions: &[String],
    image_name: Option<&str>,
) -> Result<Vec<CatalogueEntry>, CatalogueError> {
    let mut entries = Vec::new();
    for region in regions {
        let cloud = open(account, region).await?;
        entries.extend(list(&cloud, image_name).await?);
    }
    Ok(entries)
}

async fn open(account: &dyn Account, region: &str) -> Result<Cloud, CatalogueError> {
    account
        .region(region)
        .await
        .map_err(cloud_error(format!("opening region {region}")))
}

// ---------------------------------------------------------------------------------------
// Channels

/// One region's promotion.
#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    pub region: String,
    pub parameter: String,
    pub image: ImageId,
    /// The image the channel pointed at before (still in the parameter's history).
    pub previous: Option<String>,
    /// The parameter's version after the change (unchanged when it already pointed here).
    pub parameter_version: i64,
}

/// Points `channel` at `version` of `image_name` in every region that has that version.
/// A version that failed its test, or is not available, is refused in every region.
pub async fn promote(
    account: &dyn Account,
    regions: &[String],
    image_name: &str,
    version: &str,
    channel: &str,
) -> Result<Vec<Promotion>, CatalogueError> {
    let mut found = Vec::new();
    for region in regions {
        let cloud = open(account, region).await?;
        if let Some(image) = find_version(&cloud, image_name, version).await? {
            let promotable = image.state == ImageState::Available && !is_failed(&image);
            if !promotable {
                return Err(CatalogueError::NotPromotable {
                    image: image_name.into(),
                    version: version.into(),
                    id: image.id,
                    region: region.clone(),
                });
            }
            found.push((cloud, image.id));
        }
    }
    if found.is_empty() {
        return Err(CatalogueError::VersionNotFound {
            image: image_name.into(),
            version: version.into(),
            regions: regions.join(", "),
        });
    }
    let mut promotions = Vec::new();
    for (cloud, id) in found {
        promotions.push(point_channel(&cloud, image_name, channel, &id).await?);
    }
    Ok(promotions)
}

/// The image of `version` in this region, whatever its state (deregistered ones are
/// not listed by EC2).
async fn find_version(
    cloud: &Cloud,
    image_name: &str,
    version: &str,
) -> Result<Option<Image>, CatalogueError> {
    let filter = ImageFilter {
        owners: vec!["self".into()],
        tags: Tags::from([
            (kiln_cloud::TAG_MANAGED_BY.into(), image_name.into()),
            (naming::TAG_VERSION.into(), version.into()),
        ]),
        ..ImageFilter::default()
    };
    let region = &cloud.region;
    let images = retry_throttled(|| cloud.compute.describe_images(&filter))
        .await
        .map_err(cloud_error(format!(
            "finding {image_name} {version} in {region}"
        )))?;
    Ok(images.into_iter().max_by_key(|i| i.creation_date))
}

async fn point_channel(
    cloud: &Cloud,
    image_name: &str,
    channel: &str,
    id: &ImageId,
) -> Result<Promotion, CatalogueError> {
    let parameter = naming::channel_parameter(image_name, channel);
    let region = &cloud.region;
    let current = retry_throttled(|| cloud.parameters.get_parameter(&parameter, false))
        .await
        .map_err(cloud_error(format!("reading {parameter} in {region}")))?;
    let previous = current.as_ref().map(|p| p.value.clone());
    let parameter_version = match &current {
        Some(p) if p.value == id.as_str() => p.version,
        _ => put_channel(cloud, &parameter, id, "promoted by kiln")
            .await
            .map_err(cloud_error(format!("writing {parameter} in {region}")))?,
    };
    tracing::info!(%region, %parameter, image = %id, ?previous, "channel promoted");
    Ok(Promotion {
        region: region.clone(),
        parameter,
        image: id.clone(),
        previous,
        parameter_version,
    })
}

/// The image a channel points at in this region; refused when the image is gone or
/// failed its test.
pub async fn resolve_channel(
    cloud: &Cloud,
    image_name: &str,
    channel: &str,
) -> Result<ImageId, CatalogueError> {
    let parameter = naming::channel_parameter(image_name, channel);
    let region = cloud.region.clone();
    let current = retry_throttled(|| cloud.parameters.get_parameter(&parameter, false))
        .await
        .map_err(cloud_error(format!("reading {parameter} in {region}")))?;
    let Some(current) = current else {
        return Err(CatalogueError::ChannelEmpty { parameter, region });
    };
    let id = ImageId::new(current.value.trim());
    let filter = ImageFilter {
        ids: vec![id.clone()],
        ..ImageFilter::default()
    };
    let problem = match retry_throttled(|| cloud.compute.describe_images(&filter)).await {
        Ok(images) => match images.into_iter().find(|i| i.id == id) {
            Some(image) if is_failed(&image) => Some("failed its test"),
            Some(image) if image.state != ImageState::Available => Some("is not available"),
            Some(_) => None,
            None => Some("does not exist"),
        },
        Err(e) if e.is(ErrorKind::NotFound) => Some("does not exist"),
        Err(e) => return Err(cloud_error(format!("describing {id} in {region}"))(e)),
    };
    match problem {
        None => Ok(id),
        Some(problem) => Err(CatalogueError::ChannelBroken {
            parameter,
            region,
            id,
            problem: problem.into(),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Retention

/// What to keep.
#[derive(Debug, Clone)]
pub struct PruneSpec {
    /// Only this family; every kiln image when `None`.
    pub image_name: Option<String>,
    /// The newest versions kept per family (failed versions do not count).
    pub keep: usize,
    /// Versions younger than this are kept whatever their rank.
    pub older_than: Duration,
    /// Say what would be removed; change nothing.
    pub dry_run: bool,
}

/// One image retention removed (or would remove).
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    pub region: String,
    pub id: ImageId,
    pub name: String,
    pub version: String,
    pub snapshots: Vec<SnapshotId>,
}

/// One image retention kept although it was old enough, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub region: String,
    pub id: ImageId,
    pub version: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub removed: Vec<Pruned>,
    pub kept: Vec<Kept>,
    /// Removals that failed part way, with what is left.
    pub errors: Vec<String>,
}

/// Applies retention to every kiln image in `regions`. A version is the unit: it is
/// removed from every region or from none, and any use of any of its copies keeps it.
pub async fn prune(
    account: &dyn Account,
    regions: &[String],
    spec: &PruneSpec,
    now: Timestamp,
) -> Result<PruneReport, CatalogueError> {
    let entries = list_regions(account, regions, spec.image_name.as_deref()).await?;
    let (remove, kept) = decide(&entries, spec, now);
    let mut report = PruneReport {
        dry_run: spec.dry_run,
        kept,
        ..PruneReport::default()
    };
    for entry in remove {
        let pruned = Pruned {
            region: entry.region.clone(),
            id: entry.id.clone(),
            name: entry.name.clone(),
            version: entry.version.clone(),
            snapshots: entry.snapshots.clone(),
        };
        if !spec.dry_run {
            let cloud = open(account, &entry.region).await?;
            if let Err(e) = remove_image(&cloud, entry, now).await {
                report.errors.push(e);
                continue;
            }
        }
        report.removed.push(pruned);
    }
    Ok(report)
}

/// The entries to remove, and the old-enough ones kept with the reason.
fn decide<'a>(
    entries: &'a [CatalogueEntry],
    spec: &PruneSpec,
    now: Timestamp,
) -> (Vec<&'a CatalogueEntry>, Vec<Kept>) {
    let cutoff = now - chrono::Duration::from_std(spec.older_than).unwrap_or_default();
    let mut versions: BTreeMap<(&str, &str), Vec<&CatalogueEntry>> = BTreeMap::new();
    for entry in entries {
        versions
            .entry((&entry.image, &entry.version))
            .or_default()
            .push(entry);
    }
    let mut families: BTreeMap<&str, Vec<(&str, bool)>> = BTreeMap::new();
    for ((family, version), copies) in &versions {
        let failed = copies.iter().any(|c| c.test_failed);
        families.entry(family).or_default().push((version, failed));
    }
    let mut newest: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (family, list) in &mut families {
        list.sort_by_key(|(v, _)| std::cmp::Reverse(version_key(v)));
        let good = list.iter().filter(|(_, failed)| !failed);
        newest.extend(good.take(spec.keep).map(|(v, _)| (*family, *v)));
    }

    let (mut remove, mut kept) = (Vec::new(), Vec::new());
    for (key, copies) in versions {
        if newest.contains(&key) || copies.iter().any(|c| c.created.is_some_and(|t| t > cutoff)) {
            continue;
        }
        let protection: Vec<String> = copies
            .iter()
            .filter_map(|c| Some(format!("{} in {}", c.protected_because()?, c.region)))
            .collect();
        if protection.is_empty() {
            remove.extend(copies);
            continue;
        }
        kept.extend(copies.iter().map(|c| Kept {
            region: c.region.clone(),
            id: c.id.clone(),
            version: c.version.clone(),
            reason: protection.join("; "),
        }));
    }
    (remove, kept)
}

/// Deprecates, deregisters, then deletes every snapshot; the error says what is left.
async fn remove_image(cloud: &Cloud, entry: &CatalogueEntry, now: Timestamp) -> Result<(), String> {
    let what = format!("image {} ({}) in {}", entry.id, entry.name, cloud.region);
    let id = &entry.id;
    if entry.deprecated_at.is_none() {
        retry_throttled(|| cloud.compute.enable_image_deprecation(id, now))
            .await
            .map_err(|e| format!("{what}: deprecation failed, nothing removed: {e}"))?;
    }
    match retry_throttled(|| cloud.compute.deregister_image(id)).await {
        Ok(()) => {}
        Err(e) if e.is(ErrorKind::NotFound) => {}
        Err(e) => {
            return Err(format!(
                "{what}: deregistration failed, nothing removed: {e}"
            ))
        }
    }
    let mut left = Vec::new();
    for snapshot in &entry.snapshots {
        match retry_throttled(|| cloud.compute.delete_snapshot(snapshot)).await {
            Ok(()) => {}
            Err(e) if e.is(ErrorKind::NotFound) => {}
            Err(e) => left.push(format!("{snapshot} ({e})")),
        }
    }
    tracing::info!(image = %id, region = %cloud.region, "image pruned");
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what} was deregistered but snapshots are left: {}; delete them by hand",
            left.join(", ")
        ))
    }
}
