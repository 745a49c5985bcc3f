//! HTTP/2 spoken frame by frame over h2c. Flood defenses: each attack ends in GOAWAY
//! (ENHANCE_YOUR_CALM) and a closed connection, while a connection opened before the
//! attack keeps being served. And streams' ends: malformed requests, resets, the
//! request limit.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Builder, Wharf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `GET /hello.txt` for authority `t`, HPACK-encoded with the static table only
/// (RFC 7541 appendix A): :method GET, :scheme http, :path literal, :authority literal.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x04, 10];
    b.extend_from_slice(b"/hello.txt");
    b.extend_from_slice(&[0x01, 1, b't']);
    b
}

/// An h2c connection past the preface and SETTINGS exchange.
fn connect(w: &Wharf) -> TcpStream {
    let mut s = w.tcp();
    s.write_all(PREFACE).unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    s
}

/// Reads frames until one of `kind`; returns (flags, stream, payload), or None at EOF.
fn until(s: &mut TcpStream, kind: u8) -> Option<(u8, u32, Vec<u8>)> {
    loop {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        s.read_exact(&mut payload).ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if head[3] == kind {
            return Some((head[4], stream, payload));
        }
    }
}

/// Sends `attack` (errors ignored: the server may close mid-way), then expects
/// GOAWAY with ENHANCE_YOUR_CALM and the end of the connection; then checks that
/// `bystander`, opened before, is still served.
fn cut_off_for(w: &Wharf, attack: Vec<u8>) {
    let mut bystander = connect(w);
    let mut s = connect(w);
    let _ = s.write_all(&attack);
    let (_, _, payload) = until(&mut s, GOAWAY).expect("a GOAWAY frame");
    let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
    assert_eq!(code, ENHANCE_YOUR_CALM, "GOAWAY error code");
    assert!(
        common::closed_by_server(&mut s),
        "the offender is disconnected"
    );
    bystander
        .write_all(&frame(HEADERS, 0x5, 1, &get_block()))
        .unwrap();
    let (_, stream, _) = until(&mut bystander, HEADERS).expect("a response");
    assert_eq!(stream, 1);
}

fn repeat(f: &[u8], n: usize) -> Vec<u8> {
    f.repeat(n)
}

#[test]
fn rapid_reset_is_cut_off() {
    let w = Builder::new().start();
    let mut attack = Vec::new();
    for i in 0..2000u32 {
        let id = 2 * i + 1;
        attack.extend(frame(HEADERS, 0x5, id, &get_block()));
        attack.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    cut_off_for(&w, attack);
}

#[test]
fn settings_flood_is_cut_off() {
    let w = Builder::new().start();
    cut_off_for(&w, repeat(&frame(SETTINGS, 0, 0, &[]), 1000));
}

#[test]
fn ping_flood_is_cut_off() {
    let w = Builder::new().start();
    cut_off_for(&w, repeat(&frame(PING, 0, 0, &[0; 8]), 2000));
}

#[test]
fn empty_data_flood_is_cut_off() {
    let w = Builder::new().start();
    let mut attack = frame(HEADERS, 0x4, 1, &{
        // A POST whose body never ends: empty DATA frames after it.
        let mut b = get_block();
        b[0] = 0x83;
        b
    });
    attack.extend(repeat(&frame(0x0, 0, 1, &[]), 2000));
    cut_off_for(&w, attack);
}

#[test]
fn priority_flood_is_cut_off() {
    let w = Builder::new().start();
    cut_off_for(&w, repeat(&frame(PRIORITY, 0, 3, &[0, 0, 0, 1, 16]), 5000));
}

#[test]
fn unknown_frame_flood_is_cut_off() {
    let w = Builder::new().start();
    cut_off_for(&w, repeat(&frame(0xfa, 0, 0, b"junk"), 2000));
}

#[test]
fn continuation_flood_is_cut_off() {
    let w = Builder::new().start();
    let mut attack = frame(HEADERS, 0x1, 1, &get_block()); // END_STREAM, no END_HEADERS
    attack.extend(repeat(&frame(CONTINUATION, 0, 1, &[]), 2000));
    cut_off_for(&w, attack);
}

#[test]
fn ordinary_clients_are_not_mistaken_for_floods() {
    // Many requests on one connection, each with its SETTINGS/PING-free framing, and
    // the acknowledgements a client sends: no GOAWAY.
    let w = Builder::new().start();
    let mut s = connect(&w);
    let mut batch = frame(SETTINGS, 0x1, 0, &[]); // ack of the server's SETTINGS
    for i in 0..100u32 {
        batch.extend(frame(HEADERS, 0x5, 2 * i + 1, &get_block()));
    }
    s.write_all(&batch).unwrap();
    let mut answered = 0;
    while answered < 100 {
        let (flags, _, _) = until(&mut s, HEADERS).expect("every request is answered");
        if flags & 0x4 != 0 {
            answered += 1;
        }
    }
}

/// Runs `cmd`, killing it if it has not finished within `common::PATIENCE`; its output.
fn run_bounded(mut cmd: std::process::Command) -> std::process::Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("installed (Debian nghttp2-client)");
    let pid = child.id().to_string();
    let (done, timer) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if timer.recv_timeout(common::PATIENCE).is_err() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    out
}

