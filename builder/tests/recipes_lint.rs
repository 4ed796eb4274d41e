//! Lint of the real recipes: rendered with the PoC's variables, every step script and
//! every shell script they install passes `bash -n` and shellcheck, the ProxySQL config
//! routes and binds as designed, no secret value reaches the image, and the boot-time
//! renderer (jq programs) fills the boot templates from Parameter Store's answer.
//!
//! shellcheck and jq are required: the test fails, never skips, when one is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_builder::recipe::{self, RecipeSource, Rendered, RenderedFile};

/// The pipeline of ENVIRONMENT.md (hygiene is appended by `render`).
const POC_RECIPES: [&str; 5] = [
    "base-os",
    "proxysql",
    "laravel",
    "monitoring",
    "boot-config",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the builder crate sits in the workspace")
        .to_path_buf()
}

fn source() -> RecipeSource {
    RecipeSource {
        recipes_dir: repo_root().join("recipes"),
        templates_dir: repo_root().join("templates"),
    }
}

fn poc_variables() -> BTreeMap<String, serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/poc-variables.yaml");
    let text = std::fs::read_to_string(&path).expect("read the PoC variables fixture");
    serde_yaml_ng::from_str(&text).expect("the fixture is a YAML map")
}

fn rendered() -> Rendered {
    let names: Vec<String> = POC_RECIPES.iter().map(|n| n.to_string()).collect();
    recipe::render(&source(), &names, &poc_variables())
        .unwrap_or_else(|error| panic!("the real recipes must render:\n{error}"))
}

fn file<'a>(rendered: &'a Rendered, path: &str) -> &'a RenderedFile {
    rendered
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no recipe installs {path}"))
}

fn text(file: &RenderedFile) -> &str {
    std::str::from_utf8(&file.content).expect("a text file")
}

