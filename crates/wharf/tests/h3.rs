//! HTTP/3 with a Rust client (quinn + h3, `wharf-load`): requests, Alt-Svc, 0-RTT
//! resumption with 425 for unsafe methods, and connection migration mid-response;
//! and HTTP/3 frames written by hand on raw QUIC connections, for the error codes of
//! RFC 9114 and RFC 9204 and GOAWAY.

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

/// Opens a connection, completes a GET on it and closes it, so that `c` holds a
/// resumption ticket for its next one; returns what that connection said of early
/// data.
async fn take_ticket(c: &Client, w: &Wharf) -> Option<bool> {
    let first = c.connect(w.addr, "localhost").await.unwrap();
    assert_eq!(
        first.get(&w.url("/hello.txt")).await.unwrap().head.status(),
        200
    );
    let early = first.zero_rtt_accepted().await;
    first.close();
    c.wait_idle().await;
    early
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
        assert_eq!(take_ticket(&c, &w).await, None, "no ticket yet");

        // A resumed connection's first request goes out before the handshake
        // completes, as early data: an unsafe method is refused...
        let post = || {
            http::Request::post(w.url("/hello.txt"))
                .body(Bytes::from_static(b"x"))
                .unwrap()
        };
        let resumed = c.connect(w.addr, "localhost").await.unwrap();
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
        let again = c.connect(w.addr, "localhost").await.unwrap();
        let get = again.get(&w.url("/hello.txt")).await.unwrap();
        assert_eq!(get.head.status(), 200);
        assert_eq!(get.body, "hello, world\n");
        assert_eq!(again.zero_rtt_accepted().await, Some(true));
    });
}

