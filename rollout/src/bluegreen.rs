//! Blue/green (and A/B by weights): a green group and target group cloned from blue's
//! settings with the new version, all green healthy before any traffic, an optional
//! testers' rule, weighted steps if asked, then one listener change per listener. Blue
//! is kept for the rollback window, so a rollback is one listener change back.

use std::time::Duration;

use kiln_cloud::journal::ResourceKind;
use kiln_cloud::{
    Arn, Cloud, CreateGroup, CreateRule, CreateTargetGroup, Forward, Group, GroupTemplate,
    LaunchTemplateId, Listener, RuleCondition, Tags, TargetGroup, WeightedTarget, TAG_ROLE,
    TAG_RUN_ID,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{human, tolerate, Refusal, RolloutError, StopReason};
use crate::events::Emitter;
use crate::gates::{Candidate, GateContext, GateState};
use crate::ledger::Ledger;
use crate::lock;
use crate::outcome::{status, RolloutOutcome};
use crate::patient::or_cancel;
use crate::plan::RolloutPlan;
use crate::refresh::chrono_of;
use crate::run::{create_version, drop_version, outcome, Timings, TAG_TARGET};
use crate::spec::{AbThresholds, BlueGreenSettings, RolloutSpec};

/// Group tag: `true` on the group that serves a blue/green target, `false` on the other.
pub const TAG_LIVE: &str = "kiln:live";
/// Group tag on green: the blue group kept for the rollback window.
pub const TAG_BLUE_GROUP: &str = "kiln:blue-group";
/// Group tag on green: blue's target group, where a rollback sends traffic back.
pub const TAG_BLUE_TARGET_GROUP: &str = "kiln:blue-target-group";
/// Group tag on green: until when blue is kept (RFC 3339).
pub const TAG_BLUE_UNTIL: &str = "kiln:blue-until";
/// Group tag on green: the blue group retired after the rollback window, and when.
pub const TAG_BLUE_RETIRED: &str = "kiln:blue-retired";
/// `kiln:role` of green's group and target group.
pub const ROLE_GREEN: &str = "green";
/// `kiln:role` of the testers' rule.
pub const ROLE_PREVIEW: &str = "preview";

/// Group-level stickiness used when weighted forwarding meets sticky target groups and
/// the listener had none (PITFALLS 29): one hour keeps a visit on one side.
pub const GROUP_STICKINESS: Duration = Duration::from_secs(60 * 60);
/// How often an A/B canary's step is compared with the baseline while it runs:
/// CloudWatch's resolution for load balancer metrics, a new datapoint each minute.
const COMPARE_EVERY: Duration = Duration::from_secs(60);
/// Blue's traffic before the rollout that green is compared with after the switch: a
/// quarter of an hour is the same load green will take, in fifteen of CloudWatch's
/// one-minute datapoints.
const BASELINE_LOOKBACK: Duration = Duration::from_secs(15 * 60);
/// Longest target group name ELB accepts.
const MAX_TARGET_GROUP_NAME: usize = 32;

/// When the switch happened, and blue's traffic before it, to compare green's with.
struct Switched {
    at: kiln_cloud::Timestamp,
    baseline: crate::compare::Sample,
}

/// One listener the switch changes, with its forward action as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerSwitch {
    pub listener: Arn,
    pub port: i32,
    pub original: Forward,
}

/// What blue/green will create and switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlueGreenPlan {
    pub blue_group: String,
    pub blue_target_group: TargetGroup,
    /// Green's names carry the expected version (`poc-web-asg-v7`).
    pub green_group: String,
    pub green_target_group: String,
    pub listeners: Vec<ListenerSwitch>,
    /// Whether weighted steps need group-level stickiness.
    pub sticky: bool,
    pub settings: BlueGreenSettings,
    /// An A/B canary: each traffic step below 100 % is compared with the baseline.
    #[serde(default)]
    pub ab: Option<AbThresholds>,
}

/// The group that serves `spec.target` now: the one tagged live, else the pipeline's.
pub(crate) async fn live_spec(
    cloud: &Cloud,
    spec: &RolloutSpec,
) -> Result<RolloutSpec, RolloutError> {
    let groups = cloud.scaling.describe_groups(&[]).await?;
    let live = groups.iter().find(|g| {
        g.tags.get(TAG_TARGET) == Some(&spec.target)
            && g.tags.get(TAG_LIVE).map(String::as_str) == Some("true")
    });
    let mut out = spec.clone();
    if let Some(g) = live.filter(|g| g.name != spec.group) {
        out.group = g.name.clone();
        out.target_group = None;
    }
    Ok(out)
}

/// Reads the load balancer's listeners and decides green's names.
pub(crate) async fn plan_part(
    cloud: &Cloud,
    spec: &RolloutSpec,
    settings: &BlueGreenSettings,
    blue_tg: Option<&TargetGroup>,
    next_version: i64,
    refusals: &mut Vec<Refusal>,
    notes: &mut Vec<String>,
) -> Result<Option<BlueGreenPlan>, RolloutError> {
    let Some(tg) = blue_tg else {
        refusals.push(refuse(
            "target_group",
            "blue/green needs the group's target group",
            "attach one and name it in target_group",
        ));
        return Ok(None);
    };
    let Some(listeners) = blue_listeners(cloud, spec, tg, refusals).await? else {
        return Ok(None);
    };
    check_preview(cloud, settings, &listeners, refusals).await?;
    let sticky = tg.stickiness_enabled;
    if sticky {
        notes.push(format!(
            "target group {} is sticky: weighted steps use group-level stickiness, and \
             green's target group is created without target-group stickiness",
            tg.name
        ));
    }
    Ok(Some(BlueGreenPlan {
        blue_group: spec.group.clone(),
        blue_target_group: tg.clone(),
        green_group: format!("{}-v{next_version}", base_name(&spec.group)),
        green_target_group: tg_name(&tg.name, next_version),
        listeners,
        sticky,
        settings: settings.clone(),
        ab: None,
    }))
}

