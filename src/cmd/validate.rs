//! `kiln validate FILE`: the pipeline file, its recipes and templates are read, checked
//! and rendered; no account is opened.

use serde::Serialize;

use crate::cli::{FileArgs, GlobalArgs};
use crate::output::print_result;

#[derive(Debug, Serialize)]
struct Validated {
    file: String,
    image: String,
    recipes: Vec<String>,
    steps: usize,
    targets: Vec<String>,
    /// Lower layers baked before the image, in order.
    layers: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: &FileArgs) -> anyhow::Result<()> {
    let loaded = super::load(&args.file)?;
    let file = &loaded.pipeline.file;
    let result = Validated {
        file: args.file.display().to_string(),
        image: file.image.name.clone(),
        layers: file.layers.iter().map(|l| l.name.clone()).collect(),
        recipes: loaded.rendered.recipes.clone(),
        steps: loaded.rendered.steps.len(),
        targets: file.targets.iter().map(|t| t.name.clone()).collect(),
    };
    print_result(global.output, &result, |r| {
        format!(
            "{}: valid ({}{} recipes, {} steps, targets: {})\n",
            r.file,
            if r.layers.is_empty() {
                String::new()
            } else {
                format!("on layers {}: ", r.layers.join(", "))
            },
            r.recipes.len(),
            r.steps,
            if r.targets.is_empty() {
                "none".to_string()
            } else {
                r.targets.join(", ")
            }
        )
    })
}
