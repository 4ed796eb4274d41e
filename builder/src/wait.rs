//! Waiting for the cloud: polls with a duration budget, an interval and cancellation.
//!
//! Every wait of the bake goes through [`wait_until`], so each one has a deadline (never a
//! count of attempts, PITFALLS 12), sleeps on tokio's clock (paused and auto-advanced in the
//! simulation's tests) and stops the moment the bake is cancelled.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often an instance's state is read while it boots or ends: EC2 moves an instance
/// from `pending` to `running` in tens of seconds, so 5 s adds little to the wait.
pub const INSTANCE_POLL: Duration = Duration::from_secs(5);

/// How often the SSM agent's status is read: the agent registers within seconds to
/// minutes of boot (PITFALLS 16); 10 s keeps DescribeInstanceInformation well under its
/// rate limit.
pub const AGENT_POLL: Duration = Duration::from_secs(10);

/// How often a Run Command invocation is read: steps last seconds to minutes, and
/// GetCommandInvocation tolerates a read every few seconds per command.
pub const INVOCATION_POLL: Duration = Duration::from_secs(5);

/// How often an image's state is read: an AMI takes minutes to become available, and
/// DescribeImages is among the most throttled EC2 calls.
pub const IMAGE_POLL: Duration = Duration::from_secs(15);

/// How often a failed security group deletion is tried again: the group stays "in use"
/// until the network interfaces of terminated instances are released, which takes
/// seconds to a minute after the instance reports `terminated`.
pub const SECURITY_GROUP_RETRY: Duration = Duration::from_secs(10);

/// How long a security group deletion may keep failing with a dependency error.
pub const SECURITY_GROUP_BUDGET: Duration = Duration::from_secs(5 * 60);

/// Throttled calls are tried again under one rule, shared with rollouts.
pub use kiln_cloud::throttle::{
    retry_throttled, THROTTLE_BUDGET, THROTTLE_MAX_DELAY, THROTTLE_MIN_DELAY,
};

/// One poll's answer: done with a value, or not yet.
#[derive(Debug)]
pub enum Poll<T> {
    Ready(T),
    Pending,
}

/// Why a wait ended without a value.
#[derive(Debug)]
pub enum WaitError<E> {
    /// The budget ran out; the last poll said "not yet".
    TimedOut,
    /// The cancellation token fired.
    Cancelled,
    /// A poll failed in a way that waiting longer would not fix.
    Failed(E),
}

/// Polls `probe` now and then every `interval` until it is ready, fails, `budget` has
/// passed, or `cancel` fires. The last poll happens at the deadline, not after it.
pub async fn wait_until<T, E, F, Fut>(
    budget: Duration,
    interval: Duration,
    cancel: &CancellationToken,
    mut probe: F,
) -> Result<T, WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, E>>,
{
    let deadline = Instant::now() + budget;
    loop {
        if cancel.is_cancelled() {
            return Err(WaitError::Cancelled);
        }
        match probe().await {
            Ok(Poll::Ready(value)) => return Ok(value),
            Ok(Poll::Pending) => {}
            Err(error) => return Err(WaitError::Failed(error)),
        }

        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut);
        }
        let pause = interval.min(deadline - now);
        tokio::select! {
            _ = cancel.cancelled() => return Err(WaitError::Cancelled),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Sleeps for `duration` unless `cancel` fires first; true when it slept to the end.
pub async fn sleep_unless_cancelled(duration: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn ready_after_some_polls() {
        let polls = AtomicU32::new(0);
        let start = Instant::now();
        let result: Result<u32, WaitError<()>> = wait_until(
            Duration::from_secs(60),
            Duration::from_secs(5),
            &CancellationToken::new(),
            || async {
                let n = polls.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(if n == 3 {
                    Poll::Ready(n)
                } else {
                    Poll::Pending
                })
            },
        )
        .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_at_the_deadline_not_after() {
        let start = Instant::now();
        let result: Result<(), WaitError<()>> = wait_until(
            Duration::from_secs(12),
            Duration::from_secs(5),
            &CancellationToken::new(),
            || async { Ok(Poll::Pending) },
        )
        .await;
        assert!(matches!(result, Err(WaitError::TimedOut)));
        assert_eq!(start.elapsed(), Duration::from_secs(12));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_poll_ends_the_wait() {
        let result: Result<(), WaitError<&str>> = wait_until(
            Duration::from_secs(60),
            Duration::from_secs(5),
            &CancellationToken::new(),
            || async { Err("boom") },
        )
        .await;
        assert!(matches!(result, Err(WaitError::Failed("boom"))));
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_stops_a_wait() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(7)).await;
            trigger.cancel();
        });
        let start = Instant::now();
        let result: Result<(), WaitError<()>> = wait_until(
            Duration::from_secs(600),
            Duration::from_secs(5),
            &cancel,
            || async { Ok(Poll::Pending) },
        )
        .await;
        assert!(matches!(result, Err(WaitError::Cancelled)));
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }
}
