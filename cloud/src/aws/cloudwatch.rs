//! [`Metrics`] on CloudWatch: alarm states and metric statistics for rollout gates.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types as cw;
use aws_sdk_cloudwatch::Client;

use super::convert::{aws_timestamp, seconds_i32, tags_from};
use super::error::{from_sdk, Call};
use crate::error::CloudResult;
use crate::ports::Metrics;
use crate::types::*;

/// Standard-resolution metrics aggregate in whole minutes: a period must be a multiple of
/// this many seconds.
const PERIOD_GRANULARITY_SECS: i64 = 60;

/// CloudWatch of one region.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: Client,
    region: String,
}

impl CloudWatch {
    pub(crate) fn new(client: Client, region: impl Into<String>) -> Self {
        Self {
            client,
            region: region.into(),
        }
    }

    fn call(&self, operation: &'static str, resource: impl ToString) -> Call<'_> {
        Call::new(&self.region, operation, resource)
    }

    /// One GetMetricData call for queries that share a window.
    async fn window_values(
        &self,
        window: (Timestamp, Timestamp),
        queries: &[(usize, &MetricQuery)],
    ) -> CloudResult<HashMap<usize, f64>> {
        let what = || {
            let names: Vec<_> = queries.iter().map(|(_, q)| q.metric.as_str()).collect();
            names.join(",")
        };
        let results = self
            .client
            .get_metric_data()
            .start_time(aws_timestamp(window.0))
            .end_time(aws_timestamp(window.1))
            .set_metric_data_queries(Some(
                queries.iter().map(|(i, q)| data_query(*i, q)).collect(),
            ))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("GetMetricData", what()), e))?;
        Ok(results
            .iter()
            .flat_map(|page| page.metric_data_results())
            .filter_map(|r| {
                let index = r.id()?.strip_prefix('q')?.parse().ok()?;
                // Newest first: with a period as long as the window there is one value.
                Some((index, *r.values().first()?))
            })
            .collect())
    }
}

fn state(value: Option<&cw::StateValue>) -> AlarmState {
    match value {
        Some(cw::StateValue::Ok) => AlarmState::Ok,
        Some(cw::StateValue::Alarm) => AlarmState::Alarm,
        _ => AlarmState::InsufficientData,
    }
}

fn metric_alarm(a: &cw::MetricAlarm) -> Alarm {
    Alarm {
        name: a.alarm_name().unwrap_or_default().to_string(),
        state: state(a.state_value()),
        reason: a.state_reason().map(String::from),
        metric_name: a.metric_name().map(String::from),
        namespace: a.namespace().map(String::from),
        dimensions: tags_from(a.dimensions().iter().map(|d| (d.name(), d.value()))),
        threshold: a.threshold(),
    }
}

fn composite_alarm(a: &cw::CompositeAlarm) -> Alarm {
    Alarm {
        name: a.alarm_name().unwrap_or_default().to_string(),
        state: state(a.state_value()),
        reason: a.state_reason().map(String::from),
        metric_name: None,
        namespace: None,
        dimensions: Tags::new(),
        threshold: None,
    }
}

/// The period covering the whole window, so that AWS answers one value: the statistic
/// over the window, as the port promises.
fn window_period(q: &MetricQuery) -> i32 {
    let window = (q.end - q.start)
        .num_seconds()
        .max(q.period.as_secs() as i64);
    let minutes = (window + PERIOD_GRANULARITY_SECS - 1) / PERIOD_GRANULARITY_SECS;
    seconds_i32(std::time::Duration::from_secs(
        (minutes.max(1) * PERIOD_GRANULARITY_SECS) as u64,
    ))
}

fn data_query(index: usize, q: &MetricQuery) -> cw::MetricDataQuery {
    let dimensions = q
        .dimensions
        .iter()
        .map(|(k, v)| cw::Dimension::builder().name(k).value(v).build())
        .collect();
    let metric = cw::Metric::builder()
        .namespace(&q.namespace)
        .metric_name(&q.metric)
        .set_dimensions(Some(dimensions))
        .build();
    let stat = cw::MetricStat::builder()
        .metric(metric)
        .period(window_period(q))
        .stat(&q.statistic)
        .build();
    cw::MetricDataQuery::builder()
        .id(format!("q{index}"))
        .metric_stat(stat)
        .return_data(true)
        .build()
}

#[async_trait]
impl Metrics for CloudWatch {
    async fn describe_alarms(&self, names: &[String]) -> CloudResult<Vec<Alarm>> {
        let pages = self
            .client
            .describe_alarms()
            .set_alarm_names((!names.is_empty()).then(|| names.to_vec()))
            .alarm_types(cw::AlarmType::MetricAlarm)
            .alarm_types(cw::AlarmType::CompositeAlarm)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| from_sdk(self.call("DescribeAlarms", names.join(",")), e))?;
        Ok(pages
            .iter()
            .flat_map(|p| {
                let metric = p.metric_alarms().iter().map(metric_alarm);
                metric.chain(p.composite_alarms().iter().map(composite_alarm))
            })
            .collect())
    }

    async fn get_metric_data(&self, queries: &[MetricQuery]) -> CloudResult<Vec<Option<f64>>> {
        // One call carries one window; queries with different windows go in separate calls.
        let mut windows: Vec<((Timestamp, Timestamp), Vec<(usize, &MetricQuery)>)> = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            match windows.iter_mut().find(|(w, _)| *w == (q.start, q.end)) {
                Some((_, members)) => members.push((i, q)),
                None => windows.push(((q.start, q.end), vec![(i, q)])),
            }
        }
        let mut values = vec![None; queries.len()];
        for (window, members) in &windows {
            for (i, value) in self.window_values(*window, members).await? {
                values[i] = Some(value);
            }
        }
        Ok(values)
    }
}
