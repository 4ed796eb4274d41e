//! The one error type of recipe loading and rendering.
//!
//! Every error says where (file, line, column when known), what is wrong, and what to do
//! next, because the person reading it is editing a YAML file or a template, not Rust.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a problem is: a file, and the position in it when one applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: PathBuf,
    /// 1-based line and column.
    pub position: Option<(usize, usize)>,
}

impl SourceLocation {
    /// A whole file (or folder), no position.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            position: None,
        }
    }

    /// A position in a file; `None` falls back to the whole file.
    pub fn at(file: &Path, position: Option<(usize, usize)>) -> Self {
        Self {
            file: file.to_path_buf(),
            position,
        }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// What kind of problem a [`RecipeError`] is, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipeErrorKind {
    /// A recipe or template file could not be read.
    Io,
    /// The YAML itself does not parse.
    Syntax,
    /// The YAML parses but does not fit the recipe format (unknown key, wrong type).
    Schema,
    /// The `name:` of a recipe is not its file name.
    NameMismatch,
    /// The pipeline names a recipe that has no file.
    UnknownRecipe,
    /// A recipe requires another one that the pipeline does not list before it.
    MissingRequirement,
    /// A file step names a template that does not exist.
    UnknownTemplate,
    /// A template or script is not valid Tera.
    TemplateSyntax,
    /// A template or script failed to render.
    TemplateRender,
    /// A template or script uses a variable its recipe does not declare.
    UndefinedVariable,
    /// A declared variable has no default and the pipeline does not set it.
    MissingVariable,
    /// The pipeline sets a variable that no recipe of the pipeline declares.
    UnknownVariable,
    /// The pipeline gives a variable a value of another kind than its recipe declares.
    WrongKind,
    /// The pipeline gives a variable a value that is too long or does not match the
    /// pattern its recipe declares.
    RefusedValue,
    /// Two recipes declare one variable differently.
    ConflictingVariable,
    /// A template or script uses a secret variable.
    SecretUsed,
    /// A rendered script or file contains the value of a secret variable.
    SecretLeak,
    /// A rendered step script that `bash -n` refuses.
    ScriptSyntax,
    /// A step timeout is outside what Run Command accepts.
    TimeoutOutOfRange,
    /// Two steps of one recipe share a name.
    DuplicateStep,
    /// A step name is not `[a-z0-9-]+`.
    InvalidStepName,
    /// Any other field with a value kiln refuses (a step kind, a path, a mode).
    InvalidValue,
}

/// A recipe that cannot be rendered: where, what, and what to do next.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}\n  hint: {}", .0.at, .0.problem, .0.hint)]
pub struct RecipeError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: RecipeErrorKind,
    at: SourceLocation,
    problem: String,
    hint: String,
}

impl RecipeError {
    pub fn new(
        kind: RecipeErrorKind,
        at: SourceLocation,
        problem: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self(Box::new(Inner {
            kind,
            at,
            problem: problem.into(),
            hint: hint.into(),
        }))
    }

    pub fn kind(&self) -> RecipeErrorKind {
        self.0.kind
    }

    pub fn location(&self) -> &SourceLocation {
        &self.0.at
    }

    /// What is wrong, without the location or the hint.
    pub fn problem(&self) -> &str {
        &self.0.problem
    }

    pub fn hint(&self) -> &str {
        &self.0.hint
    }
}
