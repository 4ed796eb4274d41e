//! The image lifecycle on the simulated account: distribution to several regions in
//! parallel (one failing), a run interrupted while it copies, channels and promotion,
//! the catalogue and retention.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_builder::catalogue::{self, CatalogueError, PruneSpec};
use kiln_builder::distribute::{self, CopyLimits, CopyRun, DistributeSpec, DistributionReport};
use kiln_builder::naming::{self, TAG_INPUT_HASH, TAG_VERSION};
use kiln_builder::{
    bake, bake_with_journal, plan, BakeOutcome, BakedImage, Journal, MemoryJournal, Record,
    ResourceKind,
};
use kiln_cloud::progress::Silent;
use kiln_cloud::sim::{Faults, SimAccount};
use kiln_cloud::{
    Account, Cloud, Event, ImageId, ImageState, LaunchPermissions, NewTemplateVersion, Progress,
    SnapshotId, TemplateRef,
};
use tokio_util::sync::CancellationToken;

use support::*;

/// A third destination region beside the POC seed's two, made like us-west-2.
const EXTRA_REGION: &str = "eu-central-1";
const DESTINATIONS: [&str; 3] = ["ap-northeast-3", "us-west-2", EXTRA_REGION];
/// The simulation's copies take ten to twenty minutes each.
const COPY_MIN: Duration = Duration::from_secs(600);
const COPY_MAX: Duration = Duration::from_secs(1200);

/// The POC account with one more region, and `faults` (YAML, may be empty).
fn account(faults: &str) -> Arc<SimAccount> {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/poc/account.yaml");
    let seed = std::fs::read_to_string(seed).expect("the POC seed is readable");
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&seed).expect("seed YAML");
    let regions = doc["regions"].as_mapping_mut().expect("regions");
    let mut extra = regions["us-west-2"].clone();
    let text = serde_yaml_ng::to_string(&extra).expect("region YAML");
    extra = serde_yaml_ng::from_str(&text.replace("us-west-2", EXTRA_REGION)).expect("region");
    regions.insert(EXTRA_REGION.into(), extra);
    let seed = serde_yaml_ng::to_string(&doc).expect("seed");
    let account = SimAccount::from_seed_str(&seed).expect("seed with a third region");
    if !faults.trim().is_empty() {
        account.set_faults(Faults::from_yaml_str(faults).expect("faults"));
    }
    Arc::new(account)
}

async fn home(account: &SimAccount) -> Cloud {
    account.region(REGION).await.expect("home region")
}

/// Bakes the fixture with `variant` as a variable, so that each variant is a new version.
async fn bake_variant(cloud: &Cloud, variant: &str) -> BakedImage {
    let mut spec = spec(fixture_rendered());
    spec.variables
        .insert("variant".into(), serde_json::json!(variant));
    let plan = plan(cloud, &spec).await.expect("plan");
    let cancel = CancellationToken::new();
    bake(cloud, &plan, &Silent, &cancel)
        .await
        .expect("bake")
        .image
}

fn to_all(channel: Option<&str>) -> DistributeSpec {
    DistributeSpec {
        regions: DESTINATIONS.iter().map(|r| r.to_string()).collect(),
        channel: channel.map(String::from),
        launch_permissions: LaunchPermissions {
            accounts: vec!["444455556666".into()],
            organizational_unit_arns: vec![
                "arn:aws:organizations::111122223333:ou/o-abc/ou-web".into()
            ],
            ..LaunchPermissions::default()
        },
        ..DistributeSpec::default()
    }
}

