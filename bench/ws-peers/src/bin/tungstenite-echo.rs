//! `tungstenite-echo ADDR PATH`: a WebSocket echo server on tokio-tungstenite, for
//! bench/ws. It is tokio-tungstenite's own `autobahn-server` example with a path check:
//! `accept_hdr_async` with the default `WebSocketConfig` (no permessage-deflate: the
//! crate has none), every text or binary message sent back with `send`, pings answered
//! and the closing handshake completed by tungstenite itself. Requests for any other
//! path get 404. tokio's multi-thread runtime with its default worker count (one per
//! CPU it may run on). TCP_NODELAY is set on every connection, as wharf and Node's
//! `ws` do, so all servers of bench/ws write under the same conditions. Nothing is
//! logged.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::accept_hdr_async;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Result;

// The callback's error type is tungstenite's (an HTTP response).
#[allow(clippy::result_large_err)]
async fn handle_connection(stream: TcpStream, path: &'static str) -> Result<()> {
    let check_path = |req: &Request, resp: Response| -> std::result::Result<Response, ErrorResponse> {
        if req.uri().path() == path {
            Ok(resp)
        } else {
            let mut err = ErrorResponse::new(Some("not found".into()));
            *err.status_mut() = StatusCode::NOT_FOUND;
            Err(err)
        }
    };
    let mut ws = accept_hdr_async(stream, check_path).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(path), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: tungstenite-echo ADDR PATH   (e.g. 127.0.0.1:9001 /echo)");
        std::process::exit(2);
    };
    let path: &'static str = Box::leak(path.into_boxed_str());
    let listener = TcpListener::bind(&addr).await.unwrap_or_else(|e| {
        eprintln!("tungstenite-echo: cannot listen on {addr}: {e}");
        std::process::exit(1);
    });
    println!("tungstenite-echo listening on ws://{}{path}", listener.local_addr().unwrap());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // EMFILE and the like: wait a little, go on accepting
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = handle_connection(stream, path).await;
        });
    }
}
