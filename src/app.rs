//! Runs one parsed command line: logging, the runtime, the signals, the dispatch.

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, GlobalArgs, PipelineCommand};
use crate::{cmd, exit, signals};

/// Runs the command and returns the process exit code; errors are printed on stderr.
pub fn main(cli: Cli) -> u8 {
    init_logging(&cli.global);
    let runtime = match runtime(&cli.global) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kiln: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("kiln: error: {e:#}");
            exit::code_of(&e)
        }
    }
}

/// A single-threaded runtime; on the simulated account its clock is paused, so that
/// simulated minutes of waiting pass as soon as nothing else is left to do.
fn runtime(global: &GlobalArgs) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if global.sim.is_some() {
        builder.start_paused(true);
    }
    builder.build()
}

/// kiln's own messages at info (warn with --quiet); the AWS SDK's at warn, since its
/// info lines describe every request.
fn init_logging(global: &GlobalArgs) {
    let own = match (global.quiet, global.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let default = format!("warn,kiln={own},kiln_cloud={own},kiln_builder={own},kiln_rollout={own}");
    let filter = EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    signals::watch(cancel.clone());
    let global = &cli.global;
    match &cli.command {
        Command::Validate(args) => cmd::validate::run(global, args),
        Command::Plan(args) => cmd::plan::run(global, args).await,
        Command::Bake(args) => cmd::bake::run(global, args, &cancel).await,
        Command::Rollout(args) => cmd::rollout::run(global, args, &cancel).await,
        Command::Pipeline(PipelineCommand::Run(args)) => {
            cmd::pipeline_run::run(global, args, &cancel).await
        }
    }
}
