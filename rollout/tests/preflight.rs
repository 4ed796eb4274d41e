//! The preflight checks on hand-made groups: each refusal with its reason and fix, and
//! the batch arithmetic on the current desired capacity (PITFALLS 3, 4, 5, 6, 9).

use std::time::Duration;

use kiln_cloud::{Group, GroupInstance, GroupTemplate, InstanceId, ProtectedInstances};
use kiln_rollout::preflight::{
    capacity, check_group_sizes, check_in_place_batch, check_percentages, check_protected_standby,
    check_suspended,
};
use kiln_rollout::{ReplacementOrder, RollingSettings};

fn group(min: i32, max: i32, desired: i32) -> Group {
    let template = GroupTemplate {
        template_id: None,
        template_name: Some("poc-web-lt".into()),
        version: "1".into(),
    };
    Group {
        name: "poc-web-asg".into(),
        arn: None,
        min_size: min,
        max_size: max,
        desired_capacity: desired,
        launch_template: Some(template.clone()),
        mixed_instances: false,
        target_group_arns: Vec::new(),
        health_check_type: "ELB".into(),
        health_check_grace: Duration::from_secs(300),
        default_instance_warmup: None,
        subnet_ids: Vec::new(),
        instances: (0..desired)
            .map(|n| GroupInstance {
                id: InstanceId::new(format!("i-{n:04}")),
                availability_zone: "ap-northeast-1a".into(),
                lifecycle_state: "InService".into(),
                health_status: "Healthy".into(),
                protected_from_scale_in: false,
                launch_template: Some(template.clone()),
            })
            .collect(),
        suspended_processes: Vec::new(),
        tags: Default::default(),
    }
}

fn settings(min: i32, max: i32) -> RollingSettings {
    RollingSettings {
        min_healthy_percentage: min,
        max_healthy_percentage: max,
        ..RollingSettings::default()
    }
}

#[test]
fn launch_first_when_min_is_100_and_max_above() {
    let c = capacity(3, 100, 150);
    assert_eq!(c.order, ReplacementOrder::LaunchBeforeTerminate);
    assert_eq!(
        (c.min_in_service, c.launch_batch, c.terminate_batch),
        (3, 1, 0)
    );
}

#[test]
fn terminate_first_when_max_is_100() {
    let c = capacity(10, 80, 100);
    assert_eq!(c.order, ReplacementOrder::TerminateBeforeLaunch);
    assert_eq!(c.terminate_batch, 2);
    assert_eq!(c.launch_batch, 0);
}

#[test]
fn batches_follow_the_current_desired_capacity() {
    // 90 % of 3 rounds up to 3 kept; of 20 it keeps 18.
    assert_eq!(capacity(3, 90, 100).terminate_batch, 0);
    assert_eq!(capacity(20, 90, 100).terminate_batch, 2);
    assert_eq!(
        capacity(20, 90, 120).order,
        ReplacementOrder::LaunchAndTerminate
    );
}

#[test]
fn no_progress_is_refused_with_the_percentages_that_would_work() {
    let (refusals, _, _) = check_percentages(&group(1, 6, 3), &settings(90, 100));
    let r = refusals
        .iter()
        .find(|r| r.check == "no_progress")
        .expect("refused");
    assert!(r.reason.contains("desired capacity 3"), "{}", r.reason);
    assert!(
        r.fix.contains("max_healthy_percentage to at least 134"),
        "{}",
        r.fix
    );
}

#[test]
fn group_of_one_terminate_first_is_refused() {
    let (refusals, cap, _) = check_percentages(&group(1, 2, 1), &settings(0, 100));
    assert_eq!(cap.order, ReplacementOrder::TerminateBeforeLaunch);
    let r = refusals
        .iter()
        .find(|r| r.check == "terminate_first")
        .expect("refused");
    assert!(r.fix.contains("launch first"), "{}", r.fix);
}

