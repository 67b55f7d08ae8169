//! The ambient run context: the [`RunContext`] of the run phase being
//! polled on this thread, for code that holds none (middleware, parsers;
//! see [`telemetry`](crate::telemetry), "The ambient run context").

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::RunContext;

thread_local! {
    static CURRENT: RefCell<Option<RunContext>> = const { RefCell::new(None) };
}

/// A future polled with a run context as the current one.
pub(crate) struct Scoped<F> {
    context: Option<RunContext>,
    future: F,
}

impl<F> Scoped<F> {
    pub(crate) fn new(context: RunContext, future: F) -> Self {
        Self {
            context: Some(context),
            future,
        }
    }
}

/// Puts the context back into its future when a poll ends (a panic
/// included), and the previous current context back into the thread.
struct Restore<'a> {
    slot: &'a mut Option<RunContext>,
    previous: Option<Option<RunContext>>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = CURRENT.try_with(|current| {
                if let Ok(mut current) = current.try_borrow_mut() {
                    *self.slot = std::mem::replace(&mut *current, previous);
                }
            });
        }
    }
}

impl<F: Future + Unpin> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // The context moves into the thread-local and back: no clone.
        let previous = CURRENT
            .try_with(|current| {
                current
                    .try_borrow_mut()
                    .ok()
                    .map(|mut current| std::mem::replace(&mut *current, this.context.take()))
            })
            .ok()
            .flatten();
        let _restore = Restore {
            slot: &mut this.context,
            previous,
        };
        Pin::new(&mut this.future).poll(cx)
    }
}

/// Calls `f` with the current run context, if there is one.
pub(crate) fn with_current(f: impl FnOnce(&RunContext)) {
    let _ = CURRENT.try_with(|current| {
        if let Ok(current) = current.try_borrow()
            && let Some(context) = current.as_ref()
        {
            f(context);
        }
    });
}

/// The current run context, cloned.
pub(crate) fn current() -> Option<RunContext> {
    let mut found = None;
    with_current(|context| found = Some(context.clone()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, EventSink, RepairKind};
    use crate::telemetry::repaired;
    use std::sync::{Arc, Mutex};

    #[test]
    fn the_current_context_is_set_only_while_its_future_is_polled() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let seen = seen.clone();
            EventSink::new(vec![Arc::new(move |event: &crate::Event| {
                seen.lock().unwrap().push(event.kind.clone());
            })])
        };
        let context = RunContext::new(sink);
        repaired(RepairKind::NearJson, "outside");
        assert!(current().is_none());
        let inner = Box::pin(async {
            repaired(RepairKind::NearJson, "inside");
            current().is_some()
        });
        assert!(futures::executor::block_on(Scoped::new(context, inner)));
        assert!(current().is_none());
        let kinds = seen.lock().unwrap().clone();
        assert_eq!(
            kinds,
            vec![EventKind::Repaired {
                step_index: None,
                kind: RepairKind::NearJson,
                detail: "inside".into()
            }]
        );
    }
}
