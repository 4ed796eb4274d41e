//! The one error type every port returns.
//!
//! Decisions above the ports (retry a poll, treat "not found yet" as pending, refuse a
//! second refresh) are taken on [`ErrorKind`], never on message text. The adapter maps
//! AWS's typed errors to a kind; the simulated account produces the same kinds.

use std::fmt;

/// What kind of failure an operation met, as far as kiln's decisions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The named resource does not exist (or does not exist yet).
    NotFound,
    /// The request rate was exceeded and the client's own retries ran out.
    Throttled,
    /// SSM refused an instance: not registered with SSM, or not yet online.
    InvalidInstance,
    /// Something already running blocks this request (a refresh in progress, a lock).
    Conflict,
    /// The request itself was rejected as invalid.
    Validation,
    /// The caller lacks permission.
    AccessDenied,
    /// A service limit was reached.
    LimitExceeded,
    /// The backend does not implement this operation.
    Unsupported,
    /// Network or endpoint failure before AWS answered.
    Transport,
    /// Anything else AWS answered.
    Other,
}

/// A failed cloud operation: which operation, on what, in which region, and why.
#[derive(Debug, Clone, thiserror::Error)]
pub struct CloudError {
    pub kind: ErrorKind,
    /// The API operation, as AWS names it (`RunInstances`, `SendCommand`).
    pub operation: &'static str,
    /// The resource the call was about (an id, a name, or a short description).
    pub resource: String,
    pub region: String,
    /// AWS's own error code (`InvalidAMIID.NotFound`), or kiln's for the simulation.
    pub code: String,
    pub message: String,
}

impl CloudError {
    pub fn new(
        kind: ErrorKind,
        operation: &'static str,
        resource: impl Into<String>,
        region: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            operation,
            resource: resource.into(),
            region: region.into(),
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }

    /// True for failures that a later poll may not meet again.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transport)
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{op} {res} in {region}: {code}: {msg}",
            op = self.operation,
            res = self.resource,
            region = self.region,
            code = self.code,
            msg = self.message
        )
    }
}

pub type CloudResult<T> = Result<T, CloudError>;
