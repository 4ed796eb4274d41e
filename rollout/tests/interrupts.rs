//! Interrupted rollouts leave nothing behind: a blue/green rollout and an A/B canary
//! cancelled at each phase undo themselves (traffic back on blue, green's group, target
//! group, rules and version removed, the journal empty); a run killed outright (its
//! task dropped, as SIGKILL would) is cleaned up by the sweep, which keeps what serves.
//!
//! `cargo test -p kiln-rollout --test interrupts -- --nocapture` prints the clean-up
//! time of each phase in simulated time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kiln_cloud::journal::{MemoryJournal, ResourceKind};
use kiln_cloud::progress::Silent;
use kiln_cloud::{Cloud, TemplateRef};
use kiln_rollout::sweep::{self, RunJudge, RunState};
use kiln_rollout::{
    plan, rollout_with_journal, BlueGreenSettings, CanaryMode, CanarySettings, CancellationToken,
    Preview, RolloutError, RolloutPlan, StopReason, Strategy,
};

/// The green group every rollout of these tests makes (the template's next version).
const GREEN: &str = "poc-web-asg-v3";
/// How often the tests look at the account while a rollout runs.
const LOOK_EVERY: Duration = Duration::from_secs(5);
/// No phase of these rollouts is reached later than this (simulated).
const PHASE_DEADLINE: Duration = Duration::from_secs(3 * 60 * 60);

