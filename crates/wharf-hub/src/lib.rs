//! wharf's real-time hub: named channels whose messages reach subscribers by
//! WebSocket, Server-Sent Events, long-polling and plain polling, with per-channel
//! ids and history so that a client of any transport resumes where it left off.
//!
//! - [`channel`]: one channel's messages, history and cursors.
//! - [`hub`]: channels by name; history stored in `data_dir` when set (`store`).
//! - [`auth`]: anonymous rights and bearer tokens, by channel pattern.
//! - [`service`]: the HTTP interface under the mount (`/hub/`): `http::Request` in,
//!   `http::Response` out, over any HTTP version; WebSocket sessions via `wharf-ws`.
//! - `redis`: channels shared by several nodes through Redis (`hub.redis`).
//! - `sse`: the Server-Sent Events stream.

pub mod auth;
pub mod channel;
pub mod hub;
mod redis;
pub mod service;
mod sse;
mod store;

pub use auth::{Access, Rights};
pub use channel::{Event, History};
pub use hub::{Config, Hub, PublishError};
pub use service::{Body, Service};
