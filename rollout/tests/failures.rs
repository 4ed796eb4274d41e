//! A rollout that must stop: an image that never becomes healthy, a cancel from CI, a
//! second rollout on a locked group. Each says why it stopped and leaves the group on
//! its previous version.

mod common;

use std::time::Duration;

use common::*;
use kiln_cloud::progress::Silent;
use kiln_cloud::RefreshStatus;
use kiln_rollout::{
    plan, rollback, rollout, CancellationToken, RollingSettings, RolloutError, StopReason, LOCK_TAG,
};

#[tokio::test(start_paused = true)]
async fn unhealthy_new_image_is_rolled_back_with_the_reason() {
    let (account, cloud) = poc().await;
    unhealthy(&account, NEW_IMAGE);
    let p = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap();
    let err = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .expect_err("the rollout stops");

    let RolloutError::Stopped {
        reason,
        rolled_back,
        outcome,
        ..
    } = &err
    else {
        panic!("expected a stop, got {err}");
    };
    assert!(
        matches!(
            **reason,
            StopReason::Unhealthy { .. } | StopReason::RefreshEnded { .. }
        ),
        "{reason}"
    );
    assert!(*rolled_back, "{err}");
    assert_eq!(outcome.status, "RolledBack");
    assert_eq!(outcome.on_new_image, 0);
    let text = err.to_string();
    assert!(text.contains(GROUP) && text.contains(REGION), "{text}");
    let (version, images) = versions_and_images(&cloud, GROUP).await;
    assert_eq!(version, "2");
    assert_eq!(images, vec![CURRENT_IMAGE; 3]);
    // Launch first: the bad instances never took capacity away.
    assert_safe(&account, GROUP, 3);
    let detect = timing(&outcome.timings, "until_stopped").unwrap();
    let back = timing(&outcome.timings, "rollback").unwrap();
    // Well under AWS's hour (PITFALLS 8).
    assert!(detect < Duration::from_secs(20 * 60), "{detect:?}");
    eprintln!("unhealthy image: detected after {detect:?}, rolled back in {back:?}: {reason}");
}

#[tokio::test(start_paused = true)]
async fn second_rollout_is_refused_naming_the_lock_holder() {
    let (account, cloud) = poc().await;
    let spec = rolling(RollingSettings::default());
    let first = plan(&cloud, &spec, &new_image())
        .await
        .unwrap()
        .with_owner("jenkins-release-42");
    let second = plan(&cloud, &spec, &new_image())
        .await
        .unwrap()
        .with_owner("alice");
    let task = {
        let (cloud, first) = (cloud.clone(), first.clone());
        tokio::spawn(
            async move { rollout(&cloud, &first, &Silent, &CancellationToken::new()).await },
        )
    };
    while !group(&cloud, GROUP).await.tags.contains_key(LOCK_TAG) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let err = rollout(&cloud, &second, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();
    let RolloutError::Locked { holder, .. } = &err else {
        panic!("expected Locked, got {err}")
    };
    assert_eq!(holder.owner, "jenkins-release-42");
    assert_eq!(holder.run_id, first.run_id);
    assert!(err.to_string().contains("jenkins-release-42"), "{err}");
    // A new plan is refused the same way, before anything is changed.
    let again = plan(&cloud, &spec, &new_image()).await.unwrap_err();
    assert!(matches!(again, RolloutError::Locked { .. }), "{again}");

    task.await.unwrap().expect("the first rollout finishes");
    assert!(
        !group(&cloud, GROUP).await.tags.contains_key(LOCK_TAG),
        "lock released"
    );
    assert_safe(&account, GROUP, 3);
}

#[tokio::test(start_paused = true)]
async fn cancel_mid_refresh_rolls_back_and_releases_the_lock() {
    let (account, cloud) = poc().await;
    let p = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let task = {
        let (cloud, p, cancel) = (cloud.clone(), p.clone(), cancel.clone());
        tokio::spawn(async move { rollout(&cloud, &p, &Silent, &cancel).await })
    };
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let r = cloud
            .scaling
            .describe_instance_refreshes(GROUP)
            .await
            .unwrap();
        if r.first()
            .is_some_and(|r| r.status == RefreshStatus::InProgress && r.percentage_complete > 0)
        {
            break;
        }
    }
    cancel.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.stop_reason(), Some(&StopReason::Cancelled), "{err}");
    let RolloutError::Stopped { rolled_back, .. } = &err else {
        unreachable!()
    };
    assert!(*rolled_back);
    let (version, images) = versions_and_images(&cloud, GROUP).await;
    assert_eq!(
        (version.as_str(), images),
        ("2", vec![CURRENT_IMAGE.to_string(); 3])
    );
    assert!(!group(&cloud, GROUP).await.tags.contains_key(LOCK_TAG));
    assert_safe(&account, GROUP, 3);
}

