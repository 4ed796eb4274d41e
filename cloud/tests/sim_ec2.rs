//! The simulated account's images, snapshots, security groups and launch templates.

mod sim_common;

use std::time::Duration;

use kiln_cloud::sim::Faults;
use kiln_cloud::*;
use sim_common::*;

async fn image_of_builder(cloud: &Cloud, name: &str) -> (InstanceId, ImageId) {
    let id = online_builder(cloud).await;
    let tags: Tags = [("kiln:build-id".to_string(), "b-1".to_string())].into();
    let req = CreateImage {
        instance_id: id.clone(),
        name: name.into(),
        description: "test".into(),
        tags,
    };
    (id, cloud.compute.create_image(&req).await.unwrap())
}

async fn describe(cloud: &Cloud, id: &ImageId) -> Image {
    let f = ImageFilter {
        ids: vec![id.clone()],
        ..Default::default()
    };
    cloud.compute.describe_images(&f).await.unwrap().remove(0)
}

#[tokio::test(start_paused = true)]
async fn image_goes_pending_to_available_with_tagged_snapshots() {
    let (_account, cloud) = poc().await;
    let (_, image) = image_of_builder(&cloud, "poc-web-2026-01-05").await;
    let pending = describe(&cloud, &image).await;
    assert_eq!(pending.state, ImageState::Pending);
    let dup = CreateImage {
        instance_id: online_builder(&cloud).await,
        name: "poc-web-2026-01-05".into(),
        description: String::new(),
        tags: Tags::new(),
    };
    let err = cloud.compute.create_image(&dup).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    tokio::time::sleep(Duration::from_secs(170)).await;
    assert_eq!(
        describe(&cloud, &image).await.state,
        ImageState::Pending,
        "takes minutes"
    );
    let ready = until(Duration::from_secs(900), || async {
        let i = describe(&cloud, &image).await;
        (i.state == ImageState::Available).then_some(i)
    })
    .await;
    let snap = ready.block_devices[0].snapshot_id.clone().unwrap();
    let snaps = cloud
        .compute
        .describe_snapshots(&[snap], &Tags::new())
        .await
        .unwrap();
    assert_eq!(
        snaps[0].tags.get("kiln:build-id").map(String::as_str),
        Some("b-1")
    );
    assert_eq!(snaps[0].state, "completed");
}

#[tokio::test(start_paused = true)]
async fn describe_filters_by_owner_name_and_tags() {
    let (_account, cloud) = poc().await;
    let (_, image) = image_of_builder(&cloud, "poc-web-2026-01-05").await;
    let f = |owners: &[&str], name: Option<&str>| ImageFilter {
        owners: owners.iter().map(|s| s.to_string()).collect(),
        name: name.map(str::to_string),
        ..Default::default()
    };
    let amazon = cloud
        .compute
        .describe_images(&f(&["amazon"], Some("al2023-ami-*")))
        .await
        .unwrap();
    assert_eq!(
        amazon.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [AL2023]
    );
    let mine = cloud
        .compute
        .describe_images(&f(&["self"], Some("poc-web-2026-*")))
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|i| &i.id).collect::<Vec<_>>(), [&image]);
    let all_mine = cloud
        .compute
        .describe_images(&f(&["self"], None))
        .await
        .unwrap();
    assert_eq!(all_mine.len(), 3, "two seeded images and the new one");
    let by_key = ImageFilter {
        tag_keys: vec!["kiln:build-id".into()],
        ..Default::default()
    };
    assert_eq!(
        cloud.compute.describe_images(&by_key).await.unwrap().len(),
        1
    );
    let missing = ImageFilter {
        ids: vec![ImageId::new("ami-0000000000000dead")],
        ..Default::default()
    };
    let err = cloud.compute.describe_images(&missing).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn deregister_keeps_snapshots_and_snapshots_in_use_are_refused() {
    let (_account, cloud) = poc().await;
    let (_, image) = image_of_builder(&cloud, "poc-web-x").await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    let snap = describe(&cloud, &image).await.block_devices[0]
        .snapshot_id
        .clone()
        .unwrap();
    let err = cloud.compute.delete_snapshot(&snap).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(err.code, "InvalidSnapshot.InUse");
    cloud.compute.deregister_image(&image).await.unwrap();
    let still = cloud
        .compute
        .describe_snapshots(std::slice::from_ref(&snap), &Tags::new())
        .await
        .unwrap();
    assert_eq!(
        still.len(),
        1,
        "AWS leaves the snapshots of a deregistered image"
    );
    cloud.compute.delete_snapshot(&snap).await.unwrap();
    let mine = ImageFilter {
        owners: vec!["self".into()],
        name: Some("poc-web-x".into()),
        ..Default::default()
    };
    assert!(cloud
        .compute
        .describe_images(&mine)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn run_instance_validates_and_records_launch_settings() {
    let (_account, cloud) = poc().await;
    let mut bad = builder_request("builder");
    bad.image_id = ImageId::new("ami-0000000000000dead");
    assert_eq!(
        cloud.compute.run_instance(&bad).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    let mut bad = builder_request("builder");
    bad.subnet_id = Some(SubnetId::new("subnet-nope"));
    assert_eq!(
        cloud.compute.run_instance(&bad).await.unwrap_err().code,
        "InvalidSubnetID.NotFound"
    );
    let mut bad = builder_request("builder");
    bad.instance_profile = Some("no-such-profile".into());
    assert_eq!(
        cloud.compute.run_instance(&bad).await.unwrap_err().kind,
        ErrorKind::Validation
    );
    let mut bad = builder_request("builder");
    let root = |size_gib| kiln_cloud::RootVolume {
        device_name: "/dev/xvda".into(),
        size_gib,
        volume_type: "gp3".into(),
        encrypted: true,
        kms_key_id: None,
    };
    bad.root_volume = Some(root(2));
    let refused = cloud.compute.run_instance(&bad).await.unwrap_err();
    assert_eq!(
        (refused.kind, refused.code.as_str()),
        (ErrorKind::Validation, "InvalidBlockDeviceMapping"),
        "a root volume below the image's 8 GiB snapshot: {refused}"
    );
    bad.root_volume = Some(root(8));
    cloud.compute.run_instance(&bad).await.unwrap();
    let mut bad = builder_request("builder");
    bad.instance_type = "t3.gigantic".into();
    let refused = cloud.compute.run_instance(&bad).await.unwrap_err();
    assert_eq!(refused.code, "InvalidParameterValue", "{refused}");
    let (account, cloud) = poc().await;
    let inst = cloud
        .compute
        .run_instance(&builder_request("builder"))
        .await
        .unwrap();
    let state = account.snapshot_json();
    let recorded = &state["regions"][REGION]["instances"][inst.id.as_str()];
    assert_eq!(recorded["imdsv2_required"], true);
    assert_eq!(recorded["terminate_on_shutdown"], true);
    assert_eq!(recorded["instance_profile"], "kiln-builder");
}

#[tokio::test(start_paused = true)]
async fn security_group_in_use_cannot_be_deleted_until_terminated() {
    let (_account, cloud) = poc().await;
    let sg = CreateSecurityGroup {
        name: "kiln-builder-b-1".into(),
        description: "no ingress".into(),
        vpc_id: VPC.into(),
        tags: Tags::new(),
    };
    let sg = cloud.compute.create_security_group(&sg).await.unwrap();
    let mut req = builder_request("builder");
    req.security_group_ids = vec![sg.clone()];
    let inst = cloud.compute.run_instance(&req).await.unwrap();
    let err = cloud.compute.delete_security_group(&sg).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::Conflict, "DependencyViolation")
    );
    cloud
        .compute
        .terminate_instances(std::slice::from_ref(&inst.id))
        .await
        .unwrap();
    let err = cloud.compute.delete_security_group(&sg).await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Conflict,
        "a shutting-down instance still holds it"
    );
    until(Duration::from_secs(300), || async {
        cloud.compute.delete_security_group(&sg).await.ok()
    })
    .await;
    let f = InstanceFilter {
        ids: vec![inst.id.clone()],
        ..Default::default()
    };
    let listed = cloud.compute.describe_instances(&f).await.unwrap();
    assert_eq!(
        listed[0].state,
        InstanceState::Terminated,
        "terminated instances stay listed"
    );
}