/// Clean-up measurements, printed as one table.
static ROWS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What the account holds that a rollout could add to.
#[derive(Debug, Clone, PartialEq)]
struct Estate {
    groups: Vec<String>,
    target_groups: Vec<String>,
    rules: Vec<String>,
    versions: Vec<i64>,
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
    let mut target_groups: Vec<String> = cloud
        .load_balancing
        .describe_target_groups(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    target_groups.sort();
    let template = TemplateRef::Name(TEMPLATE.into());
    let versions = cloud
        .compute
        .describe_launch_template_versions(&template, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    Estate {
        groups,
        target_groups,
        rules: rules(cloud).await,
        versions,
    }
}

/// How many groups, target groups, rules and versions `after` has beyond `before`.
fn extra(after: &Estate, before: &Estate) -> usize {
    fn beyond<T: PartialEq>(after: &[T], before: &[T]) -> usize {
        after.iter().filter(|x| !before.contains(x)).count()
    }
    beyond(&after.groups, &before.groups)
        + beyond(&after.target_groups, &before.target_groups)
        + beyond(&after.rules, &before.rules)
        + beyond(&after.versions, &before.versions)
}

async fn listener(cloud: &Cloud) -> kiln_cloud::Listener {
    let lb = cloud
        .load_balancing
        .describe_load_balancers(&[ALB.into()])
        .await
        .unwrap();
    let mut listeners = cloud
        .load_balancing
        .describe_listeners(&lb[0].arn)
        .await
        .unwrap();
    assert_eq!(listeners.len(), 1, "the POC load balancer has one listener");
    listeners.remove(0)
}

/// The listener's rules other than the default one.
async fn rules(cloud: &Cloud) -> Vec<String> {
    let l = listener(cloud).await;
    let rules = cloud.load_balancing.describe_rules(&l.arn).await.unwrap();
    rules
        .into_iter()
        .filter(|r| r.priority != "default")
        .map(|r| r.arn.to_string())
        .collect()
}

/// The listener's default action as (target group name, weight).
async fn forward(cloud: &Cloud) -> Vec<(String, i32)> {
    let tgs = cloud
        .load_balancing
        .describe_target_groups(&[])
        .await
        .unwrap();
    let l = listener(cloud).await;
    l.default_forward
        .unwrap()
        .target_groups
        .iter()
        .map(|t| {
            let name = tgs.iter().find(|g| g.arn == t.target_group_arn);
            (name.unwrap().name.clone(), t.weight)
        })
        .collect()
}

/// Green's share of the listener's traffic, if green is in its action.
async fn green_weight(cloud: &Cloud) -> Option<i32> {
    forward(cloud)
        .await
        .into_iter()
        .find(|(name, _)| name != TG)
        .map(|(_, w)| w)
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Green's group exists; its instances are not healthy yet.
    GreenCreated,
    /// Green is healthy and the testers' rule sends testers to it.
    GreenHealthy,
    /// A weighted step sends part of the traffic to green.
    TrafficShifting,
    /// The switch is done; blue drains.
    Draining,
}

impl Phase {
    async fn reached(self, cloud: &Cloud) -> bool {
        match self {
            Self::GreenCreated => estate(cloud).await.groups.contains(&GREEN.to_string()),
            Self::GreenHealthy => !rules(cloud).await.is_empty(),
            Self::TrafficShifting => green_weight(cloud).await.is_some_and(|w| w > 0 && w < 100),
            Self::Draining => green_weight(cloud).await == Some(100),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::GreenCreated => "green created",
            Self::GreenHealthy => "green healthy (testers' rule)",
            Self::TrafficShifting => "traffic shifting",
            Self::Draining => "switched, blue draining",
        }
    }
}

/// Sleeps on simulated time until the rollout reaches `phase`.
async fn until(cloud: &Cloud, phase: Phase) {
    let deadline = cloud.clock.now() + chrono::Duration::from_std(PHASE_DEADLINE).unwrap();
    while !phase.reached(cloud).await {
        assert!(cloud.clock.now() < deadline, "{phase:?} never reached");
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

fn blue_green() -> kiln_rollout::RolloutSpec {
    spec(Strategy::BlueGreen(BlueGreenSettings {
        preview: Some(Preview {
            source_ips: vec!["203.0.113.0/24".into()],
            header: None,
            hold: Duration::from_secs(600),
            priority: 10,
        }),
        traffic_steps: vec![10, 50],
        step_bake: Duration::from_secs(300),
        ..Default::default()
    }))
}

fn ab_canary() -> kiln_rollout::RolloutSpec {
    spec(Strategy::Canary(CanarySettings {
        mode: CanaryMode::Ab,
        bake: Duration::from_secs(300),
        ..Default::default()
    }))
}

type Task = tokio::task::JoinHandle<Result<kiln_rollout::RolloutOutcome, RolloutError>>;

/// Runs the rollout in a task, journaling into `journal`.
fn start(
    cloud: &Cloud,
    plan: &RolloutPlan,
    journal: &Arc<MemoryJournal>,
) -> (Task, CancellationToken) {
    let cancel = CancellationToken::new();
    let (cloud, plan, c, j) = (cloud.clone(), plan.clone(), cancel.clone(), journal.clone());
    let task =
        tokio::spawn(async move { rollout_with_journal(&cloud, &plan, &Silent, &c, &*j).await });
    (task, cancel)
}

/// Cancels a rollout of `spec` at `phase` and checks that it undid itself.
async fn cancel_at(what: &str, spec: kiln_rollout::RolloutSpec, phase: Phase) {
    let (account, cloud) = poc().await;
    let before = estate(&cloud).await;
    let traffic_before = forward(&cloud).await;
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let journal = Arc::new(MemoryJournal::new());
    let (task, cancel) = start(&cloud, &p, &journal);
    until(&cloud, phase).await;
    let made = journal.open_records();
    assert!(
        made.iter()
            .any(|r| r.kind == ResourceKind::AutoScalingGroup && r.id == GREEN),
        "green is journaled at {phase:?}: {made:?}"
    );

    let at = cloud.clock.now();
    cancel.cancel();
    let err = task.await.unwrap().unwrap_err();
    let took = (cloud.clock.now() - at).to_std().unwrap();
    assert_eq!(err.stop_reason(), Some(&StopReason::Cancelled), "{err}");
    let RolloutError::Stopped {
        outcome,
        rolled_back,
        ..
    } = &err
    else {
        unreachable!("a stop")
    };
    assert!(*rolled_back, "{what} at {phase:?} rolled back");

    let after = estate(&cloud).await;
    let left = extra(&after, &before);
    assert_eq!(after, before, "{what} at {phase:?} left resources");
    assert_eq!(
        forward(&cloud).await,
        traffic_before,
        "traffic back on blue as it was"
    );
    assert_eq!(journal.open_records(), vec![], "the journal is empty");
    assert_eq!(
        versions_and_images(&cloud, GROUP).await,
        ("2".to_string(), vec![CURRENT_IMAGE.to_string(); 3]),
        "blue untouched"
    );
    assert_safe(&account, GROUP, 3);
    ROWS.lock().unwrap().push(format!(
        "| {what} | {} | {} | {} | {left} | {} s |",
        phase.name(),
        outcome.status,
        made.len(),
        took.as_secs()
    ));
}

fn print_table() {
    let rows = ROWS.lock().unwrap();
    println!("| strategy | cancelled at | outcome | resources made | left | clean-up (sim) |");
    println!("|---|---|---|---|---|---|");
    for row in rows.iter() {
        println!("{row}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollout_cancelled_at_each_phase_undoes_itself() {
    let blue_green_phases = [
        Phase::GreenCreated,
        Phase::GreenHealthy,
        Phase::TrafficShifting,
        Phase::Draining,
    ];
    for phase in blue_green_phases {
        cancel_at("blue/green", blue_green(), phase).await;
    }
    for phase in [Phase::GreenCreated, Phase::TrafficShifting, Phase::Draining] {
        cancel_at("A/B canary", ab_canary(), phase).await;
    }
    print_table();
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_rolling_rollout_deletes_its_version_once_rolled_back() {
    let (account, cloud) = poc().await;
    let before = estate(&cloud).await;
    let spec = rolling(kiln_rollout::RollingSettings::default());
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let journal = Arc::new(MemoryJournal::new());
    let (task, cancel) = start(&cloud, &p, &journal);
    until_refresh_in_progress(&cloud, 1).await;
    let made = journal.open_records();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].kind, ResourceKind::LaunchTemplateVersion);
    assert!(made[0].id.ends_with(":3"), "{made:?}");

    cancel.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.stop_reason(), Some(&StopReason::Cancelled), "{err}");
    assert_eq!(estate(&cloud).await, before, "version 3 is deleted");
    assert_eq!(journal.open_records(), vec![]);
    assert_eq!(
        versions_and_images(&cloud, GROUP).await,
        ("2".to_string(), vec![CURRENT_IMAGE.to_string(); 3])
    );
    assert_safe(&account, GROUP, 3);
}

#[tokio::test(start_paused = true)]
async fn an_error_once_green_exists_undoes_the_run_through_throttling() {
    let (account, cloud) = poc().await;
    let before = estate(&cloud).await;
    let traffic_before = forward(&cloud).await;
    // The first listener change (green joining at weight 0) is throttled for longer than
    // kiln tries it (THROTTLE_BUDGET: at most 13 tries of the client's 3 attempts, 39
    // rejections); the undo meets what is left (up to 16 rejections), which its own
    // tries outlast: the run stops with the error and undoes itself anyway.
    account.set_faults(kiln_cloud::sim::Faults {
        throttle: vec![kiln_cloud::sim::ThrottleFault {
            operation: "ModifyListener".into(),
            count: 40,
            rejected: 0,
        }],
        ..Default::default()
    });
    let p = plan(&cloud, &blue_green(), &new_image()).await.unwrap();
    let journal = MemoryJournal::new();
    let never = CancellationToken::new();
    let err = rollout_with_journal(&cloud, &p, &Silent, &never, &journal)
        .await
        .unwrap_err();
    let RolloutError::Cloud(e) = &err else {
        panic!("the cloud error comes back: {err}")
    };
    assert_eq!(e.kind, kiln_cloud::ErrorKind::Throttled, "{e}");
    assert_eq!(estate(&cloud).await, before, "green is removed");
    assert_eq!(forward(&cloud).await, traffic_before);
    assert_eq!(journal.open_records(), vec![]);
    assert_safe(&account, GROUP, 3);
}

/// DescribeInstances, which counts what runs the new image once the rollout is through,
/// answers "throttled" from now on, far longer than kiln tries a call.
fn instances_unreadable(account: &kiln_cloud::sim::SimAccount) {
    account.set_faults(kiln_cloud::sim::Faults {
        throttle: vec![kiln_cloud::sim::ThrottleFault {
            operation: "DescribeInstances".into(),
            count: 100_000,
            rejected: 0,
        }],
        ..Default::default()
    });
}

fn ids_of(records: Vec<kiln_cloud::Record>) -> Vec<(ResourceKind, String)> {
    records.into_iter().map(|r| (r.kind, r.id)).collect()
}

#[tokio::test(start_paused = true)]
async fn an_error_after_the_switch_says_green_is_live_and_keeps_what_it_made() {
    let (account, cloud) = poc().await;
    let p = plan(&cloud, &blue_green(), &new_image()).await.unwrap();
    let journal = Arc::new(MemoryJournal::new());
    let (task, _cancel) = start(&cloud, &p, &journal);
    until(&cloud, Phase::Draining).await;
    instances_unreadable(&account);
    let err = task.await.unwrap().unwrap_err();
    account.set_faults(Default::default());

    assert!(err.went_through(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("went through: 1 listener(s) forward to green poc-web-asg-v3")
            && text.contains("Nothing was undone")
            && text.contains("DescribeInstances"),
        "{text}"
    );
    // The journal calls removed only what is gone (the testers' rule); green is kept.
    assert_eq!(journal.open_records(), vec![]);
    let removed: Vec<ResourceKind> = ids_of(journal.closed(kiln_cloud::Fate::Removed))
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(removed, [ResourceKind::ListenerRule]);
    assert_eq!(
        rules(&cloud).await,
        Vec::<String>::new(),
        "the rule is gone"
    );
    let kept: Vec<ResourceKind> = ids_of(journal.closed(kiln_cloud::Fate::Kept))
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(
        kept,
        [
            ResourceKind::AutoScalingGroup,
            ResourceKind::TargetGroup,
            ResourceKind::LaunchTemplateVersion
        ]
    );
    // And the account agrees: green takes every request and is tagged live.
    assert_eq!(green_weight(&cloud).await, Some(100));
    let live = group(&cloud, GREEN)
        .await
        .tags
        .get(kiln_rollout::TAG_LIVE)
        .cloned();
    assert_eq!(live.as_deref(), Some("true"));
    assert_eq!(
        versions_and_images(&cloud, GREEN).await,
        ("3".to_string(), vec![NEW_IMAGE.to_string(); 3])
    );
}

#[tokio::test(start_paused = true)]
async fn an_error_after_the_refresh_succeeded_keeps_the_version_the_group_runs() {
    let (account, cloud) = poc().await;
    let spec = rolling(kiln_rollout::RollingSettings::default());
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let journal = Arc::new(MemoryJournal::new());
    let (task, _cancel) = start(&cloud, &p, &journal);
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let refreshes = cloud.scaling.describe_instance_refreshes(GROUP).await;
        let done = refreshes.unwrap().first().map(|r| r.status);
        if done == Some(kiln_cloud::RefreshStatus::Successful) {
            break;
        }
    }
    instances_unreadable(&account);
    let err = task.await.unwrap().unwrap_err();
    account.set_faults(Default::default());

    assert!(err.went_through(), "{err}");
    assert!(
        err.to_string()
            .contains("succeeded: poc-web-asg runs version 3"),
        "{err}"
    );
    assert_eq!(journal.open_records(), vec![], "nothing left for gc");
    assert_eq!(ids_of(journal.closed(kiln_cloud::Fate::Removed)), vec![]);
    let kept = ids_of(journal.closed(kiln_cloud::Fate::Kept));
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].1.ends_with(":3"), "{kept:?}");
    assert_eq!(
        versions_and_images(&cloud, GROUP).await,
        ("3".to_string(), vec![NEW_IMAGE.to_string(); 3])
    );
}

fn over(_: &str) -> RunState {
    RunState::Over
}

fn unknown(_: &str) -> RunState {
    RunState::Unknown
}

fn judge<'a>(cloud: &Cloud, local: &'a dyn Fn(&str) -> RunState) -> RunJudge<'a> {
    RunJudge {
        local,
        grace: Duration::from_secs(6 * 60 * 60),
        now: cloud.clock.now(),
    }
}

