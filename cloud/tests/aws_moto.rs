//! The AWS adapter against moto, an AWS API emulator on loopback: every port operation
//! that moto implements, through the public API only (`AwsAccount` and the ports).
//!
//! moto 5.2 differs from AWS in ways these tests must not mistake for the product's
//! behaviour; each workaround is named where it stands ("moto:").

#![cfg(feature = "aws")]

mod support;

use kiln_cloud::aws::{AwsAccount, AwsOptions};
use kiln_cloud::*;
use support::moto::{self, Moto};

const REGION: &str = "ap-northeast-1";
const OTHER_REGION: &str = "ap-northeast-3";
/// The public parameter that names the latest Amazon Linux 2023 AMI.
const AL2023: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

async fn connect(moto: &Moto) -> AwsAccount {
    let options = AwsOptions {
        region: Some(REGION.to_string()),
        profile: None,
        endpoint_url: Some(moto.endpoint.clone()),
    };
    AwsAccount::connect(options).await.expect("connect to moto")
}

async fn home(moto: &Moto) -> (AwsAccount, Cloud) {
    let account = connect(moto).await;
    let cloud = account.region(REGION).await.expect("home region");
    (account, cloud)
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The AL2023 image id from the public parameter.
async fn al2023(cloud: &Cloud) -> ImageId {
    let parameter = cloud
        .parameters
        .get_parameter(AL2023, false)
        .await
        .expect("get the AL2023 parameter")
        .expect("moto carries the public AMI parameters");
    ImageId::new(parameter.value)
}

async fn default_subnet(cloud: &Cloud) -> Subnet {
    let subnets = cloud
        .compute
        .describe_subnets(&[], &Tags::new())
        .await
        .expect("subnets");
    subnets
        .into_iter()
        .next()
        .expect("moto has a default VPC with subnets")
}

/// The instance profile builders run with.
const BUILDER_PROFILE: &str = "kiln-builder";

async fn builder_instance(moto: &Moto, cloud: &Cloud, run_id: &str) -> Instance {
    // moto: RunInstances checks that the instance profile exists, as AWS does.
    moto.create_instance_profile(BUILDER_PROFILE).await;
    let subnet = default_subnet(cloud).await;
    let request = RunInstance {
        image_id: al2023(cloud).await,
        instance_type: "t3.micro".to_string(),
        subnet_id: Some(subnet.id.clone()),
        security_group_ids: vec![],
        instance_profile: Some(BUILDER_PROFILE.to_string()),
        imdsv2_required: true,
        terminate_on_shutdown: true,
        root_volume: Some(RootVolume {
            device_name: "/dev/xvda".to_string(),
            size_gib: 16,
            volume_type: "gp3".to_string(),
            encrypted: true,
            kms_key_id: None,
        }),
        user_data: Some("#!/bin/sh\necho kiln\n".to_string()),
        tags: tags(&[(TAG_RUN_ID, run_id), (TAG_ROLE, "builder")]),
    };
    cloud
        .compute
        .run_instance(&request)
        .await
        .expect("run the builder")
}

#[tokio::test]
async fn connect_resolves_the_account_and_the_home_region() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let account = connect(moto).await;

    assert_eq!(account.account_id(), moto::ACCOUNT_ID);
    assert_eq!(account.home_region(), REGION);
    assert!(!account.is_simulated());
    let other = account.region(OTHER_REGION).await.expect("another region");
    assert_eq!(other.region, OTHER_REGION);
    let drift = other.clock.now() - chrono::Utc::now();
    assert!(
        drift.num_seconds().abs() < 60,
        "the clock is the wall clock"
    );
}

#[tokio::test]
async fn the_al2023_public_parameter_resolves_to_an_image() {
    let server = moto::session().await;
    let (_, cloud) = home(server.as_ref().expect("server")).await;

    let image = al2023(&cloud).await;

    assert!(image.as_str().starts_with("ami-"), "{image}");
    let found = cloud
        .compute
        .describe_images(&ImageFilter {
            ids: vec![image.clone()],
            ..ImageFilter::default()
        })
        .await
        .expect("describe the image");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, image);
    assert_eq!(found[0].state, ImageState::Available);
}

#[tokio::test]
async fn a_builder_instance_runs_with_its_tags() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;

    let launched = builder_instance(moto, &cloud, "run-1").await;

    assert!(launched.id.as_str().starts_with("i-"));
    assert_eq!(launched.instance_type, "t3.micro");
    let filter = InstanceFilter {
        tags: tags(&[(TAG_RUN_ID, "run-1")]),
        exclude_terminated: true,
        ..InstanceFilter::default()
    };
    let found = cloud
        .compute
        .describe_instances(&filter)
        .await
        .expect("describe");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, launched.id);
    assert_eq!(
        found[0].tags.get(TAG_ROLE).map(String::as_str),
        Some("builder")
    );
    // moto: instances are running at once; AWS shows `pending` first.
    assert_eq!(found[0].state, InstanceState::Running);

    cloud
        .compute
        .terminate_instances(std::slice::from_ref(&launched.id))
        .await
        .expect("terminate");
    let live = cloud
        .compute
        .describe_instances(&filter)
        .await
        .expect("describe");
    assert!(
        live.is_empty(),
        "terminated instances are left out: {live:?}"
    );
}

