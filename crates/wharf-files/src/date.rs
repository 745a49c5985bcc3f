//! The `Date` header value, formatted once per second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use wharf_http::date::fmt_http_date;

thread_local! {
    static CACHED: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
}

/// The `Date` value for `now` (RFC 9110 §6.6.1).
pub(crate) fn header(now: SystemTime) -> HeaderValue {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        match &*c {
            Some((s, v)) if *s == secs => v.clone(),
            _ => {
                let v = HeaderValue::from_str(&fmt_http_date(now))
                    .expect("HTTP dates are valid header values");
                *c = Some((secs, v.clone()));
                v
            }
        }
    })
}
