//! The pipeline file: what to bake, where to distribute it and which groups take it.
//!
//! Loading turns the raw YAML into a checked [`Pipeline`]: every path resolved against
//! the file's folder, every name checked, before any call to AWS. Errors name the file,
//! the line and column, and what to change.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_builder::recipe::{locate, read_capped, too_large, without_location, ReadCapped, Seg};
use kiln_rollout::{
    BlueGreenSettings, CanarySettings, Gates, InPlaceSettings, RollingSettings,
    Timeouts as RolloutTimeouts,
};
use serde::{Deserialize, Serialize};

/// The public parameter that names the newest Amazon Linux 2023 image.
pub const AL2023_PARAMETER: &str =
    "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

/// A pipeline file as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// The image family: names, tags and channels derive from it. With `layers`, this is
    /// the top layer (the application), baked last.
    pub image: ImageSection,
    /// Lower layers (a base image), baked in order before `image`, each reusing an
    /// existing image when its inputs have not changed. A layer above takes the one below
    /// through `source: { channel: { image, channel } }`, and the recipes of every layer
    /// before it count as installed.
    #[serde(default)]
    pub layers: Vec<ImageSection>,
    pub builder: BuilderSection,
    #[serde(default)]
    pub distribute: DistributeSection,
    #[serde(default)]
    pub targets: Vec<TargetSection>,
    /// The simulated account this example starts from (`--sim`).
    #[serde(default)]
    pub simulation: Option<SimulationSection>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    pub name: String,
    pub region: String,
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub source: SourceSection,
    pub recipes: Vec<String>,
    /// Relative to the pipeline file.
    #[serde(default = "default_recipes_dir")]
    pub recipes_dir: PathBuf,
    #[serde(default = "default_templates_dir")]
    pub templates_dir: PathBuf,
    #[serde(default)]
    pub variables: BTreeMap<String, serde_json::Value>,
    /// An explicit version; by default one is made from the date and a build number.
    #[serde(default)]
    pub version: Option<String>,
    /// Parameter Store SecureStrings (names, or paths ending in `/`) whose values must
    /// never appear in the image, a script or a log: checked before and during the bake.
    #[serde(default)]
    pub secret_parameters: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SourceSection {
    /// A Parameter Store name that holds an AMI id (the public AL2023 one by default).
    Parameter(String),
    /// A fixed AMI id.
    ImageId(String),
    /// The image a kiln channel points at (`/kiln/<image>/<channel>`): a layered bake.
    Channel(ChannelSource),
}

/// A channel of another kiln image, as the source of a layer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSource {
    pub image: String,
    pub channel: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderSection {
    pub instance_type: String,
    /// A subnet id, or tags that pick one.
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub subnet: SubnetSection,
    pub instance_profile: String,
    #[serde(default)]
    pub root_volume: Option<RootVolumeSection>,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SubnetSection {
    Id(String),
    Tags(BTreeMap<String, String>),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RootVolumeSection {
    /// Any whole number is read, so that one far out of range is refused by the volume
    /// sizes EBS accepts rather than by the YAML parser.
    pub size_gib: WholeNumber,
    #[serde(default = "yes")]
    pub encrypted: bool,
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

/// A whole number as written, however large (a YAML integer of up to 128 bits): fields
/// with a range hold one, and the range check names the value and the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WholeNumber(pub i128);

impl WholeNumber {
    /// The number as an `i32`, when it is one.
    pub fn as_i32(self) -> Option<i32> {
        i32::try_from(self.0).ok()
    }
}

impl fmt::Display for WholeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WholeNumberVisitor)
    }
}

struct WholeNumberVisitor;

