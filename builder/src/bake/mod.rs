//! The bake: builder → steps → hygiene → image → test, then clean-up whatever happened.
//!
//! [`bake`] runs a [`BakePlan`]. It records every resource in a [`Journal`] the moment
//! the resource exists, and on success, failure or cancellation terminates the builder
//! and test instances, waits for them to end and deletes the security group. An image
//! that exists but did not pass its test is deregistered with all of its snapshots.
//! Distribution (copies, launch permissions, channels) follows a successful bake and is
//! not part of this module: it starts from [`BakeOutcome::image`].

mod cleanup;
mod command;
mod image;
mod instance;

use std::time::Duration;

use kiln_cloud::progress::PROGRESS_TARGET;
use kiln_cloud::{Cloud, Event, ImageId, InstanceId, Level, Progress, SecurityGroupId, Timestamp};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::BakeError;
use crate::journal::{Fate, Journal, MemoryJournal, Record, ResourceKind};
use crate::naming;
use crate::plan::{BakePlan, BakedImage, StepPhase};

/// What a bake produced.
#[derive(Debug, Clone, Serialize)]
pub struct BakeOutcome {
    pub image: BakedImage,
    /// True when an image with the same input hash existed and nothing was launched.
    pub reused: bool,
    /// Builder or test resources still present after the run; empty when clean-up
    /// succeeded.
    pub leftovers: Vec<String>,
    /// Each phase and how long it took on the cloud's clock (simulated time on the
    /// simulated account).
    #[serde(serialize_with = "serialize_timings")]
    pub timings: Vec<(String, Duration)>,
}

fn serialize_timings<S: serde::Serializer>(
    timings: &[(String, Duration)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(timings.len()))?;
    for (phase, duration) in timings {
        map.serialize_entry(phase, &humantime::format_duration(*duration).to_string())?;
    }
    map.end()
}

