//! The sweep behind `kiln gc`: what bakes left in a region, found by tag, and its removal.
//!
//! A bake killed with SIGKILL, or whose machine was lost, cannot clean up (PITFALLS 11).
//! Everything a bake makes is tagged with its run id, so the account itself says what
//! is left, whatever happened to the local journal. [`survey`] lists the candidates and
//! changes nothing; [`sweep`] removes them: instances first (and waits until they are
//! terminated), then security groups, then images and every snapshot of them.
//!
//! Only resources kiln tagged are considered: instances and security groups of role
//! `builder` or `test`, images of role `image` marked `failed` or still `pending` (their
//! bake never finished), and image snapshots no image refers to any more. A resource is
//! removed only when its run is over ([`RunState`]); an image that a launch template
//! version refers to is never removed (PITFALLS 13).
//!
//! [`survey_with_journals`] adds what the local journals of runs that are over still hold
//! in the region (an image or snapshot whose tags alone would not say its run never
//! finished: a killed run's image held until its copies were done), under the same rules.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kiln_cloud::{
    Cloud, ErrorKind, Image, ImageFilter, ImageId, ImageState, InstanceFilter, InstanceId,
    InstanceState, SecurityGroupId, SnapshotId, Tags, TemplateRef, Timestamp, TAG_ROLE, TAG_RUN_ID,
};
use tokio_util::sync::CancellationToken;

use crate::journal::{Record, ResourceKind};
use crate::naming;
use crate::wait::{
    retry_throttled, wait_until, Poll, INSTANCE_POLL, SECURITY_GROUP_BUDGET, SECURITY_GROUP_RETRY,
};

/// How long terminated instances may take to end before the sweep gives up on their
/// security group: EC2 ends an instance within minutes.
pub const TERMINATE_BUDGET: Duration = Duration::from_secs(10 * 60);

/// What is known locally about a run (shared with the rollout sweep).
pub use kiln_cloud::journal::RunState;

pub use kiln_cloud::sweep::{Found, RunJudge, Survey, SweepReport};

/// The start time in a run id made by [`naming::run_id`].
pub fn run_started(run_id: &str) -> Option<Timestamp> {
    let stamp = run_id.strip_prefix("bake-")?.split('-').next()?;
    let naive = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok()?;
    Some(naive.and_utc())
}

/// Lists what bakes left in the cloud's region; changes nothing.
pub async fn survey(cloud: &Cloud, judge: &RunJudge<'_>) -> kiln_cloud::CloudResult<Survey> {
    let mut survey = Survey {
        region: cloud.region.clone(),
        ..Survey::default()
    };
    survey_instances(cloud, judge, &mut survey).await?;
    survey_groups(cloud, judge, &mut survey).await?;
    survey_images(cloud, judge, &mut survey).await?;
    Ok(survey)
}

/// Why the resources of `run_id` are kept, if they are: its start is in its id, else
/// when the resource was made.
fn keep_reason(judge: &RunJudge<'_>, run_id: &str, created: Option<Timestamp>) -> Option<String> {
    judge.keep_reason(run_id, run_started(run_id).or(created))
}

fn run_of(tags: &Tags) -> Option<&str> {
    tags.get(TAG_RUN_ID).map(String::as_str)
}

fn is_bake_role(tags: &Tags) -> bool {
    matches!(
        tags.get(TAG_ROLE).map(String::as_str),
        Some(naming::ROLE_BUILDER | naming::ROLE_TEST)
    )
}

async fn survey_instances(
    cloud: &Cloud,
    judge: &RunJudge<'_>,
    survey: &mut Survey,
) -> kiln_cloud::CloudResult<()> {
    let filter = InstanceFilter {
        tag_keys: vec![TAG_RUN_ID.to_string()],
        exclude_terminated: true,
        ..InstanceFilter::default()
    };
    let instances = retry_throttled(|| cloud.compute.describe_instances(&filter)).await?;
    for instance in instances {
        let Some(run_id) = run_of(&instance.tags).filter(|_| is_bake_role(&instance.tags)) else {
            continue;
        };
        let role = &instance.tags[TAG_ROLE];
        let found = Found {
            region: cloud.region.clone(),
            kind: ResourceKind::Instance,
            id: instance.id.to_string(),
            run_id: run_id.to_string(),
            reason: format!("{role} instance of a run that is over"),
        };
        let keep = keep_reason(judge, run_id, instance.launch_time);
        survey.place(found, keep);
    }
    Ok(())
}

