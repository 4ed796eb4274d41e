//! The values AWS accepts for a rollout's settings, and the ranges outside which a value
//! is surely a mistake (a zero poll, a 1000-day deadline, an A/B test that compares
//! nothing), checked without calling it.
//!
//! AWS refuses an out-of-range percentage or timeout only when the call is made, which for
//! a pipeline is after an hour of baking; the settings are checked when the file is read.
//! Each problem names the field (a path below the settings it was found in), so that the
//! caller can point at the line that holds it.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::spec::{
    AbThresholds, BlueGreenSettings, CanaryMode, CanarySettings, Gates, InPlaceSettings, Preview,
    RollingSettings, Timeouts,
};

/// Healthy percentages of an instance refresh (StartInstanceRefresh).
const MIN_HEALTHY: std::ops::RangeInclusive<i32> = 0..=100;
const MAX_HEALTHY: std::ops::RangeInclusive<i32> = 100..=200;
/// AWS allows at most this many points between the two healthy percentages.
const HEALTHY_SPREAD: i32 = 100;
/// Checkpoint and traffic percentages: a share of the group or of the requests.
const PERCENT: std::ops::RangeInclusive<i32> = 1..=100;
/// A group's default instance warm-up accepts 0 to 3600 s; a refresh's warm-up (and the
/// boot time it is derived from) is held to the same range.
const WARMUP_MAX: Duration = Duration::from_secs(3600);
/// CheckpointDelay accepts 0 to 172800 s (48 h).
const CHECKPOINT_DELAY_MAX: Duration = Duration::from_secs(172_800);
/// [`CHECKPOINT_DELAY_MAX`] as people write it.
const CHECKPOINT_DELAY_TEXT: &str = "48h";
/// Run Command: TimeoutSeconds (delivery) accepts 30 s to 2592000 s and the shell
/// document's executionTimeout 1 s to 172800 s; kiln uses `timeouts.command` for both.
const COMMAND_MIN: Duration = Duration::from_secs(30);
const COMMAND_MAX: Duration = Duration::from_secs(172_800);
/// A rollout's deadline: at least a minute, as nothing is replaced faster (an instance
/// boots and passes at least two health checks 5 s apart); at most a week, which covers a
/// canary pausing at three checkpoints of AWS's longest CheckpointDelay (48 h). A longer
/// one only keeps the group locked by a run that is stuck.
const ROLLOUT_TIMEOUT: RangeInclusive<Duration> = minutes(1)..=hours(7 * 24);
/// A rollback is one refresh without pauses, or one listener change: a minute at least,
/// two days at most (far more than any takes; longer only hides a stuck one).
const ROLLBACK_TIMEOUT: RangeInclusive<Duration> = minutes(1)..=hours(48);
/// The polling interval: every wait sleeps this long between reads, so zero never lets
/// time pass and spins (on the simulated clock, forever). Below a second only spends the
/// API's rate limits (AWS updates a refresh's progress about every 15 s); above five
/// minutes a failed gate (a gate is read once a poll) serves users that long before the
/// rollback starts.
const POLL: RangeInclusive<Duration> = Duration::from_secs(1)..=minutes(5);
/// How long a new instance may stay not healthy: at least 10 s, the fastest an ALB can
/// call a target healthy (HealthyThresholdCount 2 × HealthCheckIntervalSeconds 5), or
/// every rollout stops; at most two of the longest warm-ups AWS accepts (1 h), what the
/// default (two warm-ups) reaches. Waiting longer is AWS's own hour-long wait that this
/// gate exists to cut short (PITFALLS 8).
const UNHEALTHY_AFTER: RangeInclusive<Duration> = Duration::from_secs(10)..=hours(2);
/// How long blue (or an A/B baseline) is kept after the switch: at least five minutes, so
/// that an alarm on the new version's traffic (CloudWatch periods of one to five minutes)
/// can fire while blue can still take the traffic back; at most a week, since blue at full
/// capacity doubles the target's instances and switching back to a week-old release is a
/// new rollout, not a rollback.
const ROLLBACK_WINDOW: RangeInclusive<Duration> = minutes(5)..=hours(7 * 24);
/// Blue/green's traffic steps and testers' hold pause the run like a canary checkpoint,
/// and are held to CheckpointDelay's limit (48 h): they lengthen the group's lock.
const PAUSE_MAX: Duration = CHECKPOINT_DELAY_MAX;
/// Green is compared with blue after the switch for at least one CloudWatch datapoint
/// (a minute), and at most as long as a pause: the watch holds the group's lock.
const WATCH_AFTER_SWITCH: RangeInclusive<Duration> = minutes(1)..=PAUSE_MAX;
/// SendCommand takes at most 50 instance ids per call.
const BATCH_MAX: usize = 50;
/// Listener rule priorities are 1 to 50000.
const RULE_PRIORITY: std::ops::RangeInclusive<i32> = 1..=50_000;
/// CloudWatch alarm names are 1 to 255 characters.
const ALARM_NAME_MAX: usize = 255;
/// The longest health check path an ALB target group takes; the probe asks the same kind
/// of path of each instance.
const PROBE_PATH_MAX: usize = 1024;
/// What a probe path may hold besides letters and digits: URL path and query characters
/// that a shell reads as themselves (the path is one word of the `curl` command the probe
/// runs on each instance), so no `;`, `&`, `$`, quotes or spaces.
const PROBE_PATH_CHARS: &str = "-._~/%?=+,:@";
/// The step at which an A/B canary takes all the traffic: the switch.
const ALL_TRAFFIC: i32 = 100;
/// A 5xx rate is a percentage: a rise of more than 100 points can never happen, so a
/// larger allowance turns the error comparison off.
const ERROR_RATE_INCREASE_MAX: f64 = 100.0;
/// The latency comparison also needs the canary `min_latency_increase` slower, so a
/// ratio below 1 would mean nothing; infinity would turn the comparison off.
const LATENCY_RATIO_MIN: f64 = 1.0;
/// An ALB's idle timeout is at most 4000 s: no request waits longer, so a larger
/// `min_latency_increase` turns the latency comparison off.
const LATENCY_INCREASE_MAX: Duration = Duration::from_secs(4000);
/// A step with no canary request proves nothing: at least one must be seen.
const MIN_REQUESTS_MIN: f64 = 1.0;

