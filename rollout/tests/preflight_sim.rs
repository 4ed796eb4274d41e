//! Preflight on the simulated POC account: each refusal names the group, the reason and
//! the fix, and nothing is changed; the plan states the replacement order.

mod common;

use common::*;
use kiln_cloud::{
    Account, GroupTemplate, InstanceId, NewTemplateVersion, ProtectedInstances, TemplateRef,
    UpdateGroup,
};
use kiln_rollout::{
    plan, ReplacementOrder, RollingSettings, RolloutError, RolloutPlan, RolloutSpec, Strategy,
};

async fn refused(
    cloud: &kiln_cloud::Cloud,
    settings: RollingSettings,
) -> Vec<kiln_rollout::Refusal> {
    match plan(cloud, &rolling(settings), &new_image()).await {
        Err(RolloutError::Preflight {
            refusals,
            group,
            region,
        }) => {
            assert_eq!((group.as_str(), region.as_str()), (GROUP, REGION));
            refusals
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn planned(cloud: &kiln_cloud::Cloud, settings: RollingSettings) -> RolloutPlan {
    plan(cloud, &rolling(settings), &new_image())
        .await
        .expect("plan")
}

fn checks(r: &[kiln_rollout::Refusal]) -> Vec<&str> {
    r.iter().map(|r| r.check.as_str()).collect()
}

async fn first_instance(cloud: &kiln_cloud::Cloud) -> InstanceId {
    group(cloud, GROUP).await.instances[0].id.clone()
}

#[tokio::test(start_paused = true)]
async fn launch_first_and_terminate_first_come_from_the_percentages() {
    let (_account, cloud) = poc().await;
    let p = planned(&cloud, RollingSettings::default()).await;
    let r = p.refresh.unwrap();
    assert_eq!(r.order, ReplacementOrder::LaunchBeforeTerminate);
    assert_eq!(
        (r.capacity.launch_batch, r.capacity.terminate_batch),
        (1, 0)
    );

    // With min below desired, 66 % / 100 % terminates one at a time first.
    let lower = UpdateGroup {
        name: GROUP.into(),
        min_size: Some(1),
        ..Default::default()
    };
    cloud.scaling.update_group(&lower).await.unwrap();
    let settings = RollingSettings {
        min_healthy_percentage: 66,
        max_healthy_percentage: 100,
        ..Default::default()
    };
    let r = planned(&cloud, settings).await.refresh.unwrap();
    assert_eq!(r.order, ReplacementOrder::TerminateBeforeLaunch);
    assert_eq!(r.capacity.terminate_batch, 1);
    assert_eq!(r.capacity.min_in_service, 2);
}

#[tokio::test(start_paused = true)]
async fn terminate_first_on_min_equal_desired_is_refused() {
    let (_account, cloud) = poc().await;
    let settings = RollingSettings {
        min_healthy_percentage: 66,
        max_healthy_percentage: 100,
        ..Default::default()
    };
    let r = refused(&cloud, settings).await;
    assert_eq!(checks(&r), ["terminate_first"]);
    assert!(r[0].reason.contains("desired 3, min 3"), "{}", r[0].reason);
    assert!(r[0].fix.contains("launch first"), "{}", r[0].fix);
}

#[tokio::test(start_paused = true)]
async fn a_running_refresh_is_refused() {
    let (_account, cloud) = poc().await;
    let p = planned(&cloud, RollingSettings::default()).await;
    let request = kiln_cloud::StartRefresh {
        group: GROUP.into(),
        desired: None,
        preferences: p.refresh.unwrap().preferences,
    };
    let mut prefs = request.clone();
    prefs.preferences.auto_rollback = false;
    cloud.scaling.start_instance_refresh(&prefs).await.unwrap();
    let r = refused(&cloud, RollingSettings::default()).await;
    assert_eq!(checks(&r), ["refresh_running"]);
    // Valid commands (the pipeline file and the target, not the group), and the account
    // being busy rather than bad input.
    assert_eq!(
        r[0].fix,
        "wait for it to finish (`kiln status FILE --target poc-web` shows it), or stop it \
         with `kiln rollback FILE --target poc-web`"
    );
    assert!(r[0].is_busy());
}

#[tokio::test(start_paused = true)]
async fn a_refresh_rolling_back_is_refused_as_busy_with_commands_that_wait_for_it() {
    let (_account, cloud) = poc().await;
    let p = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap();
    let task = spawn_rollout(&cloud, &p, &kiln_rollout::CancellationToken::new());
    until_refresh_in_progress(&cloud, 1).await;
    cloud
        .scaling
        .rollback_instance_refresh(GROUP)
        .await
        .unwrap();
    // Killed while AWS rolls back: its lock released as `kiln gc` would.
    task.abort();
    let lock = [kiln_rollout::LOCK_TAG.to_string()];
    cloud.scaling.delete_group_tags(GROUP, &lock).await.unwrap();

    let err = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap_err();
    assert!(err.is_busy(), "{err}");
    let RolloutError::Preflight { refusals, .. } = err else {
        unreachable!()
    };
    assert_eq!(checks(&refusals), ["refresh_running"]);
    assert!(
        refusals[0].reason.contains("RollbackInProgress"),
        "{}",
        refusals[0].reason
    );
    assert_eq!(
        refusals[0].fix,
        "it is being undone: try again once it ends (`kiln status FILE --target poc-web` \
         shows it), or let `kiln rollback FILE --target poc-web` wait for it and finish the \
         undo"
    );
}

#[tokio::test(start_paused = true)]
async fn suspended_processes_are_refused() {
    let (_account, cloud) = poc().await;
    let procs = ["Launch".to_string(), "AZRebalance".to_string()];
    cloud
        .scaling
        .suspend_processes(GROUP, &procs)
        .await
        .unwrap();
    let r = refused(&cloud, RollingSettings::default()).await;
    assert_eq!(checks(&r), ["suspended_processes"]);
    assert!(r[0].reason.contains("Launch") && !r[0].reason.contains("AZRebalance"));
    assert!(r[0].fix.contains("resume-processes"));
}

#[tokio::test(start_paused = true)]
async fn protected_and_standby_instances_need_a_decision() {
    let (_account, cloud) = poc().await;
    let id = first_instance(&cloud).await;
    cloud
        .scaling
        .set_instance_protection(GROUP, std::slice::from_ref(&id), true)
        .await
        .unwrap();
    let r = refused(&cloud, RollingSettings::default()).await;
    assert_eq!(checks(&r), ["protected_instances"]);
    assert!(r[0].reason.contains(id.as_str()));

    let decided = RollingSettings {
        protected_instances: Some(ProtectedInstances::Refresh),
        ..Default::default()
    };
    let p = planned(&cloud, decided).await;
    let prefs = p.refresh.unwrap().preferences;
    assert_eq!(
        prefs.scale_in_protected_instances,
        ProtectedInstances::Refresh
    );
    // Nothing to decide for standby: sent explicitly anyway (PITFALLS 5).
    assert_eq!(
        prefs.standby_instances,
        kiln_cloud::StandbyInstances::Ignore
    );

    let lower = UpdateGroup {
        name: GROUP.into(),
        min_size: Some(1),
        ..Default::default()
    };
    cloud.scaling.update_group(&lower).await.unwrap();
    let other = group(&cloud, GROUP).await.instances[1].id.clone();
    cloud
        .scaling
        .enter_standby(GROUP, &[other], true)
        .await
        .unwrap();
    let r = refused(&cloud, RollingSettings::default()).await;
    assert_eq!(checks(&r), ["protected_instances", "standby_instances"]);
}

#[tokio::test(start_paused = true)]
async fn launch_first_without_max_size_room_is_refused_or_raised() {
    let (_account, cloud) = poc().await;
    let tight = UpdateGroup {
        name: GROUP.into(),
        max_size: Some(3),
        ..Default::default()
    };
    cloud.scaling.update_group(&tight).await.unwrap();
    let r = refused(&cloud, RollingSettings::default()).await;
    assert_eq!(checks(&r), ["max_size"]);
    assert!(r[0].reason.contains("needs max size 4"), "{}", r[0].reason);

    let raise = RollingSettings {
        raise_max_size: true,
        ..Default::default()
    };
    let p = planned(&cloud, raise).await;
    assert_eq!(p.refresh.as_ref().unwrap().raise_max_size_to, Some(4));
    kiln_rollout::rollout(
        &cloud,
        &p,
        &kiln_cloud::progress::Silent,
        &Default::default(),
    )
    .await
    .expect("rollout with a raised max size");
    assert_eq!(group(&cloud, GROUP).await.max_size, 3, "max size restored");
}

#[tokio::test(start_paused = true)]
async fn a_floating_group_is_reported_and_refreshed_to_a_numbered_version() {
    let (_account, cloud) = poc().await;
    let latest = GroupTemplate {
        template_id: None,
        template_name: Some(TEMPLATE.into()),
        version: "$Latest".into(),
    };
    let update = UpdateGroup {
        name: GROUP.into(),
        template: Some(latest),
        ..Default::default()
    };
    cloud.scaling.update_group(&update).await.unwrap();
    let p = planned(&cloud, RollingSettings::default()).await;
    assert!(
        p.notes.iter().any(|n| n.contains("$Latest")),
        "{:?}",
        p.notes
    );
    assert_eq!(p.template.source_version, 2);
    // AWS refuses auto rollback on a floating group; kiln rolls back by itself.
    assert!(!p.refresh.as_ref().unwrap().preferences.auto_rollback);
    let silent = kiln_cloud::progress::Silent;
    let out = kiln_rollout::rollout(&cloud, &p, &silent, &Default::default())
        .await
        .unwrap();
    assert_eq!(out.launch_template_version, 3);
    assert_eq!(
        versions_and_images(&cloud, GROUP).await.0,
        "3",
        "pinned to a number now"
    );
}

#[tokio::test(start_paused = true)]
async fn a_live_lock_refuses_and_an_expired_one_is_taken_over_with_a_warning() {
    let (_account, cloud) = poc().await;
    let lock = |expires: &str| {
        let value = format!("owner=ghost;run=ro-old;expires={expires}");
        kiln_cloud::Tags::from([(kiln_rollout::LOCK_TAG.to_string(), value)])
    };
    cloud
        .scaling
        .put_group_tags(GROUP, &lock("2026-01-05T06:00:00Z"))
        .await
        .unwrap();
    let err = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ghost"), "{err}");

    cloud
        .scaling
        .put_group_tags(GROUP, &lock("2026-01-04T23:00:00Z"))
        .await
        .unwrap();
    let p = planned(&cloud, RollingSettings::default()).await;
    let rec = recorder();
    kiln_rollout::rollout(&cloud, &p, &*rec, &Default::default())
        .await
        .unwrap();
    let warned = rec
        .events()
        .iter()
        .any(|e| e.level == kiln_cloud::Level::Warn && e.message.contains("expired lock of ghost"));
    assert!(warned, "the takeover is reported");
}

#[tokio::test(start_paused = true)]
async fn drift_between_the_group_and_the_template_is_reported() {
    let (_account, cloud) = poc().await;
    // Another tool wrote version 3; the group still runs 2.
    let other = NewTemplateVersion {
        template: TemplateRef::Name(TEMPLATE.into()),
        source_version: 2,
        image_id: "ami-0b0c0de2025100001".into(),
        description: "written by another tool".into(),
    };
    cloud
        .compute
        .create_launch_template_version(&other)
        .await
        .unwrap();
    let p = planned(&cloud, RollingSettings::default()).await;
    assert_eq!(p.template.source_version, 2);
    assert_eq!(p.template.expected_new_version, 4);
    assert!(
        p.notes.iter().any(|n| n.starts_with("drift")),
        "{:?}",
        p.notes
    );
}

#[tokio::test(start_paused = true)]
async fn a_version_kiln_made_is_not_reported_as_drift() {
    let (_account, cloud) = poc().await;
    let first = planned(&cloud, RollingSettings::default()).await;
    let out = kiln_rollout::rollout(
        &cloud,
        &first,
        &kiln_cloud::progress::Silent,
        &Default::default(),
    )
    .await
    .expect("rollout");
    assert_eq!(out.status, "Successful");

    let again = plan(&cloud, &rolling(Default::default()), &CURRENT_IMAGE.into())
        .await
        .unwrap();
    assert_eq!(again.template.source_version, 3);
    assert!(
        !again.notes.iter().any(|n| n.starts_with("drift")),
        "{:?}",
        again.notes
    );
    let expected = format!(
        "group {GROUP} runs version 3 of {TEMPLATE}, made by kiln's run {}; the template's \
         default stays 2, as kiln never moves it (PITFALLS 2)",
        first.run_id
    );
    assert!(again.notes.contains(&expected), "{:?}", again.notes);
}

#[tokio::test(start_paused = true)]
async fn the_group_already_on_the_image_changes_nothing() {
    let (_account, cloud) = poc().await;
    let p = plan(&cloud, &rolling(Default::default()), &CURRENT_IMAGE.into())
        .await
        .unwrap();
    assert!(p.no_change);
    let out = kiln_rollout::rollout(
        &cloud,
        &p,
        &kiln_cloud::progress::Silent,
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(out.status, "NoChange");
    assert!(cloud
        .scaling
        .describe_instance_refreshes(GROUP)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn settings_aws_would_refuse_are_refused_before_the_account_is_read() {
    let (account, cloud) = poc().await;
    let before = account.snapshot_json();
    let settings = RollingSettings {
        checkpoints: vec![50, 100],
        checkpoint_delay: Some(std::time::Duration::from_secs(3 * 24 * 3600)),
        ..RollingSettings::default()
    };
    match plan(&cloud, &rolling(settings), &new_image()).await {
        Err(RolloutError::Invalid {
            what,
            region,
            detail,
        }) => {
            assert_eq!(what, format!("target poc-web (group {GROUP})"));
            assert_eq!(region, REGION);
            assert_eq!(
                detail,
                "checkpoint_delay: checkpoint_delay 3days is out of range (AWS accepts 0s to 48h)"
            );
        }
        other => panic!("expected the delay refused, got {other:?}"),
    }
    assert_eq!(account.snapshot_json(), before, "the account changed");
}

/// The POC account with every launch template version letting instances use IMDSv1.
async fn poc_with_imdsv1() -> (kiln_cloud::sim::SimAccount, kiln_cloud::Cloud) {
    let seed = SEED.replace(
        "metadata_http_tokens: required",
        "metadata_http_tokens: optional",
    );
    assert_ne!(seed, SEED, "the seed requires IMDSv2");
    let account = kiln_cloud::sim::SimAccount::from_seed_str(&seed).expect("seed");
    let cloud = account.region(REGION).await.expect("home region");
    (account, cloud)
}

#[tokio::test(start_paused = true)]
async fn a_template_that_allows_imdsv1_is_refused_unless_the_target_allows_it() {
    let (account, cloud) = poc_with_imdsv1().await;
    let before = account.snapshot_json();
    let r = refused(&cloud, RollingSettings::default()).await;
    assert_eq!(checks(&r), ["imdsv2"]);
    assert_eq!(
        r[0].to_string(),
        "launch template poc-web-lt version 2 does not require IMDSv2 (HttpTokens optional): \
         the instances launched from it can use IMDSv1 (fix: set HttpTokens=required in the \
         template's metadata options where the template is managed (kiln's new version is \
         made from version 2 with only the image changed), or set `allow_imdsv1: true` on the \
         target)"
    );
    let mut after = account.snapshot_json();
    after["meta"]["now"] = before["meta"]["now"].clone();
    assert_eq!(before, after, "a refused plan changes nothing");

    let allowed = RolloutSpec {
        allow_imdsv1: true,
        ..rolling(RollingSettings::default())
    };
    let p = plan(&cloud, &allowed, &new_image()).await.expect("allowed");
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("does not require IMDSv2")),
        "the plan still says so: {:?}",
        p.notes
    );
}

#[tokio::test(start_paused = true)]
async fn an_in_place_fix_is_not_refused_for_imdsv1_but_says_so() {
    let (_account, cloud) = poc_with_imdsv1().await;
    let fix = spec(Strategy::InPlace(kiln_rollout::InPlaceSettings {
        script: vec!["systemctl reload php-fpm".into()],
        batch_size: 1,
        description: "reload PHP-FPM".into(),
    }));
    let p = plan(&cloud, &fix, &new_image()).await.expect("in place");
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("does not require IMDSv2")),
        "{:?}",
        p.notes
    );
}

#[tokio::test(start_paused = true)]
async fn the_longest_deadlines_accepted_bound_the_group_lock() {
    let (account, cloud) = poc().await;
    let before = account.snapshot_json();
    let day = std::time::Duration::from_secs(24 * 3600);
    // A 1000-day deadline once locked the group for years; it is refused now.
    let mut endless = rolling(RollingSettings::default());
    endless.timeouts.rollout = 1000 * day;
    match plan(&cloud, &endless, &new_image()).await {
        Err(RolloutError::Invalid { detail, .. }) => assert_eq!(
            detail,
            "timeouts.rollout: rollout 2years 8months 25days 23h 31m 12s is out of range (give \
             it between 1m and 7days: the deadline of the whole replacement)"
        ),
        other => panic!("expected the deadline refused, got {other:?}"),
    }
    assert_eq!(account.snapshot_json(), before, "the account changed");

    // The longest accepted: a week's rollout, two days' rollback, the lock's margin.
    let mut longest = rolling(RollingSettings::default());
    longest.timeouts.rollout = 7 * day;
    longest.timeouts.rollback = 2 * day;
    let p = plan(&cloud, &longest, &new_image()).await.expect("plan");
    let now = cloud.clock.now();
    let lock = p.lock_holder(now).expires - now;
    let margin = chrono::Duration::from_std(kiln_rollout::LOCK_MARGIN).expect("margin");
    assert_eq!(lock, chrono::Duration::days(9) + margin);
}

#[tokio::test(start_paused = true)]
async fn an_in_place_batch_that_drains_the_whole_group_is_refused() {
    let (account, cloud) = poc().await;
    let before = account.snapshot_json();
    let fix = |batch_size| {
        spec(Strategy::InPlace(kiln_rollout::InPlaceSettings {
            script: vec!["systemctl reload php-fpm".into()],
            batch_size,
            description: "reload PHP-FPM".into(),
        }))
    };
    match plan(&cloud, &fix(3), &new_image()).await {
        Err(RolloutError::Preflight { refusals, .. }) => {
            assert_eq!(checks(&refusals), ["in_place_batch"]);
            assert_eq!(
                refusals[0].to_string(),
                "in-place batch_size 3 takes 3 of the 3 in-service instances of group \
                 poc-web-asg (min size 3) out of the target group at once, leaving 0 serving \
                 (fix: set in_place.batch_size to at most 1: a batch may take out the \
                 instances above the group's min size, or one when none is above it, never \
                 all)"
            );
        }
        other => panic!("expected the batch refused, got {other:?}"),
    }
    let mut after = account.snapshot_json();
    after["meta"]["now"] = before["meta"]["now"].clone();
    assert_eq!(before, after, "a refused plan changes nothing");

    // With min size 1, two of three may be fixed at once.
    let lower = UpdateGroup {
        name: GROUP.into(),
        min_size: Some(1),
        ..Default::default()
    };
    cloud.scaling.update_group(&lower).await.unwrap();
    let p = plan(&cloud, &fix(2), &new_image())
        .await
        .expect("two above min");
    assert_eq!(p.in_place.expect("in place").batches.len(), 2);
}
