//! The rules of the recipe format that serde cannot express: names, ranges, one kind per
//! step, paths and modes. Each failure points at the offending node.

use std::collections::BTreeMap;

use super::error::{RecipeError, RecipeErrorKind};
use super::locate::Seg;
use super::model::{
    FileDoc, Recipe, StepDoc, VariableDecl, VariableKind, FORMAT_DOC, MAX_TIMEOUT, MIN_TIMEOUT,
};

/// The step kinds, as the YAML keys that select them.
const STEP_KINDS: &str = "`run`, `file`, `packages`, `service`, `reboot: true`";

pub fn variables(recipe: &Recipe) -> Result<(), RecipeError> {
    for (name, decl) in &recipe.doc.variables {
        let at = || recipe.at(&[Seg::Key("variables"), Seg::Key(name)]);
        if !is_variable_name(name) {
            return Err(RecipeError::new(
                RecipeErrorKind::InvalidValue,
                at(),
                format!("variable name `{name}` is not [a-z_][a-z0-9_]*"),
                "use lower-case snake_case: templates read variables as Tera identifiers",
            ));
        }
        pattern(recipe, name, decl)?;
        let source = "its default is";
        let problem = decl
            .default
            .as_ref()
            .and_then(|default| super::variables::value_problem(name, decl, default, source));
        if let Some((_, problem, hint)) = problem {
            return Err(RecipeError::new(
                RecipeErrorKind::InvalidValue,
                at(),
                problem,
                hint,
            ));
        }
        if decl.secret && decl.default.is_some() {
            return Err(RecipeError::new(
                RecipeErrorKind::InvalidValue,
                at(),
                format!("secret variable `{name}` has a default, which would sit in the recipe"),
                "remove the default: secret values live in Parameter Store (SecureString)",
            ));
        }
    }
    Ok(())
}

