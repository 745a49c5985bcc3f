//! What a service asks the transport to send besides its response: interim
//! `103 Early Hints` (RFC 8297) and, over HTTP/2, pushed responses (RFC 9113 §8.4).
//! Both travel as response extensions, so services stay unaware of the version; a
//! transport that cannot send them ignores them (the `Link` fields on the final
//! response still carry the hints).

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;

/// Header fields (`Link`) to send as `103 Early Hints` before the response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EarlyHints(pub HeaderMap);

/// Same-origin paths (`/style.css`) to push with the response, when the client
/// allows pushes. The transport asks the service for each as a `GET` of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Push(pub Vec<String>);

/// Sends `103 Early Hints` now, while the service is still working on its response:
/// how a proxy passes on its upstream's 103s as they arrive. The transport puts one
/// in a request's extensions where it can send them (HTTP/2, HTTP/3, and HTTP/1.1
/// when early hints are on for it).
#[derive(Clone)]
pub struct Interim(Arc<dyn Fn(HeaderMap) + Send + Sync>);

impl Interim {
    /// An `Interim` that hands the fields to `send`.
    pub fn new(send: impl Fn(HeaderMap) + Send + Sync + 'static) -> Interim {
        Interim(Arc::new(send))
    }

    /// Sends `fields` as a `103` (dropped when the transport has no room or the
    /// final response is already out).
    pub fn early_hints(&self, fields: HeaderMap) {
        (self.0)(fields)
    }
}

impl fmt::Debug for Interim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Interim")
    }
}