#[tokio::test(start_paused = true)]
async fn copies_run_in_parallel_and_a_failing_region_is_reported_beside_the_others() {
    let faults = format!("copy_fails: [{{region: {EXTRA_REGION}, reason: KMS key disabled}}]");
    let account = account(&faults);
    let cloud = home(&account).await;
    let image = bake_variant(&cloud, "a").await;

    let cancel = CancellationToken::new();
    let spec = to_all(Some("poc"));
    let report = distribute::distribute(account.as_ref(), &image, &spec, &Silent, &cancel).await;

    let regions: Vec<&str> = report.regions.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(
        regions,
        [REGION, "ap-northeast-3", "us-west-2", EXTRA_REGION]
    );
    let failed = report.failed();
    assert_eq!(failed.len(), 1, "{report:#?}");
    assert_eq!(failed[0].region, EXTRA_REGION);
    let error = failed[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("KMS key disabled") && error.contains(EXTRA_REGION),
        "{error}"
    );

    // Concurrent: the phase lasts about as long as the slowest copy, not the sum.
    let took = Duration::from_secs(report.seconds);
    println!("distribute to 3 regions took {took:?} (simulated)");
    let slowest_region = report.regions.iter().map(|r| r.seconds).max().unwrap_or(0);
    assert!(
        took <= COPY_MAX + 2 * kiln_builder::wait::IMAGE_POLL,
        "{took:?}"
    );
    assert!(
        took < 3 * COPY_MIN,
        "copies ran one after another: {took:?}"
    );
    assert!(report.seconds <= slowest_region + 1, "{report:#?}");

    for outcome in report.regions.iter().filter(|r| r.is_ok()) {
        let region = account.region(&outcome.region).await.expect("region");
        let id = outcome.image.clone().expect("image in a good region");
        let copy = describe_image(&region, &id).await.expect("copy exists");
        assert_eq!(copy.tags[TAG_INPUT_HASH], image.input_hash);
        assert_eq!(copy.tags[TAG_VERSION], image.version);
        assert_eq!(copy.name, image.name);
        let channel = region
            .parameters
            .get_parameter("/kiln/poc-web-base/poc", false)
            .await
            .expect("read channel")
            .expect("channel published");
        assert_eq!(channel.value, id.as_str());
    }
    // The failed copy holds no name or snapshot in its region, and no channel points there.
    let bad = account.region(EXTRA_REGION).await.expect("region");
    let channel = bad
        .parameters
        .get_parameter("/kiln/poc-web-base/poc", false);
    assert!(channel.await.expect("read").is_none());
    assert!(catalogue::list(&bad, None).await.expect("list").is_empty());

    // Shared with the account and the OU in every good region.
    let state = account.snapshot_json().to_string();
    assert!(
        state.matches("ou-web").count() >= 3,
        "launch permissions not recorded"
    );
}

#[tokio::test(start_paused = true)]
async fn distributing_again_reuses_the_copies() {
    let account = account("");
    let cloud = home(&account).await;
    let image = bake_variant(&cloud, "a").await;
    let cancel = CancellationToken::new();
    let spec = to_all(Some("poc"));
    let first = distribute::distribute(account.as_ref(), &image, &spec, &Silent, &cancel).await;
    assert!(first.failed().is_empty(), "{first:#?}");

    let again = distribute::distribute(account.as_ref(), &image, &spec, &Silent, &cancel).await;
    assert!(again.failed().is_empty(), "{again:#?}");
    for (a, b) in first.regions.iter().zip(&again.regions) {
        assert_eq!(a.image, b.image, "{}", a.region);
    }
    assert!(again.regions[1..].iter().all(|r| r.reused));
    assert!(again.seconds < 60, "reused copies took {}s", again.seconds);
    let history = cloud
        .parameters
        .get_parameter_history("/kiln/poc-web-base/poc", false)
        .await
        .expect("history");
    assert_eq!(
        history.len(),
        1,
        "an unchanged channel is not written again"
    );
}

