//! Interrupted rollouts leave nothing, through the real `kiln` binary on a simulated
//! account: a blue/green rollout killed with SIGKILL once its green group exists is swept
//! by `kiln gc` (traffic still on blue, blue untouched), one sent SIGTERM undoes itself
//! and says what it removed, and `kiln gc` keeps the live green and the blue kept for a
//! rollback.

mod support;

use std::time::Duration;

use kiln::cloud::{Cloud, Group, TemplateRef};
use support::{block_on, read_until, spawn_kiln, stderr_lines, Sandbox, POC_PIPELINE};

/// An image of the POC account other than the one the group runs.
const NEW_IMAGE: &str = "ami-0a1e2023aaaa00001";
const CURRENT_IMAGE: &str = "ami-0b0c0de2025110001";
const BLUE: &str = "poc-web-asg";
const BLUE_TG: &str = "poc-web-tg";
const GREEN: &str = "poc-web-asg-v3";

/// One test at a time: a child forked by one test would inherit, until it execs, the
/// state-file lock another test holds in this process.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn blue_green_args(image: &str) -> Vec<&str> {
    vec![
        "rollout",
        POC_PIPELINE,
        "--image",
        image,
        "--strategy",
        "blue-green",
    ]
}

/// The run id the lock line names (`locked by kiln (run ro-…, until …)`).
fn run_id(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| l.split("(run ").nth(1))
        .and_then(|rest| rest.split([',', ')']).next())
        .expect("the lock line names the run")
        .to_string()
}

/// What the account holds that a rollout could add to, and the listener's action.
#[derive(Debug, PartialEq)]
struct Estate {
    groups: Vec<String>,
    target_groups: Vec<String>,
    versions: Vec<i64>,
    forward: Vec<(String, i32)>,
}

