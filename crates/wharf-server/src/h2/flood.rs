//! Frame floods: cheap frames that make a server work, counted before h2 sees them.
//!
//! An HTTP/2 client can make a server spend CPU without opening a single lasting
//! stream: open and at once reset streams (rapid reset, CVE-2023-44487), send endless
//! CONTINUATION frames (the 2024 CONTINUATION floods), or SETTINGS, PING, PRIORITY,
//! empty DATA and unknown frames, each of which asks for an answer or some
//! bookkeeping. h2 bounds some of this; wharf bounds all of it the same way: it reads
//! the frame headers of everything the client sends (9 bytes each, RFC 9113 §4.1) and
//! keeps one token bucket per kind of frame. A bucket that runs dry is a flood: the
//! connection gets GOAWAY with ENHANCE_YOUR_CALM and is closed, and nothing the
//! offender sends afterwards is read. Other connections are unaffected; each has its
//! own meter.
//!
//! The budgets are far above what browsers, curl or h2load send (they send a handful
//! of SETTINGS and PINGs per connection and reset streams only when a page is left),
//! and far below what an attack needs.

use tokio::time::Instant;

/// Frame types (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// The client connection preface (RFC 9113 §3.4), which precedes the first frame.
const PREFACE_LEN: usize = 24;

/// CONTINUATION frames allowed in one header block: a 16 KiB header section fits in
/// one HEADERS frame of the default size; 32 more frames are generous.
const MAX_CONTINUATIONS: u32 = 32;

/// What a client sent too much of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flood {
    /// RST_STREAM: streams opened and cancelled (rapid reset).
    Resets,
    /// SETTINGS frames (each needs an acknowledgement).
    Settings,
    /// PING frames (each needs an answer).
    Pings,
    /// DATA frames without data or end of stream.
    EmptyData,
    /// PRIORITY frames.
    Priority,
    /// Frames of unknown types (which must be ignored, but are still read).
    Unknown,
    /// CONTINUATION frames beyond [`MAX_CONTINUATIONS`] in one header block.
    Continuations,
}

impl Flood {
    /// For the log line of the closed connection.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Flood::Resets => "HTTP/2 flood: streams reset (rapid reset)",
            Flood::Settings => "HTTP/2 flood: SETTINGS frames",
            Flood::Pings => "HTTP/2 flood: PING frames",
            Flood::EmptyData => "HTTP/2 flood: empty DATA frames",
            Flood::Priority => "HTTP/2 flood: PRIORITY frames",
            Flood::Unknown => "HTTP/2 flood: frames of unknown types",
            Flood::Continuations => "HTTP/2 flood: CONTINUATION frames",
        }
    }
}

/// (burst, per second) for each metered kind, in the order of [`Flood`].
const BUDGETS: [(Flood, f64, f64); 6] = [
    (Flood::Resets, 200.0, 50.0),
    (Flood::Settings, 16.0, 2.0),
    (Flood::Pings, 64.0, 16.0),
    (Flood::EmptyData, 64.0, 16.0),
    (Flood::Priority, 512.0, 128.0),
    (Flood::Unknown, 64.0, 16.0),
];

/// A token bucket: `tokens` refill at `rate` per second up to `burst`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Follows the frames in a client's byte stream.
#[derive(Debug)]
pub(crate) struct Meter {
    /// Preface bytes still to skip.
    preface: usize,
    /// The frame header being collected.
    head: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    payload: usize,
    /// CONTINUATION frames in the open header block, if one is open.
    block: Option<u32>,
    buckets: [Bucket; BUDGETS.len()],
    /// When each recently opened stream was opened, in ms since `born`: a reset is
    /// rapid only when its stream is young.
    opened: std::collections::VecDeque<(u32, u32)>,
    born: Instant,
}

/// Streams whose opening time is kept (the oldest are forgotten; a reset of a
/// forgotten stream counts as rapid).
const TRACKED: usize = 2048;

/// A stream reset at least this long after it opened is not a rapid reset: it is a
/// client leaving a page or closing event streams it held (a hub subscriber).
const RAPID_MS: u32 = 1000;