/// One part of a field's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Key(&'static str),
    Index(usize),
}

/// A setting AWS would refuse: where (below the settings checked), what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    pub field: Vec<Field>,
    pub message: String,
    pub hint: String,
}

impl SpecProblem {
    fn new(field: Vec<Field>, message: String, hint: impl Into<String>) -> Self {
        Self {
            field,
            message,
            hint: hint.into(),
        }
    }

    /// The same problem, one level further down (`refresh.min_healthy_percentage`).
    fn under(mut self, key: &'static str) -> Self {
        self.field.insert(0, Field::Key(key));
        self
    }
}

const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

const fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

/// `range` as a hint says it: `give it between 1m and 7days`, and why.
fn between(range: &RangeInclusive<Duration>, why: &str) -> String {
    format!(
        "give it between {} and {}: {why}",
        secs(*range.start()),
        secs(*range.end())
    )
}

/// A duration outside `range`, as a problem of `key`.
fn duration_problem(
    key: &'static str,
    value: Duration,
    range: &RangeInclusive<Duration>,
    why: &str,
) -> Option<SpecProblem> {
    (!range.contains(&value)).then(|| out_of_range(key, secs(value), between(range, why)))
}

fn secs(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn out_of_range(key: &'static str, value: String, hint: String) -> SpecProblem {
    SpecProblem::new(
        vec![Field::Key(key)],
        format!("{key} {value} is out of range"),
        hint,
    )
}

/// Percentages in 1..=100, strictly ascending.
fn percent_steps(key: &'static str, steps: &[i32], what: &str) -> Option<SpecProblem> {
    for (i, step) in steps.iter().enumerate() {
        let field = vec![Field::Key(key), Field::Index(i)];
        if !PERCENT.contains(step) {
            return Some(SpecProblem::new(
                field,
                format!("{key} value {step} is not a percentage of {what}"),
                "give each step between 1 and 100",
            ));
        }
        if i > 0 && steps[i - 1] >= *step {
            return Some(SpecProblem::new(
                field,
                format!(
                    "{key} are not in ascending order ({} then {step})",
                    steps[i - 1]
                ),
                "list each percentage once, smallest first",
            ));
        }
    }
    None
}

impl RollingSettings {
    /// What AWS would refuse in these refresh preferences, first problem first.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let (min, max) = (self.min_healthy_percentage, self.max_healthy_percentage);
        let mut out = Vec::new();
        if !MIN_HEALTHY.contains(&min) {
            let hint = "AWS accepts 0 to 100 (percent of the desired capacity kept healthy)";
            out.push(out_of_range(
                "min_healthy_percentage",
                min.to_string(),
                hint.into(),
            ));
        } else if !MAX_HEALTHY.contains(&max) {
            let hint = "AWS accepts 100 to 200 (percent of the desired capacity in service \
                        or launching)";
            out.push(out_of_range(
                "max_healthy_percentage",
                max.to_string(),
                hint.into(),
            ));
        } else if max - min > HEALTHY_SPREAD {
            out.push(SpecProblem::new(
                vec![Field::Key("max_healthy_percentage")],
                format!(
                    "max_healthy_percentage {max} is more than {HEALTHY_SPREAD} above \
                     min_healthy_percentage {min}"
                ),
                format!(
                    "AWS allows at most {HEALTHY_SPREAD} between them: lower \
                     max_healthy_percentage to {} or raise min_healthy_percentage",
                    min + HEALTHY_SPREAD
                ),
            ));
        }
        let warmup_hint = || format!("give it between 0s and {}", secs(WARMUP_MAX));
        if let Some(w) = self.instance_warmup.filter(|w| *w > WARMUP_MAX) {
            out.push(out_of_range("instance_warmup", secs(w), warmup_hint()));
        }
        if self.boot_time > WARMUP_MAX {
            out.push(out_of_range(
                "boot_time",
                secs(self.boot_time),
                warmup_hint(),
            ));
        }
        out.extend(percent_steps("checkpoints", &self.checkpoints, "the group"));
        if let Some(d) = self.checkpoint_delay.filter(|d| *d > CHECKPOINT_DELAY_MAX) {
            let hint = format!("AWS accepts 0s to {CHECKPOINT_DELAY_TEXT}");
            out.push(out_of_range("checkpoint_delay", secs(d), hint));
        }
        out
    }
}

