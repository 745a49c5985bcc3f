//! The hub: channels by name, created on first use, with their history restored
//! from `data_dir` at start and every publish stored there.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::auth::Access;
use crate::channel::{Channel, Event, History};
use crate::redis::Redis;
use crate::store::Store;

/// The hub's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The path prefix channels live under (`/hub/`).
    pub mount: String,
    /// History kept per channel.
    pub history: History,
    /// Largest message a client may publish, in bytes (413 beyond it).
    pub max_message_size: usize,
    /// Channels the hub holds at most (503 beyond them).
    pub max_channels: usize,
    /// Longest wait of a long-poll (and its default).
    pub long_poll_timeout: Duration,
    /// How often an idle Server-Sent Events stream gets a comment line.
    pub sse_heartbeat: Duration,
    /// Where history is stored; `None`: memory only.
    pub data_dir: Option<PathBuf>,
    /// Share channels with other nodes through this Redis (`redis://host:port/db`).
    pub redis: Option<String>,
    /// Prefix of the Redis keys and pub/sub channels.
    pub redis_prefix: String,
    /// Who may publish and subscribe where.
    pub access: Access,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mount: "/hub/".into(),
            history: History {
                max_messages: 1000,
                max_age: None,
            },
            max_message_size: 64 * 1024,
            max_channels: 10_000,
            long_poll_timeout: Duration::from_secs(30),
            sse_heartbeat: Duration::from_secs(15),
            data_dir: None,
            redis: None,
            redis_prefix: "wharf:hub:".into(),
            access: Access::default(),
        }
    }
}

/// Why a publish failed.
#[derive(Debug)]
pub enum PublishError {
    /// The hub holds `max_channels` channels already.
    TooManyChannels,
    /// Storing the message failed; it was not published.
    Store(io::Error),
    /// Redis could not be reached or refused the message; it was not published.
    Redis(redis::RedisError),
}

/// Named channels.
pub struct Hub {
    config: Config,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    store: Option<Store>,
    redis: Option<Arc<Redis>>,
}

impl Hub {
    /// A hub: with `redis`, connected and subscribed to the other nodes' messages;
    /// with `data_dir`, the channels stored there come back with their history.
    pub async fn open(config: Config) -> io::Result<Arc<Hub>> {
        let redis = match &config.redis {
            Some(url) => {
                let keep = config.history.max_messages;
                let r = Redis::connect(url, &config.redis_prefix, keep)
                    .await
                    .map_err(|e| io::Error::other(format!("hub.redis {url}: {e}")))?;
                Some(Arc::new(r))
            }
            None => None,
        };
        let mut hub = Hub::local(config)?;
        hub.redis = redis;
        let hub = Arc::new(hub);
        if let Some(r) = &hub.redis {
            r.listen(Arc::downgrade(&hub));
        }
        Ok(hub)
    }

    /// The hub without Redis; with `data_dir`, the channels stored there come back
    /// with their history.
    fn local(config: Config) -> io::Result<Hub> {
        let store = match &config.data_dir {
            Some(dir) => Some(Store::open(dir, config.history.max_messages)?),
            None => None,
        };
        let mut channels = HashMap::new();
        if let Some(store) = &store {
            for name in store.channels()? {
                let events = store.load(&name)?;
                let last = events.last().map_or(0, |e| e.id);
                let channel = Channel::with_history(&name, config.history, events, last);
                channels.insert(name, Arc::new(channel));
            }
        }
        Ok(Hub {
            config,
            channels: Mutex::new(channels),
            store,
            redis: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn loaded(&self, name: &str) -> Option<Arc<Channel>> {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.get(name).cloned()
    }

    /// The channel `name`, created if new (from Redis's history when shared);
    /// `None` when the hub is full.
    pub async fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        if let Some(c) = self.loaded(name) {
            return Some(c);
        }
        let history = self.config.history;
        // Loaded before it is listed: what arrives meanwhile is a gap that the next
        // delivery fills from the history.
        let stored = match &self.redis {
            Some(r) => r.load(name).await.unwrap_or_else(|e| {
                tracing::warn!(channel = name, error = %e, "hub: history not loaded from Redis");
                (Vec::new(), 0)
            }),
            None => (Vec::new(), 0),
        };
        self.list(
            name,
            Channel::with_history(name, history, stored.0, stored.1),
        )
    }

    /// Adds `c` to the channels unless another task did first.
    fn list(&self, name: &str, c: Channel) -> Option<Arc<Channel>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(name) {
            return Some(c.clone());
        }
        if channels.len() >= self.config.max_channels {
            return None;
        }
        let c = Arc::new(c);
        channels.insert(name.to_owned(), c.clone());
        Some(c)
    }

    /// An event of a shared channel, published by any node.
    pub(crate) async fn deliver(&self, name: &str, event: Arc<Event>) {
        if let Some(c) = self.loaded(name) {
            self.insert(&c, event).await;
        } // else loaded from Redis when first used here
    }

    /// Inserts an event of a shared channel after whatever ids this node lacks before
    /// it, fetched from Redis.
    async fn insert(&self, c: &Channel, event: Arc<Event>) {
        self.fill(c, event.id).await;
        c.restore(event);
    }

    /// Fetches the ids of `c` from its next one up to `before` from Redis.
    async fn fill(&self, c: &Channel, before: u64) {
        let (Some(r), next) = (&self.redis, c.next_id()) else {
            return;
        };
        if before <= next {
            return;
        }
        match r.range(c.name(), next, before).await {
            Ok(events) => events.into_iter().for_each(|e| c.restore(e)),
            Err(e) => {
                tracing::warn!(channel = c.name(), error = %e, "hub: missing ids not fetched")
            }
        }
    }

    /// After a lost subscription: what every loaded channel missed meanwhile.
    pub(crate) async fn resync(&self) {
        for c in self.channels() {
            self.fill(&c, u64::MAX).await;
        }
    }

    /// Every channel, by name.
    pub fn channels(&self) -> Vec<Arc<Channel>> {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = channels.values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// Publishes `data` on `name`: through Redis when shared, else stored first when
    /// the hub has a `data_dir`.
    pub async fn publish(&self, name: &str, data: Bytes) -> Result<Arc<Event>, PublishError> {
        let channel = self
            .channel(name)
            .await
            .ok_or(PublishError::TooManyChannels)?;
        if let Some(r) = &self.redis {
            let event = r.publish(name, &data).await.map_err(PublishError::Redis)?;
            // At once on this node (the other nodes get it through pub/sub).
            self.insert(&channel, event.clone()).await;
            return Ok(event);
        }
        channel
            .publish(data, |event, kept| match &self.store {
                Some(store) => store.append(name, event, kept),
                None => Ok(()),
            })
            .map_err(PublishError::Store)
    }
}
