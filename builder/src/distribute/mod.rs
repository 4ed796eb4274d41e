//! Distribution: after a successful (and tested) bake, the image is copied to the other
//! regions in parallel, shared with accounts, organizations and OUs, and published to a
//! Parameter Store channel (`/kiln/<image>/<channel>`) in every region it is in.
//!
//! Each region is one task; a failure in one region is reported beside the others'
//! results in a [`DistributionReport`], never hidden and never stopping the others.
//! Copies into one destination region are bounded by [`MAX_COPIES_PER_REGION`]
//! (PITFALLS 15). A copy that already exists (same name and input hash) is reused, so a
//! monthly run that reuses its image re-copies nothing.
//!
//! Copies come first, sharing and channels after, so that no channel points at an image
//! that a cancelled distribution is about to remove. Every copy started here is tagged
//! with the distributing run's id and `kiln:status=pending`, and written to the run's
//! journal (with its snapshots, once EC2 names them) the moment CopyImage returns; a killed
//! run's copy is therefore found by `kiln gc` in its region. What happens to a copy:
//! - its region's copy fails or times out: the copy and its snapshots are removed there;
//!   the copies that succeeded elsewhere are kept (a retry reuses them), and the report
//!   says which region failed;
//! - the distribution is cancelled before every copy is done: every copy it started, in
//!   every region, is removed, finished or not, and nothing is shared or published;
//! - every copy is done: the good ones are tagged `kiln:status=ready` and forgotten by
//!   the journal (they are the result), then shared and published.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use kiln_cloud::progress::PROGRESS_TARGET;
use kiln_cloud::{
    Account, Cloud, ErrorKind, Event, Image, ImageFilter, ImageId, LaunchPermissions, Level,
    ParameterType, Progress, PutParameter, Tags, Timestamp, TAG_RUN_ID,
};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::bake::BakeOutcome;
use crate::journal::{Fate, Journal, MemoryJournal, Record, ResourceKind};
use crate::naming;
use crate::plan::BakedImage;
use crate::wait::retry_throttled;

mod copy;
use copy::Copy;

/// At most this many image copies run at once into one destination region. EBS allows
/// only a few concurrent snapshot copies per destination region and account (20 in
/// total, fewer cross-region for large or encrypted snapshots), and an AMI copy holds one
/// per block device: five images of up to four volumes stay under the limit and leave
/// room for copies other tools start (PITFALLS 15).
pub const MAX_COPIES_PER_REGION: usize = 5;

/// How long one copy may take to become available. Cross-region copies of a fresh 20 GiB
/// image take ten to twenty minutes; encrypted and larger ones take much longer.
pub const DEFAULT_COPY_BUDGET: Duration = Duration::from_secs(90 * 60);

/// The channel parameters' data type: SSM then checks the value is an AMI id, and launch
/// templates may name the parameter as their image (`resolve:ssm:`).
pub const CHANNEL_DATA_TYPE: &str = "aws:ec2:image";

/// Where and how an image is distributed.
#[derive(Debug, Clone, Default)]
pub struct DistributeSpec {
    /// Regions to copy to, besides the image's own.
    pub regions: Vec<String>,
    /// The channel to publish to in every region the image reaches, if any.
    pub channel: Option<String>,
    pub launch_permissions: LaunchPermissions,
    /// A customer-managed KMS key per destination region; a region listed here gets an
    /// encrypted copy with its key.
    pub kms_keys: BTreeMap<String, String>,
    /// Encrypt copies even where no key is named (with the region's default EBS key).
    pub encrypted: bool,
    /// How long each copy may take; [`DEFAULT_COPY_BUDGET`] when `None`.
    pub copy_budget: Option<Duration>,
    /// Only the copies: the image's own region (sharing, channel) is left out of this
    /// call, as when it was done first so that a layer above could start at once.
    pub copies_only: bool,
}

impl DistributeSpec {
    /// The same distribution in the image's own region only: sharing and the channel.
    pub fn home_only(&self) -> Self {
        Self {
            regions: Vec::new(),
            copies_only: false,
            ..self.clone()
        }
    }

