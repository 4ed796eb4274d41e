//! Bad input is refused before anything changes: every command that reads the file
//! prints exactly the file, line and column, what is wrong and the fix, exits 2, and the
//! simulated account (an existing one, seeded from the POC) is left exactly as it was.

mod support;

use std::path::PathBuf;

use support::{position_in, Sandbox};

/// Every command that reads a pipeline file, its recipes and its templates.
const COMMANDS: [&[&str]; 4] = [&["validate"], &["plan"], &["bake"], &["pipeline", "run"]];

/// The exit code of bad input.
const BAD_INPUT: i32 = 2;

/// One broken input and the exact refusal it must get. In `message` and `hint`,
/// `{recipes}` and `{templates}` stand for the sandbox's folders of them, `{available}`
/// for the list of its templates.
struct Case<'a> {
    /// The file broken: `pipeline.yaml`, or a copy of a recipe or template
    /// (`recipes/base-os.yaml`, `templates/laravel/env`).
    file: &'a str,
    /// What the file says instead of the POC's text: (from, to), first occurrence.
    edit: (&'a str, &'a str),
    /// Where the error points: the first line holding `.0`, where `.1` starts in it.
    at: (&'a str, &'a str),
    message: &'a str,
    hint: &'a str,
}

/// One account-opening test at a time: a child forked by another test would inherit,
/// until it execs, the state-file lock this process holds, and make `kiln` fail as locked.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A sandbox with copies of the recipes and templates, the POC pipeline naming them,
/// and an existing simulated account.
struct Poc {
    sandbox: Sandbox,
    pipeline: PathBuf,
}

impl Poc {
    fn new() -> Self {
        Self::of("pipeline.yaml")
    }

    /// The POC example `name` (`pipeline.yaml`, `layered.yaml`).
    fn of(name: &str) -> Self {
        let sandbox = Sandbox::new();
        sandbox.copy_recipes();
        let pipeline = sandbox.poc_pipeline(name, |t| t);
        Self { sandbox, pipeline }
    }

    fn path_of(&self, file: &str) -> PathBuf {
        if self.pipeline.ends_with(file) {
            self.pipeline.clone()
        } else {
            self.sandbox.path(file)
        }
    }

    /// Applies the case's edit and returns the edited file's path and text.
    fn break_file(&self, case: &Case<'_>) -> (PathBuf, String) {
        let path = self.path_of(case.file);
        let text = std::fs::read_to_string(&path).expect("file to break");
        let (from, to) = case.edit;
        assert!(text.contains(from), "{} has no {from:?}", case.file);
        let text = text.replacen(from, to, 1);
        std::fs::write(&path, &text).expect("write broken file");
        (path, text)
    }

    fn expand(&self, text: &str) -> String {
        let folder = |name| self.sandbox.path(name).display().to_string();
        text.replace("{recipes}", &folder("recipes"))
            .replace("{templates}", &folder("templates"))
            .replace("{available}", &self.templates().join(", "))
    }

    /// Every template file, by its path under the templates folder, sorted.
    fn templates(&self) -> Vec<String> {
        let root = self.sandbox.path("templates");
        let mut found = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("templates folder") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    let relative = path.strip_prefix(&root).expect("under the folder");
                    found.push(relative.display().to_string());
                }
            }
        }
        found.sort();
        found
    }

    /// Runs `args` and asserts exit 2, nothing on stdout and exactly `expected` on stderr.
    fn assert_refused(&self, args: &[&str], expected: &str) {
        let run = self.sandbox.kiln(args);
        run.assert_code(BAD_INPUT);
        assert_eq!(run.stderr, expected, "{args:?}");
        assert_eq!(run.stdout, "", "{args:?} printed a result");
    }
}

/// Breaks the file as the case says and asserts that every command refuses it with
/// exactly the case's message, and that the account does not change.
fn assert_refused_exactly(case: &Case<'_>) {
    assert_refused_exactly_in(&Poc::new(), case);
}

/// [`assert_refused_exactly`] in a given sandbox.
fn assert_refused_exactly_in(poc: &Poc, case: &Case<'_>) {
    let _serial = serial();
    let before = poc.sandbox.account_state();
    let (path, text) = poc.break_file(case);
    let (line, column) = position_in(&text, case.at.0, case.at.1);
    let expected = format!(
        "kiln: error: {}:{line}:{column}: {}\n  hint: {}\n",
        path.display(),
        poc.expand(case.message),
        poc.expand(case.hint)
    );
    let file = poc.pipeline.to_str().expect("UTF-8 path");
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push(file);
        poc.assert_refused(&args, &expected);
    }
    assert_eq!(poc.sandbox.account_state(), before, "the account changed");
}

const UNKNOWN_KEY_HINT: &str =
    "remove the key or fix its spelling; the expected keys are listed above";
const SYNTAX_HINT: &str =
    "fix the YAML at this position (indentation, a missing `:`, unbalanced brackets or quotes)";

// The pipeline file: YAML, keys, types.

#[test]
fn malformed_yaml_names_file_and_line() {
    // The unclosed bracket swallows the next line, whose `:` cannot be in a list.
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  region: ap-northeast-1", "  region: [ap-northeast-1"),
        at: ("  source:", ":"),
        message: "malformed YAML: did not find expected ',' or ']', while parsing a flow \
                  sequence",
        hint: SYNTAX_HINT,
    });
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  instance_type: t3.medium", "\tinstance_type: t3.medium"),
        at: ("\tinstance_type", "\t"),
        message: "malformed YAML: found character that cannot start any token, while \
                  scanning for the next token",
        hint: SYNTAX_HINT,
    });
}

#[test]
fn unknown_key_is_named_with_its_line() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  instance_type: t3.medium", "  instance_typ: t3.medium"),
        at: ("instance_typ:", "instance_typ"),
        message: "builder: unknown field `instance_typ`, expected one of `instance_type`, \
                  `subnet`, `instance_profile`, `root_volume`, `timeouts`",
        hint: UNKNOWN_KEY_HINT,
    });
}

#[test]
fn wrong_type_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("size_gib: 20,", "size_gib: twenty,"),
        at: ("size_gib: twenty", "twenty"),
        message: "builder.root_volume.size_gib: invalid type: string \"twenty\", expected a \
                  whole number",
        hint: "give the value the type shown above",
    });
}

#[test]
fn a_duration_that_is_not_one_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("boot: 10m", "boot: 10 parsecs"),
        at: ("boot: 10 parsecs", "10 parsecs"),
        message: "builder.timeouts.boot: invalid value: string \"10 parsecs\", expected a \
                  duration",
        hint: "write a duration such as `90s`, `10m` or `1h 30m`",
    });
}

// Recipes and variables the pipeline names.

#[test]
fn unknown_recipe_is_refused_with_the_available_ones() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("recipes: [base-os,", "recipes: [base-oss,"),
        at: ("recipes: [base-oss", "base-oss"),
        message: "unknown recipe `base-oss`: there is no base-oss.yaml in this folder",
        hint: "use one of the available recipes: base-os, boot-config, hygiene, laravel, \
               monitoring, proxysql (recipes are read from {recipes})",
    });
}

#[test]
fn an_image_without_recipes_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "recipes: [base-os, proxysql, laravel, monitoring, boot-config]",
            "recipes: []",
        ),
        at: ("recipes: []", "[]"),
        message: "image `poc-web-base` lists no recipes",
        hint: "list the recipes to bake, e.g. `recipes: [base-os]`",
    });
}

#[test]
fn missing_variable_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    parameter_prefix: /poc/web\n", ""),
        at: ("  variables:", "variables"),
        message: "variable `parameter_prefix` of recipe `boot-config` has no default and the \
                  pipeline does not set it",
        hint: "set `parameter_prefix` in the pipeline's variables (Parameter Store path \
               under which this environment's parameters live (e.g. /poc/web). Baked as the \
               fallback; an instance tag named by parameter_prefix_tag overrides it.) \
               (recipes are read from {recipes}/boot-config.yaml:10:5)",
    });
}

