//! Unit tests of recipe rendering: every refusal with its exact message, the order of
//! steps, hygiene, file chunks and secrets.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use serde_json::json;
use sha2::Digest;

use super::*;

const HYGIENE_YAML: &str = "\
name: hygiene
description: clean the builder
build:
  - name: truncate-machine-id
    run: truncate -s 0 /etc/machine-id
validate:
  - name: machine-id-empty
    run: test ! -s /etc/machine-id
test:
  - name: machine-id-set
    run: test -s /etc/machine-id
";

const WEB_YAML: &str = "\
name: web
description: a web server
variables:
  port: { description: listen port, default: 80 }
  greeting: { description: what the page says }
  token: { description: an API token, secret: true }
build:
  - name: install
    packages: [httpd]
  - name: config
    file: { template: web/httpd.conf.tera, path: /etc/httpd/conf.d/web.conf, mode: \"0640\" }
  - name: enable
    service: { name: httpd, start: true }
validate:
  - name: syntax
    run: apachectl -t
test:
  - name: listens
    timeout: 2m
    run: ss -ltn | grep -q ':{{ port }} '
";

const DB_YAML: &str = "\
name: db
description: a database client
build:
  - name: client
    packages: [mariadb105]
  - name: kernel
    reboot: true
validate:
  - name: client-runs
    run: mysql --version
";

const HTTPD_CONF: &str = "Listen {{ port }}\n# {{ greeting }}\n";

/// A recipes and a templates folder, filled with the given files.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let fixture = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        fixture.recipe("hygiene", HYGIENE_YAML);
        fixture.recipe("web", WEB_YAML);
        fixture.recipe("db", DB_YAML);
        fixture.template("web/httpd.conf.tera", HTTPD_CONF);
        fixture
    }

    fn recipe(&self, name: &str, text: &str) {
        let dir = self.dir.path().join("recipes");
        std::fs::create_dir_all(&dir).expect("recipes dir");
        std::fs::write(dir.join(format!("{name}.yaml")), text).expect("write recipe");
    }

    fn template(&self, name: &str, text: &str) {
        let path = self.dir.path().join("templates").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("templates dir");
        std::fs::write(path, text).expect("write template");
    }

    fn source(&self) -> RecipeSource {
        RecipeSource {
            recipes_dir: self.dir.path().join("recipes"),
            templates_dir: self.dir.path().join("templates"),
        }
    }

    fn recipes(&self) -> String {
        self.dir.path().join("recipes").display().to_string()
    }

    fn templates(&self) -> String {
        self.dir.path().join("templates").display().to_string()
    }

    fn render(&self, names: &[&str], vars: serde_json::Value) -> Result<Rendered, RecipeError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let vars: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(vars).expect("variables are an object");
        render(&self.source(), &names, &vars)
    }

    fn error(&self, names: &[&str], vars: serde_json::Value) -> RecipeError {
        self.render(names, vars).expect_err("rendering should fail")
    }
}

fn ok_vars() -> serde_json::Value {
    json!({ "greeting": "hello" })
}

/// Renders the fixture with `web` replaced by `text`, and returns the error's message.
fn web_error(text: &str, vars: serde_json::Value) -> (Fixture, String) {
    let f = Fixture::new();
    f.recipe("web", text);
    let message = f.error(&["web"], vars).to_string();
    (f, message)
}

const STEP_A: &str = "name: web\ndescription: x\nbuild:\n  - name: a\n";

#[test]
fn malformed_yaml_names_the_position() {
    let (f, message) = web_error(&format!("{STEP_A}   run: [\n"), json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:5:4: malformed YAML: did not find expected '-' indicator, while \
             parsing a block collection\n  hint: fix the YAML at this position (indentation, \
             a missing `:`, unbalanced quotes)",
            f.recipes()
        )
    );
}

#[test]
fn unknown_keys_are_refused() {
    let (f, message) = web_error(&format!("{STEP_A}    runn: echo\n"), json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:5:5: not a valid recipe: build[0]: unknown field `runn`, expected \
             one of `name`, `timeout`, `run`, `file`, `packages`, `service`, `reboot`\n  \
             hint: see recipes/README.md for the recipe format",
            f.recipes()
        )
    );
}

