//! Interrupted bakes leave nothing: a bake killed with SIGKILL is swept by `kiln gc`,
//! and a bake sent SIGTERM cleans up by itself, says what it removed and exits 130.
//! Both run the real `kiln` binary on a simulated account.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use kiln::cloud::{ImageFilter, ImageState, InstanceFilter, InstanceState, Tags, TAG_RUN_ID};
use support::{repo_path, Sandbox, POC_PIPELINE};

/// One test at a time: a child forked by one test would inherit, until it execs, the
/// state-file lock another test holds in this process, and make a `kiln` call fail as
/// locked.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts `kiln --sim STATE bake` on the POC pipeline with stderr piped.
fn spawn_bake(sandbox: &Sandbox) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--sim")
        .arg(sandbox.state())
        .args(["--no-progress", "bake"])
        .arg(repo_path(POC_PIPELINE))
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

fn stderr_lines(child: &mut Child) -> impl Iterator<Item = String> {
    let stderr = child.stderr.take().expect("piped stderr");
    BufReader::new(stderr)
        .lines()
        .map(|l| l.expect("stderr line"))
}

/// The run's journal file, if any.
fn journal_of(sandbox: &Sandbox, run_id: &str) -> std::path::PathBuf {
    sandbox
        .path("account.json.journal")
        .join(format!("{run_id}.jsonl"))
}

/// Nothing of the run is left: no live instance, no security group, no image that is
/// not deregistered, no snapshot.
async fn assert_nothing_of_run(sandbox: &Sandbox, run_id: &str) {
    let (_account, cloud) = sandbox.cloud().await;
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
    assert!(alive.is_empty(), "instances left: {alive:?}");
    let groups = cloud
        .compute
        .describe_security_groups(&[], &run)
        .await
        .unwrap();
    assert!(groups.is_empty(), "security groups left: {groups:?}");
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
    assert!(registered.is_empty(), "images left: {registered:?}");
    let snapshots = cloud.compute.describe_snapshots(&[], &run).await.unwrap();
    assert!(snapshots.is_empty(), "snapshots left: {snapshots:?}");
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

fn tokio_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(future)
}
