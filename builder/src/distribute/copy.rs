//! One region's copy: started (or found), journaled the moment its id exists, waited for,
//! and then kept as the result or removed with every snapshot.

use std::collections::BTreeSet;
use std::sync::Mutex;

use kiln_cloud::{
    Cloud, CopyImage, ErrorKind, ImageFilter, ImageId, ImageState, Level, SnapshotId, Tags,
    TAG_RUN_ID,
};

use super::{cloud_error, read_image, Job, RegionError, DEFAULT_COPY_BUDGET};
use crate::journal::{Fate, Journal, Record, ResourceKind};
use crate::naming;
use crate::wait::{retry_throttled, wait_until, Poll, WaitError, IMAGE_POLL};

/// A copy in a destination region.
#[derive(Debug, Clone)]
pub(super) struct Copy {
    pub id: ImageId,
    /// Found in the region rather than started by this run: never removed by it.
    pub reused: bool,
    /// The copy's snapshots as far as they are known (and journaled).
    pub snapshots: Vec<SnapshotId>,
}

impl Job<'_> {
    /// Starts a copy into `cloud`'s region, or finds one, and waits until it is available.
    /// A copy this run started that fails, times out or is cancelled is removed here.
    pub(super) async fn copy_into(&self, cloud: &Cloud) -> Result<Copy, RegionError> {
        if let Some(existing) = self.existing_copy(cloud).await? {
            self.emit(cloud, Level::Info, format!("reusing copy {existing}"));
            self.wait_copy(cloud, &existing, None).await?;
            return Ok(Copy {
                id: existing,
                reused: true,
                snapshots: Vec::new(),
            });
        }
        let request = self.copy_request(cloud);
        let action = format!("copying {} into {}", self.image.id, cloud.region);
        let id = retry_throttled(|| cloud.compute.copy_image(&request))
            .await
            .map_err(cloud_error(action))?;
        self.record(cloud, ResourceKind::Image, id.as_str());
        self.emit(cloud, Level::Info, format!("copy {id} started"));

        let seen = Mutex::new(BTreeSet::new());
        let waited = self.wait_copy(cloud, &id, Some(&seen)).await;
        let copy = Copy {
            id,
            reused: false,
            snapshots: seen
                .into_inner()
                .expect("snapshot list")
                .into_iter()
                .collect(),
        };
        match waited {
            Ok(()) => Ok(copy),
            Err(e) => {
                // A failed copy holds the name (the next run could not copy) and its
                // snapshots; a cancelled one is not the run's to keep.
                let removal = self.remove_copy(cloud, &copy).await;
                Err(match (e, removal) {
                    (RegionError::Cancelled { region, .. }, Err(why)) => RegionError::Cancelled {
                        region,
                        note: format!(": {why}"),
                    },
                    (e, _) => e,
                })
            }
        }
    }

    fn copy_request(&self, cloud: &Cloud) -> CopyImage {
        let key = self.spec.kms_keys.get(&cloud.region).cloned();
        CopyImage {
            source_region: self.image.region.clone(),
            source_image_id: self.image.id.clone(),
            name: self.image.name.clone(),
            description: format!("{} copied by kiln from {}", self.image.name, self.image.id),
            encrypted: self.spec.encrypted || key.is_some(),
            kms_key_id: key,
            tags: self.copy_tags.clone(),
        }
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

    /// Waits for a copy to be available, within the copy budget. Snapshots that appear
    /// on the copy are journaled into `seen` as soon as EC2 names them.
    async fn wait_copy(
        &self,
        cloud: &Cloud,
        copy: &ImageId,
        seen: Option<&Mutex<BTreeSet<SnapshotId>>>,
    ) -> Result<(), RegionError> {
        let budget = self.spec.copy_budget.unwrap_or(DEFAULT_COPY_BUDGET);
        let result = wait_until(budget, IMAGE_POLL, self.cancel, || async {
            let Some(found) = read_image(cloud, copy).await? else {
                return Ok(Poll::Pending);
            };
            if let Some(seen) = seen {
                let snapshots = found
                    .block_devices
                    .iter()
                    .filter_map(|d| d.snapshot_id.clone());
                self.note_snapshots(cloud, seen, snapshots);
            }
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
            Err(WaitError::Cancelled) => Err(RegionError::Cancelled {
                region: cloud.region.clone(),
                note: format!(": copy {copy} removed"),
            }),
            Err(WaitError::TimedOut) => Err(RegionError::CopyTimedOut {
                copy: copy.clone(),
                region: cloud.region.clone(),
                waited: budget,
            }),
        }
    }

    fn note_snapshots(
        &self,
        cloud: &Cloud,
        seen: &Mutex<BTreeSet<SnapshotId>>,
        snapshots: impl Iterator<Item = SnapshotId>,
    ) {
        let mut seen = seen.lock().expect("snapshot list");
        for snapshot in snapshots {
            if seen.insert(snapshot.clone()) {
                self.record(cloud, ResourceKind::Snapshot, snapshot.as_str());
            }
        }
    }

    /// The copy is the result: tagged `ready` (so no sweep takes it for a killed run's)
    /// and forgotten by the journal.
    pub(super) async fn keep_copy(&self, cloud: &Cloud, copy: &Copy) -> Result<(), RegionError> {
        let ready = Tags::from([(naming::TAG_STATUS.into(), naming::STATUS_READY.into())]);
        let ids = [copy.id.to_string()];
        let action = format!("tagging copy {} ready in {}", copy.id, cloud.region);
        retry_throttled(|| cloud.compute.create_tags(&ids, &ready))
            .await
            .map_err(cloud_error(action))?;
        if !copy.reused {
            self.journal
                .forget(ResourceKind::Image, copy.id.as_str(), Fate::Kept);
            for snapshot in &copy.snapshots {
                self.journal
                    .forget(ResourceKind::Snapshot, snapshot.as_str(), Fate::Kept);
            }
        }
        Ok(())
    }

    /// Deregisters a copy this run started and deletes every snapshot of it; what could
    /// not be removed stays in the journal for `kiln gc`, and is the error.
    pub(super) async fn remove_copy(&self, cloud: &Cloud, copy: &Copy) -> Result<(), String> {
        let run_id = self.copy_tags.get(TAG_RUN_ID).cloned().unwrap_or_default();
        let removal = remove_image(cloud, &copy.id, &copy.snapshots, self.journal, &run_id).await;
        match &removal {
            Ok(()) => self.emit(cloud, Level::Info, format!("copy {} removed", copy.id)),
            Err(e) => self.emit(cloud, Level::Warn, e.clone()),
        }
        removal
    }

    fn record(&self, cloud: &Cloud, kind: ResourceKind, id: &str) {
        let run_id = self.copy_tags.get(TAG_RUN_ID).cloned().unwrap_or_default();
        self.journal.record(Record {
            kind,
            id: id.to_string(),
            region: cloud.region.clone(),
            run_id,
        });
    }
}

/// Deregisters an image of the run and deletes every snapshot of it (those `known` and
/// those the image names, journaled before anything is deleted); each is forgotten by
/// the journal once gone. What could not be removed stays journaled, and is the error.
pub(super) async fn remove_image(
    cloud: &Cloud,
    image: &ImageId,
    known: &[SnapshotId],
    journal: &dyn Journal,
    run_id: &str,
) -> Result<(), String> {
    let mut snapshots: BTreeSet<SnapshotId> = known.iter().cloned().collect();
    if let Ok(Some(found)) = read_image(cloud, image).await {
        for snapshot in found
            .block_devices
            .into_iter()
            .filter_map(|d| d.snapshot_id)
        {
            if snapshots.insert(snapshot.clone()) {
                journal.record(Record {
                    kind: ResourceKind::Snapshot,
                    id: snapshot.to_string(),
                    region: cloud.region.clone(),
                    run_id: run_id.to_string(),
                });
            }
        }
    }
    let left = |what: String| format!("{what} in {}; run `kiln gc` to remove it", cloud.region);
    match retry_throttled(|| cloud.compute.deregister_image(image)).await {
        Ok(()) => {}
        Err(e) if e.is(ErrorKind::NotFound) => {}
        Err(e) => return Err(left(format!("image {image} not removed: {e}"))),
    }
    journal.forget(ResourceKind::Image, image.as_str(), Fate::Removed);
    let failed = delete_snapshots(cloud, &snapshots, journal).await;
    match failed.is_empty() {
        true => Ok(()),
        false => Err(left(format!(
            "snapshots of {image} not removed: {}",
            failed.join("; ")
        ))),
    }
}

/// Deletes each snapshot (gone already is fine), forgetting it once gone; the failures.
async fn delete_snapshots(
    cloud: &Cloud,
    snapshots: &BTreeSet<SnapshotId>,
    journal: &dyn Journal,
) -> Vec<String> {
    let mut failed = Vec::new();
    for snapshot in snapshots {
        match retry_throttled(|| cloud.compute.delete_snapshot(snapshot)).await {
            Ok(()) => {}
            Err(e) if e.is(ErrorKind::NotFound) => {}
            Err(e) => {
                failed.push(format!("{snapshot}: {e}"));
                continue;
            }
        }
        journal.forget(ResourceKind::Snapshot, snapshot.as_str(), Fate::Removed);
    }
    failed
}