#[tokio::test(start_paused = true)]
async fn promotion_keeps_history_and_refuses_a_failed_image() {
    let account = account("");
    let cloud = home(&account).await;
    let regions = vec![REGION.to_string()];
    let first = bake_variant(&cloud, "a").await;
    let second = bake_variant(&cloud, "b").await;
    assert_ne!(first.version, second.version);

    let promote = |version: String| {
        let account = account.clone();
        let regions = regions.clone();
        async move {
            let account = account.as_ref();
            catalogue::promote(account, &regions, IMAGE_NAME, &version, "prod").await
        }
    };
    let one = promote(first.version.clone()).await.expect("promote first");
    assert_eq!(one[0].previous, None);
    let two = promote(second.version.clone())
        .await
        .expect("promote second");
    assert_eq!(two[0].previous.as_deref(), Some(first.id.as_str()));
    let history = cloud
        .parameters
        .get_parameter_history("/kiln/poc-web-base/prod", false)
        .await
        .expect("history");
    let values: Vec<&str> = history.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(values, [first.id.as_str(), second.id.as_str()]);
    let resolved = catalogue::resolve_channel(&cloud, IMAGE_NAME, "prod").await;
    assert_eq!(resolved.expect("resolve"), second.id);

    // An image whose test failed can never be promoted.
    let failed = kiln_cloud::Tags::from([(naming::TAG_STATUS.into(), "failed".into())]);
    cloud
        .compute
        .create_tags(&[first.id.to_string()], &failed)
        .await
        .expect("tag");
    let refused = promote(first.version.clone()).await;
    assert!(
        matches!(refused, Err(CatalogueError::NotPromotable { .. })),
        "{refused:?}"
    );
    let unknown = promote("2001.01.01-1".into()).await;
    assert!(matches!(
        unknown,
        Err(CatalogueError::VersionNotFound { .. })
    ));
    let still = catalogue::resolve_channel(&cloud, IMAGE_NAME, "prod").await;
    assert_eq!(still.expect("resolve"), second.id);
}

/// Snapshots of `ids` that still exist in `cloud`'s region.
async fn existing_snapshots(cloud: &Cloud, ids: &[SnapshotId]) -> usize {
    let mut found = 0;
    for id in ids {
        let result = cloud
            .compute
            .describe_snapshots(std::slice::from_ref(id), &Default::default())
            .await;
        found += result.map(|s| s.len()).unwrap_or(0);
    }
    found
}

#[tokio::test(start_paused = true)]
async fn prune_spares_images_in_use_and_removes_old_ones_with_every_snapshot() {
    let account = account("");
    let cloud = home(&account).await;
    let cancel = CancellationToken::new();
    let spec = DistributeSpec {
        regions: vec!["ap-northeast-3".into()],
        ..DistributeSpec::default()
    };
    let mut baked = Vec::new();
    for variant in ["old-used", "old-unused", "newest"] {
        let image = bake_variant(&cloud, variant).await;
        let report = distribute::distribute(account.as_ref(), &image, &spec, &Silent, &cancel);
        let report = report.await;
        assert!(report.failed().is_empty(), "{report:#?}");
        baked.push((image, report));
    }
    // The oldest is used only by a launch template version that is not the default.
    let used = &baked[0].0;
    let version = NewTemplateVersion {
        template: TemplateRef::Name("poc-web-lt".into()),
        source_version: 2,
        image_id: used.id.clone(),
        description: "a release candidate".into(),
    };
    let created = cloud.compute.create_launch_template_version(&version).await;
    assert!(!created.expect("template version").is_default);

    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    let regions = vec![REGION.to_string(), "ap-northeast-3".to_string()];
    let entries = catalogue::list_regions(account.as_ref(), &regions, Some(IMAGE_NAME)).await;
    let entries = entries.expect("catalogue");
    assert_eq!(entries.len(), 6, "{entries:#?}");
    let used_entry = entries
        .iter()
        .find(|e| e.id == used.id)
        .expect("used image");
    assert!(
        used_entry.used_by[0].contains("poc-web-lt version 3"),
        "{used_entry:#?}"
    );

    let prune = PruneSpec {
        image_name: Some(IMAGE_NAME.into()),
        keep: 1,
        older_than: Duration::from_secs(3600),
        dry_run: true,
    };
    let now = cloud.clock.now();
    let dry = catalogue::prune(account.as_ref(), &regions, &prune, now).await;
    let dry = dry.expect("dry run");
    assert_eq!(dry.removed.len(), 2, "{dry:#?}");
    assert_eq!(
        catalogue::list_regions(account.as_ref(), &regions, None)
            .await
            .expect("catalogue")
            .len(),
        6,
        "a dry run removes nothing"
    );

    let real = PruneSpec {
        dry_run: false,
        ..prune
    };
    let report = catalogue::prune(account.as_ref(), &regions, &real, now).await;
    let report = report.expect("prune");
    println!("prune: {report:#?}");
    assert!(report.errors.is_empty(), "{report:#?}");
    let removed: Vec<&ImageId> = report.removed.iter().map(|p| &p.id).collect();
    let unused = &baked[1];
    let unused_ids: Vec<ImageId> = unused
        .1
        .regions
        .iter()
        .filter_map(|r| r.image.clone())
        .collect();
    assert_eq!(removed.len(), 2);
    assert!(
        unused_ids.iter().all(|id| removed.contains(&id)),
        "{removed:?}"
    );
    assert!(report
        .kept
        .iter()
        .any(|k| k.id == used.id && k.reason.contains("in use")));

    for pruned in &report.removed {
        let region = account.region(&pruned.region).await.expect("region");
        assert!(describe_image(&region, &pruned.id).await.is_none());
        assert!(!pruned.snapshots.is_empty());
        assert_eq!(existing_snapshots(&region, &pruned.snapshots).await, 0);
    }
    let left = catalogue::list_regions(account.as_ref(), &regions, None).await;
    let left = left.expect("catalogue");
    assert_eq!(left.len(), 4);
    for entry in &left {
        let region = account.region(&entry.region).await.expect("region");
        assert_eq!(
            existing_snapshots(&region, &entry.snapshots).await,
            entry.snapshots.len()
        );
    }
}

