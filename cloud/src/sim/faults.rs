//! Faults: the failures a test or an example asks the simulated account to produce.
//!
//! They are read from YAML (every field checked, unknown fields refused) and kept in the
//! state, so that a later command sees what remains of them (a throttle count consumed).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SimError;

/// Every fault kind; each list may be empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Recipe steps that fail (or, with exit code 0, succeed printing the given lines).
    pub steps: Vec<StepFault>,
    /// Instances whose SSM agent never comes online.
    pub agent_never_online: Vec<AgentFault>,
    /// Instances that never boot: EC2 terminates them with an internal error.
    pub boot_fails: Vec<AgentFault>,
    /// SendCommand still answers `InvalidInstanceId` this long after the agent shows
    /// online (the registration has not reached Run Command yet).
    #[serde(with = "humantime_serde")]
    pub invalid_instance_after_online: Option<Duration>,
    /// Images whose instances fail their load balancer health checks.
    pub unhealthy_images: Vec<ImageFault>,
    /// Images whose instances pass their health checks but answer part of their
    /// requests with 5xx, slowly (a release that is up but wrong: what an A/B canary's
    /// comparison with the baseline must catch).
    pub degraded_images: Vec<DegradedFault>,
    /// Operations rejected as throttled a number of times.
    pub throttle: Vec<ThrottleFault>,
    /// Every operation throttled during a window of virtual time.
    pub throttle_storm: Option<StormFault>,
    /// Regions where image copies fail.
    pub copy_fails: Vec<CopyFault>,
    /// Regions where every call is denied (as a service control policy that denies a
    /// region does): nothing there can be listed or changed.
    pub denied_regions: Vec<String>,
    /// Steps that run longer than any timeout.
    pub step_hangs: Vec<String>,
    /// Steps whose output is this many characters long (SSM cuts it).
    pub step_output: Vec<OutputFault>,
    /// Invocations stay "not found" this long after SendCommand.
    #[serde(with = "humantime_serde")]
    pub invocation_hidden_for: Option<Duration>,
    /// Images made by CreateImage end `failed` with this state reason instead of
    /// `available` (as a snapshot that EBS cannot complete does).
    pub image_fails: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFault {
    /// `recipe/step`, matched against `kiln:recipe/step` in the command's comment.
    pub step: String,
    pub exit_code: i32,
    #[serde(default)]
    pub stdout: Vec<String>,
    #[serde(default)]
    pub stderr: Vec<String>,
    /// Fail only this many times, then run normally; forever when absent.
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFault {
    /// Instances tagged `kiln:role` with this value; every instance when absent.
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFault {
    /// An image id, or `new`: any image created in the simulation.
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradedFault {
    /// An image id.
    pub image: String,
    /// Share of the requests a healthy target of this image answers with 5xx (0-1).
    pub error_rate: f64,
    /// Its response time, seconds.
    pub latency_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleFault {
    /// The API operation as AWS names it (`DescribeInstances`).
    pub operation: String,
    /// How many calls are rejected.
    pub count: u32,
    /// How many were rejected so far.
    #[serde(default)]
    pub rejected: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StormFault {
    /// Starts this long after the faults were loaded.
    #[serde(default = "zero", with = "humantime_serde")]
    pub after: Duration,
    #[serde(with = "humantime_serde")]
    pub lasts: Duration,
    /// Set when the faults are loaded: the storm's virtual start.
    #[serde(default)]
    pub starts_at: Option<crate::types::Timestamp>,
    #[serde(default)]
    pub rejected: u32,
}

fn zero() -> Duration {
    Duration::ZERO
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyFault {
    pub region: String,
    #[serde(default = "default_copy_reason")]
    pub reason: String,
}

fn default_copy_reason() -> String {
    "Client.InternalError: Client error on launch".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFault {
    pub step: String,
    pub chars: usize,
}

impl Faults {
    /// Parses a faults file's text; `origin` names the file in errors.
    pub fn from_yaml_named(text: &str, origin: &str) -> Result<Self, SimError> {
        serde_yaml_ng::from_str(text).map_err(|e| SimError::parse(origin, &e))
    }

    pub fn from_yaml_str(text: &str) -> Result<Self, SimError> {
        Self::from_yaml_named(text, "<faults>")
    }

    /// Refuses a fault that could never fire in `state`'s account: a step not written
    /// `recipe/step`, an operation AWS does not have, a region or an image the account
    /// lacks. A fault test with a misspelt fault would pass without testing anything.
    /// `text` is the file's, to point at the value.
    pub fn check(
        &self,
        state: &super::model::State,
        text: &str,
        origin: &str,
    ) -> Result<(), SimError> {
        let refuse = |value: &str, message: String, hint: String| {
            // The first place the value is written; the start when it is not found.
            let at = text.find(value).filter(|_| !value.is_empty()).unwrap_or(0);
            let (line, column) = crate::yaml::position_of(text, at);
            Err(SimError::Parse {
                origin: origin.to_string(),
                line,
                column,
                message,
                hint,
            })
        };
        let steps = self.steps.iter().map(|f| f.step.as_str());
        let steps = steps
            .chain(self.step_hangs.iter().map(String::as_str))
            .chain(self.step_output.iter().map(|f| f.step.as_str()));
        for step in steps {
            let named = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            };
            if !step
                .split_once('/')
                .is_some_and(|(r, s)| named(r) && named(s))
            {
                return refuse(
                    step,
                    format!("step `{step}` is not written `recipe/step`"),
                    "name the step as the bake's progress does, e.g. `base-os/update-os`, or \
                     `rollout/fix-batch-2` for an in-place fix's second batch"
                        .into(),
                );
            }
        }
        let operations = || {
            crate::iam::OPERATOR_ACTIONS
                .iter()
                .flat_map(|(_, ops)| ops.iter())
        };
        for fault in &self.throttle {
            if !operations().any(|op| *op == fault.operation) {
                return refuse(
                    &fault.operation,
                    format!("operation `{}` is not one kiln calls", fault.operation),
                    "name an API operation as AWS spells it, e.g. `DescribeInstances` \
                     (`kiln iam-policy --role operator` lists them)"
                        .into(),
                );
            }
        }
        for fault in &self.copy_fails {
            if !state.regions.contains_key(&fault.region) {
                let known: Vec<&str> = state.regions.keys().map(String::as_str).collect();
                return refuse(
                    &fault.region,
                    format!("region `{}` is not one of the account's", fault.region),
                    format!("name one of {}", known.join(", ")),
                );
            }
        }
        let known = |image: &str| state.regions.values().any(|r| r.images.contains_key(image));
        let unhealthy = self
            .unhealthy_images
            .iter()
            .map(|f| (f.image.as_str(), true));
        let degraded = self
            .degraded_images
            .iter()
            .map(|f| (f.image.as_str(), false));
        for (image, new_allowed) in unhealthy.chain(degraded) {
            if known(image) || (new_allowed && image == "new") {
                continue;
            }
            let new = if new_allowed {
                ", or `new` for every image baked in the account"
            } else {
                ""
            };
            return refuse(
                image,
                format!("image `{image}` is not in the account"),
                format!("name an image id of the account (`kiln images` lists them){new}"),
            );
        }
        Ok(())
    }

    /// The step fault matching a command comment, if any fires (and counts it).
    pub fn take_step_fault(&mut self, comment: &str) -> Option<StepFault> {
        let fault = self
            .steps
            .iter_mut()
            .find(|f| step_matches(comment, &f.step) && f.times != Some(0))?;
        if let Some(times) = fault.times.as_mut() {
            *times -= 1;
        }
        Some(fault.clone())
    }

    pub fn step_hangs(&self, comment: &str) -> bool {
        self.step_hangs.iter().any(|s| step_matches(comment, s))
    }

    pub fn output_chars(&self, comment: &str) -> Option<usize> {
        let fault = self
            .step_output
            .iter()
            .find(|f| step_matches(comment, &f.step))?;
        Some(fault.chars)
    }

    pub fn agent_never(&self, role: Option<&str>) -> bool {
        self.agent_never_online
            .iter()
            .any(|f| f.role.is_none() || f.role.as_deref() == role)
    }

    pub fn boot_fails(&self, role: Option<&str>) -> bool {
        self.boot_fails
            .iter()
            .any(|f| f.role.is_none() || f.role.as_deref() == role)
    }

    pub fn image_bad(&self, image: &str, created_here: bool) -> bool {
        self.unhealthy_images
            .iter()
            .any(|f| f.image == image || (f.image == "new" && created_here))
    }

    pub fn degraded(&self, image: &str) -> Option<&DegradedFault> {
        self.degraded_images.iter().find(|f| f.image == image)
    }

    pub fn copy_fault(&self, region: &str) -> Option<&CopyFault> {
        self.copy_fails.iter().find(|f| f.region == region)
    }

    /// Whether this call is throttled; counts the rejection.
    pub fn throttle_now(&mut self, operation: &str, now: crate::types::Timestamp) -> bool {
        if let Some(storm) = self.throttle_storm.as_mut() {
            let start = *storm
                .starts_at
                .get_or_insert(now + super::model::dur(storm.after));
            if now >= start && now < start + super::model::dur(storm.lasts) {
                storm.rejected += 1;
                return true;
            }
        }
        let Some(fault) = self
            .throttle
            .iter_mut()
            .find(|f| f.operation == operation && f.rejected < f.count)
        else {
            return false;
        };
        fault.rejected += 1;
        true
    }

    /// Fixes the storm's start at load time.
    pub fn anchor(&mut self, now: crate::types::Timestamp) {
        if let Some(storm) = self.throttle_storm.as_mut() {
            storm
                .starts_at
                .get_or_insert(now + super::model::dur(storm.after));
        }
    }
}

/// A comment names a step as `kiln:recipe/step`, followed by the end or a separator.
pub fn step_matches(comment: &str, step: &str) -> bool {
    let needle = format!("kiln:{step}");
    comment.match_indices(&needle).any(|(at, _)| {
        let rest = &comment[at + needle.len()..];
        rest.chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '/'))
    })
}
