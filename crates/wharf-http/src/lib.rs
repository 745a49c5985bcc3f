//! Sans-IO HTTP semantics for wharf.
//!
//! Pure functions over `http` types (`HeaderMap`, `Method`, `HeaderValue`) that decide
//! what an HTTP response should be, shared by every protocol front end (HTTP/1.1 now;
//! HTTP/2, HTTP/3, the caching proxy and the client later; FTP reuses [`path`]). Every
//! evaluation returns a *decision plus its reason*: each decision type implements
//! `Display` as a one-line reason such as `304: If-None-Match "abc" matched current
//! ETag` or `206: bytes 0-99 of 1000`, which the server logs and may send as the
//! `Wharf-Explain` header ([`Explain`]). Reasons quote header values and validators
//! (sanitised to visible ASCII and shortened), never file-system paths.
//!
//! # Modules
//! - [`etag`] — entity tags, their lists and comparison (RFC 9110 §8.8.3).
//! - [`date`] — HTTP-date formatting and parsing (RFC 9110 §5.6.7).
//! - [`precondition`] — `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//!   `If-Modified-Since` in RFC 9110 §13.2.2 order.
//! - [`range`] — `Range`, `If-Range`, `Content-Range` (RFC 9110 §14, §13.1.5).
//! - [`negotiate`] — `Accept-Encoding` and `Accept` (RFC 9110 §12.5).
//! - [`cache_control`] — `Cache-Control`, freshness and age (RFC 9111).
//! - [`cache`] — what a cache stores, reuses, revalidates and invalidates (RFC 9111,
//!   RFC 5861), for the proxy's shared cache and the client's private one.
//! - [`path`] — request-path sanitisation (security critical).
//! - [`host`] — the site for a request host or TLS server name (virtual hosting).
//! - [`conn`] — connection facts transports hand to services (addresses, TLS).
//! - [`interim`] — 103 Early Hints and pushes a service asks its transport for.
//! - [`explain`] — the [`Explain`] response extension that carries the reasons.
//! - [`fields`] — list-valued fields read for a token (`Connection`, `Upgrade`).
//! - [`forward`] — what an intermediary changes in a message it forwards: hop-by-hop
//!   fields, `Via`, `Forwarded` and `X-Forwarded-*`.
//! - [`maps`] — header maps reused within a thread by the parsers and transports.
//! - [`spares`] — a thread's bounded stack of values kept for reuse (maps, buffers).
//!
//! # What this crate deliberately does not do
//! - No I/O of any kind: no sockets, no file system, no async runtime.
//! - No clock: it never calls `SystemTime::now()`; times are arguments.
//! - No message framing or parsing of the request line (the transport's job), and no
//!   response building: callers set status codes and headers from the decisions.
//! - No content coding itself (compression), no multipart body writing, no
//!   cache storage.
//!
//! All code is safe Rust (`unsafe_code = "forbid"`).

pub mod cache;
pub mod cache_control;
pub mod conn;
pub mod content;
pub mod date;
pub mod etag;
pub mod explain;
pub mod fields;
pub mod forward;
pub mod host;
pub mod interim;
pub mod maps;
pub mod negotiate;
pub mod path;
pub mod precondition;
pub mod range;
pub mod spares;
mod util;

pub use explain::Explain;
