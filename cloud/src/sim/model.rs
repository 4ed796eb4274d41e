//! The simulated account's state: every resource of every region, with the virtual times
//! at which its next transitions happen. The whole struct is what the state file holds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};

use super::faults::Faults;
use crate::types::*;

/// Everything the simulated account holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub meta: Meta,
    pub faults: Faults,
    pub regions: BTreeMap<String, Region>,
}

/// Account-wide facts and the sources of ids and randomness.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub account_id: String,
    pub home_region: String,
    /// The virtual time the model has been advanced to.
    pub now: Timestamp,
    /// IAM is global: instance profiles every region may use.
    pub instance_profiles: Vec<String>,
    pub rng: SimRng,
    /// Counter behind every generated id, so ids never repeat across regions.
    pub next_id: u64,
}

/// A reproducible random source: the seed and how many draws were taken so far, so a
/// state file reopened by another process continues the same sequence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimRng {
    pub seed: u64,
    pub draws: u64,
}

impl SimRng {
    /// A whole number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.draws += 1;
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ self.draws.rotate_left(32));
        rng.random_range(lo..=hi)
    }

    /// A duration in whole seconds between the two bounds.
    pub fn secs(&mut self, lo: u64, hi: u64) -> chrono::Duration {
        secs(self.between(lo, hi))
    }
}

impl Meta {
    /// A fresh AWS-looking id: `prefix-0` and 16 hex digits.
    pub fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-0{:016x}", mix(self.next_id))
    }

    /// A fresh UUID-looking id (Run Command ids, refresh ids).
    pub fn uuid(&mut self) -> String {
        self.next_id += 1;
        let a = mix(self.next_id);
        let b = mix(a);
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b & 0xfff,
            b >> 16
        )
    }
}

/// splitmix64: spreads a counter over 64 bits so ids look random but stay unique.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn secs(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(n as i64)
}

