//! Variables: who declares them, what each recipe sees, and secrets kept out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::error::{RecipeError, RecipeErrorKind, SourceLocation};
use super::locate::Seg;
use super::model::{Recipe, VariableDecl, VariableKind};
use super::template::RecipeContext;
use super::{RenderedFile, Step};

/// Parameter Store names (and so the paths under which they live) are at most 1011
/// characters, the path included.
const PARAMETER_NAME_MAX: usize = 1011;
/// What a Parameter Store path may hold besides letters and digits.
const PARAMETER_PATH_CHARS: &str = "_.-/";

/// Longest value a variable may take, in characters (its text; a list or a map as
/// JSON). Values go into step scripts, each one Run Command request kept well under its
/// ~24 KB (PITFALLS 19), and into files of the image. 4096 holds any URL, endpoint, path
/// or version with room to spare, and refuses a pasted file or a runaway value before it
/// turns into thousands of steps.
pub const VALUE_MAX_CHARS: usize = 4096;

/// How far (in edits) a pipeline variable may be from a declared one to be suggested.
const SUGGESTION_DISTANCE: usize = 3;

/// A variable's first declaration, and which recipe made it.
#[derive(Debug)]
pub struct Declared<'a> {
    pub recipe: &'a Recipe,
    pub decl: &'a VariableDecl,
}

/// Every variable of the pipeline's recipes. Two recipes may declare one variable
/// (both read the database port), but only the same way.
pub fn declarations(recipes: &[Recipe]) -> Result<BTreeMap<String, Declared<'_>>, RecipeError> {
    let mut declared: BTreeMap<String, Declared<'_>> = BTreeMap::new();
    for recipe in recipes {
        for (name, decl) in &recipe.doc.variables {
            if let Some(first) = declared.get(name) {
                let same = first.decl.secret == decl.secret
                    && first.decl.default == decl.default
                    && first.decl.kind() == decl.kind()
                    && first.decl.pattern == decl.pattern;
                if !same {
                    return Err(conflict(name, first.recipe, recipe));
                }
                continue;
            }
            declared.insert(name.clone(), Declared { recipe, decl });
        }
    }
    Ok(declared)
}

fn conflict(name: &str, first: &Recipe, second: &Recipe) -> RecipeError {
    RecipeError::new(
        RecipeErrorKind::ConflictingVariable,
        second.at(&[Seg::Key("variables"), Seg::Key(name)]),
        format!(
            "variable `{name}` is declared by `{}` and `{}` with a different default, \
             secret flag, type or pattern",
            first.name, second.name
        ),
        format!(
            "declare `{name}` the same way in {} and {}, or give one of them another name",
            first.shown(),
            second.shown()
        ),
    )
}

/// A variable the pipeline sets and no recipe declares is a typo or a leftover.
pub fn unknown(
    dir: &Path,
    recipes: &[Recipe],
    declared: &BTreeMap<String, Declared<'_>>,
    variables: &BTreeMap<String, serde_json::Value>,
) -> Result<(), RecipeError> {
    let Some(name) = variables.keys().find(|n| !declared.contains_key(*n)) else {
        return Ok(());
    };
    let names: Vec<&str> = recipes.iter().map(|r| r.name.as_str()).collect();
    let closest = declared
        .keys()
        .map(|d| (strsim::levenshtein(name, d), d))
        .filter(|(distance, _)| *distance <= SUGGESTION_DISTANCE)
        .min();
    let hint = match closest {
        Some((_, suggestion)) => {
            format!("did you mean `{suggestion}`? Fix the name in the pipeline")
        }
        None => "remove it from the pipeline, or declare it in the recipe that uses it".to_string(),
    };
    Err(RecipeError::new(
        RecipeErrorKind::UnknownVariable,
        SourceLocation::file(dir),
        format!(
            "the pipeline sets variable `{name}`, which none of its recipes ({}) declares",
            names.join(", ")
        ),
        hint,
    ))
}

/// Each value the pipeline gives is of the kind its declaration asks for, at most
/// [`VALUE_MAX_CHARS`] long, and matches the declared pattern.
pub fn kinds(
    declared: &BTreeMap<String, Declared<'_>>,
    variables: &BTreeMap<String, serde_json::Value>,
) -> Result<(), RecipeError> {
    for (name, value) in variables {
        let Some(declared) = declared.get(name) else {
            continue;
        };
        let problem = value_problem(name, declared.decl, value, "the pipeline gives it");
        if let Some((kind, problem, hint)) = problem {
            let at = declared.recipe.at(&[Seg::Key("variables"), Seg::Key(name)]);
            return Err(RecipeError::new(kind, at, problem, hint));
        }
    }
    Ok(())
}

/// What is wrong with `value` for the variable `name` declared as `decl` (its kind, its
/// length, its pattern), and the fix; `source` says where the value comes from.
pub fn value_problem(
    name: &str,
    decl: &VariableDecl,
    value: &serde_json::Value,
    source: &str,
) -> Option<(RecipeErrorKind, String, String)> {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let length = text.chars().count();
    if length > VALUE_MAX_CHARS {
        return Some((
            RecipeErrorKind::RefusedValue,
            format!(
                "variable `{name}` is {length} characters long; a value may have at most \
                 {VALUE_MAX_CHARS}"
            ),
            "give a short value: a large input (an archive, a file) belongs in S3, named \
             by a URL variable and fetched by a step"
                .to_string(),
        ));
    }
    if let Some((problem, hint)) = decl
        .kind()
        .and_then(|kind| kind_problem(name, kind, value, source))
    {
        return Some((RecipeErrorKind::WrongKind, problem, hint));
    }
    let pattern = decl.pattern().and_then(Result::ok)?;
    if pattern.is_match(&text) {
        return None;
    }
    let written = decl.pattern.as_deref().unwrap_or_default();
    Some((
        RecipeErrorKind::RefusedValue,
        format!("variable `{name}` must match `{written}`, and {source} `{text}`"),
        format!(
            "give a value made only of what the pattern allows ({})",
            decl.description.trim_end_matches('.')
        ),
    ))
}

