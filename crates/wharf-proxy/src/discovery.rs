//! Service discovery: where a group learns its members, besides its static list.
//!
//! - A file (JSON or TOML) listing the member URLs, re-read every interval; an
//!   orchestrator or a deploy script rewrites it, and wharf follows.
//! - A Redis set of member URLs (`SADD services:api http://10.0.0.7:3000`), read
//!   over one kept connection every interval and at once when Redis says the key
//!   changed (keyspace notifications, when the server has them on): the registry the
//!   note names.
//! - DNS: the A/AAAA records of a name (each address a member, under the URL's
//!   name and port), or its SRV records (targets, ports, weights and priorities,
//!   RFC 2782), asked again when their TTL runs out.
//!
//! A change is applied with [`Group::update`]: requests in flight finish on the
//! members they had, members that stay keep their connections and health, new ones
//! get health checks. A source that fails, or that lists nothing usable, leaves the
//! last known list in place and says so in the log (once per failure streak).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use tokio_stream::StreamExt;

use crate::group::{Group, Listed};
use crate::upstream::{Protocol, Upstream};

/// Where a group's members come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A file of member URLs: `.json` (`["http://…", …]`, or `[{"url": …, "weight":
    /// N}, …]`) or `.toml` (`to = [...]`, `weights = [...]`).
    File(PathBuf),
    /// A Redis set of member URLs.
    Redis {
        /// `redis://HOST:PORT[/DB]`.
        url: String,
        /// The set's key.
        key: String,
    },
    /// The addresses of the URL's host (A and AAAA records), each a member with the
    /// URL's scheme, name and port.
    Dns {
        /// The URL, e.g. `http://api.internal:3000`.
        url: Upstream,
        /// The DNS server to ask (else the system's, `/etc/resolv.conf`).
        resolver: Option<SocketAddr>,
    },
    /// The SRV records of a name (`_api._tcp.example.internal`): each target's
    /// addresses at its port, with its weight and priority.
    Srv {
        /// The SRV name.
        name: String,
        /// How to talk to the targets.
        protocol: Protocol,
        /// The DNS server to ask (else the system's, `/etc/resolv.conf`).
        resolver: Option<SocketAddr>,
    },
}

/// A source and how often it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    /// Where the members come from.
    pub source: Source,
    /// Time between reads (for DNS, the longest: records are asked again when
    /// their TTL runs out, or after this, whichever comes first).
    pub interval: Duration,
}

/// Starts following `d` for `group`; stops once the group is gone.
pub(crate) fn spawn(group: &Arc<Group>, d: Discovery) {
    tokio::spawn(follow(Arc::downgrade(group), d));
}

/// The shortest wait between DNS lookups, whatever the TTL says.
const MIN_TTL: Duration = Duration::from_secs(1);

/// How often a failed subscription to Redis keyspace notifications is tried again.
const RESUBSCRIBE: Duration = Duration::from_secs(30);

async fn follow(group: Weak<Group>, d: Discovery) {
    let mut reader = Reader::new(&d.source);
    let mut failing = false;
    loop {
        let (listed, ttl) = match reader.read(&d.source).await {
            Ok((list, ttl)) => (Ok(list), ttl),
            Err(e) => (Err(e), None),
        };
        let Some(g) = group.upgrade() else { return };
        let members = listed.and_then(|list| match list.is_empty() {
            true => Err("no members listed".to_owned()),
            false => Ok(list),
        });
        match members {
            Ok(list) => {
                if failing {
                    tracing::info!(target: "wharf::proxy", group = %g.name, "discovery works again");
                }
                failing = false;
                for added in g.update(&list) {
                    crate::health::spawn_member(&g, added);
                }
            }
            Err(why) => {
                if !failing {
                    tracing::warn!(target: "wharf::proxy", group = %g.name, source = ?d.source, reason = %why, "discovery failed; keeping the last known members");
                }
                failing = true;
            }
        }
        drop(g);
        // The TTL, at least MIN_TTL, at most the interval (which may be shorter).
        let wait = ttl.map_or(d.interval, |t| t.max(MIN_TTL).min(d.interval));
        reader.wait(wait).await;
    }
}

/// What a source keeps between reads.
enum Reader {
    File,
    Redis {
        conn: Option<redis::aio::MultiplexedConnection>,
        /// Keyspace notifications of the key, when subscribed.
        changes: Option<redis::aio::PubSubStream>,
        /// When subscribing was last tried.
        tried: Option<Instant>,
    },
    Dns(Box<Result<TokioResolver, String>>),
}

