//! The rules a cache follows (RFC 9111), as pure functions: whether a response may be
//! stored (§3), how long it stays fresh, explicitly or heuristically (§4.2), whether a
//! stored response may answer a request or must be revalidated first (§4, §4.2.4,
//! §5.2.1, RFC 5861), which request fields select among stored variants (`Vary`,
//! §4.1), the conditional request that revalidates (§4.3.1), how a `304` freshens
//! what is stored (§3.2, §4.3.4), and what an unsafe request invalidates (§4.4).
//!
//! Exists so that the reverse proxy's shared cache and, later, the client's private
//! cache apply the same rules, each a decision with its reason (`Display`), for
//! `explain` and `Cache-Status` (RFC 9211). Times are arguments: no clock here.
//!
//! A shared cache is the stricter reading throughout: `private` responses, and
//! requests with `Authorization` unless the response allows it (§3.5), are not stored;
//! `s-maxage` and `proxy-revalidate` apply.

use std::fmt;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::cache_control::{freshness_lifetime, CacheControl};
use crate::date::parse_http_date;
use crate::negotiate::Coding;
use crate::util::{fmt_q, list_elements, params, parse_weight};

/// Why a response is not stored (RFC 9111 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// Only GET responses are stored (HEAD is answered from them).
    Method(Method),
    /// 1xx, 206 (partial content is not stored) and 304 are not stored.
    Status(StatusCode),
    /// `Cache-Control: no-store` in the request (§5.2.1.5) ...
    RequestNoStore,
    /// ... or in the response (§5.2.2.5).
    NoStore,
    /// `private` in a shared cache (§5.2.2.7).
    Private,
    /// A request with `Authorization`, in a shared cache, without `public`,
    /// `s-maxage` or `must-revalidate` in the response (§3.5).
    Authorization,
    /// `Vary: *`: no later request can match (§4.1).
    VaryStar,
    /// `Set-Cookie` (stored only where configured: one user's cookie would be
    /// served to another).
    SetCookie,
    /// No explicit freshness, nothing that allows storing, and a status that is not
    /// heuristically cacheable (§3, §4.2.2).
    NotCacheable(StatusCode),
    /// `must-understand` on a status whose caching rules this cache does not know
    /// (§5.2.2.3).
    NotUnderstood(StatusCode),
}

impl fmt::Display for NotStored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotStored::Method(m) => write!(f, "not stored: method {m}"),
            NotStored::Status(s) => write!(f, "not stored: status {}", s.as_u16()),
            NotStored::RequestNoStore => f.write_str("not stored: request Cache-Control: no-store"),
            NotStored::NoStore => f.write_str("not stored: Cache-Control: no-store"),
            NotStored::Private => f.write_str("not stored: Cache-Control: private"),
            NotStored::Authorization => f.write_str(
                "not stored: request had Authorization, response has no public, s-maxage or must-revalidate",
            ),
            NotStored::VaryStar => f.write_str("not stored: Vary: *"),
            NotStored::SetCookie => f.write_str("not stored: Set-Cookie"),
            NotStored::NotCacheable(s) => write!(
                f,
                "not stored: no explicit freshness and status {} is not heuristically cacheable",
                s.as_u16()
            ),
            NotStored::NotUnderstood(s) => write!(
                f,
                "not stored: must-understand, and status {} is not one whose caching rules wharf knows",
                s.as_u16()
            ),
        }
    }
}

/// Statuses that are heuristically cacheable (RFC 9110 §15.1, listed in RFC 9111
/// §4.2.2's reference): 206 is among them but partial responses are not stored here.
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// `Surrogate-Control` (Edge Architecture 1.0): a reverse proxy's own cache policy,
/// which it removes before the response goes on.
pub static SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// The fields that target a shared cache in front of the origin, most specific
/// first: `CDN-Cache-Control` (RFC 9213) and `Surrogate-Control`.
static TARGETED: [HeaderName; 2] = [
    HeaderName::from_static("cdn-cache-control"),
    HeaderName::from_static("surrogate-control"),
];

/// The response as a targeted shared cache's rules see it (RFC 9213 §2.1): when a
/// targeted field has a non-empty value, "the cache MUST ... use its value to
/// determine the caching policy for the response, and it MUST ignore the
/// Cache-Control and Expires header fields"; so `Cache-Control` is replaced by that
/// value and `Expires` removed. `None` when no targeted field applies (the rules read
/// the response itself).
pub fn targeted(response: &HeaderMap) -> Option<HeaderMap> {
    let (_, value) = TARGETED.iter().find_map(|name| {
        let values: Vec<&[u8]> = response
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let joined = values.join(&b", "[..]);
        let text = String::from_utf8(joined).ok()?;
        let text = text.trim();
        valid_directives(text).then(|| (name, text.to_owned()))
    })?;
    let mut view = response.clone();
    view.remove(header::EXPIRES);
    view.insert(header::CACHE_CONTROL, HeaderValue::from_str(&value).ok()?);
    Some(view)
}