fn ids(found: &[sweep::Found]) -> Vec<(ResourceKind, String)> {
    let mut ids: Vec<_> = found.iter().map(|f| (f.kind, f.id.clone())).collect();
    ids.sort();
    ids
}

/// Runs a rollout and drops it at `phase` without letting it clean up, as SIGKILL does.
async fn kill_at(
    cloud: &Cloud,
    spec: kiln_rollout::RolloutSpec,
    phase: Phase,
) -> Vec<(ResourceKind, String)> {
    let p = plan(cloud, &spec, &new_image()).await.unwrap();
    let journal = Arc::new(MemoryJournal::new());
    let (task, _cancel) = start(cloud, &p, &journal);
    until(cloud, phase).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let mut made: Vec<_> = journal
        .open_records()
        .into_iter()
        .map(|r| (r.kind, r.id))
        .collect();
    made.sort();
    made
}

#[tokio::test(start_paused = true)]
async fn a_killed_blue_green_is_swept_once_its_run_is_over() {
    let (account, cloud) = poc().await;
    let before = estate(&cloud).await;
    let made = kill_at(&cloud, blue_green(), Phase::GreenHealthy).await;
    let kinds: Vec<ResourceKind> = made.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            ResourceKind::LaunchTemplateVersion,
            ResourceKind::AutoScalingGroup,
            ResourceKind::TargetGroup,
            ResourceKind::ListenerRule
        ],
        "{made:?}"
    );

    // What the journal had, and the lock the killed run never released.
    let mut left = made.clone();
    left.push((ResourceKind::GroupLock, GROUP.to_string()));

    // A run nobody knows about, started minutes ago, may still be going elsewhere.
    let young = sweep::survey(&cloud, &judge(&cloud, &unknown))
        .await
        .unwrap();
    assert!(young.remove.is_empty(), "{:?}", young.remove);
    assert_eq!(ids(&young.kept), left);

    let survey = sweep::survey(&cloud, &judge(&cloud, &over)).await.unwrap();
    assert_eq!(
        ids(&survey.remove),
        left,
        "the sweep finds what the journal had, and the lock"
    );
    assert!(survey.kept.is_empty(), "{:?}", survey.kept);
    let report = sweep::sweep(&cloud, &survey).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(ids(&report.removed), left);

    assert_eq!(estate(&cloud).await, before, "nothing of the run is left");
    let tags = group(&cloud, GROUP).await.tags;
    assert!(!tags.contains_key(kiln_rollout::LOCK_TAG), "{tags:?}");
    let on_blue = forward(&cloud).await;
    assert!(
        on_blue.len() == 1 && on_blue[0].0 == TG && on_blue[0].1 > 0,
        "all traffic on blue: {on_blue:?}"
    );
    assert_eq!(
        versions_and_images(&cloud, GROUP).await,
        ("2".to_string(), vec![CURRENT_IMAGE.to_string(); 3]),
        "blue untouched"
    );
    assert_safe(&account, GROUP, 3);
}

