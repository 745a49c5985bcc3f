//! QUIC endpoints as wharf's server and its HTTP/3 client both open them.
//!
//! Three settings matter for throughput and are easy to get wrong:
//! - UDP socket buffers: a full receive buffer drops datagrams, which QUIC takes for
//!   congestion, so each socket asks for room for bursts.
//! - Datagram sizes (RFC 9000 §14): endpoints accept datagrams up to the largest
//!   UDP payload and probe for the path MTU (DPLPMTUD, RFC 8899) up to it, so a path
//!   that carries large datagrams (loopback: 64 KiB, as TCP's segments there; jumbo
//!   frames) is used with few packets and few acknowledgements.
//! - UDP GSO: quinn hands the kernel one buffer of several equal datagrams, up to
//!   ten, whatever their size. Linux refuses a buffer over 64 KiB with EMSGSIZE,
//!   which quinn-udp takes for a lost MTU probe and discards silently: once the
//!   path MTU grows past 6.5 KB, whole batches vanish, the losses look like a black
//!   hole and the MTU falls back to 1200 bytes. [`GsoSocket`] sends such a batch in
//!   pieces the kernel accepts.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime as _, UdpPoller};

/// Largest UDP payload accepted, advertised (RFC 9000 §18.2 max_udp_payload_size)
/// and probed for: an IPv6 datagram's limit (65,535 − 8). IPv4 probes above 65,507
/// bytes fail and the search settles below.
pub const MAX_UDP_PAYLOAD: u16 = 65_527;

/// Socket buffer requested for each QUIC socket (the kernel may cap it, see
/// `net.core.rmem_max` and `net.core.wmem_max`).
const UDP_BUFFER: usize = 4 << 20;

/// The most UDP payload one `sendmsg` may carry, all GSO segments together: the IP
/// packet's 16-bit length less the IP and UDP headers.
fn max_send(destination: SocketAddr) -> usize {
    match destination {
        SocketAddr::V4(_) => 65_535 - 20 - 8,
        SocketAddr::V6(_) => 65_535 - 8,
    }
}

/// An endpoint on `socket`: a server when `server` is given, else a client.
pub fn endpoint(
    socket: UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .map_err(io::Error::other)?;
    quinn::Endpoint::new_with_abstract_socket(
        config,
        server,
        GsoSocket::wrap(socket)?,
        Arc::new(quinn::TokioRuntime),
    )
}

/// Moves `endpoint` to `socket` (connection migration, RFC 9000 §9).
pub fn rebind(endpoint: &quinn::Endpoint, socket: UdpSocket) -> io::Result<()> {
    endpoint.rebind_abstract(GsoSocket::wrap(socket)?)
}

/// Transport settings to start from: path MTU discovery up to [`MAX_UDP_PAYLOAD`].
pub fn transport() -> quinn::TransportConfig {
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    let mut transport = quinn::TransportConfig::default();
    transport.mtu_discovery_config(Some(mtu));
    transport
}

/// quinn's tokio socket, with GSO batches cut to what the kernel accepts.
pub struct GsoSocket {
    inner: Arc<dyn AsyncUdpSocket>,
}

impl fmt::Debug for GsoSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GsoSocket")
            .field("inner", &self.inner)
            .finish()
    }
}

impl GsoSocket {
    /// Wraps `socket`, with room for bursts in its buffers.
    pub fn wrap(socket: UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let sock = socket2::SockRef::from(&socket);
        // Best effort: the kernel caps the sizes at its maximums.
        let _ = sock.set_recv_buffer_size(UDP_BUFFER);
        let _ = sock.set_send_buffer_size(UDP_BUFFER);
        let inner = quinn::TokioRuntime.wrap_udp_socket(socket)?;
        Ok(Arc::new(GsoSocket { inner }))
    }
}

impl AsyncUdpSocket for GsoSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let limit = max_send(transmit.destination);
        let Some(segment) = transmit.segment_size else {
            return self.inner.try_send(transmit);
        };
        if transmit.contents.len() <= limit {
            return self.inner.try_send(transmit);
        }
        let mut pieces = transmit
            .contents
            .chunks((limit / segment).max(1) * segment)
            .map(|contents| Transmit {
                contents,
                segment_size: (contents.len() > segment).then_some(segment),
                ..*transmit
            });
        // WouldBlock on the first piece: nothing was sent and quinn retries the whole
        // transmit later. On a later piece the rest is dropped (QUIC's loss recovery
        // resends it) rather than sending the first pieces twice.
        if let Some(first) = pieces.next() {
            self.inner.try_send(&first)?;
        }
        for piece in pieces {
            match self.inner.try_send(&piece) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                r => r?,
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sends `transmit` as quinn does: waits for writability, retries WouldBlock.
    async fn send(socket: &Arc<dyn AsyncUdpSocket>, transmit: &Transmit<'_>) {
        let mut poller = socket.clone().create_io_poller();
        loop {
            std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx))
                .await
                .unwrap();
            match socket.try_send(transmit) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r.unwrap(),
            }
        }
    }

    /// Sends `count` datagrams of `segment` bytes (datagram i filled with byte i) in
    /// one GSO batch and checks each arrives whole and in order.
    async fn batch_arrives(segment: usize, count: usize) {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let sender = GsoSocket::wrap(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        assert!(
            sender.max_transmit_segments() > 1,
            "the kernel should offer UDP GSO"
        );
        let contents: Vec<u8> = (0..count).flat_map(|i| vec![i as u8; segment]).collect();
        let transmit = Transmit {
            destination: receiver.local_addr().unwrap(),
            ecn: None,
            contents: &contents,
            segment_size: Some(segment),
            src_ip: None,
        };
        send(&sender, &transmit).await;
        let mut buf = vec![0; 65_536];
        for i in 0..count {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(n, segment, "datagram {i}");
            assert!(buf[..n].iter().all(|&b| b == i as u8), "datagram {i}");
        }
    }

    /// A GSO batch larger than one `sendmsg` may carry (ten datagrams of 20,000
    /// bytes) arrives whole; quinn-udp alone loses it to EMSGSIZE.
    #[tokio::test]
    async fn oversized_gso_batches_are_sent_in_pieces() {
        assert!(10 * 20_000 > max_send("127.0.0.1:1".parse().unwrap()));
        batch_arrives(20_000, 10).await;
    }

    /// A batch within the limit is passed on as one transmit.
    #[tokio::test]
    async fn small_batches_pass_through() {
        batch_arrives(1200, 3).await;
    }
}