#[test]
fn wrong_types_are_refused() {
    let (f, message) = web_error(&format!("{STEP_A}    packages: httpd\n"), json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:5:15: not a valid recipe: build[0].packages: invalid type: string \
             \"httpd\", expected a sequence\n  hint: see recipes/README.md for the recipe format",
            f.recipes()
        )
    );
    let (_, message) = web_error(
        &format!("{STEP_A}    timeout: soon\n    run: x\n"),
        json!({}),
    );
    let expected = "web.yaml:5:14: not a valid recipe: build[0].timeout: invalid value: \
                    string \"soon\", expected a duration";
    assert!(message.contains(expected), "{message}");
}

#[test]
fn recipe_name_must_match_its_file() {
    let (f, message) = web_error("name: webb\ndescription: x\n", json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:1:7: recipe name `webb` does not match its file name `web.yaml`\n  \
             hint: rename the file to `webb.yaml` or set `name: web`",
            f.recipes()
        )
    );
}

#[test]
fn unknown_recipes_list_the_available_ones() {
    let f = Fixture::new();
    let error = f.error(&["webb"], ok_vars());
    assert_eq!(error.kind(), RecipeErrorKind::UnknownRecipe);
    assert_eq!(
        error.to_string(),
        format!(
            "{}: unknown recipe `webb`: there is no webb.yaml in this folder\n  hint: use one \
             of the available recipes: db, hygiene, web",
            f.recipes()
        )
    );
    let error = f.error(&["../web"], ok_vars());
    assert_eq!(error.kind(), RecipeErrorKind::UnknownRecipe);
}

#[test]
fn unknown_templates_list_the_available_ones() {
    let text = format!("{STEP_A}    file: {{ template: nope.tera, path: /etc/x }}\n");
    let (f, message) = web_error(&text, json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:5:23: unknown template `nope.tera`: no such file under {}\n  hint: \
             use one of the available templates: web/httpd.conf.tera",
            f.recipes(),
            f.templates()
        )
    );
}

#[test]
fn tera_syntax_errors_point_into_the_script_where_the_parser_stopped() {
    let text = format!("{STEP_A}    run: |\n      echo ok\n      echo {{{{ foo\n");
    let (f, message) = web_error(&text, json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:8:7: Tera syntax error: expected `or`, `and`, `not`, `<=`, `>=`, \
             `<`, `>`, `==`, `!=`, `+`, `-`, `*`, `/`, `%`, a filter, or a variable end \
             (`}}}}`)\n  \
             hint: fix the tag at this position; a literal `{{{{`, `{{%` or `{{#` (bash's \
             `${{#var}}`) must be wrapped in `{{% raw %}}...{{% endraw %}}`",
            f.recipes()
        )
    );
}

#[test]
fn undefined_variables_are_errors_even_in_conditions() {
    let text = format!("{STEP_A}    run: |\n      echo ok\n      echo {{{{ foo }}}}\n");
    let (f, message) = web_error(&text, json!({}));
    let hint = format!(
        "  hint: declare `foo` under `variables:` in {}/web.yaml (with a description, and a \
         default unless the pipeline must set it), or fix the name",
        f.recipes()
    );
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:7:15: variable `foo` is not declared by recipe `web`\n{hint}",
            f.recipes()
        )
    );
    // Tera alone would render this as false.
    let text = format!("{STEP_A}    run: \"{{% if foo is defined %}}x{{% endif %}}\"\n");
    let (f, message) = web_error(&text, json!({}));
    assert!(
        message.starts_with(&format!(
            "{}/web.yaml:5:17: variable `foo` is not declared",
            f.recipes()
        )),
        "{message}"
    );
}

#[test]
fn undefined_variables_in_templates_name_the_template() {
    let f = Fixture::new();
    f.template(
        "web/httpd.conf.tera",
        "{{ port }}\n{% for x in [1] %}{{ x }}{{ nope }}{% endfor %}",
    );
    let error = f.error(&["web"], ok_vars());
    assert_eq!(error.kind(), RecipeErrorKind::UndefinedVariable);
    assert!(
        error.to_string().starts_with(&format!(
            "{}/web/httpd.conf.tera:2:29: variable `nope` is not declared by recipe `web`",
            f.templates()
        )),
        "{error}"
    );
}

