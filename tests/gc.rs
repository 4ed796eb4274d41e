//! Interrupted bakes leave nothing: a bake killed with SIGKILL is swept by `kiln gc`
//! (in every region it copied to, with no region named), and a bake sent SIGTERM cleans
//! up by itself, says what it removed and exits 130; a second signal exits at once and
//! leaves the rest to gc. A dry run across regions changes nothing; a region that cannot
//! be listed does not stop the others. All run the real `kiln` binary on a simulated
//! account.

mod support;

use std::process::{Child, Command, Stdio};

use kiln::cloud::sim::SimAccount;
use kiln::cloud::{
    Account, ImageFilter, ImageState, InstanceFilter, InstanceState, Tags, TAG_RUN_ID,
};
use support::{
    block_on as tokio_block, repo_path, stderr_lines, Sandbox, POC_PIPELINE, POC_REGION,
};

/// One test at a time: a child forked by one test would inherit, until it execs, the
/// state-file lock another test holds in this process, and make a `kiln` call fail as
/// locked.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts `kiln --sim STATE bake` on the POC pipeline with stderr piped.
fn spawn_bake(sandbox: &Sandbox) -> Child {
    spawn_bake_of(sandbox, &repo_path(POC_PIPELINE))
}

/// Starts `kiln --sim STATE bake PIPELINE` with stderr piped.
fn spawn_bake_of(sandbox: &Sandbox, pipeline: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--sim")
        .arg(sandbox.state())
        .args(["--no-progress", "bake"])
        .arg(pipeline)
        .env("KILN_MANIFEST", sandbox.path("kiln-manifest.json"))
        .env_remove("AWS_REGION")
        .env_remove("KILN_STATE_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln")
}

/// Reads the child's stderr until a line matches `wanted`; returns the run id and the
/// lines read. While the test does not read, a full pipe holds the child still.
fn read_until(lines: &mut impl Iterator<Item = String>, wanted: &dyn Fn(&str) -> bool) -> String {
    let mut run_id = String::new();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        if let Some(rest) = line.split("bake bake-").nth(1) {
            run_id = format!(
                "bake-{}",
                rest.split_whitespace().next().unwrap_or_default()
            );
        }
        let hit = wanted(&line);
        seen.push(line);
        if hit {
            return run_id;
        }
    }
    panic!(
        "the bake ended before the awaited line:\n{}",
        seen.join("\n")
    );
}

/// The run's journal file, if any.
fn journal_of(sandbox: &Sandbox, run_id: &str) -> std::path::PathBuf {
    sandbox
        .path("account.json.journal")
        .join(format!("{run_id}.jsonl"))
}

/// Nothing of the run is left in the POC region: no live instance, no security group, no
/// image that is not deregistered, no snapshot.
async fn assert_nothing_of_run(sandbox: &Sandbox, run_id: &str) {
    let (_account, cloud) = sandbox.cloud().await;
    assert_nothing_of_run_in(&cloud, run_id).await;
}

/// [`assert_nothing_of_run`] in every region of the account.
async fn assert_nothing_of_run_anywhere(sandbox: &Sandbox, run_id: &str) {
    let (account, _cloud) = sandbox.cloud().await;
    for region in account.regions().await.unwrap() {
        let cloud = account.region(&region).await.unwrap();
        assert_nothing_of_run_in(&cloud, run_id).await;
    }
}

async fn assert_nothing_of_run_in(cloud: &kiln::cloud::Cloud, run_id: &str) {
    let region = &cloud.region;
    let run = Tags::from([(TAG_RUN_ID.to_string(), run_id.to_string())]);
    let instances = cloud
        .compute
        .describe_instances(&InstanceFilter {
            tags: run.clone(),
            ..InstanceFilter::default()
        })
        .await
        .unwrap();
    let alive: Vec<_> = instances
        .iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .collect();
    assert!(alive.is_empty(), "instances left in {region}: {alive:?}");
    let groups = cloud
        .compute
        .describe_security_groups(&[], &run)
        .await
        .unwrap();
    assert!(
        groups.is_empty(),
        "security groups left in {region}: {groups:?}"
    );
    let images = cloud
        .compute
        .describe_images(&ImageFilter {
            owners: vec!["self".into()],
            tags: run.clone(),
            ..ImageFilter::default()
        })
        .await
        .unwrap();
    let registered: Vec<_> = images
        .iter()
        .filter(|i| i.state != ImageState::Deregistered)
        .collect();
    assert!(
        registered.is_empty(),
        "images left in {region}: {registered:?}"
    );
    let snapshots = cloud.compute.describe_snapshots(&[], &run).await.unwrap();
    assert!(
        snapshots.is_empty(),
        "snapshots left in {region}: {snapshots:?}"
    );
}