#[tokio::test(start_paused = true)]
async fn rollback_by_hand_returns_to_the_recorded_version() {
    let (_account, cloud) = poc().await;
    let p = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap();
    rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(versions_and_images(&cloud, GROUP).await.0, "3");

    let out = rollback(&cloud, GROUP, &Silent, &CancellationToken::new())
        .await
        .expect("rollback");
    assert_eq!(out.status, "RolledBack");
    assert_eq!((out.launch_template_version, out.previous_version), (2, 3));
    let (version, images) = versions_and_images(&cloud, GROUP).await;
    assert_eq!(
        (version.as_str(), images),
        ("2", vec![CURRENT_IMAGE.to_string(); 3])
    );
    eprintln!("rollback by hand took {:?}", out.timings);
}

/// How long each storm lasts: every call is rejected meanwhile, for longer than the AWS
/// client's own retries last (about two seconds).
const STORM: Duration = Duration::from_secs(120);
/// Storms start this far apart: with each lasting [`STORM`], every moment of a rollout
/// falls inside one of them.
const STORM_EVERY: Duration = Duration::from_secs(60);

/// The POC's throttling faults (`examples/poc/faults/throttling.yaml`) with the storm
/// starting `after` the rollout does.
fn storm_at(account: &kiln_cloud::sim::SimAccount, after: Duration) {
    account.set_faults(kiln_cloud::sim::Faults {
        throttle: vec![kiln_cloud::sim::ThrottleFault {
            operation: "DescribeInstances".into(),
            count: 5,
            rejected: 0,
        }],
        throttle_storm: Some(kiln_cloud::sim::StormFault {
            after,
            lasts: STORM,
            starts_at: None,
            rejected: 0,
        }),
        ..Default::default()
    });
}

/// Rolls the new image out with `spec` through a storm starting at each [`STORM_EVERY`]
/// while an undisturbed rollout would still run; each must succeed with every instance
/// on the new image, and no poll may have given up on a call.
async fn through_every_storm(spec: &kiln_rollout::RolloutSpec) {
    let name = spec.strategy.name();
    let length = undisturbed(spec).await;
    let mut after = Duration::ZERO;
    while after < length {
        let (account, cloud) = poc().await;
        storm_at(&account, after);
        let p = plan(&cloud, spec, &new_image()).await.unwrap();
        let rec = recorder();
        let out = rollout(&cloud, &p, &*rec, &CancellationToken::new()).await;
        let at = secs(after);
        let out = out.unwrap_or_else(|e| panic!("{name}, storm at {at} s: {e}"));
        assert_eq!(
            (out.status.as_str(), out.on_new_image),
            ("Successful", 3),
            "{name}, storm at {at} s"
        );
        let storm = account.faults().throttle_storm.unwrap();
        assert!(storm.rejected > 0, "{name}: the storm at {at} s came");
        let gave_up: Vec<String> = rec
            .events()
            .into_iter()
            .filter(|e| e.message.contains("poll failed"))
            .map(|e| e.message)
            .collect();
        assert_eq!(gave_up, Vec::<String>::new(), "{name}, storm at {at} s");
        // Blue (or the refreshed group) kept its capacity; traffic always had a target.
        assert_safe(&account, GROUP, 3);
        after += STORM_EVERY;
    }
}

