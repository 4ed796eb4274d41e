//! CloudWatch: alarm states, and metric queries over a window.

use std::time::Duration;

use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_data::{GetMetricDataInput, GetMetricDataOutput};
use aws_sdk_cloudwatch::types as cw;
use aws_sdk_cloudwatch::Client;
use aws_smithy_mocks::mock;

use super::{mocked, REGION};
use crate::aws::CloudWatch;
use crate::ports::Metrics;
use crate::types::*;

#[tokio::test]
async fn alarms_of_both_kinds_are_read() {
    let describe = mock!(Client::describe_alarms)
        .match_requests(|r| {
            assert_eq!(r.alarm_names(), ["web-5xx", "web-health"]);
            let kinds = r.alarm_types();
            assert!(kinds.contains(&cw::AlarmType::MetricAlarm));
            assert!(kinds.contains(&cw::AlarmType::CompositeAlarm));
            true
        })
        .then_output(|| {
            let metric = cw::MetricAlarm::builder()
                .alarm_name("web-5xx")
                .state_value(cw::StateValue::Alarm)
                .state_reason("Threshold Crossed")
                .metric_name("HTTPCode_Target_5XX_Count")
                .namespace("AWS/ApplicationELB")
                .dimensions(
                    cw::Dimension::builder()
                        .name("LoadBalancer")
                        .value("app/poc")
                        .build(),
                )
                .threshold(10.0)
                .build();
            let composite = cw::CompositeAlarm::builder()
                .alarm_name("web-health")
                .state_value(cw::StateValue::Ok)
                .build();
            DescribeAlarmsOutput::builder()
                .metric_alarms(metric)
                .composite_alarms(composite)
                .build()
        });
    let metrics = CloudWatch::new(mocked!(aws_sdk_cloudwatch, describe), REGION);

    let names = ["web-5xx".to_string(), "web-health".to_string()];
    let alarms = metrics.describe_alarms(&names).await.expect("alarms");

    assert_eq!(alarms.len(), 2);
    assert_eq!(alarms[0].name, "web-5xx");
    assert_eq!(alarms[0].state, AlarmState::Alarm);
    assert_eq!(alarms[0].reason.as_deref(), Some("Threshold Crossed"));
    assert_eq!(
        alarms[0].dimensions.get("LoadBalancer").map(String::as_str),
        Some("app/poc")
    );
    assert_eq!(alarms[0].threshold, Some(10.0));
    assert_eq!(alarms[1].name, "web-health");
    assert_eq!(alarms[1].state, AlarmState::Ok);
}

fn query(metric: &str, statistic: &str, minutes: i64) -> MetricQuery {
    let end = chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("a time");
    MetricQuery {
        namespace: "AWS/ApplicationELB".to_string(),
        metric: metric.to_string(),
        dimensions: [(
            "TargetGroup".to_string(),
            "targetgroup/web-green/1".to_string(),
        )]
        .into(),
        statistic: statistic.to_string(),
        period: Duration::from_secs(60),
        start: end - chrono::Duration::minutes(minutes),
        end,
    }
}

/// One window per call, and a period as long as the window, so that each query has one
/// value: the statistic over the whole window.
fn one_window(r: &GetMetricDataInput) -> bool {
    let window = r.end_time().expect("end").secs() - r.start_time().expect("start").secs();
    for q in r.metric_data_queries() {
        let stat = q.metric_stat().expect("a metric statistic");
        assert_eq!(i64::from(stat.period().expect("period")), window);
        let metric = stat.metric().expect("metric");
        assert_eq!(metric.namespace(), Some("AWS/ApplicationELB"));
        assert_eq!(metric.dimensions()[0].name(), Some("TargetGroup"));
        assert_eq!(q.return_data(), Some(true));
    }
    true
}

#[tokio::test]
async fn each_query_gets_the_statistic_over_its_window() {
    let data = mock!(Client::get_metric_data)
        .match_requests(one_window)
        .then_compute_output(|r| {
            let results = r
                .metric_data_queries()
                .iter()
                .filter(|q| q.id() != Some("q1"))
                .map(|q| {
                    let stat = q.metric_stat().and_then(|s| s.stat()).unwrap_or_default();
                    let value = if stat == "p99" { 850.0 } else { 3.0 };
                    cw::MetricDataResult::builder()
                        .id(q.id().unwrap_or_default())
                        .values(value)
                        .build()
                })
                .collect();
            GetMetricDataOutput::builder()
                .set_metric_data_results(Some(results))
                .build()
        });
    let metrics = CloudWatch::new(mocked!(aws_sdk_cloudwatch, data), REGION);

    let queries = [
        query("TargetResponseTime", "p99", 5),
        query("HTTPCode_Target_5XX_Count", "Sum", 5),
        query("HTTPCode_Target_5XX_Count", "Sum", 10),
    ];
    let values = metrics.get_metric_data(&queries).await.expect("values");

    assert_eq!(values, [Some(850.0), None, Some(3.0)], "q1 had no data");
    assert_eq!(data.num_calls(), 2, "two windows, two calls");
}
