//! `rollout`: take the lock, check again what may have changed since the plan, make the
//! launch template version, run the strategy, release the lock.

use std::time::Duration;

use kiln_cloud::journal::{Journal, MemoryJournal};
use kiln_cloud::{
    Cloud, Group, GroupTemplate, ImageId, InstanceFilter, LaunchTemplateId, NewTemplateVersion,
    Progress, RefreshStatus, Tags, TemplateRef, Timestamp, UpdateGroup, TAG_RUN_ID,
};
use tokio_util::sync::CancellationToken;

use crate::error::{rollback_command, status_command, Refusal, RolloutError, StopReason};
use crate::events::Emitter;
use crate::ledger::Ledger;
use crate::lock;
use crate::outcome::{status, RolloutOutcome};
use crate::plan::{Facts, RefreshPlan, RolloutPlan};
use crate::preflight;
use crate::refresh::{chrono_of, RefreshRun, Watched};
use crate::spec::Strategy;

/// Group tag: the version the group ran before kiln's last rollout (for `rollback`).
pub const TAG_PREVIOUS_VERSION: &str = "kiln:previous-version";
/// Group tag: the version kiln's last rollout installs.
pub const TAG_VERSION: &str = "kiln:version";
/// Group tag: the image kiln's last rollout installs.
pub const TAG_IMAGE: &str = "kiln:image";
/// Group tag: the pipeline target the group belongs to.
pub const TAG_TARGET: &str = "kiln:target";

/// Runs the plan. A rollout that was stopped (gate, deadline, cancel) returns
/// [`RolloutError::Stopped`] with the reason and the outcome after the rollback.
pub async fn rollout(
    cloud: &Cloud,
    plan: &RolloutPlan,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<RolloutOutcome, RolloutError> {
    rollout_with_journal(cloud, plan, progress, cancel, &MemoryJournal::new()).await
}

/// Runs the plan, recording in `journal` every resource the rollout creates (launch
/// template version, green group and target group, testers' rule) the moment it exists.
/// A rollout that stops or fails removes what it made; what it could not remove stays
/// in the journal (and is reported as warnings), for `kiln gc`.
pub async fn rollout_with_journal(
    cloud: &Cloud,
    plan: &RolloutPlan,
    progress: &dyn Progress,
    cancel: &CancellationToken,
    journal: &dyn Journal,
) -> Result<RolloutOutcome, RolloutError> {
    let cloud = &crate::patient::patient(cloud);
    let ledger = Ledger::new(journal, &cloud.region, &plan.run_id);
    let emit = Emitter {
        progress,
        clock: &*cloud.clock,
    };
    let group = &plan.spec.group;
    if plan.no_change {
        emit.info(
            "plan",
            group,
            format!("already on {}: nothing to do", plan.image),
        );
        // The outcome counts what runs the image now, not what this run changed.
        let on_new = on_new_image(cloud, group, &plan.image).await?;
        return Ok(outcome(
            plan,
            plan.template.source_version,
            status::NO_CHANGE,
            on_new,
            Vec::new(),
        ));
    }

    let me = plan.lock_holder(cloud.clock.now());
    if let Some(old) = lock::acquire(cloud, group, &me).await? {
        emit.warn(
            "lock",
            group,
            format!("took over the expired lock of {old}"),
        );
    }
    emit.info("lock", group, format!("locked by {me}"));

    let result = run_locked(cloud, plan, &emit, cancel, &ledger).await;

    match lock::release(cloud, group, &me).await {
        Ok(()) => emit.info("lock", group, "released"),
        Err(e) => emit.warn("lock", group, format!("could not release the lock: {e}")),
    }
    result
}

async fn run_locked(
    cloud: &Cloud,
    plan: &RolloutPlan,
    emit: &Emitter<'_>,
    cancel: &CancellationToken,
    ledger: &Ledger<'_>,
) -> Result<RolloutOutcome, RolloutError> {
    recheck(cloud, plan).await?;
    match &plan.spec.strategy {
        Strategy::Rolling(_) | Strategy::Canary(_) if plan.refresh.is_some() => {
            let refresh = plan.refresh.as_ref().expect("checked");
            run_refresh(cloud, plan, refresh, emit, cancel, ledger).await
        }
        Strategy::BlueGreen(_) | Strategy::Canary(_) if plan.blue_green.is_some() => {
            let bg = plan.blue_green.as_ref().expect("checked");
            crate::bluegreen::run(cloud, plan, bg, emit, cancel, ledger).await
        }
        Strategy::InPlace(_) if plan.in_place.is_some() => {
            let ip = plan.in_place.as_ref().expect("checked");
            crate::inplace::run(cloud, plan, ip, emit, cancel).await
        }
        _ => Err(RolloutError::Invalid {
            what: format!(
                "strategy {} for group {}",
                plan.spec.strategy.name(),
                plan.spec.group
            ),
            region: cloud.region.clone(),
            detail: "the plan lacks this strategy's part; plan again".into(),
        }),
    }
}

/// What may have changed between the plan and the lock: a refresh started by someone
/// else, suspended processes, a new version on the group.
async fn recheck(cloud: &Cloud, plan: &RolloutPlan) -> Result<(), RolloutError> {
    let facts = Facts::gather(cloud, &plan.spec).await?;
    let mut refusals =
        preflight::check_running_refresh(&plan.spec.target, &plan.spec.group, &facts.refreshes);
    refusals.extend(preflight::check_suspended(&facts.group));
    if facts.source.version != plan.template.source_version {
        refusals.push(Refusal {
            check: "changed_since_plan".into(),
            reason: format!(
                "group {} now runs version {} (planned from {})",
                plan.spec.group, facts.source.version, plan.template.source_version
            ),
            fix: "plan again".into(),
        });
    }
    if refusals.is_empty() {
        return Ok(());
    }
    Err(RolloutError::Preflight {
        group: plan.spec.group.clone(),
        region: cloud.region.clone(),
        refusals,
    })
}

/// Measures phases in the account's time.
pub(crate) struct Timings<'a> {
    clock: &'a dyn kiln_cloud::Clock,
    mark: Timestamp,
    pub list: Vec<(String, Duration)>,
}

