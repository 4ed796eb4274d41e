//! `kiln iam-policy --role operator|builder|instance`: the least-privilege IAM policy
//! document of each identity, printed as JSON (see [`kiln_cloud::iam`]).
//!
//! `--pipeline FILE` scopes the policies to what the file names: the operator may change
//! only its targets' groups, target groups and load balancers (and the green copies kiln
//! makes of them), and the web instances read the file's `parameter_prefix`. Without it
//! those resources are `*`, and stderr says what is left open.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use kiln_cloud::iam::{self, PolicyScope};

use crate::cli::{GlobalArgs, OutputFormat};
use crate::exit::{self, Exit};
use crate::output::{print_result, say};
use crate::pipeline::Pipeline;

/// The builder's role when none is named, as the POC names it.
const DEFAULT_BUILDER_ROLE: &str = "kiln-builder";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Whoever runs kiln (a person, the Jenkins agent).
    Operator,
    /// The builder and test instances' profile.
    Builder,
    /// The web instances launched from the image.
    Instance,
}

#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    /// Whose policy to print.
    #[arg(long, value_enum)]
    pub role: Role,
    /// Scope the policy to this pipeline's targets and parameter prefix.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// The account the policy is for (default: any).
    #[arg(long, default_value = "*")]
    pub account_id: String,
    /// Roles the operator may pass to EC2: the builder's and the web instances' (the
    /// role of the web launch template's profile, which green groups launch with).
    #[arg(long = "pass-role", default_value = DEFAULT_BUILDER_ROLE)]
    pub pass_roles: Vec<String>,
    /// The Parameter Store prefix the web instances read at boot (`/poc/web`); default:
    /// the pipeline's `parameter_prefix` variable.
    #[arg(long)]
    pub parameter_prefix: Option<String>,
    /// The S3 bucket the builder fetches artifacts from.
    #[arg(long)]
    pub artifact_bucket: Option<String>,
    /// The KMS key ARN of the SecureStrings (default: the account's aws/ssm key).
    #[arg(long)]
    pub kms_key: Option<String>,
}

pub fn run(global: &GlobalArgs, args: &IamPolicyArgs) -> anyhow::Result<()> {
    let scope = scope(global, args)?;
    let policy = match args.role {
        Role::Operator => iam::operator_policy(&scope),
        Role::Builder => iam::builder_policy(&scope),
        Role::Instance => iam::instance_policy(&scope),
    };
    for warning in open_ends(args, &scope) {
        say(format_args!("kiln: {warning}\n"));
    }
    // A policy document is JSON whatever --output says.
    print_result(OutputFormat::Json, &policy, |_| String::new())
}

fn scope(global: &GlobalArgs, args: &IamPolicyArgs) -> anyhow::Result<PolicyScope> {
    let mut scope = PolicyScope {
        account: args.account_id.clone(),
        region: global.region.clone().unwrap_or_else(|| "*".into()),
        pass_roles: args.pass_roles.clone(),
        parameter_prefix: args.parameter_prefix.clone(),
        artifact_bucket: args.artifact_bucket.clone(),
        kms_key: args.kms_key.clone(),
        ..PolicyScope::default()
    };
    let Some(path) = &args.pipeline else {
        return Ok(scope);
    };
    let pipeline = Pipeline::load(path).map_err(|e| Exit::new(exit::BAD_INPUT, e))?;
    let file = &pipeline.file;
    let names = |pick: fn(&crate::pipeline::TargetSection) -> Option<&String>| {
        let mut names: Vec<String> = file.targets.iter().filter_map(pick).cloned().collect();
        names.sort();
        names.dedup();
        names
    };
    scope.groups = names(|t| Some(&t.group));
    scope.target_groups = names(|t| t.target_group.as_ref());
    scope.load_balancers = names(|t| t.load_balancer.as_ref());
    if scope.parameter_prefix.is_none() {
        let prefix = file.image.variables.get("parameter_prefix");
        scope.parameter_prefix = prefix.and_then(|p| p.as_str()).map(str::to_string);
    }
    Ok(scope)
}

/// What the printed policy leaves wider than it could be, and how to narrow it.
fn open_ends(args: &IamPolicyArgs, scope: &PolicyScope) -> Vec<String> {
    let mut open = Vec::new();
    match args.role {
        Role::Operator => {
            if args.pipeline.is_none() {
                open.push(
                    "no --pipeline: the operator may change any group, target group and \
                     listener; pass the pipeline file to scope them to its targets"
                        .to_string(),
                );
            }
            if scope.pass_roles == [DEFAULT_BUILDER_ROLE] {
                open.push(format!(
                    "only {DEFAULT_BUILDER_ROLE} may be passed: blue/green and A/B canaries \
                     create groups from the web launch template, which also need \
                     --pass-role <the web instances' role>"
                ));
            }
        }
        Role::Builder if scope.artifact_bucket.is_none() => {
            open.push("no --artifact-bucket: the builder policy reads no S3 object".into());
        }
        Role::Instance if scope.parameter_prefix.is_none() => {
            open.push(
                "no --parameter-prefix (nor a pipeline with `parameter_prefix`): the \
                 instances may read /kiln only, not the environment's values"
                    .into(),
            );
        }
        _ => {}
    }
    open
}
