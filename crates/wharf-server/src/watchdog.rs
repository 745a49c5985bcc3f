//! Per-connection timeouts measured on the socket: idle between requests, header
//! read from the first byte of a request, and send while the client does not read.
//!
//! A header timeout that started when the connection began waiting for a request
//! would also cut idle keep-alive connections; wharf keeps the two apart. The socket
//! wrapper (`socket::Socket`) or the HTTP/1.1 reader notes the first byte of each
//! request and blocked writes; the connection notes when a request starts and when its
//! response ends.
//!
//! The timer is lazy: events only record times, and an [`Alarm`] wakes at
//! most every `min(idle, header, send)` to compare them with the deadlines. A
//! deadline set by an event is never earlier than the next wake-up (every timeout is
//! at least that granularity), so none is missed, and a busy connection pays no timer
//! or wake-up per request — only a check every few seconds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

const UNSET: u64 = u64::MAX;

/// Which deadline closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    Idle,
    HeaderRead,
    /// A request body stopped arriving for as long as a head may take.
    BodyRead,
    Send,
    /// The client flooded the connection (see `h2::flood`).
    Abuse,
}

/// Shared state between a connection's socket, its requests and its watchdog.
pub(crate) struct Watchdog {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Millis since `epoch` when the current idle period began.
    idle_since: AtomicU64,
    /// Millis since `epoch` of the first byte of a request whose head is incomplete.
    head_since: AtomicU64,
    /// Millis since `epoch` when a write first returned Pending, or UNSET.
    blocked_since: AtomicU64,
    /// Millis since `epoch` when a read of a request body first found nothing, or UNSET.
    body_since: AtomicU64,
    head_seen: AtomicBool,
    /// Set when the client is to be cut off; its further bytes are not read.
    abused: AtomicBool,
    /// Why it was cut off.
    abuse: std::sync::OnceLock<&'static str>,
    idle: Duration,
    header: Duration,
    send: Duration,
}

impl Watchdog {
    pub(crate) fn new(idle: Duration, header: Duration, send: Duration) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(UNSET),
            blocked_since: AtomicU64::new(UNSET),
            body_since: AtomicU64::new(UNSET),
            head_seen: AtomicBool::new(false),
            abused: AtomicBool::new(false),
            abuse: std::sync::OnceLock::new(),
            idle,
            header,
            send,
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// A request head was parsed: it is now in flight.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(UNSET, Ordering::Release);
        self.head_seen.store(false, Ordering::Release);
    }

    /// A read of a request body found nothing yet (`true`) or got bytes (`false`).
    pub(crate) fn body_waiting(&self, waiting: bool) {
        let since = self.body_since.load(Ordering::Relaxed);
        if waiting && since == UNSET {
            self.body_since.store(self.now_ms(), Ordering::Relaxed);
        } else if !waiting && since != UNSET {
            self.body_since.store(UNSET, Ordering::Relaxed);
        }
    }

    /// What is left of a request body was read and dropped after its response: the
    /// bytes that did it began no request head.
    pub(crate) fn body_discarded(&self) {
        self.body_since.store(UNSET, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            self.head_since.store(UNSET, Ordering::Release);
            self.head_seen.store(false, Ordering::Release);
            self.idle_since.store(self.now_ms(), Ordering::Release);
        }
    }

    /// A response finished (or was abandoned).
    pub(crate) fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now_ms(), Ordering::Release);
        }
    }

    /// Bytes arrived from the client.
    pub(crate) fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.head_seen.swap(true, Ordering::AcqRel)
        {
            self.head_since.store(self.now_ms(), Ordering::Release);
        }
    }

    /// The client abused the connection (its driver sees it after the read that
    /// showed it).
    pub(crate) fn abuse(&self, why: &'static str) {
        let _ = self.abuse.set(why);
        self.abused.store(true, Ordering::Release);
    }

    /// Why [`Watchdog::abuse`] was called.
    pub(crate) fn abuse_reason(&self) -> &'static str {
        self.abuse.get().copied().unwrap_or("abuse")
    }

    /// Whether [`Watchdog::abuse`] was called.
    pub(crate) fn is_abused(&self) -> bool {
        self.abused.load(Ordering::Acquire)
    }

    /// A write went through (`false`) or found the socket full (`true`).
    pub(crate) fn on_write(&self, pending: bool) {
        let blocked = self.blocked_since.load(Ordering::Relaxed);
        if pending && blocked == UNSET {
            self.blocked_since.store(self.now_ms(), Ordering::Relaxed);
        } else if !pending && blocked != UNSET {
            self.blocked_since.store(UNSET, Ordering::Relaxed);
        }
    }

    /// The nearest deadline now in force.
    fn deadline(&self) -> (Instant, Expiry) {
        let blocked = self.blocked_since.load(Ordering::Acquire);
        if blocked != UNSET {
            return (self.at(blocked) + self.send, Expiry::Send);
        }
        let body = self.body_since.load(Ordering::Acquire);
        if body != UNSET {
            return (self.at(body) + self.header, Expiry::BodyRead);
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // The service is working; its own limits apply. Re-check later.
            return (Instant::now() + self.idle, Expiry::Idle);
        }
        let head = self.head_since.load(Ordering::Acquire);
        if head != UNSET {
            return (self.at(head) + self.header, Expiry::HeaderRead);
        }
        (
            self.at(self.idle_since.load(Ordering::Acquire)) + self.idle,
            Expiry::Idle,
        )
    }

    /// When to look at the deadlines next: the nearest one, or one granularity from
    /// now, whichever comes first (see the module doc).
    fn next_look(&self, deadline: Instant) -> Instant {
        let granularity = self.idle.min(self.header).min(self.send);
        deadline.min(Instant::now() + granularity)
    }

    /// The first time to look at the deadlines.
    pub(crate) fn first_look(&self) -> Instant {
        self.next_look(self.deadline().0)
    }

    /// Looks at the deadlines: the one that passed, or when to look again.
    pub(crate) fn look(&self) -> Result<Instant, Expiry> {
        if self.is_abused() {
            return Err(Expiry::Abuse);
        }
        let (deadline, kind) = self.deadline();
        if deadline <= Instant::now() {
            return Err(kind);
        }
        Ok(self.next_look(deadline))
    }
}

