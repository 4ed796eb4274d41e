//! Canary, blue/green (with testers' rule and A/B weights) and in place, on the
//! simulated POC account.

mod common;

use std::time::Duration;

use common::*;
use kiln_cloud::progress::Silent;
use kiln_cloud::sim::{Faults, StepFault};
use kiln_cloud::TargetState;
use kiln_rollout::{
    plan, rollback, rollout, BlueGreenSettings, CanarySettings, CancellationToken, InPlaceSettings,
    Preview, RolloutError, StopReason, Strategy, TAG_DRIFT,
};

fn canary() -> CanarySettings {
    CanarySettings {
        steps: vec![33, 66],
        bake: Duration::from_secs(120),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn canary_pauses_at_each_step_and_finishes() {
    let (account, cloud) = poc().await;
    let p = plan(&cloud, &spec(Strategy::Canary(canary())), &new_image())
        .await
        .unwrap();
    let prefs = &p.refresh.as_ref().unwrap().preferences;
    assert_eq!(prefs.checkpoint_percentages, [33, 66, 100]);
    assert_eq!(prefs.checkpoint_delay, Some(Duration::from_secs(120)));
    let rec = recorder();
    let out = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((out.strategy.as_str(), out.on_new_image), ("canary", 3));
    let waits = rec
        .events()
        .iter()
        .filter(|e| e.message.contains("checkpoint"))
        .count();
    assert!(waits >= 2, "the refresh was seen waiting at checkpoints");
    assert_safe(&account, GROUP, 3);
    eprintln!("canary took {:?}", out.timings);
}

#[tokio::test(start_paused = true)]
async fn canary_with_a_failing_probe_stops_at_the_first_step() {
    let (account, cloud) = poc().await;
    account.set_faults(Faults {
        steps: vec![StepFault {
            step: "rollout/probe".into(),
            exit_code: 7,
            stdout: vec![],
            stderr: vec!["curl: (7) Failed to connect to 127.0.0.1 port 80".into()],
            times: None,
        }],
        ..Faults::default()
    });
    let mut s = spec(Strategy::Canary(canary()));
    s.gates.http_probe = Some("/health".into());
    let p = plan(&cloud, &s, &new_image()).await.unwrap();
    let err = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err.stop_reason(), Some(StopReason::Probe { .. })),
        "{err}"
    );
    assert_eq!(
        versions_and_images(&cloud, GROUP).await.1,
        vec![CURRENT_IMAGE; 3]
    );
    assert_safe(&account, GROUP, 3);
}

fn blue_green(settings: BlueGreenSettings) -> kiln_rollout::RolloutSpec {
    spec(Strategy::BlueGreen(settings))
}

