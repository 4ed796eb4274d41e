//! What a rollout is asked to do: the target, its group and template, the strategy with
//! its settings, the gates and the timeouts. Read from the pipeline file; every field that
//! may be left out has a documented default.

use std::time::Duration;

use kiln_cloud::{ProtectedInstances, StandbyInstances, TemplateRef};
use serde::{Deserialize, Serialize};

/// One rollout of one target: which group, which template, how, and under which gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// The target's name in the pipeline (`poc-web`).
    pub target: String,
    /// The Auto Scaling group.
    pub group: String,
    /// By name, or by id (`lt-…`).
    #[serde(with = "template_ref")]
    pub launch_template: TemplateRef,
    /// The target group (by name) whose health decides readiness.
    #[serde(default)]
    pub target_group: Option<String>,
    /// The load balancer (by name) whose listeners blue/green and A/B switch.
    #[serde(default)]
    pub load_balancer: Option<String>,
    pub strategy: Strategy,
    #[serde(default)]
    pub gates: Gates,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Roll out from a template version that does not require IMDSv2 (HttpTokens
    /// `required`); refused by default, as a new version would carry IMDSv1 on.
    #[serde(default)]
    pub allow_imdsv1: bool,
}

/// A template written as one string: an id (`lt-…`) or a name.
mod template_ref {
    use kiln_cloud::{LaunchTemplateId, TemplateRef};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &TemplateRef, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TemplateRef, D::Error> {
        let text = String::deserialize(d)?;
        Ok(if text.starts_with("lt-") {
            TemplateRef::Id(LaunchTemplateId::new(text))
        } else {
            TemplateRef::Name(text)
        })
    }
}

/// How the instances are replaced; `kind` names the strategy, its settings sit beside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Strategy {
    /// One instance refresh over the whole group.
    Rolling(RollingSettings),
    /// An instance refresh that stops at checkpoints, with the gates evaluated at each.
    Canary(CanarySettings),
    /// A green group beside the blue one, then one listener switch.
    BlueGreen(BlueGreenSettings),
    /// A fix sent by Run Command to the running instances, in batches.
    InPlace(InPlaceSettings),
}

impl Strategy {
    /// The name outputs use.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rolling(_) => "rolling",
            Self::Canary(_) => "canary",
            Self::BlueGreen(_) => "blue_green",
            Self::InPlace(_) => "in_place",
        }
    }
}

/// Default MinHealthyPercentage: keep the whole desired capacity in service, so that
/// replacements launch before the instances they replace are terminated.
pub const DEFAULT_MIN_HEALTHY: i32 = 100;
/// Default MaxHealthyPercentage: room for half the desired capacity again, so a group of
/// three replaces one at a time and a group of ten five at a time.
pub const DEFAULT_MAX_HEALTHY: i32 = 150;
/// Default time from "instance running" to "application answers": the team measured an
/// instance replaced and serving in about 51 s; rounded up.
pub const DEFAULT_BOOT_TIME: Duration = Duration::from_secs(60);

/// The preferences of an instance refresh. Nothing here is left to AWS's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollingSettings {
    /// Share of the desired capacity kept healthy (0-100). Default 100.
    pub min_healthy_percentage: i32,
    /// Share of the desired capacity that may be in service or pending (100-200).
    /// Default 150.
    pub max_healthy_percentage: i32,
    /// Instance warm-up. Default: the target group's healthy_threshold × interval plus
    /// `boot_time` (PITFALLS 7).
    #[serde(with = "humantime_serde")]
    pub instance_warmup: Option<Duration>,
    /// Time from boot until the application answers. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub boot_time: Duration,
    /// Leave instances already on the new version alone. Default true.
    pub skip_matching: bool,
    /// Checkpoints (percent of the group replaced) at which the refresh pauses.
    pub checkpoints: Vec<i32>,
    /// The pause at each checkpoint. Required by AWS when there are checkpoints.
    #[serde(with = "humantime_serde")]
    pub checkpoint_delay: Option<Duration>,
    /// Ask AWS to roll back by itself when the refresh fails. Default true.
    pub auto_rollback: bool,
    /// What the refresh does with scale-in protected instances. Required when the group
    /// has any; sent as `Ignore` when it has none.
    pub protected_instances: Option<ProtectedInstances>,
    /// What the refresh does with standby instances. Required when the group has any;
    /// sent as `Ignore` when it has none.
    pub standby_instances: Option<StandbyInstances>,
    /// Let kiln raise the group's max size for the rollout when launch-first needs the
    /// room, and restore it after. Default false: refuse and say by how much.
    pub raise_max_size: bool,
}

