//! Entity tags: the opaque validators of RFC 9110 §8.8.3.
//!
//! Exists so that every place that reads or writes an `ETag`, `If-Match`,
//! `If-None-Match` or `If-Range` shares one parser and one pair of comparison
//! functions. Owns RFC 9110 §8.8.3 (syntax), §8.8.3.2 (strong and weak comparison)
//! and the list syntax of §13.1.1/§13.1.2 (`"*" / #entity-tag`).

use std::fmt;

use http::HeaderValue;

use crate::util::trim_ows;

/// An entity tag (RFC 9110 §8.8.3): an opaque string, optionally marked weak.
///
/// `tag` holds the characters between the quotes, which are `etagc`
/// (`%x21 / %x23-7E / obs-text`), so it never contains a `"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntityTag {
    weak: bool,
    tag: String,
}

/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 §8.8.3).
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

impl EntityTag {
    /// A strong entity tag.
    ///
    /// # Panics
    /// If `tag` contains a character that is not `etagc` (a `"`, a space or a control
    /// character). Server-generated tags (hex digests, sizes, times) never do; use
    /// [`EntityTag::new`] for untrusted input.
    pub fn strong(tag: impl Into<String>) -> EntityTag {
        let tag = tag.into();
        assert!(
            tag.bytes().all(is_etagc),
            "entity-tag contains a non-etagc character"
        );
        EntityTag { weak: false, tag }
    }

    /// A weak entity tag (`W/"..."`).
    ///
    /// # Panics
    /// As [`EntityTag::strong`].
    pub fn weak(tag: impl Into<String>) -> EntityTag {
        let tag = tag.into();
        assert!(
            tag.bytes().all(is_etagc),
            "entity-tag contains a non-etagc character"
        );
        EntityTag { weak: true, tag }
    }

    /// A tag from untrusted parts; `None` if `tag` has a character that is not `etagc`.
    pub fn new(weak: bool, tag: impl Into<String>) -> Option<EntityTag> {
        let tag = tag.into();
        tag.bytes().all(is_etagc).then_some(EntityTag { weak, tag })
    }

    /// Whether the tag is weak.
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque characters, without quotes or `W/`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Parses one `entity-tag = [ weak ] opaque-tag` (RFC 9110 §8.8.3), surrounding
    /// OWS allowed. The `W/` prefix is case-sensitive (`%s"W/"`).
    pub fn parse(s: &str) -> Option<EntityTag> {
        let (tag, rest) = parse_prefix(trim_ows(s).as_bytes())?;
        rest.is_empty().then_some(tag)
    }

    /// Strong comparison (RFC 9110 §8.8.3.2): both tags strong and their opaque
    /// strings identical.
    pub fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.tag == other.tag
    }

    /// Weak comparison (RFC 9110 §8.8.3.2): opaque strings identical, either or both
    /// may be weak.
    pub fn weak_eq(&self, other: &EntityTag) -> bool {
        self.tag == other.tag
    }
}

/// Parses an entity-tag at the start of `b`, returning it and the bytes after it.
fn parse_prefix(b: &[u8]) -> Option<(EntityTag, &[u8])> {
    let (weak, b) = match b.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, b),
    };
    let b = b.strip_prefix(b"\"")?;
    let end = b.iter().position(|&c| !is_etagc(c))?;
    if b[end] != b'"' {
        return None;
    }
    // obs-text that is not UTF-8 cannot be held in `String`; such a tag is treated as
    // malformed rather than silently altered.
    let tag = std::str::from_utf8(&b[..end]).ok()?.to_owned();
    Some((EntityTag { weak, tag }, &b[end + 1..]))
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.tag)
    }
}

/// The value of `If-Match` or `If-None-Match`: `"*" / #entity-tag`
/// (RFC 9110 §13.1.1, §13.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtagList {
    /// `*`: any current representation.
    Any,
    /// A (possibly empty) list of entity tags.
    Tags(Vec<EntityTag>),
}

impl EtagList {
    /// Parses all field lines of one header into a single list (RFC 9110 §5.3 lets
    /// lines be combined with commas). Empty list elements and OWS are accepted
    /// (§5.6.1).
    ///
    /// Returns `None` when there are no lines, or when any element is malformed,
    /// including `*` combined with anything else — RFC 9110 §13.1.2: "an If-None-Match
    /// header field with a list value containing "*" and other values (including other
    /// instances of "*") is syntactically invalid".
    pub fn parse_list<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Option<EtagList> {
        let mut tags = Vec::new();
        let mut stars = 0usize;
        let mut lines = 0usize;
        for value in values {
            lines += 1;
            let mut b = value.as_bytes();
            loop {
                b = skip_ows_and_commas(b);
                if b.is_empty() {
                    break;
                }
                if let Some(rest) = b.strip_prefix(b"*") {
                    stars += 1;
                    b = rest;
                } else {
                    let (tag, rest) = parse_prefix(b)?;
                    tags.push(tag);
                    b = rest;
                }
                // After an element: OWS, then a comma or the end of the line.
                b = skip_ows(b);
                if !b.is_empty() && b[0] != b',' {
                    return None;
                }
            }
        }
        match (lines, stars, tags.is_empty()) {
            (0, _, _) => None,
            (_, 0, _) => Some(EtagList::Tags(tags)),
            (_, 1, true) => Some(EtagList::Any),
            _ => None,
        }
    }
}

