//! The POC's bake end to end: the real recipes and templates of this repository, rendered
//! and baked on the POC's simulated account, with the duration of each phase reported.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kiln_builder::recipe::{render, RecipeSource};
use kiln_builder::{bake, plan, BakeError, BakeSpec};
use kiln_cloud::progress::{Recorder, Silent};
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

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The POC bake's spec, from the real recipes and templates.
fn poc_spec() -> BakeSpec {
    let root = repository();
    let source = RecipeSource {
        recipes_dir: root.join("recipes"),
        templates_dir: root.join("templates"),
    };
    let names: Vec<String> = POC_RECIPES.iter().map(|n| n.to_string()).collect();
    let variables = poc_variables();
    let rendered = render(&source, &names, &variables).expect("the POC recipes render");
    let mut spec = spec(rendered);
    spec.variables = variables;
    spec
}

/// The POC account with one of the example faults files loaded.
async fn poc_cloud_with(faults_file: &str) -> kiln_cloud::Cloud {
    let path = repository().join("examples/poc/faults").join(faults_file);
    let faults = std::fs::read_to_string(&path).expect("example faults file");
    cloud_with_faults(&faults).await
}

#[tokio::test(start_paused = true)]
async fn poc_bake_with_the_real_recipes() {
    let spec = poc_spec();
    let step_count = spec.rendered.steps.len();
    let cloud = cloud_with_faults("").await;
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

#[tokio::test(start_paused = true)]
async fn poc_bake_stops_at_the_failing_proxysql_install() {
    let cloud = poc_cloud_with("step-fails.yaml").await;
    let plan = plan(&cloud, &poc_spec()).await.expect("plan");
    let error = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();

    match &error {
        BakeError::StepFailed {
            recipe,
            step,
            exit_code,
            last_lines,
            ..
        } => {
            assert_eq!(
                (recipe.as_str(), step.as_str()),
                ("proxysql", "install-proxysql")
            );
            assert_eq!(*exit_code, 1);
            assert!(last_lines.contains("Unable to find a match: proxysql-2.6.3"));
        }
        other => panic!("expected StepFailed, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn poc_bake_times_out_the_hung_composer_install() {
    let cloud = poc_cloud_with("run-command.yaml").await;
    let plan = plan(&cloud, &poc_spec()).await.expect("plan");
    let error = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .unwrap_err();

    let BakeError::StepTimedOut { recipe, step, .. } = &error else {
        panic!("expected StepTimedOut, got {error}");
    };
    assert_eq!(
        (recipe.as_str(), step.as_str()),
        ("laravel", "composer-install")
    );
}

#[tokio::test(start_paused = true)]
async fn poc_bake_rides_out_throttling() {
    let cloud = poc_cloud_with("throttling.yaml").await;
    let plan = plan(&cloud, &poc_spec()).await.expect("plan");
    let outcome = bake(&cloud, &plan, &Silent, &CancellationToken::new())
        .await
        .expect("bake");
    assert!(outcome.leftovers.is_empty(), "{:?}", outcome.leftovers);
}