#[tokio::test(start_paused = true)]
async fn new_template_version_copies_source_and_changes_only_the_image() {
    let (_account, cloud) = poc().await;
    let t = TemplateRef::Name("poc-web-lt".into());
    let before = cloud
        .compute
        .describe_launch_template_versions(&t, &[1])
        .await
        .unwrap();
    let req = NewTemplateVersion {
        template: t.clone(),
        source_version: 1,
        image_id: ImageId::new(AL2023),
        description: "kiln".into(),
    };
    let v = cloud
        .compute
        .create_launch_template_version(&req)
        .await
        .unwrap();
    assert_eq!(v.version, 3);
    assert!(!v.is_default);
    let mut expected = before[0].data.clone();
    expected.image_id = Some(ImageId::new(AL2023));
    assert_eq!(v.data, expected);
    let lt = cloud.compute.describe_launch_template(&t).await.unwrap();
    assert_eq!((lt.default_version, lt.latest_version), (2, 3));
    let missing = NewTemplateVersion {
        source_version: 9,
        ..req
    };
    let err = cloud
        .compute
        .create_launch_template_version(&missing)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn copy_image_takes_time_and_a_fault_fails_it() {
    let (account, _) = poc().await;
    let faults = "copy_fails:\n  - region: ap-northeast-3\n";
    account.set_faults(Faults::from_yaml_str(faults).unwrap());
    let home = account.region(REGION).await.unwrap();
    let (_, image) = image_of_builder(&home, "poc-web-copy").await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    let copy = |_region: &str| CopyImage {
        source_region: REGION.into(),
        source_image_id: image.clone(),
        name: "poc-web-copy".into(),
        description: "copy".into(),
        encrypted: false,
        kms_key_id: None,
        tags: Tags::new(),
    };
    let west = account.region("us-west-2").await.unwrap();
    let osaka = account.region("ap-northeast-3").await.unwrap();
    let w = west.compute.copy_image(&copy("us-west-2")).await.unwrap();
    let o = osaka
        .compute
        .copy_image(&copy("ap-northeast-3"))
        .await
        .unwrap();
    assert_eq!(describe(&west, &w).await.state, ImageState::Pending);
    tokio::time::sleep(Duration::from_secs(1300)).await;
    assert_eq!(describe(&west, &w).await.state, ImageState::Available);
    let failed = describe(&osaka, &o).await;
    assert_eq!(failed.state, ImageState::Failed);
    assert!(failed.state_reason.is_some());

    // A region takes only so many concurrent snapshot copies.
    let mut results = Vec::new();
    for n in 0..21 {
        let req = CopyImage {
            name: format!("poc-web-copy-{n}"),
            ..copy("us-west-2")
        };
        results.push(west.compute.copy_image(&req).await.map_err(|e| e.kind));
    }
    assert!(results[..20].iter().all(Result::is_ok));
    assert_eq!(results[20], Err(ErrorKind::LimitExceeded));
}
