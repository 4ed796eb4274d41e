//! `plan`: describe the group, its template, its refreshes and its target group, run the
//! preflight checks, and say what the rollout will change, without changing anything.
//! The plan is what `kiln plan` and `--dry-run` print, and what `rollout` executes.

use std::time::Duration;

use kiln_cloud::{
    Cloud, Group, ImageId, InstanceRefresh, LaunchTemplate, LaunchTemplateVersion,
    ProtectedInstances, RefreshPreferences, StandbyInstances, TargetGroup, TemplateRef, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::bluegreen::{self, BlueGreenPlan};
use crate::error::{Refusal, RolloutError};
use crate::inplace::{self, InPlacePlan};
use crate::lock::{self, LockHolder, LOCK_MARGIN};
use crate::preflight::{self, Capacity, ReplacementOrder};
use crate::spec::{CanaryMode, RollingSettings, RolloutSpec, Strategy, UNHEALTHY_WARMUPS};
use crate::sweep::version_run_id;

/// Prefix of an image id that a launch template resolves from Parameter Store; AWS
/// cannot roll back such a refresh (PITFALLS 2).
const SSM_IMAGE_PREFIX: &str = "resolve:ssm:";

/// Everything `rollout` will do, decided before anything is changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutPlan {
    pub spec: RolloutSpec,
    pub region: String,
    pub image: ImageId,
    pub run_id: String,
    /// Who the lock will name (`BUILD_TAG` under Jenkins, else `USER`).
    pub owner: String,
    pub planned_at: Timestamp,
    pub group: GroupFacts,
    pub template: TemplatePlan,
    /// The instance refresh (rolling and canary).
    pub refresh: Option<RefreshPlan>,
    /// The green group, target group and listener switch (blue/green).
    pub blue_green: Option<BlueGreenPlan>,
    /// The batches of an in-place fix.
    pub in_place: Option<InPlacePlan>,
    /// The target group whose health decides readiness.
    pub target_group: Option<TargetGroup>,
    /// How long a new instance may stay not healthy before the rollout stops.
    #[serde(with = "humantime_serde")]
    pub unhealthy_after: Duration,
    /// The group already runs this image: the rollout changes nothing.
    pub no_change: bool,
    /// Things the operator should know that do not stop the rollout.
    pub notes: Vec<String>,
}

/// The group as it was when planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFacts {
    pub name: String,
    pub min_size: i32,
    pub max_size: i32,
    pub desired: i32,
    /// The template version as the group stores it (`3`, `$Latest`).
    pub version_as_stored: String,
    pub instances: Vec<InstanceFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceFacts {
    pub id: String,
    pub availability_zone: String,
    pub lifecycle_state: String,
    pub health_status: String,
    pub protected: bool,
    /// The template version it was launched from.
    pub version: Option<String>,
}

/// The launch template version the rollout makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatePlan {
    pub id: String,
    pub name: String,
    /// The group's current numbered version: the new one is made from it, and a
    /// rollback returns to it.
    pub source_version: i64,
    pub source_image: Option<ImageId>,
    pub default_version: i64,
    pub latest_version: i64,
    /// The version number the new one will most likely get (latest + 1).
    pub expected_new_version: i64,
}

/// The instance refresh, with every preference stated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshPlan {
    pub preferences: RefreshPreferences,
    pub capacity: Capacity,
    /// `launch before terminate`, `terminate before launch`, or both together.
    pub order: ReplacementOrder,
    pub warmup_source: String,
    /// Max size kiln raises the group to for the rollout (restored after).
    pub raise_max_size_to: Option<i32>,
    /// A rough duration: batches × warm-up, plus checkpoint pauses.
    #[serde(with = "humantime_serde")]
    pub estimate: Duration,
}

/// Reads the account and returns the plan, or every preflight refusal at once.
pub async fn plan(
    cloud: &Cloud,
    spec: &RolloutSpec,
    image: &ImageId,
) -> Result<RolloutPlan, RolloutError> {
    planned(&crate::patient::patient(cloud), spec, image).await
}

