//! `kiln gc`: find what bakes and rollouts left in the account and remove it.
//!
//! The account is the source of truth, not the local journal (the machine that ran a
//! killed run may be gone): every resource kiln tagged with a run id is considered
//! ([`kiln_builder::sweep`] for bakes, then [`kiln_rollout::sweep`] for rollouts). The
//! local journals tell live runs from dead ones sooner than the grace period would, and
//! name what a dead run still held. The list is shown first; `--dry-run` stops there,
//! and deleting needs a yes, typed or given as `--yes` (CI, where stdin is no terminal).
//!
//! Every region where kiln may have left something is swept: the account's home region,
//! every region the local journals name (copies go to other regions), the global
//! `--region`, and `--regions`; `--all-regions` takes every region the account has. A
//! region that cannot be listed is reported and does not stop the others; the exit code
//! then says that not everything was swept.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures_util::future::join_all;
use kiln_builder::sweep::{self, Found, RunJudge, RunState, Survey, SweepReport};
use kiln_builder::{Record, RunJournal};
use kiln_cloud::{Account, Cloud};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::exit::{self, Exit};
use crate::output::{print_result, say};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only list what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove without asking; required when stdin is not a terminal (CI).
    #[arg(long, conflicts_with = "dry_run")]
    pub yes: bool,
    /// A run with no local journal counts as over once it is older than this (a bake or
    /// a rollout takes well under an hour; the margin covers slow recipes and long
    /// canary steps).
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Also sweep these regions (comma-separated, or the flag repeated), beside the home
    /// region, the global --region and every region the local journals name.
    #[arg(long, value_delimiter = ',', value_name = "REGION")]
    pub regions: Vec<String>,
    /// Sweep every region the account has (EC2 DescribeRegions).
    #[arg(long, conflicts_with = "regions")]
    pub all_regions: bool,
}

/// The JSON contract of `kiln gc --output json`: fields may be added, never renamed.
/// The flat lists hold every region's entries (each names its region); `regions` holds
/// the same, region by region.
#[derive(Debug, Serialize)]
struct GcResult {
    /// The account's home region, swept first.
    region: String,
    dry_run: bool,
    to_remove: Vec<Found>,
    kept: Vec<Found>,
    removed: Vec<Found>,
    failed: Vec<FailedRemoval>,
    /// Every region swept, in the order swept.
    regions: Vec<RegionResult>,
    /// Regions that could not be listed: nothing was removed there.
    unswept: Vec<Unswept>,
}

#[derive(Debug, Serialize)]
struct RegionResult {
    region: String,
    to_remove: Vec<Found>,
    kept: Vec<Found>,
    removed: Vec<Found>,
    failed: Vec<FailedRemoval>,
}

#[derive(Debug, Clone, Serialize)]
struct FailedRemoval {
    #[serde(flatten)]
    found: Found,
    error: String,
}

#[derive(Debug, Clone, Serialize)]
struct Unswept {
    region: String,
    error: String,
}

/// One region listed: its ports and what the sweeps found there.
struct Listed {
    cloud: Cloud,
    /// Both sweeps' findings, bakes' first: what is shown.
    survey: Survey,
    bakes: Survey,
    rollouts: Survey,
}

pub async fn run(global: &GlobalArgs, args: &GcArgs) -> anyhow::Result<()> {
    let account = crate::account::open(global, None).await?;
    let journals = kiln_builder::read_journals(&crate::journal::dir(global));
    let regions = regions_to_sweep(account.as_ref(), global, args, &journals).await?;
    let host = kiln_builder::journal_file::host_name();
    let local = |run_id: &str| crate::journal::run_state(&journals, run_id, &host);
    let records: Vec<Record> = journals.iter().flat_map(|j| j.open.clone()).collect();

    let surveys = regions
        .iter()
        .map(|r| list_region(account.as_ref(), r, args, &local, &records));
    let mut listed = Vec::new();
    let mut unswept = Vec::new();
    for (region, result) in regions.iter().zip(join_all(surveys).await) {
        match result {
            Ok(one) => listed.push(one),
            Err(e) => {
                let error = format!("{e:#}");
                tracing::warn!(%region, %error, "region not swept");
                unswept.push(Unswept {
                    region: region.clone(),
                    error,
                });
            }
        }
    }

    let count: usize = listed.iter().map(|l| l.survey.remove.len()).sum();
    let reports = if args.dry_run || count == 0 {
        listed.iter().map(|_| SweepReport::default()).collect()
    } else {
        say(list_text(&listed));
        confirm(args, count)?;
        join_all(listed.iter().map(sweep_region)).await
    };
    if !args.dry_run {
        // A dry run changes nothing, local journals included: the real run needs them.
        forget_finished_runs(&journals, &local, &reports, &unswept);
    }
    let home = account.home_region().to_string();
    finish(global, args, home, listed, reports, unswept)
}

