//! The journal on disk: one JSON-lines file per run, appended and synced record by record.
//!
//! A bake killed with SIGKILL cannot clean up; what it made must already be on disk the
//! moment each id exists (PITFALLS 11). Each run writes `<dir>/<run id>.jsonl`: a
//! `started` line (process id and host, so that a sweep can tell a live run from a dead
//! one), a `created` line per resource, a `removed` line per resource gone or a `kept`
//! line per resource kept as the run's result, and a `finished` line. Every line is written with one `write` call and synced before the
//! bake goes on, so a reader sees whole lines, save perhaps a torn last one, which it
//! skips. A finished run with nothing left open deletes its file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiln_cloud::Timestamp;
use serde::{Deserialize, Serialize};

use crate::journal::{Fate, Journal, Record, ResourceKind};

/// The extension of journal files.
pub const JOURNAL_EXTENSION: &str = "jsonl";

/// One line of a journal file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    Started {
        run_id: String,
        pid: u32,
        host: String,
        at: Timestamp,
    },
    Created(Record),
    Removed {
        kind: ResourceKind,
        id: String,
    },
    /// Kept on purpose as the run's result: not a leftover, and not removed either.
    Kept {
        kind: ResourceKind,
        id: String,
    },
    Finished {
        at: Timestamp,
        outcome: String,
    },
}

/// What a journal file says about its run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunJournal {
    pub path: PathBuf,
    pub run_id: String,
    pub pid: u32,
    pub host: String,
    pub started_at: Timestamp,
    /// Created and not removed, in creation order.
    pub open: Vec<Record>,
    /// The outcome, once the run finished.
    pub finished: Option<String>,
}

/// A journal written to `<dir>/<run id>.jsonl`.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    file: Mutex<File>,
    open: Mutex<Vec<Record>>,
    removed: Mutex<Vec<Record>>,
    kept: Mutex<Vec<Record>>,
}

impl FileJournal {
    /// Creates the run's journal (and `dir`), and writes its `started` line. Fails when
    /// the file cannot be written: a bake must not start without its journal.
    pub fn create(dir: &Path, run_id: &str, at: Timestamp) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{run_id}.{JOURNAL_EXTENSION}"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let journal = Self {
            path,
            file: Mutex::new(file),
            open: Mutex::new(Vec::new()),
            removed: Mutex::new(Vec::new()),
            kept: Mutex::new(Vec::new()),
        };
        journal.append(&Entry::Started {
            run_id: run_id.to_string(),
            pid: std::process::id(),
            host: host_name(),
            at,
        })?;
        // The new file's name must survive a crash too.
        File::open(dir)?.sync_all()?;
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this process removed, in order.
    pub fn removed(&self) -> Vec<Record> {
        self.removed.lock().expect("journal lock").clone()
    }

    /// What this process made and kept as the run's result, in order.
    pub fn kept(&self) -> Vec<Record> {
        self.kept.lock().expect("journal lock").clone()
    }

    /// What is still open (made and not removed).
    pub fn open_records(&self) -> Vec<Record> {
        self.open.lock().expect("journal lock").clone()
    }

    /// Writes the `finished` line; with nothing left open the file is deleted, since
    /// there is nothing for a sweep to learn from it.
    pub fn finish(self, at: Timestamp, outcome: &str) -> std::io::Result<()> {
        self.append(&Entry::Finished {
            at,
            outcome: outcome.to_string(),
        })?;
        if self.open_records().is_empty() {
            std::fs::remove_file(&self.path)?;
        }
        Ok(())
    }

    fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().expect("journal lock");
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Forgets any fate `kind` `id` had: a resource recorded again (an image the bake kept,
    /// then held by its distribution) is open again, and its last fate is the one said.
    fn unsettle(&self, kind: ResourceKind, id: &str) {
        for closed in [&self.removed, &self.kept] {
            let mut closed = closed.lock().expect("journal lock");
            closed.retain(|r| !(r.kind == kind && r.id == id));
        }
    }

    fn append_or_warn(&self, entry: &Entry) {
        if let Err(e) = self.append(entry) {
            tracing::error!(
                journal = %self.path.display(),
                error = %e,
                "cannot write the journal; `kiln gc` will find this run's resources by tag"
            );
        }
    }
}

impl Journal for FileJournal {
    fn record(&self, record: Record) {
        self.append_or_warn(&Entry::Created(record.clone()));
        self.unsettle(record.kind, &record.id);
        self.open.lock().expect("journal lock").push(record);
    }

    fn forget(&self, kind: ResourceKind, id: &str, fate: Fate) {
        let named = id.to_string();
        let (entry, closed) = match fate {
            Fate::Removed => (Entry::Removed { kind, id: named }, &self.removed),
            Fate::Kept => (Entry::Kept { kind, id: named }, &self.kept),
        };
        self.append_or_warn(&entry);
        let mut open = self.open.lock().expect("journal lock");
        if let Some(at) = open.iter().position(|r| r.kind == kind && r.id == id) {
            let record = open.remove(at);
            self.unsettle(kind, id);
            closed.lock().expect("journal lock").push(record);
        }
    }
}

/// Reads one journal file. A line that does not parse (torn by a crash mid-write) is
/// skipped; a file without a `started` line is not a journal.
pub fn read_journal(path: &Path) -> std::io::Result<RunJournal> {
    let reader = BufReader::new(File::open(path)?);
    let mut journal: Option<RunJournal> = None;
    for line in reader.lines() {
        let Ok(entry) = serde_json::from_str::<Entry>(&line?) else {
            continue;
        };
        apply(&mut journal, path, entry);
    }
    journal.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} has no `started` line", path.display()),
        )
    })
}