/// A reload rotates the keys of session resumption, so the server rejects the
/// early data of a client resuming from an earlier ticket (RFC 9001 §4.6.2); the
/// client's request, lost with it, is sent again after the handshake and answered.
#[test]
fn a_request_in_rejected_early_data_is_sent_again() {
    let w = https().start();
    within(async {
        let c = client(&w);
        take_ticket(&c, &w).await;

        w.signal("HUP");
        w.wait_for_stderr("SIGHUP: certificates reloaded");
        let resumed = c.connect(w.addr, "localhost").await.unwrap();
        let get = resumed.get(&w.url("/hello.txt")).await.unwrap();
        assert_eq!(get.head.status(), 200);
        assert_eq!(get.body, "hello, world\n");
        assert_eq!(resumed.zero_rtt_accepted().await, Some(false));
        // The connection goes on with HTTP/3 set up once more.
        let next = resumed.get(&w.url("/hello.txt")).await.unwrap();
        assert_eq!(next.head.status(), 200);
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

/// HTTP/3 written by hand on a raw QUIC connection, for RFC 9114's error cases.
mod raw {
    use bytes::Bytes;
    use wharf_h3::{qpack, Frames, Item};

    /// A GET's header section for `https://localhost{path}`: `:method GET` and
    /// `:scheme https` from the static table, `:path` and `:authority` literal.
    pub(super) fn get(path: &str) -> Vec<u8> {
        let mut s = vec![0, 0, 0xc0 | 17, 0xc0 | 23];
        for (first, value) in [(0x51, path), (0x50, "localhost")] {
            s.extend_from_slice(&[first, value.len() as u8]);
            s.extend_from_slice(value.as_bytes());
        }
        s
    }

    /// An extended CONNECT's header section (RFC 9220) for `:protocol` `protocol`
    /// at `https://localhost{path}`, as a WebSocket client sends it.
    pub(super) fn connect(protocol: &str, path: &str) -> Vec<u8> {
        let mut s = vec![0, 0, 0xc0 | 15, 0xc0 | 23];
        for (first, value) in [(0x51, path), (0x50, "localhost")] {
            s.extend_from_slice(&[first, value.len() as u8]);
            s.extend_from_slice(value.as_bytes());
        }
        for (name, value) in [(":protocol", protocol), ("sec-websocket-version", "13")] {
            s.extend_from_slice(&[0x27, name.len() as u8 - 7]);
            s.extend_from_slice(name.as_bytes());
            s.extend_from_slice(&[value.len() as u8]);
            s.extend_from_slice(value.as_bytes());
        }
        s
    }

    /// Reads a response's frames (`frames`: those read so far) as they come until
    /// `done` says it has what it waits for: the status (0 until a head comes) and
    /// the DATA read in this call.
    pub(super) async fn read_until(
        recv: &mut quinn::RecvStream,
        frames: &mut Frames,
        done: impl Fn(u16, &[u8]) -> bool,
    ) -> (u16, Vec<u8>) {
        let (mut status, mut body) = (0, Vec::new());
        while !done(status, &body) {
            let chunk = recv.read_chunk(1 << 16, true).await.unwrap();
            let mut input = chunk.expect("the stream goes on").bytes;
            take(frames, &mut input, &mut status, &mut body);
        }
        (status, body)
    }

    /// Reads the response frames in `input`: the last head's status, and the DATA.
    fn take(frames: &mut Frames, input: &mut Bytes, status: &mut u16, body: &mut Vec<u8>) {
        while let Some(item) = frames.next(input).unwrap() {
            match item {
                Item::Headers(block) => *status = status_of(&block),
                Item::Data(data) => body.extend_from_slice(&data),
                other => panic!("{other:?} in a response"),
            }
        }
    }

    fn status_of(block: &Bytes) -> u16 {
        let mut status = 0;
        qpack::decode(block, |f| {
            if &f.name[..] == b":status" {
                status = std::str::from_utf8(&f.value).unwrap().parse().unwrap();
            }
        })
        .unwrap();
        status
    }

    /// A frame of `kind` around `payload`.
    pub(super) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![kind];
        wharf_h3::varint::put(payload.len() as u64, &mut f);
        f.extend_from_slice(payload);
        f
    }

    /// A request stream carrying `bytes` (then its end, if `fin`).
    pub(super) async fn stream(
        conn: &quinn::Connection,
        bytes: &[u8],
        fin: bool,
    ) -> (quinn::SendStream, quinn::RecvStream) {
        let (mut send, recv) = conn.open_bi().await.unwrap();
        send.write_all(bytes).await.unwrap();
        if fin {
            send.finish().unwrap();
        }
        (send, recv)
    }

    /// A unidirectional stream carrying `bytes`, left open unless `fin`.
    pub(super) async fn uni(
        conn: &quinn::Connection,
        bytes: &[u8],
        fin: bool,
    ) -> quinn::SendStream {
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(bytes).await.unwrap();
        if fin {
            send.finish().unwrap();
        }
        send
    }

    /// A response read to its end: its status and body, or the code its stream was
    /// reset with.
    pub(super) async fn response(mut recv: quinn::RecvStream) -> Result<(u16, Vec<u8>), u64> {
        let bytes = match recv.read_to_end(1 << 20).await {
            Ok(bytes) => bytes,
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                return Err(code.into_inner())
            }
            Err(e) => panic!("reading the response: {e}"),
        };
        let (mut status, mut body) = (0, Vec::new());
        let mut frames = Frames::request(1 << 20);
        take(&mut frames, &mut Bytes::from(bytes), &mut status, &mut body);
        Ok((status, body))
    }

    /// The code the server closed the connection with.
    pub(super) async fn closed_with(conn: &quinn::Connection) -> u64 {
        match conn.closed().await {
            quinn::ConnectionError::ApplicationClosed(c) => c.error_code.into_inner(),
            other => panic!("closed otherwise: {other}"),
        }
    }
}

/// RFC 9114 §4.1.2, §4.2, §4.2.2: a malformed request head resets its stream with
/// H3_MESSAGE_ERROR, a stream that ends before a head with H3_REQUEST_INCOMPLETE, a
/// head over the limit gets 431; the connection serves on.
#[test]
fn malformed_http3_requests_end_their_streams_only() {
    let w = https().start();
    within(async {
        let conn = client(&w).connect_raw(w.addr, "localhost").await.unwrap();
        let mut upper = raw::get("/hello.txt");
        upper.extend_from_slice(&[0x23, b'X', b'-', b'A', 0x01, b'1']);
        let mut padded = raw::get("/hello.txt");
        padded.extend_from_slice(&[0x23, b'x', b'-', b'a', 0x02, b' ', b'1']);
        // §4.3.1: an https target names its authority (`:authority` or Host).
        let unnamed = [0, 0, 0xc0 | 17, 0xc0 | 23, 0x51, 2, b'/', b'x'];
        let empty_host = [&unnamed[..], &[0x24], b"host", &[0x00]].concat();
        let host = [&unnamed[..], &[0x24], b"host", &[0x09], b"localhost"].concat();
        let table: Vec<(Vec<u8>, Result<u16, u64>)> = vec![
            (raw::frame(1, &unnamed), Err(0x10e)),
            (raw::frame(1, &empty_host), Err(0x10e)),
            (raw::frame(1, &host), Ok(404)),
            (raw::frame(1, &upper), Err(0x10e)),
            (raw::frame(1, &padded), Err(0x10e)),
            (raw::frame(1, &[0, 0, 0xc0 | 17]), Err(0x10e)),
            (vec![], Err(0x10d)),
            (vec![0x01, 0x80, 0x01, 0x00, 0x00], Ok(431)),
        ];
        for (bytes, want) in table {
            let (_send, recv) = raw::stream(&conn, &bytes, true).await;
            let got = raw::response(recv).await.map(|(status, _)| status);
            assert_eq!(got, want, "{bytes:x?}");
        }
        let mut grease = raw::frame(1, &raw::get("/hello.txt"));
        grease.extend_from_slice(&raw::frame(0x21, b"grease"));
        let (_send, recv) = raw::stream(&conn, &grease, true).await;
        let (status, body) = raw::response(recv).await.unwrap();
        assert_eq!((status, &body[..]), (200, &b"hello, world\n"[..]));
    });
}

/// RFC 9114 §6.2, §7, RFC 9204 §2.2.3, §4.2-§4.4: what breaks the connection's rules
/// closes it with the code the RFC names.
#[test]
fn http3_connection_errors_close_with_the_rfcs_codes() {
    let w = https().start();
    let settings = raw::frame(4, &[]);
    let control = [&[0x00][..], &settings].concat();
    within(async {
        let c = client(&w);
        // (unidirectional streams with whether they end, request stream, the code)
        type Unis = Vec<(Vec<u8>, bool)>;
        let table: Vec<(Unis, Option<Vec<u8>>, u64)> = vec![
            (vec![], Some(raw::frame(0, b"x")), 0x105),
            (vec![], Some(raw::frame(2, b"")), 0x105),
            (vec![], Some(raw::frame(4, b"")), 0x105),
            (vec![], Some(raw::frame(1, &[0x02, 0x00, 0x80])), 0x200),
            (vec![], Some(raw::frame(1, &[0, 0, 0x80])), 0x200),
            (
                vec![],
                Some(raw::frame(1, &raw::get("/"))[..5].to_vec()),
                0x106,
            ),
            (
                vec![([&[0x00][..], &raw::frame(7, &[0])].concat(), false)],
                None,
                0x10a,
            ),
            (
                vec![(control.clone(), false), (control.clone(), false)],
                None,
                0x103,
            ),
            (vec![(control.clone(), true)], None, 0x104),
            (
                vec![([&control[..], &raw::frame(0, b"")].concat(), false)],
                None,
                0x105,
            ),
            (
                vec![([&control[..], &raw::frame(3, &[0])].concat(), false)],
                None,
                0x108,
            ),
            (
                vec![([&[0x00][..], &raw::frame(4, &[2, 0])].concat(), false)],
                None,
                0x109,
            ),
            (vec![(vec![0x01, 0x00], false)], None, 0x103),
            (vec![(vec![0x02, 0x3f, 0x01], false)], None, 0x201),
            (vec![(vec![0x02, 0x20], true)], None, 0x104),
            (vec![(vec![0x03, 0x80], false)], None, 0x202),
        ];
        for (unis, request, want) in table {
            let conn = c.connect_raw(w.addr, "localhost").await.unwrap();
            let mut open = Vec::new();
            for (bytes, fin) in &unis {
                open.push(raw::uni(&conn, bytes, *fin).await);
            }
            if let Some(bytes) = &request {
                open.push(raw::stream(&conn, bytes, true).await.0);
            }
            assert_eq!(
                raw::closed_with(&conn).await,
                want,
                "{unis:x?} {request:x?}"
            );
        }
        // A stream of an unknown type is ignored (§6.2.3, §9).
        let conn = c.connect_raw(w.addr, "localhost").await.unwrap();
        let _grease = raw::uni(&conn, &[0x21, 1, 2, 3], false).await;
        let (_send, recv) = raw::stream(&conn, &raw::frame(1, &raw::get("/hello.txt")), true).await;
        assert_eq!(raw::response(recv).await.unwrap().0, 200);
    });
}

/// RFC 9114 §5.2, §6.2.1: wharf's control stream begins with SETTINGS (its field
/// section limit); a connection at its request limit says with GOAWAY which request
/// was the first not served, answers the others and closes with H3_NO_ERROR.
#[test]
fn goaway_names_the_first_request_not_served() {
    let w = https()
        .config("[limits]\nmax_requests_per_connection = 2")
        .start();
    within(async {
        let conn = client(&w).connect_raw(w.addr, "localhost").await.unwrap();
        let mut control = conn.accept_uni().await.unwrap();
        let mut streams = Vec::new();
        for _ in 0..2 {
            let get = raw::frame(1, &raw::get("/hello.txt"));
            streams.push(raw::stream(&conn, &get, true).await);
        }
        for (_send, recv) in streams {
            assert_eq!(raw::response(recv).await.unwrap().0, 200);
        }
        let mut frames = wharf_h3::Frames::control();
        let mut items = Vec::new();
        let mut first = true;
        while items.len() < 2 {
            let chunk = control.read_chunk(1 << 16, true).await.unwrap();
            let mut input = chunk.expect("the control stream stays open").bytes;
            if std::mem::take(&mut first) {
                assert_eq!(input.first(), Some(&0x00), "a control stream");
                input = input.slice(1..);
            }
            while let Some(item) = frames.next(&mut input).unwrap() {
                items.push(item);
            }
        }
        let settings = wharf_h3::Settings {
            max_field_section_size: Some(16 * 1024),
            enable_connect_protocol: true,
            ..Default::default()
        };
        assert_eq!(
            items,
            [
                wharf_h3::Item::Settings(settings),
                wharf_h3::Item::Goaway(8)
            ]
        );
        assert_eq!(raw::closed_with(&conn).await, 0x100);
    });
}

/// WebSocket over HTTP/3 (RFC 9220): wharf offers extended CONNECT in its SETTINGS
/// (checked in `goaway_names_the_first_request_not_served`), answers a CONNECT with
/// `:protocol websocket` 200, and the stream's DATA frames carry the WebSocket
/// frames both ways; another protocol is refused.
#[test]
fn websocket_over_http3_extended_connect() {
    let w = https().config("[[websocket]]\npath = \"/ws\"").start();
    within(async {
        let conn = client(&w).connect_raw(w.addr, "localhost").await.unwrap();
        let head = raw::frame(1, &raw::connect("websocket", "/ws"));
        let (mut send, mut recv) = raw::stream(&conn, &head, false).await;
        let mut frames = wharf_h3::Frames::request(1 << 20);
        let (status, _) = raw::read_until(&mut recv, &mut frames, |status, _| status != 0).await;
        assert_eq!(status, 200);
        let message = common::ws::frame(true, 0, 1, b"over h3");
        send.write_all(&raw::frame(0, &message)).await.unwrap();
        let (_, echoed) = raw::read_until(&mut recv, &mut frames, |_, body| body.len() >= 9).await;
        assert_eq!(echoed, [&[0x81u8, 7][..], b"over h3"].concat());
        let other = raw::frame(1, &raw::connect("webtransport", "/ws"));
        let (_send, recv) = raw::stream(&conn, &other, true).await;
        assert_eq!(raw::response(recv).await.unwrap().0, 400);
    });
}

/// A request body the client stops sending midway fails after the idle timeout (the
/// client keeps its QUIC connection alive meanwhile, so only the body waits): the
/// stream is stopped with H3_REQUEST_CANCELLED and the connection serves on.
#[test]
fn a_stalled_request_body_times_out() {
    let w = https().config("[limits]\nidle_timeout = \"400ms\"").start();
    within(async {
        let mut c = client(&w);
        c.keep_alive(std::time::Duration::from_millis(100));
        let conn = c.connect_raw(w.addr, "localhost").await.unwrap();
        // POST /hub/t, content-length 10 (the static table's name), 3 bytes sent.
        let mut head = vec![0, 0, 0xc0 | 20, 0xc0 | 23, 0x51, 6];
        head.extend_from_slice(b"/hub/t");
        head.extend_from_slice(&[0x50, 9]);
        head.extend_from_slice(b"localhost");
        head.extend_from_slice(&[0x54, 2, b'1', b'0']);
        let bytes = [raw::frame(1, &head), raw::frame(0, b"abc")].concat();
        let (send, _recv) = raw::stream(&conn, &bytes, false).await;
        let stopped = send.stopped().await.unwrap();
        assert_eq!(stopped.map(quinn::VarInt::into_inner), Some(0x10c));
        let get = raw::frame(1, &raw::get("/hello.txt"));
        let (_send, recv) = raw::stream(&conn, &get, true).await;
        assert_eq!(raw::response(recv).await.unwrap().0, 200);
    });
}
