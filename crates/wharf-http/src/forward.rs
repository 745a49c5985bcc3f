//! What an intermediary changes in a message it forwards: hop-by-hop fields (RFC 9110
//! §7.6.1), `Via` (RFC 9110 §7.6.3), and the fields that tell the next server who
//! the client was: `Forwarded` (RFC 7239) and the `X-Forwarded-For`, `-Proto` and
//! `-Host` fields most applications still read.
//!
//! Exists so that the reverse proxy (and later the client and the inspection proxy)
//! apply one set of rules, table-tested here, in both directions.
//!
//! Incoming forwarding fields are the client's words: unless the connection came from
//! a proxy the operator trusts, they are dropped and replaced, so that a client cannot
//! make an upstream believe it came from somewhere else.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName};
use http::{HeaderValue, Version};

use crate::fields::{line_tokens, tokens};
use crate::spares;
use crate::util::{is_token, list_elements, params};

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `Forwarded` (RFC 7239).
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// How many fields [`ALWAYS_HOP_BY_HOP`] has.
const ALWAYS: usize = 6;

/// Fields that are hop-by-hop whether or not `Connection` names them (`Connection`
/// first): RFC 9110 §7.6.1 names `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding` and
/// `Upgrade` ("even if they are not nominated as connection options").
static ALWAYS_HOP_BY_HOP: [HeaderName; ALWAYS] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Where `name` (lowercase, as field names are kept) is in [`ALWAYS_HOP_BY_HOP`].
/// Matching the text finds the usual field in a length comparison, where comparing
/// with each name cost a few comparisons of every field.
fn hop_by_hop_index(name: &[u8]) -> Option<usize> {
    match name {
        b"connection" => Some(0),
        b"proxy-connection" => Some(1),
        b"keep-alive" => Some(2),
        b"te" => Some(3),
        b"transfer-encoding" => Some(4),
        b"upgrade" => Some(5),
        _ => None,
    }
}

/// Where [`hop_by_hop_index`] puts `TE`.
const TE: usize = 3;

/// Whether `name` is one of the forwarding fields [`forward_request`] sets.
fn is_forwarding(name: &str) -> bool {
    matches!(
        name,
        "forwarded" | "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host"
    )
}

/// What one pass over a message's fields found of those forwarding changes.
#[derive(Default)]
struct Found {
    /// Which of [`ALWAYS_HOP_BY_HOP`] the message has.
    hop_by_hop: [bool; ALWAYS],
    /// Whether a `Connection` option names a field besides those (rarely: the usual
    /// options are `keep-alive` and `close`).
    connection_names_more: bool,
    /// Whether `TE` offers trailers.
    te_trailers: bool,
    /// Whether a forwarding field is there.
    forwarding: bool,
    /// Bit `i`: the message has the caller's `also[i]`.
    also: u32,
}

/// One pass over the fields of `headers` (every line, repeated names included).
fn scan(headers: &HeaderMap, also: &[&HeaderName]) -> Found {
    debug_assert!(also.len() <= 32, "Found::also has 32 bits");
    let mut found = Found::default();
    for (name, value) in headers {
        let text = name.as_str();
        if let Some(i) = hop_by_hop_index(text.as_bytes()) {
            found.hop_by_hop[i] = true;
            if i == 0 {
                found.connection_names_more |= names_more(value);
            } else if i == TE {
                found.te_trailers |= offers_trailers(value);
            }
        } else if is_forwarding(text) {
            found.forwarding = true;
        } else if let Some(i) = also.iter().position(|a| *a == name) {
            found.also |= 1 << i;
        }
    }
    found
}

/// Whether a `Connection` line names a field that is not removed anyway.
fn names_more(value: &HeaderValue) -> bool {
    // The usual line is one option, itself removed anyway: no list to take apart.
    let usual =
        |v: &[u8]| v.eq_ignore_ascii_case(b"keep-alive") || v.eq_ignore_ascii_case(b"close");
    !usual(value.as_bytes()) && line_tokens(value).any(|o| !names_kept_or_removed_anyway(o))
}

