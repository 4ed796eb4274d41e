//! Instance refresh: the StartInstanceRefresh request in full, every status, rollback and
//! cancellation, and a refresh already in progress.

use std::time::Duration;

use aws_sdk_autoscaling::operation::cancel_instance_refresh::CancelInstanceRefreshOutput;
use aws_sdk_autoscaling::operation::describe_instance_refreshes::DescribeInstanceRefreshesOutput;
use aws_sdk_autoscaling::operation::rollback_instance_refresh::RollbackInstanceRefreshOutput;
use aws_sdk_autoscaling::operation::start_instance_refresh::{
    StartInstanceRefreshInput, StartInstanceRefreshOutput,
};
use aws_sdk_autoscaling::types as asg;
use aws_sdk_autoscaling::Client;
use aws_smithy_mocks::mock;

use super::{mocked, query_error, REGION};
use crate::aws::AutoScaling;
use crate::ports::Scaling;
use crate::types::*;
use crate::ErrorKind;

fn preferences(auto_rollback: bool) -> RefreshPreferences {
    RefreshPreferences {
        min_healthy_percentage: 100,
        max_healthy_percentage: 200,
        instance_warmup: Duration::from_secs(300),
        skip_matching: true,
        checkpoint_percentages: vec![20, 100],
        checkpoint_delay: Some(Duration::from_secs(600)),
        auto_rollback,
        alarm_names: vec!["web-5xx".to_string()],
        scale_in_protected_instances: ProtectedInstances::Wait,
        standby_instances: StandbyInstances::Terminate,
    }
}

/// A template as DescribeAutoScalingGroups answers it: with both id and name.
fn numbered(version: &str) -> GroupTemplate {
    GroupTemplate {
        template_id: Some(LaunchTemplateId::new("lt-0abc")),
        template_name: Some("web".to_string()),
        version: version.to_string(),
    }
}

/// Asserts every preference kiln states, whatever the desired configuration.
fn assert_every_preference(p: &asg::RefreshPreferences) {
    assert_eq!(p.min_healthy_percentage(), Some(100));
    assert_eq!(p.max_healthy_percentage(), Some(200));
    assert_eq!(p.instance_warmup(), Some(300));
    assert_eq!(p.skip_matching(), Some(true));
    assert_eq!(p.checkpoint_percentages(), [20, 100]);
    assert_eq!(p.checkpoint_delay(), Some(600));
    let alarms = p.alarm_specification().map(|a| a.alarms().to_vec());
    assert_eq!(alarms, Some(vec!["web-5xx".to_string()]));
    assert_eq!(
        p.scale_in_protected_instances(),
        Some(&asg::ScaleInProtectedInstances::Wait)
    );
    assert_eq!(
        p.standby_instances(),
        Some(&asg::StandbyInstances::Terminate)
    );
}

fn with_desired_version(r: &StartInstanceRefreshInput) -> bool {
    assert_eq!(r.auto_scaling_group_name(), Some("web"));
    assert_eq!(r.strategy(), Some(&asg::RefreshStrategy::Rolling));
    let template = r
        .desired_configuration()
        .and_then(|d| d.launch_template())
        .expect("a desired launch template");
    assert_eq!(template.launch_template_id(), Some("lt-0abc"));
    assert_eq!(
        template.launch_template_name(),
        None,
        "AWS refuses both id and name"
    );
    assert_eq!(
        template.version(),
        Some("7"),
        "the numbered version, never $Latest"
    );
    let p = r.preferences().expect("preferences");
    assert_every_preference(p);
    assert_eq!(p.auto_rollback(), Some(true));
    true
}

#[tokio::test]
async fn start_sends_the_numbered_version_and_every_preference() {
    let start = mock!(Client::start_instance_refresh)
        .match_requests(with_desired_version)
        .then_output(|| {
            StartInstanceRefreshOutput::builder()
                .instance_refresh_id("refresh-1")
                .build()
        });
    let scaling = AutoScaling::new(mocked!(aws_sdk_autoscaling, start), REGION);

    let request = StartRefresh {
        group: "web".to_string(),
        desired: Some(numbered("7")),
        preferences: preferences(true),
    };
    let id = scaling
        .start_instance_refresh(&request)
        .await
        .expect("started");

    assert_eq!(id, "refresh-1");
    assert_eq!(start.num_calls(), 1);
}