fn live(_: &str) -> RunState {
    RunState::Live
}

#[tokio::test(start_paused = true)]
async fn a_lock_is_released_only_for_a_run_that_is_over_and_still_holds_it() {
    let (_account, cloud) = poc().await;
    let spec = rolling(kiln_rollout::RollingSettings::default());
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let journal = Arc::new(MemoryJournal::new());
    let (task, _cancel) = start(&cloud, &p, &journal);
    until_refresh_in_progress(&cloud, 1).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let lock = (ResourceKind::GroupLock, GROUP.to_string());

    // A live run keeps its lock, with the reason.
    let going = sweep::survey(&cloud, &judge(&cloud, &live)).await.unwrap();
    let kept = going
        .kept
        .iter()
        .find(|f| f.kind == ResourceKind::GroupLock);
    let kept = kept.unwrap_or_else(|| panic!("{:?}", going.kept));
    assert_eq!(
        (kept.id.as_str(), kept.run_id.as_str()),
        (GROUP, p.run_id.as_str())
    );
    assert!(kept.reason.contains("still going"), "{}", kept.reason);
    assert!(!ids(&going.remove).contains(&lock), "{:?}", going.remove);

    // Over: listed, then released, unless another run took the group meanwhile.
    let survey = sweep::survey(&cloud, &judge(&cloud, &over)).await.unwrap();
    assert!(ids(&survey.remove).contains(&lock), "{:?}", survey.remove);
    let other = "owner=ci;run=ro-20990101T000000-beef;expires=2099-01-01T00:00:00+00:00";
    let tags = kiln_cloud::Tags::from([(kiln_rollout::LOCK_TAG.to_string(), other.to_string())]);
    cloud.scaling.put_group_tags(GROUP, &tags).await.unwrap();
    let report = sweep::sweep(&cloud, &survey).await;
    let failed: Vec<_> = report
        .failed
        .iter()
        .filter(|(f, _)| f.kind == lock.0)
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", report.failed);
    assert!(
        failed[0].1.contains("ro-20990101T000000-beef"),
        "{}",
        failed[0].1
    );
    let tag = group(&cloud, GROUP)
        .await
        .tags
        .get(kiln_rollout::LOCK_TAG)
        .cloned();
    assert_eq!(tag.as_deref(), Some(other), "the new holder's lock stays");
}