#[test]
fn min_equal_desired_terminate_first_is_refused() {
    let (refusals, _, _) = check_percentages(&group(3, 6, 3), &settings(66, 100));
    assert!(
        refusals.iter().any(|r| r.check == "terminate_first"),
        "{refusals:?}"
    );
    let (ok, _, _) = check_percentages(&group(3, 6, 3), &settings(100, 150));
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn launch_first_without_room_is_refused_or_raised() {
    let (refusals, _, raise) = check_percentages(&group(3, 3, 3), &settings(100, 200));
    let r = refusals
        .iter()
        .find(|r| r.check == "max_size")
        .expect("refused");
    assert!(r.reason.contains("needs max size 6"), "{}", r.reason);
    assert!(r.fix.contains("raise_max_size"), "{}", r.fix);
    assert_eq!(raise, None);

    let mut s = settings(100, 200);
    s.raise_max_size = true;
    let (refusals, _, raise) = check_percentages(&group(3, 3, 3), &s);
    assert!(refusals.is_empty(), "{refusals:?}");
    assert_eq!(raise, Some(6));
}

#[test]
fn invalid_percentages_are_refused() {
    for (min, max) in [(101, 150), (50, 99), (20, 150)] {
        let (refusals, _, _) = check_percentages(&group(1, 6, 3), &settings(min, max));
        assert!(
            refusals.iter().any(|r| r.check == "healthy_percentages"),
            "{min}/{max}: {refusals:?}"
        );
    }
}

#[test]
fn suspended_processes_are_refused_and_named() {
    let mut g = group(1, 6, 3);
    g.suspended_processes = vec!["AZRebalance".into(), "Launch".into()];
    let r = check_suspended(&g);
    assert_eq!(r.len(), 1);
    assert!(r[0].reason.contains("Launch") && !r[0].reason.contains("AZRebalance"));
    assert!(r[0].fix.contains("resume-processes"));
    g.suspended_processes = vec!["AZRebalance".into()];
    assert!(check_suspended(&g).is_empty());
}

#[test]
fn protected_and_standby_need_a_decision() {
    let mut g = group(1, 6, 3);
    g.instances[0].protected_from_scale_in = true;
    g.instances[1].lifecycle_state = "Standby".into();
    let r = check_protected_standby(&g, &RollingSettings::default());
    let checks: Vec<&str> = r.iter().map(|r| r.check.as_str()).collect();
    assert_eq!(checks, ["protected_instances", "standby_instances"]);
    assert!(r[0].reason.contains("i-0000") && r[1].reason.contains("i-0001"));

    let s = RollingSettings {
        protected_instances: Some(ProtectedInstances::Refresh),
        ..RollingSettings::default()
    };
    let r = check_protected_standby(&g, &s);
    assert_eq!(r.len(), 1);
}

#[test]
fn inconsistent_or_empty_groups_are_refused() {
    let r = check_group_sizes(&group(2, 6, 1));
    assert!(r.iter().any(|r| r.check == "group_sizes"));
    let r = check_group_sizes(&group(0, 6, 0));
    assert!(r.iter().any(|r| r.check == "empty_group"));
    assert!(check_group_sizes(&group(1, 6, 3)).is_empty());
}

#[test]
fn an_in_place_batch_takes_out_what_is_above_min_size_or_one() {
    // min 3 of 3: one at a time, so that the fix makes progress.
    assert!(check_in_place_batch(&group(3, 6, 3), 1).is_empty());
    let r = check_in_place_batch(&group(3, 6, 3), 2);
    assert_eq!(
        r[0].to_string(),
        "in-place batch_size 2 takes 2 of the 3 in-service instances of group poc-web-asg \
         (min size 3) out of the target group at once, leaving 1 serving (fix: set \
         in_place.batch_size to at most 1: a batch may take out the instances above the \
         group's min size, or one when none is above it, never all)"
    );
    // min 2 of 10: eight may go at once, never all ten.
    assert!(check_in_place_batch(&group(2, 12, 10), 8).is_empty());
    assert_eq!(check_in_place_batch(&group(2, 12, 10), 9).len(), 1);
    assert!(check_in_place_batch(&group(0, 6, 3), 2).is_empty());
    assert_eq!(check_in_place_batch(&group(0, 6, 3), 3).len(), 1);
}

#[test]
fn an_in_place_fix_of_a_group_of_one_is_refused() {
    let r = check_in_place_batch(&group(1, 2, 1), 1);
    assert_eq!(r[0].check, "in_place_batch");
    assert_eq!(
        r[0].to_string(),
        "group poc-web-asg has 1 instance(s) in service: an in-place batch would take the \
         application down while it is fixed (fix: scale the group to at least 2 first, or \
         roll out a fixed image with a rolling refresh (launch first))"
    );
}
