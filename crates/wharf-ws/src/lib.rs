//! wharf's WebSocket (RFC 6455) with permessage-deflate (RFC 7692), over HTTP/1.1
//! upgrades and extended CONNECT (RFC 8441, RFC 9220).
//!
//! - [`handshake`]: the opening handshake as pure functions over `http` types: 101 or
//!   200, or the refusal (400, 403, 405, 426) with the fields the RFC asks for.
//! - `frame`, `message`, `close`, `deflate`: frames into messages, sans-IO.
//! - [`session`]: one connection over any byte stream, with heartbeats, limits and
//!   the closing handshake; [`session::echo`] echoes.
//!
//! Why wharf's own frame layer: the crates of the field (tungstenite 0.30,
//! fastwebsockets 0.10) reject every frame with RSV1 set, so neither can carry
//! permessage-deflate, and both keep read buffers for the life of a connection, which a
//! hub of ten thousand idle subscribers cannot afford. ARCHITECTURE.md has the figures.
//!
//! This crate knows no transport and no service: the caller does the handshake with
//! [`handshake::accept`], answers with its response, and runs a [`Session`] on the
//! stream the transport hands over.

mod close;
mod deflate;
mod frame;
pub mod handshake;
mod message;
pub mod session;

pub use close::{Close, Code};
pub use deflate::Agreed;
pub use handshake::{accept, is_websocket, Accepted, ConnectProtocol, Origins, Policy, Refused};
pub use message::Message;
pub use session::{echo, Closed, End, Session, Settings};

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// Everything an endpoint needs to accept a connection.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// What the handshake accepts.
    pub policy: Policy,
    /// The sessions' limits and timings.
    pub settings: Arc<Settings>,
    /// Fires on shutdown: sessions close with 1001.
    pub shutdown: Option<CancellationToken>,
}

impl Endpoint {
    /// Answers a handshake: on success the response to send (101 or 200), with `run`
    /// spawned on the session once the transport hands over the stream (`upgrade`,
    /// absent where the transport cannot).
    pub fn accept<B, U, S, E, F, Fut>(
        &self,
        req: &http::Request<B>,
        upgrade: Option<U>,
        run: F,
    ) -> Result<http::Response<()>, Refused>
    where
        U: Future<Output = Result<S, E>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: FnOnce(Session<S>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accepted = accept(req, &self.policy)?;
        let Some(upgrade) = upgrade else {
            return Err(Refused {
                status: http::StatusCode::NOT_IMPLEMENTED,
                headers: http::HeaderMap::new(),
                reason: "WebSocket is not available over this HTTP version",
            });
        };
        let (settings, shutdown, deflate) = (
            self.settings.clone(),
            self.shutdown.clone(),
            accepted.deflate,
        );
        tokio::spawn(async move {
            // An error: the answer was not written (the client went away).
            let Ok(io) = upgrade.await else {
                return;
            };
            run(Session::new(io, settings, deflate, shutdown)).await;
        });
        Ok(accepted.response)
    }
}