/// The watchdog's timer as a connection polls it on every wake-up: one atomic load
/// unless the timer fired (then the deadlines are looked at and it is set again).
pub(crate) struct Alarm {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    registered: bool,
}

impl Alarm {
    pub(crate) fn new(dog: &Watchdog) -> Self {
        Alarm {
            sleep: Box::pin(tokio::time::sleep_until(dog.first_look())),
            registered: false,
        }
    }

    /// Ready with the deadline that passed; otherwise the timer is set to wake `cx`.
    pub(crate) fn poll(
        &mut self,
        dog: &Watchdog,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Expiry> {
        use std::future::Future;
        use std::task::Poll;
        if self.registered && !self.sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            if self.sleep.is_elapsed() {
                match dog.look() {
                    Err(kind) => return Poll::Ready(kind),
                    Ok(next) => self.sleep.as_mut().reset(next),
                }
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                self.registered = true;
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Resolves when a deadline passes with nothing having moved it.
    async fn expired(d: &Watchdog) -> Expiry {
        let mut alarm = Alarm::new(d);
        std::future::poll_fn(|cx| alarm.poll(d, cx)).await
    }

    /// Idle 60 s, header 10 s, send 30 s.
    pub(crate) fn dog() -> Arc<Watchdog> {
        Watchdog::new(
            Duration::from_secs(60),
            Duration::from_secs(10),
            Duration::from_secs(30),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_expires_after_idle_timeout() {
        let d = dog();
        let start = Instant::now();
        assert_eq!(expired(&d).await, Expiry::Idle);
        assert_eq!(start.elapsed().as_secs(), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn partial_head_expires_after_header_timeout() {
        let d = dog();
        tokio::time::advance(Duration::from_secs(5)).await;
        d.on_read();
        let start = Instant::now();
        assert_eq!(expired(&d).await, Expiry::HeaderRead);
        assert_eq!(start.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn first_byte_after_waiting_began_moves_the_deadline_earlier() {
        let d = dog();
        let waiting = tokio::spawn({
            let d = d.clone();
            async move { expired(&d).await }
        });
        tokio::task::yield_now().await; // the watchdog is now asleep until the idle deadline
        tokio::time::advance(Duration::from_secs(5)).await;
        d.on_read();
        let start = Instant::now();
        assert_eq!(waiting.await.unwrap(), Expiry::HeaderRead);
        assert_eq!(
            start.elapsed().as_secs(),
            10,
            "header timeout, not the 60 s idle one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn finished_request_restarts_idle_clock() {
        let d = dog();
        d.on_read();
        d.request_started();
        tokio::time::advance(Duration::from_secs(100)).await;
        d.request_finished();
        let start = Instant::now();
        assert_eq!(expired(&d).await, Expiry::Idle);
        assert_eq!(start.elapsed().as_secs(), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_deadline_replaces_a_waited_header_deadline() {
        let d = dog();
        let waiting = tokio::spawn({
            let d = d.clone();
            async move { expired(&d).await }
        });
        d.on_read(); // waiting for a 10 s header deadline now
        tokio::task::yield_now().await;
        d.request_started();
        d.request_finished();
        let start = Instant::now();
        assert_eq!(waiting.await.unwrap(), Expiry::Idle);
        assert_eq!(start.elapsed().as_secs(), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_request_body_expires_after_the_header_timeout() {
        let d = dog();
        d.request_started(); // the service reads the body
        tokio::time::advance(Duration::from_secs(30)).await;
        d.body_waiting(true);
        let start = Instant::now();
        assert_eq!(expired(&d).await, Expiry::BodyRead);
        assert_eq!(start.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_discarded_body_leaves_the_connection_idle_not_mid_head() {
        let d = dog();
        d.request_started();
        d.request_finished();
        d.on_read(); // bytes of the unread body, read to be dropped
        d.body_discarded();
        let start = Instant::now();
        assert_eq!(expired(&d).await, Expiry::Idle);
        assert_eq!(start.elapsed().as_secs(), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn blocked_write_expires_after_send_timeout() {
        let d = dog();
        d.request_started();
        d.on_write(true);
        let start = Instant::now();
        assert_eq!(expired(&d).await, Expiry::Send);
        assert_eq!(start.elapsed().as_secs(), 30);
    }
}
