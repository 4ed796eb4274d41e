//! CloudWatch in the simulation: alarms, and the load balancer metrics kiln's gates read
//! (RequestCount, HTTPCode_Target_5XX_Count, TargetResponseTime per target group).
//!
//! Traffic is a model, not a measurement: each listener receives a steady request rate,
//! split across its target groups by weight; a target group with no healthy target
//! answers every request it gets with errors, slowly (ELB fails open to unhealthy
//! targets, whose application is broken).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::CloudResult;
use crate::types::*;

use super::model::*;
use super::world::World;

/// Requests per second each listener receives.
const REQUESTS_PER_SEC: f64 = 20.0;
/// Response time of a healthy target, seconds.
const HEALTHY_LATENCY: f64 = 0.045;
/// Response time of a broken target, seconds (the app times out on its database).
const BROKEN_LATENCY: f64 = 5.5;
/// CloudWatch's standard resolution for load balancer metrics: one-minute buckets, and
/// alarms evaluated once a minute.
const BUCKET_SECS: i64 = 60;
/// Metric history kept, in one-minute buckets (three hours: longer than any gate).
const KEEP_MINUTES: usize = 180;

/// One minute of one target group's traffic.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Bucket {
    pub minute: Option<Timestamp>,
    pub requests: f64,
    pub errors: f64,
    pub latency_sum: f64,
}

/// Metric history per target group ARN, newest bucket last.
pub type History = BTreeMap<String, Vec<Bucket>>;

pub fn describe_alarms(w: &mut World, names: &[String]) -> CloudResult<Vec<Alarm>> {
    let out =
        w.r.alarms
            .values()
            .filter(|a| names.is_empty() || names.contains(&a.alarm.name));
    Ok(out.map(|a| a.alarm.clone()).collect())
}

/// Adds one second of traffic to each target group's history.
pub fn step(w: &mut World) -> bool {
    let minute = w.now - chrono::Duration::seconds(w.now.timestamp() % BUCKET_SECS);
    let mut share: BTreeMap<String, f64> = BTreeMap::new();
    for l in w.r.listeners.values() {
        let Some(f) = &l.default_forward else {
            continue;
        };
        let total: i32 = f.target_groups.iter().map(|t| t.weight).sum();
        for t in f.target_groups.iter().filter(|t| t.weight > 0) {
            let part = REQUESTS_PER_SEC * t.weight as f64 / total.max(1) as f64;
            *share.entry(t.target_group_arn.0.clone()).or_default() += part;
        }
    }
    for (arn, requests) in share {
        let (error_rate, latency) = served(w, &Arn::new(arn.clone()));
        let errors = requests * error_rate;
        let history = w.r.metrics.entry(arn).or_default();
        if history.last().is_none_or(|b| b.minute != Some(minute)) {
            history.push(Bucket {
                minute: Some(minute),
                ..Bucket::default()
            });
            if history.len() > KEEP_MINUTES {
                history.remove(0);
            }
        }
        let b = history.last_mut().expect("pushed above");
        b.requests += requests;
        b.errors += errors;
        b.latency_sum += latency * requests;
    }
    if w.now.timestamp() % BUCKET_SECS == 0 {
        return evaluate_alarms(w);
    }
    false
}

/// A target group's share of 5xx answers and its response time: requests spread evenly
/// over its healthy targets, each answering as its image does (a degraded-image fault),
/// and all broken when none is healthy.
fn served(w: &World, arn: &Arn) -> (f64, f64) {
    let Some(tg) = w.r.target_groups.get(arn.as_str()) else {
        return (1.0, BROKEN_LATENCY);
    };
    let healthy: Vec<&String> = tg
        .targets
        .iter()
        .filter(|(_, t)| t.health.state == TargetState::Healthy)
        .map(|(id, _)| id)
        .collect();
    if healthy.is_empty() {
        return (1.0, BROKEN_LATENCY);
    }
    let (mut errors, mut latency) = (0.0, 0.0);
    for id in &healthy {
        let image =
            w.r.instances
                .get(id.as_str())
                .map(|i| i.instance.image_id.0.clone());
        match image.as_deref().and_then(|i| w.faults.degraded(i)) {
            Some(f) => (errors, latency) = (errors + f.error_rate, latency + f.latency_secs),
            None => latency += HEALTHY_LATENCY,
        }
    }
    let n = healthy.len() as f64;
    (errors / n, latency / n)
}

/// The target group a metric's dimensions name (`targetgroup/name/id` or the name).
fn target_group_of(r: &Region, dims: &Tags) -> Option<String> {
    let want = dims.get("TargetGroup")?;
    r.target_groups
        .values()
        .find(|t| t.group.arn.0.ends_with(want.as_str()) || &t.group.name == want)
        .map(|t| t.group.arn.0.clone())
}

fn value(
    r: &Region,
    metric: &str,
    dims: &Tags,
    stat: &str,
    from: Timestamp,
    to: Timestamp,
) -> Option<f64> {
    let arn = target_group_of(r, dims)?;
    let buckets: Vec<&Bucket> = r
        .metrics
        .get(&arn)?
        .iter()
        .filter(|b| b.minute.is_some_and(|m| m >= from && m < to))
        .collect();
    let requests: f64 = buckets.iter().map(|b| b.requests).sum();
    if buckets.is_empty() || requests == 0.0 {
        return None;
    }
    let sum = match metric {
        "RequestCount" => requests,
        "HTTPCode_Target_5XX_Count" => buckets.iter().map(|b| b.errors).sum(),
        "TargetResponseTime" => {
            return Some(buckets.iter().map(|b| b.latency_sum).sum::<f64>() / requests)
        }
        _ => return None,
    };
    Some(match stat {
        "Average" => sum / buckets.len() as f64,
        _ => sum,
    })
}

pub fn get_metric_data(w: &mut World, queries: &[MetricQuery]) -> CloudResult<Vec<Option<f64>>> {
    let out = queries.iter().map(|q| {
        if q.namespace != "AWS/ApplicationELB" {
            return None;
        }
        value(w.r, &q.metric, &q.dimensions, &q.statistic, q.start, q.end)
    });
    Ok(out.collect())
}

/// Alarms that follow metrics take the state their last period says.
fn evaluate_alarms(w: &mut World) -> bool {
    let now = w.now;
    let mut changed = false;
    let names: Vec<String> = w.r.alarms.keys().cloned().collect();
    for name in names {
        let a = &w.r.alarms[&name];
        if !a.follows_metrics {
            continue;
        }
        let metric = a.alarm.metric_name.clone().unwrap_or_default();
        let from = now - dur(a.period);
        let v = value(w.r, &metric, &a.alarm.dimensions, &a.statistic, from, now);
        let threshold = a.alarm.threshold.unwrap_or(0.0);
        let breach = v.map(|v| compare(&a.comparison, v, threshold));
        let state = match breach {
            Some(true) => AlarmState::Alarm,
            Some(false) => AlarmState::Ok,
            None => AlarmState::InsufficientData,
        };
        let a = w.r.alarms.get_mut(&name).expect("listed above");
        if a.alarm.state != state {
            a.alarm.state = state;
            a.alarm.reason = Some(match v {
                Some(v) => format!("Threshold crossed: {metric} = {v} against {threshold}"),
                None => format!("Insufficient data: no datapoint of {metric} in the period"),
            });
            changed = true;
        }
    }
    changed
}

fn compare(op: &str, v: f64, t: f64) -> bool {
    match op {
        "GreaterThanOrEqualToThreshold" => v >= t,
        "LessThanThreshold" => v < t,
        "LessThanOrEqualToThreshold" => v <= t,
        _ => v > t,
    }
}
