//! EC2 requests as the AWS docs want them: RunInstances for a builder, CreateImage and
//! CopyImage with their tag specifications, a launch template version that changes only
//! the image, launch permissions, and image deprecation.

use aws_sdk_ec2::operation::copy_image::CopyImageOutput;
use aws_sdk_ec2::operation::create_image::CreateImageOutput;
use aws_sdk_ec2::operation::create_launch_template_version::{
    CreateLaunchTemplateVersionInput, CreateLaunchTemplateVersionOutput,
};
use aws_sdk_ec2::operation::delete_launch_template_versions::{
    DeleteLaunchTemplateVersionsInput, DeleteLaunchTemplateVersionsOutput,
};
use aws_sdk_ec2::operation::enable_image_deprecation::EnableImageDeprecationOutput;
use aws_sdk_ec2::operation::modify_image_attribute::ModifyImageAttributeOutput;
use aws_sdk_ec2::operation::run_instances::{RunInstancesInput, RunInstancesOutput};
use aws_sdk_ec2::types as ec2;
use aws_sdk_ec2::Client;
use aws_smithy_mocks::mock;
use base64::Engine as _;

use super::{ec2_error, mocked, REGION};
use crate::aws::Ec2Compute;
use crate::ports::Compute;
use crate::types::*;
use crate::ErrorKind;

fn kiln_tags() -> Tags {
    [("kiln:run-id".to_string(), "run-1".to_string())].into()
}

/// The resource types of a request's tag specifications, each carrying kiln's tags.
fn tagged_kinds(specs: &[ec2::TagSpecification]) -> Vec<ec2::ResourceType> {
    for spec in specs {
        let tags: Vec<_> = spec.tags().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(tags, [(Some("kiln:run-id"), Some("run-1"))]);
    }
    specs
        .iter()
        .filter_map(|s| s.resource_type().cloned())
        .collect()
}

fn builder_request(r: &RunInstancesInput) -> bool {
    assert_eq!((r.min_count(), r.max_count()), (Some(1), Some(1)));
    let metadata = r.metadata_options().expect("metadata options");
    assert_eq!(
        metadata.http_tokens(),
        Some(&ec2::HttpTokensState::Required)
    );
    assert_eq!(
        r.instance_initiated_shutdown_behavior(),
        Some(&ec2::ShutdownBehavior::Terminate)
    );
    assert_eq!(
        r.iam_instance_profile().and_then(|p| p.name()),
        Some("kiln-builder")
    );
    let kinds = tagged_kinds(r.tag_specifications());
    assert_eq!(
        kinds,
        [ec2::ResourceType::Instance, ec2::ResourceType::Volume]
    );
    let root = &r.block_device_mappings()[0];
    let ebs = root.ebs().expect("ebs");
    assert_eq!(root.device_name(), Some("/dev/xvda"));
    assert_eq!((ebs.volume_size(), ebs.encrypted()), (Some(16), Some(true)));
    assert_eq!(ebs.delete_on_termination(), Some(true));
    let user_data = base64::engine::general_purpose::STANDARD
        .decode(r.user_data().expect("user data"))
        .expect("base64");
    assert_eq!(user_data, b"#!/bin/sh\necho kiln\n");
    true
}

#[tokio::test]
async fn a_builder_runs_with_imdsv2_shutdown_terminate_and_tagged_volumes() {
    let run = mock!(Client::run_instances)
        .match_requests(builder_request)
        .then_output(|| {
            let instance = ec2::Instance::builder()
                .instance_id("i-0abc")
                .image_id("ami-0src")
                .instance_type(ec2::InstanceType::T3Micro)
                .state(
                    ec2::InstanceState::builder()
                        .name(ec2::InstanceStateName::Pending)
                        .build(),
                )
                .build();
            RunInstancesOutput::builder().instances(instance).build()
        });
    let compute = Ec2Compute::new(mocked!(aws_sdk_ec2, run), REGION);
    let request = RunInstance {
        image_id: ImageId::new("ami-0src"),
        instance_type: "t3.micro".to_string(),
        subnet_id: Some(SubnetId::new("subnet-1")),
        security_group_ids: vec![SecurityGroupId::new("sg-1")],
        instance_profile: Some("kiln-builder".to_string()),
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
        tags: kiln_tags(),
    };

    let instance = compute.run_instance(&request).await.expect("run");

    assert_eq!(instance.id.as_str(), "i-0abc");
    assert_eq!(instance.state, InstanceState::Pending);
    assert_eq!(run.num_calls(), 1);
}

