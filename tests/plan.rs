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

/// The layered POC pipeline, written into the sandbox with absolute paths.
fn layered(sandbox: &Sandbox) -> String {
    let file = sandbox.poc_pipeline("layered.yaml", |t| t);
    file.to_str().expect("UTF-8 path").to_string()
}

#[test]
fn plan_of_a_layered_pipeline_lists_every_layer_and_makes_no_change() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let file = layered(&sandbox);
    let before = sandbox.account_state();
    let source = sandbox
        .parameter(kiln::pipeline::AL2023_PARAMETER)
        .expect("the seed has the AL2023 parameter");

    let run = sandbox.kiln(&["plan", &file]);
    run.assert_code(0);
    let base_launch = format!("  launch builder instance: t3.medium from {source} in subnet-");
    assert_lines_in_order(
        &run.stdout,
        &[
            "layer poc-web-base in ap-northeast-1: bake poc-web-base-",
            "  why: no image of poc-web-base in ap-northeast-1 yet",
            "  create security group kiln-bake-",
            &base_launch,
            "  create image poc-web-base-",
            "  launch test instance: t3.medium from the new image",
            "  delete security group kiln-bake-",
            "  publish /kiln/poc-web-base/poc: set to the new image",
            "  copy to ap-northeast-3: copy the new image there",
            "  copy to us-west-2: copy the new image there",
            "  share the new image with 444455556666 (launch permission)",
            "image poc-web-app in ap-northeast-1: bake poc-web-app-",
            "  why: its source is baked anew in this run (poc-web-base-",
            "  create security group kiln-bake-",
            "  launch builder instance: t3.medium from (new image poc-web-base-",
            "  create image poc-web-app-",
            "  publish /kiln/poc-web-app/poc: set to the new image",
            "poc-web: group poc-web-asg in ap-northeast-1",
            "  template poc-web-lt: version ",
            "  rolling: launch before terminate",
        ],
    );

    let json = sandbox.kiln(&["--output", "json", "plan", &file]);
    json.assert_code(0);
    let plan = json.json();
    assert_both_baked(&plan, &source);
    assert_eq!(sandbox.account_state(), before, "plan changed the account");
}

/// The JSON plan of the layered pipeline on a fresh account: both layers baked, the base
/// from `source` and copied to both regions, the rollout a change.
fn assert_both_baked(plan: &serde_json::Value, source: &str) {
    assert_eq!(plan["action"], "bake");
    assert_eq!(plan["bake"]["image_name"], "poc-web-app");
    let layers = plan["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer below the image");
    assert_eq!(layers[0]["action"], "bake");
    assert_eq!(layers[0]["bake"]["image_name"], "poc-web-base");
    assert_eq!(layers[0]["bake"]["source_image"], source);
    let copies = layers[0]["distribution"]["copies"]
        .as_array()
        .expect("copies");
    let regions: Vec<&str> = copies.iter().filter_map(|c| c["region"].as_str()).collect();
    assert_eq!(regions, ["ap-northeast-3", "us-west-2"]);
    assert!(copies.iter().all(|c| c["existing"].is_null()));
    assert_eq!(plan["rollouts"][0]["no_change"], false);
}

#[test]
fn after_a_run_the_plan_reuses_every_layer_and_the_rollout_changes_nothing() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let file = layered(&sandbox);
    let run = sandbox.kiln(&["--output", "json", "pipeline", "run", &file]);
    run.assert_code(0);
    let result = run.json();
    let image = result["image"]["id"]
        .as_str()
        .expect("image id")
        .to_string();
    let base = result["layers"][0]["image"]["id"]
        .as_str()
        .expect("layer id");
    let before = sandbox.account_state();

    let json = sandbox.kiln(&["--output", "json", "plan", &file]);
    json.assert_code(0);
    let plan = json.json();
    assert_eq!(plan["action"], "reuse");
    assert_eq!(plan["bake"]["reuse"]["id"], image.as_str());
    assert_eq!(
        plan["bake"]["source_image"], base,
        "the app is planned on the base"
    );
    assert_eq!(plan["layers"][0]["action"], "reuse");
    assert_eq!(plan["layers"][0]["bake"]["reuse"]["id"], base);
    for image in std::iter::once(&plan).chain(plan["layers"].as_array().expect("layers")) {
        let distribution = &image["distribution"];
        assert_eq!(distribution["publish"]["unchanged"], true, "{distribution}");
        let copies = distribution["copies"].as_array().expect("copies");
        assert!(
            copies.iter().all(|c| c["existing"].is_string()),
            "{copies:?}"
        );
    }
    assert_eq!(plan["rollouts"][0]["no_change"], true);

    let text = sandbox.kiln(&["plan", &file]);
    text.assert_code(0);
    assert_lines_in_order(
        &text.stdout,
        &[
            &format!("layer poc-web-base in ap-northeast-1: reuse {base} (poc-web-base-"),
            &format!("  why: inputs unchanged: {base} has the same input hash"),
            &format!("  publish /kiln/poc-web-base/poc: already {base}"),
            &format!("image poc-web-app in ap-northeast-1: reuse {image} (poc-web-app-"),
            &format!("  source: {base} (channel poc of poc-web-base)"),
            &format!("  publish /kiln/poc-web-app/poc: already {image}"),
            "poc-web: group poc-web-asg in ap-northeast-1",
            "  template poc-web-lt: stays at version ",
            &format!("  nothing to change: every instance runs {image}"),
        ],
    );
    assert!(
        !text.stdout.contains("  launch ") && !text.stdout.contains("  rolling: "),
        "a plan of nothing to do launches nothing:\n{}",
        text.stdout
    );
    assert_eq!(sandbox.account_state(), before, "plan changed the account");
}
