//! Runs one parsed command line: logging, the runtime, the signals, the dispatch.

use std::io::{IsTerminal, Write};

use kiln_cloud::progress::PROGRESS_TARGET;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat, PipelineCommand};
use crate::{cmd, exit, signals};

/// Runs the command and returns the process exit code; errors are printed on stderr.
pub fn main(cli: Cli) -> u8 {
    init_logging(&cli.global);
    let runtime = match runtime(&cli.global) {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::output::say(format_args!("kiln: cannot start the async runtime: {e}\n"));
            return exit::FAILED;
        }
    };
    let output = cli.global.output;
    match runtime.block_on(run(cli)) {
        Ok(()) => exit::OK,
        Err(e) => {
            let (message, code) = (exit::render(&e), exit::code_of(&e));
            crate::output::say(format_args!("kiln: error: {message}\n"));
            if output == OutputFormat::Json && !crate::output::result_printed() {
                // CI archives stdout: a failed run still leaves a result it can read.
                let result =
                    serde_json::json!({ "error": { "message": message, "exit_code": code } });
                let _ = writeln!(std::io::stdout(), "{result}");
            }
            code
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

/// Logs on stderr beside the progress lines. The libraries' milestones already reach the
/// watcher as progress events, so their logs start at warn; `-v` adds their info and
/// debug lines, `-vv` everything. The AWS SDK stays at warn unless `KILN_LOG` says
/// otherwise, since its info lines describe every request.
fn init_logging(global: &GlobalArgs) {
    let libraries = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // The events' mirror as logs is off: the reporter already shows every event once.
    let default = format!(
        "warn,{PROGRESS_TARGET}=off,kiln_cloud={libraries},kiln_builder={libraries},\
         kiln_rollout={libraries}"
    );
    let filter = EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // On the simulated account the progress lines carry its time; the wall clock beside
    // them on the log lines would read as a second, contradicting clock.
    let _ = match global.sim {
        Some(_) => logs.without_time().try_init(),
        None => logs.try_init(),
    };
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
        Command::Rollback(args) => cmd::rollback::run(global, args, &cancel).await,
        Command::Status(args) => cmd::status::run(global, args).await,
        Command::Pipeline(PipelineCommand::Run(args)) => {
            cmd::pipeline_run::run(global, args, &cancel).await
        }
        Command::Gc(args) => cmd::gc::run(global, args).await,
        Command::IamPolicy(args) => cmd::iam_policy::run(global, args),
        Command::Promote(args) => cmd::promote::run(global, args).await,
        Command::Images(args) => cmd::images::run(global, args).await,
        Command::Prune(args) => cmd::prune::run(global, args).await,
    }
}
