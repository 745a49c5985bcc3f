//! Byte-range requests: `Range`, `If-Range` and `Content-Range` (RFC 9110 §14, §13.1.5).
//!
//! Exists so that the decision between 200, 206 and 416 — including when a `Range`
//! must be ignored — is made in one place with its reason. Owns RFC 9110 §14.1
//! (range units and specifiers), §14.2 (`Range`), §14.4 (`Content-Range` values),
//! §13.1.5 (`If-Range`, step 5 of §13.2.2) and the abuse limits of §17.15.
//!
//! Call [`evaluate`] only after [`crate::precondition::evaluate`] returned
//! [`Proceed`](crate::precondition::Outcome::Proceed): RFC 9110 §14.2 "The Range header
//! field is evaluated after evaluating the precondition header fields defined in
//! Section 13.1, and only if the result in absence of the Range header field would be a
//! 200 (OK) response."
//!
//! Satisfiable ranges are coalesced and returned in ascending order, as wharf's
//! multipart writer expects; this trades §15.3.7.2's "SHOULD send the parts in the
//! same order that the corresponding range-spec appeared" for a canonical,
//! overlap-free part list.

use std::borrow::Cow;
use std::fmt;

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use crate::date::{fmt_http_date, parse_http_date, truncate_to_secs};
use crate::etag::EntityTag;
use crate::precondition::Validators;
use crate::util::{is_token, single, trim_ows, Echo};

/// An inclusive, non-empty span of bytes `start..=end` within a representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive (`end >= start`).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    #[allow(clippy::len_without_is_empty)] // a ByteRange always holds at least one byte
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }
}

impl fmt::Display for ByteRange {
    /// `first-last`, as in `bytes 0-99/1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// One `range-spec` of a `bytes` range set (RFC 9110 §14.1.2). Numbers too large for
/// `u64` saturate to `u64::MAX`, which gives the same satisfiability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-pos "-" [ last-pos ]`.
    Int {
        /// `first-pos`.
        first: u64,
        /// `last-pos`, absent for an open-ended range (`500-`).
        last: Option<u64>,
    },
    /// `"-" suffix-length`: the last `n` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// The bytes this spec selects from a representation of `len` bytes, or `None` if
    /// it is unsatisfiable (RFC 9110 §14.1.2).
    pub fn resolve(self, len: u64) -> Option<ByteRange> {
        match self {
            // §14.1.2: an int-range is satisfiable if "the first-pos is less than the
            // current length"; a last-pos beyond the end is replaced by length - 1.
            RangeSpec::Int { first, last } => (first < len).then(|| ByteRange {
                start: first,
                end: last.unwrap_or(u64::MAX).min(len - 1),
            }),
            // §14.1.2: "If the selected representation is shorter than the specified
            // suffix-length, the entire representation is used."
            RangeSpec::Suffix(n) => (n > 0 && len > 0).then(|| ByteRange {
                start: len.saturating_sub(n),
                end: len - 1,
            }),
        }
    }
}

/// Why a `Range` value could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeParseError {
    /// The range unit is not `bytes` (carries the unit as received).
    UnknownUnit(String),
    /// The value is not a valid `ranges-specifier`.
    Invalid,
}

/// Parses a `Range` value: `bytes=` (unit case-insensitive, RFC 9110 §14.1) followed
/// by a `1#range-spec` list whose empty elements and OWS are accepted (§5.6.1).
///
/// RFC 9110 §14.1.1: "A ranges-specifier is invalid if it contains any range-spec that
/// is invalid or undefined for the indicated range-unit."
pub fn parse_range(value: &str) -> Result<Vec<RangeSpec>, RangeParseError> {
    let (unit, set) = value.split_once('=').ok_or(RangeParseError::Invalid)?;
    if !is_token(unit) {
        return Err(RangeParseError::Invalid);
    }
    // §14.1: "Range unit names are case-insensitive".
    if !unit.eq_ignore_ascii_case("bytes") {
        return Err(RangeParseError::UnknownUnit(unit.to_owned()));
    }
    let mut specs = Vec::new();
    for element in set.split(',').map(trim_ows).filter(|e| !e.is_empty()) {
        specs.push(parse_spec(element).ok_or(RangeParseError::Invalid)?);
    }
    // `range-set = 1#range-spec`: at least one.
    if specs.is_empty() {
        return Err(RangeParseError::Invalid);
    }
    Ok(specs)
}

