//! `wharf.toml`: reading, validating, and reporting errors with their key and line.
//!
//! Each crate owns the shape of its own settings (`wharf_server::Limits`,
//! `wharf_files::SiteConfig`, `wharf_files::CacheLimits`) and validates values as they
//! are deserialized, so the TOML reader reports the key and line of a bad value. What
//! can only be checked afterwards (a root that does not exist, a name used twice) is
//! located in the source with the document's spans.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use wharf_files::{CacheLimits, SiteConfig};
use wharf_server::{Http, Limits, LogFormat};

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Addresses to listen on (HTTP/1.1 and h2c, cleartext); when absent, both
    /// loopback addresses on port 8080.
    #[serde(default = "default_listen")]
    pub(crate) listen: Listen,
    /// How long shutdown waits for requests in flight.
    #[serde(
        default = "default_grace",
        deserialize_with = "wharf_server::limits::duration"
    )]
    pub(crate) shutdown_grace: Duration,
    #[serde(default)]
    pub(crate) limits: Limits,
    #[serde(default)]
    pub(crate) http: Http,
    #[serde(default)]
    pub(crate) log: LogConfig,
    #[serde(default)]
    pub(crate) file_cache: CacheLimits,
    #[serde(default, rename = "site")]
    pub(crate) sites: Vec<SiteConfig>,
    #[serde(default)]
    pub(crate) tls: TlsConfig,
    /// Where wharf keeps its local CA (default: `$XDG_DATA_HOME/wharf`).
    pub(crate) data_dir: Option<PathBuf>,
    /// `[[websocket]]` endpoints.
    #[serde(default)]
    pub(crate) websocket: Vec<WebSocketConfig>,
    /// `[hub]`: the real-time hub.
    #[serde(default)]
    pub(crate) hub: HubConfig,
    /// `[ftp]`: FTP and FTPS over the same trees.
    #[serde(default)]
    pub(crate) ftp: FtpConfig,
    /// `[proxy]`: how wharf talks to upstream servers.
    #[serde(default, rename = "proxy")]
    pub(crate) proxy_settings: ProxySettings,
    /// `[[upstream]]`: upstream groups, for `[[site.proxy]]` routes.
    #[serde(default, rename = "upstream")]
    pub(crate) upstreams: Vec<UpstreamConfig>,
    /// The reverse proxy, when there are upstream groups (from `[[upstream]]`, or
    /// `wharf proxy --to`); not a file setting.
    #[serde(skip)]
    pub(crate) proxy: Option<wharf_proxy::Config>,
    /// Every request goes to the first upstream group (`wharf proxy`).
    #[serde(skip)]
    pub(crate) proxy_everything: bool,
}

/// An `[[upstream]]` group: its members, balancing and health checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamConfig {
    /// The name `[[site.proxy]]` routes use.
    pub(crate) name: String,
    /// Member URLs, `http://HOST[:PORT]` (may be empty with `discovery`).
    #[serde(default)]
    to: Vec<String>,
    /// Weights, one per member (default: all 1).
    #[serde(default)]
    weights: Vec<u32>,
    #[serde(default)]
    balance: BalanceName,
    /// With `balance = "hash"`: `header:NAME`, `cookie:NAME`, `path` or `client_ip`.
    hash_on: Option<String>,
    /// With `balance = "sticky"`: the cookie's name.
    #[serde(default = "default_sticky_cookie")]
    sticky_cookie: String,
    /// Consecutive failures that eject a member (0: never).
    #[serde(default = "default_passive_fails")]
    passive_fails: u32,
    /// How long an ejected member is left out.
    #[serde(
        default = "default_passive_eject",
        deserialize_with = "wharf_server::limits::duration"
    )]
    passive_eject: Duration,
    /// Active checks (`[upstream.health_check]`).
    health_check: Option<HealthCheckConfig>,
    /// Where more members come from (`[upstream.discovery]`).
    pub(crate) discovery: Option<DiscoveryConfig>,
}

/// `[upstream.discovery]`: a file, a Redis set or DNS records listing the members.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiscoveryConfig {
    /// A JSON or TOML file of member URLs.
    pub(crate) file: Option<PathBuf>,
    /// A Redis server, `redis://HOST:PORT`, whose set `key` lists the member URLs.
    redis: Option<String>,
    key: Option<String>,
    /// A URL whose host's A/AAAA records are the members.
    dns: Option<String>,
    /// A name whose SRV records list the members ...
    srv: Option<String>,
    /// ... spoken to with this scheme (`http`, `h2c`, `https`).
    scheme: Option<String>,
    /// The DNS server to ask, `IP:PORT` (default: the system's).
    resolver: Option<std::net::SocketAddr>,
    /// Time between reads.
    #[serde(
        default = "default_check_interval",
        deserialize_with = "wharf_server::limits::duration"
    )]
    interval: Duration,
}

impl DiscoveryConfig {
    /// The one source it names, checked.
    fn source(&self) -> Result<wharf_proxy::Source, (&'static [&'static str], String)> {
        let named = [
            self.file.is_some(),
            self.redis.is_some(),
            self.dns.is_some(),
            self.srv.is_some(),
        ];
        if named.iter().filter(|n| **n).count() != 1 {
            return Err((
                &["discovery"],
                "give one of file, redis (and key), dns or srv".into(),
            ));
        }
        let dns = self.dns.is_some() || self.srv.is_some();
        if self.resolver.is_some() && !dns {
            return Err((
                &["discovery", "resolver"],
                "only applies with dns or srv".into(),
            ));
        }
        if self.scheme.is_some() && self.srv.is_none() {
            return Err((&["discovery", "scheme"], "only applies with srv".into()));
        }
        if self.key.is_some() && self.redis.is_none() {
            return Err((&["discovery", "key"], "only applies with redis".into()));
        }
        if let Some(f) = &self.file {
            return Ok(wharf_proxy::Source::File(f.clone()));
        }
        if let Some(url) = &self.redis {
            let key = self.key.clone().ok_or((
                &["discovery", "redis"] as &[_],
                "needs key (the set of member URLs)".to_owned(),
            ))?;
            return Ok(wharf_proxy::Source::Redis {
                url: url.clone(),
                key,
            });
        }
        if let Some(url) = &self.dns {
            let bad = |e: String| (&["discovery", "dns"] as &[_], e);
            let url = wharf_proxy::Upstream::parse(url).map_err(|e| bad(e.to_string()))?;
            if url.tls_name().parse::<std::net::IpAddr>().is_ok() {
                return Err(bad(
                    "names an address, not a name to look up (list it in to)".into(),
                ));
            }
            return Ok(wharf_proxy::Source::Dns {
                url,
                resolver: self.resolver,
            });
        }
        let name = self.srv.clone().unwrap_or_default();
        let protocol = match self.scheme.as_deref().unwrap_or("http") {
            "http" => wharf_proxy::Protocol::Http1,
            "h2c" => wharf_proxy::Protocol::H2c,
            "https" => wharf_proxy::Protocol::Tls,
            _ => {
                return Err((
                    &["discovery", "scheme"],
                    "expected \"http\", \"h2c\" or \"https\"".into(),
                ))
            }
        };
        Ok(wharf_proxy::Source::Srv {
            name,
            protocol,
            resolver: self.resolver,
        })
    }
}