/// [`plan`] on a cloud whose calls already survive throttling.
pub(crate) async fn planned(
    cloud: &Cloud,
    spec: &RolloutSpec,
    image: &ImageId,
) -> Result<RolloutPlan, RolloutError> {
    // A setting AWS would refuse is refused before the account is read.
    if let Some(problem) = spec.problems().into_iter().next() {
        return Err(RolloutError::Invalid {
            what: format!("target {} (group {})", spec.target, spec.group),
            region: cloud.region.clone(),
            detail: problem.to_string(),
        });
    }
    // After a blue/green switch the target is served by the green group: every strategy
    // acts on the group that takes the traffic, never on the one left at weight 0.
    let named_group = spec.group.clone();
    let live = bluegreen::live_spec(cloud, spec).await?;
    let spec = &live;
    let facts = Facts::gather(cloud, spec).await?;
    let run_id = new_run_id(facts.now);
    let mut refusals = Vec::new();
    let mut notes = Vec::new();
    if spec.group != named_group {
        notes.push(format!(
            "target {} is served by group {} since a blue/green switch; this rollout acts \
             on it, not on {named_group}",
            spec.target, spec.group
        ));
    }

    // A lock held by a live run refuses at once, naming the holder.
    lock::check_free(&facts.group, &cloud.region, &run_id, facts.now)?;

    let template = template_plan(&facts, spec, &mut refusals, &mut notes);
    refusals.extend(preflight::check_running_refresh(
        &spec.target,
        &spec.group,
        &facts.refreshes,
    ));
    refusals.extend(preflight::check_suspended(&facts.group));
    refusals.extend(preflight::check_group_sizes(&facts.group));
    check_target_group(&facts, spec, &mut refusals, &mut notes);
    let parts = strategy_parts(cloud, &facts, spec, &template, &mut refusals, &mut notes).await?;

    if !refusals.is_empty() {
        return Err(RolloutError::Preflight {
            group: spec.group.clone(),
            region: cloud.region.clone(),
            refusals,
        });
    }
    let unhealthy_after = unhealthy_bound(&facts, spec, parts.refresh.as_ref());
    let fixes = matches!(spec.strategy, Strategy::InPlace(_));
    let no_change = !fixes && is_no_change(&facts, &template, image);
    if no_change {
        notes.push(format!(
            "every instance already runs {image} from version {}: nothing to change",
            template.source_version
        ));
    }
    Ok(RolloutPlan {
        spec: spec.clone(),
        region: cloud.region.clone(),
        image: image.clone(),
        run_id,
        owner: default_owner(),
        planned_at: facts.now,
        group: group_facts(&facts.group),
        template,
        refresh: parts.refresh,
        blue_green: parts.blue_green,
        in_place: parts.in_place,
        target_group: facts.target_group.clone(),
        unhealthy_after,
        no_change,
        notes,
    })
}

/// The strategy's own part of the plan.
#[derive(Default)]
struct Parts {
    refresh: Option<RefreshPlan>,
    blue_green: Option<BlueGreenPlan>,
    in_place: Option<InPlacePlan>,
}

async fn strategy_parts(
    cloud: &Cloud,
    facts: &Facts,
    spec: &RolloutSpec,
    template: &TemplatePlan,
    refusals: &mut Vec<Refusal>,
    notes: &mut Vec<String>,
) -> Result<Parts, RolloutError> {
    let mut parts = Parts::default();
    let next = template.expected_new_version;
    let tg = facts.target_group.as_ref();
    match &spec.strategy {
        Strategy::Rolling(s) => {
            parts.refresh = Some(refresh_plan(facts, spec, s, &[], None, refusals));
        }
        // A/B runs on blue/green's machinery, with the comparison at each step.
        Strategy::Canary(c) if c.mode == CanaryMode::Ab => {
            let settings = c.ab_settings().expect("ab mode");
            let part = bluegreen::plan_part(cloud, spec, &settings, tg, next, refusals, notes);
            parts.blue_green = part.await?.map(|bg| BlueGreenPlan {
                ab: Some(c.compare.clone()),
                ..bg
            });
        }
        Strategy::Canary(c) => {
            let (steps, delay) = (canary_steps(&c.steps), Some(c.bake));
            let r = refresh_plan(facts, spec, &c.refresh, &steps, delay, refusals);
            parts.refresh = Some(r);
        }
        Strategy::BlueGreen(b) => {
            let part = bluegreen::plan_part(cloud, spec, b, tg, next, refusals, notes);
            parts.blue_green = part.await?;
        }
        Strategy::InPlace(s) => parts.in_place = inplace::plan_part(&facts.group, s, refusals),
    }
    refresh_notes(facts, spec, parts.refresh.as_ref(), notes);
    Ok(parts)
}

