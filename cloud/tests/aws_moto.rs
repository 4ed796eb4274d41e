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
    let regions = account.regions().await.expect("DescribeRegions");
    assert!(
        regions.iter().any(|r| r == REGION) && regions.iter().any(|r| r == OTHER_REGION),
        "{regions:?}"
    );
    let mut sorted = regions.clone();
    sorted.sort();
    assert_eq!(regions, sorted, "regions come sorted");
    let drift = other.clock.now() - chrono::Utc::now();
    assert!(
        drift.num_seconds().abs() < 60,
        "the clock is the wall clock"
    );
}

#[tokio::test]
async fn the_sdk_endpoint_variable_reaches_the_emulator_too() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");

    // Other tests wait for the session, so none reads the environment meanwhile.
    std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
    let options = AwsOptions {
        region: Some(REGION.to_string()),
        ..AwsOptions::default()
    };
    let connected = AwsAccount::connect(options).await;
    std::env::remove_var("AWS_ENDPOINT_URL");

    let account = connected.expect("connect through AWS_ENDPOINT_URL");
    assert_eq!(account.account_id(), moto::ACCOUNT_ID);
}

#[tokio::test]
async fn without_a_region_connect_says_how_to_name_one() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let options = AwsOptions {
        endpoint_url: Some(moto.endpoint.clone()),
        ..AwsOptions::default()
    };

    let err = AwsAccount::connect(options)
        .await
        .expect_err("no region anywhere");

    assert_eq!(err.kind, ErrorKind::Validation);
    assert!(err.message.contains("--region"), "{err}");
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

/// Every snapshot of an image's block devices.
fn snapshots_of(image: &Image) -> Vec<SnapshotId> {
    image
        .block_devices
        .iter()
        .filter_map(|d| d.snapshot_id.clone())
        .collect()
}

async fn describe_image(cloud: &Cloud, id: &ImageId) -> Vec<Image> {
    try_describe_image(cloud, id)
        .await
        .expect("describe images")
}

async fn try_describe_image(cloud: &Cloud, id: &ImageId) -> CloudResult<Vec<Image>> {
    let filter = ImageFilter {
        ids: vec![id.clone()],
        ..ImageFilter::default()
    };
    cloud.compute.describe_images(&filter).await
}

/// DescribeImages names a missing id in an `InvalidAMIID.NotFound` error.
async fn assert_no_image(cloud: &Cloud, id: &ImageId) {
    match try_describe_image(cloud, id).await {
        Ok(found) => assert!(found.is_empty(), "{id} in {}: {found:?}", cloud.region),
        Err(err) => assert_eq!(err.kind, ErrorKind::NotFound, "{err}"),
    }
}

/// An image made from a fresh builder, tagged with the run.
async fn baked_image(moto: &Moto, cloud: &Cloud, run_id: &str) -> Image {
    let builder = builder_instance(moto, cloud, run_id).await;
    // moto: CreateImage fails (HTTP 500) on a snapshot TagSpecification, which kiln
    // always sends with tags; so the image is made untagged and tagged afterwards here.
    // The request kiln sends is asserted on recorded responses.
    let request = CreateImage {
        instance_id: builder.id.clone(),
        name: format!("web-{run_id}"),
        description: "web base layer".to_string(),
        tags: Tags::new(),
    };
    let image_id = cloud
        .compute
        .create_image(&request)
        .await
        .expect("create image");
    let image_tags = tags(&[(TAG_RUN_ID, run_id), (TAG_ROLE, "image")]);
    cloud
        .compute
        .create_tags(&[image_id.to_string()], &image_tags)
        .await
        .expect("tag the image");
    let mut images = describe_image(cloud, &image_id).await;
    assert_eq!(images.len(), 1);
    images.remove(0)
}