async fn survey_groups(
    cloud: &Cloud,
    judge: &RunJudge<'_>,
    survey: &mut Survey,
) -> kiln_cloud::CloudResult<()> {
    let any = Tags::new();
    let groups = retry_throttled(|| cloud.compute.describe_security_groups(&[], &any)).await?;
    for group in groups {
        let Some(run_id) = run_of(&group.tags).filter(|_| is_bake_role(&group.tags)) else {
            continue;
        };
        let found = Found {
            region: cloud.region.clone(),
            kind: ResourceKind::SecurityGroup,
            id: group.id.to_string(),
            run_id: run_id.to_string(),
            reason: format!("security group {} of a run that is over", group.name),
        };
        let keep = keep_reason(judge, run_id, None);
        survey.place(found, keep);
    }
    Ok(())
}

async fn survey_images(
    cloud: &Cloud,
    judge: &RunJudge<'_>,
    survey: &mut Survey,
) -> kiln_cloud::CloudResult<()> {
    let filter = ImageFilter {
        owners: vec!["self".to_string()],
        tag_keys: vec![TAG_RUN_ID.to_string()],
        ..ImageFilter::default()
    };
    let images: Vec<Image> = retry_throttled(|| cloud.compute.describe_images(&filter))
        .await?
        .into_iter()
        .filter(|i| i.state != ImageState::Deregistered)
        .collect();
    let in_use = images_in_use(cloud).await?;
    let mut referenced = BTreeSet::new();
    for image in &images {
        let removed = survey_image(image, &in_use, judge, survey);
        if !removed {
            referenced.extend(
                image
                    .block_devices
                    .iter()
                    .filter_map(|d| d.snapshot_id.clone()),
            );
        }
    }
    survey_snapshots(cloud, judge, &referenced, survey).await
}

/// Places one image (and its snapshots); true when it is to be removed.
fn survey_image(
    image: &Image,
    in_use: &BTreeMap<ImageId, String>,
    judge: &RunJudge<'_>,
    survey: &mut Survey,
) -> bool {
    let tags = &image.tags;
    let status = tags.get(naming::TAG_STATUS).map(String::as_str);
    let (Some(run_id), Some(naming::ROLE_IMAGE)) =
        (run_of(tags), tags.get(TAG_ROLE).map(String::as_str))
    else {
        return false;
    };
    let reason = match status {
        Some(naming::STATUS_FAILED) => "image that failed its test",
        Some(naming::STATUS_PENDING) => "image of a bake that never finished",
        _ => return false,
    };
    let found = Found {
        region: survey.region.clone(),
        kind: ResourceKind::Image,
        id: image.id.to_string(),
        run_id: run_id.to_string(),
        reason: format!("{} ({reason})", image.name),
    };
    let keep = match in_use.get(&image.id) {
        Some(user) => Some(format!("in use by {user}")),
        None => keep_reason(judge, run_id, image.creation_date),
    };
    let removed = keep.is_none();
    survey.place(found, keep);
    if removed {
        for snapshot in image
            .block_devices
            .iter()
            .filter_map(|d| d.snapshot_id.clone())
        {
            survey.remove.push(Found {
                region: survey.region.clone(),
                kind: ResourceKind::Snapshot,
                id: snapshot.to_string(),
                run_id: run_id.to_string(),
                reason: format!("snapshot of {}", image.id),
            });
        }
    }
    removed
}

/// Image snapshots of runs that are over that no kept image refers to (the image was
/// deregistered and the snapshot deletion never happened).
async fn survey_snapshots(
    cloud: &Cloud,
    judge: &RunJudge<'_>,
    referenced: &BTreeSet<SnapshotId>,
    survey: &mut Survey,
) -> kiln_cloud::CloudResult<()> {
    let tags = Tags::from([(TAG_ROLE.to_string(), naming::ROLE_IMAGE.to_string())]);
    let snapshots = retry_throttled(|| cloud.compute.describe_snapshots(&[], &tags)).await?;
    let listed: BTreeSet<String> = survey.remove.iter().map(|f| f.id.clone()).collect();
    for snapshot in snapshots {
        let Some(run_id) = run_of(&snapshot.tags) else {
            continue;
        };
        if referenced.contains(&snapshot.id) || listed.contains(snapshot.id.as_str()) {
            continue;
        }
        let found = Found {
            region: cloud.region.clone(),
            kind: ResourceKind::Snapshot,
            id: snapshot.id.to_string(),
            run_id: run_id.to_string(),
            reason: "image snapshot that no image refers to".into(),
        };
        let keep = keep_reason(judge, run_id, snapshot.start_time);
        survey.place(found, keep);
    }
    Ok(())
}