/// The listeners of the pipeline's load balancer that forward to blue; `None` (with a
/// refusal) when there is no such load balancer.
async fn blue_listeners(
    cloud: &Cloud,
    spec: &RolloutSpec,
    tg: &TargetGroup,
    refusals: &mut Vec<Refusal>,
) -> Result<Option<Vec<ListenerSwitch>>, RolloutError> {
    let Some(lb_name) = &spec.load_balancer else {
        let fix = "set load_balancer in the pipeline";
        refusals.push(refuse(
            "load_balancer",
            "blue/green needs a load balancer",
            fix,
        ));
        return Ok(None);
    };
    let found = cloud
        .load_balancing
        .describe_load_balancers(std::slice::from_ref(lb_name))
        .await?
        .pop();
    let Some(lb) = found else {
        let reason = format!("load balancer {lb_name} not found");
        refusals.push(refuse(
            "load_balancer",
            &reason,
            "check its name and region",
        ));
        return Ok(None);
    };
    let listeners: Vec<ListenerSwitch> = cloud
        .load_balancing
        .describe_listeners(&lb.arn)
        .await?
        .into_iter()
        .filter_map(|l| switch_of(l, &tg.arn))
        .collect();
    if listeners.is_empty() {
        let reason = format!(
            "no listener of {lb_name} forwards to target group {}",
            tg.name
        );
        let fix = "name the load balancer that serves this group";
        refusals.push(refuse("listeners", &reason, fix));
    }
    Ok(Some(listeners))
}

fn refuse(check: &str, reason: &str, fix: &str) -> Refusal {
    Refusal {
        check: check.into(),
        reason: reason.into(),
        fix: fix.into(),
    }
}

fn switch_of(l: Listener, blue: &Arn) -> Option<ListenerSwitch> {
    let forward = l.default_forward?;
    forward
        .target_groups
        .iter()
        .any(|t| &t.target_group_arn == blue)
        .then_some(ListenerSwitch {
            listener: l.arn,
            port: l.port,
            original: forward,
        })
}

async fn check_preview(
    cloud: &Cloud,
    settings: &BlueGreenSettings,
    listeners: &[ListenerSwitch],
    refusals: &mut Vec<Refusal>,
) -> Result<(), RolloutError> {
    let Some(p) = &settings.preview else {
        return Ok(());
    };
    if p.source_ips.is_empty() && p.header.is_none() {
        refusals.push(refuse(
            "preview",
            "a preview needs source_ips or a header",
            "set one of them",
        ));
    }
    for l in listeners {
        let rules = cloud.load_balancing.describe_rules(&l.listener).await?;
        if rules.iter().any(|r| r.priority == p.priority.to_string()) {
            refusals.push(refuse(
                "preview",
                &format!(
                    "listener {} already has a rule at priority {}",
                    l.listener, p.priority
                ),
                "choose a free priority for the preview rule",
            ));
        }
    }
    Ok(())
}