#[test]
fn a_missing_endpoint_is_described_with_its_whole_example() {
    let poc = Poc::new();
    let text = std::fs::read_to_string(&poc.pipeline).expect("pipeline");
    let line = text
        .lines()
        .find(|l| l.contains("aurora_writer_endpoint:"))
        .expect("the POC sets the writer endpoint");
    assert_refused_exactly_in(
        &poc,
        &Case {
            file: "pipeline.yaml",
            edit: (&format!("{line}\n"), ""),
            at: ("  variables:", "variables"),
            message: "variable `aurora_writer_endpoint` of recipe `proxysql` has no default \
                      and the pipeline does not set it",
            hint: "set `aurora_writer_endpoint` in the pipeline's variables (Aurora cluster \
                   endpoint (hostgroup 0), e.g. \
                   poc-poc-aurora-cluster.cluster-xxxx.ap-northeast-1.rds.amazonaws.com; \
                   Parameter Store's db/writer-endpoint overrides it.) (recipes are read \
                   from {recipes}/proxysql.yaml:44:5)",
        },
    );
}

#[test]
fn a_misspelt_variable_is_refused_with_the_right_name() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "    parameter_prefix: /poc/web",
            "    parameter_prefx: /poc/web",
        ),
        at: ("parameter_prefx:", "parameter_prefx"),
        message: "the pipeline sets variable `parameter_prefx`, which none of its recipes \
                  (base-os, proxysql, laravel, monitoring, boot-config, hygiene) declares",
        hint: "did you mean `parameter_prefix`? Fix the name in the pipeline (recipes are \
               read from {recipes})",
    });
}

#[test]
fn in_a_layered_pipeline_the_error_points_into_the_layer_at_fault() {
    // Both layers list recipes and set variables: the error must name the base's line.
    assert_refused_exactly_in(
        &Poc::of("layered.yaml"),
        &Case {
            file: "layered.yaml",
            edit: (
                "recipes: [base-os, proxysql,",
                "recipes: [base-os, proxysq,",
            ),
            at: ("recipes: [base-os, proxysq,", "proxysq"),
            message: "unknown recipe `proxysq`: there is no proxysq.yaml in this folder",
            hint: "use one of the available recipes: base-os, boot-config, hygiene, laravel, \
                   monitoring, proxysql (recipes are read from {recipes})",
        },
    );
    assert_refused_exactly_in(
        &Poc::of("layered.yaml"),
        &Case {
            file: "layered.yaml",
            edit: ("    region: ap-northeast-1", "    region: us-west-2"),
            at: ("    region: us-west-2", "us-west-2"),
            message: "layer `poc-web-base` is in us-west-2, the image in ap-northeast-1",
            hint: "bake every layer in the image's region; distribute copies the others",
        },
    );
    assert_refused_exactly_in(
        &Poc::of("layered.yaml"),
        &Case {
            file: "layered.yaml",
            edit: (
                "channel: { image: poc-web-base, channel: poc }",
                "channel: { image: poc-web-base, channel: \"p c\" }",
            ),
            at: (
                "channel: { image: poc-web-base, channel: \"p c\" }",
                "\"p c\"",
            ),
            message: "`p c` is not a channel name Parameter Store accepts",
            hint: "use 1 to 64 letters, digits, `_`, `.` or `-` (such as `prod`)",
        },
    );
}

// Recipe files and their templates.

#[test]
fn a_template_with_an_undefined_variable_is_refused() {
    assert_refused_exactly(&Case {
        file: "templates/laravel/env",
        edit: (
            "DB_PORT={{ proxysql_mysql_port }}",
            "DB_PORT={{ no_such_variable }}",
        ),
        at: ("DB_PORT=", "no_such_variable"),
        message: "variable `no_such_variable` is not declared by recipe `laravel`",
        hint: "declare `no_such_variable` under `variables:` in {recipes}/laravel.yaml (with \
               a description, and a default unless the pipeline must set it), or fix the name",
    });
}

const TERA_HINT: &str = "fix the tag at this position; a literal `{{`, `{%` or `{#` (bash's \
                         `${#var}`) must be wrapped in `{% raw %}...{% endraw %}`";

/// What Tera says of `{{ value }` (one closing brace).
const UNCLOSED_TAG: &str = "Tera syntax error: expected `or`, `and`, `not`, `<=`, `>=`, `<`, \
                            `>`, `==`, `!=`, `+`, `-`, `*`, `/`, `%`, a filter, or a variable \
                            end (`}}`)";

#[test]
fn a_tera_syntax_error_in_a_template_is_refused_at_its_line() {
    assert_refused_exactly(&Case {
        file: "templates/laravel/env",
        edit: (
            "DB_PORT={{ proxysql_mysql_port }}",
            "DB_PORT={{ proxysql_mysql_port }",
        ),
        at: ("DB_PORT=", "}"),
        message: UNCLOSED_TAG,
        hint: TERA_HINT,
    });
}

#[test]
fn a_tera_syntax_error_in_a_recipe_script_is_refused_at_its_line() {
    assert_refused_exactly(&Case {
        file: "recipes/base-os.yaml",
        edit: (
            "--security --releasever={{ dnf_releasever | shell_quote }}",
            "--security --releasever={{ dnf_releasever | shell_quote }",
        ),
        at: ("--security --releasever=", "}"),
        message: UNCLOSED_TAG,
        hint: TERA_HINT,
    });
}

#[test]
fn an_unknown_template_is_refused_with_the_available_ones() {
    assert_refused_exactly(&Case {
        file: "recipes/base-os.yaml",
        edit: (
            "template: base-os/kiln-imds.sh",
            "template: base-os/nope.sh",
        ),
        at: ("template: base-os/nope.sh", "base-os/nope.sh"),
        message: "unknown template `base-os/nope.sh`: no such file under {templates}",
        hint: "use one of the available templates: {available}",
    });
}

#[test]
fn an_unknown_key_in_a_recipe_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "recipes/base-os.yaml",
        edit: ("    timeout: 45m", "    timout: 45m"),
        at: ("timout:", "timout"),
        message: "not a valid recipe: build[0]: unknown field `timout`, expected one of \
                  `name`, `timeout`, `run`, `file`, `packages`, `service`, `reboot`",
        hint: "see recipes/README.md for the recipe format",
    });
}

#[test]
fn a_wrong_type_in_a_recipe_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "recipes/base-os.yaml",
        edit: ("    reboot: true", "    reboot: twice"),
        at: ("reboot: twice", "twice"),
        message: "not a valid recipe: build[1].reboot: invalid type: string \"twice\", \
                  expected a boolean",
        hint: "see recipes/README.md for the recipe format",
    });
}

#[test]
fn malformed_yaml_in_a_recipe_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "recipes/base-os.yaml",
        edit: (
            "  - name: reboot-into-updates",
            "  - name: [reboot-into-updates",
        ),
        at: ("    timeout: 15m", ":"),
        message: "malformed YAML: did not find expected ',' or ']', while parsing a flow \
                  sequence",
        hint: "fix the YAML at this position (indentation, a missing `:`, unbalanced quotes)",
    });
}

#[test]
fn a_step_timeout_out_of_run_commands_range_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "recipes/base-os.yaml",
        edit: ("timeout: 45m", "timeout: 72h"),
        at: ("timeout: 72h", "72h"),
        message: "timeout `72h` of step `security-updates` is out of range: Run Command's \
                  executionTimeout accepts 1s to 48h",
        hint: "pick a timeout between 1s and 48h; split a longer step into several",
    });
}

#[test]
fn a_step_name_ssm_would_reject_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "recipes/base-os.yaml",
        edit: ("- name: security-updates", "- name: Security Updates!"),
        at: ("- name: Security Updates!", "Security"),
        message: "step name `Security Updates!` is not [a-z0-9-]+",
        hint: "use lower-case letters, digits and dashes, e.g. `install-proxysql`",
    });
}

const BASH_HINT: &str =
    "fix the script at this line: `bash -n` (which runs nothing) refuses it, as the builder's \
     bash would";

