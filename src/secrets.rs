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
use kiln_builder::recipe::Rendered;
use kiln_builder::BakePlan;
use kiln_cloud::{Cloud, ParameterType};

use crate::exit::{self, Exit};

/// A SecureString's name and value.
pub struct SecretValue {
    pub name: String,
    value: String,
}

/// Reads the SecureStrings `names` designate (a name, or a path ending in `/`).
pub async fn read(cloud: &Cloud, names: &[String]) -> anyhow::Result<Vec<SecretValue>> {
    let mut found = Vec::new();
    for name in names {
        let region = &cloud.region;
        let params = if name.ends_with('/') {
            let path = name.trim_end_matches('/');
            cloud
                .parameters
                .get_parameters_by_path(path, true)
                .await
                .with_context(|| format!("read the secrets under {name} in {region}"))?
        } else {
            let one = cloud
                .parameters
                .get_parameter(name, true)
                .await
                .with_context(|| format!("read secret parameter {name} in {region}"))?;
            let Some(one) = one else {
                let error = anyhow::anyhow!(
                    "secret parameter {name} does not exist in {region}; create it (a \
                     SecureString) or remove it from `secret_parameters`"
                );
                return Err(Exit::new(exit::BAD_INPUT, error).into());
            };
            vec![one]
        };
        found.extend(
            params
                .into_iter()
                .filter(|p| p.kind == ParameterType::SecureString && !p.value.is_empty())
                .map(|p| SecretValue {
                    name: p.name,
                    value: p.value,
                }),
        );
    }
    Ok(found)
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
