//! The fault suite: every fault a bake meets, one row each, with its outcome, what is
//! left in the account afterwards (always nothing but a kept image) and how long the
//! clean-up took on the simulated clock. `cargo test -p kiln-builder --test faults --
//! --nocapture` prints the table.
//!
//! The detailed assertions of each failure (error fields, journals) live in bake_sim.rs;
//! this suite holds every fault to the same three questions, adds the faults that had no
//! test there (an image that ends `failed`, a step whose output is cut but succeeds, an
//! interrupt in each phase), and measures.

mod support;

use std::time::Duration;

use kiln_builder::{bake, plan, BakeError, BakeOutcome};
use kiln_cloud::progress::Event;
use kiln_cloud::{
    Cloud, ImageFilter, ImageState, InstanceFilter, Level, Progress, Tags, Timestamp, TAG_RUN_ID,
};
use tokio_util::sync::CancellationToken;

use support::*;

/// Records every event and cancels the bake at the first whose message contains
/// `cancel_on` (none when empty).
struct Watch {
    cancel_on: &'static str,
    cancel: CancellationToken,
    events: std::sync::Mutex<Vec<Event>>,
}

impl Progress for Watch {
    fn event(&self, event: Event) {
        if !self.cancel_on.is_empty() && event.message.contains(self.cancel_on) {
            self.cancel.cancel();
        }
        self.events.lock().unwrap().push(event);
    }
}

type Verdict = fn(&Result<BakeOutcome, BakeError>) -> bool;

struct Case {
    fault: &'static str,
    faults: &'static str,
    /// Cancel at the first event with this text ("" for none).
    cancel_on: &'static str,
    expect: Verdict,
    /// Text the error (or, on success, a warning) must show.
    says: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            fault: "builder never boots",
            faults: "boot_fails: [{role: builder}]",
            cancel_on: "",
            expect: |r| matches!(r, Err(BakeError::InstanceNotRunning { .. })),
            says: "Server.InternalError",
        },
        Case {
            fault: "agent never online",
            faults: "agent_never_online: [{role: builder}]",
            cancel_on: "",
            expect: |r| matches!(r, Err(BakeError::AgentNotOnline { .. })),
            says: "SSM agent",
        },
        Case {
            fault: "invalid instance for 90 s after online",
            faults: "invalid_instance_after_online: 90s",
            cancel_on: "",
            expect: |r| r.is_ok(),
            says: "",
        },
        Case {
            fault: "invocation not found for 45 s after sending",
            faults: "invocation_hidden_for: 45s",
            cancel_on: "",
            expect: |r| r.is_ok(),
            says: "",
        },
        Case {
            fault: "step fails (exit 7)",
            faults: "steps: [{step: web/install-httpd, exit_code: 7, stderr: [no httpd]}]",
            cancel_on: "",
            expect: |r| matches!(r, Err(BakeError::StepFailed { exit_code: 7, .. })),
            says: "web/install-httpd",
        },
        Case {
            fault: "step times out (cancelled)",
            faults: "step_hangs: [base/update-os]",
            cancel_on: "",
            expect: |r| matches!(r, Err(BakeError::StepTimedOut { .. })),
            says: "base/update-os",
        },
        Case {
            fault: "output of 30,000 characters",
            faults: "step_output: [{step: base/update-os, chars: 30000}]",
            cancel_on: "",
            expect: |r| r.is_ok(),
            says: "cut its output at 24,000",
        },
        Case {
            fault: "AMI ends failed",
            faults: "image_fails: 'Client.SnapshotCreationFailure: volume snapshot failed'",
            cancel_on: "",
            expect: |r| matches!(r, Err(BakeError::ImageFailed { .. })),
            says: "SnapshotCreationFailure",
        },
        Case {
            fault: "every operation throttled for 2 min",
            faults: "throttle_storm: {after: 1m, lasts: 2m}",
            cancel_on: "",
            expect: |r| r.is_ok(),
            says: "",
        },
        Case {
            fault: "interrupt: builder phase",
            faults: "",
            cancel_on: "builder instance launched",
            expect: |r| matches!(r, Err(BakeError::Cancelled { phase, .. }) if phase == "builder"),
            says: "cancelled during builder",
        },
        Case {
            fault: "interrupt: steps phase",
            faults: "",
            cancel_on: "build step started",
            expect: |r| matches!(r, Err(BakeError::Cancelled { phase, .. }) if phase == "steps"),
            says: "cancelled during steps",
        },
        Case {
            fault: "interrupt: image phase",
            faults: "",
            cancel_on: "image poc-web-base-",
            expect: |r| matches!(r, Err(BakeError::Cancelled { phase, .. }) if phase == "image"),
            says: "cancelled during image",
        },
        Case {
            fault: "interrupt: test phase",
            faults: "",
            cancel_on: "test instance launched",
            expect: |r| matches!(r, Err(BakeError::Cancelled { phase, .. }) if phase == "test"),
            says: "cancelled during test",
        },
    ]
}

