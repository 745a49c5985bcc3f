//! An HTTP/3 client over quinn and h3: trust roots, session resumption with 0-RTT,
//! and rebinding to a new local address (connection migration).
//!
//! A server may refuse a resumed connection's early data (its ticket forgotten, its
//! keys rotated by a reload: RFC 9001 §4.6.2). Every stream opened before the
//! handshake is then lost, HTTP/3's own control and QPACK streams among them, so the
//! connection's HTTP/3 is set up again once the handshake is over and a request that
//! failed for that reason is sent once more (RFC 8446 §4.2.10: the client must not
//! take 0-RTT data for processed when the server rejects it). wharf's tests use it
//! to speak HTTP/3 to the server, and `wharf-load` measures with it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};

/// A QUIC endpoint that can open HTTP/3 connections; it keeps the TLS session
/// tickets servers send, so later connections can resume and send 0-RTT data.
pub struct Client {
    endpoint: quinn::Endpoint,
    crypto: Arc<quinn::crypto::rustls::QuicClientConfig>,
    /// The PING interval of [`Client::keep_alive`], if set.
    keep_alive: Option<std::time::Duration>,
}

/// One HTTP/3 connection.
pub struct Connection {
    quic: quinn::Connection,
    h3: tokio::sync::RwLock<H3>,
    /// Whether the server accepted the 0-RTT data (`None` until the handshake says),
    /// when 0-RTT was used.
    zero_rtt: Option<tokio::sync::watch::Receiver<Option<bool>>>,
}

/// HTTP/3 on a QUIC connection: the handle requests are sent with, and the task
/// that drives the connection's control streams.
struct H3 {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    driver: tokio::task::JoinHandle<()>,
    /// Set up after a rejected 0-RTT handshake (so never again for this connection).
    after_rejection: bool,
}

impl H3 {
    async fn new(quic: &quinn::Connection, after_rejection: bool) -> anyhow::Result<H3> {
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(quic.clone()))
            .await
            .map_err(|e| anyhow!("HTTP/3 setup: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(H3 {
            send,
            driver,
            after_rejection,
        })
    }
}

/// A response whose body is still arriving.
pub struct Incoming {
    /// Interim (1xx) responses that preceded the final one.
    pub interim: Vec<Response<()>>,
    /// Status and header fields.
    pub head: Response<()>,
    stream: h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
}

impl Incoming {
    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        let chunk = self
            .stream
            .recv_data()
            .await
            .map_err(|e| anyhow!("response body: {e}"))?;
        Ok(chunk.map(|mut c| c.copy_to_bytes(c.remaining())))
    }

    /// The response with the rest of its body.
    pub async fn fetch(mut self) -> anyhow::Result<Fetched> {
        let mut body = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            interim: self.interim,
            head: self.head,
            body: body.freeze(),
        })
    }
}

/// A response with its whole body.
pub struct Fetched {
    /// Interim (1xx) responses that preceded the final one.
    pub interim: Vec<Response<()>>,
    /// Status and header fields.
    pub head: Response<()>,
    /// The body.
    pub body: Bytes,
}

fn client_config(
    crypto: &Arc<quinn::crypto::rustls::QuicClientConfig>,
    keep_alive: Option<std::time::Duration>,
) -> quinn::ClientConfig {
    let mut transport = wharf_quic::transport();
    transport.keep_alive_interval(keep_alive);
    let mut config = quinn::ClientConfig::new(crypto.clone());
    config.transport_config(Arc::new(transport));
    config
}

impl Client {
    /// A client trusting the PEM certificates in `roots_pem`, bound to `bind`.
    pub fn new(roots_pem: &[u8], bind: SocketAddr) -> anyhow::Result<Client> {
        Client::build(roots_pem, bind, None)
    }