impl serde::de::Visitor<'_> for WholeNumberVisitor {
    type Value = WholeNumber;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<WholeNumber, E> {
        Ok(WholeNumber(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<WholeNumber, E> {
        Ok(WholeNumber(v.into()))
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<WholeNumber, E> {
        Ok(WholeNumber(v))
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<WholeNumber, E> {
        // Beyond i128 (above 1.7e38) the value shown is i128's largest: out of range anyway.
        Ok(WholeNumber(i128::try_from(v).unwrap_or(i128::MAX)))
    }
}

/// Bake budgets; each left out keeps the library's documented default.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    #[serde(default, with = "humantime_serde")]
    pub boot: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub agent_online: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub image_available: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub instance_terminated: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DistributeSection {
    /// Parameter Store channel the new image is published to (`/kiln/<image>/<channel>`).
    #[serde(default)]
    pub channel: Option<String>,
    /// Other regions the image is copied to.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Accounts given launch permission.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Organizations (ARNs) given launch permission.
    #[serde(default)]
    pub organizations: Vec<String>,
    /// Organizational units (ARNs) given launch permission.
    #[serde(default)]
    pub organizational_units: Vec<String>,
    /// A customer-managed KMS key per destination region: copies there are encrypted
    /// with it (an encrypted image cannot be copied without a key in the destination).
    #[serde(default)]
    pub kms_keys: BTreeMap<String, String>,
    /// How long each region's copy may take (default 90m).
    #[serde(default, with = "humantime_serde")]
    pub copy_timeout: Option<Duration>,
}

impl DistributeSection {
    /// True when the section asks for anything: copies, sharing or a channel.
    pub fn is_empty(&self) -> bool {
        self.channel.is_none()
            && self.regions.is_empty()
            && self.accounts.is_empty()
            && self.organizations.is_empty()
            && self.organizational_units.is_empty()
    }
}

/// One group that takes the image, and how.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    pub name: String,
    pub group: String,
    /// The launch template's name.
    pub launch_template: String,
    #[serde(default)]
    pub target_group: Option<String>,
    #[serde(default)]
    pub load_balancer: Option<String>,
    /// The strategy used unless `--strategy` names another.
    pub strategy: StrategyName,
    /// Settings of each strategy this target may be rolled out with; a strategy left out
    /// runs with the documented defaults (in place needs its fix script).
    #[serde(default)]
    pub rolling: Option<RollingSettings>,
    #[serde(default)]
    pub canary: Option<CanarySettings>,
    #[serde(default)]
    pub blue_green: Option<BlueGreenSettings>,
    #[serde(default)]
    pub in_place: Option<InPlaceSettings>,
    #[serde(default)]
    pub gates: Gates,
    #[serde(default)]
    pub timeouts: RolloutTimeouts,
    /// Roll out even though the group's template version lets instances use IMDSv1.
    #[serde(default)]
    pub allow_imdsv1: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    Rolling,
    Canary,
    BlueGreen,
    InPlace,
}

impl fmt::Display for StrategyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rolling => "rolling",
            Self::Canary => "canary",
            Self::BlueGreen => "blue-green",
            Self::InPlace => "in-place",
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSection {
    /// The account seed (YAML), relative to the pipeline file.
    pub seed: PathBuf,
}

fn default_recipes_dir() -> PathBuf {
    PathBuf::from("../../recipes")
}

fn default_templates_dir() -> PathBuf {
    PathBuf::from("../../templates")
}

fn yes() -> bool {
    true
}

/// A refused pipeline file: where, what, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(
        "cannot read pipeline file {}: {}\n  hint: {}",
        path.display(),
        read_problem(cause),
        read_hint(cause)
    )]
    Read {
        path: PathBuf,
        /// Not the error's source: its words are in the message already.
        cause: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}\n  hint: {hint}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
}

/// A loaded pipeline: the file as written, and where it lives.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub path: PathBuf,
    pub file: PipelineFile,
    text: String,
}

