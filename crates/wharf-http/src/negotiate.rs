//! Proactive content negotiation: `Accept-Encoding` (RFC 9110 §12.5.3) and the small
//! part of `Accept` (§12.5.1) wharf needs.
//!
//! Exists so that the choice of content coding — and the 406 when nothing is
//! acceptable — follows the RFC's rules for `*`, `identity` and weights, with a reason
//! that states the weights. Owns RFC 9110 §12.4.2 (quality values), §12.5.1 (`Accept`,
//! parsing only) and §12.5.3 (`Accept-Encoding`).
//!
//! The caller must send `Vary: Accept-Encoding` on every response whose coding was
//! negotiated (RFC 9110 §12.5.5), including the identity ones.

use std::fmt;

use http::header::{self, HeaderMap};
use http::HeaderValue;

use crate::util::{fmt_q, is_token, list_elements, params, parse_weight, trim_ows, Echo};

/// A content coding wharf can produce (RFC 9110 §8.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coding {
    /// `br` (RFC 7932).
    Brotli,
    /// `zstd` (RFC 8878).
    Zstd,
    /// `gzip` (RFC 9110 §8.4.1.3).
    Gzip,
    /// `identity`: no coding.
    Identity,
}

impl Coding {
    /// The registered token: `br`, `zstd`, `gzip` or `identity`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }

    /// The coding named by `token`, case-insensitively (RFC 9110 §8.4.1: "All
    /// content codings are case-insensitive"). `x-gzip` is gzip (§8.4.1.3: "A recipient
    /// SHOULD consider "x-gzip" to be equivalent to "gzip"").
    pub fn from_token(token: &str) -> Option<Coding> {
        [Coding::Brotli, Coding::Zstd, Coding::Gzip, Coding::Identity]
            .into_iter()
            .find(|c| token.eq_ignore_ascii_case(c.token()))
            .or_else(|| token.eq_ignore_ascii_case("x-gzip").then_some(Coding::Gzip))
    }
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// The result of [`choose_encoding`]. `Display` gives the reason, prefixed by the
/// chosen token or by `406`: `br: q=1 for br, preferred over gzip`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodingDecision {
    /// The coding to apply, or `None`: answer 406 (Not Acceptable).
    pub chosen: Option<Coding>,
    reason: String,
}

impl fmt::Display for EncodingDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.chosen {
            Some(c) => write!(f, "{c}: {}", self.reason),
            None => write!(f, "406: {}", self.reason),
        }
    }
}

/// How acceptable one available coding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// Not acceptable (q=0, or not listed and not covered by `*`).
    No,
    /// `identity`, not listed: "acceptable by default" but below any listed coding.
    Default,
    /// Matched by `*;q=...` (thousandths).
    Star(u16),
    /// Listed explicitly (thousandths).
    Listed(u16),
}

impl Rank {
    /// Ordering key: listed and `*` matches compare by weight alone; the default
    /// identity is below every positive weight.
    fn key(self) -> (u8, u16) {
        match self {
            Rank::No => (0, 0),
            Rank::Default => (1, 0),
            Rank::Star(q) | Rank::Listed(q) => (2, q),
        }
    }
}

/// Chooses the content coding for a response.
///
/// `available` lists the codings the server can produce for this resource, in server
/// preference order. `identity` is always available: if `available` does not list it,
/// it is appended as the least preferred; listing it places it (e.g.
/// `[Identity, Gzip]` prefers sending uncompressed on a tie). An `identity` that the
/// client excludes (`identity;q=0`, or `*;q=0` without an `identity` entry) with no
/// other acceptable coding gives `chosen: None` — the caller answers 406, or, as
/// RFC 9110 §12.5.3 also allows, ignores the header and sends identity anyway.
///
/// Rules (RFC 9110 §12.5.3): an absent header → identity (the RFC allows any coding,
/// but identity is the safe choice for clients that said nothing); an empty value →
/// identity ("does not want any content coding"); otherwise the acceptable coding with
/// the highest weight, ties broken by server preference. Elements with an invalid
/// weight or unknown parameters are ignored; for a coding listed twice the first entry
/// counts.
pub fn choose_encoding(
    accept_encoding: Option<&HeaderValue>,
    available: &[Coding],
) -> EncodingDecision {
    let text = accept_encoding.map(|v| String::from_utf8_lossy(v.as_bytes()));
    choose(text.as_deref(), available)
}

