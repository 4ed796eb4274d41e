//! Names, versions, run ids and the tag keys of baked images.
//!
//! Versions are `YYYY.MM.DD-N`: the day of the bake, then a counter that starts at 1
//! each day and is one more than the highest already used by that image name. They sort
//! by [`version_key`] (the counter compared as a number).

use kiln_cloud::Timestamp;

/// The input hash of the bake that made an image (the cache key).
pub const TAG_INPUT_HASH: &str = "kiln:input-hash";
/// The image's version (`2026.12.03-1`).
pub const TAG_VERSION: &str = "kiln:version";
/// The AMI the image was baked from.
pub const TAG_SOURCE_IMAGE: &str = "kiln:source-image";
/// The recipes baked into the image, comma-separated, in order.
pub const TAG_RECIPES: &str = "kiln:recipes";
/// The commit of the pipeline's repository.
pub const TAG_COMMIT: &str = "kiln:commit";
/// The kiln image a layered bake started from (its source, read from a channel).
pub const TAG_PARENT_IMAGE: &str = "kiln:parent-image";
/// On a copy: `<region>/<ami>` of the image it was copied from.
pub const TAG_COPIED_FROM: &str = "kiln:copied-from";
/// `failed` when the image failed its test: never reuse or distribute it.
pub const TAG_STATUS: &str = "kiln:status";
/// The value of [`TAG_STATUS`] on an image that failed its test.
pub const STATUS_FAILED: &str = "failed";
/// The value of [`TAG_STATUS`] from CreateImage until the bake has tested the image: an
/// image still `pending` after its run is over was left by a killed bake (`kiln gc`
/// removes it). A copy to another region carries it from CopyImage until every copy of
/// its distribution is done (a killed run's copy is then found by `kiln gc` there).
pub const STATUS_PENDING: &str = "pending";
/// The value of [`TAG_STATUS`] once the bake finished with the image tested.
pub const STATUS_READY: &str = "ready";
/// AWS's conventional display name tag.
pub const TAG_NAME: &str = "Name";

/// [`kiln_cloud::TAG_ROLE`] values.
pub const ROLE_BUILDER: &str = "builder";
pub const ROLE_TEST: &str = "test";
pub const ROLE_IMAGE: &str = "image";

/// AWS rejects tag values longer than this.
pub const MAX_TAG_VALUE: usize = 256;
/// AWS rejects AMI names longer than this.
pub const MAX_IMAGE_NAME: usize = 128;

/// The Parameter Store name of an image's channel: `/kiln/<image>/<channel>`.
pub fn channel_parameter(image_name: &str, channel: &str) -> String {
    format!("/kiln/{image_name}/{channel}")
}

/// The AMI name of a version: `<image_name>-<version>`.
pub fn ami_name(image_name: &str, version: &str) -> String {
    format!("{image_name}-{version}")
}

/// The day part of versions made at `now`.
pub fn version_day(now: Timestamp) -> String {
    now.format("%Y.%m.%d").to_string()
}

/// The next version of the day, given the AMI names the image already has.
pub fn next_version<'a>(
    image_name: &str,
    now: Timestamp,
    existing_names: impl IntoIterator<Item = &'a str>,
) -> String {
    let day = version_day(now);
    let prefix = format!("{image_name}-{day}-");
    let highest = existing_names
        .into_iter()
        .filter_map(|name| name.strip_prefix(&prefix)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    format!("{day}-{}", highest + 1)
}

/// A key that orders versions made by [`next_version`] in time order
/// (`2026.12.03-10` after `2026.12.03-9`); other versions sort by their text.
pub fn version_key(version: &str) -> (String, u64, String) {
    match version.rsplit_once('-') {
        Some((day, n)) => match n.parse() {
            Ok(n) => (day.to_string(), n, String::new()),
            Err(_) => (version.to_string(), 0, String::new()),
        },
        None => (version.to_string(), 0, String::new()),
    }
}

/// A build id that is unique per bake and readable: `bake-<UTC time>-<random>`.
pub fn run_id(now: Timestamp) -> String {
    let suffix: u32 = rand::random();
    format!("bake-{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), suffix)
}

/// Whether `text` uses only characters that are safe in AMI names, tags and paths.
pub fn is_safe_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Cuts `value` to AWS's tag value limit on a character boundary.
pub fn tag_value(value: &str) -> String {
    value.chars().take(MAX_TAG_VALUE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> Timestamp {
        chrono::Utc.with_ymd_and_hms(y, m, d, 9, 30, 0).unwrap()
    }

    #[test]
    fn first_version_of_the_day_is_one() {
        let v = next_version(
            "poc-web-base",
            at(2026, 12, 3),
            ["poc-web-base-2026.12.02-4"],
        );
        assert_eq!(v, "2026.12.03-1");
    }

    #[test]
    fn next_version_follows_the_highest_of_the_day() {
        let names = [
            "poc-web-base-2026.12.03-2",
            "poc-web-base-2026.12.03-10",
            "poc-web-base-extra-2026.12.03-40",
            "other-2026.12.03-99",
        ];
        let v = next_version("poc-web-base", at(2026, 12, 3), names);
        assert_eq!(v, "2026.12.03-11");
    }

    #[test]
    fn version_key_orders_by_day_then_counter() {
        let mut versions = vec!["2026.12.03-10", "2026.12.04-1", "2026.12.03-9"];
        versions.sort_by_key(|v| version_key(v));
        assert_eq!(
            versions,
            vec!["2026.12.03-9", "2026.12.03-10", "2026.12.04-1"]
        );
    }

    #[test]
    fn run_ids_differ_and_name_the_time() {
        let a = run_id(at(2026, 12, 3));
        let b = run_id(at(2026, 12, 3));
        assert_ne!(a, b);
        assert!(a.starts_with("bake-20261203T093000Z-"), "{a}");
        assert!(is_safe_name(&a));
    }

    #[test]
    fn safe_names() {
        assert!(is_safe_name("poc-web-base"));
        assert!(!is_safe_name(""));
        assert!(!is_safe_name("poc web"));
        assert!(!is_safe_name("a/b"));
    }

    #[test]
    fn tag_values_are_cut_on_characters() {
        let long = "é".repeat(300);
        assert_eq!(tag_value(&long).chars().count(), MAX_TAG_VALUE);
    }
}