#[tokio::test]
async fn an_image_is_made_and_found_by_name_owner_and_tags() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;

    let image = baked_image(moto, &cloud, "run-3").await;

    assert_eq!(image.name, "web-run-3");
    assert_eq!(
        image.tags.get(TAG_RUN_ID).map(String::as_str),
        Some("run-3")
    );
    assert_eq!(image.owner_id, moto::ACCOUNT_ID);
    assert!(
        !snapshots_of(&image).is_empty(),
        "an image from an instance has snapshots"
    );
    let by_name = ImageFilter {
        owners: vec!["self".to_string()],
        name: Some("web-run-*".to_string()),
        tags: tags(&[(TAG_ROLE, "image")]),
        tag_keys: vec![TAG_RUN_ID.to_string()],
        ..ImageFilter::default()
    };
    let named = cloud
        .compute
        .describe_images(&by_name)
        .await
        .expect("by name");
    assert_eq!(named.iter().map(|i| &i.id).collect::<Vec<_>>(), [&image.id]);
    let other_role = ImageFilter {
        tags: tags(&[(TAG_ROLE, "test")]),
        ..by_name
    };
    let none = cloud
        .compute
        .describe_images(&other_role)
        .await
        .expect("by other tag");
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn an_image_is_copied_shared_and_retired() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (account, cloud) = home(moto).await;
    let image = baked_image(moto, &cloud, "run-4").await;

    let other = account.region(OTHER_REGION).await.expect("other region");
    let copy = CopyImage {
        source_region: REGION.to_string(),
        source_image_id: image.id.clone(),
        name: image.name.clone(),
        description: "web base layer".to_string(),
        encrypted: false,
        kms_key_id: None,
        tags: image.tags.clone(),
    };
    let copied = other.compute.copy_image(&copy).await.expect("copy image");
    assert_ne!(copied, image.id);
    let copies = describe_image(&other, &copied).await;
    assert_eq!(copies.len(), 1, "the copy is in {OTHER_REGION}");
    assert_eq!(copies[0].name, image.name);
    // moto: CopyImage ignores its TagSpecifications, so the copy's tags (the run id that
    // lets `kiln gc` find a killed run's copy) are asserted on recorded requests instead.
    assert_no_image(&cloud, &copied).await;
    let share = LaunchPermissions {
        accounts: vec!["111122223333".to_string()],
        ..LaunchPermissions::default()
    };
    other
        .compute
        .add_launch_permissions(&copied, &share)
        .await
        .expect("share");

    // Retire the original: deregister, then delete its snapshots.
    let snapshots = snapshots_of(&image);
    let listed = cloud
        .compute
        .describe_snapshots(&snapshots, &Tags::new())
        .await;
    assert_eq!(listed.expect("snapshots").len(), snapshots.len());
    cloud
        .compute
        .deregister_image(&image.id)
        .await
        .expect("deregister");
    assert_no_image(&cloud, &image.id).await;
    for snapshot in &snapshots {
        cloud
            .compute
            .delete_snapshot(snapshot)
            .await
            .expect("delete snapshot");
    }
    let left = cloud
        .compute
        .describe_snapshots(&[], &Tags::new())
        .await
        .expect("snapshots");
    assert!(left.iter().all(|s| !snapshots.contains(&s.id)), "{left:?}");
}

#[tokio::test]
async fn a_missing_image_is_not_found_with_aws_code() {
    let server = moto::session().await;
    let (_, cloud) = home(server.as_ref().expect("server")).await;
    let missing = ImageId::new("ami-0000000000000dead");

    let err = cloud
        .compute
        .deregister_image(&missing)
        .await
        .expect_err("no such image");

    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.operation, "DeregisterImage");
    assert_eq!(err.resource, missing.as_str());
    assert_eq!(err.region, REGION);
    assert_eq!(err.code, "InvalidAMIID.NotFound");
    assert!(!err.message.is_empty());
    let shown = err.to_string();
    assert!(
        shown.contains("InvalidAMIID.NotFound") && shown.contains(REGION),
        "{shown}"
    );
}

