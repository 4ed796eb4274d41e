//! The sweep behind `kiln gc` on the simulated account: it removes only what kiln tagged
//! and left (or a dead run's journal still holds), never an image a launch template
//! version uses, never an untagged one, and nothing of a run that may still be going.

mod support;

use std::time::Duration;

use kiln_builder::naming::{STATUS_FAILED, STATUS_PENDING, TAG_STATUS};
use kiln_builder::sweep::{survey, survey_with_journals, sweep, RunJudge, RunState};
use kiln_builder::{bake, plan, Record, ResourceKind};
use kiln_cloud::progress::Silent;
use kiln_cloud::{ImageFilter, ImageId, ImageState, NewTemplateVersion, Tags, TemplateRef};
use tokio_util::sync::CancellationToken;

use support::*;

fn status(value: &str) -> Tags {
    Tags::from([(TAG_STATUS.to_string(), value.to_string())])
}

async fn bake_one(cloud: &kiln_cloud::Cloud, version: &str) -> ImageId {
    let mut spec = spec(fixture_rendered());
    spec.version = Some(version.into());
    // Different inputs, or the plan would reuse the first image.
    spec.variables
        .insert("release".into(), serde_json::json!(version));
    let plan = plan(cloud, &spec).await.expect("plan");
    let outcome = bake(cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .expect("bake");
    outcome.image.id
}

async fn registered(cloud: &kiln_cloud::Cloud) -> Vec<ImageId> {
    let filter = ImageFilter {
        owners: vec!["self".into()],
        ..ImageFilter::default()
    };
    let images = cloud.compute.describe_images(&filter).await.unwrap();
    images
        .into_iter()
        .filter(|i| i.state != ImageState::Deregistered)
        .map(|i| i.id)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn only_unused_images_of_unfinished_or_failed_runs_are_removed() {
    let cloud = cloud_with_faults("").await;
    let ready = bake_one(&cloud, "1.0.0").await;
    let pending_in_use = bake_one(&cloud, "2.0.0").await;
    let pending = bake_one(&cloud, "3.0.0").await;
    let failed = bake_one(&cloud, "4.0.0").await;
    let tag = |id: &ImageId, value: &str| {
        let ids = [id.to_string()];
        let tags = status(value);
        let compute = cloud.compute.clone();
        async move { compute.create_tags(&ids, &tags).await.unwrap() }
    };
    // As a killed bake leaves them: still pending; and one that failed its test.
    tag(&pending_in_use, STATUS_PENDING).await;
    tag(&pending, STATUS_PENDING).await;
    tag(&failed, STATUS_FAILED).await;
    let version = NewTemplateVersion {
        template: TemplateRef::Name("poc-web-lt".into()),
        source_version: 2,
        image_id: pending_in_use.clone(),
        description: "rolled out by hand".into(),
    };
    cloud
        .compute
        .create_launch_template_version(&version)
        .await
        .unwrap();
    let before = registered(&cloud).await;

    let over = |_: &str| RunState::Over;
    let judge = RunJudge {
        local: &over,
        grace: Duration::from_secs(3600),
        now: cloud.clock.now(),
    };
    let found = survey(&cloud, &judge).await.unwrap();
    let images: Vec<&str> = found
        .remove
        .iter()
        .filter(|f| f.kind == ResourceKind::Image)
        .map(|f| f.id.as_str())
        .collect();
    assert_eq!(images.len(), 2, "{:?}\n{:?}", found.remove, found.kept);
    assert!(images.contains(&pending.as_str()) && images.contains(&failed.as_str()));
    let kept = found
        .kept
        .iter()
        .find(|f| f.id == pending_in_use.as_str())
        .unwrap();
    assert!(
        kept.reason.contains("poc-web-lt version 3"),
        "{}",
        kept.reason
    );
    assert!(found
        .remove
        .iter()
        .any(|f| f.kind == ResourceKind::Snapshot));

    let report = sweep(&cloud, &found).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let after = registered(&cloud).await;
    let mut gone: Vec<&ImageId> = before.iter().filter(|i| !after.contains(i)).collect();
    gone.sort();
    let mut expected = vec![&pending, &failed];
    expected.sort();
    assert_eq!(gone, expected, "only those two were deregistered");
    assert!(after.contains(&ready) && after.contains(&pending_in_use));

    let again = survey(&cloud, &judge).await.unwrap();
    assert!(again.remove.is_empty(), "{:?}", again.remove);
}

#[tokio::test(start_paused = true)]
async fn a_young_run_without_a_journal_is_left_alone() {
    let cloud = cloud_with_faults("").await;
    let pending = bake_one(&cloud, "1.0.0").await;
    let ids = [pending.to_string()];
    cloud
        .compute
        .create_tags(&ids, &status(STATUS_PENDING))
        .await
        .unwrap();

    let unknown = |_: &str| RunState::Unknown;
    let judge = RunJudge {
        local: &unknown,
        grace: Duration::from_secs(6 * 3600),
        now: cloud.clock.now(),
    };
    let found = survey(&cloud, &judge).await.unwrap();
    assert!(found.remove.is_empty(), "{:?}", found.remove);
    let kept = found
        .kept
        .iter()
        .find(|f| f.id == pending.as_str())
        .unwrap();
    assert!(
        kept.reason.contains("within the grace period"),
        "{}",
        kept.reason
    );

    let live = |_: &str| RunState::Live;
    let judge = RunJudge {
        local: &live,
        ..judge
    };
    assert!(survey(&cloud, &judge).await.unwrap().remove.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_ready_image_held_by_the_journal_of_a_dead_run_is_removed_with_its_snapshots() {
    let cloud = cloud_with_faults("").await;
    let held = bake_one(&cloud, "1.0.0").await;
    let used = bake_one(&cloud, "2.0.0").await;
    let version = NewTemplateVersion {
        template: TemplateRef::Name("poc-web-lt".into()),
        source_version: 2,
        image_id: used.clone(),
        description: "rolled out by hand".into(),
    };
    let created = cloud.compute.create_launch_template_version(&version);
    created.await.unwrap();
    let record = |id: &ImageId, region: &str| Record {
        kind: ResourceKind::Image,
        id: id.to_string(),
        region: region.into(),
        run_id: "bake-20260105T000000Z-dead".into(),
    };
    // Both are `ready`: only the journal says their run never let go of them.
    let records = [
        record(&held, REGION),
        record(&used, REGION),
        record(&ImageId::new("ami-0elsewhere"), "us-west-2"),
    ];
    let over = |_: &str| RunState::Over;
    let judge = RunJudge {
        local: &over,
        grace: Duration::from_secs(3600),
        now: cloud.clock.now(),
    };
    assert!(survey(&cloud, &judge).await.unwrap().remove.is_empty());

    let found = survey_with_journals(&cloud, &judge, &records)
        .await
        .unwrap();
    let removed: Vec<(ResourceKind, &str)> = found
        .remove
        .iter()
        .map(|f| (f.kind, f.id.as_str()))
        .collect();
    assert_eq!(
        removed[0],
        (ResourceKind::Image, held.as_str()),
        "{removed:?}"
    );
    assert!(removed[1..]
        .iter()
        .all(|(k, _)| *k == ResourceKind::Snapshot));
    assert!(removed.len() > 1, "the held image's snapshots go with it");
    let kept = found.kept.iter().find(|f| f.id == used.as_str()).unwrap();
    assert!(
        kept.reason.contains("poc-web-lt version 3"),
        "{}",
        kept.reason
    );

    let live = |_: &str| RunState::Live;
    let judge = RunJudge {
        local: &live,
        ..judge
    };
    let found = survey_with_journals(&cloud, &judge, &records)
        .await
        .unwrap();
    assert!(
        found.remove.is_empty(),
        "a live run's image stays: {:?}",
        found.remove
    );
}