/// Fails with an install hint when a tool the lint needs is missing.
fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{tool}` is not installed, and this lint does not skip: install it \
         (Debian/Ubuntu: `apt-get update && apt-get install -y {tool}`)"
    );
}

/// Every shell script the bake runs or installs, as (label, script).
fn shell_scripts(rendered: &Rendered) -> Vec<(String, String)> {
    let mut scripts: Vec<(String, String)> = rendered
        .steps
        .iter()
        .map(|s| (format!("step {}--{}", s.recipe, s.name), s.script.clone()))
        .collect();
    for file in &rendered.files {
        let content = String::from_utf8_lossy(&file.content);
        if file.path.ends_with(".sh") || content.starts_with("#!/bin/bash") {
            scripts.push((format!("file {}", file.path), content.into_owned()));
        }
    }
    scripts
}

#[test]
fn every_script_passes_bash_n_and_shellcheck() {
    require("shellcheck");
    let rendered = rendered();
    let scripts = shell_scripts(&rendered);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut paths = Vec::new();
    let mut failures = Vec::new();
    for (i, (label, script)) in scripts.iter().enumerate() {
        let name = format!("{i:03}-{}.sh", label.replace([' ', '/'], "_"));
        let path = dir.path().join(name);
        std::fs::write(&path, script).expect("write script");
        let syntax = Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("run bash");
        if !syntax.status.success() {
            failures.push(format!(
                "{label}: {}",
                String::from_utf8_lossy(&syntax.stderr)
            ));
        }
        paths.push(path);
    }
    let lint = Command::new("shellcheck")
        .args(["--shell=bash", "--external-sources"])
        .args(&paths)
        .output()
        .expect("run shellcheck");
    if !lint.status.success() {
        failures.push(String::from_utf8_lossy(&lint.stdout).into_owned());
    }
    assert!(scripts.len() > 40, "only {} scripts found", scripts.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (rule_id, match_digest, destination_hostgroup) of each rule, in file order.
fn query_rules(cnf: &str) -> Vec<(u32, String, u32)> {
    let start = cnf
        .find("mysql_query_rules=")
        .expect("a mysql_query_rules section");
    let mut rules = Vec::new();
    for block in cnf[start..].split('{').skip(1) {
        let value = |key: &str| {
            block
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(|v| v.trim_matches('"').to_string())
        };
        let id = value("rule_id").and_then(|v| v.parse().ok());
        let digest = value("match_digest");
        let hostgroup = value("destination_hostgroup").and_then(|v| v.parse().ok());
        if let (Some(id), Some(digest), Some(hostgroup)) = (id, digest, hostgroup) {
            rules.push((id, digest, hostgroup));
        }
    }
    rules
}

#[test]
fn proxysql_routes_locking_reads_and_writes_to_the_writer() {
    let rendered = rendered();
    let cnf = text(file(&rendered, "/etc/kiln/templates/proxysql.cnf"));
    let rules = query_rules(cnf);
    let expected = vec![
        (1, "^SELECT .* FOR UPDATE".to_string(), 0),
        (2, "^SELECT".to_string(), 1),
        (3, "^(INSERT|UPDATE|DELETE)".to_string(), 0),
    ];
    assert_eq!(rules, expected);
    assert!(
        cnf.contains("mysql_ifaces=\"127.0.0.1:6032\""),
        "admin on loopback only"
    );
    assert!(cnf.contains("interfaces=\"127.0.0.1:6033\""));
    assert!(!cnf.contains("admin:admin") && !cnf.contains("stats:stats"));
    assert!(cnf.contains("monitor_username=\"proxysql_monitor\""));
    assert!(cnf.contains("username=\"laravel_user\""));
    // Hostgroup 0 is the writer endpoint, 1 the reader, both filled at boot.
    let writer = cnf
        .find("address=\"@@db/writer-endpoint@@\"")
        .expect("writer server");
    let reader = cnf
        .find("address=\"@@db/reader-endpoint@@\"")
        .expect("reader server");
    assert!(cnf[writer..reader].contains("hostgroup=0"));
    assert!(cnf[reader..].contains("hostgroup=1"));
}

#[test]
fn no_secret_value_reaches_a_script_or_a_file() {
    let rendered = rendered();
    let variables = poc_variables();
    let expected = [
        "app_key",
        "db_password",
        "proxysql_admin_password",
        "proxysql_monitor_password",
        "proxysql_stats_password",
    ];
    assert_eq!(rendered.secrets, expected);
    for secret in &rendered.secrets {
        let value = variables[secret]
            .as_str()
            .expect("the fixture gives every secret");
        for step in &rendered.steps {
            assert!(
                !step.script.contains(value),
                "{secret} in step {}",
                step.name
            );
        }
        for file in &rendered.files {
            let found = file
                .content
                .windows(value.len())
                .any(|w| w == value.as_bytes());
            assert!(!found, "{secret} in {}", file.path);
        }
    }
}

#[test]
fn installed_json_files_parse() {
    let rendered = rendered();
    let json: Vec<&RenderedFile> = rendered
        .files
        .iter()
        .filter(|f| f.path.ends_with(".json"))
        .collect();
    assert!(json.len() >= 4);
    for file in json {
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&file.content);
        assert!(parsed.is_ok(), "{}: {:?}", file.path, parsed.err());
    }
}

#[test]
fn the_pipeline_must_set_exactly_the_environment_values() {
    let mut required = Vec::new();
    for name in POC_RECIPES.iter().chain(["hygiene"].iter()) {
        let info = recipe::describe(&source(), name).expect("recipe loads");
        assert!(!info.description.is_empty());
        for variable in info.variables {
            assert!(
                !variable.description.is_empty(),
                "{} undocumented",
                variable.name
            );
            if variable.default.is_none() && !variable.secret {
                required.push(variable.name);
            }
        }
    }
    required.sort();
    required.dedup();
    let expected = [
        "aurora_reader_endpoint",
        "aurora_writer_endpoint",
        "laravel_artifact_url",
        "parameter_prefix",
    ];
    assert_eq!(required, expected);
}

/// Runs jq with `input` on stdin; Ok(stdout) or Err(stderr).
fn jq(args: &[&str], input: &str) -> Result<String, String> {
    let mut child = Command::new("jq")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jq");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes())
        .expect("write jq input");
    let out = child.wait_with_output().expect("jq finishes");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The boot unit's view: fragments merged, programs and templates as installed.
struct Boot {
    dir: tempfile::TempDir,
    wanted: serde_json::Value,
    fragments: Vec<serde_json::Value>,
}

impl Boot {
    fn new(rendered: &Rendered) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for file in &rendered.files {
            let name = file.path.trim_start_matches('/').replace('/', "_");
            std::fs::write(dir.path().join(name), &file.content).expect("write file");
        }
        let fragments: Vec<serde_json::Value> = rendered
            .files
            .iter()
            .filter(|f| f.path.starts_with("/etc/kiln/boot.d/"))
            .map(|f| serde_json::from_slice(&f.content).expect("fragment JSON"))
            .collect();
        let mut wanted = serde_json::Map::new();
        for fragment in &fragments {
            if let Some(parameters) = fragment["parameters"].as_object() {
                wanted.extend(parameters.clone());
            }
        }
        Self {
            dir,
            wanted: serde_json::Value::Object(wanted),
            fragments,
        }
    }

    fn path(&self, installed: &str) -> String {
        let name = installed.trim_start_matches('/').replace('/', "_");
        self.dir.path().join(name).display().to_string()
    }

    fn values(&self, parameters: &serde_json::Value) -> Result<String, String> {
        let program = self.path("/usr/local/libexec/kiln/boot-values.jq");
        let wanted = self.wanted.to_string();
        let args = [
            "-c",
            "--arg",
            "prefix",
            "/poc/web",
            "--argjson",
            "wanted",
            &wanted,
        ];
        let args: Vec<&str> = args.iter().copied().chain(["-f", &program]).collect();
        jq(&args, &parameters.to_string())
    }

    fn render(&self, values: &str, template: &str) -> Result<String, String> {
        let program = self.path("/usr/local/libexec/kiln/boot-render.jq");
        let template = self.path(template);
        jq(
            &["-j", "--rawfile", "tpl", &template, "-f", &program],
            values,
        )
    }
}

/// What `aws ssm get-parameters-by-path` answers for a prefix holding `entries`.
fn parameter_store(entries: &[(&str, &str, &str)]) -> serde_json::Value {
    let parameters: Vec<serde_json::Value> = entries
        .iter()
        .map(|(name, kind, value)| {
            serde_json::json!({ "Name": format!("/poc/web/{name}"), "Type": kind, "Value": value })
        })
        .collect();
    serde_json::json!({ "Parameters": parameters })
}

const STORE: [(&str, &str, &str); 6] = [
    ("db/password", "SecureString", "store-db-password"),
    ("app/key", "SecureString", "base64:c3RvcmUtYXBwLWtleQ=="),
    (
        "proxysql/admin-password",
        "SecureString",
        "store-admin-password",
    ),
    (
        "proxysql/stats-password",
        "SecureString",
        "store-stats-password",
    ),
    (
        "proxysql/monitor-password",
        "SecureString",
        "store-monitor-password",
    ),
    (
        "db/writer-endpoint",
        "String",
        "writer.from-parameter-store.example",
    ),
];

#[test]
fn boot_templates_render_from_parameter_store() {
    require("jq");
    let rendered = rendered();
    let boot = Boot::new(&rendered);
    let values = boot
        .values(&parameter_store(&STORE))
        .expect("all parameters present");
    let mut rendered_files = 0;
    for fragment in &boot.fragments {
        for entry in fragment["files"].as_array().expect("files") {
            let template = entry["template"].as_str().expect("template path");
            let out = boot.render(&values, template).expect("template renders");
            assert!(!out.contains("@@"), "{template} left a placeholder");
            rendered_files += 1;
            if template.ends_with("proxysql.cnf") {
                // Parameter Store wins over the baked endpoint; the baked one fills in.
                assert!(out.contains("address=\"writer.from-parameter-store.example\""));
                assert!(out.contains("address=\"poc-poc-aurora-cluster.cluster-ro-"));
                assert!(out.contains("admin_credentials=\"kiln-admin:store-admin-password\""));
            }
            if template.ends_with("laravel.env") {
                assert!(out.contains("DB_PASSWORD=\"store-db-password\"\n"));
                assert!(out.contains("APP_KEY=\"base64:c3RvcmUtYXBwLWtleQ==\"\n"));
                assert!(out.contains("DB_HOST=127.0.0.1\nDB_PORT=6033\n"));
            }
        }
    }
    assert_eq!(rendered_files, 5);
}

#[test]
fn boot_refuses_missing_plain_or_default_secrets() {
    require("jq");
    let boot = Boot::new(&rendered());
    let missing = boot
        .values(&parameter_store(&STORE[1..]))
        .expect_err("db/password missing");
    assert!(
        missing.contains("missing parameters: /poc/web/db/password"),
        "{missing}"
    );

    let mut plain = STORE.to_vec();
    plain[0] = ("db/password", "String", "store-db-password");
    let error = boot
        .values(&parameter_store(&plain))
        .expect_err("a String secret");
    assert!(
        error.contains("/poc/web/db/password is a secret but stored as String"),
        "{error}"
    );

    let mut default = STORE.to_vec();
    default.push(("proxysql/admin-user", "String", "admin"));
    let error = boot
        .values(&parameter_store(&default))
        .expect_err("admin:admin");
    assert!(
        error.contains("proxysql/admin-user has a value this image refuses"),
        "{error}"
    );

    let mut quoted = STORE.to_vec();
    quoted[0] = ("db/password", "SecureString", "pa\"ss");
    let error = boot.values(&parameter_store(&quoted)).expect_err("a quote");
    assert!(error.contains("contains a quote"), "{error}");
    assert!(
        !error.contains("pa\"ss"),
        "errors never show values: {error}"
    );
}