async fn listener_targets(cloud: &kiln_cloud::Cloud) -> Vec<(String, i32)> {
    let lb = cloud
        .load_balancing
        .describe_load_balancers(&[ALB.into()])
        .await
        .unwrap();
    let listeners = cloud
        .load_balancing
        .describe_listeners(&lb[0].arn)
        .await
        .unwrap();
    let tgs = cloud
        .load_balancing
        .describe_target_groups(&[])
        .await
        .unwrap();
    let forward = listeners[0].default_forward.clone().unwrap();
    forward
        .target_groups
        .iter()
        .map(|t| {
            let name = tgs
                .iter()
                .find(|g| g.arn == t.target_group_arn)
                .unwrap()
                .name
                .clone();
            (name, t.weight)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn blue_green_switches_once_green_is_healthy_and_rolls_back_in_one_change() {
    let (account, cloud) = poc().await;
    let p = plan(
        &cloud,
        &blue_green(BlueGreenSettings::default()),
        &new_image(),
    )
    .await
    .unwrap();
    let bg = p.blue_green.as_ref().unwrap();
    assert_eq!(
        (bg.green_group.as_str(), bg.green_target_group.as_str()),
        ("poc-web-asg-v3", "poc-web-tg-v3")
    );
    let out = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (out.group.as_str(), out.on_new_image),
        ("poc-web-asg-v3", 3)
    );
    // Blue stays in the action at weight 0, health-checked for a quick switch back.
    let expected = [(TG.to_string(), 0), ("poc-web-tg-v3".to_string(), 100)];
    assert_eq!(listener_targets(&cloud).await, expected);
    // Blue is kept, at its capacity, for the rollback window.
    assert_eq!(
        versions_and_images(&cloud, GROUP).await.1,
        vec![CURRENT_IMAGE; 3]
    );
    assert_safe(&account, GROUP, 3);
    eprintln!("blue/green took {:?}", out.timings);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = account.timeline().len();
    let back = rollback(&cloud, GROUP, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(back.status, "RolledBack");
    // One listener change: the timeline's default action changes once, straight to blue.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let defaults: Vec<Vec<String>> = account.timeline()[before - 1..]
        .iter()
        .flat_map(|f| f.listeners.iter().filter(|l| l.rule == "default"))
        .map(|l| {
            l.targets
                .iter()
                .map(|t| t.target_group.to_string())
                .collect()
        })
        .collect();
    let changes = defaults.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(changes, 1, "{defaults:?}");
    let expected = [(TG.to_string(), 100), ("poc-web-tg-v3".to_string(), 0)];
    assert_eq!(listener_targets(&cloud).await, expected);
    assert_safe(&account, GROUP, 3);

    // The next rollout starts from the live group (blue again).
    let again = plan(
        &cloud,
        &blue_green(BlueGreenSettings::default()),
        &new_image(),
    )
    .await
    .unwrap();
    assert_eq!(again.spec.group, GROUP);
}

#[tokio::test(start_paused = true)]
async fn blue_green_with_testers_then_weighted_steps() {
    let (account, cloud) = poc().await;
    let settings = BlueGreenSettings {
        preview: Some(Preview {
            source_ips: vec!["203.0.113.0/24".into()],
            header: None,
            hold: Duration::from_secs(600),
            priority: 10,
        }),
        traffic_steps: vec![10, 50],
        step_bake: Duration::from_secs(120),
        ..Default::default()
    };
    let p = plan(&cloud, &blue_green(settings), &new_image())
        .await
        .unwrap();
    let rec = recorder();
    rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap();

    let frames = account.timeline();
    let rule_seen = frames
        .iter()
        .any(|f| f.listeners.iter().any(|l| l.rule == "10"));
    assert!(rule_seen, "the testers' rule forwarded to green");
    let weights: Vec<Vec<i32>> = frames
        .iter()
        .flat_map(|f| f.listeners.iter().filter(|l| l.rule == "default"))
        .map(|l| l.targets.iter().map(|t| t.weight).collect())
        .collect();
    assert!(
        weights.contains(&vec![90, 10]) && weights.contains(&vec![50, 50]),
        "{weights:?}"
    );
    let lb = cloud
        .load_balancing
        .describe_load_balancers(&[ALB.into()])
        .await
        .unwrap();
    let listener = &cloud
        .load_balancing
        .describe_listeners(&lb[0].arn)
        .await
        .unwrap()[0];
    let rules = cloud
        .load_balancing
        .describe_rules(&listener.arn)
        .await
        .unwrap();
    assert_eq!(rules.len(), 1, "only the default rule is left");
    assert_safe(&account, GROUP, 3);
}

#[tokio::test(start_paused = true)]
async fn blue_green_with_an_unhealthy_image_leaves_blue_serving() {
    let (account, cloud) = poc().await;
    unhealthy(&account, NEW_IMAGE);
    let p = plan(
        &cloud,
        &blue_green(BlueGreenSettings::default()),
        &new_image(),
    )
    .await
    .unwrap();
    let err = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err.stop_reason(), Some(StopReason::Unhealthy { .. })),
        "{err}"
    );
    assert_eq!(listener_targets(&cloud).await, [(TG.to_string(), 1)]);
    let groups = cloud.scaling.describe_groups(&[]).await.unwrap();
    assert!(
        groups.iter().all(|g| g.name != "poc-web-asg-v3"),
        "green deleted"
    );
    assert_safe(&account, GROUP, 3);
    let RolloutError::Stopped { outcome, .. } = &err else {
        unreachable!()
    };
    eprintln!("blue/green unhealthy: {:?}", outcome.timings);
}

fn in_place(batch: usize) -> kiln_rollout::RolloutSpec {
    spec(Strategy::InPlace(InPlaceSettings {
        script: vec!["systemctl reload php-fpm".into()],
        batch_size: batch,
        description: "reload PHP-FPM so OPcache serves the fixed code".into(),
    }))
}

#[tokio::test(start_paused = true)]
async fn in_place_fixes_batch_by_batch_and_records_the_drift() {
    let (account, cloud) = poc().await;
    let p = plan(&cloud, &in_place(1), &new_image()).await.unwrap();
    assert_eq!(p.in_place.as_ref().unwrap().batches.len(), 3);
    let out = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.on_new_image, 3, "instances fixed");
    let drift = group(&cloud, GROUP)
        .await
        .tags
        .get(TAG_DRIFT)
        .cloned()
        .unwrap();
    assert!(
        drift.contains("OPcache") && drift.contains(&p.run_id),
        "{drift}"
    );
    // One batch of one out at a time: two of three kept serving.
    assert_safe(&account, GROUP, 2);
    eprintln!("in place took {:?}", out.timings);
}

