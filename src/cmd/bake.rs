//! `kiln bake FILE`: bake the pipeline's image, or reuse one with the same inputs.

use anyhow::Context;
use kiln_builder::{BakeError, BakeOutcome, FileJournal};
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
    let outcome = bake(global, &cloud, &loaded, &reporter, cancel).await;
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

/// Plans and bakes, mapping a failure to the exit code a pipeline branches on. Every
/// resource the bake makes is journaled on disk the moment it exists
/// ([`crate::journal::dir`]), so that `kiln gc` can remove what a killed run left.
pub async fn bake(
    global: &GlobalArgs,
    cloud: &kiln_cloud::Cloud,
    loaded: &super::Loaded,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> anyhow::Result<BakeOutcome> {
    let spec = super::bake_spec(loaded);
    let plan = kiln_builder::plan(cloud, &spec).await.map_err(exit_for)?;
    if plan.reuse.is_some() {
        // Nothing is created: no journal to keep.
        return kiln_builder::bake(cloud, &plan, reporter, cancel)
            .await
            .map_err(exit_for);
    }
    let dir = crate::journal::dir(global);
    let journal =
        FileJournal::create(&dir, &plan.run_id, cloud.clock.now()).with_context(|| {
            format!(
                "cannot write the run journal in {}; pass --state-dir DIR (or set \
             KILN_STATE_DIR) to keep it elsewhere",
                dir.display()
            )
        })?;
    let result = kiln_builder::bake_with_journal(cloud, &plan, reporter, cancel, &journal).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) if e.is_cancelled() => "interrupted",
        Err(_) => "failed",
    };
    if result.is_err() {
        eprint!("{}", cleanup_text(&journal, outcome, &cloud.region));
    }
    if let Err(e) = journal.finish(cloud.clock.now(), outcome) {
        tracing::warn!(journal = %dir.display(), error = %e, "cannot close the run journal");
    }
    result.map_err(exit_for)
}

/// What an unsuccessful bake removed and what it left, for the person or the CI log.
fn cleanup_text(journal: &FileJournal, outcome: &str, region: &str) -> String {
    let list = |records: Vec<kiln_builder::Record>| {
        records
            .iter()
            .map(|r| format!("{} {}", r.kind, r.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let removed = journal.removed();
    let mut text = if removed.is_empty() {
        format!("kiln: bake {outcome}; it had created nothing to remove in {region}\n")
    } else {
        let list = list(removed);
        format!("kiln: bake {outcome}; cleaned up in {region}: removed {list}\n")
    };
    let open = journal.open_records();
    if !open.is_empty() {
        text.push_str(&format!(
            "kiln: still present in {region}: {}; run `kiln gc` (journal {})\n",
            list(open),
            journal.path().display()
        ));
    }
    text
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
