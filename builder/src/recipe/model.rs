//! The recipe file format (see recipes/README.md), loaded and checked.
//!
//! Structure errors (unknown keys, wrong types) come from serde with their position;
//! rules that serde cannot express (names, ranges, one step kind) are checked after, and
//! their position is found again with the locator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::{RecipeError, RecipeErrorKind, SourceLocation};
use super::locate::{locate, without_location, Seg};

/// Run Command's `executionTimeout` accepts 1 s to 172800 s (48 h).
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(48 * 3600);
/// Long enough for a package install or a Composer run on a small builder; steps that
/// need more (a full OS upgrade) say so with `timeout:`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Largest pipeline, recipe or template file kiln reads, in bytes. The biggest of the POC
/// is a few KiB, and a file step sends its content in 12 KiB steps, so 1 MiB is some 85
/// steps already: anything bigger is a mistake (a pasted archive, a runaway value),
/// refused before it is parsed, rendered and split into thousands of steps.
pub const FILE_MAX_BYTES: u64 = 1024 * 1024;

/// Why [`read_capped`] read nothing.
#[derive(Debug)]
pub enum ReadCapped {
    Io(std::io::Error),
    /// Bigger than [`FILE_MAX_BYTES`]: the size seen.
    TooLarge(u64),
}

/// The content of `path`, unless it is bigger than [`FILE_MAX_BYTES`]: its size is read
/// first, so a huge file is refused without being read, and a file whose size does not
/// say (a pipe) or that grows is read one byte past the cap at most.
pub fn read_capped(path: &Path) -> Result<Vec<u8>, ReadCapped> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(ReadCapped::Io)?;
    let size = file.metadata().map_err(ReadCapped::Io)?.len();
    if size > FILE_MAX_BYTES {
        return Err(ReadCapped::TooLarge(size));
    }
    let mut content = Vec::new();
    file.take(FILE_MAX_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(ReadCapped::Io)?;
    match content.len() as u64 {
        read if read > FILE_MAX_BYTES => Err(ReadCapped::TooLarge(read)),
        _ => Ok(content),
    }
}

/// The refusal of a file of `size` bytes (`what`: `pipeline`, `recipe`, `template`).
pub fn too_large(what: &str, size: u64) -> String {
    format!(
        "this {what} file is {size} bytes; kiln reads files of at most {FILE_MAX_BYTES} \
         bytes (1 MiB)"
    )
}

/// The recipe format's documentation, named in hints.
pub const FORMAT_DOC: &str = "recipes/README.md";

/// A recipe file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeDoc {
    pub name: String,
    pub description: String,
    /// Recipes that must come earlier in the pipeline.
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub build: Vec<StepDoc>,
    #[serde(default)]
    pub validate: Vec<StepDoc>,
    #[serde(default)]
    pub test: Vec<StepDoc>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    pub description: String,
    /// `Some(Null)` for `default: null`, `None` when there is no default.
    #[serde(default, deserialize_with = "present")]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub secret: bool,
    /// What the value must be; by default what the default is (a string default makes a
    /// string), else anything.
    #[serde(default, rename = "type")]
    pub kind: Option<VariableKind>,
    /// A regular expression the whole value must match (for a string variable), such as
    /// `[A-Za-z0-9._+-]+` for a version that goes into source code.
    #[serde(default)]
    pub pattern: Option<String>,
}

/// The kinds of value a recipe may ask of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableKind {
    /// One value, written into a script or a file as text: a string, a number or a
    /// boolean; never a list, a map or null.
    String,
    /// A Parameter Store path (`/poc/web`): a string starting with `/`, of letters,
    /// digits and `_.-/`.
    ParameterPath,
}

impl VariableDecl {
    /// The kind the value must be: as declared, else a string when the default is one.
    pub fn kind(&self) -> Option<VariableKind> {
        let inferred = match &self.default {
            Some(serde_json::Value::String(_)) => Some(VariableKind::String),
            _ => None,
        };
        self.kind.or(inferred)
    }

