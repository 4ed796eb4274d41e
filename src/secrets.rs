//! Secrets the pipeline names in Parameter Store: their values must appear in nothing a
//! bake puts into the image or its logs.
//!
//! `image.secret_parameters` lists SecureString names, or paths ending in `/` (every
//! SecureString under them). Before anything is launched their values are read
//! (decrypted, kept in memory only) and searched for in every rendered script and file;
//! a match refuses the bake, naming the step and the parameter, never the value. The
//! values then join the plan's secrets, so that the bake redacts them from what it
//! shows and fails a step whose output carries one.

use anyhow::Context;
use kiln_builder::recipe::{Rendered, Seg};
use kiln_builder::BakePlan;
use kiln_cloud::throttle::retry_throttled;
use kiln_cloud::{Cloud, Parameter, ParameterType};

use crate::exit::{self, Exit};
use crate::pipeline::{ImageSection, Pipeline};

/// A SecureString's name and value.
pub struct SecretValue {
    pub name: String,
    value: String,
}

/// Refuses, before anything changes, a `secret_parameters` entry of any image section that
/// would protect nothing: values are not decrypted, only their types read.
pub async fn check(cloud: &Cloud, pipeline: &Pipeline) -> anyhow::Result<()> {
    for section in pipeline.sections() {
        designated(cloud, pipeline, section, false).await?;
    }
    Ok(())
}

/// Reads the SecureStrings a section's `secret_parameters` designate (a name, or a path
/// ending in `/`), decrypted, kept in memory only.
pub async fn read(
    cloud: &Cloud,
    pipeline: &Pipeline,
    section: &ImageSection,
) -> anyhow::Result<Vec<SecretValue>> {
    let found = designated(cloud, pipeline, section, true).await?;
    Ok(found
        .into_iter()
        .filter(|p| !p.value.is_empty())
        .map(|p| SecretValue {
            name: p.name,
            value: p.value,
        })
        .collect())
}

/// The SecureStrings of every entry; an entry that designates none is bad input at its
/// line, since the bake would then protect nothing while saying it does.
async fn designated(
    cloud: &Cloud,
    pipeline: &Pipeline,
    section: &ImageSection,
    decrypt: bool,
) -> anyhow::Result<Vec<Parameter>> {
    let mut found = Vec::new();
    for (index, name) in section.secret_parameters.iter().enumerate() {
        let params = parameters_of(cloud, name, decrypt).await?;
        let secure: Vec<Parameter> = params
            .iter()
            .filter(|p| p.kind == ParameterType::SecureString)
            .cloned()
            .collect();
        if secure.is_empty() {
            let mut at = pipeline.section_path(section);
            at.extend([Seg::Key("secret_parameters"), Seg::Index(index)]);
            let (message, hint) = protects_nothing(name, &params, &cloud.region);
            let error = pipeline.invalid_at(&at, message, hint);
            return Err(Exit::new(exit::BAD_INPUT, error).into());
        }
        found.extend(secure);
    }
    Ok(found)
}

/// The parameter `name` names, or every one under the path `name` (ending in `/`).
async fn parameters_of(cloud: &Cloud, name: &str, decrypt: bool) -> anyhow::Result<Vec<Parameter>> {
    let (region, parameters) = (&cloud.region, &cloud.parameters);
    if name.ends_with('/') {
        let path = name.trim_end_matches('/');
        return retry_throttled(|| parameters.get_parameters_by_path(path, decrypt))
            .await
            .with_context(|| format!("read the secrets under {name} in {region}"));
    }
    let one = retry_throttled(|| parameters.get_parameter(name, decrypt))
        .await
        .with_context(|| format!("read secret parameter {name} in {region}"))?;
    Ok(one.into_iter().collect())
}

/// Why an entry designates no SecureString, and the fix: nothing there, or only
/// parameters stored in clear.
fn protects_nothing(name: &str, found: &[Parameter], region: &str) -> (String, String) {
    let path = name.ends_with('/');
    match (path, found.is_empty()) {
        (true, true) => (
            format!("secret path {name} holds no parameter in {region}"),
            "fix the path, or store the secrets under it as SecureStrings first".into(),
        ),
        (true, false) => (
            format!(
                "secret path {name} holds no SecureString in {region}: its parameters are \
                 stored in clear"
            ),
            "store the secrets under it as SecureStrings (a String is kept and shown in \
             clear), or fix the path"
                .into(),
        ),
        (false, true) => (
            format!("secret parameter {name} does not exist in {region}"),
            "create it (a SecureString) or remove it from `secret_parameters`".into(),
        ),
        (false, false) => (
            format!(
                "secret parameter {name} is a {:?}, not a SecureString, in {region}",
                found[0].kind
            ),
            format!(
                "store it as a SecureString (aws ssm put-parameter --name {name} --type \
                 SecureString --overwrite ...), or remove it from `secret_parameters`"
            ),
        ),
    }
}

/// Refuses a bake whose rendered scripts or files hold a secret's value.
pub fn check_rendered(rendered: &Rendered, secrets: &[SecretValue]) -> anyhow::Result<()> {
    for secret in secrets {
        let needle = secret.value.as_bytes();
        let in_file = rendered
            .files
            .iter()
            .find(|f| f.content.windows(needle.len()).any(|w| w == needle))
            .map(|f| {
                (
                    f.recipe.as_str(),
                    f.step.as_str(),
                    format!("file {}", f.path),
                )
            });
        let in_step = || {
            rendered
                .steps
                .iter()
                .find(|s| s.script.contains(&secret.value))
                .map(|s| (s.recipe.as_str(), s.name.as_str(), "script".to_string()))
        };
        if let Some((recipe, step, what)) = in_file.or_else(in_step) {
            let error = anyhow::anyhow!(
                "the {what} of step {recipe}/{step} holds the value of secret parameter {}; \
                 find the variable or literal that carries it and remove it (secrets are \
                 read at boot from Parameter Store, never baked)",
                secret.name
            );
            return Err(Exit::new(exit::BAD_INPUT, error).into());
        }
    }
    Ok(())
}

/// Adds the values to the plan's secrets: redacted from what the bake shows, and a step
/// whose output carries one fails.
pub fn add_to_plan(plan: &mut BakePlan, secrets: &[SecretValue]) {
    plan.secrets
        .0
        .extend(secrets.iter().map(|s| s.value.clone()));
}
