//! Throttled answers, tried again: the one retry rule that bakes and rollouts share.
//!
//! The AWS client retries a throttled call a few times (five with the adapter, three in
//! the simulated account, as the SDK's standard mode does); an
//! account-wide throttling storm lasts longer than that. [`retry_throttled`] goes on
//! trying one call, with backoff and a budget, so that a storm delays a bake or a
//! rollout instead of failing it half-way (PITFALLS 12). It is kept out of the ports,
//! which hold no decisions: the callers wrap their calls in it.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::error::{CloudError, CloudResult, ErrorKind};

/// The first pause before a throttled request is tried again; AWS's own clients start
/// their backoff around here.
pub const THROTTLE_MIN_DELAY: Duration = Duration::from_secs(1);
/// The longest pause between two tries of a throttled request.
pub const THROTTLE_MAX_DELAY: Duration = Duration::from_secs(20);
/// How long a throttled request keeps being tried: longer than the throttling storms
/// that account-wide rate limits cause (tens of seconds), short of hiding an outage.
pub const THROTTLE_BUDGET: Duration = Duration::from_secs(3 * 60);

/// Runs `request`, trying it again with exponential backoff while AWS rejects it as
/// throttled. A throttled request did nothing, so trying it again cannot create a second
/// resource; other errors (including transport errors, after which a create may have
/// happened) are returned at once.
pub async fn retry_throttled<T, F, Fut>(request: F) -> CloudResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CloudResult<T>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(THROTTLE_MIN_DELAY)
        .with_max_delay(THROTTLE_MAX_DELAY)
        .with_total_delay(Some(THROTTLE_BUDGET))
        .without_max_times()
        .with_jitter();
    request
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e: &CloudError| e.is(ErrorKind::Throttled))
        .notify(|e: &CloudError, pause: Duration| {
            tracing::warn!(error = %e, ?pause, "throttled; trying again");
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;

    fn throttled() -> CloudError {
        CloudError::new(
            ErrorKind::Throttled,
            "RunInstances",
            "i",
            "r",
            "Throttling",
            "slow",
        )
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_requests_are_tried_again() {
        let calls = AtomicU32::new(0);
        let result = retry_throttled(|| async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n < 4 {
                Err(throttled())
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_are_not_retried_and_throttling_has_a_budget() {
        let calls = AtomicU32::new(0);
        let result: CloudResult<()> = retry_throttled(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(CloudError::new(
                ErrorKind::Transport,
                "RunInstances",
                "i",
                "r",
                "io",
                "reset",
            ))
        })
        .await;
        assert!(result.unwrap_err().is(ErrorKind::Transport));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let start = Instant::now();
        let result: CloudResult<()> = retry_throttled(|| async { Err(throttled()) }).await;
        assert!(result.unwrap_err().is(ErrorKind::Throttled));
        assert!(start.elapsed() <= THROTTLE_BUDGET + THROTTLE_MAX_DELAY);
    }
}
