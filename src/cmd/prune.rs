//! `kiln prune --keep N --older-than D [--dry-run]`: retention. Images in use (any
//! launch template version, group or instance) or in a channel are never touched; the
//! others are deprecated, deregistered, and every snapshot is deleted, in every region.

use kiln_builder::catalogue::{self, PruneReport, PruneSpec};

use crate::cli::{GlobalArgs, PruneArgs};
use crate::exit::{self, Exit};
use crate::output::print_result;

pub async fn run(global: &GlobalArgs, args: &PruneArgs) -> anyhow::Result<()> {
    let account = crate::account::open(global, None).await?;
    let regions = super::regions_of(global, &args.regions, account.as_ref());
    super::check_regions(account.as_ref(), &regions).await?;
    let home = account
        .region(&regions[0])
        .await
        .map_err(|e| Exit::new(exit::FAILED, e))?;
    let spec = PruneSpec {
        image_name: args.image.clone(),
        keep: args.keep,
        older_than: args.older_than,
        dry_run: args.dry_run,
    };
    let report = catalogue::prune(account.as_ref(), &regions, &spec, home.clock.now())
        .await
        .map_err(super::promote::exit_for)?;
    print_result(global.output, &report, report_text)?;
    if report.errors.is_empty() {
        return Ok(());
    }
    let error = anyhow::anyhow!("prune left things behind: {}", report.errors.join("; "));
    Err(Exit::new(exit::FAILED, error).into())
}

fn report_text(report: &PruneReport) -> String {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let removed = report.removed.iter().map(|p| {
        format!(
            "{verb} {} {} ({}) in {} with {} snapshots\n",
            p.id,
            p.name,
            p.version,
            p.region,
            p.snapshots.len()
        )
    });
    let kept = report.kept.iter().map(|k| {
        format!(
            "kept {} ({}) in {}: {}\n",
            k.id, k.version, k.region, k.reason
        )
    });
    removed.chain(kept).collect()
}
