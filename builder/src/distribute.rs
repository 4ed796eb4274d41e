//! Distribution: after a successful (and tested) bake, the image is copied to the other
//! regions in parallel, shared with accounts, organizations and OUs, and published to a
//! Parameter Store channel (`/kiln/<image>/<channel>`) in every region it is in.
//!
//! Each region is one task; a failure in one region is reported beside the others'
//! results in a [`DistributionReport`], never hidden and never stopping the others.
//! Copies into one destination region are bounded by [`MAX_COPIES_PER_REGION`]
//! (PITFALLS 15). A copy that already exists (same name and input hash) is reused, so a
//! monthly run that reuses its image re-copies nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{join_all, Either};
use kiln_cloud::{
    Account, Cloud, CopyImage, ErrorKind, Event, Image, ImageFilter, ImageId, ImageState,
    LaunchPermissions, Level, ParameterType, Progress, PutParameter, Tags,
};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::naming;
use crate::plan::BakedImage;
use crate::wait::{retry_throttled, wait_until, Poll, WaitError, IMAGE_POLL};

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
}

impl DistributionReport {
    /// This report followed by `later`'s regions (the copies of a split distribution).
    pub fn merge(mut self, later: DistributionReport) -> Self {
        self.regions.extend(later.regions);
        self.seconds = self.seconds.max(later.seconds);
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
        "copy {copy} into {region} was not available after {waited:?}; it may still finish: \
         distribute again later (it will be reused) or raise the copy budget"
    )]
    CopyTimedOut {
        copy: ImageId,
        region: String,
        waited: Duration,
    },
    #[error("refused: {0}")]
    Refused(String),
    #[error("cancelled in {0}")]
    Cancelled(String),
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
    let home = match account.region(&image.region).await {
        Ok(home) => home,
        Err(e) => return whole_failure(image, spec, e.to_string()),
    };
    let started = home.clock.now();
    let job = Job {
        home: &home,
        image,
        spec,
        progress,
        cancel,
    };

    let source_tags = match job.source_tags().await {
        Ok(tags) => tags,
        Err(e) => return whole_failure(image, spec, e.to_string()),
    };
    let mut tasks = Vec::new();
    if !spec.copies_only {
        tasks.push(Either::Left(job.home_region()));
    }
    for region in destinations(image, spec) {
        let semaphore = limits.of(&region);
        let task = job.copy_region(account, region, semaphore, &source_tags);
        tasks.push(Either::Right(task));
    }
    let regions = join_all(tasks).await;
    let report = DistributionReport {
        image_name: image_family(image),
        version: image.version.clone(),
        regions,
        seconds: elapsed_secs(&home, started),
    };
    job.summarize(&report);
    report
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
    }
}

/// One distribution in progress.
struct Job<'a> {
    home: &'a Cloud,
    image: &'a BakedImage,
    spec: &'a DistributeSpec,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
}

