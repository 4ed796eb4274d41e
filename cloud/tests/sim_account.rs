//! The simulated account as a whole: the state file, its lock, the virtual clock across
//! processes, throttling with the client's retries, and errors in seed and faults files.

mod sim_common;

use std::path::Path;
use std::time::Duration;

use kiln_cloud::sim::{Faults, SimAccount, SimError};
use kiln_cloud::*;
use sim_common::*;

fn seed_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("account.yaml");
    std::fs::write(&path, SEED).unwrap();
    path
}

#[tokio::test(start_paused = true)]
async fn state_and_clock_continue_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (state, seed) = (dir.path().join("state.json"), seed_file(dir.path()));
    let first = SimAccount::open(&state, Some(&seed), None).unwrap();
    let cloud = first.region(REGION).await.unwrap();
    let inst = cloud
        .compute
        .run_instance(&builder_request("builder"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    first.save_now().unwrap();
    let then = first.now();
    drop((cloud, first));

    let second = SimAccount::open(&state, None, None).unwrap();
    let gap = (second.now() - then).num_seconds();
    assert!(
        (-1..=0).contains(&gap),
        "clock continues from the saved time ({gap}s)"
    );
    let cloud = second.region(REGION).await.unwrap();
    let f = InstanceFilter {
        ids: vec![inst.id.clone()],
        ..Default::default()
    };
    let found = cloud.compute.describe_instances(&f).await.unwrap();
    assert_eq!(found[0].state, InstanceState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_second_open_is_refused_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (state, seed) = (dir.path().join("state.json"), seed_file(dir.path()));
    let first = SimAccount::open(&state, Some(&seed), None).unwrap();
    let err = SimAccount::open(&state, Some(&seed), None).unwrap_err();
    assert!(matches!(err, SimError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("state.json"), "{err}");
    drop(first);
    SimAccount::open(&state, None, None).expect("lock released with the account");
}

#[tokio::test(start_paused = true)]
async fn missing_state_without_seed_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("nothing.json");
    let err = SimAccount::open(&state, None, None).unwrap_err();
    assert!(matches!(err, SimError::NoSeed { .. }));
    assert!(err.to_string().contains("nothing.json"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn faults_file_is_kept_in_the_state_with_what_remains() {
    let dir = tempfile::tempdir().unwrap();
    let (state, seed) = (dir.path().join("state.json"), seed_file(dir.path()));
    let faults = dir.path().join("faults.yaml");
    std::fs::write(
        &faults,
        "throttle:\n  - { operation: DescribeImages, count: 2 }\n",
    )
    .unwrap();
    let first = SimAccount::open(&state, Some(&seed), Some(&faults)).unwrap();
    let cloud = first.region(REGION).await.unwrap();
    cloud
        .compute
        .describe_images(&ImageFilter::default())
        .await
        .unwrap();
    drop((cloud, first));
    let second = SimAccount::open(&state, None, None).unwrap();
    assert_eq!(second.faults().throttle[0].rejected, 2);
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_by_the_client_then_surfaced() {
    let (account, cloud) = poc().await;
    let faults = "throttle:\n  - { operation: DescribeInstances, count: 2 }\n  \
                  - { operation: DescribeImages, count: 5 }\n";
    account.set_faults(Faults::from_yaml_str(faults).unwrap());
    let start = tokio::time::Instant::now();
    let ok = cloud
        .compute
        .describe_instances(&InstanceFilter::default())
        .await;
    assert!(ok.is_ok(), "two rejections fit in three attempts");
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "the retries back off in virtual time"
    );
    let err = cloud
        .compute
        .describe_images(&ImageFilter::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled);
    let counts: Vec<u32> = account
        .faults()
        .throttle
        .iter()
        .map(|t| t.rejected)
        .collect();
    assert_eq!(counts, [2, 3], "each rejected attempt is counted");
    let after = cloud.compute.describe_images(&ImageFilter::default()).await;
    assert!(
        after.is_ok(),
        "the last two rejections fit in the next call's attempts"
    );
    assert_eq!(account.faults().throttle[1].rejected, 5);
}

#[tokio::test(start_paused = true)]
async fn throttle_storm_rejects_everything_for_a_while() {
    let (account, cloud) = poc().await;
    account.set_faults(Faults::from_yaml_str("throttle_storm: { lasts: 30s }\n").unwrap());
    let err = cloud
        .parameters
        .get_parameter("/poc/web/proxysql/admin-user", false)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(cloud
        .parameters
        .get_parameter("/poc/web/proxysql/admin-user", false)
        .await
        .is_ok());
}

#[test]
fn bad_seed_names_line_and_field() {
    let seed = SEED.replacen(
        "        min: 3\n",
        "        min: 3\n        minimum: 3\n",
        1,
    );
    let err = SimAccount::from_seed_str(&seed).unwrap_err();
    let SimError::Parse { line, message, .. } = &err else {
        panic!("{err}")
    };
    let expected = seed.lines().position(|l| l.contains("minimum: 3")).unwrap() + 1;
    assert_eq!(*line, expected, "{err}");
    assert!(message.contains("minimum"), "{err}");
}

#[test]
fn bad_faults_name_line_and_field() {
    let text = "steps:\n  - step: a/b\n    exit_code: 1\n    exitcode: 2\n";
    let err = Faults::from_yaml_str(text).unwrap_err();
    let SimError::Parse { line, message, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*line, 4, "{err}");
    assert!(message.contains("exitcode"), "{err}");
}

/// A fault that could never fire is refused at its value, and the account is not made.
#[test]
fn faults_that_could_never_fire_are_refused_where_written() {
    let dir = tempfile::tempdir().unwrap();
    let (state, seed) = (dir.path().join("state.json"), seed_file(dir.path()));
    let cases = [
        (
            "steps:\n  - { step: nosuch, exit_code: 1 }\n",
            "2:13: step `nosuch` is not written `recipe/step`",
        ),
        (
            "throttle:\n  - { operation: DescribeInstance, count: 3 }\n",
            "2:18: operation `DescribeInstance` is not one kiln calls",
        ),
        (
            "copy_fails:\n  - region: mars-9\n",
            "2:13: region `mars-9` is not one of the account's",
        ),
        (
            "unhealthy_images:\n  - image: ami-zzz\n",
            "2:12: image `ami-zzz` is not in the account",
        ),
        (
            "degraded_images:\n  - { image: new, error_rate: 0.5, latency_secs: 1 }\n",
            "2:14: image `new` is not in the account",
        ),
    ];
    for (text, expected) in cases {
        let faults = dir.path().join("faults.yaml");
        std::fs::write(&faults, text).unwrap();
        let err = SimAccount::open(&state, Some(&seed), Some(&faults)).unwrap_err();
        let shown = err.to_string();
        let at = format!("{}:{expected}\n  hint: ", faults.display());
        assert!(shown.starts_with(&at), "{text}: {shown}");
        assert!(!state.exists(), "{text}: the account was made");
    }
    // What the examples and a real image ask for is accepted.
    let faults = dir.path().join("faults.yaml");
    let text = "unhealthy_images: [{ image: new }, { image: ami-0a1e2023aaaa00001 }]\n\
                steps: [{ step: rollout/fix-batch-2, exit_code: 1 }]\n";
    std::fs::write(&faults, text).unwrap();
    SimAccount::open(&state, Some(&seed), Some(&faults)).expect("accepted");
}

#[test]
fn seed_referring_to_a_missing_template_is_refused() {
    let seed = SEED.replacen("launch_template: poc-web-lt", "launch_template: nope-lt", 1);
    let err = SimAccount::from_seed_str(&seed).unwrap_err();
    assert!(err.to_string().contains("nope-lt"), "{err}");
}

#[test]
fn example_faults_files_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/poc/faults");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let faults = Faults::from_yaml_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_ne!(faults, Faults::default(), "{path:?} asks for nothing");
        // Each can fire in the POC account.
        let state = tempfile::tempdir().unwrap();
        let seed = seed_file(state.path());
        let state = state.path().join("state.json");
        SimAccount::open(&state, Some(&seed), Some(&path)).unwrap_or_else(|e| panic!("{e}"));
        seen += 1;
    }
    assert!(seen >= 6, "{seen} example faults files");
}

#[tokio::test(start_paused = true)]
async fn every_call_is_saved_whole_so_a_killed_process_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (state, seed) = (dir.path().join("state.json"), seed_file(dir.path()));
    let account = SimAccount::open(&state, Some(&seed), None).unwrap();
    let cloud = account.region(REGION).await.unwrap();
    let inst = cloud
        .compute
        .run_instance(&builder_request("builder"))
        .await
        .unwrap();
    // Read while the account is still open, as `kill -9` would leave it.
    let text = std::fs::read_to_string(&state).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(saved["regions"][REGION]["instances"]
        .get(inst.id.as_str())
        .is_some());
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok());
    let temps = leftovers.filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
    assert_eq!(temps.count(), 0, "no temporary file left behind");
}

#[tokio::test(start_paused = true)]
async fn a_state_that_cannot_be_written_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (state, seed) = (dir.path().join("state.json"), seed_file(dir.path()));
    let account = SimAccount::open(&state, Some(&seed), None).unwrap();
    // A non-empty folder where the state was: the rename over it fails.
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("keep"), "x").unwrap();

    let error = account.save_now().unwrap_err();
    assert!(matches!(error, SimError::Write { .. }), "{error}");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