impl<'a> Timings<'a> {
    pub fn new(clock: &'a dyn kiln_cloud::Clock) -> Self {
        Self {
            clock,
            mark: clock.now(),
            list: Vec::new(),
        }
    }

    pub fn lap(&mut self, phase: &str) {
        let now = self.clock.now();
        let took = (now - self.mark).to_std().unwrap_or_default();
        self.list.push((phase.to_string(), took));
        self.mark = now;
    }
}

async fn run_refresh(
    cloud: &Cloud,
    plan: &RolloutPlan,
    refresh: &RefreshPlan,
    emit: &Emitter<'_>,
    cancel: &CancellationToken,
    ledger: &Ledger<'_>,
) -> Result<RolloutOutcome, RolloutError> {
    let old_max = raise_max_size(cloud, plan, refresh, emit).await?;
    let mut timings = Timings::new(&*cloud.clock);
    let result = match create_version(cloud, plan, emit, ledger).await {
        Ok((template_id, version)) => {
            timings.lap("template");
            let run = RefreshRun {
                cloud,
                plan,
                emit,
                cancel,
                template_id: template_id.clone(),
                version,
            };
            let result = refresh_to_new_version(&run, refresh, timings).await;
            let went_through = result
                .as_ref()
                .map_or_else(RolloutError::went_through, |_| true);
            settle_version(&run, ledger, went_through).await;
            result
        }
        Err(e) => Err(e),
    };
    restore_max_size(cloud, plan, old_max, emit).await;
    result
}

/// After the refresh: the version is the group's now (success), or it is removed when
/// nothing runs it (a refresh rolled back or never started); one still used stays
/// journaled.
async fn settle_version(run: &RefreshRun<'_>, ledger: &Ledger<'_>, succeeded: bool) {
    let (template, version) = (&run.template_id, run.version);
    if succeeded || version == run.plan.template.source_version {
        ledger.kept_version(template, version);
        return;
    }
    drop_version(run.cloud, ledger, run.emit, template, version, &[]).await;
}

/// Deletes a version this run made once nothing needs it (groups in `leaving` are
/// about to go and do not count); a version still needed stays in the journal.
pub(crate) async fn drop_version(
    cloud: &Cloud,
    ledger: &Ledger<'_>,
    emit: &Emitter<'_>,
    template: &LaunchTemplateId,
    version: i64,
    leaving: &[String],
) {
    let subject = format!("{template} version {version}");
    let user = async {
        let t = cloud
            .compute
            .describe_launch_template(&TemplateRef::Id(template.clone()))
            .await?;
        let groups = cloud.scaling.describe_groups(&[]).await?;
        crate::remove::version_user(cloud, &t, version, &groups, leaving).await
    };
    let result = match user.await {
        Ok(Some(user)) => Err(format!("kept: it is {user}")),
        Ok(None) => crate::remove::version(cloud, template, version).await,
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => {
            ledger.removed_version(template, version);
            emit.info("cleanup", &subject, "launch template version deleted");
        }
        Err(why) => emit.warn("cleanup", &subject, format!("left behind: {why}")),
    }
}