/// [`choose_encoding`] over every `Accept-Encoding` line of `headers`, combined as
/// RFC 9110 §5.3 allows.
pub fn choose_encoding_in(headers: &HeaderMap, available: &[Coding]) -> EncodingDecision {
    let text = crate::util::joined(headers, &header::ACCEPT_ENCODING);
    choose(text.as_deref(), available)
}

fn choose(text: Option<&str>, available: &[Coding]) -> EncodingDecision {
    let identity = |reason: &str| EncodingDecision {
        chosen: Some(Coding::Identity),
        reason: reason.to_owned(),
    };
    let Some(text) = text else {
        return identity("no Accept-Encoding");
    };

    // Server preference order, identity included exactly once.
    let mut order: Vec<Coding> = Vec::with_capacity(available.len() + 1);
    for &c in available.iter().chain(std::iter::once(&Coding::Identity)) {
        if !order.contains(&c) {
            order.push(c);
        }
    }

    // Parse `#( codings [ weight ] )`; tokens lower-cased, x-gzip folded into gzip.
    let mut entries: Vec<(String, u16)> = Vec::new();
    for element in list_elements(text) {
        let Some((name, q)) = parse_coding_element(element) else {
            continue;
        };
        let name = Coding::from_token(&name).map_or(name, |c| c.token().to_owned());
        if !entries.iter().any(|(n, _)| *n == name) {
            entries.push((name, q));
        }
    }
    // RFC 9110 §12.5.3: "An Accept-Encoding header field with a field value that is
    // empty implies that the user agent does not want any content coding in response."
    if entries.is_empty() && list_elements(text).is_empty() {
        return identity("empty Accept-Encoding");
    }
    let weight = |name: &str| entries.iter().find(|(n, _)| n == name).map(|&(_, q)| q);
    let star = weight("*");

    let ranks: Vec<(Coding, Rank)> = order
        .iter()
        .map(|&c| {
            let rank = match (weight(c.token()), c) {
                // "If the representation's content coding is one of the content codings
                // listed in the Accept-Encoding field value, then it is acceptable unless
                // it is accompanied by a qvalue of 0."
                (Some(0), _) => Rank::No,
                (Some(q), _) => Rank::Listed(q),
                // "If the representation has no content coding, then it is acceptable by
                // default unless specifically excluded by the Accept-Encoding header field
                // stating either "identity;q=0" or "*;q=0" without a more specific entry
                // for "identity"."
                (None, Coding::Identity) if star == Some(0) => Rank::No,
                (None, Coding::Identity) => Rank::Default,
                // "The asterisk "*" symbol in an Accept-Encoding field matches any
                // available content coding not explicitly listed in the field."
                (None, _) => match star {
                    Some(q) if q > 0 => Rank::Star(q),
                    _ => Rank::No,
                },
            };
            (c, rank)
        })
        .collect();

    // Highest rank; the first in server order wins a tie.
    let best = ranks.iter().filter(|(_, r)| *r != Rank::No).fold(
        None::<(Coding, Rank)>,
        |best, &(c, r)| match best {
            Some((_, br)) if br.key() >= r.key() => best,
            _ => Some((c, r)),
        },
    );
    let Some((chosen, rank)) = best else {
        let names: Vec<&str> = order.iter().map(|c| c.token()).collect();
        return EncodingDecision {
            chosen: None,
            reason: format!(
                "no available coding ({}) is acceptable to Accept-Encoding {}",
                names.join(", "),
                Echo(text)
            ),
        };
    };
    let tied: Vec<&str> = ranks
        .iter()
        .filter(|&&(c, r)| c != chosen && r != Rank::No && r.key() == rank.key())
        .map(|(c, _)| c.token())
        .collect();
    let mut reason = match rank {
        Rank::Listed(q) => format!("q={} for {chosen}", fmt_q(q)),
        Rank::Star(q) => format!("q={} for {chosen} via *", fmt_q(q)),
        Rank::Default | Rank::No => "acceptable by default, no listed coding available".to_owned(),
    };
    if !tied.is_empty() {
        reason.push_str(", preferred over ");
        reason.push_str(&tied.join(", "));
    }
    EncodingDecision {
        chosen: Some(chosen),
        reason,
    }
}

