//! The image lifecycle through the CLI on the simulated account: the layered POC
//! pipeline's monthly runs (reuse, and a rebuild when the source AMI changes), promotion
//! between channels, rollout by channel, the catalogue, retention and the manifest.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use kiln::builder::naming::{TAG_PARENT_IMAGE, TAG_SOURCE_IMAGE, TAG_STATUS};
use kiln::cloud::sim::SimAccount;
use kiln::cloud::{Account, CopyImage, ImageId, ParameterType, PutParameter, SnapshotId, Tags};
use serde_json::Value;

use support::*;

const LAYERED: &str = "examples/poc/layered.yaml";
const AL2023: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
/// The AMI the POC seed's AL2023 parameter names in ap-northeast-1.
const AL2023_AMI: &str = "ami-0a1e2023aaaa00001";
/// The base layer's source in these tests: a parameter the test may change (AWS's own
/// public parameters cannot be written, in the simulation as in AWS).
const SOURCE_PARAMETER: &str = "/poc/base-source-ami";
const ALL_REGIONS: &str = "ap-northeast-1,ap-northeast-3,us-west-2";

/// The layered example, written into the sandbox with absolute paths, its base layer
/// reading `SOURCE_PARAMETER`, and the application's version set to `app_version`.
fn layered_pipeline(sandbox: &Sandbox, app_version: &str) -> String {
    let text = std::fs::read_to_string(repo_path(LAYERED)).expect("layered example");
    let recipes = repo_path("recipes");
    let templates = repo_path("templates");
    let seed = repo_path("examples/poc/account.yaml");
    let text = text
        .replace("../../recipes", &recipes.display().to_string())
        .replace("../../templates", &templates.display().to_string())
        .replace("seed: account.yaml", &format!("seed: {}", seed.display()))
        .replace(AL2023, SOURCE_PARAMETER)
        .replace(
            "app_version: \"1.0.0\"",
            &format!("app_version: \"{app_version}\""),
        );
    let path = sandbox.write(&format!("layered-{app_version}.yaml"), &text);
    path.display().to_string()
}

/// Opens the sandbox's account (created from the POC seed when new).
fn open(sandbox: &Sandbox) -> SimAccount {
    let seed = repo_path("examples/poc/account.yaml");
    SimAccount::open(&sandbox.state(), Some(&seed), None).expect("open the simulated account")
}

async fn point_source_at(sandbox: &Sandbox, image: &str) {
    let account = open(sandbox);
    let cloud = account.region(POC_REGION).await.expect("region");
    let request = PutParameter {
        name: SOURCE_PARAMETER.into(),
        value: image.into(),
        kind: ParameterType::String,
        description: Some("the base layer's source AMI".into()),
        overwrite: true,
        data_type: Some("aws:ec2:image".into()),
    };
    cloud.parameters.put_parameter(&request).await.expect("put");
}

/// Runs kiln and returns its JSON result and how long it took on the simulated clock.
fn timed(sandbox: &Sandbox, args: &[&str]) -> (Run, Duration) {
    let before = open(sandbox).now();
    let run = sandbox.kiln(args);
    let after = open(sandbox).now();
    (run, (after - before).to_std().unwrap_or_default())
}

async fn builder_ids(sandbox: &Sandbox) -> BTreeSet<String> {
    let (_account, cloud) = sandbox.cloud().await;
    let builders = instances_with_role(&cloud, "builder").await;
    builders.into_iter().map(|i| i.id.to_string()).collect()
}

async fn image_tags(sandbox: &Sandbox, id: &str) -> Tags {
    let (_account, cloud) = sandbox.cloud().await;
    let images = own_images(&cloud).await;
    let image = images.into_iter().find(|i| i.id.as_str() == id);
    image.unwrap_or_else(|| panic!("image {id} exists")).tags
}

fn id_of(image: &Value) -> String {
    image["id"].as_str().expect("image id").to_string()
}