#[test]
fn a_recipe_script_bash_refuses_is_refused_at_its_line() {
    let line = "      install -d -m 0700 /etc/kiln/secrets /etc/kiln/rendered\n";
    let broken = format!("{line}      done  # no loop to end\n");
    assert_refused_exactly(&Case {
        file: "recipes/base-os.yaml",
        edit: (line, &broken),
        at: ("      done  # no loop", "done"),
        message: "step `kiln-folders` of recipe `base-os` is not valid bash: syntax error near \
                  unexpected token `done'",
        hint: BASH_HINT,
    });
    assert_refused_exactly(&Case {
        file: "recipes/base-os.yaml",
        edit: (
            "install -d -m 0700 /etc/kiln/secrets",
            "install -d -m 0700 \"/etc/kiln/secrets",
        ),
        at: ("install -d -m 0700 \"/etc", "install"),
        message: "step `kiln-folders` of recipe `base-os` is not valid bash: unexpected EOF \
                  while looking for matching `\"'",
        hint: BASH_HINT,
    });
}

#[test]
fn without_bash_the_syntax_check_is_skipped_with_a_warning() {
    let poc = Poc::new();
    let empty = poc.sandbox.path("no-programs");
    std::fs::create_dir(&empty).expect("an empty folder for PATH");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["--no-progress", "validate"])
        .arg(&poc.pipeline)
        .env("PATH", &empty)
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let warning = "bash is not available: scripts are not syntax-checked";
    assert_eq!(stderr.matches(warning).count(), 1, "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.ends_with(": valid (6 recipes, 90 steps, targets: poc-web)\n"),
        "{stdout}"
    );
}

// Names, ids and numbers AWS would refuse.

#[test]
fn image_name_aws_would_reject_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("name: poc-web-base", "name: poc web base!"),
        at: ("name: poc web base!", "poc web"),
        message: "`poc web base!` is not a valid image name",
        hint: "use 1 to 100 letters, digits, `-`, `_` or `.`",
    });
    let long = format!("name: {}", "a".repeat(101));
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("name: poc-web-base", &long),
        at: (&long, "aaa"),
        message: &format!("`{}` is not a valid image name", "a".repeat(101)),
        hint: "use 1 to 100 letters, digits, `-`, `_` or `.`",
    });
}

#[test]
fn malformed_ami_id_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "parameter: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            "image_id: ami-12345",
        ),
        at: ("image_id: ami-12345", "ami-12345"),
        message: "`ami-12345` is not a valid ami- id; AWS would refuse it",
        hint: "write an AMI id such as `ami-0a1b2c3d4e5f67890`",
    });
}

#[test]
fn malformed_instance_type_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("instance_type: t3.medium", "instance_type: t3medium"),
        at: ("instance_type: t3medium", "t3medium"),
        message: "`t3medium` is not an EC2 instance type",
        hint: INSTANCE_TYPE_HINT,
    });
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("instance_type: t3.medium", "instance_type: t3.gigantic"),
        at: ("instance_type: t3.gigantic", "t3.gigantic"),
        message: "`t3.gigantic` is not an EC2 instance type",
        hint: INSTANCE_TYPE_HINT,
    });
}

const INSTANCE_TYPE_HINT: &str = "write a type such as `t3.medium`: the family, a dot, and a \
                                  size (nano, micro, small, medium, large, xlarge, \
                                  2xlarge... or metal)";

#[test]
fn real_instance_types_of_every_shape_are_accepted() {
    for instance_type in [
        "m7i-flex.large",
        "c7i.metal-24xl",
        "u-6tb1.metal",
        "r6g.16xlarge",
    ] {
        let poc = Poc::new();
        let text = std::fs::read_to_string(&poc.pipeline).unwrap();
        let edited = text.replacen(
            "instance_type: t3.medium",
            &format!("instance_type: {instance_type}"),
            1,
        );
        std::fs::write(&poc.pipeline, edited).unwrap();
        let file = poc.pipeline.to_str().unwrap();
        poc.sandbox.kiln(&["validate", file]).assert_code(0);
    }
}

#[test]
fn malformed_subnet_id_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("tags: { Name: poc-private-1a }", "id: sn-0a1b2c3d"),
        at: ("id: sn-0a1b2c3d", "sn-0a1b2c3d"),
        message: "`sn-0a1b2c3d` is not a valid subnet- id; AWS would refuse it",
        hint: "write a subnet id such as `subnet-0a1b2c3d`",
    });
}

#[test]
fn malformed_region_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  region: ap-northeast-1", "  region: tokyo"),
        at: ("  region: tokyo", "tokyo"),
        message: "`tokyo` is not an AWS region name",
        hint: "write a region such as `ap-northeast-1`",
    });
}

#[test]
fn budgets_and_sizes_out_of_range_are_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("boot: 10m", "boot: 3d"),
        at: ("boot: 3d", "3d"),
        message: "timeout `boot` of 3days is out of range",
        hint: "give it between 1s and 24h",
    });
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("size_gib: 20,", "size_gib: 0,"),
        at: ("size_gib: 0", "0"),
        message: "root volume size 0 GiB is out of range",
        hint: "EBS gp3 volumes hold 1 to 16384 GiB",
    });
}

#[test]
fn a_size_beyond_any_integer_type_is_refused_by_its_range() {
    // Beyond 64 bits: a generic YAML value cannot hold it, yet the YAML is well formed.
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("size_gib: 20,", "size_gib: 99999999999999999999,"),
        at: ("size_gib: 9", "9"),
        message: "root volume size 99999999999999999999 GiB is out of range",
        hint: "EBS gp3 volumes hold 1 to 16384 GiB",
    });
}

#[test]
fn a_key_written_twice_is_still_malformed_yaml() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "    parameter_prefix: /poc/web\n",
            "    parameter_prefix: /poc/web\n    parameter_prefix: /poc/app\n",
        ),
        // serde_yaml_ng places a repeated key at the start of its map.
        at: ("    aurora_writer_endpoint:", "aurora_writer_endpoint"),
        message: "malformed YAML: image.variables: duplicate entry with key \"parameter_prefix\"",
        hint: SYNTAX_HINT,
    });
}

#[test]
fn group_and_template_names_aws_would_reject_are_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("group: poc-web-asg", "group: \"poc:web\""),
        at: ("group: \"poc:web\"", "\"poc"),
        message: "`poc:web` is not a name AWS accepts for an Auto Scaling group",
        hint: "use 1 to 255 printable ASCII characters, without spaces or `:`",
    });
    let long = format!("launch_template: {}", "t".repeat(129));
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("launch_template: poc-web-lt", &long),
        at: (&long, "ttt"),
        message: &format!(
            "`{}` is not a launch template name or id AWS accepts",
            "t".repeat(129)
        ),
        hint: "use 3 to 128 letters, digits or `().-/_`, or an id such as \
               `lt-0a1b2c3d4e5f67890`",
    });
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("target_group: poc-web-tg", "target_group: poc_web_tg"),
        at: ("target_group: poc_web_tg", "poc_web_tg"),
        message: "`poc_web_tg` is not a target group name AWS accepts",
        hint: "use 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen",
    });
}

#[test]
fn a_version_channel_or_account_aws_would_reject_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "  secret_parameters:",
            "  version: 1.0 beta\n  secret_parameters:",
        ),
        at: ("version: 1.0 beta", "1.0 beta"),
        message: "`1.0 beta` is not a valid image version",
        hint: "use 1 to 24 letters, digits, `_`, `.` or `-` (such as `1.0.0`)",
    });
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  channel: poc", "  channel: poc/prod"),
        at: ("channel: poc/prod", "poc/prod"),
        message: "`poc/prod` is not a channel name Parameter Store accepts",
        hint: "use 1 to 64 letters, digits, `_`, `.` or `-` (such as `prod`)",
    });
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "  channel: poc",
            "  channel: poc\n  accounts: [\"4444-5555-6666\"]",
        ),
        at: ("accounts: [", "\"4444"),
        message: "`4444-5555-6666` is not an AWS account id",
        hint: "write the 12 digits of the account, quoted (\"444455556666\")",
    });
}