impl CanarySettings {
    /// What AWS would refuse in the canary's steps and refresh.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let mut out: Vec<SpecProblem> = percent_steps("steps", &self.steps, "the group")
            .into_iter()
            .collect();
        out.extend(percent_steps(
            "traffic_steps",
            &self.traffic_steps,
            "the requests",
        ));
        if self.mode == CanaryMode::Ab {
            out.extend(ab_steps(&self.traffic_steps));
        }
        if self.bake > CHECKPOINT_DELAY_MAX {
            let hint = format!("AWS pauses a checkpoint 0s to {CHECKPOINT_DELAY_TEXT}");
            out.push(out_of_range("bake", secs(self.bake), hint));
        }
        out.extend(rollback_window_problem(self.rollback_window));
        out.extend(
            self.compare
                .problems()
                .into_iter()
                .map(|p| p.under("compare")),
        );
        out.extend(
            self.refresh
                .problems()
                .into_iter()
                .map(|p| p.under("refresh")),
        );
        out
    }
}

/// An A/B canary's traffic steps compare something and end with the switch: at least one
/// step below 100, and 100 last (each a percentage, ascending, is checked beside).
fn ab_steps(steps: &[i32]) -> Option<SpecProblem> {
    let field = |index: Option<usize>| {
        let mut field = vec![Field::Key("traffic_steps")];
        field.extend(index.map(Field::Index));
        field
    };
    match steps {
        [] => Some(SpecProblem::new(
            field(None),
            "an A/B canary without traffic_steps compares nothing".into(),
            "list the percentages of the requests the canary takes, ending at 100, such as \
             `[5, 25, 50, 100]`",
        )),
        [ALL_TRAFFIC] => Some(SpecProblem::new(
            field(None),
            "an A/B canary whose only traffic step is 100 switches at once and compares \
             nothing"
                .into(),
            "add steps below 100 (such as `[5, 25, 50, 100]`), or use `strategy: blue-green` \
             for one switch",
        )),
        [.., last] if *last != ALL_TRAFFIC => Some(SpecProblem::new(
            field(Some(steps.len() - 1)),
            format!("traffic_steps end at {last}, not at 100"),
            "end the steps with 100: the last step is the switch to the canary",
        )),
        _ => None,
    }
}

