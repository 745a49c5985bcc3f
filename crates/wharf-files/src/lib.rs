//! wharf's static-file service: `http::Request` in, `http::Response` out.
//!
//! [`Files`] serves the sites of a configuration (virtual hosts, [`SiteConfig`]) for
//! any HTTP version: it reads the method, target, `Host` and request header fields,
//! never the connection, and never the request body. Transports (`wharf-server`) carry
//! its responses; the rules it applies come from `wharf-http`.
//!
//! Layout:
//! - [`config`]: a site's settings, validated as they are deserialized.
//! - `service`: the request flow (site, method, path, resource, representation,
//!   preconditions, ranges).
//! - [`root`]: opening files beneath a site root with `openat2(2)` (path safety);
//!   public because FTP opens the same trees through it.
//! - `cache`: validators, small files' bytes and compressed variants, bounded.
//! - `compress`, `mime`, `listing`, `date`, `reasons`: the pieces those use.
//! - `clock`: the time a request is served at (the kernel's coarse clocks).
//! - [`Body`]: the response body, bytes in memory or ranges of an open file.

mod body;
mod cache;
mod clock;
mod compress;
pub mod config;
mod front;
mod hints;
mod listing;
mod mime;
mod paths;
mod reasons;
pub mod root;
mod service;
mod site;

pub use body::Body;
pub use cache::CacheLimits;
pub use config::{ClientAuthMode, ProxyRoute, SiteConfig, SiteTlsConfig};
pub use service::{BuildError, Files};