#[test]
fn regions_listed_twice_or_the_image_s_own_are_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "  channel: poc",
            "  channel: poc\n  regions: [us-west-2, ap-northeast-3, us-west-2]",
        ),
        at: ("regions: [", "us-west-2]"),
        message: "region `us-west-2` is listed twice",
        hint: "list each region once",
    });
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "  channel: poc",
            "  channel: poc\n  regions: [us-west-2, ap-northeast-1]",
        ),
        at: ("regions: [", "ap-northeast-1"),
        message: "region `ap-northeast-1` is the image's own region",
        hint: "remove it: the image is baked there; `regions` lists the other regions it is \
               copied to",
    });
}

/// The POC's distribution with `kms_keys: { KEYS }` and copies to us-west-2.
fn with_keys(keys: &str) -> String {
    format!("  channel: poc\n  regions: [us-west-2]\n  kms_keys: {{ {keys} }}")
}

const KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

#[test]
fn kms_keys_that_are_not_key_arns_of_a_copied_region_are_refused_exactly() {
    let edit = with_keys("us-west-2: 1234abcd-12ab-34cd-56ef-1234567890ab");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  channel: poc", &edit),
        at: ("kms_keys:", "1234abcd"),
        message: "`1234abcd-12ab-34cd-56ef-1234567890ab` is not a KMS key ARN or alias ARN",
        hint: "write the key's ARN, such as \
               `arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab`, \
               or an alias ARN (`arn:aws:kms:us-west-2:111122223333:alias/images`)",
    });
    let edit = with_keys("us-west-2: arn:aws:kms:us-east-1:111122223333:alias/images");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  channel: poc", &edit),
        at: ("kms_keys:", "arn:"),
        message: "the key given for us-west-2 is a key of us-east-1",
        hint: "a copy into us-west-2 is encrypted with a key of us-west-2: give one of that \
               region",
    });
    let edit = with_keys(&format!(
        "us-west-2: {KEY}, us-east-2: {}",
        KEY.replace("west", "east")
    ));
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  channel: poc", &edit),
        at: ("kms_keys:", "us-east-2"),
        message: "kms_keys gives a key for us-east-2, which `regions` does not list",
        hint: "give keys only for the regions the image is copied to (the image's own region \
               takes builder.root_volume.kms_key_id), or add the region to `regions`",
    });
}

#[test]
fn sharing_with_what_is_not_an_organization_or_unit_arn_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "  channel: poc",
            "  channel: poc\n  organizations: [o-a1b2c3d4e5]",
        ),
        at: ("organizations: [", "o-a1b2"),
        message: "`o-a1b2c3d4e5` is not an organization ARN",
        hint: "write the organization's ARN, such as \
               `arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5`",
    });
    let unit = "arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-web";
    let edit = format!("  channel: poc\n  organizational_units: [\"{unit}\"]");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  channel: poc", &edit),
        at: ("organizational_units: [", "\"arn"),
        message: &format!("`{unit}` is not an organizational unit ARN"),
        hint: "write the unit's ARN, such as \
               `arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-c3d4e5f6`",
    });
}

#[test]
fn target_names_that_are_empty_shared_or_not_plain_are_refused_exactly() {
    let hint = "use 1 to 128 letters, digits, `-` or `_`";
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  - name: poc-web", "  - name: \"../../../tmp/x y\""),
        at: ("  - name: \"../", "\""),
        message: "`../../../tmp/x y` is not a valid target name",
        hint,
    });
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("  - name: poc-web", "  - name: \"\""),
        at: ("  - name: \"\"", "\""),
        message: "`` is not a valid target name",
        hint,
    });
    let second = "targets:\n  - { name: poc-web, group: poc-web-asg, launch_template: poc-web-lt, \
                  strategy: rolling }\n";
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("targets:\n", second),
        at: ("  - name: poc-web", "poc-web"),
        message: "target `poc-web` is defined twice",
        hint: "give every target its own name",
    });
    let same_group = "targets:\n  - { name: poc-web-2, group: poc-web-asg, launch_template: \
                      poc-web-lt, strategy: rolling }\n";
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("targets:\n", same_group),
        at: ("    group: poc-web-asg", "poc-web-asg"),
        message: "group `poc-web-asg` is also the group of target `poc-web-2`",
        hint: "give each Auto Scaling group one target, with all its gates",
    });
}

#[test]
fn a_probe_path_without_its_slash_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("http_probe: /health", "http_probe: health"),
        at: ("http_probe: health", "health"),
        message: "`health` is not an HTTP path the probe can ask for",
        hint: "write the path each instance answers on, starting with `/` (such as `/health`), \
               of at most 1024 letters, digits and `-._~/%?=+,:@`",
    });
}

#[test]
fn variables_of_the_wrong_kind_are_refused_at_their_value() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("parameter_prefix: /poc/web", "parameter_prefix: poc/web"),
        at: ("parameter_prefix: poc/web", "poc/web"),
        message: "variable `parameter_prefix` is a Parameter Store path; `poc/web` is not one",
        hint: "write a path that starts with `/` and holds only letters, digits and `_.-/`, \
               such as `/poc/web` (recipes are read from {recipes}/boot-config.yaml:10:5)",
    });
    let kinds = [
        ("[poc, web]", "[", "a list"),
        ("{ name: poc }", "{", "a map"),
        ("~", "~", "no value (null)"),
    ];
    for (value, at, given) in kinds {
        let edit = format!("    app_version: {value}");
        assert_refused_exactly(&Case {
            file: "pipeline.yaml",
            edit: ("    app_version: \"1.0.0\"", &edit),
            at: ("app_version:", at),
            message: &format!(
                "variable `app_version` is a string, and the pipeline gives it {given}"
            ),
            hint: "give one value (quoted when in doubt) (recipes are read from \
                   {recipes}/laravel.yaml:27:5)",
        });
    }
}

#[test]
fn a_variable_value_longer_than_the_limit_is_refused_at_its_value() {
    let long = "1".repeat(4097);
    let edit = format!("    app_version: \"{long}\"");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    app_version: \"1.0.0\"", &edit),
        at: ("app_version:", "\""),
        message: "variable `app_version` is 4097 characters long; a value may have at most \
                  4096",
        hint: "give a short value: a large input (an archive, a file) belongs in S3, named \
               by a URL variable and fetched by a step (recipes are read from \
               {recipes}/laravel.yaml:27:5)",
    });
}

#[test]
fn an_app_version_that_is_not_a_version_is_refused_at_its_value() {
    // It would end the PHP string of HealthController.php and run code.
    let value = "1.0', 'x' => shell_exec('id'), 'y' => '";
    let edit = format!("    app_version: \"{value}\"");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    app_version: \"1.0.0\"", &edit),
        at: ("app_version:", "\""),
        message: &format!(
            "variable `app_version` must match `[A-Za-z0-9._+-]{{1,128}}`, and the pipeline \
             gives it `{value}`"
        ),
        hint: "give a value made only of what the pattern allows (The `version` field of \
               /health: letters, digits, `.`, `-`, `+` and `_`, as it is written into PHP \
               source) (recipes are read from {recipes}/laravel.yaml:27:5)",
    });
}

#[test]
fn a_pipeline_file_over_one_mebibyte_is_refused_unread() {
    let _serial = serial();
    let poc = Poc::new();
    let before = poc.sandbox.account_state();
    let text = std::fs::read_to_string(&poc.pipeline).expect("pipeline");
    let padding = "#".repeat(1024 * 1024);
    std::fs::write(&poc.pipeline, format!("{text}{padding}\n")).expect("write");
    let size = std::fs::metadata(&poc.pipeline).expect("size").len();
    let expected = format!(
        "kiln: error: {}:1:1: this pipeline file is {size} bytes; kiln reads files of at most \
         1048576 bytes (1 MiB)\n  hint: a pipeline is a few KiB: look for a value pasted by \
         mistake; an artifact belongs in S3, named by a variable such as \
         `laravel_artifact_url`\n",
        poc.pipeline.display()
    );
    let file = poc.pipeline.to_str().expect("UTF-8 path");
    let started = std::time::Instant::now();
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push(file);
        poc.assert_refused(&args, &expected);
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "too slow"
    );
    assert_eq!(poc.sandbox.account_state(), before, "the account changed");
}

