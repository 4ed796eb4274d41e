//! The simulated account's Auto Scaling groups, target health and instance refresh.

mod sim_common;

use std::time::Duration;

use kiln_cloud::sim::{Faults, SimAccount};
use kiln_cloud::*;
use sim_common::*;

const TEMPLATE: &str = "poc-web-lt";
/// Long enough for any refresh of the POC group to finish.
const REFRESH_LIMIT: Duration = Duration::from_secs(4 * 3600);

fn prefs(min: i32, max: i32) -> RefreshPreferences {
    RefreshPreferences {
        min_healthy_percentage: min,
        max_healthy_percentage: max,
        instance_warmup: Duration::from_secs(60),
        skip_matching: true,
        checkpoint_percentages: vec![],
        checkpoint_delay: None,
        auto_rollback: false,
        alarm_names: vec![],
        scale_in_protected_instances: ProtectedInstances::Refresh,
        standby_instances: StandbyInstances::Terminate,
    }
}

fn numbered(version: i64) -> GroupTemplate {
    GroupTemplate {
        template_id: None,
        template_name: Some(TEMPLATE.into()),
        version: version.to_string(),
    }
}

/// A new template version from version 2 with `image`: the refresh's desired config.
async fn new_version(cloud: &Cloud, image: &str) -> i64 {
    let req = NewTemplateVersion {
        template: TemplateRef::Name(TEMPLATE.into()),
        source_version: 2,
        image_id: ImageId::new(image),
        description: "kiln test".into(),
    };
    cloud
        .compute
        .create_launch_template_version(&req)
        .await
        .unwrap()
        .version
}

fn start(version: i64, p: RefreshPreferences) -> StartRefresh {
    StartRefresh {
        group: GROUP.into(),
        desired: Some(numbered(version)),
        preferences: p,
    }
}

async fn wait_refresh(cloud: &Cloud) -> InstanceRefresh {
    until(REFRESH_LIMIT, || async {
        let r = cloud
            .scaling
            .describe_instance_refreshes(GROUP)
            .await
            .unwrap();
        r.into_iter().next().filter(|r| r.status.is_terminal())
    })
    .await
}

async fn group(cloud: &Cloud) -> Group {
    cloud
        .scaling
        .describe_groups(&[GROUP.into()])
        .await
        .unwrap()
        .remove(0)
}

fn min_healthy(account: &SimAccount, after: usize) -> usize {
    let tl = account.timeline();
    tl[after..]
        .iter()
        .filter_map(|f| f.group(GROUP))
        .map(|g| g.healthy_in_service)
        .min()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn seeded_group_is_settled_and_healthy() {
    let (_account, cloud) = poc().await;
    let g = group(&cloud).await;
    assert_eq!(g.instances.len(), 3);
    let zones: std::collections::BTreeSet<_> =
        g.instances.iter().map(|i| &i.availability_zone).collect();
    assert_eq!(zones.len(), 3, "one instance per zone");
    assert!(g
        .instances
        .iter()
        .all(|i| i.in_service() && i.health_status == "Healthy"));
    let tg = cloud
        .load_balancing
        .describe_target_groups(&["poc-web-tg".into()])
        .await
        .unwrap();
    let health = cloud
        .load_balancing
        .describe_target_health(&tg[0].arn)
        .await
        .unwrap();
    assert_eq!(
        health
            .iter()
            .filter(|h| h.state == TargetState::Healthy)
            .count(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn launch_first_refresh_keeps_full_capacity_and_applies_config_at_the_end() {
    let (account, cloud) = poc().await;
    let v = new_version(&cloud, AL2023).await;
    let mark = account.timeline().len();
    cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(100, 200)))
        .await
        .unwrap();
    let before = group(&cloud).await;
    assert_eq!(
        before.launch_template.unwrap().version,
        "2",
        "config unchanged during refresh"
    );
    let done = wait_refresh(&cloud).await;
    assert_eq!(
        done.status,
        RefreshStatus::Successful,
        "{:?}",
        done.status_reason
    );
    assert_eq!(done.percentage_complete, 100);
    let g = group(&cloud).await;
    assert_eq!(g.launch_template.unwrap().version, v.to_string());
    assert!(g
        .instances
        .iter()
        .all(|i| i.launch_template.as_ref().unwrap().version == v.to_string()));
    assert_eq!(
        min_healthy(&account, mark),
        3,
        "launch first never drops below desired"
    );
    let peak = account.timeline()[mark..]
        .iter()
        .filter_map(|f| f.group(GROUP))
        .map(|g| g.active)
        .max();
    assert_eq!(peak, Some(6), "max 200% launches a whole second set first");
}

#[tokio::test(start_paused = true)]
async fn terminate_first_refresh_replaces_one_at_a_time() {
    let (account, cloud) = poc().await;
    let v = new_version(&cloud, AL2023).await;
    let mark = account.timeline().len();
    cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(66, 100)))
        .await
        .unwrap();
    let done = wait_refresh(&cloud).await;
    assert_eq!(
        done.status,
        RefreshStatus::Successful,
        "{:?}",
        done.status_reason
    );
    assert_eq!(
        min_healthy(&account, mark),
        2,
        "ceil(3 * 66%) = 2 stay healthy"
    );
    let peak = account.timeline()[mark..]
        .iter()
        .filter_map(|f| f.group(GROUP))
        .map(|g| g.active)
        .max();
    assert_eq!(peak, Some(3), "terminate first never exceeds desired");
}

#[tokio::test(start_paused = true)]
async fn second_refresh_conflicts() {
    let (_account, cloud) = poc().await;
    let v = new_version(&cloud, AL2023).await;
    cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(100, 150)))
        .await
        .unwrap();
    let err = cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(100, 150)))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[tokio::test(start_paused = true)]
async fn refresh_with_unhealthy_image_fails_and_auto_rolls_back() {
    let (account, cloud) = poc().await;
    account.set_faults(
        Faults::from_yaml_str(&format!("unhealthy_images:\n  - image: {AL2023}\n")).unwrap(),
    );
    let v = new_version(&cloud, AL2023).await;
    let mut p = prefs(100, 150);
    p.auto_rollback = true;
    cloud
        .scaling
        .start_instance_refresh(&start(v, p))
        .await
        .unwrap();
    let done = wait_refresh(&cloud).await;
    assert_eq!(
        done.status,
        RefreshStatus::RollbackSuccessful,
        "{:?}",
        done.status_reason
    );
    assert!(done.status_reason.unwrap().contains("health"));
    let g = group(&cloud).await;
    assert_eq!(g.launch_template.unwrap().version, "2");
    let healthy = g
        .instances
        .iter()
        .filter(|i| i.in_service() && i.health_status == "Healthy");
    assert_eq!(healthy.count(), 3);
}
