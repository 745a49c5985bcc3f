//! Channels shared by several wharf nodes through Redis (`hub.redis`).
//!
//! Redis is where ids come from and where history lives, so every node agrees on both:
//! a publish runs one script that takes the channel's next id (`INCR`), stamps the
//! message with Redis's clock, adds it to the channel's history (a sorted set by id,
//! trimmed to the history length) and `PUBLISH`es it. Each node subscribes to every
//! channel with one `PSUBSCRIBE` and inserts what arrives into its local channel,
//! which its subscribers read exactly as in the single-node hub. A node that finds a
//! gap (it was disconnected, or a message overtook another) fetches the missing ids
//! from the history first; a channel new to a node starts from the stored history, so
//! a client that reconnects to another node resumes from its last id without loss.
//!
//! A record, in history and on the wire, is `ID TIME_MS DATA`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;

use crate::channel::Event;
use crate::hub::Hub;

/// Takes an id, stamps, stores, trims and publishes: KEYS = counter, history, topic;
/// ARGV = data, messages kept. Returns the record.
const PUBLISH: &str = r#"
local id = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rec = id .. ' ' .. ms .. ' ' .. ARGV[1]
redis.call('ZADD', KEYS[2], id, rec)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PUBLISH', KEYS[3], rec)
return rec
"#;

/// One node's link to Redis.
pub(crate) struct Redis {
    client: redis::Client,
    conn: MultiplexedConnection,
    prefix: String,
    keep: usize,
    script: redis::Script,
}

impl Redis {
    /// Connects to `url`; keys start with `prefix`; `keep` messages of history.
    pub(crate) async fn connect(url: &str, prefix: &str, keep: usize) -> redis::RedisResult<Redis> {
        let client = redis::Client::open(url)?;
        let conn = client.get_multiplexed_async_connection().await?;
        Ok(Redis {
            client,
            conn,
            prefix: prefix.to_owned(),
            keep,
            script: redis::Script::new(PUBLISH),
        })
    }

    fn key(&self, channel: &str, what: &str) -> String {
        format!("{}{channel}:{what}", self.prefix)
    }

    fn topic(&self, channel: &str) -> String {
        format!("{}{channel}", self.prefix)
    }

    /// Publishes `data` on `channel`: the event as every node will have it.
    pub(crate) async fn publish(
        &self,
        channel: &str,
        data: &[u8],
    ) -> redis::RedisResult<Arc<Event>> {
        let rec: Vec<u8> = self
            .script
            .key(self.key(channel, "id"))
            .key(self.key(channel, "log"))
            .key(self.topic(channel))
            .arg(data)
            .arg(self.keep)
            .invoke_async(&mut self.conn.clone())
            .await?;
        parse(channel, &rec).ok_or_else(|| (redis::ErrorKind::Parse, "a malformed record").into())
    }

    /// The stored history of `channel` and its last id.
    pub(crate) async fn load(&self, channel: &str) -> redis::RedisResult<(Vec<Arc<Event>>, u64)> {
        let mut conn = self.conn.clone();
        let (recs, last): (Vec<Vec<u8>>, Option<u64>) = redis::pipe()
            .zrange(self.key(channel, "log"), 0, -1)
            .get(self.key(channel, "id"))
            .query_async(&mut conn)
            .await?;
        let events = recs.iter().filter_map(|r| parse(channel, r)).collect();
        Ok((events, last.unwrap_or(0)))
    }

    /// Stored events of `channel` with ids in `from..to`.
    pub(crate) async fn range(
        &self,
        channel: &str,
        from: u64,
        to: u64,
    ) -> redis::RedisResult<Vec<Arc<Event>>> {
        let mut conn = self.conn.clone();
        let recs: Vec<Vec<u8>> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key(channel, "log"))
            .arg(from)
            .arg(format!("({to}"))
            .query_async(&mut conn)
            .await?;
        Ok(recs.iter().filter_map(|r| parse(channel, r)).collect())
    }

    /// Receives every node's messages for `hub`, for as long as it lives; after a lost
    /// connection, reconnects and fetches what each loaded channel missed.
    pub(crate) fn listen(self: &Arc<Self>, hub: Weak<Hub>) {
        let redis = self.clone();
        tokio::spawn(async move {
            loop {
                match redis.subscribe(&hub).await {
                    Ok(()) => return, // the hub is gone
                    Err(e) => {
                        tracing::warn!(error = %e, "hub: Redis subscription lost; reconnecting")
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(h) = hub.upgrade() else { return };
                h.resync().await;
            }
        });
    }

    async fn subscribe(&self, hub: &Weak<Hub>) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.psubscribe(format!("{}*", self.prefix)).await?;
        if let Some(h) = hub.upgrade() {
            h.resync().await; // what was published while not subscribed
        }
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let Some(hub) = hub.upgrade() else {
                return Ok(());
            };
            let Some(channel) = msg.get_channel_name().strip_prefix(&self.prefix) else {
                continue;
            };
            if let Some(event) = parse(channel, msg.get_payload_bytes()) {
                hub.deliver(channel, event).await;
            }
        }
        Err((redis::ErrorKind::Io, "the subscription ended").into())
    }
}

/// A record: `ID TIME_MS DATA`.
fn parse(channel: &str, rec: &[u8]) -> Option<Arc<Event>> {
    let mut parts = rec.splitn(3, |&b| b == b' ');
    let id = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let time = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let data = Bytes::copy_from_slice(parts.next()?);
    Some(Arc::new(Event::new(channel, id, time, data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse() {
        let e = parse("c", b"12 1700000000123 hello world").unwrap();
        assert_eq!(
            (e.id, e.time, &e.data[..]),
            (12, 1_700_000_000_123, &b"hello world"[..])
        );
        assert_eq!(&parse("c", b"3 4 ").unwrap().data[..], b"");
        for bad in [&b"x 1 a"[..], b"1", b"1 2", b""] {
            assert!(parse("c", bad).is_none(), "{bad:?}");
        }
    }
}
