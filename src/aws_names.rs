//! What AWS would refuse, refused before anything is called: AMI ids, instance types,
//! subnet ids, volume sizes and budgets out of range.
//!
//! AWS refuses these only once a bake has started (RunInstances fails after the security
//! group exists); checked with the file, they are bad input with the line to fix.

use std::time::Duration;

use crate::pipeline::{Pipeline, PipelineError, SourceSection, SubnetSection};

/// gp3 volumes hold 1 GiB to 16 TiB (16,384 GiB).
const VOLUME_GIB: std::ops::RangeInclusive<i32> = 1..=16_384;
/// A bake's own waits: at least a second, at most a day; nothing a bake waits for takes
/// longer, and a longer budget only hides a stuck run.
const BUDGET: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 60 * 60);
/// EC2 ids are the prefix and 8 (older) or 17 (current) characters.
const ID_LENGTHS: [usize; 2] = [8, 17];

/// Checks every AWS name and number of the file.
pub fn check(pipeline: &Pipeline) -> Result<(), PipelineError> {
    for section in pipeline.sections() {
        if let SourceSection::ImageId(id) = &section.source {
            check_id(
                pipeline,
                id,
                "ami-",
                true,
                "an AMI id such as `ami-0a1b2c3d4e5f67890`",
            )?;
        }
    }
    let builder = &pipeline.file.builder;
    check_instance_type(pipeline, &builder.instance_type)?;
    if let SubnetSection::Id(id) = &builder.subnet {
        // Lowercase letters are allowed beside hex digits: simulated accounts use
        // readable ids (`subnet-0poc...`); AWS's own are hex.
        check_id(
            pipeline,
            id,
            "subnet-",
            false,
            "a subnet id such as `subnet-0a1b2c3d`",
        )?;
    }
    if let Some(volume) = &builder.root_volume {
        if !VOLUME_GIB.contains(&volume.size_gib) {
            return Err(pipeline.invalid(
                "size_gib:",
                format!("root volume size {} GiB is out of range", volume.size_gib),
                format!(
                    "EBS gp3 volumes hold {} to {} GiB",
                    VOLUME_GIB.start(),
                    VOLUME_GIB.end()
                ),
            ));
        }
    }
    check_budgets(pipeline)
}

fn check_id(
    pipeline: &Pipeline,
    id: &str,
    prefix: &str,
    hex_only: bool,
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
    Err(pipeline.invalid(
        id,
        format!("`{id}` is not a valid {prefix} id; AWS would refuse it"),
        format!("write {example}"),
    ))
}

/// `family.size`: `t3.medium`, `m7i-flex.large`, `u-6tb1.metal`.
fn check_instance_type(pipeline: &Pipeline, instance_type: &str) -> Result<(), PipelineError> {
    let part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let valid = instance_type
        .split_once('.')
        .is_some_and(|(family, size)| part(family) && part(size) && !size.contains('-'));
    if valid {
        return Ok(());
    }
    Err(pipeline.invalid(
        &format!("instance_type: {instance_type}"),
        format!("`{instance_type}` is not an EC2 instance type"),
        "write a type such as `t3.medium` (family, a dot, the size)".into(),
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
        return Err(pipeline.invalid(
            &format!("{name}:"),
            format!(
                "timeout `{name}` of {} is out of range",
                humantime::format_duration(value)
            ),
            "give it between 1s and 24h".into(),
        ));
    }
    Ok(())
}
