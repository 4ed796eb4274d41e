//! The rollout spec as a pipeline file writes it (YAML, durations in humantime), and the
//! plan as `kiln plan --output json` prints it.

mod common;

use std::time::Duration;

use common::*;
use kiln_rollout::{plan, RolloutSpec, Strategy};

const ROLLING: &str = r#"
target: poc-web
group: poc-web-asg
launch_template: poc-web-lt
target_group: poc-web-tg
load_balancer: poc-poc-alb
strategy:
  kind: rolling
  min_healthy_percentage: 100
  max_healthy_percentage: 150
  boot_time: 45s
  protected_instances: Ignore
gates:
  alarms: [poc-web-5xx]
  http_probe: /health
  unhealthy_after: 5m
timeouts: { rollout: 45m, poll: 10s }
"#;

const BLUE_GREEN: &str = r#"
target: poc-web
group: poc-web-asg
launch_template: poc-web-lt
target_group: poc-web-tg
load_balancer: poc-poc-alb
strategy:
  kind: blue_green
  preview: { header: { name: X-Kiln-Preview, values: [tester] }, hold: 30m }
  traffic_steps: [10, 50]
  rollback_window: 2h
"#;

#[test]
fn a_rolling_target_reads_from_yaml_with_defaults_for_the_rest() {
    let spec: RolloutSpec = serde_yaml_ng::from_str(ROLLING).expect("parses");
    let Strategy::Rolling(r) = &spec.strategy else {
        panic!("rolling")
    };
    assert_eq!(r.boot_time, Duration::from_secs(45));
    assert_eq!(r.instance_warmup, None);
    assert!(r.skip_matching && r.auto_rollback, "documented defaults");
    assert_eq!(spec.gates.unhealthy_after, Some(Duration::from_secs(300)));
    assert_eq!(spec.timeouts.rollout, Duration::from_secs(45 * 60));
    assert_eq!(
        spec.timeouts.rollback,
        kiln_rollout::DEFAULT_ROLLBACK_TIMEOUT
    );
}

#[test]
fn a_blue_green_target_reads_from_yaml() {
    let spec: RolloutSpec = serde_yaml_ng::from_str(BLUE_GREEN).expect("parses");
    let Strategy::BlueGreen(b) = &spec.strategy else {
        panic!("blue/green")
    };
    let preview = b.preview.as_ref().unwrap();
    assert_eq!(
        (preview.hold, preview.priority),
        (Duration::from_secs(1800), 1)
    );
    assert_eq!(preview.header.as_ref().unwrap().values, ["tester"]);
    assert_eq!(b.traffic_steps, [10, 50]);
}

#[test]
fn a_misspelt_setting_is_an_error() {
    let typo = ROLLING.replace("max_healthy_percentage", "max_healty_percentage");
    let err = serde_yaml_ng::from_str::<RolloutSpec>(&typo).unwrap_err();
    assert!(err.to_string().contains("max_healty_percentage"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_plan_prints_as_json_with_the_order_and_both_percentages() {
    let (_account, cloud) = poc().await;
    let spec: RolloutSpec = serde_yaml_ng::from_str(ROLLING).unwrap();
    let p = plan(&cloud, &spec, &new_image()).await.unwrap();
    let json = serde_json::to_value(&p).unwrap();
    let refresh = &json["refresh"];
    assert_eq!(refresh["order"], "launch_before_terminate");
    assert_eq!(refresh["preferences"]["min_healthy_percentage"], 100);
    assert_eq!(refresh["preferences"]["max_healthy_percentage"], 150);
    assert_eq!(json["template"]["source_version"], 2);
    let back: kiln_rollout::RolloutPlan = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
}

#[tokio::test(start_paused = true)]
async fn the_plan_reads_as_text_with_the_order_and_the_gates() {
    let (_account, cloud) = poc().await;
    let spec: RolloutSpec = serde_yaml_ng::from_str(ROLLING).unwrap();
    let text = plan(&cloud, &spec, &new_image()).await.unwrap().to_string();
    assert!(text.contains("launch before terminate"), "{text}");
    assert!(
        text.contains("version 2") && text.contains(NEW_IMAGE),
        "{text}"
    );
    assert!(
        text.contains("alarms poc-web-5xx") && text.contains("probe /health"),
        "{text}"
    );
    eprintln!("{text}");
}

#[test]
fn an_ab_canary_reads_from_yaml_with_documented_defaults() {
    let text = r#"
mode: ab
traffic_steps: [10, 50, 100]
bake: 10m
compare: { max_error_rate_increase: 0.5, min_latency_increase: 250ms }
"#;
    let c: kiln_rollout::CanarySettings = serde_yaml_ng::from_str(text).expect("parses");
    assert_eq!(c.mode, kiln_rollout::CanaryMode::Ab);
    assert_eq!(c.traffic_steps, [10, 50, 100]);
    assert_eq!(c.bake, Duration::from_secs(600));
    assert_eq!(c.compare.max_error_rate_increase, 0.5);
    assert_eq!(c.compare.min_latency_increase, Duration::from_millis(250));
    assert_eq!(
        c.compare.max_latency_ratio,
        kiln_rollout::DEFAULT_MAX_LATENCY_RATIO
    );
    assert_eq!(c.compare.min_requests, kiln_rollout::DEFAULT_MIN_REQUESTS);
    let plain: kiln_rollout::CanarySettings = serde_yaml_ng::from_str("{}").unwrap();
    assert_eq!(plain.mode, kiln_rollout::CanaryMode::Checkpoints);
    assert_eq!(plain.traffic_steps, kiln_rollout::DEFAULT_AB_STEPS);
    let typo = serde_yaml_ng::from_str::<kiln_rollout::CanarySettings>("mode: a_b");
    assert!(typo.is_err(), "an unknown mode is refused");
}