/// `1*DIGIT` as a saturating `u64`, and whether it overflowed.
fn digits(s: &str) -> Option<(u64, bool)> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().map_or((u64::MAX, true), |v| (v, false)))
}

fn parse_spec(s: &str) -> Option<RangeSpec> {
    if let Some(suffix) = s.strip_prefix('-') {
        return digits(suffix).map(|(n, _)| RangeSpec::Suffix(n));
    }
    let (first, last) = s.split_once('-')?;
    let (first, first_overflow) = digits(first)?;
    if last.is_empty() {
        return Some(RangeSpec::Int { first, last: None });
    }
    let (last, last_overflow) = digits(last)?;
    // §14.1.1: "An int-range is invalid if the last-pos value is present and less than
    // the first-pos." A saturated last-pos is larger than any non-saturated first-pos;
    // when both saturate the order is unknown and the spec is kept (it is unsatisfiable
    // for every representable length anyway).
    let less = match (first_overflow, last_overflow) {
        (false, false) => last < first,
        (true, false) => true,
        (_, true) => false,
    };
    (!less).then_some(RangeSpec::Int {
        first,
        last: Some(last),
    })
}

/// Limits against abusive range requests (RFC 9110 §17.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeLimits {
    /// More range-specs than this and the `Range` field is ignored (200 with the whole
    /// representation).
    pub max_ranges: usize,
}

impl Default for RangeLimits {
    /// 100 ranges.
    fn default() -> Self {
        RangeLimits { max_ranges: 100 }
    }
}

/// What to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeKind {
    /// The whole representation (200).
    Full,
    /// These coalesced, ascending, non-adjacent ranges (206; multipart when more than
    /// one).
    Partial(Vec<ByteRange>),
    /// 416, with `Content-Range: bytes */len` ([`unsatisfied_range`]).
    Unsatisfiable,
}

/// The result of [`evaluate`]. `Display` gives the reason: `206: bytes 0-99 of 1000`,
/// `200: Range ignored: If-Range "v1" does not match current ETag "v2"`,
/// `416: no satisfiable range in bytes=5000- (length 1000)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeDecision {
    /// What to send.
    pub kind: RangeKind,
    /// Static for the common outcomes (no `Range`): nothing allocated per request.
    reason: Cow<'static, str>,
}

impl RangeDecision {
    fn full(reason: impl Into<Cow<'static, str>>) -> RangeDecision {
        RangeDecision {
            kind: RangeKind::Full,
            reason: reason.into(),
        }
    }

    /// 200, 206 or 416.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RangeKind::Full => StatusCode::OK,
            RangeKind::Partial(_) => StatusCode::PARTIAL_CONTENT,
            RangeKind::Unsatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        }
    }

    /// The ranges to send, empty unless [`RangeKind::Partial`].
    pub fn ranges(&self) -> &[ByteRange] {
        match &self.kind {
            RangeKind::Partial(r) => r,
            _ => &[],
        }
    }
}

impl fmt::Display for RangeDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status().as_u16(), self.reason)
    }
}