async fn refresh_to_new_version(
    run: &RefreshRun<'_>,
    refresh: &RefreshPlan,
    mut timings: Timings<'_>,
) -> Result<RolloutOutcome, RolloutError> {
    let (cloud, plan, emit, version) = (run.cloud, run.plan, run.emit, run.version);
    let id = run.start(refresh).await?;
    // Recorded once the refresh exists, so the tags never name a version nothing installs.
    record_versions(cloud, plan, version).await?;
    let deadline = cloud.clock.now() + chrono_of(plan.spec.timeouts.rollout);
    match run.watch(&id, deadline).await? {
        Watched::Succeeded => {
            timings.lap("refresh");
            let group = &plan.spec.group;
            emit.info("refresh", group, format!("version {version} is live"));
            let done = format!("instance refresh {id} succeeded: {group} runs version {version}");
            let on_new = on_new_image(cloud, group, &plan.image)
                .await
                .map_err(|e| e.after_done(group, &cloud.region, done))?;
            let label = status::SUCCESSFUL;
            Ok(outcome(plan, version, label, on_new, timings.list))
        }
        Watched::Stopped(reason, last) => {
            timings.lap("until_stopped");
            stop(run, &id, refresh, reason, last, timings).await
        }
    }
}

/// Rolls back after a stop and turns it into [`RolloutError::Stopped`].
async fn stop(
    run: &RefreshRun<'_>,
    id: &str,
    refresh: &RefreshPlan,
    reason: StopReason,
    last: Option<Box<kiln_cloud::InstanceRefresh>>,
    mut timings: Timings<'_>,
) -> Result<RolloutOutcome, RolloutError> {
    let (plan, group) = (run.plan, &run.plan.spec.group);
    run.emit.error(
        "gate",
        group,
        format!("stopping instance refresh {id}: {reason}"),
    );
    let final_status = match run.roll_back(id, refresh, last.as_deref()).await {
        Ok(status) => status,
        // AWS refused the undo (a throttling storm that outlasts every try, a denial):
        // the refresh may still be putting the new version in.
        Err(RolloutError::Cloud(e)) => {
            return Err(RolloutError::RollbackFailed {
                group: group.clone(),
                region: run.cloud.region.clone(),
                detail: format!("stopping instance refresh {id} ({reason}): {e}"),
                next: format!(
                    "the refresh may still be running: look at {id} in the console, and \
                     run {} once AWS answers again; {} shows the instances' versions",
                    rollback_command(&plan.spec.target),
                    status_command(&plan.spec.target)
                ),
            });
        }
        Err(other) => return Err(other),
    };
    timings.lap("rollback");
    let rolled_back = final_status == RefreshStatus::RollbackSuccessful;
    let label = match (rolled_back, &reason) {
        (true, _) => status::ROLLED_BACK,
        (false, StopReason::Cancelled) => status::CANCELLED,
        (false, _) => status::ROLLBACK_FAILED,
    };
    run.emit.info(
        "rollback",
        group,
        format!(
            "refresh ended {final_status:?}; group back on version {}",
            plan.template.source_version
        ),
    );
    let on_new = on_new_image(run.cloud, group, &plan.image).await?;
    Err(RolloutError::Stopped {
        group: group.clone(),
        region: run.cloud.region.clone(),
        reason: Box::new(reason),
        rolled_back,
        outcome: Box::new(outcome(plan, run.version, label, on_new, timings.list)),
        left: None,
    })
}

/// A new numbered version from the group's own, with only the image changed
/// (PITFALLS 10); when the group's version already has the image, it is reused.
pub(crate) async fn create_version(
    cloud: &Cloud,
    plan: &RolloutPlan,
    emit: &Emitter<'_>,
    ledger: &Ledger<'_>,
) -> Result<(LaunchTemplateId, i64), RolloutError> {
    let t = &plan.template;
    let id = LaunchTemplateId::new(t.id.clone());
    if t.source_image.as_ref() == Some(&plan.image) {
        emit.info(
            "template",
            &t.name,
            format!(
                "version {} already launches {}: reused",
                t.source_version, plan.image
            ),
        );
        return Ok((id, t.source_version));
    }
    let request = NewTemplateVersion {
        template: TemplateRef::Id(id.clone()),
        source_version: t.source_version,
        image_id: plan.image.clone(),
        description: format!(
            "kiln {}: {} from version {} ({})",
            plan.run_id, plan.image, t.source_version, plan.spec.target
        ),
    };
    let created = cloud
        .compute
        .create_launch_template_version(&request)
        .await?;
    ledger.record_version(&id, created.version);
    emit.info(
        "template",
        &t.name,
        format!(
            "version {} created from {} with image {} (the group is not changed until the \
             refresh succeeds)",
            created.version, t.source_version, plan.image
        ),
    );
    Ok((id, created.version))
}

