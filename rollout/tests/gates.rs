//! Gates on the simulated POC account: the HTTP probe through Run Command, a CloudWatch
//! alarm, and the terminate-first capacity floor. A failing gate rolls back and names
//! itself and the value it saw.

mod common;

use std::time::Duration;

use common::*;
use kiln_cloud::progress::Silent;
use kiln_cloud::sim::{Faults, StepFault};
use kiln_cloud::UpdateGroup;
use kiln_rollout::{plan, rollout, CancellationToken, RollingSettings, RolloutError, StopReason};

fn failing_probe() -> Faults {
    Faults {
        steps: vec![StepFault {
            step: "rollout/probe".into(),
            exit_code: 22,
            stdout: vec![],
            stderr: vec!["curl: (22) The requested URL returned error: 503".into()],
            times: None,
        }],
        ..Faults::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_probe_rolls_back_naming_the_instance_and_the_error() {
    let (account, cloud) = poc().await;
    account.set_faults(failing_probe());
    let mut spec = rolling(RollingSettings::default());
    spec.gates.http_probe = Some("/health".into());
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let err = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();

    let Some(StopReason::Probe { instance, detail }) = err.stop_reason() else {
        panic!("expected a probe stop, got {err}");
    };
    assert!(instance.starts_with("i-"), "{instance}");
    assert!(
        detail.contains("exit code 22") && detail.contains("503"),
        "{detail}"
    );
    let RolloutError::Stopped {
        rolled_back,
        outcome,
        ..
    } = &err
    else {
        unreachable!()
    };
    assert!(*rolled_back);
    assert_eq!(
        versions_and_images(&cloud, GROUP).await.1,
        vec![CURRENT_IMAGE; 3]
    );
    eprintln!("probe failure: {:?}", outcome.timings);
}

#[tokio::test(start_paused = true)]
async fn a_passing_probe_lets_the_rollout_finish() {
    let (_account, cloud) = poc().await;
    let mut spec = rolling(RollingSettings::default());
    // A path without its slash is refused with the spec (limits), not patched here.
    spec.gates.http_probe = Some("/health".into());
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let out = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.on_new_image, 3);
    assert_eq!(
        kiln_rollout::probe_command("health"),
        "curl -fsS -m 5 http://127.0.0.1/health"
    );
}

/// An outage: every target leaves the target group until the 5xx alarm fires, then
/// comes back; the alarm stays in ALARM for its evaluation period.
async fn outage(cloud: &kiln_cloud::Cloud) {
    let tg = cloud
        .load_balancing
        .describe_target_groups(&[TG.into()])
        .await
        .unwrap();
    let ids: Vec<_> = group(cloud, GROUP)
        .await
        .instances
        .iter()
        .map(|i| i.id.clone())
        .collect();
    cloud
        .load_balancing
        .deregister_targets(&tg[0].arn, &ids)
        .await
        .unwrap();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let a = cloud
            .metrics
            .describe_alarms(&["poc-web-5xx".into()])
            .await
            .unwrap();
        if a[0].state == kiln_cloud::AlarmState::Alarm {
            break;
        }
    }
    cloud
        .load_balancing
        .register_targets(&tg[0].arn, &ids)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_alarm_stops_the_rollout_and_names_the_alarm() {
    let (_account, cloud) = poc().await;
    let mut spec = rolling(RollingSettings::default());
    spec.gates.alarms = vec!["poc-web-5xx".into()];
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    assert_eq!(
        p.refresh.as_ref().unwrap().preferences.alarm_names,
        ["poc-web-5xx"]
    );
    let task = spawn_rollout(&cloud, &p, &CancellationToken::new());
    until_refresh_in_progress(&cloud, 0).await;
    outage(&cloud).await;

    let err = task.await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(text.contains("poc-web-5xx"), "{text}");
    let RolloutError::Stopped { rolled_back, .. } = &err else {
        panic!("{err}")
    };
    assert!(*rolled_back, "{err}");
    assert_eq!(versions_and_images(&cloud, GROUP).await.0, "2");
}

#[tokio::test(start_paused = true)]
async fn terminate_first_keeps_the_stated_minimum_in_service() {
    let (account, cloud) = poc().await;
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
    let p = plan(&cloud, &rolling(settings), &new_image())
        .await
        .unwrap();
    let min = p.refresh.as_ref().unwrap().capacity.min_in_service as usize;
    let out = rollout(&cloud, &p, &Silent, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.on_new_image, 3);
    assert_safe(&account, GROUP, min);
    eprintln!("terminate-first rolling took {:?}", out.timings);
}

#[tokio::test(start_paused = true)]
async fn a_floating_group_is_rolled_back_by_a_refresh_to_the_previous_version() {
    let (account, cloud) = poc().await;
    let latest = kiln_cloud::GroupTemplate {
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
    account.set_faults(failing_probe());
    let mut spec = rolling(RollingSettings::default());
    spec.gates.http_probe = Some("/health".into());
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let rec = recorder();
    let err = rollout(&cloud, &p, &*rec, &CancellationToken::new())
        .await
        .unwrap_err();

    assert!(
        matches!(err.stop_reason(), Some(StopReason::Probe { .. })),
        "{err}"
    );
    let RolloutError::Stopped { rolled_back, .. } = &err else {
        unreachable!()
    };
    assert!(*rolled_back, "{err}");
    let refused = rec
        .events()
        .iter()
        .any(|e| e.message.contains("AWS rollback refused"));
    assert!(refused, "AWS's own rollback is refused on a floating group");
    assert_eq!(
        versions_and_images(&cloud, GROUP).await.1,
        vec![CURRENT_IMAGE; 3]
    );
}
