//! WebSocket endpoints (RFC 6455, RFC 7692) over raw TCP: the handshake and its
//! refusals, echo, fragmentation, control frames, protocol violations and their close
//! codes, limits, heartbeats, slow readers, abandoned handshakes and shutdown.

mod common;

use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use common::ws::{connect, frame, KEY};
use common::{raw, read_response, Builder, Wharf};

/// An endpoint at `/ws` with `settings`, on a server with the fixture site.
fn server(settings: &str) -> Wharf {
    Builder::new()
        .config(&format!("[[websocket]]\npath = \"/ws\"\n{settings}\n"))
        .start()
}

#[test]
fn a_handshake_gets_101_with_the_accept_key_of_rfc_6455() {
    let w = server("");
    let (_, res) = connect(&w, &[]);
    assert_eq!(res.header("upgrade"), Some("websocket"));
    assert_eq!(
        res.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    // Everything else on the site is still files.
    assert_eq!(
        raw(&w, b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
}

/// The endpoint's `protocols`, in its order of preference, against what the client
/// offers (RFC 6455 §4.2.2): the first of the server's the client offered is chosen;
/// none offered that the server speaks, no `Sec-WebSocket-Protocol` in the answer.
#[test]
fn subprotocols_are_chosen_in_the_servers_order() {
    let w = server("protocols = [\"chat.v2\", \"chat.v1\"]");
    let chosen = |offer: &str| {
        let (_, res) = connect(&w, &[("Sec-WebSocket-Protocol", offer)]);
        res.header("sec-websocket-protocol").map(str::to_owned)
    };
    assert_eq!(chosen("chat.v1, chat.v2").as_deref(), Some("chat.v2"));
    assert_eq!(chosen("other, chat.v1").as_deref(), Some("chat.v1"));
    assert_eq!(chosen("other"), None);
}

#[test]
fn bad_handshakes_get_the_rfc_status_and_fields() {
    let w = server("origins = \"same\"");
    let base = "Host: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    // (request, status, a field the answer must have)
    type Case = (String, u16, Option<(&'static str, &'static str)>);
    let table: [Case; 6] = [
        ("GET /ws HTTP/1.1\r\nHost: t\r\n\r\n".into(), 426, Some(("upgrade", "websocket"))),
        (
            format!("GET /ws HTTP/1.1\r\n{base}Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"),
            426,
            Some(("sec-websocket-version", "13")),
        ),
        (format!("GET /ws HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\n\r\n"), 400, None),
        (
            format!("GET /ws HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n"),
            400,
            None,
        ),
        (
            format!(
                "GET /ws HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\
                 Origin: https://evil.test\r\n\r\n"
            ),
            403,
            None,
        ),
        (
            format!(
                "POST /ws HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\
                 Content-Length: 0\r\n\r\n"
            ),
            405,
            Some(("allow", "GET")),
        ),
    ];
    for (req, status, field) in table {
        let res = raw(&w, req.as_bytes());
        assert_eq!(res.status, status, "{req}");
        if let Some((name, value)) = field {
            assert_eq!(res.header(name), Some(value), "{req}");
        }
    }
    // The page's own origin may connect.
    connect(&w, &[("Origin", "http://t")]);
}

#[test]
fn messages_echo_whole_fragmented_and_between_pings() {
    let w = server("");
    let (mut ws, _) = connect(&w, &[]);
    ws.send(true, 1, "héllo".as_bytes());
    let f = ws.recv().unwrap();
    assert_eq!(
        (f.fin, f.opcode, f.payload.as_slice()),
        (true, 1, "héllo".as_bytes())
    );
    ws.send(true, 2, &[0, 1, 2, 255]);
    assert_eq!(ws.recv().unwrap().payload, [0, 1, 2, 255]);
    // Fragments with a ping between them (§5.4): the pong comes first.
    ws.send(false, 1, b"frag");
    ws.send(true, 9, b"are you there");
    ws.send(false, 0, b"men");
    ws.send(true, 0, b"ted");
    let pong = ws.recv().unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (10, &b"are you there"[..])
    );
    let f = ws.recv().unwrap();
    assert_eq!((f.opcode, f.payload.as_slice()), (1, &b"fragmented"[..]));
    let big = vec![b'x'; 200_000];
    ws.send(true, 2, &big);
    assert_eq!(ws.recv().unwrap().payload, big);
    // The closing handshake echoes the code, then the server closes TCP (§7.1.1).
    ws.send(true, 8, &[0x03, 0xE8]);
    assert_eq!(ws.close_code(), (Some(1000), true));
}

#[test]
fn protocol_violations_close_with_the_rfc_code() {
    let w = server("max_frame_size = 1000\nmax_message_size = 1500");
    let table: [(&str, Vec<u8>, u16); 10] = [
        ("unmasked", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reserved opcode", frame(true, 0, 3, b""), 1002),
        ("reserved control opcode", frame(true, 0, 0xB, b""), 1002),
        ("RSV2", frame(true, 2, 1, b"x"), 1002),
        ("RSV1 without deflate", frame(true, 4, 1, b"x"), 1002),
        (
            "invalid UTF-8",
            frame(true, 0, 1, &[0xCE, 0xBA, 0xFF]),
            1007,
        ),
        ("close code 1005", frame(true, 0, 8, &[0x03, 0xED]), 1002),
        ("continuation first", frame(true, 0, 0, b"x"), 1002),
        ("frame over the limit", frame(true, 0, 2, &[0; 1001]), 1009),
        (
            "message over the limit",
            [frame(false, 0, 2, &[0; 1000]), frame(true, 0, 0, &[0; 501])].concat(),
            1009,
        ),
    ];
    for (what, bytes, code) in table {
        let (mut ws, _) = connect(&w, &[]);
        ws.s.write_all(&bytes).unwrap();
        assert_eq!(ws.close_code(), (Some(code), true), "{what}");
    }
    // The server still serves everyone.
    let (mut ws, _) = connect(&w, &[]);
    ws.send(true, 1, b"still here");
    assert_eq!(ws.recv().unwrap().payload, b"still here");
}

#[test]
fn permessage_deflate_is_negotiated_and_used_both_ways() {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
    let w = server("");
    let (mut ws, res) = connect(
        &w,
        &[(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; client_max_window_bits",
        )],
    );
    assert_eq!(
        res.header("sec-websocket-extensions"),
        Some("permessage-deflate")
    );
    let text = "a compressed message, a compressed message, a compressed message";
    let mut c = Compress::new(Compression::default(), false);
    let mut wire = Vec::with_capacity(256);
    c.compress_vec(text.as_bytes(), &mut wire, FlushCompress::Sync)
        .unwrap();
    wire.truncate(wire.len() - 4); // RFC 7692 §7.2.1
    ws.s.write_all(&frame(true, 4, 1, &wire)).unwrap();
    let f = ws.recv().unwrap();
    assert!(f.rsv1, "the echo is compressed");
    let mut input = f.payload.clone();
    input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut plain = Vec::with_capacity(256);
    Decompress::new(false)
        .decompress_vec(&input, &mut plain, FlushDecompress::Sync)
        .unwrap();
    assert_eq!(plain, text.as_bytes());
    // Without the offer, RSV1 is a protocol error.
    let w2 = server("deflate = false");
    let (mut ws, res) = connect(&w2, &[("Sec-WebSocket-Extensions", "permessage-deflate")]);
    assert_eq!(res.header("sec-websocket-extensions"), None);
    ws.s.write_all(&frame(true, 4, 1, &wire)).unwrap();
    assert_eq!(ws.close_code().0, Some(1002));
}

#[test]
fn the_server_pings_and_closes_a_silent_peer() {
    let w = server("ping_interval = \"200ms\"\nidle_timeout = \"700ms\"");
    let (mut ws, _) = connect(&w, &[]);
    let start = Instant::now();
    let ping = ws.recv().unwrap();
    assert_eq!(ping.opcode, 9, "a heartbeat ping");
    // A peer that answers stays.
    ws.send(true, 10, &ping.payload);
    let mut pings = 0;
    let (code, closed) = loop {
        let f = ws.recv().expect("a frame");
        match f.opcode {
            9 => pings += 1,
            8 => break (f.close_code(), matches!(ws.r.read(&mut [0u8; 1]), Ok(0))),
            op => panic!("unexpected opcode {op}"),
        }
    };
    assert_eq!((code, closed), (Some(1001), true));
    assert!(pings >= 1, "pinged while silent");
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "not closed before idle_timeout"
    );
}

#[test]
fn a_client_that_never_reads_is_closed_and_others_are_served() {
    let w = server("max_queued_bytes = 65536");
    let (mut slow, _) = connect(&w, &[]);
    slow.s
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // 24 MiB of messages, never reading their echoes: more than the socket buffers
    // of both ends hold, so the server's queue passes its limit and it closes. A
    // closing server reads and drops what still arrives, so these writes finish.
    let m = frame(true, 0, 2, &vec![b'x'; 16 * 1024]);
    for _ in 0..1536 {
        slow.s.write_all(&m).unwrap();
    }
    // Another client is served meanwhile.
    let (mut other, _) = connect(&w, &[]);
    other.send(true, 1, b"hi");
    assert_eq!(other.recv().unwrap().payload, b"hi");
    // Reading at last: the echoes that fit, then 1008.
    assert_eq!(slow.close_code(), (Some(1008), true));
}

#[test]
fn shutdown_closes_sessions_with_1001() {
    let mut w = server("");
    let (mut ws, _) = connect(&w, &[]);
    ws.send(true, 1, b"x");
    assert_eq!(ws.recv().unwrap().payload, b"x");
    w.signal("TERM");
    assert_eq!(ws.close_code().0, Some(1001));
    assert!(w.wait_exit().success());
}

/// 10,000 connections that stop mid-handshake: another client is served meanwhile,
/// over WebSocket and plain HTTP.
#[test]
fn abandoned_handshakes_do_not_hold_up_others() {
    // A descriptor for each here and in wharf (which inherits the limit).
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit > 10_100,
        "RLIMIT_NOFILE {limit}: too few for 10,000 connections"
    );
    let w = server("[limits]\nmax_connections = 10500");
    let mut abandoned = Vec::new();
    for _ in 0..10_000 {
        let mut s = w.tcp();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n")
            .unwrap();
        abandoned.push(s);
    }
    let (mut ws, _) = connect(&w, &[]);
    ws.send(true, 1, b"through");
    assert_eq!(ws.recv().unwrap().payload, b"through");
    drop(abandoned);
    let mut r = BufReader::new(w.tcp());
    r.get_mut()
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
}

/// WebSocket over HTTP/2 (RFC 8441): the server offers extended CONNECT in its
/// SETTINGS, answers a CONNECT with `:protocol websocket` 200, and the stream's DATA
/// frames carry the WebSocket frames.
#[test]
fn websocket_over_http2_extended_connect() {
    let w = server("");
    common::within(async {
        let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        // One exchange first, so that the server's SETTINGS have arrived.
        let get = http::Request::get(format!("http://{}/hello.txt", w.addr))
            .body(())
            .unwrap();
        let (res, _) = client.send_request(get, true).unwrap();
        assert_eq!(res.await.unwrap().status(), 200);
        assert!(
            client.is_extended_connect_protocol_enabled(),
            "SETTINGS_ENABLE_CONNECT_PROTOCOL"
        );
        let mut req = http::Request::builder()
            .method("CONNECT")
            .uri(format!("http://{}/ws", w.addr))
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(h2::ext::Protocol::from("websocket"));
        let (res, mut send) = client.send_request(req, false).unwrap();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("sec-websocket-accept").is_none());
        let mut recv = res.into_body();
        send.send_data(frame(true, 0, 1, b"over h2").into(), false)
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 2 + 7 {
            let data = recv.data().await.unwrap().unwrap();
            let _ = recv.flow_control().release_capacity(data.len());
            got.extend_from_slice(&data);
        }
        assert_eq!(&got[..], &[&[0x81u8, 7][..], b"over h2"].concat()[..]);
        // A CONNECT for another protocol, or to a path that is no endpoint, is refused.
        let mut other = http::Request::builder()
            .method("CONNECT")
            .uri(format!("http://{}/ws", w.addr))
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        other
            .extensions_mut()
            .insert(h2::ext::Protocol::from("webtransport"));
        let (res, _) = client.send_request(other, true).unwrap();
        assert_eq!(res.await.unwrap().status(), 400);
    });
}

#[test]
fn endpoints_can_belong_to_some_hosts_only() {
    let w = server("hosts = [\"chat.test\", \"*.ws.test\"]");
    for (host, status) in [("chat.test", 101), ("a.ws.test:8080", 101), ("t", 404)] {
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"
        );
        assert_eq!(raw(&w, req.as_bytes()).status, status, "{host}");
    }
}
