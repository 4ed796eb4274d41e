//! Recipes: the YAML model, template rendering and the step scripts.
//!
//! [`render`] turns the pipeline's recipe names and variables into the exact scripts a
//! bake sends, and refuses, before anything is launched, every mistake it can see: a
//! typo in a key, an undefined or secret variable, a template that does not parse, a
//! timeout Run Command would reject. The format is documented in recipes/README.md.

mod bash;
mod check;
mod error;
mod locate;
mod model;
mod script;
mod template;
mod variables;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bash::{Bash, SyntaxError};
pub use error::{RecipeError, RecipeErrorKind, SourceLocation};
pub use locate::{locate, without_location, Seg};
pub use model::{
    read_capped, too_large, ReadCapped, DEFAULT_TIMEOUT, FILE_MAX_BYTES, MAX_TIMEOUT, MIN_TIMEOUT,
};
pub use script::CHUNK_CONTENT_BYTES;
pub use template::shell_quote;
pub use variables::VALUE_MAX_CHARS;

use model::{Recipe, StepDoc};
use template::{Origin, RecipeContext, Text};

/// The recipe every bake ends its builder work with, listed or not.
pub const HYGIENE: &str = "hygiene";

/// When a step runs. Steps run in this order: every build step of every recipe, then
/// every validate step, then the hygiene recipe, then (on a fresh instance) the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Build,
    Validate,
    Hygiene,
    Test,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::Validate => "validate",
            Phase::Hygiene => "hygiene",
            Phase::Test => "test",
        }
    }
}

/// One Run Command invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub recipe: String,
    pub name: String,
    pub phase: Phase,
    /// The complete bash script sent by Run Command, fully rendered.
    pub script: String,
    pub timeout: Duration,
    /// The step reboots the instance: the script ends with `exit 194`, on which the SSM
    /// agent reboots and runs the script again (the second run exits 0).
    pub reboot: bool,
}

/// Where recipes and templates are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeSource {
    pub recipes_dir: PathBuf,
    pub templates_dir: PathBuf,
}

/// A file a `file` step installs, as rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub recipe: String,
    pub step: String,
    /// Path under the templates folder.
    pub template: String,
    /// Destination on the instance.
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: String,
    pub content: Vec<u8>,
}

/// Everything a bake needs from the recipes, computed before any cloud call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Recipe names in order, hygiene included.
    pub recipes: Vec<String>,
    /// In execution order: all Build, then all Validate, then Hygiene, then Test.
    pub steps: Vec<Step>,
    /// `recipes/<name>.yaml` and `templates/<path>` with their raw content, for every
    /// recipe and template used, sorted by path: what the bake's input hash covers.
    pub inputs: Vec<(String, Vec<u8>)>,
    /// Names of the variables marked secret.
    pub secrets: Vec<String>,
    /// Every declared variable's value as the recipes see it: the pipeline's, else the
    /// default. What the input hash covers, so that writing a default out or leaving it
    /// to the recipe makes the same image.
    pub variables: BTreeMap<String, serde_json::Value>,
    /// Every file the steps install, rendered, in step order.
    pub files: Vec<RenderedFile>,
}

/// What a recipe is and what it needs, for listings and documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeInfo {
    pub name: String,
    pub description: String,
    pub requires: Vec<String>,
    pub variables: Vec<VariableInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VariableInfo {
    pub name: String,
    pub description: String,
    /// `None`: the pipeline must set it (or, for a secret, Parameter Store holds it).
    pub default: Option<serde_json::Value>,
    pub secret: bool,
}

/// Loads and checks one recipe, and says what it declares.
pub fn describe(source: &RecipeSource, name: &str) -> Result<RecipeInfo, RecipeError> {
    if !check::is_step_name(name) {
        return Err(unreachable_recipe(&source.recipes_dir, name));
    }
    let recipe = model::load(&source.recipes_dir, name)?;
    let variables = recipe
        .doc
        .variables
        .iter()
        .map(|(name, decl)| VariableInfo {
            name: name.clone(),
            description: decl.description.clone(),
            default: decl.default.clone(),
            secret: decl.secret,
        })
        .collect();
    Ok(RecipeInfo {
        name: recipe.name,
        description: recipe.doc.description,
        requires: recipe.doc.requires,
        variables,
    })
}

