//! Bad input is refused before anything changes: the file, the line and the fix are
//! named, the exit code is 2, and the simulated account is not even created.

mod support;

use support::{repo_path, Sandbox};

/// Writes a copy of the POC pipeline with `edit` applied, beside copies of nothing else:
/// the recipes and templates are named by absolute path.
fn pipeline_with(sandbox: &Sandbox, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(repo_path("examples/poc/pipeline.yaml")).unwrap();
    let text = text
        .replace("../../recipes", repo_path("recipes").to_str().unwrap())
        .replace("../../templates", repo_path("templates").to_str().unwrap())
        .replace(
            "seed: account.yaml",
            &format!("seed: {}", repo_path("examples/poc/account.yaml").display()),
        );
    let path = sandbox.write("pipeline.yaml", &edit(text));
    path.to_str().unwrap().to_string()
}

fn assert_refused(sandbox: &Sandbox, args: &[&str], needles: &[&str]) {
    let run = sandbox.kiln(args);
    run.assert_code(2);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            run.stderr
        );
    }
    assert!(
        !sandbox.state().exists(),
        "the simulated account was touched"
    );
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let sandbox = Sandbox::new();
    let file = pipeline_with(&sandbox, |t| {
        t.replace("  region: ap-northeast-1", "  region: [ap-northeast-1")
    });
    assert_refused(
        &sandbox,
        &["pipeline", "run", &file],
        &["pipeline.yaml:", "hint:"],
    );
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let sandbox = Sandbox::new();
    let file = pipeline_with(&sandbox, |t| {
        t.replace("  instance_type: t3.medium", "  instance_typ: t3.medium")
    });
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("instance_typ:"))
        .unwrap()
        + 1;
    assert_refused(
        &sandbox,
        &["bake", &file],
        &[
            "unknown field `instance_typ`",
            &format!("pipeline.yaml:{line}:"),
        ],
    );
}

#[test]
fn unknown_recipe_is_refused_with_the_available_ones() {
    let sandbox = Sandbox::new();
    let file = pipeline_with(&sandbox, |t| {
        t.replace("recipes: [base-os,", "recipes: [base-oss,")
    });
    assert_refused(&sandbox, &["bake", &file], &["base-oss", "base-os"]);
}

#[test]
fn a_template_with_an_undefined_variable_is_refused() {
    let sandbox = Sandbox::new();
    let templates = sandbox.dir.path().join("templates");
    copy_dir(&repo_path("templates"), &templates);
    // The Laravel `.env` template: every POC bake renders it.
    let broken = templates.join("laravel").join("env");
    let mut text = std::fs::read_to_string(&broken).unwrap();
    text.push_str("\n{{ no_such_variable }}\n");
    std::fs::write(&broken, text).unwrap();
    let file = pipeline_with(&sandbox, |t| {
        t.replace(
            repo_path("templates").to_str().unwrap(),
            templates.to_str().unwrap(),
        )
    });
    let name = broken.file_name().unwrap().to_str().unwrap().to_string();
    assert_refused(&sandbox, &["plan", &file], &["no_such_variable", &name]);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A refusal on an account that exists: exit code 2, exactly `message` (after the
/// file and line) and `hint` on stderr, and the account's state unchanged.
struct Refusal<'a> {
    /// What the file says instead of the POC's text: (from, to).
    edit: (&'a str, &'a str),
    /// The line of the edited file the error points at: the first holding this text.
    line_of: &'a str,
    message: &'a str,
    hint: &'a str,
}

/// One account-opening test at a time: a child forked by another test would inherit,
/// until it execs, the state-file lock this process holds, and make `kiln` fail as locked.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn assert_refused_exactly(case: &Refusal<'_>) {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let file = pipeline_with(&sandbox, |t| {
        assert!(
            t.contains(case.edit.0),
            "the POC pipeline has {:?}",
            case.edit.0
        );
        t.replacen(case.edit.0, case.edit.1, 1)
    });
    let before = account_state(&sandbox);
    let text = std::fs::read_to_string(&file).unwrap();
    let line = 1 + text
        .lines()
        .position(|l| l.contains(case.line_of))
        .unwrap_or_else(|| panic!("no line with {:?}", case.line_of));

    for command in [
        &["validate"][..],
        &["plan"],
        &["bake"],
        &["pipeline", "run"],
    ] {
        let mut args = command.to_vec();
        args.push(&file);
        let run = sandbox.kiln(&args);
        run.assert_code(2);
        let mut lines = run.stderr.lines();
        let first = lines.next().unwrap_or_default();
        let at = format!("kiln: error: {file}:{line}:");
        assert!(
            first.starts_with(&at),
            "{args:?}: {first:?} does not start with {at:?}"
        );
        assert!(
            first.ends_with(&format!(": {}", case.message)),
            "{args:?}: {first:?} does not end with {:?}",
            case.message
        );
        let hint = lines.next().unwrap_or_default();
        assert!(
            hint.starts_with(&format!("  hint: {}", case.hint)),
            "{args:?}: hint {hint:?}"
        );
    }
    assert_eq!(account_state(&sandbox), before, "the account changed");
}

