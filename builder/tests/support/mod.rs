//! Shared set-up of the bake's tests: the POC's simulated account, a small recipe set
//! (independent of the real recipes' details) and a spec to bake it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_builder::recipe::{Phase, Rendered, Step};
use kiln_builder::{BakeSpec, BuilderSettings, RootVolumeSettings, SourceImage, SubnetSelector};
use kiln_cloud::sim::{Faults, SimAccount};
use kiln_cloud::{
    Cloud, Event, Image, ImageFilter, ImageId, ImageState, InstanceFilter, Progress, Tags,
    TAG_RUN_ID,
};
use tokio_util::sync::CancellationToken;

pub const REGION: &str = "ap-northeast-1";
pub const IMAGE_NAME: &str = "poc-web-base";
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// AWS's public parameter for the latest Amazon Linux 2023 AMI, which the POC seeds.
pub const AL2023: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

/// The fixture's steps in bake order, as `recipe/step`.
pub const FIXTURE_STEPS: [&str; 7] = [
    "base/update-os",
    "base/apply-kernel",
    "web/install-httpd",
    "web/check-httpd",
    "hygiene/clear-identity",
    "web/smoke-test",
    "web/health-test",
];

/// The POC account with `faults` (YAML, may be empty) loaded.
pub async fn cloud_with_faults(faults: &str) -> Cloud {
    let account = account_with_faults(faults);
    use kiln_cloud::Account as _;
    account.region(REGION).await.expect("region")
}

/// The POC account (three regions) with `faults` (YAML, may be empty) loaded.
pub fn account_with_faults(faults: &str) -> SimAccount {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/poc/account.yaml");
    let seed = std::fs::read_to_string(seed).expect("the POC seed is readable");
    let account = SimAccount::from_seed_str(&seed).expect("POC seed");
    if !faults.trim().is_empty() {
        account.set_faults(Faults::from_yaml_str(faults).expect("faults"));
    }
    account
}

/// Every resource tagged with `run_id` still there, in every region of the account, as
/// `region id`: instances not terminated, security groups, images not deregistered and
/// snapshots, except the images in `kept` (and their snapshots).
pub async fn run_leftovers(
    account: &dyn kiln_cloud::Account,
    run_id: &str,
    kept: &[ImageId],
) -> Vec<String> {
    let mut left = Vec::new();
    for region in account.regions().await.expect("regions") {
        let cloud = account.region(&region).await.expect("region");
        let ids = leftovers_in(&cloud, run_id, kept).await;
        left.extend(ids.into_iter().map(|id| format!("{region} {id}")));
    }
    left
}

async fn leftovers_in(cloud: &Cloud, run_id: &str, kept: &[ImageId]) -> Vec<String> {
    let run = Tags::from([(TAG_RUN_ID.to_string(), run_id.to_string())]);
    let mut left = Vec::new();
    let filter = InstanceFilter {
        tags: run.clone(),
        exclude_terminated: true,
        ..InstanceFilter::default()
    };
    let instances = cloud.compute.describe_instances(&filter).await.unwrap();
    left.extend(instances.into_iter().map(|i| i.id.to_string()));
    let groups = cloud.compute.describe_security_groups(&[], &run).await;
    left.extend(groups.unwrap().into_iter().map(|g| g.id.to_string()));
    let images = ImageFilter {
        owners: vec!["self".into()],
        tags: run.clone(),
        ..ImageFilter::default()
    };
    let images = cloud.compute.describe_images(&images).await.unwrap();
    let mut kept_snapshots = Vec::new();
    for image in images
        .iter()
        .filter(|i| i.state != ImageState::Deregistered)
    {
        if kept.contains(&image.id) {
            let snapshots = image
                .block_devices
                .iter()
                .filter_map(|d| d.snapshot_id.clone());
            kept_snapshots.extend(snapshots);
        } else {
            left.push(image.id.to_string());
        }
    }
    let snapshots = cloud.compute.describe_snapshots(&[], &run).await.unwrap();
    let snapshots = snapshots
        .into_iter()
        .filter(|s| !kept_snapshots.contains(&s.id));
    left.extend(snapshots.map(|s| s.id.to_string()));
    left
}

