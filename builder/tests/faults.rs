//! The fault suite: every fault a bake meets, one row each, with its outcome, what is
//! left in the account afterwards, in every region (always nothing but the kept image and
//! copies) and how long the clean-up took on the simulated clock. `cargo test -p
//! kiln-builder --test faults -- --nocapture` prints the table.
//!
//! The detailed assertions of each failure (error fields, journals) live in bake_sim.rs;
//! this suite holds every fault to the same three questions, adds the faults that had no
//! test there (an image that ends `failed`, a step whose output is cut but succeeds, an
//! interrupt in each phase, a copy that fails in one region), and measures. The rows
//! that distribute copy the image to the POC account's two other regions as one run
//! with the bake (its journal held until the copies are done).

mod support;

use std::time::Duration;

use kiln_builder::distribute::DistributionReport;
use kiln_builder::distribute::{distribute_baked, CopyLimits, CopyRun, DistributeSpec};
use kiln_builder::{bake_with_journal, plan, BakeError, BakeOutcome, MemoryJournal};
use kiln_cloud::progress::Event;
use kiln_cloud::sim::SimAccount;
use kiln_cloud::{Account, ImageId, Level, Progress, Timestamp};
use tokio_util::sync::CancellationToken;

use support::*;

/// The POC account's regions besides its own, which the distributing rows copy to.
const COPY_REGIONS: [&str; 2] = ["ap-northeast-3", "us-west-2"];

/// Records every event and cancels the run at the first whose message contains
/// `cancel_on` (none when empty), noting when.
struct Watch {
    cancel_on: &'static str,
    cancel: CancellationToken,
    events: std::sync::Mutex<Vec<Event>>,
    cancelled_at: std::sync::Mutex<Option<Timestamp>>,
}

impl Progress for Watch {
    fn event(&self, event: Event) {
        if !self.cancel_on.is_empty()
            && event.message.contains(self.cancel_on)
            && !self.cancel.is_cancelled()
        {
            *self.cancelled_at.lock().unwrap() = Some(event.at);
            self.cancel.cancel();
        }
        self.events.lock().unwrap().push(event);
    }
}

/// What a row's run gave: the bake's result, and the distribution's when it distributes.
struct Ran {
    bake: Result<BakeOutcome, BakeError>,
    distribution: Option<DistributionReport>,
}

type Verdict = fn(&Ran) -> bool;

/// The bake was cancelled during `phase`.
fn cancelled_during(ran: &Ran, phase: &str) -> bool {
    matches!(&ran.bake, Err(BakeError::Cancelled { phase: p, .. }) if p == phase)
}