#[tokio::test]
async fn a_new_launch_template_version_changes_the_image() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;
    let base = al2023(&cloud).await;
    let template_id = moto
        .create_launch_template(REGION, "web", base.as_str())
        .await;
    let template = TemplateRef::Name("web".to_string());

    let described = cloud
        .compute
        .describe_launch_template(&template)
        .await
        .expect("template");
    assert_eq!(described.id.as_str(), template_id);
    assert_eq!(
        (described.default_version, described.latest_version),
        (1, 1)
    );

    let request = NewTemplateVersion {
        template: TemplateRef::Id(described.id.clone()),
        source_version: 1,
        image_id: ImageId::new("ami-0123456789abcdef0"),
        description: "kiln rollout run-4".to_string(),
    };
    let created = cloud
        .compute
        .create_launch_template_version(&request)
        .await
        .expect("v2");
    assert_eq!(created.version, 2);
    assert_eq!(created.data.image_id, Some(request.image_id.clone()));
    assert_eq!(created.description.as_deref(), Some("kiln rollout run-4"));

    let versions = cloud
        .compute
        .describe_launch_template_versions(&template, &[1, 2])
        .await;
    let versions = versions.expect("versions");
    let images: Vec<_> = versions
        .iter()
        .map(|v| (v.version, v.data.image_id.clone()))
        .collect();
    assert!(images.contains(&(1, Some(base.clone()))), "{images:?}");
    assert!(
        images.contains(&(2, Some(request.image_id.clone()))),
        "{images:?}"
    );
    let v1 = versions.iter().find(|v| v.version == 1).expect("v1");
    assert!(v1.is_default);
    assert_eq!(v1.data.instance_type.as_deref(), Some("t3.micro"));
    assert_eq!(v1.data.metadata_http_tokens.as_deref(), Some("required"));
    // moto: a new version ignores SourceVersion and keeps only the data sent, so the
    // instance type of version 1 is not asserted on version 2 (AWS copies it).
    // moto: DeleteLaunchTemplateVersions answers HTTP 500 (not implemented); the
    // adapter's request and its reading of refused versions are checked on recorded
    // responses instead (src/aws/tests/ec2.rs).

    let all = cloud
        .compute
        .describe_launch_templates()
        .await
        .expect("every template");
    assert_eq!(
        all.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["web"]
    );
    let missing = TemplateRef::Name("no-such-template".to_string());
    let err = cloud
        .compute
        .describe_launch_template(&missing)
        .await
        .expect_err("missing");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn a_security_group_without_ingress_is_created_and_deleted() {
    let server = moto::session().await;
    let (_, cloud) = home(server.as_ref().expect("server")).await;
    let vpc = default_subnet(&cloud).await.vpc_id;
    let group_tags = tags(&[(TAG_RUN_ID, "run-5"), (TAG_ROLE, "builder")]);

    let request = CreateSecurityGroup {
        name: "kiln-builder-run-5".to_string(),
        description: "kiln builder, no ingress".to_string(),
        vpc_id: vpc.clone(),
        tags: group_tags.clone(),
    };
    let id = cloud
        .compute
        .create_security_group(&request)
        .await
        .expect("create");
    let found = cloud
        .compute
        .describe_security_groups(&[], &group_tags)
        .await
        .expect("by tag");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].vpc_id, vpc);
    assert_eq!(found[0].ingress_rules, 0);
    assert_eq!(found[0].tags, group_tags);

    cloud
        .compute
        .delete_security_group(&id)
        .await
        .expect("delete");
    let err = cloud
        .compute
        .describe_security_groups(std::slice::from_ref(&id), &Tags::new())
        .await
        .expect_err("deleted");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn tags_reach_any_ec2_resource() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;
    let instance = builder_instance(moto, &cloud, "run-6").await;

    let extra = tags(&[("kiln:step", "hygiene")]);
    cloud
        .compute
        .create_tags(&[instance.id.to_string()], &extra)
        .await
        .expect("tag");

    let filter = InstanceFilter {
        tag_keys: vec!["kiln:step".to_string()],
        ..InstanceFilter::default()
    };
    let found = cloud
        .compute
        .describe_instances(&filter)
        .await
        .expect("by tag key");
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].tags.get("kiln:step").map(String::as_str),
        Some("hygiene")
    );
    assert_eq!(
        found[0].tags.get(TAG_RUN_ID).map(String::as_str),
        Some("run-6")
    );
}

fn health_check() -> HealthCheck {
    HealthCheck {
        path: "/health".to_string(),
        port: "traffic-port".to_string(),
        protocol: "HTTP".to_string(),
        interval: std::time::Duration::from_secs(10),
        timeout: std::time::Duration::from_secs(5),
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        matcher: "200".to_string(),
    }
}

async fn target_group(cloud: &Cloud, name: &str, vpc: &str) -> TargetGroup {
    let request = CreateTargetGroup {
        name: name.to_string(),
        protocol: "HTTP".to_string(),
        port: 80,
        vpc_id: vpc.to_string(),
        health_check: health_check(),
        deregistration_delay: std::time::Duration::from_secs(30),
        tags: tags(&[(TAG_MANAGED_BY, "web")]),
    };
    cloud
        .load_balancing
        .create_target_group(&request)
        .await
        .expect("target group")
}

/// The group every Auto Scaling test starts from: "web", two instances from version 1 of
/// template "web", behind target group "web-blue".
struct WebGroup {
    template: GroupTemplate,
    target_group: TargetGroup,
    subnet: Subnet,
}

