//! Rolling on the simulated POC account: the new numbered version everywhere, the group
//! changed only by the refresh's success, both healthy percentages sent, capacity kept.

mod common;

use common::*;
use kiln_cloud::RefreshStatus;
use kiln_rollout::{plan, CancellationToken, ReplacementOrder, RollingSettings};

#[tokio::test(start_paused = true)]
async fn rolling_installs_the_new_numbered_version_on_every_instance() {
    let (account, cloud) = poc().await;
    let p = plan(&cloud, &rolling(RollingSettings::default()), &new_image())
        .await
        .expect("plan");
    let refresh = p.refresh.as_ref().expect("a refresh");
    assert_eq!(refresh.order, ReplacementOrder::LaunchBeforeTerminate);
    assert_eq!(p.template.source_version, 2);
    // Warm-up: the group's own 120 s, longer than its target group's 3 × 10 s checks
    // plus 60 s boot (PITFALLS 7: never shorter than the measured readiness).
    assert_eq!(refresh.preferences.instance_warmup.as_secs(), 120);

    let task = spawn_rollout(&cloud, &p, &CancellationToken::new());
    // While the refresh runs, the group itself still launches version 2 (PITFALLS 2).
    let mut seen_running = false;
    while !task.is_finished() {
        tokio::time::sleep(std::time::Duration::from_secs(20)).await;
        let refreshes = cloud
            .scaling
            .describe_instance_refreshes(GROUP)
            .await
            .unwrap();
        if refreshes
            .first()
            .is_some_and(|r| r.status == RefreshStatus::InProgress)
        {
            seen_running = true;
            assert_eq!(
                group(&cloud, GROUP).await.launch_template.unwrap().version,
                "2"
            );
        }
    }
    assert!(seen_running, "the refresh was observed in progress");
    let out = task.await.unwrap().expect("rollout succeeds");

    assert_eq!(out.status, "Successful");
    assert_eq!((out.launch_template_version, out.previous_version), (3, 2));
    assert_eq!(out.on_new_image, 3);
    let (version, images) = versions_and_images(&cloud, GROUP).await;
    assert_eq!(version, "3");
    assert_eq!(images, vec![NEW_IMAGE; 3]);

    let started = cloud
        .scaling
        .describe_instance_refreshes(GROUP)
        .await
        .unwrap();
    let prefs = started[0].preferences.as_ref().expect("preferences kept");
    assert_eq!(
        (prefs.min_healthy_percentage, prefs.max_healthy_percentage),
        (100, 150)
    );
    assert_eq!(started[0].desired.as_ref().unwrap().version, "3");
    // Launch first with min 100 %: never fewer than 3 healthy in service.
    assert_safe(&account, GROUP, 3);
    // One instance per zone before, one per zone after.
    let zones: std::collections::BTreeSet<String> = group(&cloud, GROUP)
        .await
        .instances
        .iter()
        .map(|i| i.availability_zone.clone())
        .collect();
    assert_eq!(zones.len(), 3, "{zones:?}");
    eprintln!("rolling on POC took {:?}", out.timings);
}
