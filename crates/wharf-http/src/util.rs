//! Small parsing and rendering helpers shared by the modules: RFC 9110 §5.6 list,
//! token and quoted-string rules, and the sanitising of client-supplied text before it
//! is echoed in a reason.

use std::fmt;

use http::header::{HeaderMap, HeaderName};
use http::HeaderValue;

/// Trims optional whitespace (RFC 9110 §5.6.3: `OWS = *( SP / HTAB )`).
pub(crate) fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// A set of bytes: membership is one load (request fields are checked byte by byte).
pub(crate) struct ByteSet([bool; 256]);

impl ByteSet {
    /// ASCII letters and digits, and `others`.
    pub(crate) const fn alphanumeric_and(others: &[u8]) -> ByteSet {
        let mut set = [false; 256];
        let mut b = 0;
        while b < 256 {
            set[b] = (b as u8).is_ascii_alphanumeric();
            b += 1;
        }
        ByteSet(set).with(others)
    }

    /// This set and `others`.
    pub(crate) const fn with(self, others: &[u8]) -> ByteSet {
        let mut set = self.0;
        let mut i = 0;
        while i < others.len() {
            set[others[i] as usize] = true;
            i += 1;
        }
        ByteSet(set)
    }

    pub(crate) fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b)]
    }
}

/// RFC 3986 §2.3 unreserved characters and §2.2 sub-delims: a reg-name's bytes, and
/// the start of a path segment's.
pub(crate) const UNRESERVED_OR_SUB_DELIM: ByteSet = ByteSet::alphanumeric_and(b"-._~!$&'()*+,;=");

/// `tchar` (RFC 9110 §5.6.2).
const TCHAR: ByteSet = ByteSet::alphanumeric_and(b"!#$%&'*+-.^_`|~");

/// Whether `b` is a `tchar` (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR.contains(b)
}

/// Whether `s` is a non-empty `token` (RFC 9110 §5.6.2).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Splits `s` at every `sep` that is not inside a quoted-string (RFC 9110 §5.6.4),
/// trimming OWS from each piece. Empty pieces are kept; callers decide.
fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == sep {
            // `sep` is ASCII, so `start..i` falls on char boundaries.
            out.push(trim_ows(&s[start..i]));
            start = i + 1;
        }
    }
    out.push(trim_ows(&s[start..]));
    out
}

/// The non-empty elements of a comma-separated list (RFC 9110 §5.6.1).
///
/// RFC 9110 §5.6.1 MUST: "a recipient MUST accept empty list elements" — they are
/// skipped here, and so do not count as members.
pub(crate) fn list_elements(s: &str) -> Vec<&str> {
    split_outside_quotes(s, b',')
        .into_iter()
        .filter(|e| !e.is_empty())
        .collect()
}

/// Splits one list element into its `;`-separated parts (value first, then
/// parameters), honouring quoted-strings, each trimmed of OWS (RFC 9110 §5.6.6).
pub(crate) fn params(element: &str) -> Vec<&str> {
    split_outside_quotes(element, b';')
}

/// Decodes a directive or parameter argument that may be a token or a quoted-string
/// (RFC 9110 §5.6.4). Returns `None` for an unterminated or trailing-garbage quoted-string.
pub(crate) fn unquote(s: &str) -> Option<String> {
    let Some(rest) = s.strip_prefix('"') else {
        return Some(s.to_owned());
    };
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().is_empty().then_some(out),
            _ => out.push(c),
        }
    }
    None
}

/// Parses a `qvalue` (RFC 9110 §12.4.2) into thousandths:
/// `( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
pub(crate) fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Parses the weight parameter of an element (`q=...`, name case-insensitive per
/// RFC 9110 §12.4.2). `Ok(None)` when `param` is not a weight at all.
pub(crate) fn parse_weight(param: &str) -> Result<Option<u16>, ()> {
    let Some((name, value)) = param.split_once('=') else {
        return Ok(None);
    };
    if !trim_ows(name).eq_ignore_ascii_case("q") {
        return Ok(None);
    }
    parse_qvalue(trim_ows(value)).map(Some).ok_or(())
}

/// Renders thousandths as the shortest decimal (`1`, `0.5`, `0.125`, `0`).
pub(crate) fn fmt_q(q: u16) -> String {
    if q >= 1000 {
        return "1".to_owned();
    }
    if q == 0 {
        return "0".to_owned();
    }
    let s = format!("0.{q:03}");
    s.trim_end_matches('0').to_owned()
}

/// Parses `delta-seconds = 1*DIGIT` (RFC 9111 §1.2.2), clamping to 2^31.
///
/// RFC 9111 §1.2.2 MUST: "If a cache receives a delta-seconds value greater than the
/// greatest integer it can represent, or if any of its subsequent calculations
/// overflows, the cache MUST consider the value to be 2147483648 (2^31) or the
/// greatest positive integer it can conveniently represent." We clamp every value to
/// 2^31 so later `SystemTime` arithmetic cannot overflow.
pub(crate) fn parse_delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |v| v.min(DELTA_SECONDS_MAX)),
    )
}

/// 2^31, the delta-seconds ceiling of RFC 9111 §1.2.2.
pub(crate) const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// All field lines of `name`, as text (invalid UTF-8 replaced), joined with `, ` as
/// RFC 9110 §5.3 permits for list-based fields. `None` when the field is absent.
pub(crate) fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let text = String::from_utf8_lossy(v.as_bytes());
        match &mut out {
            None => out = Some(text.into_owned()),
            Some(s) => {
                s.push_str(", ");
                s.push_str(&text);
            }
        }
    }
    out
}

