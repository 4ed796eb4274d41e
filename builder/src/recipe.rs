//! Recipes: the YAML model, template rendering and the step scripts (being written).
//!
//! Placeholder with the agreed contract, so that the bake compiles until the recipes land.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Build,
    Validate,
    Hygiene,
    Test,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub recipe: String,
    pub name: String,
    pub phase: Phase,
    pub script: String,
    pub timeout: Duration,
    pub reboot: bool,
}

#[derive(Debug, Clone)]
pub struct RecipeSource {
    pub recipes_dir: PathBuf,
    pub templates_dir: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub recipes: Vec<String>,
    pub steps: Vec<Step>,
    pub inputs: Vec<(String, Vec<u8>)>,
    pub secrets: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("recipe error")]
pub struct RecipeError;

pub fn render(
    _source: &RecipeSource,
    _names: &[String],
    _variables: &BTreeMap<String, serde_json::Value>,
) -> Result<Rendered, RecipeError> {
    Err(RecipeError)
}
