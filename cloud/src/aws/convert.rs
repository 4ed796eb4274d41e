//! Conversions shared by the services: times, durations and tag lists.

use std::time::Duration;

use aws_smithy_types::DateTime as AwsDateTime;

use crate::types::{Tags, Timestamp};

/// An SDK timestamp as kiln's.
pub(crate) fn timestamp(at: &AwsDateTime) -> Option<Timestamp> {
    chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos())
}

pub(crate) fn timestamp_opt(at: Option<&AwsDateTime>) -> Option<Timestamp> {
    at.and_then(timestamp)
}

/// kiln's timestamp as the SDK's, to the millisecond (what AWS APIs keep).
pub(crate) fn aws_timestamp(at: Timestamp) -> AwsDateTime {
    AwsDateTime::from_millis(at.timestamp_millis())
}

/// EC2 answers some times as ISO 8601 strings (image creation and deprecation).
pub(crate) fn parse_time(text: Option<&str>) -> Option<Timestamp> {
    text.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Whole seconds, as the APIs that take an `i32` of seconds want them.
pub(crate) fn seconds_i32(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

pub(crate) fn seconds(value: Option<i32>) -> Duration {
    Duration::from_secs(value.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

/// Key/value pairs (every service has its own tag type) as kiln's tags.
pub(crate) fn tags_from<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Tags {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k?.to_string(), v.unwrap_or_default().to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_millisecond() {
        let at = chrono::DateTime::from_timestamp(1_750_000_000, 123_000_000).unwrap();
        assert_eq!(timestamp(&aws_timestamp(at)), Some(at));
    }

    #[test]
    fn iso_times_from_ec2_parse() {
        let parsed = parse_time(Some("2026-01-02T03:04:05.000Z")).unwrap();
        assert_eq!(parsed.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        assert_eq!(parse_time(Some("not a time")), None);
    }
}
