//! `Cache-Control` (RFC 9111 §5.2) and the freshness arithmetic of RFC 9111 §4.2.
//!
//! Exists so that the origin server renders its caching policy in one canonical form,
//! and so that the later shared (proxy) and private (client) caches compute freshness
//! lifetime and age exactly as RFC 9111 §4.2.1 and §4.2.3 specify. Owns RFC 9111
//! §1.2.2 (delta-seconds), §4.2.1, §4.2.3, §5.1 (`Age`, parsing), §5.2 and §5.3
//! (`Expires`, parsing). Heuristic freshness (§4.2.2) is [`crate::cache::lifetime`]'s.
//!
//! Parsing is tolerant. Directive names are case-insensitive and arguments may be
//! tokens or quoted-strings (§5.2). Where §4.2.1 leaves a choice — "When there is more
//! than one value present for a given directive ... either the first occurrence should
//! be used or the response should be considered stale" — the first occurrence is used.
//! Invalid arguments never make a response *more* cacheable: an invalid `max-age` or
//! `s-maxage` becomes 0 (§4.2.1: "Caches are encouraged to consider responses that
//! have invalid freshness information ... to be stale"), and an invalid
//! `stale-while-revalidate`, `stale-if-error`, `max-stale` or `min-fresh` is dropped.
//! Field-name arguments of `no-cache` and `private` are ignored, which makes them
//! apply to the whole response (the stricter reading).

use std::fmt;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};
use http::HeaderValue;

use crate::date::parse_http_date;
use crate::util::{
    list_elements, parse_delta_seconds, single, trim_ows, unquote, DELTA_SECONDS_MAX,
};

/// Parsed `Cache-Control` directives, request and response (RFC 9111 §5.2).
/// Unknown extension directives are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `public` (§5.2.2.9).
    pub public: bool,
    /// `private`, with or without field names (§5.2.2.7).
    pub private: bool,
    /// `no-cache`, with or without field names (§5.2.1.4, §5.2.2.4).
    pub no_cache: bool,
    /// `no-store` (§5.2.1.5, §5.2.2.5).
    pub no_store: bool,
    /// `max-age=N` seconds (§5.2.1.1, §5.2.2.1).
    pub max_age: Option<u64>,
    /// `s-maxage=N` seconds, shared caches only (§5.2.2.10).
    pub s_maxage: Option<u64>,
    /// `must-revalidate` (§5.2.2.2).
    pub must_revalidate: bool,
    /// `proxy-revalidate` (§5.2.2.8).
    pub proxy_revalidate: bool,
    /// `no-transform` (§5.2.1.6, §5.2.2.6).
    pub no_transform: bool,
    /// `must-understand` (§5.2.2.3).
    pub must_understand: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate=N` seconds (RFC 5861 §3).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` seconds (RFC 5861 §4).
    pub stale_if_error: Option<u64>,
    /// `max-stale` (`Some(None)`) or `max-stale=N` (`Some(Some(N))`), request only
    /// (§5.2.1.2).
    pub max_stale: Option<Option<u64>>,
    /// `min-fresh=N` seconds, request only (§5.2.1.3).
    pub min_fresh: Option<u64>,
    /// `only-if-cached`, request only (§5.2.1.7).
    pub only_if_cached: bool,
}

