//! Command-line arguments: the global options and one subcommand per job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::pipeline::StrategyName;

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Bake golden AMIs over SSM and roll them out to Auto Scaling groups"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Act on the simulated account kept in this state file instead of AWS (created from the
    /// pipeline's account seed when missing).
    #[arg(long, global = true, value_name = "STATE")]
    pub sim: Option<PathBuf>,

    /// Faults to inject into the simulated account (YAML); needs --sim.
    #[arg(long, global = true, value_name = "FILE", requires = "sim")]
    pub faults: Option<PathBuf>,

    /// Where run journals are kept (default: beside the --sim state file, else
    /// $XDG_STATE_HOME/kiln or ~/.local/state/kiln).
    #[arg(long, global = true, env = "KILN_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// How results are printed on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// AWS region (default: the pipeline's, then the AWS configuration's).
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,

    /// AWS profile from the shared config and credentials files.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,

    /// Send AWS calls to this endpoint (an emulator, a private endpoint).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// No progress bars, one plain line per event (the default when stderr is not a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// More log detail on stderr (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a pipeline file, its recipes and templates; change nothing.
    Validate(FileArgs),
    /// Show every change a bake and rollout would make; change nothing.
    Plan(FileArgs),
    /// Bake the pipeline's image (or reuse one with the same inputs), then distribute it.
    Bake(BakeArgs),
    /// Roll an image out to the pipeline's targets.
    Rollout(RolloutArgs),
    /// Undo the last rollout of the pipeline's targets (blue/green: one listener change).
    Rollback(TargetArgs),
    /// Show what the targets run: groups, versions and images, refreshes, the lock.
    Status(TargetArgs),
    /// Run a whole pipeline.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Find what kiln runs left in the account (by tag) and remove it.
    Gc(crate::cmd::gc::GcArgs),
    /// Print the least-privilege IAM policy of the operator, the builder or the instances.
    IamPolicy(crate::cmd::iam_policy::IamPolicyArgs),
    /// Point a channel at a version of an image (the old value stays in its history).
    Promote(PromoteArgs),
    /// List the versions of kiln's images per region, their channels and their users.
    Images(ImagesArgs),
    /// Deprecate, deregister and delete old images and every snapshot of them.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct BakeArgs {
    /// The pipeline file (YAML).
    pub file: PathBuf,
    /// The manifest file (Packer's layout) each bake appends its build to.
    #[arg(long, env = "KILN_MANIFEST", default_value = crate::manifest::DEFAULT_MANIFEST)]
    pub manifest: PathBuf,
}

/// Regions a catalogue command looks at.
#[derive(Debug, Clone, Args)]
pub struct RegionsArgs {
    /// Regions to act in, comma-separated (default: --region, else the account's home).
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The image family (`poc-web-base`).
    pub image: String,
    /// The version to promote (`2026.12.03-1`).
    pub version: String,
    /// The channel to point at it (`prod`): the parameter `/kiln/<image>/<channel>`.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub regions: RegionsArgs,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only this image family.
    #[arg(long)]
    pub image: Option<String>,
    #[command(flatten)]
    pub regions: RegionsArgs,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only this image family (default: every kiln image).
    #[arg(long)]
    pub image: Option<String>,
    /// Newest versions kept per family, whatever their age.
    #[arg(long)]
    pub keep: usize,
    /// Only versions older than this are removed (`30d`, `12h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: std::time::Duration,
    /// Say what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub regions: RegionsArgs,
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// The pipeline file (YAML).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The pipeline file (YAML).
    pub file: PathBuf,
    /// Only this target (default: every target of the file).
    #[arg(long)]
    pub target: Option<String>,
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// The pipeline file (YAML).
    pub file: PathBuf,
    /// The image to roll out (`ami-…`).
    #[arg(long, required_unless_present = "channel", conflicts_with = "channel")]
    pub image: Option<String>,
    /// Roll out the image this channel of the pipeline's image points at, in the
    /// group's region (`/kiln/<image>/<channel>`).
    #[arg(long)]
    pub channel: Option<String>,
    /// Only this target (default: every target of the file).
    #[arg(long)]
    pub target: Option<String>,
    /// Override the target's strategy.
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyName>,
}

impl ValueEnum for StrategyName {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Rolling, Self::Canary, Self::BlueGreen, Self::InPlace]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Self::Rolling => "rolling",
            Self::Canary => "canary",
            Self::BlueGreen => "blue-green",
            Self::InPlace => "in-place",
        }))
    }
}

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Bake the image (and its layers), distribute it, then roll it out to every target.
    Run(BakeArgs),
}