/// Kills the bake with SIGKILL at the first line `at` matches; `kiln gc --yes` must then
/// remove everything it left. Returns what gc printed.
async fn killed_then_swept(at: &dyn Fn(&str) -> bool) -> String {
    let sandbox = Sandbox::new();
    let mut child = spawn_bake(&sandbox);
    let mut lines = stderr_lines(&mut child);
    let run_id = read_until(&mut lines, at);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the child");
    assert!(!run_id.is_empty(), "the bake announced its run id");

    let journal = std::fs::read_to_string(journal_of(&sandbox, &run_id)).expect("journal");
    assert!(
        journal.contains("\"event\":\"created\"") && !journal.contains("\"finished\""),
        "the killed run's journal holds what it made:\n{journal}"
    );

    let gc = sandbox.kiln(&["gc", "--yes"]);
    gc.assert_code(0);
    assert!(gc.stdout.contains("removed:"), "{}", gc.stdout);
    assert!(gc.stdout.contains(&run_id), "{}", gc.stdout);
    assert_nothing_of_run(&sandbox, &run_id).await;
    assert!(
        !journal_of(&sandbox, &run_id).exists(),
        "gc forgets the journal of a run it swept"
    );

    let again = sandbox.kiln(&["gc", "--dry-run"]);
    again.assert_code(0);
    assert!(
        again.stdout.contains("nothing to remove"),
        "{}",
        again.stdout
    );
    gc.stdout
}

#[test]
fn a_bake_killed_during_its_steps_is_swept_by_gc() {
    let _serial = serial();
    let out = tokio_block(killed_then_swept(&|l| l.contains("build step started")));
    assert!(out.contains("instance i-"), "{out}");
    assert!(out.contains("security group sg-"), "{out}");
}

#[test]
fn a_bake_killed_while_its_image_is_made_is_swept_by_gc() {
    let _serial = serial();
    let made = |l: &str| l.contains("image ami-") && l.ends_with("created");
    let out = tokio_block(killed_then_swept(&made));
    assert!(out.contains("image ami-"), "{out}");
    assert!(out.contains("never finished"), "{out}");
    assert!(out.contains("snapshot snap-"), "{out}");
}

#[test]
fn gc_refuses_to_delete_without_yes_when_stdin_is_not_a_terminal() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let mut child = spawn_bake(&sandbox);
    let mut lines = stderr_lines(&mut child);
    read_until(&mut lines, &|l| l.contains("build step started"));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the child");

    let (account, cloud) = tokio_block(sandbox.cloud());
    let before = account.snapshot_json();
    // Both hold the state file's lock.
    drop((account, cloud));
    let refused = sandbox.kiln(&["gc"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("pass --yes to delete"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("to remove"), "the list comes first");
    let listed = sandbox.kiln(&["gc", "--dry-run", "--output", "json"]);
    listed.assert_code(0);
    let json = listed.json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["to_remove"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["removed"].as_array().map(Vec::len), Some(0));

    let (account, _cloud) = tokio_block(sandbox.cloud());
    let mut after = account.snapshot_json();
    // Only the clock moved.
    after["meta"]["now"] = before["meta"]["now"].clone();
    assert_eq!(before, after, "a refused or dry-run gc changes nothing");
}

#[test]
fn sigterm_makes_the_bake_clean_up_and_exit_130() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let mut child = spawn_bake(&sandbox);
    let mut lines = stderr_lines(&mut child);
    let run_id = read_until(&mut lines, &|l| l.contains("build step started"));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let rest: Vec<String> = lines.collect();
    let code = child.wait().expect("wait").code();
    let rest = rest.join("\n");

    assert_eq!(code, Some(130), "{rest}");
    assert!(rest.contains("interrupted; cleaning up"), "{rest}");
    let summary = rest
        .lines()
        .find(|l| l.contains("cleaned up in ap-northeast-1: removed"))
        .unwrap_or_else(|| panic!("no clean-up summary:\n{rest}"));
    assert!(summary.contains("instance i-"), "{summary}");
    assert!(summary.contains("security group sg-"), "{summary}");
    tokio_block(assert_nothing_of_run(&sandbox, &run_id));
    assert!(
        !journal_of(&sandbox, &run_id).exists(),
        "a run that cleaned up keeps no journal"
    );
}