/// `poc-web-asg-v7` → `poc-web-asg`: green names do not grow at each rollout.
fn base_name(name: &str) -> &str {
    match name.rsplit_once("-v") {
        Some((base, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => base,
        _ => name,
    }
}

fn tg_name(blue: &str, version: i64) -> String {
    let suffix = format!("-v{version}");
    let base = base_name(blue);
    let keep = MAX_TARGET_GROUP_NAME
        .saturating_sub(suffix.len())
        .min(base.len());
    format!("{}{suffix}", &base[..keep])
}

/// The forward action with green's traffic given back to blue (stickiness kept): the
/// weights swap when blue is still in the action, else blue takes green's place.
fn back_to_blue(current: &Forward, green: &Arn, blue: &Arn) -> Forward {
    let mut f = current.clone();
    let green_weight = f
        .target_groups
        .iter()
        .find(|t| &t.target_group_arn == green)
        .map_or(1, |t| t.weight);
    let has_blue = f.target_groups.iter().any(|t| &t.target_group_arn == blue);
    for t in &mut f.target_groups {
        if &t.target_group_arn == blue {
            t.weight = green_weight;
        } else if &t.target_group_arn == green {
            if has_blue {
                t.weight = 0;
            } else {
                t.target_group_arn = blue.clone();
            }
        }
    }
    f
}

/// Blue and green weighted (green at 0 to be health-checked before it serves);
/// group-level stickiness when a target group is sticky (PITFALLS 29).
fn weighted(original: &Forward, blue: &Arn, green: &Arn, percent: i32, sticky: bool) -> Forward {
    let stickiness = original.stickiness.or(sticky.then_some(GROUP_STICKINESS));
    Forward {
        target_groups: vec![
            WeightedTarget {
                target_group_arn: blue.clone(),
                weight: 100 - percent,
            },
            WeightedTarget {
                target_group_arn: green.clone(),
                weight: percent,
            },
        ],
        stickiness,
    }
}

/// What exists of green once created.
struct Green {
    group: String,
    target_group: TargetGroup,
}

/// What this run changed and made so far: what an undo puts back and removes.
#[derive(Default)]
struct Made {
    /// The version the run installs.
    version: i64,
    /// The version, when this run created it (not reused).
    created_version: Option<LaunchTemplateId>,
    target_group: Option<TargetGroup>,
    group: Option<String>,
    /// Testers' rules not yet deleted.
    rules: Vec<Arn>,
    /// The listeners' actions were changed (green joined them).
    weighed: bool,
    /// The listeners forward everything to green, and the groups' live tags say so.
    switched: bool,
}

/// Why a run did not reach its end: a stop to roll back, or an error (undone too).
enum Halt {
    Stop(StopReason),
    Error(RolloutError),
}

impl From<RolloutError> for Halt {
    fn from(e: RolloutError) -> Self {
        Self::Error(e)
    }
}

/// A watch's result as a halt.
fn halted(watched: Result<Result<(), StopReason>, RolloutError>) -> Result<(), Halt> {
    match watched {
        Ok(Ok(())) => Ok(()),
        Ok(Err(stop)) => Err(Halt::Stop(stop)),
        Err(e) => Err(Halt::Error(e)),
    }
}

/// The fixed inputs of one blue/green run.
struct Run<'a> {
    cloud: &'a Cloud,
    plan: &'a RolloutPlan,
    bg: &'a BlueGreenPlan,
    emit: &'a Emitter<'a>,
    cancel: &'a CancellationToken,
    ledger: &'a Ledger<'a>,
}

/// Runs blue/green. On any stop or error the run undoes itself: listeners back as they
/// were, blue live again, and green's group, target group, rules and version removed.
pub(crate) async fn run(
    cloud: &Cloud,
    plan: &RolloutPlan,
    bg: &BlueGreenPlan,
    emit: &Emitter<'_>,
    cancel: &CancellationToken,
    ledger: &Ledger<'_>,
) -> Result<RolloutOutcome, RolloutError> {
    let r = Run {
        cloud,
        plan,
        bg,
        emit,
        cancel,
        ledger,
    };
    let mut timings = Timings::new(&*cloud.clock);
    let mut made = Made::default();
    let halt = match r.forward(&mut made, &mut timings).await {
        Ok(green) => return r.finish(&made, &green, timings).await,
        Err(halt) => halt,
    };
    if let Halt::Stop(stop) = &halt {
        let subject = made.group.as_deref().unwrap_or(&bg.green_group);
        emit.error("gate", subject, format!("green stopped: {stop}"));
    }
    let restored = r.undo(&mut made).await;
    timings.lap("rollback");
    match halt {
        Halt::Error(e) => Err(e),
        Halt::Stop(stop) => {
            let label = if restored {
                status::ROLLED_BACK
            } else {
                status::ROLLBACK_FAILED
            };
            let out = outcome(plan, made.version, label, 0, timings.list);
            Err(stopped(cloud, plan, stop, restored, out))
        }
    }
}

fn stopped(
    cloud: &Cloud,
    plan: &RolloutPlan,
    reason: StopReason,
    rolled_back: bool,
    outcome: RolloutOutcome,
) -> RolloutError {
    RolloutError::Stopped {
        group: plan.spec.group.clone(),
        region: cloud.region.clone(),
        reason: Box::new(reason),
        rolled_back,
        outcome: Box::new(outcome),
        left: None,
    }
}

impl Run<'_> {
    /// Green made, healthy, previewed, weighed, switched to and drained.
    async fn forward(&self, made: &mut Made, timings: &mut Timings<'_>) -> Result<Green, Halt> {
        let (cloud, plan) = (self.cloud, self.plan);
        let started = cloud.clock.now();
        let (template_id, version) = create_version(cloud, plan, self.emit, self.ledger).await?;
        made.version = version;
        if version != plan.template.source_version {
            made.created_version = Some(template_id.clone());
        }
        let green = self.create_green(&template_id, version, made).await?;
        // ELB health-checks only target groups a listener uses: green joins at weight 0.
        made.weighed = true;
        self.weigh(&green, 0).await?;
        timings.lap("green_created");

        let mut gates = GateState::default();
        let deadline = cloud.clock.now() + chrono_of(plan.spec.timeouts.rollout);
        halted(self.wait_green(&green, &mut gates, deadline).await)?;
        timings.lap("green_healthy");

        halted(self.before_switch(&green, &mut gates, made).await)?;
        made.switched = true;
        self.switch(&green).await?;
        let switched_at = cloud.clock.now();
        self.tag_switched(&green).await?;
        timings.lap("switch");
        let after = Switched {
            at: switched_at,
            baseline: self.baseline(started, switched_at).await?,
        };
        halted(self.after_switch(&green, &mut gates, &after).await)?;
        timings.lap("drain");
        Ok(green)
    }

    /// Green is live: what the run made is its result now, not something to clean up.
    async fn finish(
        &self,
        made: &Made,
        green: &Green,
        timings: Timings<'_>,
    ) -> Result<RolloutOutcome, RolloutError> {
        self.ledger
            .kept(ResourceKind::AutoScalingGroup, &green.group);
        let tg = green.target_group.arn.as_str();
        self.ledger.kept(ResourceKind::TargetGroup, tg);
        if let Some(template) = &made.created_version {
            self.ledger.kept_version(template, made.version);
        }
        let (cloud, plan, bg) = (self.cloud, self.plan, self.bg);
        let window = human(bg.settings.rollback_window);
        let text = format!(
            "green is live; blue {} kept {window} for a rollback",
            bg.blue_group
        );
        self.emit.info("switch", &green.group, text.clone());
        let mut out = outcome(plan, made.version, status::SUCCESSFUL, 0, timings.list);
        out.group = green.group.clone();
        let n = bg.listeners.len();
        let done = format!("{n} listener(s) forward to green {}, {text}", green.group);
        out.on_new_image = crate::run::on_new_image(cloud, &green.group, &plan.image)
            .await
            .map_err(|e| e.after_done(&plan.spec.group, &cloud.region, done))?;
        Ok(out)
    }

    /// Puts traffic back on blue and removes what the run made; false when the
    /// listeners could not be put back (green is then kept: it may be serving).
    async fn undo(&self, made: &mut Made) -> bool {
        let restored = !made.weighed || self.restore_listeners(made).await;
        for rule in std::mem::take(&mut made.rules) {
            self.remove(ResourceKind::ListenerRule, rule.as_str(), "testers' rule")
                .await;
        }
        if !restored {
            self.emit.error(
                "cleanup",
                &self.bg.blue_group,
                "green kept: the listeners could not be put back on blue; switch them by hand, \
                 then run `kiln gc`",
            );
            return false;
        }
        let mut leaving = Vec::new();
        if let Some(group) = made.group.take() {
            self.remove(ResourceKind::AutoScalingGroup, &group, "green group")
                .await;
            leaving.push(group);
        }
        if let Some(tg) = made.target_group.take() {
            self.remove(
                ResourceKind::TargetGroup,
                tg.arn.as_str(),
                "green target group",
            )
            .await;
        }
        if let Some(template) = made.created_version.take() {
            let (cloud, ledger) = (self.cloud, self.ledger);
            drop_version(cloud, ledger, self.emit, &template, made.version, &leaving).await;
        }
        true
    }

    /// Every listener back to its original action (and blue's live tag back when the
    /// switch had happened); true when all of it went through.
    async fn restore_listeners(&self, made: &Made) -> bool {
        let mut ok = true;
        for l in &self.bg.listeners {
            // The cloud's calls already outlast a throttling storm (crate::patient).
            let lb = &self.cloud.load_balancing;
            let put = lb.modify_listener_forward(&l.listener, &l.original);
            if let Err(e) = put.await {
                let text = format!("could not put the listener back on blue: {e}");
                self.emit.error("rollback", l.listener.as_str(), text);
                ok = false;
            }
        }
        if ok {
            let n = self.bg.listeners.len();
            let text = format!("{n} listener(s) back on blue as they were");
            self.emit.info("rollback", &self.bg.blue_group, text);
        }
        if ok && made.switched {
            if let (Some(group), Err(e)) = (&made.group, self.tag_switched_back(made).await) {
                let text = format!("could not move the live tag back to blue: {e}");
                self.emit.warn("rollback", group, text);
            }
        }
        ok
    }

    /// Removes one resource the run made; forgotten once gone, else left for `kiln gc`.
    async fn remove(&self, kind: ResourceKind, id: &str, what: &str) {
        let cloud = self.cloud;
        let result = match kind {
            ResourceKind::AutoScalingGroup => crate::remove::group(cloud, id).await,
            ResourceKind::TargetGroup => crate::remove::target_group(cloud, &Arn::new(id)).await,
            _ => crate::remove::rule(cloud, &Arn::new(id)).await,
        };
        match result {
            Ok(()) => {
                self.ledger.removed(kind, id);
                self.emit.info("cleanup", id, format!("{what} deleted"));
            }
            Err(why) => {
                let text = format!("{what} left behind in {}: {why}", cloud.region);
                self.emit.warn("cleanup", id, text);
            }
        }
    }

    fn kiln_tags(&self, role: &str) -> Tags {
        Tags::from([
            (TAG_TARGET.to_string(), self.plan.spec.target.clone()),
            (TAG_RUN_ID.to_string(), self.plan.run_id.clone()),
            (TAG_ROLE.to_string(), role.to_string()),
        ])
    }

    async fn create_green(
        &self,
        template_id: &LaunchTemplateId,
        version: i64,
        made: &mut Made,
    ) -> Result<Green, RolloutError> {
        let blue_tg = &self.bg.blue_target_group;
        // Not done: blue's target-group stickiness is not copied (CreateTargetGroup in the
        // ports has no attribute for it); the mark can go when it has.
        let tg_request = CreateTargetGroup {
            name: tg_name(&blue_tg.name, version),
            protocol: blue_tg.protocol.clone(),
            port: blue_tg.port,
            vpc_id: blue_tg.vpc_id.clone(),
            health_check: blue_tg.health_check.clone(),
            deregistration_delay: blue_tg.deregistration_delay,
            tags: self.kiln_tags(ROLE_GREEN),
        };
        let tg = self
            .cloud
            .load_balancing
            .create_target_group(&tg_request)
            .await?;
        self.ledger
            .record(ResourceKind::TargetGroup, tg.arn.as_str());
        made.target_group = Some(tg.clone());
        self.emit.info(
            "green",
            &tg.name,
            "target group created with blue's settings",
        );

        let blue = lock::describe(self.cloud, &self.bg.blue_group).await?;
        let name = format!("{}-v{version}", base_name(&self.bg.blue_group));
        let request = green_group_request(
            &blue,
            &name,
            template_id,
            version,
            &tg,
            self.kiln_tags(ROLE_GREEN),
        );
        self.cloud.scaling.create_group(&request).await?;
        self.ledger.record(ResourceKind::AutoScalingGroup, &name);
        made.group = Some(name.clone());
        self.emit.info(
            "green",
            &name,
            format!(
                "group created: {} instances from version {version}",
                blue.desired_capacity
            ),
        );
        Ok(Green {
            group: name,
            target_group: tg,
        })
    }

    fn gate_context<'c>(&'c self, green: &'c Green) -> GateContext<'c> {
        GateContext {
            cloud: self.cloud,
            gates: &self.plan.spec.gates,
            target_group: Some(&green.target_group),
            unhealthy_after: self.plan.unhealthy_after,
            command_timeout: self.plan.spec.timeouts.command,
            comment: format!("{} {}", crate::gates::PROBE_COMMENT, self.plan.run_id),
        }
    }

    async fn candidates(&self, green: &Green) -> Result<(Vec<Candidate>, usize), RolloutError> {
        let g = lock::describe(self.cloud, &green.group).await?;
        let list = g
            .instances
            .iter()
            .filter(|i| !i.lifecycle_state.starts_with("Terminat"))
            .map(|i| Candidate {
                id: i.id.clone(),
                in_service: i.in_service(),
            })
            .collect();
        Ok((list, g.desired_capacity.max(0) as usize))
    }

    /// Until every green instance passes the gates, a gate fails, or the deadline.
    async fn wait_green(
        &self,
        green: &Green,
        gates: &mut GateState,
        deadline: kiln_cloud::Timestamp,
    ) -> Result<Result<(), StopReason>, RolloutError> {
        let ctx = self.gate_context(green);
        loop {
            if self.pause().await {
                return Ok(Err(StopReason::Cancelled));
            }
            if self.cloud.clock.now() >= deadline {
                let waited = human(self.plan.spec.timeouts.rollout);
                return Ok(Err(StopReason::Timeout { waited }));
            }
            let (passed, desired) = match self.gates_once(&ctx, green, gates).await? {
                Some(Ok(counts)) => counts,
                Some(Err(stop)) => return Ok(Err(stop)),
                None => continue,
            };
            self.emit.step(
                "green",
                &green.group,
                format!("{passed} of {desired} instances healthy"),
                passed as u64,
                desired as u64,
            );
            if desired > 0 && passed >= desired {
                return Ok(Ok(()));
            }
        }
    }

    /// One evaluation of the gates on green: (passed, desired); `None` when throttled.
    async fn gates_once(
        &self,
        ctx: &GateContext<'_>,
        green: &Green,
        gates: &mut GateState,
    ) -> Result<Option<Result<(usize, usize), StopReason>>, RolloutError> {
        let subject = green.group.as_str();
        let poll = async {
            let Some((new, desired)) =
                tolerate(self.candidates(green).await, self.emit, "gate", subject)?
            else {
                return Ok(None);
            };
            let evaluated = tolerate(gates.evaluate(ctx, &new).await, self.emit, "gate", subject)?;
            Ok(evaluated.map(|r| r.map(|passed| (passed, desired))))
        };
        match or_cancel(self.cancel, poll).await {
            Ok(gated) => gated,
            Err(cancelled) => Ok(Some(Err(cancelled))),
        }
    }

    /// In-flight requests to blue finish within the deregistration delay (PITFALLS 30);
    /// the gates watch green meanwhile, and a failure switches back at once.
    /// Green takes all the traffic: the gates are watched while blue drains, and green's
    /// 5xx rate and latency since the switch are compared with blue's before it every
    /// minute for `watch_after_switch` (PITFALLS 8: the alarms may watch blue's
    /// target group only).
    async fn after_switch(
        &self,
        green: &Green,
        gates: &mut GateState,
        switched: &Switched,
    ) -> Result<Result<(), StopReason>, RolloutError> {
        let span = self.watch_span();
        let compare = |last| self.compare_after_switch(green, switched, last);
        self.watch_comparing(green, gates, span, compare).await
    }

    /// Watches the gates for `span`, and every [`COMPARE_EVERY`] asks `compare` (told
    /// whether it is the last time) until it decides.
    async fn watch_comparing<F, Fut>(
        &self,
        green: &Green,
        gates: &mut GateState,
        span: Duration,
        mut compare: F,
    ) -> Result<Result<(), StopReason>, RolloutError>
    where
        F: FnMut(bool) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Result<(), StopReason>>, RolloutError>>,
    {
        let end = self.cloud.clock.now() + chrono_of(span);
        loop {
            let left = (end - self.cloud.clock.now()).to_std().unwrap_or_default();
            let last = left <= COMPARE_EVERY;
            if let Err(stop) = self
                .watch_for(green, gates, left.min(COMPARE_EVERY))
                .await?
            {
                return Ok(Err(stop));
            }
            let decided = match or_cancel(self.cancel, compare(last)).await {
                Ok(decided) => decided?,
                Err(cancelled) => return Ok(Err(cancelled)),
            };
            if let Some(decided) = decided {
                return Ok(decided);
            }
        }
    }

    /// How long green is watched after the switch: while blue drains, and at least
    /// `watch_after_switch`.
    fn watch_span(&self) -> Duration {
        let drain = self.bg.blue_target_group.deregistration_delay;
        drain.max(self.bg.settings.watch_after_switch)
    }

    /// Blue's traffic from [`BASELINE_LOOKBACK`] before the rollout started until the
    /// switch: what it served alone, then beside the testers or an A/B canary's steps.
    async fn baseline(
        &self,
        started: kiln_cloud::Timestamp,
        switched: kiln_cloud::Timestamp,
    ) -> Result<crate::compare::Sample, RolloutError> {
        let blue = &self.bg.blue_target_group;
        let from = started - chrono_of(BASELINE_LOOKBACK);
        let lb = blue.load_balancer_arns.first();
        crate::compare::sample(self.cloud, lb, &blue.arn, from, switched).await
    }

    /// Green since the switch against blue before it: `Some` once decided (worse
    /// on enough requests, or the watch's end), `None` to watch on. Too few requests by
    /// the end is no evidence against green: it passes with a warning, the other gates
    /// having held.
    async fn compare_after_switch(
        &self,
        green: &Green,
        switched: &Switched,
        last: bool,
    ) -> Result<Option<Result<(), StopReason>>, RolloutError> {
        let thresholds = &self.bg.settings.compare;
        let lb = self.bg.blue_target_group.load_balancer_arns.first();
        let now = self.cloud.clock.now();
        let tg = &green.target_group.arn;
        let canary = crate::compare::sample(self.cloud, lb, tg, switched.at, now).await?;
        let verdict = crate::compare::decide(canary, switched.baseline, thresholds);
        let text =
            format!("after the switch, green as canary, blue before it as baseline: {verdict}");
        let conclusive = verdict.canary.requests >= thresholds.min_requests;
        let subject = &green.target_group.name;
        match (&verdict.failure, conclusive, last) {
            (Some(_), true, _) => {
                self.emit.error("compare", subject, text);
                let detail = verdict.to_string();
                Ok(Some(Err(StopReason::Comparison { step: 100, detail })))
            }
            (_, _, false) => Ok(None),
            (Some(_), false, true) => {
                self.emit.warn("compare", subject, text);
                Ok(Some(Ok(())))
            }
            (None, _, true) => {
                self.emit.info("compare", subject, text);
                Ok(Some(Ok(())))
            }
        }
    }

    /// Sleeps one poll; true when cancelled meanwhile.
    async fn pause(&self) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => true,
            _ = tokio::time::sleep(self.plan.spec.timeouts.poll) => false,
        }
    }

    /// Watches the gates for `span`.
    async fn watch_for(
        &self,
        green: &Green,
        gates: &mut GateState,
        span: Duration,
    ) -> Result<Result<(), StopReason>, RolloutError> {
        let ctx = self.gate_context(green);
        let until = self.cloud.clock.now() + chrono_of(span);
        while self.cloud.clock.now() < until {
            if self.pause().await {
                return Ok(Err(StopReason::Cancelled));
            }
            if let Some(Err(stop)) = self.gates_once(&ctx, green, gates).await? {
                return Ok(Err(stop));
            }
        }
        Ok(Ok(()))
    }

    /// The testers' rule and its hold, then the weighted steps; the rule is removed
    /// whatever happens.
    async fn before_switch(
        &self,
        green: &Green,
        gates: &mut GateState,
        made: &mut Made,
    ) -> Result<Result<(), StopReason>, RolloutError> {
        self.create_preview(green, made).await?;
        let mut result = Ok(());
        if let Some(p) = &self.bg.settings.preview {
            result = self.watch_for(green, gates, p.hold).await?;
        }
        if result.is_ok() {
            result = self.traffic_steps(green, gates).await?;
        }
        for rule in std::mem::take(&mut made.rules) {
            self.remove(ResourceKind::ListenerRule, rule.as_str(), "testers' rule")
                .await;
        }
        Ok(result)
    }

    async fn create_preview(&self, green: &Green, made: &mut Made) -> Result<(), RolloutError> {
        let Some(p) = &self.bg.settings.preview else {
            return Ok(());
        };
        let mut conditions = Vec::new();
        if !p.source_ips.is_empty() {
            conditions.push(RuleCondition::SourceIp(p.source_ips.clone()));
        }
        if let Some(h) = &p.header {
            conditions.push(RuleCondition::HttpHeader {
                name: h.name.clone(),
                values: h.values.clone(),
            });
        }
        for l in &self.bg.listeners {
            let request = CreateRule {
                listener_arn: l.listener.clone(),
                priority: p.priority,
                conditions: conditions.clone(),
                forward: Forward {
                    target_groups: vec![WeightedTarget {
                        target_group_arn: green.target_group.arn.clone(),
                        weight: 1,
                    }],
                    stickiness: None,
                },
                tags: self.kiln_tags(ROLE_PREVIEW),
            };
            let rule = self.cloud.load_balancing.create_rule(&request).await?;
            self.ledger
                .record(ResourceKind::ListenerRule, rule.arn.as_str());
            made.rules.push(rule.arn.clone());
            self.emit.info(
                "preview",
                l.listener.as_str(),
                format!(
                    "testers reach green for {} (rule {})",
                    human(p.hold),
                    rule.arn
                ),
            );
        }
        Ok(())
    }

    /// Every listener forwards `percent` of its traffic to green, the rest to blue.
    async fn weigh(&self, green: &Green, percent: i32) -> Result<(), RolloutError> {
        for l in &self.bg.listeners {
            let f = weighted(
                &l.original,
                &self.bg.blue_target_group.arn,
                &green.target_group.arn,
                percent,
                self.bg.sticky,
            );
            self.cloud
                .load_balancing
                .modify_listener_forward(&l.listener, &f)
                .await?;
        }
        Ok(())
    }

    async fn traffic_steps(
        &self,
        green: &Green,
        gates: &mut GateState,
    ) -> Result<Result<(), StopReason>, RolloutError> {
        let s = &self.bg.settings;
        for &percent in s.traffic_steps.iter().filter(|p| (1..100).contains(*p)) {
            self.weigh(green, percent).await?;
            self.emit.info(
                "traffic",
                &green.group,
                format!("{percent}% of traffic to green"),
            );
            if let Err(stop) = self.watch_step(green, gates, percent).await? {
                return Ok(Err(stop));
            }
        }
        Ok(Ok(()))
    }

    /// Watches one traffic step for `step_bake`. An A/B canary is also compared with the
    /// baseline every minute: stopped as soon as it is worse on enough requests, and
    /// decided at the step's end.
    async fn watch_step(
        &self,
        green: &Green,
        gates: &mut GateState,
        percent: i32,
    ) -> Result<Result<(), StopReason>, RolloutError> {
        let bake = self.bg.settings.step_bake;
        if self.bg.ab.is_none() {
            return self.watch_for(green, gates, bake).await;
        }
        let began = self.cloud.clock.now();
        let compare = |last| self.compare_step(green, percent, began, last);
        self.watch_comparing(green, gates, bake, compare).await
    }

    /// An A/B canary's comparison over the step so far, with the compared values in the
    /// progress: `Some` once decided (a failure on enough requests, or the step's end),
    /// `None` to watch on.
    async fn compare_step(
        &self,
        green: &Green,
        percent: i32,
        began: kiln_cloud::Timestamp,
        last: bool,
    ) -> Result<Option<Result<(), StopReason>>, RolloutError> {
        let Some(thresholds) = &self.bg.ab else {
            return Ok(Some(Ok(())));
        };
        let blue = &self.bg.blue_target_group;
        let window = (began, self.cloud.clock.now());
        let lb = blue.load_balancer_arns.first();
        let canary = &green.target_group.arn;
        let verdict =
            crate::compare::compare(self.cloud, lb, canary, &blue.arn, window, thresholds).await?;
        let text = format!("step {percent}%: {verdict}");
        // Any failure but "too few requests" is already evidence enough.
        let conclusive = verdict.canary.requests >= thresholds.min_requests;
        if verdict.failure.is_some() && (last || conclusive) {
            self.emit.error("compare", &green.target_group.name, text);
            let detail = verdict.to_string();
            return Ok(Some(Err(StopReason::Comparison {
                step: percent,
                detail,
            })));
        }
        if !last {
            tracing::debug!(step = percent, "{verdict}");
            return Ok(None);
        }
        self.emit.info("compare", &green.target_group.name, text);
        Ok(Some(Ok(())))
    }

    /// Every listener to green (blue stays at weight 0, health-checked, so that
    /// switching back is as quick and safe as switching over, PITFALLS 30).
    async fn switch(&self, green: &Green) -> Result<(), RolloutError> {
        self.weigh(green, 100).await?;
        let n = self.bg.listeners.len();
        let text = format!("{n} listener(s) now forward to green");
        self.emit.info("switch", &green.group, text);
        Ok(())
    }

    async fn tag_switched(&self, green: &Green) -> Result<(), RolloutError> {
        // The window counts from the end of the watch after the switch, when the run
        // accepts green: a rollback within it is still one listener change.
        let kept = self.watch_span() + self.bg.settings.rollback_window;
        let until = self.cloud.clock.now() + chrono_of(kept);
        let tags = Tags::from([
            (TAG_LIVE.to_string(), "true".to_string()),
            (TAG_BLUE_GROUP.to_string(), self.bg.blue_group.clone()),
            (
                TAG_BLUE_TARGET_GROUP.to_string(),
                self.bg.blue_target_group.arn.to_string(),
            ),
            (TAG_BLUE_UNTIL.to_string(), until.to_rfc3339()),
            (TAG_TARGET.to_string(), self.plan.spec.target.clone()),
        ]);
        self.cloud
            .scaling
            .put_group_tags(&green.group, &tags)
            .await?;
        let blue = Tags::from([
            (TAG_LIVE.to_string(), "false".to_string()),
            (TAG_TARGET.to_string(), self.plan.spec.target.clone()),
        ]);
        self.cloud
            .scaling
            .put_group_tags(&self.bg.blue_group, &blue)
            .await?;
        Ok(())
    }

    async fn tag_switched_back(&self, made: &Made) -> Result<(), RolloutError> {
        let off = Tags::from([(TAG_LIVE.to_string(), "false".to_string())]);
        if let Some(green) = &made.group {
            self.cloud.scaling.put_group_tags(green, &off).await?;
        }
        let on = Tags::from([(TAG_LIVE.to_string(), "true".to_string())]);
        self.cloud
            .scaling
            .put_group_tags(&self.bg.blue_group, &on)
            .await?;
        Ok(())
    }
}