#[test]
fn variables_are_scoped_to_their_recipe() {
    // `db` does not declare `port`, although `web` in the same pipeline does.
    let f = Fixture::new();
    f.recipe(
        "db",
        "name: db\ndescription: x\nbuild:\n  - name: a\n    run: echo {{ port }}\n",
    );
    let error = f.error(&["web", "db"], ok_vars());
    assert_eq!(error.kind(), RecipeErrorKind::UndefinedVariable);
    assert!(error
        .to_string()
        .contains("variable `port` is not declared by recipe `db`"));
}

#[test]
fn required_variables_must_be_set() {
    let f = Fixture::new();
    let error = f.error(&["web"], json!({}));
    assert_eq!(
        error.to_string(),
        format!(
            "{}/web.yaml:5:13: variable `greeting` of recipe `web` has no default and the \
             pipeline does not set it\n  hint: set `greeting` in the pipeline's variables \
             (what the page says)",
            f.recipes()
        )
    );
}

#[test]
fn secrets_are_never_rendered() {
    let text = "name: web\ndescription: x\nvariables:\n  pw: { description: p, secret: true }\n\
                build:\n  - name: a\n    run: echo {{ pw }}\n";
    let (f, message) = web_error(text, json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:7:18: secret variable `pw` is used; secrets are never rendered at \
             bake time\n  hint: read it at boot instead: put a `@@parameter/name@@` \
             placeholder in a boot template rendered by kiln-boot-config (see \
             recipes/README.md)",
            f.recipes()
        )
    );
    let f = Fixture::new();
    f.template(
        "web/httpd.conf.tera",
        "ok\n{{ token | default(value='x') }}",
    );
    let error = f.error(&["web"], ok_vars());
    assert_eq!(error.kind(), RecipeErrorKind::SecretUsed);
    assert!(error
        .to_string()
        .starts_with(&format!("{}/web/httpd.conf.tera:2:4:", f.templates())));
}

#[test]
fn secrets_may_not_have_defaults() {
    let text = "name: web\ndescription: x\nvariables:\n  \
                pw: { description: p, secret: true, default: x }\n";
    let (_, message) = web_error(text, json!({}));
    assert!(
        message.contains("web.yaml:4:7: secret variable `pw` has a default"),
        "{message}"
    );
}

#[test]
fn values_must_be_of_the_declared_kind() {
    let text = "name: web\ndescription: x\nvariables:\n  \
                prefix: { description: p, type: parameter_path }\n  \
                name: { description: n, default: web }\n";
    let f = Fixture::new();
    f.recipe("web", text);
    let error = f.error(&["web"], json!({ "prefix": "/ok", "name": ["a", "b"] }));
    assert_eq!(error.kind(), RecipeErrorKind::WrongKind);
    assert_eq!(
        error.problem(),
        "variable `name` is a string, and the pipeline gives it a list"
    );
    for bad in ["poc/web", "/poc//web", "/poc web"] {
        let error = f.error(&["web"], json!({ "prefix": bad }));
        assert_eq!(
            error.problem(),
            format!("variable `prefix` is a Parameter Store path; `{bad}` is not one")
        );
    }
    let error = f.error(&["web"], json!({ "prefix": 7 }));
    assert_eq!(
        error.problem(),
        "variable `prefix` is a Parameter Store path, and the pipeline gives it a number or \
         a boolean"
    );
    // A number or a boolean reads as text in a string.
    f.render(&["web"], json!({ "prefix": "/poc/web", "name": 7 }))
        .expect("a number is text enough");
}

#[test]
fn a_default_must_be_of_the_declared_kind() {
    let text = "name: web\ndescription: x\nvariables:\n  \
                prefix: { description: p, type: parameter_path, default: poc }\n";
    let (_, message) = web_error(text, json!({}));
    assert!(
        message.contains(
            "web.yaml:4:11: variable `prefix` is a Parameter Store path; `poc` is not one"
        ),
        "{message}"
    );
}