impl CacheControl {
    /// Parses every `Cache-Control` line, as if joined with commas (RFC 9110 §5.3).
    /// Never fails; see the module documentation for how oddities are treated.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> CacheControl {
        let mut cc = CacheControl::default();
        // Directives already seen: the first occurrence decides, even if invalid.
        let mut seen: Vec<String> = Vec::new();
        for value in values {
            let text = String::from_utf8_lossy(value.as_bytes());
            for element in list_elements(&text) {
                let (name, arg) = match element.split_once('=') {
                    Some((n, a)) => (trim_ows(n), Some(unquote(trim_ows(a)))),
                    None => (element, None),
                };
                let name = name.to_ascii_lowercase();
                if seen.contains(&name) {
                    continue;
                }
                // `Some(Some(n))` valid, `Some(None)` present but invalid, `None` absent.
                let delta = arg
                    .as_ref()
                    .map(|a| a.as_deref().and_then(parse_delta_seconds));
                let known = match name.as_str() {
                    "public" => set(&mut cc.public),
                    "private" => set(&mut cc.private),
                    "no-cache" => set(&mut cc.no_cache),
                    "no-store" => set(&mut cc.no_store),
                    "must-revalidate" => set(&mut cc.must_revalidate),
                    "proxy-revalidate" => set(&mut cc.proxy_revalidate),
                    "no-transform" => set(&mut cc.no_transform),
                    "must-understand" => set(&mut cc.must_understand),
                    "immutable" => set(&mut cc.immutable),
                    "only-if-cached" => set(&mut cc.only_if_cached),
                    "max-age" => {
                        cc.max_age = Some(delta.flatten().unwrap_or(0));
                        true
                    }
                    "s-maxage" => {
                        cc.s_maxage = Some(delta.flatten().unwrap_or(0));
                        true
                    }
                    "stale-while-revalidate" => {
                        cc.stale_while_revalidate = delta.flatten();
                        true
                    }
                    "stale-if-error" => {
                        cc.stale_if_error = delta.flatten();
                        true
                    }
                    "min-fresh" => {
                        cc.min_fresh = delta.flatten();
                        true
                    }
                    "max-stale" => {
                        cc.max_stale = match delta {
                            None => Some(None),
                            Some(Some(n)) => Some(Some(n)),
                            Some(None) => None,
                        };
                        true
                    }
                    _ => false,
                };
                if known {
                    seen.push(name);
                }
            }
        }
        cc
    }

    /// Parses the `Cache-Control` lines of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> CacheControl {
        CacheControl::parse(headers.get_all(header::CACHE_CONTROL))
    }

    /// Whether no directive is set (renders as the empty string).
    pub fn is_empty(&self) -> bool {
        *self == CacheControl::default()
    }
}

fn set(flag: &mut bool) -> bool {
    *flag = true;
    true
}

