//! What AWS would refuse, refused before anything is called: AMI ids, instance types,
//! subnet ids, volume sizes and budgets out of range, group, template and load balancer
//! names, and the rollout settings of every target.
//!
//! AWS refuses these only once a bake has started (RunInstances fails after the security
//! group exists) or once a rollout starts after an hour of baking; checked with the file,
//! they are bad input with the line and column to fix.

use std::time::Duration;

use kiln_builder::recipe::Seg;
use kiln_rollout::{Field, SpecProblem};

use crate::pipeline::{Pipeline, PipelineError, SourceSection, SubnetSection, TargetSection};

/// gp3 volumes hold 1 GiB to 16 TiB (16,384 GiB).
const VOLUME_GIB: std::ops::RangeInclusive<i128> = 1..=16_384;
/// A bake's own waits: at least a second, at most a day; nothing a bake waits for takes
/// longer, and a longer budget only hides a stuck run.
const BUDGET: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 60 * 60);
/// EC2 ids are the prefix and 8 (older) or 17 (current) characters.
const ID_LENGTHS: [usize; 2] = [8, 17];
/// Auto Scaling group names: 1 to 255 characters.
const GROUP_NAME_MAX: usize = 255;
/// Launch template names: 3 to 128 characters.
const TEMPLATE_NAME: std::ops::RangeInclusive<usize> = 3..=128;
/// Target group and load balancer names: 1 to 32 characters.
const ELB_NAME_MAX: usize = 32;
/// A channel is the last part of a Parameter Store name (`/kiln/<image>/<channel>`);
/// kept short so that the whole name stays far below Parameter Store's limit.
const CHANNEL_MAX: usize = 64;
/// A version is appended to the image name (at most 100) in the AMI name (at most 128).
const VERSION_MAX: usize = 24;

/// Checks every AWS name and number of the file.
pub fn check(pipeline: &Pipeline) -> Result<(), PipelineError> {
    for section in pipeline.sections() {
        if let SourceSection::ImageId(id) = &section.source {
            let mut at = pipeline.section_path(section);
            at.extend([Seg::Key("source"), Seg::Key("image_id")]);
            check_id(
                pipeline,
                &at,
                id,
                ("ami-", true),
                "an AMI id such as `ami-0a1b2c3d4e5f67890`",
            )?;
        }
    }
    check_sections(pipeline)?;
    crate::distribute_input::check(pipeline)?;
    check_builder(pipeline)?;
    check_budgets(pipeline)?;
    for (index, target) in pipeline.file.targets.iter().enumerate() {
        check_target(pipeline, index, target)?;
    }
    Ok(())
}

/// Each image's version and the channel it reads its source from.
fn check_sections(pipeline: &Pipeline) -> Result<(), PipelineError> {
    for section in pipeline.sections() {
        let at = |keys: &[&'static str]| {
            let mut at = pipeline.section_path(section);
            at.extend(keys.iter().map(|k| Seg::Key(k)));
            at
        };
        if let Some(version) = &section.version {
            if let Some((message, hint)) = version_problem(version) {
                return Err(pipeline.invalid_at(&at(&["version"]), message, hint));
            }
        }
        if let SourceSection::Channel(source) = &section.source {
            if let Some((message, hint)) = channel_problem(&source.channel) {
                let at = at(&["source", "channel", "channel"]);
                return Err(pipeline.invalid_at(&at, message, hint));
            }
        }
    }
    Ok(())
}

/// A channel name Parameter Store accepts as the last part of `/kiln/<image>/<channel>`.
pub fn channel_problem(channel: &str) -> Option<(String, String)> {
    let valid = (1..=CHANNEL_MAX).contains(&channel.len())
        && channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    (!valid).then(|| {
        (
            format!("`{channel}` is not a channel name Parameter Store accepts"),
            format!("use 1 to {CHANNEL_MAX} letters, digits, `_`, `.` or `-` (such as `prod`)"),
        )
    })
}

/// A version AMI names accept after the image name.
fn version_problem(version: &str) -> Option<(String, String)> {
    let valid = (1..=VERSION_MAX).contains(&version.len())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    (!valid).then(|| {
        (
            format!("`{version}` is not a valid image version"),
            format!("use 1 to {VERSION_MAX} letters, digits, `_`, `.` or `-` (such as `1.0.0`)"),
        )
    })
}