/// `upstream.balance`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum BalanceName {
    #[default]
    RoundRobin,
    LeastRequests,
    Hash,
    Sticky,
}

/// `[upstream.health_check]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckConfig {
    path: String,
    #[serde(
        default = "default_check_interval",
        deserialize_with = "wharf_server::limits::duration"
    )]
    interval: Duration,
    #[serde(
        default = "default_check_timeout",
        deserialize_with = "wharf_server::limits::duration"
    )]
    timeout: Duration,
    #[serde(default = "default_check_passes")]
    passes: u32,
    #[serde(default = "default_passive_fails")]
    fails: u32,
}

fn default_sticky_cookie() -> String {
    "wharf_upstream".into()
}

fn default_passive_fails() -> u32 {
    wharf_proxy::Passive::default().fails
}

fn default_passive_eject() -> Duration {
    wharf_proxy::Passive::default().eject
}

fn default_check_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_check_passes() -> u32 {
    2
}

impl UpstreamConfig {
    /// The group this table describes, or the key at fault and why.
    pub(crate) fn group(
        &self,
    ) -> Result<wharf_proxy::GroupConfig, (&'static [&'static str], String)> {
        if self.to.is_empty() && self.discovery.is_none() {
            return Err((
                &["to"],
                "needs at least one URL (or a [upstream.discovery])".into(),
            ));
        }
        let discovery = match &self.discovery {
            None => None,
            Some(d) => {
                let source = d.source()?;
                Some(wharf_proxy::Discovery {
                    source,
                    interval: d.interval,
                })
            }
        };
        let members = self
            .to
            .iter()
            .map(|u| wharf_proxy::Upstream::parse(u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (&["to"] as &[_], e.to_string()))?;
        let weights = match self.weights.len() {
            0 => vec![1; members.len()],
            n if n == members.len() => self.weights.clone(),
            _ => return Err((&["weights"], "needs one weight per URL of `to`".into())),
        };
        if weights.contains(&0) {
            return Err((&["weights"], "must be at least 1".into()));
        }
        let balance = match (self.balance, &self.hash_on) {
            (BalanceName::Hash, Some(on)) => {
                wharf_proxy::Balance::Hash(hash_on(on).map_err(|e| (&["hash_on"] as &[_], e))?)
            }
            (BalanceName::Hash, None) => {
                return Err((&["balance"], "\"hash\" needs hash_on".into()))
            }
            (_, Some(_)) => {
                return Err((&["hash_on"], "only applies with balance = \"hash\"".into()))
            }
            (BalanceName::RoundRobin, None) => wharf_proxy::Balance::RoundRobin,
            (BalanceName::LeastRequests, None) => wharf_proxy::Balance::LeastRequests,
            (BalanceName::Sticky, None) => wharf_proxy::Balance::Sticky {
                cookie: self.sticky_cookie.clone(),
            },
        };
        let check = match &self.health_check {
            None => None,
            Some(h) => {
                if !h.path.starts_with('/') {
                    return Err((
                        &["health_check", "path"],
                        "must start with / (a request path)".into(),
                    ));
                }
                if h.passes == 0 || h.fails == 0 {
                    return Err((
                        &["health_check"],
                        "passes and fails must be at least 1".into(),
                    ));
                }
                Some(wharf_proxy::ActiveCheck {
                    path: h.path.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    passes: h.passes,
                    fails: h.fails,
                })
            }
        };
        Ok(wharf_proxy::GroupConfig {
            name: self.name.clone(),
            members: members.into_iter().zip(weights).collect(),
            balance,
            passive: wharf_proxy::Passive {
                fails: self.passive_fails,
                eject: self.passive_eject,
            },
            check,
            discovery,
        })
    }
}

/// `hash_on`: `header:NAME`, `cookie:NAME`, `path` or `client_ip`.
fn hash_on(text: &str) -> Result<wharf_proxy::HashOn, String> {
    match text.split_once(':') {
        Some(("header", name)) => http::HeaderName::from_bytes(name.trim().as_bytes())
            .map(wharf_proxy::HashOn::Header)
            .map_err(|_| format!("{name:?} is not a field name")),
        Some(("cookie", name)) if !name.trim().is_empty() => {
            Ok(wharf_proxy::HashOn::Cookie(name.trim().to_owned()))
        }
        None if text == "path" => Ok(wharf_proxy::HashOn::Path),
        None if text == "client_ip" => Ok(wharf_proxy::HashOn::ClientIp),
        _ => Err(format!(
            "{text:?}: expected header:NAME, cookie:NAME, path or client_ip"
        )),
    }
}

/// `[proxy]`: timeouts, connection pools, retries and trust, for every upstream.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ProxySettings {
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    connect_timeout: Duration,
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    response_timeout: Duration,
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    body_timeout: Duration,
    max_body: u64,
    retries: u32,
    max_idle: usize,
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    idle_timeout: Duration,
    max_connections: usize,
    max_pending: usize,
    #[serde(deserialize_with = "cidrs")]
    trusted_proxies: Vec<wharf_proxy::Cidr>,
    host: ProxyHost,
    /// Signs sticky-session cookies; give every node the same one (default: random
    /// per start).
    sticky_key: Option<String>,
    /// CA certificates (PEM) for `https://` upstreams instead of the system's roots.
    pub(crate) ca: Option<PathBuf>,
    /// A client certificate chain (PEM) for `https://` upstreams (mutual TLS) ...
    pub(crate) client_cert: Option<PathBuf>,
    /// ... and its key.
    pub(crate) client_key: Option<PathBuf>,
    /// `[proxy.cache]`: the shared cache, on when the table is present.
    pub(crate) cache: Option<CacheSettings>,
}

/// `[proxy.cache]`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct CacheSettings {
    max_bytes: u64,
    max_object: u64,
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    heuristic_cap: Duration,
    store_set_cookie: bool,
    /// Grace given to responses that name none (RFC 5861); none when absent.
    #[serde(default, deserialize_with = "optional_duration")]
    stale_while_revalidate: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    stale_if_error: Option<Duration>,
    /// Request parts added to the key: `header:NAME`, `cookie:NAME`, `client_ip`.
    #[serde(deserialize_with = "key_parts")]
    key: Vec<wharf_proxy::HashOn>,
    #[serde(deserialize_with = "cidrs")]
    purge_from: Vec<wharf_proxy::Cidr>,
    /// The disk tier's directory (relative to the configuration file).
    pub(crate) dir: Option<PathBuf>,
    disk_max_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        let d = wharf_proxy::CacheConfig::default();
        CacheSettings {
            max_bytes: d.max_bytes,
            max_object: d.max_object,
            heuristic_cap: d.heuristic_cap,
            store_set_cookie: d.store_set_cookie,
            stale_while_revalidate: None,
            stale_if_error: None,
            key: d.key,
            purge_from: d.purge_from,
            dir: d.dir,
            disk_max_bytes: d.disk_max_bytes,
        }
    }
}

