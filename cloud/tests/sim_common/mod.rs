//! Helpers shared by the simulated account's tests: the POC seed, waiting on virtual
//! time, a builder instance.

#![allow(dead_code)]

use std::time::Duration;

use kiln_cloud::sim::SimAccount;
use kiln_cloud::*;

pub const SEED: &str = include_str!("../../../examples/poc/account.yaml");
pub const REGION: &str = "ap-northeast-1";
pub const AL2023: &str = "ami-0a1e2023aaaa00001";
pub const SUBNET: &str = "subnet-0poc0000000000a01";
pub const VPC: &str = "vpc-0poc00000000000001";
pub const GROUP: &str = "poc-web-asg";

pub async fn poc() -> (SimAccount, Cloud) {
    let account = SimAccount::from_seed_str(SEED).expect("the POC seed loads");
    let cloud = account.region(REGION).await.expect("home region");
    (account, cloud)
}

/// Sleeps on virtual time until `check` gives `Some`, or panics after `limit`.
pub async fn until<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub fn builder_request(role: &str) -> RunInstance {
    RunInstance {
        image_id: ImageId::new(AL2023),
        instance_type: "t3.small".into(),
        subnet_id: Some(SubnetId::new(SUBNET)),
        security_group_ids: vec![],
        instance_profile: Some("kiln-builder".into()),
        imdsv2_required: true,
        terminate_on_shutdown: true,
        root_volume: None,
        user_data: None,
        tags: [(TAG_ROLE.to_string(), role.to_string())].into(),
    }
}

/// Launches a builder and waits until its agent is online.
pub async fn online_builder(cloud: &Cloud) -> InstanceId {
    let inst = cloud
        .compute
        .run_instance(&builder_request("builder"))
        .await
        .unwrap();
    let id = inst.id.clone();
    until(Duration::from_secs(600), || async {
        let info = cloud
            .commands
            .describe_instance_information(std::slice::from_ref(&id))
            .await
            .unwrap();
        info.iter()
            .any(|i| i.ping_status == PingStatus::Online)
            .then_some(())
    })
    .await;
    id
}

pub fn command(instance: &InstanceId, step: &str, lines: &[&str]) -> SendCommand {
    SendCommand {
        instance_ids: vec![instance.clone()],
        document: "AWS-RunShellScript".into(),
        commands: lines.iter().map(|l| l.to_string()).collect(),
        execution_timeout: Duration::from_secs(600),
        delivery_timeout: Duration::from_secs(600),
        comment: format!("kiln:{step} build b-1"),
        max_concurrency: None,
        max_errors: None,
        output_s3: None,
    }
}

/// Polls an invocation until it is terminal (not-found counts as pending).
pub async fn finished(cloud: &Cloud, cmd: &CommandId, instance: &InstanceId) -> Invocation {
    until(Duration::from_secs(3600), || async {
        match cloud.commands.get_command_invocation(cmd, instance).await {
            Ok(inv) if inv.status.is_terminal() => Some(inv),
            Ok(_) => None,
            Err(e) if e.is(ErrorKind::NotFound) => None,
            Err(e) => panic!("unexpected error {e}"),
        }
    })
    .await
}