/// What an operator should know about the refresh's preferences.
fn refresh_notes(
    facts: &Facts,
    spec: &RolloutSpec,
    refresh: Option<&RefreshPlan>,
    notes: &mut Vec<String>,
) {
    if let Some(r) = refresh {
        let grace = facts.group.health_check_grace;
        if grace < r.preferences.instance_warmup {
            notes.push(format!(
                "group {} has a health check grace of {} s, shorter than the warm-up of {} \
                 s: Auto Scaling may replace instances that are still booting (PITFALLS 7)",
                facts.group.name,
                grace.as_secs(),
                r.preferences.instance_warmup.as_secs()
            ));
        }
        if !r.preferences.auto_rollback && spec_auto_rollback(spec) {
            notes.push(
                "AWS cannot roll this refresh back by itself (the group follows a floating \
                 version, or the template takes its image from Parameter Store): kiln rolls \
                 back with a new refresh to the previous version"
                    .into(),
            );
        }
    }
}

impl RolloutPlan {
    /// Names the lock after someone else than the environment says.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The lock this plan takes: it expires after every deadline of the run has passed.
    pub fn lock_holder(&self, now: Timestamp) -> LockHolder {
        let t = &self.spec.timeouts;
        let ttl = t.rollout + t.rollback + LOCK_MARGIN + self.unbounded_phases();
        LockHolder {
            owner: self.owner.clone(),
            run_id: self.run_id.clone(),
            expires: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
        }
    }
}

impl RolloutPlan {
    /// Phases that run for a set time outside the rollout deadline: blue/green's preview
    /// hold, traffic steps and drain.
    fn unbounded_phases(&self) -> Duration {
        let Some(bg) = &self.blue_green else {
            return Duration::ZERO;
        };
        let s = &bg.settings;
        let hold = s.preview.as_ref().map_or(Duration::ZERO, |p| p.hold);
        let steps = s.step_bake * s.traffic_steps.len() as u32;
        hold + steps + bg.blue_target_group.deregistration_delay
    }
}

/// What `plan` reads from the account.
pub(crate) struct Facts {
    pub group: Group,
    pub refreshes: Vec<InstanceRefresh>,
    pub template: LaunchTemplate,
    pub source: LaunchTemplateVersion,
    pub target_group: Option<TargetGroup>,
    pub now: Timestamp,
}

impl Facts {
    pub(crate) async fn gather(cloud: &Cloud, spec: &RolloutSpec) -> Result<Self, RolloutError> {
        let group = lock::describe(cloud, &spec.group).await?;
        let refreshes = cloud
            .scaling
            .describe_instance_refreshes(&spec.group)
            .await?;
        let template = cloud
            .compute
            .describe_launch_template(&spec.launch_template)
            .await?;
        let source_number = source_version_number(&group, &template);
        let source = cloud
            .compute
            .describe_launch_template_versions(
                &TemplateRef::Id(template.id.clone()),
                &[source_number],
            )
            .await?
            .pop()
            .ok_or_else(|| RolloutError::Invalid {
                what: format!("launch template {} version {source_number}", template.name),
                region: cloud.region.clone(),
                detail: "not found; the group points at a deleted version".into(),
            })?;
        let target_group = find_target_group(cloud, spec, &group).await?;
        Ok(Self {
            group,
            refreshes,
            template,
            source,
            target_group,
            now: cloud.clock.now(),
        })
    }
}

/// The group's numbered version; a floating one resolves as AWS would resolve it now.
fn source_version_number(group: &Group, template: &LaunchTemplate) -> i64 {
    let stored = group.launch_template.as_ref();
    match stored.map(|t| t.version.as_str()) {
        Some("$Latest") => template.latest_version,
        Some("$Default") | None => template.default_version,
        Some(v) => v.parse().unwrap_or(template.default_version),
    }
}

