//! `kiln bake FILE`: bake the pipeline's image, or reuse one with the same inputs.

use std::sync::Arc;

use kiln_builder::distribute::{
    distribute, distribute_baked, distribute_run, CopyLimits, CopyRun, DistributeSpec,
    DistributionReport,
};
use kiln_builder::{BakeError, BakeOutcome, FileJournal};
use kiln_cloud::{Account, Cloud, LaunchPermissions};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{BakeArgs, GlobalArgs};
use crate::exit::{self, Exit};
use crate::journal;
use crate::manifest::Build;
use crate::output::{print_result, say, Reporter};

/// The bake's result as printed: the image and what was left behind.
#[derive(Debug, Clone, Serialize)]
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

/// `kiln bake --output json`: fields may be added, never renamed.
#[derive(Debug, Serialize)]
struct BakeResult {
    image: ImageResult,
    leftovers: Vec<String>,
    /// Where the image was copied, shared and published; `null` when the pipeline
    /// distributes nowhere.
    distribution: Option<DistributionReport>,
    /// The lower layers baked (or reused) before the image, in order.
    layers: Vec<LayerResult>,
    /// The manifest file the builds were appended to.
    manifest: String,
}

/// A lower layer's result.
#[derive(Debug, Clone, Serialize)]
pub struct LayerResult {
    pub image: ImageResult,
    pub distribution: Option<DistributionReport>,
}

/// One image a command baked or reused, with its distribution.
#[derive(Debug)]
pub struct Baked {
    pub outcome: BakeOutcome,
    pub distribution: Option<DistributionReport>,
}

impl Baked {
    pub fn layer_result(&self) -> LayerResult {
        LayerResult {
            image: ImageResult::from(&self.outcome),
            distribution: self.distribution.clone(),
        }
    }
}

pub async fn run(
    global: &GlobalArgs,
    args: &BakeArgs,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let loaded = super::load(&args.file)?;
    crate::manifest::check_writable(&args.manifest)?;
    let (account, cloud) = super::open(global, &loaded.pipeline).await?;
    super::inputs::check(&cloud, &loaded.pipeline).await?;
    let reporter = Reporter::new(global, global.sim.is_some());
    let baked = bake_all(
        global,
        account.as_ref(),
        &cloud,
        &loaded,
        &reporter,
        cancel,
        args,
    )
    .await;
    reporter.finish();
    let mut baked = baked?;
    let image = baked.pop().expect("the image is always baked last");
    let result = BakeResult {
        image: ImageResult::from(&image.outcome),
        leftovers: leftovers(&baked, &image),
        distribution: image.distribution.clone(),
        layers: baked.iter().map(Baked::layer_result).collect(),
        manifest: args.manifest.display().to_string(),
    };
    print_result(global.output, &result, |r| {
        format!(
            "{}{} {} ({}, {}){}\n{}",
            layers_text(&r.layers),
            r.image.id,
            r.image.name,
            r.image.region,
            if r.image.reused { "reused" } else { "baked" },
            leftovers_text(&r.leftovers),
            distribution_text(r.distribution.as_ref()),
        )
    })?;
    distribution_failures(baked.iter().chain([&image]))
}

/// Every leftover of every layer.
pub fn leftovers(layers: &[Baked], image: &Baked) -> Vec<String> {
    layers
        .iter()
        .chain([image])
        .flat_map(|b| b.outcome.leftovers.iter().cloned())
        .collect()
}

/// Bakes every layer and then the image, distributing each and appending each to the
/// manifest. A layer above reads the channel the one below was just published to in the
/// home region, so a failure to publish there stops the run; the copies of the layer below
/// to the other regions run while the layer above bakes. The image itself is copied first
/// and shared and published after, held by its run until then (an interruption before
/// removes it and its copies, and exits 130).
pub async fn bake_all(
    global: &GlobalArgs,
    account: &dyn Account,
    cloud: &Cloud,
    loaded: &super::Loaded,
    reporter: &Reporter,
    cancel: &CancellationToken,
    args: &BakeArgs,
) -> anyhow::Result<Vec<Baked>> {
    let limits = CopyLimits::default();
    let spec = distribute_spec(loaded);
    let sections = loaded.sections();
    let mut run_uuid = None;
    let mut done = Vec::new();
    let mut copying: Option<(Layer, Copies<'_>)> = None;
    for (index, (section, rendered)) in sections.iter().enumerate() {
        let ctx = LayerContext {
            global,
            account,
            cloud,
            reporter,
            cancel,
            spec: spec.as_ref(),
            last: index + 1 == sections.len(),
        };
        let step = bake_layer(&ctx, loaded, section, rendered, &mut run_uuid);
        let current = match copying.take() {
            Some((below, copies)) => {
                let (report, current) = tokio::join!(copies, step);
                done.push(finish(args, cloud, below, report)?);
                current?
            }
            None => step.await?,
        };
        let copies = copies_of(&ctx, &current, &limits);
        copying = Some((current, copies));
    }
    if let Some((below, copies)) = copying {
        let report = copies.await;
        done.push(finish(args, cloud, below, report)?);
    }
    Ok(done)
}

/// A layer baked, and published in its own region unless it is the image itself (whose
/// whole distribution comes after, the image held by the run until its copies are done).
struct Layer {
    outcome: BakeOutcome,
    run_id: String,
    run_uuid: String,
    home: Option<DistributionReport>,
    /// The run's journal, open until the layer's distribution is done.
    journal: Arc<FileJournal>,
}

/// The copies of a layer to the other regions, in progress.
type Copies<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<DistributionReport>> + 'a>>;

/// What every layer's bake shares.
struct LayerContext<'a> {
    global: &'a GlobalArgs,
    account: &'a dyn Account,
    cloud: &'a Cloud,
    reporter: &'a Reporter,
    cancel: &'a CancellationToken,
    spec: Option<&'a DistributeSpec>,
    /// The image itself: nothing is baked on top of it.
    last: bool,
}