/// One measured row.
struct Row {
    fault: &'static str,
    outcome: String,
    left: Vec<String>,
    cleanup: Duration,
    total: Duration,
    problems: Vec<String>,
}

#[tokio::test(start_paused = true)]
async fn every_fault_ends_clean_with_a_clear_outcome() {
    let mut rows = Vec::new();
    for case in cases() {
        rows.push(run_case(&case).await);
    }
    print_table(&rows);
    let problems: Vec<String> = rows
        .iter()
        .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.fault)))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

async fn run_case(case: &Case) -> Row {
    let cloud = cloud_with_faults(case.faults).await;
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let watch = Watch {
        cancel_on: case.cancel_on,
        cancel: CancellationToken::new(),
        events: std::sync::Mutex::new(Vec::new()),
    };
    let result = bake(&cloud, &plan, &watch, &watch.cancel).await;
    let events = watch.events.into_inner().unwrap();
    let kept = result.as_ref().ok().map(|o| o.image.id.to_string());
    let left = left_behind(&cloud, &plan.run_id, kept.as_deref()).await;

    let mut problems = Vec::new();
    if !(case.expect)(&result) {
        problems.push(format!("unexpected outcome: {}", outcome_text(&result)));
    }
    let shown = match &result {
        Err(e) => e.to_string(),
        Ok(_) => warnings(&events),
    };
    if !shown.contains(case.says) {
        problems.push(format!("does not say {:?}: {shown}", case.says));
    }
    if !left.is_empty() {
        problems.push(format!("left behind: {left:?}"));
    }
    Row {
        fault: case.fault,
        outcome: outcome_text(&result),
        left,
        cleanup: cleanup_time(&events),
        total: span(&events),
        problems,
    }
}

fn warnings(events: &[Event]) -> String {
    events
        .iter()
        .filter(|e| e.level == Level::Warn)
        .map(|e| format!("{}: {}", e.subject, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn outcome_text(result: &Result<BakeOutcome, BakeError>) -> String {
    match result {
        Ok(outcome) => format!("ok: {}", outcome.image.name),
        Err(e) => {
            let text = e.to_string();
            let cut: String = text.chars().take(110).collect();
            if cut.len() < text.len() {
                format!("{cut}…")
            } else {
                cut
            }
        }
    }
}

/// From the start of the clean-up phase to the last event, on the simulated clock.
fn cleanup_time(events: &[Event]) -> Duration {
    let start = events
        .iter()
        .find(|e| e.phase == "cleanup" && e.message.ends_with("phase started"))
        .map(|e| e.at);
    match (start, events.last()) {
        (Some(start), Some(last)) => between(start, last.at),
        _ => Duration::ZERO,
    }
}

fn span(events: &[Event]) -> Duration {
    match (events.first(), events.last()) {
        (Some(first), Some(last)) => between(first.at, last.at),
        _ => Duration::ZERO,
    }
}

fn between(from: Timestamp, to: Timestamp) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// Every resource of the run still there, except the kept image and its snapshots.
async fn left_behind(cloud: &Cloud, run_id: &str, kept: Option<&str>) -> Vec<String> {
    let run = Tags::from([(TAG_RUN_ID.to_string(), run_id.to_string())]);
    let mut left = Vec::new();
    let filter = InstanceFilter {
        tags: run.clone(),
        exclude_terminated: true,
        ..InstanceFilter::default()
    };
    let instances = cloud.compute.describe_instances(&filter).await.unwrap();
    left.extend(instances.into_iter().map(|i| i.id.to_string()));
    let groups = cloud.compute.describe_security_groups(&[], &run).await;
    left.extend(groups.unwrap().into_iter().map(|g| g.id.to_string()));
    let images = ImageFilter {
        owners: vec!["self".into()],
        tags: run.clone(),
        ..ImageFilter::default()
    };
    let images = cloud.compute.describe_images(&images).await.unwrap();
    let mut kept_snapshots = Vec::new();
    for image in images
        .iter()
        .filter(|i| i.state != ImageState::Deregistered)
    {
        if Some(image.id.as_str()) == kept {
            kept_snapshots.extend(
                image
                    .block_devices
                    .iter()
                    .filter_map(|d| d.snapshot_id.clone()),
            );
        } else {
            left.push(image.id.to_string());
        }
    }
    let snapshots = cloud.compute.describe_snapshots(&[], &run).await.unwrap();
    left.extend(
        snapshots
            .into_iter()
            .filter(|s| !kept_snapshots.contains(&s.id))
            .map(|s| s.id.to_string()),
    );
    left
}

fn print_table(rows: &[Row]) {
    println!("| fault | outcome | resources left | clean-up (sim) | bake total (sim) |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.fault,
            row.outcome.replace('|', "/"),
            row.left.len(),
            humantime::format_duration(row.cleanup),
            humantime::format_duration(row.total),
        );
    }
}