/// `[proxy.cache] key`: what `hash_on` names, but the path (always in the key).
fn key_parts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<wharf_proxy::HashOn>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| match hash_on(s) {
            Ok(wharf_proxy::HashOn::Path) => Err(format!(
                "{s:?}: the path is always part of the key; expected header:NAME, cookie:NAME or client_ip"
            )),
            other => other,
        })
        .map(|r| r.map_err(serde::de::Error::custom))
        .collect()
}

/// `proxy.host`: the `Host` sent upstream.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProxyHost {
    /// The client's.
    #[default]
    Keep,
    /// The upstream's, from its URL.
    Upstream,
}

fn cidrs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<wharf_proxy::Cidr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

impl Default for ProxySettings {
    fn default() -> Self {
        let d = wharf_proxy::Config::new(Vec::new());
        ProxySettings {
            connect_timeout: d.pool.connect_timeout,
            response_timeout: d.response_timeout,
            body_timeout: d.body_timeout,
            max_body: d.max_body,
            retries: d.retries,
            max_idle: d.pool.max_idle,
            idle_timeout: d.pool.idle_timeout,
            max_connections: d.pool.max_connections,
            max_pending: d.pool.max_pending,
            trusted_proxies: d.trusted_proxies,
            host: ProxyHost::Keep,
            sticky_key: None,
            ca: None,
            client_cert: None,
            client_key: None,
            cache: None,
        }
    }
}

impl ProxySettings {
    /// The proxy's configuration for `groups`, with these settings.
    pub(crate) fn proxy(&self, groups: Vec<wharf_proxy::GroupConfig>) -> wharf_proxy::Config {
        let mut c = wharf_proxy::Config::new(Vec::new());
        c.groups = groups;
        c.sticky_key = self.sticky_key.as_ref().map(|k| k.clone().into_bytes());
        c.cache = self.cache.as_ref().map(|k| wharf_proxy::CacheConfig {
            max_bytes: k.max_bytes,
            max_object: k.max_object,
            heuristic_cap: k.heuristic_cap,
            store_set_cookie: k.store_set_cookie,
            stale_while_revalidate: k.stale_while_revalidate.unwrap_or_default(),
            stale_if_error: k.stale_if_error.unwrap_or_default(),
            key: k.key.clone(),
            purge_from: k.purge_from.clone(),
            dir: k.dir.clone(),
            disk_max_bytes: k.disk_max_bytes,
        });
        c.tls = wharf_proxy::UpstreamTls {
            ca: self.ca.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        };
        c.pool = wharf_proxy::PoolLimits {
            max_idle: self.max_idle,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_pending: self.max_pending,
            connect_timeout: self.connect_timeout,
        };
        c.response_timeout = self.response_timeout;
        c.body_timeout = self.body_timeout;
        c.max_body = self.max_body;
        c.retries = self.retries;
        c.trusted_proxies = self.trusted_proxies.clone();
        c.host = match self.host {
            ProxyHost::Keep => wharf_proxy::HostHeader::Keep,
            ProxyHost::Upstream => wharf_proxy::HostHeader::Upstream,
        };
        c
    }
}

/// `[ftp]`: FTP and FTPS listeners, users and limits (off while `listen` and
/// `implicit_listen` are empty).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FtpConfig {
    /// Addresses for FTP (explicit FTPS with `AUTH TLS` where TLS is set up).
    pub(crate) listen: Vec<SocketAddr>,
    /// Addresses for implicit FTPS (TLS from the first byte).
    pub(crate) implicit_listen: Vec<SocketAddr>,
    /// The tree served (default: the default site's root, else the first site's).
    pub(crate) root: Option<PathBuf>,
    /// Virtual users with argon2 hashes (`wharf ftp-user add`).
    pub(crate) users_file: Option<PathBuf>,
    /// Read-only anonymous access.
    pub(crate) anonymous: bool,
    /// Users must send `AUTH TLS` before logging in (anonymous excepted).
    pub(crate) require_tls: bool,
    /// Data connections must be protected (`PROT P`).
    pub(crate) require_tls_data: bool,
    /// Passive data ports, `"50000-50100"` (default: any free port).
    pub(crate) passive_ports: Option<PortRange>,
    /// The address passive mode gives clients outside loopback and private networks.
    pub(crate) passive_address: Option<std::net::IpAddr>,
    /// Most sessions at once.
    pub(crate) max_sessions: usize,
    /// Most sessions at once from one address.
    pub(crate) max_sessions_per_ip: usize,
    /// A silent control connection is closed after this long.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) idle_timeout: Duration,
    /// Longest wait for a data connection, or for progress on one.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) data_timeout: Duration,
    /// Longest command line, in bytes.
    pub(crate) max_line: usize,
    /// Delay before a failed login is answered.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) login_delay: Duration,
    /// Failed logins from one address before it is locked out.
    pub(crate) max_login_failures: u32,
    /// How long a locked-out address is refused.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) lockout: Duration,
    /// An interrupted upload leaves what arrived in place, for `REST` to resume.
    pub(crate) keep_partial_uploads: bool,
    /// Uploads reach the disk before they are renamed into place.
    pub(crate) sync_uploads: bool,
}

impl Default for FtpConfig {
    fn default() -> Self {
        let d = wharf_ftp::Config::new(".");
        FtpConfig {
            listen: Vec::new(),
            implicit_listen: Vec::new(),
            root: None,
            users_file: None,
            anonymous: d.anonymous,
            require_tls: d.require_tls,
            require_tls_data: d.require_tls_data,
            passive_ports: None,
            passive_address: None,
            max_sessions: d.max_sessions,
            max_sessions_per_ip: d.max_sessions_per_ip,
            idle_timeout: d.idle_timeout,
            data_timeout: d.data_timeout,
            max_line: d.max_line,
            login_delay: d.login_delay,
            max_login_failures: d.max_login_failures,
            lockout: d.lockout,
            keep_partial_uploads: d.keep_partial_uploads,
            sync_uploads: d.sync_uploads,
        }
    }
}

impl FtpConfig {
    /// Whether FTP is served.
    pub(crate) fn enabled(&self) -> bool {
        !(self.listen.is_empty() && self.implicit_listen.is_empty())
    }
}

/// A port range, `"50000-50100"`: unprivileged ports, first not after last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortRange(pub(crate) std::ops::RangeInclusive<u16>);

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad =
            || serde::de::Error::custom(format!("{s:?}: want \"FIRST-LAST\", ports 1024-65535"));
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (a, b): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a < 1024 || a > b {
            return Err(bad());
        }
        Ok(PortRange(a..=b))
    }
}