/// A pattern compiles, and applies to a string variable (one value, as text).
fn pattern(recipe: &Recipe, name: &str, decl: &VariableDecl) -> Result<(), RecipeError> {
    let Some(compiled) = decl.pattern() else {
        return Ok(());
    };
    let at = recipe.at(&[Seg::Key("variables"), Seg::Key(name), Seg::Key("pattern")]);
    if let Err(error) = compiled {
        let reason = error.to_string();
        let reason = reason.lines().last().unwrap_or_default().trim();
        let reason = reason.trim_start_matches("error: ").to_string();
        return Err(RecipeError::new(
            RecipeErrorKind::InvalidValue,
            at,
            format!("the pattern of variable `{name}` is not a regular expression: {reason}"),
            "write a regular expression (Rust's regex syntax) that the whole value must \
             match, such as `[A-Za-z0-9._+-]+`",
        ));
    }
    if decl.kind() != Some(VariableKind::String) {
        return Err(RecipeError::new(
            RecipeErrorKind::InvalidValue,
            at,
            format!("variable `{name}` has a pattern but is not a string"),
            "add `type: string` (or a string default): a pattern checks one value's text",
        ));
    }
    Ok(())
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub fn is_step_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub fn steps(recipe: &Recipe) -> Result<(), RecipeError> {
    let mut seen: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for (phase, steps) in recipe.doc.phases() {
        for (index, step) in steps.iter().enumerate() {
            let path = [Seg::Key(phase), Seg::Index(index)];
            step_name(recipe, &path, step)?;
            if let Some(&(first_phase, first_index)) = seen.get(step.name.as_str()) {
                return Err(duplicate(recipe, &path, step, first_phase, first_index));
            }
            seen.insert(&step.name, (phase, index));
            timeout(recipe, &path, step)?;
            kind(recipe, &path, step)?;
        }
    }
    Ok(())
}

fn step_name(recipe: &Recipe, path: &[Seg<'_>], step: &StepDoc) -> Result<(), RecipeError> {
    if is_step_name(&step.name) {
        return Ok(());
    }
    Err(RecipeError::new(
        RecipeErrorKind::InvalidStepName,
        recipe.at(&[path[0], path[1], Seg::Key("name")]),
        format!("step name `{}` is not [a-z0-9-]+", step.name),
        "use lower-case letters, digits and dashes, e.g. `install-proxysql`",
    ))
}

fn duplicate(
    recipe: &Recipe,
    path: &[Seg<'_>],
    step: &StepDoc,
    first_phase: &str,
    first_index: usize,
) -> RecipeError {
    let first = recipe.at(&[
        Seg::Key(first_phase),
        Seg::Index(first_index),
        Seg::Key("name"),
    ]);
    let first_line = first.position.map_or_else(
        || "earlier".to_string(),
        |(line, _)| format!("on line {line}"),
    );
    RecipeError::new(
        RecipeErrorKind::DuplicateStep,
        recipe.at(&[path[0], path[1], Seg::Key("name")]),
        format!(
            "step name `{}` is used twice in recipe `{}` (first {first_line})",
            step.name, recipe.name
        ),
        "give every step of a recipe its own name (across build, validate and test): \
         kiln reports and logs steps by name",
    )
}

fn timeout(recipe: &Recipe, path: &[Seg<'_>], step: &StepDoc) -> Result<(), RecipeError> {
    let Some(timeout) = step.timeout else {
        return Ok(());
    };
    if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&timeout) {
        return Ok(());
    }
    let written = raw_scalar(recipe, path, "timeout")
        .unwrap_or_else(|| format!("{}s", timeout.as_secs_f64()));
    Err(RecipeError::new(
        RecipeErrorKind::TimeoutOutOfRange,
        recipe.at(&[path[0], path[1], Seg::Key("timeout")]),
        format!(
            "timeout `{written}` of step `{}` is out of range: Run Command's \
             executionTimeout accepts 1s to 48h",
            step.name
        ),
        "pick a timeout between 1s and 48h; split a longer step into several",
    ))
}

/// The scalar as written in the file, for messages that quote the user.
fn raw_scalar(recipe: &Recipe, path: &[Seg<'_>], key: &str) -> Option<String> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&recipe.source).ok()?;
    let Seg::Key(phase) = path[0] else {
        return None;
    };
    let Seg::Index(index) = path[1] else {
        return None;
    };
    let scalar = value.get(phase)?.get(index)?.get(key)?;
    scalar.as_str().map(str::to_string)
}

fn kind(recipe: &Recipe, path: &[Seg<'_>], step: &StepDoc) -> Result<(), RecipeError> {
    let kinds = [
        step.run.is_some(),
        step.file.is_some(),
        step.packages.is_some(),
        step.service.is_some(),
        step.reboot,
    ];
    let count = kinds.iter().filter(|k| **k).count();
    if count != 1 {
        return Err(invalid(
            recipe,
            path,
            &[],
            format!(
                "step `{}` has {count} kinds; a step has exactly one",
                step.name
            ),
            format!("give the step exactly one of {STEP_KINDS} (see {FORMAT_DOC})"),
        ));
    }
    if let Some(file) = &step.file {
        return file_fields(recipe, path, file);
    }
    if let Some(packages) = &step.packages {
        return package_names(recipe, path, packages);
    }
    if let Some(service) = &step.service {
        if !service.name.chars().all(is_unit_char) || service.name.is_empty() {
            return Err(invalid(
                recipe,
                path,
                &["service", "name"],
                format!("service name `{}` is not a systemd unit name", service.name),
                "use the unit's name, e.g. `crond` or `php-fpm`",
            ));
        }
    }
    Ok(())
}

fn is_unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@._-".contains(c)
}

fn package_names(
    recipe: &Recipe,
    path: &[Seg<'_>],
    packages: &[String],
) -> Result<(), RecipeError> {
    let is_package = |p: &String| {
        !p.is_empty()
            && !p.starts_with('-')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+:-".contains(c))
    };
    if packages.is_empty() {
        return Err(invalid(
            recipe,
            path,
            &["packages"],
            "`packages` is empty".to_string(),
            "list at least one package, or remove the step",
        ));
    }
    match packages.iter().position(|p| !is_package(p)) {
        None => Ok(()),
        Some(i) => Err(RecipeError::new(
            RecipeErrorKind::InvalidValue,
            recipe.at(&[path[0], path[1], Seg::Key("packages"), Seg::Index(i)]),
            format!("`{}` is not a package name", packages[i]),
            "write dnf package names (letters, digits, `._+:-`); options belong in a `run` step",
        )),
    }
}

fn file_fields(recipe: &Recipe, path: &[Seg<'_>], file: &FileDoc) -> Result<(), RecipeError> {
    // A path with a Tera tag is checked once rendered.
    if !file.path.contains("{{") && !is_file_path(&file.path) {
        return Err(bad_path(recipe, path, &file.path));
    }
    if file.template.starts_with('/') || !is_clean(&file.template) {
        return Err(invalid(
            recipe,
            path,
            &["file", "template"],
            format!(
                "template `{}` is not a path under the templates folder",
                file.template
            ),
            "write the template's path relative to the templates folder, \
             e.g. proxysql/proxysql.cnf.tera",
        ));
    }
    for (key, value) in [("owner", &file.owner), ("group", &file.group)] {
        if !is_account(value) {
            return Err(invalid(
                recipe,
                path,
                &["file", key],
                format!("{key} `{value}` is not a user or group name"),
                "use a name like `root` or `apache`, or a numeric id",
            ));
        }
    }
    if !is_mode(&file.mode) {
        return Err(invalid(
            recipe,
            path,
            &["file", "mode"],
            format!("mode `{}` is not an octal file mode", file.mode),
            "write the mode as a quoted octal string, e.g. \"0640\"",
        ));
    }
    Ok(())
}

fn is_clean(path: &str) -> bool {
    !path.split('/').any(|part| part == "..")
        && !path.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An absolute file path kiln can quote safely.
pub fn is_file_path(path: &str) -> bool {
    path.starts_with('/') && !path.ends_with('/') && is_clean(path)
}

pub fn bad_path(recipe: &Recipe, path: &[Seg<'_>], written: &str) -> RecipeError {
    invalid(
        recipe,
        path,
        &["file", "path"],
        format!("file path `{written}` is not an absolute file path"),
        "write the destination as an absolute path without `..` or spaces, \
         e.g. /etc/proxysql.cnf",
    )
}

fn is_account(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
}

fn is_mode(mode: &str) -> bool {
    (3..=4).contains(&mode.len()) && mode.chars().all(|c| ('0'..='7').contains(&c))
}

fn invalid(
    recipe: &Recipe,
    path: &[Seg<'_>],
    keys: &[&str],
    problem: String,
    hint: impl Into<String>,
) -> RecipeError {
    let mut full: Vec<Seg<'_>> = path.to_vec();
    full.extend(keys.iter().map(|k| Seg::Key(k)));
    RecipeError::new(
        RecipeErrorKind::InvalidValue,
        recipe.at(&full),
        problem,
        hint,
    )
}
