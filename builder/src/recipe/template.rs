//! Tera rendering of scripts and template files, with undefined variables made errors.
//!
//! Tera 1 already fails on `{{ undefined }}`, but an undefined name in `{% if %}`, after
//! `default`, or in an `is defined` test silently counts as false. A recipe that quietly
//! renders without its value is how a baked config loses a setting, so every name a
//! template reads is checked against what its recipe declares before rendering.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use tera::ast::{Expr, ExprVal, FunctionCall, Node};

use super::error::{RecipeError, RecipeErrorKind, SourceLocation};

/// Names Tera binds itself: the loop object and the whole-context handle.
const TERA_BUILTINS: [&str; 2] = ["loop", "__tera_context"];

/// The variables one recipe sees: its own declarations, with the pipeline's values.
pub struct RecipeContext {
    pub recipe: String,
    pub recipe_file: String,
    pub values: tera::Context,
    /// Declared and not secret: what templates may read.
    pub readable: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

/// Where a text came from, to turn a position inside it into one in its file.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// A template file: positions are the file's own.
    File,
    /// A YAML block scalar (`run: |`): text line 1 is the line after `line`, indented.
    Block { line: usize, indent: usize },
    /// A one-line YAML scalar starting at (line, column).
    Inline { line: usize, column: usize },
    /// Position unknown.
    Unknown,
}

impl Origin {
    /// A position in the text as one in its file, when it can be told.
    pub fn map(self, (line, column): (usize, usize)) -> Option<(usize, usize)> {
        match self {
            Origin::File => Some((line, column)),
            Origin::Block { line: at, indent } => Some((at + line, indent + column)),
            Origin::Inline {
                line: at,
                column: c,
            } => Some((at + line - 1, c + column - 1)),
            Origin::Unknown => None,
        }
    }
}

/// One text to render: a script from a recipe, or a template file.
pub struct Text<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    pub origin: Origin,
}

impl Text<'_> {
    fn location(&self, position: Option<(usize, usize)>) -> SourceLocation {
        SourceLocation::at(self.file, position.and_then(|p| self.origin.map(p)))
    }
}

/// Renders `text` with the recipe's variables, refusing undefined and secret names.
pub fn render(text: &Text<'_>, ctx: &RecipeContext) -> Result<String, RecipeError> {
    const NAME: &str = "text";
    let mut tera = tera::Tera::default();
    // Nothing kiln renders is HTML: escaping would corrupt configs and scripts.
    tera.autoescape_on(Vec::new());
    tera.register_filter("shell_quote", shell_quote_filter);
    tera.register_function("get_env", refuse_get_env);
    tera.add_raw_template(NAME, text.text)
        .map_err(|error| syntax_error(text, &error))?;
    let template = tera
        .get_template(NAME)
        .map_err(|error| syntax_error(text, &error))?;
    check_names(&template.ast, text, ctx)?;
    tera.render(NAME, &ctx.values)
        .map_err(|error| render_error(text, ctx, &error))
}

fn check_names(ast: &[Node], text: &Text<'_>, ctx: &RecipeContext) -> Result<(), RecipeError> {
    let mut names = Names::default();
    names.nodes(ast);
    for builtin in TERA_BUILTINS {
        names.bound.insert(builtin.to_string());
    }
    let unbound = names.used.difference(&names.bound);
    if let Some(secret) = unbound.clone().find(|n| ctx.secrets.contains(*n)) {
        return Err(RecipeError::new(
            RecipeErrorKind::SecretUsed,
            text.location(find_name(text.text, secret)),
            format!("secret variable `{secret}` is used; secrets are never rendered at bake time"),
            "read it at boot instead: put a `@@parameter/name@@` placeholder in a boot \
             template rendered by kiln-boot-config (see recipes/README.md)",
        ));
    }
    if let Some(undefined) = unbound.clone().find(|n| !ctx.readable.contains(*n)) {
        return Err(RecipeError::new(
            RecipeErrorKind::UndefinedVariable,
            text.location(find_name(text.text, undefined)),
            format!(
                "variable `{undefined}` is not declared by recipe `{}`",
                ctx.recipe
            ),
            format!(
                "declare `{undefined}` under `variables:` in {} (with a description, and a \
                 default unless the pipeline must set it), or fix the name",
                ctx.recipe_file
            ),
        ));
    }
    Ok(())
}

/// The root names a template reads, and the names it binds itself.
#[derive(Default)]
struct Names {
    used: BTreeSet<String>,
    bound: BTreeSet<String>,
}

impl Names {
    fn nodes(&mut self, nodes: &[Node]) {
        for node in nodes {
            self.node(node);
        }
    }

    fn node(&mut self, node: &Node) {
        match node {
            Node::VariableBlock(_, expr) => self.expr(expr),
            Node::Set(_, set) => {
                self.bound.insert(set.key.clone());
                self.expr(&set.value);
            }
            Node::FilterSection(_, section, _) => {
                self.call(&section.filter);
                self.nodes(&section.body);
            }
            Node::Block(_, block, _) => self.nodes(&block.body),
            Node::Forloop(_, forloop, _) => {
                self.bound.insert(forloop.value.clone());
                self.bound.extend(forloop.key.clone());
                self.expr(&forloop.container);
                self.nodes(&forloop.body);
                self.nodes(forloop.empty_body.as_deref().unwrap_or_default());
            }
            Node::If(branches, _) => {
                for (_, condition, body) in &branches.conditions {
                    self.expr(condition);
                    self.nodes(body);
                }
                if let Some((_, body)) = &branches.otherwise {
                    self.nodes(body);
                }
            }
            Node::MacroDefinition(_, definition, _) => {
                self.bound.extend(definition.args.keys().cloned());
                definition
                    .args
                    .values()
                    .flatten()
                    .for_each(|e| self.expr(e));
                self.nodes(&definition.body);
            }
            _ => {}
        }
    }