fn green_group_request(
    blue: &Group,
    name: &str,
    template_id: &LaunchTemplateId,
    version: i64,
    tg: &TargetGroup,
    tags: Tags,
) -> CreateGroup {
    CreateGroup {
        name: name.to_string(),
        template: GroupTemplate {
            template_id: Some(template_id.clone()),
            template_name: None,
            version: version.to_string(),
        },
        min_size: blue.min_size,
        max_size: blue.max_size,
        desired_capacity: blue.desired_capacity,
        subnet_ids: blue.subnet_ids.clone(),
        target_group_arns: vec![tg.arn.clone()],
        health_check_type: blue.health_check_type.clone(),
        health_check_grace: blue.health_check_grace,
        default_instance_warmup: blue.default_instance_warmup,
        tags,
    }
}

/// `rollback` of a blue/green target: every listener that forwards to green goes back
/// to blue in one change each. Returns `None` when `group` is not a blue/green target.
pub(crate) async fn switch_back(
    cloud: &Cloud,
    group: &Group,
    emit: &Emitter<'_>,
) -> Result<Option<RolloutOutcome>, RolloutError> {
    let Some(live) = live_green(cloud, group).await? else {
        return Ok(None);
    };
    let mut timings = Timings::new(&*cloud.clock);
    let blue_group = live.tags[TAG_BLUE_GROUP].clone();
    let blue_tg = Arn::new(live.tags[TAG_BLUE_TARGET_GROUP].clone());
    let Some(green_tg) = live.target_group_arns.first().cloned() else {
        return Err(RolloutError::Invalid {
            what: format!("group {}", live.name),
            region: cloud.region.clone(),
            detail: "green has no target group: switch the listener by hand".into(),
        });
    };
    let mut switched = 0;
    for l in listeners_of(cloud, &green_tg).await? {
        let Some(s) = switch_of(l, &green_tg) else {
            continue;
        };
        let back = back_to_blue(&s.original, &green_tg, &blue_tg);
        cloud
            .load_balancing
            .modify_listener_forward(&s.listener, &back)
            .await?;
        switched += 1;
    }
    set_live(cloud, &live.name, false).await?;
    set_live(cloud, &blue_group, true).await?;
    timings.lap("switch_back");
    let text = format!("{switched} listener(s) back on blue");
    emit.info("rollback", &blue_group, text);
    let blue = lock::describe(cloud, &blue_group).await?;
    let now = crate::run::running(cloud, &blue).await?;
    Ok(Some(RolloutOutcome {
        target: live.tags.get(TAG_TARGET).cloned().unwrap_or_default(),
        group: blue_group,
        strategy: "blue_green".into(),
        launch_template_version: now.version,
        previous_version: group_version(&live),
        status: status::ROLLED_BACK.into(),
        desired: blue.desired_capacity,
        on_new_image: now.on_image,
        image: now.image,
        note: None,
        timings: timings.list,
    }))
}

