//! `kiln iam-policy` prints a policy document per role, as JSON on stdout.

mod support;

use support::{repo_path, Sandbox, POC_PIPELINE};

#[test]
fn each_role_prints_its_policy_document() {
    let sandbox = Sandbox::new();
    let operator = sandbox.kiln(&[
        "iam-policy",
        "--role",
        "operator",
        "--account-id",
        "111122223333",
    ]);
    operator.assert_code(0);
    let json = operator.json();
    assert_eq!(json["Version"], "2012-10-17");
    let actions = kiln::cloud::iam::actions_of(&json);
    assert!(
        actions.iter().any(|a| a == "ec2:RunInstances"),
        "{actions:?}"
    );
    assert!(operator
        .stdout
        .contains("arn:aws:iam::111122223333:role/kiln-builder"));

    let instance = sandbox.kiln(&[
        "iam-policy",
        "--role",
        "instance",
        "--parameter-prefix",
        "/poc/web",
        "--region",
        "ap-northeast-1",
    ]);
    instance.assert_code(0);
    assert!(
        instance.stdout.contains("parameter/poc/web/*"),
        "{}",
        instance.stdout
    );
    assert!(!instance.stdout.contains("rds:"));

    let builder = sandbox.kiln(&["iam-policy", "--role", "builder", "--artifact-bucket", "b1"]);
    builder.assert_code(0);
    assert!(
        builder.stdout.contains("arn:aws:s3:::b1/*"),
        "{}",
        builder.stdout
    );
    assert!(!sandbox.state().exists(), "no account is opened");
}

#[test]
fn a_pipeline_scopes_the_policies_to_its_targets_and_prefix() {
    let sandbox = Sandbox::new();
    let pipeline = repo_path(POC_PIPELINE).display().to_string();
    let args = |role| {
        vec![
            "iam-policy",
            "--role",
            role,
            "--pipeline",
            pipeline.as_str(),
            "--region",
            "ap-northeast-1",
        ]
    };
    let operator = sandbox.kiln(&args("operator"));
    operator.assert_code(0);
    assert!(
        operator
            .stdout
            .contains("autoScalingGroupName/poc-web-asg-v*"),
        "{}",
        operator.stdout
    );
    assert!(operator.stdout.contains("listener/app/poc-poc-alb/*"));
    assert!(operator.stdout.contains("targetgroup/poc-web-tg-v*/*"));
    assert!(
        operator
            .stderr
            .contains("--pass-role <the web instances' role>"),
        "only the builder's role is passed: {}",
        operator.stderr
    );
    assert!(
        !operator.stderr.contains("no --pipeline"),
        "{}",
        operator.stderr
    );

    let instance = sandbox.kiln(&args("instance"));
    instance.assert_code(0);
    assert!(
        instance.stdout.contains("parameter/poc/web/*"),
        "the pipeline's parameter_prefix: {}",
        instance.stdout
    );
    assert_eq!(instance.stderr, "", "nothing left open");
}

#[test]
fn an_unscoped_policy_says_what_it_leaves_open() {
    let sandbox = Sandbox::new();
    let operator = sandbox.kiln(&["iam-policy", "--role", "operator"]);
    operator.assert_code(0);
    assert!(
        operator.stderr.contains(
            "kiln: no --pipeline: the operator may change any group, target group and \
             listener; pass the pipeline file to scope them to its targets"
        ),
        "{}",
        operator.stderr
    );
    let instance = sandbox.kiln(&["iam-policy", "--role", "instance"]);
    instance.assert_code(0);
    assert!(
        instance.stderr.contains("no --parameter-prefix"),
        "{}",
        instance.stderr
    );
}

/// A reader that stops early (`kiln iam-policy ... 2>&1 | head -1`) closes both pipes
/// before kiln has written: kiln still ends as the command did, without a panic or an
/// error about the pipe.
#[test]
fn a_reader_that_stops_early_is_not_a_failure() {
    use std::process::{Command, Stdio};
    let sandbox = Sandbox::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["iam-policy", "--role", "operator"])
        .current_dir(sandbox.path("."))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln starts");
    // Both read ends closed at once: every write kiln makes meets a broken pipe.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().expect("kiln ends");
    assert_eq!(status.code(), Some(0), "{status}");
}