fn check_builder(pipeline: &Pipeline) -> Result<(), PipelineError> {
    let builder = &pipeline.file.builder;
    check_instance_type(pipeline, &builder.instance_type)?;
    if matches!(&builder.subnet, SubnetSection::Tags(tags) if tags.is_empty()) {
        return Err(pipeline.invalid_at(
            &[Seg::Key("builder"), Seg::Key("subnet"), Seg::Key("tags")],
            "`subnet: { tags: {} }` matches every subnet of the region".into(),
            "give the tags that pick the builder's subnet (such as `{ Name: private-1a }`), \
             or its id (`subnet: { id: subnet-... }`)"
                .into(),
        ));
    }
    if let SubnetSection::Id(id) = &builder.subnet {
        // Lowercase letters are allowed beside hex digits: simulated accounts use
        // readable ids (`subnet-0poc...`); AWS's own are hex.
        check_id(
            pipeline,
            &[Seg::Key("builder"), Seg::Key("subnet"), Seg::Key("id")],
            id,
            ("subnet-", false),
            "a subnet id such as `subnet-0a1b2c3d`",
        )?;
    }
    if let Some(volume) = &builder.root_volume {
        if !VOLUME_GIB.contains(&volume.size_gib.0) {
            return Err(pipeline.invalid_at(
                &[
                    Seg::Key("builder"),
                    Seg::Key("root_volume"),
                    Seg::Key("size_gib"),
                ],
                format!("root volume size {} GiB is out of range", volume.size_gib),
                format!(
                    "EBS gp3 volumes hold {} to {} GiB",
                    VOLUME_GIB.start(),
                    VOLUME_GIB.end()
                ),
            ));
        }
    }
    Ok(())
}

/// `prefix` is the id's prefix and whether only hex digits may follow it.
fn check_id(
    pipeline: &Pipeline,
    at: &[Seg<'_>],
    id: &str,
    (prefix, hex_only): (&str, bool),
    example: &str,
) -> Result<(), PipelineError> {
    let valid = id.strip_prefix(prefix).is_some_and(|rest| {
        ID_LENGTHS.contains(&rest.len())
            && rest
                .chars()
                .all(|c| c.is_ascii_digit() || (c.is_ascii_lowercase() && (!hex_only || c <= 'f')))
    });
    if valid {
        return Ok(());
    }
    Err(pipeline.invalid_at(
        at,
        format!("`{id}` is not a valid {prefix} id; AWS would refuse it"),
        format!("write {example}"),
    ))
}

/// `family.size`: `t3.medium`, `m7i-flex.large`, `u-6tb1.metal`, `c7i.metal-24xl`.
fn check_instance_type(pipeline: &Pipeline, instance_type: &str) -> Result<(), PipelineError> {
    if kiln_cloud::types::is_instance_type(instance_type) {
        return Ok(());
    }
    Err(pipeline.invalid_at(
        &[Seg::Key("builder"), Seg::Key("instance_type")],
        format!("`{instance_type}` is not an EC2 instance type"),
        "write a type such as `t3.medium`: the family, a dot, and a size (nano, micro, \
         small, medium, large, xlarge, 2xlarge... or metal)"
            .into(),
    ))
}

fn check_budgets(pipeline: &Pipeline) -> Result<(), PipelineError> {
    let timeouts = &pipeline.file.builder.timeouts;
    let named = [
        ("boot", timeouts.boot),
        ("agent_online", timeouts.agent_online),
        ("image_available", timeouts.image_available),
        ("instance_terminated", timeouts.instance_terminated),
    ];
    for (name, value) in named {
        let Some(value) = value else { continue };
        if BUDGET.contains(&value) {
            continue;
        }
        return Err(pipeline.invalid_at(
            &[Seg::Key("builder"), Seg::Key("timeouts"), Seg::Key(name)],
            format!(
                "timeout `{name}` of {} is out of range",
                humantime::format_duration(value)
            ),
            "give it between 1s and 24h".into(),
        ));
    }
    Ok(())
}

/// A target's names, then every setting of it AWS would refuse.
fn check_target(
    pipeline: &Pipeline,
    index: usize,
    target: &TargetSection,
) -> Result<(), PipelineError> {
    let at = |key: &'static str| [Seg::Key("targets"), Seg::Index(index), Seg::Key(key)];
    let names = [
        ("group", Some(&target.group), group_name_problem as NameRule),
        (
            "launch_template",
            Some(&target.launch_template),
            template_name_problem,
        ),
        ("target_group", target.target_group.as_ref(), |n| {
            elb_name_problem(n, "target group")
        }),
        ("load_balancer", target.load_balancer.as_ref(), |n| {
            elb_name_problem(n, "load balancer")
        }),
    ];
    for (key, name, rule) in names {
        let Some(name) = name else { continue };
        if let Some((message, hint)) = rule(name) {
            return Err(pipeline.invalid_at(&at(key), message, hint));
        }
    }
    let settings = [
        ("rolling", target.rolling.as_ref().map(|s| s.problems())),
        ("canary", target.canary.as_ref().map(|s| s.problems())),
        (
            "blue_green",
            target.blue_green.as_ref().map(|s| s.problems()),
        ),
        ("in_place", target.in_place.as_ref().map(|s| s.problems())),
        ("gates", Some(target.gates.problems())),
        ("timeouts", Some(target.timeouts.problems())),
    ];
    for (key, problems) in settings {
        if let Some(problem) = problems.and_then(|p| p.into_iter().next()) {
            return Err(settings_error(pipeline, &at(key), problem));
        }
    }
    check_fix_script(pipeline, index, target)
}

/// The in-place fix passes `bash -n` now, not on the first batch of instances during an
/// emergency; bash's line points at the script's entry that holds it.
fn check_fix_script(
    pipeline: &Pipeline,
    index: usize,
    target: &TargetSection,
) -> Result<(), PipelineError> {
    let Some(settings) = &target.in_place else {
        return Ok(());
    };
    // Run Command's AWS-RunShellScript runs the entries as the lines of one script.
    let script = settings.script.join("\n");
    let Some(error) = kiln_builder::recipe::Bash::default().check(&script) else {
        return Ok(());
    };
    let mut at = vec![
        Seg::Key("targets"),
        Seg::Index(index),
        Seg::Key("in_place"),
        Seg::Key("script"),
    ];
    at.extend(
        error
            .line
            .map(|line| Seg::Index(entry_of(&settings.script, line))),
    );
    Err(pipeline.invalid_at(
        &at,
        format!(
            "the in-place fix of target `{}` is not valid bash: {}",
            target.name, error.message
        ),
        "fix the script at this line: `bash -n` (which runs nothing) refuses it, as the \
         instances' bash would"
            .into(),
    ))
}

/// The entry of `lines` that holds line `line` of their script (one entry may hold
/// several lines); the last one for a line past the end, as bash names at end of file.
fn entry_of(lines: &[String], line: usize) -> usize {
    let mut end = 0;
    for (index, entry) in lines.iter().enumerate() {
        end += entry.lines().count().max(1);
        if line <= end {
            return index;
        }
    }
    lines.len().saturating_sub(1)
}

/// A name's problem, as (what is wrong, the fix); `None` when AWS accepts it.
type NameRule = fn(&str) -> Option<(String, String)>;

/// Any ASCII character from `!` to `~` except `:`, 1 to 255 of them.
fn group_name_problem(name: &str) -> Option<(String, String)> {
    let valid = (1..=GROUP_NAME_MAX).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_graphic() && c != ':');
    (!valid).then(|| {
        (
            format!("`{name}` is not a name AWS accepts for an Auto Scaling group"),
            format!("use 1 to {GROUP_NAME_MAX} printable ASCII characters, without spaces or `:`"),
        )
    })
}

