//! Which account a command acts on: the simulated one (`--sim`) or AWS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kiln_cloud::sim::{SimAccount, SimError};
use kiln_cloud::Account;

use crate::cli::GlobalArgs;
use crate::exit::{self, Exit};

/// Opens the account the global options name. `seed` is the pipeline's account seed, used
/// only to create a simulated account whose state file does not exist yet.
pub async fn open(global: &GlobalArgs, seed: Option<&Path>) -> anyhow::Result<Arc<dyn Account>> {
    match &global.sim {
        Some(state) => open_sim(state, seed, global.faults.as_deref()),
        None => open_aws(global).await,
    }
}

fn open_sim(
    state: &Path,
    seed: Option<&Path>,
    faults: Option<&Path>,
) -> anyhow::Result<Arc<dyn Account>> {
    if !state.exists() && seed.is_none() {
        let error = anyhow::anyhow!(
            "simulated account {} does not exist and no account seed is named; \
             run a command with a pipeline file whose `simulation.seed` names one",
            state.display()
        );
        return Err(Exit::new(exit::BAD_INPUT, error).into());
    }
    // A state file in a folder that does not exist yet is a new account, not an error.
    if let Some(folder) = state.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("create the folder of {}", state.display()))?;
    }
    let account = SimAccount::open(state, seed, faults).map_err(|e| {
        let code = match &e {
            SimError::Locked { .. } => exit::LOCKED,
            SimError::Parse { .. }
            | SimError::Seed { .. }
            | SimError::Read { .. }
            | SimError::NoSeed { .. }
            | SimError::BadState { .. } => exit::BAD_INPUT,
            SimError::Write { .. } => exit::FAILED,
        };
        let context = format!("open simulated account {}", state.display());
        Exit::new(code, anyhow::Error::new(e).context(context))
    })?;
    Ok(Arc::new(account))
}

#[cfg(feature = "aws")]
async fn open_aws(global: &GlobalArgs) -> anyhow::Result<Arc<dyn Account>> {
    use kiln_cloud::aws::{AwsAccount, AwsOptions};
    let options = AwsOptions {
        region: global.region.clone(),
        profile: global.profile.clone(),
        endpoint_url: global.endpoint_url.clone(),
    };
    let account = AwsAccount::connect(options)
        .await
        .context("connect to AWS (check the profile, the region and the credentials)")?;
    Ok(Arc::new(account))
}

#[cfg(not(feature = "aws"))]
async fn open_aws(_global: &GlobalArgs) -> anyhow::Result<Arc<dyn Account>> {
    anyhow::bail!("this kiln was built without the `aws` feature; use --sim STATE")
}

/// The seed path of a pipeline's simulated account, resolved against its file.
pub fn seed_of(pipeline: &crate::pipeline::Pipeline) -> Option<PathBuf> {
    pipeline
        .file
        .simulation
        .as_ref()
        .map(|s| pipeline.resolve(&s.seed))
}
