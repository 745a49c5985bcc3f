//! Graceful shutdown: one token every accept loop and connection watches, and a
//! tracker the binary waits on.
//!
//! Guarantees once [`Shutdown::trigger`] is called:
//! - listeners stop accepting at once;
//! - idle keep-alive connections are closed;
//! - requests in flight run to completion, and their connections close after them;
//! - [`Shutdown::drained`] resolves when every connection task has finished, or when
//!   the grace period passes (then the remaining connections are dropped).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

/// A shutdown signal shared by every task of a server.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
    /// Set with the token: connections look at it on every wake-up, and the token's
    /// own check takes a lock.
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// A fresh, untriggered shutdown handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every task to stop (idempotent).
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// True once [`trigger`](Self::trigger) has been called.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Resolves when shutdown is triggered.
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    /// The token, for tasks that outlive their request (a WebSocket session closes
    /// with 1001 when it fires).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The signal as a connection polls it on every wake-up (see [`Stop`]).
    pub(crate) fn stop(&self) -> Stop {
        Stop {
            wait: Box::pin(self.token.clone().cancelled_owned()),
            flag: self.flag.clone(),
            registered: false,
        }
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Waits until every tracked task has finished, at most `grace`.
    /// Returns false when the grace period ran out first.
    pub async fn drained(&self, grace: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// The shutdown signal for a connection that polls it on every wake-up: the token is
/// polled once, so that it wakes the connection; after that one atomic load tells,
/// where polling the token again would take its lock.
pub(crate) struct Stop {
    wait: Pin<Box<WaitForCancellationFutureOwned>>,
    flag: Arc<AtomicBool>,
    registered: bool,
}

impl Stop {
    /// Whether shutdown was triggered; registers `cx` to be woken when it is.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        if self.registered {
            return self.flag.load(Ordering::Acquire);
        }
        self.registered = true;
        self.wait.as_mut().poll(cx).is_ready()
    }
}
