//! HTTP/3 with a Rust client (quinn + h3, `wharf-load`): requests, Alt-Svc, 0-RTT
//! resumption with 425 for unsafe methods, and connection migration mid-response.

mod common;

use bytes::Bytes;
use common::{within, Builder, Proto, Wharf};
use wharf_load::Client;

fn https() -> Builder {
    Builder::new()
        .proto(Proto::H2Tls)
        .file("large.bin", vec![7u8; 8 << 20])
}

fn client(w: &Wharf) -> Client {
    let roots = std::fs::read(w.root_cert()).unwrap();
    Client::new(&roots, "127.0.0.1:0".parse().unwrap()).unwrap()
}

#[test]
fn requests_over_http3_and_alt_svc_on_tcp() {
    let w = https().start();
    let alt = w.get("/hello.txt", &[]).headers()["alt-svc"].clone();
    assert_eq!(alt, format!("h3=\":{}\"; ma=86400", w.addr.port()).as_str());
    within(async {
        let c = client(&w);
        let conn = c.connect(w.addr, "localhost").await.unwrap();
        let res = conn.get(&w.url("/hello.txt")).await.unwrap();
        assert_eq!(res.head.status(), 200);
        assert_eq!(res.head.version(), http::Version::HTTP_3);
        assert_eq!(res.body, "hello, world\n");
        let res = conn
            .send(
                http::Request::get(w.url("/digits.txt"))
                    .header("range", "bytes=0-4")
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.head.status(), 206);
        assert_eq!(res.body, "01234");
        assert!(
            res.head.headers().get("alt-svc").is_none(),
            "not on HTTP/3 itself"
        );
    });
    let line = w.wait_for_output("\"GET /hello.txt HTTP/3.0\" 200");
    assert!(line.starts_with("127.0.0.1 "), "{line}");
}

/// A GET whose stream has not ended when the file is answered (its body is still
/// being read): the response comes, and the connection serves the next request. The
/// request's body, dropped unread, used to panic in h3-quinn's `stop_sending`, which
/// took the connection down with every request on it.
#[test]
fn a_request_answered_before_its_stream_ends() {
    let w = https().start();
    within(async {
        let c = client(&w);
        let conn = c.connect(w.addr, "localhost").await.unwrap();
        let req = http::Request::get(w.url("/hello.txt"))
            .body(Bytes::new())
            .unwrap();
        let res = conn
            .start_unended(req)
            .await
            .unwrap()
            .fetch()
            .await
            .unwrap();
        assert_eq!(res.head.status(), 200);
        assert_eq!(res.body, "hello, world\n");
        let again = conn.get(&w.url("/hello.txt")).await.unwrap();
        assert_eq!(again.head.status(), 200);
        assert!(conn.is_open());
    });
}

#[test]
fn early_hints_over_http3() {
    let w = https()
        .file("page.html", "<link rel=stylesheet href=/s.css><p>page")
        .start();
    within(async {
        let c = client(&w);
        let conn = c.connect(w.addr, "localhost").await.unwrap();
        let res = conn.get(&w.url("/page.html")).await.unwrap();
        assert_eq!(res.interim.len(), 1);
        assert_eq!(res.interim[0].status(), 103);
        let link = "</s.css>; rel=preload; as=style";
        assert_eq!(res.interim[0].headers()["link"], link);
        assert_eq!(res.head.status(), 200);
        assert_eq!(res.head.headers()["link"], link);
        let plain = conn.get(&w.url("/hello.txt")).await.unwrap();
        assert!(plain.interim.is_empty());
    });
}

#[test]
fn zero_rtt_serves_safe_methods_and_answers_425_to_others() {
    let w = https().start();
    within(async {
        let c = client(&w);
        let mut first = c.connect(w.addr, "localhost").await.unwrap();
        assert_eq!(first.zero_rtt_accepted().await, None, "no ticket yet");
        assert_eq!(
            first.get(&w.url("/hello.txt")).await.unwrap().head.status(),
            200
        );
        first.close();
        c.wait_idle().await;

        // A resumed connection's first request goes out before the handshake
        // completes, as early data: an unsafe method is refused...
        let post = || {
            http::Request::post(w.url("/hello.txt"))
                .body(Bytes::from_static(b"x"))
                .unwrap()
        };
        let mut resumed = c.connect(w.addr, "localhost").await.unwrap();
        let early = resumed.send(post()).await.unwrap();
        assert_eq!(
            early.head.status(),
            425,
            "RFC 8470: unsafe method in early data"
        );
        assert_eq!(resumed.zero_rtt_accepted().await, Some(true));
        // ...and after the handshake the same request is an ordinary one (405: files
        // take no POST).
        assert_eq!(resumed.send(post()).await.unwrap().head.status(), 405);
        resumed.close();
        c.wait_idle().await;

        // ...while a safe one is served from early data.
        let mut again = c.connect(w.addr, "localhost").await.unwrap();
        let get = again.get(&w.url("/hello.txt")).await.unwrap();
        assert_eq!(get.head.status(), 200);
        assert_eq!(get.body, "hello, world\n");
        assert_eq!(again.zero_rtt_accepted().await, Some(true));
    });
}

#[test]
fn a_client_that_changes_address_keeps_its_connection_and_response() {
    let w = https().start();
    within(async {
        let c = client(&w);
        let before = c.local_addr().unwrap();
        let conn = c.connect(w.addr, "localhost").await.unwrap();
        let mut incoming = conn
            .start(
                http::Request::get(w.url("/large.bin"))
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(incoming.head.status(), 200);
        let mut got = incoming
            .chunk()
            .await
            .unwrap()
            .expect("a first chunk")
            .len();
        // Mid-response, the client moves to another port.
        let after = c.rebind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(before.port(), after.port());
        while let Some(chunk) = incoming.chunk().await.unwrap() {
            got += chunk.len();
        }
        assert_eq!(got, 8 << 20, "the whole body arrived across the move");
        let res = conn.get(&w.url("/hello.txt")).await.unwrap();
        assert_eq!(res.head.status(), 200, "the connection lives on");
    });
    // The server logged the later request from the new address.
    let lines = w.wait_for_lines("HTTP/3.0\" 200", 2);
    let ports: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(ports.iter().all(|p| *p == "127.0.0.1"), "{lines:?}");
}

/// Over loopback the server's path MTU discovery finds the 64 KiB datagrams the
/// path carries and keeps them: large GSO batches are sent in pieces the kernel
/// accepts rather than lost (which looked like an MTU black hole and pinned the
/// path at 1200 bytes).
#[test]
fn large_datagrams_over_loopback() {
    let w = https().start();
    within(async {
        let c = client(&w);
        let conn = c.connect(w.addr, "localhost").await.unwrap();
        // Probing takes a round trip per step; bounded by count (and `within`).
        let mut sizes = Vec::new();
        for _ in 0..20 {
            let before = conn.stats().udp_rx;
            let res = conn.get(&w.url("/large.bin")).await.unwrap();
            assert_eq!(res.body.len(), 8 << 20);
            let after = conn.stats().udp_rx;
            let mean = (after.bytes - before.bytes) / (after.datagrams - before.datagrams);
            sizes.push(mean);
            if mean > 16_000 {
                break;
            }
        }
        let stats = conn.stats().path;
        assert!(
            *sizes.last().unwrap() > 16_000,
            "mean datagram sizes per 8 MiB response: {sizes:?}; {stats:?}"
        );
    });
}
