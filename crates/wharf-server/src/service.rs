//! The contract between transports and services.

use std::future::Future;

use bytes::Bytes;
use http::{Request, Response};

/// The request body handed to services: whatever the transport received, as an
/// `http_body::Body`. Services that read bodies treat it as any other `Body`.
pub type RequestBody = hyper::body::Incoming;

/// Maps a request to a response. Infallible: every failure is a response.
///
/// Implementations must not depend on the HTTP version or the transport; the
/// connection's addresses are in the request extensions as [`crate::ConnInfo`].
pub trait Service: Send + Sync + 'static {
    /// The response body type.
    type Body: http_body::Body<Data = Bytes, Error = std::io::Error> + Send + Unpin + 'static;

    /// Answers one request.
    fn call(&self, req: Request<RequestBody>) -> impl Future<Output = Response<Self::Body>> + Send;
}
