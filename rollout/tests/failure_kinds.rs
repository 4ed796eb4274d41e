//! Every strategy against every kind of failure its scenario meets: new instances that
//! never become healthy, an alarm during a canary step, an A/B canary worse than its
//! baseline, a green group never healthy, a fix that fails on the second batch, a second
//! rollout while one runs. Each asserts from the simulated timeline that healthy capacity
//! never fell below the stated minimum and that no traffic went to a target group without
//! a healthy target; the failing ones also that the rollback started within one polling
//! interval of the failed gate.

mod common;

use std::time::Duration;

use common::*;
use kiln_cloud::progress::Silent;
use kiln_cloud::sim::{Faults, StepFault};
use kiln_cloud::{AlarmState, Level, Timestamp};
use kiln_rollout::{
    plan, rollout, BlueGreenSettings, CanaryMode, CanarySettings, CancellationToken,
    InPlaceSettings, RolloutError, RolloutSpec, StopReason, Strategy, DEFAULT_POLL,
};

const ALARM: &str = "poc-web-5xx";

fn checkpoints() -> RolloutSpec {
    spec(Strategy::Canary(CanarySettings {
        steps: vec![33, 66],
        bake: Duration::from_secs(300),
        ..Default::default()
    }))
}

fn ab() -> RolloutSpec {
    spec(Strategy::Canary(CanarySettings {
        mode: CanaryMode::Ab,
        ..Default::default()
    }))
}

/// Simulated seconds from `a` to `b`.
fn between(a: Timestamp, b: Timestamp) -> i64 {
    (b - a).num_seconds()
}

/// The failed gate's event (the first error) and the first rollback action after it
/// (a refresh rolled back, or listeners switched back): both simulated times.
fn gate_and_rollback(rec: &kiln_cloud::progress::Recorder) -> (Timestamp, Timestamp) {
    let events = rec.events();
    let gate = events
        .iter()
        .find(|e| e.level == Level::Error)
        .expect("a failed gate is reported");
    let back = events
        .iter()
        .filter(|e| e.at >= gate.at)
        .find(|e| e.phase == "rollback" || (e.phase == "switch" && e.message.contains("blue")))
        .expect("a rollback is reported");
    (gate.at, back.at)
}

/// Rollback starts within one polling interval of the failed gate.
fn rollback_within_one_poll(rec: &kiln_cloud::progress::Recorder, what: &str) -> i64 {
    let (gate, back) = gate_and_rollback(rec);
    let took = between(gate, back);
    assert!(
        took <= DEFAULT_POLL.as_secs() as i64,
        "{what}: rollback started {took} s after the failed gate, more than one poll"
    );
    let events = rec.events();
    let (start, end) = (events[0].at, events.last().expect("events").at);
    eprintln!(
        "MEASURE {what}: gate failed {} s after the start, rollback started {took} s after \
         the gate and ended {} s after it",
        between(start, gate),
        between(back, end)
    );
    took
}

fn outcome_of(err: &RolloutError) -> &kiln_rollout::RolloutOutcome {
    let RolloutError::Stopped { outcome, .. } = err else {
        panic!("expected a stop, got {err}");
    };
    outcome
}

/// Sleeps until the alarm is in ALARM; returns when it went.
async fn until_alarm(cloud: &kiln_cloud::Cloud) -> Timestamp {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let a = cloud
            .metrics
            .describe_alarms(&[ALARM.into()])
            .await
            .unwrap();
        if a[0].state == AlarmState::Alarm {
            return cloud.clock.now();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn canary_alarm_during_a_step_rolls_back_within_one_poll() {
    let (account, cloud) = poc().await;
    degraded(&account, NEW_IMAGE);
    let mut s = checkpoints();
    s.gates.alarms = vec![ALARM.into()];
    let p = plan(&cloud, &s, &new_image()).await.unwrap();
    let rec = recorder();
    let task = {
        let (cloud, p, rec) = (cloud.clone(), p.clone(), rec.clone());
        tokio::spawn(async move { rollout(&cloud, &p, &*rec, &CancellationToken::new()).await })
    };
    let alarmed = until_alarm(&cloud).await;
    let err = task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains(ALARM), "{err}");
    assert!(
        matches!(
            err,
            RolloutError::Stopped {
                rolled_back: true,
                ..
            }
        ),
        "{err}"
    );
    let (gate, back) = gate_and_rollback(&rec);
    let detected = between(alarmed, gate);
    assert!(
        detected <= DEFAULT_POLL.as_secs() as i64,
        "the alarm was seen {detected} s after it fired"
    );
    rollback_within_one_poll(&rec, "canary alarm");
    assert_eq!(
        versions_and_images(&cloud, GROUP).await,
        ("2".to_string(), vec![CURRENT_IMAGE.to_string(); 3])
    );
    assert_safe(&account, GROUP, 3);
    let o = outcome_of(&err);
    eprintln!(
        "MEASURE canary alarm: fired->gate {detected}s, gate->rollback {}s, timings {:?}",
        between(gate, back),
        o.timings
    );
}

#[tokio::test(start_paused = true)]
async fn canary_with_unhealthy_new_instances_rolls_back_keeping_capacity() {
    let (account, cloud) = poc().await;
    unhealthy(&account, NEW_IMAGE);
    let p = plan(&cloud, &checkpoints(), &new_image()).await.unwrap();
    let rec = recorder();
    let err = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err.stop_reason(), Some(StopReason::Unhealthy { .. })),
        "{err}"
    );
    assert_eq!(outcome_of(&err).status, "RolledBack");
    assert_eq!(versions_and_images(&cloud, GROUP).await.0, "2");
    rollback_within_one_poll(&rec, "canary unhealthy");
    assert_safe(&account, GROUP, 3);
    eprintln!("MEASURE canary unhealthy: {:?}", outcome_of(&err).timings);
}