struct Case {
    fault: &'static str,
    faults: &'static str,
    /// Cancel at the first event with this text ("" for none).
    cancel_on: &'static str,
    expect: Verdict,
    /// Text the error (or, on success, a warning) must show.
    says: &'static str,
    /// Distribute the image to [`COPY_REGIONS`] after the bake, as one run.
    copies: bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            fault: "builder never boots",
            faults: "boot_fails: [{role: builder}]",
            cancel_on: "",
            expect: |r| matches!(&r.bake, Err(BakeError::InstanceEnded { .. })),
            says: "Server.InternalError",
            copies: false,
        },
        Case {
            fault: "agent never online",
            faults: "agent_never_online: [{role: builder}]",
            cancel_on: "",
            expect: |r| matches!(&r.bake, Err(BakeError::AgentNotOnline { .. })),
            says: "SSM agent",
            copies: false,
        },
        Case {
            fault: "invalid instance for 90 s after online",
            faults: "invalid_instance_after_online: 90s",
            cancel_on: "",
            expect: |r| r.bake.is_ok(),
            says: "",
            copies: false,
        },
        Case {
            fault: "invocation not found for 45 s after sending",
            faults: "invocation_hidden_for: 45s",
            cancel_on: "",
            expect: |r| r.bake.is_ok(),
            says: "",
            copies: false,
        },
        Case {
            fault: "step fails (exit 7)",
            faults: "steps: [{step: web/install-httpd, exit_code: 7, stderr: [no httpd]}]",
            cancel_on: "",
            expect: |r| matches!(&r.bake, Err(BakeError::StepFailed { exit_code: 7, .. })),
            says: "web/install-httpd",
            copies: false,
        },
        Case {
            fault: "step times out (cancelled)",
            faults: "step_hangs: [base/update-os]",
            cancel_on: "",
            expect: |r| matches!(&r.bake, Err(BakeError::StepTimedOut { .. })),
            says: "base/update-os",
            copies: false,
        },
        Case {
            fault: "output of 30,000 characters",
            faults: "step_output: [{step: base/update-os, chars: 30000}]",
            cancel_on: "",
            expect: |r| r.bake.is_ok(),
            says: "cut its output at 24,000",
            copies: false,
        },
        Case {
            fault: "AMI ends failed",
            faults: "image_fails: 'Client.SnapshotCreationFailure: volume snapshot failed'",
            cancel_on: "",
            expect: |r| matches!(&r.bake, Err(BakeError::ImageFailed { .. })),
            says: "SnapshotCreationFailure",
            copies: false,
        },
        Case {
            fault: "every operation throttled for 2 min",
            faults: "throttle_storm: {after: 1m, lasts: 2m}",
            cancel_on: "",
            expect: |r| r.bake.is_ok(),
            says: "",
            copies: false,
        },
        Case {
            fault: "interrupt: builder phase",
            faults: "",
            cancel_on: "builder instance launched",
            expect: |r| cancelled_during(r, "builder"),
            says: "cancelled during builder",
            copies: false,
        },
        Case {
            fault: "interrupt: steps phase",
            faults: "",
            cancel_on: "build step started",
            expect: |r| cancelled_during(r, "steps"),
            says: "cancelled during steps",
            copies: false,
        },
        Case {
            fault: "interrupt: image phase",
            faults: "",
            cancel_on: "image poc-web-base-",
            expect: |r| cancelled_during(r, "image"),
            says: "cancelled during image",
            copies: false,
        },
        Case {
            fault: "interrupt: test phase",
            faults: "",
            cancel_on: "test instance launched",
            expect: |r| cancelled_during(r, "test"),
            says: "cancelled during test",
            copies: false,
        },
        Case {
            fault: "one region's copy fails",
            faults: "copy_fails: [{region: us-west-2, reason: KMS key disabled}]",
            cancel_on: "",
            expect: |r| {
                let report = r.distribution.as_ref();
                let failed: Vec<String> = report
                    .map(|d| d.failed().iter().map(|f| f.region.clone()).collect())
                    .unwrap_or_default();
                r.bake.is_ok() && report.is_some_and(|d| !d.cancelled) && failed == ["us-west-2"]
            },
            says: "KMS key disabled",
            copies: true,
        },
        Case {
            fault: "interrupt: distribution phase",
            faults: "",
            cancel_on: "copy ami-",
            expect: |r| r.distribution.as_ref().is_some_and(|d| d.cancelled),
            says: "removed",
            copies: true,
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
    let account = account_with_faults(case.faults);
    let cloud = account.region(REGION).await.expect("region");
    let plan = plan(&cloud, &spec(fixture_rendered())).await.expect("plan");
    let watch = Watch {
        cancel_on: case.cancel_on,
        cancel: CancellationToken::new(),
        events: std::sync::Mutex::new(Vec::new()),
        cancelled_at: std::sync::Mutex::new(None),
    };
    let journal = MemoryJournal::new();
    let bake = bake_with_journal(&cloud, &plan, &watch, &watch.cancel, &journal).await;
    let distribution = match (&bake, case.copies) {
        (Ok(outcome), true) => {
            let run = CopyRun {
                run_id: Some(plan.run_id.clone()),
                journal: &journal,
            };
            Some(distribute_run(&account, outcome, &watch, &run).await)
        }
        _ => None,
    };
    let ran = Ran { bake, distribution };
    let events = watch.events.into_inner().unwrap();
    let left = run_leftovers(&account, &plan.run_id, &kept(&ran)).await;

    let mut problems = Vec::new();
    if !(case.expect)(&ran) {
        problems.push(format!("unexpected outcome: {}", outcome_text(&ran)));
    }
    let shown = shown(&ran, &events);
    if !shown.contains(case.says) {
        problems.push(format!("does not say {:?}: {shown}", case.says));
    }
    if !left.is_empty() {
        problems.push(format!("left behind: {left:?}"));
    }
    let open = journal.open_records();
    if !open.is_empty() {
        problems.push(format!("still journaled: {open:?}"));
    }
    let cancelled_at = watch.cancelled_at.into_inner().unwrap();
    Row {
        fault: case.fault,
        outcome: outcome_text(&ran),
        left,
        cleanup: cleanup_time(&events, case.copies, cancelled_at),
        total: span(&events),
        problems,
    }
}