impl Reader {
    fn new(source: &Source) -> Reader {
        match source {
            Source::File(_) => Reader::File,
            Source::Redis { .. } => Reader::Redis {
                conn: None,
                changes: None,
                tried: None,
            },
            Source::Dns { resolver, .. } | Source::Srv { resolver, .. } => {
                Reader::Dns(Box::new(dns_resolver(*resolver)))
            }
        }
    }

    /// The members listed now, and (DNS) how long the answer holds.
    async fn read(&mut self, source: &Source) -> Result<(Vec<Listed>, Option<Duration>), String> {
        match (self, source) {
            (Reader::File, Source::File(path)) => Ok((parsed(read_file(path).await?)?, None)),
            (
                Reader::Redis {
                    conn,
                    changes,
                    tried,
                },
                Source::Redis { url, key },
            ) => {
                // Subscribing again after a failure only now and then: polling goes on.
                let due = tried.is_none_or(|t| t.elapsed() >= RESUBSCRIBE);
                if changes.is_none() && due {
                    *tried = Some(Instant::now());
                    *changes = subscribe(url, key).await;
                }
                Ok((parsed(read_redis(conn, url, key).await?)?, None))
            }
            (Reader::Dns(resolver), Source::Dns { url, .. }) => {
                let r = resolver.as_ref().as_ref().map_err(Clone::clone)?;
                let (addrs, ttl) = lookup_ip(r, url.tls_name()).await?;
                let port = url.port();
                let list = addrs
                    .into_iter()
                    .map(|ip| Listed::new(url.at(SocketAddr::new(ip, port)), 1, 0))
                    .collect();
                Ok((list, Some(ttl)))
            }
            (Reader::Dns(resolver), Source::Srv { name, protocol, .. }) => {
                let r = resolver.as_ref().as_ref().map_err(Clone::clone)?;
                let (list, ttl) = lookup_srv(r, name, *protocol).await?;
                Ok((list, Some(ttl)))
            }
            _ => unreachable!("a reader is made for its source"),
        }
    }