/// Decides between the whole representation, some ranges of it and 416, for a
/// representation of `len` bytes with validators `v`.
///
/// The `Range` field is ignored (→ [`RangeKind::Full`]) when the method is not GET,
/// when it is absent, repeated, syntactically invalid or of an unknown unit, when an
/// `If-Range` does not match, and when it has more than `limits.max_ranges` specs.
pub fn evaluate(
    method: &Method,
    headers: &HeaderMap,
    len: u64,
    v: &Validators<'_>,
    limits: &RangeLimits,
) -> RangeDecision {
    // One pass over the request's few names (most have neither field) instead of a
    // hashed lookup for each.
    if !headers.keys().any(|name| name == header::RANGE) {
        // RFC 9110 §13.1.5 MUST: "A server MUST ignore an If-Range header field received
        // in a request that does not contain a Range header field."
        return if headers.keys().any(|name| name == header::IF_RANGE) {
            RangeDecision::full("no Range (If-Range ignored)")
        } else {
            RangeDecision::full("no Range")
        };
    }
    let value = match single(headers, &header::RANGE) {
        Ok(value) => value,
        // `Range` is a single ranges-specifier, not a list: two lines cannot combine.
        Err(_) => return RangeDecision::full("Range ignored: more than one Range field"),
    };
    // RFC 9110 §14.2 MUST: "A server MUST ignore a Range header field received with a
    // request method that is unrecognized or for which range handling is not defined.
    // For this specification, GET is the only method for which range handling is
    // defined."
    if *method != Method::GET {
        return RangeDecision::full(format!("Range ignored for {method}"));
    }
    let Ok(text) = value.to_str() else {
        return RangeDecision::full("Range ignored: invalid ranges-specifier");
    };
    let text = trim_ows(text);
    let specs = match parse_range(text) {
        Ok(specs) => specs,
        // RFC 9110 §14.2 MUST: "An origin server MUST ignore a Range header field that
        // contains a range unit it does not understand."
        Err(RangeParseError::UnknownUnit(unit)) => {
            return RangeDecision::full(format!(
                "Range ignored: unsupported range unit {}",
                Echo(&unit)
            ));
        }
        // §14.2: "A server that supports range requests MAY ignore or reject a Range
        // header field that contains an invalid ranges-specifier" — we ignore.
        Err(RangeParseError::Invalid) => {
            return RangeDecision::full(format!(
                "Range ignored: invalid ranges-specifier {}",
                Echo(text)
            ));
        }
    };

    // Step 5 of RFC 9110 §13.2.2: If-Range.
    let mut if_range_note = None;
    if headers.contains_key(header::IF_RANGE) {
        match if_range(headers, v) {
            Ok(note) => if_range_note = Some(note),
            // RFC 9110 §13.1.5 MUST: "If the validator does not match, the server MUST
            // ignore the Range header field" (the condition is false).
            Err(why) => return RangeDecision::full(format!("Range ignored: {why}")),
        }
    }

    // §14.2: "A server that supports range requests MAY ignore or reject a Range header
    // field that contains ... a set of many small ranges that are not listed in
    // ascending order, since these are indications of either a broken client or a
    // deliberate denial-of-service attack (Section 17.15)."
    if specs.len() > limits.max_ranges {
        return RangeDecision::full(format!(
            "Range ignored as abusive: {} ranges exceed the limit of {}",
            specs.len(),
            limits.max_ranges
        ));
    }

    let mut ranges: Vec<ByteRange> = specs.iter().filter_map(|s| s.resolve(len)).collect();
    if ranges.is_empty() {
        // §14.1.2: "When a selected representation has zero length, the only satisfiable
        // form of range-spec in a GET request is a suffix-range with a non-zero
        // suffix-length." Its bytes are none at all, which no Content-Range can
        // describe, so we take §14.2's "A server MAY ignore the Range header field" and
        // send the (empty) whole.
        if len == 0
            && specs
                .iter()
                .any(|s| matches!(s, RangeSpec::Suffix(n) if *n > 0))
        {
            return RangeDecision::full("Range ignored: representation is empty");
        }
        return RangeDecision {
            kind: RangeKind::Unsatisfiable,
            reason: format!("no satisfiable range in {} (length {len})", Echo(text)).into(),
        };
    }
    let received = ranges.len();
    coalesce(&mut ranges);

    let mut reason = String::from("bytes ");
    for (i, r) in ranges.iter().enumerate() {
        if i > 0 {
            reason.push_str(", ");
        }
        reason.push_str(&r.to_string());
    }
    reason.push_str(&format!(" of {len}"));
    if ranges.len() < received {
        reason.push_str(&format!(" (coalesced from {received})"));
    }
    if let Some(note) = if_range_note {
        reason.push_str(", ");
        reason.push_str(&note);
    }
    RangeDecision {
        kind: RangeKind::Partial(ranges),
        reason: reason.into(),
    }
}

/// Sorts `ranges` and merges overlapping or adjacent ones.
fn coalesce(ranges: &mut Vec<ByteRange>) {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(1) => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    *ranges = out;
}

