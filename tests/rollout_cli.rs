//! `kiln rollout --strategy`, `kiln rollback` and `kiln status` through the binary on the
//! simulated POC account: a blue/green rollout undone by one listener change, the status
//! of both groups, and the exit codes an operator's script branches on.

mod support;

use kiln::cloud::Cloud;
use support::{Sandbox, POC_PIPELINE};

/// An image of the POC account other than the one the group runs.
const NEW_IMAGE: &str = "ami-0a1e2023aaaa00001";
const CURRENT_IMAGE: &str = "ami-0b0c0de2025110001";

/// The POC listener's default action: (target group name, weight).
async fn listener(cloud: &Cloud) -> Vec<(String, i32)> {
    let lb = &cloud.load_balancing;
    let alb = lb
        .describe_load_balancers(&["poc-poc-alb".into()])
        .await
        .unwrap();
    let listeners = lb.describe_listeners(&alb[0].arn).await.unwrap();
    let tgs = lb.describe_target_groups(&[]).await.unwrap();
    let forward = listeners[0].default_forward.clone().unwrap();
    forward
        .target_groups
        .iter()
        .map(|t| {
            let tg = tgs.iter().find(|g| g.arn == t.target_group_arn).unwrap();
            (tg.name.clone(), t.weight)
        })
        .collect()
}

/// What a rollback could change in the POC region's state (groups and their tags,
/// refreshes, template versions, listeners), without the clock, which moves with every
/// command.
fn rollout_state(state: &serde_json::Value) -> serde_json::Value {
    let region = &state["regions"]["ap-northeast-1"];
    let keys = ["groups", "refreshes", "templates", "listeners"];
    keys.iter()
        .map(|k| (k.to_string(), region[k].clone()))
        .collect()
}

fn group<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["targets"][0]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("{name} in {status}"))
}

#[tokio::test(start_paused = true)]
async fn blue_green_then_rollback_restores_blue_in_one_listener_change() {
    let sandbox = Sandbox::new();
    let args = [
        "--output",
        "json",
        "rollout",
        POC_PIPELINE,
        "--image",
        NEW_IMAGE,
        "--strategy",
        "blue-green",
    ];
    let out = sandbox.kiln(&args);
    out.assert_code(0);
    let rollout = &out.json()["rollouts"][0];
    assert_eq!(rollout["strategy"], "blue_green");
    assert_eq!(rollout["group"], "poc-web-asg-v3");
    {
        let (_account, cloud) = sandbox.cloud().await;
        let before = [
            ("poc-web-tg".to_string(), 0),
            ("poc-web-tg-v3".to_string(), 100),
        ];
        assert_eq!(listener(&cloud).await, before);
    }

    let status = sandbox.kiln(&["--output", "json", "status", POC_PIPELINE]);
    status.assert_code(0);
    let s = status.json();
    let green = group(&s, "poc-web-asg-v3");
    assert_eq!(green["live"], true);
    for i in green["instances"].as_array().unwrap() {
        assert_eq!(
            (i["version"].as_str(), i["image"].as_str()),
            (Some("3"), Some(NEW_IMAGE))
        );
    }
    let blue = group(&s, "poc-web-asg");
    assert_eq!(blue["live"], false);
    assert!(blue["lock"].is_null(), "the lock was released");
    for i in blue["instances"].as_array().unwrap() {
        assert_eq!(i["image"].as_str(), Some(CURRENT_IMAGE));
    }

    let back = sandbox.kiln(&["--output", "json", "rollback", POC_PIPELINE]);
    back.assert_code(0);
    let rb = &back.json()["rollbacks"][0];
    assert_eq!(
        (rb["status"].as_str(), rb["group"].as_str()),
        (Some("RolledBack"), Some("poc-web-asg"))
    );
    assert!(
        back.stderr.contains("1 listener(s) back on blue"),
        "one change on the one listener:\n{}",
        back.stderr
    );
    {
        let (_account, cloud) = sandbox.cloud().await;
        let after = [
            ("poc-web-tg".to_string(), 100),
            ("poc-web-tg-v3".to_string(), 0),
        ];
        assert_eq!(listener(&cloud).await, after);
    }
    let text = sandbox.kiln(&["status", POC_PIPELINE, "--target", "poc-web"]);
    text.assert_code(0);
    assert!(
        text.stdout
            .contains("group poc-web-asg (ap-northeast-1) live")
            && text
                .stdout
                .contains("group poc-web-asg-v3 (ap-northeast-1) not live")
            && text.stdout.contains("lock: free"),
        "{}",
        text.stdout
    );
}

