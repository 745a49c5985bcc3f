//! HTTP-date header values (`Date`, `Expires`), formatted once per second per thread.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use wharf_http::date::fmt_http_date;

/// How many distinct seconds each thread remembers (`Date` plus a few `Expires`).
const SLOTS: usize = 4;

thread_local! {
    static CACHED: RefCell<[(u64, Option<HeaderValue>); SLOTS]> = const { RefCell::new([const { (0, None) }; SLOTS]) };
}

/// The HTTP-date value of `t`, to the second (RFC 9110 §5.6.7).
pub(crate) fn header(t: SystemTime) -> HeaderValue {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        // Hashed, so that Date and an Expires a round number of seconds later (the
        // usual case) do not share a slot.
        let slot = (secs.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 62) as usize % SLOTS;
        match &c[slot] {
            (s, Some(v)) if *s == secs => v.clone(),
            _ => {
                let v =
                    HeaderValue::from_str(&fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)))
                        .expect("HTTP dates are valid header values");
                c[slot] = (secs, Some(v.clone()));
                v
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_second_same_value_and_slots_do_not_mix() {
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
    }
}
