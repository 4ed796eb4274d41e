//! The A/B canary's decision rule: the canary target group's 5xx rate and response time
//! over a step's window, read from CloudWatch, against the baseline's over the same
//! window ([`AbThresholds`] says by how much worse is too much).

use std::fmt;
use std::time::Duration;

use kiln_cloud::{Arn, Cloud, MetricQuery, Timestamp};

use crate::error::RolloutError;
use crate::spec::AbThresholds;

/// The namespace of the load balancer metrics compared.
const NAMESPACE: &str = "AWS/ApplicationELB";
/// CloudWatch's resolution for load balancer metrics.
const METRIC_PERIOD: Duration = Duration::from_secs(60);

/// One target group's traffic over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub requests: f64,
    /// 5xx answers over requests, in percent.
    pub error_percent: f64,
    /// Mean TargetResponseTime, seconds; `None` without requests.
    pub latency_secs: Option<f64>,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let latency = self
            .latency_secs
            .map_or("no data".to_string(), |l| format!("{:.0} ms", l * 1000.0));
        write!(
            f,
            "5xx {:.2}% of {:.0} requests, latency {latency}",
            self.error_percent, self.requests
        )
    }
}

/// A step's decision with the values it compared.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub canary: Sample,
    pub baseline: Sample,
    /// Why the canary failed; `None` when it passed.
    pub failure: Option<String>,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decision = match &self.failure {
            None => "pass".to_string(),
            Some(why) => format!("FAIL ({why})"),
        };
        write!(
            f,
            "canary {} vs baseline {}: {decision}",
            self.canary, self.baseline
        )
    }
}

/// The rule itself, on two samples.
pub(crate) fn decide(canary: Sample, baseline: Sample, t: &AbThresholds) -> Verdict {
    let failure = if canary.requests < t.min_requests {
        Some(format!(
            "only {:.0} canary requests, fewer than {:.0}: lengthen bake or lower min_requests",
            canary.requests, t.min_requests
        ))
    } else if canary.error_percent > baseline.error_percent + t.max_error_rate_increase {
        Some(format!(
            "5xx rate {:.2}% is more than {} points above the baseline's {:.2}%",
            canary.error_percent, t.max_error_rate_increase, baseline.error_percent
        ))
    } else {
        latency_failure(canary, baseline, t)
    };
    Verdict {
        canary,
        baseline,
        failure,
    }
}

fn latency_failure(canary: Sample, baseline: Sample, t: &AbThresholds) -> Option<String> {
    let (Some(c), Some(b)) = (canary.latency_secs, baseline.latency_secs) else {
        return None;
    };
    let slower = c > b * t.max_latency_ratio && c - b > t.min_latency_increase.as_secs_f64();
    slower.then(|| {
        format!(
            "latency {:.0} ms is more than {}× the baseline's {:.0} ms",
            c * 1000.0,
            t.max_latency_ratio,
            b * 1000.0
        )
    })
}

/// The `TargetGroup` / `LoadBalancer` dimension value of an ELB ARN (`targetgroup/n/id`,
/// `app/n/id`): what follows the last colon, without `prefix`.
fn dimension_of(arn: &Arn, resource: &str) -> String {
    let text = arn.as_str();
    let after = text.rsplit_once(':').map_or(text, |(_, r)| r);
    after.strip_prefix(resource).unwrap_or(after).to_string()
}

/// Reads both target groups' metrics over `[from, to)` and decides.
pub(crate) async fn compare(
    cloud: &Cloud,
    load_balancer: Option<&Arn>,
    canary: &Arn,
    baseline: &Arn,
    (from, to): (Timestamp, Timestamp),
    thresholds: &AbThresholds,
) -> Result<Verdict, RolloutError> {
    let c = sample(cloud, load_balancer, canary, from, to).await?;
    let b = sample(cloud, load_balancer, baseline, from, to).await?;
    Ok(decide(c, b, thresholds))
}