/// `[hub]`: named channels reached by WebSocket, Server-Sent Events and (long-)polling.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HubConfig {
    /// Mount the hub.
    pub(crate) enabled: bool,
    /// The path prefix of the channels.
    pub(crate) mount: String,
    /// Messages kept per channel for clients that come back.
    pub(crate) history: usize,
    /// Messages older than this leave the history (none: only `history` counts).
    #[serde(deserialize_with = "optional_duration")]
    pub(crate) history_ttl: Option<Duration>,
    /// Largest message a client may publish, in bytes.
    pub(crate) max_message_size: usize,
    /// Channels the hub holds at most.
    pub(crate) max_channels: usize,
    /// Longest wait of a long-poll.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) long_poll_timeout: Duration,
    /// Comment lines on idle Server-Sent Events streams, this often.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) sse_heartbeat: Duration,
    /// Where history is stored, so that it survives a restart (none: memory only).
    pub(crate) data_dir: Option<PathBuf>,
    /// Share channels, ids and history with other wharf nodes through this Redis.
    pub(crate) redis: Option<String>,
    /// Prefix of the Redis keys and pub/sub channels (one per group of nodes).
    pub(crate) redis_prefix: String,
    /// What requests without a token may do; absent: everything while every listener
    /// is on loopback, nothing otherwise.
    pub(crate) anonymous: Option<HubRights>,
    /// Bearer tokens.
    #[serde(rename = "token")]
    pub(crate) tokens: Vec<HubToken>,
    /// Pages allowed to open WebSocket subscriptions (as in `[[websocket]]`).
    pub(crate) origins: OriginsConfig,
    /// WebSocket subscribers are pinged this often.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) ping_interval: Duration,
    /// A WebSocket subscriber silent this long is closed.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) idle_timeout: Duration,
    /// Bytes that may wait for a WebSocket subscriber that does not read (1008 beyond).
    pub(crate) max_queued_bytes: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        let hub = wharf_hub::Config::default();
        let ws = WebSocketConfig::default();
        HubConfig {
            enabled: true,
            mount: hub.mount,
            history: hub.history.max_messages,
            history_ttl: None,
            max_message_size: hub.max_message_size,
            max_channels: hub.max_channels,
            long_poll_timeout: hub.long_poll_timeout,
            sse_heartbeat: hub.sse_heartbeat,
            data_dir: None,
            redis: None,
            redis_prefix: hub.redis_prefix,
            anonymous: None,
            tokens: Vec::new(),
            origins: ws.origins,
            ping_interval: ws.ping_interval,
            idle_timeout: ws.idle_timeout,
            max_queued_bytes: ws.max_queued_bytes,
        }
    }
}

/// Channel patterns (`*`, `chat.*`) one may publish and subscribe to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HubRights {
    pub(crate) publish: Vec<String>,
    pub(crate) subscribe: Vec<String>,
}

/// `[[hub.token]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HubToken {
    pub(crate) token: String,
    #[serde(default)]
    pub(crate) publish: Vec<String>,
    #[serde(default)]
    pub(crate) subscribe: Vec<String>,
}

impl HubConfig {
    /// The hub's settings; `loopback_only` says whether every listener is on a
    /// loopback address (then, unless configured, anonymous clients may do anything).
    pub(crate) fn hub(&self, loopback_only: bool) -> wharf_hub::Config {
        let rights = |p: &[String], s: &[String]| wharf_hub::Rights {
            publish: p.to_vec(),
            subscribe: s.to_vec(),
        };
        let anonymous = match &self.anonymous {
            Some(r) => rights(&r.publish, &r.subscribe),
            None if loopback_only => wharf_hub::Rights::all(),
            None => wharf_hub::Rights::default(),
        };
        wharf_hub::Config {
            mount: self.mount.clone(),
            history: wharf_hub::History {
                max_messages: self.history,
                max_age: self.history_ttl,
            },
            max_message_size: self.max_message_size,
            max_channels: self.max_channels,
            long_poll_timeout: self.long_poll_timeout,
            sse_heartbeat: self.sse_heartbeat,
            data_dir: self.data_dir.clone(),
            redis: self.redis.clone(),
            redis_prefix: self.redis_prefix.clone(),
            access: wharf_hub::Access {
                anonymous,
                tokens: self
                    .tokens
                    .iter()
                    .map(|t| (t.token.clone(), rights(&t.publish, &t.subscribe)))
                    .collect(),
            },
        }
    }

    /// The WebSocket endpoint of subscribers.
    pub(crate) fn websocket(&self) -> WebSocketConfig {
        WebSocketConfig {
            origins: self.origins.clone(),
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            max_queued_bytes: self.max_queued_bytes,
            max_message_size: self.max_message_size,
            max_frame_size: self.max_message_size,
            ..WebSocketConfig::default()
        }
    }
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    wharf_server::limits::duration(d).map(Some)
}

/// `[[websocket]]`: a WebSocket endpoint at `path` on every site. (Mapped here onto
/// `wharf_ws`'s plain types: the WebSocket crate knows no configuration format.)
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WebSocketConfig {
    /// The request path, exactly.
    pub(crate) path: String,
    /// The host names it answers on (`*.example.com` too), as `[[site]] names`;
    /// empty: every site.
    pub(crate) hosts: Vec<wharf_files::config::ServerName>,
    /// What the endpoint does: `"echo"` sends every message back.
    pub(crate) serve: WebSocketService,
    /// Subprotocols, in order of preference.
    pub(crate) protocols: Vec<String>,
    /// Pages allowed to connect: `"same"` (same host and port), `"any"`, or a list of
    /// origins (`"https://app.example"`).
    pub(crate) origins: OriginsConfig,
    /// Offer permessage-deflate.
    pub(crate) deflate: bool,
    /// Largest frame, in bytes.
    pub(crate) max_frame_size: usize,
    /// Largest message, in bytes.
    pub(crate) max_message_size: usize,
    /// Bytes that may wait for a client that does not read before it is closed (1008).
    pub(crate) max_queued_bytes: usize,
    /// How often the server pings.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) ping_interval: Duration,
    /// How long a peer may stay silent before it is closed.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) idle_timeout: Duration,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        let s = wharf_ws::Settings::default();
        WebSocketConfig {
            path: String::new(),
            hosts: Vec::new(),
            serve: WebSocketService::Echo,
            protocols: Vec::new(),
            origins: OriginsConfig::Word(OriginWord::Same),
            deflate: true,
            max_frame_size: s.max_frame_size,
            max_message_size: s.max_message_size,
            max_queued_bytes: s.max_queued_bytes,
            ping_interval: s.ping_interval,
            idle_timeout: s.idle_timeout,
        }
    }
}

impl WebSocketConfig {
    /// An echo endpoint with the default settings (`--ws-echo PATH`).
    pub(crate) fn echo(path: String) -> Self {
        WebSocketConfig {
            path,
            ..WebSocketConfig::default()
        }
    }

    /// The session settings.
    pub(crate) fn settings(&self) -> wharf_ws::Settings {
        wharf_ws::Settings {
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
            max_queued_bytes: self.max_queued_bytes,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            ..wharf_ws::Settings::default()
        }
    }