    fn expr(&mut self, expr: &Expr) {
        self.value(&expr.val);
        expr.filters.iter().for_each(|f| self.call(f));
    }

    fn call(&mut self, call: &FunctionCall) {
        self.args(&call.args);
    }

    fn args(&mut self, args: &HashMap<String, Expr>) {
        args.values().for_each(|e| self.expr(e));
    }

    fn value(&mut self, value: &ExprVal) {
        match value {
            ExprVal::Ident(ident) => self.ident(ident),
            ExprVal::Math(math) => {
                self.expr(&math.lhs);
                self.expr(&math.rhs);
            }
            ExprVal::Logic(logic) => {
                self.expr(&logic.lhs);
                self.expr(&logic.rhs);
            }
            ExprVal::Test(test) => {
                self.ident(&test.ident);
                test.args.iter().for_each(|e| self.expr(e));
            }
            ExprVal::MacroCall(call) => self.args(&call.args),
            ExprVal::FunctionCall(call) => self.call(call),
            ExprVal::Array(items) => items.iter().for_each(|e| self.expr(e)),
            ExprVal::StringConcat(concat) => concat.values.iter().for_each(|v| self.value(v)),
            ExprVal::In(within) => {
                self.expr(&within.lhs);
                self.expr(&within.rhs);
            }
            ExprVal::String(_) | ExprVal::Int(_) | ExprVal::Float(_) | ExprVal::Bool(_) => {}
        }
    }

    /// `a.b[0]` reads `a`; `a[b]` also reads `b`, which Tera keeps inside the ident.
    fn ident(&mut self, ident: &str) {
        for (i, part) in ident.split(['[', ']']).enumerate() {
            let part = part.trim();
            let is_index = i % 2 == 1;
            let quoted =
                part.starts_with(['"', '\'']) || part.starts_with(|c: char| c.is_ascii_digit());
            if part.is_empty() || (is_index && quoted) || (!is_index && i > 0) {
                continue;
            }
            let root = part.split('.').next().unwrap_or(part);
            if !root.is_empty() {
                self.used.insert(root.to_string());
            }
        }
    }
}

/// The 1-based position of the first use of `name` inside a `{{ }}` or `{% %}` tag.
pub fn find_name(text: &str, name: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    while let Some(open) = find_tag_open(&text[offset..]) {
        let start = offset + open + 2;
        let close = text[start..]
            .find(['}', '%'])
            .map_or(text.len(), |c| start + c);
        if let Some(hit) = find_word(&text[start..close], name) {
            return Some(position_of(text, start + hit));
        }
        offset = close.max(start);
    }
    None
}

fn find_tag_open(text: &str) -> Option<usize> {
    match (text.find("{{"), text.find("{%")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn find_word(haystack: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    haystack.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + word.len()..].chars().next();
        !before.is_some_and(|c| is_ident(c) || c == '.') && !after.is_some_and(is_ident)
    })
}

pub use kiln_cloud::yaml::position_of;

fn syntax_error(text: &Text<'_>, error: &tera::Error) -> RecipeError {
    let message = chain(error);
    RecipeError::new(
        RecipeErrorKind::TemplateSyntax,
        text.location(pest_position(&message)),
        format!("Tera syntax error: {}", first_line_of_each(&message)),
        "fix the tag at this position; a literal `{{`, `{%` or `{#` (bash's `${#var}`) \
         must be wrapped in `{% raw %}...{% endraw %}`",
    )
}

fn render_error(text: &Text<'_>, ctx: &RecipeContext, error: &tera::Error) -> RecipeError {
    RecipeError::new(
        RecipeErrorKind::TemplateRender,
        text.location(None),
        format!("rendering failed: {}", chain(error)),
        format!(
            "check the filters and the types of the values recipe `{}` receives",
            ctx.recipe
        ),
    )
}

/// Tera puts the detail in the error's sources; join them into one message.
fn chain(error: &tera::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        parts.push(inner.to_string());
        source = inner.source();
    }
    parts.join(": ")
}

/// The position in pest's `--> line:column` marker of a Tera parse error.
fn pest_position(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.find("--> ")? + 4..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ':'))?;
    let (line, column) = rest[..end].split_once(':')?;
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// Pest's message draws the source with arrows; keep only the "expected ..." line.
fn first_line_of_each(message: &str) -> String {
    let expected = message
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("= "))
        .unwrap_or_else(|| message.lines().next().unwrap_or(message));
    expected.to_string()
}

/// The build machine's environment is neither hashed nor reviewed, and may hold
/// credentials: a template reads only declared variables.
fn refuse_get_env(_: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    Err(tera::Error::msg(
        "get_env is disabled in kiln templates: declare a variable and set it in the pipeline",
    ))
}

/// Single-quotes a value for bash: `it's` becomes `'it'\''s'`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn shell_quote_filter(
    value: &tera::Value,
    _: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let quote = |v: &tera::Value| match v {
        tera::Value::String(s) => shell_quote(s),
        other => shell_quote(&other.to_string()),
    };
    let quoted = match value {
        tera::Value::Array(items) => items.iter().map(quote).collect::<Vec<_>>().join(" "),
        other => quote(other),
    };
    Ok(tera::Value::String(quoted))
}