impl Default for RollingSettings {
    fn default() -> Self {
        Self {
            min_healthy_percentage: DEFAULT_MIN_HEALTHY,
            max_healthy_percentage: DEFAULT_MAX_HEALTHY,
            instance_warmup: None,
            boot_time: DEFAULT_BOOT_TIME,
            skip_matching: true,
            checkpoints: Vec::new(),
            checkpoint_delay: None,
            auto_rollback: true,
            protected_instances: None,
            standby_instances: None,
            raise_max_size: false,
        }
    }
}

/// Default canary steps: one instance's worth on a small group, then half, then all.
pub const DEFAULT_CANARY_STEPS: [i32; 3] = [10, 50, 100];
/// Default time the gates watch each canary step before it goes on.
pub const DEFAULT_CANARY_BAKE: Duration = Duration::from_secs(5 * 60);
/// Default A/B traffic steps (percent of requests to the canary): a twentieth first, so a
/// bad release hurts few users, then a quarter and half, where the comparison with the
/// baseline has enough requests to mean something, then all.
pub const DEFAULT_AB_STEPS: [i32; 4] = [5, 25, 50, 100];

/// How a canary meets traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryMode {
    /// An instance refresh of the group that pauses at checkpoints (`steps`, percent of
    /// the instances replaced); traffic follows the instances.
    #[default]
    Checkpoints,
    /// A canary group in its own target group beside the baseline, traffic shifted by
    /// listener weights (`traffic_steps`), and each step's 5xx rate and latency compared
    /// with the baseline's (`compare`).
    Ab,
}

/// A refresh in steps, with the gates evaluated for `bake` at each step; or, in `ab`
/// mode, a weighted A/B test against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanarySettings {
    /// `checkpoints` (default) or `ab`.
    pub mode: CanaryMode,
    /// Checkpoints: percentages of the group replaced at each step; the last should be 100.
    pub steps: Vec<i32>,
    /// How long the gates watch each step before it goes on (and, in `ab` mode, the
    /// window whose metrics are compared).
    #[serde(with = "humantime_serde")]
    pub bake: Duration,
    /// Checkpoints: the refresh preferences (checkpoints and delay come from `steps` and
    /// `bake`).
    pub refresh: RollingSettings,
    /// A/B: percent of the traffic sent to the canary at each step. Default 5, 25, 50,
    /// 100; the step at 100 is the switch, after which the baseline is kept for
    /// `rollback_window`.
    pub traffic_steps: Vec<i32>,
    /// A/B: when a step's canary is worse than the baseline.
    pub compare: AbThresholds,
    /// A/B: how long the baseline group is kept after the switch. Default 1 h.
    #[serde(with = "humantime_serde")]
    pub rollback_window: Duration,
}

impl Default for CanarySettings {
    fn default() -> Self {
        Self {
            mode: CanaryMode::default(),
            steps: DEFAULT_CANARY_STEPS.to_vec(),
            bake: DEFAULT_CANARY_BAKE,
            refresh: RollingSettings::default(),
            traffic_steps: DEFAULT_AB_STEPS.to_vec(),
            compare: AbThresholds::default(),
            rollback_window: DEFAULT_ROLLBACK_WINDOW,
        }
    }
}