/// `codings [ weight ]` → lower-cased coding and weight in thousandths (1000 when
/// absent). `None` for an invalid element.
fn parse_coding_element(element: &str) -> Option<(String, u16)> {
    let parts = params(element);
    let (name, rest) = parts.split_first()?;
    if !is_token(name) {
        return None;
    }
    let q = match rest {
        [] => 1000,
        // `weight = OWS ";" OWS "q=" qvalue`: the only parameter allowed here.
        [param] => parse_weight(param).ok()??,
        _ => return None,
    };
    Some((name.to_ascii_lowercase(), q))
}

/// Parses an `Accept` value (RFC 9110 §12.5.1) into `(media-range, q)` pairs in
/// received order.
///
/// The media range is `type/subtype` lower-cased, followed by any media-type
/// parameters as received (`text/html;level=1`); the weight and the accept-extensions
/// after it are not part of it. Elements that are not a valid media range (including
/// `*/subtype`) or have an invalid weight are dropped.
pub fn parse_accept(value: &HeaderValue) -> Vec<(String, f32)> {
    let text = String::from_utf8_lossy(value.as_bytes());
    list_elements(&text)
        .into_iter()
        .filter_map(parse_media_element)
        .map(|(range, q)| (range, f32::from(q) / 1000.0))
        .collect()
}

fn parse_media_element(element: &str) -> Option<(String, u16)> {
    let parts = params(element);
    let (range, rest) = parts.split_first()?;
    let (ty, sub) = range.split_once('/')?;
    if !is_token(ty) || !is_token(sub) || (ty == "*" && sub != "*") {
        return None;
    }
    let mut out = format!("{}/{}", ty.to_ascii_lowercase(), sub.to_ascii_lowercase());
    let mut q = 1000;
    for p in rest {
        // §12.5.1: the weight separates media-type parameters from accept-ext.
        match parse_weight(p) {
            Ok(Some(w)) => {
                q = w;
                break;
            }
            Ok(None) => {
                let (name, val) = p.split_once('=')?;
                out.push(';');
                out.push_str(trim_ows(name));
                out.push('=');
                out.push_str(trim_ows(val));
            }
            Err(()) => return None,
        }
    }
    Some((out, q))
}

/// Whether the client prefers `application/json` to `text/html`: the weight the
/// `Accept` header gives JSON is strictly higher than the one it gives HTML. Used to
/// pick the format of a directory listing; an absent header prefers HTML.
///
/// Each type takes the weight of the most specific matching range (`type/subtype`
/// over `type/*` over `*/*`, RFC 9110 §12.5.1), media-type parameters disregarded,
/// and 0 when nothing matches.
pub fn prefers_json(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let ranges = parse_accept(accept);
    weight_for(&ranges, "application", "json") > weight_for(&ranges, "text", "html")
}

