//! The pipeline's `distribute:` section, checked when the file is read: the regions the
//! image is copied to, the KMS key of each, who it is shared with, the channel and the
//! copy budget.
//!
//! AWS would refuse most of these only after the bake, when the copies start (an hour in);
//! the others (a region listed twice, a key for a region nothing is copied to) are
//! mistakes AWS never sees. Each is bad input at its line.

use std::collections::BTreeSet;
use std::time::Duration;

use kiln_builder::recipe::Seg;

use crate::aws_names::channel_problem;
use crate::pipeline::{is_region_name, Pipeline, PipelineError};

/// A region's copy of the image: AWS's time-based copies take a completion duration of
/// 15 minutes to 48 hours (SnapshotCopyCompletionDurationMinutes), the range in which it
/// commits to finishing a copy; a budget outside it either fails copies that are on time
/// or waits days on one that is stuck.
const COPY_TIMEOUT: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(15 * 60)..=Duration::from_secs(48 * 60 * 60);
/// AWS account ids are 12 digits.
const ACCOUNT_ID_DIGITS: usize = 12;
/// The partitions an ARN may name: the commercial regions, China, GovCloud.
const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];
/// An organization id is `o-` and 10 to 32 lower-case letters or digits.
const ORG_ID_CHARS: std::ops::RangeInclusive<usize> = 10..=32;
/// An OU id is `ou-`, 4 to 32 characters of the root's id, `-`, 8 to 32 of its own.
const OU_ROOT_CHARS: std::ops::RangeInclusive<usize> = 4..=32;
const OU_OWN_CHARS: std::ops::RangeInclusive<usize> = 8..=32;
/// A KMS key id is a UUID, or `mrk-` and 32 hex digits for a multi-Region key.
const UUID_GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
const MRK_HEX_DIGITS: usize = 32;
/// An alias name after `alias/`: 1 to 250 letters, digits, `/`, `_` or `-`.
const ALIAS_NAME_MAX: usize = 250;

/// What is wrong at a path of the file: (where, what, the fix).
type Problem<'a> = (Vec<Seg<'a>>, String, String);

/// Every value of `distribute:`; the first problem is the error.
pub fn check(pipeline: &Pipeline) -> Result<(), PipelineError> {
    let checks = [
        channel_and_budget(pipeline),
        regions(pipeline),
        kms_keys(pipeline),
        accounts(pipeline),
        shared_with(pipeline),
    ];
    match checks.into_iter().flatten().next() {
        Some((at, message, hint)) => Err(pipeline.invalid_at(&at, message, hint)),
        None => key_regions(pipeline),
    }
}

fn at(key: &'static str, index: Option<usize>) -> Vec<Seg<'static>> {
    let mut at = vec![Seg::Key("distribute"), Seg::Key(key)];
    at.extend(index.map(Seg::Index));
    at
}

/// The channel published to, and the budget of each copy.
fn channel_and_budget(pipeline: &Pipeline) -> Option<Problem<'static>> {
    let distribute = &pipeline.file.distribute;
    if let Some((message, hint)) = distribute.channel.as_deref().and_then(channel_problem) {
        return Some((at("channel", None), message, hint));
    }
    let budget = distribute.copy_timeout?;
    (!COPY_TIMEOUT.contains(&budget)).then(|| {
        (
            at("copy_timeout", None),
            format!(
                "copy_timeout {} is out of range",
                humantime::format_duration(budget)
            ),
            "give it between 15m and 48h: the range in which AWS completes a time-based \
             image copy"
                .into(),
        )
    })
}

/// Each region once, and never the image's own: it is baked there, not copied.
fn regions(pipeline: &Pipeline) -> Option<Problem<'static>> {
    let home = &pipeline.file.image.region;
    let mut seen = BTreeSet::new();
    for (index, region) in pipeline.file.distribute.regions.iter().enumerate() {
        if region == home {
            return Some((
                at("regions", Some(index)),
                format!("region `{region}` is the image's own region"),
                "remove it: the image is baked there; `regions` lists the other regions it \
                 is copied to"
                    .into(),
            ));
        }
        if !seen.insert(region) {
            return Some((
                at("regions", Some(index)),
                format!("region `{region}` is listed twice"),
                "list each region once".into(),
            ));
        }
    }
    None
}

/// Each key is a key or alias ARN of the region it is given for.
fn kms_keys(pipeline: &Pipeline) -> Option<Problem<'_>> {
    let keys = &pipeline.file.distribute.kms_keys;
    keys.iter().find_map(|(region, key)| {
        let mut at = at("kms_keys", None);
        at.push(Seg::Key(region));
        match kms_key_region(key) {
            None => Some((
                at,
                format!("`{key}` is not a KMS key ARN or alias ARN"),
                "write the key's ARN, such as \
                 `arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab`, \
                 or an alias ARN (`arn:aws:kms:us-west-2:111122223333:alias/images`)"
                    .into(),
            )),
            Some(in_region) if in_region != region => Some((
                at,
                format!("the key given for {region} is a key of {in_region}"),
                format!(
                    "a copy into {region} is encrypted with a key of {region}: give one of \
                     that region"
                ),
            )),
            Some(_) => None,
        }
    })
}

/// The region of a KMS key ARN or alias ARN; `None` when `arn` is neither.
fn kms_key_region(arn: &str) -> Option<&str> {
    let [prefix, partition, service, region, account, resource] =
        arn.splitn(6, ':').collect::<Vec<_>>()[..]
    else {
        return None;
    };
    let valid = prefix == "arn"
        && PARTITIONS.contains(&partition)
        && service == "kms"
        && is_region_name(region)
        && is_account(account)
        && (resource.strip_prefix("key/").is_some_and(is_key_id)
            || resource.strip_prefix("alias/").is_some_and(is_alias_name));
    valid.then_some(region)
}