#[tokio::test(start_paused = true)]
async fn in_place_stops_at_the_first_failure() {
    let (account, cloud) = poc().await;
    account.set_faults(Faults {
        steps: vec![StepFault {
            step: "rollout/fix".into(),
            exit_code: 1,
            stdout: vec![],
            stderr: vec!["Job for php-fpm.service failed".into()],
            times: None,
        }],
        ..Faults::default()
    });
    let p = plan(&cloud, &in_place(1), &new_image()).await.unwrap();
    let err = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();
    let Some(StopReason::Command { instance, detail }) = err.stop_reason() else {
        panic!("{err}")
    };
    assert!(detail.contains("php-fpm"), "{detail}");
    let RolloutError::Stopped { outcome, .. } = &err else {
        unreachable!()
    };
    assert_eq!(outcome.on_new_image, 0);
    // The failed instance stays out of the target group; the others serve.
    let tg = cloud
        .load_balancing
        .describe_target_groups(&[TG.into()])
        .await
        .unwrap();
    let health = cloud
        .load_balancing
        .describe_target_health(&tg[0].arn)
        .await
        .unwrap();
    let healthy: Vec<_> = health
        .iter()
        .filter(|h| h.state == TargetState::Healthy)
        .collect();
    assert_eq!(healthy.len(), 2);
    assert!(healthy.iter().all(|h| &h.target_id != instance));
    assert!(!group(&cloud, GROUP).await.tags.contains_key(TAG_DRIFT));
    assert_safe(&account, GROUP, 2);
}

