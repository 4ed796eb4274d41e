//! Clean-up: terminate the instances, wait until they are gone, delete the security group.
//!
//! It runs after success, failure and cancellation alike, so it does not listen to the
//! bake's cancellation token; each of its waits has its own deadline. Its failures are
//! warnings and leftovers: they never replace the bake's first error (PITFALLS 11).

use kiln_cloud::{ErrorKind, InstanceFilter, InstanceId, InstanceState, Level};
use tokio_util::sync::CancellationToken;

use super::Run;
use crate::journal::{Fate, ResourceKind};
use crate::wait::SECURITY_GROUP_RETRY;
use crate::wait::{
    retry_throttled, wait_until, Poll, WaitError, INSTANCE_POLL, SECURITY_GROUP_BUDGET,
};

impl Run<'_> {
    /// Terminates the builder once its image exists; [`Run::cleanup`] waits for it.
    pub(super) async fn terminate_early(&mut self, builder: &InstanceId) {
        if let Err(e) = retry_throttled(|| {
            self.cloud
                .compute
                .terminate_instances(std::slice::from_ref(builder))
        })
        .await
        {
            let message = format!("could not terminate builder {builder} yet: {e}");
            self.emit(Level::Warn, "image", builder.as_str(), message);
        }
    }

    pub(super) async fn cleanup(&mut self) {
        let instances: Vec<InstanceId> = self
            .created
            .instances
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        let all_gone = instances.is_empty() || self.end_instances(&instances).await;
        match self.created.security_group.clone() {
            Some(group) if all_gone => self.delete_security_group(&group).await,
            Some(group) => self.leftover(
                ResourceKind::SecurityGroup,
                group.as_str(),
                "not deleted: its instances are not terminated",
            ),
            None => {}
        }
    }

    /// Terminates `ids` and waits until none is left running; false if any is.
    async fn end_instances(&mut self, ids: &[InstanceId]) -> bool {
        if let Err(e) = retry_throttled(|| self.cloud.compute.terminate_instances(ids)).await {
            if !e.is(ErrorKind::NotFound) {
                for id in ids {
                    self.leftover(ResourceKind::Instance, id.as_str(), &e.to_string());
                }
                return false;
            }
        }

        let remaining = self.wait_terminated(ids).await;
        for id in ids.iter().filter(|id| !remaining.contains(id)) {
            self.journal
                .forget(ResourceKind::Instance, id.as_str(), Fate::Removed);
            self.emit(
                Level::Info,
                "cleanup",
                id.as_str(),
                "instance terminated".into(),
            );
        }
        let budget = self.plan.timeouts.instance_terminated;
        for id in &remaining {
            let why = format!("still not terminated after {budget:?}");
            self.leftover(ResourceKind::Instance, id.as_str(), &why);
        }
        remaining.is_empty()
    }

    /// Waits until every instance of `ids` is terminated (or gone); returns those that
    /// are not when the budget runs out.
    async fn wait_terminated(&self, ids: &[InstanceId]) -> Vec<InstanceId> {
        let filter = InstanceFilter {
            ids: ids.to_vec(),
            ..InstanceFilter::default()
        };
        // Until a read succeeds, every instance counts as still there.
        let remaining = std::sync::Mutex::new(ids.to_vec());
        let budget = self.plan.timeouts.instance_terminated;
        let never = CancellationToken::new();
        let result = wait_until(budget, INSTANCE_POLL, &never, || async {
            let alive: Vec<InstanceId> = match self.cloud.compute.describe_instances(&filter).await
            {
                Ok(found) => found
                    .into_iter()
                    .filter(|i| i.state != InstanceState::Terminated)
                    .map(|i| i.id)
                    .collect(),
                Err(e) if e.is(ErrorKind::NotFound) => Vec::new(),
                Err(_) => return Ok::<_, ()>(Poll::Pending),
            };
            let done = alive.is_empty();
            *remaining.lock().expect("remaining lock") = alive;
            Ok(if done { Poll::Ready(()) } else { Poll::Pending })
        })
        .await;
        match result {
            Ok(()) => Vec::new(),
            Err(_) => remaining.into_inner().expect("remaining lock"),
        }
    }

    /// Deletes the group, retrying while EC2 still counts it as in use.
    async fn delete_security_group(&mut self, group: &kiln_cloud::SecurityGroupId) {
        let last_error = std::sync::Mutex::new(String::new());
        let result = wait_until(
            SECURITY_GROUP_BUDGET,
            SECURITY_GROUP_RETRY,
            &CancellationToken::new(),
            || async {
                match self.cloud.compute.delete_security_group(group).await {
                    Ok(()) => Ok(Poll::Ready(())),
                    Err(e) if e.is(ErrorKind::NotFound) => Ok(Poll::Ready(())),
                    Err(e) if e.is(ErrorKind::Conflict) || e.is_transient() => {
                        *last_error.lock().expect("error lock") = e.to_string();
                        Ok(Poll::Pending)
                    }
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        match result {
            Ok(()) => {
                self.journal
                    .forget(ResourceKind::SecurityGroup, group.as_str(), Fate::Removed);
                self.created.security_group = None;
                self.emit(
                    Level::Info,
                    "cleanup",
                    group.as_str(),
                    "security group deleted".into(),
                );
            }
            Err(WaitError::Failed(why)) => {
                self.leftover(ResourceKind::SecurityGroup, group.as_str(), &why);
            }
            Err(_) => {
                let why = last_error.into_inner().expect("error lock");
                self.leftover(ResourceKind::SecurityGroup, group.as_str(), &why);
            }
        }
    }

    /// Notes a resource clean-up could not remove: a warning now, a leftover in the
    /// outcome, and it stays in the journal.
    pub(super) fn leftover(&mut self, kind: ResourceKind, id: &str, why: &str) {
        let text = format!("{kind} {id} in {}: {why}", self.cloud.region);
        self.emit(Level::Warn, "cleanup", id, format!("left behind: {text}"));
        self.leftovers.push(text);
    }
}