async fn web_group(moto: &Moto, cloud: &Cloud) -> WebGroup {
    let subnet = default_subnet(cloud).await;
    let image = al2023(cloud).await;
    let template_id = moto
        .create_launch_template(REGION, "web", image.as_str())
        .await;
    let target_group = target_group(cloud, "web-blue", &subnet.vpc_id).await;
    let template = GroupTemplate {
        template_id: Some(LaunchTemplateId::new(template_id)),
        template_name: None,
        version: "1".to_string(),
    };
    let request = CreateGroup {
        name: "web".to_string(),
        template: template.clone(),
        min_size: 1,
        max_size: 4,
        desired_capacity: 2,
        subnet_ids: vec![subnet.id.clone()],
        target_group_arns: vec![target_group.arn.clone()],
        health_check_type: "ELB".to_string(),
        health_check_grace: std::time::Duration::from_secs(120),
        default_instance_warmup: Some(std::time::Duration::from_secs(90)),
        tags: tags(&[(TAG_MANAGED_BY, "web")]),
    };
    cloud
        .scaling
        .create_group(&request)
        .await
        .expect("create group");
    WebGroup {
        template,
        target_group,
        subnet,
    }
}

async fn the_web_group(cloud: &Cloud) -> Group {
    let mut groups = cloud
        .scaling
        .describe_groups(&["web".to_string()])
        .await
        .expect("web");
    assert_eq!(groups.len(), 1, "{groups:?}");
    groups.remove(0)
}

#[tokio::test]
async fn a_group_is_created_and_described() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;

    let web = web_group(moto, &cloud).await;

    let group = the_web_group(&cloud).await;
    assert_eq!(
        (group.min_size, group.max_size, group.desired_capacity),
        (1, 4, 2)
    );
    // AWS answers with both the id and the name of the template.
    let launched_from = group.launch_template.clone().expect("a template");
    assert_eq!(launched_from.template_id, web.template.template_id);
    assert_eq!(launched_from.template_name.as_deref(), Some("web"));
    assert_eq!(launched_from.version, "1");
    assert!(!group.mixed_instances);
    assert_eq!(
        group.target_group_arns,
        std::slice::from_ref(&web.target_group.arn)
    );
    assert_eq!(group.health_check_type, "ELB");
    assert_eq!(
        group.health_check_grace,
        std::time::Duration::from_secs(120)
    );
    assert_eq!(group.subnet_ids, std::slice::from_ref(&web.subnet.id));
    assert_eq!(
        group.tags.get(TAG_MANAGED_BY).map(String::as_str),
        Some("web")
    );
    // moto: the instances exist and are InService at once.
    assert_eq!(group.instances.len(), 2);
    assert!(
        group.instances.iter().all(|i| i.in_service()),
        "{:?}",
        group.instances
    );
    let every = cloud
        .scaling
        .describe_groups(&[])
        .await
        .expect("every group");
    assert_eq!(every.len(), 1);

    cloud
        .scaling
        .delete_group("web", true)
        .await
        .expect("delete");
    let left = cloud
        .scaling
        .describe_groups(&["web".to_string()])
        .await
        .expect("describe");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_group_is_updated_locked_and_suspended() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;
    let web = web_group(moto, &cloud).await;
    let version = NewTemplateVersion {
        template: TemplateRef::Name("web".to_string()),
        source_version: 1,
        image_id: ImageId::new("ami-0123456789abcdef0"),
        description: "run-7".to_string(),
    };
    cloud
        .compute
        .create_launch_template_version(&version)
        .await
        .expect("version 2");

    let update = UpdateGroup {
        name: "web".to_string(),
        template: Some(GroupTemplate {
            version: "2".to_string(),
            ..web.template.clone()
        }),
        min_size: Some(2),
        max_size: Some(6),
        ..UpdateGroup::default()
    };
    cloud.scaling.update_group(&update).await.expect("update");
    cloud
        .scaling
        .set_desired_capacity("web", 3)
        .await
        .expect("desired");
    let lock = tags(&[("kiln:lock", "run-7")]);
    cloud
        .scaling
        .put_group_tags("web", &lock)
        .await
        .expect("lock tag");
    let launch = vec!["Launch".to_string()];
    cloud
        .scaling
        .suspend_processes("web", &launch)
        .await
        .expect("suspend");

    let group = the_web_group(&cloud).await;
    assert_eq!(
        (group.min_size, group.max_size, group.desired_capacity),
        (2, 6, 3)
    );
    assert_eq!(
        group.launch_template.map(|t| t.version),
        Some("2".to_string())
    );
    assert_eq!(
        group.tags.get("kiln:lock").map(String::as_str),
        Some("run-7")
    );
    assert_eq!(group.suspended_processes, launch);

    cloud
        .scaling
        .resume_processes("web", &launch)
        .await
        .expect("resume");
    cloud
        .scaling
        .delete_group_tags("web", &["kiln:lock".to_string()])
        .await
        .expect("unlock");
    let group = the_web_group(&cloud).await;
    assert!(group.suspended_processes.is_empty());
    assert!(!group.tags.contains_key("kiln:lock"));
}