    /// The declared pattern, anchored at both ends, compiled.
    pub fn pattern(&self) -> Option<Result<regex::Regex, regex::Error>> {
        let pattern = self.pattern.as_ref()?;
        Some(regex::Regex::new(&format!("^(?:{pattern})$")))
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    pub name: String,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    pub run: Option<String>,
    pub file: Option<FileDoc>,
    pub packages: Option<Vec<String>>,
    pub service: Option<ServiceDoc>,
    #[serde(default)]
    pub reboot: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDoc {
    /// Path under the templates folder.
    pub template: String,
    /// Absolute destination on the instance.
    pub path: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    /// Octal. serde_yaml_ng keeps a plain scalar's text, so `0640` and `"0640"` agree.
    #[serde(default = "file_mode")]
    pub mode: String,
    /// `false` installs the template as is (for files full of `{{`, like Blade views).
    #[serde(default = "yes")]
    pub render: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDoc {
    pub name: String,
    #[serde(default = "yes")]
    pub enable: bool,
    #[serde(default)]
    pub start: bool,
}

fn root() -> String {
    "root".to_string()
}

fn file_mode() -> String {
    "0644".to_string()
}

fn yes() -> bool {
    true
}

/// The three phases a recipe file has, with their YAML keys.
pub const PHASE_KEYS: [&str; 3] = ["build", "validate", "test"];

impl RecipeDoc {
    /// The steps of a phase key, with the key, for walking all phases in order.
    pub fn phases(&self) -> [(&'static str, &[StepDoc]); 3] {
        [
            (PHASE_KEYS[0], &self.build),
            (PHASE_KEYS[1], &self.validate),
            (PHASE_KEYS[2], &self.test),
        ]
    }
}

/// A recipe file read and checked.
#[derive(Debug)]
pub struct Recipe {
    pub name: String,
    pub file: PathBuf,
    pub source: String,
    pub doc: RecipeDoc,
}

impl Recipe {
    /// The location of the node at `path` in this recipe's file.
    pub fn at(&self, path: &[Seg<'_>]) -> SourceLocation {
        SourceLocation::at(&self.file, locate(&self.source, path))
    }

    /// Where the step named `name` (a step of the file, not a chunk) is declared.
    pub fn step_at(&self, name: &str) -> SourceLocation {
        for (key, steps) in self.doc.phases() {
            if let Some(index) = steps.iter().position(|s| s.name == name) {
                return self.at(&[Seg::Key(key), Seg::Index(index), Seg::Key("name")]);
            }
        }
        SourceLocation::file(&self.file)
    }

    /// The file name shown in messages: `recipes/<name>.yaml`-style, as given.
    pub fn shown(&self) -> String {
        self.file.display().to_string()
    }
}

/// Reads `<dir>/<name>.yaml` and checks it.
pub fn load(dir: &Path, name: &str) -> Result<Recipe, RecipeError> {
    let file = dir.join(format!("{name}.yaml"));
    if !file.is_file() {
        return Err(unknown_recipe(dir, name));
    }
    let unreadable = |error: String| {
        RecipeError::new(
            RecipeErrorKind::Io,
            SourceLocation::file(&file),
            format!("cannot read recipe: {error}"),
            "check the file's permissions and that it is UTF-8 text",
        )
    };
    let source = match read_capped(&file) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| unreadable("stream did not contain valid UTF-8".into()))?,
        Err(ReadCapped::Io(error)) => return Err(unreadable(error.to_string())),
        Err(ReadCapped::TooLarge(size)) => {
            return Err(RecipeError::new(
                RecipeErrorKind::InvalidValue,
                SourceLocation::at(&file, Some((1, 1))),
                too_large("recipe", size),
                "a recipe is a few KiB: look for text pasted by mistake; a big artifact \
                 belongs in S3, fetched by a `run` step",
            ))
        }
    };
    let doc = parse(&file, &source)?;
    let recipe = Recipe {
        name: name.to_string(),
        file,
        source,
        doc,
    };
    check(&recipe)?;
    Ok(recipe)
}

fn unknown_recipe(dir: &Path, name: &str) -> RecipeError {
    let available = available_recipes(dir);
    let problem = if name == super::HYGIENE {
        "there is no hygiene.yaml in this folder, and every bake ends with the hygiene \
         recipe, listed in the pipeline or not"
            .to_string()
    } else {
        format!("unknown recipe `{name}`: there is no {name}.yaml in this folder")
    };
    RecipeError::new(
        RecipeErrorKind::UnknownRecipe,
        SourceLocation::file(dir),
        problem,
        format!(
            "use one of the available recipes: {}",
            if available.is_empty() {
                "(none found)".to_string()
            } else {
                available.join(", ")
            }
        ),
    )
}

/// The recipe names of a folder, sorted.
pub fn available_recipes(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".yaml").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// YAML syntax first (its own error kind), then the recipe structure.
fn parse(file: &Path, source: &str) -> Result<RecipeDoc, RecipeError> {
    let position = |e: &serde_yaml_ng::Error| e.location().map(|l| (l.line(), l.column()));
    if let Err(error) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(source) {
        return Err(RecipeError::new(
            RecipeErrorKind::Syntax,
            SourceLocation::at(file, position(&error)),
            format!("malformed YAML: {}", without_location(&error)),
            "fix the YAML at this position (indentation, a missing `:`, unbalanced quotes)",
        ));
    }
    serde_yaml_ng::from_str(source).map_err(|error| {
        RecipeError::new(
            RecipeErrorKind::Schema,
            SourceLocation::at(file, position(&error)),
            format!("not a valid recipe: {}", without_location(&error)),
            format!("see {FORMAT_DOC} for the recipe format"),
        )
    })
}

fn check(recipe: &Recipe) -> Result<(), RecipeError> {
    if recipe.doc.name != recipe.name {
        return Err(RecipeError::new(
            RecipeErrorKind::NameMismatch,
            recipe.at(&[Seg::Key("name")]),
            format!(
                "recipe name `{}` does not match its file name `{}.yaml`",
                recipe.doc.name, recipe.name
            ),
            format!(
                "rename the file to `{}.yaml` or set `name: {}`",
                recipe.doc.name, recipe.name
            ),
        ));
    }
    super::check::variables(recipe)?;
    super::check::steps(recipe)
}
