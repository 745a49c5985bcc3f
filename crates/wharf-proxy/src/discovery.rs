//! Service discovery: where a group learns its members, besides its static list.
//!
//! - A file (JSON or TOML) listing the member URLs, re-read every interval; an
//!   orchestrator or a deploy script rewrites it, and wharf follows.
//! - A Redis set of member URLs (`SADD services:api http://10.0.0.7:3000`), read
//!   every interval over one kept connection: the registry the note names.
//!
//! A change is applied with [`Group::update`]: requests in flight finish on the
//! members they had, members that stay keep their connections and health, new ones
//! get health checks. A source that fails, or that lists nothing usable, leaves the
//! last known list in place and says so in the log (once per failure streak).

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::group::Group;
use crate::upstream::Upstream;

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
}

/// A source and how often it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    /// Where the members come from.
    pub source: Source,
    /// Time between reads.
    pub interval: Duration,
}

/// Starts following `d` for `group`; stops once the group is gone.
pub(crate) fn spawn(group: &Arc<Group>, d: Discovery) {
    tokio::spawn(follow(Arc::downgrade(group), d));
}

async fn follow(group: Weak<Group>, d: Discovery) {
    let mut tick = tokio::time::interval(d.interval);
    let mut redis: Option<redis::aio::MultiplexedConnection> = None;
    let mut failing = false;
    loop {
        tick.tick().await;
        let listed = match &d.source {
            Source::File(path) => read_file(path).await,
            Source::Redis { url, key } => read_redis(&mut redis, url, key).await,
        };
        let Some(g) = group.upgrade() else { return };
        let members = listed.and_then(|urls| {
            if urls.is_empty() {
                return Err("no members listed".to_owned());
            }
            urls.iter()
                .map(|(u, w)| {
                    Upstream::parse(u)
                        .map(|u| (u, *w))
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()
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
    }
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
