//! The invocation deadline every KlickTipp wait obeys (DESIGN 6): no rate-limiter slot, backoff
//! or `Retry-After` wait runs past it, and no call starts after it. The consumer sets it around
//! each group's work with [`within`]; calls outside such a scope have no deadline.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with every KlickTipp call inside bounded by `deadline` (`None`: unbounded).
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, work).await,
        None => work.await,
    }
}

/// The deadline of the current scope, if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Time left before the deadline (`None`: no deadline).
pub(crate) fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// True when a wait of `wait` from now still ends by the deadline.
pub(crate) fn allows(wait: Duration) -> bool {
    remaining().is_none_or(|remaining| wait <= remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_scope_sets_the_deadline() {
        assert_eq!(current(), None);
        assert!(allows(Duration::from_secs(3600)));
        let deadline = Instant::now() + Duration::from_secs(10);
        within(Some(deadline), async {
            assert_eq!(current(), Some(deadline));
            assert!(allows(Duration::from_secs(10)));
            assert!(!allows(Duration::from_secs(11)));
            tokio::time::sleep(Duration::from_secs(20)).await;
            assert_eq!(remaining(), Some(Duration::ZERO));
        })
        .await;
        within(None, async { assert_eq!(current(), None) }).await;
    }
}