/// The image's distribution to [`COPY_REGIONS`] with a channel, as part of the run.
async fn distribute_run(
    account: &SimAccount,
    outcome: &BakeOutcome,
    watch: &Watch,
    run: &CopyRun<'_>,
) -> DistributionReport {
    let spec = DistributeSpec {
        regions: COPY_REGIONS.iter().map(|r| r.to_string()).collect(),
        channel: Some("poc".into()),
        ..DistributeSpec::default()
    };
    let limits = CopyLimits::default();
    distribute_baked(account, outcome, &spec, watch, &watch.cancel, &limits, run).await
}

/// What the run keeps: the image, and the copies of a distribution that was not
/// cancelled, in the regions where it succeeded.
fn kept(ran: &Ran) -> Vec<ImageId> {
    let Ok(outcome) = &ran.bake else {
        return Vec::new();
    };
    match &ran.distribution {
        None => vec![outcome.image.id.clone()],
        Some(d) if d.cancelled => Vec::new(),
        Some(d) => d
            .regions
            .iter()
            .filter(|r| r.is_ok())
            .filter_map(|r| r.image.clone())
            .collect(),
    }
}

/// What the run says: the error, the failed regions, or (on success) its warnings.
fn shown(ran: &Ran, events: &[Event]) -> String {
    match (&ran.bake, &ran.distribution) {
        (Err(e), _) => e.to_string(),
        (Ok(_), Some(d)) if !d.failed().is_empty() => {
            let failed = d.failed();
            let errors: Vec<String> = failed.iter().filter_map(|r| r.error.clone()).collect();
            errors.join("; ")
        }
        (Ok(_), _) => warnings(events),
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

fn outcome_text(ran: &Ran) -> String {
    let text = match (&ran.bake, &ran.distribution) {
        (Err(e), _) => e.to_string(),
        (Ok(outcome), None) => format!("ok: {}", outcome.image.name),
        (Ok(_), Some(d)) if d.cancelled => {
            "cancelled while copying: image and every copy removed".to_string()
        }
        (Ok(_), Some(d)) => {
            let failed = d.failed();
            let regions: Vec<&str> = failed.iter().map(|r| r.region.as_str()).collect();
            format!(
                "ok in {} of {} regions; failed: {}",
                d.regions.len() - failed.len(),
                d.regions.len(),
                regions.join(", ")
            )
        }
    };
    let cut: String = text.chars().take(110).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// From the start of the clean-up to the last event, on the simulated clock: the bake's
/// clean-up phase, or for a distribution the cancellation or the first region's failure.
fn cleanup_time(events: &[Event], copies: bool, cancelled_at: Option<Timestamp>) -> Duration {
    let failed = |e: &&Event| e.phase == "distribute" && e.level == Level::Error;
    let start = match copies {
        true => cancelled_at.or(events.iter().find(failed).map(|e| e.at)),
        false => events
            .iter()
            .find(|e| e.phase == "cleanup" && e.message.ends_with("phase started"))
            .map(|e| e.at),
    };
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

fn print_table(rows: &[Row]) {
    println!(
        "| fault | outcome | resources left (all regions) | clean-up (sim) | run total (sim) |"
    );
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