/// Runs a plan, keeping the journal in memory.
pub async fn bake(
    cloud: &Cloud,
    plan: &BakePlan,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<BakeOutcome, BakeError> {
    bake_with_journal(cloud, plan, progress, cancel, &MemoryJournal::new()).await
}

/// Runs a plan, recording every created resource in `journal`. When the bake fails, what
/// clean-up could not remove stays in the journal (and is reported as warnings).
pub async fn bake_with_journal(
    cloud: &Cloud,
    plan: &BakePlan,
    progress: &dyn Progress,
    cancel: &CancellationToken,
    journal: &dyn Journal,
) -> Result<BakeOutcome, BakeError> {
    if let Some(image) = &plan.reuse {
        return Ok(reuse(cloud, image, progress));
    }
    let mut run = Run::new(cloud, plan, progress, cancel, journal);
    run.emit(
        Level::Info,
        "bake",
        &plan.ami_name,
        format!("bake {} started", plan.run_id),
    );

    let result = run.execute().await;
    if let Err(error) = &result {
        run.emit(
            Level::Error,
            run.phase_name(),
            &plan.ami_name,
            error.to_string(),
        );
        if let Some(image) = run.created.image.clone() {
            run.remove_image(&image).await;
        }
    }
    run.begin("cleanup");
    run.cleanup().await;
    run.end_phase();

    let image = result?;
    run.journal
        .forget(ResourceKind::Image, image.id.as_str(), Fate::Kept);
    run.emit(
        Level::Info,
        "bake",
        image.id.as_str(),
        format!("image {} ready", image.name),
    );
    Ok(BakeOutcome {
        image,
        reused: false,
        leftovers: run.leftovers,
        timings: run.timings,
    })
}

fn reuse(cloud: &Cloud, image: &BakedImage, progress: &dyn Progress) -> BakeOutcome {
    tracing::info!(image = %image.id, name = %image.name, "reusing image with the same inputs");
    progress.event(Event {
        at: cloud.clock.now(),
        level: Level::Info,
        phase: "plan".into(),
        subject: image.id.to_string(),
        message: format!("reusing {} (same input hash)", image.name),
        position: None,
    });
    BakeOutcome {
        image: image.clone(),
        reused: true,
        leftovers: Vec::new(),
        timings: Vec::new(),
    }
}

/// The resources this run created and has not removed.
#[derive(Debug, Default)]
struct Created {
    security_group: Option<SecurityGroupId>,
    /// Instance id and role, in launch order.
    instances: Vec<(InstanceId, &'static str)>,
    image: Option<ImageId>,
}

/// One bake in progress.
struct Run<'a> {
    cloud: &'a Cloud,
    plan: &'a BakePlan,
    progress: &'a dyn Progress,
    cancel: &'a CancellationToken,
    journal: &'a dyn Journal,
    created: Created,
    phase: Option<(&'static str, Timestamp)>,
    timings: Vec<(String, Duration)>,
    leftovers: Vec<String>,
}

impl<'a> Run<'a> {
    fn new(
        cloud: &'a Cloud,
        plan: &'a BakePlan,
        progress: &'a dyn Progress,
        cancel: &'a CancellationToken,
        journal: &'a dyn Journal,
    ) -> Self {
        Self {
            cloud,
            plan,
            progress,
            cancel,
            journal,
            created: Created::default(),
            phase: None,
            timings: Vec::new(),
            leftovers: Vec::new(),
        }
    }

    /// Every phase up to a tested image.
    async fn execute(&mut self) -> Result<BakedImage, BakeError> {
        self.begin("builder");
        let security_group = self.create_security_group().await?;
        let source = self.plan.source_image.clone();
        let builder = self
            .launch(naming::ROLE_BUILDER, &source, &security_group)
            .await?;
        self.wait_ready(&builder, naming::ROLE_BUILDER).await?;

        self.begin("steps");
        self.run_steps(&builder, &[StepPhase::Build, StepPhase::Validate])
            .await?;
        self.begin("hygiene");
        self.run_steps(&builder, &[StepPhase::Hygiene]).await?;

        self.begin("image");
        let image = self.create_image(&builder).await?;
        self.wait_available(&image).await?;
        // The builder has done its work; ending it now saves its cost during the test.
        self.terminate_early(&builder).await;

        self.begin("test");
        self.test(&image, &security_group).await?;
        self.mark_ready(&image).await?;
        self.end_phase();
        Ok(self.baked(image))
    }

    /// Launches a test instance from the new image and runs the test steps on it; a
    /// failure marks the image failed.
    async fn test(&mut self, image: &ImageId, group: &SecurityGroupId) -> Result<(), BakeError> {
        if self.plan.steps_of(&[StepPhase::Test]).is_empty() {
            self.emit(
                Level::Warn,
                "test",
                image.as_str(),
                "no test steps: image not tested".into(),
            );
            return Ok(());
        }
        let result = async {
            let test = self.launch(naming::ROLE_TEST, image, group).await?;
            self.wait_ready(&test, naming::ROLE_TEST).await?;
            self.run_steps(&test, &[StepPhase::Test]).await
        }
        .await;
        match result {
            Err(error) if !error.is_cancelled() => {
                self.mark_failed(image).await;
                Err(BakeError::TestFailed {
                    image: image.clone(),
                    region: self.cloud.region.clone(),
                    source: Box::new(error),
                })
            }
            other => other,
        }
    }

    fn baked(&self, id: ImageId) -> BakedImage {
        BakedImage {
            id,
            name: self.plan.ami_name.clone(),
            version: self.plan.version.clone(),
            region: self.cloud.region.clone(),
            input_hash: self.plan.input_hash.clone(),
            source_image: self.plan.source_image.clone(),
        }
    }

    /// Ends the current phase (recording its duration) and starts `name`.
    fn begin(&mut self, name: &'static str) {
        self.end_phase();
        self.phase = Some((name, self.cloud.clock.now()));
        let message = format!("{name} phase started");
        self.emit(Level::Info, name, &self.plan.ami_name, message);
    }

    fn end_phase(&mut self) {
        if let Some((name, started)) = self.phase.take() {
            let took = (self.cloud.clock.now() - started)
                .to_std()
                .unwrap_or_default();
            self.timings.push((name.to_string(), took));
        }
    }

    fn phase_name(&self) -> &'static str {
        self.phase.map(|(name, _)| name).unwrap_or("bake")
    }

    /// Stops with [`BakeError::Cancelled`] when the bake was asked to stop.
    fn check_cancelled(&self) -> Result<(), BakeError> {
        if self.cancel.is_cancelled() {
            return Err(self.cancelled());
        }
        Ok(())
    }

    fn cancelled(&self) -> BakeError {
        BakeError::Cancelled {
            phase: self.phase_name().to_string(),
            region: self.cloud.region.clone(),
        }
    }

    fn record(&self, kind: ResourceKind, id: &str) {
        self.journal.record(Record {
            kind,
            id: id.to_string(),
            region: self.cloud.region.clone(),
            run_id: self.plan.run_id.clone(),
        });
    }

    fn emit(&self, level: Level, phase: &str, subject: &str, message: String) {
        self.emit_at(level, phase, subject, message, None);
    }

    fn emit_at(
        &self,
        level: Level,
        phase: &str,
        subject: &str,
        message: String,
        position: Option<(u64, u64)>,
    ) {
        match level {
            Level::Info => tracing::info!(target: PROGRESS_TARGET, phase, subject, "{message}"),
            Level::Warn => tracing::warn!(target: PROGRESS_TARGET, phase, subject, "{message}"),
            Level::Error => tracing::error!(target: PROGRESS_TARGET, phase, subject, "{message}"),
        }
        self.progress.event(Event {
            at: self.cloud.clock.now(),
            level,
            phase: phase.to_string(),
            subject: subject.to_string(),
            message,
            position,
        });
    }

    /// The role an instance of this run was launched for.
    fn role_of(&self, instance: &InstanceId) -> &'static str {
        self.created
            .instances
            .iter()
            .find(|(id, _)| id == instance)
            .map(|(_, role)| *role)
            .unwrap_or("unknown")
    }

    /// Tags for a builder or test resource of this run.
    fn resource_tags(&self, role: &str) -> kiln_cloud::Tags {
        kiln_cloud::Tags::from([
            (kiln_cloud::TAG_RUN_ID.to_string(), self.plan.run_id.clone()),
            (kiln_cloud::TAG_ROLE.to_string(), role.to_string()),
            (
                kiln_cloud::TAG_MANAGED_BY.to_string(),
                self.plan.image_name.clone(),
            ),
            (
                naming::TAG_NAME.to_string(),
                format!("{}-{role}", self.plan.ami_name),
            ),
        ])
    }
}