/// Removes what `found` says `headers` has: the fields `Connection` names (looked for
/// only when it names any), the hop-by-hop fields and the caller's `also`.
fn remove_found(headers: &mut HeaderMap, found: &Found, also: &[&HeaderName]) {
    if found.connection_names_more {
        let named: Vec<HeaderName> = tokens(headers, header::CONNECTION)
            .filter(|o| !names_kept_or_removed_anyway(o))
            .filter_map(|o| HeaderName::from_bytes(o).ok())
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for (name, _) in ALWAYS_HOP_BY_HOP
        .iter()
        .zip(found.hop_by_hop)
        .filter(|(_, p)| *p)
    {
        headers.remove(name);
    }
    for (i, name) in also.iter().enumerate() {
        if found.also & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
}

/// Removes the fields that describe the connection a message arrived on, not the
/// message: every field named in `Connection`, then `Connection` itself and the
/// fields of [`ALWAYS_HOP_BY_HOP`] (RFC 9110 §7.6.1 MUST: "Intermediaries MUST parse
/// a received Connection header field before a message is forwarded and, for each
/// connection-option in this field, remove any header or trailer field(s) from the
/// message with the same name as the connection-option, and then remove the
/// Connection header field itself").
///
/// `Host` is never removed, whatever `Connection` says: a request without it cannot
/// be routed, and no client has a reason to name it.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let found = scan(headers, &[]);
    remove_found(headers, &found, &[]);
}

/// Which of the fields removed whatever `Connection` says a message has, as its
/// parser noted them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HopByHop {
    /// `Connection`.
    pub connection: bool,
    /// `Proxy-Connection`.
    pub proxy_connection: bool,
    /// `Keep-Alive`.
    pub keep_alive: bool,
    /// `TE`.
    pub te: bool,
    /// `Transfer-Encoding`.
    pub transfer_encoding: bool,
    /// `Upgrade`.
    pub upgrade: bool,
}

/// [`remove_hop_by_hop`] for a message whose parser noted which hop-by-hop fields
/// it has: its other fields need no look, only `Connection`'s options.
pub fn remove_noted_hop_by_hop(headers: &mut HeaderMap, noted: HopByHop) {
    let HopByHop {
        connection,
        proxy_connection,
        keep_alive,
        te,
        transfer_encoding,
        upgrade,
    } = noted;
    let mut found = Found {
        // In the order of ALWAYS_HOP_BY_HOP.
        hop_by_hop: [
            connection,
            proxy_connection,
            keep_alive,
            te,
            transfer_encoding,
            upgrade,
        ],
        ..Found::default()
    };
    if connection {
        found.connection_names_more = headers.get_all(header::CONNECTION).iter().any(names_more);
    }
    remove_found(headers, &found, &[]);
}

/// Makes a request's fields the ones to forward, from one pass over them: removes
/// the hop-by-hop fields (as [`remove_hop_by_hop`]) and the fields `also` names,
/// then sets the forwarding fields (see [`set_forwarded`]). Returns whether the
/// request's `TE` offered trailers (`TE: trailers`, RFC 9110 §10.1.4), which a gRPC
/// client sends and its server requires: `TE` is hop-by-hop, so the proxy sends its
/// own when this is true.
pub fn forward_request(
    headers: &mut HeaderMap,
    hop: &Hop<'_>,
    trusted: bool,
    also: &[&HeaderName],
) -> bool {
    let forwarding = forwarding(headers, hop, trusted, also);
    let te_trailers = forwarding.te_trailers;
    forwarding.apply(headers);
    te_trailers
}

/// What [`forward_request`] does to a request's fields, decided in one pass over
/// them and not yet done: which of the fields stay behind and which fields are
/// added. An HTTP/1.1 client writes the fields less those [`Forwarding::leaves_out`],
/// then [`Forwarding::added`], and so never edits the map (editing it cost more
/// than the rest of forwarding); anything else [`Forwarding::apply`]s it.
#[derive(Clone, Debug, Default)]
pub struct Forwarding<'a> {
    /// The caller's names to leave out besides the hop-by-hop ones.
    also: &'a [&'a HeaderName],
    /// Bit `i` for the message's [`ALWAYS_HOP_BY_HOP`]`[i]`, bit `ALWAYS + i` for its
    /// `also[i]`: the fields left out. None when the map was edited instead.
    left_out: u64,
    /// The `Forwarded` element to append.
    forwarded: Option<HeaderValue>,
    /// The `X-Forwarded-For`, `-Proto` and `-Host` values.
    xff: Option<HeaderValue>,
    proto: Option<HeaderValue>,
    xfh: Option<HeaderValue>,
    /// Whether the request's `TE` offered trailers.
    te_trailers: bool,
}