pub fn dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// One region of the account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Region {
    pub vpcs: Vec<String>,
    pub subnets: Vec<Subnet>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    pub images: BTreeMap<String, SimImage>,
    pub snapshots: BTreeMap<String, SimSnapshot>,
    pub instances: BTreeMap<String, SimInstance>,
    pub templates: BTreeMap<String, SimTemplate>,
    /// Every version of each parameter, oldest first.
    pub parameters: BTreeMap<String, Vec<Parameter>>,
    pub commands: BTreeMap<String, SimCommand>,
    pub groups: BTreeMap<String, SimGroup>,
    /// Every refresh ever started, oldest first.
    pub refreshes: Vec<SimRefresh>,
    pub load_balancers: Vec<LoadBalancer>,
    pub target_groups: BTreeMap<String, SimTargetGroup>,
    pub listeners: BTreeMap<String, Listener>,
    pub rules: BTreeMap<String, Rule>,
    pub alarms: BTreeMap<String, SimAlarm>,
    /// Per target group ARN: one-minute buckets of simulated traffic.
    pub metrics: super::metrics::History,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimImage {
    pub image: Image,
    /// `amazon` for Amazon's public images.
    pub owner_alias: Option<String>,
    pub public: bool,
    /// When a pending image becomes available (or fails).
    pub ready_at: Option<Timestamp>,
    /// A pending image that will fail with this reason at `ready_at`.
    pub fail_reason: Option<String>,
    /// Created inside the simulation (the `new` image fault matches these).
    pub created_here: bool,
    pub launch_permissions: LaunchPermissions,
    /// `region/ami-…` of the image this one is a copy of.
    #[serde(default)]
    pub copy_of: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimSnapshot {
    pub snapshot: Snapshot,
    pub ready_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimInstance {
    pub instance: Instance,
    pub security_group_ids: Vec<SecurityGroupId>,
    pub instance_profile: Option<String>,
    pub imdsv2_required: bool,
    pub terminate_on_shutdown: bool,
    pub root_volume: Option<RootVolume>,
    pub user_data: Option<String>,
    pub running_at: Timestamp,
    /// When the SSM agent first registers; `None` when it never will (a fault).
    pub agent_at: Option<Timestamp>,
    /// The agent is offline until then (a reboot).
    pub agent_offline_until: Option<Timestamp>,
    /// When the application answers its health check.
    pub app_ready_at: Timestamp,
    /// Launched from an image a fault marks as bad: health checks fail.
    pub bad_image: bool,
    /// A fault says it never boots: EC2 terminates it instead of running it.
    #[serde(default)]
    pub boot_fails: bool,
    pub terminated_at: Option<Timestamp>,
    /// When a terminated instance stops being listed.
    pub gone_at: Option<Timestamp>,
}

impl SimInstance {
    pub fn id(&self) -> &InstanceId {
        &self.instance.id
    }
    pub fn state(&self) -> InstanceState {
        self.instance.state
    }
    pub fn agent_online(&self, now: Timestamp) -> bool {
        self.state() == InstanceState::Running
            && self.agent_at.is_some_and(|at| at <= now)
            && self.agent_offline_until.is_none_or(|until| until <= now)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimTemplate {
    pub template: LaunchTemplate,
    pub versions: BTreeMap<i64, LaunchTemplateVersion>,
    /// The highest version number ever given: EC2 does not give a deleted version's
    /// number again.
    #[serde(default)]
    pub issued: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimCommand {
    pub id: CommandId,
    pub comment: String,
    pub document: String,
    pub sent_at: Timestamp,
    pub invocations: BTreeMap<String, SimInvocation>,
    /// MaxConcurrency as a number of instances.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// MaxErrors as a number: the command stops once errors exceed it.
    #[serde(default)]
    pub max_errors: Option<usize>,
}

/// What an invocation will end as, decided when the command is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimInvocation {
    pub current: Invocation,
    /// The invocation does not exist before this (PITFALLS 18).
    pub visible_at: Timestamp,
    pub start_at: Timestamp,
    pub end_at: Timestamp,
    pub final_status: InvocationStatus,
    pub final_details: String,
    pub final_code: i32,
    pub final_stdout: String,
    pub final_stderr: String,
    /// The script asks for a reboot (`exit 194`): seconds after the start, and how many
    /// seconds the instance is away.
    pub reboot: Option<(i64, i64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub id: InstanceId,
    pub availability_zone: String,
    pub lifecycle: String,
    pub health: String,
    pub protected: bool,
    /// The template and numbered version it was launched from.
    pub template: GroupTemplate,
    pub launched_at: Timestamp,
    pub in_service_at: Option<Timestamp>,
    /// When a terminating member's instance is terminated (after draining).
    pub terminate_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimGroup {
    pub group: Group,
    pub members: Vec<Member>,
    /// Extra instances above desired a launch-first refresh may run.
    pub surge: i32,
    /// The last launch that failed, as Auto Scaling's activity history would say it.
    pub last_launch_error: Option<String>,
    /// A failed launch is tried again at this time.
    pub launch_retry_at: Option<Timestamp>,
    /// Force-deleted: "Delete in progress" until its instances are terminated.
    #[serde(default)]
    pub deleting: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimRefresh {
    pub refresh: InstanceRefresh,
    /// The group's configuration when the refresh started (rollback restores it).
    pub original: GroupTemplate,
    /// What the group launches from: the desired config as given (`$Latest` resolves at
    /// each launch), or `original` in a rollback.
    pub target: GroupTemplate,
    /// Instances still to replace.
    pub to_replace: BTreeSet<InstanceId>,
    pub total: i32,
    pub replaced: i32,
    /// Replacement instances that failed their health checks.
    pub failed_replacements: i32,
    pub batch_started_at: Option<Timestamp>,
    pub checkpoint_until: Option<Timestamp>,
    /// Index of the next checkpoint percentage to stop at.
    pub next_checkpoint: usize,
    /// Why a rollback started (its final status keeps saying so).
    #[serde(default)]
    pub rollback_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimTargetGroup {
    pub group: TargetGroup,
    pub targets: BTreeMap<String, SimTarget>,
    pub tags: Tags,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimTarget {
    pub health: TargetHealth,
    pub registered_at: Timestamp,
    pub drain_until: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimAlarm {
    pub alarm: Alarm,
    /// `GreaterThanThreshold` and friends, as CloudWatch names them.
    pub comparison: String,
    pub statistic: String,
    pub period: Duration,
    /// Whether the alarm's state follows the simulated metrics (else it stays put).
    pub follows_metrics: bool,
}
