//! `kiln plan` lists every change a run would make, for every layer and every target, and
//! makes none: the simulated account is identical before and after.

mod support;

use support::Sandbox;

/// One plan at a time: a child forked by another test would inherit, until it execs, the
/// state-file lock this process holds, and make `kiln` fail as locked.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asserts that `wanted` are the starts of lines of `text`, in this order.
fn assert_lines_in_order(text: &str, wanted: &[&str]) {
    let lines: Vec<&str> = text.lines().collect();
    let mut at = 0;
    for line in wanted {
        let found = lines[at..].iter().position(|l| l.starts_with(line));
        let found = found.unwrap_or_else(|| panic!("no {line:?} in order:\n{text}"));
        at += found + 1;
    }
}

#[test]
fn plan_lists_every_change_and_makes_none() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let file = sandbox.poc_pipeline("pipeline.yaml", |t| t);
    let before = sandbox.account_state();
    let run = sandbox.kiln(&["plan", file.to_str().expect("UTF-8 path")]);
    run.assert_code(0);
    assert_lines_in_order(
        &run.stdout,
        &[
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
        ],
    );
    assert_eq!(sandbox.account_state(), before, "plan changed the account");
}
