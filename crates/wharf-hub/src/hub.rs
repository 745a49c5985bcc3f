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
}

/// Named channels.
pub struct Hub {
    config: Config,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    store: Option<Store>,
}

impl Hub {
    /// A hub; with `data_dir`, the channels stored there come back with their history.
    pub fn new(config: Config) -> io::Result<Hub> {
        let store = match &config.data_dir {
            Some(dir) => Some(Store::open(dir, config.history.max_messages)?),
            None => None,
        };
        let mut channels = HashMap::new();
        if let Some(store) = &store {
            for name in store.channels()? {
                let events = store.load(&name)?;
                let next = events.last().map_or(1, |e| e.id + 1);
                let first = events.first().map_or(next, |e| e.id);
                let channel = Channel::new(&name, config.history, first);
                for e in events {
                    channel.restore(e);
                }
                channels.insert(name, Arc::new(channel));
            }
        }
        Ok(Hub {
            config,
            channels: Mutex::new(channels),
            store,
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The channel `name` (created empty if new); `None` when the hub is full.
    pub fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(name) {
            return Some(c.clone());
        }
        if channels.len() >= self.config.max_channels {
            return None;
        }
        let c = Arc::new(Channel::new(name, self.config.history, 1));
        channels.insert(name.to_owned(), c.clone());
        Some(c)
    }

    /// Every channel, by name.
    pub fn channels(&self) -> Vec<Arc<Channel>> {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = channels.values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// Publishes `data` on `name`: stored first when the hub has a `data_dir`.
    pub fn publish(&self, name: &str, data: Bytes) -> Result<Arc<Event>, PublishError> {
        let channel = self.channel(name).ok_or(PublishError::TooManyChannels)?;
        channel
            .publish(data, |event, kept| match &self.store {
                Some(store) => store.append(name, event, kept),
                None => Ok(()),
            })
            .map_err(PublishError::Store)
    }
}
