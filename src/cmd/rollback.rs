//! `kiln rollback FILE [--target NAME]`: undo the last rollout of each target. A
//! blue/green or A/B target goes back to blue in one listener change; a refresh still
//! running is rolled back by AWS; a finished one is undone by a refresh back to the
//! version recorded on the group.

use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, TargetArgs};
use crate::cmd::rollout::{exit_for, RolloutResult};
use crate::exit::{self, Exit};
use crate::output::{print_result, Reporter};
use crate::pipeline::Pipeline;

#[derive(Debug, serde::Serialize)]
struct RollbacksResult {
    rollbacks: Vec<RolloutResult>,
}

pub async fn run(
    global: &GlobalArgs,
    args: &TargetArgs,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let pipeline = Pipeline::load(&args.file).map_err(|e| Exit::new(exit::BAD_INPUT, e))?;
    let targets = super::selected(&pipeline, args.target.as_deref())?;
    let cloud = super::cloud(global, &pipeline).await?;
    let reporter = Reporter::new(global, global.sim.is_some());
    let mut rollbacks = Vec::new();
    let mut failure = None;
    for target in targets {
        let group = kiln_rollout::serving_group(&cloud, &target.name, &target.group)
            .await
            .map_err(|e| exit_for(e, &pipeline.path))?;
        match kiln_rollout::rollback(&cloud, &group, &reporter, cancel).await {
            Ok(outcome) => {
                // A group kiln never rolled out to carries no target tag: name it here.
                let mut result = RolloutResult::from(&outcome);
                result.target = target.name.clone();
                rollbacks.push(result);
            }
            // A target that could not be rolled back stops the others: an operator
            // decides what comes next.
            Err(e) => {
                failure = Some(exit_for(e, &pipeline.path));
                break;
            }
        }
    }
    reporter.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    let result = RollbacksResult { rollbacks };
    print_result(global.output, &result, |r| {
        super::rollout::rollouts_text(&r.rollbacks)
    })
}