#[tokio::test(start_paused = true)]
async fn a_killed_rollout_whose_green_takes_traffic_is_kept_with_the_reason() {
    let (_account, cloud) = poc().await;
    let made = kill_at(&cloud, ab_canary(), Phase::TrafficShifting).await;
    let weight = green_weight(&cloud).await.expect("green in the action");
    assert!(weight > 0 && weight < 100, "{weight}");

    let survey = sweep::survey(&cloud, &judge(&cloud, &over)).await.unwrap();
    assert_eq!(
        ids(&survey.remove),
        [(ResourceKind::GroupLock, GROUP.to_string())],
        "nothing that serves is removed, only the dead run's lock is released"
    );
    assert_eq!(ids(&survey.kept), made);
    let group = survey
        .kept
        .iter()
        .find(|f| f.kind == ResourceKind::AutoScalingGroup)
        .unwrap();
    assert!(
        group.reason.contains(&format!("weight {weight}")),
        "{}",
        group.reason
    );
    let version = survey
        .kept
        .iter()
        .find(|f| f.kind == ResourceKind::LaunchTemplateVersion)
        .unwrap();
    assert!(version.reason.contains(GREEN), "{}", version.reason);
}

#[tokio::test(start_paused = true)]
async fn the_sweep_keeps_the_live_green_and_the_blue_in_its_window() {
    let (account, cloud) = poc().await;
    let spec = spec(Strategy::BlueGreen(BlueGreenSettings::default()));
    let never = CancellationToken::new();
    let first = plan(&cloud, &spec, &new_image()).await.unwrap();
    let journal = MemoryJournal::new();
    let out = rollout_with_journal(&cloud, &first, &Silent, &never, &journal)
        .await
        .unwrap();
    assert_eq!(out.group, GREEN);
    assert_eq!(journal.open_records(), vec![], "green is the run's result");

    // The second rollout starts from the live green: the first green becomes blue.
    let current = kiln_cloud::ImageId::new(CURRENT_IMAGE);
    let second = plan(&cloud, &spec, &current).await.unwrap();
    let out = rollout_with_journal(&cloud, &second, &Silent, &never, &journal)
        .await
        .unwrap();
    assert_eq!(out.group, "poc-web-asg-v4");
    assert_eq!(journal.open_records(), vec![]);

    let survey = sweep::survey(&cloud, &judge(&cloud, &over)).await.unwrap();
    // Only the first blue goes: the live green keeps the second's blue, not it.
    let gone: Vec<(ResourceKind, &str)> = survey
        .remove
        .iter()
        .map(|f| (f.kind, f.reason.as_str()))
        .collect();
    assert_eq!(
        gone.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [ResourceKind::AutoScalingGroup, ResourceKind::TargetGroup],
        "{gone:?}"
    );
    assert_eq!(survey.remove[0].id, GROUP);
    assert!(gone[0].1.contains("no live group keeps it"), "{gone:?}");
    let reason = |kind, id: &str| {
        survey
            .kept
            .iter()
            .find(|f| f.kind == kind && f.id == id)
            .map(|f| f.reason.clone())
            .unwrap_or_else(|| panic!("{id} is listed as kept: {:?}", survey.kept))
    };
    let blue = reason(ResourceKind::AutoScalingGroup, GREEN);
    assert!(blue.contains("blue kept by poc-web-asg-v4"), "{blue}");
    let live = reason(ResourceKind::AutoScalingGroup, "poc-web-asg-v4");
    assert!(live.contains("kiln:live=true"), "{live}");
    let template = cloud
        .compute
        .describe_launch_template(&TemplateRef::Name(TEMPLATE.into()))
        .await
        .unwrap();
    for (version, group) in [(3, GREEN), (4, "poc-web-asg-v4")] {
        let id = format!("{}:{version}", template.id);
        let why = reason(ResourceKind::LaunchTemplateVersion, &id);
        assert!(why.contains(&format!("launched by group {group}")), "{why}");
    }
    let kept_tgs = survey
        .kept
        .iter()
        .filter(|f| f.kind == ResourceKind::TargetGroup)
        .count();
    assert_eq!(kept_tgs, 2, "{:?}", survey.kept);
    traffic_always_served(&account);
}