#[tokio::test]
async fn group_instances_are_protected_put_in_standby_and_target_groups_moved() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;
    let web = web_group(moto, &cloud).await;
    let instance = the_web_group(&cloud).await.instances[0].id.clone();
    let one = std::slice::from_ref(&instance);

    cloud
        .scaling
        .set_instance_protection("web", one, true)
        .await
        .expect("protect");
    cloud
        .scaling
        .enter_standby("web", one, false)
        .await
        .expect("standby");
    let group = the_web_group(&cloud).await;
    let member = group
        .instances
        .iter()
        .find(|i| i.id == instance)
        .expect("member");
    assert!(member.protected_from_scale_in);
    assert_eq!(member.lifecycle_state, "Standby");

    cloud
        .scaling
        .exit_standby("web", one)
        .await
        .expect("exit standby");
    let group = the_web_group(&cloud).await;
    let member = group
        .instances
        .iter()
        .find(|i| i.id == instance)
        .expect("member");
    assert_ne!(member.lifecycle_state, "Standby");

    let arns = std::slice::from_ref(&web.target_group.arn);
    cloud
        .scaling
        .detach_target_groups("web", arns)
        .await
        .expect("detach");
    assert!(the_web_group(&cloud).await.target_group_arns.is_empty());
    cloud
        .scaling
        .attach_target_groups("web", arns)
        .await
        .expect("attach");
    assert_eq!(the_web_group(&cloud).await.target_group_arns, arns);
}

#[tokio::test]
async fn target_groups_register_targets_and_report_health() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;
    let vpc = default_subnet(&cloud).await.vpc_id;
    let instance = builder_instance(moto, &cloud, "run-8").await;

    let created = target_group(&cloud, "web-green", &vpc).await;
    assert_eq!(
        created.deregistration_delay,
        std::time::Duration::from_secs(30)
    );
    let found = cloud
        .load_balancing
        .describe_target_groups(&["web-green".to_string()])
        .await
        .expect("describe");
    assert_eq!(found.len(), 1);
    let tg = &found[0];
    assert_eq!(tg.arn, created.arn);
    assert_eq!(tg.health_check, health_check());
    assert_eq!(tg.deregistration_delay, std::time::Duration::from_secs(30));
    assert!(!tg.stickiness_enabled);

    let delay = std::time::Duration::from_secs(45);
    cloud
        .load_balancing
        .set_deregistration_delay(&tg.arn, delay)
        .await
        .expect("delay");
    let ids = std::slice::from_ref(&instance.id);
    cloud
        .load_balancing
        .register_targets(&tg.arn, ids)
        .await
        .expect("register");
    let health = cloud
        .load_balancing
        .describe_target_health(&tg.arn)
        .await
        .expect("health");
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].target_id, instance.id.as_str());
    // moto: a registered target is healthy at once; AWS starts at `initial`.
    assert_eq!(health[0].state, TargetState::Healthy);

    cloud
        .load_balancing
        .deregister_targets(&tg.arn, ids)
        .await
        .expect("deregister");
    let health = cloud
        .load_balancing
        .describe_target_health(&tg.arn)
        .await
        .expect("health");
    assert!(
        health.iter().all(|h| h.target_id != instance.id.as_str()),
        "{health:?}"
    );
    let all = cloud
        .load_balancing
        .describe_target_groups(&[])
        .await
        .expect("all");
    assert_eq!(all[0].deregistration_delay, delay);
    cloud
        .load_balancing
        .delete_target_group(&tg.arn)
        .await
        .expect("delete");
    let err = cloud
        .load_balancing
        .describe_target_groups(&["web-green".to_string()])
        .await
        .expect_err("deleted");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn the_listener_switches_between_two_weighted_target_groups() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;
    let subnets = cloud
        .compute
        .describe_subnets(&[], &Tags::new())
        .await
        .expect("subnets");
    let vpc = subnets[0].vpc_id.clone();
    let subnet_ids: Vec<String> = subnets.iter().take(2).map(|s| s.id.to_string()).collect();
    let blue = target_group(&cloud, "web-blue", &vpc).await;
    let green = target_group(&cloud, "web-green", &vpc).await;
    let lb_arn = moto
        .create_load_balancer(REGION, "poc-poc-alb", &subnet_ids)
        .await;
    let listener_arn = moto
        .create_listener(REGION, &lb_arn, blue.arn.as_str())
        .await;

    let lbs = cloud
        .load_balancing
        .describe_load_balancers(&[])
        .await
        .expect("lbs");
    assert_eq!(
        lbs.iter().map(|lb| lb.name.as_str()).collect::<Vec<_>>(),
        ["poc-poc-alb"]
    );
    let lb = Arn::new(lb_arn);
    let listeners = cloud
        .load_balancing
        .describe_listeners(&lb)
        .await
        .expect("listeners");
    assert_eq!(listeners.len(), 1);
    let listener = &listeners[0];
    assert_eq!(listener.arn.as_str(), listener_arn);
    assert_eq!((listener.port, listener.protocol.as_str()), (80, "HTTP"));
    let first = listener.default_forward.as_ref().expect("forward");
    assert_eq!(first.target_groups.len(), 1);
    assert_eq!(first.target_groups[0].target_group_arn, blue.arn);

    let weights = |blue_weight: i32, green_weight: i32| Forward {
        target_groups: vec![
            WeightedTarget {
                target_group_arn: blue.arn.clone(),
                weight: blue_weight,
            },
            WeightedTarget {
                target_group_arn: green.arn.clone(),
                weight: green_weight,
            },
        ],
        stickiness: None,
    };
    for (b, g) in [(90, 10), (0, 100)] {
        cloud
            .load_balancing
            .modify_listener_forward(&listener.arn, &weights(b, g))
            .await
            .expect("switch");
        let now = cloud
            .load_balancing
            .describe_listeners(&lb)
            .await
            .expect("listeners");
        let forward = now[0].default_forward.clone().expect("forward");
        assert_eq!(forward.target_groups, weights(b, g).target_groups);
    }
}