/// [`survey`], plus what `records` (the open records of local journals) hold in this
/// region that the tags did not show: images (with their snapshots) and snapshots of
/// runs that are over. Other kinds of record are left to their own sweeps.
pub async fn survey_with_journals(
    cloud: &Cloud,
    judge: &RunJudge<'_>,
    records: &[Record],
) -> kiln_cloud::CloudResult<Survey> {
    let mut survey = survey(cloud, judge).await?;
    let listed: BTreeSet<(ResourceKind, String)> = survey
        .remove
        .iter()
        .chain(&survey.kept)
        .map(|f| (f.kind, f.id.clone()))
        .collect();
    let open: Vec<&Record> = records
        .iter()
        .filter(|r| r.region == cloud.region && !listed.contains(&(r.kind, r.id.clone())))
        .filter(|r| matches!(r.kind, ResourceKind::Image | ResourceKind::Snapshot))
        .collect();
    if open.is_empty() {
        return Ok(survey);
    }
    let images = registered_images(cloud).await?;
    let in_use = images_in_use(cloud).await?;
    for record in open.iter().filter(|r| r.kind == ResourceKind::Image) {
        if let Some(image) = images.iter().find(|i| i.id.as_str() == record.id) {
            journal_image(image, record, &in_use, judge, &mut survey);
        }
    }
    let removed: BTreeSet<String> = survey.remove.iter().map(|f| f.id.clone()).collect();
    let referenced: BTreeSet<SnapshotId> = images
        .iter()
        .filter(|i| !removed.contains(i.id.as_str()))
        .flat_map(|i| i.block_devices.iter().filter_map(|d| d.snapshot_id.clone()))
        .collect();
    for record in open.iter().filter(|r| r.kind == ResourceKind::Snapshot) {
        let id = SnapshotId::new(&record.id);
        if removed.contains(&record.id) || referenced.contains(&id) {
            continue;
        }
        journal_snapshot(cloud, &id, record, judge, &mut survey).await?;
    }
    Ok(survey)
}

/// Every image the account owns in the region that is not deregistered.
async fn registered_images(cloud: &Cloud) -> kiln_cloud::CloudResult<Vec<Image>> {
    let filter = ImageFilter {
        owners: vec!["self".to_string()],
        ..ImageFilter::default()
    };
    let images = retry_throttled(|| cloud.compute.describe_images(&filter)).await?;
    Ok(images
        .into_iter()
        .filter(|i| i.state != ImageState::Deregistered)
        .collect())
}

/// Places an image a journal holds, with its snapshots when it goes.
fn journal_image(
    image: &Image,
    record: &Record,
    in_use: &BTreeMap<ImageId, String>,
    judge: &RunJudge<'_>,
    survey: &mut Survey,
) {
    let found = Found {
        kind: ResourceKind::Image,
        id: image.id.to_string(),
        region: survey.region.clone(),
        run_id: record.run_id.clone(),
        reason: format!(
            "{} (held by the journal of a run that never finished)",
            image.name
        ),
    };
    let keep = match in_use.get(&image.id) {
        Some(user) => Some(format!("in use by {user}")),
        None => keep_reason(judge, &record.run_id, image.creation_date),
    };
    let removed = keep.is_none();
    survey.place(found, keep);
    if removed {
        for snapshot in image
            .block_devices
            .iter()
            .filter_map(|d| d.snapshot_id.clone())
        {
            survey.remove.push(Found {
                kind: ResourceKind::Snapshot,
                id: snapshot.to_string(),
                region: survey.region.clone(),
                run_id: record.run_id.clone(),
                reason: format!("snapshot of {}", image.id),
            });
        }
    }
}