/// How long a rollout with `spec` takes on a calm account.
async fn undisturbed(spec: &kiln_rollout::RolloutSpec) -> Duration {
    let (_account, cloud) = poc().await;
    let p = plan(&cloud, spec, &new_image()).await.unwrap();
    let out = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    out.timings.iter().map(|(_, took)| *took).sum()
}

#[tokio::test(start_paused = true)]
async fn a_rolling_rollout_outlasts_a_throttling_storm_whenever_it_comes() {
    let spec = rolling(RollingSettings::default());
    through_every_storm(&spec).await;
    let (account, cloud) = poc().await;
    storm_at(&account, Duration::from_secs(4 * 60));
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        versions_and_images(&cloud, GROUP).await,
        ("3".to_string(), vec![NEW_IMAGE.to_string(); 3])
    );
}

#[tokio::test(start_paused = true)]
async fn a_blue_green_rollout_outlasts_a_throttling_storm_whenever_it_comes() {
    let spec = spec(kiln_rollout::Strategy::BlueGreen(Default::default()));
    through_every_storm(&spec).await;
    // A storm from just before the switch (green is healthy after about three minutes)
    // to past the end of the run.
    let (account, cloud) = poc().await;
    storm_at(&account, Duration::from_secs(3 * 60));
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let out = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    let green = p.blue_green.as_ref().unwrap().green_group.clone();
    assert_eq!(out.group, green);
    let tags = group(&cloud, &green).await.tags;
    assert_eq!(
        tags.get(kiln_rollout::TAG_LIVE).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        versions_and_images(&cloud, &green).await,
        ("3".to_string(), vec![NEW_IMAGE.to_string(); 3])
    );
}

