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