impl Job<'_> {
    /// The source image's tags, carried over to every copy; a failed image is refused.
    async fn source_tags(&self) -> Result<Tags, RegionError> {
        let found = read_image(self.home, &self.image.id).await?;
        let Some(found) = found else {
            return Err(RegionError::Refused(format!(
                "image {} does not exist in {} (deregistered?)",
                self.image.id, self.image.region
            )));
        };
        if is_failed(&found) {
            return Err(RegionError::Refused(format!(
                "image {} in {} failed its test (kiln:status=failed) and is never distributed",
                self.image.id, self.image.region
            )));
        }
        Ok(found.tags)
    }

    /// The image's own region: launch permissions and channel, no copy.
    async fn home_region(&self) -> RegionOutcome {
        let started = self.home.clock.now();
        let result = self.share_and_publish(self.home, &self.image.id).await;
        self.outcome(
            self.home,
            started,
            Some(self.image.id.clone()),
            false,
            result,
        )
    }

    /// Copies into `region` (or reuses a copy), then shares and publishes there.
    async fn copy_region(
        &self,
        account: &dyn Account,
        region: String,
        semaphore: Arc<Semaphore>,
        tags: &Tags,
    ) -> RegionOutcome {
        let cloud = match account.region(&region).await {
            Ok(cloud) => cloud,
            Err(e) => {
                return failed_outcome(region, 0, e.to_string());
            }
        };
        let started = cloud.clock.now();
        let copied = async {
            let _permit = semaphore
                .acquire()
                .await
                .map_err(|_| RegionError::Refused(format!("copy limiter of {region} closed")))?;
            self.copy_into(&cloud, tags).await
        }
        .await;
        let (id, reused) = match copied {
            Ok(found) => found,
            Err(e) => return self.outcome(&cloud, started, None, false, Err(e)),
        };
        let result = self.share_and_publish(&cloud, &id).await;
        self.outcome(&cloud, started, Some(id), reused, result)
    }

    /// The copy's id, and whether it already existed.
    async fn copy_into(&self, cloud: &Cloud, tags: &Tags) -> Result<(ImageId, bool), RegionError> {
        if let Some(existing) = self.existing_copy(cloud).await? {
            self.emit(cloud, Level::Info, format!("reusing copy {existing}"));
            self.wait_copy(cloud, &existing).await?;
            return Ok((existing, true));
        }
        let mut tags = tags.clone();
        let from = format!("{}/{}", self.image.region, self.image.id);
        tags.insert(naming::TAG_COPIED_FROM.into(), from);
        let key = self.spec.kms_keys.get(&cloud.region).cloned();
        let request = CopyImage {
            source_region: self.image.region.clone(),
            source_image_id: self.image.id.clone(),
            name: self.image.name.clone(),
            description: format!("{} copied by kiln from {}", self.image.name, self.image.id),
            encrypted: self.spec.encrypted || key.is_some(),
            kms_key_id: key,
            tags,
        };
        let action = format!("copying {} into {}", self.image.id, cloud.region);
        let copy = retry_throttled(|| cloud.compute.copy_image(&request))
            .await
            .map_err(cloud_error(action))?;
        self.emit(cloud, Level::Info, format!("copy {copy} started"));
        if let Err(e) = self.wait_copy(cloud, &copy).await {
            if matches!(e, RegionError::CopyFailed { .. }) {
                // A failed copy holds the name; remove it so that the next run can copy.
                let _ = cloud.compute.deregister_image(&copy).await;
            }
            return Err(e);
        }
        Ok((copy, false))
    }

    /// A copy already in the region: the same AMI name and input hash.
    async fn existing_copy(&self, cloud: &Cloud) -> Result<Option<ImageId>, RegionError> {
        let filter = ImageFilter {
            owners: vec!["self".into()],
            name: Some(self.image.name.clone()),
            tags: Tags::from([(naming::TAG_INPUT_HASH.into(), self.image.input_hash.clone())]),
            ..ImageFilter::default()
        };
        let action = format!(
            "looking for a copy of {} in {}",
            self.image.name, cloud.region
        );
        let images = retry_throttled(|| cloud.compute.describe_images(&filter))
            .await
            .map_err(cloud_error(action))?;
        Ok(images
            .into_iter()
            .find(|i| matches!(i.state, ImageState::Available | ImageState::Pending))
            .map(|i| i.id))
    }

    /// Waits for a copy to be available, within the copy budget.
    async fn wait_copy(&self, cloud: &Cloud, copy: &ImageId) -> Result<(), RegionError> {
        let budget = self.spec.copy_budget.unwrap_or(DEFAULT_COPY_BUDGET);
        let result = wait_until(budget, IMAGE_POLL, self.cancel, || async {
            let Some(found) = read_image(cloud, copy).await? else {
                return Ok(Poll::Pending);
            };
            match found.state {
                ImageState::Available => Ok(Poll::Ready(())),
                ImageState::Pending | ImageState::Transient => Ok(Poll::Pending),
                state => Err(RegionError::CopyFailed {
                    copy: copy.clone(),
                    source_image: format!("{}/{}", self.image.region, self.image.id),
                    region: cloud.region.clone(),
                    reason: found
                        .state_reason
                        .unwrap_or_else(|| format!("state {state:?}").to_lowercase()),
                }),
            }
        })
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(WaitError::Failed(e)) => Err(e),
            Err(WaitError::Cancelled) => Err(RegionError::Cancelled(cloud.region.clone())),
            Err(WaitError::TimedOut) => Err(RegionError::CopyTimedOut {
                copy: copy.clone(),
                region: cloud.region.clone(),
                waited: budget,
            }),
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
            Level::Info => tracing::info!(region = %cloud.region, "{message}"),
            Level::Warn => tracing::warn!(region = %cloud.region, "{message}"),
            Level::Error => tracing::error!(region = %cloud.region, "{message}"),
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