#[test]
fn secret_values_found_in_output_are_refused() {
    let f = Fixture::new();
    let vars = json!({ "greeting": "s3cret-value", "token": "s3cret-value" });
    let error = f.error(&["web"], vars);
    assert_eq!(
        error.to_string(),
        format!(
            "{}/web.yaml:10:11: step `config` of recipe `web` would carry the value of secret \
             variable `token` into the image or the command history\n  hint: find the \
             non-secret variable or literal that holds this value and remove it; secrets are \
             read at boot from Parameter Store",
            f.recipes()
        )
    );
    let rendered = f
        .render(
            &["web"],
            json!({ "greeting": "hello", "token": "s3cret-value" }),
        )
        .expect("the secret's value appears nowhere");
    assert_eq!(rendered.secrets, vec!["token".to_string()]);
}

#[test]
fn unknown_pipeline_variables_are_errors() {
    let f = Fixture::new();
    let error = f.error(&["web"], json!({ "greeting": "x", "greting": "y" }));
    assert_eq!(
        error.to_string(),
        format!(
            "{}: the pipeline sets variable `greting`, which none of its recipes (web, \
             hygiene) declares\n  hint: did you mean `greeting`? Fix the name in the pipeline",
            f.recipes()
        )
    );
    let error = f.error(&["web"], json!({ "greeting": "x", "zzzzzzzz": 1 }));
    assert!(
        error.hint().starts_with("remove it from the pipeline"),
        "{error}"
    );
}

#[test]
fn timeouts_must_fit_run_command() {
    for (written, ok) in [("49h", false), ("0s", false), ("48h", true), ("1s", true)] {
        let text = format!("{STEP_A}    timeout: {written}\n    run: echo\n");
        let f = Fixture::new();
        f.recipe("web", &text);
        match f.render(&["web"], json!({})) {
            Ok(_) => assert!(ok, "{written} accepted"),
            Err(error) if ok => panic!("{written} refused: {error}"),
            Err(error) => assert_eq!(
                error.to_string(),
                format!(
                    "{}/web.yaml:5:14: timeout `{written}` of step `a` is out of range: Run \
                     Command's executionTimeout accepts 1s to 48h\n  hint: pick a timeout \
                     between 1s and 48h; split a longer step into several",
                    f.recipes()
                )
            ),
        }
    }
}

#[test]
fn step_names_are_unique_and_well_formed() {
    let text = format!("{STEP_A}    run: echo\nvalidate:\n  - name: a\n    run: echo\n");
    let (f, message) = web_error(&text, json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:7:11: step name `a` is used twice in recipe `web` (first on line 4)\n  \
             hint: give every step of a recipe its own name (across build, validate and \
             test): kiln reports and logs steps by name",
            f.recipes()
        )
    );
    let text = "name: web\ndescription: x\nbuild:\n  - name: Install_It\n    run: echo\n";
    let (f, message) = web_error(text, json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:4:11: step name `Install_It` is not [a-z0-9-]+\n  hint: use \
             lower-case letters, digits and dashes, e.g. `install-proxysql`",
            f.recipes()
        )
    );
}

#[test]
fn a_step_has_exactly_one_kind() {
    let (_, message) = web_error(
        &format!("{STEP_A}    run: echo\n    packages: [x]\n"),
        json!({}),
    );
    assert!(message.contains("web.yaml:4:5: step `a` has 2 kinds; a step has exactly one"));
    let (_, message) = web_error(STEP_A, json!({}));
    assert!(message.contains("step `a` has 0 kinds"), "{message}");
}

#[test]
fn requirements_must_come_earlier() {
    let (f, message) = web_error("name: web\ndescription: x\nrequires: [db]\n", json!({}));
    assert_eq!(
        message,
        format!(
            "{}/web.yaml:3:12: recipe `web` requires `db`, which the pipeline does not list \
             before it\n  hint: add `db` to the pipeline's recipes, before `web`",
            f.recipes()
        )
    );
    let f = Fixture::new();
    f.recipe("web", "name: web\ndescription: x\nrequires: [db]\n");
    f.render(&["db", "web"], json!({})).expect("db comes first");
}

#[test]
fn conflicting_declarations_are_refused() {
    let f = Fixture::new();
    let db = format!("{DB_YAML}variables:\n  port: {{ description: db port, default: 3306 }}\n");
    f.recipe("db", &db);
    let error = f.error(&["web", "db"], ok_vars());
    assert_eq!(error.kind(), RecipeErrorKind::ConflictingVariable);
    assert!(error
        .to_string()
        .contains("variable `port` is declared by `web` and `db`"));
}