/// Whether a targeted field's value is a non-empty list of directives, each a token
/// with an optional `=token` or `="quoted"` value (RFC 9213 §2.1: an invalid value
/// is ignored, and `Cache-Control` applies).
fn valid_directives(text: &str) -> bool {
    !text.is_empty()
        && text.split(',').all(|d| {
            let d = d.trim();
            match d.split_once('=') {
                None => crate::util::is_token(d),
                Some((k, v)) => {
                    let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
                    crate::util::is_token(k.trim()) && (quoted || crate::util::is_token(v.trim()))
                }
            }
        })
}

/// Whether this cache knows the caching rules of `status` (for `must-understand`,
/// RFC 9111 §5.2.2.3): the final statuses RFC 9110 §15 defines.
fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=206 | 300..=304 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// What a cache may store, and whether `Set-Cookie` responses count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorePolicy {
    /// A shared cache (a proxy) rather than a private one (a browser's).
    pub shared: bool,
    /// Store responses that set cookies (off by default).
    pub store_set_cookie: bool,
}

/// Whether a response to a request may be stored (RFC 9111 §3), or why not.
pub fn storable(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    policy: StorePolicy,
) -> Result<(), NotStored> {
    // §3: "the request method is understood by the cache" (GET only here).
    if method != Method::GET {
        return Err(NotStored::Method(method.clone()));
    }
    // §3: "the response status code is final"; 206 needs range support in storage
    // (§3.3), 304 is a revalidation answer, not a representation.
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status(status));
    }
    let req_cc = CacheControl::from_headers(request);
    let res_cc = CacheControl::from_headers(response);
    // §3: "the no-store cache directive is not present in the response"; §5.2.1.5: a
    // request's no-store means the cache MUST NOT store any part of it or its
    // response.
    if req_cc.no_store {
        return Err(NotStored::RequestNoStore);
    }
    // §5.2.2.3: must-understand limits storing to statuses the cache understands, and
    // such a cache "SHOULD ignore the no-store directive" then.
    if res_cc.must_understand && !understood(status) {
        return Err(NotStored::NotUnderstood(status));
    }
    if res_cc.no_store && !res_cc.must_understand {
        return Err(NotStored::NoStore);
    }
    // §3: "if the cache is shared: the private response directive is either not
    // present or allows a shared cache to store a modified response".
    if policy.shared && res_cc.private {
        return Err(NotStored::Private);
    }
    // §3.5: a shared cache MUST NOT use a response to a request with Authorization
    // unless must-revalidate, public or s-maxage allows it.
    if policy.shared
        && request.contains_key(header::AUTHORIZATION)
        && !(res_cc.public || res_cc.must_revalidate || res_cc.s_maxage.is_some())
    {
        return Err(NotStored::Authorization);
    }
    if vary_names(response).is_none() {
        return Err(NotStored::VaryStar);
    }
    if !policy.store_set_cookie && response.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    // §3: the response contains public, private (private caches), Expires, max-age,
    // s-maxage (shared caches), or has a heuristically cacheable status.
    let explicit = res_cc.public
        || (!policy.shared && res_cc.private)
        || response.contains_key(header::EXPIRES)
        || res_cc.max_age.is_some()
        || (policy.shared && res_cc.s_maxage.is_some());
    if explicit || heuristically_cacheable(status) {
        Ok(())
    } else {
        Err(NotStored::NotCacheable(status))
    }
}

/// How long a stored response is fresh, and where that figure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// `s-maxage`, `max-age` or `Expires` (§4.2.1).
    Explicit(Duration),
    /// 10% of the time since `Last-Modified`, at most the cap (§4.2.2).
    Heuristic(Duration),
    /// Neither: stale at once (it may still be served after revalidation).
    None,
}

impl Lifetime {
    /// The figure itself (zero for `None`).
    pub fn duration(self) -> Duration {
        match self {
            Lifetime::Explicit(d) | Lifetime::Heuristic(d) => d,
            Lifetime::None => Duration::ZERO,
        }
    }
}

