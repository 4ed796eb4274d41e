//! `kiln iam-policy --role operator|builder|instance`: the least-privilege IAM policy
//! document of each identity, printed as JSON (see [`kiln_cloud::iam`]).

use clap::{Args, ValueEnum};
use kiln_cloud::iam::{self, PolicyScope};

use crate::cli::{GlobalArgs, OutputFormat};
use crate::output::print_result;

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
    /// The account the policy is for (default: any).
    #[arg(long, default_value = "*")]
    pub account_id: String,
    /// Roles the operator may pass to EC2 (the builder's and the web instances').
    #[arg(long = "pass-role", default_value = "kiln-builder")]
    pub pass_roles: Vec<String>,
    /// The Parameter Store prefix the web instances read at boot (`/poc/web`).
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
    let scope = PolicyScope {
        account: args.account_id.clone(),
        region: global.region.clone().unwrap_or_else(|| "*".into()),
        pass_roles: args.pass_roles.clone(),
        parameter_prefix: args.parameter_prefix.clone(),
        artifact_bucket: args.artifact_bucket.clone(),
        kms_key: args.kms_key.clone(),
    };
    let policy = match args.role {
        Role::Operator => iam::operator_policy(&scope),
        Role::Builder => iam::builder_policy(&scope),
        Role::Instance => iam::instance_policy(&scope),
    };
    if args.role == Role::Builder && args.artifact_bucket.is_none() {
        eprintln!("kiln: no --artifact-bucket: the builder policy reads no S3 object");
    }
    // A policy document is JSON whatever --output says.
    print_result(OutputFormat::Json, &policy, |_| String::new())
}
