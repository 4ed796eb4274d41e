//! `kiln bake` through the AWS adapter, against moto server on loopback: the CLI speaks
//! AWS, not only the simulated account.
//!
//! moto answers every state change at once and runs no script, so this proves the
//! requests and the bookkeeping (tags, clean-up, reuse), not timing; the simulated
//! account covers behaviour.

#[path = "../cloud/tests/support/moto.rs"]
mod moto;

use std::path::Path;
use std::process::Command;

use kiln::cloud::aws::{AwsAccount, AwsOptions};
use kiln::cloud::{Account, Cloud, ImageFilter, InstanceFilter, Tags, TAG_ROLE, TAG_RUN_ID};

const REGION: &str = "ap-northeast-1";

/// A recipe of two steps and a hygiene recipe of one: enough to exercise every kind of
/// request a bake makes, few enough that moto's real-time polling stays short.
fn write_recipes(dir: &Path) {
    std::fs::create_dir_all(dir.join("recipes")).unwrap();
    std::fs::create_dir_all(dir.join("templates/hello")).unwrap();
    std::fs::write(
        dir.join("recipes/hello.yaml"),
        "name: hello\ndescription: a greeting\nvariables:\n  greeting: { default: hello, description: the text }\n\
         build:\n  - name: motd\n    file: { template: hello/motd, path: /etc/motd }\n\
         validate:\n  - name: motd-present\n    run: test -s /etc/motd\n\
         test:\n  - name: motd-says-hello\n    run: grep -q '{{ greeting }}' /etc/motd\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/hello/motd"),
        "{{ greeting }} from kiln\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("recipes/hygiene.yaml"),
        "name: hygiene\ndescription: identity out\nbuild:\n  - name: machine-id\n    run: truncate -s 0 /etc/machine-id\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("pipeline.yaml"),
        "image:\n  name: moto-web-base\n  region: ap-northeast-1\n  source:\n    parameter: \
         /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64\n  recipes: [hello]\n  \
         recipes_dir: recipes\n  templates_dir: templates\n\
         builder:\n  instance_type: t3.micro\n  subnet:\n    tags: { Name: kiln-builders }\n  \
         instance_profile: kiln-builder\n",
    )
    .unwrap();
}

async fn cloud(endpoint: &str) -> Cloud {
    let options = AwsOptions {
        region: Some(REGION.into()),
        profile: None,
        endpoint_url: Some(endpoint.into()),
    };
    let account = AwsAccount::connect(options).await.expect("connect to moto");
    account.region(REGION).await.expect("region")
}

/// What an operator's network stack would hold: a subnet tagged for builders.
async fn tag_a_builder_subnet(cloud: &Cloud) {
    let subnets = cloud
        .compute
        .describe_subnets(&[], &Tags::new())
        .await
        .unwrap();
    let subnet = subnets.first().expect("moto's default VPC has subnets");
    let tags = Tags::from([("Name".to_string(), "kiln-builders".to_string())]);
    cloud
        .compute
        .create_tags(&[subnet.id.to_string()], &tags)
        .await
        .unwrap();
}

fn kiln_bake(endpoint: &str, pipeline: &Path) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "--endpoint-url",
            endpoint,
            "--region",
            REGION,
            "--no-progress",
        ])
        .args(["--output", "json", "bake"])
        .arg(pipeline)
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kiln bake failed:\n{stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}:\n{stderr}"))
}

#[tokio::test]
async fn bake_through_the_adapter_registers_a_tagged_image_and_leaves_no_builder() {
    let guard = moto::session_with_agents().await;
    let moto = guard.as_ref().expect("moto");
    moto.create_instance_profile("kiln-builder").await;
    let cloud = cloud(&moto.endpoint).await;
    tag_a_builder_subnet(&cloud).await;
    let dir = tempfile::tempdir().unwrap();
    write_recipes(dir.path());

    let result = kiln_bake(&moto.endpoint, &dir.path().join("pipeline.yaml"));
    let image_id = result["image"]["id"]
        .as_str()
        .expect("image id")
        .to_string();
    assert_eq!(result["image"]["reused"], false);
    assert_eq!(result["leftovers"], serde_json::json!([]));

    let filter = ImageFilter {
        ids: vec![image_id.as_str().into()],
        ..ImageFilter::default()
    };
    let images = cloud.compute.describe_images(&filter).await.unwrap();
    let tags = &images.first().expect("the image exists").tags;
    let run_id = tags.get(TAG_RUN_ID).expect("run id tag").clone();
    assert_eq!(
        tags.get("kiln:input-hash").map(String::as_str),
        result["image"]["input_hash"].as_str()
    );

    // The builder and the test instance are gone, and so is the build's security group.
    let mut run = InstanceFilter::default();
    run.tags.insert(TAG_RUN_ID.into(), run_id.clone());
    let instances = cloud.compute.describe_instances(&run).await.unwrap();
    let roles: Vec<_> = instances
        .iter()
        .filter_map(|i| i.tags.get(TAG_ROLE))
        .collect();
    assert!(
        roles.iter().any(|r| *r == "builder"),
        "no builder was launched: {roles:?}"
    );
    for instance in &instances {
        assert!(
            instance.state.is_ending(),
            "{} is {:?}",
            instance.id,
            instance.state
        );
    }
    let run_tags = Tags::from([(TAG_RUN_ID.to_string(), run_id)]);
    let groups = cloud
        .compute
        .describe_security_groups(&[], &run_tags)
        .await
        .unwrap();
    assert!(groups.is_empty(), "security groups left: {groups:?}");

    // Same inputs again: the image is found by its input hash and nothing is launched.
    let again = kiln_bake(&moto.endpoint, &dir.path().join("pipeline.yaml"));
    assert_eq!(again["image"]["id"], image_id.as_str());
    assert_eq!(again["image"]["reused"], true);
    let all = InstanceFilter::default();
    assert_eq!(
        cloud.compute.describe_instances(&all).await.unwrap().len(),
        instances.len()
    );
}
