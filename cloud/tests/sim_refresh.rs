//! The simulated account's Auto Scaling groups, target health and instance refresh.

mod sim_common;

use std::time::Duration;

use kiln_cloud::sim::{Faults, SimAccount, BATCH_DEADLINE_SECS};
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

#[tokio::test(start_paused = true)]
async fn unhealthy_image_without_auto_rollback_fails_with_a_reason() {
    let (account, cloud) = poc().await;
    account.set_faults(Faults::from_yaml_str("unhealthy_images:\n  - image: new\n").unwrap());
    let (_, image) = baked_image(&cloud).await;
    let v = new_version(&cloud, image.as_str()).await;
    let began = cloud.clock.now();
    cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(100, 150)))
        .await
        .unwrap();
    let done = wait_refresh(&cloud).await;
    assert_eq!(done.status, RefreshStatus::Failed);
    assert!(
        done.status_reason.as_deref().unwrap().contains("health"),
        "{done:?}"
    );
    let took = (done.end_time.unwrap() - began).num_seconds() as u64;
    assert!(
        took < BATCH_DEADLINE_SECS,
        "fails before AWS's hour: {took}s"
    );
    assert_eq!(group(&cloud).await.launch_template.unwrap().version, "2");
}

/// An image made in the simulation from a builder (what a bake produces).
async fn baked_image(cloud: &Cloud) -> (InstanceId, ImageId) {
    let id = online_builder(cloud).await;
    let req = CreateImage {
        instance_id: id.clone(),
        name: "poc-web-2026-01-05".into(),
        description: String::new(),
        tags: Tags::new(),
    };
    let image = cloud.compute.create_image(&req).await.unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    (id, image)
}

#[tokio::test(start_paused = true)]
async fn manual_rollback_restores_the_old_version() {
    let (_account, cloud) = poc().await;
    let v = new_version(&cloud, AL2023).await;
    cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(100, 150)))
        .await
        .unwrap();
    until(REFRESH_LIMIT, || async {
        let g = group(&cloud).await;
        let new = g
            .instances
            .iter()
            .filter(|i| i.launch_template.as_ref().unwrap().version == v.to_string());
        (new.count() > 0).then_some(())
    })
    .await;
    cloud
        .scaling
        .rollback_instance_refresh(GROUP)
        .await
        .unwrap();
    let r = cloud
        .scaling
        .describe_instance_refreshes(GROUP)
        .await
        .unwrap();
    assert_eq!(r[0].status, RefreshStatus::RollbackInProgress);
    let done = wait_refresh(&cloud).await;
    assert_eq!(done.status, RefreshStatus::RollbackSuccessful);
    let g = group(&cloud).await;
    assert_eq!(g.launch_template.unwrap().version, "2");
    let versions: Vec<_> = g
        .instances
        .iter()
        .map(|i| i.launch_template.clone().unwrap().version)
        .collect();
    assert_eq!(versions, ["2", "2", "2"]);
    let err = cloud
        .scaling
        .rollback_instance_refresh(GROUP)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "nothing left to roll back");
}

#[tokio::test(start_paused = true)]
async fn checkpoint_holds_the_refresh_in_progress_until_its_delay() {
    let (_account, cloud) = poc().await;
    let v = new_version(&cloud, AL2023).await;
    let mut p = prefs(100, 134);
    p.checkpoint_percentages = vec![33, 100];
    p.checkpoint_delay = Some(Duration::from_secs(900));
    cloud
        .scaling
        .start_instance_refresh(&start(v, p))
        .await
        .unwrap();
    let held = until(REFRESH_LIMIT, || async {
        let r = cloud
            .scaling
            .describe_instance_refreshes(GROUP)
            .await
            .unwrap()
            .remove(0);
        r.status_reason
            .as_deref()
            .is_some_and(|s| s.contains("checkpoint"))
            .then_some(r)
    })
    .await;
    assert_eq!(held.status, RefreshStatus::InProgress);
    assert_eq!(held.percentage_complete, 33);
    tokio::time::sleep(Duration::from_secs(890)).await;
    let r = cloud
        .scaling
        .describe_instance_refreshes(GROUP)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (r.status, r.percentage_complete),
        (RefreshStatus::InProgress, 33)
    );
    let done = wait_refresh(&cloud).await;
    assert_eq!(done.status, RefreshStatus::Successful);
}