    /// A client that also presents a certificate (mutual TLS): `chain_pem` holds
    /// its chain, leaf first, and `key_pem` its private key.
    pub fn with_identity(
        roots_pem: &[u8],
        bind: SocketAddr,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> anyhow::Result<Client> {
        Client::build(roots_pem, bind, Some((chain_pem, key_pem)))
    }

    fn build(
        roots_pem: &[u8],
        bind: SocketAddr,
        identity: Option<(&[u8], &[u8])>,
    ) -> anyhow::Result<Client> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(roots_pem) {
            roots.add(cert.context("trust roots")?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots);
        let mut tls = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder.with_client_auth_cert(
                CertificateDer::pem_slice_iter(chain)
                    .collect::<Result<_, _>>()
                    .context("client certificate chain")?,
                PrivateKeyDer::from_pem_slice(key).context("client key")?,
            )?,
        };
        tls.alpn_protocols = vec![b"h3".to_vec()];
        tls.enable_early_data = true;
        let crypto = Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls)?);
        let mut endpoint = wharf_quic::endpoint(std::net::UdpSocket::bind(bind)?, None)?;
        endpoint.set_default_client_config(client_config(&crypto, None));
        Ok(Client {
            endpoint,
            crypto,
            keep_alive: None,
        })
    }

    /// Connections opened from now on send a PING after `every` without traffic, so
    /// that idle ones outlive the idle timeout.
    pub fn keep_alive(&mut self, every: std::time::Duration) {
        self.keep_alive = Some(every);
        self.endpoint
            .set_default_client_config(client_config(&self.crypto, Some(every)));
    }

    /// Connects to `addr` for `server_name`. With a session ticket from an earlier
    /// connection to the same name, the connection is usable at once (0-RTT):
    /// requests sent before the handshake ends travel as early data.
    pub async fn connect(&self, addr: SocketAddr, server_name: &str) -> anyhow::Result<Connection> {
        let connecting = self.endpoint.connect(addr, server_name)?;
        let (quic, zero_rtt) = match connecting.into_0rtt() {
            Ok((quic, accepted)) => {
                let (answer, zero_rtt) = tokio::sync::watch::channel(None);
                tokio::spawn(async move {
                    let _ = answer.send(Some(accepted.await));
                });
                (quic, Some(zero_rtt))
            }
            Err(connecting) => (connecting.await?, None),
        };
        let h3 = tokio::sync::RwLock::new(H3::new(&quic, false).await?);
        Ok(Connection { quic, h3, zero_rtt })
    }

    /// A QUIC connection to `addr` for `server_name` (ALPN h3) with nothing set up
    /// on it, for tests that write HTTP/3 frames by hand: from an endpoint of its
    /// own that takes datagrams of at most 1,472 bytes, as over Ethernet. (Over
    /// loopback's 64 KiB datagrams, quinn 0.11 counts a whole datagram against the
    /// congestion window for a CONNECTION_CLOSE and may never send it.)
    pub async fn connect_raw(
        &self,
        addr: SocketAddr,
        server_name: &str,
    ) -> anyhow::Result<quinn::Connection> {
        let mut config = quinn::EndpointConfig::default();
        config.max_udp_payload_size(1472)?;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let runtime = Arc::new(quinn::TokioRuntime);
        let endpoint = quinn::Endpoint::new(config, None, socket, runtime)?;
        let config = client_config(&self.crypto, self.keep_alive);
        Ok(endpoint.connect_with(config, addr, server_name)?.await?)
    }

    /// Moves the client to a new UDP socket (a new local port): its connections
    /// migrate to the new path (RFC 9000 §9).
    pub fn rebind(&self, bind: SocketAddr) -> anyhow::Result<SocketAddr> {
        let socket = std::net::UdpSocket::bind(bind)?;
        let local = socket.local_addr()?;
        wharf_quic::rebind(&self.endpoint, socket)?;
        Ok(local)
    }

    /// The local address in use.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Waits until every connection is closed (so session tickets have arrived).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

impl Connection {
    /// Whether this connection sent 0-RTT data that the server accepted; `None`
    /// when no 0-RTT was attempted. Waits for the handshake.
    pub async fn zero_rtt_accepted(&self) -> Option<bool> {
        let mut answer = self.zero_rtt.clone()?;
        let known = answer.wait_for(Option::is_some).await.ok()?;
        *known
    }

    /// After a request failed: whether the server rejected this connection's 0-RTT
    /// data, and if so HTTP/3 set up again (once) so that the request can be resent.
    async fn recovered_from_rejection(&self) -> anyhow::Result<bool> {
        if self.zero_rtt_accepted().await != Some(false) {
            return Ok(false);
        }
        let mut h3 = self.h3.write().await;
        if !h3.after_rejection {
            h3.driver.abort();
            *h3 = H3::new(&self.quic, true).await?;
        }
        Ok(true)
    }

    /// Sends `req` (its body, if any, in one piece) and reads the whole response.
    pub async fn send(&self, req: Request<Bytes>) -> anyhow::Result<Fetched> {
        self.start(req).await?.fetch().await
    }

