//! One request stream: its head read and checked, the service called, the response
//! (103s, head, body, trailers) written.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body::Body;
use wharf_h2::head::{Collect, Outcome};
use wharf_h3::{Code, ConnError, Item};
use wharf_http::interim::EarlyHints;

use super::body::{request_body, reset, ReadFailed, Reading};
use super::tunnel::tunnel;
use super::{code, Heads};
use crate::conn::{ConnCtx, EarlyData};
use crate::implied;
use crate::interim::{Hinted, Next};
use crate::Service;

/// One request stream: its head read and checked, the service called, the response
/// sent. A connection error found on the way is returned; else the stream, when the
/// response went out whole (its end perhaps not yet acknowledged).
pub(super) async fn request<S: Service>(
    ctx: &ConnCtx<S>,
    conn: &quinn::Connection,
    heads: &std::sync::Mutex<Heads>,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    early: bool,
) -> Result<Option<quinn::SendStream>, ConnError> {
    let limits = &ctx.shared.limits;
    let mut reading = Reading::new(recv, limits.max_header_bytes);
    let head = std::future::poll_fn(|cx| reading.poll_item(cx));
    let block = match tokio::time::timeout(limits.header_read_timeout, head).await {
        Ok(Ok(Some(Item::Headers(block)))) => Some(block),
        // Only HeadersTooLarge comes before a head.
        Ok(Ok(Some(_))) => None,
        Ok(Ok(None)) => {
            reset(&mut send, &mut reading, Code::RequestIncomplete);
            return Ok(None);
        }
        Ok(Err(ReadFailed::Conn(e))) => return Err(e),
        Ok(Err(ReadFailed::Stream(_))) => {
            // The client reset its request: no response either.
            let _ = send.reset(code(Code::RequestCancelled));
            return Ok(None);
        }
        Err(_) => {
            // Not processed, so the client may send it again (§4.1.1).
            tracing::debug!("HTTP/3 request head timed out: stream reset");
            reset(&mut send, &mut reading, Code::RequestRejected);
            return Ok(None);
        }
    };
    let finished = match block {
        Some(block) => {
            let mut heads = heads.lock().unwrap_or_else(|p| p.into_inner());
            let mut collect = Collect::request(limits.max_header_bytes, true);
            heads.decoder.decode(&block, |f| collect.field(f))?;
            collect.finish_request(&mut heads.last)
        }
        None => Outcome::TooLarge,
    };
    let head = match finished {
        Outcome::Ok(head) if head.names_authority() => head,
        // §4.3.1: an http or https target names its authority.
        Outcome::Ok(_) => return Ok(malformed(&mut send, &mut reading, "no :authority or Host")),
        Outcome::Malformed(why) => return Ok(malformed(&mut send, &mut reading, why)),
        // §4.2.2: 431 may answer a head over the limit.
        Outcome::TooLarge => {
            let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            return Ok(respond_bare(send, status, limits).await);
        }
    };
    let mut parts = head.parts;
    parts.version = Version::HTTP_3;
    if early {
        parts.extensions.insert(EarlyData);
    }
    if let Some(protocol) = head.protocol {
        return Ok(tunnel(ctx, conn, send, reading, parts, protocol).await);
    }
    let (body, malformed) = request_body(conn, reading, head.content_length, limits)?;
    let req = Request::from_parts(parts, body);
    let method = req.method().clone();
    let (interim, hints) = crate::interim::channel();
    let handled = ctx.handle(req, Some(interim));
    tokio::pin!(handled);
    let mut work = Hinted::new(handled, hints);
    let res = loop {
        match work.next().await {
            Next::Hint(fields) => send_hints(&mut send, &fields, limits.send_timeout).await,
            Next::Done(res) => break res,
        }
    };
    // RFC 9114 §4.1.2: a malformed request is a stream error, whatever the service
    // made of the body's failure.
    if malformed.is_some_and(|m| m.load(Ordering::Relaxed)) {
        tracing::debug!("malformed HTTP/3 request body: H3_MESSAGE_ERROR");
        let _ = send.reset(code(Code::MessageError));
        return Ok(None);
    }
    let (mut head, body) = res.into_parts();
    if let Some(EarlyHints(fields)) = head.extensions.remove::<EarlyHints>() {
        send_hints(&mut send, &fields, limits.send_timeout).await;
    }
    let out = final_head(&mut head, &method, &body);
    let finished = send_body(body, out, &mut send, limits.send_timeout).await;
    Ok(finished.then_some(send))
}