impl AbThresholds {
    /// Thresholds that would turn the comparison off without saying so: not finite,
    /// negative, or beyond anything a comparison can meet.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let numbers = [
            (
                "max_error_rate_increase",
                self.max_error_rate_increase,
                0.0..=ERROR_RATE_INCREASE_MAX,
                "give 0 to 100 percentage points above the baseline's 5xx rate",
            ),
            (
                "max_latency_ratio",
                self.max_latency_ratio,
                LATENCY_RATIO_MIN..=f64::MAX,
                "give a finite ratio of at least 1 (1.5: half again the baseline's latency)",
            ),
            (
                "min_requests",
                self.min_requests,
                MIN_REQUESTS_MIN..=f64::MAX,
                "give a finite count of at least 1 (a step with no canary request proves \
                 nothing)",
            ),
        ];
        let mut out: Vec<SpecProblem> = numbers
            .into_iter()
            .filter(|(_, value, range, _)| !range.contains(value))
            .map(|(key, value, _, hint)| out_of_range(key, value.to_string(), hint.into()))
            .collect();
        if self.min_latency_increase > LATENCY_INCREASE_MAX {
            let hint = format!(
                "give at most {}: no request waits longer than an ALB's longest idle timeout",
                secs(LATENCY_INCREASE_MAX)
            );
            let value = secs(self.min_latency_increase);
            out.push(out_of_range("min_latency_increase", value, hint));
        }
        out
    }
}

impl BlueGreenSettings {
    /// What AWS would refuse in the traffic steps and the testers' rule, and pauses or a
    /// window no run should have.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let mut out: Vec<SpecProblem> =
            percent_steps("traffic_steps", &self.traffic_steps, "the requests")
                .into_iter()
                .collect();
        out.extend(rollback_window_problem(self.rollback_window));
        if self.step_bake > PAUSE_MAX {
            let hint = format!("give it at most {CHECKPOINT_DELAY_TEXT}, as a canary checkpoint");
            out.push(out_of_range("step_bake", secs(self.step_bake), hint));
        }
        out.extend(duration_problem(
            "watch_after_switch",
            self.watch_after_switch,
            &WATCH_AFTER_SWITCH,
            "green is compared with blue this long once it takes all the traffic",
        ));
        out.extend(
            self.compare
                .problems()
                .into_iter()
                .map(|p| p.under("compare")),
        );
        if let Some(preview) = &self.preview {
            out.extend(
                preview_problems(preview)
                    .into_iter()
                    .map(|p| p.under("preview")),
            );
        }
        out
    }
}

/// The window blue (or an A/B baseline) is kept after the switch.
fn rollback_window_problem(window: Duration) -> Option<SpecProblem> {
    let why = "blue is kept this long after the switch, for a rollback that is one \
               listener change";
    duration_problem("rollback_window", window, &ROLLBACK_WINDOW, why)
}

/// The testers' rule: its source addresses, its priority, its hold.
fn preview_problems(preview: &Preview) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    let bad = preview.source_ips.iter().position(|c| !is_cidr(c));
    if let Some(index) = bad {
        out.push(SpecProblem::new(
            vec![Field::Key("source_ips"), Field::Index(index)],
            format!("`{}` is not a CIDR block", preview.source_ips[index]),
            "write an address and a prefix length, such as `203.0.113.0/24`",
        ));
    }
    if !RULE_PRIORITY.contains(&preview.priority) {
        let hint = format!(
            "listener rule priorities are {} to {}",
            RULE_PRIORITY.start(),
            RULE_PRIORITY.end()
        );
        out.push(out_of_range("priority", preview.priority.to_string(), hint));
    }
    if preview.hold > PAUSE_MAX {
        let hint = format!("give it at most {CHECKPOINT_DELAY_TEXT}, as a canary checkpoint");
        out.push(out_of_range("hold", secs(preview.hold), hint));
    }
    out
}