async fn find_target_group(
    cloud: &Cloud,
    spec: &RolloutSpec,
    group: &Group,
) -> Result<Option<TargetGroup>, RolloutError> {
    let names: Vec<String> = spec.target_group.iter().cloned().collect();
    if names.is_empty() && group.target_group_arns.is_empty() {
        return Ok(None);
    }
    let all = cloud.load_balancing.describe_target_groups(&names).await?;
    let found = match &spec.target_group {
        Some(name) => all.into_iter().find(|t| &t.name == name),
        None => all
            .into_iter()
            .find(|t| group.target_group_arns.contains(&t.arn)),
    };
    Ok(found)
}

fn template_plan(
    facts: &Facts,
    spec: &RolloutSpec,
    refusals: &mut Vec<Refusal>,
    notes: &mut Vec<String>,
) -> TemplatePlan {
    let (g, t, v) = (&facts.group, &facts.template, facts.source.version);
    check_group_template(facts, spec, refusals, notes);
    if g.mixed_instances {
        // Not done: the desired configuration of a mixed instances policy; the refusal
        // can go when the ports carry that policy.
        refusals.push(Refusal {
            check: "mixed_instances".into(),
            reason: format!("group {} launches through a mixed instances policy", g.name),
            fix: "not supported yet: roll this group out with the console or CLI".into(),
        });
    }
    let made_by_kiln = facts.source.description.as_deref().and_then(version_run_id);
    if let (Some(run), true) = (made_by_kiln, v == t.latest_version) {
        if v != t.default_version {
            notes.push(format!(
                "group {} runs version {v} of {}, made by kiln's run {run}; the template's \
                 default stays {}, as kiln never moves it (PITFALLS 2)",
                g.name, t.name, t.default_version
            ));
        }
    } else if v != t.default_version || v != t.latest_version {
        notes.push(format!(
            "drift: group {} runs version {v} of {} while the template's default is {} and \
             latest {}; the new version is made from {v} (what the group runs), so other \
             versions' changes are not carried over (PITFALLS 10)",
            g.name, t.name, t.default_version, t.latest_version
        ));
    }
    check_imdsv2(facts, spec, refusals, notes);
    note_instances_on_other_versions(g, v, notes);
    TemplatePlan {
        id: t.id.to_string(),
        name: t.name.clone(),
        source_version: v,
        source_image: facts.source.data.image_id.clone(),
        default_version: t.default_version,
        latest_version: t.latest_version,
        expected_new_version: t.latest_version + 1,
    }
}

/// The new version copies the metadata options of the one the group runs: one that
/// lets instances use IMDSv1 is refused unless the target allows it. An in-place fix
/// makes no version, so there it is only reported.
fn check_imdsv2(
    facts: &Facts,
    spec: &RolloutSpec,
    refusals: &mut Vec<Refusal>,
    notes: &mut Vec<String>,
) {
    let (t, v) = (&facts.template, facts.source.version);
    let tokens = facts.source.data.metadata_http_tokens.as_deref();
    if tokens == Some("required") {
        return;
    }
    let reason = format!(
        "launch template {} version {v} does not require IMDSv2 (HttpTokens {}): the \
         instances launched from it can use IMDSv1",
        t.name,
        tokens.unwrap_or("not set")
    );
    if spec.allow_imdsv1 || matches!(spec.strategy, Strategy::InPlace(_)) {
        notes.push(reason);
        return;
    }
    refusals.push(Refusal {
        check: "imdsv2".into(),
        reason,
        fix: format!(
            "set HttpTokens=required in the template's metadata options where the template \
             is managed (kiln's new version is made from version {v} with only the image \
             changed), or set `allow_imdsv1: true` on the target"
        ),
    });
}

