//! The image: created from the builder, recorded at once, waited for with a duration
//! budget (PITFALLS 12), and removed with every snapshot if the bake does not keep it
//! (PITFALLS 14).

use std::collections::BTreeSet;

use kiln_cloud::{
    ErrorKind, Image, ImageFilter, ImageId, ImageState, InstanceId, Level, SnapshotId,
};

use super::Run;
use crate::error::BakeError;
use crate::journal::{Fate, ResourceKind};
use crate::naming;
use crate::wait::{retry_throttled, wait_until, Poll, IMAGE_POLL};

impl Run<'_> {
    pub(super) async fn create_image(
        &mut self,
        builder: &InstanceId,
    ) -> Result<ImageId, BakeError> {
        self.check_cancelled()?;
        let plan = self.plan;
        let request = kiln_cloud::CreateImage {
            instance_id: builder.clone(),
            name: plan.ami_name.clone(),
            description: format!(
                "{} {} baked by kiln from {} ({})",
                plan.image_name, plan.version, plan.source_image, plan.run_id
            ),
            tags: plan.image_tags.clone(),
        };
        let id = retry_throttled(|| self.cloud.compute.create_image(&request))
            .await
            .map_err(|e| {
                BakeError::cloud(
                    format!("creating image {} from {builder}", plan.ami_name),
                    e,
                )
            })?;
        self.record(ResourceKind::Image, id.as_str());
        self.created.image = Some(id.clone());
        self.emit(
            Level::Info,
            "image",
            id.as_str(),
            format!("image {} created", plan.ami_name),
        );
        Ok(id)
    }

    /// Waits until the image is `available`; `failed` ends the wait with AWS's reason.
    pub(super) async fn wait_available(&self, image: &ImageId) -> Result<(), BakeError> {
        let budget = self.plan.timeouts.image_available;
        let result = wait_until(budget, IMAGE_POLL, self.cancel, || async {
            let Some(found) = self.read_image(image).await? else {
                return Ok(Poll::Pending);
            };
            match found.state {
                ImageState::Available => Ok(Poll::Ready(())),
                ImageState::Pending | ImageState::Transient => Ok(Poll::Pending),
                state => Err(BakeError::ImageFailed {
                    image: image.clone(),
                    name: self.plan.ami_name.clone(),
                    region: self.cloud.region.clone(),
                    reason: found
                        .state_reason
                        .unwrap_or_else(|| format!("state {state:?}").to_lowercase()),
                }),
            }
        })
        .await;
        self.finish_wait(result, |run| BakeError::ImageNotAvailable {
            image: image.clone(),
            name: run.plan.ami_name.clone(),
            region: run.cloud.region.clone(),
            waited: budget,
        })?;
        self.emit(
            Level::Info,
            "image",
            image.as_str(),
            "image available".into(),
        );
        Ok(())
    }

    /// The image, or `None` while EC2 does not list it yet or a read failed transiently.
    async fn read_image(&self, image: &ImageId) -> Result<Option<Image>, BakeError> {
        let filter = ImageFilter {
            ids: vec![image.clone()],
            ..ImageFilter::default()
        };
        match self.cloud.compute.describe_images(&filter).await {
            Ok(images) => Ok(images.into_iter().find(|i| &i.id == image)),
            Err(e) if e.is(ErrorKind::NotFound) || e.is_transient() => {
                tracing::debug!(%image, error = %e, "image not readable yet");
                Ok(None)
            }
            Err(e) => Err(BakeError::cloud(format!("describing image {image}"), e)),
        }
    }

    /// Tags the image `kiln:status=failed`, so that nothing reuses or distributes it even
    /// if its removal fails.
    pub(super) async fn mark_failed(&self, image: &ImageId) {
        let tags = kiln_cloud::Tags::from([(
            naming::TAG_STATUS.to_string(),
            naming::STATUS_FAILED.to_string(),
        )]);
        let ids = [image.to_string()];
        if let Err(e) = retry_throttled(|| self.cloud.compute.create_tags(&ids, &tags)).await {
            let message = format!("could not tag image {image} failed: {e}");
            self.emit(Level::Warn, "test", image.as_str(), message);
        }
    }

    /// Tags the image `kiln:status=ready`: its bake finished, so a sweep leaves it alone
    /// and a later plan may reuse it. Failing here fails the bake (and removes the image),
    /// since a `pending` image would be swept as the remains of a killed bake.
    pub(super) async fn mark_ready(&self, image: &ImageId) -> Result<(), BakeError> {
        let tags = kiln_cloud::Tags::from([(
            naming::TAG_STATUS.to_string(),
            naming::STATUS_READY.to_string(),
        )]);
        let ids = [image.to_string()];
        retry_throttled(|| self.cloud.compute.create_tags(&ids, &tags))
            .await
            .map_err(|e| BakeError::cloud(format!("tagging image {image} ready"), e))
    }

    /// Deregisters the image and deletes every snapshot of it; what fails is a leftover.
    pub(super) async fn remove_image(&mut self, image: &ImageId) {
        let snapshots = self.image_snapshots(image).await;
        match retry_throttled(|| self.cloud.compute.deregister_image(image)).await {
            Ok(()) => {
                self.journal
                    .forget(ResourceKind::Image, image.as_str(), Fate::Removed);
                self.created.image = None;
                self.emit(
                    Level::Info,
                    "cleanup",
                    image.as_str(),
                    "image deregistered".into(),
                );
            }
            Err(e) if e.is(ErrorKind::NotFound) => self.created.image = None,
            Err(e) => {
                self.leftover(ResourceKind::Image, image.as_str(), &e.to_string());
                return;
            }
        }
        for snapshot in snapshots {
            match retry_throttled(|| self.cloud.compute.delete_snapshot(&snapshot)).await {
                Ok(()) => {
                    self.journal
                        .forget(ResourceKind::Snapshot, snapshot.as_str(), Fate::Removed);
                }
                Err(e) if e.is(ErrorKind::NotFound) => {}
                Err(e) => self.leftover(ResourceKind::Snapshot, snapshot.as_str(), &e.to_string()),
            }
        }
    }

    /// Every snapshot of the image: those its block devices name and those tagged with
    /// this run (CreateImage tags them too), so none is missed.
    async fn image_snapshots(&mut self, image: &ImageId) -> BTreeSet<SnapshotId> {
        let mut snapshots = BTreeSet::new();
        match self.read_image(image).await {
            Ok(Some(found)) => {
                snapshots.extend(
                    found
                        .block_devices
                        .into_iter()
                        .filter_map(|d| d.snapshot_id),
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%image, error = %e, "could not read the image's snapshots"),
        }
        let tags = kiln_cloud::Tags::from([
            (kiln_cloud::TAG_RUN_ID.to_string(), self.plan.run_id.clone()),
            (
                kiln_cloud::TAG_ROLE.to_string(),
                naming::ROLE_IMAGE.to_string(),
            ),
        ]);
        match self.cloud.compute.describe_snapshots(&[], &tags).await {
            Ok(found) => snapshots.extend(found.into_iter().map(|s| s.id)),
            Err(e) => tracing::warn!(%image, error = %e, "could not list the run's snapshots"),
        }
        for snapshot in &snapshots {
            self.record(ResourceKind::Snapshot, snapshot.as_str());
        }
        snapshots
    }
}
