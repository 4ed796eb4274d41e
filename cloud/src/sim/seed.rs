//! The seed: a YAML description of an account (regions, networks, images, parameters,
//! templates, load balancers, groups, alarms) that a new state file starts from.
//!
//! Every struct refuses unknown fields, so a typo in a seed is an error with its line.
//! Groups start "settled": their instances running, registered and healthy, as an
//! estate that has been up for a day.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::faults::Faults;
use super::model::*;
use super::{compute, scaling, SimError};
use crate::types::*;

/// How long before the seed's start time the settled instances were launched.
const SETTLED_AGE_SECS: u64 = 86_400;
/// RNG seed when the seed file gives none.
const DEFAULT_RNG_SEED: u64 = 20_231_103;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub account_id: String,
    pub home_region: String,
    pub start_time: Timestamp,
    #[serde(default)]
    pub rng_seed: Option<u64>,
    #[serde(default)]
    pub instance_profiles: Vec<String>,
    pub regions: BTreeMap<String, RegionSeed>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionSeed {
    pub vpcs: Vec<String>,
    pub subnets: Vec<SubnetSeed>,
    pub security_groups: Vec<SecurityGroupSeed>,
    pub images: Vec<ImageSeed>,
    pub parameters: Vec<ParameterSeed>,
    pub launch_templates: Vec<TemplateSeed>,
    pub target_groups: Vec<TargetGroupSeed>,
    pub load_balancers: Vec<LoadBalancerSeed>,
    pub groups: Vec<GroupSeed>,
    pub alarms: Vec<AlarmSeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetSeed {
    pub id: String,
    pub vpc: String,
    pub zone: String,
    pub cidr: String,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupSeed {
    pub id: String,
    pub name: String,
    pub vpc: String,
    #[serde(default)]
    pub ingress_rules: usize,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSeed {
    pub id: String,
    pub name: String,
    /// `amazon`, `self`, or an account id.
    pub owner: String,
    pub created: Timestamp,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub root_volume_gib: Option<i32>,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSeed {
    pub name: String,
    #[serde(rename = "type", default = "string_type")]
    pub kind: ParameterType,
    pub value: String,
    #[serde(default)]
    pub description: Option<String>,
}

fn string_type() -> ParameterType {
    ParameterType::String
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSeed {
    pub id: String,
    pub name: String,
    pub default_version: i64,
    /// Versions 1, 2, ... in order.
    pub versions: Vec<VersionSeed>,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSeed {
    #[serde(default)]
    pub description: Option<String>,
    pub image: String,
    pub instance_type: String,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub instance_profile: Option<String>,
    #[serde(default)]
    pub user_data: Option<String>,
    #[serde(default)]
    pub metadata_http_tokens: Option<String>,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroupSeed {
    pub name: String,
    pub vpc: String,
    pub port: i32,
    #[serde(default = "http")]
    pub protocol: String,
    pub health_check: HealthCheckSeed,
    #[serde(with = "humantime_serde")]
    pub deregistration_delay: Duration,
    #[serde(default)]
    pub stickiness: bool,
}

fn http() -> String {
    "HTTP".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSeed {
    pub path: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub healthy_threshold: i32,
    pub unhealthy_threshold: i32,
    #[serde(default = "ok_code")]
    pub matcher: String,
}

fn ok_code() -> String {
    "200".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSeed {
    pub name: String,
    pub vpc: String,
    pub listeners: Vec<ListenerSeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSeed {
    pub port: i32,
    #[serde(default = "http")]
    pub protocol: String,
    /// Target group names and weights of the default forward action.
    pub forward: BTreeMap<String, i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSeed {
    pub name: String,
    pub launch_template: String,
    /// `"3"`, `$Latest` or `$Default`.
    pub version: String,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub subnets: Vec<String>,
    #[serde(default)]
    pub target_groups: Vec<String>,
    #[serde(default = "elb_type")]
    pub health_check_type: String,
    #[serde(with = "humantime_serde")]
    pub health_check_grace: Duration,
    #[serde(default, with = "humantime_serde")]
    pub default_instance_warmup: Option<Duration>,
    #[serde(default)]
    pub tags: Tags,
}

fn elb_type() -> String {
    "ELB".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmSeed {
    pub name: String,
    pub namespace: String,
    pub metric: String,
    #[serde(default)]
    pub dimensions: Tags,
    pub statistic: String,
    pub comparison: String,
    pub threshold: f64,
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    #[serde(default = "ok_state")]
    pub state: AlarmState,
}

fn ok_state() -> AlarmState {
    AlarmState::Ok
}

impl Seed {
    pub fn parse(text: &str, origin: &str) -> Result<Self, SimError> {
        serde_yaml_ng::from_str(text).map_err(|e| SimError::parse(origin, &e))
    }

    /// The account this seed describes, settled at its start time.
    pub fn into_state(self, origin: &str) -> Result<State, SimError> {
        let meta = Meta {
            account_id: self.account_id.clone(),
            home_region: self.home_region.clone(),
            now: self.start_time,
            instance_profiles: self.instance_profiles.clone(),
            rng: SimRng {
                seed: self.rng_seed.unwrap_or(DEFAULT_RNG_SEED),
                draws: 0,
            },
            next_id: 0,
        };
        let mut state = State {
            meta,
            faults: Faults::default(),
            regions: BTreeMap::new(),
        };
        if !self.regions.contains_key(&self.home_region) {
            let msg = format!("home region {} is not among the regions", self.home_region);
            return Err(SimError::Seed {
                origin: origin.into(),
                message: msg,
            });
        }
        for (name, seed) in self.regions {
            state.regions.insert(name.clone(), Region::default());
            build_region(&mut state, &name, seed).map_err(|message| SimError::Seed {
                origin: origin.into(),
                message,
            })?;
        }
        Ok(state)
    }
}

fn build_region(state: &mut State, name: &str, seed: RegionSeed) -> Result<(), String> {
    let account = state.meta.account_id.clone();
    let start = state.meta.now;
    let mut w = state.world(name).expect("inserted by the caller");
    w.r.vpcs = seed.vpcs.clone();
    for s in seed.subnets {
        w.r.subnets.push(Subnet {
            id: SubnetId::new(s.id),
            vpc_id: s.vpc,
            availability_zone: s.zone,
            cidr: s.cidr,
            tags: s.tags,
        });
    }
    for g in seed.security_groups {
        let group = SecurityGroup {
            id: SecurityGroupId::new(&g.id),
            name: g.name,
            vpc_id: g.vpc,
            ingress_rules: g.ingress_rules,
            tags: g.tags,
        };
        w.r.security_groups.insert(g.id, group);
    }
    for i in seed.images {
        add_image(&mut w, i, &account);
    }
    for p in seed.parameters {
        let param = Parameter {
            name: p.name.clone(),
            value: p.value,
            kind: p.kind,
            version: 1,
            last_modified: Some(start),
            description: p.description,
        };
        w.r.parameters.insert(p.name, vec![param]);
    }
    for t in seed.launch_templates {
        add_template(&mut w, t)?;
    }
    for t in seed.target_groups {
        add_target_group(&mut w, t);
    }
    for l in seed.load_balancers {
        add_load_balancer(&mut w, l)?;
    }
    for a in seed.alarms {
        add_alarm(&mut w, a);
    }
    for g in seed.groups {
        add_group(&mut w, g)?;
    }
    Ok(())
}

fn add_image(w: &mut super::world::World, i: ImageSeed, account: &str) {
    let amazon = i.owner == "amazon";
    let owner_id = match i.owner.as_str() {
        "amazon" => compute::AMAZON_OWNER.to_string(),
        "self" => account.to_string(),
        other => other.to_string(),
    };
    let snap = SnapshotId::new(w.meta.id("snap"));
    if !amazon {
        let snapshot = Snapshot {
            id: snap.clone(),
            state: "completed".into(),
            start_time: Some(i.created),
            tags: Tags::new(),
        };
        w.r.snapshots.insert(
            snap.0.clone(),
            SimSnapshot {
                snapshot,
                ready_at: None,
            },
        );
    }
    let mut device = compute::root_device(Some(snap));
    device.volume_size_gib = i.root_volume_gib.or(device.volume_size_gib);
    let image = Image {
        id: ImageId::new(&i.id),
        name: i.name,
        description: i.description,
        state: ImageState::Available,
        state_reason: None,
        owner_id,
        creation_date: Some(i.created),
        deprecation_time: None,
        block_devices: vec![device],
        tags: i.tags,
    };
    let mut sim = compute::new_sim_image(image, None);
    sim.created_here = false;
    sim.public = amazon;
    sim.owner_alias = amazon.then(|| "amazon".to_string());
    w.r.images.insert(i.id, sim);
}

fn add_template(w: &mut super::world::World, t: TemplateSeed) -> Result<(), String> {
    let id = LaunchTemplateId::new(&t.id);
    let latest = t.versions.len() as i64;
    if t.default_version < 1 || t.default_version > latest {
        return Err(format!(
            "template {}: default version {} does not exist",
            t.name, t.default_version
        ));
    }
    let mut versions = BTreeMap::new();
    for (n, v) in t.versions.into_iter().enumerate() {
        let number = n as i64 + 1;
        let data = LaunchTemplateData {
            image_id: Some(ImageId::new(v.image)),
            instance_type: Some(v.instance_type),
            security_group_ids: v
                .security_groups
                .into_iter()
                .map(SecurityGroupId::new)
                .collect(),
            instance_profile: v.instance_profile,
            user_data: v.user_data,
            metadata_http_tokens: v.metadata_http_tokens,
            tags: v.tags,
        };
        let version = LaunchTemplateVersion {
            template_id: id.clone(),
            template_name: t.name.clone(),
            version: number,
            description: v.description,
            is_default: number == t.default_version,
            data,
        };
        versions.insert(number, version);
    }
    let template = LaunchTemplate {
        id: id.clone(),
        name: t.name,
        default_version: t.default_version,
        latest_version: latest,
        tags: t.tags,
    };
    w.r.templates.insert(
        t.id,
        SimTemplate {
            template,
            versions,
            issued: 0,
        },
    );
    Ok(())
}

fn add_target_group(w: &mut super::world::World, t: TargetGroupSeed) {
    w.meta.next_id += 1;
    let arn = Arn::new(super::elb::target_group_arn(w, &t.name));
    let h = t.health_check;
    let group = TargetGroup {
        arn: arn.clone(),
        name: t.name,
        protocol: t.protocol.clone(),
        port: t.port,
        vpc_id: t.vpc,
        health_check: HealthCheck {
            path: h.path,
            port: "traffic-port".into(),
            protocol: t.protocol,
            interval: h.interval,
            timeout: h.timeout,
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
            matcher: h.matcher,
        },
        load_balancer_arns: Vec::new(),
        deregistration_delay: t.deregistration_delay,
        stickiness_enabled: t.stickiness,
        tags: Tags::new(),
    };
    let sim = SimTargetGroup {
        group,
        targets: BTreeMap::new(),
        tags: Tags::new(),
    };
    w.r.target_groups.insert(arn.0, sim);
}

fn tg_arn(w: &super::world::World, name: &str) -> Result<Arn, String> {
    w.r.target_groups
        .values()
        .find(|t| t.group.name == name)
        .map(|t| t.group.arn.clone())
        .ok_or_else(|| format!("target group {name} is not in the seed"))
}

fn add_load_balancer(w: &mut super::world::World, l: LoadBalancerSeed) -> Result<(), String> {
    let suffix = format!("{:016x}", w.meta.next_id.wrapping_mul(0x2545_f491));
    w.meta.next_id += 1;
    let (region, account) = (w.region.to_string(), w.meta.account_id.clone());
    let arn = format!(
        "arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/app/{}/{suffix}",
        l.name
    );
    let lb = LoadBalancer {
        arn: Arn::new(&arn),
        name: l.name.clone(),
        dns_name: format!("{}-{}.{region}.elb.amazonaws.com", l.name, &suffix[..8]),
        vpc_id: l.vpc,
    };
    w.r.load_balancers.push(lb);
    for ls in l.listeners {
        let mut targets = Vec::new();
        for (name, weight) in &ls.forward {
            targets.push(WeightedTarget {
                target_group_arn: tg_arn(w, name)?,
                weight: *weight,
            });
        }
        let listener_arn = format!(
            "{}/{:016x}",
            arn.replace(":loadbalancer/", ":listener/"),
            ls.port
        );
        let listener = Listener {
            arn: Arn::new(&listener_arn),
            load_balancer_arn: Arn::new(&arn),
            port: ls.port,
            protocol: ls.protocol,
            default_forward: Some(Forward {
                target_groups: targets,
                stickiness: None,
            }),
        };
        w.r.listeners.insert(listener_arn, listener);
    }
    Ok(())
}

fn add_alarm(w: &mut super::world::World, a: AlarmSeed) {
    let follows = a.namespace == "AWS/ApplicationELB";
    let alarm = Alarm {
        name: a.name.clone(),
        state: a.state,
        reason: None,
        metric_name: Some(a.metric),
        namespace: Some(a.namespace),
        dimensions: a.dimensions,
        threshold: Some(a.threshold),
    };
    let sim = SimAlarm {
        alarm,
        comparison: a.comparison,
        statistic: a.statistic,
        period: a.period,
        follows_metrics: follows,
    };
    w.r.alarms.insert(a.name, sim);
}

fn add_group(w: &mut super::world::World, g: GroupSeed) -> Result<(), String> {
    let template =
        w.r.templates
            .values()
            .find(|t| t.template.name == g.launch_template)
            .map(|t| t.template.id.clone())
            .ok_or_else(|| {
                format!(
                    "group {}: launch template {} is not in the seed",
                    g.name, g.launch_template
                )
            })?;
    let mut arns = Vec::new();
    for name in &g.target_groups {
        arns.push(tg_arn(w, name)?);
    }
    let req = CreateGroup {
        name: g.name.clone(),
        template: GroupTemplate {
            template_id: Some(template),
            template_name: Some(g.launch_template),
            version: g.version,
        },
        min_size: g.min,
        max_size: g.max,
        desired_capacity: g.desired,
        subnet_ids: g.subnets.into_iter().map(SubnetId::new).collect(),
        target_group_arns: arns,
        health_check_type: g.health_check_type,
        health_check_grace: g.health_check_grace,
        default_instance_warmup: g.default_instance_warmup,
        tags: g.tags,
    };
    scaling::create(w, &req).map_err(|e| format!("group {}: {e}", g.name))?;
    settle(w, &g.name, &req.template).map_err(|e| format!("group {}: {e}", g.name))
}

/// Fills a group to its desired capacity with instances that have been serving for a day.
fn settle(
    w: &mut super::world::World,
    name: &str,
    template: &GroupTemplate,
) -> crate::CloudResult<()> {
    let start = w.now;
    let launched = start - secs(SETTLED_AGE_SECS);
    w.now = launched;
    for _ in 0..w.r.groups[name].group.desired_capacity {
        let id = scaling::launch_member(w, name, template)?;
        let inst = w.r.instances.get_mut(id.as_str()).expect("just launched");
        inst.instance.state = InstanceState::Running;
        inst.instance.launch_time = Some(launched);
        inst.running_at = launched;
        inst.app_ready_at = launched;
        inst.agent_at = inst.agent_at.map(|_| launched);
    }
    let g = w.r.groups.get_mut(name).expect("created above");
    for m in &mut g.members {
        m.lifecycle = scaling::IN_SERVICE.into();
        m.in_service_at = Some(launched);
        m.launched_at = launched;
    }
    let (ids, arns): (Vec<InstanceId>, Vec<Arn>) = (
        g.members.iter().map(|m| m.id.clone()).collect(),
        g.group.target_group_arns.clone(),
    );
    for arn in &arns {
        for id in &ids {
            super::elb::register(w, arn, id);
            let tg = w.r.target_groups.get_mut(arn.as_str()).expect("checked");
            let t = tg.targets.get_mut(id.as_str()).expect("registered");
            t.health.state = TargetState::Healthy;
            (t.health.reason, t.health.description) = (None, None);
        }
    }
    w.now = start;
    Ok(())
}