fn group_version(g: &Group) -> i64 {
    g.launch_template
        .as_ref()
        .and_then(|t| t.numbered_version())
        .unwrap_or_default()
}

async fn set_live(cloud: &Cloud, group: &str, live: bool) -> Result<(), RolloutError> {
    let tags = Tags::from([(TAG_LIVE.to_string(), live.to_string())]);
    cloud.scaling.put_group_tags(group, &tags).await?;
    Ok(())
}

/// Every listener of the load balancers that use target group `tg`.
pub(crate) async fn listeners_of(cloud: &Cloud, tg: &Arn) -> Result<Vec<Listener>, RolloutError> {
    let described = cloud.load_balancing.describe_target_groups(&[]).await?;
    let lbs = described
        .iter()
        .find(|t| &t.arn == tg)
        .map(|t| t.load_balancer_arns.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for lb in lbs {
        out.extend(cloud.load_balancing.describe_listeners(&lb).await?);
    }
    Ok(out)
}

/// A green group that `group` was blue of and that a rollback switched away from (it is
/// no longer live), if any.
pub(crate) async fn rolled_back_from(
    cloud: &Cloud,
    group: &Group,
) -> Result<Option<String>, RolloutError> {
    let all = cloud.scaling.describe_groups(&[]).await?;
    Ok(all
        .into_iter()
        .find(|g| {
            g.tags.get(TAG_BLUE_GROUP) == Some(&group.name)
                && g.tags.get(TAG_LIVE).map(String::as_str) == Some("false")
        })
        .map(|g| g.name))
}

/// The group that serves the pipeline's `target`, whose file names `group`: the one
/// tagged live for it, else `group` (a blue retired by `kiln gc` is gone, its green is
/// the target's group now).
pub async fn serving_group(
    cloud: &Cloud,
    target: &str,
    group: &str,
) -> Result<String, RolloutError> {
    let cloud = &crate::patient::patient(cloud);
    let groups = cloud.scaling.describe_groups(&[]).await?;
    let live = groups.into_iter().find(|g| {
        g.tags.get(TAG_TARGET).map(String::as_str) == Some(target)
            && g.tags.get(TAG_LIVE).map(String::as_str) == Some("true")
    });
    Ok(live.map_or_else(|| group.to_string(), |g| g.name))
}

/// The group that serves `group`'s target: its live green, else `group` itself.
pub(crate) async fn serving(cloud: &Cloud, group: &Group) -> Result<Group, RolloutError> {
    Ok(live_green(cloud, group)
        .await?
        .unwrap_or_else(|| group.clone()))
}

/// The live green group of `group`'s target, if the target is blue/green.
async fn live_green(cloud: &Cloud, group: &Group) -> Result<Option<Group>, RolloutError> {
    let is_live_green = |g: &Group| {
        g.tags.contains_key(TAG_BLUE_GROUP)
            && g.tags.get(TAG_LIVE).map(String::as_str) == Some("true")
    };
    if is_live_green(group) {
        return Ok(Some(group.clone()));
    }
    let Some(target) = group.tags.get(TAG_TARGET) else {
        return Ok(None);
    };
    let all = cloud.scaling.describe_groups(&[]).await?;
    Ok(all
        .into_iter()
        .find(|g| g.tags.get(TAG_TARGET) == Some(target) && is_live_green(g)))
}

/// What `retire` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    pub blue_group: String,
    pub blue_target_group: Arn,
    /// The group that stays live.
    pub live_group: String,
}