fn weight_for(ranges: &[(String, f32)], ty: &str, sub: &str) -> f32 {
    let mut best: Option<(u8, f32)> = None;
    for (range, q) in ranges {
        let bare = range.split(';').next().unwrap_or(range);
        let Some((rt, rs)) = bare.split_once('/') else {
            continue;
        };
        let specificity = match (rt == ty, rs == sub, rt == "*", rs == "*") {
            (true, true, _, _) => 2,
            (true, false, _, true) => 1,
            (false, false, true, true) => 0,
            _ => continue,
        };
        match best {
            Some((s, bq)) if s > specificity || (s == specificity && bq >= *q) => {}
            _ => best = Some((specificity, *q)),
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    struct Row {
        header: Option<&'static str>,
        available: &'static [Coding],
        want: Option<Coding>,
        reason: &'static str,
        rfc: &'static str,
    }

    fn check(row: &Row) {
        let value = row
            .header
            .map(|h| HeaderValue::from_str(h).expect("test header value"));
        let d = choose_encoding(value.as_ref(), row.available);
        assert_eq!(
            d.chosen, row.want,
            "{:?} {:?} ({}): {d}",
            row.header, row.available, row.rfc
        );
        assert_eq!(
            d.to_string(),
            row.reason,
            "{:?} {:?} ({})",
            row.header,
            row.available,
            row.rfc
        );
    }

    #[test]
    fn accept_encoding() {
        let bg: &[Coding] = &[Brotli, Gzip];
        let rows = [
            Row { header: None, available: bg, want: Some(Identity),
                reason: "identity: no Accept-Encoding", rfc: "9110 §12.5.3 absent (identity chosen)" },
            Row { header: Some(""), available: bg, want: Some(Identity),
                reason: "identity: empty Accept-Encoding", rfc: "9110 §12.5.3 empty value" },
            Row { header: Some(" , "), available: bg, want: Some(Identity),
                reason: "identity: empty Accept-Encoding", rfc: "9110 §5.6.1 only empty elements" },
            Row { header: Some("gzip"), available: bg, want: Some(Gzip),
                reason: "gzip: q=1 for gzip", rfc: "9110 §12.5.3 listed" },
            Row { header: Some("gzip, br"), available: bg, want: Some(Brotli),
                reason: "br: q=1 for br, preferred over gzip", rfc: "9110 §12.5.3 tie, server preference" },
            Row { header: Some("br, gzip"), available: &[Gzip, Brotli], want: Some(Gzip),
                reason: "gzip: q=1 for gzip, preferred over br", rfc: "9110 §12.5.3 tie, server preference" },
            Row { header: Some("br;q=0.5, gzip;q=0.8"), available: bg, want: Some(Gzip),
                reason: "gzip: q=0.8 for gzip", rfc: "9110 §12.4.2 highest weight" },
            Row { header: Some("gzip;q=1.0, br;q=0.999"), available: bg, want: Some(Gzip),
                reason: "gzip: q=1 for gzip", rfc: "9110 §12.4.2 three decimals" },
            Row { header: Some("gzip ; Q=0.5, br ;q=0.25"), available: bg, want: Some(Gzip),
                reason: "gzip: q=0.5 for gzip", rfc: "9110 §12.4.2 OWS and case-insensitive q" },
            Row { header: Some("GZIP"), available: bg, want: Some(Gzip),
                reason: "gzip: q=1 for gzip", rfc: "9110 §8.4.1 case-insensitive coding" },
            Row { header: Some("x-gzip"), available: bg, want: Some(Gzip),
                reason: "gzip: q=1 for gzip", rfc: "9110 §8.4.1.3 x-gzip is gzip" },
            Row { header: Some("zstd, br;q=0.9"), available: &[Brotli, Zstd, Gzip], want: Some(Zstd),
                reason: "zstd: q=1 for zstd", rfc: "9110 §12.5.3 weight beats server preference" },
            // `*`.
            Row { header: Some("*"), available: &[Zstd], want: Some(Zstd),
                reason: "zstd: q=1 for zstd via *", rfc: "9110 §12.5.3 * matches unlisted" },
            Row { header: Some("gzip;q=0, *"), available: bg, want: Some(Brotli),
                reason: "br: q=1 for br via *", rfc: "9110 §12.5.3 * excludes listed codings" },
            Row { header: Some("*;q=0.5, gzip"), available: bg, want: Some(Gzip),
                reason: "gzip: q=1 for gzip", rfc: "9110 §12.5.3 explicit over *" },
            Row { header: Some("*;q=0.5, gzip;q=0.5"), available: bg, want: Some(Brotli),
                reason: "br: q=0.5 for br via *, preferred over gzip", rfc: "9110 §12.5.3 tie between * and listed" },
            // identity.
            Row { header: Some("br"), available: &[], want: Some(Identity),
                reason: "identity: acceptable by default, no listed coding available", rfc: "9110 §12.5.3 identity by default" },
            Row { header: Some("gzip;q=0"), available: bg, want: Some(Identity),
                reason: "identity: acceptable by default, no listed coding available", rfc: "9110 §12.5.3 q=0 not acceptable" },
            Row { header: Some("deflate, compress"), available: bg, want: Some(Identity),
                reason: "identity: acceptable by default, no listed coding available", rfc: "9110 §12.5.3 unknown codings" },
            Row { header: Some("gzip;q=0.001"), available: bg, want: Some(Gzip),
                reason: "gzip: q=0.001 for gzip", rfc: "9110 §12.5.3 any listed weight beats default identity" },
            Row { header: Some("gzip, identity"), available: bg, want: Some(Gzip),
                reason: "gzip: q=1 for gzip, preferred over identity", rfc: "9110 §12.5.3 identity least preferred by server" },
            Row { header: Some("gzip, identity"), available: &[Identity, Gzip], want: Some(Identity),
                reason: "identity: q=1 for identity, preferred over gzip", rfc: "9110 §12.5.3 server prefers identity" },
            Row { header: Some("identity;q=0.5, gzip;q=0.4"), available: bg, want: Some(Identity),
                reason: "identity: q=0.5 for identity", rfc: "9110 §12.5.3 identity weighted" },
            Row { header: Some("identity;q=0"), available: &[], want: None,
                reason: "406: no available coding (identity) is acceptable to Accept-Encoding identity;q=0", rfc: "9110 §12.5.3 identity;q=0" },
            Row { header: Some("*;q=0"), available: &[], want: None,
                reason: "406: no available coding (identity) is acceptable to Accept-Encoding *;q=0", rfc: "9110 §12.5.3 *;q=0 excludes identity" },
            Row { header: Some("*;q=0, identity"), available: &[Gzip], want: Some(Identity),
                reason: "identity: q=1 for identity", rfc: "9110 §12.5.3 more specific identity entry" },
            Row { header: Some("*;q=0, gzip;q=0.5"), available: bg, want: Some(Gzip),
                reason: "gzip: q=0.5 for gzip", rfc: "9110 §12.5.3 *;q=0 with listed coding" },
            Row { header: Some("identity;q=0, gzip"), available: &[Gzip], want: Some(Gzip),
                reason: "gzip: q=1 for gzip", rfc: "9110 §12.5.3 identity excluded, gzip fine" },
            Row { header: Some("identity;q=0, br;q=0"), available: bg, want: None,
                reason: "406: no available coding (br, gzip, identity) is acceptable to Accept-Encoding identity;q=0, br;q=0", rfc: "9110 §12.5.3 nothing acceptable" },
            // Invalid elements are ignored.
            Row { header: Some("gzip;q=1.5"), available: bg, want: Some(Identity),
                reason: "identity: acceptable by default, no listed coding available", rfc: "9110 §12.4.2 q > 1 invalid" },
            Row { header: Some("gzip;q=0.1234, br"), available: bg, want: Some(Brotli),
                reason: "br: q=1 for br", rfc: "9110 §12.4.2 four decimals invalid" },
            Row { header: Some("gzip;level=9"), available: bg, want: Some(Identity),
                reason: "identity: acceptable by default, no listed coding available", rfc: "9110 §12.5.3 only weight allowed" },
            Row { header: Some("gzip;q=0.5, gzip;q=1"), available: bg, want: Some(Gzip),
                reason: "gzip: q=0.5 for gzip", rfc: "9110 §12.5.3 first entry counts" },
            Row { header: Some("identity;q=0, gzip;q=x"), available: &[Gzip], want: None,
                reason: "406: no available coding (gzip, identity) is acceptable to Accept-Encoding identity;q=0, gzip;q=x", rfc: "9110 §12.4.2 invalid weight ignored" },
        ];
        for row in &rows {
            check(row);
        }
    }

    #[test]
    fn accept_encoding_lines_combine() {
        let mut h = HeaderMap::new();
        h.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0.5"),
        );
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        let d = choose_encoding_in(&h, &[Gzip, Brotli]);
        assert_eq!(d.chosen, Some(Brotli), "9110 §5.3 lines combine: {d}");
        assert_eq!(
            choose_encoding_in(&HeaderMap::new(), &[Gzip]).chosen,
            Some(Identity)
        );
    }

    struct TokenRow {
        token: &'static str,
        want: Option<Coding>,
        rfc: &'static str,
    }

    fn check_token(row: &TokenRow) {
        assert_eq!(
            Coding::from_token(row.token),
            row.want,
            "{} ({})",
            row.token,
            row.rfc
        );
        if let Some(c) = row.want {
            assert_eq!(Coding::from_token(c.token()), Some(c), "token round trip");
        }
    }

    #[test]
    fn coding_tokens() {
        let rows = [
            TokenRow {
                token: "br",
                want: Some(Brotli),
                rfc: "IANA content coding registry",
            },
            TokenRow {
                token: "zstd",
                want: Some(Zstd),
                rfc: "RFC 8878 §7.2",
            },
            TokenRow {
                token: "gzip",
                want: Some(Gzip),
                rfc: "9110 §8.4.1.3",
            },
            TokenRow {
                token: "x-gzip",
                want: Some(Gzip),
                rfc: "9110 §8.4.1.3",
            },
            TokenRow {
                token: "Identity",
                want: Some(Identity),
                rfc: "9110 §8.4.1",
            },
            TokenRow {
                token: "deflate",
                want: None,
                rfc: "9110 §8.4.1.2 (not produced)",
            },
            TokenRow {
                token: "*",
                want: None,
                rfc: "9110 §12.5.3",
            },
        ];
        for row in &rows {
            check_token(row);
        }
        assert_eq!(Brotli.token(), "br");
        assert_eq!(Zstd.to_string(), "zstd");
    }

    struct AcceptRow {
        header: &'static str,
        want: &'static [(&'static str, f32)],
        rfc: &'static str,
    }

    fn check_accept(row: &AcceptRow) {
        let got = parse_accept(&HeaderValue::from_str(row.header).expect("test header value"));
        let want: Vec<(String, f32)> = row.want.iter().map(|&(r, q)| (r.to_owned(), q)).collect();
        assert_eq!(got, want, "{:?} ({})", row.header, row.rfc);
    }

    #[test]
    fn parse_accept_ranges() {
        let rows = [
            AcceptRow {
                header: "text/html, application/json;q=0.9",
                want: &[("text/html", 1.0), ("application/json", 0.9)],
                rfc: "9110 §12.5.1",
            },
            AcceptRow {
                header: "Text/HTML;level=1;q=0.5;ext=1",
                want: &[("text/html;level=1", 0.5)],
                rfc: "9110 §12.5.1 params, weight, accept-ext",
            },
            AcceptRow {
                header: "*/*;q=0.1, text/*",
                want: &[("*/*", 0.1), ("text/*", 1.0)],
                rfc: "9110 §12.5.1 wildcards",
            },
            AcceptRow {
                header: "*/html, text/plain;q=2, bogus, text/csv",
                want: &[("text/csv", 1.0)],
                rfc: "9110 §12.5.1 invalid elements dropped",
            },
            AcceptRow {
                header: "",
                want: &[],
                rfc: "9110 §12.5.1 empty",
            },
        ];
        for row in &rows {
            check_accept(row);
        }
    }

    struct JsonRow {
        header: Option<&'static str>,
        want: bool,
        rfc: &'static str,
    }

    fn check_json(row: &JsonRow) {
        let value = row
            .header
            .map(|h| HeaderValue::from_str(h).expect("test header value"));
        assert_eq!(
            prefers_json(value.as_ref()),
            row.want,
            "{:?} ({})",
            row.header,
            row.rfc
        );
    }

    #[test]
    fn json_preference() {
        let rows = [
            JsonRow {
                header: None,
                want: false,
                rfc: "9110 §12.5.1 absent",
            },
            JsonRow {
                header: Some("application/json"),
                want: true,
                rfc: "9110 §12.5.1",
            },
            JsonRow {
                header: Some("text/html"),
                want: false,
                rfc: "9110 §12.5.1",
            },
            JsonRow {
                header: Some("*/*"),
                want: false,
                rfc: "9110 §12.5.1 equal weights",
            },
            JsonRow {
                header: Some("text/html, application/json"),
                want: false,
                rfc: "9110 §12.5.1 tie is not a preference",
            },
            JsonRow {
                header: Some("application/json, text/html;q=0.9"),
                want: true,
                rfc: "9110 §12.4.2",
            },
            JsonRow {
                header: Some("application/*, text/html;q=0.5"),
                want: true,
                rfc: "9110 §12.5.1 type/*",
            },
            JsonRow {
                header: Some("text/*;q=0.5, application/json;q=0.4"),
                want: false,
                rfc: "9110 §12.4.2",
            },
            JsonRow {
                header: Some("application/json;q=0"),
                want: false,
                rfc: "9110 §12.4.2 q=0",
            },
            JsonRow {
                header: Some("*/*;q=0.8, application/json"),
                want: true,
                rfc: "9110 §12.5.1 */* covers html",
            },
            JsonRow {
                header: Some("application/json;q=0.5, */*"),
                want: false,
                rfc: "9110 §12.5.1 specific range wins for json",
            },
        ];
        for row in &rows {
            check_json(row);
        }
    }
}
