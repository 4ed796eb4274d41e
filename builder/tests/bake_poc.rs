//! The POC's bake end to end: the real recipes and templates of this repository, rendered
//! and baked on the POC's simulated account, with the duration of each phase reported.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kiln_builder::recipe::{render, RecipeSource};
use kiln_builder::{bake, plan};
use kiln_cloud::progress::Recorder;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use support::{cloud_with_faults, spec};

/// The recipes of the POC's web base layer, in pipeline order (hygiene comes last on its
/// own).
const POC_RECIPES: [&str; 5] = [
    "base-os",
    "proxysql",
    "laravel",
    "monitoring",
    "boot-config",
];

fn poc_variables() -> BTreeMap<String, serde_json::Value> {
    BTreeMap::from([
        ("parameter_prefix".into(), json!("/poc")),
        (
            "laravel_artifact_url".into(),
            json!("s3://poc-artifacts/laravel/app-1.0.0.tar.gz"),
        ),
        (
            "aurora_writer_endpoint".into(),
            json!("poc-poc-aurora-cluster.cluster-cfakeid00000.ap-northeast-1.rds.amazonaws.com"),
        ),
        (
            "aurora_reader_endpoint".into(),
            json!(
                "poc-poc-aurora-cluster.cluster-ro-cfakeid00000.ap-northeast-1.rds.amazonaws.com"
            ),
        ),
    ])
}

#[tokio::test(start_paused = true)]
async fn poc_bake_with_the_real_recipes() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = RecipeSource {
        recipes_dir: root.join("recipes"),
        templates_dir: root.join("templates"),
    };
    let names: Vec<String> = POC_RECIPES.iter().map(|n| n.to_string()).collect();
    let variables = poc_variables();
    let rendered = render(&source, &names, &variables).expect("the POC recipes render");
    let step_count = rendered.steps.len();

    let cloud = cloud_with_faults("").await;
    let mut spec = spec(rendered);
    spec.variables = variables;
    let plan = plan(&cloud, &spec).await.expect("plan");
    let progress = Recorder::default();
    let outcome = bake(&cloud, &plan, &progress, &CancellationToken::new())
        .await
        .expect("the POC bake succeeds");

    assert!(!outcome.reused);
    assert!(outcome.leftovers.is_empty(), "{:?}", outcome.leftovers);
    let ended: Vec<_> = progress
        .events()
        .into_iter()
        .filter(|e| e.message.ends_with("step succeeded"))
        .collect();
    assert_eq!(ended.len(), step_count, "every step ran and succeeded");

    let total: Duration = outcome.timings.iter().map(|(_, d)| *d).sum();
    for (phase, took) in &outcome.timings {
        eprintln!(
            "POC bake phase {phase:<8} {}",
            humantime::format_duration(*took)
        );
    }
    eprintln!(
        "POC bake total          {} ({step_count} steps)",
        humantime::format_duration(total)
    );
}
