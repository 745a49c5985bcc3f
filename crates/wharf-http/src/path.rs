//! Request-path sanitisation: the gate between a URI path and the file system.
//!
//! Security critical. Exists so that no request can name a file outside the site root:
//! every path is decoded once, here, and anything that could be read as a traversal, a
//! second separator or a string terminator is rejected with 400 rather than
//! "normalised" into something the client did not say. Owns the path rules wharf
//! applies on top of RFC 3986 §3.3 (path segments), §2.1 and §2.4 (percent-encoding,
//! decoded exactly once). RFC 3986 §6.2.2.3: "The complete path segments "." and ".."
//! are intended only for use within relative references ... and are removed as part
//! of the reference resolution process" — a client sends a resolved target, so any
//! dot-segment that remains is refused rather than resolved.
//!
//! A [`SafePath`] holds decoded segments that are each non-empty, not `.` or `..`,
//! free of `/`, `\`, NUL and every other control character, and valid UTF-8, so
//! [`SafePath::to_relative_path`] can only name something beneath the directory it is
//! joined to (on Unix; wharf does not target Windows, where drive prefixes and
//! reserved names would need more rules).
//!
//! Names that are not percent-encoded (FTP arguments, directory entries) go through
//! the same rules with [`from_names`], so FTP, HTTP and directory listings refuse
//! exactly the same names.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use http::StatusCode;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::util::{ByteSet, UNRESERVED_OR_SUB_DELIM};

/// Why a request path was refused. Every variant maps to 400 (Bad Request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    InvalidPercentEncoding,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// A `.` or `..` segment, literal or encoded (`%2e%2e`).
    DotSegment,
    /// An encoded separator, `%2F` or `%5C`, inside a segment.
    EncodedSeparator,
    /// A literal backslash.
    Backslash,
    /// A NUL byte, literal or `%00`.
    Nul,
    /// Another control character (C0, DEL or C1), literal or encoded.
    ControlChar,
}

impl PathError {
    /// Always 400 (Bad Request).
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

impl PathError {
    /// The rule broken, without the status: `path has a NUL byte`.
    pub fn reason(&self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path does not start with /",
            PathError::InvalidPercentEncoding => "path has an invalid percent-encoding",
            PathError::NotUtf8 => "path does not decode to UTF-8",
            PathError::DotSegment => "path has a . or .. segment",
            PathError::EncodedSeparator => "path has an encoded / or \\",
            PathError::Backslash => "path has a backslash",
            PathError::Nul => "path has a NUL byte",
            PathError::ControlChar => "path has a control character",
        }
    }
}

impl fmt::Display for PathError {
    /// `400: ...`; names the rule, never the path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "400: {}", self.reason())
    }
}

impl std::error::Error for PathError {}

/// A sanitised request path: decoded segments safe to join beneath a root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SafePath {
    /// The decoded segments, each after a `/` (`/a/b`; empty for the root): one
    /// allocation per path, and its relative form a borrow of it.
    joined: String,
    trailing_slash: bool,
}

impl SafePath {
    /// The decoded, non-empty segments (`/a//b/` → `a`, `b`).
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + Clone + '_ {
        self.joined.split('/').filter(|s| !s.is_empty())
    }

    /// The last segment (`None` for the root).
    pub fn last(&self) -> Option<&str> {
        self.joined.rsplit_once('/').map(|(_, name)| name)
    }

    /// The path without its last segment, and that segment (`None` for the root).
    pub fn split_last(&self) -> Option<(SafePath, &str)> {
        let (parent, name) = self.joined.rsplit_once('/')?;
        let parent = SafePath {
            joined: parent.to_owned(),
            trailing_slash: parent.is_empty(),
        };
        Some((parent, name))
    }

    /// The decoded path, `/a/b` (empty for the root), as path globs match it.
    pub fn decoded(&self) -> &str {
        &self.joined
    }

    /// Whether the path ended in `/` (always true for the root `/`).
    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// Whether this is the root (no segments).
    pub fn is_root(&self) -> bool {
        self.joined.is_empty()
    }

    /// Whether any segment starts with `.` (`.git`, `.env`, `.well-known`), for sites
    /// that hide dot-files.
    pub fn any_hidden(&self) -> bool {
        self.hidden().next().is_some()
    }

    /// The segments that start with `.`, found by looking for a `.` after a `/` in
    /// one pass over the bytes (most paths have none) rather than splitting the path.
    pub fn hidden(&self) -> impl Iterator<Item = &str> + '_ {
        let bytes = self.joined.as_bytes();
        (1..bytes.len())
            .filter(move |&i| bytes[i] == b'.' && bytes[i - 1] == b'/')
            .map(move |i| self.joined[i..].split('/').next().unwrap_or_default())
    }

    /// The segments as a relative path (empty for the root), to be joined to a site
    /// root. Cannot be absolute or climb out, by the invariants above.
    pub fn relative_path(&self) -> &Path {
        Path::new(self.joined.get(1..).unwrap_or_default())
    }

    /// The path re-encoded for use in a URI (`Location`, listing links): each segment
    /// percent-encoded, joined by `/`, with a leading `/` and the trailing slash kept.
    pub fn to_uri_path(&self) -> String {
        let mut out = String::from("/");
        for (i, s) in self.segments().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&encode_segment(s));
        }
        if self.trailing_slash && !self.is_root() {
            out.push('/');
        }
        out
    }
}