#[tokio::test(start_paused = true)]
async fn an_in_place_fix_outlasts_a_throttling_storm_whenever_it_comes() {
    let fix = kiln_rollout::InPlaceSettings {
        script: vec!["systemctl reload php-fpm".into()],
        batch_size: 1,
        description: "reload PHP-FPM".into(),
    };
    let spec = spec(kiln_rollout::Strategy::InPlace(fix));
    let length = undisturbed(&spec).await;
    let mut after = Duration::ZERO;
    while after < length {
        let (account, cloud) = poc().await;
        storm_at(&account, after);
        let p = plan(&cloud, &spec, &new_image()).await.unwrap();
        let out = rollout(&cloud, &p, &Silent, &CancellationToken::new()).await;
        let at = secs(after);
        let out = out.unwrap_or_else(|e| panic!("in place, storm at {at} s: {e}"));
        assert_eq!(out.on_new_image, 3, "fixed, storm at {at} s");
        let storm = account.faults().throttle_storm.unwrap();
        assert!(storm.rejected > 0, "in place: the storm at {at} s came");
        let tags = group(&cloud, GROUP).await.tags;
        assert!(
            tags.contains_key(kiln_rollout::TAG_DRIFT),
            "storm at {at} s"
        );
        assert_safe(&account, GROUP, 2);
        after += STORM_EVERY;
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollback_with_nothing_to_undo_is_a_result_that_says_why() {
    let (_account, cloud) = poc().await;
    let never = CancellationToken::new();
    let fresh = rollback(&cloud, GROUP, &Silent, &never).await.unwrap();
    assert_eq!(fresh.status, "NothingToRollBack");
    let note = fresh.note.clone().unwrap_or_default();
    assert!(note.contains("no rollout by kiln is recorded"), "{note}");

    let p = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap();
    rollout(&cloud, &p, &Silent, &never).await.unwrap();
    let back = rollback(&cloud, GROUP, &Silent, &never).await.unwrap();
    assert_eq!(back.status, "RolledBack");
    let refreshes = cloud.scaling.describe_instance_refreshes(GROUP).await;
    let count = refreshes.unwrap().len();

    let twice = rollback(&cloud, GROUP, &Silent, &never).await.unwrap();
    assert_eq!(twice.status, "NothingToRollBack");
    let note = twice.note.clone().unwrap_or_default();
    assert!(note.contains("already runs version 2"), "{note}");
    let image = twice.image.as_ref().map(ToString::to_string);
    assert_eq!(
        (
            twice.launch_template_version,
            image.as_deref(),
            twice.on_new_image
        ),
        (2, Some(CURRENT_IMAGE), 3)
    );
    let refreshes = cloud.scaling.describe_instance_refreshes(GROUP).await;
    assert_eq!(refreshes.unwrap().len(), count, "no refresh started");
    assert!(!group(&cloud, GROUP).await.tags.contains_key(LOCK_TAG));
}

#[tokio::test(start_paused = true)]
async fn rollback_by_hand_during_a_rollout_stops_it() {
    let (_account, cloud) = poc().await;
    let p = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap();
    let task = spawn_rollout(&cloud, &p, &CancellationToken::new());
    until_refresh_in_progress(&cloud, 1).await;

    // An operator in an incident: the lock does not stop an AWS rollback.
    let out = rollback(&cloud, GROUP, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.status, "RolledBack");
    assert_eq!((out.launch_template_version, out.previous_version), (2, 3));
    // The result counts what the instances run once AWS is done.
    let image = out.image.as_ref().map(ToString::to_string);
    assert_eq!(
        (image.as_deref(), out.on_new_image),
        (Some(CURRENT_IMAGE), 3)
    );
    let err = task.await.unwrap().unwrap_err();
    let Some(StopReason::RefreshEnded { status, .. }) = err.stop_reason() else {
        panic!("expected the refresh to end, got {err}");
    };
    assert_eq!(status, "RollbackSuccessful");
    let (version, images) = versions_and_images(&cloud, GROUP).await;
    assert_eq!(
        (version.as_str(), images),
        ("2", vec![CURRENT_IMAGE.to_string(); 3])
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollout_past_its_deadline_is_rolled_back_and_says_so() {
    let (_account, cloud) = poc().await;
    let mut spec = rolling(RollingSettings::default());
    spec.timeouts.rollout = Duration::from_secs(120);
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let err = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();
    let Some(StopReason::Timeout { waited }) = err.stop_reason() else {
        panic!("expected a timeout, got {err}");
    };
    assert_eq!(waited, "2m");
    assert!(err.to_string().contains("timeout"), "{err}");
    let (version, images) = versions_and_images(&cloud, GROUP).await;
    assert_eq!(
        (version.as_str(), images),
        ("2", vec![CURRENT_IMAGE.to_string(); 3])
    );
}

/// Starts a rollout of `spec` under a storm from its first minute lasting `lasts`,
/// cancels it two minutes into the storm and returns its result, with when the cancel
/// came and what it reported.
async fn cancel_in_a_storm(
    spec: &kiln_rollout::RolloutSpec,
    lasts: Duration,
) -> (
    Result<kiln_rollout::RolloutOutcome, RolloutError>,
    kiln_cloud::Timestamp,
    Vec<kiln_cloud::progress::Event>,
) {
    let (account, cloud) = poc().await;
    account.set_faults(kiln_cloud::sim::Faults {
        throttle_storm: Some(kiln_cloud::sim::StormFault {
            after: Duration::from_secs(60),
            lasts,
            starts_at: None,
            rejected: 0,
        }),
        ..Default::default()
    });
    let p = plan(&cloud, spec, &new_image()).await.unwrap();
    let rec = recorder();
    let cancel = CancellationToken::new();
    let task = {
        let (cloud, p, rec, cancel) = (cloud.clone(), p.clone(), rec.clone(), cancel.clone());
        tokio::spawn(async move { rollout(&cloud, &p, &*rec, &cancel).await })
    };
    tokio::time::sleep(Duration::from_secs(3 * 60)).await;
    let cancelled_at = cloud.clock.now();
    cancel.cancel();
    let result = task.await.unwrap();
    assert!(account.faults().throttle_storm.unwrap().rejected > 0);
    (result, cancelled_at, rec.events())
}

#[tokio::test(start_paused = true)]
async fn a_cancel_in_a_throttling_storm_stops_the_run_at_once() {
    let rolling = rolling(RollingSettings::default());
    let blue_green = spec(kiln_rollout::Strategy::BlueGreen(Default::default()));
    for spec in [rolling, blue_green] {
        let name = spec.strategy.name();
        // Four minutes: the undo outlasts what is left of the storm.
        let (result, cancelled_at, events) =
            cancel_in_a_storm(&spec, Duration::from_secs(4 * 60)).await;
        let err = result.expect_err("the rollout stops");
        let RolloutError::Stopped { reason, .. } = &err else {
            panic!("{name}: expected a stop, got {err}");
        };
        assert!(matches!(**reason, StopReason::Cancelled), "{name}: {err}");
        // The first error reported after the cancel is the stop: a poll being tried
        // again is dropped at the cancel, not after THROTTLE_BUDGET (three minutes).
        let stopped = events
            .into_iter()
            .find(|e| e.at >= cancelled_at && e.level == kiln_cloud::progress::Level::Error)
            .expect("the stop is reported");
        let took = (stopped.at - cancelled_at).to_std().unwrap();
        assert!(
            took < Duration::from_secs(5),
            "{name}: stopped {} s after the cancel",
            secs(took)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_undo_a_storm_outlasts_says_the_refresh_may_still_run() {
    let spec = rolling(RollingSettings::default());
    let (result, _, _) = cancel_in_a_storm(&spec, Duration::from_secs(30 * 60)).await;
    let err = result.expect_err("the rollout stops");
    let RolloutError::RollbackFailed { detail, next, .. } = &err else {
        panic!("expected a failed rollback, got {err}");
    };
    assert!(
        detail.starts_with("stopping instance refresh ")
            && detail.contains("(cancelled)")
            && detail.contains("Rate exceeded"),
        "{detail}"
    );
    assert!(
        next.starts_with("the refresh may still be running"),
        "{next}"
    );
}

/// A rollout killed while AWS rolls its refresh back (a second Ctrl-C during the undo),
/// its lock released as `kiln gc` releases a dead run's: the refresh is left
/// `RollbackInProgress`, or `Cancelling` when `cancel` is given.
async fn killed_during_the_undo(cloud: &kiln_cloud::Cloud, cancel: bool) {
    let p = plan(cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap();
    let task = spawn_rollout(cloud, &p, &CancellationToken::new());
    until_refresh_in_progress(cloud, 34).await;
    if cancel {
        cloud.scaling.cancel_instance_refresh(GROUP).await.unwrap();
    } else {
        cloud
            .scaling
            .rollback_instance_refresh(GROUP)
            .await
            .unwrap();
    }
    task.abort();
    let _ = task.await;
    let lock = [LOCK_TAG.to_string()];
    cloud.scaling.delete_group_tags(GROUP, &lock).await.unwrap();
}

async fn last_refresh(cloud: &kiln_cloud::Cloud) -> kiln_cloud::InstanceRefresh {
    let refreshes = cloud.scaling.describe_instance_refreshes(GROUP).await;
    refreshes.unwrap().remove(0)
}

#[tokio::test(start_paused = true)]
async fn rollback_waits_for_a_refresh_already_rolling_back() {
    let (_account, cloud) = poc().await;
    killed_during_the_undo(&cloud, false).await;
    let undoing = last_refresh(&cloud).await;
    assert_eq!(undoing.status, RefreshStatus::RollbackInProgress);

    let out = rollback(&cloud, GROUP, &Silent, &CancellationToken::new())
        .await
        .expect("waits for AWS's rollback instead of asking for another");
    assert_eq!(out.status, "RolledBack");
    assert_eq!((out.launch_template_version, out.previous_version), (2, 3));
    let last = last_refresh(&cloud).await;
    assert_eq!(
        (last.id, last.status),
        (undoing.id, RefreshStatus::RollbackSuccessful)
    );
    let (version, images) = versions_and_images(&cloud, GROUP).await;
    assert_eq!(
        (version.as_str(), images),
        ("2", vec![CURRENT_IMAGE.to_string(); 3])
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_waits_for_a_cancelling_refresh_then_refreshes_back_what_it_replaced() {
    let (_account, cloud) = poc().await;
    killed_during_the_undo(&cloud, true).await;
    let cancelling = last_refresh(&cloud).await;
    assert_eq!(cancelling.status, RefreshStatus::Cancelling);

    let out = rollback(&cloud, GROUP, &Silent, &CancellationToken::new())
        .await
        .expect("waits for the cancel, then refreshes back");
    assert_eq!(out.status, "RolledBack");
    let refreshes = cloud
        .scaling
        .describe_instance_refreshes(GROUP)
        .await
        .unwrap();
    let statuses: Vec<RefreshStatus> = refreshes.iter().take(2).map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [RefreshStatus::Successful, RefreshStatus::Cancelled],
        "the cancelled refresh, then one back to version 2"
    );
    let (version, images) = versions_and_images(&cloud, GROUP).await;
    assert_eq!(
        (version.as_str(), images),
        ("2", vec![CURRENT_IMAGE.to_string(); 3])
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_rollback_stops_waiting_and_leaves_aws_rollback_running() {
    let (_account, cloud) = poc().await;
    killed_during_the_undo(&cloud, false).await;
    let cancel = CancellationToken::new();
    cancel.cancel();

    let err = rollback(&cloud, GROUP, &Silent, &cancel).await.unwrap_err();
    assert_eq!(err.stop_reason(), Some(&StopReason::Cancelled), "{err}");
    assert!(
        err.to_string()
            .contains("goes on in AWS; `kiln status FILE --target poc-web` shows it"),
        "{err}"
    );
    let last = last_refresh(&cloud).await;
    assert_eq!(last.status, RefreshStatus::RollbackInProgress);
}

#[tokio::test(start_paused = true)]
async fn a_rollout_stopped_while_aws_rolls_it_back_lets_that_rollback_end() {
    let (_account, cloud) = poc().await;
    let p = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let task = spawn_rollout(&cloud, &p, &cancel);
    until_refresh_in_progress(&cloud, 34).await;
    // AWS (an operator, an alarm) rolls the refresh back; then the rollout is stopped
    // before it has seen that.
    cloud
        .scaling
        .rollback_instance_refresh(GROUP)
        .await
        .unwrap();
    let undoing = last_refresh(&cloud).await;
    cancel.cancel();

    let err = task.await.unwrap().unwrap_err();
    let RolloutError::Stopped { rolled_back, .. } = &err else {
        panic!("expected a stop, got {err}");
    };
    assert!(*rolled_back, "{err}");
    let refreshes = cloud
        .scaling
        .describe_instance_refreshes(GROUP)
        .await
        .unwrap();
    assert_eq!(
        (refreshes[0].id.as_str(), refreshes[0].status),
        (undoing.id.as_str(), RefreshStatus::RollbackSuccessful),
        "AWS's rollback was not cancelled half-way"
    );
    let (version, images) = versions_and_images(&cloud, GROUP).await;
    assert_eq!(
        (version.as_str(), images),
        ("2", vec![CURRENT_IMAGE.to_string(); 3])
    );
}