// Rollout settings of a target.

/// The POC target's strategy line, followed by `settings` (indented under the target).
fn with_settings(settings: &str) -> String {
    format!("    strategy: rolling\n{settings}")
}

#[test]
fn an_unknown_strategy_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    strategy: rolling", "    strategy: rollin"),
        at: ("strategy: rollin", "rollin"),
        message: "targets[0].strategy: unknown variant `rollin`, expected one of `rolling`, \
                  `canary`, `blue-green`, `in-place`",
        hint: "use one of the values listed above",
    });
}

#[test]
fn an_unknown_key_in_a_strategy_block_is_refused_exactly() {
    let settings = with_settings("    rolling:\n      min_healthy: 50\n");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    strategy: rolling\n", &settings),
        at: ("min_healthy:", "min_healthy"),
        message: "targets[0].rolling: unknown field `min_healthy`, expected one of \
                  `min_healthy_percentage`, `max_healthy_percentage`, `instance_warmup`, \
                  `boot_time`, `skip_matching`, `checkpoints`, `checkpoint_delay`, \
                  `auto_rollback`, `protected_instances`, `standby_instances`, \
                  `raise_max_size`",
        hint: UNKNOWN_KEY_HINT,
    });
}

#[test]
fn a_percentage_out_of_range_is_refused_exactly() {
    let settings = with_settings("    rolling: { min_healthy_percentage: 150 }\n");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    strategy: rolling\n", &settings),
        at: ("min_healthy_percentage: 150", "150"),
        message: "min_healthy_percentage 150 is out of range",
        hint: "AWS accepts 0 to 100 (percent of the desired capacity kept healthy)",
    });
    let settings = with_settings("    canary:\n      steps: [10, 101]\n");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    strategy: rolling\n", &settings),
        at: ("steps: [10, 101]", "101"),
        message: "steps value 101 is not a percentage of the group",
        hint: "give each step between 1 and 100",
    });
}

#[test]
fn a_warmup_out_of_range_is_refused_exactly() {
    let settings = with_settings("    rolling:\n      instance_warmup: 2h\n");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    strategy: rolling\n", &settings),
        at: ("instance_warmup: 2h", "2h"),
        message: "instance_warmup 2h is out of range",
        hint: "give it between 0s and 1h",
    });
}

#[test]
fn run_command_timeouts_out_of_ssm_range_are_refused_exactly() {
    let hint = "give it between 30s and 48h: it is Run Command's delivery timeout (at least \
                30s) and execution timeout (at most 48h)";
    for (written, shown) in [("10s", "10s"), ("3d", "3days")] {
        let settings = with_settings(&format!("    timeouts: {{ command: {written} }}\n"));
        assert_refused_exactly(&Case {
            file: "pipeline.yaml",
            edit: ("    strategy: rolling\n", &settings),
            at: ("timeouts: { command:", written),
            message: &format!("command {shown} is out of range"),
            hint,
        });
    }
}

#[test]
fn rollout_durations_that_spin_or_never_end_are_refused_exactly() {
    let cases = [
        (
            "timeouts: { poll: 0s }",
            "0s",
            "poll 0s is out of range",
            "give it between 1s and 5m: how often progress and gates are read",
        ),
        (
            "timeouts: { rollout: 1000d }",
            "1000d",
            "rollout 2years 8months 25days 23h 31m 12s is out of range",
            "give it between 1m and 7days: the deadline of the whole replacement",
        ),
        (
            "timeouts: { rollback: 0s }",
            "0s",
            "rollback 0s is out of range",
            "give it between 1m and 2days: the deadline of a rollback",
        ),
        (
            "timeouts: { rollout: 2m, poll: 2m }",
            "2m }",
            "poll 2m is not shorter than the rollout timeout 2m",
            "poll more often than the rollout deadline, or the deadline passes unread",
        ),
        (
            "blue_green: { rollback_window: 1000d }",
            "1000d",
            "rollback_window 2years 8months 25days 23h 31m 12s is out of range",
            "give it between 5m and 7days: blue is kept this long after the switch, for a \
             rollback that is one listener change",
        ),
        (
            "canary: { mode: ab, rollback_window: 0s }",
            "0s",
            "rollback_window 0s is out of range",
            "give it between 5m and 7days: blue is kept this long after the switch, for a \
             rollback that is one listener change",
        ),
        (
            "blue_green: { step_bake: 3d }",
            "3d",
            "step_bake 3days is out of range",
            "give it at most 48h, as a canary checkpoint",
        ),
        (
            "blue_green: { watch_after_switch: 0s }",
            "0s",
            "watch_after_switch 0s is out of range",
            "give it between 1m and 2days: green is compared with blue this long once it \
             takes all the traffic",
        ),
        (
            "blue_green: { compare: { max_latency_ratio: .nan } }",
            ".nan",
            "max_latency_ratio NaN is out of range",
            "give a finite ratio of at least 1 (1.5: half again the baseline's latency)",
        ),
    ];
    for (block, value, message, hint) in cases {
        let settings = with_settings(&format!("    {block}\n"));
        let line = block.split_once(' ').expect("a key and its value").1;
        assert_refused_exactly(&Case {
            file: "pipeline.yaml",
            edit: ("    strategy: rolling\n", &settings),
            at: (line, value),
            message,
            hint,
        });
    }
}

#[test]
fn an_unhealthy_bound_shorter_than_two_health_checks_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "      http_probe: /health",
            "      http_probe: /health\n      unhealthy_after: 1s",
        ),
        at: ("unhealthy_after: 1s", "1s"),
        message: "unhealthy_after 1s is out of range",
        hint: "give it between 10s and 2h: a new instance needs at least two health checks to \
               be healthy, and longer than two warm-ups is AWS's own hour-long wait",
    });
}

#[test]
fn copy_budgets_out_of_the_time_based_copy_range_are_refused_exactly() {
    for (written, shown) in [("0s", "0s"), ("1000d", "2years 8months 25days 23h 31m 12s")] {
        let edit = format!("  channel: poc\n  copy_timeout: {written}");
        assert_refused_exactly(&Case {
            file: "pipeline.yaml",
            edit: ("  channel: poc", &edit),
            at: ("copy_timeout:", written),
            message: &format!("copy_timeout {shown} is out of range"),
            hint: "give it between 15m and 48h: the range in which AWS completes a time-based \
                   image copy",
        });
    }
}

#[test]
fn an_in_place_batch_larger_than_run_command_takes_is_refused_exactly() {
    let settings = with_settings("    in_place: { script: [\"true\"], batch_size: 51 }\n");
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    strategy: rolling\n", &settings),
        at: ("batch_size: 51", "51"),
        message: "batch_size 51 is out of range",
        hint: "give 1 to 50: one Run Command call takes at most 50 instances",
    });
}

/// A target rolled out as an A/B canary with `canary` (the settings inside `canary: {}`).
fn ab_canary(canary: &str) -> String {
    with_settings(&format!("    canary: {{ mode: ab, {canary} }}\n"))
}

#[test]
fn ab_comparison_thresholds_that_turn_the_gate_off_are_refused_exactly() {
    let cases = [
        (
            "compare: { max_latency_ratio: .nan }",
            ".nan",
            "max_latency_ratio NaN is out of range",
            "give a finite ratio of at least 1 (1.5: half again the baseline's latency)",
        ),
        (
            "compare: { max_error_rate_increase: .inf }",
            ".inf",
            "max_error_rate_increase inf is out of range",
            "give 0 to 100 percentage points above the baseline's 5xx rate",
        ),
        (
            "compare: { max_error_rate_increase: -0.5 }",
            "-0.5",
            "max_error_rate_increase -0.5 is out of range",
            "give 0 to 100 percentage points above the baseline's 5xx rate",
        ),
        (
            "compare: { min_requests: -1 }",
            "-1",
            "min_requests -1 is out of range",
            "give a finite count of at least 1 (a step with no canary request proves nothing)",
        ),
        (
            "compare: { min_latency_increase: 2h }",
            "2h",
            "min_latency_increase 2h is out of range",
            "give at most 1h 6m 40s: no request waits longer than an ALB's longest idle timeout",
        ),
    ];
    for (canary, value, message, hint) in cases {
        let settings = ab_canary(canary);
        assert_refused_exactly(&Case {
            file: "pipeline.yaml",
            edit: ("    strategy: rolling\n", &settings),
            at: ("compare: {", value),
            message,
            hint,
        });
    }
}

