//! `status`: what a group is doing and running, for `kiln status` and for an operator
//! in an incident: the lock, the running and recent refreshes, each instance's template
//! version and image.

use kiln_cloud::{
    Cloud, Group, GroupTemplate, ImageId, InstanceFilter, InstanceRefresh, TargetState,
};
use serde::{Deserialize, Serialize};

use crate::bluegreen::TAG_LIVE;
use crate::error::RolloutError;
use crate::lock::{self, LockHolder};
use crate::run::{TAG_PREVIOUS_VERSION, TAG_TARGET};

/// Refreshes shown besides the running one: enough to see the last rollouts and their
/// rollbacks.
pub const RECENT_REFRESHES: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: String,
    pub region: String,
    pub target: Option<String>,
    /// Blue/green and A/B: whether this group serves its target (`kiln:live`); `None`
    /// for a group that was never part of one.
    #[serde(default)]
    pub live: Option<bool>,
    pub min_size: i32,
    pub max_size: i32,
    pub desired: i32,
    pub template: Option<GroupTemplate>,
    /// The version `rollback` returns to.
    pub previous_version: Option<i64>,
    /// How the last in-place fix stands, when a fix is the group's last rollout (which
    /// `rollback` cannot undo).
    #[serde(default)]
    pub last_fix: Option<String>,
    pub lock: Option<LockHolder>,
    pub lock_expired: bool,
    pub running: Option<InstanceRefresh>,
    /// Newest first.
    pub recent: Vec<InstanceRefresh>,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub id: String,
    pub availability_zone: String,
    pub lifecycle_state: String,
    pub health_status: String,
    pub version: Option<String>,
    pub image: Option<ImageId>,
    /// State in the group's first target group.
    pub target_health: Option<TargetState>,
}

/// Each instance with its version, image and target health.
async fn instances(cloud: &Cloud, g: &Group) -> Result<Vec<InstanceStatus>, RolloutError> {
    let ids: Vec<_> = g.instances.iter().map(|i| i.id.clone()).collect();
    let described = if ids.is_empty() {
        Vec::new()
    } else {
        let filter = InstanceFilter {
            ids,
            ..InstanceFilter::default()
        };
        cloud.compute.describe_instances(&filter).await?
    };
    let health = match g.target_group_arns.first() {
        Some(arn) => cloud.load_balancing.describe_target_health(arn).await?,
        None => Vec::new(),
    };
    Ok(g.instances
        .iter()
        .map(|i| InstanceStatus {
            id: i.id.to_string(),
            availability_zone: i.availability_zone.clone(),
            lifecycle_state: i.lifecycle_state.clone(),
            health_status: i.health_status.clone(),
            version: i.launch_template.as_ref().map(|t| t.version.clone()),
            image: described
                .iter()
                .find(|d| d.id == i.id)
                .map(|d| d.image_id.clone()),
            target_health: health
                .iter()
                .find(|h| h.target_id == i.id.as_str())
                .map(|h| h.state),
        })
        .collect())
}

/// Reads the group's state; changes nothing.
pub async fn status(cloud: &Cloud, group: &str) -> Result<GroupStatus, RolloutError> {
    let cloud = &crate::patient::patient(cloud);
    let g = lock::describe(cloud, group).await?;
    let refreshes = cloud.scaling.describe_instance_refreshes(group).await?;
    let instances = instances(cloud, &g).await?;
    let holder = lock::holder_of(&g.tags);
    let now = cloud.clock.now();
    Ok(GroupStatus {
        group: g.name.clone(),
        region: cloud.region.clone(),
        target: g.tags.get(TAG_TARGET).cloned(),
        live: g.tags.get(TAG_LIVE).map(|v| v == "true"),
        min_size: g.min_size,
        max_size: g.max_size,
        desired: g.desired_capacity,
        template: g.launch_template.clone(),
        previous_version: g
            .tags
            .get(TAG_PREVIOUS_VERSION)
            .and_then(|v| v.parse().ok()),
        last_fix: crate::fixed::last_fix(&g.tags).map(|(_, state)| state),
        lock_expired: holder.as_ref().is_some_and(|h| h.is_expired(now)),
        lock: holder,
        running: refreshes.iter().find(|r| !r.status.is_terminal()).cloned(),
        recent: refreshes.into_iter().take(RECENT_REFRESHES).collect(),
        instances,
    })
}
