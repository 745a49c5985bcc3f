//! Conditional requests: `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
//! `If-Modified-Since` (RFC 9110 §13.1.1–§13.1.4), evaluated in the order of
//! RFC 9110 §13.2.2 steps 1–4.
//!
//! Exists so that a 304 or 412 is decided in one place, in the RFC's order, with a
//! reason that names the header values and validators that decided it. Step 5
//! (`If-Range`) belongs to [`crate::range`], which runs after this returns
//! [`Outcome::Proceed`].
//!
//! The caller's duties (RFC 9110 §13.2.1), which cannot be checked from here:
//! - call this only when a current representation exists — `*` is treated as matching
//!   it — and only when the response without the conditions would have been a 2xx
//!   ("A server MUST ignore all received preconditions if its response to the same
//!   request without those conditions, prior to processing the request content, would
//!   have been a status code other than a 2xx or 412");
//! - supply the validators of the *selected* representation (after content
//!   negotiation), since a gzip variant has its own ETag.

use std::fmt;
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};

use crate::date::{fmt_http_date, parse_http_date, truncate_to_secs};
use crate::etag::{EntityTag, EtagList};
use crate::util::Echo;

/// The validators of the selected representation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Validators<'a> {
    /// Its entity tag, if it has one.
    pub etag: Option<&'a EntityTag>,
    /// Its modification time, if it has one (any precision; compared at one second).
    pub last_modified: Option<SystemTime>,
}

/// What the caller should do after the preconditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every evaluated condition held (or none was evaluated): perform the method
    /// (and then consider `Range`).
    Proceed,
    /// Answer 304 (Not Modified).
    NotModified,
    /// Answer 412 (Precondition Failed).
    PreconditionFailed,
}

impl Outcome {
    /// The status to answer with, or `None` for [`Outcome::Proceed`].
    pub fn status(self) -> Option<StatusCode> {
        match self {
            Outcome::Proceed => None,
            Outcome::NotModified => Some(StatusCode::NOT_MODIFIED),
            Outcome::PreconditionFailed => Some(StatusCode::PRECONDITION_FAILED),
        }
    }
}

/// A conditional header field that was evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `If-Match` (§13.1.1).
    IfMatch,
    /// `If-Unmodified-Since` (§13.1.4).
    IfUnmodifiedSince,
    /// `If-None-Match` (§13.1.2).
    IfNoneMatch,
    /// `If-Modified-Since` (§13.1.3).
    IfModifiedSince,
}

/// The result of [`evaluate`]: an outcome and why.
///
/// `Display` gives the one-line reason: `304: If-None-Match "abc" matched current
/// ETag`, `412: If-Match "x" did not match current ETag "y"`. A [`Outcome::Proceed`]
/// decision has no status prefix and lists what was evaluated or ignored, or says
/// `no preconditions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreconditionDecision {
    /// What to do.
    pub outcome: Outcome,
    /// The conditions actually evaluated, in evaluation order (ignored ones are not
    /// listed). Empty when nothing was evaluated.
    pub evaluated: Vec<Condition>,
    notes: Vec<String>,
}

impl PreconditionDecision {
    fn proceed() -> PreconditionDecision {
        PreconditionDecision {
            outcome: Outcome::Proceed,
            evaluated: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Ends evaluation with `outcome`; the deciding note goes first in the reason.
    fn stop(mut self, outcome: Outcome, note: impl Into<String>) -> PreconditionDecision {
        self.outcome = outcome;
        self.notes.insert(0, note.into());
        self
    }
}

impl fmt::Display for PreconditionDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.outcome.status() {
            write!(f, "{}: ", status.as_u16())?;
        }
        if self.notes.is_empty() {
            return f.write_str("no preconditions");
        }
        for (i, n) in self.notes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n)?;
        }
        Ok(())
    }
}