async fn estate(cloud: &Cloud) -> Estate {
    let mut groups: Vec<String> = cloud
        .scaling
        .describe_groups(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    groups.sort();
    let tgs = cloud
        .load_balancing
        .describe_target_groups(&[])
        .await
        .unwrap();
    let mut target_groups: Vec<String> = tgs.iter().map(|t| t.name.clone()).collect();
    target_groups.sort();
    let template = TemplateRef::Name("poc-web-lt".into());
    let versions = cloud
        .compute
        .describe_launch_template_versions(&template, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    let lb = &cloud.load_balancing;
    let alb = lb
        .describe_load_balancers(&["poc-poc-alb".into()])
        .await
        .unwrap();
    let listener = lb.describe_listeners(&alb[0].arn).await.unwrap().remove(0);
    let forward = listener
        .default_forward
        .unwrap()
        .target_groups
        .iter()
        .map(|t| {
            let tg = tgs.iter().find(|g| g.arn == t.target_group_arn).unwrap();
            (tg.name.clone(), t.weight)
        })
        .collect();
    Estate {
        groups,
        target_groups,
        versions,
        forward,
    }
}

async fn blue(cloud: &Cloud) -> Group {
    let found = cloud.scaling.describe_groups(&[BLUE.into()]).await.unwrap();
    found.into_iter().next().expect("blue exists")
}

/// Lets `span` of simulated time pass on the account between two `kiln` calls.
fn pass_time(sandbox: &Sandbox, span: Duration) {
    block_on(async {
        let (account, _cloud) = sandbox.cloud().await;
        tokio::time::sleep(span).await;
        account.save_now().expect("save the account");
    });
}

/// Reads the account between two `kiln` calls (the state file is locked while open).
fn read<T>(sandbox: &Sandbox, f: impl AsyncFnOnce(&Cloud) -> T) -> T {
    block_on(async {
        let (_account, cloud) = sandbox.cloud().await;
        f(&cloud).await
    })
}

#[test]
fn a_blue_green_rollout_killed_after_green_exists_is_swept_by_gc() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let before = block_on(async {
        let (_account, cloud) = sandbox.cloud_of_seed().await;
        estate(&cloud).await
    });
    let mut child = spawn_kiln(&sandbox, &blue_green_args(NEW_IMAGE));
    let mut lines = stderr_lines(&mut child);
    let seen = read_until(&mut lines, &|l| {
        l.contains(GREEN) && l.contains("group created")
    });
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the child");
    let run = run_id(&seen);

    let journal = sandbox
        .path("account.json.journal")
        .join(format!("{run}.jsonl"));
    let text = std::fs::read_to_string(&journal).expect("the killed run's journal");
    for kind in [
        "launch_template_version",
        "target_group",
        "auto_scaling_group",
    ] {
        assert!(text.contains(kind), "{kind} journaled:\n{text}");
    }
    let killed = read(&sandbox, async |cloud| {
        (estate(cloud).await, blue(cloud).await)
    });
    assert!(killed.0.groups.contains(&GREEN.to_string()), "{killed:?}");

    let gc = sandbox.kiln(&["gc", "--yes"]);
    gc.assert_code(0);
    for what in [
        format!("auto scaling group {GREEN} (run {run})"),
        "target group arn:".to_string(),
        "launch template version lt-".to_string(),
    ] {
        assert!(gc.stdout.contains(&what), "{what} removed:\n{}", gc.stdout);
    }
    let (after, blue_after) = read(&sandbox, async |cloud| {
        (estate(cloud).await, blue(cloud).await)
    });
    assert_eq!(after.groups, before.groups, "only blue is left");
    assert_eq!(after.target_groups, before.target_groups);
    assert_eq!(
        after.versions, before.versions,
        "the run's version is deleted"
    );
    assert_eq!(after.forward.len(), 1, "{:?}", after.forward);
    assert_eq!(after.forward[0].0, BLUE_TG, "traffic on blue");
    assert!(after.forward[0].1 > 0, "{:?}", after.forward);
    let mut unlocked = killed.1.clone();
    assert!(
        unlocked.tags.remove("kiln:lock").is_some(),
        "the killed run held the lock"
    );
    assert_eq!(
        blue_after, unlocked,
        "gc leaves the live group alone, but for the dead run's lock"
    );
    let released = format!("group lock {BLUE} (run {run})");
    assert!(gc.stdout.contains(&released), "{}", gc.stdout);
    assert!(
        !journal.exists(),
        "gc forgets the journal of a run it swept"
    );

    let again = sandbox.kiln(&["gc", "--dry-run"]);
    again.assert_code(0);
    assert!(
        again.stdout.contains("nothing to remove"),
        "{}",
        again.stdout
    );
}

#[test]
fn sigterm_makes_a_blue_green_rollout_undo_itself_and_say_what_it_removed() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let before = block_on(async {
        let (_account, cloud) = sandbox.cloud_of_seed().await;
        estate(&cloud).await
    });
    let mut child = spawn_kiln(&sandbox, &blue_green_args(NEW_IMAGE));
    let mut lines = stderr_lines(&mut child);
    let seen = read_until(&mut lines, &|l| l.contains("instances healthy"));
    let run = run_id(&seen);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let rest: Vec<String> = lines.collect();
    let code = child.wait().expect("wait").code();
    let rest = rest.join("\n");

    assert_eq!(code, Some(130), "{rest}");
    let summary = rest
        .lines()
        .find(|l| l.contains("rollout interrupted; cleaned up in ap-northeast-1: removed"))
        .unwrap_or_else(|| panic!("no clean-up summary:\n{rest}"));
    for what in [
        "launch template version lt-",
        "target group arn:",
        "auto scaling group poc-web-asg-v3",
    ] {
        assert!(summary.contains(what), "{what} in {summary}");
    }
    assert!(!rest.contains("still present"), "{rest}");
    let after = read(&sandbox, async |cloud| estate(cloud).await);
    assert_eq!(after, before, "the rollout undid itself");
    let journal = sandbox
        .path("account.json.journal")
        .join(format!("{run}.jsonl"));
    assert!(!journal.exists(), "a run that cleaned up keeps no journal");
}