    /// The same distribution without the image's own region.
    pub fn copies(&self) -> Self {
        Self {
            copies_only: true,
            ..self.clone()
        }
    }
}

/// What happened in one region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionOutcome {
    pub region: String,
    /// `ok` or `failed`.
    pub status: String,
    /// The image in this region (the original in its own region, else the copy).
    pub image: Option<ImageId>,
    /// True when an existing copy was found and nothing was copied.
    pub reused: bool,
    /// The channel parameter written (or already pointing at the image), if any.
    pub channel: Option<String>,
    /// Seconds this region's work took on the cloud's clock.
    pub seconds: u64,
    pub error: Option<String>,
}

impl RegionOutcome {
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Every region's outcome, the image's own region first.
#[derive(Debug, Clone, Serialize)]
pub struct DistributionReport {
    pub image_name: String,
    pub version: String,
    pub regions: Vec<RegionOutcome>,
    /// Seconds the whole distribution took on the cloud's clock.
    pub seconds: u64,
    /// True when it was cancelled before its copies became the result: every copy it
    /// started was removed, and nothing was shared or published.
    pub cancelled: bool,
}

impl DistributionReport {
    /// This report followed by `later`'s regions (the copies of a split distribution).
    pub fn merge(mut self, later: DistributionReport) -> Self {
        self.regions.extend(later.regions);
        self.seconds = self.seconds.max(later.seconds);
        self.cancelled |= later.cancelled;
        self
    }

    pub fn failed(&self) -> Vec<&RegionOutcome> {
        self.regions.iter().filter(|r| !r.is_ok()).collect()
    }

    /// `region:ami` for every region that has the image (Packer's artifact id form).
    pub fn artifact_id(&self) -> String {
        let ids: Vec<String> = self
            .regions
            .iter()
            .filter_map(|r| Some(format!("{}:{}", r.region, r.image.as_ref()?)))
            .collect();
        ids.join(",")
    }
}

/// One region's failure, with what to do next.
#[derive(Debug, thiserror::Error)]
enum RegionError {
    #[error("{action} failed: {source}")]
    Cloud {
        action: String,
        source: kiln_cloud::CloudError,
    },
    #[error(
        "copy {copy} of {source_image} into {region} failed: {reason}; fix the cause (KMS key \
         grants, snapshot copy limits) and distribute again"
    )]
    CopyFailed {
        copy: ImageId,
        source_image: String,
        region: String,
        reason: String,
    },
    #[error(
        "copy {copy} into {region} was not available after {waited:?} and was removed; raise \
         the copy budget (distribute.copy_timeout) and distribute again"
    )]
    CopyTimedOut {
        copy: ImageId,
        region: String,
        waited: Duration,
    },
    #[error("refused: {0}")]
    Refused(String),
    #[error("cancelled in {region}{note}")]
    Cancelled {
        region: String,
        /// What the cancellation removed or could not remove there.
        note: String,
    },
}

fn cloud_error(action: impl Into<String>) -> impl FnOnce(kiln_cloud::CloudError) -> RegionError {
    let action = action.into();
    move |source| RegionError::Cloud { action, source }
}

/// Distributes a baked image: copies, launch permissions and channels, every region in
/// parallel. Never fails as a whole: each region's outcome is in the report.
pub async fn distribute(
    account: &dyn Account,
    image: &BakedImage,
    spec: &DistributeSpec,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> DistributionReport {
    let limits = CopyLimits::default();
    distribute_limited(account, image, spec, progress, cancel, &limits).await
}

/// The per-region copy bounds, shared by every distribution that runs at the same time.
#[derive(Debug, Clone, Default)]
pub struct CopyLimits {
    regions: Arc<std::sync::Mutex<BTreeMap<String, Arc<Semaphore>>>>,
}

impl CopyLimits {
    fn of(&self, region: &str) -> Arc<Semaphore> {
        let mut regions = self.regions.lock().expect("copy limits lock");
        regions
            .entry(region.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_COPIES_PER_REGION)))
            .clone()
    }
}