/// The home region, the global --region, the journals' regions and --regions (or every
/// region of the account), home first, each once.
async fn regions_to_sweep(
    account: &dyn Account,
    global: &GlobalArgs,
    args: &GcArgs,
    journals: &[RunJournal],
) -> anyhow::Result<Vec<String>> {
    let home = account.home_region().to_string();
    let mut extra: BTreeSet<String> = journals
        .iter()
        .flat_map(|j| j.open.iter().map(|r| r.region.clone()))
        .collect();
    let named: Vec<String> = global.region.iter().chain(&args.regions).cloned().collect();
    if args.all_regions || !named.is_empty() {
        let known = account
            .regions()
            .await
            .context("list the account's regions (EC2 DescribeRegions)");
        match known {
            Ok(known) => {
                check_named(&named, &known)?;
                if args.all_regions {
                    extra.extend(known);
                }
            }
            // Without the list, named regions are still tried; every region cannot be.
            Err(e) if args.all_regions => return Err(e),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "named regions not checked"),
        }
    }
    extra.extend(named);
    extra.remove(&home);
    Ok(std::iter::once(home).chain(extra).collect())
}

/// A region the account does not have is bad input, refused before anything is listed.
fn check_named(named: &[String], known: &[String]) -> anyhow::Result<()> {
    let unknown: Vec<&str> = named
        .iter()
        .filter(|r| !known.contains(r))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let error = anyhow::anyhow!(
        "the account has no region {}; its regions are: {}",
        unknown.join(", "),
        known.join(", ")
    );
    Err(Exit::new(exit::BAD_INPUT, error).into())
}

/// Lists what kiln left in one region, changing nothing.
async fn list_region(
    account: &dyn Account,
    region: &str,
    args: &GcArgs,
    local: &dyn Fn(&str) -> RunState,
    records: &[Record],
) -> anyhow::Result<Listed> {
    let cloud = account
        .region(region)
        .await
        .with_context(|| format!("open region {region}"))?;
    let judge = RunJudge {
        local,
        grace: args.grace,
        now: cloud.clock.now(),
    };
    let bakes = sweep::survey_with_journals(&cloud, &judge, records)
        .await
        .with_context(|| format!("list kiln's resources in {region}"))?;
    let rollouts = kiln_rollout::sweep::survey(&cloud, &judge)
        .await
        .with_context(|| format!("list what rollouts left in {region}"))?;
    let mut survey = bakes.clone();
    survey.extend(&rollouts);
    Ok(Listed {
        cloud,
        survey,
        bakes,
        rollouts,
    })
}

/// Removes what bakes left in the region, then what rollouts left.
async fn sweep_region(listed: &Listed) -> SweepReport {
    let mut report = sweep::sweep(&listed.cloud, &listed.bakes).await;
    report.extend(kiln_rollout::sweep::sweep(&listed.cloud, &listed.rollouts).await);
    report
}

fn finish(
    global: &GlobalArgs,
    args: &GcArgs,
    home: String,
    listed: Vec<Listed>,
    reports: Vec<SweepReport>,
    unswept: Vec<Unswept>,
) -> anyhow::Result<()> {
    let regions: Vec<RegionResult> = listed
        .into_iter()
        .zip(reports)
        .map(|(l, report)| region_result(l.survey, report))
        .collect();
    let flat = |pick: fn(&RegionResult) -> &Vec<Found>| -> Vec<Found> {
        regions
            .iter()
            .flat_map(|r| pick(r).iter().cloned())
            .collect()
    };
    let result = GcResult {
        region: home,
        dry_run: args.dry_run,
        to_remove: flat(|r| &r.to_remove),
        kept: flat(|r| &r.kept),
        removed: flat(|r| &r.removed),
        failed: regions.iter().flat_map(|r| r.failed.clone()).collect(),
        regions,
        unswept,
    };
    print_result(global.output, &result, result_text)?;
    match incomplete(&result) {
        Some(error) => Err(Exit::new(exit::FAILED, error).into()),
        None => Ok(()),
    }
}