/// The group must launch from the pipeline's template; a floating version is reported.
fn check_group_template(
    facts: &Facts,
    spec: &RolloutSpec,
    refusals: &mut Vec<Refusal>,
    notes: &mut Vec<String>,
) {
    let (g, t, v) = (&facts.group, &facts.template, facts.source.version);
    let same = |gt: &kiln_cloud::GroupTemplate| {
        gt.template_id.as_ref() == Some(&t.id)
            || gt.template_name.as_deref() == Some(t.name.as_str())
    };
    match &g.launch_template {
        Some(gt) if same(gt) => {
            if gt.is_floating() {
                notes.push(format!(
                    "group {} follows {} of {} (now version {v}): the refresh installs a \
                     numbered version instead, which the group keeps after success \
                     (PITFALLS 1)",
                    g.name, gt.version, t.name
                ));
            }
        }
        _ => refusals.push(Refusal {
            check: "launch_template".into(),
            reason: format!(
                "group {} does not launch from template {} (it uses {})",
                g.name,
                spec.launch_template,
                describe_group_template(g)
            ),
            fix: "name the group's own launch template in the pipeline".into(),
        }),
    }
}

fn describe_group_template(g: &Group) -> String {
    match &g.launch_template {
        Some(gt) => format!(
            "{} version {}",
            gt.template_name
                .clone()
                .or(gt.template_id.as_ref().map(|i| i.to_string()))
                .unwrap_or_default(),
            gt.version
        ),
        None => "no launch template".into(),
    }
}

fn note_instances_on_other_versions(g: &Group, v: i64, notes: &mut Vec<String>) {
    let others: Vec<String> = g
        .instances
        .iter()
        .filter_map(|i| {
            let ver = i.launch_template.as_ref()?.numbered_version()?;
            (ver != v).then(|| format!("{} (version {ver})", i.id))
        })
        .collect();
    if !others.is_empty() {
        notes.push(format!(
            "instances not on the group's version {v}: {}",
            others.join(", ")
        ));
    }
}

fn check_target_group(
    facts: &Facts,
    spec: &RolloutSpec,
    refusals: &mut Vec<Refusal>,
    notes: &mut Vec<String>,
) {
    let g = &facts.group;
    match (&spec.target_group, &facts.target_group) {
        (Some(name), None) => refusals.push(Refusal {
            check: "target_group".into(),
            reason: format!("target group {name} does not exist"),
            fix: "check the name in the pipeline file and the region".into(),
        }),
        (Some(name), Some(tg)) if !g.target_group_arns.contains(&tg.arn) => {
            refusals.push(Refusal {
                check: "target_group".into(),
                reason: format!("group {} is not attached to target group {name}", g.name),
                fix: "attach the target group to the group, or name the right one".into(),
            })
        }
        _ => {}
    }
    if facts.target_group.is_some() && g.health_check_type != "ELB" {
        notes.push(format!(
            "group {} uses {} health checks: an instance whose application is down stays \
             InService; kiln's target health gate watches the load balancer instead \
             (PITFALLS 7)",
            g.name, g.health_check_type
        ));
    }
}

fn refresh_plan(
    facts: &Facts,
    spec: &RolloutSpec,
    settings: &RollingSettings,
    checkpoints: &[i32],
    checkpoint_delay: Option<Duration>,
    refusals: &mut Vec<Refusal>,
) -> RefreshPlan {
    let g = &facts.group;
    refusals.extend(preflight::check_protected_standby(g, settings));
    let (more, capacity, raise) = preflight::check_percentages(g, settings);
    refusals.extend(more);
    let (warmup, warmup_source) = preflight::warmup(settings, facts.target_group.as_ref(), g);

    let (points, delay) = checkpoints_of(settings, checkpoints, checkpoint_delay, refusals);
    // AWS cannot roll back a group that follows $Latest/$Default (PITFALLS 1, 2).
    let floating = facts
        .group
        .launch_template
        .as_ref()
        .is_some_and(|t| t.is_floating());
    let from_ssm = facts
        .source
        .data
        .image_id
        .as_ref()
        .is_some_and(|i| i.as_str().starts_with(SSM_IMAGE_PREFIX));
    let preferences = RefreshPreferences {
        min_healthy_percentage: settings.min_healthy_percentage,
        max_healthy_percentage: settings.max_healthy_percentage,
        instance_warmup: warmup,
        skip_matching: settings.skip_matching,
        checkpoint_percentages: points.clone(),
        checkpoint_delay: if points.is_empty() { None } else { delay },
        auto_rollback: settings.auto_rollback && !from_ssm && !floating,
        alarm_names: spec.gates.alarms.clone(),
        scale_in_protected_instances: settings
            .protected_instances
            .unwrap_or(ProtectedInstances::Ignore),
        standby_instances: settings
            .standby_instances
            .unwrap_or(StandbyInstances::Ignore),
    };
    let batch = capacity.launch_batch.max(capacity.terminate_batch).max(1);
    let batches = (capacity.desired + batch - 1) / batch;
    let pauses = delay.unwrap_or_default() * points.len() as u32;
    RefreshPlan {
        estimate: warmup * batches.max(1) as u32 + pauses,
        preferences,
        order: capacity.order,
        capacity,
        warmup_source,
        raise_max_size_to: raise,
    }
}