/// The freshness lifetime of a stored response (RFC 9111 §4.2.1, §4.2.2).
///
/// Without explicit expiration, a heuristically cacheable response with
/// `Last-Modified` gets 10% of the interval since then (§4.2.2: "a typical setting of
/// this fraction might be 10%"), capped at `heuristic_cap`; none otherwise.
pub fn lifetime(
    status: StatusCode,
    response: &HeaderMap,
    shared: bool,
    heuristic_cap: Duration,
) -> Lifetime {
    if let Some(d) = freshness_lifetime(response, shared) {
        return Lifetime::Explicit(d);
    }
    // §4.2.2 MUST NOT: heuristics only where explicit freshness is absent, and only
    // for heuristically cacheable statuses (or responses marked cacheable, `public`).
    let cc = CacheControl::from_headers(response);
    if !(heuristically_cacheable(status) || cc.public) {
        return Lifetime::None;
    }
    let date = response
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let modified = response
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    match (date, modified) {
        (Some(date), Some(modified)) => {
            let since = date.duration_since(modified).unwrap_or(Duration::ZERO);
            Lifetime::Heuristic((since / 10).min(heuristic_cap))
        }
        _ => Lifetime::None,
    }
}

/// What a cache does with a stored response for a request (RFC 9111 §4, §4.2.4,
/// §5.2, RFC 5861).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh (or stale within what the request accepts): answer from the store.
    Fresh,
    /// Stale, but `max-stale` in the request accepts it (§4.2.4, §5.2.1.2).
    StaleAllowed,
    /// Stale within `stale-while-revalidate`: answer from the store and revalidate in
    /// the background (RFC 5861 §3).
    StaleWhileRevalidate,
    /// Revalidate with the origin first (§4.3), for this reason.
    Revalidate(&'static str),
}

impl fmt::Display for Reuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reuse::Fresh => f.write_str("fresh"),
            Reuse::StaleAllowed => f.write_str("stale, allowed by the request's max-stale"),
            Reuse::StaleWhileRevalidate => f.write_str("stale, served while revalidating"),
            Reuse::Revalidate(why) => write!(f, "revalidate: {why}"),
        }
    }
}

/// The reason of [`Reuse::Revalidate`] when the request itself asks for validation
/// (`no-cache`, or `Pragma: no-cache`): RFC 9211's `fwd=request`.
pub const REQUEST_NO_CACHE: &str = "the request has no-cache";

/// Whether a stored response of `age` and freshness `lifetime` may answer a request
/// with `request` fields. `shared` applies `s-maxage` and `proxy-revalidate`
/// (§5.2.2.8, §5.2.2.10: both forbid serving stale in a shared cache).
pub fn reuse(
    request: &HeaderMap,
    response: &HeaderMap,
    lifetime: Duration,
    age: Duration,
    shared: bool,
) -> Reuse {
    reuse_with(
        request,
        &CacheControl::from_headers(response),
        lifetime,
        age,
        shared,
    )
}