impl Meter {
    pub(crate) fn new(now: Instant) -> Meter {
        Meter {
            preface: PREFACE_LEN,
            head: [0; 9],
            have: 0,
            payload: 0,
            block: None,
            buckets: BUDGETS.map(|(_, burst, rate)| Bucket {
                tokens: burst,
                burst,
                rate,
                at: now,
            }),
            opened: std::collections::VecDeque::new(),
            born: now,
        }
    }

    /// Feeds bytes read from the client; the first flood found, if any.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], now: Instant) -> Option<Flood> {
        let skip = self.preface.min(bytes.len());
        self.preface -= skip;
        bytes = &bytes[skip..];
        while !bytes.is_empty() {
            if self.payload > 0 {
                let n = self.payload.min(bytes.len());
                self.payload -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                self.have = 0;
                let len = u32::from_be_bytes([0, self.head[0], self.head[1], self.head[2]]);
                self.payload = len as usize;
                let stream =
                    u32::from_be_bytes([self.head[5], self.head[6], self.head[7], self.head[8]])
                        & 0x7fff_ffff;
                if let Some(flood) = self.frame(self.head[3], self.head[4], stream, len, now) {
                    return Some(flood);
                }
            }
        }
        None
    }

    /// Milliseconds since the meter was made.
    fn ms(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.born).as_millis() as u32
    }

    /// Whether resetting `stream` now is a rapid reset: it opened less than
    /// [`RAPID_MS`] ago, or too long ago to be remembered.
    fn rapid(&self, stream: u32, now: Instant) -> bool {
        match self.opened.iter().rev().find(|(id, _)| *id == stream) {
            Some(&(_, at)) => self.ms(now).saturating_sub(at) < RAPID_MS,
            None => true,
        }
    }

    /// Accounts for one frame header.
    fn frame(&mut self, kind: u8, flags: u8, stream: u32, len: u32, now: Instant) -> Option<Flood> {
        let metered = match kind {
            DATA if len == 0 && flags & END_STREAM == 0 => Some(Flood::EmptyData),
            HEADERS => {
                self.block = (flags & END_HEADERS == 0).then_some(0);
                if self.opened.len() == TRACKED {
                    self.opened.pop_front();
                }
                let at = self.ms(now);
                self.opened.push_back((stream, at));
                None
            }
            RST_STREAM if !self.rapid(stream, now) => None,
            CONTINUATION => {
                let n = self.block.map_or(0, |n| n + 1);
                if n > MAX_CONTINUATIONS {
                    return Some(Flood::Continuations);
                }
                self.block = (flags & END_HEADERS == 0).then_some(n);
                None
            }
            PRIORITY => Some(Flood::Priority),
            RST_STREAM => Some(Flood::Resets),
            SETTINGS if flags & ACK == 0 => Some(Flood::Settings),
            PING if flags & ACK == 0 => Some(Flood::Pings),
            DATA | SETTINGS | PING | PUSH_PROMISE | GOAWAY | WINDOW_UPDATE => None,
            _ => Some(Flood::Unknown),
        }?;
        let i = BUDGETS.iter().position(|(k, _, _)| *k == metered)?;
        (!self.buckets[i].take(now)).then_some(metered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        f.extend_from_slice(payload);
        f
    }

    /// How many of `f`, sent back to back, a fresh meter takes before calling it a
    /// flood (None: 10 000 pass).
    fn tolerated(f: &[u8]) -> Option<usize> {
        let now = Instant::now();
        let mut m = Meter::new(now);
        assert_eq!(m.feed(&[0; PREFACE_LEN], now), None);
        (0..10_000).position(|_| m.feed(f, now).is_some())
    }

    #[test]
    fn budgets_by_frame_kind() {
        // (frame, frames tolerated at once) — RFC 9113 §6 frame types
        let table: &[(Vec<u8>, Option<usize>)] = &[
            (frame(RST_STREAM, 0, &[0, 0, 0, 8]), Some(200)),
            (frame(SETTINGS, 0, &[]), Some(16)),
            (frame(SETTINGS, ACK, &[]), None), // acknowledgements cost nothing
            (frame(PING, 0, &[0; 8]), Some(64)),
            (frame(PING, ACK, &[0; 8]), None),
            (frame(DATA, 0, &[]), Some(64)),
            (frame(DATA, END_STREAM, &[]), None),
            (frame(DATA, 0, b"payload"), None),
            (frame(PRIORITY, 0, &[0, 0, 0, 0, 16]), Some(512)),
            (frame(WINDOW_UPDATE, 0, &[0, 0, 1, 0]), None),
            (frame(0xfa, 0, b"?"), Some(64)),
            (frame(HEADERS, END_HEADERS, &[0x82]), None),
        ];
        for (f, want) in table {
            assert_eq!(
                tolerated(f),
                *want,
                "frame type {:#x} flags {:#x}",
                f[3],
                f[4]
            );
        }
    }

    #[test]
    fn continuation_floods_are_cut_per_header_block() {
        let now = Instant::now();
        let mut m = Meter::new(now);
        m.feed(&[0; PREFACE_LEN], now);
        assert_eq!(m.feed(&frame(HEADERS, 0, &[0x82]), now), None);
        for _ in 0..MAX_CONTINUATIONS {
            assert_eq!(m.feed(&frame(CONTINUATION, 0, &[]), now), None);
        }
        assert_eq!(
            m.feed(&frame(CONTINUATION, 0, &[]), now),
            Some(Flood::Continuations)
        );
        // A block that ends resets the count.
        let mut m = Meter::new(now);
        m.feed(&[0; PREFACE_LEN], now);
        for _ in 0..100 {
            m.feed(&frame(HEADERS, 0, &[0x82]), now);
            assert_eq!(m.feed(&frame(CONTINUATION, END_HEADERS, &[]), now), None);
        }
    }

    #[test]
    fn resets_of_streams_that_lived_are_not_rapid() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0);
        assert_eq!(m.feed(&[0; PREFACE_LEN], t0), None);
        let stream = |kind, id: u32| {
            let mut f = frame(kind, END_HEADERS, &[0x82]);
            f[5..9].copy_from_slice(&id.to_be_bytes());
            f
        };
        // A thousand event streams held for a minute, then closed at once.
        for id in (1..2000).step_by(2) {
            assert_eq!(m.feed(&stream(HEADERS, id), t0), None);
        }
        let later = t0 + Duration::from_secs(60);
        for id in (1..2000).step_by(2) {
            assert_eq!(m.feed(&stream(RST_STREAM, id), later), None, "stream {id}");
        }
        // Opened and reset at once: rapid, cut after the burst.
        let cut = (2001..4000).step_by(2).position(|id| {
            m.feed(&stream(HEADERS, id), later).is_some()
                || m.feed(&stream(RST_STREAM, id), later).is_some()
        });
        assert_eq!(cut, Some(200));
    }

    #[test]
    fn buckets_refill_with_time() {
        let start = Instant::now();
        let mut m = Meter::new(start);
        m.feed(&[0; PREFACE_LEN], start);
        let settings = frame(SETTINGS, 0, &[]);
        for _ in 0..16 {
            assert_eq!(m.feed(&settings, start), None);
        }
        assert_eq!(m.feed(&settings, start), Some(Flood::Settings));
        // Two per second come back.
        let later = start + Duration::from_secs(1);
        assert_eq!(m.feed(&settings, later), None);
        assert_eq!(m.feed(&settings, later), None);
        assert_eq!(m.feed(&settings, later), Some(Flood::Settings));
    }

    #[test]
    fn frames_split_across_reads_are_followed() {
        let now = Instant::now();
        let mut m = Meter::new(now);
        let mut stream = vec![0u8; PREFACE_LEN];
        stream.extend(frame(DATA, 0, &[7; 100]));
        for _ in 0..64 {
            stream.extend(frame(PING, 0, &[0; 8]));
        }
        // Byte by byte: payload bytes are never taken for headers.
        assert!(stream.iter().all(|b| m.feed(&[*b], now).is_none()));
        assert_eq!(m.feed(&frame(PING, 0, &[0; 8]), now), Some(Flood::Pings));
    }
}