#[tokio::test(start_paused = true)]
async fn rolling_with_unhealthy_new_instances_rolls_back_within_one_poll() {
    let (account, cloud) = poc().await;
    unhealthy(&account, NEW_IMAGE);
    let p = plan(&cloud, &rolling(Default::default()), &new_image())
        .await
        .unwrap();
    let rec = recorder();
    let err = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err.stop_reason(), Some(StopReason::Unhealthy { .. })),
        "{err}"
    );
    rollback_within_one_poll(&rec, "rolling unhealthy");
    assert_safe(&account, GROUP, 3);
    eprintln!("MEASURE rolling unhealthy: {:?}", outcome_of(&err).timings);
}

/// The listener's default action as (target group name, weight) at each change.
fn weights_seen(account: &kiln_cloud::sim::SimAccount) -> Vec<Vec<i32>> {
    let mut out: Vec<Vec<i32>> = Vec::new();
    for f in account.timeline() {
        for l in f.listeners.iter().filter(|l| l.rule == "default") {
            let w: Vec<i32> = l.targets.iter().map(|t| t.weight).collect();
            if out.last() != Some(&w) {
                out.push(w);
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn ab_canary_shifts_traffic_in_steps_comparing_each_with_the_baseline() {
    let (account, cloud) = poc().await;
    let p = plan(&cloud, &ab(), &new_image()).await.unwrap();
    let bg = p.blue_green.as_ref().expect("A/B runs beside the baseline");
    assert!(bg.ab.is_some() && p.refresh.is_none());
    let rec = recorder();
    let out = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((out.strategy.as_str(), out.on_new_image), ("canary", 3));
    assert_eq!(out.group, "poc-web-asg-v3");
    let weights = weights_seen(&account);
    for step in [[95, 5], [75, 25], [50, 50]] {
        assert!(weights.contains(&step.to_vec()), "{step:?} in {weights:?}");
    }
    // The switch keeps the baseline at weight 0: only the canary gets traffic.
    assert_eq!(weights.last(), Some(&vec![100]));
    let compared: Vec<String> = rec
        .events()
        .into_iter()
        .filter(|e| e.phase == "compare")
        .map(|e| e.message)
        .collect();
    // Each step below 100 %, then green alone after the switch against blue before it.
    assert_eq!(compared.len(), 4, "{compared:?}");
    assert!(compared[3].starts_with("after the switch"), "{compared:?}");
    for c in &compared {
        assert!(c.contains("vs baseline") && c.ends_with("pass"), "{c}");
        assert!(
            c.contains("5xx 0.00%") && c.contains("latency 45 ms"),
            "{c}"
        );
    }
    assert_safe(&account, GROUP, 3);
    eprintln!("MEASURE ab canary success: {:?}", out.timings);

    // A rollback after the switch is one listener change back to the baseline.
    let back = kiln_rollout::rollback(&cloud, GROUP, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (back.status.as_str(), back.group.as_str()),
        ("RolledBack", GROUP)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tg = cloud
        .load_balancing
        .describe_target_groups(&[TG.into()])
        .await
        .unwrap();
    let last = account.timeline().pop().expect("frames");
    let serving: Vec<_> = last.listeners[0]
        .targets
        .iter()
        .map(|t| &t.target_group)
        .collect();
    assert_eq!(serving, [&tg[0].arn], "only the baseline serves again");
    assert_safe(&account, GROUP, 3);
}

#[tokio::test(start_paused = true)]
async fn ab_canary_worse_than_the_baseline_is_stopped_at_its_first_step() {
    let (account, cloud) = poc().await;
    degraded(&account, NEW_IMAGE);
    let p = plan(&cloud, &ab(), &new_image()).await.unwrap();
    let rec = recorder();
    let err = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap_err();
    let Some(StopReason::Comparison { step, detail }) = err.stop_reason() else {
        panic!("expected a comparison stop, got {err}");
    };
    assert_eq!(*step, 5);
    assert!(
        detail.contains("5xx 50.00%") && detail.contains("FAIL"),
        "{detail}"
    );
    assert_eq!(outcome_of(&err).status, "RolledBack");
    // Back on the baseline alone, the canary group and target group gone (a second
    // passes so the timeline records the last change).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(weights_seen(&account).last(), Some(&vec![1]));
    let groups = cloud.scaling.describe_groups(&[]).await.unwrap();
    assert_eq!(groups.len(), 1, "canary group deleted");
    rollback_within_one_poll(&rec, "ab comparison");
    // Stopped as soon as the evidence was in, before the step's five minutes were up.
    let events = rec.events();
    let shifted = events
        .iter()
        .find(|e| e.phase == "traffic" && e.message.starts_with("5%"))
        .expect("the 5% step");
    let failed = first_event(&rec, Level::Error, "compare").expect("the comparison failed");
    let into_step = between(shifted.at, failed.at);
    assert!(into_step < 300, "decided {into_step} s into the step");
    assert_safe(&account, GROUP, 3);
    eprintln!(
        "MEASURE ab canary comparison: {:?}",
        outcome_of(&err).timings
    );
}

#[tokio::test(start_paused = true)]
async fn ab_canary_never_healthy_never_gets_traffic() {
    let (account, cloud) = poc().await;
    unhealthy(&account, NEW_IMAGE);
    let p = plan(&cloud, &ab(), &new_image()).await.unwrap();
    let rec = recorder();
    let err = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err.stop_reason(), Some(StopReason::Unhealthy { .. })),
        "{err}"
    );
    assert!(!weights_seen(&account)
        .iter()
        .any(|w| w.len() == 2 && w[1] > 0));
    rollback_within_one_poll(&rec, "ab unhealthy");
    assert_safe(&account, GROUP, 3);
}

#[tokio::test(start_paused = true)]
async fn blue_green_green_never_healthy_rolls_back_within_one_poll() {
    let (account, cloud) = poc().await;
    unhealthy(&account, NEW_IMAGE);
    let s = spec(Strategy::BlueGreen(BlueGreenSettings::default()));
    let p = plan(&cloud, &s, &new_image()).await.unwrap();
    let rec = recorder();
    let err = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err.stop_reason(), Some(StopReason::Unhealthy { .. })),
        "{err}"
    );
    rollback_within_one_poll(&rec, "blue/green unhealthy");
    assert_safe(&account, GROUP, 3);
    eprintln!(
        "MEASURE blue/green unhealthy: {:?}",
        outcome_of(&err).timings
    );
}

#[tokio::test(start_paused = true)]
async fn blue_green_worse_than_blue_after_the_switch_switches_back() {
    let (account, cloud) = poc().await;
    degraded(&account, NEW_IMAGE);
    // The alarm watches blue's target group only: it never sees green's 5xx.
    let mut s = spec(Strategy::BlueGreen(BlueGreenSettings::default()));
    s.gates.alarms = vec![ALARM.into()];
    let p = plan(&cloud, &s, &new_image()).await.unwrap();
    let rec = recorder();
    let err = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap_err();
    let Some(StopReason::Comparison { step, detail }) = err.stop_reason() else {
        panic!("expected a comparison stop, got {err}");
    };
    assert_eq!(*step, 100);
    assert!(
        detail.contains("canary 5xx 50.00%") && detail.contains("FAIL"),
        "{detail}"
    );
    assert_eq!(outcome_of(&err).status, "RolledBack");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        weights_seen(&account).last(),
        Some(&vec![1]),
        "blue alone serves again"
    );
    rollback_within_one_poll(&rec, "blue/green worse after the switch");
    // Decided on the first minute's requests, not at the end of the watch.
    let switched = rec
        .events()
        .into_iter()
        .find(|e| e.phase == "switch" && e.message.contains("now forward to green"))
        .expect("the switch");
    let failed = first_event(&rec, Level::Error, "compare").expect("the comparison failed");
    let after = between(switched.at, failed.at);
    assert!(
        (1..=120).contains(&after),
        "decided {after} s after the switch"
    );
    assert_safe(&account, GROUP, 3);
}