/// The simulated account's whole state (made from the POC seed on first use).
fn account_state(sandbox: &Sandbox) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let (account, _cloud) = sandbox.cloud_of_seed().await;
        account.snapshot_json()
    })
}

#[test]
fn wrong_type_is_refused_exactly() {
    let poc = std::fs::read_to_string(repo_path("examples/poc/pipeline.yaml")).unwrap();
    let (line, text) = poc
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("size_gib: 20,"))
        .unwrap();
    let column = text.find("20,").unwrap() + 1;
    assert_refused_exactly(&Refusal {
        edit: ("size_gib: 20,", "size_gib: twenty,"),
        line_of: "size_gib: twenty",
        message: &format!(
            "builder.root_volume.size_gib: invalid type: string \"twenty\", expected i32 \
             at line {} column {column}",
            line + 1
        ),
        hint: "give the value the type shown above",
    });
}

#[test]
fn missing_variable_is_refused_exactly() {
    assert_refused_exactly(&Refusal {
        edit: ("    parameter_prefix: /poc/web\n", ""),
        line_of: "variables:",
        message: "variable `parameter_prefix` of recipe `boot-config` has no default and the \
                  pipeline does not set it",
        hint: "set `parameter_prefix` in the pipeline's variables",
    });
}

#[test]
fn image_name_aws_would_reject_is_refused_exactly() {
    assert_refused_exactly(&Refusal {
        edit: ("name: poc-web-base", "name: poc web base!"),
        line_of: "name: poc web base!",
        message: "`poc web base!` is not a valid image name",
        hint: "use 1 to 100 letters, digits, `-`, `_` or `.`",
    });
    let long = format!("name: {}", "a".repeat(101));
    assert_refused_exactly(&Refusal {
        edit: ("name: poc-web-base", &long),
        line_of: &long,
        message: &format!("`{}` is not a valid image name", "a".repeat(101)),
        hint: "use 1 to 100 letters, digits, `-`, `_` or `.`",
    });
}

#[test]
fn malformed_ami_id_is_refused_exactly() {
    assert_refused_exactly(&Refusal {
        edit: (
            "parameter: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            "image_id: ami-12345",
        ),
        line_of: "ami-12345",
        message: "`ami-12345` is not a valid ami- id; AWS would refuse it",
        hint: "write an AMI id such as `ami-0a1b2c3d4e5f67890`",
    });
}

#[test]
fn malformed_instance_type_is_refused_exactly() {
    assert_refused_exactly(&Refusal {
        edit: ("instance_type: t3.medium", "instance_type: t3medium"),
        line_of: "instance_type: t3medium",
        message: "`t3medium` is not an EC2 instance type",
        hint: "write a type such as `t3.medium` (family, a dot, the size)",
    });
}

#[test]
fn malformed_subnet_id_is_refused_exactly() {
    assert_refused_exactly(&Refusal {
        edit: ("tags: { Name: poc-private-1a }", "id: sn-0a1b2c3d"),
        line_of: "sn-0a1b2c3d",
        message: "`sn-0a1b2c3d` is not a valid subnet- id; AWS would refuse it",
        hint: "write a subnet id such as `subnet-0a1b2c3d`",
    });
}

#[test]
fn budgets_and_sizes_out_of_range_are_refused_exactly() {
    assert_refused_exactly(&Refusal {
        edit: ("boot: 10m", "boot: 3d"),
        line_of: "boot:",
        message: "timeout `boot` of 3days is out of range",
        hint: "give it between 1s and 24h",
    });
    assert_refused_exactly(&Refusal {
        edit: ("size_gib: 20,", "size_gib: 0,"),
        line_of: "size_gib:",
        message: "root volume size 0 GiB is out of range",
        hint: "EBS gp3 volumes hold 1 to 16384 GiB",
    });
}