#[tokio::test]
async fn images_and_copies_tag_their_snapshots_too() {
    let create = mock!(Client::create_image)
        .match_requests(|r| {
            let kinds = tagged_kinds(r.tag_specifications());
            assert_eq!(
                kinds,
                [ec2::ResourceType::Image, ec2::ResourceType::Snapshot]
            );
            r.instance_id() == Some("i-0abc") && r.name() == Some("web-1")
        })
        .then_output(|| CreateImageOutput::builder().image_id("ami-0new").build());
    let copy = mock!(Client::copy_image)
        .match_requests(|r| {
            let kinds = tagged_kinds(r.tag_specifications());
            assert_eq!(
                kinds,
                [ec2::ResourceType::Image, ec2::ResourceType::Snapshot]
            );
            assert_eq!(r.encrypted(), Some(true));
            assert_eq!(r.kms_key_id(), Some("alias/kiln"));
            r.source_region() == Some("ap-northeast-1") && r.source_image_id() == Some("ami-0new")
        })
        .then_output(|| CopyImageOutput::builder().image_id("ami-0copy").build());
    let compute = Ec2Compute::new(mocked!(aws_sdk_ec2, create, copy), REGION);

    let create_request = CreateImage {
        instance_id: InstanceId::new("i-0abc"),
        name: "web-1".to_string(),
        description: "web".to_string(),
        tags: kiln_tags(),
    };
    let image = compute.create_image(&create_request).await.expect("create");
    let copy_request = CopyImage {
        source_region: "ap-northeast-1".to_string(),
        source_image_id: image.clone(),
        name: "web-1".to_string(),
        description: "web".to_string(),
        encrypted: true,
        kms_key_id: Some("alias/kiln".to_string()),
        tags: kiln_tags(),
    };
    let copied = compute.copy_image(&copy_request).await.expect("copy");

    assert_eq!((image.as_str(), copied.as_str()), ("ami-0new", "ami-0copy"));
}

fn only_the_image(r: &CreateLaunchTemplateVersionInput) -> bool {
    assert_eq!(r.launch_template_id(), Some("lt-0abc"));
    assert_eq!(r.source_version(), Some("3"));
    let data = r.launch_template_data().expect("data");
    let only_image = ec2::RequestLaunchTemplateData::builder()
        .image_id("ami-0new")
        .build();
    assert_eq!(
        data, &only_image,
        "everything else comes from the source version"
    );
    true
}

#[tokio::test]
async fn a_new_template_version_changes_only_the_image() {
    let create = mock!(Client::create_launch_template_version)
        .match_requests(only_the_image)
        .then_output(|| {
            let data = ec2::ResponseLaunchTemplateData::builder()
                .image_id("ami-0new")
                .instance_type(ec2::InstanceType::T3Micro)
                .build();
            let version = ec2::LaunchTemplateVersion::builder()
                .launch_template_id("lt-0abc")
                .launch_template_name("web")
                .version_number(4)
                .default_version(false)
                .launch_template_data(data)
                .build();
            CreateLaunchTemplateVersionOutput::builder()
                .launch_template_version(version)
                .build()
        });
    let compute = Ec2Compute::new(mocked!(aws_sdk_ec2, create), REGION);
    let request = NewTemplateVersion {
        template: TemplateRef::Id(LaunchTemplateId::new("lt-0abc")),
        source_version: 3,
        image_id: ImageId::new("ami-0new"),
        description: "kiln run-1".to_string(),
    };

    let version = compute
        .create_launch_template_version(&request)
        .await
        .expect("version");

    assert_eq!(version.version, 4);
    assert_eq!(version.data.instance_type.as_deref(), Some("t3.micro"));
}

fn versions_3_and_4(r: &DeleteLaunchTemplateVersionsInput) -> bool {
    r.launch_template_id() == Some("lt-0abc") && r.versions() == ["3", "4"]
}

