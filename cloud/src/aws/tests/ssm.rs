//! Systems Manager: agent status, the SendCommand request, invocation listings,
//! cancellation, and the errors that mean "not registered" and "not there yet".

use std::time::Duration;

use aws_sdk_ssm::operation::cancel_command::CancelCommandOutput;
use aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationOutput;
use aws_sdk_ssm::operation::list_command_invocations::ListCommandInvocationsOutput;
use aws_sdk_ssm::operation::send_command::{SendCommandInput, SendCommandOutput};
use aws_sdk_ssm::types as ssm;
use aws_sdk_ssm::Client;
use aws_smithy_mocks::mock;

use super::{json_error, mocked, REGION};
use crate::aws::Ssm;
use crate::ports::Commands;
use crate::types::*;
use crate::ErrorKind;

fn ids(n: usize) -> Vec<InstanceId> {
    (0..n)
        .map(|i| InstanceId::new(format!("i-{i:017x}")))
        .collect()
}

#[tokio::test]
async fn agent_status_is_asked_for_the_given_instances() {
    let describe = mock!(Client::describe_instance_information)
        .match_requests(|r| {
            let filter = &r.filters()[0];
            assert_eq!(filter.key(), "InstanceIds");
            assert_eq!(
                filter.values(),
                ["i-00000000000000000", "i-00000000000000001"]
            );
            true
        })
        .then_output(|| {
            let online = ssm::InstanceInformation::builder()
                .instance_id("i-00000000000000000")
                .ping_status(ssm::PingStatus::Online)
                .agent_version("3.3.1")
                .last_ping_date_time(aws_smithy_types::DateTime::from_secs(1_767_225_600))
                .build();
            let lost = ssm::InstanceInformation::builder()
                .instance_id("i-00000000000000001")
                .ping_status(ssm::PingStatus::ConnectionLost)
                .build();
            DescribeInstanceInformationOutput::builder()
                .instance_information_list(online)
                .instance_information_list(lost)
                .build()
        });
    let commands = Ssm::new(mocked!(aws_sdk_ssm, describe), REGION);

    let agents = commands
        .describe_instance_information(&ids(2))
        .await
        .expect("agents");

    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0].ping_status, PingStatus::Online);
    assert_eq!(agents[0].agent_version.as_deref(), Some("3.3.1"));
    assert_eq!(
        agents[0].last_ping.map(|t| t.timestamp()),
        Some(1_767_225_600)
    );
    assert_eq!(agents[1].instance_id.as_str(), "i-00000000000000001");
    assert_eq!(agents[1].ping_status, PingStatus::ConnectionLost);
}

fn request(n: usize) -> SendCommand {
    SendCommand {
        instance_ids: ids(n),
        document: "AWS-RunShellScript".to_string(),
        commands: vec!["set -eu".to_string(), "dnf -y install cronie".to_string()],
        execution_timeout: Duration::from_secs(900),
        delivery_timeout: Duration::from_secs(120),
        comment: "x".repeat(150),
        max_concurrency: Some("10".to_string()),
        max_errors: Some("0".to_string()),
        output_s3: Some(("kiln-logs".to_string(), "bake/run-1".to_string())),
    }
}

fn the_whole_command(r: &SendCommandInput) -> bool {
    assert_eq!(r.instance_ids().len(), 50);
    assert_eq!(r.document_name(), Some("AWS-RunShellScript"));
    let parameters = r.parameters().expect("parameters");
    assert_eq!(parameters["commands"], ["set -eu", "dnf -y install cronie"]);
    assert_eq!(parameters["executionTimeout"], ["900"]);
    assert_eq!(r.timeout_seconds(), Some(120), "the delivery timeout");
    assert_eq!(
        r.comment().map(str::len),
        Some(100),
        "SendCommand takes 100 characters"
    );
    assert_eq!(r.max_concurrency(), Some("10"));
    assert_eq!(r.max_errors(), Some("0"));
    assert_eq!(r.output_s3_bucket_name(), Some("kiln-logs"));
    assert_eq!(r.output_s3_key_prefix(), Some("bake/run-1"));
    true
}

#[tokio::test]
async fn send_command_states_both_timeouts_and_takes_at_most_fifty_ids() {
    let send = mock!(Client::send_command)
        .match_requests(the_whole_command)
        .then_output(|| {
            let command = ssm::Command::builder().command_id("cmd-1").build();
            SendCommandOutput::builder().command(command).build()
        });
    let commands = Ssm::new(mocked!(aws_sdk_ssm, send), REGION);

    let id = commands
        .send_command(&request(50))
        .await
        .expect("fifty ids");
    assert_eq!(id.as_str(), "cmd-1");

    let err = commands
        .send_command(&request(51))
        .await
        .expect_err("fifty-one ids");
    assert_eq!(err.kind, ErrorKind::Validation);
    assert_eq!(send.num_calls(), 1, "51 ids never reach AWS");
}