pub(crate) async fn sample(
    cloud: &Cloud,
    load_balancer: Option<&Arn>,
    tg: &Arn,
    start: Timestamp,
    end: Timestamp,
) -> Result<Sample, RolloutError> {
    let mut dimensions =
        kiln_cloud::Tags::from([("TargetGroup".to_string(), dimension_of(tg, ""))]);
    // ELB publishes target group metrics per load balancer too; AWS matches the whole
    // dimension set.
    if let Some(lb) = load_balancer {
        let value = dimension_of(lb, "loadbalancer/");
        dimensions.insert("LoadBalancer".to_string(), value);
    }
    let query = |metric: &str, statistic: &str| MetricQuery {
        namespace: NAMESPACE.into(),
        metric: metric.into(),
        dimensions: dimensions.clone(),
        statistic: statistic.into(),
        period: METRIC_PERIOD,
        start,
        end,
    };
    let values = cloud
        .metrics
        .get_metric_data(&[
            query("RequestCount", "Sum"),
            query("HTTPCode_Target_5XX_Count", "Sum"),
            query("TargetResponseTime", "Average"),
        ])
        .await?;
    let at = |i: usize| values.get(i).copied().flatten();
    let requests = at(0).unwrap_or(0.0);
    // ELB publishes no 5xx datapoint for a minute without one.
    let errors = at(1).unwrap_or(0.0);
    let error_percent = if requests > 0.0 {
        errors * 100.0 / requests
    } else {
        0.0
    };
    Ok(Sample {
        requests,
        error_percent,
        latency_secs: at(2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(requests: f64, error_percent: f64, latency_ms: f64) -> Sample {
        Sample {
            requests,
            error_percent,
            latency_secs: Some(latency_ms / 1000.0),
        }
    }

    #[test]
    fn a_canary_like_the_baseline_passes() {
        let v = decide(
            s(300.0, 0.0, 45.0),
            s(5700.0, 0.0, 45.0),
            &AbThresholds::default(),
        );
        assert_eq!(v.failure, None, "{v}");
        assert!(v.to_string().ends_with("pass"), "{v}");
    }

    #[test]
    fn more_errors_than_allowed_fail_and_name_both_rates() {
        let t = AbThresholds::default();
        let ok = decide(s(300.0, 1.2, 45.0), s(5700.0, 0.5, 45.0), &t);
        assert_eq!(ok.failure, None, "{ok}");
        let bad = decide(s(300.0, 2.0, 45.0), s(5700.0, 0.5, 45.0), &t);
        let why = bad.failure.clone().expect("fails");
        assert!(why.contains("2.00%") && why.contains("0.50%"), "{why}");
    }

    #[test]
    fn latency_fails_only_above_both_the_ratio_and_the_floor() {
        let t = AbThresholds::default();
        // Twice as slow but 45 ms more: noise.
        assert_eq!(
            decide(s(300.0, 0.0, 90.0), s(900.0, 0.0, 45.0), &t).failure,
            None
        );
        // 1.4 times as slow: within the ratio.
        assert_eq!(
            decide(s(300.0, 0.0, 700.0), s(900.0, 0.0, 500.0), &t).failure,
            None
        );
        let slow = decide(s(300.0, 0.0, 900.0), s(900.0, 0.0, 500.0), &t);
        assert!(slow.failure.expect("fails").contains("900 ms"));
    }

    #[test]
    fn too_few_canary_requests_fail() {
        let v = decide(
            s(20.0, 0.0, 45.0),
            s(900.0, 0.0, 45.0),
            &AbThresholds::default(),
        );
        assert!(v.failure.expect("fails").contains("bake"));
    }

    #[test]
    fn dimensions_are_the_arn_resource_paths() {
        let tg = Arn::new("arn:aws:elasticloadbalancing:ap-northeast-1:1:targetgroup/poc/abc");
        assert_eq!(dimension_of(&tg, ""), "targetgroup/poc/abc");
        let lb = Arn::new("arn:aws:elasticloadbalancing:ap-northeast-1:1:loadbalancer/app/x/1");
        assert_eq!(dimension_of(&lb, "loadbalancer/"), "app/x/1");
    }
}
