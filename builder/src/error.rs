//! The bake's errors: each names the resource, the region and what to do next.

use std::time::Duration;

use kiln_cloud::{CloudError, ImageId, InstanceId};

/// Why a plan or a bake failed.
#[derive(Debug, thiserror::Error)]
pub enum BakeError {
    #[error("invalid bake: {reason}; fix the pipeline file and plan again")]
    InvalidSpec { reason: String },

    #[error(
        "source parameter {parameter} does not exist in {region}; check its name and that \
         the region publishes it"
    )]
    SourceParameterMissing { parameter: String, region: String },

    #[error(
        "channel {channel} of image {image} is empty in {region} (no parameter \
         /kiln/{image}/{channel}); bake and distribute {image} to that channel first, or \
         `kiln promote` a version to it"
    )]
    ChannelEmpty {
        image: String,
        channel: String,
        region: String,
    },

    #[error(
        "source image {image} not found in {region}; check the id, the region and that \
         the account may launch it"
    )]
    SourceImageNotFound { image: ImageId, region: String },

    #[error("source image {image} in {region} is {state}, not available; pick another image")]
    SourceImageUnavailable {
        image: ImageId,
        region: String,
        state: String,
    },

    #[error("no subnet matches {selector} in {region}; check the subnet id or its tags")]
    NoSubnet { selector: String, region: String },

    #[error(
        "image name {name} is already used by {image} in {region}; choose another version \
         (kiln never reuses or force-deregisters a name)"
    )]
    NameTaken {
        name: String,
        image: ImageId,
        region: String,
    },

    #[error(
        "{role} instance {instance} in {region} did not reach running within {waited:?} \
         (state {state}); check EC2 capacity, quotas and the instance's console output, or \
         raise timeouts.boot"
    )]
    InstanceNotRunning {
        role: String,
        instance: InstanceId,
        region: String,
        state: String,
        waited: Duration,
    },

    #[error(
        "{role} instance {instance} in {region} ended before it ran (state {state}); check \
         EC2 capacity, quotas, the source image and the instance's console output"
    )]
    InstanceEnded {
        role: String,
        instance: InstanceId,
        region: String,
        state: String,
    },

    #[error(
        "the SSM agent of {role} instance {instance} in {region} was not online after \
         {waited:?}; check the instance profile (AmazonSSMManagedInstanceCore), the \
         subnet's route to SSM (NAT or VPC endpoints), or raise timeouts.agent_online"
    )]
    AgentNotOnline {
        role: String,
        instance: InstanceId,
        region: String,
        waited: Duration,
    },

    #[error(
        "step {recipe}/{step} failed on {instance} in {region} with exit code {exit_code}; \
         fix the step and bake again. Last lines{cut}:\n{last_lines}",
        cut = if *truncated { " (SSM cut the output at 24,000 characters)" } else { "" }
    )]
    StepFailed {
        recipe: String,
        step: String,
        exit_code: i32,
        last_lines: String,
        truncated: bool,
        instance: InstanceId,
        region: String,
    },

    #[error(
        "step {recipe}/{step} on {instance} in {region} did not finish within {timeout:?} \
         ({detail}); the command was cancelled. Raise the step's timeout or make it faster"
    )]
    StepTimedOut {
        recipe: String,
        step: String,
        instance: InstanceId,
        region: String,
        timeout: Duration,
        detail: String,
    },

    #[error(
        "step {recipe}/{step} was never delivered to {instance} in {region} ({details}): its \
         outcome is unknown, not a script failure; check the instance's SSM agent and bake \
         again"
    )]
    StepUndelivered {
        recipe: String,
        step: String,
        instance: InstanceId,
        region: String,
        details: String,
    },

    #[error(
        "image {image} ({name}) in {region} failed: {reason}; the image and its snapshots \
         were removed, bake again"
    )]
    ImageFailed {
        image: ImageId,
        name: String,
        region: String,
        reason: String,
    },

    #[error(
        "image {image} ({name}) in {region} was not available after {waited:?}; raise \
         timeouts.image_available"
    )]
    ImageNotAvailable {
        image: ImageId,
        name: String,
        region: String,
        waited: Duration,
    },

    #[error(
        "image {image} in {region} failed its test and was marked failed and \
         deregistered: {source}"
    )]
    TestFailed {
        image: ImageId,
        region: String,
        #[source]
        source: Box<BakeError>,
    },

    #[error(
        "step {recipe}/{step} on {instance} in {region} printed the value of a secret \
         (shown as ***); fix the step so that it never prints secrets, then bake again"
    )]
    SecretInOutput {
        recipe: String,
        step: String,
        instance: InstanceId,
        region: String,
    },
    #[error("bake cancelled during {phase} in {region}; what it created was cleaned up")]
    Cancelled { phase: String, region: String },

    #[error("{action} failed: {source}; check permissions and the resource, then retry")]
    Cloud {
        action: String,
        #[source]
        source: CloudError,
    },
}

impl BakeError {
    /// Wraps a port's error with what the bake was doing.
    pub fn cloud(action: impl Into<String>, source: CloudError) -> Self {
        Self::Cloud {
            action: action.into(),
            source,
        }
    }

    /// True when the bake stopped because it was asked to.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled { .. })
    }
}
