//! Where the CLI keeps its run journals, and what they say about runs (for `kiln gc`).
//!
//! One rule, in order: `--state-dir DIR` (or `KILN_STATE_DIR`) gives `DIR/journal`; with
//! `--sim STATE` the journals sit beside the state file, in `STATE.journal/`, so that
//! each simulated account has its own; otherwise `$XDG_STATE_HOME/kiln/journal`, else
//! `~/.local/state/kiln/journal`.

use std::path::PathBuf;

use anyhow::Context;
use kiln_cloud::Timestamp;

use kiln_builder::sweep::RunState;
use kiln_builder::{FileJournal, Record, RunJournal};

use crate::cli::GlobalArgs;

/// The folder of run journals for these options.
pub fn dir(global: &GlobalArgs) -> PathBuf {
    if let Some(dir) = &global.state_dir {
        return dir.join("journal");
    }
    if let Some(state) = &global.sim {
        let mut name = state.file_name().unwrap_or_default().to_os_string();
        name.push(".journal");
        return state.with_file_name(name);
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("kiln").join("journal")
}

/// A new journal for the run, in [`dir`].
pub fn create(global: &GlobalArgs, run_id: &str, at: Timestamp) -> anyhow::Result<FileJournal> {
    let dir = dir(global);
    FileJournal::create(&dir, run_id, at).with_context(|| {
        format!(
            "cannot write the run journal in {}; pass --state-dir DIR (or set KILN_STATE_DIR) \
             to keep it elsewhere",
            dir.display()
        )
    })
}

/// Marks the run finished with `outcome`; a journal that cannot be closed stays open
/// for `kiln gc`, with a warning, and does not fail the run.
pub fn close(journal: FileJournal, at: Timestamp, outcome: &str) {
    let path = journal.path().display().to_string();
    if let Err(e) = journal.finish(at, outcome) {
        tracing::warn!(journal = %path, error = %e, "cannot close the run journal");
    }
}

/// What an unsuccessful run (`what`: bake, rollout) removed, what it kept as its result
/// and what it left, for the person or the CI log. Only what is gone is called removed.
/// Resources outside `region` name their own.
pub fn cleanup_text(journal: &FileJournal, what: &str, outcome: &str, region: &str) -> String {
    let list = |records: Vec<Record>| {
        records
            .iter()
            .map(|r| match r.region == region {
                true => format!("{} {}", r.kind, r.id),
                false => format!("{} {} in {}", r.kind, r.id, r.region),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (removed, kept) = (journal.removed(), journal.kept());
    let mut text = match (removed.is_empty(), kept.is_empty()) {
        (true, true) => {
            format!("kiln: {what} {outcome}; it had created nothing to remove in {region}\n")
        }
        (true, false) => format!("kiln: {what} {outcome}; it removed nothing in {region}\n"),
        (false, _) => {
            let list = list(removed);
            format!("kiln: {what} {outcome}; cleaned up in {region}: removed {list}\n")
        }
    };
    if !kept.is_empty() {
        text.push_str(&format!(
            "kiln: kept in {region} as the {what}'s result: {}\n",
            list(kept)
        ));
    }
    let open = journal.open_records();
    if !open.is_empty() {
        text.push_str(&format!(
            "kiln: still present in {region}: {}; run `kiln gc` (journal {})\n",
            list(open),
            journal.path().display()
        ));
    }
    text
}

/// What the local journals say about `run_id`: over once finished or when its process
/// on this machine is gone; unknown without a journal, or for a process elsewhere.
pub fn run_state(journals: &[RunJournal], run_id: &str, host: &str) -> RunState {
    let Some(journal) = journals.iter().find(|j| j.run_id == run_id) else {
        return RunState::Unknown;
    };
    if journal.finished.is_some() {
        return RunState::Over;
    }
    if journal.host != host {
        return RunState::Unknown;
    }
    if process_alive(journal.pid) {
        RunState::Live
    } else {
        RunState::Over
    }
}

/// Whether a process with this id runs here. Linux shows every process under /proc, a
/// killed one that is not yet reaped as a zombie (`Z`, or `X` while it goes); a recycled
/// id makes a dead run look alive, which errs on the side of keeping.
fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x"))
}

#[cfg(test)]
mod tests {
    use kiln_builder::{Journal, ResourceKind};
    use kiln_cloud::Fate;

    use super::*;

    fn record(kind: ResourceKind, id: &str) -> Record {
        Record {
            kind,
            id: id.into(),
            region: "ap-northeast-1".into(),
            run_id: "ro-1".into(),
        }
    }

    #[test]
    fn the_summary_calls_removed_only_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::create(dir.path(), "ro-1", chrono::Utc::now()).unwrap();
        journal.record(record(ResourceKind::ListenerRule, "rule-1"));
        journal.record(record(ResourceKind::AutoScalingGroup, "web-v3"));
        journal.record(record(ResourceKind::TargetGroup, "tg-v3"));
        journal.forget(ResourceKind::ListenerRule, "rule-1", Fate::Removed);
        journal.forget(ResourceKind::AutoScalingGroup, "web-v3", Fate::Kept);
        let text = cleanup_text(&journal, "rollout", "failed", "ap-northeast-1");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "kiln: rollout failed; cleaned up in ap-northeast-1: removed listener rule rule-1",
                "kiln: kept in ap-northeast-1 as the rollout's result: auto scaling group web-v3",
                &format!(
                    "kiln: still present in ap-northeast-1: target group tg-v3; run `kiln gc` \
                     (journal {})",
                    journal.path().display()
                ),
            ]
        );

        let only_kept = FileJournal::create(dir.path(), "ro-2", chrono::Utc::now()).unwrap();
        only_kept.record(record(ResourceKind::AutoScalingGroup, "web-v4"));
        only_kept.forget(ResourceKind::AutoScalingGroup, "web-v4", Fate::Kept);
        let text = cleanup_text(&only_kept, "rollout", "failed", "ap-northeast-1");
        assert!(
            text.starts_with("kiln: rollout failed; it removed nothing in ap-northeast-1\n"),
            "{text}"
        );
    }
}