/// The conditional header fields of RFC 9110 §13.1.
const CONDITIONAL: [HeaderName; 5] = [
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

/// Whether the request carries any conditional header field of RFC 9110 §13.1
/// (`If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`,
/// `If-Range`).
pub fn has_preconditions(headers: &HeaderMap) -> bool {
    // One pass over the request's few names (most carry none of these) instead of a
    // hashed lookup per conditional field.
    headers.keys().any(|name| CONDITIONAL.contains(name))
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
/// `If-Modified-Since` against the selected representation's validators, in the order
/// of RFC 9110 §13.2.2 steps 1–4.
///
/// Malformed entity-tag lists match nothing: a malformed `If-Match` fails (412) and a
/// malformed `If-None-Match` holds. Invalid dates are ignored, as the RFC requires.
pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators<'_>) -> PreconditionDecision {
    let mut d = PreconditionDecision::proceed();

    // RFC 9110 §13.2.1 MUST: "a server MUST ignore the conditional request header
    // fields defined by this specification when received with a request method that
    // does not involve the selection or modification of a selected representation,
    // such as CONNECT, OPTIONS, or TRACE."
    if matches!(*method, Method::CONNECT | Method::OPTIONS | Method::TRACE) {
        if has_preconditions(headers) {
            d.note(format!("preconditions ignored for {method}"));
        }
        return d;
    }
    let get_or_head = *method == Method::GET || *method == Method::HEAD;
    let present = |name: &HeaderName| headers.contains_key(name);

    // Step 1: If-Match.
    if present(&header::IF_MATCH) {
        d.evaluated.push(Condition::IfMatch);
        match EtagList::parse_list(headers.get_all(header::IF_MATCH)) {
            None => {
                return d.stop(
                    Outcome::PreconditionFailed,
                    "If-Match is malformed and matches nothing",
                );
            }
            // §13.1.1: "If the field value is "*", the condition is true if the origin
            // server has a current representation for the target resource."
            Some(EtagList::Any) => d.note("If-Match * matched the current representation"),
            Some(EtagList::Tags(tags)) => {
                let shown = render_tags(&tags);
                // RFC 9110 §13.1.1 MUST: "An origin server MUST use the strong comparison
                // function when comparing entity tags for If-Match".
                match v.etag {
                    Some(cur) if tags.iter().any(|t| t.strong_eq(cur)) => {
                        d.note(format!("If-Match {} matched current ETag", shown));
                    }
                    // RFC 9110 §13.1.1 MUST NOT: "An origin server that evaluates an
                    // If-Match condition MUST NOT perform the requested method if the
                    // condition evaluates to false".
                    Some(cur) => {
                        let weak_only = tags.iter().any(|t| t.weak_eq(cur));
                        return d.stop(
                            Outcome::PreconditionFailed,
                            format!(
                                "If-Match {} did not match current ETag {}{}",
                                shown,
                                Echo(&cur.to_string()),
                                if weak_only {
                                    " (strong comparison)"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                    None => {
                        return d.stop(
                            Outcome::PreconditionFailed,
                            format!("If-Match {} did not match: no current ETag", shown),
                        );
                    }
                }
            }
        }
        // RFC 9110 §13.1.4 MUST: "A recipient MUST ignore If-Unmodified-Since if the
        // request contains an If-Match header field".
        if present(&header::IF_UNMODIFIED_SINCE) {
            d.note("If-Unmodified-Since ignored: If-Match present");
        }
    } else if present(&header::IF_UNMODIFIED_SINCE) {
        // Step 2: If-Unmodified-Since.
        match (
            single_date(headers, &header::IF_UNMODIFIED_SINCE),
            v.last_modified,
        ) {
            // RFC 9110 §13.1.4 MUST: "A recipient MUST ignore the If-Unmodified-Since
            // header field if the received field value is not a valid HTTP-date
            // (including when the field value appears to be a list of dates)."
            (Err(why), _) => d.note(format!("If-Unmodified-Since ignored: {why}")),
            // RFC 9110 §13.1.4 MUST: "A recipient MUST ignore the If-Unmodified-Since
            // header field if the resource does not have a modification date available."
            (Ok(_), None) => d.note("If-Unmodified-Since ignored: no Last-Modified"),
            (Ok(since), Some(lm)) => {
                d.evaluated.push(Condition::IfUnmodifiedSince);
                let lm = truncate_to_secs(lm);
                // §13.1.4: "If the selected representation's last modification date is
                // earlier than or equal to the date provided in the field value, the
                // condition is true."
                if lm <= since {
                    d.note(format!(
                        "Last-Modified {} is not after If-Unmodified-Since {}",
                        fmt_http_date(lm),
                        fmt_http_date(since)
                    ));
                } else {
                    // RFC 9110 §13.1.4 MUST NOT: "An origin server that evaluates an
                    // If-Unmodified-Since condition MUST NOT perform the requested method
                    // if the condition evaluates to false."
                    return d.stop(
                        Outcome::PreconditionFailed,
                        format!(
                            "Last-Modified {} is after If-Unmodified-Since {}",
                            fmt_http_date(lm),
                            fmt_http_date(since)
                        ),
                    );
                }
            }
        }
    }

    // Step 3: If-None-Match.
    if present(&header::IF_NONE_MATCH) {
        d.evaluated.push(Condition::IfNoneMatch);
        // RFC 9110 §13.1.2 MUST: "the origin server MUST respond with either a) the 304
        // (Not Modified) status code if the request method is GET or HEAD or b) the 412
        // (Precondition Failed) status code for all other request methods."
        let failed = if get_or_head {
            Outcome::NotModified
        } else {
            Outcome::PreconditionFailed
        };
        match EtagList::parse_list(headers.get_all(header::IF_NONE_MATCH)) {
            None => d.note("If-None-Match is malformed and matches nothing"),
            // §13.1.2: "If the field value is "*", the condition is false if the origin
            // server has a current representation for the target resource."
            Some(EtagList::Any) => {
                return d.stop(failed, "If-None-Match * matched the current representation");
            }
            Some(EtagList::Tags(tags)) => {
                let shown = render_tags(&tags);
                // RFC 9110 §13.1.2 MUST: "A recipient MUST use the weak comparison function
                // when comparing entity tags for If-None-Match".
                match v.etag {
                    Some(cur) if tags.iter().any(|t| t.weak_eq(cur)) => {
                        return d.stop(
                            failed,
                            format!("If-None-Match {} matched current ETag", shown),
                        );
                    }
                    Some(cur) => d.note(format!(
                        "If-None-Match {} did not match current ETag {}",
                        shown,
                        Echo(&cur.to_string())
                    )),
                    None => d.note(format!(
                        "If-None-Match {} did not match: no current ETag",
                        shown
                    )),
                }
            }
        }
        // RFC 9110 §13.1.3 MUST: "A recipient MUST ignore If-Modified-Since if the
        // request contains an If-None-Match header field".
        if present(&header::IF_MODIFIED_SINCE) {
            d.note("If-Modified-Since ignored: If-None-Match present");
        }
    } else if present(&header::IF_MODIFIED_SINCE) {
        // Step 4: If-Modified-Since.
        // RFC 9110 §13.1.3 MUST: "A recipient MUST ignore the If-Modified-Since header
        // field if the received field value is not a valid HTTP-date, the field value
        // has more than one member, or if the request method is neither GET nor HEAD."
        if !get_or_head {
            d.note(format!("If-Modified-Since ignored for {method}"));
            return d;
        }
        match (
            single_date(headers, &header::IF_MODIFIED_SINCE),
            v.last_modified,
        ) {
            (Err(why), _) => d.note(format!("If-Modified-Since ignored: {why}")),
            // RFC 9110 §13.1.3 MUST: "A recipient MUST ignore the If-Modified-Since
            // header field if the resource does not have a modification date available."
            (Ok(_), None) => d.note("If-Modified-Since ignored: no Last-Modified"),
            (Ok(since), Some(lm)) => {
                d.evaluated.push(Condition::IfModifiedSince);
                let lm = truncate_to_secs(lm);
                // §13.1.3: "If the selected representation's last modification date is
                // earlier or equal to the date provided in the field value, the
                // condition is false."
                if lm <= since {
                    return d.stop(
                        Outcome::NotModified,
                        format!(
                            "Last-Modified {} is not after If-Modified-Since {}",
                            fmt_http_date(lm),
                            fmt_http_date(since)
                        ),
                    );
                }
                d.note(format!(
                    "Last-Modified {} is after If-Modified-Since {}",
                    fmt_http_date(lm),
                    fmt_http_date(since)
                ));
            }
        }
    }
    d
}

/// A received tag list as it may appear in a reason.
fn render_tags(tags: &[EntityTag]) -> String {
    let list = tags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Echo(&list).to_string()
}

/// The one HTTP-date in field `name`, or why it is unusable.
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Result<SystemTime, &'static str> {
    let value = crate::util::single(headers, name).map_err(|_| "more than one value")?;
    let text = value.to_str().map_err(|_| "not a valid HTTP-date")?;
    parse_http_date(text).ok_or("not a valid HTTP-date")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use http::HeaderValue;

    use super::*;

    /// Last-Modified of the test representation: 1994-11-06T08:49:37.500Z.
    fn lm() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(784_111_777_500)
    }
    const D_EQ: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const D_BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const D_AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    enum Tag {
        Strong,
        Weak,
        NoEtag,
    }

    struct Row {
        method: Method,
        headers: &'static [(&'static str, &'static str)],
        etag: Tag,
        has_lm: bool,
        outcome: Outcome,
        reason: &'static str,
        rfc: &'static str,
    }

    use crate::util::test_headers as headers;

    fn check(row: &Row) {
        let strong = EntityTag::strong("abc");
        let weak = EntityTag::weak("abc");
        let v = Validators {
            etag: match row.etag {
                Tag::Strong => Some(&strong),
                Tag::Weak => Some(&weak),
                Tag::NoEtag => None,
            },
            last_modified: row.has_lm.then(lm),
        };
        let d = evaluate(&row.method, &headers(row.headers), &v);
        assert_eq!(
            d.outcome, row.outcome,
            "{} {:?} ({}): {d}",
            row.method, row.headers, row.rfc
        );
        assert_eq!(
            d.to_string(),
            row.reason,
            "{} {:?} ({})",
            row.method,
            row.headers,
            row.rfc
        );
    }

    #[test]
    fn precedence_and_evaluation() {
        use Outcome::*;
        let rows = [
            // No conditions.
            Row { method: Method::GET, headers: &[], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "no preconditions", rfc: "9110 §13.2.2 step 6" },
            // Step 1: If-Match, strong comparison.
            Row { method: Method::PUT, headers: &[("if-match", "\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-Match \"abc\" matched current ETag", rfc: "9110 §13.2.2 step 1 true" },
            Row { method: Method::PUT, headers: &[("if-match", "\"x\"")], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-Match \"x\" did not match current ETag \"abc\"", rfc: "9110 §13.2.2 step 1 false" },
            Row { method: Method::PUT, headers: &[("if-match", "\"x\", \"abc\"")], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-Match \"x\", \"abc\" matched current ETag", rfc: "9110 §13.1.1 any listed tag" },
            Row { method: Method::PUT, headers: &[("if-match", "\"x\""), ("if-match", "\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-Match \"x\", \"abc\" matched current ETag", rfc: "9110 §5.3 combined lines" },
            Row { method: Method::DELETE, headers: &[("if-match", "*")], etag: Tag::NoEtag, has_lm: false, outcome: Proceed,
                reason: "If-Match * matched the current representation", rfc: "9110 §13.1.1 \"*\"" },
            Row { method: Method::PUT, headers: &[("if-match", "W/\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-Match W/\"abc\" did not match current ETag \"abc\" (strong comparison)", rfc: "9110 §13.1.1 strong comparison" },
            Row { method: Method::PUT, headers: &[("if-match", "\"abc\"")], etag: Tag::Weak, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-Match \"abc\" did not match current ETag W/\"abc\" (strong comparison)", rfc: "9110 §13.1.1 weak current never matches" },
            Row { method: Method::PUT, headers: &[("if-match", "\"abc\"")], etag: Tag::NoEtag, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-Match \"abc\" did not match: no current ETag", rfc: "9110 §13.1.1" },
            Row { method: Method::PUT, headers: &[("if-match", "abc")], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-Match is malformed and matches nothing", rfc: "9110 §13.1.1 (malformed fails closed)" },
            Row { method: Method::GET, headers: &[("if-match", "\"x\"")], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-Match \"x\" did not match current ETag \"abc\"", rfc: "9110 §13.2.2 step 1 applies to GET too" },
            // Step 2: If-Unmodified-Since, one-second precision.
            Row { method: Method::PUT, headers: &[("if-unmodified-since", D_EQ)], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is not after If-Unmodified-Since Sun, 06 Nov 1994 08:49:37 GMT",
                rfc: "9110 §13.2.2 step 2 true (equal at second precision)" },
            Row { method: Method::PUT, headers: &[("if-unmodified-since", D_AFTER)], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is not after If-Unmodified-Since Sun, 06 Nov 1994 08:49:38 GMT",
                rfc: "9110 §13.2.2 step 2 true" },
            Row { method: Method::PUT, headers: &[("if-unmodified-since", D_BEFORE)], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is after If-Unmodified-Since Sun, 06 Nov 1994 08:49:36 GMT",
                rfc: "9110 §13.2.2 step 2 false" },
            Row { method: Method::PUT, headers: &[("if-unmodified-since", "yesterday")], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-Unmodified-Since ignored: not a valid HTTP-date", rfc: "9110 §13.1.4 invalid date ignored" },
            Row { method: Method::PUT, headers: &[("if-unmodified-since", D_BEFORE), ("if-unmodified-since", D_AFTER)], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-Unmodified-Since ignored: more than one value", rfc: "9110 §13.1.4 list of dates ignored" },
            Row { method: Method::PUT, headers: &[("if-unmodified-since", D_BEFORE)], etag: Tag::Strong, has_lm: false, outcome: Proceed,
                reason: "If-Unmodified-Since ignored: no Last-Modified", rfc: "9110 §13.1.4 no modification date" },
            // If-Match beats If-Unmodified-Since.
            Row { method: Method::PUT, headers: &[("if-match", "\"abc\""), ("if-unmodified-since", D_BEFORE)], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-Match \"abc\" matched current ETag, If-Unmodified-Since ignored: If-Match present", rfc: "9110 §13.1.4 ignored with If-Match" },
            Row { method: Method::PUT, headers: &[("if-match", "\"x\""), ("if-unmodified-since", D_AFTER)], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-Match \"x\" did not match current ETag \"abc\"", rfc: "9110 §13.2.2 step 1 before step 2" },
            // Step 3: If-None-Match, weak comparison.
            Row { method: Method::GET, headers: &[("if-none-match", "\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: If-None-Match \"abc\" matched current ETag", rfc: "9110 §13.2.2 step 3 false, GET" },
            Row { method: Method::HEAD, headers: &[("if-none-match", "\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: If-None-Match \"abc\" matched current ETag", rfc: "9110 §13.2.2 step 3 false, HEAD" },
            Row { method: Method::GET, headers: &[("if-none-match", "W/\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: If-None-Match W/\"abc\" matched current ETag", rfc: "9110 §13.1.2 weak comparison" },
            Row { method: Method::GET, headers: &[("if-none-match", "\"abc\"")], etag: Tag::Weak, has_lm: true, outcome: NotModified,
                reason: "304: If-None-Match \"abc\" matched current ETag", rfc: "9110 §13.1.2 weak current ETag" },
            Row { method: Method::POST, headers: &[("if-none-match", "\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-None-Match \"abc\" matched current ETag", rfc: "9110 §13.2.2 step 3 false, other methods" },
            Row { method: Method::GET, headers: &[("if-none-match", "\"x\"")], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-None-Match \"x\" did not match current ETag \"abc\"", rfc: "9110 §13.2.2 step 3 true" },
            Row { method: Method::GET, headers: &[("if-none-match", "\"x\"")], etag: Tag::NoEtag, has_lm: true, outcome: Proceed,
                reason: "If-None-Match \"x\" did not match: no current ETag", rfc: "9110 §13.1.2" },
            Row { method: Method::GET, headers: &[("if-none-match", "*")], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: If-None-Match * matched the current representation", rfc: "9110 §13.1.2 \"*\"" },
            Row { method: Method::PUT, headers: &[("if-none-match", "*")], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-None-Match * matched the current representation", rfc: "9110 §13.1.2 \"*\" on PUT" },
            Row { method: Method::GET, headers: &[("if-none-match", "abc")], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-None-Match is malformed and matches nothing", rfc: "9110 §13.1.2 (malformed matches nothing)" },
            // If-None-Match beats If-Modified-Since.
            Row { method: Method::GET, headers: &[("if-none-match", "\"x\""), ("if-modified-since", D_AFTER)], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-None-Match \"x\" did not match current ETag \"abc\", If-Modified-Since ignored: If-None-Match present",
                rfc: "9110 §13.1.3 ignored with If-None-Match" },
            Row { method: Method::GET, headers: &[("if-none-match", "\"abc\""), ("if-modified-since", D_BEFORE)], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: If-None-Match \"abc\" matched current ETag", rfc: "9110 §13.2.2 step 3 before step 4" },
            // Step 4: If-Modified-Since (GET/HEAD only).
            Row { method: Method::GET, headers: &[("if-modified-since", D_EQ)], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is not after If-Modified-Since Sun, 06 Nov 1994 08:49:37 GMT",
                rfc: "9110 §13.2.2 step 4 false (equal at second precision)" },
            Row { method: Method::HEAD, headers: &[("if-modified-since", D_AFTER)], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is not after If-Modified-Since Sun, 06 Nov 1994 08:49:38 GMT",
                rfc: "9110 §13.2.2 step 4 false" },
            Row { method: Method::GET, headers: &[("if-modified-since", D_BEFORE)], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is after If-Modified-Since Sun, 06 Nov 1994 08:49:36 GMT",
                rfc: "9110 §13.2.2 step 4 true" },
            Row { method: Method::GET, headers: &[("if-modified-since", "Sunday, 06-Nov-94 08:49:37 GMT")], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is not after If-Modified-Since Sun, 06 Nov 1994 08:49:37 GMT",
                rfc: "9110 §5.6.7 RFC 850 date accepted" },
            Row { method: Method::GET, headers: &[("if-modified-since", "Sun Nov  6 08:49:37 1994")], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is not after If-Modified-Since Sun, 06 Nov 1994 08:49:37 GMT",
                rfc: "9110 §5.6.7 asctime accepted" },
            Row { method: Method::POST, headers: &[("if-modified-since", D_AFTER)], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-Modified-Since ignored for POST", rfc: "9110 §13.1.3 only GET or HEAD" },
            Row { method: Method::GET, headers: &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37")], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-Modified-Since ignored: not a valid HTTP-date", rfc: "9110 §13.1.3 invalid date ignored" },
            Row { method: Method::GET, headers: &[("if-modified-since", D_AFTER), ("if-modified-since", D_AFTER)], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "If-Modified-Since ignored: more than one value", rfc: "9110 §13.1.3 more than one member" },
            Row { method: Method::GET, headers: &[("if-modified-since", D_AFTER)], etag: Tag::Strong, has_lm: false, outcome: Proceed,
                reason: "If-Modified-Since ignored: no Last-Modified", rfc: "9110 §13.1.3 no modification date" },
            // Ordering across steps.
            Row { method: Method::GET, headers: &[("if-match", "\"abc\""), ("if-none-match", "\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: If-None-Match \"abc\" matched current ETag, If-Match \"abc\" matched current ETag", rfc: "9110 §13.2.2 step 1 true then step 3" },
            Row { method: Method::GET, headers: &[("if-match", "\"x\""), ("if-none-match", "\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: If-Match \"x\" did not match current ETag \"abc\"", rfc: "9110 §13.2.2 step 1 first" },
            Row { method: Method::GET, headers: &[("if-unmodified-since", D_BEFORE), ("if-none-match", "\"abc\"")], etag: Tag::Strong, has_lm: true, outcome: PreconditionFailed,
                reason: "412: Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is after If-Unmodified-Since Sun, 06 Nov 1994 08:49:36 GMT",
                rfc: "9110 §13.2.2 step 2 before step 3" },
            Row { method: Method::GET, headers: &[("if-unmodified-since", D_AFTER), ("if-modified-since", D_EQ)], etag: Tag::Strong, has_lm: true, outcome: NotModified,
                reason: "304: Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is not after If-Modified-Since Sun, 06 Nov 1994 08:49:37 GMT, \
                         Last-Modified Sun, 06 Nov 1994 08:49:37 GMT is not after If-Unmodified-Since Sun, 06 Nov 1994 08:49:38 GMT",
                rfc: "9110 §13.2.2 step 2 true then step 4" },
            // Methods that select no representation.
            Row { method: Method::OPTIONS, headers: &[("if-match", "\"x\"")], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "preconditions ignored for OPTIONS", rfc: "9110 §13.2.1 OPTIONS" },
            Row { method: Method::TRACE, headers: &[("if-none-match", "*")], etag: Tag::Strong, has_lm: true, outcome: Proceed,
                reason: "preconditions ignored for TRACE", rfc: "9110 §13.2.1 TRACE" },
        ];
        for row in &rows {
            check(row);
        }
    }

    #[test]
    fn evaluated_conditions_are_listed_in_order() {
        let strong = EntityTag::strong("abc");
        let v = Validators {
            etag: Some(&strong),
            last_modified: Some(lm()),
        };
        let h = headers(&[
            ("if-match", "\"abc\""),
            ("if-unmodified-since", D_EQ),
            ("if-none-match", "\"x\""),
            ("if-modified-since", D_EQ),
        ]);
        let d = evaluate(&Method::GET, &h, &v);
        // IUS and IMS are ignored (§13.1.4, §13.1.3), so only the ETag conditions count.
        assert_eq!(
            d.evaluated,
            vec![Condition::IfMatch, Condition::IfNoneMatch]
        );
        let h = headers(&[
            ("if-unmodified-since", D_EQ),
            ("if-modified-since", D_BEFORE),
        ]);
        let d = evaluate(&Method::GET, &h, &v);
        assert_eq!(
            d.evaluated,
            vec![Condition::IfUnmodifiedSince, Condition::IfModifiedSince]
        );
        assert!(evaluate(&Method::GET, &HeaderMap::new(), &v)
            .evaluated
            .is_empty());
    }

    #[test]
    fn reasons_are_sanitised() {
        // A hostile tag cannot smuggle non-ASCII into the Wharf-Explain header.
        let strong = EntityTag::strong("abc");
        let v = Validators {
            etag: Some(&strong),
            last_modified: None,
        };
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_bytes(b"\"caf\xc3\xa9\"").expect("obs-text value"),
        );
        let d = evaluate(&Method::GET, &h, &v);
        assert_eq!(
            d.to_string(),
            "If-None-Match \"caf?\" did not match current ETag \"abc\""
        );
        assert!(HeaderValue::from_str(&d.to_string()).is_ok());
    }

    struct HasRow {
        headers: &'static [(&'static str, &'static str)],
        want: bool,
        rfc: &'static str,
    }

    fn check_has(row: &HasRow) {
        assert_eq!(
            has_preconditions(&headers(row.headers)),
            row.want,
            "{:?} ({})",
            row.headers,
            row.rfc
        );
    }

    #[test]
    fn detects_conditional_fields() {
        let rows = [
            HasRow {
                headers: &[],
                want: false,
                rfc: "9110 §13.1",
            },
            HasRow {
                headers: &[("range", "bytes=0-1"), ("accept", "*/*")],
                want: false,
                rfc: "9110 §13.1 Range is not a precondition",
            },
            HasRow {
                headers: &[("if-match", "*")],
                want: true,
                rfc: "9110 §13.1.1",
            },
            HasRow {
                headers: &[("if-none-match", "*")],
                want: true,
                rfc: "9110 §13.1.2",
            },
            HasRow {
                headers: &[("if-modified-since", D_EQ)],
                want: true,
                rfc: "9110 §13.1.3",
            },
            HasRow {
                headers: &[("if-unmodified-since", D_EQ)],
                want: true,
                rfc: "9110 §13.1.4",
            },
            HasRow {
                headers: &[("if-range", "\"a\"")],
                want: true,
                rfc: "9110 §13.1.5",
            },
        ];
        for row in &rows {
            check_has(row);
        }
    }

    #[test]
    fn outcome_status() {
        assert_eq!(Outcome::Proceed.status(), None);
        assert_eq!(
            Outcome::NotModified.status(),
            Some(StatusCode::NOT_MODIFIED)
        );
        assert_eq!(
            Outcome::PreconditionFailed.status(),
            Some(StatusCode::PRECONDITION_FAILED)
        );
    }
}
