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

/// Where a connection's `103`s go: the transport's side of an [`Interim`].
pub trait InterimSink: Send + Sync + 'static {
    /// Sends `fields` as a `103` on the transport's stream `stream`.
    fn early_hints(&self, stream: u32, fields: HeaderMap);
}

/// Sends `103 Early Hints` now, while the service is still working on its response:
/// how a proxy passes on its upstream's 103s as they arrive. The transport hands one
/// to the service with each request where it can send them (HTTP/2, HTTP/3, and
/// HTTP/1.1 when early hints are on for it).
///
/// A connection's sink is shared by its requests, each naming its stream: making one
/// for a request is a reference count, not an allocation.
#[derive(Clone)]
pub struct Interim {
    sink: Arc<dyn InterimSink>,
    stream: u32,
}

impl Interim {
    /// An `Interim` whose `103`s go to `sink` for stream `stream`.
    pub fn new(sink: Arc<dyn InterimSink>, stream: u32) -> Interim {
        Interim { sink, stream }
    }

    /// Sends `fields` as a `103` (dropped when the transport has no room or the
    /// final response is already out).
    pub fn early_hints(&self, fields: HeaderMap) {
        self.sink.early_hints(self.stream, fields)
    }
}

impl fmt::Debug for Interim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interim(stream {})", self.stream)
    }
}