/// Sends `signal` (`-TERM`, `-STOP`...) to the child.
fn send(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal}");
}

#[test]
fn a_second_interrupt_exits_at_once_and_gc_sweeps_what_the_run_left() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let mut child = spawn_bake(&sandbox);
    let mut lines = stderr_lines(&mut child);
    let run_id = read_until(&mut lines, &|l| l.contains("build step started"));
    // Held still, the child gets both signals together when it resumes: the second
    // lands while the first one's clean-up has only just been asked for.
    send(&child, "-STOP");
    send(&child, "-INT");
    send(&child, "-TERM");
    send(&child, "-CONT");
    let rest: Vec<String> = lines.collect();
    let code = child.wait().expect("wait").code();
    let rest = rest.join("\n");

    assert_eq!(code, Some(130), "{rest}");
    assert!(rest.contains("interrupted; cleaning up"), "{rest}");
    assert!(
        rest.contains(
            "second interrupt; exiting without cleanup. `kiln gc` finds what this run left."
        ),
        "{rest}"
    );
    assert!(
        !rest.contains("cleaned up in"),
        "the second interrupt stops the clean-up:\n{rest}"
    );
    let journal = std::fs::read_to_string(journal_of(&sandbox, &run_id)).expect("journal");
    assert!(
        journal.contains("\"event\":\"created\"") && !journal.contains("\"finished\""),
        "the run's journal still holds what it made:\n{journal}"
    );

    let gc = sandbox.kiln(&["gc", "--yes"]);
    gc.assert_code(0);
    assert!(gc.stdout.contains(&run_id), "{}", gc.stdout);
    assert!(gc.stdout.contains("instance i-"), "{}", gc.stdout);
    tokio_block(assert_nothing_of_run(&sandbox, &run_id));
    assert!(!journal_of(&sandbox, &run_id).exists());
}

#[test]
fn sigterm_while_copying_removes_the_image_and_every_copy_and_exits_130() {
    interrupted_while_copying("TERM");
}

#[test]
fn sigint_while_copying_says_the_image_was_removed_and_never_that_it_was_kept() {
    interrupted_while_copying("INT");
}

/// Sends `signal` to a bake once every copy started: the image and its copies are
/// removed, the summary says so (and calls none of them kept), and it exits 130.
fn interrupted_while_copying(signal: &str) {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let mut child = spawn_bake_of(&sandbox, &distributing_pipeline(&sandbox));
    let mut lines = stderr_lines(&mut child);
    let started = std::cell::Cell::new(0);
    let copying = |l: &str| {
        if l.contains("copy ami-") && l.ends_with("started") {
            started.set(started.get() + 1);
        }
        started.get() == COPY_REGIONS.len()
    };
    let run_id = read_until(&mut lines, &copying);
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("send the signal");
    assert!(status.success());
    let rest: Vec<String> = lines.collect();
    let code = child.wait().expect("wait").code();
    let rest = rest.join("\n");

    assert_eq!(code, Some(130), "{rest}");
    let summary = rest
        .lines()
        .find(|l| l.contains("bake interrupted; cleaned up"))
        .unwrap_or_else(|| panic!("no clean-up summary:\n{rest}"));
    for region in COPY_REGIONS {
        assert!(summary.contains(&format!("in {region}")), "{summary}");
    }
    let removed: Vec<&str> = summary
        .split("image ")
        .skip(1)
        .filter_map(|rest| rest.split([',', ' ']).next())
        .collect();
    assert!(!removed.is_empty(), "the summary names no image: {summary}");
    for image in removed {
        assert!(
            !rest
                .lines()
                .any(|l| l.contains("kept in") && l.contains(image)),
            "the removed image {image} is also called kept:\n{rest}"
        );
    }
    tokio_block(assert_nothing_of_run_anywhere(&sandbox, &run_id));
    assert!(
        !journal_of(&sandbox, &run_id).exists(),
        "a run that cleaned up keeps no journal"
    );
    assert!(
        !sandbox.path("kiln-manifest.json").exists(),
        "an interrupted run adds no build to the manifest"
    );
}