/// The destinations of the run tests: the POC seed's two other regions.
const TWO: [&str; 2] = ["ap-northeast-3", "us-west-2"];

/// Cancels the run once `copies` copies have started, and keeps their ids.
struct CancelAtCopies {
    copies: usize,
    started: Mutex<Vec<(String, ImageId)>>,
    cancel: CancellationToken,
}

impl Progress for CancelAtCopies {
    fn event(&self, event: Event) {
        let id = event
            .message
            .strip_prefix("copy ")
            .and_then(|m| m.strip_suffix(" started"));
        let (Some(id), "distribute") = (id, event.phase.as_str()) else {
            return;
        };
        let region = event.subject.rsplit(' ').next().unwrap_or_default();
        let mut started = self.started.lock().unwrap();
        started.push((region.to_string(), ImageId::new(id)));
        if started.len() == self.copies {
            self.cancel.cancel();
        }
    }
}

/// A journal that also keeps every record ever made, to see what was journaled.
#[derive(Default)]
struct Ledger {
    open: MemoryJournal,
    all: Mutex<Vec<Record>>,
}

impl Journal for Ledger {
    fn record(&self, record: Record) {
        self.all.lock().unwrap().push(record.clone());
        self.open.record(record);
    }

    fn forget(&self, kind: ResourceKind, id: &str, fate: kiln_cloud::Fate) {
        self.open.forget(kind, id, fate);
    }
}

/// Bakes the fixture into `journal` and distributes it to [`TWO`] as one run.
async fn bake_and_distribute(
    account: &SimAccount,
    journal: &Ledger,
    progress: &CancelAtCopies,
) -> (String, BakeOutcome, DistributionReport) {
    let cloud = account.region(REGION).await.expect("home region");
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let cancel = &progress.cancel;
    let outcome = bake_with_journal(&cloud, &plan, &Silent, cancel, journal);
    let outcome = outcome.await.expect("bake");
    let spec = DistributeSpec {
        regions: TWO.iter().map(|r| r.to_string()).collect(),
        channel: Some("poc".into()),
        ..DistributeSpec::default()
    };
    let run = CopyRun {
        run_id: Some(plan.run_id.clone()),
        journal,
    };
    let limits = CopyLimits::default();
    let report =
        distribute::distribute_baked(account, &outcome, &spec, progress, cancel, &limits, &run)
            .await;
    (plan.run_id, outcome, report)
}

async fn channel_in(account: &SimAccount, region: &str) -> Option<String> {
    let cloud = account.region(region).await.expect("region");
    let channel = cloud
        .parameters
        .get_parameter("/kiln/poc-web-base/poc", false)
        .await;
    channel.expect("read channel").map(|p| p.value)
}

