//! The heap an idle QUIC connection holds, counted by a global allocator that tracks
//! every allocation of this test binary. quinn kept each connection's send buffer at
//! the size of its largest transmit for the connection's whole life (over loopback, ten
//! datagrams of 64 KiB); wharf's patch of quinn lends it by the thread only while a
//! transmit runs (vendor/README.md).

use std::alloc::System;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use cap::Cap;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Connections held open at once.
const CONNECTIONS: usize = 8;
/// What the server sends on each connection before it idles.
const RESPONSE: usize = 4 << 20;
/// Datagrams larger than this show path MTU discovery found loopback's large ones.
const LARGE_DATAGRAM: u16 = 16_000;
/// Heap per connection, both ends together, once idle: 938 KB with the send buffer
/// owned by each connection, 75 KB with it lent.
const IDLE_LIMIT: usize = 128 << 10;

#[test]
fn idle_connections_hold_no_send_buffer() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), held_per_connection())
            .await
            .expect("the exchanges end within 60 s")
    });
}

async fn held_per_connection() {
    let (server, client) = endpoints();
    let addr = server.local_addr().unwrap();
    // One exchange first, so that what is made once per endpoint or thread is made.
    drop(exchange(&server, &client, addr).await);
    let before = HEAP.allocated();
    let mut open = Vec::new();
    for _ in 0..CONNECTIONS {
        open.push(exchange(&server, &client, addr).await);
    }
    let per_connection = HEAP.allocated().saturating_sub(before) / CONNECTIONS;
    let mtu: Vec<u16> = open
        .iter()
        .map(|(s, _)| s.stats().path.current_mtu)
        .collect();
    assert!(
        mtu.iter().all(|&m| m > LARGE_DATAGRAM),
        "path MTU per connection: {mtu:?}"
    );
    assert!(
        per_connection < IDLE_LIMIT,
        "{per_connection} bytes of heap per idle connection (both ends), over {IDLE_LIMIT}"
    );
}

/// A connection on which the server has sent [`RESPONSE`] bytes, all acknowledged, in
/// datagrams larger than [`LARGE_DATAGRAM`]; its two ends.
async fn exchange(
    server: &quinn::Endpoint,
    client: &quinn::Endpoint,
    addr: SocketAddr,
) -> (quinn::Connection, quinn::Connection) {
    let connecting = client.connect(addr, "localhost").unwrap();
    let accepted = async { server.accept().await.unwrap().await.unwrap() };
    let (ours, theirs) = tokio::join!(accepted, connecting);
    let theirs = theirs.unwrap();
    // Path MTU discovery takes a round trip per step: bounded by count.
    for _ in 0..20 {
        let send = async {
            let mut stream = ours.open_uni().await.unwrap();
            stream.write_all(&vec![7; RESPONSE]).await.unwrap();
            stream.finish().unwrap();
            stream.stopped().await.unwrap();
        };
        let receive = async {
            let mut stream = theirs.accept_uni().await.unwrap();
            let body = stream.read_to_end(RESPONSE).await.unwrap();
            assert_eq!(body.len(), RESPONSE);
        };
        tokio::join!(send, receive);
        if ours.stats().path.current_mtu > LARGE_DATAGRAM {
            break;
        }
    }
    (ours, theirs)
}

/// A server for `localhost` on an ephemeral loopback port, and a client that trusts it.
fn endpoints() -> (quinn::Endpoint, quinn::Endpoint) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = issued.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(issued.signing_key.serialize_der().into());
    let tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(wharf_quic::transport()));
    let server = wharf_quic::endpoint(loopback(), Some(config)).unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(wharf_quic::transport()));
    let mut client = wharf_quic::endpoint(loopback(), None).unwrap();
    client.set_default_client_config(config);
    (server, client)
}

fn loopback() -> UdpSocket {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
}