fn skip_ows(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
    &b[n..]
}

fn skip_ows_and_commas(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .take_while(|&&c| c == b' ' || c == b'\t' || c == b',')
        .count();
    &b[n..]
}

impl fmt::Display for EtagList {
    /// `*`, or the tags joined with `, `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtagList::Any => f.write_str("*"),
            EtagList::Tags(tags) => {
                for (i, t) in tags.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ParseRow {
        input: &'static str,
        /// `(weak, tag)` expected, or `None` for malformed.
        want: Option<(bool, &'static str)>,
        rfc: &'static str,
    }

    fn check_parse(row: &ParseRow) {
        let got = EntityTag::parse(row.input);
        let got = got.as_ref().map(|t| (t.is_weak(), t.tag()));
        assert_eq!(got, row.want, "{:?} ({})", row.input, row.rfc);
        if let Some(t) = EntityTag::parse(row.input) {
            // Display renders the canonical quoted form, which parses back.
            assert_eq!(
                EntityTag::parse(&t.to_string()),
                Some(t),
                "round trip {:?}",
                row.input
            );
        }
    }

    #[test]
    fn parse_entity_tag() {
        let rows = [
            ParseRow {
                input: "\"xyzzy\"",
                want: Some((false, "xyzzy")),
                rfc: "9110 §8.8.3",
            },
            ParseRow {
                input: "W/\"xyzzy\"",
                want: Some((true, "xyzzy")),
                rfc: "9110 §8.8.3",
            },
            ParseRow {
                input: "\"\"",
                want: Some((false, "")),
                rfc: "9110 §8.8.3 (*etagc)",
            },
            ParseRow {
                input: " \"a\"\t",
                want: Some((false, "a")),
                rfc: "9110 §5.5 OWS trimmed",
            },
            ParseRow {
                input: "\"a,b\"",
                want: Some((false, "a,b")),
                rfc: "9110 §8.8.3 comma is etagc",
            },
            ParseRow {
                input: "\"a\\\"",
                want: Some((false, "a\\")),
                rfc: "9110 §8.8.3 backslash is etagc",
            },
            ParseRow {
                input: "\"caf\u{e9}\"",
                want: Some((false, "caf\u{e9}")),
                rfc: "9110 §8.8.3 obs-text",
            },
            ParseRow {
                input: "xyzzy",
                want: None,
                rfc: "9110 §8.8.3 quotes required",
            },
            ParseRow {
                input: "w/\"a\"",
                want: None,
                rfc: "9110 §8.8.3 W/ is case-sensitive",
            },
            ParseRow {
                input: "W/ \"a\"",
                want: None,
                rfc: "9110 §8.8.3 no space after W/",
            },
            ParseRow {
                input: "\"a b\"",
                want: None,
                rfc: "9110 §8.8.3 SP is not etagc",
            },
            ParseRow {
                input: "\"a",
                want: None,
                rfc: "9110 §8.8.3 unterminated",
            },
            ParseRow {
                input: "\"a\"b",
                want: None,
                rfc: "9110 §8.8.3 trailing garbage",
            },
            ParseRow {
                input: "\"a\u{7f}\"",
                want: None,
                rfc: "9110 §8.8.3 DEL is not etagc",
            },
            ParseRow {
                input: "",
                want: None,
                rfc: "9110 §8.8.3",
            },
        ];
        for row in &rows {
            check_parse(row);
        }
    }

    struct CmpRow {
        a: EntityTag,
        b: EntityTag,
        strong: bool,
        weak: bool,
        rfc: &'static str,
    }

    fn check_cmp(row: &CmpRow) {
        assert_eq!(
            row.a.strong_eq(&row.b),
            row.strong,
            "strong {} {} ({})",
            row.a,
            row.b,
            row.rfc
        );
        assert_eq!(
            row.a.weak_eq(&row.b),
            row.weak,
            "weak {} {} ({})",
            row.a,
            row.b,
            row.rfc
        );
        // Both functions are symmetric.
        assert_eq!(
            row.b.strong_eq(&row.a),
            row.strong,
            "strong symmetric ({})",
            row.rfc
        );
        assert_eq!(
            row.b.weak_eq(&row.a),
            row.weak,
            "weak symmetric ({})",
            row.rfc
        );
    }

    #[test]
    fn comparison_table() {
        // The four rows of the table in RFC 9110 §8.8.3.2.
        let rows = [
            CmpRow {
                a: EntityTag::weak("1"),
                b: EntityTag::weak("1"),
                strong: false,
                weak: true,
                rfc: "9110 §8.8.3.2 row 1",
            },
            CmpRow {
                a: EntityTag::weak("1"),
                b: EntityTag::weak("2"),
                strong: false,
                weak: false,
                rfc: "9110 §8.8.3.2 row 2",
            },
            CmpRow {
                a: EntityTag::weak("1"),
                b: EntityTag::strong("1"),
                strong: false,
                weak: true,
                rfc: "9110 §8.8.3.2 row 3",
            },
            CmpRow {
                a: EntityTag::strong("1"),
                b: EntityTag::strong("1"),
                strong: true,
                weak: true,
                rfc: "9110 §8.8.3.2 row 4",
            },
            CmpRow {
                a: EntityTag::strong("1"),
                b: EntityTag::strong("2"),
                strong: false,
                weak: false,
                rfc: "9110 §8.8.3.2 (different strong)",
            },
        ];
        for row in &rows {
            check_cmp(row);
        }
    }

    struct ListRow {
        lines: &'static [&'static str],
        /// Expected rendering of the parsed list, or `None` for malformed.
        want: Option<&'static str>,
        rfc: &'static str,
    }

    fn check_list(row: &ListRow) {
        let values: Vec<HeaderValue> = row
            .lines
            .iter()
            .map(|l| HeaderValue::from_str(l).expect("test header value"))
            .collect();
        let got = EtagList::parse_list(&values).map(|l| l.to_string());
        assert_eq!(got.as_deref(), row.want, "{:?} ({})", row.lines, row.rfc);
    }

    #[test]
    fn parse_etag_list() {
        let rows = [
            ListRow {
                lines: &["*"],
                want: Some("*"),
                rfc: "9110 §13.1.1 \"*\"",
            },
            ListRow {
                lines: &[" * "],
                want: Some("*"),
                rfc: "9110 §5.5 OWS",
            },
            ListRow {
                lines: &["\"a\""],
                want: Some("\"a\""),
                rfc: "9110 §13.1.1 #entity-tag",
            },
            ListRow {
                lines: &["\"a\", W/\"b\""],
                want: Some("\"a\", W/\"b\""),
                rfc: "9110 §13.1.1",
            },
            ListRow {
                lines: &["\"a\",W/\"b\""],
                want: Some("\"a\", W/\"b\""),
                rfc: "9110 §5.6.1 no OWS needed",
            },
            ListRow {
                lines: &["\"a,b\""],
                want: Some("\"a,b\""),
                rfc: "9110 §8.8.3 comma inside a tag",
            },
            ListRow {
                lines: &["\"a\"", "\"b\""],
                want: Some("\"a\", \"b\""),
                rfc: "9110 §5.3 lines combine",
            },
            ListRow {
                lines: &[", \"a\" ,, "],
                want: Some("\"a\""),
                rfc: "9110 §5.6.1 empty elements",
            },
            ListRow {
                lines: &[""],
                want: Some(""),
                rfc: "9110 §5.6.1 #rule allows zero elements",
            },
            ListRow {
                lines: &["*", "*"],
                want: None,
                rfc: "9110 §13.1.2 * with another * is invalid",
            },
            ListRow {
                lines: &["*, \"a\""],
                want: None,
                rfc: "9110 §13.1.2 * with values is invalid",
            },
            ListRow {
                lines: &["\"a\"", "*"],
                want: None,
                rfc: "9110 §13.1.2 * across lines is invalid",
            },
            ListRow {
                lines: &["a"],
                want: None,
                rfc: "9110 §8.8.3 unquoted",
            },
            ListRow {
                lines: &["\"a\" \"b\""],
                want: None,
                rfc: "9110 §5.6.1 missing comma",
            },
            ListRow {
                lines: &["\"a\", b"],
                want: None,
                rfc: "9110 §8.8.3 one bad member spoils the list",
            },
            ListRow {
                lines: &[],
                want: None,
                rfc: "absent",
            },
        ];
        for row in &rows {
            check_list(row);
        }
    }

    #[test]
    fn constructors() {
        assert_eq!(EntityTag::strong("x").to_string(), "\"x\"");
        assert_eq!(EntityTag::weak("x").to_string(), "W/\"x\"");
        assert_eq!(EntityTag::new(false, "a\"b"), None);
        assert_eq!(EntityTag::new(true, "ab"), Some(EntityTag::weak("ab")));
        let bad = std::panic::catch_unwind(|| EntityTag::strong("a b"));
        assert!(bad.is_err(), "strong() must reject a space");
    }
}