impl fmt::Display for CacheControl {
    /// Canonical order: `public, private, no-cache, no-store, max-age, s-maxage,
    /// must-revalidate, proxy-revalidate, no-transform, must-understand, immutable,
    /// stale-while-revalidate, stale-if-error, max-stale, min-fresh, only-if-cached`,
    /// e.g. `public, max-age=3600, immutable`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |on: bool, name: &str| on.then(|| name.to_owned());
        let num = |v: Option<u64>, name: &str| v.map(|n| format!("{name}={n}"));
        let parts: Vec<String> = [
            flag(self.public, "public"),
            flag(self.private, "private"),
            flag(self.no_cache, "no-cache"),
            flag(self.no_store, "no-store"),
            num(self.max_age, "max-age"),
            num(self.s_maxage, "s-maxage"),
            flag(self.must_revalidate, "must-revalidate"),
            flag(self.proxy_revalidate, "proxy-revalidate"),
            flag(self.no_transform, "no-transform"),
            flag(self.must_understand, "must-understand"),
            flag(self.immutable, "immutable"),
            num(self.stale_while_revalidate, "stale-while-revalidate"),
            num(self.stale_if_error, "stale-if-error"),
            self.max_stale
                .map(|m| m.map_or_else(|| "max-stale".to_owned(), |n| format!("max-stale={n}"))),
            num(self.min_fresh, "min-fresh"),
            flag(self.only_if_cached, "only-if-cached"),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The freshness lifetime of a stored response (RFC 9111 §4.2.1), or `None` when it
/// has no explicit expiration time (heuristic freshness, §4.2.2, is not computed).
///
/// In order: `s-maxage` when `shared`; `max-age`; `Expires` minus `Date`. An invalid
/// or repeated `Expires`, or an `Expires` earlier than `Date`, gives zero.
///
/// `Date` is expected to be present: RFC 9110 §6.6.1 MUST: "A recipient with a clock
/// that receives a response message without a Date header field MUST record the time
/// it was received and append a corresponding Date header field to the message's
/// header section if it is cached or forwarded downstream." A response that has
/// `Expires` but no usable `Date` is treated as already stale.
pub fn freshness_lifetime(response_headers: &HeaderMap, shared: bool) -> Option<Duration> {
    let cc = CacheControl::from_headers(response_headers);
    // §4.2.1: "If the cache is shared and the s-maxage response directive is present,
    // use its value". RFC 9111 §5.3 MUST: "if a response includes the s-maxage
    // directive, a shared cache recipient MUST ignore the Expires header field."
    if shared {
        if let Some(s) = cc.s_maxage {
            return Some(Duration::from_secs(s));
        }
    }
    // RFC 9111 §5.3 MUST: "If a response includes a Cache-Control header field with the
    // max-age directive, a recipient MUST ignore the Expires header field."
    if let Some(m) = cc.max_age {
        return Some(Duration::from_secs(m));
    }
    let expires = match single(response_headers, &header::EXPIRES) {
        Ok(v) => v,
        Err(0) => return None,
        // §4.2.1: with more than one value "the response should be considered stale".
        Err(_) => return Some(Duration::ZERO),
    };
    // RFC 9111 §5.3 MUST: "A cache recipient MUST interpret invalid date formats,
    // especially the value "0", as representing a time in the past (i.e., "already
    // expired")."
    let Some(expires) = expires.to_str().ok().and_then(parse_http_date) else {
        return Some(Duration::ZERO);
    };
    let Some(date) = date_value(response_headers) else {
        return Some(Duration::ZERO);
    };
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// The `Date` of a response, if exactly one valid one is present.
fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    single(headers, &header::DATE)
        .ok()
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
}

/// `age_value` (RFC 9111 §4.2.3): the `Age` header in seconds, 0 when absent.
///
/// §5.1: "a cache encountering a message with a list-based Age field value SHOULD use
/// the first member of the field value, discarding subsequent ones. If the field value
/// (after discarding additional members, as per above) is invalid (e.g., it contains
/// something other than a non-negative integer), a cache SHOULD ignore the field."
fn age_value(headers: &HeaderMap) -> u64 {
    let Some(first_line) = headers.get(header::AGE) else {
        return 0;
    };
    let text = String::from_utf8_lossy(first_line.as_bytes());
    let first = text.split(',').next().map(trim_ows).unwrap_or_default();
    parse_delta_seconds(first).unwrap_or(0)
}

/// The current age of a stored response (RFC 9111 §4.2.3):
///
/// ```text
/// apparent_age = max(0, response_time - date_value)
/// response_delay = response_time - request_time
/// corrected_age_value = age_value + response_delay
/// corrected_initial_age = max(apparent_age, corrected_age_value)
/// resident_time = now - response_time
/// current_age = corrected_initial_age + resident_time
/// ```
///
/// `request_time` is when the cache sent the request that produced the response,
/// `response_time` when it received the response. Negative differences (clock skew)
/// count as zero; a missing `Date` gives an apparent age of zero.
pub fn current_age(
    response_headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    let initial = initial_age(response_headers, request_time, response_time);
    initial.saturating_add(now.duration_since(response_time).unwrap_or(Duration::ZERO))
}

/// The `corrected_initial_age` of [`current_age`]: the age a stored response had
/// when it arrived, which a cache computes once (the current age is then this plus
/// the time since `response_time`).
pub fn initial_age(
    response_headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let since = |later: SystemTime, earlier: SystemTime| {
        later.duration_since(earlier).unwrap_or(Duration::ZERO)
    };
    let apparent_age =
        date_value(response_headers).map_or(Duration::ZERO, |d| since(response_time, d));
    let response_delay = since(response_time, request_time);
    let corrected_age_value =
        Duration::from_secs(age_value(response_headers)).saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// The `Expires` time matching `max-age=max_age` sent at `now`, for HTTP/1.0 caches.
/// `max_age` is clamped to 2^31 seconds (RFC 9111 §1.2.2).
pub fn expires_from_max_age(now: SystemTime, max_age: u64) -> SystemTime {
    let secs = Duration::from_secs(max_age.min(DELTA_SECONDS_MAX));
    // `now + 68 years` only fails at the very edge of the platform's time range; then
    // `now` itself (already expired) is the conservative answer.
    now.checked_add(secs).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    use crate::util::test_headers as headers;

    fn cc(lines: &[&str]) -> CacheControl {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_str(l).expect("test value"))
            .collect();
        CacheControl::parse(&values)
    }

    struct ParseRow {
        lines: &'static [&'static str],
        want: CacheControl,
        rfc: &'static str,
    }

    fn check_parse(row: &ParseRow) {
        let got = cc(row.lines);
        assert_eq!(got, row.want, "{:?} ({})", row.lines, row.rfc);
        // Rendering and re-parsing gives the same directives.
        let again = cc(&[&got.to_string()]);
        assert_eq!(
            again,
            got,
            "round trip of {:?} via {:?}",
            row.lines,
            got.to_string()
        );
    }

    #[test]
    fn parse_directives() {
        let d = CacheControl::default;
        let rows = [
            ParseRow {
                lines: &["public, max-age=3600, immutable"],
                want: CacheControl {
                    public: true,
                    max_age: Some(3600),
                    immutable: true,
                    ..d()
                },
                rfc: "9111 §5.2.2.9, §5.2.2.1, RFC 8246",
            },
            ParseRow {
                lines: &["Max-Age=60"],
                want: CacheControl {
                    max_age: Some(60),
                    ..d()
                },
                rfc: "9111 §5.2 case-insensitive names",
            },
            ParseRow {
                lines: &["max-age=\"60\""],
                want: CacheControl {
                    max_age: Some(60),
                    ..d()
                },
                rfc: "9111 §5.2 quoted-string argument",
            },
            ParseRow {
                lines: &["max-age=60, max-age=10"],
                want: CacheControl {
                    max_age: Some(60),
                    ..d()
                },
                rfc: "9111 §4.2.1 first occurrence",
            },
            ParseRow {
                lines: &["max-age=abc"],
                want: CacheControl {
                    max_age: Some(0),
                    ..d()
                },
                rfc: "9111 §4.2.1 invalid is stale",
            },
            ParseRow {
                lines: &["max-age"],
                want: CacheControl {
                    max_age: Some(0),
                    ..d()
                },
                rfc: "9111 §5.2.2.1 argument required",
            },
            ParseRow {
                lines: &["max-age=-1, max-age=5"],
                want: CacheControl {
                    max_age: Some(0),
                    ..d()
                },
                rfc: "9111 §4.2.1 invalid first occurrence wins",
            },
            ParseRow {
                lines: &["s-maxage=99999999999999999999"],
                want: CacheControl {
                    s_maxage: Some(1 << 31),
                    ..d()
                },
                rfc: "9111 §1.2.2 clamp to 2^31",
            },
            ParseRow {
                lines: &["no-cache=\"Set-Cookie, X-Foo\", private=\"Y\""],
                want: CacheControl {
                    no_cache: true,
                    private: true,
                    ..d()
                },
                rfc: "9111 §5.2.2.4, §5.2.2.7 field names ignored",
            },
            ParseRow {
                lines: &["no-store", "NO-TRANSFORM"],
                want: CacheControl {
                    no_store: true,
                    no_transform: true,
                    ..d()
                },
                rfc: "9110 §5.3 lines combine",
            },
            ParseRow {
                lines: &["  no-store ,  , must-revalidate ,"],
                want: CacheControl {
                    no_store: true,
                    must_revalidate: true,
                    ..d()
                },
                rfc: "9110 §5.6.1 OWS, empty elements",
            },
            ParseRow {
                lines: &["must-understand, no-store, proxy-revalidate"],
                want: CacheControl {
                    must_understand: true,
                    no_store: true,
                    proxy_revalidate: true,
                    ..d()
                },
                rfc: "9111 §5.2.2.3",
            },
            ParseRow {
                lines: &["stale-while-revalidate=30, stale-if-error=60"],
                want: CacheControl {
                    stale_while_revalidate: Some(30),
                    stale_if_error: Some(60),
                    ..d()
                },
                rfc: "RFC 5861 §3, §4",
            },
            ParseRow {
                lines: &["stale-if-error=soon"],
                want: d(),
                rfc: "RFC 5861 §4 invalid dropped",
            },
            ParseRow {
                lines: &["max-stale"],
                want: CacheControl {
                    max_stale: Some(None),
                    ..d()
                },
                rfc: "9111 §5.2.1.2 no argument",
            },
            ParseRow {
                lines: &["max-stale=5"],
                want: CacheControl {
                    max_stale: Some(Some(5)),
                    ..d()
                },
                rfc: "9111 §5.2.1.2 argument",
            },
            ParseRow {
                lines: &["max-stale=x"],
                want: d(),
                rfc: "9111 §5.2.1.2 invalid dropped",
            },
            ParseRow {
                lines: &["min-fresh=10, only-if-cached"],
                want: CacheControl {
                    min_fresh: Some(10),
                    only_if_cached: true,
                    ..d()
                },
                rfc: "9111 §5.2.1.3, §5.2.1.7",
            },
            ParseRow {
                lines: &["community=\"UCI\", foo"],
                want: d(),
                rfc: "9111 §5.2.3 extensions ignored",
            },
            ParseRow {
                lines: &[""],
                want: d(),
                rfc: "9111 §5.2 empty",
            },
        ];
        for row in &rows {
            check_parse(row);
        }
    }

    struct RenderRow {
        value: CacheControl,
        want: &'static str,
        rfc: &'static str,
    }

    fn check_render(row: &RenderRow) {
        assert_eq!(row.value.to_string(), row.want, "{}", row.rfc);
        assert_eq!(cc(&[row.want]), row.value, "parse back ({})", row.rfc);
    }

    #[test]
    fn render_canonical() {
        let d = CacheControl::default;
        let rows = [
            RenderRow { value: CacheControl { immutable: true, max_age: Some(3600), public: true, ..d() },
                want: "public, max-age=3600, immutable", rfc: "canonical order" },
            RenderRow { value: CacheControl { no_cache: true, ..d() }, want: "no-cache", rfc: "9111 §5.2.2.4" },
            RenderRow { value: CacheControl { private: true, no_store: true, ..d() }, want: "private, no-store", rfc: "9111 §5.2.2.7" },
            RenderRow { value: CacheControl { max_age: Some(0), s_maxage: Some(60), must_revalidate: true, ..d() },
                want: "max-age=0, s-maxage=60, must-revalidate", rfc: "9111 §5.2.2.10" },
            RenderRow { value: CacheControl { stale_while_revalidate: Some(1), stale_if_error: Some(2), max_stale: Some(None), min_fresh: Some(3), only_if_cached: true, ..d() },
                want: "stale-while-revalidate=1, stale-if-error=2, max-stale, min-fresh=3, only-if-cached", rfc: "RFC 5861, 9111 §5.2.1" },
            RenderRow { value: CacheControl { max_stale: Some(Some(9)), no_transform: true, proxy_revalidate: true, must_understand: true, ..d() },
                want: "proxy-revalidate, no-transform, must-understand, max-stale=9", rfc: "9111 §5.2" },
            RenderRow { value: d(), want: "", rfc: "empty" },
        ];
        for row in &rows {
            check_render(row);
        }
        assert!(d().is_empty());
        assert!(!CacheControl {
            public: true,
            ..d()
        }
        .is_empty());
    }

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const DATE_PLUS_100: &str = "Sun, 06 Nov 1994 08:51:17 GMT";

    struct FreshRow {
        headers: &'static [(&'static str, &'static str)],
        shared: bool,
        want: Option<u64>,
        rfc: &'static str,
    }

    fn check_fresh(row: &FreshRow) {
        let got = freshness_lifetime(&headers(row.headers), row.shared);
        assert_eq!(
            got,
            row.want.map(Duration::from_secs),
            "{:?} shared={} ({})",
            row.headers,
            row.shared,
            row.rfc
        );
    }

    #[test]
    fn freshness() {
        let rows = [
            FreshRow {
                headers: &[("cache-control", "max-age=60")],
                shared: false,
                want: Some(60),
                rfc: "9111 §4.2.1 max-age",
            },
            FreshRow {
                headers: &[("cache-control", "s-maxage=10, max-age=60")],
                shared: true,
                want: Some(10),
                rfc: "9111 §4.2.1 s-maxage for shared",
            },
            FreshRow {
                headers: &[("cache-control", "s-maxage=10, max-age=60")],
                shared: false,
                want: Some(60),
                rfc: "9111 §5.2.2.10 private ignores s-maxage",
            },
            FreshRow {
                headers: &[("cache-control", "s-maxage=10")],
                shared: false,
                want: None,
                rfc: "9111 §5.2.2.10 private ignores s-maxage",
            },
            FreshRow {
                headers: &[("expires", DATE_PLUS_100), ("date", DATE)],
                shared: false,
                want: Some(100),
                rfc: "9111 §4.2.1 Expires minus Date",
            },
            FreshRow {
                headers: &[
                    ("expires", DATE_PLUS_100),
                    ("date", DATE),
                    ("cache-control", "max-age=5"),
                ],
                shared: false,
                want: Some(5),
                rfc: "9111 §5.3 max-age overrides Expires",
            },
            FreshRow {
                headers: &[
                    ("expires", DATE_PLUS_100),
                    ("date", DATE),
                    ("cache-control", "s-maxage=7"),
                ],
                shared: true,
                want: Some(7),
                rfc: "9111 §5.3 s-maxage overrides Expires",
            },
            FreshRow {
                headers: &[("expires", "0"), ("date", DATE)],
                shared: false,
                want: Some(0),
                rfc: "9111 §5.3 invalid Expires is past",
            },
            FreshRow {
                headers: &[("expires", DATE), ("date", DATE_PLUS_100)],
                shared: false,
                want: Some(0),
                rfc: "9111 §4.2.1 Expires before Date",
            },
            FreshRow {
                headers: &[
                    ("expires", DATE_PLUS_100),
                    ("expires", DATE_PLUS_100),
                    ("date", DATE),
                ],
                shared: false,
                want: Some(0),
                rfc: "9111 §4.2.1 repeated Expires is stale",
            },
            FreshRow {
                headers: &[("expires", DATE_PLUS_100)],
                shared: false,
                want: Some(0),
                rfc: "9110 §6.6.1 Date required",
            },
            FreshRow {
                headers: &[
                    ("cache-control", "max-age=oops"),
                    ("expires", DATE_PLUS_100),
                    ("date", DATE),
                ],
                shared: false,
                want: Some(0),
                rfc: "9111 §4.2.1 invalid max-age is stale",
            },
            FreshRow {
                headers: &[("cache-control", "no-cache"), ("date", DATE)],
                shared: false,
                want: None,
                rfc: "9111 §4.2.2 heuristic not computed",
            },
            FreshRow {
                headers: &[],
                shared: true,
                want: None,
                rfc: "9111 §4.2.1 no explicit expiration",
            },
        ];
        for row in &rows {
            check_fresh(row);
        }
    }

    struct AgeRow {
        headers: &'static [(&'static str, &'static str)],
        /// Seconds after `DATE` at which the request was sent, the response received,
        /// and the age is computed.
        request: u64,
        response: u64,
        now: u64,
        want: u64,
        rfc: &'static str,
    }

    fn check_age(row: &AgeRow) {
        let base = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let t = |s: u64| base + Duration::from_secs(s);
        let got = current_age(
            &headers(row.headers),
            t(row.request),
            t(row.response),
            t(row.now),
        );
        assert_eq!(
            got,
            Duration::from_secs(row.want),
            "{:?} ({})",
            row.headers,
            row.rfc
        );
    }

    #[test]
    fn age() {
        let rows = [
            AgeRow {
                headers: &[("date", DATE)],
                request: 0,
                response: 0,
                now: 30,
                want: 30,
                rfc: "9111 §4.2.3 resident time only",
            },
            AgeRow {
                headers: &[("date", DATE), ("age", "100")],
                request: 1,
                response: 3,
                now: 13,
                want: 112,
                rfc: "9111 §4.2.3 age + delay + resident",
            },
            AgeRow {
                headers: &[("date", DATE)],
                request: 40,
                response: 50,
                now: 60,
                want: 60,
                rfc: "9111 §4.2.3 apparent age dominates",
            },
            AgeRow {
                headers: &[("date", DATE_PLUS_100)],
                request: 0,
                response: 1,
                now: 5,
                want: 5,
                rfc: "9111 §4.2.3 future Date: apparent age 0",
            },
            AgeRow {
                headers: &[("date", DATE), ("age", "abc")],
                request: 0,
                response: 0,
                now: 7,
                want: 7,
                rfc: "9111 §5.1 invalid Age ignored",
            },
            AgeRow {
                headers: &[("date", DATE), ("age", "10, 20")],
                request: 0,
                response: 0,
                now: 0,
                want: 10,
                rfc: "9111 §5.1 first member",
            },
            AgeRow {
                headers: &[("age", "5")],
                request: 0,
                response: 0,
                now: 1,
                want: 6,
                rfc: "9111 §4.2.3 no Date",
            },
            AgeRow {
                headers: &[("date", DATE)],
                request: 10,
                response: 0,
                now: 0,
                want: 0,
                rfc: "9111 §4.2.3 negative delay counts as zero",
            },
        ];
        for row in &rows {
            check_age(row);
        }
    }

    #[test]
    fn expires_header_time() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            expires_from_max_age(now, 3600),
            now + Duration::from_secs(3600)
        );
        assert_eq!(expires_from_max_age(now, 0), now);
        assert_eq!(
            expires_from_max_age(now, u64::MAX),
            now + Duration::from_secs(1 << 31),
            "9111 §1.2.2 clamp"
        );
    }
}