/// Plans and bakes one layer; a layer below the image is then shared and published in
/// its own region at once, since the layer above starts from its channel.
async fn bake_layer(
    ctx: &LayerContext<'_>,
    loaded: &super::Loaded,
    section: &crate::pipeline::ImageSection,
    rendered: &kiln_builder::recipe::Rendered,
    run_uuid: &mut Option<String>,
) -> anyhow::Result<Layer> {
    let secrets = crate::secrets::read(ctx.cloud, &loaded.pipeline, section).await?;
    crate::secrets::check_rendered(rendered, &secrets)?;
    let spec = super::section_spec(loaded, section, rendered);
    let mut plan = kiln_builder::plan(ctx.cloud, &spec)
        .await
        .map_err(exit_for)?;
    crate::secrets::add_to_plan(&mut plan, &secrets);
    let run_uuid = run_uuid.get_or_insert_with(|| plan.run_id.clone()).clone();
    let (outcome, journal) =
        bake_journaled(ctx.global, ctx.cloud, &plan, ctx.reporter, ctx.cancel).await?;
    let home = match ctx.spec.filter(|_| !ctx.last) {
        Some(spec) => {
            let home_only = spec.home_only();
            let report = distribute(
                ctx.account,
                &outcome.image,
                &home_only,
                ctx.reporter,
                ctx.cancel,
            );
            Some(report.await)
        }
        None => None,
    };
    if let Some(failed) = home
        .as_ref()
        .and_then(|d| d.failed().first().cloned().cloned())
    {
        close_journal(Arc::new(journal), ctx.cloud, "failed");
        anyhow::bail!(
            "image {} could not be published in {}: {}; the layers above it were not baked",
            outcome.image.name,
            failed.region,
            failed.error.unwrap_or_default()
        );
    }
    Ok(Layer {
        outcome,
        run_id: plan.run_id,
        run_uuid,
        home,
        journal: Arc::new(journal),
    })
}

/// The rest of `layer`'s distribution, started when first polled: the copies of a layer
/// below; the whole distribution of the image itself (held by its run until the copies
/// are done, see [`distribute_baked`]).
fn copies_of<'a>(ctx: &LayerContext<'a>, layer: &Layer, limits: &'a CopyLimits) -> Copies<'a> {
    let Some(spec) = ctx.spec.filter(|s| ctx.last || !s.regions.is_empty()) else {
        return Box::pin(async { None });
    };
    let (account, reporter, cancel, last) = (ctx.account, ctx.reporter, ctx.cancel, ctx.last);
    let outcome = layer.outcome.clone();
    let journal = layer.journal.clone();
    let run_id = layer.run_id.clone();
    let spec = if last { spec.clone() } else { spec.copies() };
    Box::pin(async move {
        let run = CopyRun {
            run_id: Some(run_id),
            journal: journal.as_ref(),
        };
        let image = &outcome.image;
        let report = match last {
            true => {
                distribute_baked(account, &outcome, &spec, reporter, cancel, limits, &run).await
            }
            false => distribute_run(account, image, &spec, reporter, cancel, limits, &run).await,
        };
        Some(report)
    })
}