#[tokio::test]
async fn without_a_desired_configuration_auto_rollback_is_not_sent() {
    let start = mock!(Client::start_instance_refresh)
        .match_requests(|r| {
            assert!(r.desired_configuration().is_none());
            let p = r.preferences().expect("preferences");
            assert_every_preference(p);
            assert_eq!(p.auto_rollback(), None, "AWS refuses AutoRollback alone");
            true
        })
        .then_output(|| {
            StartInstanceRefreshOutput::builder()
                .instance_refresh_id("refresh-2")
                .build()
        });
    let scaling = AutoScaling::new(mocked!(aws_sdk_autoscaling, start), REGION);
    let mut request = StartRefresh {
        group: "web".to_string(),
        desired: None,
        preferences: preferences(false),
    };

    let id = scaling
        .start_instance_refresh(&request)
        .await
        .expect("started");
    assert_eq!(id, "refresh-2");

    request.preferences.auto_rollback = true;
    let err = scaling
        .start_instance_refresh(&request)
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Validation);
    assert!(err.message.contains("desired configuration"), "{err}");
    assert_eq!(
        start.num_calls(),
        1,
        "the refused request never reached AWS"
    );
}

#[tokio::test]
async fn a_refresh_in_progress_is_a_conflict() {
    let start = mock!(Client::start_instance_refresh).then_http_response(|| {
        query_error(
            "InstanceRefreshInProgress",
            "An Instance Refresh is already in progress and blocks the execution of this \
             Instance Refresh.",
        )
    });
    let scaling = AutoScaling::new(mocked!(aws_sdk_autoscaling, start), REGION);
    let request = StartRefresh {
        group: "web".to_string(),
        desired: Some(numbered("7")),
        preferences: preferences(true),
    };

    let err = scaling
        .start_instance_refresh(&request)
        .await
        .expect_err("conflict");

    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(err.code, "InstanceRefreshInProgress");
    assert_eq!(
        (err.operation, err.resource.as_str()),
        ("StartInstanceRefresh", "web")
    );
    assert_eq!(err.region, REGION);
    assert!(err.message.contains("already in progress"), "{err}");
}

const STATUSES: [(asg::InstanceRefreshStatus, RefreshStatus); 10] = [
    (asg::InstanceRefreshStatus::Pending, RefreshStatus::Pending),
    (
        asg::InstanceRefreshStatus::InProgress,
        RefreshStatus::InProgress,
    ),
    (
        asg::InstanceRefreshStatus::Successful,
        RefreshStatus::Successful,
    ),
    (asg::InstanceRefreshStatus::Failed, RefreshStatus::Failed),
    (
        asg::InstanceRefreshStatus::Cancelling,
        RefreshStatus::Cancelling,
    ),
    (
        asg::InstanceRefreshStatus::Cancelled,
        RefreshStatus::Cancelled,
    ),
    (
        asg::InstanceRefreshStatus::RollbackInProgress,
        RefreshStatus::RollbackInProgress,
    ),
    (
        asg::InstanceRefreshStatus::RollbackFailed,
        RefreshStatus::RollbackFailed,
    ),
    (
        asg::InstanceRefreshStatus::RollbackSuccessful,
        RefreshStatus::RollbackSuccessful,
    ),
    (asg::InstanceRefreshStatus::Baking, RefreshStatus::Baking),
];