/// Default allowed rise of the canary's 5xx rate over the baseline's, in percentage
/// points: one more failed request in a hundred is what users notice and what a release
/// should never add.
pub const DEFAULT_MAX_ERROR_RATE_INCREASE: f64 = 1.0;
/// Default allowed ratio of the canary's mean response time to the baseline's.
pub const DEFAULT_MAX_LATENCY_RATIO: f64 = 1.5;
/// Default latency rise ignored whatever the ratio: below a tenth of a second, a slower
/// canary is noise (a cold cache, one slow query), not a regression.
pub const DEFAULT_MIN_LATENCY_INCREASE: Duration = Duration::from_millis(100);
/// Default fewest canary requests in a step's window for its comparison to count: fewer
/// than a hundred make one error a whole percentage point.
pub const DEFAULT_MIN_REQUESTS: f64 = 100.0;

/// The A/B decision rule, applied at each traffic step below 100 % over the step so far
/// (every minute, and at the end of `bake`): the canary fails when its 5xx rate
/// (HTTPCode_Target_5XX_Count / RequestCount) exceeds the baseline's by more than `max_error_rate_increase` points, or
/// its mean TargetResponseTime exceeds the baseline's by both `max_latency_ratio` and
/// `min_latency_increase`; a window with fewer than `min_requests` canary requests fails
/// at the step's end (an A/B test that saw nothing proves nothing: lengthen `bake`);
/// before the end, a failure on at least `min_requests` stops the step at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AbThresholds {
    /// Percentage points. Default 1.0.
    pub max_error_rate_increase: f64,
    /// Default 1.5.
    pub max_latency_ratio: f64,
    /// Default 100 ms.
    #[serde(with = "humantime_serde")]
    pub min_latency_increase: Duration,
    /// Default 100.
    pub min_requests: f64,
}

impl Default for AbThresholds {
    fn default() -> Self {
        Self {
            max_error_rate_increase: DEFAULT_MAX_ERROR_RATE_INCREASE,
            max_latency_ratio: DEFAULT_MAX_LATENCY_RATIO,
            min_latency_increase: DEFAULT_MIN_LATENCY_INCREASE,
            min_requests: DEFAULT_MIN_REQUESTS,
        }
    }
}

impl CanarySettings {
    /// In `ab` mode, the blue/green settings that run it: no testers' rule, the traffic
    /// steps below 100 watched for `bake` each.
    pub fn ab_settings(&self) -> Option<BlueGreenSettings> {
        (self.mode == CanaryMode::Ab).then(|| BlueGreenSettings {
            preview: None,
            rollback_window: self.rollback_window,
            traffic_steps: self.traffic_steps.clone(),
            step_bake: self.bake,
            watch_after_switch: self.bake,
            compare: self.compare.clone(),
        })
    }
}

/// Default time blue is kept after the switch, so that a rollback is one listener change.
pub const DEFAULT_ROLLBACK_WINDOW: Duration = Duration::from_secs(60 * 60);

/// A green group and target group beside blue, then the listener switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlueGreenSettings {
    /// A listener rule that sends testers to green before everyone else.
    pub preview: Option<Preview>,
    /// How long blue is kept (at its capacity) once the run accepts green: after the
    /// switch and the watch that follows it (`watch_after_switch`).
    #[serde(with = "humantime_serde")]
    pub rollback_window: Duration,
    /// A/B: percentages of traffic sent to green by weighted forwarding before the full
    /// switch (`[10, 50]`), each watched by the gates for `step_bake`. Empty: one switch.
    pub traffic_steps: Vec<i32>,
    /// How long the gates watch each traffic step.
    #[serde(with = "humantime_serde")]
    pub step_bake: Duration,
    /// How long green is watched once it takes all the traffic, its 5xx rate and latency
    /// compared with blue's before the switch: the alarms may watch blue's target group
    /// only, and green's is new.
    #[serde(with = "humantime_serde")]
    pub watch_after_switch: Duration,
    /// How much worse than blue green may be after the switch.
    pub compare: AbThresholds,
}