/// Evaluates `If-Range` (RFC 9110 §13.1.5): `Ok` with a note when it matches, `Err` with
/// the reason when it does not.
fn if_range(headers: &HeaderMap, v: &Validators<'_>) -> Result<String, String> {
    let value = single(headers, &header::IF_RANGE)
        .map_err(|_| "If-Range has more than one value".to_owned())?;
    let text = trim_ows(
        value
            .to_str()
            .map_err(|_| "If-Range is malformed".to_owned())?,
    );
    // §13.1.5: "A valid entity-tag can be distinguished from a valid HTTP-date by
    // examining the first three characters for a DQUOTE."
    if text.starts_with('"') || text.starts_with("W/") {
        let Some(tag) = EntityTag::parse(text) else {
            return Err(format!("If-Range {} is malformed", Echo(text)));
        };
        // §13.1.5: "If the entity-tag validator provided exactly matches the ETag field
        // value for the selected representation using the strong comparison function
        // (Section 8.8.3.2), the condition is true." A weak tag on either side never
        // compares strongly equal.
        return match v.etag {
            Some(cur) if tag.strong_eq(cur) => {
                Ok(format!("If-Range {} matched current ETag", Echo(text)))
            }
            Some(cur) => Err(format!(
                "If-Range {} does not match current ETag {}{}",
                Echo(text),
                Echo(&cur.to_string()),
                if tag.weak_eq(cur) {
                    " (strong comparison)"
                } else {
                    ""
                }
            )),
            None => Err(format!(
                "If-Range {} does not match: no current ETag",
                Echo(text)
            )),
        };
    }
    let Some(date) = parse_http_date(text) else {
        return Err(format!(
            "If-Range {} is neither an entity-tag nor an HTTP-date",
            Echo(text)
        ));
    };
    // §13.1.5: "If the HTTP-date validator provided is not a strong validator in the
    // sense defined by Section 8.8.2.2, the condition is false. If the HTTP-date
    // validator provided exactly matches the Last-Modified field value for the selected
    // representation, the condition is true." Strength (§8.8.2.2) needs the response's
    // Date, which this clock-free code lacks; an exact match at second precision is
    // taken as strong.
    match v.last_modified.map(truncate_to_secs) {
        Some(lm) if lm == date => Ok(format!(
            "If-Range {} matched Last-Modified",
            fmt_http_date(date)
        )),
        Some(lm) => Err(format!(
            "If-Range {} does not match Last-Modified {}",
            fmt_http_date(date),
            fmt_http_date(lm)
        )),
        None => Err(format!(
            "If-Range {} does not match: no Last-Modified",
            fmt_http_date(date)
        )),
    }
}

/// The `Content-Range` value for one part: `bytes 0-99/1000` (RFC 9110 §14.4).
pub fn content_range(r: &ByteRange, len: u64) -> String {
    format!("bytes {}-{}/{len}", r.start, r.end)
}

/// The `Content-Range` value of a 416: `bytes */1000` (RFC 9110 §14.4,
/// `unsatisfied-range`).
///
/// RFC 9110 §15.5.17: "a server generating a 416 (Range Not Satisfiable) response to a
/// byte-range request SHOULD send a Content-Range header field with an
/// unsatisfied-range value".
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// A piece of a `multipart/byteranges` body (RFC 9110 §14.6): framing text, or the
/// bytes of one range of the representation, which the caller supplies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Boundary lines and part headers.
    Text(String),
    /// These bytes of the representation.
    Range(ByteRange),
}

/// The pieces of a `multipart/byteranges` body for `ranges` of a representation of
/// `total` bytes of type `content_type` (RFC 9110 §14.6): each part a boundary, its
/// `Content-Type` and `Content-Range`, and its bytes; then the closing boundary.
pub fn multipart(
    ranges: &[ByteRange],
    total: u64,
    boundary: &str,
    content_type: &str,
) -> Vec<Piece> {
    let mut pieces = Vec::with_capacity(ranges.len() * 3 + 1);
    for r in ranges {
        pieces.push(Piece::Text(format!(
            "--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            content_range(r, total)
        )));
        pieces.push(Piece::Range(*r));
        pieces.push(Piece::Text("\r\n".to_owned()));
    }
    pieces.push(Piece::Text(format!("--{boundary}--\r\n")));
    pieces
}