/// Retires the blue group kept after a blue/green switch: out of the listeners, group
/// and target group deleted. Refused before the rollback window ends unless `force`.
pub async fn retire(
    cloud: &Cloud,
    group: &str,
    progress: &dyn kiln_cloud::Progress,
    force: bool,
) -> Result<Retired, RolloutError> {
    let cloud = &crate::patient::patient(cloud);
    let emit = Emitter {
        progress,
        clock: &*cloud.clock,
    };
    let g = lock::describe(cloud, group).await?;
    let invalid = |detail: String| RolloutError::Invalid {
        what: format!("retiring blue of group {group}"),
        region: cloud.region.clone(),
        detail,
    };
    let Some(live) = live_green(cloud, &g).await? else {
        return Err(invalid("no blue group is kept for this target".into()));
    };
    let until = live.tags.get(TAG_BLUE_UNTIL).cloned().unwrap_or_default();
    let open = chrono::DateTime::parse_from_rfc3339(&until)
        .is_ok_and(|u| cloud.clock.now() < u.with_timezone(&chrono::Utc));
    if open && !force {
        return Err(invalid(format!(
            "the rollback window is open until {until}; retire after it, or force it"
        )));
    }
    let blue_group = live.tags[TAG_BLUE_GROUP].clone();
    let blue_tg = Arn::new(live.tags[TAG_BLUE_TARGET_GROUP].clone());
    drop_from_listeners(cloud, &live, &blue_tg).await?;
    // Its instances drain and terminate before the group is gone.
    crate::remove::group(cloud, &blue_group)
        .await
        .map_err(|detail| invalid(format!("blue group {blue_group} not deleted: {detail}")))?;
    cloud.load_balancing.delete_target_group(&blue_tg).await?;
    forget_blue(cloud, &live.name, &blue_group).await?;
    emit.info("retire", &blue_group, "blue group and target group deleted");
    Ok(Retired {
        blue_group,
        blue_target_group: blue_tg,
        live_group: live.name,
    })
}

