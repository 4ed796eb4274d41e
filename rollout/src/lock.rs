//! One rollout per group at a time, visible in AWS: a group tag `kiln:lock` holding the
//! owner, the run id and the expiry. Tags are not compare-and-swap, so a lock is written,
//! then read back: the last writer wins and the loser sees it (PITFALLS 6).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kiln_cloud::{Cloud, Group, Tags, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::RolloutError;

/// The group tag that holds the lock.
pub const LOCK_TAG: &str = "kiln:lock";

/// Time a lock outlives the deadlines it was taken for, so a slow final step (release,
/// restoring max size) does not race a takeover.
pub const LOCK_MARGIN: Duration = Duration::from_secs(10 * 60);

/// Who holds a group's lock, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub owner: String,
    pub run_id: String,
    pub expires: Timestamp,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (run {}, until {})",
            self.owner,
            self.run_id,
            self.expires.to_rfc3339()
        )
    }
}

impl LockHolder {
    /// The tag value: `owner=…;run=…;expires=RFC 3339`.
    pub fn to_tag(&self) -> String {
        format!(
            "owner={};run={};expires={}",
            self.owner,
            self.run_id,
            self.expires.to_rfc3339()
        )
    }

    /// Reads a tag value; `None` for anything that is not a lock kiln wrote.
    pub fn from_tag(value: &str) -> Option<Self> {
        let mut owner = None;
        let mut run = None;
        let mut expires = None;
        for part in value.split(';') {
            let (key, val) = part.split_once('=')?;
            match key {
                "owner" => owner = Some(val.to_string()),
                "run" => run = Some(val.to_string()),
                "expires" => expires = DateTime::parse_from_rfc3339(val).ok(),
                _ => {}
            }
        }
        Some(Self {
            owner: owner?,
            run_id: run?,
            expires: expires?.with_timezone(&Utc),
        })
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires <= now
    }
}

/// The lock a group's tags show, if any.
pub fn holder_of(tags: &Tags) -> Option<LockHolder> {
    tags.get(LOCK_TAG).and_then(|v| LockHolder::from_tag(v))
}

/// A live lock held by someone other than `run_id` refuses the rollout.
pub fn check_free(
    group: &Group,
    region: &str,
    run_id: &str,
    now: Timestamp,
) -> Result<Option<LockHolder>, RolloutError> {
    match holder_of(&group.tags) {
        Some(h) if h.run_id != run_id && !h.is_expired(now) => Err(RolloutError::Locked {
            group: group.name.clone(),
            region: region.to_string(),
            holder: h,
        }),
        other => Ok(other),
    }
}

/// Takes the group's lock for `me`. An expired lock is taken over: it is returned, so
/// the caller can warn whoever watches.
pub async fn acquire(
    cloud: &Cloud,
    group: &str,
    me: &LockHolder,
) -> Result<Option<LockHolder>, RolloutError> {
    let now = cloud.clock.now();
    let current = describe(cloud, group).await?;
    let taken_over =
        check_free(&current, &cloud.region, &me.run_id, now)?.filter(|old| old.run_id != me.run_id);

    let tags = Tags::from([(LOCK_TAG.to_string(), me.to_tag())]);
    cloud.scaling.put_group_tags(group, &tags).await?;

    // Read back: if another run wrote after us, its tag is the one that stayed.
    let after = describe(cloud, group).await?;
    match holder_of(&after.tags) {
        Some(h) if h.run_id == me.run_id => Ok(taken_over),
        Some(h) => Err(RolloutError::Locked {
            group: group.to_string(),
            region: cloud.region.clone(),
            holder: h,
        }),
        None => Err(RolloutError::Invalid {
            what: format!("lock tag {LOCK_TAG} on group {group}"),
            region: cloud.region.clone(),
            detail: "written but not read back; check the group's tag permissions".into(),
        }),
    }
}

/// Releases the lock if it is still ours; a lock another run took over is left alone.
pub async fn release(cloud: &Cloud, group: &str, me: &LockHolder) -> Result<(), RolloutError> {
    let current = describe(cloud, group).await?;
    match holder_of(&current.tags) {
        Some(h) if h.run_id == me.run_id => {
            cloud
                .scaling
                .delete_group_tags(group, &[LOCK_TAG.to_string()])
                .await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

pub(crate) async fn describe(cloud: &Cloud, group: &str) -> Result<Group, RolloutError> {
    let mut groups = cloud.scaling.describe_groups(&[group.to_string()]).await?;
    groups.pop().ok_or_else(|| RolloutError::Invalid {
        what: format!("Auto Scaling group {group}"),
        region: cloud.region.clone(),
        detail: "not found; check the name in the pipeline file and the region".into(),
    })
}