/// [`distribute`] with copy bounds shared with other distributions (of other layers).
pub async fn distribute_limited(
    account: &dyn Account,
    image: &BakedImage,
    spec: &DistributeSpec,
    progress: &dyn Progress,
    cancel: &CancellationToken,
    limits: &CopyLimits,
) -> DistributionReport {
    let journal = MemoryJournal::new();
    let run = CopyRun {
        run_id: None,
        journal: &journal,
    };
    distribute_run(account, image, spec, progress, cancel, limits, &run).await
}

/// The run a distribution belongs to: the copies it starts carry its id and are written
/// to its journal the moment they exist.
pub struct CopyRun<'a> {
    /// The `kiln:run-id` of new copies; `None` keeps the source image's.
    pub run_id: Option<String>,
    pub journal: &'a dyn Journal,
}

/// [`distribute_limited`] for a run: copies are tagged with `run.run_id` and journaled
/// in `run.journal` until they are the result or removed (see the module's rules).
pub async fn distribute_run(
    account: &dyn Account,
    image: &BakedImage,
    spec: &DistributeSpec,
    progress: &dyn Progress,
    cancel: &CancellationToken,
    limits: &CopyLimits,
    run: &CopyRun<'_>,
) -> DistributionReport {
    let home = match account.region(&image.region).await {
        Ok(home) => home,
        Err(e) => return whole_failure(image, spec, e.to_string()),
    };
    let started = home.clock.now();
    let copy_tags = match source_tags(&home, image).await {
        Ok(tags) => copy_tags(tags, image, run),
        Err(e) => return whole_failure(image, spec, e.to_string()),
    };
    let job = Job {
        home: &home,
        image,
        spec,
        progress,
        cancel,
        journal: run.journal,
        copy_tags,
    };

    let copies = destinations(image, spec).into_iter().map(|region| {
        let semaphore = limits.of(&region);
        job.copy_region(account, region, semaphore)
    });
    let copies = join_all(copies).await;
    // The commit point: cancelled before it, the run keeps no copy; after it, the few
    // seconds of sharing and publishing run to the end.
    let cancelled = cancel.is_cancelled();
    let copies = job.settle(copies, cancelled).await;
    let regions = job.publish_all(copies, cancelled).await;
    let report = DistributionReport {
        image_name: image_family(image),
        version: image.version.clone(),
        regions,
        seconds: elapsed_secs(&home, started),
        cancelled,
    };
    job.summarize(&report);
    report
}

/// The source image's tags, carried over to every copy; a failed image is refused.
async fn source_tags(home: &Cloud, image: &BakedImage) -> Result<Tags, RegionError> {
    let found = read_image(home, &image.id).await?;
    let Some(found) = found else {
        return Err(RegionError::Refused(format!(
            "image {} does not exist in {} (deregistered?)",
            image.id, image.region
        )));
    };
    if is_failed(&found) {
        return Err(RegionError::Refused(format!(
            "image {} in {} failed its test (kiln:status=failed) and is never distributed",
            image.id, image.region
        )));
    }
    Ok(found.tags)
}

/// A new copy's tags: the source's, with where it came from, the distributing run, and
/// `pending` until the copy is the result (a killed run's copy is then swept by gc).
fn copy_tags(mut tags: Tags, image: &BakedImage, run: &CopyRun<'_>) -> Tags {
    let from = format!("{}/{}", image.region, image.id);
    tags.insert(naming::TAG_COPIED_FROM.into(), from);
    if let Some(run_id) = &run.run_id {
        tags.insert(TAG_RUN_ID.into(), run_id.clone());
    }
    tags.insert(naming::TAG_STATUS.into(), naming::STATUS_PENDING.into());
    tags
}

/// The other regions, in the order given, without duplicates or the home region.
fn destinations(image: &BakedImage, spec: &DistributeSpec) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::from([image.region.clone()]);
    spec.regions
        .iter()
        .filter(|r| seen.insert((*r).clone()))
        .cloned()
        .collect()
}

/// The image family: the AMI name without `-<version>`.
fn image_family(image: &BakedImage) -> String {
    image
        .name
        .strip_suffix(&format!("-{}", image.version))
        .unwrap_or(&image.name)
        .to_string()
}