fn step(recipe: &str, name: &str, phase: Phase, lines: &[&str]) -> Step {
    let mut script = String::from("#!/bin/bash\nset -euo pipefail\n");
    for line in lines {
        script.push_str(line);
        script.push('\n');
    }
    Step {
        recipe: recipe.into(),
        name: name.into(),
        phase,
        script,
        timeout: STEP_TIMEOUT,
        reboot: false,
    }
}

/// A step that asks the SSM agent for a reboot (exit code 194) on its first run; the
/// agent runs it again after the reboot and it then exits 0.
fn reboot_step(recipe: &str, name: &str) -> Step {
    let lines = [
        "if [ ! -e /var/lib/kiln/rebooted ]; then",
        "  mkdir -p /var/lib/kiln && touch /var/lib/kiln/rebooted",
        "  exit 194",
        "fi",
    ];
    Step {
        reboot: true,
        ..step(recipe, name, Phase::Build, &lines)
    }
}

/// Two small recipes and a hygiene step, with test steps.
pub fn fixture_rendered() -> Rendered {
    Rendered {
        recipes: vec!["base".into(), "web".into()],
        steps: vec![
            step(
                "base",
                "update-os",
                Phase::Build,
                &["dnf -y upgrade --refresh"],
            ),
            reboot_step("base", "apply-kernel"),
            step(
                "web",
                "install-httpd",
                Phase::Build,
                &["dnf -y install httpd", "systemctl enable httpd"],
            ),
            step("web", "check-httpd", Phase::Validate, &["httpd -t"]),
            step(
                "hygiene",
                "clear-identity",
                Phase::Hygiene,
                &["truncate -s 0 /etc/machine-id"],
            ),
            step(
                "web",
                "smoke-test",
                Phase::Test,
                &["systemctl is-active httpd"],
            ),
            step(
                "web",
                "health-test",
                Phase::Test,
                &["curl -fsS http://localhost/health"],
            ),
        ],
        inputs: vec![
            ("recipes/base.yaml".into(), b"name: base\n".to_vec()),
            ("recipes/web.yaml".into(), b"name: web\n".to_vec()),
        ],
        secrets: Vec::new(),
        variables: BTreeMap::from([("environment".to_string(), serde_json::json!("poc"))]),
        files: Vec::new(),
    }
}

pub fn spec(rendered: Rendered) -> BakeSpec {
    BakeSpec {
        image_name: IMAGE_NAME.into(),
        source: SourceImage::Parameter(AL2023.into()),
        builder: BuilderSettings {
            instance_type: "t3.small".into(),
            subnet: SubnetSelector::Tags(BTreeMap::from([(
                "Name".to_string(),
                "poc-private-1a".to_string(),
            )])),
            instance_profile: Some("kiln-builder".into()),
            root_volume: RootVolumeSettings {
                size_gib: 20,
                volume_type: "gp3".into(),
                encrypted: true,
                kms_key_id: None,
            },
        },
        rendered,
        variables: BTreeMap::from([("environment".to_string(), serde_json::json!("poc"))]),
        commit: Some("0123abc".into()),
        timeouts: kiln_builder::Timeouts::default(),
        version: None,
    }
}

pub async fn describe_image(cloud: &Cloud, id: &ImageId) -> Option<Image> {
    let filter = ImageFilter {
        ids: vec![id.clone()],
        ..ImageFilter::default()
    };
    match cloud.compute.describe_images(&filter).await {
        Ok(images) => images.into_iter().find(|i| &i.id == id),
        Err(e) if e.is(kiln_cloud::ErrorKind::NotFound) => None,
        Err(e) => panic!("describe image {id}: {e}"),
    }
}

/// Cancels the bake a little while after the first event about `subject` (any subject
/// when `None`) whose message contains `message`: the cancellation lands while kiln waits.
pub struct CancelOn {
    pub subject: Option<&'static str>,
    pub message: &'static str,
    pub cancel: CancellationToken,
}

/// Long enough for the command to be sent and running, shorter than any fixture step or
/// the making of an image.
const CANCEL_AFTER: Duration = Duration::from_secs(4);

impl Progress for CancelOn {
    fn event(&self, event: Event) {
        let about = self.subject.is_none_or(|s| event.subject == s);
        if about && event.message.contains(self.message) {
            let cancel = self.cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(CANCEL_AFTER).await;
                cancel.cancel();
            });
        }
    }
}
