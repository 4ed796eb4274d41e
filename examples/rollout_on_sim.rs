//! Rolls an image out to the POC group on the simulated account, with the library alone:
//! plan (printed), rollout with progress on stderr, then the group's status.
//!
//! `cargo run --example rollout_on_sim` (virtual time: the refresh's minutes pass at once).

use std::time::Duration;

use kiln_cloud::progress::{Event, Progress};
use kiln_cloud::sim::SimAccount;
use kiln_cloud::{Account, ImageId, TemplateRef};
use kiln_rollout::{CancellationToken, RollingSettings, RolloutSpec, Strategy};

/// Prints each event as one line, as the CLI does for Jenkins.
struct Lines;

impl Progress for Lines {
    fn event(&self, e: Event) {
        eprintln!(
            "{} {:<8} {} {}",
            e.at.format("%H:%M:%S"),
            e.phase,
            e.subject,
            e.message
        );
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> anyhow::Result<()> {
    let account = SimAccount::from_seed_str(include_str!("poc/account.yaml"))?;
    let cloud = account.region("ap-northeast-1").await?;
    let spec = RolloutSpec {
        target: "poc-web".into(),
        group: "poc-web-asg".into(),
        launch_template: TemplateRef::Name("poc-web-lt".into()),
        target_group: Some("poc-web-tg".into()),
        load_balancer: Some("poc-poc-alb".into()),
        strategy: Strategy::Rolling(RollingSettings::default()),
        gates: Default::default(),
        timeouts: Default::default(),
        allow_imdsv1: false,
    };
    // Any available image other than the group's; a bake would give its own.
    let image = ImageId::new("ami-0a1e2023aaaa00001");

    let plan = kiln_rollout::plan(&cloud, &spec, &image).await?;
    println!("{plan}");
    let outcome = kiln_rollout::rollout(&cloud, &plan, &Lines, &CancellationToken::new()).await?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);

    let status = kiln_rollout::status(&cloud, "poc-web-asg").await?;
    for i in &status.instances {
        let version = i.version.as_deref().unwrap_or("?");
        println!("{} {} version {version}", i.id, i.availability_zone);
    }
    let took: Duration = outcome.timings.iter().map(|(_, d)| *d).sum();
    println!("simulated time: {}", humantime::format_duration(took));
    Ok(())
}