/// The checkpoints (canary steps or the rolling settings'), sorted, with their delay.
fn checkpoints_of(
    settings: &RollingSettings,
    steps: &[i32],
    step_delay: Option<Duration>,
    refusals: &mut Vec<Refusal>,
) -> (Vec<i32>, Option<Duration>) {
    let mut points = if steps.is_empty() {
        settings.checkpoints.clone()
    } else {
        steps.to_vec()
    };
    points.sort_unstable();
    points.dedup();
    let delay = step_delay.or(settings.checkpoint_delay);
    if !points.is_empty() && delay.is_none() {
        refusals.push(Refusal {
            check: "checkpoint_delay".into(),
            reason: "checkpoints without a checkpoint_delay: AWS would pause an hour at each"
                .into(),
            fix: "set checkpoint_delay (how long the gates watch each checkpoint)".into(),
        });
    }
    (points, delay)
}

/// The early unhealthy gate's bound: as set, else two warm-ups (PITFALLS 8).
fn unhealthy_bound(facts: &Facts, spec: &RolloutSpec, refresh: Option<&RefreshPlan>) -> Duration {
    if let Some(d) = spec.gates.unhealthy_after {
        return d;
    }
    let warmup = match refresh {
        Some(r) => r.preferences.instance_warmup,
        None => {
            let defaults = RollingSettings::default();
            preflight::warmup(&defaults, facts.target_group.as_ref(), &facts.group).0
        }
    };
    warmup * UNHEALTHY_WARMUPS
}

fn spec_auto_rollback(spec: &RolloutSpec) -> bool {
    match &spec.strategy {
        Strategy::Rolling(s) => s.auto_rollback,
        Strategy::Canary(c) => c.refresh.auto_rollback,
        _ => false,
    }
}

/// Canary steps as checkpoints: sorted, within 1..=100, always ending at 100 so the
/// refresh replaces the whole group after the last gate.
pub fn canary_steps(steps: &[i32]) -> Vec<i32> {
    let mut s: Vec<i32> = steps
        .iter()
        .copied()
        .filter(|p| (1..=100).contains(p))
        .collect();
    s.push(100);
    s.sort_unstable();
    s.dedup();
    s
}

fn is_no_change(facts: &Facts, template: &TemplatePlan, image: &ImageId) -> bool {
    let version = template.source_version.to_string();
    template.source_image.as_ref() == Some(image)
        && facts.group.instances.iter().all(|i| {
            i.launch_template
                .as_ref()
                .is_some_and(|t| t.version == version)
        })
}

fn group_facts(g: &Group) -> GroupFacts {
    GroupFacts {
        name: g.name.clone(),
        min_size: g.min_size,
        max_size: g.max_size,
        desired: g.desired_capacity,
        version_as_stored: g
            .launch_template
            .as_ref()
            .map(|t| t.version.clone())
            .unwrap_or_default(),
        instances: g
            .instances
            .iter()
            .map(|i| InstanceFacts {
                id: i.id.to_string(),
                availability_zone: i.availability_zone.clone(),
                lifecycle_state: i.lifecycle_state.clone(),
                health_status: i.health_status.clone(),
                protected: i.protected_from_scale_in,
                version: i.launch_template.as_ref().map(|t| t.version.clone()),
            })
            .collect(),
    }
}

/// A run id that sorts by time and does not collide between two runs of one second.
fn new_run_id(now: Timestamp) -> String {
    format!(
        "ro-{}-{:04x}",
        now.format("%Y%m%dT%H%M%S"),
        rand::random::<u16>()
    )
}

/// The lock's owner: the Jenkins build when there is one, else the user.
fn default_owner() -> String {
    ["BUILD_TAG", "USER", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "kiln".into())
}
