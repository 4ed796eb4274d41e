//! `kiln iam-policy` prints a policy document per role, as JSON on stdout.

mod support;

use support::Sandbox;

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
