//! How an HTTP/1.1 message's body is delimited (RFC 9112 §6) and whether its
//! connection persists (§9.3): the parts of the rules that requests and responses
//! share.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Version};
use wharf_http::fields::has_token;
use wharf_http::forward::HopByHop;

/// How a request body is delimited on the wire (RFC 9112 §6.2, §6.3): as the server
/// reads it and as the client writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// The chunked transfer coding (§7.1).
    Chunked,
}

/// Which of the fields that decide a message's framing, persistence, expectation and
/// upgrade it carries, and which hop-by-hop fields (RFC 9110 §7.6.1), noted as
/// [`header_map`] builds the map: most requests carry none of them, and need not be
/// searched for each.
///
/// A `Connection` field that is only `close` or only `keep-alive` (what most that
/// carry one say) is noted here and left out of the map: it speaks of this connection
/// alone, which [`persists`] decides, and an intermediary would remove it before
/// anything else read the map (RFC 9110 §7.6.1); a service never sees it. (In a
/// trailer section, where it has no place, RFC 9110 §6.5.1, it is dropped.)
/// `hop_by_hop.connection` tells of the `Connection` fields that are in the map (any
/// other list of options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Present {
    /// `Content-Length`.
    pub content_length: bool,
    /// The length, when the head has one `Content-Length` field and it is one number
    /// (as most have): read without looking the field up ([`declared_length`]).
    pub length: Option<u64>,
    /// `Expect`.
    pub expect: bool,
    /// `Connection: close`, left out of the map.
    pub connection_close: bool,
    /// `Connection: keep-alive`, left out of the map (`hop_by_hop.keep_alive` is the
    /// `Keep-Alive` field).
    pub connection_keep_alive: bool,
    /// The hop-by-hop fields (`Connection`, `Transfer-Encoding`, `Upgrade`, `TE`,
    /// `Keep-Alive`, `Proxy-Connection`).
    pub hop_by_hop: HopByHop,
}