    /// Waits `wait`, or (Redis) until the key changes.
    async fn wait(&mut self, wait: Duration) {
        if let Reader::Redis {
            changes: Some(changes),
            ..
        } = self
        {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                note = changes.next() => {
                    if note.is_none() {
                        // The subscription's connection is gone: subscribe again.
                        *self = Reader::Redis { conn: None, changes: None, tried: None };
                    }
                }
            }
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

/// Parses listed URLs.
fn parsed(urls: Vec<(String, u32)>) -> Result<Vec<Listed>, String> {
    urls.iter()
        .map(|(u, w)| {
            Upstream::parse(u)
                .map(|u| Listed::new(u, *w, 0))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// A resolver asking `server` (UDP, then TCP for long answers), or the system's
/// name servers. Its cache is off: each lookup asks, when the last answer's TTL ran
/// out.
fn dns_resolver(server: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match server {
        Some(addr) => {
            let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .into_iter()
                .map(|mut c| {
                    c.port = addr.port();
                    c
                })
                .collect();
            let ns = NameServerConfig::new(addr.ip(), true, connections);
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                provider,
            )
        }
        None => TokioResolver::builder(provider)
            .map_err(|e| format!("the system's DNS settings: {e}"))?,
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.cache_size = 0;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = Duration::from_secs(5);
    opts.attempts = 2;
    builder.build().map_err(|e| e.to_string())
}

/// The addresses of `name`, sorted, and how long they hold.
async fn lookup_ip(
    r: &TokioResolver,
    name: &str,
) -> Result<(Vec<std::net::IpAddr>, Duration), String> {
    let found = r
        .lookup_ip(name)
        .await
        .map_err(|e| format!("DNS {name}: {e}"))?;
    let mut addrs: Vec<_> = found.iter().collect();
    addrs.sort();
    addrs.dedup();
    Ok((addrs, ttl(found.valid_until())))
}

/// The members the SRV records of `name` list: each target's addresses at its port,
/// with its weight and priority; and how long the answers hold (the shortest TTL).
async fn lookup_srv(
    r: &TokioResolver,
    name: &str,
    protocol: Protocol,
) -> Result<(Vec<Listed>, Duration), String> {
    let found = r
        .srv_lookup(name)
        .await
        .map_err(|e| format!("DNS SRV {name}: {e}"))?;
    let mut holds = ttl(found.valid_until());
    let mut list = Vec::new();
    for record in found.answers() {
        let RData::SRV(srv) = &record.data else {
            continue;
        };
        // RFC 2782: a target of "." means the service is not available there.
        let target = srv.target.to_utf8();
        let target = target.trim_end_matches('.');
        if target.is_empty() {
            continue;
        }
        // A target that cannot be used is left out (and said so); the others serve.
        let url = format!("{}://{target}:{}", protocol.scheme(), srv.port);
        let found = match Upstream::parse(&url) {
            Ok(u) => lookup_ip(r, target).await.map(|a| (u, a)),
            Err(e) => Err(e.to_string()),
        };
        let (upstream, (addrs, t)) = match found {
            Ok(found) => found,
            Err(why) => {
                tracing::warn!(target: "wharf::proxy", srv = %name, %target, reason = %why, "SRV target left out");
                continue;
            }
        };
        holds = holds.min(t);
        for ip in addrs {
            let at = upstream.at(SocketAddr::new(ip, srv.port));
            // A weight of 0 is the least likely choice, not none (RFC 2782).
            list.push(Listed::new(at, u32::from(srv.weight).max(1), srv.priority));
        }
    }
    Ok((list, holds))
}

/// Time left until `until`.
fn ttl(until: Instant) -> Duration {
    until.saturating_duration_since(Instant::now())
}

/// Subscribes to the keyspace notifications of `key` (Redis sends them when its
/// `notify-keyspace-events` includes `K` and the set commands, e.g. `Kgs`); `None`
/// when Redis cannot be reached (polling alone goes on).
async fn subscribe(url: &str, key: &str) -> Option<redis::aio::PubSubStream> {
    let client = redis::Client::open(url).ok()?;
    let db = client.get_connection_info().redis_settings().db();
    let subscribed = async {
        let mut pubsub = client.get_async_pubsub().await.ok()?;
        pubsub
            .subscribe(format!("__keyspace@{db}__:{key}"))
            .await
            .ok()?;
        Some(pubsub)
    };
    let pubsub = tokio::time::timeout(Duration::from_secs(5), subscribed)
        .await
        .ok()??;
    Some(pubsub.into_on_message())
}

/// The URLs (and weights) a file lists.
async fn read_file(path: &PathBuf) -> Result<Vec<(String, u32)>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let toml = path.extension().is_some_and(|e| e == "toml");
    parse_list(&text, toml).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a member list: JSON (an array of URLs, or of `{"url", "weight"}`) or TOML
/// (`to` and optional `weights`).
pub(crate) fn parse_list(text: &str, toml: bool) -> Result<Vec<(String, u32)>, String> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Url(String),
        Weighted { url: String, weight: u32 },
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TomlList {
        to: Vec<String>,
        #[serde(default)]
        weights: Vec<u32>,
    }
    if toml {
        let l: TomlList = toml::from_str(text).map_err(|e| e.to_string())?;
        if !l.weights.is_empty() && l.weights.len() != l.to.len() {
            return Err("weights needs one weight per URL of to".into());
        }
        let weights = l.weights.into_iter().chain(std::iter::repeat(1));
        return Ok(l.to.into_iter().zip(weights).collect());
    }
    let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .map(|e| match e {
            Entry::Url(u) => (u, 1),
            Entry::Weighted { url, weight } => (url, weight),
        })
        .collect())
}

/// The members of a Redis set, over a connection kept between reads (opened again
/// after a failure).
async fn read_redis(
    conn: &mut Option<redis::aio::MultiplexedConnection>,
    url: &str,
    key: &str,
) -> Result<Vec<(String, u32)>, String> {
    if conn.is_none() {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let opened = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        *conn = Some(opened);
    }
    let c = conn.as_mut().expect("connected above");
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        redis::cmd("SMEMBERS")
            .arg(key)
            .query_async::<Vec<String>>(c),
    )
    .await;
    match read {
        Ok(Ok(mut urls)) => {
            urls.sort();
            Ok(urls.into_iter().map(|u| (u, 1)).collect())
        }
        Ok(Err(e)) => {
            *conn = None;
            Err(e.to_string())
        }
        Err(_) => {
            *conn = None;
            Err("no answer within 5s".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists_in_json_and_toml() {
        let json = r#"["http://a:1", {"url": "http://b:2", "weight": 3}]"#;
        assert_eq!(
            parse_list(json, false).unwrap(),
            [("http://a:1".to_owned(), 1), ("http://b:2".to_owned(), 3)]
        );
        let toml = "to = [\"http://a:1\", \"http://b:2\"]\nweights = [2, 1]\n";
        assert_eq!(
            parse_list(toml, true).unwrap(),
            [("http://a:1".to_owned(), 2), ("http://b:2".to_owned(), 1)]
        );
        assert!(parse_list("to = [\"http://a\"]\nweights = [1, 2]\n", true).is_err());
        assert!(parse_list("{\"to\": 1}", false).is_err());
        assert!(parse_list("to = [\"http://a\"]\nextra = 1\n", true).is_err());
    }
}