/// One path segment percent-encoded for use in a URI (a file name in a listing link).
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Characters percent-encoded in a path segment: controls, space, the delimiters that
/// would change the meaning of a URI (RFC 3986 §2.2, §3.3) and `%` itself.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Sanitises the path component of a request target (no query).
///
/// Splits on `/` (empty segments from `//` collapse), percent-decodes each segment
/// once, and rejects, per segment and in this order: a literal `\`; a malformed
/// `%` escape; a decoded NUL; a decoded `/` or `\` (an encoded separator); bytes that
/// are not UTF-8; any other control character; a `.` or `..` segment.
pub fn sanitize(raw_path: &str) -> Result<SafePath, PathError> {
    let rest = raw_path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut joined = String::with_capacity(raw_path.len());
    for raw in rest.split('/').filter(|s| !s.is_empty()) {
        push_segment(&mut joined, raw)?;
    }
    Ok(SafePath {
        joined,
        trailing_slash: raw_path.ends_with('/'),
    })
}

/// A path from names as they are on disk or in an FTP command (not percent-encoded),
/// checked by the same rules as [`sanitize`]; empty names are skipped, as `//` is.
pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<SafePath, PathError> {
    let mut joined = String::new();
    for name in names.into_iter().filter(|n| !n.is_empty()) {
        push_segment(&mut joined, &name.replace('%', "%25"))?;
    }
    Ok(SafePath {
        trailing_slash: joined.is_empty(),
        joined,
    })
}

/// Whether a directory entry's name is one a request could name (listings leave the
/// others out).
pub fn is_nameable(name: &str) -> bool {
    !name.is_empty() && from_names([name]).is_ok()
}

/// RFC 3986 §3.3 `pchar` save percent-encodings: what most segments are made of.
const PLAIN_PCHAR: ByteSet = UNRESERVED_OR_SUB_DELIM.with(b":@");

