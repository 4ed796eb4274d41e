//! The `kiln` command: parse, set up logging, run, and exit with a code a pipeline can
//! branch on.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kiln::cli::Cli::parse();
    ExitCode::from(kiln::app::main(cli))
}