impl Pipeline {
    /// Reads, parses and checks a pipeline file. Nothing outside the file is touched.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let text = read(path)?;
        let (file, refused) = parse(path, &text)?;
        let pipeline = Self {
            path: path.to_path_buf(),
            file,
            text,
        };
        pipeline.check()?;
        match refused {
            Some(error) => Err(error),
            None => Ok(pipeline),
        }
    }

    /// The folder relative paths in the file start from.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn resolve(&self, relative: &Path) -> PathBuf {
        self.base_dir().join(relative)
    }

    /// The target named `name`, or an error listing those there are.
    pub fn target(&self, name: &str) -> Result<&TargetSection, PipelineError> {
        self.file
            .targets
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                let names: Vec<_> = self.file.targets.iter().map(|t| t.name.as_str()).collect();
                self.invalid_key(
                    &[Seg::Key("targets")],
                    format!("no target named `{name}`"),
                    format!("targets in this file: {}", names.join(", ")),
                )
            })
    }

    /// An error pointing at the value at `path` in the file, or, when the file does not
    /// write it, at the nearest node above it that the file has.
    pub fn invalid_at(&self, path: &[Seg<'_>], message: String, hint: String) -> PipelineError {
        let position = (0..=path.len())
            .rev()
            .find_map(|n| locate(&self.text, &path[..n]))
            .unwrap_or((1, 1));
        self.error_at(position, message, hint)
    }

    /// An error pointing at the key of `path` (`variables:`), for what is missing under
    /// it rather than wrong in it.
    pub fn invalid_key(&self, path: &[Seg<'_>], message: String, hint: String) -> PipelineError {
        let key_of = |value: (usize, usize)| match path.last() {
            Some(Seg::Key(key)) => key_position(&self.text, value, key),
            _ => None,
        };
        match locate(&self.text, path).and_then(key_of) {
            Some(position) => self.error_at(position, message, hint),
            None => self.invalid_at(path, message, hint),
        }
    }

    fn error_at(
        &self,
        (line, column): (usize, usize),
        message: String,
        hint: String,
    ) -> PipelineError {
        PipelineError::Invalid {
            path: self.path.clone(),
            line,
            column,
            message,
            hint,
        }
    }

    /// Where an image section is in the file: `layers[i]`, or `image`.
    pub fn section_path(&self, section: &ImageSection) -> Vec<Seg<'static>> {
        match self
            .file
            .layers
            .iter()
            .position(|l| std::ptr::eq(l, section))
        {
            Some(index) => vec![Seg::Key("layers"), Seg::Index(index)],
            None => vec![Seg::Key("image")],
        }
    }

    /// Where a target is in the file: `targets[i]`.
    pub fn target_path(&self, name: &str) -> Vec<Seg<'static>> {
        let index = self.file.targets.iter().position(|t| t.name == name);
        let mut path = vec![Seg::Key("targets")];
        path.extend(index.map(Seg::Index));
        path
    }

    fn check(&self) -> Result<(), PipelineError> {
        let image = &self.file.image;
        for section in self.sections() {
            let at = |key| {
                let mut at = self.section_path(section);
                at.push(Seg::Key(key));
                at
            };
            check_name(self, &at("name"), &section.name, IMAGE_NAME_MAX)?;
            if section.recipes.is_empty() {
                return Err(self.invalid_at(
                    &at("recipes"),
                    format!("image `{}` lists no recipes", section.name),
                    "list the recipes to bake, e.g. `recipes: [base-os]`".into(),
                ));
            }
        }
        self.check_target_names()?;
        check_region(
            self,
            &[Seg::Key("image"), Seg::Key("region")],
            &image.region,
        )?;
        for (index, region) in self.file.distribute.regions.iter().enumerate() {
            let at = [
                Seg::Key("distribute"),
                Seg::Key("regions"),
                Seg::Index(index),
            ];
            check_region(self, &at, region)?;
        }
        crate::aws_names::check(self)?;
        self.check_layers()
    }

    /// Each target has a name of its own, one `--target` can name and that reads the
    /// same in a tag or a log.
    fn check_target_names(&self) -> Result<(), PipelineError> {
        let mut seen = std::collections::BTreeSet::new();
        for (index, target) in self.file.targets.iter().enumerate() {
            let at = [Seg::Key("targets"), Seg::Index(index), Seg::Key("name")];
            let name = &target.name;
            let valid = (1..=TARGET_NAME_MAX).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
            if !valid {
                return Err(self.invalid_at(
                    &at,
                    format!("`{name}` is not a valid target name"),
                    format!("use 1 to {TARGET_NAME_MAX} letters, digits, `-` or `_`"),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(self.invalid_at(
                    &at,
                    format!("target `{name}` is defined twice"),
                    "give every target its own name".into(),
                ));
            }
        }
        self.check_target_groups()
    }

    /// One target a group: a second would roll the group out again with other gates, and
    /// the first target's (its alarms, its probe) would never run, the group being on the
    /// image already.
    fn check_target_groups(&self) -> Result<(), PipelineError> {
        let mut owner = std::collections::BTreeMap::new();
        for (index, target) in self.file.targets.iter().enumerate() {
            let Some(first) = owner.insert(target.group.as_str(), target.name.as_str()) else {
                continue;
            };
            return Err(self.invalid_at(
                &[Seg::Key("targets"), Seg::Index(index), Seg::Key("group")],
                format!(
                    "group `{}` is also the group of target `{first}`",
                    target.group
                ),
                "give each Auto Scaling group one target, with all its gates".into(),
            ));
        }
        Ok(())
    }

    /// Layers share the image's region and have names of their own.
    fn check_layers(&self) -> Result<(), PipelineError> {
        let image = &self.file.image;
        let mut names = std::collections::BTreeSet::from([image.name.as_str()]);
        for (index, layer) in self.file.layers.iter().enumerate() {
            let at = |key| [Seg::Key("layers"), Seg::Index(index), Seg::Key(key)];
            if !names.insert(layer.name.as_str()) {
                return Err(self.invalid_at(
                    &at("name"),
                    format!("image `{}` is defined twice", layer.name),
                    "give every layer its own image name".into(),
                ));
            }
            if layer.region != image.region {
                return Err(self.invalid_at(
                    &at("region"),
                    format!(
                        "layer `{}` is in {}, the image in {}",
                        layer.name, layer.region, image.region
                    ),
                    "bake every layer in the image's region; distribute copies the others".into(),
                ));
            }
        }
        Ok(())
    }

    /// Every image section in bake order: the layers, then the image.
    pub fn sections(&self) -> Vec<&ImageSection> {
        self.file.layers.iter().chain([&self.file.image]).collect()
    }
}

/// Longest target name: it is written into tag values (`kiln:target`, at most 256
/// characters) and launch template version descriptions (at most 255) beside a run id and
/// an image id.
const TARGET_NAME_MAX: usize = 128;

/// Longest image-family name: AMI names allow 128 characters and kiln appends
/// `-<version>` (at most 24 characters) to it.
const IMAGE_NAME_MAX: usize = 100;

fn check_name(
    pipeline: &Pipeline,
    at: &[Seg<'_>],
    name: &str,
    max: usize,
) -> Result<(), PipelineError> {
    let valid = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        return Ok(());
    }
    Err(pipeline.invalid_at(
        at,
        format!("`{name}` is not a valid image name"),
        format!("use 1 to {max} letters, digits, `-`, `_` or `.`"),
    ))
}

fn check_region(pipeline: &Pipeline, at: &[Seg<'_>], region: &str) -> Result<(), PipelineError> {
    if is_region_name(region) {
        return Ok(());
    }
    Err(pipeline.invalid_at(
        at,
        format!("`{region}` is not an AWS region name"),
        "write a region such as `ap-northeast-1`".into(),
    ))
}

/// Region names are `<area>-<direction>-<number>` (ap-northeast-1, us-gov-west-1).
pub fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// The file's text; one over [`kiln_builder::recipe::FILE_MAX_BYTES`] is refused by its
/// size, unread.
fn read(path: &Path) -> Result<String, PipelineError> {
    let unreadable = |cause| PipelineError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let bytes = match read_capped(path) {
        Ok(bytes) => bytes,
        Err(ReadCapped::Io(source)) => return Err(unreadable(source)),
        Err(ReadCapped::TooLarge(size)) => {
            return Err(PipelineError::Invalid {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: too_large("pipeline", size),
                hint: "a pipeline is a few KiB: look for a value pasted by mistake; an \
                       artifact belongs in S3, named by a variable such as \
                       `laravel_artifact_url`"
                    .into(),
            })
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let before = String::from_utf8_lossy(&bytes[..at]);
        let (line, column) = kiln_cloud::yaml::position_of(&before, before.len());
        PipelineError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message: format!("byte 0x{:02x} is not UTF-8 text", bytes[at]),
            hint: "save the file as UTF-8 (a pipeline copied from a document or another \
                   encoding carries such bytes)"
                .into(),
        }
    })
}

/// What kept the pipeline file from being read, in words.
fn read_problem(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

/// The fix for a pipeline file that could not be read.
fn read_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::NotFound => {
            "check the path; it is relative to the current directory (the POC's is \
             examples/poc/pipeline.yaml)"
        }
        std::io::ErrorKind::IsADirectory => "name the pipeline's YAML file itself",
        std::io::ErrorKind::PermissionDenied => "make the file readable by this user",
        _ => "check that the file can be read (`cat` it)",
    }
}

