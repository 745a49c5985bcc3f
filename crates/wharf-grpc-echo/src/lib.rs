//! A gRPC echo service and its client (tonic), to put wharf's proxy between real gRPC
//! peers in tests and benchmarks: a unary call, a server stream, a bidirectional
//! stream, and a slow call for deadlines. A [`Server`] runs on a runtime of its own,
//! so that [`Server::kill`] can drop it with every connection at once, as an upstream
//! that dies does.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// A text message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    /// The text.
    #[prost(string, tag = "1")]
    pub text: String,
}

/// Asks for `count` messages, one every `interval_ms`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamRequest {
    /// Echoed in every message, with its number.
    #[prost(string, tag = "1")]
    pub text: String,
    /// How many messages.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    /// Milliseconds between them.
    #[prost(uint64, tag = "3")]
    pub interval_ms: u64,
}

/// Asks for an answer after `millis`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SlowRequest {
    /// Milliseconds to wait before answering.
    #[prost(uint64, tag = "1")]
    pub millis: u64,
}

/// The generated client and server.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/wharf.echo.Echo.rs"));
}

pub use pb::echo_client::EchoClient;
pub use pb::echo_server::EchoServer;

/// The service: answers `NAME: text`, so that a test sees which server answered.
#[derive(Debug, Clone)]
pub struct EchoService {
    name: String,
}

type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

#[tonic::async_trait]
impl pb::echo_server::Echo for EchoService {
    async fn unary(&self, req: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(Response::new(self.echo(&req.into_inner().text)))
    }

    type ServerStreamStream = MsgStream;

    async fn server_stream(
        &self,
        req: Request<StreamRequest>,
    ) -> Result<Response<MsgStream>, Status> {
        let r = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let me = self.clone();
        tokio::spawn(async move {
            for i in 0..r.count {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(r.interval_ms)).await;
                }
                if tx
                    .send(Ok(me.echo(&format!("{} {i}", r.text))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type BidiStream = MsgStream;

    async fn bidi(&self, req: Request<Streaming<Msg>>) -> Result<Response<MsgStream>, Status> {
        let mut incoming = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = incoming.message().await {
                if tx.send(Ok(me.echo(&m.text))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn slow(&self, req: Request<SlowRequest>) -> Result<Response<Msg>, Status> {
        tokio::time::sleep(Duration::from_millis(req.into_inner().millis)).await;
        Ok(Response::new(self.echo("slow")))
    }
}

impl EchoService {
    /// A service that answers as `name`.
    pub fn named(name: &str) -> EchoService {
        EchoService {
            name: name.to_owned(),
        }
    }

    fn echo(&self, text: &str) -> Msg {
        Msg {
            text: format!("{}: {text}", self.name),
        }
    }
}

/// An echo server on 127.0.0.1 (h2c), on a runtime of its own.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    /// Starts a server that answers as `name`.
    pub fn start(name: &str) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a port on 127.0.0.1");
        let addr = listener.local_addr().expect("its address");
        let service = EchoServer::new(EchoService::named(name));
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Server {
            addr,
            runtime: Some(runtime),
        }
    }

    /// Stops the server at once: every connection is dropped mid-way, as when an
    /// upstream dies.
    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
