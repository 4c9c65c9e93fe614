//! Stopping RUN steps from a signal handler.
//!
//! Cancelling is one atomic store, so it is safe even inside an async
//! signal handler; the running step notices within [`POLL`] and kills its
//! container itself, which also covers a container the runtime had not
//! finished creating when the signal came.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const POLL: Duration = Duration::from_millis(50);

static ALL_CANCELLED: AtomicBool = AtomicBool::new(false);

/// Cancels every step running now and every step started later in this
/// process: for the builder's SIGINT/SIGTERM handler.
pub fn cancel_all() {
    ALL_CANCELLED.store(true, Ordering::SeqCst);
}

/// Whether [`cancel_all`] was called: the builder stops between steps.
pub fn cancelled() -> bool {
    ALL_CANCELLED.load(Ordering::SeqCst)
}

/// Cancels the steps given this token (and nothing else).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Also true after [`cancel_all`].
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst) || ALL_CANCELLED.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_independent_and_clones_shared() {
        let a = CancelToken::new();
        let b = CancelToken::new();
        let a2 = a.clone();
        a2.cancel();
        assert!(a.is_cancelled());
        assert!(!b.is_cancelled());
    }
}