#[tokio::test]
async fn an_unregistered_instance_is_an_invalid_instance() {
    let send = mock!(Client::send_command)
        .then_http_response(|| json_error("InvalidInstanceId", "Instances not in a valid state"));
    let commands = Ssm::new(mocked!(aws_sdk_ssm, send), REGION);

    let err = commands
        .send_command(&request(1))
        .await
        .expect_err("not registered");

    assert_eq!(err.kind, ErrorKind::InvalidInstance, "{err}");
    assert_eq!(err.code, "InvalidInstanceId");
    assert_eq!(err.resource, "i-00000000000000000");
}

#[tokio::test]
async fn an_invocation_not_there_yet_is_not_found() {
    let get = mock!(Client::get_command_invocation)
        .then_http_response(|| json_error("InvocationDoesNotExist", ""));
    let commands = Ssm::new(mocked!(aws_sdk_ssm, get), REGION);

    let err = commands
        .get_command_invocation(&CommandId::new("cmd-1"), &InstanceId::new("i-0abc"))
        .await
        .expect_err("not yet");

    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code, "InvocationDoesNotExist");
    assert_eq!(err.resource, "cmd-1 on i-0abc");
    assert!(err
        .to_string()
        .contains("GetCommandInvocation cmd-1 on i-0abc in ap-northeast-1"));
}

fn listed(
    instance: &str,
    status: ssm::CommandInvocationStatus,
    code: i32,
) -> ssm::CommandInvocation {
    let plugin = ssm::CommandPlugin::builder()
        .name("aws:runShellScript")
        .response_code(code)
        .output(format!("output of {instance}"))
        .response_start_date_time(aws_smithy_types::DateTime::from_secs(1_767_225_600))
        .response_finish_date_time(aws_smithy_types::DateTime::from_secs(1_767_225_660))
        .build();
    ssm::CommandInvocation::builder()
        .command_id("cmd-1")
        .instance_id(instance)
        .status(status)
        .status_details(if code == 0 { "Success" } else { "Failed" })
        .command_plugins(plugin)
        .build()
}

#[tokio::test]
async fn invocations_are_listed_with_their_output() {
    let list = mock!(Client::list_command_invocations)
        .match_requests(|r| r.command_id() == Some("cmd-1") && r.details() == Some(true))
        .then_output(|| {
            ListCommandInvocationsOutput::builder()
                .command_invocations(listed("i-a", ssm::CommandInvocationStatus::Success, 0))
                .command_invocations(listed("i-b", ssm::CommandInvocationStatus::Failed, 2))
                .build()
        });
    let commands = Ssm::new(mocked!(aws_sdk_ssm, list), REGION);

    let invocations = commands
        .list_command_invocations(&CommandId::new("cmd-1"))
        .await
        .expect("invocations");

    assert_eq!(invocations.len(), 2);
    assert_eq!(invocations[0].status, InvocationStatus::Success);
    assert_eq!(invocations[0].response_code, 0);
    assert_eq!(invocations[0].stdout, "output of i-a");
    assert_eq!(invocations[1].instance_id.as_str(), "i-b");
    assert_eq!(invocations[1].status, InvocationStatus::Failed);
    assert_eq!(invocations[1].status_details, "Failed");
    assert_eq!(invocations[1].response_code, 2);
    let took = invocations[1]
        .execution_end
        .zip(invocations[1].execution_start);
    assert_eq!(
        took.map(|(end, start)| (end - start).num_seconds()),
        Some(60)
    );
}

#[tokio::test]
async fn cancel_names_the_instances_or_none_for_all() {
    let some = mock!(Client::cancel_command)
        .match_requests(|r| r.command_id() == Some("cmd-1") && r.instance_ids() == ["i-a"])
        .then_output(|| CancelCommandOutput::builder().build());
    let all = mock!(Client::cancel_command)
        .match_requests(|r| r.command_id() == Some("cmd-2") && r.instance_ids.is_none())
        .then_output(|| CancelCommandOutput::builder().build());
    let commands = Ssm::new(mocked!(aws_sdk_ssm, some, all), REGION);

    let one = [InstanceId::new("i-a")];
    commands
        .cancel_command(&CommandId::new("cmd-1"), &one)
        .await
        .expect("cancel one");
    commands
        .cancel_command(&CommandId::new("cmd-2"), &[])
        .await
        .expect("cancel all");

    assert_eq!((some.num_calls(), all.num_calls()), (1, 1));
}