#[tokio::test(start_paused = true)]
async fn a_good_green_is_compared_after_the_switch_and_kept() {
    let (_account, cloud) = poc().await;
    let s = spec(Strategy::BlueGreen(BlueGreenSettings::default()));
    let p = plan(&cloud, &s, &new_image()).await.unwrap();
    let rec = recorder();
    let out = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.status, "Successful");
    let compared: Vec<String> = rec
        .events()
        .into_iter()
        .filter(|e| e.phase == "compare")
        .map(|e| e.message)
        .collect();
    assert_eq!(compared.len(), 1, "{compared:?}");
    assert!(
        compared[0].starts_with("after the switch") && compared[0].ends_with("pass"),
        "{compared:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn in_place_fix_failing_on_the_second_batch_stops_there() {
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
    let s = spec(Strategy::InPlace(InPlaceSettings {
        script: vec!["systemctl reload php-fpm".into()],
        batch_size: 1,
        description: "reload PHP-FPM".into(),
    }));
    let p = plan(&cloud, &s, &new_image()).await.unwrap();
    let second = p.in_place.as_ref().unwrap().batches[1][0].clone();
    let rec = recorder();
    let err = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap_err();
    let Some(StopReason::Command { instance, .. }) = err.stop_reason() else {
        panic!("{err}")
    };
    assert_eq!(instance, second.as_str(), "stopped on the second batch");
    let fixed = rec
        .events()
        .iter()
        .filter(|e| e.message.starts_with("batch ") && e.message.ends_with(" fixed"))
        .count();
    assert_eq!(
        fixed, 1,
        "the first batch was fixed, the third never started"
    );
    // One batch of one out at a time, and the failed one stays out: two keep serving.
    assert_safe(&account, GROUP, 2);
    eprintln!(
        "MEASURE in place second batch: {:?}",
        outcome_of(&err).timings
    );
}