#[test]
fn gc_refuses_a_region_the_account_does_not_have() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let (account, cloud) = tokio_block(sandbox.cloud_of_seed());
    account.save_now().expect("save the new account");
    // Both hold the state file's lock.
    drop((account, cloud));

    let refused = sandbox.kiln(&["gc", "--dry-run", "--regions", "us-west-2,mars-north-1"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("no region mars-north-1")
            && refused.stderr.contains("ap-northeast-3"),
        "names the bad region and the good ones: {}",
        refused.stderr
    );
    let listed = sandbox.kiln(&[
        "--output",
        "json",
        "gc",
        "--dry-run",
        "--regions",
        "us-west-2",
    ]);
    listed.assert_code(0);
    let regions: Vec<String> = listed.json()["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .map(|r| r["region"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        regions,
        [POC_REGION, "us-west-2"],
        "home first, then the one named"
    );
}

/// The regions the distributing pipeline copies to, beside the POC region.
const COPY_REGIONS: [&str; 2] = ["ap-northeast-3", "us-west-2"];

/// The POC pipeline, copying its image to [`COPY_REGIONS`], written into the sandbox.
fn distributing_pipeline(sandbox: &Sandbox) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_path(POC_PIPELINE)).expect("POC pipeline");
    let regions = format!("distribute:\n  regions: [{}]\n", COPY_REGIONS.join(", "));
    let text = text
        .replace("distribute:\n", &regions)
        .replace("../../recipes", &repo_path("recipes").display().to_string())
        .replace(
            "../../templates",
            &repo_path("templates").display().to_string(),
        )
        .replace(
            "seed: account.yaml",
            &format!("seed: {}", repo_path("examples/poc/account.yaml").display()),
        );
    assert!(text.contains("regions: [ap-northeast-3"), "{text}");
    sandbox.write("distributing.yaml", &text)
}

/// Bakes the distributing pipeline and kills it with SIGKILL once both copies are under
/// way; returns the run id.
fn killed_while_copying(sandbox: &Sandbox) -> String {
    let mut child = spawn_bake_of(sandbox, &distributing_pipeline(sandbox));
    let mut lines = stderr_lines(&mut child);
    let started = std::cell::Cell::new(0);
    let copying = |l: &str| {
        if l.contains("copy ami-") && l.ends_with("started") {
            started.set(started.get() + 1);
        }
        started.get() == COPY_REGIONS.len()
    };
    let run_id = read_until(&mut lines, &copying);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the child");
    assert!(!run_id.is_empty(), "the bake announced its run id");
    run_id
}

/// Images of the run still registered in `region`.
async fn images_of_run_in(sandbox: &Sandbox, region: &str, run_id: &str) -> usize {
    let (account, _cloud) = sandbox.cloud().await;
    let cloud = account.region(region).await.unwrap();
    let filter = ImageFilter {
        owners: vec!["self".into()],
        tags: Tags::from([(TAG_RUN_ID.to_string(), run_id.to_string())]),
        ..ImageFilter::default()
    };
    let images = cloud.compute.describe_images(&filter).await.unwrap();
    images
        .iter()
        .filter(|i| i.state != ImageState::Deregistered)
        .count()
}