/// `Keep-Alive` (RFC 9112 §C.2.2, hop-by-hop).
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection` (hop-by-hop).
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

impl Present {
    /// Notes `name` if it is one of these.
    fn note(&mut self, name: &HeaderName) {
        let hop = &mut self.hop_by_hop;
        let slot = if *name == CONTENT_LENGTH {
            &mut self.content_length
        } else if *name == TRANSFER_ENCODING {
            &mut hop.transfer_encoding
        } else if *name == CONNECTION {
            &mut hop.connection
        } else if *name == EXPECT {
            &mut self.expect
        } else if *name == UPGRADE {
            &mut hop.upgrade
        } else if *name == TE {
            &mut hop.te
        } else if *name == KEEP_ALIVE {
            &mut hop.keep_alive
        } else if *name == PROXY_CONNECTION {
            &mut hop.proxy_connection
        } else {
            return;
        };
        *slot = true;
    }

    /// Notes a `Connection` field that is only `close` or only `keep-alive`, and
    /// says whether it was one.
    fn connection_only(&mut self, value: &[u8]) -> bool {
        let slot = if value.eq_ignore_ascii_case(b"close") {
            &mut self.connection_close
        } else if value.eq_ignore_ascii_case(b"keep-alive") {
            &mut self.connection_keep_alive
        } else {
            return false;
        };
        *slot = true;
        true
    }
}

/// `1*DIGIT` as a u64, without signs or overflow.
pub fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// RFC 9112 §9.3: whether a message's connection persists after it: for HTTP/1.1
/// unless `Connection` says `close`, for HTTP/1.0 only when it says `keep-alive`.
/// What [`Present`] noted is enough for most; the map's `Connection` is read only
/// when it has one.
pub fn persists(h: &HeaderMap, present: Present, version: Version) -> bool {
    let listed = |option| present.hop_by_hop.connection && has_token(h, CONNECTION, option);
    if present.connection_close || listed("close") {
        return false;
    }
    version == Version::HTTP_11 || present.connection_keep_alive || listed("keep-alive")
}

/// The `Content-Length`, if any (§6.3 item 5): a list of identical values counts as
/// one; anything else is unrecoverable.
pub fn content_length(h: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut length: Option<u64> = None;
    for v in h.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let n = decimal(part.trim_ascii()).ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length values");
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// The `Content-Length` of a head that [`header_map`] made, as [`content_length`]
/// reads it, from what `present` noted where it can.
pub fn declared_length(h: &HeaderMap, present: Present) -> Result<Option<u64>, &'static str> {
    match (present.content_length, present.length) {
        (false, _) => Ok(None),
        (true, Some(n)) => Ok(Some(n)),
        (true, None) => content_length(h),
    }
}

/// What `Transfer-Encoding` says of the body (§6.1, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// Chunked alone.
    Chunked,
    /// Chunked, the final coding, after others.
    ChunkedAfterOthers,
    /// The final coding is not chunked.
    NotChunked,
}

/// The transfer coding of a message with `Transfer-Encoding` (`None` without one);
/// an error for an empty list or chunked applied twice (§7.1: "A sender MUST NOT
/// apply the chunked transfer coding more than once").
pub fn transfer_coding(h: &HeaderMap) -> Option<Result<Coding, &'static str>> {
    if !h.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    let codings: Vec<&[u8]> = h
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect();
    let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
    Some(match codings.as_slice() {
        [] => Err("empty Transfer-Encoding"),
        [.., last] if !chunked(last) => Ok(Coding::NotChunked),
        _ if codings.iter().filter(|c| chunked(c)).count() > 1 => {
            Err("chunked applied more than once")
        }
        [_] => Ok(Coding::Chunked),
        _ => Ok(Coding::ChunkedAfterOthers),
    })
}

/// A head as `httparse` parsed it (slices of the reader's buffer) and one copy of it
/// that the parts made of it share: one allocation for the whole head instead of one
/// per field value and one for the target.
pub struct Section<'a> {
    parsed: &'a [u8],
    copy: Bytes,
}

impl<'a> Section<'a> {
    /// Copies `parsed`, the bytes the head was parsed from.
    pub fn new(parsed: &'a [u8]) -> Section<'a> {
        Section {
            parsed,
            copy: shared_copy(parsed),
        }
    }

    /// `part` (a slice of the parsed bytes) as a slice of the copy; a part from
    /// elsewhere (httparse hands out only slices of its input) is copied on its own.
    pub fn share(&self, part: &[u8]) -> Bytes {
        let within = (part.as_ptr() as usize)
            .checked_sub(self.parsed.as_ptr() as usize)
            .filter(|start| start + part.len() <= self.parsed.len());
        match within {
            Some(start) => self.copy.slice(start..start + part.len()),
            None => Bytes::copy_from_slice(part),
        }
    }
}

/// A copy of `bytes` to be shared: for a head of the usual sizes, one allocation
/// that holds the bytes and their count of sharers (`Bytes::from_owner`), where a
/// copy made as a `Vec` is given a second one, for the count, when first shared.
fn shared_copy(bytes: &[u8]) -> Bytes {
    match bytes.len() {
        0..=128 => Bytes::from_owner(Inline::<128>::new(bytes)),
        129..=512 => Bytes::from_owner(Inline::<512>::new(bytes)),
        // Kept with its count under glibc's per-thread cache limit (1,032 bytes).
        513..=992 => Bytes::from_owner(Inline::<992>::new(bytes)),
        _ => Bytes::copy_from_slice(bytes),
    }
}

/// Up to `N` bytes held in place.
struct Inline<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> Inline<N> {
    fn new(from: &[u8]) -> Self {
        let mut bytes = [0; N];
        bytes[..from.len()].copy_from_slice(from);
        Inline {
            len: from.len(),
            bytes,
        }
    }
}

impl<const N: usize> AsRef<[u8]> for Inline<N> {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The field name `raw` spells when it is one of the names most messages carry,
/// written as they usually are (capitalised, or lowercase): found by one match on the
/// bytes, where `HeaderName::from_bytes` maps each byte through a table and then
/// matches. `None` for any other name or spelling.
fn common_name(raw: &[u8]) -> Option<HeaderName> {
    use http::header::*;
    Some(match raw {
        b"Host" | b"host" => HOST,
        b"User-Agent" | b"user-agent" => USER_AGENT,
        b"Accept" | b"accept" => ACCEPT,
        b"Accept-Encoding" | b"accept-encoding" => ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => ACCEPT_LANGUAGE,
        b"Accept-Ranges" | b"accept-ranges" => ACCEPT_RANGES,
        b"Age" | b"age" => AGE,
        b"Authorization" | b"authorization" => AUTHORIZATION,
        b"Cache-Control" | b"cache-control" => CACHE_CONTROL,
        b"Connection" | b"connection" => CONNECTION,
        b"Content-Encoding" | b"content-encoding" => CONTENT_ENCODING,
        b"Content-Length" | b"content-length" => CONTENT_LENGTH,
        b"Content-Type" | b"content-type" => CONTENT_TYPE,
        b"Cookie" | b"cookie" => COOKIE,
        b"Date" | b"date" => DATE,
        b"ETag" | b"etag" => ETAG,
        b"Expires" | b"expires" => EXPIRES,
        b"If-Modified-Since" | b"if-modified-since" => IF_MODIFIED_SINCE,
        b"If-None-Match" | b"if-none-match" => IF_NONE_MATCH,
        b"Last-Modified" | b"last-modified" => LAST_MODIFIED,
        b"Location" | b"location" => LOCATION,
        b"Origin" | b"origin" => ORIGIN,
        b"Range" | b"range" => RANGE,
        b"Referer" | b"referer" => REFERER,
        b"Server" | b"server" => SERVER,
        b"Set-Cookie" | b"set-cookie" => SET_COOKIE,
        b"Transfer-Encoding" | b"transfer-encoding" => TRANSFER_ENCODING,
        b"Vary" | b"vary" => VARY,
        b"Via" | b"via" => VIA,
        _ => return None,
    })
}

/// Fields that `httparse` parsed from `section` as a map (one of the thread's
/// reused ones: `wharf_http::maps`), their values sharing the section's copy, and
/// which of the framing fields are among them (noted on the way, so that the rules
/// look only for fields that are there); an error names the part that `http`
/// refuses.
pub fn header_map(
    fields: &[httparse::Header<'_>],
    section: &Section<'_>,
) -> Result<(HeaderMap, Present), &'static str> {
    let mut map = wharf_http::maps::take(fields.len());
    let mut present = Present::default();
    for f in fields {
        let raw = f.name.as_bytes();
        let name = match common_name(raw) {
            Some(name) => name,
            None => HeaderName::from_bytes(raw).map_err(|_| "invalid header field name")?,
        };
        if name == CONNECTION && present.connection_only(f.value) {
            continue;
        }
        if name == CONTENT_LENGTH {
            // A second field, or a list, is read from the map (and checked there).
            present.length = (!present.content_length)
                .then(|| decimal(f.value))
                .flatten();
        }
        let value = HeaderValue::from_maybe_shared(section.share(f.value))
            .map_err(|_| "invalid header field value")?;
        present.note(&name);
        map.append(name, value);
    }
    Ok((map, present))
}

/// Every field of `fields` as field lines.
pub fn all_fields(out: &mut Vec<u8>, fields: &HeaderMap) {
    for (name, value) in fields {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// One field line.
pub fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// `pairs` as `httparse` would hand them over, made into a map.
    fn parsed(pairs: &[(&str, &str)]) -> (HeaderMap, Present) {
        let fields: Vec<httparse::Header<'_>> = pairs
            .iter()
            .map(|(name, value)| httparse::Header {
                name,
                value: value.as_bytes(),
            })
            .collect();
        header_map(&fields, &Section::new(b"")).unwrap()
    }

    #[test]
    fn a_section_copy_holds_the_head_at_every_size() {
        for len in [0, 1, 128, 129, 512, 513, 992, 993, 5000] {
            let head: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let section = Section::new(&head);
            assert_eq!(section.copy, head[..], "{len} bytes");
            if len > 2 {
                let part = &head[1..len - 1];
                assert_eq!(section.share(part), part, "{len} bytes");
            }
        }
    }

    #[test]
    fn common_names_are_the_names_http_makes_of_them() {
        // Every name the match knows, capitalised; each is tried lowercase too.
        let names = [
            "Host",
            "User-Agent",
            "Accept",
            "Accept-Encoding",
            "Accept-Language",
            "Accept-Ranges",
            "Age",
            "Authorization",
            "Cache-Control",
            "Connection",
            "Content-Encoding",
            "Content-Length",
            "Content-Type",
            "Cookie",
            "Date",
            "ETag",
            "Expires",
            "If-Modified-Since",
            "If-None-Match",
            "Last-Modified",
            "Location",
            "Origin",
            "Range",
            "Referer",
            "Server",
            "Set-Cookie",
            "Transfer-Encoding",
            "Vary",
            "Via",
        ];
        let spellings = names
            .iter()
            .flat_map(|n| [n.to_string(), n.to_ascii_lowercase()]);
        for raw in spellings {
            let raw = raw.as_str();
            let common = common_name(raw.as_bytes());
            assert_eq!(common, HeaderName::from_bytes(raw.as_bytes()).ok(), "{raw}");
            assert!(common.is_some(), "{raw}");
        }
        // Other spellings and names take http's way, which answers the same.
        for raw in ["HOST", "hOst", "Etag", "x-trace", "Content-Type ", ""] {
            assert_eq!(common_name(raw.as_bytes()), None, "{raw}");
        }
    }

    #[test]
    fn present_names_the_framing_and_hop_by_hop_fields_a_head_has() {
        // (fields, content_length, transfer_encoding, connection, expect, upgrade,
        // te, keep_alive, proxy_connection)
        type Row = (&'static [(&'static str, &'static str)], [bool; 8]);
        let no = [false; 8];
        let only = |i: usize| {
            let mut row = [false; 8];
            row[i] = true;
            row
        };
        let table: &[Row] = &[
            (&[("host", "a"), ("accept", "*/*")], no),
            // Only `close` or only `keep-alive` is noted apart (below), not kept.
            (&[("Connection", "close")], no),
            (&[("connection", "Keep-Alive")], no),
            (&[("connection", "keep-alive, upgrade")], only(2)),
            (&[("Content-Length", "3")], only(0)),
            (
                &[("transfer-encoding", "chunked"), ("content-length", "1")],
                [true, true, false, false, false, false, false, false],
            ),
            (
                &[("connection", "upgrade"), ("upgrade", "websocket")],
                [false, false, true, false, true, false, false, false],
            ),
            (&[("expect", "100-continue"), ("x-expect", "no")], only(3)),
            (&[("TE", "trailers")], only(5)),
            (&[("Keep-Alive", "timeout=5")], only(6)),
            (
                &[("proxy-connection", "close"), ("x-keep-alive", "1")],
                only(7),
            ),
        ];
        for (pairs, want) in table {
            let (map, p) = parsed(pairs);
            let noted = usize::from(p.connection_close) + usize::from(p.connection_keep_alive);
            assert_eq!(map.len() + noted, pairs.len(), "{pairs:?}");
            let hop = p.hop_by_hop;
            let got = [
                p.content_length,
                hop.transfer_encoding,
                hop.connection,
                p.expect,
                hop.upgrade,
                hop.te,
                hop.keep_alive,
                hop.proxy_connection,
            ];
            assert_eq!(&got, want, "{pairs:?}");
        }
    }

    #[test]
    fn content_length_lists() {
        // RFC 9112 §6.3 item 5
        type Want = Result<Option<u64>, &'static str>;
        let table: &[(&[(&str, &str)], Want)] = &[
            (&[], Ok(None)),
            (&[("content-length", "0")], Ok(Some(0))),
            (&[("content-length", "42")], Ok(Some(42))),
            (&[("content-length", "42, 42")], Ok(Some(42))),
            (
                &[("content-length", "42"), ("content-length", "42")],
                Ok(Some(42)),
            ),
            (
                &[("content-length", "42, 43")],
                Err("conflicting Content-Length values"),
            ),
            (
                &[("content-length", "42"), ("content-length", "7")],
                Err("conflicting Content-Length values"),
            ),
            (&[("content-length", "+42")], Err("invalid Content-Length")),
            (&[("content-length", "-1")], Err("invalid Content-Length")),
            (&[("content-length", "")], Err("invalid Content-Length")),
            (
                &[("content-length", "99999999999999999999")],
                Err("invalid Content-Length"),
            ),
        ];
        for (h, want) in table {
            assert_eq!(content_length(&fields(h)), *want, "{h:?}");
        }
    }

    #[test]
    fn a_noted_length_is_the_length_the_map_has() {
        // The heads of content_length_lists, parsed: what was noted (one field, one
        // number) agrees with the map; the rest is read from the map.
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("content-length", "0")], true),
            (&[("Content-Length", "42")], true),
            (&[("content-length", "42, 42")], false),
            (&[("content-length", "42"), ("content-length", "42")], false),
            (&[("content-length", "42"), ("content-length", "7")], false),
            (&[("content-length", "42, 43")], false),
            (&[("content-length", "+42")], false),
            (&[("content-length", "")], false),
            (&[("content-length", "99999999999999999999")], false),
        ];
        for (pairs, noted) in table {
            let (map, present) = parsed(pairs);
            assert_eq!(present.length.is_some(), *noted, "{pairs:?}");
            assert_eq!(
                declared_length(&map, present),
                content_length(&map),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn transfer_codings() {
        // RFC 9112 §6.1, §6.3 item 4, §7.1
        let table: &[(&str, Result<Coding, &str>)] = &[
            ("chunked", Ok(Coding::Chunked)),
            ("Chunked", Ok(Coding::Chunked)),
            ("gzip, chunked", Ok(Coding::ChunkedAfterOthers)),
            ("gzip", Ok(Coding::NotChunked)),
            ("chunked, gzip", Ok(Coding::NotChunked)),
            ("chunked, chunked", Err("chunked applied more than once")),
            (" , ", Err("empty Transfer-Encoding")),
        ];
        for (te, want) in table {
            let h = fields(&[("transfer-encoding", te)]);
            assert_eq!(transfer_coding(&h), Some(*want), "{te:?}");
        }
        assert_eq!(transfer_coding(&HeaderMap::new()), None);
    }

    #[test]
    fn persistence() {
        // RFC 9112 §9.3, each head as the parser notes it: a lone `close` or
        // `keep-alive` apart from the map, other lists in it.
        type Row = (&'static [(&'static str, &'static str)], Version, bool);
        let table: &[Row] = &[
            (&[], Version::HTTP_11, true),
            (&[("connection", "Close")], Version::HTTP_11, false),
            (&[("connection", "upgrade, close")], Version::HTTP_11, false),
            (
                &[("connection", "keep-alive"), ("connection", "close")],
                Version::HTTP_11,
                false,
            ),
            (
                &[("connection", "upgrade"), ("connection", "close")],
                Version::HTTP_11,
                false,
            ),
            (&[("connection", "upgrade")], Version::HTTP_11, true),
            (&[("connection", "closed")], Version::HTTP_11, true),
            (&[], Version::HTTP_10, false),
            (&[("connection", "Keep-Alive")], Version::HTTP_10, true),
            (
                &[("connection", "upgrade, keep-alive")],
                Version::HTTP_10,
                true,
            ),
            (&[("connection", "upgrade")], Version::HTTP_10, false),
            (
                &[("connection", "keep-alive"), ("connection", "close")],
                Version::HTTP_10,
                false,
            ),
        ];
        for (pairs, version, want) in table {
            let (map, present) = parsed(pairs);
            assert_eq!(
                persists(&map, present, *version),
                *want,
                "{pairs:?} {version:?}"
            );
        }
    }
}