/// Decides what forwarding does to `headers` (see [`forward_request`]). The
/// uncommon cases (a `Connection` that names other fields, forwarding fields
/// already there) are done on the map at once, and leave nothing to decide.
pub fn forwarding<'a>(
    headers: &mut HeaderMap,
    hop: &Hop<'_>,
    trusted: bool,
    also: &'a [&'a HeaderName],
) -> Forwarding<'a> {
    let found = scan(headers, also);
    let mut forwarding = Forwarding {
        also,
        te_trailers: found.te_trailers,
        ..Forwarding::default()
    };
    if found.connection_names_more || found.forwarding {
        remove_found(headers, &found, also);
        set_forwarded(headers, hop, trusted, found.forwarding);
        return forwarding;
    }
    let hop_by_hop = found
        .hop_by_hop
        .iter()
        .enumerate()
        .fold(0, |bits, (i, p)| bits | u64::from(*p) << i);
    forwarding.left_out = hop_by_hop | u64::from(found.also) << ALWAYS;
    // What `set_forwarded` sets when the request has no forwarding fields.
    (forwarding.forwarded, forwarding.xff) = hop_values(hop);
    forwarding.proto = Some(HeaderValue::from_static(hop.proto));
    forwarding.xfh = hop.host.cloned();
    forwarding
}

impl Forwarding<'_> {
    /// Whether the request's `TE` offered trailers (see [`forward_request`]).
    pub fn te_trailers(&self) -> bool {
        self.te_trailers
    }

    /// Whether the request's field `name` is not forwarded.
    pub fn leaves_out(&self, name: &HeaderName) -> bool {
        if self.left_out == 0 {
            return false;
        }
        let bit = match hop_by_hop_index(name.as_str().as_bytes()) {
            Some(i) => i,
            None => match self.also.iter().position(|a| *a == name) {
                Some(i) => ALWAYS + i,
                None => return false,
            },
        };
        self.left_out & 1 << bit != 0
    }

    /// The fields forwarding adds, in the order [`Forwarding::apply`] adds them.
    pub fn added(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        [
            (&FORWARDED, &self.forwarded),
            (&X_FORWARDED_FOR, &self.xff),
            (&X_FORWARDED_PROTO, &self.proto),
            (&X_FORWARDED_HOST, &self.xfh),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_ref()?)))
    }

    /// Does it to `headers`, the map it was decided on: the fields left out
    /// removed, the added ones appended.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let removed = ALWAYS_HOP_BY_HOP.iter().chain(self.also.iter().copied());
        for (i, name) in removed.enumerate() {
            if self.left_out & 1 << i != 0 {
                headers.remove(name);
            }
        }
        for (name, value) in self.added() {
            headers.append(name, value.clone());
        }
    }
}

/// Whether a connection option needs no removal of its own: `close`, `Host` (never
/// removed) and the fields removed whatever `Connection` says.
fn names_kept_or_removed_anyway(option: &[u8]) -> bool {
    // Lowercased into a buffer as long as the longest of them: a longer option is
    // none of them.
    let mut lower = [0u8; "transfer-encoding".len()];
    let Some(lower) = lower.get_mut(..option.len()) else {
        return false;
    };
    for (l, o) in lower.iter_mut().zip(option) {
        *l = o.to_ascii_lowercase();
    }
    matches!(&*lower, b"close" | b"host") || hop_by_hop_index(lower).is_some()
}

/// Whether a `TE` line offers trailers.
fn offers_trailers(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| {
        list_elements(v)
            .into_iter()
            .any(|e| params(e)[0].eq_ignore_ascii_case("trailers"))
    })
}

/// The `received-protocol` of a `Via` entry for a message of `version` (RFC 9110
/// §7.6.3: the protocol name is omitted for HTTP): `1.0`, `1.1`, `2`, `3`.
fn via_protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// This intermediary's `Via` entries (RFC 9110 §7.6.3 MUST: "A proxy MUST send an
/// appropriate Via header field ... in each message that it forwards"), one per
/// protocol a message may arrive over, made once and cloned into each message:
/// in static storage where they can be ([`interned`]), so that a clone counts
/// nothing.
#[derive(Clone, Debug)]
pub struct Via([HeaderValue; 5]);