#[test]
fn tera_syntax_error_and_unknown_template_are_refused() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let templates = sandbox.dir.path().join("templates");
    let recipes = sandbox.dir.path().join("recipes");
    copy_dir(&repo_path("templates"), &templates);
    copy_dir(&repo_path("recipes"), &recipes);
    let file = pipeline_with(&sandbox, |t| {
        t.replace(
            repo_path("templates").to_str().unwrap(),
            templates.to_str().unwrap(),
        )
        .replace(
            repo_path("recipes").to_str().unwrap(),
            recipes.to_str().unwrap(),
        )
    });
    let before = account_state(&sandbox);

    let env = templates.join("laravel").join("env");
    let original = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, format!("{original}{{% if %}}\n")).unwrap();
    let line = original.lines().count() + 1;
    let run = sandbox.kiln(&["plan", &file]);
    run.assert_code(2);
    let at = format!("kiln: error: {}:{line}:", env.display());
    assert!(run.stderr.starts_with(&at), "{}", run.stderr);
    assert!(run.stderr.contains("Tera syntax error"), "{}", run.stderr);
    assert!(
        run.stderr.contains("{% raw %}"),
        "the hint says how to escape: {}",
        run.stderr
    );
    std::fs::write(&env, original).unwrap();

    let base = recipes.join("base-os.yaml");
    let text = std::fs::read_to_string(&base).unwrap();
    std::fs::write(
        &base,
        text.replace("base-os/kiln-imds.sh", "base-os/nope.sh"),
    )
    .unwrap();
    let run = sandbox.kiln(&["bake", &file]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("unknown template `base-os/nope.sh`: no such file under"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("base-os/kiln-imds.sh"),
        "the hint lists the templates"
    );
    std::fs::write(&base, text.replace("timeout: 45m", "timeout: 72h")).unwrap();
    let run = sandbox.kiln(&["bake", &file]);
    run.assert_code(2);
    assert!(run.stderr.contains("timeout `72h`"), "{}", run.stderr);
    assert!(
        run.stderr.contains("pick a timeout between 1s and 48h"),
        "{}",
        run.stderr
    );
    assert_eq!(account_state(&sandbox), before, "the account changed");
}

#[test]
fn plan_lists_every_change_and_makes_none() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let file = pipeline_with(&sandbox, |t| t);
    let before = account_state(&sandbox);
    let run = sandbox.kiln(&["plan", &file]);
    run.assert_code(0);
    let expected = [
        "  create security group kiln-bake-",
        "  launch builder instance: t3.medium from ami-",
        "  run ",
        "  create image poc-web-base-",
        "  launch test instance: t3.medium from the new image",
        "  terminate builder and test instances",
        "  delete security group kiln-bake-",
        "poc-web: group poc-web-asg in ap-northeast-1",
        "  template poc-web-lt: version ",
        "  rolling: launch before terminate",
    ];
    let lines: Vec<&str> = run.stdout.lines().collect();
    let mut at = 0;
    for wanted in expected {
        let found = lines[at..].iter().position(|l| l.starts_with(wanted));
        let found = found.unwrap_or_else(|| panic!("no {wanted:?} in order:\n{}", run.stdout));
        at += found + 1;
    }
    assert_eq!(account_state(&sandbox), before, "plan changed the account");
}

/// Runs `args` (with the pipeline file appended) and asserts exit 2, the message, and an
/// account left exactly as it was.
fn assert_refused_unchanged(edit: (&str, &str), args: &[&str], needles: &[&str]) {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let file = pipeline_with(&sandbox, |t| t.replacen(edit.0, edit.1, 1));
    let before = account_state(&sandbox);
    let mut args = args.to_vec();
    args.push(&file);
    let run = sandbox.kiln(&args);
    run.assert_code(2);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            run.stderr
        );
    }
    assert_eq!(account_state(&sandbox), before, "the account changed");
}

#[test]
fn a_misspelt_group_is_refused_before_the_bake() {
    assert_refused_unchanged(
        ("group: poc-web-asg", "group: poc-web-asgx"),
        &["pipeline", "run"],
        &["Auto Scaling group poc-web-asgx in ap-northeast-1: not found"],
    );
}

#[test]
fn a_gate_on_an_alarm_that_does_not_exist_is_refused_before_the_bake() {
    assert_refused_unchanged(
        ("alarms: [poc-web-5xx,", "alarms: [poc-web-5xxx,"),
        &["pipeline", "run"],
        &[
            "gates on alarm(s) `poc-web-5xxx` that do not exist in ap-northeast-1",
            "hint:",
        ],
    );
}

#[test]
fn rolling_out_an_image_that_does_not_exist_changes_nothing() {
    assert_refused_unchanged(
        ("", ""),
        &["rollout", "--image", "ami-0123456789abcdef0"],
        &["image ami-0123456789abcdef0 does not exist in ap-northeast-1"],
    );
    assert_refused_unchanged(
        ("", ""),
        &["rollout", "--image", "new"],
        &["`new` is not an AMI id"],
    );
}

#[test]
fn a_region_the_account_does_not_have_is_bad_input() {
    assert_refused_unchanged(
        ("  region: ap-northeast-1", "  region: ap-northeast-9"),
        &["bake"],
        &[
            "region ap-northeast-9 is not one this account has",
            "hint: fix the region name",
        ],
    );
}