#[test]
fn gc_keeps_the_live_green_and_the_blue_kept_for_a_rollback() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    sandbox.kiln(&blue_green_args(NEW_IMAGE)).assert_code(0);
    // The second rollout starts from the live green, which becomes blue.
    sandbox.kiln(&blue_green_args(CURRENT_IMAGE)).assert_code(0);

    let gc = sandbox.kiln(&["gc", "--grace", "0s", "--dry-run", "--output", "json"]);
    gc.assert_code(0);
    let json = gc.json();
    // The first rollout's blue: the group it left is kept by nothing now (the live group
    // keeps the second's), takes no traffic, and goes with its target group.
    let to_remove: Vec<(&str, &str)> = json["to_remove"]
        .as_array()
        .expect("to_remove")
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["id"].as_str().unwrap()))
        .collect();
    assert_eq!(to_remove.len(), 2, "{json}");
    assert_eq!(to_remove[0], ("auto_scaling_group", BLUE), "{json}");
    assert!(
        to_remove[1].0 == "target_group" && to_remove[1].1.contains("/poc-web-tg/"),
        "{json}"
    );
    let kept = json["kept"].as_array().expect("kept");
    let reason = |kind: &str, id: &str| {
        kept.iter()
            .find(|f| f["kind"] == kind && f["id"] == id)
            .and_then(|f| f["reason"].as_str())
            .unwrap_or_else(|| panic!("{kind} {id} kept: {json}"))
            .to_string()
    };
    let blue = reason("auto_scaling_group", GREEN);
    assert!(blue.contains("blue kept by poc-web-asg-v4"), "{blue}");
    let live = reason("auto_scaling_group", "poc-web-asg-v4");
    assert!(live.contains("kiln:live=true"), "{live}");
    let versions: Vec<&str> = kept
        .iter()
        .filter(|f| f["kind"] == "launch_template_version")
        .filter_map(|f| f["reason"].as_str())
        .collect();
    assert_eq!(versions.len(), 2, "{json}");
    assert!(
        versions.iter().all(|r| r.contains("launched by group")),
        "{versions:?}"
    );

    let (groups, forward) = read(&sandbox, async |cloud| {
        let e = estate(cloud).await;
        (e.groups, e.forward)
    });
    assert_eq!(
        groups,
        [BLUE, GREEN, "poc-web-asg-v4"],
        "gc changed nothing"
    );
    assert!(
        forward.contains(&("poc-web-tg-v4".to_string(), 100)),
        "{forward:?}"
    );
}

/// The lock tag of the POC group, if any.
fn lock_of(sandbox: &Sandbox) -> Option<String> {
    read(sandbox, async |cloud| {
        blue(cloud).await.tags.get("kiln:lock").cloned()
    })
}

#[test]
fn gc_releases_the_lock_of_a_killed_rollout_so_the_next_one_runs() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let rolling = ["rollout", POC_PIPELINE, "--image", NEW_IMAGE];
    let mut child = spawn_kiln(&sandbox, &rolling);
    let mut lines = stderr_lines(&mut child);
    let seen = read_until(&mut lines, &|l| {
        l.contains("instance refresh") && l.contains("started")
    });
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the child");
    let run = run_id(&seen);
    let lock = lock_of(&sandbox).expect("the killed run's lock stays");
    assert!(lock.contains(&format!("run={run}")), "{lock}");

    // The killed run's refresh is rolled back by hand; its lock still refuses the next.
    sandbox.kiln(&["rollback", POC_PIPELINE]).assert_code(0);
    let refused = sandbox.kiln(&rolling);
    refused.assert_code(i32::from(kiln::exit::LOCKED));
    assert!(refused.stderr.contains(&run), "{}", refused.stderr);

    let gc = sandbox.kiln(&["gc", "--yes"]);
    gc.assert_code(0);
    let finding = format!("group lock {BLUE} (run {run}): tag kiln:lock of a run that is over");
    let listed = gc.stderr.find("to remove").expect("the list comes first");
    let asked = gc.stderr[listed..].find(&finding);
    assert!(asked.is_some(), "listed before removal:\n{}", gc.stderr);
    let removed = gc.stdout.split("kept:").next().unwrap_or_default();
    assert!(removed.contains(&finding), "released:\n{}", gc.stdout);
    assert_eq!(lock_of(&sandbox), None, "the tag is gone");

    let next = sandbox.kiln(&rolling);
    next.assert_code(0);
    let (version, images) = read(&sandbox, async |cloud| {
        let g = blue(cloud).await;
        let version = g.launch_template.map(|t| t.version).unwrap_or_default();
        let ids: Vec<_> = g.instances.iter().map(|i| i.id.clone()).collect();
        let filter = kiln::cloud::InstanceFilter {
            ids,
            exclude_terminated: true,
            ..Default::default()
        };
        let instances = cloud.compute.describe_instances(&filter).await.unwrap();
        let images: Vec<String> = instances.iter().map(|i| i.image_id.to_string()).collect();
        (version, images)
    });
    // Version 3 was the killed run's, deleted by gc: AWS does not reuse numbers.
    assert_eq!(version, "4");
    assert_eq!(images, vec![NEW_IMAGE.to_string(); 3]);
}