/// Every strategy's spec on the POC target.
fn every_strategy() -> Vec<RolloutSpec> {
    let fix = InPlaceSettings {
        script: vec!["systemctl reload php-fpm".into()],
        batch_size: 1,
        description: "reload PHP-FPM".into(),
    };
    vec![
        rolling(Default::default()),
        checkpoints(),
        ab(),
        spec(Strategy::BlueGreen(BlueGreenSettings::default())),
        spec(Strategy::InPlace(fix)),
    ]
}

#[tokio::test(start_paused = true)]
async fn a_second_rollout_while_one_runs_is_refused_whatever_the_strategy() {
    for s in every_strategy() {
        let (account, cloud) = poc().await;
        let first = plan(&cloud, &s, &new_image()).await.unwrap();
        let second = plan(&cloud, &s, &new_image()).await.unwrap();
        let task = spawn_rollout(&cloud, &first, &CancellationToken::new());
        while !group(&cloud, GROUP)
            .await
            .tags
            .contains_key(kiln_rollout::LOCK_TAG)
        {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let name = s.strategy.name();
        let err = plan(&cloud, &s, &new_image()).await.unwrap_err();
        assert!(matches!(err, RolloutError::Locked { .. }), "{name}: {err}");
        let err = rollout(&cloud, &second, &Silent, &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, RolloutError::Locked { .. }), "{name}: {err}");
        let out = task.await.unwrap();
        assert!(out.is_ok(), "{name}: the first one finishes: {out:?}");
        // In place takes one instance of three out at a time.
        let min = if name == "in_place" { 2 } else { 3 };
        assert_safe(&account, GROUP, min);
    }
}

#[tokio::test(start_paused = true)]
async fn rolling_alarm_from_a_release_that_is_up_but_wrong_rolls_back_within_one_poll() {
    let (account, cloud) = poc().await;
    degraded(&account, NEW_IMAGE);
    let mut s = rolling(Default::default());
    s.gates.alarms = vec![ALARM.into()];
    let p = plan(&cloud, &s, &new_image()).await.unwrap();
    let rec = recorder();
    let err = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap_err();
    let Some(StopReason::Alarm { name, reason }) = err.stop_reason() else {
        panic!("stopped by the alarm: {err}");
    };
    assert_eq!(name, ALARM);
    // The reason reads as CloudWatch writes one: the metric, its value, the threshold.
    assert!(
        reason.starts_with("Threshold crossed: HTTPCode_Target_5XX_Count = ")
            && reason.ends_with(" against 10")
            && !reason.contains("Some("),
        "{reason}"
    );
    assert_eq!(outcome_of(&err).status, "RolledBack");
    rollback_within_one_poll(&rec, "rolling alarm");
    assert_eq!(versions_and_images(&cloud, GROUP).await.0, "2");
    assert_safe(&account, GROUP, 3);
}

#[tokio::test(start_paused = true)]
async fn the_ab_plan_says_what_is_compared_and_against_what() {
    let (_account, cloud) = poc().await;
    let p = plan(&cloud, &ab(), &new_image()).await.unwrap();
    let text = p.to_string();
    assert!(
        text.contains("traffic steps [5, 25, 50, 100]")
            && text.contains("A/B: each step watched 5m")
            && text.contains("+ 1 points")
            && text.contains("100ms slower"),
        "{text}"
    );
}