#[tokio::test(start_paused = true)]
async fn protected_instances_with_wait_stall_and_with_ignore_are_skipped() {
    let (_account, cloud) = poc().await;
    let g = group(&cloud).await;
    let kept = g.instances[0].id.clone();
    cloud
        .scaling
        .set_instance_protection(GROUP, std::slice::from_ref(&kept), true)
        .await
        .unwrap();
    let v = new_version(&cloud, AL2023).await;
    let mut p = prefs(100, 200);
    p.scale_in_protected_instances = ProtectedInstances::Wait;
    cloud
        .scaling
        .start_instance_refresh(&start(v, p))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1800)).await;
    let r = cloud
        .scaling
        .describe_instance_refreshes(GROUP)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(r.status, RefreshStatus::InProgress);
    assert!(r.status_reason.unwrap().contains("protected"));
    cloud.scaling.cancel_instance_refresh(GROUP).await.unwrap();
    assert_eq!(wait_refresh(&cloud).await.status, RefreshStatus::Cancelled);

    let mut p = prefs(100, 200);
    p.scale_in_protected_instances = ProtectedInstances::Ignore;
    cloud
        .scaling
        .start_instance_refresh(&start(v, p))
        .await
        .unwrap();
    assert_eq!(wait_refresh(&cloud).await.status, RefreshStatus::Successful);
    assert!(
        group(&cloud).await.instances.iter().any(|i| i.id == kept),
        "ignored, kept"
    );
}

#[tokio::test(start_paused = true)]
async fn launch_and_terminate_together_when_min_below_100_and_max_above() {
    let (account, cloud) = poc().await;
    cloud.scaling.set_desired_capacity(GROUP, 6).await.unwrap();
    tokio::time::sleep(Duration::from_secs(900)).await;
    let v = new_version(&cloud, AL2023).await;
    let mark = account.timeline().len();
    cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(50, 150)))
        .await
        .unwrap();
    assert_eq!(wait_refresh(&cloud).await.status, RefreshStatus::Successful);
    let frames: Vec<_> = account.timeline()[mark..]
        .iter()
        .filter_map(|f| f.group(GROUP).cloned())
        .collect();
    assert!(
        frames.iter().all(|f| f.healthy_in_service >= 3),
        "min 50% of 6"
    );
    assert!(frames.iter().all(|f| f.active <= 9), "max 150% of 6");
}

#[tokio::test(start_paused = true)]
async fn refresh_validates_preferences() {
    let (_account, cloud) = poc().await;
    let v = new_version(&cloud, AL2023).await;
    let err = cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(50, 210)))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    let mut floating = start(v, prefs(100, 150));
    floating.preferences.auto_rollback = true;
    floating.desired = None;
    let err = cloud
        .scaling
        .start_instance_refresh(&floating)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Validation,
        "auto rollback needs a desired config"
    );
}

