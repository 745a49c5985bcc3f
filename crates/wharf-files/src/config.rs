//! A site's configuration, as read from `[[site]]` tables of `wharf.toml`.
//!
//! Every field is validated while it is deserialized (globs compile, Cache-Control
//! values parse, header names are legal), so a bad value is reported by the TOML
//! reader with its key and line, and a [`SiteConfig`] that exists is usable.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use http::{HeaderName, HeaderValue};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use wharf_http::cache_control::CacheControl;

/// One virtual host: a root directory and how to serve it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Host names this site answers, exact (`example.test`) or wildcard
    /// (`*.example.test`: any name ending in `.example.test`). Empty: only as default.
    #[serde(default)]
    pub names: Vec<ServerName>,
    /// Whether this site answers requests whose host matches no site.
    #[serde(default)]
    pub default: bool,
    /// The directory served. Nothing outside it is ever read.
    pub root: PathBuf,
    /// File names tried, in order, for a request naming a directory.
    #[serde(default = "default_index")]
    pub index: Vec<FileName>,
    /// Directory listings (HTML, or JSON for `Accept: application/json`) when a
    /// directory has no index file.
    #[serde(default)]
    pub listing: bool,
    /// What to do with names starting with `.` (`.well-known` is always served).
    #[serde(default)]
    pub dotfiles: DotfilePolicy,
    /// Which symbolic links to follow.
    #[serde(default)]
    pub symlinks: SymlinkPolicy,
    /// `Cache-Control` rules by URL path glob; the first match wins.
    #[serde(default)]
    pub cache: Vec<CacheRule>,
    /// Extra response header fields, added to every response of the site.
    #[serde(default)]
    pub headers: BTreeMap<HeaderNameValue, HeaderValueString>,
    /// Send a `Wharf-Explain` header with the reason for every response.
    #[serde(default)]
    pub explain: bool,
    /// Tell listeners (the hub's `_files` channel) of every change seen in the tree.
    #[serde(default)]
    pub file_events: bool,
    /// Compress compressible types on the fly (results are kept in memory).
    #[serde(default = "yes")]
    pub compress: bool,
    /// Smallest file compressed on the fly, in bytes.
    #[serde(default = "default_compress_min")]
    pub compress_min_size: u64,
    /// Derive preload hints from HTML pages (stylesheets, scripts, fonts, preloads)
    /// and send them as `103 Early Hints` and `Link` fields.
    #[serde(default = "yes")]
    pub early_hints: bool,
    /// Per-page preload lists replacing the derived hints; with `push`, the
    /// resources are also pushed over HTTP/2 to clients that allow it.
    #[serde(default)]
    pub preload: Vec<PreloadRule>,
    /// HTTPS settings (`[site.tls]`), used by TLS listeners.
    #[serde(default)]
    pub tls: SiteTlsConfig,
    /// Paths forwarded to upstream groups (`[[site.proxy]]`) instead of served from
    /// the root; the file service never sees those requests.
    #[serde(default)]
    pub proxy: Vec<ProxyRoute>,
}

/// A `[[site.proxy]]` route: requests whose path starts with `path` go to the upstream
/// group named `upstream` (an `[[upstream]]` table), path and query unchanged.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProxyRoute {
    /// The path prefix (`/api/`; `/` for everything).
    pub path: String,
    /// The name of the upstream group.
    pub upstream: String,
}

/// A `[[site.preload]]` rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreloadRule {
    /// URL path glob of the pages (`/index.html`, `/docs/**`); a directory's page is
    /// matched by its index file's path.
    pub path: PathGlob,
    /// Same-origin paths the pages need (`/style.css`); the `as` destination follows
    /// from the extension.
    pub resources: Vec<ResourcePath>,
    /// Also push them over HTTP/2 (RFC 9113 §8.4) when the client allows.
    #[serde(default)]
    pub push: bool,
}

/// A same-origin absolute path, usable inside `Link: <…>` and as a pushed `:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath(pub(crate) String);

impl<'de> Deserialize<'de> for ResourcePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.starts_with('/')
            && !s.starts_with("//")
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>\"\\`#".contains(&b));
        if !ok {
            return Err(D::Error::custom(format!(
                "resource {s:?} must be a path on this site, like \"/style.css\""
            )));
        }
        Ok(ResourcePath(s))
    }
}

/// `[site.tls]`: the site's certificate, client authentication and HSTS.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteTlsConfig {
    /// PEM certificate chain (leaf first). Without it, TLS listeners use a
    /// certificate issued by wharf's local CA.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Whether clients must present a certificate (mutual TLS).
    #[serde(default)]
    pub client_auth: ClientAuthMode,
    /// PEM bundle of the CAs client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// With `client_auth = "optional"`: URL path globs answered 403 to clients
    /// without a certificate.
    #[serde(default)]
    pub client_auth_paths: Vec<PathGlob>,
    /// `Strict-Transport-Security` value sent on HTTPS responses
    /// (`max-age=31536000; includeSubDomains`). Never sent over cleartext (RFC 6797 §7.2).
    pub hsts: Option<HstsValue>,
}

