//! A floor for bench/floor: an HTTP/3 server that does only what every HTTP/3 server
//! on wharf's QUIC layer must do for a GET, so that what quinn, rustls and the kernel
//! cost alone can be measured beside wharf's HTTP/3 and HTTP/2.
//!
//! The endpoint is wharf's (`wharf_quic::endpoint`, `wharf_quic::transport`, quinn
//! with wharf's patch), with the stream limits and flow-control windows of wharf's
//! defaults. Each connection opens its control stream with empty SETTINGS and drains
//! the client's unidirectional streams; each request stream is read to its end (the
//! request is not decoded) and answered with one precomputed response: a HEADERS
//! frame (`:status: 200` and `content-length` from QPACK's static table) and one DATA
//! frame holding FILE. As in wharf, a connection's streams are served in its own task
//! (so the responses ready at once leave in one transmit). Not a server to deploy.

use std::net::UdpSocket;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// wharf's default limits (crates/wharf-server/src/limits.rs, h3/mod.rs).
const BIDI_STREAMS: u32 = 128;
const UNI_STREAMS: u32 = 8;
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, cert, key, addr, file] = args.as_slice() else {
        eprintln!("usage: h3-floor CERT KEY ADDR FILE");
        std::process::exit(2);
    };
    let response = encode_response(&std::fs::read(file).expect("FILE"));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("CERT")
        .collect::<Result<_, _>>()
        .expect("CERT");
    let key = PrivateKeyDer::from_pem_file(key).expect("KEY");
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("TLS 1.3")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("certificate");
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("QUIC TLS");
    let mut transport = wharf_quic::transport();
    transport
        .max_concurrent_bidi_streams(BIDI_STREAMS.into())
        .max_concurrent_uni_streams(UNI_STREAMS.into())
        .stream_receive_window(STREAM_WINDOW.into())
        .receive_window(CONNECTION_WINDOW.into());
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let socket = UdpSocket::bind(addr).expect("bind");
        let endpoint = wharf_quic::endpoint(socket, Some(config)).expect("endpoint");
        while let Some(incoming) = endpoint.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    serve(conn, response).await;
                }
            });
        }
    });
}

/// HEADERS (`:status: 200`, `content-length`) and DATA frames around `body`.
fn encode_response(body: &[u8]) -> Bytes {
    let length = body.len().to_string();
    // QPACK: no dynamic table (two zero bytes), `:status: 200` indexed (static 25),
    // `content-length` a literal with its name from the static table (index 4).
    let mut fields = vec![0x00, 0x00, 0xc0 | 25, 0x50 | 4, length.len() as u8];
    fields.extend_from_slice(length.as_bytes());
    let mut out = Vec::with_capacity(body.len() + 32);
    frame(&mut out, 0x01, &fields);
    frame(&mut out, 0x00, body);
    Bytes::from(out)
}

fn frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.push(kind);
    varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// RFC 9000 §16.
fn varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=63 => out.push(v as u8),
        64..=16_383 => out.extend_from_slice(&(0x4000 | v as u16).to_be_bytes()),
        16_384..=1_073_741_823 => out.extend_from_slice(&(0x8000_0000 | v as u32).to_be_bytes()),
        _ => out.extend_from_slice(&(0xc000_0000_0000_0000 | v).to_be_bytes()),
    }
}

async fn serve(conn: quinn::Connection, response: Bytes) {
    // The control stream (type 0x00) with an empty SETTINGS frame, kept open.
    let Ok(mut control) = conn.open_uni().await else {
        return;
    };
    if control.write_all(&[0x00, 0x04, 0x00]).await.is_err() {
        return;
    }
    let mut requests = FuturesUnordered::new();
    let mut drains = FuturesUnordered::new();
    loop {
        tokio::select! {
            uni = conn.accept_uni() => {
                let Ok(recv) = uni else { return };
                drains.push(read_to_end(recv)); // the client's control and QPACK streams
            }
            bi = conn.accept_bi() => {
                let Ok((send, recv)) = bi else { return };
                requests.push(answer(send, recv, response.clone()));
            }
            Some(()) = requests.next(), if !requests.is_empty() => {}
            Some(_) = drains.next(), if !drains.is_empty() => {}
        }
    }
}

/// Reads the request stream to its end, then writes the response and ends the stream.
async fn answer(mut send: quinn::SendStream, recv: quinn::RecvStream, response: Bytes) {
    if read_to_end(recv).await && send.write_chunk(response).await.is_ok() {
        let _ = send.finish();
    }
}

/// Reads `recv` to its end, its bytes dropped as they come: whether it ended (not
/// reset, not lost with the connection).
async fn read_to_end(mut recv: quinn::RecvStream) -> bool {
    loop {
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}
