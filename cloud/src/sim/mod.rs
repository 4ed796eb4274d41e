//! The simulated AWS account: every port of [`crate::ports`] implemented in process,
//! on virtual time, with its state in a file so that separate commands act on one account.
//!
//! It is to kiln what SQLite is to a database tool: the default backend of the examples
//! and of most tests, and the way every failure path is tested, through injected
//! [`Faults`]. It models what AWS documents (the control plane); scripts sent by Run
//! Command are syntax-checked, never executed.
//!
//! Time: callers run on a paused tokio clock (`start_paused = true`), so sleeps advance
//! virtual time instantly when everything is idle. The account's clock is the time saved
//! in its state plus the tokio time elapsed since it was opened; every port call first
//! advances the model to that time, one simulated second at a time.
//!
//! Files: the seed (YAML, see `examples/poc/account.yaml`) describes a new account; the
//! state file (JSON, written whole after every call: temporary file, then rename) is
//! the account from then on, locked by `<state>.lock` while open; a faults file (YAML,
//! see `examples/poc/faults/`) replaces the faults kept in the state.
//!
//! Modelled: images (create, copy, deregister, deprecation, launch permissions) and
//! snapshots; instances, subnets, security groups, launch templates and tags; the SSM
//! agent, Run Command (delays, statuses, timeouts, cancel, reboot by `exit 194`, rate
//! control, output cut at 24,000 characters) and Parameter Store; Auto Scaling groups,
//! standby, protection, suspended processes and instance refresh; target groups and
//! their health checks, draining, listeners, weighted forwarding and rules; CloudWatch
//! alarms on a traffic model. Not modelled: what scripts do (they are only syntax
//! checked), IAM permissions (every call is allowed), KMS keys, S3 output, scaling
//! policies, lifecycle hooks, warm pools, mixed instances policies, refresh bake time.

mod compute;
mod elb;
mod faults;
mod metrics;
mod model;
mod port;
mod refresh;
mod scaling;
mod seed;
mod ssm;
mod templates;
mod timeline;
mod world;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::{CloudError, CloudResult, ErrorKind};
use crate::ports::{Account, Cloud};
use crate::types::Timestamp;

pub use faults::{
    AgentFault, CopyFault, DegradedFault, Faults, ImageFault, OutputFault, StepFault, StormFault,
    ThrottleFault,
};
pub use refresh::{BATCH_DEADLINE_SECS, FAILED_REPLACEMENTS_LIMIT};
pub use timeline::{Frame, GroupFrame, ListenerFrame, TrafficFrame};

use model::State;

/// What can go wrong opening or saving the simulated account.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{origin}:{line}:{column}: {message}\n  hint: {hint}")]
    Parse {
        origin: String,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
    #[error("seed {origin}: {message}; fix the seed file")]
    Seed { origin: String, message: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state file {path} is not a simulated account's state ({message}); \
         delete it to start again from the seed"
    )]
    BadState { path: PathBuf, message: String },
    #[error(
        "state file {path} does not exist and no seed was given: \
         pass a seed file (such as examples/poc/account.yaml) to create it"
    )]
    NoSeed { path: PathBuf },
    #[error(
        "state file {path} is in use by another process (lock {lock}); \
         wait for it to finish, or stop it"
    )]
    Locked { path: PathBuf, lock: PathBuf },
}

impl SimError {
    fn parse(origin: &str, e: &serde_yaml_ng::Error) -> Self {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let message = crate::yaml::without_location(e);
        Self::Parse {
            origin: origin.to_string(),
            line,
            column,
            hint: crate::yaml::hint(&message).to_string(),
            message,
        }
    }
}

/// The simulated account. Cheap to share: ports hold it by `Arc`.
#[derive(Clone)]
pub struct SimAccount {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimAccount")
            .field("file", &self.inner.file.as_ref().map(|f| &f.path))
            .finish()
    }
}

struct Inner {
    live: Mutex<Live>,
    file: Option<StateFile>,
    opened_at: tokio::time::Instant,
    base: Timestamp,
    account_id: String,
    home_region: String,
}

struct Live {
    state: State,
    timeline: Vec<Frame>,
}

struct StateFile {
    path: PathBuf,
    /// Held open for its exclusive lock; released when the account is dropped.
    _lock: File,
}

impl SimAccount {
    /// Opens the account kept in `state`, creating it from `seed` when it does not exist.
    /// A `faults` file replaces the faults kept in the state.
    pub fn open(
        state: &Path,
        seed: Option<&Path>,
        faults: Option<&Path>,
    ) -> Result<Self, SimError> {
        let lock = lock(state)?;
        let mut st = if state.exists() {
            load(state)?
        } else {
            let seed = seed.ok_or_else(|| SimError::NoSeed {
                path: state.to_path_buf(),
            })?;
            let text = read(seed)?;
            let origin = seed.display().to_string();
            seed::Seed::parse(&text, &origin)?.into_state(&origin)?
        };
        if let Some(path) = faults {
            let (text, origin) = (read(path)?, path.display().to_string());
            let mut f = Faults::from_yaml_named(&text, &origin)?;
            f.check(&st, &text, &origin)?;
            f.anchor(st.meta.now);
            st.faults = f;
        }
        let file = StateFile {
            path: state.to_path_buf(),
            _lock: lock,
        };
        let account = Self::new(st, Some(file));
        account.save_now()?;
        Ok(account)
    }

    /// An in-memory account from a seed's text (tests).
    pub fn from_seed_str(yaml: &str) -> Result<Self, SimError> {
        let state = seed::Seed::parse(yaml, "<seed>")?.into_state("<seed>")?;
        Ok(Self::new(state, None))
    }