/// Two blue/green rollouts: the second starts from the first's green.
async fn two_blue_greens(cloud: &Cloud) {
    let spec = spec(Strategy::BlueGreen(BlueGreenSettings::default()));
    let never = CancellationToken::new();
    let current = kiln_cloud::ImageId::new(CURRENT_IMAGE);
    for image in [new_image(), current] {
        let p = plan(cloud, &spec, &image).await.unwrap();
        kiln_rollout::rollout(cloud, &p, &Silent, &never)
            .await
            .unwrap();
    }
}

fn kinds_and_ids(found: &[sweep::Found]) -> Vec<(ResourceKind, String)> {
    found.iter().map(|f| (f.kind, f.id.clone())).collect()
}

#[tokio::test(start_paused = true)]
async fn once_the_rollback_window_is_over_gc_retires_every_blue_and_keeps_the_live_green() {
    let (account, cloud) = poc().await;
    two_blue_greens(&cloud).await;
    let live = "poc-web-asg-v4";
    tokio::time::sleep(kiln_rollout::DEFAULT_ROLLBACK_WINDOW).await;

    // No local journal, runs an hour old: over all the same, they released their locks.
    let survey = sweep::survey(&cloud, &judge(&cloud, &unknown))
        .await
        .unwrap();
    let groups: Vec<String> = survey
        .remove
        .iter()
        .filter(|f| f.kind == ResourceKind::AutoScalingGroup)
        .map(|f| f.id.clone())
        .collect();
    assert_eq!(groups, [GROUP, GREEN], "{:?}", survey.remove);
    let v3 = survey.remove.iter().find(|f| f.id == GREEN).unwrap();
    assert!(
        v3.reason.contains("rollback window is over"),
        "{}",
        v3.reason
    );
    let target_groups = survey
        .remove
        .iter()
        .filter(|f| f.kind == ResourceKind::TargetGroup)
        .count();
    assert_eq!(target_groups, 2, "{:?}", survey.remove);
    let kept = kinds_and_ids(&survey.kept);
    assert!(
        kept.contains(&(ResourceKind::AutoScalingGroup, live.to_string())),
        "{kept:?}"
    );

    let report = sweep::sweep(&cloud, &survey).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(estate(&cloud).await.groups, [live]);
    assert_eq!(forward(&cloud).await, [("poc-web-tg-v4".to_string(), 100)]);
    let tags = group(&cloud, live).await.tags;
    assert!(!tags.contains_key(kiln_rollout::TAG_BLUE_GROUP), "{tags:?}");
    let retired = tags.get(kiln_rollout::TAG_BLUE_RETIRED).cloned();
    assert!(retired.is_some_and(|r| r.starts_with(GREEN)), "{tags:?}");
    assert_eq!(
        versions_and_images(&cloud, live).await,
        ("4".to_string(), vec![CURRENT_IMAGE.to_string(); 3])
    );
    traffic_always_served(&account);

    let never = CancellationToken::new();
    let back = kiln_rollout::rollback(&cloud, live, &Silent, &never)
        .await
        .unwrap();
    assert_eq!(back.status, "NothingToRollBack");
    let note = back.note.unwrap_or_default();
    assert!(note.contains(&format!("blue group {GREEN}")), "{note}");
}