#[test]
fn steps_run_build_then_validate_then_hygiene_then_test() {
    let f = Fixture::new();
    let rendered = f.render(&["web", "db"], ok_vars()).expect("renders");
    let order: Vec<(Phase, &str, &str)> = rendered
        .steps
        .iter()
        .map(|s| (s.phase, s.recipe.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(
        order,
        vec![
            (Phase::Build, "web", "install"),
            (Phase::Build, "web", "config"),
            (Phase::Build, "web", "enable"),
            (Phase::Build, "db", "client"),
            (Phase::Build, "db", "kernel"),
            (Phase::Validate, "web", "syntax"),
            (Phase::Validate, "db", "client-runs"),
            (Phase::Hygiene, "hygiene", "truncate-machine-id"),
            (Phase::Hygiene, "hygiene", "machine-id-empty"),
            (Phase::Test, "web", "listens"),
            (Phase::Test, "hygiene", "machine-id-set"),
        ]
    );
    assert_eq!(rendered.recipes, vec!["web", "db", "hygiene"]);
}

#[test]
fn hygiene_is_appended_once() {
    let f = Fixture::new();
    let listed = f.render(&["hygiene", "web"], ok_vars()).expect("renders");
    assert_eq!(listed.recipes, vec!["hygiene", "web"]);
    let hygiene: Vec<Phase> = listed
        .steps
        .iter()
        .filter(|s| s.recipe == HYGIENE && s.phase != Phase::Test)
        .map(|s| s.phase)
        .collect();
    assert_eq!(hygiene, vec![Phase::Hygiene, Phase::Hygiene]);
    // Listed first, it still runs after every validate step.
    let last_validate = listed
        .steps
        .iter()
        .rposition(|s| s.phase == Phase::Validate);
    let first_hygiene = listed.steps.iter().position(|s| s.phase == Phase::Hygiene);
    assert!(last_validate < first_hygiene);
    let error = f.error(&["web", "web"], ok_vars());
    assert!(error
        .to_string()
        .contains("the pipeline lists recipe `web` twice"));
}

#[test]
fn every_script_is_strict_bash() {
    let f = Fixture::new();
    let rendered = f.render(&["web", "db"], ok_vars()).expect("renders");
    for step in &rendered.steps {
        assert!(
            step.script.starts_with("#!/bin/bash\nset -euo pipefail\n"),
            "{}: {}",
            step.name,
            step.script
        );
    }
    let test = rendered
        .steps
        .iter()
        .find(|s| s.name == "listens")
        .expect("test step");
    assert!(
        test.script.ends_with("ss -ltn | grep -q ':80 '\n"),
        "{}",
        test.script
    );
    assert_eq!(test.timeout, Duration::from_secs(120));
    let install = rendered
        .steps
        .iter()
        .find(|s| s.name == "install")
        .expect("packages");
    assert!(install.script.contains("dnf install -y 'httpd'\n"));
    assert_eq!(install.timeout, DEFAULT_TIMEOUT);
    let enable = rendered
        .steps
        .iter()
        .find(|s| s.name == "enable")
        .expect("service");
    assert!(enable
        .script
        .contains("systemctl enable 'httpd'\nsystemctl start 'httpd'\n"));
}

#[test]
fn reboot_steps_exit_194_once() {
    let f = Fixture::new();
    let rendered = f.render(&["db"], json!({})).expect("renders");
    let reboot = rendered
        .steps
        .iter()
        .find(|s| s.name == "kernel")
        .expect("reboot");
    assert!(reboot.reboot);
    assert!(reboot.script.ends_with("exit 194\n"));
    assert!(reboot
        .script
        .contains("marker=/var/lib/kiln/reboot/db--kernel\n"));
    assert!(rendered.steps.iter().filter(|s| s.reboot).count() == 1);
}

/// The bytes the scripts of one file step write, decoded the way the instance does.
fn decode_chunks(steps: &[&Step]) -> Vec<u8> {
    let mut content = Vec::new();
    for step in steps {
        let mut lines = step.script.lines();
        while let Some(line) = lines.next() {
            if line == "base64 -d >> \"$staging\" <<'KILN_CHUNK'" {
                let encoded: String = lines.by_ref().take_while(|l| *l != "KILN_CHUNK").collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .expect("valid base64");
                content.extend(bytes);
            }
        }
    }
    content
}

#[test]
fn small_files_travel_in_one_script() {
    let f = Fixture::new();
    let rendered = f.render(&["web"], ok_vars()).expect("renders");
    let config: Vec<&Step> = rendered
        .steps
        .iter()
        .filter(|s| s.name == "config")
        .collect();
    assert_eq!(config.len(), 1);
    assert_eq!(decode_chunks(&config), b"Listen 80\n# hello\n");
    let script = &config[0].script;
    assert!(script.contains(
        "install -o 'root' -g 'root' -m '0640' \"$staging\" '/etc/httpd/conf.d/web.conf.kiln-new'\n\
         mv -f '/etc/httpd/conf.d/web.conf.kiln-new' '/etc/httpd/conf.d/web.conf'\n"
    ));
    let file = &rendered.files[0];
    assert_eq!(
        (file.path.as_str(), file.mode.as_str()),
        ("/etc/httpd/conf.d/web.conf", "0640")
    );
}

#[test]
fn large_files_are_chunked_and_reassemble_exactly() {
    let f = Fixture::new();
    // Not valid UTF-8 everywhere and longer than three chunks: a byte-for-byte install.
    let content: Vec<u8> = (0..(CHUNK_CONTENT_BYTES * 3 + 17))
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    std::fs::write(f.dir.path().join("templates/blob.bin"), &content).expect("write blob");
    f.recipe(
        "db",
        "name: db\ndescription: x\nbuild:\n  - name: blob\n    file: { template: blob.bin, \
         path: /opt/blob, render: false }\n",
    );
    let rendered = f.render(&["db"], json!({})).expect("renders");
    let chunks: Vec<&Step> = rendered.steps.iter().filter(|s| s.recipe == "db").collect();
    let names: Vec<&str> = chunks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "blob-part-1-of-4",
            "blob-part-2-of-4",
            "blob-part-3-of-4",
            "blob-part-4-of-4"
        ]
    );
    assert_eq!(decode_chunks(&chunks), content);
    // Only the first chunk truncates, only the last installs, each script stays small.
    for (i, step) in chunks.iter().enumerate() {
        assert_eq!(step.script.contains(": > \"$staging\""), i == 0);
        assert_eq!(
            step.script
                .contains("mv -f '/opt/blob.kiln-new' '/opt/blob'"),
            i == 3
        );
        assert!(
            step.script.len() < 18_000,
            "chunk {i} is {} bytes",
            step.script.len()
        );
    }
    let sha = hex::encode(sha2::Sha256::digest(&content));
    assert!(chunks[3].script.contains(&format!("!= {sha} ]]")));
}