    fn new(state: State, file: Option<StateFile>) -> Self {
        let inner = Inner {
            base: state.meta.now,
            account_id: state.meta.account_id.clone(),
            home_region: state.meta.home_region.clone(),
            live: Mutex::new(Live {
                state,
                timeline: Vec::new(),
            }),
            file,
            opened_at: tokio::time::Instant::now(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Replaces the faults (tests).
    pub fn set_faults(&self, mut faults: Faults) {
        let mut live = self.inner.lock();
        faults.anchor(live.state.meta.now);
        live.state.faults = faults;
    }

    /// The faults as they stand (throttle counts consumed, step faults used up).
    pub fn faults(&self) -> Faults {
        self.inner.lock().state.faults.clone()
    }

    /// The whole state, advanced to now (to compare before and after).
    pub fn snapshot_json(&self) -> serde_json::Value {
        let mut live = self.inner.lock();
        self.inner.advance(&mut live);
        serde_json::to_value(&live.state).expect("the state serialises")
    }

    /// Every moment something visible changed since the account was opened.
    pub fn timeline(&self) -> Vec<Frame> {
        let mut live = self.inner.lock();
        self.inner.advance(&mut live);
        live.timeline.clone()
    }

    /// The account's virtual time.
    pub fn now(&self) -> Timestamp {
        self.inner.now()
    }

    /// Advances the model to now and writes the state file (no-op in memory).
    pub fn save_now(&self) -> Result<(), SimError> {
        let mut live = self.inner.lock();
        self.inner.advance(&mut live);
        self.inner.save(&live.state)
    }
}

fn read(path: &Path) -> Result<String, SimError> {
    std::fs::read_to_string(path).map_err(|source| SimError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn load(path: &Path) -> Result<State, SimError> {
    let text = read(path)?;
    serde_json::from_str(&text).map_err(|e| SimError::BadState {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    state.with_file_name(name)
}

/// How long opening waits for another process to let go of the state file before it
/// refuses: long enough for a command that is just finishing (or a process between fork
/// and exec that inherited the lock) to close it, short enough that a long-running
/// command holding the account is reported at once, as a database's busy timeout does.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// Pause between two tries while waiting for the lock.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(25);

/// Takes the exclusive lock beside the state file, refusing when another process keeps
/// it longer than [`LOCK_WAIT`]. Opening is synchronous (it runs before any async work of
/// a command), so the wait is a plain sleep.
fn lock(state: &Path) -> Result<File, SimError> {
    let started = std::time::Instant::now();
    loop {
        match try_lock(state) {
            Err(SimError::Locked { .. }) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(LOCK_RETRY);
            }
            other => return other,
        }
    }
}

fn try_lock(state: &Path) -> Result<File, SimError> {
    let path = lock_path(state);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SimError::Write {
            path: path.clone(),
            source,
        })?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(SimError::Locked {
            path: state.to_path_buf(),
            lock: path,
        }),
        Err(fs4::TryLockError::Error(source)) => Err(SimError::Write { path, source }),
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Live> {
        // A panic while holding the lock leaves a usable state: every mutation is whole.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.opened_at);
        self.base + model::dur(elapsed)
    }

    /// Processes every simulated second up to now, recording the timeline.
    fn advance(&self, live: &mut Live) {
        let to = self.now();
        let one = chrono::Duration::seconds(1);
        while live.state.meta.now + one <= to {
            live.state.meta.now += one;
            let at = live.state.meta.now;
            let regions: Vec<String> = live.state.regions.keys().cloned().collect();
            for region in regions {
                let mut w = live.state.world(&region).expect("listed above");
                compute::step(&mut w);
                ssm::step(&mut w);
                elb::step(&mut w);
                scaling::step(&mut w);
                metrics::step(&mut w);
                record(&mut live.timeline, timeline::frame(w.r, &region, at));
            }
        }
    }

    fn save(&self, state: &State) -> Result<(), SimError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let path = &file.path;
        let write_err = |source| SimError::Write {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_vec(state).expect("the state serialises");
        // Write beside, then rename: a killed process leaves the old or the new state whole.
        let (tmp, mut out) = temp_beside(path).map_err(write_err)?;
        let written =
            std::io::Write::write_all(&mut out, &text).and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            // A full disk or a read-only target leaves no half-written file behind.
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(write_err)
    }
}

/// A new file beside `path` (same file system, so the rename is atomic), named after it
/// and this process so that no other writer uses it.
fn temp_beside(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    Ok((tmp.clone(), File::create(&tmp)?))
}

fn record(timeline: &mut Vec<Frame>, frame: Frame) {
    let last = timeline.iter().rev().find(|f| f.region == frame.region);
    if last.is_none_or(|l| !timeline::same(l, &frame)) {
        timeline.push(frame);
    }
}

#[async_trait]
impl Account for SimAccount {
    fn home_region(&self) -> &str {
        &self.inner.home_region
    }

    fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    async fn region(&self, name: &str) -> CloudResult<Cloud> {
        if !self.inner.lock().state.regions.contains_key(name) {
            let msg = "the simulated account has no such region; add it to the seed";
            let e = ErrorKind::NotFound;
            return Err(CloudError::new(
                e,
                "DescribeRegions",
                name,
                name,
                "InvalidRegion",
                msg,
            ));
        }
        Ok(port::cloud(self.inner.clone(), name))
    }

    async fn regions(&self) -> CloudResult<Vec<String>> {
        // The state's regions are a BTreeMap: already sorted.
        Ok(self.inner.lock().state.regions.keys().cloned().collect())
    }

    fn is_simulated(&self) -> bool {
        true
    }
}
