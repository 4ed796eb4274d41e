//! Shared by the rollout tests: the POC account from its seed, the POC target's spec,
//! and helpers that read the simulated account.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use kiln_cloud::progress::Recorder;
use kiln_cloud::sim::{Faults, ImageFault, SimAccount};
use kiln_cloud::{Account, Cloud, Group, ImageId, TemplateRef};
use kiln_rollout::{RollingSettings, RolloutSpec, Strategy};

pub const SEED: &str = include_str!("../../../examples/poc/account.yaml");
pub const REGION: &str = "ap-northeast-1";
pub const GROUP: &str = "poc-web-asg";
pub const TEMPLATE: &str = "poc-web-lt";
pub const TG: &str = "poc-web-tg";
pub const ALB: &str = "poc-poc-alb";
/// The group runs version 2 (the November image) in the seed.
pub const CURRENT_IMAGE: &str = "ami-0b0c0de2025110001";
/// The image the tests roll out: any available image other than the current one.
pub const NEW_IMAGE: &str = "ami-0a1e2023aaaa00001";

pub async fn poc() -> (SimAccount, Cloud) {
    let account = SimAccount::from_seed_str(SEED).expect("the POC seed loads");
    let cloud = account.region(REGION).await.expect("home region");
    (account, cloud)
}

pub fn spec(strategy: Strategy) -> RolloutSpec {
    RolloutSpec {
        target: "poc-web".into(),
        group: GROUP.into(),
        launch_template: TemplateRef::Name(TEMPLATE.into()),
        target_group: Some(TG.into()),
        load_balancer: Some(ALB.into()),
        strategy,
        gates: Default::default(),
        timeouts: Default::default(),
        allow_imdsv1: false,
    }
}

pub fn rolling(settings: RollingSettings) -> RolloutSpec {
    spec(Strategy::Rolling(settings))
}

pub fn new_image() -> ImageId {
    ImageId::new(NEW_IMAGE)
}

pub fn unhealthy(account: &SimAccount, image: &str) {
    account.set_faults(Faults {
        unhealthy_images: vec![ImageFault {
            image: image.into(),
        }],
        ..Faults::default()
    });
}

pub async fn group(cloud: &Cloud, name: &str) -> Group {
    cloud
        .scaling
        .describe_groups(&[name.to_string()])
        .await
        .expect("describe")
        .pop()
        .expect("group exists")
}

/// The group's version as stored, and the images of its in-service instances.
pub async fn versions_and_images(cloud: &Cloud, name: &str) -> (String, Vec<String>) {
    let g = group(cloud, name).await;
    let ids: Vec<_> = g
        .instances
        .iter()
        .filter(|i| i.in_service())
        .map(|i| i.id.clone())
        .collect();
    let filter = kiln_cloud::InstanceFilter {
        ids,
        ..Default::default()
    };
    let mut images: Vec<String> = cloud
        .compute
        .describe_instances(&filter)
        .await
        .expect("instances")
        .into_iter()
        .map(|i| i.image_id.to_string())
        .collect();
    images.sort();
    let version = g.launch_template.map(|t| t.version).unwrap_or_default();
    (version, images)
}

/// The lowest healthy in-service count of `group` in the timeline, from its first frame.
pub fn lowest_healthy(account: &SimAccount, name: &str) -> usize {
    account
        .timeline()
        .iter()
        .filter_map(|f| f.group(name))
        .map(|g| g.healthy_in_service)
        .min()
        .expect("the group appears in the timeline")
}

pub fn recorder() -> Arc<Recorder> {
    Arc::new(Recorder::default())
}

/// Seconds, for readable durations in assertions and reports.
pub fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// The time a phase took in an outcome's timings.
pub fn timing(timings: &[(String, Duration)], phase: &str) -> Option<Duration> {
    timings.iter().find(|(p, _)| p == phase).map(|(_, d)| *d)
}

/// Sleeps on virtual time until the group's newest refresh is in progress and has
/// replaced at least `done` percent.
pub async fn until_refresh_in_progress(cloud: &Cloud, done: i32) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let r = cloud
            .scaling
            .describe_instance_refreshes(GROUP)
            .await
            .unwrap();
        let running = r.first().is_some_and(|r| {
            r.status == kiln_cloud::RefreshStatus::InProgress && r.percentage_complete >= done
        });
        if running {
            return;
        }
    }
}

/// Runs a rollout of `plan` in a task, as a CLI would while someone else acts.
pub fn spawn_rollout(
    cloud: &Cloud,
    plan: &kiln_rollout::RolloutPlan,
    cancel: &kiln_rollout::CancellationToken,
) -> tokio::task::JoinHandle<Result<kiln_rollout::RolloutOutcome, kiln_rollout::RolloutError>> {
    let (cloud, plan, cancel) = (cloud.clone(), plan.clone(), cancel.clone());
    tokio::spawn(async move {
        kiln_rollout::rollout(&cloud, &plan, &kiln_cloud::progress::Silent, &cancel).await
    })
}

/// What every rollout test asserts from the simulated account's timeline, whatever the
/// strategy and however it ended: `group` never had fewer than `min` healthy instances
/// in service, and no listener sent traffic to a target group without a healthy target.
pub fn assert_safe(account: &SimAccount, name: &str, min: usize) {
    let lowest = lowest_healthy(account, name);
    assert!(
        lowest >= min,
        "{name}: healthy in-service capacity fell to {lowest}, below the stated {min}"
    );
    traffic_always_served(account);
}

/// No listener (default action or rule) ever sent traffic to a target group without a
/// healthy target.
pub fn traffic_always_served(account: &SimAccount) {
    for frame in account.timeline() {
        for l in &frame.listeners {
            for t in l.targets.iter().filter(|t| t.weight > 0) {
                assert!(
                    t.healthy_targets > 0,
                    "at {} listener {} rule {} sent traffic to {} with none healthy",
                    frame.at,
                    l.listener,
                    l.rule,
                    t.target_group
                );
            }
        }
    }
}

/// Instances of this image pass their health checks but answer half their requests
/// with 5xx, in 900 ms: a release that is up but wrong.
pub fn degraded(account: &SimAccount, image: &str) {
    account.set_faults(Faults {
        degraded_images: vec![kiln_cloud::sim::DegradedFault {
            image: image.into(),
            error_rate: 0.5,
            latency_secs: 0.9,
        }],
        ..Faults::default()
    });
}

/// The first event of `phase` at `level`, and its simulated time.
pub fn first_event(
    rec: &Recorder,
    level: kiln_cloud::Level,
    phase: &str,
) -> Option<kiln_cloud::Event> {
    rec.events()
        .into_iter()
        .find(|e| e.level == level && e.phase == phase)
}
