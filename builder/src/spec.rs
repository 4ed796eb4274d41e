//! What a bake is asked to make: the image name, the source image, the builder's settings,
//! the rendered recipes, and the time budgets of every wait.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use kiln_cloud::{ImageId, SubnetId, Tags};
use serde::{Deserialize, Serialize};

use crate::recipe::Rendered;

/// The image a bake starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceImage {
    /// A Parameter Store parameter holding an AMI id, such as AWS's public
    /// `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`.
    Parameter(String),
    /// An AMI id.
    Id(ImageId),
    /// The image a kiln channel points at: `/kiln/<image>/<channel>` in the bake's region.
    /// The new image is a layer on top of it, tagged `kiln:parent-image`.
    Channel { image: String, channel: String },
}

impl SourceImage {
    /// The Parameter Store name this source is read from, if any.
    pub fn parameter_name(&self) -> Option<String> {
        match self {
            Self::Parameter(name) => Some(name.clone()),
            Self::Channel { image, channel } => {
                Some(crate::naming::channel_parameter(image, channel))
            }
            Self::Id(_) => None,
        }
    }
}

impl fmt::Display for SourceImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parameter(name) => write!(f, "parameter {name}"),
            Self::Id(id) => write!(f, "{id}"),
            Self::Channel { image, channel } => write!(f, "channel {channel} of {image}"),
        }
    }
}

/// Which subnet the builder and test instances go into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubnetSelector {
    Id(SubnetId),
    /// Every subnet carrying all these tags qualifies; the first by id is taken, so
    /// that repeated plans pick the same one.
    Tags(Tags),
}

impl fmt::Display for SubnetSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Tags(tags) => {
                let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "subnet tagged {}", pairs.join(","))
            }
        }
    }
}

/// The root volume of the builder (and so of the image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootVolumeSettings {
    pub size_gib: i32,
    #[serde(default = "default_volume_type")]
    pub volume_type: String,
    #[serde(default)]
    pub encrypted: bool,
    /// A customer-managed key; AWS's default EBS key when `None`.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

/// gp3 is the current general-purpose EBS type: cheaper than gp2 at the same baseline.
fn default_volume_type() -> String {
    "gp3".to_string()
}

/// The builder instance (the test instance uses the same settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuilderSettings {
    pub instance_type: String,
    pub subnet: SubnetSelector,
    /// An instance profile whose role allows SSM (`AmazonSSMManagedInstanceCore`).
    pub instance_profile: Option<String>,
    pub root_volume: RootVolumeSettings,
}

/// How long each wait of the bake may last. Steps carry their own timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// Launch until `running`. Default 5 min: EC2 usually needs under one; the rest
    /// absorbs capacity retries.
    #[serde(with = "humantime_serde")]
    pub boot: Duration,
    /// `running` until the SSM agent is Online. Default 10 min: the agent sometimes takes
    /// more than two (PITFALLS 16), longer when the OS updates itself on first boot.
    #[serde(with = "humantime_serde")]
    pub agent_online: Duration,
    /// CreateImage until `available`. Default 60 min: snapshots of a fresh volume take
    /// minutes, large or encrypted ones much longer (PITFALLS 12).
    #[serde(with = "humantime_serde")]
    pub image_available: Duration,
    /// TerminateInstances until `terminated`. Default 10 min: usually about one.
    #[serde(with = "humantime_serde")]
    pub instance_terminated: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            boot: Duration::from_secs(5 * 60),
            agent_online: Duration::from_secs(10 * 60),
            image_available: Duration::from_secs(60 * 60),
            instance_terminated: Duration::from_secs(10 * 60),
        }
    }
}

/// Everything a bake needs, as the CLI or a library caller gives it.
#[derive(Debug, Clone)]
pub struct BakeSpec {
    /// The image family's name, such as `poc-web-base`; AMI names are
    /// `<image_name>-<version>`.
    pub image_name: String,
    pub source: SourceImage,
    pub builder: BuilderSettings,
    pub rendered: Rendered,
    /// The variables as the pipeline gives them. The input hash covers
    /// `rendered.variables` (every declared one, defaults applied) with these on top.
    pub variables: BTreeMap<String, serde_json::Value>,
    /// The commit of the pipeline's repository, for the image's tags.
    pub commit: Option<String>,
    pub timeouts: Timeouts,
    /// An explicit version; generated from the clock when `None`.
    pub version: Option<String>,
}
