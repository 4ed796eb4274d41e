//! `kiln images [--image NAME]`: every version of kiln's images per region, its state,
//! the channels that point at it and what uses it (launch template versions, groups,
//! instances).

use kiln_builder::catalogue::{self, CatalogueEntry};
use serde::Serialize;

use crate::cli::{GlobalArgs, ImagesArgs};
use crate::output::print_result;

/// `kiln images --output json`: fields may be added, never renamed.
#[derive(Debug, Serialize)]
struct ImagesResult {
    regions: Vec<String>,
    images: Vec<CatalogueEntry>,
}

pub async fn run(global: &GlobalArgs, args: &ImagesArgs) -> anyhow::Result<()> {
    let account = crate::account::open(global, None).await?;
    let regions = super::regions_of(global, &args.regions, account.as_ref());
    super::check_regions(account.as_ref(), &regions).await?;
    let images = catalogue::list_regions(account.as_ref(), &regions, args.image.as_deref())
        .await
        .map_err(super::promote::exit_for)?;
    let result = ImagesResult { regions, images };
    print_result(global.output, &result, |r| {
        if r.images.is_empty() {
            let family = args
                .image
                .as_deref()
                .map(|i| format!(" {i}"))
                .unwrap_or_default();
            return format!("no kiln image{family} in {}\n", r.regions.join(", "));
        }
        r.images.iter().map(entry_text).collect()
    })
}

fn entry_text(e: &CatalogueEntry) -> String {
    let mut notes = Vec::new();
    if e.test_failed {
        notes.push("test failed".to_string());
    }
    if e.deprecated_at.is_some() {
        notes.push("deprecated".to_string());
    }
    if !e.channels.is_empty() {
        notes.push(format!("channels {}", e.channels.join(",")));
    }
    notes.push(if e.used_by.is_empty() {
        "unused".to_string()
    } else {
        format!("used by {}", e.used_by.join(", "))
    });
    format!(
        "{:<16} {:<24} {:<14} {} {:<10} {}\n",
        e.region,
        e.image,
        e.version,
        e.id,
        e.state,
        notes.join("; ")
    )
}