impl Via {
    const VERSIONS: [Version; 5] = [
        Version::HTTP_09,
        Version::HTTP_10,
        Version::HTTP_11,
        Version::HTTP_2,
        Version::HTTP_3,
    ];

    /// Entries naming this intermediary `pseudonym`, which stands for the host name
    /// (§7.6.3 allows one), so that internal names are not revealed; an error when it
    /// cannot be in a field value.
    pub fn new(pseudonym: &str) -> Result<Via, http::header::InvalidHeaderValue> {
        let entry = |v| interned(format!("{} {pseudonym}", via_protocol(v)));
        let [a, b, c, d, e] = Self::VERSIONS;
        Ok(Via([entry(a)?, entry(b)?, entry(c)?, entry(d)?, entry(e)?]))
    }

    /// Appends the entry for a message `received` over that version: `1.1 wharf`
    /// for HTTP/1.1.
    pub fn append(&self, headers: &mut HeaderMap, received: Version) {
        headers.append(header::VIA, self.entry(received).clone());
    }

    /// The entry for a message `received` over that version.
    pub fn entry(&self, received: Version) -> &HeaderValue {
        let i = Self::VERSIONS
            .iter()
            .position(|v| *v == received)
            .unwrap_or(2); // what `via_protocol` calls any other version: 1.1
        &self.0[i]
    }
}

/// `value` as a field value in static storage when it is visible ASCII (what
/// `HeaderValue::from_static` takes): cloning and dropping a shared value are an
/// atomic operation each, and a proxy's `Via` goes into every message twice. Each
/// distinct value is kept once for the life of the process (there are as many as
/// pseudonyms configured, times five protocols).
fn interned(value: String) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    static KEPT: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let checked = HeaderValue::from_str(&value)?;
    // `to_str` takes what `from_static` does: visible ASCII and tabs.
    if checked.to_str().is_err() {
        return Ok(checked);
    }
    let mut kept = KEPT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let kept_value = match kept.iter().find(|k| **k == value) {
        Some(k) => *k,
        None => {
            let k: &'static str = Box::leak(value.into_boxed_str());
            kept.push(k);
            k
        }
    };
    Ok(HeaderValue::from_static(kept_value))
}

/// The hop a request took to this intermediary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop<'a> {
    /// The address of the client (the peer of the connection).
    pub client: IpAddr,
    /// `http` or `https`: how the request reached this intermediary.
    pub proto: &'static str,
    /// The host the client asked for (`Host`, or the target's authority).
    pub host: Option<&'a HeaderValue>,
}

/// Writes a `node` of RFC 7239 §6 for an address: IPv4 as it is, IPv6 in brackets,
/// which makes it a quoted-string (`for="[2001:db8::1]"`, §4).
fn push_node(out: &mut String, ip: IpAddr) {
    match ip.to_canonical() {
        IpAddr::V4(_) => push_ip(out, ip),
        IpAddr::V6(v6) => {
            let _ = write!(out, "\"[{v6}]\"");
        }
    }
}

