//! One channel: its messages in order, each with an id and a time, the history kept
//! for clients that come back, and the cursors of its subscribers.
//!
//! Ids are per channel and increase by one from 1, so a cursor is just the next id it
//! wants and the history is a ring indexed by id. A publish appends under the
//! channel's lock and wakes every waiting cursor; each cursor then takes what is new
//! from the ring. A cursor whose next id has already left the history gets
//! [`Missed`] naming the lost ids, and continues from the oldest kept.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::Notify;

/// One published message.
#[derive(Debug)]
pub struct Event {
    /// Its id in the channel: 1, 2, 3, ...
    pub id: u64,
    /// When it was published, in milliseconds since the Unix epoch.
    pub time: u64,
    /// The message (UTF-8 text).
    pub data: Bytes,
    /// The message as the JSON object every transport sends:
    /// `{"id":1,"time":1700000000000,"channel":"chat","data":"hello"}`.
    pub json: Bytes,
}

impl Event {
    /// An event of `channel`.
    pub fn new(channel: &str, id: u64, time: u64, data: Bytes) -> Self {
        let text = std::str::from_utf8(&data).unwrap_or_default();
        let json = serde_json::json!({"id": id, "time": time, "channel": channel, "data": text});
        Event {
            id,
            time,
            data,
            json: Bytes::from(json.to_string()),
        }
    }
}

/// Ids a cursor asked for that are no longer kept (`from..=to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The first id lost.
    pub from: u64,
    /// The last id lost.
    pub to: u64,
}

/// How much history a channel keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// Messages kept (the newest).
    pub max_messages: usize,
    /// Messages older than this are dropped.
    pub max_age: Option<Duration>,
}

/// A named channel.
pub struct Channel {
    name: String,
    state: Mutex<State>,
    notify: Notify,
    subscribers: AtomicUsize,
    history: History,
}

struct State {
    /// The id the next message gets.
    next_id: u64,
    /// Kept messages, oldest first; ids are contiguous.
    kept: VecDeque<Arc<Event>>,
}

impl Channel {
    /// An empty channel whose next message gets `next_id`.
    pub fn new(name: &str, history: History, next_id: u64) -> Self {
        Channel {
            name: name.to_owned(),
            state: Mutex::new(State {
                next_id,
                kept: VecDeque::new(),
            }),
            notify: Notify::new(),
            subscribers: AtomicUsize::new(0),
            history,
        }
    }

    /// A channel whose history is `events` (in id order) and whose last id is `last`
    /// (history kept elsewhere: a log, Redis).
    pub fn with_history(name: &str, history: History, events: Vec<Arc<Event>>, last: u64) -> Self {
        let first = events.first().map_or(last + 1, |e| e.id);
        let c = Channel::new(name, history, first);
        events.into_iter().for_each(|e| c.restore(e));
        c
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a message now: its event, with the next id. `persist` stores it first
    /// (under the channel's lock, so stored records are in id order), given the
    /// history as it will be after it; if storing fails, nothing is published.
    pub fn publish<P>(&self, data: Bytes, persist: P) -> io::Result<Arc<Event>>
    where
        P: FnOnce(&Event, &dyn Fn() -> Vec<Arc<Event>>) -> io::Result<()>,
    {
        let mut state = self.lock();
        let event = Arc::new(Event::new(&self.name, state.next_id, now_ms(), data));
        let after = || {
            let skip = (state.kept.len() + 1).saturating_sub(self.history.max_messages);
            let mut v: Vec<_> = state.kept.iter().skip(skip).cloned().collect();
            v.push(event.clone());
            v
        };
        persist(&event, &after)?;
        self.insert_locked(&mut state, event.clone());
        drop(state);
        self.notify.notify_waiters();
        Ok(event)
    }

    /// Puts back an event read from storage or another node (ids must increase).
    pub fn restore(&self, event: Arc<Event>) {
        let mut state = self.lock();
        if event.id >= state.next_id {
            self.insert_locked(&mut state, event);
        }
        drop(state);
        self.notify.notify_waiters();
    }

    fn insert_locked(&self, state: &mut State, event: Arc<Event>) {
        if event.id != state.next_id {
            state.kept.clear(); // ids jumped (lost elsewhere): keep the ring contiguous
        }
        state.next_id = event.id + 1;
        state.kept.push_back(event);
        self.trim(state);
    }

    /// Drops what the history limits no longer keep.
    fn trim(&self, state: &mut State) {
        while state.kept.len() > self.history.max_messages {
            state.kept.pop_front();
        }
        if let Some(age) = self.history.max_age {
            let oldest = now_ms().saturating_sub(age.as_millis() as u64);
            while state.kept.front().is_some_and(|e| e.time < oldest) {
                state.kept.pop_front();
            }
        }
    }

    /// The id the next message will get (the last id + 1).
    pub fn next_id(&self) -> u64 {
        self.lock().next_id
    }

    /// The oldest id kept (the next id when nothing is).
    pub fn first_id(&self) -> u64 {
        let mut state = self.lock();
        self.trim(&mut state);
        state.kept.front().map_or(state.next_id, |e| e.id)
    }

    /// Subscribers connected now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// The kept messages, oldest first.
    pub fn kept(&self) -> Vec<Arc<Event>> {
        let mut state = self.lock();
        self.trim(&mut state);
        state.kept.iter().cloned().collect()
    }

    /// A cursor from id `from` (`None`: only messages published from now on).
    pub fn cursor(self: &Arc<Self>, from: Option<u64>) -> Cursor {
        let next = from.unwrap_or_else(|| self.next_id());
        Cursor {
            channel: self.clone(),
            next,
            counted: false,
        }
    }

    /// Up to `max` events from id `next`: the events, a gap before them if ids were
    /// lost, and the id to ask for next.
    fn take(&self, next: u64, max: usize) -> (Vec<Arc<Event>>, Option<Missed>, u64) {
        let mut state = self.lock();
        self.trim(&mut state);
        let first = state.kept.front().map_or(state.next_id, |e| e.id);
        let next = next.min(state.next_id); // an id from the future waits for the next
        let (missed, start) = if next < first {
            (
                Some(Missed {
                    from: next,
                    to: first - 1,
                }),
                first,
            )
        } else {
            (None, next)
        };
        let skip = (start - first) as usize;
        let events: Vec<_> = state.kept.iter().skip(skip).take(max).cloned().collect();
        let after = events.last().map_or(start, |e| e.id + 1);
        (events, missed, after)
    }
}

/// A subscriber's position in a channel.
pub struct Cursor {
    channel: Arc<Channel>,
    next: u64,
    /// Counted in the channel's subscribers (a live subscription, not a poll).
    counted: bool,
}

/// What a cursor yields: events, or the news that some were lost first.
#[derive(Debug)]
pub enum Step {
    /// Ids that fell out of history before the cursor got them.
    Missed(Missed),
    /// New events, in order.
    Events(Vec<Arc<Event>>),
}

impl Cursor {
    /// Counts this cursor among the channel's subscribers (presence) until dropped.
    pub fn subscribe(mut self) -> Self {
        if !self.counted {
            self.channel.subscribers.fetch_add(1, Ordering::Relaxed);
            self.counted = true;
        }
        self
    }

