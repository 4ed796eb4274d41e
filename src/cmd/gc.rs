//! `kiln gc`: find what bakes and rollouts left in the account and remove it.
//!
//! The account is the source of truth, not the local journal (the machine that ran a
//! killed run may be gone): every resource kiln tagged with a run id is considered
//! ([`kiln_builder::sweep`] for bakes, then [`kiln_rollout::sweep`] for rollouts). The local journals only tell live runs from dead ones
//! sooner than the grace period would. The list is shown first; `--dry-run` stops there,
//! and deleting needs a yes, typed or given as `--yes` (CI, where stdin is no terminal).

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kiln_builder::sweep::{self, Found, RunJudge, Survey, SweepReport};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::exit::{self, Exit};
use crate::output::print_result;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only list what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove without asking; required when stdin is not a terminal (CI).
    #[arg(long, conflicts_with = "dry_run")]
    pub yes: bool,
    /// A run with no local journal counts as over once it is older than this (a bake
    /// takes well under an hour; the margin covers slow recipes).
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

/// The JSON contract of `kiln gc --output json`: fields may be added, never renamed.
#[derive(Debug, Serialize)]
struct GcResult {
    region: String,
    dry_run: bool,
    to_remove: Vec<Found>,
    kept: Vec<Found>,
    removed: Vec<Found>,
    failed: Vec<FailedRemoval>,
}

#[derive(Debug, Serialize)]
struct FailedRemoval {
    #[serde(flatten)]
    found: Found,
    error: String,
}

pub async fn run(global: &GlobalArgs, args: &GcArgs) -> anyhow::Result<()> {
    let account = crate::account::open(global, None).await?;
    let region = global
        .region
        .clone()
        .unwrap_or_else(|| account.home_region().to_string());
    let cloud = account
        .region(&region)
        .await
        .with_context(|| format!("open region {region}"))?;
    let dir = crate::journal::dir(global);
    let journals = kiln_builder::read_journals(&dir);
    let host = kiln_builder::journal_file::host_name();
    let local = |run_id: &str| crate::journal::run_state(&journals, run_id, &host);
    let judge = RunJudge {
        local: &local,
        grace: args.grace,
        now: cloud.clock.now(),
    };
    let rollout_judge = kiln_rollout::sweep::RunJudge {
        local: &local,
        grace: args.grace,
        now: judge.now,
    };
    let bakes = sweep::survey(&cloud, &judge)
        .await
        .with_context(|| format!("list kiln's resources in {region}"))?;
    let rollouts = kiln_rollout::sweep::survey(&cloud, &rollout_judge)
        .await
        .with_context(|| format!("list what rollouts left in {region}"))?;
    let survey = with_rollouts(bakes.clone(), &rollouts);

    let report = if args.dry_run || survey.remove.is_empty() {
        SweepReport::default()
    } else {
        eprint!("{}", list_text(&survey));
        confirm(args, survey.remove.len())?;
        let mut report = sweep::sweep(&cloud, &bakes).await;
        let done = kiln_rollout::sweep::sweep(&cloud, &rollouts).await;
        report.removed.extend(done.removed.into_iter().map(found));
        let failed = done.failed.into_iter().map(|(f, e)| (found(f), e));
        report.failed.extend(failed);
        report
    };
    forget_finished_runs(&journals, &local, &report);
    finish(global, args, survey, report)
}

/// A rollout sweep's finding in the shape `kiln gc` prints.
fn found(f: kiln_rollout::sweep::Found) -> Found {
    Found {
        kind: f.kind,
        id: f.id,
        run_id: f.run_id,
        reason: f.reason,
    }
}

/// The bake survey with the rollout survey's findings after it (removed in that order).
fn with_rollouts(mut survey: Survey, rollouts: &kiln_rollout::sweep::Survey) -> Survey {
    survey
        .remove
        .extend(rollouts.remove.iter().cloned().map(found));
    survey.kept.extend(rollouts.kept.iter().cloned().map(found));
    survey
}

fn finish(
    global: &GlobalArgs,
    args: &GcArgs,
    survey: Survey,
    report: SweepReport,
) -> anyhow::Result<()> {
    let failures = report.failed.len();
    let result = GcResult {
        region: survey.region,
        dry_run: args.dry_run,
        to_remove: survey.remove,
        kept: survey.kept,
        removed: report.removed,
        failed: report
            .failed
            .into_iter()
            .map(|(found, error)| FailedRemoval { found, error })
            .collect(),
    };
    print_result(global.output, &result, result_text)?;
    if failures > 0 {
        let error = anyhow::anyhow!(
            "{failures} resource(s) in {} could not be removed (listed above); \
             run `kiln gc` again, or remove them by hand",
            result.region
        );
        return Err(Exit::new(exit::FAILED, error).into());
    }
    Ok(())
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
    eprint!("kiln: remove these {count} resource(s)? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Exit::new(exit::OK, anyhow::anyhow!("nothing removed: not confirmed")).into())
    }
}

/// Deletes the journals of runs that are over once nothing of theirs failed to go.
fn forget_finished_runs(
    journals: &[kiln_builder::RunJournal],
    local: &dyn Fn(&str) -> sweep::RunState,
    report: &SweepReport,
) {
    for journal in journals {
        let failed = report
            .failed
            .iter()
            .any(|(f, _)| f.run_id == journal.run_id);
        if local(&journal.run_id) == sweep::RunState::Over && !failed {
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

fn list_text(survey: &Survey) -> String {
    let mut text = format!("kiln gc in {}: to remove\n", survey.region);
    text.extend(survey.remove.iter().map(line));
    text
}

fn result_text(result: &GcResult) -> String {
    let mut text = String::new();
    let section = |text: &mut String, title: &str, list: &[Found]| {
        if !list.is_empty() {
            text.push_str(&format!("{title}:\n"));
            text.extend(list.iter().map(line));
        }
    };
    if result.dry_run {
        section(&mut text, "would remove", &result.to_remove);
    } else {
        section(&mut text, "removed", &result.removed);
    }
    section(&mut text, "kept", &result.kept);
    for failed in &result.failed {
        text.push_str(&format!(
            "not removed: {} {}: {}\n",
            failed.found.kind, failed.found.id, failed.error
        ));
    }
    if result.to_remove.is_empty() {
        text.push_str(&format!(
            "nothing to remove in {}: no resource of a finished kiln run is left\n",
            result.region
        ));
    }
    text
}