#[test]
fn inputs_hold_every_recipe_and_template_used() {
    let f = Fixture::new();
    let rendered = f.render(&["web"], ok_vars()).expect("renders");
    let paths: Vec<&str> = rendered.inputs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "recipes/hygiene.yaml",
            "recipes/web.yaml",
            "templates/web/httpd.conf.tera"
        ]
    );
    assert_eq!(rendered.inputs[2].1, HTTPD_CONF.as_bytes());
    assert_eq!(rendered.inputs[1].1, WEB_YAML.as_bytes());
}

#[test]
fn shell_quote_survives_quotes() {
    assert_eq!(shell_quote("it's"), "'it'\\''s'");
    let f = Fixture::new();
    f.recipe(
        "db",
        "name: db\ndescription: x\nvariables:\n  who: { description: w, default: \"o'neil\" }\n\
         build:\n  - name: a\n    run: echo {{ who | shell_quote }}\n",
    );
    let rendered = f.render(&["db"], json!({})).expect("renders");
    assert!(rendered.steps[0].script.ends_with("echo 'o'\\''neil'\n"));
}

#[test]
fn file_paths_may_use_variables_and_are_checked_once_rendered() {
    let f = Fixture::new();
    let text =
        "name: db\ndescription: x\nvariables:\n  dir: { description: d, default: /opt/app }\n\
                build:\n  - name: conf\n    file: { template: web/httpd.conf.tera, \
                path: \"{{ dir }}/x.conf\" }\n";
    f.recipe("db", text);
    f.template("web/httpd.conf.tera", "static\n");
    let rendered = f.render(&["db"], json!({})).expect("renders");
    assert_eq!(rendered.files[0].path, "/opt/app/x.conf");
    assert!(rendered.steps[0]
        .script
        .contains("mv -f '/opt/app/x.conf.kiln-new' '/opt/app/x.conf'"));

    let error = f.error(&["db"], json!({ "dir": "relative" }));
    assert_eq!(error.kind(), RecipeErrorKind::InvalidValue);
    assert!(
        error
            .to_string()
            .contains("file path `relative/x.conf` is not an absolute file path"),
        "{error}"
    );
}