/// Loads the named recipes (plus `hygiene`), checks them and renders every step.
pub fn render(
    source: &RecipeSource,
    names: &[String],
    variables: &BTreeMap<String, serde_json::Value>,
) -> Result<Rendered, RecipeError> {
    render_layer(source, &[], names, variables)
}

/// [`render`] for a layer baked on top of an image that already has the recipes
/// `installed`: they satisfy `requires`, and are not run again.
pub fn render_layer(
    source: &RecipeSource,
    installed: &[String],
    names: &[String],
    variables: &BTreeMap<String, serde_json::Value>,
) -> Result<Rendered, RecipeError> {
    let order = pipeline_order(&source.recipes_dir, names)?;
    let recipes = order
        .iter()
        .map(|name| model::load(&source.recipes_dir, name))
        .collect::<Result<Vec<_>, _>>()?;
    requirements(&recipes, installed)?;
    let declared = variables::declarations(&recipes)?;
    variables::unknown(&source.recipes_dir, &recipes, &declared, variables)?;
    variables::kinds(&declared, variables)?;

    let mut out = Output {
        templates: Templates::new(&source.templates_dir),
        steps: Vec::new(),
        files: Vec::new(),
        bash: Bash::default(),
    };
    for recipe in &recipes {
        let ctx = variables::context(recipe, variables)?;
        render_recipe(recipe, &ctx, &mut out)?;
    }
    // Stable: within a phase, pipeline order and then file order are kept.
    out.steps.sort_by_key(|step| step.phase);
    check_expanded_names(&recipes, &out.steps)?;
    variables::leaks(&recipes, &declared, variables, &out.steps, &out.files)?;

    let inputs = inputs(&recipes, out.templates);
    let secrets = declared
        .iter()
        .filter(|(_, d)| d.decl.secret)
        .map(|(name, _)| name.clone())
        .collect();
    Ok(Rendered {
        recipes: order,
        steps: out.steps,
        inputs,
        secrets,
        variables: variables::resolved(&declared, variables),
        files: out.files,
    })
}

/// Every recipe and template file used, by logical path, sorted: what the input hash
/// covers, so that any change to what the image is made of makes a new image.
fn inputs(recipes: &[Recipe], templates: Templates) -> Vec<(String, Vec<u8>)> {
    let recipes = recipes.iter().map(|r| {
        (
            format!("recipes/{}.yaml", r.name),
            r.source.clone().into_bytes(),
        )
    });
    let templates = templates
        .used
        .into_iter()
        .map(|(path, content)| (format!("templates/{path}"), content));
    let mut inputs: Vec<(String, Vec<u8>)> = recipes.chain(templates).collect();
    inputs.sort();
    inputs
}

/// The pipeline's names in order, with `hygiene` appended when missing.
fn pipeline_order(dir: &Path, names: &[String]) -> Result<Vec<String>, RecipeError> {
    let mut order: Vec<String> = Vec::new();
    for name in names {
        if order.contains(name) {
            return Err(RecipeError::new(
                RecipeErrorKind::InvalidValue,
                SourceLocation::file(dir),
                format!("the pipeline lists recipe `{name}` twice"),
                "list each recipe once: its steps would run twice",
            ));
        }
        // A recipe name is a file name in one folder, never a path.
        if !check::is_step_name(name) {
            return Err(unreachable_recipe(dir, name));
        }
        order.push(name.clone());
    }
    if !order.iter().any(|n| n == HYGIENE) {
        order.push(HYGIENE.to_string());
    }
    Ok(order)
}