/// YAML syntax first, so that an unclosed bracket is called what it is and not a wrong
/// type, then the pipeline's structure.
///
/// The syntax check reads the file as a generic YAML value, which also refuses a key
/// written twice and cannot hold an integer beyond 64 bits. YAML that parses otherwise
/// (as [`serde::de::IgnoredAny`]) is read by its fields first, so that a number far out of
/// range is refused by its field's range; the generic value's refusal is returned beside
/// the file, for [`Pipeline::load`] to report when the checks find nothing else.
fn parse(path: &Path, text: &str) -> Result<(PipelineFile, Option<PipelineError>), PipelineError> {
    let invalid = |e: &serde_yaml_ng::Error, message: String, hint: String| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        PipelineError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message,
            hint,
        }
    };
    let malformed = |e: &serde_yaml_ng::Error| {
        let message = format!("malformed YAML: {}", without_location(e));
        invalid(e, message, kiln_cloud::yaml::SYNTAX_HINT.into())
    };
    let generic = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).err();
    if let Some(e) = &generic {
        if serde_yaml_ng::from_str::<serde::de::IgnoredAny>(text).is_err() {
            return Err(malformed(e));
        }
    }
    let file = serde_yaml_ng::from_str(text).map_err(|e| {
        let message = without_location(&e);
        let hint = kiln_cloud::yaml::hint(&message).to_string();
        invalid(&e, message, hint)
    })?;
    Ok((file, generic.as_ref().map(malformed)))
}

/// The position of `key:` that holds the value at `value`: on the value's line before
/// it (a flow map), or the nearest line above that starts with it (a block).
fn key_position(text: &str, value: (usize, usize), key: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let pattern = format!("{key}:");
    for index in (0..value.0.min(lines.len())).rev() {
        let line = lines[index];
        let end = if index + 1 == value.0 {
            line.char_indices()
                .nth(value.1 - 1)
                .map_or(line.len(), |(b, _)| b)
        } else {
            line.len()
        };
        let found = line[..end]
            .rmatch_indices(pattern.as_str())
            .map(|(b, _)| b)
            .find(|&b| {
                !line[..b]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if let Some(byte) = found {
            return Some((index + 1, line[..byte].chars().count() + 1));
        }
    }
    None
}