#[test]
fn ab_traffic_steps_that_compare_nothing_are_refused_exactly() {
    let cases = [
        (
            "traffic_steps: []",
            "[]",
            "an A/B canary without traffic_steps compares nothing",
            "list the percentages of the requests the canary takes, ending at 100, such as \
             `[5, 25, 50, 100]`",
        ),
        (
            "traffic_steps: [100]",
            "[100]",
            "an A/B canary whose only traffic step is 100 switches at once and compares nothing",
            "add steps below 100 (such as `[5, 25, 50, 100]`), or use `strategy: blue-green` \
             for one switch",
        ),
        (
            "traffic_steps: [5, 50]",
            "50",
            "traffic_steps end at 50, not at 100",
            "end the steps with 100: the last step is the switch to the canary",
        ),
        (
            "traffic_steps: [25, 5, 100]",
            "5, 100",
            "traffic_steps are not in ascending order (25 then 5)",
            "list each percentage once, smallest first",
        ),
        (
            "traffic_steps: [0, 100]",
            "0",
            "traffic_steps value 0 is not a percentage of the requests",
            "give each step between 1 and 100",
        ),
    ];
    for (canary, value, message, hint) in cases {
        let settings = ab_canary(canary);
        assert_refused_exactly(&Case {
            file: "pipeline.yaml",
            edit: ("    strategy: rolling\n", &settings),
            at: ("traffic_steps: [", value),
            message,
            hint,
        });
    }
}

#[test]
fn an_in_place_fix_with_nothing_to_run_is_refused_exactly() {
    for script in ["[]", "[\"  \"]"] {
        let settings = with_settings(&format!("    in_place: {{ script: {script} }}\n"));
        assert_refused_exactly(&Case {
            file: "pipeline.yaml",
            edit: ("    strategy: rolling\n", &settings),
            at: ("in_place: { script:", &script[..1]),
            message: "the in-place fix has no script",
            hint: "write the fix's shell lines, such as `script: [\"systemctl reload php-fpm\"]`",
        });
    }
}

#[test]
fn an_in_place_fix_bash_refuses_is_refused_at_its_line() {
    let settings = with_settings(
        "    in_place:\n      script:\n        - systemctl reload php-fpm\n        - \"if true; \
         then\"\n        - \"  echo reloaded\"\n",
    );
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    strategy: rolling\n", &settings),
        // Bash finds the file ending inside the `if`: the last line.
        at: ("  echo reloaded", "\""),
        message: "the in-place fix of target `poc-web` is not valid bash: syntax error: \
                  unexpected end of file",
        hint: "fix the script at this line: `bash -n` (which runs nothing) refuses it, as the \
               instances' bash would",
    });
}

#[test]
fn a_testers_rule_aws_would_reject_is_refused_exactly() {
    let settings = with_settings(
        "    blue_green:\n      preview: { source_ips: [203.0.113.0/33], hold: 30m }\n",
    );
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("    strategy: rolling\n", &settings),
        at: ("source_ips: [", "203.0.113.0/33"),
        message: "`203.0.113.0/33` is not a CIDR block",
        hint: "write an address and a prefix length, such as `203.0.113.0/24`",
    });
}

// Other files kiln reads, and flags.

#[test]
fn catalogue_commands_refuse_a_bad_channel_or_region_before_any_change() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let before = sandbox.account_state();
    let run = sandbox.kiln(&[
        "promote",
        "poc-web-base",
        "2026.01.05-1",
        "--to",
        "bad one!",
    ]);
    run.assert_code(BAD_INPUT);
    assert_eq!(
        run.stderr,
        "kiln: error: --to bad one!: `bad one!` is not a channel name Parameter Store \
         accepts\n  hint: use 1 to 64 letters, digits, `_`, `.` or `-` (such as `prod`)\n"
    );
    let regions = "ap-northeast-1,mars-1";
    let unknown = "kiln: error: region mars-1 is not one this account has: DescribeRegions \
                   mars-1 in mars-1: InvalidRegion: the simulated account has no such region; \
                   add it to the seed\n  hint: fix the name in --regions or --region (such as \
                   ap-northeast-1); on the simulated account, a region must be in its seed\n";
    for args in [
        &[
            "promote",
            "poc-web-base",
            "2026.01.05-1",
            "--to",
            "prod",
            "--regions",
            regions,
        ][..],
        &["images", "--regions", regions],
        &[
            "prune",
            "--keep",
            "1",
            "--older-than",
            "1d",
            "--regions",
            regions,
        ],
    ] {
        let run = sandbox.kiln(args);
        run.assert_code(BAD_INPUT);
        assert_eq!(run.stderr, unknown, "{args:?}");
    }
    assert_eq!(sandbox.account_state(), before, "the account changed");
}

#[test]
fn a_faults_file_with_an_unknown_key_is_refused_and_changes_nothing() {
    let _serial = serial();
    let poc = Poc::new();
    let before = poc.sandbox.account_state();
    let faults = poc
        .sandbox
        .write("faults.yaml", "steps:\n  - stepp: base-os/packages\n");
    let (line, column) = (2, 5);
    let state = poc.sandbox.state();
    let expected = format!(
        "kiln: error: open simulated account {}: {}:{line}:{column}: steps[0]: unknown field \
         `stepp`, expected one of {}\n  hint: {UNKNOWN_KEY_HINT}\n",
        state.display(),
        faults.display(),
        "`step`, `exit_code`, `stdout`, `stderr`, `times`"
    );
    let faults = faults.to_str().expect("UTF-8 path");
    let file = poc.pipeline.to_str().expect("UTF-8 path");
    poc.assert_refused(&["--faults", faults, "bake", file], &expected);
    assert_eq!(poc.sandbox.account_state(), before, "the account changed");
}

#[test]
fn a_seed_with_an_unknown_key_creates_no_account() {
    let sandbox = Sandbox::new();
    let seed_text = std::fs::read_to_string(support::repo_path("examples/poc/account.yaml"))
        .expect("POC seed")
        .replacen("home_region:", "home_regoin:", 1);
    let seed = sandbox.write("seed.yaml", &seed_text);
    let pipeline = sandbox.poc_pipeline("pipeline.yaml", |t| {
        let poc_seed = support::repo_path("examples/poc/account.yaml");
        t.replace(&poc_seed.display().to_string(), &seed.display().to_string())
    });
    let (line, column) = position_in(&seed_text, "home_regoin:", "home_regoin");
    let expected = format!(
        "kiln: error: open simulated account {}: {}:{line}:{column}: unknown field \
         `home_regoin`, expected one of `account_id`, `home_region`, `start_time`, \
         `rng_seed`, `instance_profiles`, `regions`\n  hint: {UNKNOWN_KEY_HINT}\n",
        sandbox.state().display(),
        seed.display()
    );
    let run = sandbox.kiln(&["plan", pipeline.to_str().expect("UTF-8 path")]);
    run.assert_code(BAD_INPUT);
    assert_eq!(run.stderr, expected);
    assert!(!sandbox.state().exists(), "an account was created");
}

#[test]
fn a_flag_value_that_is_not_a_duration_is_refused_before_anything() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let before = sandbox.account_state();
    let run = sandbox.kiln(&["prune", "--keep", "2", "--older-than", "30 parsecs"]);
    run.assert_code(BAD_INPUT);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        "error: invalid value '30 parsecs' for '--older-than <OLDER_THAN>': unknown time \
         unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, \
         months, years (and few variations)"
    );
    assert_eq!(sandbox.account_state(), before, "the account changed");
}