/// Which instances of the POC group its target group serves (healthy) now.
async fn serving(cloud: &kiln_cloud::Cloud) -> Vec<String> {
    let tg = cloud
        .load_balancing
        .describe_target_groups(&[TG.into()])
        .await
        .unwrap();
    let health = cloud
        .load_balancing
        .describe_target_health(&tg[0].arn)
        .await
        .unwrap();
    let mut ids: Vec<String> = health
        .into_iter()
        .filter(|h| h.state == TargetState::Healthy)
        .map(|h| h.target_id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(start_paused = true)]
async fn an_aws_error_inside_a_batch_says_where_the_batch_is() {
    let (account, cloud) = poc().await;
    // Putting the first batch back is throttled for longer than kiln tries a call: the
    // fix ran, the instance is out of the target group, and the run cannot go on.
    account.set_faults(Faults {
        throttle: vec![kiln_cloud::sim::ThrottleFault {
            operation: "RegisterTargets".into(),
            count: 100_000,
            rejected: 0,
        }],
        ..Faults::default()
    });
    let p = plan(&cloud, &in_place(1), &new_image()).await.unwrap();
    let batches = p.in_place.clone().unwrap().batches;
    let [first, second, third] = [0, 1, 2].map(|n| batches[n][0].to_string());
    let err = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();
    account.set_faults(Faults::default());
    let RolloutError::Stopped {
        reason,
        rolled_back,
        ..
    } = &err
    else {
        panic!("expected a stop, got {err}");
    };
    assert!(!rolled_back);
    let StopReason::Error { detail } = &**reason else {
        panic!("expected an error stop, got {reason}");
    };
    assert!(detail.contains("RegisterTargets"), "{detail}");
    let text = err.to_string();
    let now = format!(
        "an in-place fix has no rollback. Now: {first} out of target group {TG} (the batch \
         the error hit); fixed and back in service: none; not fixed: {second}, {third}. \
         Next: repair {first} by hand and register it in target group {TG} again"
    );
    assert!(text.contains(&now), "{text}");
    let mut others = vec![second.clone(), third.clone()];
    others.sort();
    assert_eq!(serving(&cloud).await, others, "the account agrees");
    let state = group(&cloud, GROUP).await.tags[kiln_rollout::TAG_IN_PLACE].clone();
    assert_eq!(
        state,
        format!(
            "{} Failed at batch 1 of 3: an AWS error; 0 of 3 fixed",
            p.run_id
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_fix_says_where_each_instance_is_and_rollback_gives_the_same_advice() {
    let (account, cloud) = poc().await;
    account.set_faults(Faults {
        steps: vec![StepFault {
            step: "rollout/fix-batch-2".into(),
            exit_code: 1,
            stdout: vec![],
            stderr: vec!["Job for php-fpm.service failed".into()],
            times: None,
        }],
        ..Faults::default()
    });
    let p = plan(&cloud, &in_place(1), &new_image()).await.unwrap();
    let batches = p.in_place.clone().unwrap().batches;
    let [first, second, third] = [0, 1, 2].map(|n| batches[n][0].to_string());
    let err = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    let now = format!(
        "an in-place fix has no rollback. Now: {second} out of target group {TG} (the batch \
         the fix failed on); fixed and back in service: {first}; not fixed: {third}. Next: \
         repair {second} by hand and register it in target group {TG} again, or terminate it"
    );
    assert!(text.contains(&now), "{text}");
    assert!(!text.contains("to undo it"), "{text}");
    // The account agrees: the failed one is out, the others serve.
    let mut others = vec![first.clone(), third.clone()];
    others.sort();
    assert_eq!(serving(&cloud).await, others);
    let state = group(&cloud, GROUP).await.tags[kiln_rollout::TAG_IN_PLACE].clone();
    assert_eq!(
        state,
        format!(
            "{} Failed at batch 2 of 3: the fix failed on {second}; 1 of 3 fixed",
            p.run_id
        )
    );

    // A rollback says the same, and changes nothing.
    let refreshes = |c: kiln_cloud::Cloud| async move {
        c.scaling
            .describe_instance_refreshes(GROUP)
            .await
            .unwrap()
            .len()
    };
    let before = refreshes(cloud.clone()).await;
    let refused = rollback(&cloud, GROUP, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();
    let RolloutError::NoUndo {
        detail,
        next,
        needs_attention,
        ..
    } = &refused
    else {
        panic!("{refused}")
    };
    assert!(*needs_attention);
    assert!(
        detail.contains(&p.run_id)
            && detail.contains(&format!("Now: {second} out of target group {TG}")),
        "{detail}"
    );
    assert!(
        text.contains(next.as_str()),
        "the same advice:\n{next}\n{text}"
    );
    assert_eq!(refreshes(cloud.clone()).await, before, "no refresh");
    assert_eq!(serving(&cloud).await, others);
}

#[tokio::test(start_paused = true)]
async fn rollback_after_a_fix_refuses_until_a_later_rollout_replaces_it() {
    let (_account, cloud) = poc().await;
    let never = CancellationToken::new();
    let fix = plan(&cloud, &in_place(1), &new_image()).await.unwrap();
    rollout(&cloud, &fix, &Silent, &never).await.unwrap();
    let refused = rollback(&cloud, GROUP, &Silent, &never).await.unwrap_err();
    let RolloutError::NoUndo {
        detail,
        needs_attention,
        ..
    } = &refused
    else {
        panic!("{refused}")
    };
    assert!(!*needs_attention, "every instance serves: {detail}");
    assert!(
        detail.contains("Successful: 3 of 3 fixed")
            && detail.contains("every instance in service is in poc-web-tg"),
        "{detail}"
    );

    // A rolling rollout after the fix is the last rollout: it rolls back as ever.
    let rolling = rolling(Default::default());
    let p = plan(&cloud, &rolling, &new_image()).await.unwrap();
    rollout(&cloud, &p, &Silent, &never).await.unwrap();
    let back = rollback(&cloud, GROUP, &Silent, &never).await.unwrap();
    assert_eq!(
        (back.status.as_str(), back.launch_template_version),
        ("RolledBack", 2)
    );
}

#[tokio::test(start_paused = true)]
async fn blue_is_retired_only_after_the_rollback_window() {
    let (account, cloud) = poc().await;
    let settings = BlueGreenSettings {
        rollback_window: Duration::from_secs(1800),
        ..Default::default()
    };
    let p = plan(&cloud, &blue_green(settings), &new_image())
        .await
        .unwrap();
    rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();

    let early = kiln_rollout::retire(&cloud, GROUP, &Silent, false)
        .await
        .unwrap_err();
    assert!(early.to_string().contains("rollback window"), "{early}");
    tokio::time::sleep(Duration::from_secs(1800)).await;
    let retired = kiln_rollout::retire(&cloud, GROUP, &Silent, false)
        .await
        .unwrap();
    assert_eq!(retired.blue_group, GROUP);
    assert_eq!(retired.live_group, "poc-web-asg-v3");
    assert_eq!(
        listener_targets(&cloud).await,
        [("poc-web-tg-v3".to_string(), 1)]
    );
    let groups = cloud.scaling.describe_groups(&[]).await.unwrap();
    assert!(groups.iter().all(|g| g.name != GROUP), "blue deleted");
    traffic_always_served(&account);
}

#[tokio::test(start_paused = true)]
async fn status_shows_versions_images_and_the_last_refresh() {
    let (_account, cloud) = poc().await;
    let p = plan(
        &cloud,
        &spec(Strategy::Rolling(Default::default())),
        &new_image(),
    )
    .await
    .unwrap();
    rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    let s = kiln_rollout::status(&cloud, GROUP).await.unwrap();
    assert_eq!(s.previous_version, Some(2));
    assert_eq!(s.target.as_deref(), Some("poc-web"));
    assert!(s.lock.is_none() && s.running.is_none());
    assert_eq!(s.recent.len(), 1);
    assert_eq!(s.instances.len(), 3);
    for i in &s.instances {
        assert_eq!(i.version.as_deref(), Some("3"));
        assert_eq!(i.image.as_ref().map(|i| i.as_str()), Some(NEW_IMAGE));
        assert_eq!(i.target_health, Some(TargetState::Healthy));
    }
}

#[tokio::test(start_paused = true)]
async fn cancelling_blue_green_before_the_switch_deletes_green() {
    let (account, cloud) = poc().await;
    let p = plan(
        &cloud,
        &blue_green(BlueGreenSettings::default()),
        &new_image(),
    )
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    let task = spawn_rollout(&cloud, &p, &cancel);
    tokio::time::sleep(Duration::from_secs(60)).await;
    cancel.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.stop_reason(), Some(&StopReason::Cancelled), "{err}");
    assert_eq!(listener_targets(&cloud).await, [(TG.to_string(), 1)]);
    let groups = cloud.scaling.describe_groups(&[]).await.unwrap();
    assert_eq!(groups.len(), 1, "only blue is left");
    let tgs = cloud
        .load_balancing
        .describe_target_groups(&[])
        .await
        .unwrap();
    assert_eq!(tgs.len(), 1, "green's target group deleted");
    assert_safe(&account, GROUP, 3);
}
