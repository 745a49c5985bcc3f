//! HTTP-date formatting and parsing (RFC 9110 §5.6.7).
//!
//! Exists so that validators compare at the one-second precision HTTP dates have, and
//! so that formatting can never panic on a clock value `httpdate` cannot represent.
//! Owns RFC 9110 §5.6.7. The clock is always an argument; nothing here reads it.
//! Field values are formatted once per second per thread ([`with_field_value`]):
//! every response has a `Date`, and many an `Expires`.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

/// Seconds from the epoch to 9999-12-31T23:59:59Z, the last instant an IMF-fixdate
/// (four-digit year) can express.
const LAST_EXPRESSIBLE: u64 = 253_402_300_799;

/// Formats `t` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), truncating the
/// sub-second part.
///
/// RFC 9110 §5.6.7 MUST: "a sender MUST generate timestamps in the IMF-fixdate format".
/// Times before 1970 are clamped to the epoch and times after year 9999 to its last
/// second, rather than panicking as `httpdate` would.
pub fn fmt_http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_EXPRESSIBLE);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// How many distinct seconds each thread keeps formatted (`Date` and a few
/// `Expires`); a new second replaces the earliest.
const SLOTS: usize = 4;

thread_local! {
    static FORMATTED: RefCell<[(u64, Option<HeaderValue>); SLOTS]> =
        const { RefCell::new([const { (0, None) }; SLOTS]) };
}

/// Calls `f` with the IMF-fixdate of `t`'s second as a field value, formatted at
/// most once per second and thread.
pub fn with_field_value<R>(t: SystemTime, f: impl FnOnce(&HeaderValue) -> R) -> R {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_EXPRESSIBLE);
    FORMATTED.with(|c| {
        let kept = c.borrow();
        if let Some(v) = kept
            .iter()
            .find_map(|(s, v)| v.as_ref().filter(|_| *s == secs))
        {
            return f(v);
        }
        drop(kept);
        let v = HeaderValue::from_str(&fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)))
            .expect("HTTP dates are valid field values");
        // (Busy only if `f` of an outer call asks again: that one goes unkept.)
        if let Ok(mut kept) = c.try_borrow_mut() {
            // The earliest second goes: a past `Date`, rarely a wanted `Expires`.
            if let Some(oldest) = kept.iter_mut().min_by_key(|(s, v)| (v.is_some(), *s)) {
                *oldest = (secs, Some(v.clone()));
            }
        }
        f(&v)
    })
}

/// [`with_field_value`], the value itself.
pub fn field_value(t: SystemTime) -> HeaderValue {
    with_field_value(t, HeaderValue::clone)
}

/// Parses an HTTP-date in any of its three formats (IMF-fixdate, obsolete RFC 850,
/// asctime); surrounding whitespace is ignored. `None` if invalid, including a weekday
/// that does not match the date.
///
/// RFC 9110 §5.6.7 MUST: "A recipient that parses a timestamp value in an HTTP field
/// MUST accept all three HTTP-date formats."
///
/// Two-digit RFC 850 years are mapped by `httpdate` as 00–69 → 20xx, 70–99 → 19xx.
/// §5.6.7 asks instead for the most recent past year when a date "appears to be more
/// than 50 years in the future", which needs a clock; the fixed window differs only for
/// dates decades away from now.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s).ok()
}