/// [`reuse`], with the stored response's `Cache-Control` already parsed (a cache
/// parses it once per stored response, not once per request).
pub fn reuse_with(
    request: &HeaderMap,
    res: &CacheControl,
    lifetime: Duration,
    age: Duration,
    shared: bool,
) -> Reuse {
    let req = CacheControl::from_headers(request);
    // §5.2.1.4: request no-cache: "a cache MUST NOT use a stored response to satisfy
    // the request without successful validation"; §5.4: Pragma: no-cache where no
    // Cache-Control is present means the same.
    let pragma = !request.contains_key(header::CACHE_CONTROL)
        && request
            .get_all(header::PRAGMA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(list_elements)
            .any(|d| d.eq_ignore_ascii_case("no-cache"));
    if req.no_cache || pragma {
        return Reuse::Revalidate(REQUEST_NO_CACHE);
    }
    // §5.2.2.4: response no-cache: never reused without validation.
    if res.no_cache {
        return Reuse::Revalidate("the response has no-cache");
    }
    // §5.2.1.1: request max-age: "the client prefers a response whose age is less
    // than or equal to the specified number of seconds".
    if req.max_age.is_some_and(|m| age > Duration::from_secs(m)) {
        return Reuse::Revalidate("older than the request's max-age");
    }
    let left = lifetime.saturating_sub(age);
    if lifetime > age {
        // §5.2.1.3: min-fresh: fresh for at least that much longer.
        if req.min_fresh.is_some_and(|m| left < Duration::from_secs(m)) {
            return Reuse::Revalidate("fresh for less than the request's min-fresh");
        }
        return Reuse::Fresh;
    }
    let staleness = age - lifetime;
    // §4.2.4: "A cache MUST NOT generate a stale response if it is prohibited by an
    // explicit in-protocol directive (e.g., ... must-revalidate ...)"; §5.2.2.8 and
    // §5.2.2.10 make proxy-revalidate and s-maxage mean the same for shared caches.
    let must = res.must_revalidate || (shared && (res.proxy_revalidate || res.s_maxage.is_some()));
    if must {
        return Reuse::Revalidate("stale, and must-revalidate");
    }
    match req.max_stale {
        Some(None) => return Reuse::StaleAllowed,
        Some(Some(n)) if staleness <= Duration::from_secs(n) => return Reuse::StaleAllowed,
        _ => {}
    }
    if res
        .stale_while_revalidate
        .is_some_and(|w| staleness <= Duration::from_secs(w))
    {
        return Reuse::StaleWhileRevalidate;
    }
    Reuse::Revalidate("stale")
}

/// Whether a stale response may answer because the origin failed (RFC 5861 §4:
/// `stale-if-error` in the request or the response, within its seconds), unless
/// revalidation is required (§4.2.4).
pub fn stale_if_error(
    request: &HeaderMap,
    response: &HeaderMap,
    lifetime: Duration,
    age: Duration,
    shared: bool,
) -> bool {
    stale_if_error_with(
        request,
        &CacheControl::from_headers(response),
        lifetime,
        age,
        shared,
    )
}

/// [`stale_if_error`], with the stored response's `Cache-Control` already parsed.
pub fn stale_if_error_with(
    request: &HeaderMap,
    res: &CacheControl,
    lifetime: Duration,
    age: Duration,
    shared: bool,
) -> bool {
    let req = CacheControl::from_headers(request);
    if res.must_revalidate || (shared && (res.proxy_revalidate || res.s_maxage.is_some())) {
        return false;
    }
    let staleness = age.saturating_sub(lifetime);
    [req.stale_if_error, res.stale_if_error]
        .into_iter()
        .flatten()
        .any(|s| staleness <= Duration::from_secs(s))
}

/// The lower-case field names a response's `Vary` lists (RFC 9111 §4.1), or `None`
/// for `Vary: *`, which no request matches.
pub fn vary_names(response: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in response.get_all(header::VARY) {
        let text = value.to_str().unwrap_or("*");
        for name in list_elements(text) {
            if name == "*" {
                return None;
            }
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }
    Some(names)
}

/// A request's values of the fields `names`, normalised so that requests that would
/// get the same response compare equal (§4.1: "by adding or removing whitespace,
/// combining multiple header field lines, normalizing...": whitespace and case of
/// list elements; `Accept-Encoding` reduced to the codings wharf knows, with their
/// weights). This is the secondary cache key.
pub fn vary_key(names: &[HeaderName], request: &HeaderMap) -> Vec<(HeaderName, String)> {
    names
        .iter()
        .map(|name| {
            let joined: Vec<String> = request
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            let joined = joined.join(",");
            let value = if *name == header::ACCEPT_ENCODING {
                normalise_accept_encoding(&joined)
            } else {
                list_elements(&joined)
                    .iter()
                    .map(|e| e.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            (name.clone(), value)
        })
        .collect()
}

/// `Accept-Encoding` as the codings wharf knows, each with its weight (default 1),
/// in one order: `gzip, br` and `br;q=1, gzip` are one key, and so are `gzip, zzz`
/// and `gzip`.
fn normalise_accept_encoding(value: &str) -> String {
    let mut out: Vec<(Coding, u16)> = Vec::new();
    for element in list_elements(value) {
        let parts = params(element);
        let Some(coding) = parts.first().and_then(|t| Coding::from_token(t)) else {
            continue;
        };
        // An invalid weight makes the element invalid (RFC 9110 §12.4.2): skipped.
        let Ok(q) = parts[1..]
            .iter()
            .try_fold(None, |q, p| Ok::<_, ()>(q.or(parse_weight(p)?)))
        else {
            continue;
        };
        if !out.iter().any(|(c, _)| *c == coding) {
            out.push((coding, q.unwrap_or(1000)));
        }
    }
    out.sort_by_key(|(c, _)| c.token());
    out.iter()
        .map(|(c, q)| format!("{}={}", c.token(), fmt_q(*q)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The fields of a conditional request that revalidates a stored response (RFC 9111
/// §4.3.1): `If-None-Match` with its entity tag, and `If-Modified-Since` with its
/// `Last-Modified`.
pub fn validators(stored: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(etag) = stored.get(header::ETAG) {
        h.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = stored.get(header::LAST_MODIFIED) {
        h.insert(header::IF_MODIFIED_SINCE, modified.clone());
    }
    h
}

/// Whether a `304` (or a `206`/`200` used to freshen) may update the stored response
/// (RFC 9111 §4.3.4): its strong validator matches the stored one, or, without one,
/// its `Last-Modified` does; with neither, it applies.
pub fn freshens(stored: &HeaderMap, fresh: &HeaderMap) -> bool {
    match (stored.get(header::ETAG), fresh.get(header::ETAG)) {
        (Some(a), Some(b)) => a == b,
        (_, Some(_)) => false,
        (_, None) => match (
            stored.get(header::LAST_MODIFIED),
            fresh.get(header::LAST_MODIFIED),
        ) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        },
    }
}

/// Updates a stored response's fields from a `304` (RFC 9111 §3.2): each field of the
/// new response replaces the stored one, except those that describe the stored body,
/// which is kept (`Content-Length`, `Content-Encoding`, `Content-Range`, and the
/// digest `Content-MD5`), and hop-by-hop fields, which were never stored.
pub fn freshen(stored: &mut HeaderMap, fresh: &HeaderMap) {
    let keep = [
        header::CONTENT_LENGTH,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_ENCODING,
        header::CONTENT_RANGE,
        HeaderName::from_static("content-md5"),
    ];
    let names: Vec<HeaderName> = fresh
        .keys()
        .filter(|n| !keep.contains(n))
        .cloned()
        .collect();
    for name in names {
        stored.remove(&name);
        for v in fresh.get_all(&name) {
            stored.append(name.clone(), v.clone());
        }
    }
}

/// Whether a response to an unsafe request invalidates the stored responses of its
/// target (RFC 9111 §4.4: "a cache MUST invalidate the target URI ... when it receives
/// a non-error status code in response to an unsafe request method"), and the
/// `Location` and `Content-Location` paths it names on the same host (§4.4: MAY, but
/// only same-origin).
pub fn invalidates(
    method: &Method,
    status: StatusCode,
    response: &HeaderMap,
    host: &str,
) -> Option<Vec<String>> {
    if method.is_safe() || !(status.is_success() || status.is_redirection()) {
        return None;
    }
    let mut also = Vec::new();
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = response.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if v.starts_with('/') && !v.starts_with("//") {
            also.push(v.to_owned());
        } else if let Ok(uri) = v.parse::<http::Uri>() {
            let same = uri
                .authority()
                .is_some_and(|a| a.as_str().eq_ignore_ascii_case(host));
            if same {
                also.push(uri.path_and_query().map_or("/", |p| p.as_str()).to_owned());
            }
        }
    }
    Some(also)
}

/// `Age` for a response served from the store (RFC 9111 §5.1): whole seconds.
pub fn age_value(age: Duration) -> http::HeaderValue {
    http::HeaderValue::from(age.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::test_headers as headers;

    /// Header fields of a table row.
    type Fields = &'static [(&'static str, &'static str)];

    const SHARED: StorePolicy = StorePolicy {
        shared: true,
        store_set_cookie: false,
    };

    #[test]
    fn what_may_be_stored() {
        let get = Method::GET;
        // (method, request fields, status, response fields, policy, result, RFC)
        type Row = (
            Method,
            Fields,
            u16,
            Fields,
            StorePolicy,
            Result<(), NotStored>,
            &'static str,
        );
        let private_cache = StorePolicy::default();
        let table: Vec<Row> = vec![
            (
                get.clone(),
                &[],
                200,
                &[("cache-control", "max-age=60")],
                SHARED,
                Ok(()),
                "§3: max-age",
            ),
            (
                get.clone(),
                &[],
                200,
                &[],
                SHARED,
                Ok(()),
                "§4.2.2: 200 is heuristically cacheable",
            ),
            (
                get.clone(),
                &[],
                201,
                &[],
                SHARED,
                Err(NotStored::NotCacheable(StatusCode::CREATED)),
                "§3: 201 needs explicit freshness",
            ),
            (
                get.clone(),
                &[],
                201,
                &[("cache-control", "public")],
                SHARED,
                Ok(()),
                "§3: public",
            ),
            (
                get.clone(),
                &[],
                302,
                &[("expires", "Thu, 01 Jan 2037 00:00:00 GMT")],
                SHARED,
                Ok(()),
                "§3: Expires",
            ),
            (
                get.clone(),
                &[],
                500,
                &[("cache-control", "s-maxage=10")],
                SHARED,
                Ok(()),
                "§3: s-maxage, shared",
            ),
            (
                get.clone(),
                &[],
                500,
                &[("cache-control", "s-maxage=10")],
                private_cache,
                Err(NotStored::NotCacheable(StatusCode::INTERNAL_SERVER_ERROR)),
                "§5.2.2.10: s-maxage is for shared caches",
            ),
            (
                Method::POST,
                &[],
                200,
                &[("cache-control", "max-age=60")],
                SHARED,
                Err(NotStored::Method(Method::POST)),
                "§3: GET only",
            ),
            (
                get.clone(),
                &[],
                206,
                &[("cache-control", "max-age=60")],
                SHARED,
                Err(NotStored::Status(StatusCode::PARTIAL_CONTENT)),
                "§3.3: no partial storage",
            ),
            (
                get.clone(),
                &[],
                304,
                &[],
                SHARED,
                Err(NotStored::Status(StatusCode::NOT_MODIFIED)),
                "§4.3.4: 304 freshens",
            ),
            (
                get.clone(),
                &[("cache-control", "no-store")],
                200,
                &[("cache-control", "max-age=60")],
                SHARED,
                Err(NotStored::RequestNoStore),
                "§5.2.1.5",
            ),
            (
                get.clone(),
                &[],
                200,
                &[("cache-control", "max-age=60, no-store")],
                SHARED,
                Err(NotStored::NoStore),
                "§5.2.2.5",
            ),
            (
                get.clone(),
                &[],
                200,
                &[("cache-control", "max-age=60, must-understand, no-store")],
                SHARED,
                Ok(()),
                "§5.2.2.3: no-store ignored for an understood status",
            ),
            (
                get.clone(),
                &[],
                599,
                &[("cache-control", "max-age=60, must-understand")],
                SHARED,
                Err(NotStored::NotUnderstood(StatusCode::from_u16(599).unwrap())),
                "§5.2.2.3: a status the cache does not understand",
            ),
            (
                get.clone(),
                &[],
                200,
                &[("cache-control", "private, max-age=60")],
                SHARED,
                Err(NotStored::Private),
                "§5.2.2.7",
            ),
            (
                get.clone(),
                &[],
                200,
                &[("cache-control", "private")],
                private_cache,
                Ok(()),
                "§3: private in a private cache",
            ),
            (
                get.clone(),
                &[("authorization", "Basic x")],
                200,
                &[("cache-control", "max-age=60")],
                SHARED,
                Err(NotStored::Authorization),
                "§3.5",
            ),
            (
                get.clone(),
                &[("authorization", "Basic x")],
                200,
                &[("cache-control", "max-age=60, public")],
                SHARED,
                Ok(()),
                "§3.5: public",
            ),
            (
                get.clone(),
                &[("authorization", "Basic x")],
                200,
                &[("cache-control", "s-maxage=60")],
                SHARED,
                Ok(()),
                "§3.5: s-maxage",
            ),
            (
                get.clone(),
                &[("authorization", "Basic x")],
                200,
                &[("cache-control", "must-revalidate")],
                SHARED,
                Ok(()),
                "§3.5: must-revalidate",
            ),
            (
                get.clone(),
                &[],
                200,
                &[("vary", "Accept, *")],
                SHARED,
                Err(NotStored::VaryStar),
                "§4.1: Vary: *",
            ),
            (
                get.clone(),
                &[],
                200,
                &[("set-cookie", "a=1"), ("cache-control", "max-age=60")],
                SHARED,
                Err(NotStored::SetCookie),
                "one client's cookie",
            ),
            (
                get.clone(),
                &[],
                200,
                &[("set-cookie", "a=1"), ("cache-control", "max-age=60")],
                StorePolicy {
                    shared: true,
                    store_set_cookie: true,
                },
                Ok(()),
                "configured",
            ),
        ];
        for (method, req, status, res, policy, want, rfc) in table {
            let got = storable(
                &method,
                &headers(req),
                StatusCode::from_u16(status).unwrap(),
                &headers(res),
                policy,
            );
            assert_eq!(got, want, "{rfc}");
        }
    }

    #[test]
    fn lifetimes_explicit_and_heuristic() {
        let cap = Duration::from_secs(86_400);
        const DATE: (&str, &str) = ("date", "Mon, 10 Jan 2022 10:00:00 GMT");
        let table: &[(u16, Fields, Lifetime, &str)] = &[
            (
                200,
                &[("cache-control", "max-age=60")],
                Lifetime::Explicit(Duration::from_secs(60)),
                "§4.2.1",
            ),
            (
                200,
                &[("cache-control", "max-age=60, s-maxage=5")],
                Lifetime::Explicit(Duration::from_secs(5)),
                "§4.2.1: s-maxage first in a shared cache",
            ),
            (
                200,
                &[DATE, ("last-modified", "Mon, 10 Jan 2022 00:00:00 GMT")],
                Lifetime::Heuristic(Duration::from_secs(3600)),
                "§4.2.2: 10% of 10 hours",
            ),
            (
                200,
                &[DATE, ("last-modified", "Mon, 01 Jan 2001 00:00:00 GMT")],
                Lifetime::Heuristic(cap),
                "§4.2.2: capped",
            ),
            (
                201,
                &[DATE, ("last-modified", "Mon, 10 Jan 2022 00:00:00 GMT")],
                Lifetime::None,
                "§4.2.2: not for 201",
            ),
            (
                200,
                &[DATE],
                Lifetime::None,
                "no Last-Modified: nothing to go on",
            ),
        ];
        for (status, res, want, rfc) in table {
            let got = lifetime(
                StatusCode::from_u16(*status).unwrap(),
                &headers(res),
                true,
                cap,
            );
            assert_eq!(got, *want, "{rfc}");
        }
    }

    #[test]
    fn reuse_of_stored_responses() {
        let s = Duration::from_secs;
        // (request fields, response fields, lifetime, age, decision, RFC)
        let table: &[(Fields, Fields, u64, u64, Reuse, &str)] = &[
            (&[], &[], 60, 10, Reuse::Fresh, "§4.2: fresh"),
            (
                &[],
                &[],
                60,
                70,
                Reuse::Revalidate("stale"),
                "§4.2.4: stale",
            ),
            (
                &[("cache-control", "no-cache")],
                &[],
                60,
                10,
                Reuse::Revalidate("the request has no-cache"),
                "§5.2.1.4",
            ),
            (
                &[("pragma", "no-cache")],
                &[],
                60,
                10,
                Reuse::Revalidate("the request has no-cache"),
                "§5.4",
            ),
            (
                &[("pragma", "no-cache"), ("cache-control", "max-stale")],
                &[],
                60,
                10,
                Reuse::Fresh,
                "§5.4: Pragma ignored with Cache-Control",
            ),
            (
                &[],
                &[("cache-control", "no-cache")],
                60,
                10,
                Reuse::Revalidate("the response has no-cache"),
                "§5.2.2.4",
            ),
            (
                &[("cache-control", "max-age=5")],
                &[],
                60,
                10,
                Reuse::Revalidate("older than the request's max-age"),
                "§5.2.1.1",
            ),
            (
                &[("cache-control", "min-fresh=55")],
                &[],
                60,
                10,
                Reuse::Revalidate("fresh for less than the request's min-fresh"),
                "§5.2.1.3",
            ),
            (
                &[("cache-control", "max-stale")],
                &[],
                60,
                1000,
                Reuse::StaleAllowed,
                "§5.2.1.2",
            ),
            (
                &[("cache-control", "max-stale=20")],
                &[],
                60,
                70,
                Reuse::StaleAllowed,
                "§5.2.1.2: within",
            ),
            (
                &[("cache-control", "max-stale=5")],
                &[],
                60,
                70,
                Reuse::Revalidate("stale"),
                "§5.2.1.2: beyond",
            ),
            (
                &[("cache-control", "max-stale")],
                &[("cache-control", "must-revalidate")],
                60,
                70,
                Reuse::Revalidate("stale, and must-revalidate"),
                "§5.2.2.2",
            ),
            (
                &[("cache-control", "max-stale")],
                &[("cache-control", "proxy-revalidate")],
                60,
                70,
                Reuse::Revalidate("stale, and must-revalidate"),
                "§5.2.2.8",
            ),
            (
                &[("cache-control", "max-stale")],
                &[("cache-control", "s-maxage=60")],
                60,
                70,
                Reuse::Revalidate("stale, and must-revalidate"),
                "§5.2.2.10",
            ),
            (
                &[],
                &[("cache-control", "stale-while-revalidate=30")],
                60,
                80,
                Reuse::StaleWhileRevalidate,
                "RFC 5861 §3",
            ),
            (
                &[],
                &[("cache-control", "stale-while-revalidate=30")],
                60,
                100,
                Reuse::Revalidate("stale"),
                "RFC 5861 §3: beyond the window",
            ),
        ];
        for (req, res, life, age, want, rfc) in table {
            let got = reuse(&headers(req), &headers(res), s(*life), s(*age), true);
            assert_eq!(got, *want, "{rfc}");
        }
        let res = headers(&[("cache-control", "stale-if-error=30")]);
        assert!(
            stale_if_error(&HeaderMap::new(), &res, s(60), s(80), true),
            "RFC 5861 §4"
        );
        assert!(!stale_if_error(
            &HeaderMap::new(),
            &res,
            s(60),
            s(100),
            true
        ));
        let req = headers(&[("cache-control", "stale-if-error=100")]);
        assert!(
            stale_if_error(&req, &HeaderMap::new(), s(60), s(100), true),
            "in the request"
        );
        let strict = headers(&[("cache-control", "stale-if-error=30, must-revalidate")]);
        assert!(
            !stale_if_error(&HeaderMap::new(), &strict, s(60), s(70), true),
            "§4.2.4"
        );
    }

    #[test]
    fn vary_selects_by_normalised_request_fields() {
        let res = headers(&[
            ("vary", "Accept-Encoding, accept-language"),
            ("vary", "Accept-Encoding"),
        ]);
        let names = vary_names(&res).unwrap();
        assert_eq!(
            names,
            [header::ACCEPT_ENCODING, header::ACCEPT_LANGUAGE],
            "§4.1: one list, names once"
        );
        let key = |pairs: &[(&str, &str)]| vary_key(&names, &headers(pairs));
        assert_eq!(
            key(&[("accept-encoding", "gzip, br")]),
            key(&[("accept-encoding", "br;q=1.0,GZIP")])
        );
        assert_eq!(
            key(&[("accept-encoding", "gzip, zzz")]),
            key(&[("accept-encoding", "gzip")]),
            "unknown codings change nothing"
        );
        assert_ne!(
            key(&[("accept-encoding", "gzip")]),
            key(&[("accept-encoding", "gzip;q=0")])
        );
        assert_ne!(
            key(&[("accept-encoding", "gzip")]),
            key(&[]),
            "absent is its own value"
        );
        assert_eq!(
            key(&[("accept-language", "en, fr")]),
            key(&[("accept-language", "EN,fr")])
        );
        assert!(vary_names(&headers(&[("vary", "*")])).is_none());
    }

    #[test]
    fn targeted_fields_replace_cache_control_for_a_shared_cache() {
        // RFC 9213 §2.1: the first targeted field with a value decides; Cache-Control
        // and Expires are ignored.
        let res = headers(&[
            ("cache-control", "no-store"),
            ("expires", "Mon, 10 Jan 2022 10:00:00 GMT"),
            ("surrogate-control", "max-age=60"),
        ]);
        let view = targeted(&res).unwrap();
        assert_eq!(view["cache-control"], "max-age=60");
        assert!(!view.contains_key("expires"));
        let both = headers(&[
            ("cdn-cache-control", "max-age=5"),
            ("surrogate-control", "no-store"),
        ]);
        assert_eq!(
            targeted(&both).unwrap()["cache-control"],
            "max-age=5",
            "CDN-Cache-Control first"
        );
        let invalid = headers(&[
            ("cdn-cache-control", "max-age=5,,"),
            ("cache-control", "max-age=1"),
        ]);
        assert!(targeted(&invalid).is_none(), "an invalid value is ignored");
        let empty = headers(&[
            ("cdn-cache-control", " "),
            ("surrogate-control", "no-store"),
        ]);
        assert_eq!(
            targeted(&empty).unwrap()["cache-control"],
            "no-store",
            "an empty value does not count"
        );
        assert!(targeted(&headers(&[("cache-control", "max-age=1")])).is_none());
    }

    #[test]
    fn revalidation_and_freshening() {
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", "Mon, 10 Jan 2022 00:00:00 GMT"),
            ("content-length", "5"),
            ("cache-control", "max-age=1"),
        ]);
        let v = validators(&stored);
        assert_eq!(v["if-none-match"], "\"v1\"", "§4.3.1");
        assert_eq!(v["if-modified-since"], "Mon, 10 Jan 2022 00:00:00 GMT");
        let not_modified = headers(&[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("content-length", "0"),
        ]);
        assert!(
            freshens(&stored, &not_modified),
            "§4.3.4: the same strong validator"
        );
        assert!(!freshens(&stored, &headers(&[("etag", "\"v2\"")])));
        let mut updated = stored.clone();
        freshen(&mut updated, &not_modified);
        assert_eq!(
            updated["cache-control"], "max-age=60",
            "§3.2: new fields replace old"
        );
        assert_eq!(
            updated["content-length"], "5",
            "§3.2: Content-Length is not updated"
        );
        let mut digest = headers(&[("content-md5", "a")]);
        freshen(&mut digest, &headers(&[("content-md5", "b")]));
        assert_eq!(digest["content-md5"], "a", "the stored body's digest stays");
    }

    #[test]
    fn unsafe_requests_invalidate_their_targets() {
        let res = headers(&[
            ("location", "/items/7"),
            ("content-location", "https://other.test/x"),
        ]);
        assert_eq!(
            invalidates(&Method::POST, StatusCode::CREATED, &res, "a.test"),
            Some(vec!["/items/7".to_owned()]),
            "§4.4: same origin only"
        );
        let same = headers(&[("content-location", "http://a.test/list?page=1")]);
        assert_eq!(
            invalidates(&Method::PUT, StatusCode::OK, &same, "a.test"),
            Some(vec!["/list?page=1".to_owned()])
        );
        assert_eq!(
            invalidates(
                &Method::DELETE,
                StatusCode::INTERNAL_SERVER_ERROR,
                &res,
                "a.test"
            ),
            None,
            "§4.4: non-error only"
        );
        assert_eq!(
            invalidates(&Method::GET, StatusCode::OK, &res, "a.test"),
            None,
            "safe methods"
        );
    }
}