#[tokio::test(start_paused = true)]
async fn a_green_a_rollback_switched_away_from_is_removed_by_gc() {
    let (account, cloud) = poc().await;
    let before = estate(&cloud).await;
    let spec = spec(Strategy::BlueGreen(BlueGreenSettings::default()));
    let never = CancellationToken::new();
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    kiln_rollout::rollout(&cloud, &p, &Silent, &never)
        .await
        .unwrap();
    kiln_rollout::rollback(&cloud, GROUP, &Silent, &never)
        .await
        .unwrap();
    assert_eq!(
        green_weight(&cloud).await,
        Some(0),
        "green takes no traffic"
    );

    let survey = sweep::survey(&cloud, &judge(&cloud, &unknown))
        .await
        .unwrap();
    let kinds: Vec<ResourceKind> = survey.remove.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            ResourceKind::AutoScalingGroup,
            ResourceKind::TargetGroup,
            ResourceKind::LaunchTemplateVersion
        ],
        "{:?}",
        survey.remove
    );
    assert!(
        survey.remove[0]
            .reason
            .contains("a rollback switched away from"),
        "{}",
        survey.remove[0].reason
    );
    let report = sweep::sweep(&cloud, &survey).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(estate(&cloud).await, before, "only blue is left");
    let on_blue = forward(&cloud).await;
    assert!(
        on_blue.len() == 1 && on_blue[0].0 == TG && on_blue[0].1 > 0,
        "{on_blue:?}"
    );
    assert_safe(&account, GROUP, 3);
}