fn elapsed_secs(cloud: &Cloud, started: kiln_cloud::Timestamp) -> u64 {
    let elapsed = cloud.clock.now() - started;
    elapsed.num_seconds().max(0) as u64
}

/// Every region failed for the same reason (the home region could not be read).
fn whole_failure(image: &BakedImage, spec: &DistributeSpec, error: String) -> DistributionReport {
    let home = (!spec.copies_only).then(|| image.region.clone());
    let regions = home
        .into_iter()
        .chain(destinations(image, spec))
        .map(|region| RegionOutcome {
            region,
            status: "failed".into(),
            image: None,
            reused: false,
            channel: None,
            seconds: 0,
            error: Some(error.clone()),
        })
        .collect();
    DistributionReport {
        image_name: image_family(image),
        version: image.version.clone(),
        regions,
        seconds: 0,
        cancelled: false,
    }
}

/// A freshly baked image's distribution as part of its run: the image is held in the
/// run's journal until every copy is done. A run cancelled before then leaves nothing:
/// its copies and the image itself are removed (what a killed run held, `kiln gc` finds
/// in the journal). A run that gets there keeps the image whatever happened in single
/// regions. A reused image (`outcome.reused`) is never held nor removed.
pub async fn distribute_baked(
    account: &dyn Account,
    outcome: &BakeOutcome,
    spec: &DistributeSpec,
    progress: &dyn Progress,
    cancel: &CancellationToken,
    limits: &CopyLimits,
    run: &CopyRun<'_>,
) -> DistributionReport {
    let image = &outcome.image;
    let held = !outcome.reused;
    let run_id = run.run_id.clone().unwrap_or_default();
    if held {
        run.journal.record(Record {
            kind: ResourceKind::Image,
            id: image.id.to_string(),
            region: image.region.clone(),
            run_id: run_id.clone(),
        });
    }
    let mut report = distribute_run(account, image, spec, progress, cancel, limits, run).await;
    if !held {
        return report;
    }
    if !report.cancelled {
        run.journal
            .forget(ResourceKind::Image, image.id.as_str(), Fate::Kept);
        return report;
    }
    let removal = match account.region(&image.region).await {
        Ok(home) => copy::remove_image(&home, &image.id, &[], run.journal, &run_id).await,
        Err(e) => Err(format!("image {} not removed: {e}", image.id)),
    };
    let note = match removal {
        Ok(()) => format!("cancelled in {}: image {} removed", image.region, image.id),
        Err(e) => format!("cancelled in {}: {e}", image.region),
    };
    if let Some(home) = report.regions.iter_mut().find(|r| r.region == image.region) {
        home.image = None;
        home.error = Some(note);
    }
    report
}

/// One distribution in progress.
struct Job<'a> {
    home: &'a Cloud,
    image: &'a BakedImage,
    spec: &'a DistributeSpec,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
    journal: &'a dyn Journal,
    /// What every new copy is tagged with.
    copy_tags: Tags,
}

/// One destination region after the copy phase.
struct Copied {
    region: String,
    /// `None` when the region could not even be opened.
    cloud: Option<Cloud>,
    started: Timestamp,
    result: Result<Copy, RegionError>,
}