#[tokio::test]
async fn a_command_is_sent_and_its_invocation_read() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;
    let instance = builder_instance(moto, &cloud, "run-2").await;

    let request = SendCommand {
        instance_ids: vec![instance.id.clone()],
        document: "AWS-RunShellScript".to_string(),
        commands: vec!["echo hello".to_string()],
        execution_timeout: std::time::Duration::from_secs(600),
        delivery_timeout: std::time::Duration::from_secs(300),
        comment: "kiln step hello".to_string(),
        max_concurrency: Some("1".to_string()),
        max_errors: Some("0".to_string()),
        output_s3: None,
    };
    let command = cloud.commands.send_command(&request).await.expect("send");
    let invocation = cloud
        .commands
        .get_command_invocation(&command, &instance.id)
        .await
        .expect("invocation");

    assert_eq!(invocation.command_id, command);
    assert_eq!(invocation.instance_id, instance.id);
    // moto: Run Command succeeds at once with empty output, whatever the script.
    assert_eq!(invocation.status, InvocationStatus::Success);
}

#[tokio::test]
async fn more_than_fifty_instances_per_command_are_refused_before_aws() {
    let server = moto::session().await;
    let (_, cloud) = home(server.as_ref().expect("server")).await;
    let request = SendCommand {
        instance_ids: (0..51)
            .map(|i| InstanceId::new(format!("i-{i:017x}")))
            .collect(),
        document: "AWS-RunShellScript".to_string(),
        commands: vec!["true".to_string()],
        execution_timeout: std::time::Duration::from_secs(60),
        delivery_timeout: std::time::Duration::from_secs(60),
        comment: String::new(),
        max_concurrency: None,
        max_errors: None,
        output_s3: None,
    };

    let err = cloud
        .commands
        .send_command(&request)
        .await
        .expect_err("51 ids");

    assert_eq!(err.kind, ErrorKind::Validation);
    assert_eq!(err.operation, "SendCommand");
    assert_eq!(err.region, REGION);
    assert!(err.message.contains("at most 50"), "{err}");
}

#[tokio::test]
async fn a_parameter_store_channel_keeps_its_history() {
    let server = moto::session().await;
    let (_, cloud) = home(server.as_ref().expect("server")).await;
    let name = "/kiln/web/stable";
    let first = al2023(&cloud).await;

    assert_eq!(
        cloud
            .parameters
            .get_parameter(name, false)
            .await
            .expect("get"),
        None
    );
    let put = |value: &str, overwrite: bool| PutParameter {
        name: name.to_string(),
        value: value.to_string(),
        kind: ParameterType::String,
        description: Some(format!("web image {value}")),
        overwrite,
        data_type: Some("aws:ec2:image".to_string()),
    };
    let v1 = cloud
        .parameters
        .put_parameter(&put(first.as_str(), false))
        .await
        .expect("v1");
    let v2 = cloud
        .parameters
        .put_parameter(&put("ami-0123456789abcdef0", true))
        .await
        .expect("v2");

    assert_eq!((v1, v2), (1, 2));
    let current = cloud
        .parameters
        .get_parameter(name, false)
        .await
        .expect("get")
        .expect("set");
    assert_eq!(current.value, "ami-0123456789abcdef0");
    assert_eq!(current.version, 2);
    let history = cloud
        .parameters
        .get_parameter_history(name, false)
        .await
        .expect("history");
    let values: Vec<_> = history
        .iter()
        .map(|p| (p.version, p.value.as_str()))
        .collect();
    assert_eq!(values, [(1, first.as_str()), (2, "ami-0123456789abcdef0")]);
    let listed = cloud
        .parameters
        .get_parameters_by_path("/kiln/web", false)
        .await
        .expect("path");
    assert_eq!(
        listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        [name]
    );

    let refused = cloud
        .parameters
        .put_parameter(&put("ami-1", false))
        .await
        .expect_err("exists");
    assert_eq!(refused.kind, ErrorKind::Conflict, "{refused}");
    cloud
        .parameters
        .delete_parameter(name)
        .await
        .expect("delete");
    assert_eq!(
        cloud
            .parameters
            .get_parameter(name, false)
            .await
            .expect("get"),
        None
    );
}
