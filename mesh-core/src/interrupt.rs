//! Stopping a plan when the user asks (SIGINT, SIGTERM): no new step starts, a running
//! helm gets SIGTERM and is waited for, and the plan ends with [`Error::Interrupted`]
//! saying which steps completed.
//!
//! [`Error::Interrupted`]: crate::Error::Interrupted

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Shared between the caller, which [`raise`](Interrupt::raise)s it when a signal
/// arrives, and the plan, which stops at it. Cloning shares it.
///
/// ```
/// let interrupt = mesh_core::Interrupt::default();
/// assert_eq!(interrupt.raised(), None);
/// interrupt.raise(15);
/// assert_eq!(interrupt.raised(), Some(15));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// The signal number; 0: none yet.
    signal: AtomicI32,
    notify: Notify,
    /// helm processes running now.
    children: AtomicUsize,
}

impl Interrupt {
    /// Asks the plan to stop, because of signal number `signal` (2 SIGINT, 15 SIGTERM).
    /// The first signal counts.
    pub fn raise(&self, signal: i32) {
        let _ = self
            .0
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// The signal the plan was stopped with, if any.
    pub fn raised(&self) -> Option<i32> {
        match self.0.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Completes once [`Interrupt::raise`] was called.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.raised().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Counts a helm process as running until the guard drops.
    pub(crate) fn child(&self) -> ChildGuard {
        self.0.children.fetch_add(1, Ordering::SeqCst);
        ChildGuard(self.clone())
    }

    /// Whether a helm process runs now.
    pub(crate) fn children_running(&self) -> bool {
        self.0.children.load(Ordering::SeqCst) > 0
    }
}

/// See [`Interrupt::child`].
pub(crate) struct ChildGuard(Interrupt);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.0.0.children.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The name of a signal number, for messages.
pub(crate) fn signal_name(signal: i32) -> String {
    match signal {
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_ends_when_raised_even_if_raised_first() {
        let interrupt = Interrupt::default();
        let waiter = tokio::spawn({
            let i = interrupt.clone();
            async move { i.wait().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        interrupt.raise(2);
        interrupt.raise(15);
        waiter.await.unwrap();
        interrupt.wait().await;
        assert_eq!(interrupt.raised(), Some(2), "the first signal counts");
    }
}
