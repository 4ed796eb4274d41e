//! The simulated account's EC2 instances, SSM agent, Run Command and Parameter Store.

mod sim_common;

use std::time::Duration;

use kiln_cloud::sim::Faults;
use kiln_cloud::*;
use sim_common::*;

#[tokio::test(start_paused = true)]
async fn agent_comes_online_after_running_and_refuses_commands_before() {
    let (_account, cloud) = poc().await;
    let inst = cloud
        .compute
        .run_instance(&builder_request("builder"))
        .await
        .unwrap();
    assert_eq!(inst.state, InstanceState::Pending);
    let early = cloud
        .commands
        .send_command(&command(&inst.id, "base/one", &["true"]))
        .await;
    assert_eq!(early.unwrap_err().kind, ErrorKind::InvalidInstance);
    let running_at = until(Duration::from_secs(120), || async {
        let filter = InstanceFilter {
            ids: vec![inst.id.clone()],
            ..Default::default()
        };
        let now = cloud.clock.now();
        let found = cloud.compute.describe_instances(&filter).await.unwrap();
        (found[0].state == InstanceState::Running).then_some(now)
    })
    .await;
    online_builder_wait(&cloud, &inst.id).await;
    let online_at = cloud.clock.now();
    let delay = (online_at - running_at).num_seconds();
    assert!(
        (14..=151).contains(&delay),
        "agent online {delay}s after running"
    );
}