fn apply(journal: &mut Option<RunJournal>, path: &Path, entry: Entry) {
    match (entry, journal.as_mut()) {
        (
            Entry::Started {
                run_id,
                pid,
                host,
                at,
            },
            _,
        ) => {
            *journal = Some(RunJournal {
                path: path.to_path_buf(),
                run_id,
                pid,
                host,
                started_at: at,
                open: Vec::new(),
                finished: None,
            });
        }
        (Entry::Created(record), Some(j)) => j.open.push(record),
        (Entry::Removed { kind, id } | Entry::Kept { kind, id }, Some(j)) => {
            j.open.retain(|r| !(r.kind == kind && r.id == id))
        }
        (Entry::Finished { outcome, .. }, Some(j)) => j.finished = Some(outcome),
        (_, None) => {}
    }
}

/// Every journal in `dir` (none when it does not exist); unreadable files are logged.
pub fn read_journals(dir: &Path) -> Vec<RunJournal> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut journals: Vec<RunJournal> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == JOURNAL_EXTENSION))
        .filter_map(|p| match read_journal(&p) {
            Ok(j) => Some(j),
            Err(e) => {
                tracing::warn!(journal = %p.display(), error = %e, "unreadable journal skipped");
                None
            }
        })
        .collect();
    journals.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    journals
}

/// This machine's name, to tell whether a journal's process id means anything here.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: ResourceKind, id: &str) -> Record {
        Record {
            kind,
            id: id.into(),
            region: "ap-northeast-1".into(),
            run_id: "bake-1".into(),
        }
    }

    fn now() -> Timestamp {
        chrono::Utc::now()
    }

    #[test]
    fn a_killed_run_leaves_what_it_made_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::create(dir.path(), "bake-1", now()).unwrap();
        journal.record(record(ResourceKind::SecurityGroup, "sg-1"));
        journal.record(record(ResourceKind::Instance, "i-1"));
        journal.forget(ResourceKind::Instance, "i-1", Fate::Removed);
        journal.record(record(ResourceKind::Instance, "i-2"));
        journal.record(record(ResourceKind::Image, "ami-1"));
        journal.forget(ResourceKind::Image, "ami-1", Fate::Kept);
        let path = journal.path().to_path_buf();
        // A crash mid-write leaves a torn last line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"event\":\"crea")
            .unwrap();
        drop(journal);

        let read = read_journal(&path).unwrap();
        assert_eq!(read.run_id, "bake-1");
        assert_eq!(read.pid, std::process::id());
        assert!(read.finished.is_none());
        let open: Vec<_> = read.open.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(open, ["sg-1", "i-2"]);
        assert_eq!(read_journals(dir.path()).len(), 1);
    }

    #[test]
    fn a_clean_finish_deletes_the_file_and_leftovers_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let clean = FileJournal::create(dir.path(), "bake-clean", now()).unwrap();
        clean.record(record(ResourceKind::Instance, "i-1"));
        clean.forget(ResourceKind::Instance, "i-1", Fate::Removed);
        clean.record(record(ResourceKind::Image, "ami-1"));
        clean.forget(ResourceKind::Image, "ami-1", Fate::Kept);
        let removed: Vec<_> = clean.removed().into_iter().map(|r| r.id).collect();
        assert_eq!(removed, ["i-1"], "the kept image is not called removed");
        let kept: Vec<_> = clean.kept().into_iter().map(|r| r.id).collect();
        assert_eq!(kept, ["ami-1"]);
        let clean_path = clean.path().to_path_buf();
        clean.finish(now(), "ok").unwrap();
        assert!(!clean_path.exists());

        let left = FileJournal::create(dir.path(), "bake-left", now()).unwrap();
        left.record(record(ResourceKind::SecurityGroup, "sg-9"));
        let left_path = left.path().to_path_buf();
        left.finish(now(), "failed").unwrap();
        let read = read_journal(&left_path).unwrap();
        assert_eq!(read.finished.as_deref(), Some("failed"));
        assert_eq!(read.open.len(), 1);
    }

    #[test]
    fn an_image_kept_then_held_again_and_removed_is_only_removed() {
        // A bake keeps its image, its distribution holds it again, and an interruption
        // removes it: the summary must not call kept what it removed.
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::create(dir.path(), "bake-1", now()).unwrap();
        journal.record(record(ResourceKind::Image, "ami-1"));
        journal.forget(ResourceKind::Image, "ami-1", Fate::Kept);
        journal.record(record(ResourceKind::Image, "ami-1"));
        assert!(
            journal.kept().is_empty(),
            "held again, it is open, not kept"
        );
        journal.forget(ResourceKind::Image, "ami-1", Fate::Removed);
        let removed: Vec<_> = journal.removed().into_iter().map(|r| r.id).collect();
        assert_eq!(removed, ["ami-1"]);
        assert!(journal.kept().is_empty(), "{:?}", journal.kept());
        assert!(journal.open_records().is_empty());
    }

    #[test]
    fn a_run_id_cannot_open_a_second_journal() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FileJournal::create(dir.path(), "bake-1", now()).unwrap();
        assert!(FileJournal::create(dir.path(), "bake-1", now()).is_err());
    }
}
