//! `fastwebsockets-echo ADDR PATH`: a WebSocket echo server on fastwebsockets, for
//! bench/ws. It is fastwebsockets' own `echo_server` example (the one its README shows:
//! the `upgrade` feature with hyper 1's HTTP/1.1 server, `FragmentCollector` for whole
//! messages, the task `unconstrained`) with a path check, on tokio's multi-thread
//! runtime with its default worker count (one per CPU it may run on) instead of the
//! example's current-thread one. auto_close and auto_pong are on (their defaults, set
//! explicitly): fastwebsockets answers pings and completes the closing handshake
//! itself. No permessage-deflate (the crate has none). Requests for any other path, or
//! that are no WebSocket upgrade, get 404 / 400. TCP_NODELAY is set on every
//! connection, as wharf and Node's `ws` do. Nothing is logged.

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(
    path: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let status = if req.uri().path() != path {
        StatusCode::NOT_FOUND
    } else if !upgrade::is_upgrade_request(&req) {
        StatusCode::BAD_REQUEST
    } else {
        let (response, fut) = upgrade::upgrade(&mut req)?;
        tokio::task::spawn(async move {
            let _ = tokio::task::unconstrained(handle_client(fut)).await;
        });
        return Ok(response);
    };
    let mut resp = Response::new(Empty::new());
    *resp.status_mut() = status;
    Ok(resp)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(path), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: fastwebsockets-echo ADDR PATH   (e.g. 127.0.0.1:9002 /echo)");
        std::process::exit(2);
    };
    let path: &'static str = Box::leak(path.into_boxed_str());
    let listener = TcpListener::bind(&addr).await.unwrap_or_else(|e| {
        eprintln!("fastwebsockets-echo: cannot listen on {addr}: {e}");
        std::process::exit(1);
    });
    println!("fastwebsockets-echo listening on ws://{}{path}", listener.local_addr().unwrap());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = http1::Builder::new()
                .serve_connection(io, service_fn(move |req| server_upgrade(path, req)))
                .with_upgrades();
            let _ = conn.await;
        });
    }
}