impl Job<'_> {
    /// The image's own region: launch permissions and channel, no copy.
    async fn home_region(&self, cancelled: bool) -> RegionOutcome {
        let started = self.home.clock.now();
        let result = if cancelled {
            Err(RegionError::Cancelled {
                region: self.home.region.clone(),
                note: ": nothing shared or published".into(),
            })
        } else {
            self.share_and_publish(self.home, &self.image.id).await
        };
        let id = Some(self.image.id.clone());
        self.outcome(self.home, started, id, false, result)
    }

    /// Copies into `region` (or finds a copy there), within the region's copy bound.
    async fn copy_region(
        &self,
        account: &dyn Account,
        region: String,
        semaphore: Arc<Semaphore>,
    ) -> Copied {
        let cloud = match account.region(&region).await {
            Ok(cloud) => cloud,
            Err(e) => {
                let action = format!("opening {region}");
                return Copied {
                    started: self.home.clock.now(),
                    region,
                    cloud: None,
                    result: Err(cloud_error(action)(e)),
                };
            }
        };
        let started = cloud.clock.now();
        let result = tokio::select! {
            permit = semaphore.acquire() => match permit {
                Ok(_permit) => self.copy_into(&cloud).await,
                Err(_) => Err(RegionError::Refused(format!("copy limiter of {region} closed"))),
            },
            _ = self.cancel.cancelled() => Err(RegionError::Cancelled {
                region: region.clone(),
                note: ": before its copy started".into(),
            }),
        };
        Copied {
            region,
            cloud: Some(cloud),
            started,
            result,
        }
    }

    /// Once every copy is done: cancelled, every copy this run started is removed;
    /// else the good ones become the result.
    async fn settle(&self, copies: Vec<Copied>, cancelled: bool) -> Vec<Copied> {
        join_all(copies.into_iter().map(|c| self.settle_one(c, cancelled))).await
    }

    async fn settle_one(&self, mut copied: Copied, cancelled: bool) -> Copied {
        let (Some(cloud), Ok(copy)) = (&copied.cloud, &copied.result) else {
            return copied;
        };
        if cancelled {
            let note = match (copy.reused, self.remove_copy(cloud, copy).await) {
                (true, _) => format!(": copy {} existed before and is kept", copy.id),
                (false, Ok(())) => format!(": copy {} removed", copy.id),
                (false, Err(e)) => format!(": {e}"),
            };
            let region = copied.region.clone();
            copied.result = Err(RegionError::Cancelled { region, note });
        } else if let Err(e) = self.keep_copy(cloud, copy).await {
            if !copy.reused {
                let _ = self.remove_copy(cloud, copy).await;
            }
            copied.result = Err(e);
        }
        copied
    }

    /// Shares and publishes in the home region and every region with a good copy.
    async fn publish_all(&self, copies: Vec<Copied>, cancelled: bool) -> Vec<RegionOutcome> {
        let home = async {
            match self.spec.copies_only {
                true => None,
                false => Some(self.home_region(cancelled).await),
            }
        };
        let others = join_all(copies.into_iter().map(|c| self.publish_copy(c)));
        let (home, others) = tokio::join!(home, others);
        home.into_iter().chain(others).collect()
    }

    async fn publish_copy(&self, copied: Copied) -> RegionOutcome {
        let Some(cloud) = &copied.cloud else {
            let error = copied
                .result
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return failed_outcome(copied.region, 0, error);
        };
        match copied.result {
            Ok(copy) => {
                let result = self.share_and_publish(cloud, &copy.id).await;
                self.outcome(cloud, copied.started, Some(copy.id), copy.reused, result)
            }
            Err(e) => self.outcome(cloud, copied.started, None, false, Err(e)),
        }
    }

    /// Launch permissions, then the channel, for the image in `cloud`'s region.
    async fn share_and_publish(&self, cloud: &Cloud, id: &ImageId) -> Result<(), RegionError> {
        let p = &self.spec.launch_permissions;
        let sharing = !(p.accounts.is_empty()
            && p.organization_arns.is_empty()
            && p.organizational_unit_arns.is_empty());
        if sharing {
            let action = format!("sharing {id} in {}", cloud.region);
            retry_throttled(|| cloud.compute.add_launch_permissions(id, p))
                .await
                .map_err(cloud_error(action))?;
        }
        if let Some(channel) = &self.spec.channel {
            let family = image_family(self.image);
            publish(cloud, &family, channel, id).await?;
        }
        Ok(())
    }

    fn outcome(
        &self,
        cloud: &Cloud,
        started: kiln_cloud::Timestamp,
        image: Option<ImageId>,
        reused: bool,
        result: Result<(), RegionError>,
    ) -> RegionOutcome {
        let seconds = elapsed_secs(cloud, started);
        let channel = self
            .spec
            .channel
            .as_ref()
            .map(|c| naming::channel_parameter(&image_family(self.image), c));
        match result {
            Ok(()) => {
                let id = image.as_ref().map(ToString::to_string).unwrap_or_default();
                self.emit(cloud, Level::Info, format!("{id} distributed"));
                RegionOutcome {
                    region: cloud.region.clone(),
                    status: "ok".into(),
                    image,
                    reused,
                    channel,
                    seconds,
                    error: None,
                }
            }
            Err(e) => {
                self.emit(cloud, Level::Error, e.to_string());
                RegionOutcome {
                    image,
                    ..failed_outcome(cloud.region.clone(), seconds, e.to_string())
                }
            }
        }
    }

    fn summarize(&self, report: &DistributionReport) {
        let failed = report.failed();
        let level = if failed.is_empty() {
            Level::Info
        } else {
            Level::Warn
        };
        let names: Vec<&str> = failed.iter().map(|r| r.region.as_str()).collect();
        let message = format!(
            "{} of {} regions distributed{}",
            report.regions.len() - failed.len(),
            report.regions.len(),
            if names.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", names.join(", "))
            }
        );
        self.emit(self.home, level, message);
    }

    fn emit(&self, cloud: &Cloud, level: Level, message: String) {
        match level {
            Level::Info => {
                tracing::info!(target: PROGRESS_TARGET, region = %cloud.region, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: PROGRESS_TARGET, region = %cloud.region, "{message}")
            }
            Level::Error => {
                tracing::error!(target: PROGRESS_TARGET, region = %cloud.region, "{message}")
            }
        }
        self.progress.event(Event {
            at: cloud.clock.now(),
            level,
            phase: "distribute".into(),
            subject: format!("{} {}", self.image.name, cloud.region),
            message,
            position: None,
        });
    }
}