impl Default for BlueGreenSettings {
    fn default() -> Self {
        Self {
            preview: None,
            rollback_window: DEFAULT_ROLLBACK_WINDOW,
            traffic_steps: Vec::new(),
            step_bake: DEFAULT_CANARY_BAKE,
            watch_after_switch: DEFAULT_CANARY_BAKE,
            compare: AbThresholds::default(),
        }
    }
}

/// Default priority of the testers' rule: low numbers win, and a preview must win over
/// the listener's other rules.
pub const DEFAULT_PREVIEW_PRIORITY: i32 = 1;

/// Testers reach green through a listener rule before the switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preview {
    /// Source addresses (CIDR) of the testers.
    #[serde(default)]
    pub source_ips: Vec<String>,
    /// Or a header the testers send.
    #[serde(default)]
    pub header: Option<HeaderMatch>,
    /// How long testers have before the switch.
    #[serde(with = "humantime_serde")]
    pub hold: Duration,
    #[serde(default = "default_preview_priority")]
    pub priority: i32,
}

/// An HTTP header and the values that match it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub name: String,
    pub values: Vec<String>,
}

fn default_preview_priority() -> i32 {
    DEFAULT_PREVIEW_PRIORITY
}

/// Default instances fixed per batch: one Run Command call takes at most 50 ids, and a
/// third of a three-instance group keeps two serving.
pub const DEFAULT_IN_PLACE_BATCH: usize = 1;

/// A fix sent to the running instances, batch by batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InPlaceSettings {
    /// The fix: shell lines run by `AWS-RunShellScript`.
    pub script: Vec<String>,
    /// Instances per batch (at most 50). Default 1.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// What the fix changes, recorded on the group so the next bake includes it.
    #[serde(default)]
    pub description: String,
}

fn default_batch() -> usize {
    DEFAULT_IN_PLACE_BATCH
}

/// The default bound on how long a new instance may stay not healthy in the target
/// group is this many warm-ups: twice what a healthy instance needs, so a slow boot is not
/// a failure, and minutes rather than AWS's hour (PITFALLS 8).
pub const UNHEALTHY_WARMUPS: u32 = 2;

/// What must hold for the rollout to go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gates {
    /// New instances must become healthy in the target group.
    pub target_health: bool,
    /// How long a new instance may stay not healthy before the rollout is stopped.
    /// Default: two warm-ups.
    #[serde(with = "humantime_serde")]
    pub unhealthy_after: Option<Duration>,
    /// CloudWatch alarms that must not be in ALARM.
    pub alarms: Vec<String>,
    /// A path probed on each new instance through Run Command (`/health`).
    pub http_probe: Option<String>,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            target_health: true,
            unhealthy_after: None,
            alarms: Vec::new(),
            http_probe: None,
        }
    }
}

/// Default overall deadline of a rollout's replacement phase.
pub const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Default deadline of a rollback.
pub const DEFAULT_ROLLBACK_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default polling interval: AWS updates a refresh's progress about every 15 s.
pub const DEFAULT_POLL: Duration = Duration::from_secs(15);
/// Default deadline of one Run Command (probe or fix) on one batch.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Deadlines. Every wait has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// The whole replacement (refresh, green group healthy, all batches). Default 1 h.
    #[serde(with = "humantime_serde")]
    pub rollout: Duration,
    /// A rollback. Default 30 min.
    #[serde(with = "humantime_serde")]
    pub rollback: Duration,
    /// Polling interval. Default 15 s.
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    /// One Run Command. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            rollout: DEFAULT_ROLLOUT_TIMEOUT,
            rollback: DEFAULT_ROLLBACK_TIMEOUT,
            poll: DEFAULT_POLL,
            command: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}
