//! Secrets the pipeline names in Parameter Store never reach the image or the logs: a
//! rendered file holding one refuses the bake before anything is launched, and a step
//! that prints one fails the bake, with the value shown nowhere.

mod support;

use support::{repo_path, Sandbox};

/// The value of the POC seed's `/poc/web/db/password` SecureString.
const DB_PASSWORD: &str = "fake-db-password-for-the-simulation";

fn poc_pipeline(sandbox: &Sandbox, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(repo_path("examples/poc/pipeline.yaml")).unwrap();
    assert!(
        text.contains("secret_parameters: [/poc/web/]"),
        "the POC names its secrets"
    );
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

/// One test at a time: a child forked by the other test would inherit, until it execs,
/// the state-file lock this process holds, and make `kiln` fail as locked.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

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
fn a_secret_in_a_rendered_file_refuses_the_bake_and_changes_nothing() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    // A non-secret variable carrying a secret's value into a template.
    let file = poc_pipeline(&sandbox, |t| {
        t.replace(
            "app_version: \"1.0.0\"",
            &format!("app_version: \"{DB_PASSWORD}\""),
        )
    });
    let before = account_state(&sandbox);
    let run = sandbox.kiln(&["--output", "json", "bake", &file]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("holds the value of secret parameter /poc/web/db/password"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("step laravel/"),
        "names the step: {}",
        run.stderr
    );
    assert!(!run.stderr.contains(DB_PASSWORD) && !run.stdout.contains(DB_PASSWORD));
    assert_eq!(account_state(&sandbox), before, "nothing was launched");
}

#[test]
fn a_step_that_prints_a_secret_fails_the_bake_and_the_value_is_shown_nowhere() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let file = poc_pipeline(&sandbox, |t| t);
    let faults = sandbox.write(
        "faults.yaml",
        &format!(
            "steps:\n  - step: base-os/packages\n    exit_code: 0\n    \
             stdout: [\"connecting with {DB_PASSWORD}\"]\n"
        ),
    );
    let run = sandbox.kiln(&[
        "--faults",
        faults.to_str().unwrap(),
        "--output",
        "json",
        "-vv",
        "bake",
        &file,
    ]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("step base-os/packages on i-")
            && run
                .stderr
                .contains("printed the value of a secret (shown as ***)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(DB_PASSWORD), "{}", run.stderr);
    assert!(!run.stdout.contains(DB_PASSWORD), "{}", run.stdout);
    assert!(run
        .stderr
        .contains("cleaned up in ap-northeast-1: removed instance i-"));
}