/// Client certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthMode {
    /// Not asked for.
    #[default]
    Off,
    /// Asked for; clients without one are served, except under `client_auth_paths`.
    Optional,
    /// Clients without a valid certificate are refused in the handshake.
    Required,
}

/// A `Strict-Transport-Security` value with a `max-age` (RFC 6797 §6.1).
#[derive(Clone, Debug)]
pub struct HstsValue(pub(crate) HeaderValue);

impl<'de> Deserialize<'de> for HstsValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let has_max_age = s.split(';').any(|d| {
            d.trim()
                .strip_prefix("max-age=")
                .is_some_and(|n| n.trim_matches('"').parse::<u64>().is_ok())
        });
        if !has_max_age {
            return Err(D::Error::custom(format!(
                "HSTS value {s:?} needs max-age=SECONDS (e.g. \"max-age=31536000; includeSubDomains\")"
            )));
        }
        HeaderValue::from_str(&s)
            .map(HstsValue)
            .map_err(|_| D::Error::custom(format!("HSTS value {s:?} is not a valid header value")))
    }
}

impl SiteConfig {
    /// A site serving `root` as the default site, every other setting at its default.
    pub fn new(root: impl Into<PathBuf>) -> SiteConfig {
        SiteConfig {
            names: Vec::new(),
            default: true,
            root: root.into(),
            index: default_index(),
            listing: false,
            dotfiles: DotfilePolicy::default(),
            symlinks: SymlinkPolicy::default(),
            cache: Vec::new(),
            headers: BTreeMap::new(),
            explain: false,
            file_events: false,
            compress: true,
            compress_min_size: default_compress_min(),
            early_hints: true,
            preload: Vec::new(),
            tls: SiteTlsConfig::default(),
            proxy: Vec::new(),
        }
    }
}

fn default_index() -> Vec<FileName> {
    vec![FileName("index.html".into())]
}

fn yes() -> bool {
    true
}

fn default_compress_min() -> u64 {
    256
}

/// Names starting with `.`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DotfilePolicy {
    /// Answer 404 and leave them out of listings (the default).
    #[default]
    Hide,
    /// Answer 403 (their existence is not a secret, their content is).
    Deny,
    /// Serve and list them like any other file.
    Allow,
}

/// Symbolic links met while resolving a request path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SymlinkPolicy {
    /// Follow links whose target stays inside the root (the default).
    #[default]
    WithinRoot,
    /// Follow every link, wherever it points.
    Follow,
    /// Follow none.
    Never,
}

/// A `[[site.cache]]` rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// URL path glob (`/assets/**`, `**/*.woff2`); `*` stays within one segment.
    pub path: PathGlob,
    /// The `Cache-Control` value to send (`public, max-age=31536000, immutable`).
    pub cache_control: CacheControlValue,
}

/// A validated URL path glob.
#[derive(Clone, Debug)]
pub struct PathGlob(pub(crate) globset::Glob);

impl<'de> Deserialize<'de> for PathGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.starts_with('/') && !s.starts_with("**") {
            return Err(D::Error::custom(format!(
                "path glob {s:?} must start with / or **"
            )));
        }
        PathGlob::new(&s).map_err(D::Error::custom)
    }
}

impl PathGlob {
    /// Compiles `pattern`; `*` does not cross `/`.
    pub fn new(pattern: &str) -> Result<PathGlob, String> {
        globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map(PathGlob)
            .map_err(|e| format!("invalid path glob {pattern:?}: {e}"))
    }
}

/// A `Cache-Control` value that parses to at least one known directive and is sent as
/// written (canonicalised).
#[derive(Clone, Debug)]
pub struct CacheControlValue(pub(crate) CacheControl);

impl<'de> Deserialize<'de> for CacheControlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CacheControlValue::new(&s).map_err(D::Error::custom)
    }
}

impl CacheControlValue {
    /// Parses `value`; refuses values with no known directive or contradictions.
    pub fn new(value: &str) -> Result<CacheControlValue, String> {
        let hv = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid Cache-Control value {value:?}"))?;
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, arg) = item
                .split_once('=')
                .map_or((item, None), |(n, a)| (n.trim(), Some(a.trim())));
            let name = name.to_ascii_lowercase();
            let numeric = NUMERIC_DIRECTIVES.contains(&name.as_str());
            if !numeric && !FLAG_DIRECTIVES.contains(&name.as_str()) {
                return Err(format!(
                    "unknown Cache-Control directive {name:?} in {value:?}"
                ));
            }
            let valid_arg = match arg {
                Some(a) => numeric && !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()),
                None => !numeric,
            };
            if !valid_arg {
                return Err(format!(
                    "Cache-Control directive {item:?} needs {}",
                    if numeric {
                        "a number of seconds"
                    } else {
                        "no value"
                    }
                ));
            }
        }
        let cc = CacheControl::parse([&hv]);
        if cc.is_empty() {
            return Err(format!(
                "Cache-Control value {value:?} has no known directive"
            ));
        }
        if cc.public && cc.private {
            return Err(format!(
                "Cache-Control value {value:?} is both public and private"
            ));
        }
        Ok(CacheControlValue(cc))
    }
}