#[tokio::test]
async fn a_version_aws_refuses_fails_the_deletion_with_its_kind() {
    let deleted = mock!(Client::delete_launch_template_versions)
        .match_requests(versions_3_and_4)
        .then_output(|| DeleteLaunchTemplateVersionsOutput::builder().build());
    let refused = mock!(Client::delete_launch_template_versions)
        .match_requests(versions_3_and_4)
        .then_output(|| {
            let error = ec2::ResponseError::builder()
                .code(ec2::LaunchTemplateErrorCode::LaunchTemplateVersionDoesNotExist)
                .message("no version 4")
                .build();
            let item = ec2::DeleteLaunchTemplateVersionsResponseErrorItem::builder()
                .launch_template_id("lt-0abc")
                .version_number(4)
                .response_error(error)
                .build();
            DeleteLaunchTemplateVersionsOutput::builder()
                .unsuccessfully_deleted_launch_template_versions(item)
                .build()
        });
    let template = TemplateRef::Id(LaunchTemplateId::new("lt-0abc"));

    Ec2Compute::new(mocked!(aws_sdk_ec2, deleted), REGION)
        .delete_launch_template_versions(&template, &[3, 4])
        .await
        .expect("both deleted");
    let err = Ec2Compute::new(mocked!(aws_sdk_ec2, refused), REGION)
        .delete_launch_template_versions(&template, &[3, 4])
        .await
        .expect_err("version 4 refused");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(err.resource.contains("version 4"), "{err}");
}

#[tokio::test]
async fn deprecation_and_launch_permissions_name_the_image() {
    let at = chrono::DateTime::from_timestamp(1_798_761_600, 0).expect("a time");
    let deprecate = mock!(Client::enable_image_deprecation)
        .match_requests(move |r| {
            r.image_id() == Some("ami-0new")
                && r.deprecate_at().map(|t| t.secs()) == Some(at.timestamp())
        })
        .then_output(|| {
            EnableImageDeprecationOutput::builder()
                .r#return(true)
                .build()
        });
    let share = mock!(Client::modify_image_attribute)
        .match_requests(|r| {
            let added = r.launch_permission().map(|p| p.add()).unwrap_or_default();
            let who: Vec<_> = added
                .iter()
                .map(|p| {
                    (
                        p.user_id(),
                        p.organization_arn(),
                        p.organizational_unit_arn(),
                    )
                })
                .collect();
            assert_eq!(
                who,
                [
                    (Some("111122223333"), None, None),
                    (
                        None,
                        Some("arn:aws:organizations::1:organization/o-1"),
                        None
                    ),
                ]
            );
            r.image_id() == Some("ami-0new")
        })
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let compute = Ec2Compute::new(mocked!(aws_sdk_ec2, deprecate, share), REGION);
    let image = ImageId::new("ami-0new");

    compute
        .enable_image_deprecation(&image, at)
        .await
        .expect("deprecate");
    let permissions = LaunchPermissions {
        accounts: vec!["111122223333".to_string()],
        organization_arns: vec!["arn:aws:organizations::1:organization/o-1".to_string()],
        organizational_unit_arns: vec![],
    };
    compute
        .add_launch_permissions(&image, &permissions)
        .await
        .expect("share");

    assert_eq!((deprecate.num_calls(), share.num_calls()), (1, 1));
}

#[tokio::test]
async fn ec2_error_codes_decide_the_kind() {
    let cases = [
        ("InvalidAMIID.NotFound", ErrorKind::NotFound),
        ("RequestLimitExceeded", ErrorKind::Throttled),
        ("UnauthorizedOperation", ErrorKind::AccessDenied),
        ("InvalidParameterValue", ErrorKind::Validation),
    ];
    for (code, kind) in cases {
        let deprecate = mock!(Client::enable_image_deprecation)
            .then_http_response(move || ec2_error(code, "recorded message"));
        let compute = Ec2Compute::new(mocked!(aws_sdk_ec2, deprecate), REGION);
        let image = ImageId::new("ami-0new");

        let err = compute
            .enable_image_deprecation(&image, chrono::Utc::now())
            .await
            .expect_err(code);

        assert_eq!((err.kind, err.code.as_str()), (kind, code));
        assert_eq!(err.message, "recorded message");
        assert_eq!(err.operation, "EnableImageDeprecation");
        assert_eq!(
            (err.resource.as_str(), err.region.as_str()),
            ("ami-0new", REGION)
        );
    }
}