fn is_account(text: &str) -> bool {
    text.len() == ACCOUNT_ID_DIGITS && text.chars().all(|c| c.is_ascii_digit())
}

fn is_key_id(id: &str) -> bool {
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    if let Some(multi) = id.strip_prefix("mrk-") {
        return multi.len() == MRK_HEX_DIGITS && hex(multi);
    }
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == UUID_GROUPS.len()
        && groups
            .iter()
            .zip(UUID_GROUPS)
            .all(|(group, len)| group.len() == len && hex(group))
}

fn is_alias_name(name: &str) -> bool {
    (1..=ALIAS_NAME_MAX).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
}

/// A key for a region that is not copied to would never be used: a misspelt region.
fn key_regions(pipeline: &Pipeline) -> Result<(), PipelineError> {
    let distribute = &pipeline.file.distribute;
    let Some(region) = distribute
        .kms_keys
        .keys()
        .find(|r| !distribute.regions.contains(r))
    else {
        return Ok(());
    };
    let mut at = at("kms_keys", None);
    at.push(Seg::Key(region));
    Err(pipeline.invalid_key(
        &at,
        format!("kms_keys gives a key for {region}, which `regions` does not list"),
        "give keys only for the regions the image is copied to (the image's own region \
         takes builder.root_volume.kms_key_id), or add the region to `regions`"
            .into(),
    ))
}

/// The accounts shared with.
fn accounts(pipeline: &Pipeline) -> Option<Problem<'static>> {
    let accounts = &pipeline.file.distribute.accounts;
    let index = accounts.iter().position(|a| !is_account(a))?;
    Some((
        at("accounts", Some(index)),
        format!("`{}` is not an AWS account id", accounts[index]),
        "write the 12 digits of the account, quoted (\"444455556666\")".into(),
    ))
}

/// The organizations and organizational units shared with, as ARNs.
fn shared_with(pipeline: &Pipeline) -> Option<Problem<'static>> {
    let distribute = &pipeline.file.distribute;
    let organizations = distribute.organizations.iter().enumerate();
    if let Some((index, arn)) = organizations.clone().find(|(_, a)| !is_organization_arn(a)) {
        return Some((
            at("organizations", Some(index)),
            format!("`{arn}` is not an organization ARN"),
            "write the organization's ARN, such as \
             `arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5`"
                .into(),
        ));
    }
    let units = distribute.organizational_units.iter().enumerate();
    let (index, arn) = units.clone().find(|(_, a)| !is_unit_arn(a))?;
    Some((
        at("organizational_units", Some(index)),
        format!("`{arn}` is not an organizational unit ARN"),
        "write the unit's ARN, such as \
         `arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-c3d4e5f6`"
            .into(),
    ))
}

/// `arn:aws:organizations::<account>:<resource>`, returning the resource.
fn organizations_resource(arn: &str) -> Option<&str> {
    let [prefix, partition, service, region, account, resource] =
        arn.splitn(6, ':').collect::<Vec<_>>()[..]
    else {
        return None;
    };
    let valid = prefix == "arn"
        && PARTITIONS.contains(&partition)
        && service == "organizations"
        && region.is_empty()
        && is_account(account);
    valid.then_some(resource)
}

fn is_id_part(text: &str, lengths: &std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn is_organization_id(id: &str) -> bool {
    id.strip_prefix("o-")
        .is_some_and(|rest| is_id_part(rest, &ORG_ID_CHARS))
}

fn is_organization_arn(arn: &str) -> bool {
    organizations_resource(arn)
        .and_then(|r| r.strip_prefix("organization/"))
        .is_some_and(is_organization_id)
}

fn is_unit_arn(arn: &str) -> bool {
    let Some(path) = organizations_resource(arn).and_then(|r| r.strip_prefix("ou/")) else {
        return false;
    };
    let Some((organization, unit)) = path.split_once('/') else {
        return false;
    };
    let unit = unit.strip_prefix("ou-").and_then(|u| u.split_once('-'));
    is_organization_id(organization)
        && unit.is_some_and(|(root, own)| {
            is_id_part(root, &OU_ROOT_CHARS) && is_id_part(own, &OU_OWN_CHARS)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arns_aws_documents_are_accepted() {
        let region = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(kms_key_region(region), Some("us-west-2"));
        let multi = "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
        assert_eq!(kms_key_region(multi), Some("us-west-2"));
        let alias = "arn:aws-cn:kms:cn-north-1:111122223333:alias/images/prod";
        assert_eq!(kms_key_region(alias), Some("cn-north-1"));
        assert!(is_organization_arn(
            "arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5"
        ));
        assert!(is_unit_arn(
            "arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-c3d4e5f6"
        ));
    }

    #[test]
    fn what_is_not_an_arn_of_its_kind_is_refused() {
        for key in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/images",
            "arn:aws:kms:us-west-2:111122223333:key/...",
            "arn:aws:s3:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-west-2:1111:alias/images",
        ] {
            assert_eq!(kms_key_region(key), None, "{key}");
        }
        assert!(!is_organization_arn("o-a1b2c3d4e5"));
        assert!(!is_organization_arn(
            "arn:aws:organizations::111122223333:organization/o-abc"
        ));
        assert!(!is_unit_arn(
            "arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5"
        ));
        assert!(!is_unit_arn(
            "arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-web"
        ));
    }
}
