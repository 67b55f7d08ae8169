//! [`CancelToken`]: stop a run from outside, keeping what it did.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A token that cancels the runs it is given to. Clones share the state.
///
/// Cancelling stops the planner or the steps in flight at their next
/// suspension point and makes the run return
/// [`RunError::Cancelled`](crate::RunError::Cancelled) with everything done
/// before. (Dropping the run's future also stops everything, without a
/// result.)
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every run holding this token (or a clone).
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Completes when the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Register before checking, so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Runs `future` unless the token is cancelled first; `None` means
    /// cancelled (the future is dropped).
    pub async fn run_until_cancelled<F: Future>(&self, future: F) -> Option<F::Output> {
        if self.is_cancelled() {
            return None;
        }
        let future = std::pin::pin!(future);
        let cancelled = std::pin::pin!(self.cancelled());
        match futures::future::select(future, cancelled).await {
            futures::future::Either::Left((output, _)) => Some(output),
            futures::future::Either::Right(((), _)) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_a_pending_future() {
        let token = CancelToken::new();
        let canceller = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            canceller.cancel();
        });
        let started = tokio::time::Instant::now();
        let out = token
            .run_until_cancelled(tokio::time::sleep(Duration::from_secs(60)))
            .await;
        assert!(out.is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert!(token.is_cancelled());
        assert!(token.run_until_cancelled(async { 1 }).await.is_none());
    }

    #[tokio::test]
    async fn uncancelled_futures_finish() {
        let token = CancelToken::new();
        assert_eq!(token.run_until_cancelled(async { 7 }).await, Some(7));
    }
}