/// The only field line of `name`: `Err(n)` with the count when there is not exactly one.
pub(crate) fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<&'h HeaderValue, usize> {
    let mut it = headers.get_all(name).iter();
    match (it.next(), it.next()) {
        (Some(v), None) => Ok(v),
        (None, _) => Err(0),
        (Some(_), Some(_)) => Err(2 + it.count()),
    }
}

/// Client-supplied text made safe to quote in a one-line reason: anything outside
/// visible ASCII and space becomes `?`, and long text is cut to [`Echo::MAX`] chars.
/// Reasons end up in a response header, so they must stay within `VCHAR`/`SP`.
pub(crate) struct Echo<'a>(pub(crate) &'a str);

impl Echo<'_> {
    /// Longest echoed text, in characters.
    pub(crate) const MAX: usize = 64;
}

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        for (i, c) in self.0.chars().enumerate() {
            if i == Self::MAX {
                return f.write_str("...");
            }
            let c = if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            };
            f.write_char(c)?;
        }
        Ok(())
    }
}

/// A header map from `(name, value)` pairs, for table tests.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("test header name"),
            HeaderValue::from_str(v).expect("test header value"),
        );
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    struct QRow {
        input: &'static str,
        want: Option<u16>,
        rfc: &'static str,
    }

    fn check_q(row: &QRow) {
        assert_eq!(
            parse_qvalue(row.input),
            row.want,
            "{} ({})",
            row.input,
            row.rfc
        );
    }

    #[test]
    fn qvalue_grammar() {
        let rows = [
            QRow {
                input: "1",
                want: Some(1000),
                rfc: "9110 §12.4.2",
            },
            QRow {
                input: "1.",
                want: Some(1000),
                rfc: "9110 §12.4.2",
            },
            QRow {
                input: "1.000",
                want: Some(1000),
                rfc: "9110 §12.4.2",
            },
            QRow {
                input: "1.001",
                want: None,
                rfc: "9110 §12.4.2 (1 only with zeros)",
            },
            QRow {
                input: "0",
                want: Some(0),
                rfc: "9110 §12.4.2",
            },
            QRow {
                input: "0.5",
                want: Some(500),
                rfc: "9110 §12.4.2",
            },
            QRow {
                input: "0.125",
                want: Some(125),
                rfc: "9110 §12.4.2",
            },
            QRow {
                input: "0.1234",
                want: None,
                rfc: "9110 §12.4.2 (at most 3 digits)",
            },
            QRow {
                input: "2",
                want: None,
                rfc: "9110 §12.4.2",
            },
            QRow {
                input: ".5",
                want: None,
                rfc: "9110 §12.4.2",
            },
            QRow {
                input: "0.5x",
                want: None,
                rfc: "9110 §12.4.2",
            },
            QRow {
                input: "",
                want: None,
                rfc: "9110 §12.4.2",
            },
        ];
        for row in &rows {
            check_q(row);
        }
    }

    struct ListRow {
        input: &'static str,
        want: &'static [&'static str],
        rfc: &'static str,
    }

    fn check_list(row: &ListRow) {
        assert_eq!(
            list_elements(row.input),
            row.want,
            "{:?} ({})",
            row.input,
            row.rfc
        );
    }

    #[test]
    fn list_rule() {
        let rows = [
            ListRow {
                input: "a, b",
                want: &["a", "b"],
                rfc: "9110 §5.6.1",
            },
            ListRow {
                input: " , a ,, b ,",
                want: &["a", "b"],
                rfc: "9110 §5.6.1 empty elements",
            },
            ListRow {
                input: "a=\"x, y\", b",
                want: &["a=\"x, y\"", "b"],
                rfc: "9110 §5.6.4 quoted comma",
            },
            ListRow {
                input: "a=\"x\\\", y\", b",
                want: &["a=\"x\\\", y\"", "b"],
                rfc: "9110 §5.6.4 quoted-pair",
            },
            ListRow {
                input: "",
                want: &[],
                rfc: "9110 §5.6.1",
            },
        ];
        for row in &rows {
            check_list(row);
        }
    }

    #[test]
    fn unquote_and_echo() {
        assert_eq!(unquote("abc").as_deref(), Some("abc"));
        assert_eq!(unquote("\"a\\\"b\"").as_deref(), Some("a\"b"));
        assert_eq!(unquote("\"abc"), None);
        assert_eq!(unquote("\"a\"b"), None);
        assert_eq!(Echo("a\u{e9}\tb").to_string(), "a??b");
        let long = "x".repeat(100);
        assert_eq!(
            Echo(&long).to_string(),
            format!("{}...", "x".repeat(Echo::MAX))
        );
        assert_eq!(fmt_q(500), "0.5");
        assert_eq!(fmt_q(125), "0.125");
        assert_eq!(fmt_q(1000), "1");
        assert_eq!(fmt_q(0), "0");
        assert_eq!(
            parse_delta_seconds("99999999999999999999999"),
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(parse_delta_seconds("3000000000"), Some(DELTA_SECONDS_MAX));
        assert_eq!(parse_delta_seconds("60"), Some(60));
        assert_eq!(parse_delta_seconds("-1"), None);
        assert_eq!(parse_delta_seconds(""), None);
    }
}