fn region_result(survey: Survey, report: SweepReport) -> RegionResult {
    RegionResult {
        region: survey.region,
        to_remove: survey.remove,
        kept: survey.kept,
        removed: report.removed,
        failed: report
            .failed
            .into_iter()
            .map(|(found, error)| FailedRemoval { found, error })
            .collect(),
    }
}

/// Why the sweep is not complete, if it is not: removals that failed, regions unlisted.
fn incomplete(result: &GcResult) -> Option<anyhow::Error> {
    let mut why = Vec::new();
    let failed: BTreeSet<&str> = result
        .failed
        .iter()
        .map(|f| f.found.region.as_str())
        .collect();
    if !failed.is_empty() {
        why.push(format!(
            "{} resource(s) in {} could not be removed (listed above)",
            result.failed.len(),
            failed.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !result.unswept.is_empty() {
        let regions: Vec<String> = result
            .unswept
            .iter()
            .map(|u| format!("{} ({})", u.region, u.error))
            .collect();
        why.push(format!("not swept: {}", regions.join("; ")));
    }
    (!why.is_empty()).then(|| {
        anyhow::anyhow!(
            "{}; the other regions were swept. Run `kiln gc` again, or remove what is left by \
             hand",
            why.join("; ")
        )
    })
}

/// Asks before deleting: `--yes`, or a typed `y` on a terminal.
fn confirm(args: &GcArgs, count: usize) -> anyhow::Result<()> {
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        let error = anyhow::anyhow!(
            "refusing to delete {count} resource(s) without confirmation: stdin is not a \
             terminal; pass --yes to delete, or --dry-run to only list"
        );
        return Err(Exit::new(exit::BAD_INPUT, error).into());
    }
    say(format_args!(
        "kiln: remove these {count} resource(s)? [y/N] "
    ));
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Exit::new(exit::OK, anyhow::anyhow!("nothing removed: not confirmed")).into())
    }
}

/// Deletes the journals of runs that are over once nothing of theirs failed to go and
/// every region they name was swept.
fn forget_finished_runs(
    journals: &[RunJournal],
    local: &dyn Fn(&str) -> RunState,
    reports: &[SweepReport],
    unswept: &[Unswept],
) {
    for journal in journals {
        let failed = reports
            .iter()
            .flat_map(|r| &r.failed)
            .any(|(f, _)| f.run_id == journal.run_id);
        let skipped = journal
            .open
            .iter()
            .any(|r| unswept.iter().any(|u| u.region == r.region));
        if local(&journal.run_id) == RunState::Over && !failed && !skipped {
            if let Err(e) = std::fs::remove_file(&journal.path) {
                tracing::warn!(journal = %journal.path.display(), error = %e, "journal kept");
            }
        }
    }
}

fn line(found: &Found) -> String {
    format!(
        "  {} {} (run {}): {}\n",
        found.kind, found.id, found.run_id, found.reason
    )
}

/// What is about to go, region by region, before the question.
fn list_text(listed: &[Listed]) -> String {
    let mut text = String::new();
    for survey in listed.iter().map(|l| &l.survey) {
        if survey.remove.is_empty() {
            continue;
        }
        text.push_str(&format!("kiln gc in {}: to remove\n", survey.region));
        text.extend(survey.remove.iter().map(line));
    }
    text
}

fn result_text(result: &GcResult) -> String {
    let mut text = String::new();
    for region in &result.regions {
        text.push_str(&region_text(region, result.dry_run));
    }
    for unswept in &result.unswept {
        text.push_str(&format!(
            "not swept: {}: {}\n",
            unswept.region, unswept.error
        ));
    }
    text
}

fn region_text(region: &RegionResult, dry_run: bool) -> String {
    let mut text = format!("kiln gc in {}:\n", region.region);
    let section = |text: &mut String, title: &str, list: &[Found]| {
        if !list.is_empty() {
            text.push_str(&format!("{title}:\n"));
            text.extend(list.iter().map(line));
        }
    };
    if dry_run {
        section(&mut text, "would remove", &region.to_remove);
    } else {
        section(&mut text, "removed", &region.removed);
    }
    section(&mut text, "kept", &region.kept);
    for failed in &region.failed {
        text.push_str(&format!(
            "not removed: {} {}: {}\n",
            failed.found.kind, failed.found.id, failed.error
        ));
    }
    if region.to_remove.is_empty() {
        text.push_str(&format!(
            "nothing to remove in {}: no resource of a finished kiln run is left\n",
            region.region
        ));
    }
    text
}