    /// Sends `req` and waits for the response head; the body is read with
    /// [`Incoming::chunk`].
    /// Several requests may be in flight at once: each call takes its own handle
    /// to the connection.
    pub async fn start(&self, req: Request<Bytes>) -> anyhow::Result<Incoming> {
        self.start_with_trailers(req, None).await
    }

    /// [`Self::start`], sending `trailers` (when given) after the body.
    pub async fn start_with_trailers(
        &self,
        req: Request<Bytes>,
        trailers: Option<http::HeaderMap>,
    ) -> anyhow::Result<Incoming> {
        self.start_ending(req, trailers, true).await
    }

    /// [`Self::start`] with the request's stream left open: the server sees the head
    /// and no end, as of a client whose end comes later.
    pub async fn start_unended(&self, req: Request<Bytes>) -> anyhow::Result<Incoming> {
        self.start_ending(req, None, false).await
    }

    async fn start_ending(
        &self,
        req: Request<Bytes>,
        trailers: Option<http::HeaderMap>,
        end: bool,
    ) -> anyhow::Result<Incoming> {
        // A copy to send again is made only while the early data's fate is open: once
        // the server accepted it (or none was sent), requests go out once, uncopied.
        let again = self
            .early_data_pending()
            .then(|| resend_copy(&req, trailers.as_ref()));
        match (self.start_once(req, trailers, end).await, again) {
            // A failed setup after the rejection leaves the request's own error.
            (Err(e), Some((req, trailers)))
                if self.recovered_from_rejection().await.unwrap_or(false) =>
            {
                self.start_once(req, trailers, end)
                    .await
                    .context("resent after the server rejected 0-RTT")
                    .map_err(|again| again.context(e))
            }
            (done, _) => done,
        }
    }

    /// Whether this connection sent early data that the server has not (yet) been
    /// seen to accept.
    fn early_data_pending(&self) -> bool {
        self.zero_rtt
            .as_ref()
            .is_some_and(|answer| *answer.borrow() != Some(true))
    }

    async fn start_once(
        &self,
        req: Request<Bytes>,
        trailers: Option<http::HeaderMap>,
        end: bool,
    ) -> anyhow::Result<Incoming> {
        let (head, body) = req.into_parts();
        let mut send = self.h3.read().await.send.clone();
        let mut stream = send
            .send_request(Request::from_parts(head, ()))
            .await
            .map_err(|e| anyhow!("request: {e}"))?;
        if !body.is_empty() {
            stream
                .send_data(body)
                .await
                .map_err(|e| anyhow!("request body: {e}"))?;
        }
        if let Some(trailers) = trailers {
            stream
                .send_trailers(trailers)
                .await
                .map_err(|e| anyhow!("request trailers: {e}"))?;
        }
        // A server may answer before it has read the whole request and ask the client
        // to stop sending (RFC 9114 §4.1); the response still counts, so a failed
        // finish is not an error here: a broken connection fails the response below.
        if end {
            let _ = stream.finish().await;
        }
        let mut interim = Vec::new();
        loop {
            let head = stream
                .recv_response()
                .await
                .map_err(|e| anyhow!("response: {e}"))?;
            // 1xx heads (103 Early Hints) come before the final one.
            if head.status().is_informational() {
                interim.push(head);
                continue;
            }
            return Ok(Incoming {
                interim,
                head,
                stream,
            });
        }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> anyhow::Result<Fetched> {
        self.send(Request::get(url).body(Bytes::new())?).await
    }

    /// The server's address as this connection sees it now.
    pub fn remote_address(&self) -> SocketAddr {
        self.quic.remote_address()
    }

    /// QUIC statistics of this connection: packets, losses, path MTU, RTT.
    pub fn stats(&self) -> quinn::ConnectionStats {
        self.quic.stats()
    }

    /// Whether the connection is still open (neither end closed it, no idle timeout).
    pub fn is_open(&self) -> bool {
        self.quic.close_reason().is_none()
    }

    /// Closes the connection (code 0).
    pub fn close(&self) {
        self.quic.close(0u32.into(), b"done");
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.h3.get_mut().driver.abort();
    }
}

/// What a request is sent with again: its method, target, version, fields and body
/// (its extensions are the client's own and not sent), and its trailers.
fn resend_copy(
    req: &Request<Bytes>,
    trailers: Option<&http::HeaderMap>,
) -> (Request<Bytes>, Option<http::HeaderMap>) {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    (copy, trailers.cloned())
}
