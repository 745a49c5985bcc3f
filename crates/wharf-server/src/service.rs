//! The contract between transports and services.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use wharf_http::conn::{ConnInfo, TlsInfo};
use wharf_http::interim::Interim;

/// Maps a request to a response. Infallible: every failure is a response.
///
/// Implementations must not depend on the HTTP version or the transport.
pub trait Service: Send + Sync + 'static {
    /// The response body type.
    type Body: http_body::Body<Data = Bytes, Error = std::io::Error> + Send + Unpin + 'static;

    /// Answers one request; `exchange` says what carried it.
    fn call(
        &self,
        req: Request<RequestBody>,
        exchange: Exchange<'_>,
    ) -> impl Future<Output = Response<Self::Body>> + Send;
}

/// What the transport knows of a request besides the request itself. An argument of
/// [`Service::call`] rather than request extensions: most services never look at it,
/// and each extension is an allocation or more per request.
#[derive(Clone, Debug)]
pub struct Exchange<'a> {
    /// The connection's addresses.
    pub conn: ConnInfo,
    /// The TLS session, when the request arrived encrypted (which makes it `https`).
    pub tls: Option<&'a TlsInfo>,
    /// Sends `103 Early Hints` while the service works, where the transport can.
    pub interim: Option<Interim>,
}

/// The request body handed to services, whichever HTTP version carried it.
pub struct RequestBody(Kind);

enum Kind {
    /// No body (pushed requests).
    Empty,
    H1(crate::h1::Incoming),
    H2(crate::h2::body::Incoming),
    /// Boxed: the stream and its length checks are the largest of these.
    H3(Box<crate::h3::Incoming>),
}

impl RequestBody {
    pub(crate) fn h1(body: crate::h1::Incoming) -> Self {
        RequestBody(Kind::H1(body))
    }

    pub(crate) fn h2(body: crate::h2::body::Incoming) -> Self {
        RequestBody(Kind::H2(body))
    }

    pub(crate) fn h3(body: crate::h3::Incoming) -> Self {
        RequestBody(Kind::H3(Box::new(body)))
    }

    pub(crate) fn empty() -> Self {
        RequestBody(Kind::Empty)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().0 {
            Kind::Empty => Poll::Ready(None),
            Kind::H1(b) => b.poll_frame(cx),
            Kind::H2(b) => Pin::new(b).poll_frame(cx),
            Kind::H3(b) => b.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::H1(b) => b.is_end_stream(),
            Kind::H2(b) => b.is_end_stream(),
            Kind::H3(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::H1(b) => b.size_hint(),
            Kind::H2(_) | Kind::H3(_) => SizeHint::default(),
        }
    }
}