/// `green` no longer keeps `blue` (deleted): its blue tags go, and it records that blue
/// was retired, so that a rollback says there is nothing to switch back to.
pub(crate) async fn forget_blue(
    cloud: &Cloud,
    green: &str,
    blue: &str,
) -> Result<(), RolloutError> {
    let keys = [TAG_BLUE_GROUP, TAG_BLUE_TARGET_GROUP, TAG_BLUE_UNTIL].map(String::from);
    cloud.scaling.delete_group_tags(green, &keys).await?;
    let at = cloud.clock.now().to_rfc3339();
    let retired = Tags::from([(TAG_BLUE_RETIRED.to_string(), format!("{blue} {at}"))]);
    cloud.scaling.put_group_tags(green, &retired).await?;
    Ok(())
}

/// Removes `blue` from every listener action of the live group's load balancers.
async fn drop_from_listeners(cloud: &Cloud, live: &Group, blue: &Arn) -> Result<(), RolloutError> {
    let Some(green_tg) = live.target_group_arns.first() else {
        return Ok(());
    };
    for l in listeners_of(cloud, green_tg).await? {
        let Some(mut f) = l.default_forward else {
            continue;
        };
        if !f.target_groups.iter().any(|t| &t.target_group_arn == blue) {
            continue;
        }
        f.target_groups.retain(|t| &t.target_group_arn != blue);
        if f.target_groups.len() == 1 {
            f.target_groups[0].weight = 1;
        }
        cloud
            .load_balancing
            .modify_listener_forward(&l.arn, &f)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(s: &str) -> Arn {
        Arn::new(s)
    }

    fn single(tg: &str) -> Forward {
        Forward {
            target_groups: vec![WeightedTarget {
                target_group_arn: arn(tg),
                weight: 1,
            }],
            stickiness: None,
        }
    }

    #[test]
    fn weighted_forwarding_gets_group_stickiness_when_a_group_is_sticky() {
        let f = weighted(&single("blue"), &arn("blue"), &arn("green"), 10, true);
        assert_eq!(f.stickiness, Some(GROUP_STICKINESS));
        let weights: Vec<i32> = f.target_groups.iter().map(|t| t.weight).collect();
        assert_eq!(weights, [90, 10]);
        let plain = weighted(&single("blue"), &arn("blue"), &arn("green"), 10, false);
        assert_eq!(plain.stickiness, None);
    }

    #[test]
    fn back_to_blue_swaps_weights_or_replaces_green() {
        let live = weighted(&single("blue"), &arn("blue"), &arn("green"), 100, false);
        let back = back_to_blue(&live, &arn("green"), &arn("blue"));
        let w: Vec<(String, i32)> = back
            .target_groups
            .iter()
            .map(|t| (t.target_group_arn.to_string(), t.weight))
            .collect();
        assert_eq!(w, [("blue".into(), 100), ("green".into(), 0)]);
        let only_green = back_to_blue(&single("green"), &arn("green"), &arn("blue"));
        assert_eq!(only_green, single("blue"));
    }

    #[test]
    fn green_names_do_not_grow_and_fit_elb_limits() {
        assert_eq!(base_name("poc-web-asg-v7"), "poc-web-asg");
        assert_eq!(base_name("poc-web-asg"), "poc-web-asg");
        assert_eq!(tg_name("poc-web-tg-v3", 4), "poc-web-tg-v4");
        let long = tg_name("a-very-long-target-group-name-xx", 12);
        assert!(
            long.len() <= MAX_TARGET_GROUP_NAME && long.ends_with("-v12"),
            "{long}"
        );
    }
}
