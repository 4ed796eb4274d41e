//! The view one port call gets of the state: the region it acts on, the account-wide
//! counters and faults, and the virtual time it acts at.

use crate::error::{CloudError, ErrorKind};
use crate::types::Timestamp;

use super::faults::Faults;
use super::model::{Meta, Region, State};

pub struct World<'a> {
    pub now: Timestamp,
    pub region: &'a str,
    pub meta: &'a mut Meta,
    pub faults: &'a mut Faults,
    pub r: &'a mut Region,
}

impl State {
    /// The world of one region, `None` when the account has no such region.
    pub fn world<'a>(&'a mut self, region: &'a str) -> Option<World<'a>> {
        let now = self.meta.now;
        Some(World {
            now,
            region,
            meta: &mut self.meta,
            faults: &mut self.faults,
            r: self.regions.get_mut(region)?,
        })
    }
}

impl World<'_> {
    /// An error as AWS would give it, with this region filled in.
    pub fn err(
        &self,
        kind: ErrorKind,
        operation: &'static str,
        resource: impl Into<String>,
        code: &str,
        message: impl Into<String>,
    ) -> CloudError {
        CloudError::new(kind, operation, resource, self.region, code, message)
    }

    pub fn not_found(
        &self,
        operation: &'static str,
        resource: impl Into<String>,
        code: &str,
    ) -> CloudError {
        let resource = resource.into();
        let message = format!("{resource} does not exist in {}", self.region);
        self.err(ErrorKind::NotFound, operation, resource, code, message)
    }
}

/// Whether a name matches an EC2 filter pattern (`*` any run, `?` one character).
pub fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// Every pair of `want` is among `have`.
pub fn tags_match(have: &crate::types::Tags, want: &crate::types::Tags) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}