    /// The handshake policy.
    pub(crate) fn policy(&self) -> wharf_ws::Policy {
        wharf_ws::Policy {
            protocols: self.protocols.clone(),
            origins: match &self.origins {
                OriginsConfig::Word(OriginWord::Same) => wharf_ws::Origins::Same,
                OriginsConfig::Word(OriginWord::Any) => wharf_ws::Origins::Any,
                OriginsConfig::List(l) => wharf_ws::Origins::List(l.clone()),
            },
            deflate: self.deflate,
        }
    }
}

/// What a `[[websocket]]` endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WebSocketService {
    /// Sends every message back.
    Echo,
}

/// `origins`: a word or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OriginsConfig {
    /// `"same"` or `"any"`.
    Word(OriginWord),
    /// Origins allowed.
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for OriginsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        let expected = "expected \"same\", \"any\" or a list of origins";
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(expected))? {
            Raw::Word(w) if w == "same" => Ok(OriginsConfig::Word(OriginWord::Same)),
            Raw::Word(w) if w == "any" => Ok(OriginsConfig::Word(OriginWord::Any)),
            Raw::Word(w) => Err(serde::de::Error::custom(format!("{expected}, not {w:?}"))),
            Raw::List(l) => Ok(OriginsConfig::List(l)),
        }
    }
}

/// The words `origins` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginWord {
    /// Same host and port.
    Same,
    /// Any page.
    Any,
}

/// `[tls]`: HTTPS listeners.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct TlsConfig {
    /// Addresses serving HTTPS (HTTP/1.1 and HTTP/2, chosen by ALPN).
    pub(crate) listen: Listen,
    /// Cleartext listeners answer every request 308 to the same URL over HTTPS.
    pub(crate) redirect: bool,
    /// How often certificate, key and CA files are checked for changes.
    #[serde(deserialize_with = "wharf_server::limits::duration")]
    pub(crate) watch_interval: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: Listen::Addrs(Vec::new()),
            redirect: false,
            watch_interval: Duration::from_secs(2),
        }
    }
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// Access-log format.
    pub(crate) access: LogFormat,
    /// Diagnostic log filter (`info`, `debug`, `wharf_server=debug`, ...).
    pub(crate) level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            access: LogFormat::Combined,
            level: "info".into(),
        }
    }
}

/// The port of the default cleartext listeners.
pub(crate) const DEFAULT_HTTP_PORT: u16 = 8080;
/// The port of the default TLS listeners (`wharf serve --tls`).
pub(crate) const DEFAULT_HTTPS_PORT: u16 = 8443;

/// Where a group of listeners (`listen`, or `tls.listen`) binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Listen {
    /// The addresses the user named; each one must be bound.
    Addrs(Vec<SocketAddr>),
    /// wharf's default when the user named none: `localhost` on this port, that is
    /// 127.0.0.1 and [::1], since clients resolving `localhost` may try either
    /// first. [::1] is left out, with a warning, on a machine without IPv6. Port 0
    /// picks one free port for both.
    Loopback(u16),
}

impl Listen {
    /// True when nothing is to be bound.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Listen::Addrs(a) if a.is_empty())
    }

    /// How many addresses are to be bound (at most, for [`Listen::Loopback`]).
    pub(crate) fn len(&self) -> usize {
        match self {
            Listen::Addrs(a) => a.len(),
            Listen::Loopback(_) => 2,
        }
    }
}

/// A `listen` array of the configuration file: the addresses it names.
impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<SocketAddr>::deserialize(d).map(Listen::Addrs)
    }
}

pub(crate) fn default_listen() -> Listen {
    Listen::Loopback(DEFAULT_HTTP_PORT)
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: default_listen(),
            shutdown_grace: default_grace(),
            limits: Limits::default(),
            http: Http::default(),
            log: LogConfig::default(),
            file_cache: CacheLimits::default(),
            sites: Vec::new(),
            tls: TlsConfig::default(),
            data_dir: None,
            websocket: Vec::new(),
            hub: HubConfig::default(),
            ftp: FtpConfig::default(),
            proxy_settings: ProxySettings::default(),
            upstreams: Vec::new(),
            proxy: None,
            proxy_everything: false,
        }
    }
}

/// A configuration error, already formatted with file, line and key.
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    /// Reads and validates `path`; site roots are resolved against its directory.
    pub(crate) fn load(path: &Path) -> Result<(Config, String), ConfigError> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let mut cfg =
            Config::parse(&src).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for site in &mut cfg.sites {
            site.root = resolve(base, &site.root);
            let t = &mut site.tls;
            for p in [&mut t.cert, &mut t.key, &mut t.client_ca]
                .into_iter()
                .flatten()
            {
                *p = resolve(base, p);
            }
        }
        if let Some(d) = &mut cfg.data_dir {
            *d = resolve(base, d);
        }
        let p = &mut cfg.proxy_settings;
        let files = cfg
            .upstreams
            .iter_mut()
            .filter_map(|u| u.discovery.as_mut()?.file.as_mut());
        let cache_dir = p.cache.as_mut().and_then(|c| c.dir.as_mut());
        for p in [
            &mut cfg.ftp.root,
            &mut cfg.ftp.users_file,
            &mut p.ca,
            &mut p.client_cert,
            &mut p.client_key,
        ]
        .into_iter()
        .flatten()
        .chain(files)
        .chain(cache_dir)
        {
            *p = resolve(base, p);
        }
        Ok((cfg, src))
    }

    /// Parses TOML text; errors name the key and line.
    pub(crate) fn parse(src: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(src).map_err(|e| e.to_string().trim_end().to_owned())?;
        cfg.check()
            .and_then(|()| cfg.check_ftp())
            .and_then(|()| cfg.check_sites())
            .and_then(|()| cfg.check_upstreams())
            .and_then(|()| cfg.check_websockets())
            .map_err(|(path, msg)| {
                let key = key_text(&path);
                match line_of(src, &path) {
                    Some(line) => format!("line {line}: {key}: {msg}"),
                    None => format!("{key}: {msg}"),
                }
            })?;
        Ok(cfg)
    }

    /// Rules that involve more than one value, or a value's context: the key at
    /// fault and what is wrong.
    fn check(&self) -> Result<(), (Vec<Step<'static>>, String)> {
        let fail = |key: &[&'static str], msg: &str| {
            Err((key.iter().map(|k| Step::Key(k)).collect(), msg.to_owned()))
        };
        let l = &self.limits;
        if self.listen.is_empty() && self.tls.listen.is_empty() {
            return fail(
                &["listen"],
                "at least one address is required (here or in tls.listen)",
            );
        }
        if self.tls.redirect && self.tls.listen.is_empty() {
            return fail(&["tls", "redirect"], "needs a TLS listener (tls.listen)");
        }
        if l.max_concurrent_streams == 0 {
            return fail(&["limits", "max_concurrent_streams"], "must be at least 1");
        }
        for (key, v) in [
            ("stream_window", l.stream_window),
            ("connection_window", l.connection_window),
        ] {
            if !(65_535..=0x7fff_ffff).contains(&v) {
                return Err((
                    vec![Step::Key("limits"), Step::Key(key)],
                    "must be between 65535 and 2147483647 (RFC 9113 §6.9.1)".into(),
                ));
            }
        }
        if l.max_connections == 0 {
            return fail(&["limits", "max_connections"], "must be at least 1");
        }
        if l.max_requests_per_connection == 0 {
            return fail(
                &["limits", "max_requests_per_connection"],
                "must be at least 1",
            );
        }
        if l.max_header_bytes < 1024 {
            return fail(&["limits", "max_header_bytes"], "must be at least 1024");
        }
        if l.max_uri_len < 16 {
            return fail(&["limits", "max_uri_len"], "must be at least 16");
        }
        if l.max_headers == 0 || l.max_headers > 256 {
            return fail(&["limits", "max_headers"], "must be between 1 and 256");
        }
        if self.file_cache.max_file > self.file_cache.max_total {
            return fail(
                &["file_cache", "max_file"],
                "must not exceed file_cache.max_total",
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return fail(
                &["log", "level"],
                &format!("invalid filter {:?}", self.log.level),
            );
        }
        Ok(())
    }
}