async fn online_builder_wait(cloud: &Cloud, id: &InstanceId) {
    until(Duration::from_secs(600), || async {
        let info = cloud
            .commands
            .describe_instance_information(std::slice::from_ref(id))
            .await
            .unwrap();
        (!info.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn invocation_is_not_found_for_a_moment_then_succeeds() {
    let (_account, cloud) = poc().await;
    let id = online_builder(&cloud).await;
    let cmd = cloud
        .commands
        .send_command(&command(&id, "base/update", &["dnf -y update"]))
        .await;
    let cmd = cmd.unwrap();
    let first = cloud.commands.get_command_invocation(&cmd, &id).await;
    assert_eq!(first.unwrap_err().kind, ErrorKind::NotFound);
    let inv = finished(&cloud, &cmd, &id).await;
    assert_eq!(inv.status, InvocationStatus::Success);
    assert_eq!(inv.response_code, 0);
    assert!(
        inv.stdout.contains("base/update"),
        "stdout names the step: {}",
        inv.stdout
    );
}

#[tokio::test(start_paused = true)]
async fn syntax_error_fails_with_bash_message() {
    let (_account, cloud) = poc().await;
    let id = online_builder(&cloud).await;
    let cmd = command(&id, "base/broken", &["if true; then", "echo missing fi"]);
    let cmd = cloud.commands.send_command(&cmd).await.unwrap();
    let inv = finished(&cloud, &cmd, &id).await;
    assert_eq!(inv.status, InvocationStatus::Failed);
    assert_eq!(inv.response_code, 2);
    assert!(
        inv.stderr.contains("syntax error"),
        "stderr: {}",
        inv.stderr
    );
}

#[tokio::test(start_paused = true)]
async fn step_fault_fails_the_named_step_only() {
    let (account, cloud) = poc().await;
    let faults = "steps:\n  - step: proxysql/install\n    exit_code: 7\n    \
                  stderr: [\"no package proxysql\"]\n";
    account.set_faults(Faults::from_yaml_str(faults).unwrap());
    let id = online_builder(&cloud).await;
    let other = cloud
        .commands
        .send_command(&command(&id, "proxysql/install-more", &["true"]))
        .await;
    let other = finished(&cloud, &other.unwrap(), &id).await;
    assert_eq!(other.status, InvocationStatus::Success);
    let cmd = cloud
        .commands
        .send_command(&command(&id, "proxysql/install", &["true"]))
        .await;
    let inv = finished(&cloud, &cmd.unwrap(), &id).await;
    assert_eq!(inv.status, InvocationStatus::Failed);
    assert_eq!(inv.response_code, 7);
    assert_eq!(inv.stderr, "no package proxysql\n");
}

#[tokio::test(start_paused = true)]
async fn reboot_takes_the_agent_away_and_succeeds() {
    let (_account, cloud) = poc().await;
    let id = online_builder(&cloud).await;
    let lines = [
        "if [ ! -f /var/run/kiln-rebooted ]; then",
        "  exit 194",
        "fi",
    ];
    let cmd = cloud
        .commands
        .send_command(&command(&id, "base/reboot", &lines))
        .await
        .unwrap();
    until(Duration::from_secs(600), || async {
        let info = cloud
            .commands
            .describe_instance_information(std::slice::from_ref(&id))
            .await
            .unwrap();
        info.iter()
            .any(|i| i.ping_status == PingStatus::ConnectionLost)
            .then_some(())
    })
    .await;
    let busy = cloud
        .commands
        .send_command(&command(&id, "base/next", &["true"]))
        .await;
    assert_eq!(busy.unwrap_err().kind, ErrorKind::InvalidInstance);
    let inv = finished(&cloud, &cmd, &id).await;
    assert_eq!(inv.status, InvocationStatus::Success);
    let filter = InstanceFilter {
        ids: vec![id.clone()],
        ..Default::default()
    };
    let inst = cloud.compute.describe_instances(&filter).await.unwrap();
    assert_eq!(inst[0].state, InstanceState::Running);
}

#[tokio::test(start_paused = true)]
async fn execution_timeout_and_cancel() {
    let (_account, cloud) = poc().await;
    let id = online_builder(&cloud).await;
    let mut slow = command(&id, "app/slow", &["sleep 900"]);
    slow.execution_timeout = Duration::from_secs(60);
    let cmd = cloud.commands.send_command(&slow).await.unwrap();
    let inv = finished(&cloud, &cmd, &id).await;
    assert_eq!(inv.status, InvocationStatus::TimedOut);
    assert_eq!(inv.status_details, "ExecutionTimedOut");
    let cmd = cloud
        .commands
        .send_command(&command(&id, "app/slow", &["sleep 900"]))
        .await;
    let cmd = cmd.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    cloud.commands.cancel_command(&cmd, &[]).await.unwrap();
    let inv = finished(&cloud, &cmd, &id).await;
    assert_eq!(inv.status, InvocationStatus::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn more_than_fifty_instances_is_a_validation_error() {
    let (_account, cloud) = poc().await;
    let id = online_builder(&cloud).await;
    let mut cmd = command(&id, "base/x", &["true"]);
    cmd.instance_ids = vec![id.clone(); 51];
    let err = cloud.commands.send_command(&cmd).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
}

#[tokio::test(start_paused = true)]
async fn agent_never_online_fault_by_role() {
    let (account, cloud) = poc().await;
    let faults = Faults::from_yaml_str("agent_never_online:\n  - role: builder\n").unwrap();
    account.set_faults(faults);
    let b = cloud
        .compute
        .run_instance(&builder_request("builder"))
        .await
        .unwrap();
    let t = cloud
        .compute
        .run_instance(&builder_request("test"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    let ids = [b.id.clone(), t.id.clone()];
    let info = cloud
        .commands
        .describe_instance_information(&ids)
        .await
        .unwrap();
    let online: Vec<_> = info.iter().map(|i| i.instance_id.clone()).collect();
    assert_eq!(online, vec![t.id]);
}

#[tokio::test(start_paused = true)]
async fn output_is_cut_at_the_ssm_limit() {
    let (account, cloud) = poc().await;
    let faults = "step_output:\n  - { step: app/chatty, chars: 30000 }\n";
    account.set_faults(Faults::from_yaml_str(faults).unwrap());
    let id = online_builder(&cloud).await;
    let cmd = cloud
        .commands
        .send_command(&command(&id, "app/chatty", &["true"]))
        .await;
    let inv = finished(&cloud, &cmd.unwrap(), &id).await;
    assert_eq!(inv.stdout.chars().count(), SSM_OUTPUT_LIMIT);
    assert!(inv.output_truncated());
}

#[tokio::test(start_paused = true)]
async fn parameters_versions_secure_strings_and_public_image() {
    let (_account, cloud) = poc().await;
    let public = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
    let p = cloud
        .parameters
        .get_parameter(public, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.value, AL2023);
    let secret = cloud
        .parameters
        .get_parameter("/poc/web/db/password", false)
        .await
        .unwrap();
    assert_ne!(secret.unwrap().value, "fake-db-password-for-the-simulation");
    let secret = cloud
        .parameters
        .get_parameter("/poc/web/db/password", true)
        .await
        .unwrap();
    assert_eq!(secret.unwrap().value, "fake-db-password-for-the-simulation");
    let all = cloud
        .parameters
        .get_parameters_by_path("/poc", true)
        .await
        .unwrap();
    assert!(all.len() >= 8, "{} parameters under /poc", all.len());
    let put = |value: &str, overwrite| PutParameter {
        name: "/kiln/poc-web/stable".into(),
        value: value.into(),
        kind: ParameterType::String,
        description: None,
        overwrite,
        data_type: Some("aws:ec2:image".into()),
    };
    assert_eq!(
        cloud
            .parameters
            .put_parameter(&put("ami-1", false))
            .await
            .unwrap(),
        1
    );
    let again = cloud
        .parameters
        .put_parameter(&put("ami-2", false))
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::Conflict);
    assert_eq!(
        cloud
            .parameters
            .put_parameter(&put("ami-2", true))
            .await
            .unwrap(),
        2
    );
    let bad = cloud
        .parameters
        .put_parameter(&put("latest", true))
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::Validation);
    let history = cloud
        .parameters
        .get_parameter_history("/kiln/poc-web/stable", false)
        .await;
    let values: Vec<_> = history.unwrap().into_iter().map(|p| p.value).collect();
    assert_eq!(values, ["ami-1", "ami-2"]);
}

#[tokio::test(start_paused = true)]
async fn builder_that_never_boots_is_terminated_with_a_reason() {
    let (account, cloud) = poc().await;
    account.set_faults(Faults::from_yaml_str("boot_fails:\n  - role: builder\n").unwrap());
    let inst = cloud
        .compute
        .run_instance(&builder_request("builder"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let f = InstanceFilter {
        ids: vec![inst.id.clone()],
        ..Default::default()
    };
    let found = cloud
        .compute
        .describe_instances(&f)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(found.state, InstanceState::Terminated);
    assert!(found.state_reason.unwrap().contains("Server.InternalError"));
}

#[tokio::test(start_paused = true)]
async fn invalid_instance_for_a_while_after_the_agent_shows_online() {
    let (account, cloud) = poc().await;
    let faults = Faults::from_yaml_str("invalid_instance_after_online: 20s\n").unwrap();
    account.set_faults(faults);
    let id = online_builder(&cloud).await;
    let early = cloud
        .commands
        .send_command(&command(&id, "base/one", &["true"]))
        .await;
    assert_eq!(early.unwrap_err().kind, ErrorKind::InvalidInstance);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(cloud
        .commands
        .send_command(&command(&id, "base/one", &["true"]))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn invocation_hidden_longer_and_step_that_hangs_times_out() {
    let (account, cloud) = poc().await;
    let faults = "invocation_hidden_for: 45s\nstep_hangs: [app/migrate]\n";
    account.set_faults(Faults::from_yaml_str(faults).unwrap());
    let id = online_builder(&cloud).await;
    let cmd = cloud
        .commands
        .send_command(&command(&id, "app/migrate", &["true"]))
        .await;
    let cmd = cmd.unwrap();
    tokio::time::sleep(Duration::from_secs(44)).await;
    let hidden = cloud.commands.get_command_invocation(&cmd, &id).await;
    assert_eq!(hidden.unwrap_err().kind, ErrorKind::NotFound);
    let inv = finished(&cloud, &cmd, &id).await;
    assert_eq!(inv.status, InvocationStatus::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn max_concurrency_runs_in_waves_and_max_errors_zero_stops_the_rest() {
    let (account, cloud) = poc().await;
    let ids = [
        online_builder(&cloud).await,
        online_builder(&cloud).await,
        online_builder(&cloud).await,
    ];
    let mut cmd = command(&ids[0], "fix/one", &["sleep 100"]);
    cmd.instance_ids = ids.to_vec();
    cmd.max_concurrency = Some("1".into());
    let sent = cloud.commands.send_command(&cmd).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let all = cloud
        .commands
        .list_command_invocations(&sent)
        .await
        .unwrap();
    let running = all
        .iter()
        .filter(|i| i.status == InvocationStatus::InProgress)
        .count();
    assert_eq!(running, 1, "one at a time");
    for id in &ids {
        assert_eq!(
            finished(&cloud, &sent, id).await.status,
            InvocationStatus::Success
        );
    }

    let faults = "steps:\n  - { step: fix/two, exit_code: 3 }\n";
    account.set_faults(Faults::from_yaml_str(faults).unwrap());
    let mut cmd = command(&ids[0], "fix/two", &["true"]);
    cmd.instance_ids = ids.to_vec();
    cmd.max_concurrency = Some("1".into());
    cmd.max_errors = Some("0".into());
    let sent = cloud.commands.send_command(&cmd).await.unwrap();
    let mut statuses = Vec::new();
    for id in &ids {
        let inv = finished(&cloud, &sent, id).await;
        statuses.push((inv.status, inv.status_details));
    }
    let failed = statuses
        .iter()
        .filter(|s| s.0 == InvocationStatus::Failed)
        .count();
    assert_eq!(failed, 1, "stopped after the first error: {statuses:?}");
    let terminated = statuses.iter().filter(|s| s.1 == "Terminated").count();
    assert_eq!(terminated, 2, "{statuses:?}");
}
