//! `103 Early Hints` a service sends while it works (`wharf_http::interim::Interim`,
//! used by the proxy to pass on its upstream's): a small channel per request, whose
//! receiving end the transport polls beside the service.

use http::{HeaderMap, Request};
use tokio::sync::mpsc;
use wharf_http::interim::Interim;

/// At most this many `103`s wait to be sent; more are dropped (hints are advice).
const QUEUE: usize = 4;

/// Gives `req` an [`Interim`]; the transport sends what arrives on the receiver.
pub(crate) fn attach<B>(req: &mut Request<B>) -> mpsc::Receiver<HeaderMap> {
    let (tx, rx) = mpsc::channel(QUEUE);
    req.extensions_mut().insert(Interim::new(move |fields| {
        let _ = tx.try_send(fields);
    }));
    rx
}