#[test]
fn a_bake_killed_while_copying_is_swept_in_every_region_by_gc() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let run_id = killed_while_copying(&sandbox);
    let journal = std::fs::read_to_string(journal_of(&sandbox, &run_id)).expect("journal");
    for region in COPY_REGIONS {
        assert!(
            journal.contains(&format!("\"region\":\"{region}\"")),
            "the copy into {region} is journaled:\n{journal}"
        );
        let left = tokio_block(images_of_run_in(&sandbox, region, &run_id));
        assert_eq!(left, 1, "the killed run left its copy in {region}");
    }

    let gc = sandbox.kiln(&["--output", "json", "gc", "--yes"]);
    gc.assert_code(0);
    let json = gc.json();
    assert_eq!(
        json["region"], POC_REGION,
        "the single region field stays: home"
    );
    let swept: Vec<&str> = json["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .map(|r| r["region"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(swept, [POC_REGION, COPY_REGIONS[0], COPY_REGIONS[1]]);
    for region in json["regions"].as_array().expect("regions") {
        let removed = region["removed"].to_string();
        assert!(removed.contains("\"image\""), "{region}");
        assert!(removed.contains(&run_id), "{region}");
    }
    tokio_block(assert_nothing_of_run_anywhere(&sandbox, &run_id));
    assert!(
        !journal_of(&sandbox, &run_id).exists(),
        "gc forgets the swept run's journal"
    );
    let again = sandbox.kiln(&["gc", "--dry-run"]);
    again.assert_code(0);
    assert_eq!(
        again.stdout.matches("nothing to remove").count(),
        1,
        "{}",
        again.stdout
    );
}

#[test]
fn gc_dry_run_across_regions_changes_nothing() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let run_id = killed_while_copying(&sandbox);
    let (account, cloud) = tokio_block(sandbox.cloud());
    let before = account.snapshot_json();
    drop((account, cloud));

    let listed = sandbox.kiln(&["--output", "json", "gc", "--dry-run", "--all-regions"]);
    listed.assert_code(0);
    let json = listed.json();
    let regions = json["regions"].as_array().expect("regions");
    assert_eq!(regions.len(), 3, "{json}");
    for region in regions {
        assert!(
            !region["to_remove"].as_array().expect("list").is_empty(),
            "{region}"
        );
        assert!(
            region["removed"].as_array().expect("list").is_empty(),
            "{region}"
        );
    }
    let flat = json["to_remove"].as_array().expect("to_remove");
    let per_region: usize = regions
        .iter()
        .map(|r| r["to_remove"].as_array().unwrap().len())
        .sum();
    assert_eq!(flat.len(), per_region);
    assert!(
        flat.iter().all(|f| f["run_id"] == run_id.as_str()),
        "{json}"
    );

    let (account, _cloud) = tokio_block(sandbox.cloud());
    let mut after = account.snapshot_json();
    after["meta"]["now"] = before["meta"]["now"].clone();
    assert_eq!(before, after, "a dry run across regions changes nothing");
    assert!(
        journal_of(&sandbox, &run_id).exists(),
        "a dry run keeps the journal"
    );
}

#[test]
fn a_region_that_cannot_be_listed_is_reported_and_the_others_are_swept() {
    let _serial = serial();
    let sandbox = Sandbox::new();
    let run_id = killed_while_copying(&sandbox);
    let denied = sandbox.write("denied.yaml", "denied_regions: [us-west-2]\n");
    let denied = denied.display().to_string();

    let gc = sandbox.kiln(&["--faults", &denied, "--output", "json", "gc", "--yes"]);
    gc.assert_code(1);
    assert!(gc.stderr.contains("not swept: us-west-2"), "{}", gc.stderr);
    let json = gc.json();
    assert_eq!(json["unswept"][0]["region"], "us-west-2", "{json}");
    let swept: Vec<&str> = json["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .map(|r| r["region"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(swept, [POC_REGION, "ap-northeast-3"]);
    assert!(
        journal_of(&sandbox, &run_id).exists(),
        "kept: us-west-2 was not swept"
    );
    // The faults stay in the state: lift the deny before reading us-west-2.
    let allowed = sandbox.write("allowed.yaml", "{}\n");
    drop(SimAccount::open(&sandbox.state(), None, Some(&allowed)).expect("open"));
    for region in [POC_REGION, "ap-northeast-3"] {
        let left = tokio_block(images_of_run_in(&sandbox, region, &run_id));
        assert_eq!(left, 0, "{region}");
    }
    let left = tokio_block(images_of_run_in(&sandbox, "us-west-2", &run_id));
    assert_eq!(left, 1, "the copy in the denied region is still there");

    let gc = sandbox.kiln(&["gc", "--yes"]);
    gc.assert_code(0);
    tokio_block(assert_nothing_of_run_anywhere(&sandbox, &run_id));
    assert!(!journal_of(&sandbox, &run_id).exists());
}
