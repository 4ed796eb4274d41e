//! `kiln bake FILE`: bake the pipeline's image, or reuse one with the same inputs.

use kiln_builder::{BakeError, BakeOutcome};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{FileArgs, GlobalArgs};
use crate::exit::{self, Exit};
use crate::output::{print_result, Reporter};

/// The bake's result as printed: the image and what was left behind.
#[derive(Debug, Serialize)]
pub struct ImageResult {
    pub id: String,
    pub name: String,
    pub version: String,
    pub region: String,
    pub input_hash: String,
    pub reused: bool,
}

impl From<&BakeOutcome> for ImageResult {
    fn from(outcome: &BakeOutcome) -> Self {
        let image = &outcome.image;
        Self {
            id: image.id.to_string(),
            name: image.name.clone(),
            version: image.version.clone(),
            region: image.region.clone(),
            input_hash: image.input_hash.clone(),
            reused: outcome.reused,
        }
    }
}

#[derive(Debug, Serialize)]
struct BakeResult {
    image: ImageResult,
    leftovers: Vec<String>,
}

pub async fn run(
    global: &GlobalArgs,
    args: &FileArgs,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let loaded = super::load(&args.file)?;
    let cloud = super::cloud(global, &loaded.pipeline).await?;
    let reporter = Reporter::new(global, global.sim.is_some());
    let outcome = bake(&cloud, &loaded, &reporter, cancel).await;
    reporter.finish();
    let outcome = outcome?;
    let result = BakeResult {
        image: ImageResult::from(&outcome),
        leftovers: outcome.leftovers.clone(),
    };
    print_result(global.output, &result, |r| {
        format!(
            "{} {} ({}, {}){}\n",
            r.image.id,
            r.image.name,
            r.image.region,
            if r.image.reused { "reused" } else { "baked" },
            leftovers_text(&r.leftovers)
        )
    })
}

/// Plans and bakes, mapping a failure to the exit code a pipeline branches on.
pub async fn bake(
    cloud: &kiln_cloud::Cloud,
    loaded: &super::Loaded,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> anyhow::Result<BakeOutcome> {
    let spec = super::bake_spec(loaded);
    let plan = kiln_builder::plan(cloud, &spec).await.map_err(exit_for)?;
    kiln_builder::bake(cloud, &plan, reporter, cancel)
        .await
        .map_err(exit_for)
}

fn exit_for(error: BakeError) -> anyhow::Error {
    let code = match &error {
        e if e.is_cancelled() => exit::INTERRUPTED,
        BakeError::InvalidSpec { .. } => exit::BAD_INPUT,
        _ => exit::BAKE_FAILED,
    };
    Exit::new(code, error).into()
}

pub fn leftovers_text(leftovers: &[String]) -> String {
    if leftovers.is_empty() {
        String::new()
    } else {
        format!(
            "\nleft behind (remove by hand or with `kiln gc`): {}",
            leftovers.join(", ")
        )
    }
}