/// A layer with its whole distribution, appended to the manifest; its run's journal is
/// closed. A distribution cancelled before its copies were done is an interruption.
fn finish(
    args: &BakeArgs,
    cloud: &Cloud,
    layer: Layer,
    copies: Option<DistributionReport>,
) -> anyhow::Result<Baked> {
    let cancelled = copies.as_ref().is_some_and(|c| c.cancelled);
    let outcome = if cancelled { "interrupted" } else { "ok" };
    let summary =
        cancelled.then(|| journal::cleanup_text(&layer.journal, "bake", outcome, &cloud.region));
    close_journal(layer.journal, cloud, outcome);
    if let Some(summary) = summary {
        say(summary);
        let error = anyhow::anyhow!(
            "interrupted while distributing {}: what the run had made was removed",
            layer.outcome.image.name
        );
        return Err(Exit::new(exit::INTERRUPTED, error).into());
    }
    let distribution = match (layer.home, copies) {
        (Some(home), Some(copies)) => Some(home.merge(copies)),
        (home, copies) => home.or(copies),
    };
    let build = Build::new(
        &layer.outcome,
        &layer.run_id,
        &layer.run_uuid,
        distribution.as_ref(),
        cloud.clock.now(),
    );
    crate::manifest::append(&args.manifest, &build)?;
    Ok(Baked {
        outcome: layer.outcome,
        distribution,
    })
}

fn close_journal(journal: Arc<FileJournal>, cloud: &Cloud, outcome: &str) {
    // The distribution that shared it is done, so this is the last reference.
    let Ok(journal) = Arc::try_unwrap(journal) else {
        tracing::warn!("the run journal is still shared; left open for `kiln gc`");
        return;
    };
    journal::close(journal, cloud.clock.now(), outcome);
}

/// Bakes one plan, mapping a failure to the exit code a pipeline branches on. Every
/// resource the bake makes is journaled on disk the moment it exists
/// ([`crate::journal::dir`]), so that `kiln gc` can remove what a killed run left; an
/// unsuccessful bake says what it removed and what it could not. A successful bake
/// hands its journal on, open, to the image's distribution.
pub async fn bake_journaled(
    global: &GlobalArgs,
    cloud: &Cloud,
    plan: &kiln_builder::BakePlan,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> anyhow::Result<(BakeOutcome, FileJournal)> {
    let journal = journal::create(global, &plan.run_id, cloud.clock.now())?;
    let result = kiln_builder::bake_with_journal(cloud, plan, reporter, cancel, &journal).await;
    let error = match result {
        Ok(outcome) => return Ok((outcome, journal)),
        Err(error) => error,
    };
    let outcome = if error.is_cancelled() {
        "interrupted"
    } else {
        "failed"
    };
    say(journal::cleanup_text(
        &journal,
        "bake",
        outcome,
        &cloud.region,
    ));
    journal::close(journal, cloud.clock.now(), outcome);
    Err(exit_for(error))
}

/// What the pipeline's `distribute` section asks for; `None` when it asks for nothing.
pub fn distribute_spec(loaded: &super::Loaded) -> Option<DistributeSpec> {
    let file = &loaded.pipeline.file;
    let section = &file.distribute;
    if section.is_empty() {
        return None;
    }
    Some(DistributeSpec {
        regions: section.regions.clone(),
        channel: section.channel.clone(),
        launch_permissions: LaunchPermissions {
            accounts: section.accounts.clone(),
            organization_arns: section.organizations.clone(),
            organizational_unit_arns: section.organizational_units.clone(),
        },
        kms_keys: section.kms_keys.clone(),
        encrypted: file
            .builder
            .root_volume
            .as_ref()
            .is_none_or(|v| v.encrypted),
        copy_budget: section.copy_timeout,
        copies_only: false,
    })
}

/// An error naming every region a distribution failed in, after the result is printed.
pub fn distribution_failures<'a>(baked: impl IntoIterator<Item = &'a Baked>) -> anyhow::Result<()> {
    let failures: Vec<String> = baked
        .into_iter()
        .filter_map(|b| Some((b, b.distribution.as_ref()?)))
        .flat_map(|(b, d)| {
            d.failed().into_iter().map(move |r| {
                let error = r.error.clone().unwrap_or_default();
                format!("{} in {}: {error}", b.outcome.image.name, r.region)
            })
        })
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    let error = anyhow::anyhow!(
        "distribution failed ({}); the other regions have the image. Run the same command \
         again to retry: images and copies that exist are reused",
        failures.join("; ")
    );
    Err(Exit::new(exit::FAILED, error).into())
}

pub fn layers_text(layers: &[LayerResult]) -> String {
    layers
        .iter()
        .map(|l| {
            format!(
                "layer {} {} ({})\n{}",
                l.image.id,
                l.image.name,
                if l.image.reused { "reused" } else { "baked" },
                distribution_text(l.distribution.as_ref())
            )
        })
        .collect()
}

pub fn distribution_text(report: Option<&DistributionReport>) -> String {
    let Some(report) = report else {
        return String::new();
    };
    report
        .regions
        .iter()
        .map(|r| match (&r.image, &r.error) {
            (_, Some(error)) => format!("  {}: FAILED {error}\n", r.region),
            (Some(id), None) => format!(
                "  {}: {id}{}\n",
                r.region,
                if r.reused { " (existing copy)" } else { "" }
            ),
            (None, None) => format!("  {}: -\n", r.region),
        })
        .collect()
}

pub fn exit_for(error: BakeError) -> anyhow::Error {
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
