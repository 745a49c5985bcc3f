//! What a service asks the transport to send besides its response: interim
//! `103 Early Hints` (RFC 8297) and, over HTTP/2, pushed responses (RFC 9113 §8.4).
//! Both travel as response extensions, so services stay unaware of the version; a
//! transport that cannot send them ignores them (the `Link` fields on the final
//! response still carry the hints).

use http::HeaderMap;

/// Header fields (`Link`) to send as `103 Early Hints` before the response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EarlyHints(pub HeaderMap);

/// Same-origin paths (`/style.css`) to push with the response, when the client
/// allows pushes. The transport asks the service for each as a `GET` of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Push(pub Vec<String>);