#[test]
fn binary_templates_must_be_installed_unrendered() {
    let f = Fixture::new();
    std::fs::write(f.dir.path().join("templates/blob.bin"), [0xff, 0xfe, 0x00]).expect("blob");
    f.recipe(
        "db",
        "name: db\ndescription: x\nbuild:\n  - name: blob\n    file: { template: blob.bin, \
         path: /opt/blob }\n",
    );
    let error = f.error(&["db"], json!({}));
    assert_eq!(
        error.to_string(),
        format!(
            "{}/blob.bin: template is not UTF-8 text, so it cannot be rendered\n  hint: set \
             `render: false` on the file step to install it byte for byte",
            f.templates()
        )
    );
}

#[test]
fn render_failures_name_the_recipe() {
    let f = Fixture::new();
    f.template("web/httpd.conf.tera", "{{ port | upper }}\n{{ greeting }}");
    let error = f.error(&["web"], ok_vars());
    assert_eq!(error.kind(), RecipeErrorKind::TemplateRender);
    assert!(error.to_string().starts_with(&format!(
        "{}/web/httpd.conf.tera: rendering failed: ",
        f.templates()
    )));
    assert!(error.hint().contains("recipe `web`"));
}

#[test]
fn describe_lists_what_a_recipe_needs() {
    let f = Fixture::new();
    let info = describe(&f.source(), "web").expect("describes");
    assert_eq!(info.description, "a web server");
    let summary: Vec<(&str, Option<&serde_json::Value>, bool)> = info
        .variables
        .iter()
        .map(|v| (v.name.as_str(), v.default.as_ref(), v.secret))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("greeting", None, false),
            ("port", Some(&json!(80)), false),
            ("token", None, true),
        ]
    );
    let error = describe(&f.source(), "nope").expect_err("no such recipe");
    assert_eq!(error.kind(), RecipeErrorKind::UnknownRecipe);
}

#[test]
fn services_can_start_without_being_enabled() {
    let f = Fixture::new();
    f.recipe(
        "db",
        "name: db\ndescription: x\nbuild:\n  - name: once\n    service: { name: chronyd, \
         enable: false, start: true }\n",
    );
    let rendered = f.render(&["db"], json!({})).expect("renders");
    let script = &rendered.steps[0].script;
    assert!(script.contains("systemctl start 'chronyd'\n"));
    assert!(!script.contains("systemctl enable"));
}

#[test]
fn templates_cannot_read_the_build_machine_environment() {
    let f = Fixture::new();
    f.template(
        "web/httpd.conf.tera",
        "{{ get_env(name=\"HOME\") }}{{ port }}{{ greeting }}",
    );
    let error = f.error(&["web"], ok_vars());
    assert_eq!(error.kind(), RecipeErrorKind::TemplateRender);
    assert!(
        error
            .problem()
            .contains("get_env is disabled in kiln templates"),
        "{error}"
    );
}

#[test]
fn a_missing_hygiene_recipe_is_explained() {
    let f = Fixture::new();
    std::fs::remove_file(f.dir.path().join("recipes/hygiene.yaml")).expect("remove");
    let error = f.error(&["db"], json!({}));
    assert_eq!(
        error.to_string(),
        format!(
            "{}: there is no hygiene.yaml in this folder, and every bake ends with the \
             hygiene recipe, listed in the pipeline or not\n  hint: use one of the \
             available recipes: db, web",
            f.recipes()
        )
    );
}