/// Writes an address as `Display` does (IPv4 in dotted decimal, without the
/// formatting machinery: this runs for every forwarded request).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Writes a parameter value of RFC 7239 §4: a token as it is, anything else quoted.
fn push_value(out: &mut String, text: &str) {
    if is_token(text) {
        out.push_str(text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Sets the forwarding fields of a request about to be forwarded: appends one
/// `Forwarded` element (`for=…;host=…;proto=…`, RFC 7239 §4, §5) and the client's
/// address to `X-Forwarded-For`, and sets `X-Forwarded-Proto` and `X-Forwarded-Host`
/// unless a trusted proxy already did.
///
/// With `trusted` false (the client is not a configured proxy), the fields as
/// received are dropped first: they were written by the client, and an upstream that
/// logs or authorises by them would be lied to (RFC 7239 §8.1). `present` says
/// whether the message has any of them.
fn set_forwarded(headers: &mut HeaderMap, hop: &Hop<'_>, trusted: bool, present: bool) {
    if present && !trusted {
        for name in [
            &FORWARDED,
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
        ] {
            headers.remove(name);
        }
    }
    // Whether the message still has forwarding fields of a trusted proxy's.
    let kept = present && trusted;
    let (element, own_xff) = hop_values(hop);
    if let Some(v) = element {
        headers.append(&FORWARDED, v);
    }
    let earlier = kept
        .then(|| headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()))
        .flatten();
    let xff = match earlier {
        Some(earlier) => built(|out| {
            out.push_str(earlier);
            out.push_str(", ");
            push_ip(out, hop.client);
        }),
        None => own_xff,
    };
    if let Some(v) = xff {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    if !(kept && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(hop.proto));
    }
    if let Some(host) = hop
        .host
        .filter(|_| !(kept && headers.contains_key(&X_FORWARDED_HOST)))
    {
        headers.insert(&X_FORWARDED_HOST, host.clone());
    }
}

/// The forwarding values of the last hop seen on a thread, shared with the next
/// request of the same client for the same host (as most are: a connection's
/// requests all come from its client). Building and checking them cost more than
/// the rest of forwarding a request's fields.
struct LastHop {
    client: IpAddr,
    proto: &'static str,
    host: Option<Vec<u8>>,
    forwarded: Option<HeaderValue>,
    xff: Option<HeaderValue>,
}

/// Hosts longer than this are not remembered (a copy of one is kept per thread).
const REMEMBERED_HOST: usize = 255;

/// This hop's `Forwarded` element (`for=…;host=…;proto=…`) and its address for
/// `X-Forwarded-For`, `None` where one cannot be a field value.
fn hop_values(hop: &Hop<'_>) -> (Option<HeaderValue>, Option<HeaderValue>) {
    thread_local!(static LAST: RefCell<Option<LastHop>> = const { RefCell::new(None) });
    let host = hop.host.map(HeaderValue::as_bytes);
    LAST.with_borrow_mut(|last| {
        let same = |l: &&LastHop| {
            l.client == hop.client && l.proto == hop.proto && l.host.as_deref() == host
        };
        if let Some(l) = last.as_ref().filter(same) {
            return (l.forwarded.clone(), l.xff.clone());
        }
        let forwarded = forwarded_element(hop);
        let xff = built(|out| push_ip(out, hop.client));
        if host.is_none_or(|h| h.len() <= REMEMBERED_HOST) {
            *last = Some(LastHop {
                client: hop.client,
                proto: hop.proto,
                host: host.map(<[u8]>::to_vec),
                forwarded: forwarded.clone(),
                xff: xff.clone(),
            });
        }
        (forwarded, xff)
    })
}

/// One `Forwarded` element for `hop` (RFC 7239 §4).
fn forwarded_element(hop: &Hop<'_>) -> Option<HeaderValue> {
    let host = hop.host.and_then(|h| h.to_str().ok());
    built(|out| {
        out.push_str("for=");
        push_node(out, hop.client);
        if let Some(host) = host {
            out.push_str(";host=");
            push_value(out, host);
        }
        out.push_str(";proto=");
        out.push_str(hop.proto);
    })
}

/// A field value written by `write`, built in the thread's scratch buffer
/// ([`spares::with_scratch`]) and copied out at its length. `None` if what was
/// written cannot be a field value.
fn built(write: impl FnOnce(&mut String)) -> Option<HeaderValue> {
    spares::with_scratch(|buf| {
        // An empty buffer is valid UTF-8: it becomes the String, room and all.
        let mut out = String::from_utf8(std::mem::take(buf)).unwrap_or_default();
        write(&mut out);
        let value = HeaderValue::from_str(&out).ok();
        *buf = out.into_bytes();
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::test_headers as headers;

    fn lines(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.254.200.1",
            "127.0.0.1",
            "2001:db8::1",
        ] {
            let mut out = String::new();
            push_ip(&mut out, ip.parse().unwrap());
            assert_eq!(out, ip);
        }
        let mut out = String::new();
        push_ip(&mut out, "::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(out, "192.0.2.1", "IPv4-mapped addresses as IPv4");
    }

    #[test]
    fn hop_by_hop_fields_are_removed() {
        // (fields received, fields left, RFC clause)
        type Row = (
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
            &'static str,
        );
        let table: &[Row] = &[
            (
                &[("connection", "keep-alive, x-trace"), ("keep-alive", "timeout=5"), ("x-trace", "1"), ("accept", "*/*")],
                &["accept"],
                "§7.6.1: fields named in Connection, then Connection itself",
            ),
            (
                &[("te", "trailers"), ("transfer-encoding", "chunked"), ("upgrade", "h2c"), ("proxy-connection", "keep-alive"), ("trailer", "x-sum")],
                &["trailer"],
                "§7.6.1: TE, Transfer-Encoding, Upgrade, Proxy-Connection even when not nominated; Trailer is end-to-end",
            ),
            (
                &[("connection", "host, close"), ("host", "a.test")],
                &["host"],
                "Host is never removed",
            ),
            (
                &[("connection", "bad name, ,"), ("cookie", "a=1")],
                &["cookie"],
                "§5.6.1: an option that is not a field name names nothing; empty elements skipped",
            ),
            (
                &[("connection", "Keep-Alive, UPGRADE, te"), ("upgrade", "websocket"), ("te", "trailers"), ("x-c", "3")],
                &["x-c"],
                "§7.6.1: options naming fields removed anyway, in any case",
            ),
            (
                &[("connection", "X-A"), ("connection", "x-b"), ("x-a", "1"), ("x-b", "2"), ("x-c", "3")],
                &["x-c"],
                "§5.3: several Connection lines are one list, names case-insensitive",
            ),
        ];
        for (given, left, rfc) in table {
            let mut h = headers(given);
            remove_hop_by_hop(&mut h);
            let mut got: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
            got.sort_unstable();
            assert_eq!(got, *left, "{rfc}");
            // The same when a parser says which of the always-removed fields it saw.
            let mut noted = headers(given);
            let has = |name: &str| noted.contains_key(name);
            let seen = HopByHop {
                connection: has("connection"),
                proxy_connection: has("proxy-connection"),
                keep_alive: has("keep-alive"),
                te: has("te"),
                transfer_encoding: has("transfer-encoding"),
                upgrade: has("upgrade"),
            };
            remove_noted_hop_by_hop(&mut noted, seen);
            let mut got: Vec<&str> = noted.keys().map(|k| k.as_str()).collect();
            got.sort_unstable();
            assert_eq!(got, *left, "noted: {rfc}");
        }
    }

    #[test]
    fn the_names_matched_are_the_hop_by_hop_fields() {
        for (i, name) in ALWAYS_HOP_BY_HOP.iter().enumerate() {
            assert_eq!(
                hop_by_hop_index(name.as_str().as_bytes()),
                Some(i),
                "{name}"
            );
        }
        assert_eq!(ALWAYS_HOP_BY_HOP[TE], header::TE);
        for name in ["host", "trailer", "connections", "t", "accept-encoding"] {
            assert_eq!(hop_by_hop_index(name.as_bytes()), None, "{name}");
        }
    }

    /// A client at 192.0.2.1 over plain HTTP, naming no host.
    fn plain_hop() -> Hop<'static> {
        Hop {
            client: "192.0.2.1".parse().unwrap(),
            proto: "http",
            host: None,
        }
    }

    #[test]
    fn a_forwarded_request_loses_hop_by_hop_fields_and_those_named() {
        let hop = plain_hop();
        let mut h = headers(&[
            ("connection", "keep-alive, x-trace"),
            ("x-trace", "1"),
            ("expect", "100-continue"),
            ("host", "a.test"),
            ("accept", "*/*"),
            ("upgrade", "h2c"),
        ]);
        let (expect, host) = (header::EXPECT, header::HOST);
        assert!(!forward_request(&mut h, &hop, false, &[&expect, &host]));
        let mut got: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "accept",
                "forwarded",
                "x-forwarded-for",
                "x-forwarded-proto"
            ]
        );
    }

    #[test]
    fn fields_left_in_place_are_the_fields_applied() {
        // An HTTP/1.1 client writes the fields not left out, then those added; that
        // must be exactly what applying forwarding to the map leaves, in either path
        // (decided, or done on the map at once).
        let host = HeaderValue::from_static("a.test");
        let hop = Hop {
            host: Some(&host),
            ..plain_hop()
        };
        let (expect, host_name) = (header::EXPECT, header::HOST);
        let also = [&expect, &host_name];
        let rows: &[&[(&str, &str)]] = &[
            &[("host", "a.test"), ("accept", "*/*")],
            &[],
            &[
                ("connection", "keep-alive"),
                ("x-z", "1"),
                ("keep-alive", "timeout=5"),
                ("x-y", "2"),
                ("te", "trailers"),
                ("expect", "100-continue"),
                ("host", "a.test"),
                ("host", "b.test"),
                ("accept", "*/*"),
                ("accept", "text/html"),
            ],
            &[
                ("upgrade", "h2c"),
                ("proxy-connection", "close"),
                ("transfer-encoding", "chunked"),
                ("x-a", "1"),
            ],
            &[("connection", "x-a"), ("x-a", "1"), ("x-b", "2")],
            &[
                ("x-forwarded-for", "10.0.0.1"),
                ("via", "1.1 other"),
                ("x-b", "2"),
            ],
        ];
        for given in rows {
            for trusted in [false, true] {
                let mut applied = headers(given);
                let mut decided = applied.clone();
                let forwarding = forwarding(&mut applied, &hop, trusted, &also);
                forwarding.apply(&mut applied);
                let forwarding = super::forwarding(&mut decided, &hop, trusted, &also);
                let mut written: Vec<_> = decided
                    .iter()
                    .filter(|(name, _)| !forwarding.leaves_out(name))
                    .chain(forwarding.added())
                    .collect();
                let mut want: Vec<_> = applied.iter().collect();
                // The same lines; lines of one name in the same order (a removal
                // moves the map's last field into its place, which changes nothing).
                written.sort_by_key(|(name, _)| name.as_str());
                want.sort_by_key(|(name, _)| name.as_str());
                assert_eq!(written, want, "{given:?}, trusted: {trusted}");
            }
        }
    }

    #[test]
    fn te_trailers_is_recognised() {
        let hop = plain_hop();
        for (te, want) in [
            ("trailers", true),
            ("gzip;q=0.5, Trailers", true),
            ("gzip", false),
            ("", false),
        ] {
            let mut h = headers(&[("te", te)]);
            assert_eq!(forward_request(&mut h, &hop, false, &[]), want, "TE: {te}");
            assert!(!h.contains_key("te"), "§7.6.1: TE is hop-by-hop");
        }
        let mut h = headers(&[("te", "gzip"), ("te", "trailers")]);
        assert!(
            forward_request(&mut h, &hop, false, &[]),
            "§5.3: lines are one list"
        );
        assert!(!forward_request(&mut HeaderMap::new(), &hop, false, &[]));
    }

    #[test]
    fn via_names_the_received_protocol() {
        let mut h = headers(&[("via", "1.0 fred")]);
        let via = Via::new("wharf").unwrap();
        via.append(&mut h, Version::HTTP_11);
        via.append(&mut h, Version::HTTP_2);
        via.append(&mut h, Version::HTTP_3);
        assert_eq!(
            lines(&h, "via"),
            ["1.0 fred", "1.1 wharf", "2 wharf", "3 wharf"],
            "§7.6.3: appended in order; protocol name omitted for HTTP"
        );
    }

    #[test]
    fn via_entries_are_kept_once_in_static_storage() {
        let (a, b) = (Via::new("edge-7").unwrap(), Via::new("edge-7").unwrap());
        let same = |v: Version| std::ptr::eq(a.entry(v).as_bytes(), b.entry(v).as_bytes());
        assert!(same(Version::HTTP_11) && same(Version::HTTP_3));
        // A pseudonym past visible ASCII is still a value, shared as any other.
        let c = Via::new("\u{e9}dge").unwrap();
        assert_eq!(
            c.entry(Version::HTTP_2).as_bytes(),
            "2 \u{e9}dge".as_bytes()
        );
        assert!(Via::new("a\nb").is_err());
    }

    #[test]
    fn forwarding_fields_from_an_untrusted_client_are_replaced() {
        let hop = Hop {
            client: "203.0.113.7".parse().unwrap(),
            proto: "https",
            host: Some(&HeaderValue::from_static("a.test:8443")),
        };
        let lies = [
            ("forwarded", "for=10.0.0.1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "admin.internal"),
        ];
        let mut h = headers(&lies);
        forward_request(&mut h, &hop, false, &[]);
        assert_eq!(
            lines(&h, "forwarded"),
            ["for=203.0.113.7;host=\"a.test:8443\";proto=https"],
            "RFC 7239 §5.3: a host with a port is not a token, so it is quoted"
        );
        assert_eq!(lines(&h, "x-forwarded-for"), ["203.0.113.7"]);
        assert_eq!(lines(&h, "x-forwarded-proto"), ["https"]);
        assert_eq!(lines(&h, "x-forwarded-host"), ["a.test:8443"]);

        let mut h = headers(&lies);
        forward_request(&mut h, &hop, true, &[]);
        assert_eq!(
            lines(&h, "forwarded"),
            [
                "for=10.0.0.1",
                "for=203.0.113.7;host=\"a.test:8443\";proto=https"
            ],
            "RFC 7239 §4: a trusted proxy's elements kept, ours appended"
        );
        assert_eq!(lines(&h, "x-forwarded-for"), ["10.0.0.1, 203.0.113.7"]);
        assert_eq!(
            lines(&h, "x-forwarded-proto"),
            ["http"],
            "the first proxy saw it"
        );
        assert_eq!(lines(&h, "x-forwarded-host"), ["admin.internal"]);
    }

    #[test]
    fn values_are_made_again_for_another_client_host_or_scheme() {
        let a = HeaderValue::from_static("a.test");
        let b = HeaderValue::from_static("b.test");
        let hop = |client: &str, proto, host| Hop {
            client: client.parse().unwrap(),
            proto,
            host,
        };
        // (hop, Forwarded, X-Forwarded-For), in order on one thread: each row after
        // the first differs from the one before in one thing, or in none.
        let table = [
            (
                hop("192.0.2.1", "http", Some(&a)),
                "for=192.0.2.1;host=a.test;proto=http",
                "192.0.2.1",
            ),
            (
                hop("192.0.2.1", "http", Some(&a)),
                "for=192.0.2.1;host=a.test;proto=http",
                "192.0.2.1",
            ),
            (
                hop("192.0.2.1", "http", Some(&b)),
                "for=192.0.2.1;host=b.test;proto=http",
                "192.0.2.1",
            ),
            (
                hop("192.0.2.1", "https", Some(&b)),
                "for=192.0.2.1;host=b.test;proto=https",
                "192.0.2.1",
            ),
            (
                hop("192.0.2.9", "https", Some(&b)),
                "for=192.0.2.9;host=b.test;proto=https",
                "192.0.2.9",
            ),
            (
                hop("192.0.2.9", "https", None),
                "for=192.0.2.9;proto=https",
                "192.0.2.9",
            ),
        ];
        for (hop, forwarded, xff) in &table {
            let mut h = HeaderMap::new();
            forward_request(&mut h, hop, false, &[]);
            assert_eq!(lines(&h, "forwarded"), [*forwarded]);
            assert_eq!(lines(&h, "x-forwarded-for"), [*xff]);
        }
    }

    #[test]
    fn ipv6_clients_are_bracketed_and_quoted() {
        let mut h = HeaderMap::new();
        let hop = Hop {
            client: "2001:db8::1".parse().unwrap(),
            proto: "http",
            host: Some(&HeaderValue::from_static("b.test")),
        };
        forward_request(&mut h, &hop, false, &[]);
        assert_eq!(
            lines(&h, "forwarded"),
            ["for=\"[2001:db8::1]\";host=b.test;proto=http"],
            "RFC 7239 §6: IPv6 in brackets, then quoted (§4)"
        );
        assert_eq!(lines(&h, "x-forwarded-for"), ["2001:db8::1"]);
        let mut h = HeaderMap::new();
        let mapped = Hop {
            client: "::ffff:192.0.2.1".parse().unwrap(),
            ..hop
        };
        forward_request(&mut h, &mapped, false, &[]);
        assert_eq!(
            lines(&h, "x-forwarded-for"),
            ["192.0.2.1"],
            "an IPv4-mapped peer is IPv4"
        );
    }
}