fn unreachable_recipe(dir: &Path, name: &str) -> RecipeError {
    RecipeError::new(
        RecipeErrorKind::UnknownRecipe,
        SourceLocation::file(dir),
        format!("unknown recipe `{name}`: recipe names are [a-z0-9-]+ file names"),
        format!(
            "use one of the available recipes: {}",
            model::available_recipes(dir).join(", ")
        ),
    )
}

fn requirements(recipes: &[Recipe], installed: &[String]) -> Result<(), RecipeError> {
    for (index, recipe) in recipes.iter().enumerate() {
        let mut before: BTreeSet<&str> = recipes[..index].iter().map(|r| r.name.as_str()).collect();
        before.extend(installed.iter().map(String::as_str));
        for (i, required) in recipe.doc.requires.iter().enumerate() {
            if !before.contains(required.as_str()) {
                return Err(RecipeError::new(
                    RecipeErrorKind::MissingRequirement,
                    recipe.at(&[Seg::Key("requires"), Seg::Index(i)]),
                    format!(
                        "recipe `{}` requires `{required}`, which the pipeline does not list \
                         before it",
                        recipe.name
                    ),
                    format!(
                        "add `{required}` to the pipeline's recipes, before `{}`",
                        recipe.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The phase a recipe's phase key runs in: the hygiene recipe's build and validate
/// steps both run after every other recipe's validate steps.
fn phase_of(recipe: &Recipe, key: &str) -> Phase {
    match (recipe.name == HYGIENE, key) {
        (_, "test") => Phase::Test,
        (true, _) => Phase::Hygiene,
        (false, "validate") => Phase::Validate,
        (false, _) => Phase::Build,
    }
}

/// What rendering collects, recipe after recipe.
struct Output {
    templates: Templates,
    steps: Vec<Step>,
    files: Vec<RenderedFile>,
    /// Every script is checked with `bash -n` as it is rendered.
    bash: Bash,
}

fn render_recipe(
    recipe: &Recipe,
    ctx: &RecipeContext,
    out: &mut Output,
) -> Result<(), RecipeError> {
    for (key, docs) in recipe.doc.phases() {
        let phase = phase_of(recipe, key);
        for (index, doc) in docs.iter().enumerate() {
            let at = StepAt {
                recipe,
                key,
                index,
                doc,
                phase,
            };
            let (scripts, file) = at.scripts(ctx, &mut out.templates)?;
            let names = script::chunk_names(&doc.name, scripts.len());
            for (name, script) in names.into_iter().zip(scripts) {
                if let Some(error) = out.bash.check(&script) {
                    return Err(at.syntax_error(&name, &script, &error));
                }
                out.steps.push(Step {
                    recipe: recipe.name.clone(),
                    name,
                    phase,
                    script,
                    timeout: doc.timeout.unwrap_or(DEFAULT_TIMEOUT),
                    reboot: doc.reboot,
                });
            }
            out.files.extend(file);
        }
    }
    Ok(())
}

/// One step of a recipe file, with what is needed to render it and point at it.
struct StepAt<'a> {
    recipe: &'a Recipe,
    key: &'static str,
    index: usize,
    doc: &'a StepDoc,
    phase: Phase,
}

impl StepAt<'_> {
    fn scripts(
        &self,
        ctx: &RecipeContext,
        templates: &mut Templates,
    ) -> Result<(Vec<String>, Option<RenderedFile>), RecipeError> {
        let header = script::Header {
            recipe: &self.recipe.name,
            step: &self.doc.name,
            phase: self.phase.as_str(),
        };
        let doc = self.doc;
        if let Some(body) = &doc.run {
            let text = Text {
                file: &self.recipe.file,
                text: body,
                origin: self.origin("run"),
            };
            let rendered = template::render(&text, ctx)?;
            return Ok((vec![script::run(&header, &rendered)], None));
        }
        if let Some(packages) = &doc.packages {
            return Ok((vec![script::packages(&header, packages)], None));
        }
        if let Some(service) = &doc.service {
            let text = script::service(&header, &service.name, service.enable, service.start);
            return Ok((vec![text], None));
        }
        if doc.file.is_some() {
            return self.file(ctx, templates, &header);
        }
        Ok((vec![script::reboot(&header)], None))
    }

    fn file(
        &self,
        ctx: &RecipeContext,
        templates: &mut Templates,
        header: &script::Header<'_>,
    ) -> Result<(Vec<String>, Option<RenderedFile>), RecipeError> {
        let Some(file) = &self.doc.file else {
            return Ok((Vec::new(), None));
        };
        let at = self.recipe.at(&[
            Seg::Key(self.key),
            Seg::Index(self.index),
            Seg::Key("file"),
            Seg::Key("template"),
        ]);
        let raw = templates.load(&file.template, at)?;
        let content = if file.render {
            let path = templates.dir.join(&file.template);
            let text = std::str::from_utf8(&raw).map_err(|_| not_utf8(&path))?;
            let text = Text {
                file: &path,
                text,
                origin: Origin::File,
            };
            template::render(&text, ctx)?.into_bytes()
        } else {
            raw
        };
        let dest_path = self.dest_path(ctx, &file.path)?;
        let dest = script::Destination {
            path: &dest_path,
            owner: &file.owner,
            group: &file.group,
            mode: &file.mode,
        };
        let scripts = script::file(header, &dest, &content);
        let rendered = RenderedFile {
            recipe: self.recipe.name.clone(),
            step: self.doc.name.clone(),
            template: file.template.clone(),
            path: dest_path.clone(),
            owner: file.owner.clone(),
            group: file.group.clone(),
            mode: file.mode.clone(),
            content,
        };
        Ok((scripts, Some(rendered)))
    }

    /// The destination, rendered when it holds a Tera tag (`{{ app_dir }}/.env`).
    fn dest_path(&self, ctx: &RecipeContext, written: &str) -> Result<String, RecipeError> {
        if !written.contains("{{") {
            return Ok(written.to_string());
        }
        let text = Text {
            file: &self.recipe.file,
            text: written,
            origin: Origin::Unknown,
        };
        let rendered = template::render(&text, ctx)?;
        if check::is_file_path(&rendered) {
            return Ok(rendered);
        }
        let path = [Seg::Key(self.key), Seg::Index(self.index)];
        Err(check::bad_path(self.recipe, &path, &rendered))
    }

    /// A script bash refuses, at the line of the recipe it comes from when that can be
    /// told (a `run` script that rendered line for line), else at the step.
    fn syntax_error(&self, name: &str, script: &str, error: &SyntaxError) -> RecipeError {
        let at = self.run_line(script, error.line).unwrap_or_else(|| {
            self.recipe
                .at(&[Seg::Key(self.key), Seg::Index(self.index)])
        });
        RecipeError::new(
            RecipeErrorKind::ScriptSyntax,
            at,
            format!(
                "step `{name}` of recipe `{}` is not valid bash: {}",
                self.recipe.name, error.message
            ),
            "fix the script at this line: `bash -n` (which runs nothing) refuses it, as the \
             builder's bash would",
        )
    }

    /// Where line `line` of a `run` step's script is in the recipe file: the script is the
    /// header and the rendered `run` text, which maps line for line when rendering kept
    /// the number of lines (bash may name the line after the last one).
    fn run_line(&self, script: &str, line: Option<usize>) -> Option<SourceLocation> {
        let raw = self.doc.run.as_deref()?;
        let header = script::Header {
            recipe: &self.recipe.name,
            step: &self.doc.name,
            phase: self.phase.as_str(),
        };
        let raw_lines: Vec<&str> = raw.lines().collect();
        let body_lines = script.lines().count().checked_sub(header.lines())?;
        if body_lines != raw_lines.len() || raw_lines.is_empty() {
            return None;
        }
        let body_line = line?.checked_sub(header.lines())?.clamp(1, body_lines);
        let text = raw_lines[body_line - 1];
        let column = text.len() - text.trim_start().len() + 1;
        let position = self.origin("run").map((body_line, column))?;
        Some(SourceLocation::at(&self.recipe.file, Some(position)))
    }

    /// Where the text of `key` (a `run` script) starts in the recipe file.
    fn origin(&self, key: &str) -> Origin {
        let path = [Seg::Key(self.key), Seg::Index(self.index), Seg::Key(key)];
        let Some((line, column)) = locate::locate(&self.recipe.source, &path) else {
            return Origin::Unknown;
        };
        let lines: Vec<&str> = self.recipe.source.lines().collect();
        let marker = lines
            .get(line - 1)
            .and_then(|l| l.chars().nth(column - 1))
            .unwrap_or(' ');
        match marker {
            '|' | '>' => {
                let next = lines.get(line).copied().unwrap_or("");
                let indent = next.len() - next.trim_start().len();
                Origin::Block { line, indent }
            }
            '"' | '\'' => Origin::Inline {
                line,
                column: column + 1,
            },
            _ => Origin::Inline { line, column },
        }
    }
}

fn not_utf8(path: &Path) -> RecipeError {
    RecipeError::new(
        RecipeErrorKind::TemplateSyntax,
        SourceLocation::file(path),
        "template is not UTF-8 text, so it cannot be rendered",
        "set `render: false` on the file step to install it byte for byte",
    )
}

/// Chunked files add `-part-N-of-M` steps, which may meet a step already so named.
fn check_expanded_names(recipes: &[Recipe], steps: &[Step]) -> Result<(), RecipeError> {
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for step in steps {
        if !seen.insert((&step.recipe, &step.name)) {
            let recipe = recipes.iter().find(|r| r.name == step.recipe);
            let at = recipe.map_or_else(
                || SourceLocation::file(&step.recipe),
                |r| SourceLocation::file(&r.file),
            );
            return Err(RecipeError::new(
                RecipeErrorKind::DuplicateStep,
                at,
                format!(
                    "step name `{}` is used twice in recipe `{}`: a large file step is split \
                     into `<name>-part-N-of-M` steps and one of them has this name",
                    step.name, step.recipe
                ),
                "rename the step whose name ends in `-part-N-of-M`",
            ));
        }
    }
    Ok(())
}

/// Template files, read once, remembered for the input hash.
struct Templates {
    dir: PathBuf,
    used: BTreeMap<String, Vec<u8>>,
}

impl Templates {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            used: BTreeMap::new(),
        }
    }

    fn load(&mut self, name: &str, at: SourceLocation) -> Result<Vec<u8>, RecipeError> {
        if let Some(content) = self.used.get(name) {
            return Ok(content.clone());
        }
        let path = self.dir.join(name);
        let content = match read_capped(&path) {
            Ok(content) => content,
            Err(ReadCapped::TooLarge(size)) => {
                return Err(RecipeError::new(
                    RecipeErrorKind::InvalidValue,
                    SourceLocation::at(&path, Some((1, 1))),
                    too_large("template", size),
                    "a big artifact does not travel in a file step: put it in S3 and \
                     fetch it with a `run` step (the builder's instance role reads it)",
                ))
            }
            Err(ReadCapped::Io(_)) => return Err(self.unknown(name, at)),
        };
        self.used.insert(name.to_string(), content.clone());
        Ok(content)
    }

    fn unknown(&self, name: &str, at: SourceLocation) -> RecipeError {
        let mut available = Vec::new();
        list_files(&self.dir, &self.dir, &mut available);
        available.sort();
        RecipeError::new(
            RecipeErrorKind::UnknownTemplate,
            at,
            format!(
                "unknown template `{name}`: no such file under {}",
                self.dir.display()
            ),
            format!(
                "use one of the available templates: {}",
                if available.is_empty() {
                    "(none found)".to_string()
                } else {
                    available.join(", ")
                }
            ),
        )
    }
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(root, &path, out);
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_string_lossy().into_owned());
        }
    }
}