/// What is wrong with `value` for a variable of `kind`, and the fix; `source` says where
/// the value comes from (`the pipeline gives it`, `its default is`).
pub fn kind_problem(
    name: &str,
    kind: VariableKind,
    value: &serde_json::Value,
    source: &str,
) -> Option<(String, String)> {
    use serde_json::Value;
    let given = match value {
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
        Value::Null => "no value (null)",
        Value::String(text) if kind == VariableKind::ParameterPath => {
            return (!is_parameter_path(text)).then(|| {
                (
                    format!("variable `{name}` is a Parameter Store path; `{text}` is not one"),
                    format!(
                        "write a path that starts with `/` and holds only letters, digits \
                         and `{PARAMETER_PATH_CHARS}`, such as `/poc/web`"
                    ),
                )
            });
        }
        _ if kind == VariableKind::ParameterPath => "a number or a boolean",
        _ => return None,
    };
    let what = match kind {
        VariableKind::String => "a string",
        VariableKind::ParameterPath => "a Parameter Store path",
    };
    Some((
        format!("variable `{name}` is {what}, and {source} {given}"),
        "give one value (quoted when in doubt)".to_string(),
    ))
}

/// `/`, then letters, digits and `_.-/`, without an empty level (`//`).
fn is_parameter_path(text: &str) -> bool {
    text.starts_with('/')
        && text.len() <= PARAMETER_NAME_MAX
        && !text.contains("//")
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || PARAMETER_PATH_CHARS.contains(c))
}

/// Every declared variable's value: the pipeline's, else the declared default (`null`
/// included); one with neither (a secret, read at boot) has none.
pub fn resolved(
    declared: &BTreeMap<String, Declared<'_>>,
    variables: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, serde_json::Value> {
    declared
        .iter()
        .filter_map(|(name, d)| {
            let value = variables.get(name).or(d.decl.default.as_ref())?;
            Some((name.clone(), value.clone()))
        })
        .collect()
}

/// What one recipe's templates see: its own non-secret variables, valued.
pub fn context(
    recipe: &Recipe,
    variables: &BTreeMap<String, serde_json::Value>,
) -> Result<RecipeContext, RecipeError> {
    let mut ctx = RecipeContext {
        recipe: recipe.name.clone(),
        recipe_file: recipe.shown(),
        values: tera::Context::new(),
        readable: BTreeSet::new(),
        secrets: BTreeSet::new(),
    };
    for (name, decl) in &recipe.doc.variables {
        if decl.secret {
            ctx.secrets.insert(name.clone());
            continue;
        }
        let Some(value) = variables.get(name).or(decl.default.as_ref()) else {
            return Err(RecipeError::new(
                RecipeErrorKind::MissingVariable,
                recipe.at(&[Seg::Key("variables"), Seg::Key(name)]),
                format!(
                    "variable `{name}` of recipe `{}` has no default and the pipeline does \
                     not set it",
                    recipe.name
                ),
                format!(
                    "set `{name}` in the pipeline's variables ({})",
                    decl.description
                ),
            ));
        };
        ctx.values.insert(name.as_str(), value);
        ctx.readable.insert(name.clone());
    }
    Ok(ctx)
}

/// A secret's value (when the pipeline gives it, for this check) must appear in no
/// script and no file: scripts end up in SSM's history and files in the image.
pub fn leaks(
    recipes: &[Recipe],
    declared: &BTreeMap<String, Declared<'_>>,
    variables: &BTreeMap<String, serde_json::Value>,
    steps: &[Step],
    files: &[RenderedFile],
) -> Result<(), RecipeError> {
    for (name, _) in declared.iter().filter(|(_, d)| d.decl.secret) {
        let Some(needle) = variables.get(name).and_then(secret_text) else {
            continue;
        };
        let in_step = steps.iter().find(|s| s.script.contains(&needle));
        let in_file = files
            .iter()
            .find(|f| contains(&f.content, needle.as_bytes()));
        let (recipe, step) = match (in_file, in_step) {
            (Some(f), _) => (&f.recipe, &f.step),
            (None, Some(s)) => (&s.recipe, &s.name),
            (None, None) => continue,
        };
        let at = recipes
            .iter()
            .find(|r| &r.name == recipe)
            .map_or_else(|| SourceLocation::file(recipe), |r| r.step_at(step));
        return Err(RecipeError::new(
            RecipeErrorKind::SecretLeak,
            at,
            format!(
                "step `{step}` of recipe `{recipe}` would carry the value of secret variable \
                 `{name}` into the image or the command history"
            ),
            "find the non-secret variable or literal that holds this value and remove it; \
             secrets are read at boot from Parameter Store",
        ));
    }
    Ok(())
}

/// The text a secret value would appear as; empty values cannot be searched for.
fn secret_text(value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => return None,
        other => other.to_string(),
    };
    (!text.is_empty()).then_some(text)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