#[test]
fn a_manifest_that_cannot_be_written_is_refused_before_the_bake() {
    let _serial = serial();
    let poc = Poc::new();
    let before = poc.sandbox.account_state();
    let file = poc.pipeline.to_str().expect("UTF-8 path");
    let hint = "run from a folder kiln can write in, or name another manifest with \
                --manifest (or KILN_MANIFEST)";
    let missing = poc.sandbox.path("no-such-folder");
    let not_a_folder = poc.pipeline.clone();
    let not_json = poc.sandbox.write("not-a-manifest.json", "builds: [\n");
    let package = poc.sandbox.write(
        "package.json",
        "{\"name\": \"web\", \"version\": \"1.0.0\"}\n",
    );
    let cases = [
        (
            missing.join("kiln-manifest.json"),
            format!(
                "cannot create a file in {}: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            not_a_folder.join("kiln-manifest.json"),
            "cannot be read: Not a directory (os error 20)".to_string(),
        ),
        (
            not_json.clone(),
            "is not JSON: expected value at line 1 column 1".to_string(),
        ),
        (
            package.clone(),
            "is not a manifest (a JSON object whose `builds` is a list)".to_string(),
        ),
    ];
    for (manifest, problem) in cases {
        let expected = format!(
            "kiln: error: manifest {}: {problem}\n  hint: {hint}\n",
            manifest.display()
        );
        let manifest = manifest.to_str().expect("UTF-8 path");
        for command in [&["bake"][..], &["pipeline", "run"]] {
            let mut args = command.to_vec();
            args.extend([file, "--manifest", manifest]);
            poc.assert_refused(&args, &expected);
        }
    }
    assert_eq!(poc.sandbox.account_state(), before, "the account changed");
    let untouched = std::fs::read_to_string(&package).expect("package.json");
    assert_eq!(untouched, "{\"name\": \"web\", \"version\": \"1.0.0\"}\n");
}

#[test]
fn an_unknown_target_is_refused_with_the_targets_there_are() {
    let _serial = serial();
    let poc = Poc::new();
    let before = poc.sandbox.account_state();
    let text = std::fs::read_to_string(&poc.pipeline).expect("pipeline");
    let (line, column) = position_in(&text, "targets:", "targets");
    let expected = format!(
        "kiln: error: {}:{line}:{column}: no target named `poc-wbe`\n  hint: targets in \
         this file: poc-web\n",
        poc.pipeline.display()
    );
    let file = poc.pipeline.to_str().expect("UTF-8 path");
    let image = "ami-0123456789abcdef0";
    poc.assert_refused(
        &["rollout", file, "--image", image, "--target", "poc-wbe"],
        &expected,
    );
    poc.assert_refused(&["rollback", file, "--target", "poc-wbe"], &expected);
    assert_eq!(poc.sandbox.account_state(), before, "the account changed");
}

// Input that only the account can refuse: still before any change.

/// Runs `args` (with the edited POC pipeline appended), asserts exit 2 and exactly
/// `expected(file, text)` on stderr, and an account left exactly as it was.
fn assert_refused_by_the_account(
    edit: (&str, &str),
    args: &[&str],
    expected: impl Fn(&str, &str) -> String,
) {
    assert_refused_by_the_account_in(edit, &[args], expected);
}

/// [`assert_refused_by_the_account`] for each of several commands.
fn assert_refused_by_the_account_in(
    edit: (&str, &str),
    commands: &[&[&str]],
    expected: impl Fn(&str, &str) -> String,
) {
    let _serial = serial();
    let poc = Poc::new();
    let before = poc.sandbox.account_state();
    let text = std::fs::read_to_string(&poc.pipeline).expect("pipeline");
    let text = text.replacen(edit.0, edit.1, 1);
    std::fs::write(&poc.pipeline, &text).expect("write pipeline");
    let file = poc.pipeline.to_str().expect("UTF-8 path");
    for args in commands {
        let mut args = args.to_vec();
        args.push(file);
        poc.assert_refused(&args, &expected(file, &text));
    }
    assert_eq!(poc.sandbox.account_state(), before, "the account changed");
}

/// The commands that read the account before they change it.
const ACCOUNT_COMMANDS: [&[&str]; 3] = [&["plan"], &["bake"], &["pipeline", "run"]];

/// What a name the region does not have is refused with, at its value in the file.
fn missing(what: &str, key: &str, name: &str) -> impl Fn(&str, &str) -> String {
    let (what, key, name) = (what.to_string(), key.to_string(), name.to_string());
    move |file, text| {
        let (line, column) = position_in(text, &format!("{key}: {name}"), &name);
        format!(
            "kiln: error: {file}:{line}:{column}: {what} `{name}` does not exist in \
             ap-northeast-1\n  hint: fix the name, or the region it is looked for in (the \
             image's `region:`, or --region)\n"
        )
    }
}

#[test]
fn a_misspelt_group_is_refused_before_the_bake() {
    assert_refused_by_the_account_in(
        ("group: poc-web-asg", "group: poc-web-asgx"),
        &[&["plan"], &["pipeline", "run"]],
        missing("Auto Scaling group", "group", "poc-web-asgx"),
    );
}

#[test]
fn a_misspelt_launch_template_or_target_group_is_refused_before_the_bake() {
    assert_refused_by_the_account(
        (
            "launch_template: poc-web-lt",
            "launch_template: poc-web-ltx",
        ),
        &["pipeline", "run"],
        missing("launch template", "launch_template", "poc-web-ltx"),
    );
    assert_refused_by_the_account_in(
        ("target_group: poc-web-tg", "target_group: poc-web-tgx"),
        &[&["plan"], &["pipeline", "run"]],
        missing("target group", "target_group", "poc-web-tgx"),
    );
}

#[test]
fn a_misspelt_load_balancer_is_refused_whatever_the_strategy() {
    // The POC target rolls out by instance refresh, which never reads the load balancer.
    assert_refused_by_the_account_in(
        ("load_balancer: poc-poc-alb", "load_balancer: poc-poc-albx"),
        &[&["plan"], &["pipeline", "run"]],
        missing("load balancer", "load_balancer", "poc-poc-albx"),
    );
}

/// Refused at `value`, on the first line holding `line`, with `message` and the fix for
/// a name the region does not have, by every command that reads the account.
fn refused_at(edit: (&str, &str), (line, value): (&str, &str), message: &str, hint: &str) {
    let expected = |file: &str, text: &str| {
        let (row, column) = position_in(text, line, value);
        format!("kiln: error: {file}:{row}:{column}: {message}\n  hint: {hint}\n")
    };
    assert_refused_by_the_account_in(edit, &ACCOUNT_COMMANDS, expected);
}

#[test]
fn a_root_volume_smaller_than_the_source_snapshot_is_refused_before_the_bake() {
    // In range for EBS, but EC2 would refuse the builder once the bake had begun.
    refused_at(
        ("size_gib: 20,", "size_gib: 2,"),
        ("size_gib: 2", "2"),
        "root volume size 2 GiB is smaller than the root snapshot of source image \
         ami-0a1e2023aaaa00001 (8 GiB) in ap-northeast-1",
        "set size_gib to 8 or more",
    );
}

const WRONG_NAME_OR_REGION: &str =
    "fix the name, or the region it is looked for in (the image's `region:`, or --region)";

#[test]
fn a_builder_subnet_the_region_lacks_is_refused_before_the_bake() {
    refused_at(
        (
            "tags: { Name: poc-private-1a }",
            "id: subnet-0abcdef0123456789",
        ),
        ("id: subnet-", "subnet-"),
        "no subnet matches subnet-0abcdef0123456789 in ap-northeast-1",
        WRONG_NAME_OR_REGION,
    );
    refused_at(
        (
            "tags: { Name: poc-private-1a }",
            "tags: { Name: poc-private-9z }",
        ),
        ("tags: { Name: poc-private-9z }", "{"),
        "no subnet matches subnet tagged Name=poc-private-9z in ap-northeast-1",
        WRONG_NAME_OR_REGION,
    );
}

#[test]
fn a_subnet_picked_by_no_tag_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: ("tags: { Name: poc-private-1a }", "tags: {}"),
        at: ("tags: {}", "{}"),
        message: "`subnet: { tags: {} }` matches every subnet of the region",
        hint: "give the tags that pick the builder's subnet (such as `{ Name: private-1a }`), \
               or its id (`subnet: { id: subnet-... }`)",
    });
}