#[tokio::test(start_paused = true)]
async fn gc_never_retires_a_blue_that_takes_traffic_or_whose_run_may_be_going() {
    let (_account, cloud) = poc().await;
    let settings = BlueGreenSettings {
        rollback_window: Duration::from_secs(5 * 60),
        ..Default::default()
    };
    let window = settings.watch_after_switch + settings.rollback_window;
    let spec = spec(Strategy::BlueGreen(settings));
    // Killed while blue drains: the switch is done, the run's lock still on blue; then
    // the window (the watch after the switch, and the rollback window) passes.
    kill_at(&cloud, spec, Phase::Draining).await;
    tokio::time::sleep(window + Duration::from_secs(60)).await;
    let young = sweep::survey(&cloud, &judge(&cloud, &unknown))
        .await
        .unwrap();
    let blue = young.kept.iter().find(|f| f.id == GROUP);
    let blue = blue.unwrap_or_else(|| panic!("blue kept: {:?}", young.kept));
    assert!(blue.reason.contains("grace period"), "{}", blue.reason);
    assert!(!kinds_and_ids(&young.remove).contains(&(ResourceKind::AutoScalingGroup, GROUP.into())));

    // Over, but a listener sends blue a tenth of the requests again.
    let l = listener(&cloud).await;
    let mut f = l.default_forward.clone().unwrap();
    for t in &mut f.target_groups {
        t.weight = if t.weight == 0 { 10 } else { 90 };
    }
    cloud
        .load_balancing
        .modify_listener_forward(&l.arn, &f)
        .await
        .unwrap();
    let over = sweep::survey(&cloud, &judge(&cloud, &over)).await.unwrap();
    let removed = kinds_and_ids(&over.remove);
    assert!(
        !removed
            .iter()
            .any(|(k, _)| *k == ResourceKind::AutoScalingGroup),
        "{removed:?}"
    );
    let blue = over.kept.iter().find(|f| f.id == GROUP).unwrap();
    assert!(blue.reason.contains("weight 10"), "{}", blue.reason);
    let green = over.kept.iter().find(|f| f.id == GREEN).unwrap();
    assert!(green.reason.contains("kiln:live=true"), "{}", green.reason);
}