#[tokio::test]
async fn a_tester_rule_routes_by_source_address() {
    let server = moto::session().await;
    let moto = server.as_ref().expect("server");
    let (_, cloud) = home(moto).await;
    let subnets = cloud
        .compute
        .describe_subnets(&[], &Tags::new())
        .await
        .expect("subnets");
    let subnet_ids: Vec<String> = subnets.iter().take(2).map(|s| s.id.to_string()).collect();
    let blue = target_group(&cloud, "web-blue", &subnets[0].vpc_id).await;
    let green = target_group(&cloud, "web-green", &subnets[0].vpc_id).await;
    let lb_arn = moto
        .create_load_balancer(REGION, "poc-poc-alb", &subnet_ids)
        .await;
    let listener = Arn::new(
        moto.create_listener(REGION, &lb_arn, blue.arn.as_str())
            .await,
    );

    let request = CreateRule {
        listener_arn: listener.clone(),
        priority: 10,
        conditions: vec![RuleCondition::SourceIp(vec!["203.0.113.0/24".to_string()])],
        forward: Forward {
            target_groups: vec![WeightedTarget {
                target_group_arn: green.arn.clone(),
                weight: 1,
            }],
            stickiness: None,
        },
        tags: tags(&[(TAG_ROLE, "testers")]),
    };
    let created = cloud
        .load_balancing
        .create_rule(&request)
        .await
        .expect("rule");
    assert_eq!(created.priority, "10");
    assert_eq!(created.conditions, request.conditions);

    let rules = cloud
        .load_balancing
        .describe_rules(&listener)
        .await
        .expect("rules");
    let tester = rules
        .iter()
        .find(|r| r.arn == created.arn)
        .expect("the tester rule");
    assert_eq!(tester.conditions, request.conditions);
    assert_eq!(tester.tags, request.tags);
    let forward = tester.forward.as_ref().expect("forward");
    assert_eq!(forward.target_groups[0].target_group_arn, green.arn);
    assert!(rules.iter().any(|r| r.priority == "default"), "{rules:?}");

    cloud
        .load_balancing
        .delete_rule(&created.arn)
        .await
        .expect("delete rule");
    let rules = cloud
        .load_balancing
        .describe_rules(&listener)
        .await
        .expect("rules");
    assert!(rules.iter().all(|r| r.arn != created.arn));
}
