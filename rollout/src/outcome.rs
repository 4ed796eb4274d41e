//! What a rollout or a rollback did: the result the CLI prints (plain or JSON).

use std::time::Duration;

use kiln_cloud::ImageId;
use serde::{Deserialize, Serialize};

/// Status strings of [`RolloutOutcome::status`].
pub mod status {
    pub const SUCCESSFUL: &str = "Successful";
    pub const NO_CHANGE: &str = "NoChange";
    pub const ROLLED_BACK: &str = "RolledBack";
    pub const ROLLBACK_FAILED: &str = "RollbackFailed";
    pub const CANCELLED: &str = "Cancelled";
    pub const FAILED: &str = "Failed";
    /// A rollback found nothing to undo (`note` says why); nothing changed.
    pub const NOTHING_TO_ROLL_BACK: &str = "NothingToRollBack";
}

/// The end of a rollout (or rollback) of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutOutcome {
    pub target: String,
    pub group: String,
    pub strategy: String,
    /// The version the group's instances are on now: the one the rollout made (or
    /// reused), the one a rollback returned to, the one an in-place fix left them on.
    pub launch_template_version: i64,
    /// The version the group ran before.
    pub previous_version: i64,
    pub status: String,
    pub desired: i32,
    /// In-service instances now on `image` (in place: the instances fixed).
    pub on_new_image: i32,
    /// The image of `launch_template_version`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageId>,
    /// Why nothing changed, when nothing did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Phases and how long each took, in the account's time.
    #[serde(with = "timings_serde")]
    pub timings: Vec<(String, Duration)>,
}

mod timings_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Timing {
        phase: String,
        #[serde(with = "humantime_serde")]
        took: Duration,
    }

    pub fn serialize<S: Serializer>(v: &[(String, Duration)], s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<Timing> = v
            .iter()
            .map(|(phase, took)| Timing {
                phase: phase.clone(),
                took: *took,
            })
            .collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, Duration)>, D::Error> {
        let list = Vec::<Timing>::deserialize(d)?;
        Ok(list.into_iter().map(|t| (t.phase, t.took)).collect())
    }
}