#[tokio::test(start_paused = true)]
async fn group_replaces_an_instance_terminated_behind_its_back() {
    let (_account, cloud) = poc().await;
    let victim = group(&cloud).await.instances[0].id.clone();
    cloud
        .compute
        .terminate_instances(std::slice::from_ref(&victim))
        .await
        .unwrap();
    let g = until(Duration::from_secs(1200), || async {
        let g = group(&cloud).await;
        let healthy = g
            .instances
            .iter()
            .filter(|i| i.in_service() && i.health_status == "Healthy");
        (healthy.count() == 3 && g.instances.iter().all(|i| i.id != victim)).then_some(g)
    })
    .await;
    assert_eq!(g.instances.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn target_health_initial_then_healthy_and_draining_on_deregister() {
    let (_account, cloud) = poc().await;
    let tg = cloud
        .load_balancing
        .describe_target_groups(&["poc-web-tg".into()])
        .await
        .unwrap();
    let arn = tg[0].arn.clone();
    let inst = cloud
        .compute
        .run_instance(&builder_request("test"))
        .await
        .unwrap();
    cloud
        .load_balancing
        .register_targets(&arn, std::slice::from_ref(&inst.id))
        .await
        .unwrap();
    let state = |h: Vec<TargetHealth>| {
        h.into_iter()
            .find(|t| t.target_id == inst.id.0)
            .map(|t| t.state)
    };
    let first = state(
        cloud
            .load_balancing
            .describe_target_health(&arn)
            .await
            .unwrap(),
    );
    assert_eq!(first, Some(TargetState::Initial));
    until(Duration::from_secs(300), || async {
        let h = cloud
            .load_balancing
            .describe_target_health(&arn)
            .await
            .unwrap();
        (state(h) == Some(TargetState::Healthy)).then_some(())
    })
    .await;
    cloud
        .load_balancing
        .deregister_targets(&arn, std::slice::from_ref(&inst.id))
        .await
        .unwrap();
    let h = cloud
        .load_balancing
        .describe_target_health(&arn)
        .await
        .unwrap();
    assert_eq!(state(h), Some(TargetState::Draining));
    tokio::time::sleep(Duration::from_secs(61)).await;
    let h = cloud
        .load_balancing
        .describe_target_health(&arn)
        .await
        .unwrap();
    assert_eq!(state(h), None, "gone after the 60 s deregistration delay");
}

#[tokio::test(start_paused = true)]
async fn canary_target_group_of_a_bad_image_raises_its_alarm() {
    let (account, cloud) = poc().await;
    account.set_faults(
        Faults::from_yaml_str(&format!("unhealthy_images:\n  - image: {AL2023}\n")).unwrap(),
    );
    let lb = &cloud.load_balancing;
    let blue = lb
        .describe_target_groups(&["poc-web-tg".into()])
        .await
        .unwrap()
        .remove(0);
    let mut req = CreateTargetGroup {
        name: "poc-web-green".into(),
        protocol: "HTTP".into(),
        port: 80,
        vpc_id: VPC.into(),
        health_check: blue.health_check.clone(),
        deregistration_delay: Duration::from_secs(30),
        tags: Tags::new(),
    };
    let green = lb.create_target_group(&req).await.unwrap();
    req.port = 8080;
    assert_eq!(
        lb.create_target_group(&req).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    let inst = cloud
        .compute
        .run_instance(&builder_request("canary"))
        .await
        .unwrap();
    lb.register_targets(&green.arn, std::slice::from_ref(&inst.id))
        .await
        .unwrap();
    let alb = lb
        .describe_load_balancers(&["poc-poc-alb".into()])
        .await
        .unwrap()
        .remove(0);
    let listener = lb.describe_listeners(&alb.arn).await.unwrap().remove(0);
    let forward = Forward {
        target_groups: vec![
            WeightedTarget {
                target_group_arn: blue.arn.clone(),
                weight: 90,
            },
            WeightedTarget {
                target_group_arn: green.arn.clone(),
                weight: 10,
            },
        ],
        stickiness: None,
    };
    lb.modify_listener_forward(&listener.arn, &forward)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
    let tl = account.timeline();
    let home = tl.iter().rev().find(|f| f.region == REGION).unwrap();
    let last = home.listeners[0].targets.clone();
    assert_eq!(
        last.iter().map(|t| t.healthy_targets).collect::<Vec<_>>(),
        [3, 0]
    );
    let q = MetricQuery {
        namespace: "AWS/ApplicationELB".into(),
        metric: "HTTPCode_Target_5XX_Count".into(),
        dimensions: [("TargetGroup".to_string(), "poc-web-green".to_string())].into(),
        statistic: "Sum".into(),
        period: Duration::from_secs(60),
        start: cloud.clock.now() - chrono::Duration::minutes(3),
        end: cloud.clock.now(),
    };
    let blue_q = MetricQuery {
        dimensions: [("TargetGroup".to_string(), "poc-web-tg".to_string())].into(),
        ..q.clone()
    };
    let values = cloud.metrics.get_metric_data(&[q, blue_q]).await.unwrap();
    assert!(
        values[0].unwrap() > 0.0,
        "the green group answers with errors"
    );
    assert_eq!(values[1], Some(0.0), "blue serves cleanly");
    let alarms = cloud
        .metrics
        .describe_alarms(&["poc-web-5xx".into()])
        .await
        .unwrap();
    assert_eq!(
        alarms[0].state,
        AlarmState::Ok,
        "the alarm watches blue's target group"
    );
}

#[tokio::test(start_paused = true)]
async fn rules_match_source_ips_with_unique_priorities() {
    let (_account, cloud) = poc().await;
    let lb = &cloud.load_balancing;
    let alb = lb
        .describe_load_balancers(&["poc-poc-alb".into()])
        .await
        .unwrap()
        .remove(0);
    let listener = lb.describe_listeners(&alb.arn).await.unwrap().remove(0);
    let blue = lb
        .describe_target_groups(&["poc-web-tg".into()])
        .await
        .unwrap()
        .remove(0);
    let mut rule = CreateRule {
        listener_arn: listener.arn.clone(),
        priority: 10,
        conditions: vec![RuleCondition::SourceIp(vec!["203.0.113.0/24".into()])],
        forward: Forward {
            target_groups: vec![WeightedTarget {
                target_group_arn: blue.arn.clone(),
                weight: 1,
            }],
            stickiness: None,
        },
        tags: Tags::new(),
    };
    let mut bad = rule.clone();
    bad.conditions = vec![RuleCondition::SourceIp(vec!["203.0.113.7".into()])];
    assert_eq!(
        lb.create_rule(&bad).await.unwrap_err().kind,
        ErrorKind::Validation
    );
    let created = lb.create_rule(&rule).await.unwrap();
    assert_eq!(
        lb.create_rule(&rule).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    let rules = lb.describe_rules(&listener.arn).await.unwrap();
    assert_eq!(
        rules
            .iter()
            .map(|r| r.priority.as_str())
            .collect::<Vec<_>>(),
        ["10", "default"]
    );
    lb.delete_rule(&created.arn).await.unwrap();
    rule.priority = 11;
    assert!(lb.create_rule(&rule).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn weighted_forward_to_sticky_groups_needs_group_stickiness() {
    let seed = SEED.replacen(
        "deregistration_delay: 60s",
        "deregistration_delay: 60s\n        stickiness: true",
        1,
    );
    let account = SimAccount::from_seed_str(&seed).unwrap();
    let cloud = account.region(REGION).await.unwrap();
    let lb = &cloud.load_balancing;
    let blue = lb
        .describe_target_groups(&["poc-web-tg".into()])
        .await
        .unwrap()
        .remove(0);
    assert!(blue.stickiness_enabled);
    let req = CreateTargetGroup {
        name: "poc-web-green".into(),
        protocol: "HTTP".into(),
        port: 80,
        vpc_id: VPC.into(),
        health_check: blue.health_check.clone(),
        deregistration_delay: Duration::from_secs(30),
        tags: Tags::new(),
    };
    let green = lb.create_target_group(&req).await.unwrap();
    let alb = lb
        .describe_load_balancers(&["poc-poc-alb".into()])
        .await
        .unwrap()
        .remove(0);
    let listener = lb.describe_listeners(&alb.arn).await.unwrap().remove(0);
    let mut forward = Forward {
        target_groups: vec![
            WeightedTarget {
                target_group_arn: blue.arn.clone(),
                weight: 50,
            },
            WeightedTarget {
                target_group_arn: green.arn.clone(),
                weight: 50,
            },
        ],
        stickiness: None,
    };
    let err = lb
        .modify_listener_forward(&listener.arn, &forward)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    forward.stickiness = Some(Duration::from_secs(3600));
    lb.modify_listener_forward(&listener.arn, &forward)
        .await
        .unwrap();
    let err = lb.delete_target_group(&green.arn).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "in use by the listener");
}

#[tokio::test(start_paused = true)]
async fn alarm_during_refresh_fails_it_and_rolls_back() {
    let (account, cloud) = poc().await;
    account.set_faults(Faults::from_yaml_str("unhealthy_images:\n  - image: new\n").unwrap());
    let (_, image) = baked_image(&cloud).await;
    let v = new_version(&cloud, image.as_str()).await;
    let mut p = prefs(0, 100);
    p.auto_rollback = true;
    p.alarm_names = vec!["poc-web-5xx".into()];
    cloud
        .scaling
        .start_instance_refresh(&start(v, p))
        .await
        .unwrap();
    let done = wait_refresh(&cloud).await;
    assert_eq!(done.status, RefreshStatus::RollbackSuccessful);
    assert!(
        done.status_reason
            .as_deref()
            .unwrap()
            .contains("poc-web-5xx"),
        "{done:?}"
    );
    assert_eq!(group(&cloud).await.launch_template.unwrap().version, "2");
}

#[tokio::test(start_paused = true)]
async fn standby_instances_wait_or_are_terminated_as_asked() {
    let (_account, cloud) = poc().await;
    let g = group(&cloud).await;
    let parked = g.instances[1].id.clone();
    let one = std::slice::from_ref(&parked);
    let err = cloud
        .scaling
        .enter_standby(GROUP, one, true)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Validation,
        "desired would fall below min"
    );
    let lower = UpdateGroup {
        name: GROUP.into(),
        min_size: Some(2),
        ..Default::default()
    };
    cloud.scaling.update_group(&lower).await.unwrap();
    cloud.scaling.enter_standby(GROUP, one, true).await.unwrap();
    let g = group(&cloud).await;
    assert_eq!(g.desired_capacity, 2);
    let err = cloud
        .scaling
        .enter_standby(GROUP, one, true)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation, "already in standby");
    let v = new_version(&cloud, AL2023).await;
    let mut p = prefs(100, 150);
    p.standby_instances = StandbyInstances::Wait;
    cloud
        .scaling
        .start_instance_refresh(&start(v, p))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1800)).await;
    let r = cloud
        .scaling
        .describe_instance_refreshes(GROUP)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        r.status,
        RefreshStatus::InProgress,
        "waits for the standby instance"
    );
    cloud.scaling.cancel_instance_refresh(GROUP).await.unwrap();
    wait_refresh(&cloud).await;
    let mut p = prefs(100, 150);
    p.standby_instances = StandbyInstances::Terminate;
    cloud
        .scaling
        .start_instance_refresh(&start(v, p))
        .await
        .unwrap();
    assert_eq!(wait_refresh(&cloud).await.status, RefreshStatus::Successful);
    let g = group(&cloud).await;
    assert!(
        g.instances.iter().all(|i| i.id != parked),
        "the standby instance was replaced"
    );
    assert_eq!(g.instances.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_group_on_latest_launches_whatever_version_is_newest() {
    let (_account, cloud) = poc().await;
    let floating = GroupTemplate {
        version: "$Latest".into(),
        ..numbered(2)
    };
    let req = UpdateGroup {
        name: GROUP.into(),
        template: Some(floating),
        ..Default::default()
    };
    cloud.scaling.update_group(&req).await.unwrap();
    let v = new_version(&cloud, AL2023).await;
    cloud.scaling.set_desired_capacity(GROUP, 4).await.unwrap();
    let g = until(Duration::from_secs(600), || async {
        let g = group(&cloud).await;
        (g.instances.len() == 4).then_some(g)
    })
    .await;
    let versions: Vec<String> = g
        .instances
        .iter()
        .map(|i| i.launch_template.clone().unwrap().version)
        .collect();
    assert_eq!(
        versions.iter().filter(|v2| **v2 == v.to_string()).count(),
        1,
        "{versions:?}"
    );
    assert_eq!(
        g.launch_template.unwrap().version,
        "$Latest",
        "the group keeps the reference"
    );
}

#[tokio::test(start_paused = true)]
async fn launch_first_with_unhealthy_replacements_keeps_every_old_instance() {
    let (account, cloud) = poc().await;
    account.set_faults(
        Faults::from_yaml_str(&format!("unhealthy_images:\n  - image: {AL2023}\n")).unwrap(),
    );
    let desired = group(&cloud).await.desired_capacity as usize;
    let v = new_version(&cloud, AL2023).await;
    let before = account.timeline().len();
    cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(100, 150)))
        .await
        .unwrap();
    let done = wait_refresh(&cloud).await;
    assert_eq!(done.status, RefreshStatus::Failed, "{done:?}");
    assert!(done.status_reason.unwrap().contains("health"));
    // No gate above the sim watches here: the refresh alone must never take an old
    // instance out while its replacements keep failing their health checks.
    assert_eq!(min_healthy(&account, before), desired);
    let g = group(&cloud).await;
    let old = g
        .instances
        .iter()
        .filter(|i| i.launch_template.as_ref().is_some_and(|t| t.version == "2") && i.in_service());
    assert_eq!(old.count(), desired, "every old instance still serves");
}

#[tokio::test(start_paused = true)]
async fn rollback_in_the_middle_of_a_launch_first_batch_keeps_every_serving_instance() {
    let (account, cloud) = poc().await;
    let v = new_version(&cloud, AL2023).await;
    let before = account.timeline().len();
    cloud
        .scaling
        .start_instance_refresh(&start(v, prefs(100, 150)))
        .await
        .unwrap();
    // After the first batch, the second one's new instance is launching.
    until(REFRESH_LIMIT, || async {
        let r = cloud
            .scaling
            .describe_instance_refreshes(GROUP)
            .await
            .unwrap();
        let g = group(&cloud).await;
        let launching = g.instances.iter().any(|i| i.lifecycle_state == "Pending");
        let past_first = r.first().is_some_and(|r| r.percentage_complete > 0);
        (launching && past_first).then_some(())
    })
    .await;
    cloud
        .scaling
        .rollback_instance_refresh(GROUP)
        .await
        .unwrap();
    let done = wait_refresh(&cloud).await;
    assert_eq!(done.status, RefreshStatus::RollbackSuccessful, "{done:?}");
    assert_eq!(min_healthy(&account, before), 3);
}
