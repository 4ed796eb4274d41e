//! `kiln promote IMAGE VERSION --to CHANNEL`: point a channel at a version, in every
//! region that has it. Parameter Store keeps the previous value in the channel's history;
//! a version that failed its test is refused.

use kiln_builder::catalogue::{self, CatalogueError, Promotion};
use serde::Serialize;

use crate::cli::{GlobalArgs, PromoteArgs};
use crate::exit::{self, Exit};
use crate::output::print_result;

/// `kiln promote --output json`: fields may be added, never renamed.
#[derive(Debug, Serialize)]
struct PromoteResult {
    image: String,
    version: String,
    channel: String,
    promotions: Vec<Promotion>,
}

pub async fn run(global: &GlobalArgs, args: &PromoteArgs) -> anyhow::Result<()> {
    if let Some((message, hint)) = crate::aws_names::channel_problem(&args.to) {
        let error = anyhow::anyhow!("--to {}: {message}\n  hint: {hint}", args.to);
        return Err(Exit::new(exit::BAD_INPUT, error).into());
    }
    let account = crate::account::open(global, None).await?;
    let regions = super::regions_of(global, &args.regions, account.as_ref());
    super::check_regions(account.as_ref(), &regions).await?;
    let promotions = catalogue::promote(
        account.as_ref(),
        &regions,
        &args.image,
        &args.version,
        &args.to,
    )
    .await
    .map_err(exit_for)?;
    let result = PromoteResult {
        image: args.image.clone(),
        version: args.version.clone(),
        channel: args.to.clone(),
        promotions,
    };
    print_result(global.output, &result, |r| {
        r.promotions
            .iter()
            .map(|p| {
                format!(
                    "{} {} -> {} (was {}, parameter version {})\n",
                    p.region,
                    p.parameter,
                    p.image,
                    p.previous.as_deref().unwrap_or("empty"),
                    p.parameter_version
                )
            })
            .collect()
    })
}

/// Refusals are bad input: nothing was changed.
pub fn exit_for(error: CatalogueError) -> anyhow::Error {
    let code = match &error {
        CatalogueError::Cloud { .. } => exit::FAILED,
        _ => exit::BAD_INPUT,
    };
    Exit::new(code, error).into()
}