#[tokio::test(start_paused = true)]
async fn a_run_interrupted_while_copying_leaves_nothing_in_any_region() {
    let account = account_with_faults("");
    let journal = Ledger::default();
    let watch = CancelAtCopies {
        copies: TWO.len(),
        started: Mutex::new(Vec::new()),
        cancel: CancellationToken::new(),
    };
    let (run_id, outcome, report) = bake_and_distribute(&account, &journal, &watch).await;

    let started = watch.started.lock().unwrap().clone();
    assert_eq!(
        started.len(),
        2,
        "both copies were under way when cancelled"
    );
    assert!(report.cancelled, "{report:#?}");
    for region in &report.regions {
        let error = region.error.as_deref().unwrap_or_default();
        assert!(error.contains("cancelled in"), "{region:#?}");
        assert!(region.image.is_none(), "{region:#?}");
    }
    let journaled = journal.all.lock().unwrap().clone();
    for (region, copy) in &started {
        let recorded = journaled
            .iter()
            .any(|r| r.id == copy.as_str() && &r.region == region && r.run_id == run_id);
        assert!(
            recorded,
            "copy {copy} in {region} was not journaled: {journaled:#?}"
        );
        let cloud = account.region(region).await.expect("region");
        let state = describe_image(&cloud, copy).await.map(|i| i.state);
        assert!(
            state.is_none_or(|s| s == ImageState::Deregistered),
            "{copy} in {region}: {state:?}"
        );
    }
    assert!(
        journaled.iter().any(|r| r.id == outcome.image.id.as_str()),
        "the image is held by the journal while it is distributed"
    );
    assert_eq!(
        journal.open.open_records(),
        Vec::new(),
        "the journal is empty"
    );
    let left = run_leftovers(&account, &run_id, &[]).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    for region in [REGION, TWO[0], TWO[1]] {
        assert_eq!(channel_in(&account, region).await, None, "{region}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_copy_is_removed_and_the_run_keeps_the_image_and_the_other_copy() {
    let faults = format!(
        "copy_fails: [{{region: {}, reason: KMS key disabled}}]",
        TWO[1]
    );
    let account = account_with_faults(&faults);
    let journal = Ledger::default();
    let watch = CancelAtCopies {
        copies: usize::MAX,
        started: Mutex::new(Vec::new()),
        cancel: CancellationToken::new(),
    };
    let (run_id, outcome, report) = bake_and_distribute(&account, &journal, &watch).await;

    assert!(!report.cancelled);
    let failed: Vec<&str> = report.failed().iter().map(|r| r.region.as_str()).collect();
    assert_eq!(failed, [TWO[1]], "{report:#?}");
    let error = report.failed()[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("KMS key disabled") && error.contains(TWO[1]),
        "{error}"
    );
    let started = watch.started.lock().unwrap().clone();
    let bad_copy = &started
        .iter()
        .find(|(r, _)| r == TWO[1])
        .expect("copy started")
        .1;
    let journaled = journal.all.lock().unwrap().clone();
    let snapshots_of_bad = journaled
        .iter()
        .filter(|r| r.kind == ResourceKind::Snapshot && r.region == TWO[1])
        .count();
    assert!(
        snapshots_of_bad > 0,
        "the failed copy's snapshots were journaled"
    );
    assert!(journaled
        .iter()
        .any(|r| r.id == bad_copy.as_str() && r.region == TWO[1]));

    let good = report
        .regions
        .iter()
        .find(|r| r.region == TWO[0])
        .expect("region");
    let good_copy = good.image.clone().expect("the good region has its copy");
    let kept = [outcome.image.id.clone(), good_copy.clone()];
    let left = run_leftovers(&account, &run_id, &kept).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(
        journal.open.open_records(),
        Vec::new(),
        "the journal is empty"
    );

    let cloud = account.region(TWO[0]).await.expect("region");
    let copy = describe_image(&cloud, &good_copy).await.expect("good copy");
    assert_eq!(copy.tags[naming::TAG_STATUS], naming::STATUS_READY);
    assert_eq!(copy.tags[kiln_cloud::TAG_RUN_ID], run_id);
    let home = account.region(REGION).await.expect("home");
    let image = describe_image(&home, &outcome.image.id)
        .await
        .expect("image kept");
    assert_eq!(image.state, ImageState::Available);
    assert_eq!(
        channel_in(&account, TWO[0]).await,
        Some(good_copy.to_string())
    );
    assert_eq!(channel_in(&account, TWO[1]).await, None);
}