/// The POC image's source line.
const SOURCE: &str =
    "parameter: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

#[test]
fn a_source_the_region_lacks_is_refused_before_the_bake() {
    refused_at(
        (SOURCE, "image_id: ami-0123456789abcdef0"),
        ("image_id: ami-", "ami-"),
        "source image ami-0123456789abcdef0 does not exist in ap-northeast-1",
        "fix the name, or the region it is looked for in (the image's `region:`, or \
         --region), and check that this account may launch it",
    );
    refused_at(
        (
            SOURCE,
            "parameter: /aws/service/ami-amazon-linux-latest/al2099",
        ),
        ("parameter: /aws/", "/aws/"),
        "source parameter `/aws/service/ami-amazon-linux-latest/al2099` does not exist in \
         ap-northeast-1",
        WRONG_NAME_OR_REGION,
    );
    refused_at(
        (SOURCE, "channel: { image: poc-web-base, channel: nope }"),
        ("channel: { image", "{"),
        "channel `nope` of image `poc-web-base` is empty in ap-northeast-1 (no parameter \
         /kiln/poc-web-base/nope)",
        "bake poc-web-base and publish it to `nope` first (a layer of this file does so in \
         the run when `distribute.channel` is `nope`), or `kiln promote` a version to it",
    );
}

#[test]
fn secret_parameters_that_protect_nothing_are_refused_before_the_bake() {
    let cases = [
        (
            "[/nope/]",
            "/nope/",
            "secret path /nope/ holds no parameter in ap-northeast-1",
            "fix the path, or store the secrets under it as SecureStrings first",
        ),
        (
            "[/aws/service/ami-amazon-linux-latest/]",
            "/aws/",
            "secret path /aws/service/ami-amazon-linux-latest/ holds no SecureString in \
             ap-northeast-1: its parameters are stored in clear",
            "store the secrets under it as SecureStrings (a String is kept and shown in \
             clear), or fix the path",
        ),
        (
            "[/poc/web/db/password, /poc/web/proxysql/admin-user]",
            "/poc/web/proxysql",
            "secret parameter /poc/web/proxysql/admin-user is a String, not a SecureString, \
             in ap-northeast-1",
            "store it as a SecureString (aws ssm put-parameter --name \
             /poc/web/proxysql/admin-user --type SecureString --overwrite ...), or remove it \
             from `secret_parameters`",
        ),
        (
            "[/poc/web/db/passwd]",
            "/poc/",
            "secret parameter /poc/web/db/passwd does not exist in ap-northeast-1",
            "create it (a SecureString) or remove it from `secret_parameters`",
        ),
    ];
    for (list, value, message, hint) in cases {
        let edit = format!("secret_parameters: {list}");
        refused_at(
            ("secret_parameters: [/poc/web/]", &edit),
            ("secret_parameters: [", value),
            message,
            hint,
        );
    }
}

#[test]
fn a_secret_s_value_in_the_pipeline_is_refused_exactly() {
    assert_refused_exactly(&Case {
        file: "pipeline.yaml",
        edit: (
            "    app_version: \"1.0.0\"",
            "    app_version: \"1.0.0\"\n    db_password: hunter2",
        ),
        at: ("db_password:", "db_password"),
        message: "variable `db_password` is a secret of recipe `proxysql`: the pipeline may \
                  not give its value",
        hint: "remove it: a secret lives in Parameter Store as a SecureString under the \
               image's parameter prefix, read at boot; a value here would be hashed into the \
               image's input hash, an AMI tag",
    });
}

#[test]
fn a_gate_on_an_alarm_that_does_not_exist_is_refused_before_the_bake() {
    assert_refused_by_the_account_in(
        ("alarms: [poc-web-5xx,", "alarms: [poc-web-5xxx,"),
        &[&["plan"], &["pipeline", "run"]],
        |file, text| {
            let (line, column) = position_in(text, "alarms: [", "poc-web-5xxx");
            format!(
                "kiln: error: target `poc-web` (group poc-web-asg): {file}:{line}:{column}: \
                 target `poc-web` gates on alarm(s) `poc-web-5xxx` that do not exist in \
                 ap-northeast-1\n  hint: fix the alarm names, or create the alarms first\n"
            )
        },
    );
}

#[test]
fn a_region_the_account_does_not_have_is_bad_input() {
    assert_refused_by_the_account_in(
        ("  region: ap-northeast-1", "  region: ap-northeast-9"),
        &ACCOUNT_COMMANDS,
        |file, text| {
            let (line, column) = position_in(text, "region: ap-northeast-9", "ap-northeast-9");
            format!(
                "kiln: error: {file}:{line}:{column}: region ap-northeast-9 is not one this \
                 account has: DescribeRegions ap-northeast-9 in ap-northeast-9: InvalidRegion: \
                 the simulated account has no such region; add it to the seed\n  hint: \
                 fix the region name (such as ap-northeast-1); on the simulated account, a \
                 region must be in its seed\n"
            )
        },
    );
}

#[test]
fn rolling_out_an_image_that_does_not_exist_changes_nothing() {
    assert_refused_by_the_account(
        ("", ""),
        &["rollout", "--image", "ami-0123456789abcdef0"],
        |_, _| {
            "kiln: error: image ami-0123456789abcdef0 does not exist in ap-northeast-1; check \
             the id and the region (`kiln images`)\n"
                .to_string()
        },
    );
    assert_refused_by_the_account(("", ""), &["rollout", "--image", "new"], |_, _| {
        "kiln: error: `new` is not an AMI id; give one such as ami-0123456789abcdef0 (see \
         `kiln images`)\n"
            .to_string()
    });
}

/// A pipeline file that cannot be read as text: every command says why and what to do,
/// and the account does not change.
#[test]
fn a_pipeline_file_that_is_no_text_file_is_refused_with_the_fix() {
    let _serial = serial();
    let poc = Poc::new();
    let before = poc.sandbox.account_state();
    let text = std::fs::read_to_string(&poc.pipeline).unwrap();
    // Latin-1 bytes in a value, as a file saved from another encoding has.
    let mut bytes = text.clone().into_bytes();
    let at = text.find("name: poc-web-base").expect("the image's name") + "name: poc-".len();
    bytes[at] = 0xe9;
    std::fs::write(&poc.pipeline, bytes).unwrap();
    let (line, column) = position_in(&text, "name: poc-web-base", "web-base");
    let not_utf8 = format!(
        "kiln: error: {}:{line}:{column}: byte 0xe9 is not UTF-8 text\n  hint: save the file as \
         UTF-8 (a pipeline copied from a document or another encoding carries such bytes)\n",
        poc.pipeline.display()
    );
    let folder = poc.sandbox.path("a-folder");
    std::fs::create_dir_all(&folder).unwrap();
    let missing = poc.sandbox.path("nope.yaml");
    let cases = [
        (poc.pipeline.clone(), not_utf8),
        (
            folder.clone(),
            format!(
                "kiln: error: cannot read pipeline file {}: it is a directory\n  hint: name \
                 the pipeline's YAML file itself\n",
                folder.display()
            ),
        ),
        (
            missing.clone(),
            format!(
                "kiln: error: cannot read pipeline file {}: no such file\n  hint: check the \
                 path; it is relative to the current directory (the POC's is \
                 examples/poc/pipeline.yaml)\n",
                missing.display()
            ),
        ),
    ];
    for (file, expected) in cases {
        for command in COMMANDS {
            let mut args = command.to_vec();
            args.push(file.to_str().unwrap());
            poc.assert_refused(&args, &expected);
        }
    }
    assert_eq!(poc.sandbox.account_state(), before, "the account changed");
}