/// `address/length`, IPv4 or IPv6, as a listener rule's source-ip condition takes it.
fn is_cidr(text: &str) -> bool {
    let Some((address, length)) = text.split_once('/') else {
        return false;
    };
    let Ok(length) = length.parse::<u8>() else {
        return false;
    };
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => length <= 32,
        Ok(std::net::IpAddr::V6(_)) => length <= 128,
        Err(_) => false,
    }
}

impl InPlaceSettings {
    /// A fix with nothing to run, and batches Run Command would refuse.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        if self.script.iter().all(|line| line.trim().is_empty()) {
            out.push(SpecProblem::new(
                vec![Field::Key("script")],
                "the in-place fix has no script".into(),
                "write the fix's shell lines, such as `script: [\"systemctl reload php-fpm\"]`",
            ));
        }
        if !(1..=BATCH_MAX).contains(&self.batch_size) {
            let hint = format!(
                "give 1 to {BATCH_MAX}: one Run Command call takes at most {BATCH_MAX} instances"
            );
            let value = self.batch_size.to_string();
            out.push(out_of_range("batch_size", value, hint));
        }
        out
    }
}

impl Gates {
    /// Alarm names CloudWatch would refuse, and a bound on unhealthy instances that would
    /// stop every rollout or wait as long as AWS does.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let bad = self
            .alarms
            .iter()
            .position(|a| a.is_empty() || a.chars().count() > ALARM_NAME_MAX);
        let mut out: Vec<SpecProblem> = bad
            .map(|i| {
                SpecProblem::new(
                    vec![Field::Key("alarms"), Field::Index(i)],
                    format!(
                        "alarm name `{}` is not one CloudWatch accepts",
                        self.alarms[i]
                    ),
                    format!("alarm names are 1 to {ALARM_NAME_MAX} characters"),
                )
            })
            .into_iter()
            .collect();
        out.extend(self.http_probe.as_deref().and_then(probe_problem));
        if let Some(after) = self.unhealthy_after {
            let why = "a new instance needs at least two health checks to be healthy, and \
                       longer than two warm-ups is AWS's own hour-long wait";
            out.extend(duration_problem(
                "unhealthy_after",
                after,
                &UNHEALTHY_AFTER,
                why,
            ));
        }
        out
    }
}

/// An HTTP path, as the probe's `curl` command on each instance takes it.
fn probe_problem(path: &str) -> Option<SpecProblem> {
    let valid = path.starts_with('/')
        && path.len() <= PROBE_PATH_MAX
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || PROBE_PATH_CHARS.contains(c));
    (!valid).then(|| {
        SpecProblem::new(
            vec![Field::Key("http_probe")],
            format!("`{path}` is not an HTTP path the probe can ask for"),
            format!(
                "write the path each instance answers on, starting with `/` (such as \
                 `/health`), of at most {PROBE_PATH_MAX} letters, digits and \
                 `{PROBE_PATH_CHARS}`"
            ),
        )
    })
}