/// The POC's groups and the listener's action.
fn groups_and_forward(sandbox: &Sandbox) -> (Vec<String>, Vec<(String, i32)>) {
    read(sandbox, async |cloud| {
        let e = estate(cloud).await;
        (e.groups, e.forward)
    })
}

#[test]
fn gc_retires_the_blue_once_its_rollback_window_is_over_and_rollouts_go_on() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let pipeline = sandbox.poc_pipeline("pipeline.yaml", |text| {
        text.replace(
            "    strategy: rolling\n",
            "    strategy: rolling\n    blue_green: { rollback_window: 5m }\n",
        )
    });
    let pipeline = pipeline.to_str().unwrap();
    let bg = [
        "rollout",
        pipeline,
        "--image",
        NEW_IMAGE,
        "--strategy",
        "blue-green",
    ];
    sandbox.kiln(&bg).assert_code(0);
    let kept = sandbox.kiln(&["gc", "--dry-run"]);
    assert!(
        kept.stdout.contains("for a rollback"),
        "blue kept within its window:\n{}",
        kept.stdout
    );
    pass_time(&sandbox, Duration::from_secs(6 * 60));

    let gc = sandbox.kiln(&["gc", "--yes"]);
    gc.assert_code(0);
    let finding = format!("auto scaling group {BLUE} (run ");
    let listed = gc.stderr.split("to remove").nth(1).unwrap_or_default();
    assert!(listed.contains(&finding), "listed first:\n{}", gc.stderr);
    let removed = gc.stdout.split("kept:").next().unwrap_or_default();
    assert!(
        removed.contains(&finding) && removed.contains("/poc-web-tg/"),
        "blue and its target group removed:\n{}",
        gc.stdout
    );
    let (groups, forward) = groups_and_forward(&sandbox);
    assert_eq!(groups, [GREEN], "only the live green is left");
    assert_eq!(forward, [("poc-web-tg-v3".to_string(), 100)]);

    // The target goes on on its green: a rolling rollout and its rollback.
    let rolling = ["rollout", pipeline, "--image", CURRENT_IMAGE];
    let out = sandbox.kiln(&rolling);
    out.assert_code(0);
    assert!(
        out.stdout
            .starts_with(&format!("poc-web ({GREEN}): rolling Successful: 3/3")),
        "{}",
        out.stdout
    );
    let back = sandbox.kiln(&["rollback", pipeline]);
    back.assert_code(0);
    assert!(
        back.stdout.contains(&format!(
            "rollback RolledBack: 3/3 instances back on launch template version 3 ({NEW_IMAGE})"
        )),
        "{}",
        back.stdout
    );
}

#[test]
fn gc_removes_a_green_that_kiln_rollback_switched_away_from() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let before = block_on(async {
        let (_account, cloud) = sandbox.cloud_of_seed().await;
        estate(&cloud).await
    });
    sandbox.kiln(&blue_green_args(NEW_IMAGE)).assert_code(0);
    sandbox.kiln(&["rollback", POC_PIPELINE]).assert_code(0);

    let gc = sandbox.kiln(&["gc", "--yes"]);
    gc.assert_code(0);
    let finding = format!("auto scaling group {GREEN} (run ");
    assert!(gc.stdout.contains(&finding), "{}", gc.stdout);
    assert!(!gc.stdout.contains("remove it by hand"), "{}", gc.stdout);
    let after = read(&sandbox, async |cloud| estate(cloud).await);
    assert_eq!(after.groups, before.groups, "only blue is left");
    assert_eq!(after.target_groups, before.target_groups);
    assert_eq!(after.versions, before.versions);
    assert_eq!(after.forward.len(), 1, "{:?}", after.forward);
    assert_eq!(after.forward[0].0, BLUE_TG);
}