fn recorded_refresh(index: usize, status: asg::InstanceRefreshStatus) -> asg::InstanceRefresh {
    let started = 1_767_225_600 + index as i64 * 60;
    let template = asg::LaunchTemplateSpecification::builder()
        .launch_template_id("lt-0abc")
        .version(index.to_string())
        .build();
    asg::InstanceRefresh::builder()
        .instance_refresh_id(format!("refresh-{index}"))
        .auto_scaling_group_name("web")
        .status(status)
        .status_reason(format!("reason {index}"))
        .percentage_complete(index as i32 * 10)
        .instances_to_update(10 - index as i32)
        .start_time(aws_smithy_types::DateTime::from_secs(started))
        .desired_configuration(
            asg::DesiredConfiguration::builder()
                .launch_template(template)
                .build(),
        )
        .preferences(
            asg::RefreshPreferences::builder()
                .min_healthy_percentage(90)
                .max_healthy_percentage(110)
                .instance_warmup(120)
                .scale_in_protected_instances(asg::ScaleInProtectedInstances::Refresh)
                .standby_instances(asg::StandbyInstances::Ignore)
                .build(),
        )
        .build()
}

#[tokio::test]
async fn every_refresh_status_is_read_newest_first() {
    let describe = mock!(Client::describe_instance_refreshes)
        .match_requests(|r| r.auto_scaling_group_name() == Some("web"))
        .then_output(|| {
            let refreshes = STATUSES
                .iter()
                .enumerate()
                .map(|(i, (status, _))| recorded_refresh(i, status.clone()))
                .rev()
                .collect();
            DescribeInstanceRefreshesOutput::builder()
                .set_instance_refreshes(Some(refreshes))
                .build()
        });
    let scaling = AutoScaling::new(mocked!(aws_sdk_autoscaling, describe), REGION);

    let refreshes = scaling
        .describe_instance_refreshes("web")
        .await
        .expect("refreshes");

    assert_eq!(refreshes.len(), STATUSES.len());
    for (refresh, (i, (_, status))) in refreshes.iter().zip(STATUSES.iter().enumerate().rev()) {
        assert_eq!(refresh.id, format!("refresh-{i}"));
        assert_eq!(refresh.status, *status);
        assert_eq!(
            refresh.status_reason.as_deref(),
            Some(format!("reason {i}").as_str())
        );
        assert_eq!(refresh.percentage_complete, i as i32 * 10);
        assert_eq!(
            refresh.desired.as_ref().map(|d| d.version.clone()),
            Some(i.to_string())
        );
        let p = refresh.preferences.as_ref().expect("preferences");
        assert_eq!(
            (p.min_healthy_percentage, p.max_healthy_percentage),
            (90, 110)
        );
        assert_eq!(p.scale_in_protected_instances, ProtectedInstances::Refresh);
        assert_eq!(p.standby_instances, StandbyInstances::Ignore);
    }
    assert!(refreshes
        .windows(2)
        .all(|w| w[0].start_time >= w[1].start_time));
}

#[tokio::test]
async fn cancel_and_rollback_name_the_group() {
    let cancel = mock!(Client::cancel_instance_refresh)
        .match_requests(|r| r.auto_scaling_group_name() == Some("web"))
        .then_output(|| CancelInstanceRefreshOutput::builder().build());
    let rollback = mock!(Client::rollback_instance_refresh)
        .match_requests(|r| r.auto_scaling_group_name() == Some("web"))
        .then_output(|| RollbackInstanceRefreshOutput::builder().build());
    let scaling = AutoScaling::new(mocked!(aws_sdk_autoscaling, cancel, rollback), REGION);

    scaling
        .cancel_instance_refresh("web")
        .await
        .expect("cancel");
    scaling
        .rollback_instance_refresh("web")
        .await
        .expect("rollback");

    assert_eq!((cancel.num_calls(), rollback.num_calls()), (1, 1));
}

#[tokio::test]
async fn cancelling_with_no_refresh_running_is_not_found() {
    let cancel = mock!(Client::cancel_instance_refresh).then_http_response(|| {
        query_error(
            "ActiveInstanceRefreshNotFound",
            "No in progress or pending Instance Refresh found",
        )
    });
    let scaling = AutoScaling::new(mocked!(aws_sdk_autoscaling, cancel), REGION);

    let err = scaling
        .cancel_instance_refresh("web")
        .await
        .expect_err("nothing to cancel");

    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code, "ActiveInstanceRefreshNotFound");
}