/// A malformed request head (RFC 9114 §4.1.2): the stream is reset both ways with
/// H3_MESSAGE_ERROR.
fn malformed(
    send: &mut quinn::SendStream,
    reading: &mut Reading,
    why: &str,
) -> Option<quinn::SendStream> {
    tracing::debug!(reason = why, "malformed HTTP/3 request: H3_MESSAGE_ERROR");
    reset(send, reading, Code::MessageError);
    None
}

/// A final response head as wharf sends it: encoded as a HEADERS frame with the
/// fields the transport adds ([`implied::added`]) (the encoder leaves connection-specific fields out, RFC 9114
/// §4.2, in 103s and trailers too). The head's map goes back to the
/// thread's kept maps (`wharf_http::maps`) for the next request's head.
pub(super) fn final_head<B: Body>(
    head: &mut http::response::Parts,
    method: &http::Method,
    body: &B,
) -> Vec<u8> {
    let exact = body.size_hint().exact();
    let length = implied::content_length(method, head.status, &head.headers, exact);
    let mut out = Vec::with_capacity(256);
    implied::added(&head.headers, length, |added| {
        wharf_h3::headers_frame(Some(head.status), &head.headers, added, &mut out)
    });
    wharf_http::maps::give(std::mem::take(&mut head.headers));
    out
}

/// Sends a `103 Early Hints` head with `fields`.
async fn send_hints(send: &mut quinn::SendStream, fields: &HeaderMap, send_timeout: Duration) {
    let mut out = Vec::new();
    wharf_h3::headers_frame(Some(StatusCode::EARLY_HINTS), fields, &[], &mut out);
    write(send, &mut [Bytes::from(out)], send_timeout).await;
}

/// Answers with `status` and no content, and ends the stream (returned once ended).
async fn respond_bare(
    mut send: quinn::SendStream,
    status: StatusCode,
    limits: &crate::Limits,
) -> Option<quinn::SendStream> {
    let mut out = Vec::new();
    let length: &[(&[u8], &[u8])] = &[(b"content-length", b"0")];
    wharf_h3::headers_frame(Some(status), &HeaderMap::new(), length, &mut out);
    if !write(&mut send, &mut [Bytes::from(out)], limits.send_timeout).await {
        return None;
    }
    send.finish().ok()?;
    Some(send)
}

/// Sends the response: `head` (its HEADERS frame) goes with the body's first frame,
/// so that a small response leaves in one write; then DATA frame by frame, trailers,
/// and the stream's end (true once there). A client that takes nothing for
/// `send_timeout` has its stream reset.
pub(super) async fn send_body<B>(
    mut body: B,
    head: Vec<u8>,
    send: &mut quinn::SendStream,
    send_timeout: Duration,
) -> bool
where
    B: Body<Data = Bytes, Error = io::Error> + Unpin,
{
    let mut out = head;
    loop {
        // The head waits for the body's first frame only while that frame is ready:
        // a body that waits (events, a long poll) has its head sent first.
        let step = std::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
        })
        .await;
        let mut chunks = match step {
            None => [Bytes::from(std::mem::take(&mut out)), Bytes::new()],
            Some(None) => break,
            Some(Some(Err(e))) => {
                tracing::debug!(error = %e, "response body failed: stream reset");
                let _ = send.reset(code(Code::InternalError));
                return false;
            }
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => {
                    wharf_h3::data_head(data.len() as u64, &mut out);
                    [Bytes::from(std::mem::take(&mut out)), data]
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        wharf_h3::headers_frame(None, &trailers, &[], &mut out);
                        [Bytes::from(std::mem::take(&mut out)), Bytes::new()]
                    }
                    Err(_) => continue,
                },
            },
        };
        if !write(send, &mut chunks, send_timeout).await {
            return false;
        }
    }
    if !out.is_empty() && !write(send, &mut [Bytes::from(out)], send_timeout).await {
        return false; // (a head alone: no body frame came)
    }
    send.finish().is_ok()
}

/// Writes `chunks`; a client that takes nothing for `send_timeout` has the stream
/// reset. False when it did not all go (the client may have stopped the stream).
pub(super) async fn write(
    send: &mut quinn::SendStream,
    chunks: &mut [Bytes],
    send_timeout: Duration,
) -> bool {
    match tokio::time::timeout(send_timeout, send.write_all_chunks(chunks)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            let _ = send.reset(code(Code::RequestCancelled));
            false
        }
    }
}