    /// The next id this cursor will return.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The channel.
    pub fn channel(&self) -> &Arc<Channel> {
        &self.channel
    }

    /// What is there now, at most `max` events, without waiting (`None`: nothing new).
    pub fn try_next(&mut self, max: usize) -> Option<Step> {
        let (events, missed, after) = self.channel.take(self.next, max);
        if let Some(m) = missed {
            self.next = m.to + 1;
            return Some(Step::Missed(m));
        }
        self.next = after;
        (!events.is_empty()).then_some(Step::Events(events))
    }

    /// Waits for the next step (cancel-safe: the position moves only when it returns).
    pub async fn next(&mut self, max: usize) -> Step {
        let channel = self.channel.clone();
        loop {
            let notified = channel.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable(); // registered before looking: no publish is missed
            if let Some(step) = self.try_next(max) {
                return step;
            }
            notified.await;
        }
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        if self.counted {
            self.channel.subscribers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Publishes without storage.
    fn publish(c: &Channel, data: impl Into<Bytes>) -> Arc<Event> {
        c.publish(data.into(), |_, _| Ok(())).unwrap()
    }

    fn channel(max: usize) -> Arc<Channel> {
        let history = History {
            max_messages: max,
            max_age: None,
        };
        Arc::new(Channel::new("c", history, 1))
    }

    fn ids(step: Option<Step>) -> Vec<u64> {
        match step {
            Some(Step::Events(e)) => e.iter().map(|e| e.id).collect(),
            other => panic!("expected events, got {other:?}"),
        }
    }

    #[test]
    fn ids_increase_by_one_and_events_carry_json() {
        let c = channel(10);
        let a = publish(&c, &b"hello"[..]);
        let b = publish(&c, &b"\"quoted\""[..]);
        assert_eq!((a.id, b.id), (1, 2));
        let json: serde_json::Value = serde_json::from_slice(&b.json).unwrap();
        assert_eq!(json["data"], "\"quoted\"");
        assert_eq!(json["channel"], "c");
        assert_eq!(json["id"], 2);
        assert!(b.time >= a.time);
    }

    #[test]
    fn cursors_resume_from_an_id_and_learn_what_was_lost() {
        let c = channel(3);
        for i in 0..5 {
            publish(&c, format!("m{i}"));
        }
        // Ids 1 and 2 fell out of a 3-message history.
        let mut cur = c.cursor(Some(1));
        match cur.try_next(10) {
            Some(Step::Missed(m)) => assert_eq!(m, Missed { from: 1, to: 2 }),
            other => panic!("{other:?}"),
        }
        assert_eq!(ids(cur.try_next(10)), [3, 4, 5]);
        assert!(cur.try_next(10).is_none());
        assert_eq!(ids(c.cursor(Some(4)).try_next(10)), [4, 5]);
        assert_eq!(ids(c.cursor(Some(3)).try_next(1)), [3]);
        // From now: nothing until the next publish; an id from the future likewise.
        assert!(c.cursor(None).try_next(10).is_none());
        let mut future = c.cursor(Some(99));
        assert!(future.try_next(10).is_none());
        publish(&c, &b"m5"[..]);
        assert_eq!(ids(future.try_next(10)), [6]);
    }

    #[tokio::test]
    async fn a_waiting_cursor_wakes_on_publish() {
        let c = channel(10);
        let mut cur = c.cursor(None).subscribe();
        assert_eq!(c.subscribers(), 1);
        let publisher = {
            let c = c.clone();
            tokio::spawn(async move { publish(&c, &b"x"[..]).id })
        };
        match cur.next(10).await {
            Step::Events(e) => assert_eq!(e[0].id, 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(publisher.await.unwrap(), 1);
        drop(cur);
        assert_eq!(c.subscribers(), 0);
    }

    #[test]
    fn old_messages_leave_by_age() {
        let history = History {
            max_messages: 10,
            max_age: Some(Duration::from_secs(60)),
        };
        let c = Channel::new("c", history, 1);
        let old = Arc::new(Event::new("c", 1, now_ms() - 120_000, Bytes::new()));
        c.restore(old);
        publish(&c, Bytes::new());
        assert_eq!(c.kept().iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
    }
}