/// Drops the sub-second part of `t` (rounding towards the past), the precision of an
/// HTTP-date. Comparisons against a received date use this, so a file modified at
/// `12:00:00.7` is "not modified since" `12:00:00`.
pub fn truncate_to_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(e) => {
            let before = e.duration();
            if before.subsec_nanos() == 0 {
                t
            } else {
                // Round towards the past; if that is not representable keep `t`.
                UNIX_EPOCH
                    .checked_sub(Duration::from_secs(before.as_secs().saturating_add(1)))
                    .unwrap_or(t)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_are_kept_per_second_and_seconds_do_not_evict_each_other() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(field_value(t), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(
            field_value(t + Duration::from_millis(999)),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(
            field_value(t + Duration::from_secs(4)),
            "Tue, 14 Nov 2023 22:13:24 GMT"
        );
        assert_eq!(field_value(t), "Tue, 14 Nov 2023 22:13:20 GMT");
        // A `Date` and an `Expires` an hour later both stay.
        let later = t + Duration::from_secs(3600);
        field_value(later);
        FORMATTED.with(|c| {
            let c = c.borrow();
            for secs in [1_700_000_000, 1_700_003_600] {
                assert!(c.iter().any(|(s, v)| *s == secs && v.is_some()), "{secs}");
            }
        });
        // Asked again from inside: answered, not a panic.
        let inner = with_field_value(t + Duration::from_secs(9), |_| {
            field_value(t + Duration::from_secs(10))
        });
        assert_eq!(inner, "Tue, 14 Nov 2023 22:13:30 GMT");
    }

    /// 1994-11-06T08:49:37Z, the example instant of RFC 9110 §5.6.7.
    const EXAMPLE: u64 = 784_111_777;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    struct ParseRow {
        input: &'static str,
        want: Option<u64>,
        rfc: &'static str,
    }

    fn check_parse(row: &ParseRow) {
        assert_eq!(
            parse_http_date(row.input),
            row.want.map(at),
            "{:?} ({})",
            row.input,
            row.rfc
        );
    }

    #[test]
    fn parse_three_formats() {
        let rows = [
            ParseRow {
                input: "Sun, 06 Nov 1994 08:49:37 GMT",
                want: Some(EXAMPLE),
                rfc: "9110 §5.6.7 IMF-fixdate",
            },
            ParseRow {
                input: "Sunday, 06-Nov-94 08:49:37 GMT",
                want: Some(EXAMPLE),
                rfc: "9110 §5.6.7 obsolete RFC 850",
            },
            ParseRow {
                input: "Sun Nov  6 08:49:37 1994",
                want: Some(EXAMPLE),
                rfc: "9110 §5.6.7 asctime",
            },
            ParseRow {
                input: "  Sun, 06 Nov 1994 08:49:37 GMT ",
                want: Some(EXAMPLE),
                rfc: "9110 §5.5 OWS",
            },
            ParseRow {
                input: "Mon, 06 Nov 1994 08:49:37 GMT",
                want: None,
                rfc: "9110 §5.6.7 wrong day-name",
            },
            ParseRow {
                input: "Sun, 06 Nov 1994 08:49:37 UTC",
                want: None,
                rfc: "9110 §5.6.7 GMT only",
            },
            ParseRow {
                input: "Sun, 06 Nov 1994 25:49:37 GMT",
                want: None,
                rfc: "9110 §5.6.7 hour range",
            },
            ParseRow {
                input: "0",
                want: None,
                rfc: "9111 §5.3 \"0\" is not a date",
            },
            ParseRow {
                input: "",
                want: None,
                rfc: "9110 §5.6.7",
            },
        ];
        for row in &rows {
            check_parse(row);
        }
    }

    struct FmtRow {
        input: SystemTime,
        want: &'static str,
        rfc: &'static str,
    }

    fn check_fmt(row: &FmtRow) {
        assert_eq!(fmt_http_date(row.input), row.want, "{}", row.rfc);
    }

    #[test]
    fn format_imf_fixdate() {
        let rows = [
            FmtRow {
                input: at(EXAMPLE),
                want: "Sun, 06 Nov 1994 08:49:37 GMT",
                rfc: "9110 §5.6.7",
            },
            FmtRow {
                input: at(EXAMPLE) + Duration::from_millis(999),
                want: "Sun, 06 Nov 1994 08:49:37 GMT",
                rfc: "9110 §5.6.7 second precision",
            },
            FmtRow {
                input: UNIX_EPOCH - Duration::from_secs(10),
                want: "Thu, 01 Jan 1970 00:00:00 GMT",
                rfc: "clamped, no panic",
            },
            FmtRow {
                input: at(LAST_EXPRESSIBLE + 1000),
                want: "Fri, 31 Dec 9999 23:59:59 GMT",
                rfc: "clamped, no panic",
            },
        ];
        for row in &rows {
            check_fmt(row);
        }
    }

    struct TruncRow {
        input: SystemTime,
        want: SystemTime,
        rfc: &'static str,
    }

    fn check_trunc(row: &TruncRow) {
        assert_eq!(truncate_to_secs(row.input), row.want, "{}", row.rfc);
    }

    #[test]
    fn truncate() {
        let rows = [
            TruncRow {
                input: at(EXAMPLE) + Duration::from_nanos(999_999_999),
                want: at(EXAMPLE),
                rfc: "9110 §5.6.7 one-second resolution",
            },
            TruncRow {
                input: at(EXAMPLE),
                want: at(EXAMPLE),
                rfc: "already whole",
            },
            TruncRow {
                input: UNIX_EPOCH - Duration::from_millis(1500),
                want: UNIX_EPOCH - Duration::from_secs(2),
                rfc: "towards the past",
            },
        ];
        for row in &rows {
            check_trunc(row);
        }
    }
}