/// Checks one raw segment and appends it, decoded, after a `/` to `joined`.
fn push_segment(joined: &mut String, raw: &str) -> Result<(), PathError> {
    // The common case in one pass: nothing to decode, and nothing any rule below
    // refuses but the dot segments.
    if raw.bytes().all(|b| PLAIN_PCHAR.contains(b)) {
        if raw == "." || raw == ".." {
            return Err(PathError::DotSegment);
        }
        joined.push('/');
        joined.push_str(raw);
        return Ok(());
    }
    // A backslash is a separator on Windows and in many URL parsers; refuse it outright.
    if raw.contains('\\') {
        return Err(PathError::Backslash);
    }
    // `percent_decode_str` passes malformed escapes through; check them first.
    let bytes = raw.as_bytes();
    for (i, _) in bytes.iter().enumerate().filter(|&(_, &b)| b == b'%') {
        let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !hex(i + 1) || !hex(i + 2) {
            return Err(PathError::InvalidPercentEncoding);
        }
    }
    // Borrowed when there is nothing to decode.
    let decoded: Cow<'_, [u8]> = percent_decode_str(raw).into();
    if decoded.contains(&0) {
        return Err(PathError::Nul);
    }
    // The raw segment has no `/` (we split on it) and no `\` (checked), so a separator
    // here was encoded.
    if decoded.iter().any(|&b| b == b'/' || b == b'\\') {
        return Err(PathError::EncodedSeparator);
    }
    let decoded = std::str::from_utf8(&decoded).map_err(|_| PathError::NotUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    if decoded == "." || decoded == ".." {
        return Err(PathError::DotSegment);
    }
    joined.push('/');
    joined.push_str(decoded);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row {
        input: &'static str,
        want: Result<(&'static [&'static str], bool), PathError>,
        why: &'static str,
    }

    fn check(row: &Row) {
        let got = sanitize(row.input);
        match row.want {
            Ok((segments, trailing)) => {
                let p =
                    got.unwrap_or_else(|e| panic!("{:?} ({}) refused: {e}", row.input, row.why));
                let got: Vec<&str> = p.segments().collect();
                assert_eq!(got, segments, "{:?} ({})", row.input, row.why);
                assert_eq!(p.last(), segments.last().copied(), "{:?}", row.input);
                assert_eq!(
                    p.has_trailing_slash(),
                    trailing,
                    "{:?} trailing slash ({})",
                    row.input,
                    row.why
                );
                assert_eq!(
                    p.is_root(),
                    segments.is_empty(),
                    "{:?} root ({})",
                    row.input,
                    row.why
                );
            }
            Err(e) => assert_eq!(got, Err(e), "{:?} ({})", row.input, row.why),
        }
    }

    #[test]
    fn sanitisation() {
        use PathError::*;
        let rows = [
            // Accepted.
            Row {
                input: "/",
                want: Ok((&[], true)),
                why: "root",
            },
            Row {
                input: "/index.html",
                want: Ok((&["index.html"], false)),
                why: "file",
            },
            Row {
                input: "/a/b/",
                want: Ok((&["a", "b"], true)),
                why: "directory",
            },
            Row {
                input: "//a//b/",
                want: Ok((&["a", "b"], true)),
                why: "empty segments collapse",
            },
            Row {
                input: "//",
                want: Ok((&[], true)),
                why: "root with empty segments",
            },
            Row {
                input: "/caf%C3%A9",
                want: Ok((&["caf\u{e9}"], false)),
                why: "RFC 3986 §2.1 UTF-8 escape",
            },
            Row {
                input: "/a%20b",
                want: Ok((&["a b"], false)),
                why: "RFC 3986 §2.1 space",
            },
            Row {
                input: "/100%25",
                want: Ok((&["100%"], false)),
                why: "RFC 3986 §2.4 encoded %",
            },
            Row {
                input: "/%252e%252e",
                want: Ok((&["%2e%2e"], false)),
                why: "decoded exactly once",
            },
            Row {
                input: "/.well-known/x",
                want: Ok((&[".well-known", "x"], false)),
                why: "hidden, not a dot segment",
            },
            Row {
                input: "/...",
                want: Ok((&["..."], false)),
                why: "three dots is a name",
            },
            Row {
                input: "/a..b/..c",
                want: Ok((&["a..b", "..c"], false)),
                why: "dots inside names",
            },
            Row {
                input: "/a?b#c",
                want: Ok((&["a?b#c"], false)),
                why: "no query here; literal chars",
            },
            // Traversal.
            Row {
                input: "/../etc/passwd",
                want: Err(DotSegment),
                why: "RFC 3986 §3.3 dot-segment",
            },
            Row {
                input: "/a/..",
                want: Err(DotSegment),
                why: "trailing ..",
            },
            Row {
                input: "/a/./b",
                want: Err(DotSegment),
                why: "single dot",
            },
            Row {
                input: "/.",
                want: Err(DotSegment),
                why: "single dot alone",
            },
            Row {
                input: "/%2e%2e/",
                want: Err(DotSegment),
                why: "encoded ..",
            },
            Row {
                input: "/a/%2E./b",
                want: Err(DotSegment),
                why: "mixed encoded ..",
            },
            Row {
                input: "/a/.%2E/b",
                want: Err(DotSegment),
                why: "mixed encoded ..",
            },
            Row {
                input: "/%2e",
                want: Err(DotSegment),
                why: "encoded .",
            },
            Row {
                input: "/%c0%ae%c0%ae/",
                want: Err(NotUtf8),
                why: "overlong UTF-8 dot",
            },
            // Separators.
            Row {
                input: "/a%2fb",
                want: Err(EncodedSeparator),
                why: "encoded /",
            },
            Row {
                input: "/a%2F..%2Fb",
                want: Err(EncodedSeparator),
                why: "encoded / hiding ..",
            },
            Row {
                input: "/a%5cb",
                want: Err(EncodedSeparator),
                why: "encoded \\",
            },
            Row {
                input: "/a\\b",
                want: Err(Backslash),
                why: "literal \\",
            },
            Row {
                input: "/..\\..\\x",
                want: Err(Backslash),
                why: "Windows traversal",
            },
            // NUL and controls.
            Row {
                input: "/a%00",
                want: Err(Nul),
                why: "encoded NUL",
            },
            Row {
                input: "/a\0b",
                want: Err(Nul),
                why: "literal NUL",
            },
            Row {
                input: "/a%0a",
                want: Err(ControlChar),
                why: "encoded LF",
            },
            Row {
                input: "/a\tb",
                want: Err(ControlChar),
                why: "literal TAB",
            },
            Row {
                input: "/%7f",
                want: Err(ControlChar),
                why: "DEL",
            },
            Row {
                input: "/%c2%85",
                want: Err(ControlChar),
                why: "C1 control NEL",
            },
            // Encoding errors.
            Row {
                input: "/%ff",
                want: Err(NotUtf8),
                why: "not UTF-8",
            },
            Row {
                input: "/a%",
                want: Err(InvalidPercentEncoding),
                why: "RFC 3986 §2.1 truncated",
            },
            Row {
                input: "/a%2",
                want: Err(InvalidPercentEncoding),
                why: "RFC 3986 §2.1 one digit",
            },
            Row {
                input: "/a%zz",
                want: Err(InvalidPercentEncoding),
                why: "RFC 3986 §2.1 not hex",
            },
            // Not absolute.
            Row {
                input: "a/b",
                want: Err(NotAbsolute),
                why: "relative",
            },
            Row {
                input: "",
                want: Err(NotAbsolute),
                why: "empty",
            },
            Row {
                input: "*",
                want: Err(NotAbsolute),
                why: "asterisk-form",
            },
        ];
        for row in &rows {
            check(row);
        }
    }

    struct ViewRow {
        input: &'static str,
        relative: &'static str,
        uri: &'static str,
        hidden: bool,
    }

    fn check_view(row: &ViewRow) {
        let p = sanitize(row.input).unwrap_or_else(|e| panic!("{:?}: {e}", row.input));
        assert_eq!(
            p.relative_path(),
            Path::new(row.relative),
            "{:?}",
            row.input
        );
        assert!(p.relative_path().is_relative(), "{:?}", row.input);
        let decoded = if row.relative.is_empty() {
            String::new()
        } else {
            format!("/{}", row.relative)
        };
        assert_eq!(p.decoded(), decoded, "{:?}", row.input);
        assert_eq!(p.to_uri_path(), row.uri, "{:?}", row.input);
        assert_eq!(p.any_hidden(), row.hidden, "{:?}", row.input);
        let named: Vec<&str> = p.segments().filter(|s| s.starts_with('.')).collect();
        assert!(p.hidden().eq(named), "{:?}", row.input);
        // The URI form sanitises back to the same path.
        assert_eq!(sanitize(&p.to_uri_path()), Ok(p), "{:?}", row.input);
    }

    #[test]
    fn views() {
        let rows = [
            ViewRow {
                input: "/",
                relative: "",
                uri: "/",
                hidden: false,
            },
            ViewRow {
                input: "//a//b/",
                relative: "a/b",
                uri: "/a/b/",
                hidden: false,
            },
            ViewRow {
                input: "/caf%c3%a9/a%20b",
                relative: "caf\u{e9}/a b",
                uri: "/caf%C3%A9/a%20b",
                hidden: false,
            },
            ViewRow {
                input: "/x/%3F%23%25",
                relative: "x/?#%",
                uri: "/x/%3F%23%25",
                hidden: false,
            },
            ViewRow {
                input: "/site/.git/config",
                relative: "site/.git/config",
                uri: "/site/.git/config",
                hidden: true,
            },
        ];
        for row in &rows {
            check_view(row);
        }
    }

    #[test]
    fn errors_are_400_and_do_not_echo() {
        let e = sanitize("/secret/../../etc/passwd").expect_err("traversal");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.to_string(), "400: path has a . or .. segment");
        assert!(!e.to_string().contains("passwd"));
    }

    #[test]
    fn names_follow_the_segment_rules() {
        // Not percent-encoded: `%` is a name's own character.
        let p = from_names(["a", "", "100%.txt"]).unwrap();
        assert!(p.segments().eq(["a", "100%.txt"]));
        assert!(!p.has_trailing_slash());
        let (parent, name) = p.split_last().unwrap();
        assert_eq!((parent, name), (from_names(["a"]).unwrap(), "100%.txt"));
        let a = from_names(["a"]).unwrap();
        let (root, name) = a.split_last().unwrap();
        assert!(root.is_root() && root.has_trailing_slash() && name == "a");
        assert_eq!(from_names([]).unwrap().split_last(), None);
        assert!(from_names([]).unwrap().is_root());
        for (name, nameable) in [
            ("a b.txt", true),
            ("%2e%2e", true),
            (".hidden", true),
            ("", false),
            (".", false),
            ("..", false),
            ("a\\b", false),
            ("a\0b", false),
            ("a\u{85}b", false),
        ] {
            assert_eq!(is_nameable(name), nameable, "{name:?}");
        }
    }
}