fn failed_outcome(region: String, seconds: u64, error: String) -> RegionOutcome {
    RegionOutcome {
        region,
        status: "failed".into(),
        image: None,
        reused: false,
        channel: None,
        seconds,
        error: Some(error),
    }
}

/// True for an image that failed its test: never distributed, promoted or reused.
pub fn is_failed(image: &Image) -> bool {
    image.tags.get(naming::TAG_STATUS).map(String::as_str) == Some(naming::STATUS_FAILED)
}

async fn read_image(cloud: &Cloud, id: &ImageId) -> Result<Option<Image>, RegionError> {
    let filter = ImageFilter {
        ids: vec![id.clone()],
        ..ImageFilter::default()
    };
    match cloud.compute.describe_images(&filter).await {
        Ok(images) => Ok(images.into_iter().find(|i| &i.id == id)),
        Err(e) if e.is(ErrorKind::NotFound) || e.is_transient() => Ok(None),
        Err(e) => Err(cloud_error(format!("describing {id} in {}", cloud.region))(
            e,
        )),
    }
}

/// Points the channel at `id` in `cloud`'s region, unless it already does (so that the
/// parameter's history holds only real changes).
async fn publish(
    cloud: &Cloud,
    family: &str,
    channel: &str,
    id: &ImageId,
) -> Result<(), RegionError> {
    let name = naming::channel_parameter(family, channel);
    let current = retry_throttled(|| cloud.parameters.get_parameter(&name, false))
        .await
        .map_err(cloud_error(format!("reading {name} in {}", cloud.region)))?;
    if current.is_some_and(|p| p.value == id.as_str()) {
        return Ok(());
    }
    put_channel(cloud, &name, id, "published by kiln after a bake").await?;
    Ok(())
}

/// Writes a channel parameter (String, `aws:ec2:image`); returns its new version.
pub(crate) async fn put_channel(
    cloud: &Cloud,
    name: &str,
    id: &ImageId,
    why: &str,
) -> Result<i64, kiln_cloud::CloudError> {
    let request = PutParameter {
        name: name.to_string(),
        value: id.to_string(),
        kind: ParameterType::String,
        description: Some(why.to_string()),
        overwrite: true,
        data_type: Some(CHANNEL_DATA_TYPE.into()),
    };
    retry_throttled(|| cloud.parameters.put_parameter(&request)).await
}

impl From<kiln_cloud::CloudError> for RegionError {
    fn from(source: kiln_cloud::CloudError) -> Self {
        RegionError::Cloud {
            action: "publishing the channel".into(),
            source,
        }
    }
}