impl Config {
    /// `[[upstream]]` and `[[site.proxy]]` rules: groups that can be built, named once,
    /// and routes that name one.
    fn check_upstreams(&self) -> Result<(), (Vec<Step<'static>>, String)> {
        for (i, u) in self.upstreams.iter().enumerate() {
            let at =
                |key: &'static str| vec![Step::Key("upstream"), Step::Index(i), Step::Key(key)];
            if self.upstreams[..i].iter().any(|o| o.name == u.name) {
                return Err((
                    at("name"),
                    format!("{:?} names another upstream too", u.name),
                ));
            }
            u.group().map_err(|(keys, msg)| {
                let mut path = vec![Step::Key("upstream"), Step::Index(i)];
                path.extend(keys.iter().map(|k| Step::Key(k)));
                (path, msg)
            })?;
        }
        for (i, site) in self.sites.iter().enumerate() {
            for (j, route) in site.proxy.iter().enumerate() {
                let at = |key: &'static str| {
                    vec![
                        Step::Key("site"),
                        Step::Index(i),
                        Step::Key("proxy"),
                        Step::Index(j),
                        Step::Key(key),
                    ]
                };
                if !route.path.starts_with('/') {
                    return Err((at("path"), "must start with / (a path prefix)".into()));
                }
                if !self.upstreams.iter().any(|u| u.name == route.upstream) {
                    return Err((
                        at("upstream"),
                        format!("no [[upstream]] is named {:?}", route.upstream),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The reverse proxy of the `[[upstream]]` groups, if any (checked on load).
    pub(crate) fn build_proxy(&mut self) {
        if self.upstreams.is_empty() {
            return;
        }
        let groups = self
            .upstreams
            .iter()
            .filter_map(|u| u.group().ok())
            .collect();
        self.proxy = Some(self.proxy_settings.proxy(groups));
    }

    /// `[ftp]` rules.
    fn check_ftp(&self) -> Result<(), (Vec<Step<'static>>, String)> {
        let f = &self.ftp;
        let fail = |key: &'static str, msg: &str| {
            Err((vec![Step::Key("ftp"), Step::Key(key)], msg.to_owned()))
        };
        for (key, v) in [
            ("max_sessions", f.max_sessions),
            ("max_sessions_per_ip", f.max_sessions_per_ip),
            ("max_login_failures", f.max_login_failures as usize),
        ] {
            if v == 0 {
                return fail(key, "must be at least 1");
            }
        }
        if f.passive_address.is_some_and(|a| a.is_ipv6()) {
            return fail(
                "passive_address",
                "must be an IPv4 address (PASV can only name IPv4; EPSV names no address)",
            );
        }
        if f.max_line < 512 {
            return fail(
                "max_line",
                "must be at least 512 (RFC 959 path names need room)",
            );
        }
        for (key, d) in [
            ("idle_timeout", f.idle_timeout),
            ("data_timeout", f.data_timeout),
        ] {
            if d.is_zero() {
                return fail(key, "must be more than 0s");
            }
        }
        Ok(())
    }

    /// `[[websocket]]` and `[hub]` rules: a path, used once, and limits that let a
    /// message through.
    fn check_websockets(&self) -> Result<(), (Vec<Step<'static>>, String)> {
        let h = &self.hub;
        let fail = |key: &'static str, msg: &str| {
            Err((vec![Step::Key("hub"), Step::Key(key)], msg.to_owned()))
        };
        if !(h.mount.starts_with('/') && h.mount.ends_with('/')) {
            return fail("mount", "must start and end with / (a path prefix)");
        }
        if h.history == 0 {
            return fail(
                "history",
                "must keep at least 1 message (it is how clients resume)",
            );
        }
        if h.max_message_size < 125 {
            return fail("max_message_size", "must be at least 125 bytes");
        }
        if h.max_channels == 0 {
            return fail("max_channels", "must be at least 1");
        }
        if h.redis.is_some() && h.data_dir.is_some() {
            return fail(
                "data_dir",
                "not with hub.redis: shared history lives in Redis",
            );
        }
        if let Some(url) = &h.redis {
            if !(url.starts_with("redis://") || url.starts_with("unix://")) {
                return fail("redis", "must be a redis:// or unix:// URL");
            }
        }
        if h.idle_timeout <= h.ping_interval {
            return fail(
                "idle_timeout",
                "must be longer than ping_interval (a live peer answers pings)",
            );
        }
        let tokens = h.tokens.iter().map(|t| ("token", &t.publish, &t.subscribe));
        let anonymous = h
            .anonymous
            .iter()
            .map(|a| ("anonymous", &a.publish, &a.subscribe));
        for (key, publish, subscribe) in tokens.chain(anonymous) {
            for pattern in publish.iter().chain(subscribe) {
                if let Err(e) = globset::Glob::new(pattern) {
                    return fail(key, &format!("bad channel pattern {pattern:?}: {e}"));
                }
            }
        }
        if h.tokens.iter().any(|t| t.token.len() < 16) {
            return fail("token", "tokens must be at least 16 characters");
        }
        for (i, ws) in self.websocket.iter().enumerate() {
            let fail = |key: &'static str, msg: &str| {
                Err((
                    vec![Step::Key("websocket"), Step::Index(i), Step::Key(key)],
                    msg.to_owned(),
                ))
            };
            if !ws.path.starts_with('/') {
                return fail("path", "must start with / (a request path)");
            }
            if self.websocket[..i]
                .iter()
                .any(|w| w.path == ws.path && w.hosts == ws.hosts)
            {
                return fail("path", "is already a WebSocket endpoint (for these hosts)");
            }
            for (key, v) in [
                ("max_frame_size", ws.max_frame_size),
                ("max_message_size", ws.max_message_size),
                ("max_queued_bytes", ws.max_queued_bytes),
            ] {
                if v < 125 {
                    return fail(key, "must be at least 125 bytes");
                }
            }
            if ws.ping_interval.is_zero() || ws.idle_timeout.is_zero() {
                let key = if ws.ping_interval.is_zero() {
                    "ping_interval"
                } else {
                    "idle_timeout"
                };
                return fail(key, "must be more than 0s");
            }
            if ws.idle_timeout <= ws.ping_interval {
                return fail(
                    "idle_timeout",
                    "must be longer than ping_interval (a live peer answers pings)",
                );
            }
        }
        Ok(())
    }
}

/// `site[1].tls.key` for a path of steps.
fn key_text(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

impl Config {
    /// The `[site.tls]` rules that involve several keys.
    fn check_sites(&self) -> Result<(), (Vec<Step<'static>>, String)> {
        use wharf_files::ClientAuthMode;
        for (i, site) in self.sites.iter().enumerate() {
            let t = &site.tls;
            let fail = |key: &'static str, msg: &str| {
                Err((
                    vec![
                        Step::Key("site"),
                        Step::Index(i),
                        Step::Key("tls"),
                        Step::Key(key),
                    ],
                    msg.to_owned(),
                ))
            };
            match (&t.cert, &t.key) {
                (Some(_), None) => {
                    return fail("cert", "needs key (the certificate's private key)")
                }
                (None, Some(_)) => return fail("key", "needs cert (the certificate chain)"),
                _ => {}
            }
            if t.client_auth != ClientAuthMode::Off && t.client_ca.is_none() {
                return fail(
                    "client_auth",
                    "needs client_ca (the CAs client certificates chain to)",
                );
            }
            if !t.client_auth_paths.is_empty() && t.client_auth != ClientAuthMode::Optional {
                return fail(
                    "client_auth_paths",
                    "only applies with client_auth = \"optional\"",
                );
            }
        }
        Ok(())
    }
}

/// One step into a TOML document: a key of a table, or an item of an array.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The line of the value at `path` (`[Key("limits"), Key("max_connections")]`,
/// `[Key("site"), Index(1), Key("root")]`) in `src`, or of the deepest part of that
/// path written there (a site's own `[[site]]` line when it lacks the key).
pub(crate) fn line_of(src: &str, path: &[Step<'_>]) -> Option<usize> {
    use toml::de::DeValue;
    let doc = toml::de::DeTable::parse(src).ok()?;
    let mut here: Option<&toml::Spanned<DeValue<'_>>> = None;
    let mut span = None;
    for step in path {
        let next = match (step, here.map(|v| v.get_ref())) {
            (Step::Key(key), None) => doc.get_ref().iter().find(|(k, _)| k.get_ref() == key),
            (Step::Key(key), Some(DeValue::Table(t))) => t.iter().find(|(k, _)| k.get_ref() == key),
            (Step::Index(i), Some(DeValue::Array(a))) => {
                let item = a.get(*i);
                span = item.map(|v| v.span()).or(span);
                here = item;
                if item.is_some() {
                    continue;
                }
                None
            }
            _ => None,
        };
        let Some((k, v)) = next else { break };
        span = Some(k.span());
        here = Some(v);
    }
    Some(src[..span?.start].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listen, Listen::Loopback(DEFAULT_HTTP_PORT));
        assert!(c.tls.listen.is_empty());
        assert!(c.sites.is_empty());
    }

    #[test]
    fn a_listen_array_names_exactly_its_addresses() {
        let c = Config::parse("listen = [\"127.0.0.1:8080\"]\n").unwrap();
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(c.listen, Listen::Addrs(vec![v4]));
    }

    #[test]
    fn errors_name_key_and_line() {
        // (document, words the error must contain)
        let table: &[(&str, &[&str])] = &[
            ("listen = [\"127.0.0.1:80\"]\nbogus = 1\n", &["line 2", "bogus"]),
            ("[limits]\nidle_timeout = \"forever\"\n", &["line 2", "idle_timeout", "invalid duration"]),
            ("[limits]\nmax_conections = 5\n", &["line 2", "max_conections"]),
            ("listen = [\"nowhere\"]\n", &["line 1", "listen"]),
            ("[[site]]\nroot = \".\"\nnames = [\"a b\"]\n", &["line 3", "invalid server name"]),
            ("[[site]]\nroot = \".\"\n[[site.cache]]\npath = \"/a/[\"\ncache_control = \"max-age=1\"\n", &["line 4", "glob"]),
            ("[[site]]\nroot = \".\"\n[[site.cache]]\npath = \"/a\"\ncache_control = \"nonsense\"\n", &["line 5", "unknown Cache-Control directive"]),
            ("[[site]]\nroot = \".\"\ndotfiles = \"show\"\n", &["line 3", "dotfiles"]),
            ("[[site]]\nroot = \".\"\n[site.headers]\n\"Content-Type\" = \"x\"\n", &["line 4", "computed by wharf"]),
            ("[[site]]\nroot = \".\"\nlisting = \"yes\"\n", &["line 3", "listing"]),
            ("[[site]]\nnames = [\"a.test\"]\n", &["root"]),
            ("[log]\naccess = \"xml\"\n", &["line 2", "access"]),
            ("[log]\nlevel = \"[[[\"\n", &["line 2", "log.level"]),
            ("[proxy]\nbody_timeout = \"0s\"\n", &["line 2", "body_timeout", "invalid duration"]),
            ("[proxy]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", &["line 2", "prefix length"]),
            ("[proxy]\nhost = \"origin\"\n", &["line 2", "host"]),
            ("[proxy.cache]\nkey = [\"path\"]\n", &["line 2", "key", "always part of the key"]),
            ("[proxy.cache]\nkey = [\"query\"]\n", &["line 2", "key", "expected header:NAME"]),
            ("[proxy.cache]\npurge_from = [\"localhost\"]\n", &["line 2", "purge_from", "not an IP"]),
            ("[proxy.cache]\nstale_if_error = \"soon\"\n", &["line 2", "stale_if_error", "invalid duration"]),
            ("[proxy]\nretry = 2\n", &["line 2", "retry"]),
            ("[[upstream]]\nname = \"a\"\nto = []\n", &["line 3", "upstream[0].to", "at least one"]),
            ("[[upstream]]\nname = \"a\"\n[upstream.discovery]\nredis = \"redis://x\"\n", &["line 4", "upstream[0].discovery.redis", "needs key"]),
            ("[[upstream]]\nname = \"a\"\n[upstream.discovery]\ninterval = \"1s\"\n", &["upstream[0].discovery", "give one of"]),
            ("[[upstream]]\nname = \"a\"\n[upstream.discovery]\ndns = \"http://a.test\"\nsrv = \"_a._tcp.test\"\n", &["upstream[0].discovery", "give one of"]),
            ("[[upstream]]\nname = \"a\"\n[upstream.discovery]\ndns = \"http://10.0.0.1:80\"\n", &["line 4", "upstream[0].discovery.dns", "names an address"]),
            ("[[upstream]]\nname = \"a\"\n[upstream.discovery]\ndns = \"a.test\"\n", &["line 4", "upstream[0].discovery.dns", "give the scheme"]),
            ("[[upstream]]\nname = \"a\"\n[upstream.discovery]\nsrv = \"_a._tcp.test\"\nscheme = \"ftp\"\n", &["line 5", "upstream[0].discovery.scheme"]),
            ("[[upstream]]\nname = \"a\"\n[upstream.discovery]\nfile = \"a.json\"\nresolver = \"127.0.0.1:53\"\n", &["line 5", "upstream[0].discovery.resolver", "only applies"]),
            ("[[upstream]]\nname = \"a\"\n[upstream.discovery]\nsrv = \"_a._tcp.test\"\nresolver = \"localhost\"\n", &["line 5", "resolver"]),
            ("[[upstream]]\nname = \"a\"\nto = [\"ftp://x\"]\n", &["line 3", "upstream[0].to", "the scheme must be"]),
            ("[[upstream]]\nname = \"a\"\nto = [\"http://x\"]\nweights = [1, 2]\n", &["line 4", "upstream[0].weights"]),
            ("[[upstream]]\nname = \"a\"\nto = [\"http://x\"]\nbalance = \"hash\"\n", &["line 4", "needs hash_on"]),
            ("[[upstream]]\nname = \"a\"\nto = [\"http://x\"]\nbalance = \"hash\"\nhash_on = \"body\"\n", &["line 5", "hash_on"]),
            ("[[upstream]]\nname = \"a\"\nto = [\"http://x\"]\n[[upstream]]\nname = \"a\"\nto = [\"http://y\"]\n", &["line 5", "upstream[1].name"]),
            ("[[upstream]]\nname = \"a\"\nto = [\"http://x\"]\nbalance = \"random\"\n", &["line 4", "balance"]),
            ("[[site]]\nroot = \".\"\n[[site.proxy]]\npath = \"/api/\"\nupstream = \"nope\"\n", &["line 5", "site[0].proxy[0].upstream", "no [[upstream]]"]),
            ("[[upstream]]\nname = \"a\"\nto = [\"http://x\"]\n[[site]]\nroot = \".\"\n[[site.proxy]]\npath = \"api\"\nupstream = \"a\"\n", &["line 7", "path", "must start with /"]),
            ("listen = []\n", &["line 1", "listen"]),
            ("[tls]\nredirect = true\n", &["line 2", "tls.redirect"]),
            ("[tls]\nlisten = [\"127.0.0.1:1\"]\nciphers = 1\n", &["line 3", "ciphers"]),
            ("[limits]\nstream_window = 10\n", &["line 2", "limits.stream_window"]),
            ("[[site]]\nroot = \".\"\n[site.tls]\ncert = \"a.pem\"\n", &["line 4", "site[0].tls.cert", "needs key"]),
            ("[[site]]\nroot = \".\"\n[site.tls]\nclient_auth = \"required\"\n", &["line 4", "site[0].tls.client_auth", "client_ca"]),
            ("[[site]]\nroot = \".\"\n[site.tls]\nclient_auth = \"maybe\"\n", &["line 4", "client_auth"]),
            ("[[site]]\nroot = \".\"\n[site.tls]\nclient_auth_paths = [\"/a\"]\n", &["line 4", "client_auth_paths", "optional"]),
            ("[[site]]\nroot = \".\"\n[site.tls]\nhsts = \"includeSubDomains\"\n", &["line 4", "max-age"]),
            ("[limits]\nmax_connections = 0\n", &["line 2", "limits.max_connections"]),
            ("[limits]\nmax_uri_len = 0\n", &["line 2", "limits.max_uri_len"]),
            ("[limits]\nmax_headers = 257\n", &["line 2", "limits.max_headers", "256"]),
            ("[limits]\n\nmax_header_bytes = 10\n", &["line 3", "limits.max_header_bytes"]),
            ("[file_cache]\nmax_total = 10\n", &["line 1", "file_cache.max_file"]),
            ("shutdown_grace = \"0s\"\n", &["line 1", "shutdown_grace"]),
            ("[file_cache]\nmax_file = -1\n", &["line 2", "max_file"]),
            ("[[websocket]]\npath = \"ws\"\n", &["line 2", "websocket[0].path", "start with /"]),
            ("[[websocket]]\npath = \"/ws\"\n[[websocket]]\npath = \"/ws\"\n", &["line 4", "websocket[1].path", "already"]),
            ("[[websocket]]\npath = \"/ws\"\nserve = \"chat\"\n", &["line 3", "serve"]),
            ("[[websocket]]\npath = \"/ws\"\norigins = \"some\"\n", &["line 3", "same"]),
            ("[[websocket]]\npath = \"/ws\"\nmax_frame_size = 10\n", &["line 3", "websocket[0].max_frame_size"]),
            ("[[websocket]]\npath = \"/ws\"\nping_interval = \"90s\"\n", &["websocket[0].idle_timeout", "ping_interval"]),
            ("[[websocket]]\npath = \"/ws\"\nping_interval = \"0s\"\n", &["line 3", "ping_interval", "invalid duration"]),
            ("[hub]\nmount = \"/hub\"\n", &["line 2", "hub.mount"]),
            ("[hub]\nhistory = 0\n", &["line 2", "hub.history"]),
            ("[hub]\nredis = \"redis://x\"\ndata_dir = \"d\"\n", &["line 3", "hub.data_dir", "Redis"]),
            ("[hub]\nredis = \"http://x\"\n", &["line 2", "hub.redis"]),
            ("[hub]\n[[hub.token]]\ntoken = \"short\"\n", &["hub.token", "16"]),
            ("[hub]\n[hub.anonymous]\npublish = [\"[\"]\n", &["hub.anonymous", "pattern"]),
            ("[hub]\nbogus = 1\n", &["line 2", "bogus"]),
        ];
        for (doc, words) in table {
            let err = Config::parse(doc).expect_err(doc);
            for w in *words {
                assert!(err.contains(w), "{doc:?}: {err:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn finds_the_line_of_a_site_setting() {
        let src = "listen = [\"127.0.0.1:1\"]\n\n[[site]]\nroot = \"a\"\n\n[[site]]\nnames = [\"x\"]\nroot = \"b\"\n";
        let site_line = |i, key| line_of(src, &[Step::Key("site"), Step::Index(i), Step::Key(key)]);
        assert_eq!(site_line(0, "root"), Some(4));
        assert_eq!(site_line(1, "root"), Some(8));
        assert_eq!(site_line(1, "names"), Some(7));
        // A key the site does not have: the site's own table.
        assert_eq!(site_line(1, "default"), Some(6));
        assert_eq!(line_of(src, &[Step::Key("listen")]), Some(1));
    }
}
