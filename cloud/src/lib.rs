//! kiln-cloud: kiln's domain types, the ports that mirror the AWS operations kiln uses,
//! and their two implementations: the AWS adapter (`aws`, on the official SDK) and the
//! simulated account (`sim`, in process, with virtual time).

pub mod error;
pub mod iam;
pub mod journal;
pub mod ports;
pub mod progress;
pub mod sim;
pub mod sweep;
pub mod throttle;
pub mod types;
pub mod yaml;

#[cfg(feature = "aws")]
pub mod aws;

pub use error::{CloudError, CloudResult, ErrorKind};
pub use journal::{Fate, Journal, MemoryJournal, Record, ResourceKind};
pub use ports::{
    Account, Clock, Cloud, Commands, Compute, LoadBalancing, Metrics, Parameters, Scaling,
};
pub use progress::{Event, Level, Progress};
pub use types::*;

/// SendCommand accepts at most this many instance ids in one call (PITFALLS 22).
pub const MAX_INSTANCES_PER_COMMAND: usize = 50;

/// SSM cuts the inline output of GetCommandInvocation at this many characters
/// (PITFALLS 19).
pub const SSM_OUTPUT_LIMIT: usize = 24_000;

/// The tag key every resource kiln creates carries: the build or rollout id.
pub const TAG_RUN_ID: &str = "kiln:run-id";
/// The tag key that says what a resource is to kiln (`builder`, `test`, `image`...).
pub const TAG_ROLE: &str = "kiln:role";
/// The tag key that names the kiln-managed thing (image name, group).
pub const TAG_MANAGED_BY: &str = "kiln:managed-by";
