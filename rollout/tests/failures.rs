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

#[tokio::test(start_paused = true)]
async fn a_throttling_storm_delays_the_rollout_without_breaking_it() {
    let (account, cloud) = poc().await;
    account.set_faults(kiln_cloud::sim::Faults {
        throttle_storm: Some(kiln_cloud::sim::StormFault {
            after: Duration::from_secs(120),
            lasts: Duration::from_secs(120),
            starts_at: None,
            rejected: 0,
        }),
        ..Default::default()
    });
    let p = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap();
    let rec = recorder();
    let out = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .expect("rollout");
    assert_eq!(out.on_new_image, 3);
    assert!(
        account.faults().throttle_storm.unwrap().rejected > 0,
        "the storm happened"
    );
    let warned = rec
        .events()
        .iter()
        .any(|e| e.level == kiln_cloud::Level::Warn);
    assert!(warned, "throttled polls are reported");
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