/// A name (3 to 128 of letters, digits, `().-/_`) or an id (`lt-` and 17 hex digits).
fn template_name_problem(name: &str) -> Option<(String, String)> {
    let is_id = name.strip_prefix("lt-").is_some_and(|hex| {
        ID_LENGTHS.contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    let is_name = TEMPLATE_NAME.contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "().-/_".contains(c));
    (!is_id && !is_name).then(|| {
        (
            format!("`{name}` is not a launch template name or id AWS accepts"),
            format!(
                "use {} to {} letters, digits or `().-/_`, or an id such as \
                 `lt-0a1b2c3d4e5f67890`",
                TEMPLATE_NAME.start(),
                TEMPLATE_NAME.end()
            ),
        )
    })
}

/// 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen.
fn elb_name_problem(name: &str, what: &str) -> Option<(String, String)> {
    let valid = (1..=ELB_NAME_MAX).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!valid).then(|| {
        (
            format!("`{name}` is not a {what} name AWS accepts"),
            format!(
                "use 1 to {ELB_NAME_MAX} letters, digits and hyphens, not starting or ending \
                 with a hyphen"
            ),
        )
    })
}

/// A rollout setting's problem, pointing at the setting inside the target's block.
fn settings_error(pipeline: &Pipeline, block: &[Seg<'_>], problem: SpecProblem) -> PipelineError {
    let mut at: Vec<Seg<'_>> = block.to_vec();
    at.extend(problem.field.iter().map(|f| match f {
        Field::Key(key) => Seg::Key(key),
        Field::Index(index) => Seg::Index(*index),
    }));
    pipeline.invalid_at(&at, problem.message, problem.hint)
}