#[tokio::test(start_paused = true)]
async fn monthly_runs_reuse_unchanged_layers_and_rebuild_both_on_a_new_source_ami() {
    let sandbox = Sandbox::new();
    let file = layered_pipeline(&sandbox, "1.0.0");
    point_source_at(&sandbox, AL2023_AMI).await;
    let run = |label: &str| {
        let (run, took) = timed(&sandbox, &["--output", "json", "pipeline", "run", &file]);
        println!("{label}: monthly run took {took:?} (simulated)");
        run.assert_code(0);
        run.json()
    };

    let first = run("first");
    let base = &first["layers"][0]["image"];
    assert_eq!(base["reused"], false);
    assert_eq!(first["image"]["reused"], false);
    assert_eq!(first["rollouts"][0]["status"], "Successful");
    let app_tags = image_tags(&sandbox, &id_of(&first["image"])).await;
    assert_eq!(app_tags[TAG_PARENT_IMAGE], id_of(base));
    assert_eq!(app_tags[TAG_SOURCE_IMAGE], id_of(base));

    // Same source AMI, same recipes: nothing is launched, both images are reused.
    let builders = builder_ids(&sandbox).await;
    let second = run("unchanged");
    assert_eq!(second["layers"][0]["image"]["reused"], true);
    assert_eq!(second["image"]["reused"], true);
    assert_eq!(id_of(&second["image"]), id_of(&first["image"]));
    assert_eq!(
        builder_ids(&sandbox).await,
        builders,
        "a builder was launched"
    );
    let copies = second["distribution"]["regions"]
        .as_array()
        .expect("regions");
    assert!(
        copies[1..].iter().all(|r| r["reused"] == true),
        "{copies:?}"
    );

    // A new source AMI (a copy of AL2023 stands in for Amazon's next release).
    let new_source = new_source_ami(&sandbox).await;
    point_source_at(&sandbox, new_source.as_str()).await;
    let third = run("new source AMI");
    let new_base = &third["layers"][0]["image"];
    assert_eq!(new_base["reused"], false);
    assert_eq!(third["image"]["reused"], false);
    assert_ne!(id_of(new_base), id_of(base));
    let base_tags = image_tags(&sandbox, &id_of(new_base)).await;
    assert_eq!(base_tags[TAG_SOURCE_IMAGE], new_source.as_str());
    let app_tags = image_tags(&sandbox, &id_of(&third["image"])).await;
    assert_eq!(app_tags[TAG_PARENT_IMAGE], id_of(new_base));
    assert_eq!(
        third["rollouts"][0]["on_new_image"],
        third["rollouts"][0]["desired"]
    );

    // The manifest holds every build of the three runs, Packer's way.
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.path("kiln-manifest.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    let builds = manifest["builds"].as_array().expect("builds");
    assert_eq!(builds.len(), 6);
    let last = &builds[5];
    assert_eq!(last["builder_type"], "kiln");
    assert_eq!(last["name"], "poc-web-app");
    assert_eq!(manifest["last_run_uuid"], last["packer_run_uuid"]);
    let artifact = last["artifact_id"].as_str().expect("artifact id");
    assert_eq!(artifact.split(',').count(), 3, "{artifact}");
    assert!(artifact.starts_with(&format!("ap-northeast-1:{}", id_of(&third["image"]))));
    assert_eq!(last["channel"], "/kiln/poc-web-app/poc");
    assert_eq!(builds[2]["reused"], true);
}

/// A new AMI in the POC region: a copy of Amazon's AL2023 image, waited for.
async fn new_source_ami(sandbox: &Sandbox) -> ImageId {
    let account = open(sandbox);
    let cloud = account.region(POC_REGION).await.expect("region");
    let request = CopyImage {
        source_region: POC_REGION.into(),
        source_image_id: ImageId::new(AL2023_AMI),
        name: "al2023-ami-2023.9.20260105.0-kernel-6.1-x86_64".into(),
        description: "next month's Amazon Linux 2023".into(),
        encrypted: false,
        kms_key_id: None,
        tags: Tags::new(),
    };
    let id = cloud.compute.copy_image(&request).await.expect("copy");
    // Copies take at most twenty simulated minutes.
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    let images = own_images(&cloud).await;
    let copy = images.iter().find(|i| i.id == id).expect("copy listed");
    assert_eq!(copy.state, kiln::cloud::ImageState::Available);
    id
}

async fn mark_failed(sandbox: &Sandbox, id: &str) {
    let (_account, cloud) = sandbox.cloud().await;
    let tags = Tags::from([(TAG_STATUS.to_string(), "failed".to_string())]);
    cloud
        .compute
        .create_tags(&[id.to_string()], &tags)
        .await
        .expect("tag");
}

/// Snapshots of `ids` still present in `region`.
async fn snapshots_left(sandbox: &Sandbox, region: &str, ids: &[SnapshotId]) -> usize {
    let account = open(sandbox);
    let cloud = account.region(region).await.expect("region");
    let mut left = 0;
    for id in ids {
        let found = cloud
            .compute
            .describe_snapshots(std::slice::from_ref(id), &Tags::new())
            .await;
        left += found.map(|s| s.len()).unwrap_or(0);
    }
    left
}

/// Every snapshot id of the images of `version` in the catalogue output.
async fn snapshots_of(
    sandbox: &Sandbox,
    images: &Value,
    version: &str,
) -> Vec<(String, Vec<SnapshotId>)> {
    let mut out = Vec::new();
    for entry in images.as_array().expect("images") {
        if entry["version"] != version {
            continue;
        }
        let region = entry["region"].as_str().expect("region").to_string();
        let account = open(sandbox);
        let cloud = account.region(&region).await.expect("region");
        let id = ImageId::new(entry["id"].as_str().expect("id"));
        let filter = kiln::cloud::ImageFilter {
            ids: vec![id],
            ..Default::default()
        };
        let image = cloud.compute.describe_images(&filter).await.expect("image");
        let ids = image[0]
            .block_devices
            .iter()
            .filter_map(|d| d.snapshot_id.clone());
        out.push((region, ids.collect()));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn promotion_rollout_by_channel_catalogue_and_prune() {
    let sandbox = Sandbox::new();
    point_source_at(&sandbox, AL2023_AMI).await;
    let bake = |version: &str, faults: &str| {
        let file = layered_pipeline(&sandbox, version);
        let faults = sandbox.write("faults.yaml", faults);
        let faults = faults.display().to_string();
        sandbox.kiln(&["--faults", &faults, "--output", "json", "bake", &file])
    };
    let kiln_json = |args: &[&str]| {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let run = sandbox.kiln(&all);
        run.assert_code(0);
        run.json()
    };

    let v1 = bake("1.0.0", "{}");
    let v1 = v1.assert_code(0).json();
    let v1_version = v1["image"]["version"]
        .as_str()
        .expect("version")
        .to_string();
    let promoted = kiln_json(&[
        "promote",
        "poc-web-app",
        &v1_version,
        "--to",
        "prod",
        "--regions",
        ALL_REGIONS,
    ]);
    assert_eq!(promoted["promotions"].as_array().expect("list").len(), 3);
    assert_eq!(promoted["promotions"][0]["previous"], Value::Null);

    let file = layered_pipeline(&sandbox, "1.0.0");
    let rolled = kiln_json(&["rollout", &file, "--channel", "prod"]);
    assert_eq!(rolled["image"], v1["image"]["id"]);
    assert_eq!(rolled["rollouts"][0]["status"], "Successful");

    // v2's copy to us-west-2 fails: reported beside the other regions, exit 1.
    let v2 = bake(
        "1.0.1",
        "copy_fails: [{region: us-west-2, reason: snapshot copy limit}]",
    );
    assert_eq!(v2.code, 1, "{}", v2.stderr);
    assert!(v2.stderr.contains("us-west-2"), "{}", v2.stderr);
    let v2 = v2.json();
    let regions = v2["distribution"]["regions"].as_array().expect("regions");
    let status: Vec<&str> = regions
        .iter()
        .map(|r| r["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(status, ["ok", "ok", "failed"]);
    assert_eq!(
        v2["layers"][0]["image"]["reused"], true,
        "the base is reused"
    );
    let v3 = bake("1.0.2", "{}").assert_code(0).json();

    // v2 failed its test (marked as the bake does): it can never be promoted.
    mark_failed(&sandbox, &id_of(&v2["image"])).await;
    let v2_version = v2["image"]["version"].as_str().expect("version");
    let refused = sandbox.kiln(&["promote", "poc-web-app", v2_version, "--to", "prod"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("can never be promoted"),
        "{}",
        refused.stderr
    );

    let v3_version = v3["image"]["version"].as_str().expect("version");
    let promoted = kiln_json(&[
        "promote",
        "poc-web-app",
        v3_version,
        "--to",
        "prod",
        "--regions",
        ALL_REGIONS,
    ]);
    assert_eq!(promoted["promotions"][0]["previous"], v1["image"]["id"]);
    let history = {
        let (_account, cloud) = sandbox.cloud().await;
        let history = cloud
            .parameters
            .get_parameter_history("/kiln/poc-web-app/prod", false);
        history.await.expect("history")
    };
    let values: Vec<&str> = history.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(values, [id_of(&v1["image"]), id_of(&v3["image"])]);

    let listed = kiln_json(&["images", "--image", "poc-web-app", "--regions", ALL_REGIONS]);
    let images = &listed["images"];
    let home_v1 = images
        .as_array()
        .expect("images")
        .iter()
        .find(|e| e["id"] == v1["image"]["id"])
        .expect("v1 listed");
    let users = home_v1["used_by"].to_string();
    assert!(users.contains("group poc-web-asg"), "{users}");
    let v2_snapshots = snapshots_of(&sandbox, images, v2_version).await;
    let v1_snapshots = snapshots_of(&sandbox, images, &v1_version).await;
    assert_eq!(v2_snapshots.len(), 2, "v2 is in two regions");
    assert_eq!(v1_snapshots.len(), 3, "v1 is in three regions");

    // Two hours later: keep one, remove what is older than an hour.
    {
        let _account = open(&sandbox);
        tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
        _account.save_now().expect("save");
    }
    let prune = [
        "prune",
        "--image",
        "poc-web-app",
        "--keep",
        "1",
        "--older-than",
        "1h",
    ];
    let mut all = prune.to_vec();
    all.extend(["--regions", ALL_REGIONS]);
    let mut dry = all.clone();
    dry.push("--dry-run");
    let dry = kiln_json(&dry);
    assert_eq!(dry["removed"].as_array().expect("removed").len(), 2);
    let (pruned, took) = timed(&sandbox, &[&["--output", "json"][..], &all].concat());
    pruned.assert_code(0);
    println!("prune took {took:?} (simulated): {}", pruned.stdout);
    let pruned = pruned.json();
    let removed: Vec<&str> = pruned["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .map(|p| p["version"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(removed, [v2_version, v2_version]);
    let kept = pruned["kept"].to_string();
    assert!(
        kept.contains(v1["image"]["id"].as_str().unwrap()) && kept.contains("in use"),
        "{kept}"
    );

    for (region, ids) in &v2_snapshots {
        assert!(!ids.is_empty());
        assert_eq!(snapshots_left(&sandbox, region, ids).await, 0, "{region}");
    }
    for (region, ids) in &v1_snapshots {
        assert_eq!(
            snapshots_left(&sandbox, region, ids).await,
            ids.len(),
            "{region}"
        );
    }
    let after = kiln_json(&["images", "--image", "poc-web-app", "--regions", ALL_REGIONS]);
    let versions: BTreeSet<&str> = after["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|e| e["version"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(versions, BTreeSet::from([v1_version.as_str(), v3_version]));
}

#[test]
fn an_account_with_no_kiln_image_says_so() {
    let sandbox = Sandbox::new();
    drop(open(&sandbox));
    let listed = sandbox.kiln(&["images"]);
    listed.assert_code(0);
    assert_eq!(listed.stdout, format!("no kiln image in {POC_REGION}\n"));
    let family = sandbox.kiln(&[
        "images",
        "--image",
        "poc-web-base",
        "--regions",
        ALL_REGIONS,
    ]);
    family.assert_code(0);
    assert_eq!(
        family.stdout,
        "no kiln image poc-web-base in ap-northeast-1, ap-northeast-3, us-west-2\n"
    );
}
