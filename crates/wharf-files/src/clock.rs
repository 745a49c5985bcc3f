//! The time a request is served at, from the kernel's coarse clocks: the time of its
//! last tick (a few milliseconds behind at most; `clock_getres` gives the step), read
//! from the vDSO in about 2 ns, where the precise clocks took 20–30 ns on the virtual
//! machines wharf is measured on (two reads per request were 2–3 % of an HTTP/2
//! request's CPU). Nothing here needs a finer step: `Date`, `Last-Modified` and
//! `Expires` are whole seconds, and remembered paths are re-checked after a second.
//! A file's response carries its own `Date` from the same read, so the three agree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::time::{clock_gettime, ClockId, Timespec};

/// Wall-clock time.
pub(crate) fn now() -> SystemTime {
    UNIX_EPOCH + duration(clock_gettime(ClockId::RealtimeCoarse))
}

/// Time since a fixed point (boot), never going back: for intervals.
pub(crate) fn monotonic() -> Duration {
    duration(clock_gettime(ClockId::MonotonicCoarse))
}

fn duration(t: Timespec) -> Duration {
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coarse wall clock is never ahead of the precise one and trails it by
    /// about a tick (bounded here by 50 ms more, for a virtual CPU the host held
    /// back between the reads); the monotonic one never goes back.
    #[test]
    fn coarse_clocks_keep_up() {
        let tick = duration(rustix::time::clock_getres(ClockId::RealtimeCoarse));
        assert!(tick <= Duration::from_millis(10), "a tick of {tick:?}");
        let mut last = monotonic();
        for _ in 0..1000 {
            let before = SystemTime::now();
            let coarse = now();
            let after = SystemTime::now();
            assert!(coarse <= after, "{coarse:?} after {after:?}");
            let behind = before.duration_since(coarse).unwrap_or_default();
            assert!(
                behind <= tick + Duration::from_millis(50),
                "{behind:?} behind"
            );
            let m = monotonic();
            assert!(m >= last);
            last = m;
        }
    }
}