/// Tags that let `rollback` and `status` find the previous version later.
pub(crate) async fn record_versions(
    cloud: &Cloud,
    plan: &RolloutPlan,
    version: i64,
) -> Result<(), RolloutError> {
    let tags = Tags::from([
        (
            TAG_PREVIOUS_VERSION.to_string(),
            plan.template.source_version.to_string(),
        ),
        (TAG_VERSION.to_string(), version.to_string()),
        (TAG_IMAGE.to_string(), plan.image.to_string()),
        (TAG_RUN_ID.to_string(), plan.run_id.clone()),
        (TAG_TARGET.to_string(), plan.spec.target.clone()),
    ]);
    cloud
        .scaling
        .put_group_tags(&plan.spec.group, &tags)
        .await?;
    Ok(())
}

async fn raise_max_size(
    cloud: &Cloud,
    plan: &RolloutPlan,
    refresh: &RefreshPlan,
    emit: &Emitter<'_>,
) -> Result<Option<i32>, RolloutError> {
    let Some(to) = refresh.raise_max_size_to else {
        return Ok(None);
    };
    let update = UpdateGroup {
        name: plan.spec.group.clone(),
        max_size: Some(to),
        ..UpdateGroup::default()
    };
    cloud.scaling.update_group(&update).await?;
    emit.info(
        "capacity",
        &plan.spec.group,
        format!(
            "max size raised from {} to {to} for the rollout",
            plan.group.max_size
        ),
    );
    Ok(Some(plan.group.max_size))
}

async fn restore_max_size(cloud: &Cloud, plan: &RolloutPlan, old: Option<i32>, emit: &Emitter<'_>) {
    let Some(old) = old else { return };
    let update = UpdateGroup {
        name: plan.spec.group.clone(),
        max_size: Some(old),
        ..UpdateGroup::default()
    };
    match cloud.scaling.update_group(&update).await {
        Ok(()) => emit.info(
            "capacity",
            &plan.spec.group,
            format!("max size restored to {old}"),
        ),
        Err(e) => emit.warn(
            "capacity",
            &plan.spec.group,
            format!("could not restore max size {old}: {e}; restore it by hand"),
        ),
    }
}

/// In-service instances of the group that run `image`.
pub(crate) async fn on_new_image(
    cloud: &Cloud,
    group: &str,
    image: &ImageId,
) -> Result<i32, RolloutError> {
    let g = lock::describe(cloud, group).await?;
    let ids: Vec<_> = g
        .instances
        .iter()
        .filter(|i| i.in_service())
        .map(|i| i.id.clone())
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let filter = InstanceFilter {
        ids,
        exclude_terminated: true,
        ..InstanceFilter::default()
    };
    let instances = cloud.compute.describe_instances(&filter).await?;
    Ok(instances.iter().filter(|i| &i.image_id == image).count() as i32)
}

/// What a group runs now: its numbered version, that version's image, and how many of
/// its in-service instances run that image.
pub(crate) struct Running {
    pub version: i64,
    pub image: Option<ImageId>,
    pub on_image: i32,
}

/// Reads what `g` runs now (for the result lines of rollbacks, which install no image
/// of their own).
pub(crate) async fn running(cloud: &Cloud, g: &Group) -> Result<Running, RolloutError> {
    let t = g.launch_template.as_ref();
    let version = t.and_then(|t| t.numbered_version()).unwrap_or_default();
    let image = match t.and_then(template_ref) {
        Some(template) => version_image(cloud, &template, version).await?,
        None => None,
    };
    let on_image = match &image {
        Some(image) => on_new_image(cloud, &g.name, image).await?,
        None => 0,
    };
    Ok(Running {
        version,
        image,
        on_image,
    })
}

/// The template a group launches from, by id when it has one.
pub(crate) fn template_ref(t: &GroupTemplate) -> Option<TemplateRef> {
    let by_id = t.template_id.clone().map(TemplateRef::Id);
    by_id.or(t.template_name.clone().map(TemplateRef::Name))
}

/// The image a numbered version launches, if it names one.
pub(crate) async fn version_image(
    cloud: &Cloud,
    template: &TemplateRef,
    version: i64,
) -> Result<Option<ImageId>, RolloutError> {
    let versions = cloud
        .compute
        .describe_launch_template_versions(template, &[version])
        .await?;
    Ok(versions.first().and_then(|v| v.data.image_id.clone()))
}

pub(crate) fn outcome(
    plan: &RolloutPlan,
    version: i64,
    label: &str,
    on_new_image: i32,
    timings: Vec<(String, Duration)>,
) -> RolloutOutcome {
    RolloutOutcome {
        target: plan.spec.target.clone(),
        group: plan.spec.group.clone(),
        strategy: plan.spec.strategy.name().to_string(),
        launch_template_version: version,
        previous_version: plan.template.source_version,
        status: label.to_string(),
        desired: plan.group.desired,
        on_new_image,
        image: Some(plan.image.clone()),
        note: None,
        timings,
    }
}