#[test]
fn large_responses_over_tls_finish_when_the_socket_fills() {
    // Several connections with several 1 MiB responses each fill the socket buffers:
    // records TLS holds back must still be written when the socket drains.
    let w = Builder::new()
        .proto(common::Proto::H2Tls)
        .file("big.bin", vec![42u8; 1 << 20])
        .start();
    let mut cmd = std::process::Command::new("h2load");
    cmd.args(["-n", "400", "-c", "4", "-m", "4", "-t", "1"])
        .arg(w.url("/big.bin"));
    let out = run_bounded(cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("400 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{text}"
    );
}

/// An h2c preface that arrives in pieces is still HTTP/2.
#[test]
fn a_preface_in_pieces_is_http2() {
    let w = Builder::new().start();
    let mut s = w.tcp();
    s.set_nodelay(true).unwrap();
    for piece in PREFACE.chunks(5) {
        s.write_all(piece).unwrap();
        s.flush().unwrap();
    }
    s.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    s.write_all(&frame(HEADERS, 0x5, 1, &get_block())).unwrap();
    let (_, stream, _) = until(&mut s, HEADERS).expect("a response");
    assert_eq!(stream, 1);
}

/// A header block field: literal without indexing, new name (RFC 7541 §6.2.2).
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![0x00, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
    b
}

#[test]
fn malformed_requests_get_a_stream_reset_and_the_connection_goes_on() {
    const PROTOCOL_ERROR: u32 = 0x1;
    let w = Builder::new().file("hello.txt", "hi").start();
    let connect_no_authority = {
        // :method CONNECT (literal, indexed name 2), nothing else (RFC 9113 §8.5).
        let mut b = vec![0x02, 7];
        b.extend_from_slice(b"CONNECT");
        b
    };
    let cases = [
        (
            [get_block(), literal("x-pad", " v")].concat(),
            "RFC 9113 §8.2.1: leading space",
        ),
        (
            [get_block(), literal("x-pad", "v\t")].concat(),
            "RFC 9113 §8.2.1: trailing tab",
        ),
        (
            [get_block(), literal("host", "u")].concat(),
            "RFC 9113 §8.3.1: Host differs",
        ),
        (
            connect_no_authority,
            "RFC 9113 §8.5: CONNECT without :authority",
        ),
    ];
    for (block, why) in cases {
        let mut s = connect(&w);
        // END_STREAM | END_HEADERS on stream 1, then a good request on stream 3.
        s.write_all(&frame(HEADERS, 0x5, 1, &block)).unwrap();
        let (_, stream, payload) = until(&mut s, RST_STREAM).expect(why);
        assert_eq!(stream, 1, "{why}");
        assert_eq!(
            u32::from_be_bytes(payload[..4].try_into().unwrap()),
            PROTOCOL_ERROR,
            "{why}"
        );
        s.write_all(&frame(HEADERS, 0x5, 3, &get_block())).unwrap();
        let (_, stream, _) = until(&mut s, HEADERS).expect(why);
        assert_eq!(stream, 3, "{why}: the connection goes on");
    }
}

/// RFC 9113 §6.8: at its request limit a connection says GOAWAY twice — first with
/// the largest stream id and a PING, then, once the PING comes back, with the last
/// stream it saw — so every request the client sent before it heard is served, none
/// refused; later ones are not.
#[test]
fn the_request_limit_refuses_no_request_already_sent() {
    let w = Builder::new()
        .config("[limits]\nmax_requests_per_connection = 3")
        .file("hello.txt", "hi")
        .start();
    let mut s = connect(&w);
    // Six requests in one write: three past the limit are already on their way.
    let six: Vec<u8> = (0..6)
        .flat_map(|i| frame(HEADERS, 0x5, 1 + 2 * i, &get_block()))
        .collect();
    s.write_all(&six).unwrap();
    let mut goaways = Vec::new();
    let mut answered = Vec::new();
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).is_err() {
            break; // closed once everything was answered
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        s.read_exact(&mut payload).unwrap();
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        match head[3] {
            HEADERS => answered.push(stream),
            GOAWAY => {
                let last = u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                goaways.push((last, code));
                if goaways.len() == 2 {
                    // A request after the final GOAWAY is past its last id: ignored.
                    // (The server may have closed its side by then.)
                    let _ = s.write_all(&frame(HEADERS, 0x5, 13, &get_block()));
                }
            }
            PING if head[4] & 0x1 == 0 => s.write_all(&frame(PING, 0x1, 0, &payload)).unwrap(),
            _ => {}
        }
    }
    assert_eq!(
        goaways,
        [(0x7fff_ffff, 0), (11, 0)],
        "two GOAWAYs, NO_ERROR"
    );
    answered.sort_unstable();
    assert_eq!(
        answered,
        [1, 3, 5, 7, 9, 11],
        "every request sent before is served"
    );
}

#[test]
fn a_stream_the_client_resets_has_its_work_dropped() {
    // RFC 9113 §6.4: RST_STREAM ends the stream at once. The service's work on it
    // goes too: here a proxied GET whose upstream never answers, whose upstream
    // connection is closed once the reset is read (and not kept waiting in a pool).
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = format!("http://{}", upstream.local_addr().unwrap());
    let w = Builder::new().proxy(&["--to", &to]).start();
    let mut s = connect(&w);
    s.write_all(&frame(HEADERS, 0x5, 1, &get_block())).unwrap();
    let (mut up, _) = upstream.accept().unwrap();
    up.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(up.read(&mut byte).unwrap(), 1, "the whole request head");
        head.push(byte[0]);
    }
    // CANCEL; frames are read in order, so once the PING is answered the reset was.
    s.write_all(&frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()))
        .unwrap();
    s.write_all(&frame(PING, 0, 0, b"resetted")).unwrap();
    let (flags, _, payload) = until(&mut s, PING).expect("the PING's answer");
    assert_eq!((flags, payload.as_slice()), (0x1, &b"resetted"[..]));
    let mut rest = [0u8; 1];
    assert_eq!(
        up.read(&mut rest).expect("closed before the timeout"),
        0,
        "the upstream connection of the reset stream is closed"
    );
}