impl Timeouts {
    /// Every deadline and the polling interval: the Run Command timeout suits both of Run
    /// Command's timeouts, and the others are neither zero nor absurd (the group's lock
    /// lasts the rollout and rollback deadlines, so these bound it too).
    pub fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        let durations = [
            (
                "rollout",
                self.rollout,
                &ROLLOUT_TIMEOUT,
                "the deadline of the whole replacement",
            ),
            (
                "rollback",
                self.rollback,
                &ROLLBACK_TIMEOUT,
                "the deadline of a rollback",
            ),
            (
                "poll",
                self.poll,
                &POLL,
                "how often progress and gates are read",
            ),
        ];
        for (key, value, range, why) in durations {
            out.extend(duration_problem(key, value, range, why));
        }
        if !(COMMAND_MIN..=COMMAND_MAX).contains(&self.command) {
            let hint = "give it between 30s and 48h: it is Run Command's delivery timeout (at \
                        least 30s) and execution timeout (at most 48h)";
            out.push(out_of_range("command", secs(self.command), hint.into()));
        }
        out.extend(self.poll_problem());
        out
    }

    /// A poll as long as a deadline would pass it before the first read.
    fn poll_problem(&self) -> Option<SpecProblem> {
        let (key, deadline) = [("rollout", self.rollout), ("rollback", self.rollback)]
            .into_iter()
            .find(|(_, deadline)| self.poll >= *deadline)?;
        Some(SpecProblem::new(
            vec![Field::Key("poll")],
            format!(
                "poll {} is not shorter than the {key} timeout {}",
                secs(self.poll),
                secs(deadline)
            ),
            format!("poll more often than the {key} deadline, or the deadline passes unread"),
        ))
    }
}

impl crate::spec::RolloutSpec {
    /// Every setting of the spec AWS would refuse; a field's path starts at the
    /// strategy's settings, `gates` or `timeouts`.
    pub fn problems(&self) -> Vec<SpecProblem> {
        use crate::spec::Strategy;
        let strategy = match &self.strategy {
            Strategy::Rolling(s) => s.problems(),
            Strategy::Canary(s) => s.problems(),
            Strategy::BlueGreen(s) => s.problems(),
            Strategy::InPlace(s) => s.problems(),
        };
        let gates = self.gates.problems().into_iter().map(|p| p.under("gates"));
        let timeouts = self.timeouts.problems();
        let timeouts = timeouts.into_iter().map(|p| p.under("timeouts"));
        strategy.into_iter().chain(gates).chain(timeouts).collect()
    }
}

impl std::fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, part) in self.field.iter().enumerate() {
            match part {
                Field::Key(key) if i == 0 => write!(f, "{key}")?,
                Field::Key(key) => write!(f, ".{key}")?,
                Field::Index(index) => write!(f, "[{index}]")?,
            }
        }
        write!(f, ": {} ({})", self.message, self.hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_accepted() {
        assert!(RollingSettings::default().problems().is_empty());
        assert!(CanarySettings::default().problems().is_empty());
        let ab = CanarySettings {
            mode: CanaryMode::Ab,
            ..CanarySettings::default()
        };
        assert!(ab.problems().is_empty());
        assert!(BlueGreenSettings::default().problems().is_empty());
        assert!(Gates::default().problems().is_empty());
        assert!(Timeouts::default().problems().is_empty());
    }

    #[test]
    fn a_nested_problem_names_its_whole_path() {
        let mut canary = CanarySettings::default();
        canary.refresh.min_healthy_percentage = 101;
        let problems = canary.problems();
        assert_eq!(
            problems[0].field,
            vec![Field::Key("refresh"), Field::Key("min_healthy_percentage")]
        );
        assert_eq!(
            problems[0].message,
            "min_healthy_percentage 101 is out of range"
        );
    }

    #[test]
    fn the_delay_limit_is_written_as_it_is() {
        let written: humantime::Duration = CHECKPOINT_DELAY_TEXT.parse().expect("a duration");
        assert_eq!(Duration::from(written), CHECKPOINT_DELAY_MAX);
    }

    #[test]
    fn the_bounds_themselves_are_accepted() {
        let edge = RollingSettings {
            min_healthy_percentage: 0,
            max_healthy_percentage: 100,
            instance_warmup: Some(WARMUP_MAX),
            checkpoints: vec![1, 100],
            checkpoint_delay: Some(CHECKPOINT_DELAY_MAX),
            ..RollingSettings::default()
        };
        assert_eq!(edge.problems(), Vec::new());
        let timeouts = Timeouts {
            command: COMMAND_MIN - Duration::from_secs(1),
            ..Timeouts::default()
        };
        assert_eq!(
            timeouts.problems()[0].message,
            "command 29s is out of range"
        );
    }
}