#[test]
fn a_default_written_out_resolves_as_one_left_out() {
    let f = Fixture::new();
    let left_out = f.render(&["web"], ok_vars()).expect("render");
    let written = f
        .render(&["web"], json!({ "greeting": "hello", "port": 80 }))
        .expect("render");
    let expected = BTreeMap::from([
        ("greeting".to_string(), json!("hello")),
        ("port".to_string(), json!(80)),
    ]);
    assert_eq!(left_out.variables, expected, "the secret has no value");
    assert_eq!(written.variables, expected);
    let other = f
        .render(&["web"], json!({ "greeting": "hello", "port": 8080 }))
        .expect("render");
    assert_ne!(other.variables, expected);
}

const VERSIONED: &str = "name: web\ndescription: x\nvariables:\n  \
                         version: { description: a version, default: \"1.0\", \
                         pattern: \"[0-9.]+\" }\n";

#[test]
fn a_value_must_match_the_declared_pattern_whole() {
    let f = Fixture::new();
    f.recipe("web", VERSIONED);
    f.render(&["web"], json!({ "version": "2.10" }))
        .expect("a version");
    f.render(&["web"], json!({ "version": 2 }))
        .expect("a number reads as its text");
    for bad in ["2.0'; id; '", "x2.0", "2.0\n", ""] {
        let error = f.error(&["web"], json!({ "version": bad }));
        assert_eq!(error.kind(), RecipeErrorKind::RefusedValue);
        assert_eq!(
            error.problem(),
            format!("variable `version` must match `[0-9.]+`, and the pipeline gives it `{bad}`")
        );
        assert_eq!(
            error.hint(),
            "give a value made only of what the pattern allows (a version)"
        );
    }
}

#[test]
fn a_pattern_must_compile_apply_to_a_string_and_fit_the_default() {
    let text = "name: web\ndescription: x\nvariables:\n  \
                version: { description: v, default: \"1.0\", pattern: \"[0-9.+\" }\n";
    let (_, message) = web_error(text, json!({}));
    assert!(
        message.contains(
            "web.yaml:4:55: the pattern of variable `version` is not a regular expression: \
             unclosed character class"
        ),
        "{message}"
    );
    let text = "name: web\ndescription: x\nvariables:\n  \
                port: { description: p, default: 80, pattern: \"[0-9]+\" }\n";
    let (_, message) = web_error(text, json!({}));
    assert!(
        message.contains("variable `port` has a pattern but is not a string"),
        "{message}"
    );
    let text = "name: web\ndescription: x\nvariables:\n  \
                version: { description: v, default: \"v1\", pattern: \"[0-9.]+\" }\n";
    let (_, message) = web_error(text, json!({}));
    assert!(
        message.contains(
            "web.yaml:4:12: variable `version` must match `[0-9.]+`, and its default is `v1`"
        ),
        "{message}"
    );
}

#[test]
fn a_value_longer_than_the_limit_is_refused() {
    let f = Fixture::new();
    let fits = "x".repeat(VALUE_MAX_CHARS);
    f.render(&["web"], json!({ "greeting": fits }))
        .expect("at the limit");
    let error = f.error(&["web"], json!({ "greeting": format!("{fits}é") }));
    assert_eq!(error.kind(), RecipeErrorKind::RefusedValue);
    assert_eq!(
        error.problem(),
        "variable `greeting` is 4097 characters long; a value may have at most 4096"
    );
}

#[test]
fn recipe_and_template_files_over_the_limit_are_refused_by_their_size() {
    let f = Fixture::new();
    let big = format!("{WEB_YAML}#{}\n", "x".repeat(FILE_MAX_BYTES as usize));
    f.recipe("web", &big);
    let message = f.error(&["web"], ok_vars()).to_string();
    let size = big.len();
    assert!(
        message.starts_with(&format!(
            "{}/web.yaml:1:1: this recipe file is {size} bytes; kiln reads files of at most \
             1048576 bytes (1 MiB)",
            f.recipes()
        )),
        "{message}"
    );

    let f = Fixture::new();
    let big = format!("{HTTPD_CONF}#{}\n", "x".repeat(FILE_MAX_BYTES as usize));
    f.template("web/httpd.conf.tera", &big);
    let message = f.error(&["web"], ok_vars()).to_string();
    assert!(
        message.starts_with(&format!(
            "{}/web/httpd.conf.tera:1:1: this template file is {} bytes",
            f.templates(),
            big.len()
        )),
        "{message}"
    );
}
