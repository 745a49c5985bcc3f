//! HTTP-date header values (`Date`, `Expires`), formatted once per second per thread.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use wharf_http::date::fmt_http_date;

/// How many distinct seconds each thread remembers (`Date` plus a few `Expires`);
/// a new second replaces the earliest.
const SLOTS: usize = 4;

thread_local! {
    static CACHED: RefCell<[(u64, Option<HeaderValue>); SLOTS]> = const { RefCell::new([const { (0, None) }; SLOTS]) };
}

/// The HTTP-date value of `t`, to the second (RFC 9110 §5.6.7).
pub(crate) fn header(t: SystemTime) -> HeaderValue {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((_, Some(v))) = c.iter().find(|(s, v)| *s == secs && v.is_some()) {
            return v.clone();
        }
        let v = HeaderValue::from_str(&fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)))
            .expect("HTTP dates are valid header values");
        // The earliest second goes: a past `Date`, rarely a wanted `Expires`.
        if let Some(oldest) = c.iter_mut().min_by_key(|(s, v)| (v.is_some(), *s)) {
            *oldest = (secs, Some(v.clone()));
        }
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_second_same_value_and_seconds_do_not_evict_each_other() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(header(t), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(
            header(t + Duration::from_millis(999)),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(
            header(t + Duration::from_secs(4)),
            "Tue, 14 Nov 2023 22:13:24 GMT"
        );
        assert_eq!(header(t), "Tue, 14 Nov 2023 22:13:20 GMT");
        // A `Date` and an `Expires` an hour later both stay.
        let later = t + Duration::from_secs(3600);
        header(later);
        CACHED.with(|c| {
            let c = c.borrow();
            for secs in [1_700_000_000, 1_700_003_600] {
                assert!(c.iter().any(|(s, v)| *s == secs && v.is_some()), "{secs}");
            }
        });
    }
}