/// Places a snapshot a journal holds, if it still exists.
async fn journal_snapshot(
    cloud: &Cloud,
    id: &SnapshotId,
    record: &Record,
    judge: &RunJudge<'_>,
    survey: &mut Survey,
) -> kiln_cloud::CloudResult<()> {
    let (ids, any) = (std::slice::from_ref(id), Tags::new());
    let found = match retry_throttled(|| cloud.compute.describe_snapshots(ids, &any)).await {
        Ok(found) => found,
        Err(e) if e.is(ErrorKind::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    let Some(snapshot) = found.into_iter().find(|s| &s.id == id) else {
        return Ok(());
    };
    let found = Found {
        kind: ResourceKind::Snapshot,
        id: id.to_string(),
        region: cloud.region.clone(),
        run_id: record.run_id.clone(),
        reason: "snapshot held by the journal of a run that never finished".into(),
    };
    let keep = keep_reason(judge, &record.run_id, snapshot.start_time);
    survey.place(found, keep);
    Ok(())
}

/// Every image a launch template version refers to, with the template and version.
async fn images_in_use(cloud: &Cloud) -> kiln_cloud::CloudResult<BTreeMap<ImageId, String>> {
    let templates = retry_throttled(|| cloud.compute.describe_launch_templates()).await?;
    let mut in_use = BTreeMap::new();
    for template in templates {
        let by_id = TemplateRef::Id(template.id.clone());
        let versions =
            retry_throttled(|| cloud.compute.describe_launch_template_versions(&by_id, &[]))
                .await?;
        for version in versions {
            if let Some(image) = version.data.image_id {
                let user = format!(
                    "launch template {} version {}",
                    template.name, version.version
                );
                in_use.entry(image).or_insert(user);
            }
        }
    }
    Ok(in_use)
}

/// Removes what [`survey`] listed: instances (waiting until they are terminated), then
/// security groups, then images, then snapshots. Failures are reported, not fatal.
pub async fn sweep(cloud: &Cloud, survey: &Survey) -> SweepReport {
    let mut report = SweepReport::default();
    let of = |kind| survey.remove.iter().filter(move |f| f.kind == kind);

    let instances: Vec<&Found> = of(ResourceKind::Instance).collect();
    let ended = end_instances(cloud, &instances, &mut report).await;
    for group in of(ResourceKind::SecurityGroup) {
        if !ended {
            let why = "not deleted: instances of the sweep are not terminated".to_string();
            report.failed.push((group.clone(), why));
            continue;
        }
        let id = SecurityGroupId::new(&group.id);
        report.note(group, delete_group(cloud, &id).await);
    }
    for image in of(ResourceKind::Image) {
        let id = ImageId::new(&image.id);
        let result = retry_throttled(|| cloud.compute.deregister_image(&id)).await;
        report.note(image, gone_is_fine(result));
    }
    for snapshot in of(ResourceKind::Snapshot) {
        let id = SnapshotId::new(&snapshot.id);
        let result = retry_throttled(|| cloud.compute.delete_snapshot(&id)).await;
        report.note(snapshot, gone_is_fine(result));
    }
    report
}

fn gone_is_fine(result: kiln_cloud::CloudResult<()>) -> Result<(), String> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.is(ErrorKind::NotFound) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Terminates the instances and waits until every one is terminated; false if any is
/// not when the budget runs out.
async fn end_instances(cloud: &Cloud, found: &[&Found], report: &mut SweepReport) -> bool {
    if found.is_empty() {
        return true;
    }
    let ids: Vec<InstanceId> = found.iter().map(|f| InstanceId::new(&f.id)).collect();
    if let Err(e) = gone_is_fine(retry_throttled(|| cloud.compute.terminate_instances(&ids)).await)
    {
        report
            .failed
            .extend(found.iter().map(|f| ((*f).clone(), e.clone())));
        return false;
    }
    let filter = InstanceFilter {
        ids: ids.clone(),
        ..InstanceFilter::default()
    };
    let never = CancellationToken::new();
    let waited = wait_until(TERMINATE_BUDGET, INSTANCE_POLL, &never, || async {
        match cloud.compute.describe_instances(&filter).await {
            Ok(list) if list.iter().all(|i| i.state == InstanceState::Terminated) => {
                Ok::<_, ()>(Poll::Ready(()))
            }
            Err(e) if e.is(ErrorKind::NotFound) => Ok(Poll::Ready(())),
            _ => Ok(Poll::Pending),
        }
    })
    .await;
    let result = match waited {
        Ok(()) => Ok(()),
        Err(_) => Err(format!(
            "still not terminated after {}",
            humantime::format_duration(TERMINATE_BUDGET)
        )),
    };
    for f in found {
        report.note(f, result.clone());
    }
    result.is_ok()
}

/// Deletes a security group, trying again while EC2 still counts it in use.
async fn delete_group(cloud: &Cloud, id: &SecurityGroupId) -> Result<(), String> {
    let last = std::sync::Mutex::new(String::new());
    let never = CancellationToken::new();
    let result = wait_until(
        SECURITY_GROUP_BUDGET,
        SECURITY_GROUP_RETRY,
        &never,
        || async {
            match cloud.compute.delete_security_group(id).await {
                Ok(()) => Ok(Poll::Ready(())),
                Err(e) if e.is(ErrorKind::NotFound) => Ok(Poll::Ready(())),
                Err(e) if e.is(ErrorKind::Conflict) || e.is_transient() => {
                    *last.lock().expect("error lock") = e.to_string();
                    Ok(Poll::Pending)
                }
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    result.map_err(|e| match e {
        crate::wait::WaitError::Failed(why) => why,
        _ => last.into_inner().expect("error lock"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_carries_its_start() {
        let at = run_started("bake-20261203T172112Z-0a1b2c3d").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-03T17:21:12+00:00");
        assert!(run_started("rollout-20261203T172112Z-1").is_none());
        assert!(run_started("bake-garbage-1").is_none());
    }
}