/// The `Content-Type` of a multipart response with this boundary.
pub fn multipart_type(boundary: &str) -> String {
    format!("multipart/byteranges; boundary={boundary}")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use http::HeaderValue;

    use super::*;

    fn lm() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(784_111_777_500)
    }
    const D_EQ: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const D_AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";
    const D_BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    enum Want {
        Full,
        Partial(&'static [(u64, u64)]),
        Unsatisfiable,
    }

    struct Row {
        method: Method,
        headers: &'static [(&'static str, &'static str)],
        len: u64,
        /// Current ETag is `W/"v2"` instead of `"v2"`.
        weak_etag: bool,
        want: Want,
        reason: &'static str,
        rfc: &'static str,
    }

    use crate::util::test_headers as headers;

    fn check(row: &Row) {
        let tag = if row.weak_etag {
            EntityTag::weak("v2")
        } else {
            EntityTag::strong("v2")
        };
        let v = Validators {
            etag: Some(&tag),
            last_modified: Some(lm()),
        };
        let d = evaluate(
            &row.method,
            &headers(row.headers),
            row.len,
            &v,
            &RangeLimits::default(),
        );
        let want = match row.want {
            Want::Full => RangeKind::Full,
            Want::Partial(rs) => RangeKind::Partial(rs.iter().map(|&(s, e)| r(s, e)).collect()),
            Want::Unsatisfiable => RangeKind::Unsatisfiable,
        };
        assert_eq!(
            d.kind, want,
            "{:?} len {} ({}): {d}",
            row.headers, row.len, row.rfc
        );
        assert_eq!(
            d.to_string(),
            row.reason,
            "{:?} len {} ({})",
            row.headers,
            row.len,
            row.rfc
        );
    }

    #[test]
    fn range_decisions() {
        let get = || Method::GET;
        let rows = [
            // Single ranges.
            Row { method: get(), headers: &[("range", "bytes=0-99")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 99)]), reason: "206: bytes 0-99 of 1000", rfc: "9110 §14.1.2 int-range" },
            Row { method: get(), headers: &[("range", "bytes=0-0")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 0)]), reason: "206: bytes 0-0 of 1000", rfc: "9110 §14.1.2 first byte" },
            Row { method: get(), headers: &[("range", "bytes=500-")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(500, 999)]), reason: "206: bytes 500-999 of 1000", rfc: "9110 §14.1.2 open-ended" },
            Row { method: get(), headers: &[("range", "bytes=0-1999")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 999)]), reason: "206: bytes 0-999 of 1000", rfc: "9110 §14.1.2 last-pos clamped" },
            Row { method: get(), headers: &[("range", "bytes=-100")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(900, 999)]), reason: "206: bytes 900-999 of 1000", rfc: "9110 §14.1.2 suffix-range" },
            Row { method: get(), headers: &[("range", "bytes=-2000")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 999)]), reason: "206: bytes 0-999 of 1000", rfc: "9110 §14.1.2 suffix longer than representation" },
            Row { method: get(), headers: &[("range", "BYTES=0-9")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 9)]), reason: "206: bytes 0-9 of 1000", rfc: "9110 §14.1 unit case-insensitive" },
            Row { method: get(), headers: &[("range", "bytes=0-99999999999999999999999")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 999)]), reason: "206: bytes 0-999 of 1000", rfc: "9110 §14.1.2 huge last-pos" },
            // Multiple ranges, coalescing.
            Row { method: get(), headers: &[("range", "bytes=0-99,200-299")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 99), (200, 299)]), reason: "206: bytes 0-99, 200-299 of 1000", rfc: "9110 §14.1.2 multiple" },
            Row { method: get(), headers: &[("range", "bytes=200-299, 0-99")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 99), (200, 299)]), reason: "206: bytes 0-99, 200-299 of 1000", rfc: "9110 §14.2 ascending order" },
            Row { method: get(), headers: &[("range", "bytes=0-99,50-149")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 149)]), reason: "206: bytes 0-149 of 1000 (coalesced from 2)", rfc: "9110 §15.3.7.2 overlapping coalesced" },
            Row { method: get(), headers: &[("range", "bytes=0-99,100-199")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 199)]), reason: "206: bytes 0-199 of 1000 (coalesced from 2)", rfc: "9110 §15.3.7.2 adjacent coalesced" },
            Row { method: get(), headers: &[("range", "bytes=0-9,-995,20-")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 999)]), reason: "206: bytes 0-999 of 1000 (coalesced from 3)", rfc: "9110 §15.3.7.2 all merge" },
            Row { method: get(), headers: &[("range", "bytes=, 0-9 ,, 20-29 ,")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 9), (20, 29)]), reason: "206: bytes 0-9, 20-29 of 1000", rfc: "9110 §5.6.1 empty list elements" },
            Row { method: get(), headers: &[("range", "bytes=5000-,0-9")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 9)]), reason: "206: bytes 0-9 of 1000", rfc: "9110 §14.1.1 unsatisfiable specs dropped" },
            // Unsatisfiable.
            Row { method: get(), headers: &[("range", "bytes=5000-")], len: 1000, weak_etag: false,
                want: Want::Unsatisfiable, reason: "416: no satisfiable range in bytes=5000- (length 1000)", rfc: "9110 §14.1.1 first-pos >= length" },
            Row { method: get(), headers: &[("range", "bytes=1000-1000")], len: 1000, weak_etag: false,
                want: Want::Unsatisfiable, reason: "416: no satisfiable range in bytes=1000-1000 (length 1000)", rfc: "9110 §14.1.2 first-pos == length" },
            Row { method: get(), headers: &[("range", "bytes=-0")], len: 1000, weak_etag: false,
                want: Want::Unsatisfiable, reason: "416: no satisfiable range in bytes=-0 (length 1000)", rfc: "9110 §14.1.2 zero suffix-length" },
            Row { method: get(), headers: &[("range", "bytes=99999999999999999999999-")], len: 1000, weak_etag: false,
                want: Want::Unsatisfiable, reason: "416: no satisfiable range in bytes=99999999999999999999999- (length 1000)", rfc: "9110 §14.1.2 huge first-pos" },
            Row { method: get(), headers: &[("range", "bytes=0-")], len: 0, weak_etag: false,
                want: Want::Unsatisfiable, reason: "416: no satisfiable range in bytes=0- (length 0)", rfc: "9110 §14.1.2 zero length" },
            Row { method: get(), headers: &[("range", "bytes=-5")], len: 0, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: representation is empty", rfc: "9110 §14.1.2 zero length, non-zero suffix" },
            // Ignored: invalid syntax or unit.
            Row { method: get(), headers: &[("range", "bytes=9-0")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: invalid ranges-specifier bytes=9-0", rfc: "9110 §14.1.1 last-pos < first-pos" },
            Row { method: get(), headers: &[("range", "bytes=0-9,abc")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: invalid ranges-specifier bytes=0-9,abc", rfc: "9110 §14.1.1 one invalid spec" },
            Row { method: get(), headers: &[("range", "bytes=0-9x")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: invalid ranges-specifier bytes=0-9x", rfc: "9110 §14.1.2 digits only" },
            Row { method: get(), headers: &[("range", "bytes=--5")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: invalid ranges-specifier bytes=--5", rfc: "9110 §14.1.2" },
            Row { method: get(), headers: &[("range", "bytes=")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: invalid ranges-specifier bytes=", rfc: "9110 §14.1.1 1#range-spec" },
            Row { method: get(), headers: &[("range", "bytes = 0-9")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: invalid ranges-specifier bytes = 0-9", rfc: "9110 §14.1.1 no OWS around =" },
            Row { method: get(), headers: &[("range", "0-9")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: invalid ranges-specifier 0-9", rfc: "9110 §14.1.1 unit required" },
            Row { method: get(), headers: &[("range", "items=0-9")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: unsupported range unit items", rfc: "9110 §14.2 unknown unit" },
            Row { method: get(), headers: &[("range", "bytes=0-1"), ("range", "bytes=2-3")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: more than one Range field", rfc: "9110 §14.2 one ranges-specifier" },
            // Method and presence.
            Row { method: get(), headers: &[], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: no Range", rfc: "9110 §14.2" },
            Row { method: Method::HEAD, headers: &[("range", "bytes=0-9")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored for HEAD", rfc: "9110 §14.2 GET only" },
            Row { method: Method::POST, headers: &[("range", "bytes=0-9")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored for POST", rfc: "9110 §14.2 GET only" },
            // If-Range.
            Row { method: get(), headers: &[("range", "bytes=0-9"), ("if-range", "\"v2\"")], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 9)]), reason: "206: bytes 0-9 of 1000, If-Range \"v2\" matched current ETag", rfc: "9110 §13.1.5 strong match" },
            Row { method: get(), headers: &[("range", "bytes=0-9"), ("if-range", "\"v1\"")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: If-Range \"v1\" does not match current ETag \"v2\"", rfc: "9110 §13.1.5 mismatch" },
            Row { method: get(), headers: &[("range", "bytes=0-9"), ("if-range", "W/\"v2\"")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: If-Range W/\"v2\" does not match current ETag \"v2\" (strong comparison)", rfc: "9110 §13.1.5 weak tag never matches" },
            Row { method: get(), headers: &[("range", "bytes=0-9"), ("if-range", "\"v2\"")], len: 1000, weak_etag: true,
                want: Want::Full, reason: "200: Range ignored: If-Range \"v2\" does not match current ETag W/\"v2\" (strong comparison)", rfc: "9110 §13.1.5 weak current ETag never matches" },
            Row { method: get(), headers: &[("range", "bytes=0-9"), ("if-range", D_EQ)], len: 1000, weak_etag: false,
                want: Want::Partial(&[(0, 9)]), reason: "206: bytes 0-9 of 1000, If-Range Sun, 06 Nov 1994 08:49:37 GMT matched Last-Modified", rfc: "9110 §13.1.5 exact date" },
            Row { method: get(), headers: &[("range", "bytes=0-9"), ("if-range", D_AFTER)], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: If-Range Sun, 06 Nov 1994 08:49:38 GMT does not match Last-Modified Sun, 06 Nov 1994 08:49:37 GMT", rfc: "9110 §13.1.5 later date is not a match" },
            Row { method: get(), headers: &[("range", "bytes=0-9"), ("if-range", D_BEFORE)], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: If-Range Sun, 06 Nov 1994 08:49:36 GMT does not match Last-Modified Sun, 06 Nov 1994 08:49:37 GMT", rfc: "9110 §13.1.5 earlier date" },
            Row { method: get(), headers: &[("range", "bytes=0-9"), ("if-range", "tomorrow")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: If-Range tomorrow is neither an entity-tag nor an HTTP-date", rfc: "9110 §13.1.5 step 3 otherwise false" },
            Row { method: get(), headers: &[("range", "bytes=0-9"), ("if-range", "\"v2")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: If-Range \"v2 is malformed", rfc: "9110 §13.1.5 malformed tag" },
            Row { method: get(), headers: &[("if-range", "\"v2\"")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: no Range (If-Range ignored)", rfc: "9110 §13.1.5 If-Range without Range" },
            Row { method: get(), headers: &[("range", "bytes=5000-"), ("if-range", "\"v1\"")], len: 1000, weak_etag: false,
                want: Want::Full, reason: "200: Range ignored: If-Range \"v1\" does not match current ETag \"v2\"", rfc: "9110 §13.1.5 failed If-Range wins over 416" },
        ];
        for row in &rows {
            check(row);
        }
    }

    struct LimitRow {
        ranges: usize,
        max: usize,
        want_full: bool,
        rfc: &'static str,
    }

    fn check_limit(row: &LimitRow) {
        // `ranges` disjoint two-byte ranges: 0-0, 2-2, 4-4, ...
        let spec: Vec<String> = (0..row.ranges)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect();
        let mut h = HeaderMap::new();
        h.insert(
            header::RANGE,
            HeaderValue::from_str(&format!("bytes={}", spec.join(","))).expect("range value"),
        );
        let tag = EntityTag::strong("v2");
        let v = Validators {
            etag: Some(&tag),
            last_modified: None,
        };
        let d = evaluate(
            &Method::GET,
            &h,
            1_000_000,
            &v,
            &RangeLimits {
                max_ranges: row.max,
            },
        );
        if row.want_full {
            assert_eq!(d.kind, RangeKind::Full, "{}", row.rfc);
            assert_eq!(
                d.to_string(),
                format!(
                    "200: Range ignored as abusive: {} ranges exceed the limit of {}",
                    row.ranges, row.max
                ),
                "{}",
                row.rfc
            );
        } else {
            assert_eq!(d.ranges().len(), row.ranges, "{}", row.rfc);
        }
    }

    #[test]
    fn abusive_range_counts() {
        let rows = [
            LimitRow {
                ranges: 100,
                max: 100,
                want_full: false,
                rfc: "9110 §17.15 at the limit",
            },
            LimitRow {
                ranges: 101,
                max: 100,
                want_full: true,
                rfc: "9110 §17.15 over the limit",
            },
            LimitRow {
                ranges: 2,
                max: 1,
                want_full: true,
                rfc: "9110 §17.15 custom limit",
            },
        ];
        for row in &rows {
            check_limit(row);
        }
        assert_eq!(RangeLimits::default().max_ranges, 100);
    }

    struct ParseRow {
        input: &'static str,
        want: Result<&'static [RangeSpec], RangeParseError>,
        rfc: &'static str,
    }

    fn check_parse(row: &ParseRow) {
        let got = parse_range(row.input);
        let want = row.want.clone().map(<[RangeSpec]>::to_vec);
        assert_eq!(got, want, "{:?} ({})", row.input, row.rfc);
    }

    #[test]
    fn parse_ranges_specifier() {
        use RangeSpec::*;
        let rows = [
            ParseRow {
                input: "bytes=0-499",
                want: Ok(&[Int {
                    first: 0,
                    last: Some(499),
                }]),
                rfc: "9110 §14.1.2 example",
            },
            ParseRow {
                input: "bytes=9500-",
                want: Ok(&[Int {
                    first: 9500,
                    last: None,
                }]),
                rfc: "9110 §14.1.2 example",
            },
            ParseRow {
                input: "bytes=-500",
                want: Ok(&[Suffix(500)]),
                rfc: "9110 §14.1.2 example",
            },
            ParseRow {
                input: "bytes=500-600,601-999",
                want: Ok(&[
                    Int {
                        first: 500,
                        last: Some(600),
                    },
                    Int {
                        first: 601,
                        last: Some(999),
                    },
                ]),
                rfc: "9110 §14.1.2 example",
            },
            ParseRow {
                input: "Bytes=0-1",
                want: Ok(&[Int {
                    first: 0,
                    last: Some(1),
                }]),
                rfc: "9110 §14.1 case-insensitive unit",
            },
            ParseRow {
                input: "pages=1-2",
                want: Err(RangeParseError::UnknownUnit("pages".into())),
                rfc: "9110 §14.1 other unit",
            },
            ParseRow {
                input: "bytes=1-0",
                want: Err(RangeParseError::Invalid),
                rfc: "9110 §14.1.1",
            },
            ParseRow {
                input: "bytes=1",
                want: Err(RangeParseError::Invalid),
                rfc: "9110 §14.1.2 dash required",
            },
            ParseRow {
                input: "bytes=-",
                want: Err(RangeParseError::Invalid),
                rfc: "9110 §14.1.2 suffix-length required",
            },
            ParseRow {
                input: "bytes=+1-2",
                want: Err(RangeParseError::Invalid),
                rfc: "9110 §14.1.2 DIGIT only",
            },
            ParseRow {
                input: "=0-1",
                want: Err(RangeParseError::Invalid),
                rfc: "9110 §14.1 token unit",
            },
            ParseRow {
                input: "bytes=,",
                want: Err(RangeParseError::Invalid),
                rfc: "9110 §14.1.1 at least one spec",
            },
        ];
        for row in &rows {
            check_parse(row);
        }
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(&r(0, 99), 1000), "bytes 0-99/1000");
        assert_eq!(content_range(&r(999, 999), 1000), "bytes 999-999/1000");
        assert_eq!(unsatisfied_range(1000), "bytes */1000");
        assert_eq!(unsatisfied_range(0), "bytes */0");
        assert_eq!(r(0, 99).len(), 100);
        assert_eq!(r(5, 5).len(), 1);
        assert_eq!(r(0, u64::MAX - 1).len(), u64::MAX);
    }

    #[test]
    fn multipart_frames_each_range_and_closes_the_boundary() {
        // RFC 9110 §14.6: each part has its Content-Type and Content-Range.
        let pieces = multipart(&[r(0, 1), r(5, 9)], 10, "B", "text/plain");
        let mut text = String::new();
        for p in &pieces {
            match p {
                Piece::Text(t) => text.push_str(t),
                Piece::Range(r) => text.push_str(&format!("<{}-{}>", r.start, r.end)),
            }
        }
        assert_eq!(
            text,
            "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n<0-1>\r\n\
             --B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-9/10\r\n\r\n<5-9>\r\n\
             --B--\r\n"
        );
        assert_eq!(multipart_type("B"), "multipart/byteranges; boundary=B");
    }
}