/// Response directives that take seconds (RFC 9111 §5.2.2, RFC 5861).
const NUMERIC_DIRECTIVES: &[&str] = &[
    "max-age",
    "s-maxage",
    "stale-while-revalidate",
    "stale-if-error",
];
/// Response directives without a value as a site would send them (RFC 9111 §5.2.2, RFC 8246).
const FLAG_DIRECTIVES: &[&str] = &[
    "public",
    "private",
    "no-cache",
    "no-store",
    "must-revalidate",
    "proxy-revalidate",
    "no-transform",
    "must-understand",
    "immutable",
];

/// A host name a site answers: lowercase, exact or `*.`-wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerName(pub(crate) String);

impl<'de> Deserialize<'de> for ServerName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ServerName::new(&s).map_err(D::Error::custom)
    }
}

impl ServerName {
    /// Validates `name` (`example.test`, `*.example.test`, `127.0.0.1`, `[::1]`).
    pub fn new(name: &str) -> Result<ServerName, String> {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let host = lower.strip_prefix("*.").unwrap_or(&lower);
        let ok = !host.is_empty()
            && !host.contains('*')
            && (host.starts_with('[') || !host.contains(':'))
            && host.parse::<http::uri::Authority>().is_ok();
        if ok {
            Ok(ServerName(lower))
        } else {
            Err(format!(
                "invalid server name {name:?} (expected a host name, *.suffix, or IP address)"
            ))
        }
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plain file name (no `/`, not `.` or `..`), for index files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName(pub(crate) String);

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\', '\0']) {
            return Err(D::Error::custom(format!("invalid file name {s:?}")));
        }
        Ok(FileName(s))
    }
}

/// A response header name that a site may add (not one wharf computes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeaderNameValue(pub(crate) String);

/// Fields wharf sets from the file and the request, and hop-by-hop fields that belong
/// to the connection: a site cannot set them.
const COMPUTED: &[&str] = &[
    "content-length",
    "content-type",
    "content-encoding",
    "content-range",
    "transfer-encoding",
    "connection",
    "etag",
    "last-modified",
    "date",
    "cache-control",
    "expires",
    "vary",
    "accept-ranges",
    "allow",
    "location",
    "retry-after",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
];

impl<'de> Deserialize<'de> for HeaderNameValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let name = HeaderName::from_bytes(s.as_bytes())
            .map_err(|_| D::Error::custom(format!("invalid header name {s:?}")))?;
        if COMPUTED.contains(&name.as_str()) {
            return Err(D::Error::custom(format!(
                "header {s:?} is computed by wharf; use [[site.cache]] rules for caching headers"
            )));
        }
        Ok(HeaderNameValue(name.as_str().to_owned()))
    }
}

/// A legal header field value.
#[derive(Clone, Debug)]
pub struct HeaderValueString(pub(crate) HeaderValue);

impl<'de> Deserialize<'de> for HeaderValueString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HeaderValue::from_str(&s)
            .map(HeaderValueString)
            .map_err(|_| D::Error::custom(format!("invalid header value {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        for ok in [
            "example.test",
            "*.example.test",
            "EXAMPLE.test.",
            "127.0.0.1",
            "[::1]",
            "localhost",
        ] {
            assert!(ServerName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "*",
            "a*.test",
            "exa mple",
            "example.test:80",
            "*.",
            "a/b",
        ] {
            assert!(ServerName::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ServerName::new("Www.Example.TEST.").unwrap().0,
            "www.example.test"
        );
    }

    #[test]
    fn cache_control_values() {
        assert!(CacheControlValue::new("public, max-age=60, immutable").is_ok());
        assert!(CacheControlValue::new("no-store").is_ok());
        assert!(CacheControlValue::new("bogus").is_err());
        assert!(CacheControlValue::new("public, private").is_err());
        assert!(CacheControlValue::new("max-age=\n").is_err());
        assert!(
            CacheControlValue::new("max-age=1h").is_err(),
            "seconds only"
        );
        assert!(CacheControlValue::new("public, immutible").is_err(), "typo");
        assert!(CacheControlValue::new("no-store=5").is_err());
        assert!(CacheControlValue::new("Public, MAX-AGE=60").is_ok());
    }

    #[test]
    fn globs_do_not_cross_segments_with_one_star() {
        let g = PathGlob::new("/assets/*.css").unwrap().0.compile_matcher();
        assert!(g.is_match("/assets/a.css"));
        assert!(!g.is_match("/assets/x/a.css"));
        let g = PathGlob::new("/assets/**").unwrap().0.compile_matcher();
        assert!(g.is_match("/assets/x/a.css"));
    }
}