#[test]
fn rollback_with_nothing_recorded_says_so_and_unknown_targets_are_bad_input() {
    let sandbox = Sandbox::new();
    let before = sandbox.account_state();
    let out = sandbox.kiln(&["rollback", POC_PIPELINE]);
    // A retried CI job finds nothing to undo: that is no reason to page anyone.
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        "poc-web (poc-web-asg): nothing to roll back: no rollout by kiln is recorded on group \
         poc-web-asg (tag kiln:previous-version), so there is no earlier version to return to; \
         3/3 instances on launch template version 2 (ami-0b0c0de2025110001)\n"
    );
    assert_eq!(
        rollout_state(&sandbox.account_state()),
        rollout_state(&before),
        "nothing changed"
    );
    let unknown = sandbox.kiln(&["status", POC_PIPELINE, "--target", "nope"]);
    unknown.assert_code(i32::from(kiln::exit::BAD_INPUT));
    let unknown = sandbox.kiln(&["rollback", POC_PIPELINE, "--target", "nope"]);
    unknown.assert_code(i32::from(kiln::exit::BAD_INPUT));
}

#[tokio::test(start_paused = true)]
async fn rolling_then_rollback_returns_every_instance_to_the_previous_version() {
    let sandbox = Sandbox::new();
    sandbox
        .kiln(&["rollout", POC_PIPELINE, "--image", NEW_IMAGE])
        .assert_code(0);
    let group_line = |sandbox: &Sandbox| {
        let text = sandbox.kiln(&["status", POC_PIPELINE]);
        text.assert_code(0);
        let line = text
            .stdout
            .lines()
            .find(|l| l.contains("group poc-web-asg"));
        line.expect("the group's line").trim().to_string()
    };
    assert_eq!(
        group_line(&sandbox),
        "group poc-web-asg (ap-northeast-1): desired 3 (min 3, max 6), version 3, rollback \
         goes to version 2"
    );
    let back = sandbox.kiln(&["--output", "json", "rollback", POC_PIPELINE]);
    back.assert_code(0);
    let rb = &back.json()["rollbacks"][0];
    assert_eq!(rb["launch_template_version"], 2);
    let status = sandbox.kiln(&["--output", "json", "status", POC_PIPELINE]);
    let s = status.json();
    let g = group(&s, "poc-web-asg");
    assert_eq!(g["template"]["version"], "2");
    let instances = g["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3);
    for i in instances {
        assert_eq!(i["image"].as_str(), Some(CURRENT_IMAGE), "{i}");
    }
    assert!(
        g["recent"].as_array().unwrap().len() >= 2,
        "rollout and rollback shown"
    );
    assert_eq!(
        group_line(&sandbox),
        "group poc-web-asg (ap-northeast-1): desired 3 (min 3, max 6), version 2, nothing to \
         roll back"
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_blue_green_switch_the_next_rollout_acts_on_the_live_group() {
    let sandbox = Sandbox::new();
    let switched = sandbox.kiln(&[
        "--output",
        "json",
        "rollout",
        POC_PIPELINE,
        "--image",
        NEW_IMAGE,
        "--strategy",
        "blue-green",
    ]);
    switched.assert_code(0);
    let green = switched.json()["rollouts"][0]["group"]
        .as_str()
        .expect("green group")
        .to_string();
    assert_ne!(green, "poc-web-asg", "blue/green made a new group");

    // The same image again with another strategy: the live (green) group already runs
    // it, so nothing changes; the old group at weight 0 is not refreshed.
    let again = sandbox.kiln(&[
        "--output",
        "json",
        "rollout",
        POC_PIPELINE,
        "--image",
        NEW_IMAGE,
        "--strategy",
        "rolling",
    ]);
    again.assert_code(0);
    let rollout = &again.json()["rollouts"][0];
    assert_eq!(rollout["group"], green.as_str(), "{rollout}");
    assert_eq!(rollout["status"], "NoChange", "{rollout}");
    let (_account, cloud) = sandbox.cloud().await;
    let refreshes = cloud
        .scaling
        .describe_instance_refreshes("poc-web-asg")
        .await
        .unwrap();
    assert!(
        refreshes.is_empty(),
        "the old group was refreshed: {refreshes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_poc_throttling_faults_delay_rollouts_without_failing_them() {
    for strategy in ["rolling", "blue-green"] {
        let sandbox = Sandbox::new();
        let out = sandbox.kiln(&[
            "--faults",
            "examples/poc/faults/throttling.yaml",
            "--output",
            "json",
            "rollout",
            POC_PIPELINE,
            "--image",
            NEW_IMAGE,
            "--strategy",
            strategy,
        ]);
        out.assert_code(0);
        assert!(
            !out.stderr.contains("failed"),
            "{strategy}:\n{}",
            out.stderr
        );
        let rollout = &out.json()["rollouts"][0];
        assert_eq!(
            (rollout["status"].as_str(), rollout["on_new_image"].as_i64()),
            (Some("Successful"), Some(3)),
            "{strategy}: {rollout}"
        );
        {
            // The state file is locked while the account is open.
            let (account, _cloud) = sandbox.cloud().await;
            let throttled = account.faults().throttle[0].rejected;
            assert_eq!(throttled, 5, "{strategy}: the faults were met");
        }
        let live = rollout["group"].as_str().unwrap().to_string();
        let status = sandbox.kiln(&["--output", "json", "status", POC_PIPELINE]);
        status.assert_code(0);
        let s = status.json();
        for i in group(&s, &live)["instances"].as_array().unwrap() {
            assert_eq!(i["image"].as_str(), Some(NEW_IMAGE), "{strategy}: {i}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_after_the_switch_says_green_is_live_and_calls_nothing_removed() {
    let sandbox = Sandbox::new();
    // Counting green's instances, after the switch, fails for longer than kiln tries.
    let faults = sandbox.write(
        "faults.yaml",
        "throttle:\n  - { operation: DescribeInstances, count: 100000 }\n",
    );
    let out = sandbox.kiln(&[
        "--faults",
        faults.to_str().unwrap(),
        "rollout",
        POC_PIPELINE,
        "--image",
        NEW_IMAGE,
        "--strategy",
        "blue-green",
    ]);
    out.assert_code(i32::from(kiln::exit::FAILED));
    let err = &out.stderr;
    assert!(
        err.contains("went through: 1 listener(s) forward to green poc-web-asg-v3")
            && err.contains("Nothing was undone"),
        "{err}"
    );
    assert!(!err.contains("removed auto scaling group"), "{err}");
    assert!(
        err.contains("rollout went through, then failed; it removed nothing in ap-northeast-1"),
        "{err}"
    );
    let kept = err
        .lines()
        .find(|l| l.contains("kept in ap-northeast-1 as the rollout's result:"))
        .unwrap_or_else(|| panic!("no line of what was kept:\n{err}"));
    for what in [
        "auto scaling group poc-web-asg-v3",
        "target group arn:",
        "launch template version lt-",
    ] {
        assert!(kept.contains(what), "{what} in {kept}");
    }
    let (account, cloud) = sandbox.cloud().await;
    account.set_faults(Default::default());
    let live = [
        ("poc-web-tg".to_string(), 0),
        ("poc-web-tg-v3".to_string(), 100),
    ];
    assert_eq!(listener(&cloud).await, live);
    let green = cloud
        .scaling
        .describe_groups(&["poc-web-asg-v3".into()])
        .await
        .unwrap();
    let tag = green[0].tags.get("kiln:live").map(String::as_str);
    assert_eq!(tag, Some("true"));
}

#[test]
fn a_second_rollback_finds_nothing_to_undo_and_changes_nothing() {
    for strategy in ["rolling", "blue-green"] {
        let sandbox = Sandbox::new();
        let args = [
            "rollout",
            POC_PIPELINE,
            "--image",
            NEW_IMAGE,
            "--strategy",
            strategy,
        ];
        sandbox.kiln(&args).assert_code(0);
        sandbox.kiln(&["rollback", POC_PIPELINE]).assert_code(0);
        let before = sandbox.account_state();

        let again = sandbox.kiln(&["--output", "json", "rollback", POC_PIPELINE]);
        again.assert_code(0);
        let rb = &again.json()["rollbacks"][0];
        assert_eq!(rb["status"], "NothingToRollBack", "{strategy}: {rb}");
        assert_eq!(
            (rb["launch_template_version"].as_i64(), rb["image"].as_str()),
            (Some(2), Some(CURRENT_IMAGE)),
            "{strategy}: {rb}"
        );
        let note = rb["note"].as_str().unwrap_or_default();
        let why = match strategy {
            "rolling" => "already runs version 2, the version before kiln's last rollout to 3",
            _ => "the blue/green rollout to poc-web-asg-v3 is rolled back already",
        };
        assert!(note.contains(why), "{strategy}: {note}");
        assert_eq!(
            rollout_state(&sandbox.account_state()),
            rollout_state(&before),
            "{strategy}: the second rollback changed nothing"
        );
        let text = sandbox.kiln(&["rollback", POC_PIPELINE]);
        text.assert_code(0);
        assert!(
            text.stdout
                .starts_with("poc-web (poc-web-asg): nothing to roll back: "),
            "{strategy}: {}",
            text.stdout
        );
    }
}

/// The images the live instances of `name` run, from `kiln status --output json`.
fn images_of(sandbox: &Sandbox, name: &str) -> Vec<String> {
    let status = sandbox.kiln(&["--output", "json", "status", POC_PIPELINE]);
    status.assert_code(0);
    let s = status.json();
    group(&s, name)["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["lifecycle_state"] == "InService")
        .map(|i| i["image"].as_str().unwrap_or("-").to_string())
        .collect()
}

#[test]
fn each_result_line_says_which_version_and_image_the_instances_are_on() {
    let sandbox = Sandbox::new();
    let new = format!("launch template version 3 ({NEW_IMAGE})");
    let old = format!("launch template version 2 ({CURRENT_IMAGE})");
    let rollout = ["rollout", POC_PIPELINE, "--image", NEW_IMAGE];
    let steps: [(&[&str], String, &str); 3] = [
        (
            &rollout,
            format!("rolling Successful: 3/3 instances on {new}"),
            NEW_IMAGE,
        ),
        (
            &rollout,
            format!("rolling NoChange: nothing to do, 3/3 instances already on {new}"),
            NEW_IMAGE,
        ),
        (
            &["rollback", POC_PIPELINE],
            format!("rollback RolledBack: 3/3 instances back on {old}"),
            CURRENT_IMAGE,
        ),
    ];
    for (args, line, image) in steps {
        let out = sandbox.kiln(args);
        out.assert_code(0);
        assert_eq!(out.stdout, format!("poc-web (poc-web-asg): {line}\n"));
        assert_eq!(
            images_of(&sandbox, "poc-web-asg"),
            vec![image.to_string(); 3]
        );
    }

    // An in-place fix makes no version: the instances stay where they are.
    let fix = sandbox.poc_pipeline("pipeline.yaml", |text| {
        text.replace(
            "    strategy: rolling\n",
            "    strategy: rolling\n    in_place: { script: [\"systemctl reload php-fpm\"] }\n",
        )
    });
    let fix = fix.to_str().unwrap();
    let out = sandbox.kiln(&[
        "rollout",
        fix,
        "--image",
        NEW_IMAGE,
        "--strategy",
        "in-place",
    ]);
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        format!(
            "poc-web (poc-web-asg): in_place Successful: the fix ran on 3/3 instances, which \
             stay on {old} (an in-place fix makes no version)\n"
        )
    );
    assert_eq!(
        images_of(&sandbox, "poc-web-asg"),
        vec![CURRENT_IMAGE.to_string(); 3]
    );

    // Blue/green back to blue: blue's instances, on blue's version.
    let bg = sandbox.kiln(&[
        "rollout",
        POC_PIPELINE,
        "--image",
        NEW_IMAGE,
        "--strategy",
        "blue-green",
    ]);
    bg.assert_code(0);
    let green = "poc-web-asg-v4";
    let on_green = format!("launch template version 4 ({NEW_IMAGE})");
    assert_eq!(
        bg.stdout,
        format!("poc-web ({green}): blue_green Successful: 3/3 instances on {on_green}\n")
    );
    let back = sandbox.kiln(&["rollback", POC_PIPELINE]);
    back.assert_code(0);
    assert_eq!(
        back.stdout,
        format!("poc-web (poc-web-asg): blue_green RolledBack: 3/3 instances back on {old}\n")
    );
    assert_eq!(
        images_of(&sandbox, "poc-web-asg"),
        vec![CURRENT_IMAGE.to_string(); 3]
    );
}

/// The POC pipeline with an in-place fix, written into the sandbox.
fn with_fix(sandbox: &Sandbox) -> String {
    let path = sandbox.poc_pipeline("pipeline.yaml", |text| {
        text.replace(
            "    strategy: rolling\n",
            "    strategy: rolling\n    in_place: { script: [\"systemctl reload php-fpm\"] }\n",
        )
    });
    path.to_str().unwrap().to_string()
}

#[test]
fn a_failed_fix_says_where_the_instances_are_and_rollback_gives_the_same_advice() {
    let sandbox = Sandbox::new();
    let pipeline = with_fix(&sandbox);
    let faults = sandbox.write(
        "faults.yaml",
        "steps:\n  - { step: rollout/fix-batch-2, exit_code: 1, stderr: [\"php-fpm failed\"] }\n",
    );
    let fix = [
        "--faults",
        faults.to_str().unwrap(),
        "rollout",
        &pipeline,
        "--image",
        NEW_IMAGE,
        "--strategy",
        "in-place",
    ];
    let out = sandbox.kiln(&fix);
    out.assert_code(i32::from(kiln::exit::NEEDS_ATTENTION));
    let error = out
        .stderr
        .lines()
        .find(|l| l.starts_with("kiln: error:"))
        .unwrap();
    assert!(
        error.contains("an in-place fix has no rollback. Now: i-")
            && error.contains(" out of target group poc-web-tg (the batch the fix failed on)")
            && error.contains("fixed and back in service: i-")
            && !error.contains("to undo it"),
        "{error}"
    );
    let next = error.split(". Next: ").nth(1).expect("what to do");

    let before = sandbox.account_state();
    let back = sandbox.kiln(&["rollback", &pipeline]);
    back.assert_code(i32::from(kiln::exit::NEEDS_ATTENTION));
    assert!(
        back.stderr
            .contains("the last rollout of poc-web-asg was an in-place fix")
            && back.stderr.contains("Failed at batch 2 of 3"),
        "{}",
        back.stderr
    );
    assert!(
        back.stderr.contains(next),
        "the same advice:\n{}",
        back.stderr
    );
    assert_eq!(
        rollout_state(&sandbox.account_state()),
        rollout_state(&before),
        "the rollback changed nothing"
    );
}

#[test]
fn rollback_after_a_fix_that_went_through_is_refused_before_anything_changes() {
    let sandbox = Sandbox::new();
    let pipeline = with_fix(&sandbox);
    let fix = [
        "rollout",
        &pipeline,
        "--image",
        NEW_IMAGE,
        "--strategy",
        "in-place",
    ];
    let fixed = sandbox.kiln(&fix);
    fixed.assert_code(0);
    // The image given is not what a fix rolls out, and kiln says so.
    let warning = format!(
        "kiln: warning: target poc-web: an in-place fix changes no image; {NEW_IMAGE} is not \
         rolled out, the instances stay on {CURRENT_IMAGE}\n"
    );
    assert!(fixed.stderr.contains(&warning), "{}", fixed.stderr);
    // Status and rollback agree: there is no rollback of a fix.
    let status = sandbox.kiln(&["status", &pipeline]);
    status.assert_code(0);
    assert!(
        status.stdout.contains(
            "version 2, last rollout an in-place fix (Successful: 3 of 3 fixed): no rollback"
        ),
        "{}",
        status.stdout
    );
    let back = sandbox.kiln(&["rollback", &pipeline]);
    back.assert_code(i32::from(kiln::exit::BAD_INPUT));
    assert!(
        back.stderr.contains("Successful: 3 of 3 fixed")
            && back.stderr.contains("`kiln rollback` cannot undo a fix"),
        "{}",
        back.stderr
    );
}

/// The POC account as a rolling rollout killed during its undo leaves it (a second
/// Ctrl-C while AWS rolls the refresh back), its lock released as `kiln gc` releases a
/// dead run's: the refresh stays `RollbackInProgress` until a command waits for it.
async fn killed_during_the_undo(sandbox: &Sandbox) {
    use kiln::cloud::{RefreshStatus, TemplateRef};
    use kiln::rollout::{CancellationToken, RollingSettings, RolloutSpec, Strategy};
    let (account, cloud) = sandbox.cloud_of_seed().await;
    let spec = RolloutSpec {
        target: "poc-web".into(),
        group: "poc-web-asg".into(),
        launch_template: TemplateRef::Name("poc-web-lt".into()),
        target_group: Some("poc-web-tg".into()),
        load_balancer: Some("poc-poc-alb".into()),
        strategy: Strategy::Rolling(RollingSettings::default()),
        gates: Default::default(),
        timeouts: Default::default(),
        allow_imdsv1: false,
    };
    let image = kiln::cloud::ImageId::new(NEW_IMAGE);
    let plan = kiln::rollout::plan(&cloud, &spec, &image).await.unwrap();
    let task = {
        let (cloud, silent) = (cloud.clone(), kiln::cloud::progress::Silent);
        let never = CancellationToken::new();
        tokio::spawn(async move { kiln::rollout::rollout(&cloud, &plan, &silent, &never).await })
    };
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let r = cloud
            .scaling
            .describe_instance_refreshes("poc-web-asg")
            .await;
        let r = r.unwrap().remove(0);
        if r.status == RefreshStatus::InProgress && r.percentage_complete >= 34 {
            break;
        }
    }
    cloud
        .scaling
        .rollback_instance_refresh("poc-web-asg")
        .await
        .unwrap();
    task.abort();
    let _ = task.await;
    let lock = [kiln::rollout::LOCK_TAG.to_string()];
    let scaling = &cloud.scaling;
    scaling
        .delete_group_tags("poc-web-asg", &lock)
        .await
        .unwrap();
    account.save_now().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refresh_left_rolling_back_is_busy_and_rollback_waits_for_it() {
    let sandbox = Sandbox::new();
    killed_during_the_undo(&sandbox).await;
    let rollback = "`kiln rollback examples/poc/pipeline.yaml --target poc-web`";

    // The account is busy, the input fine: try later (6), with commands that work.
    let out = sandbox.kiln(&["rollout", POC_PIPELINE, "--image", NEW_IMAGE]);
    out.assert_code(i32::from(kiln::exit::LOCKED));
    assert!(
        out.stderr.contains("is RollbackInProgress")
            && out.stderr.contains(&format!(
                "(`kiln status examples/poc/pipeline.yaml --target poc-web` shows it), or \
                 let {rollback} wait for it and finish the undo"
            )),
        "{}",
        out.stderr
    );

    let status = sandbox.kiln(&["status", POC_PIPELINE]);
    status.assert_code(0);
    let says = format!("being undone by AWS: {rollback} waits for it to end");
    assert!(status.stdout.contains(&says), "{}", status.stdout);

    let back = sandbox.kiln(&["--output", "json", "rollback", POC_PIPELINE]);
    back.assert_code(0);
    let rb = &back.json()["rollbacks"][0];
    assert_eq!(
        (
            rb["status"].as_str(),
            rb["launch_template_version"].as_i64()
        ),
        (Some("RolledBack"), Some(2))
    );
    assert_eq!(rb["on_new_image"].as_i64(), Some(3), "{rb}");
    assert_eq!(rb["image"].as_str(), Some(CURRENT_IMAGE));

    // Over: the same rollout now goes through.
    let again = sandbox.kiln(&["rollout", POC_PIPELINE, "--image", NEW_IMAGE]);
    again.assert_code(0);
}

/// A blue/green rollout after a rolling one, rolled back twice (a CI job retried): the
/// second rollback finds the blue/green rollout undone and leaves blue on the release
/// before it, instead of undoing that release too.
#[test]
fn a_retried_rollback_of_blue_green_does_not_undo_the_release_before() {
    let sandbox = Sandbox::new();
    let rollout = |image: &str, strategy: &str| {
        let args = [
            "rollout",
            POC_PIPELINE,
            "--image",
            image,
            "--strategy",
            strategy,
        ];
        sandbox.kiln(&args).assert_code(0);
    };
    rollout(NEW_IMAGE, "rolling");
    rollout(CURRENT_IMAGE, "blue-green");
    sandbox.kiln(&["rollback", POC_PIPELINE]).assert_code(0);
    let before = sandbox.account_state();

    let again = sandbox.kiln(&["--output", "json", "rollback", POC_PIPELINE]);
    again.assert_code(0);
    let rb = &again.json()["rollbacks"][0];
    assert_eq!(rb["status"], "NothingToRollBack", "{rb}");
    assert_eq!(
        (rb["launch_template_version"].as_i64(), rb["image"].as_str()),
        (Some(3), Some(NEW_IMAGE)),
        "blue stays on the rolling release: {rb}"
    );
    let note = rb["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("the blue/green rollout to poc-web-asg-v4 is rolled back already"),
        "{note}"
    );
    assert_eq!(
        rollout_state(&sandbox.account_state()),
        rollout_state(&before),
        "the second rollback changed nothing"
    );
}
