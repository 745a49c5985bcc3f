//! The example site's chat page in headless Chromium (`tests/browser/chat.mjs`, with
//! playwright-core): over HTTP/1.1; over HTTPS, where Chromium speaks HTTP/2 and
//! opens its WebSockets with extended CONNECT (RFC 8441), trusting wharf's local CA
//! through its NSS database as a user would; and over HTTP/3, where the page, its
//! posts and the SSE and long-poll fallbacks go over QUIC.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Builder, Proto, Wharf};

fn example_site() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/site").to_owned()
}

/// Runs `tests/browser/{script}.mjs` with `args`; panics with its output unless it
/// says `{script}: ok`.
fn node(script: &str, args: &[&std::ffi::OsStr]) {
    let path = format!("{}/tests/browser/{script}.mjs", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("node");
    cmd.arg(path).args(args);
    let out = cmd
        .output()
        .expect("node (the CI installs Node.js, playwright-core, chromium)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains(&format!("{script}: ok")),
        "{script}.mjs failed:\n{text}"
    );
}

/// `w`'s base URL as the browser reaches it: by the name `localhost`.
fn base(w: &Wharf) -> String {
    let scheme = if w.proto.tls() { "https" } else { "http" };
    format!("{scheme}://localhost:{}", w.addr.port())
}

/// The chat page against `w`, trusting its local CA over TLS; over QUIC if `quic`.
fn chat(w: &Wharf, quic: bool) {
    let (base, root) = (base(w), w.root_cert());
    let mut args = vec![std::ffi::OsStr::new(&base)];
    if w.proto.tls() {
        args.push(root.as_os_str());
    }
    if quic {
        args.push("quic".as_ref());
    }
    node("chat", &args);
}

fn serve(proto: Proto) -> Wharf {
    Builder::new()
        .proto(proto)
        .serving(&[&example_site()])
        .start()
}

#[test]
fn pages_reload_when_their_file_changes() {
    let w = Builder::new().start(); // zero-config: file_events on
    let site = w.root();
    let example = Path::new(&example_site()).to_owned();
    for f in [
        "index.html",
        "assets/live.js",
        "assets/style.css",
        "assets/app.js",
    ] {
        std::fs::copy(example.join(f), site.join(f)).unwrap();
    }
    node("live", &[base(&w).as_ref(), site.as_os_str()]);
}

#[test]
fn chat_over_http1() {
    let w = serve(Proto::H1);
    chat(&w, false);
    assert!(
        w.output()
            .contains("\"GET /hub/chat?since=0 HTTP/1.1\" 101"),
        "{}",
        w.output()
    );
}

#[test]
fn chat_over_https_uses_websocket_over_http2() {
    let w = serve(Proto::H2Tls);
    chat(&w, false);
    let log = w.output();
    assert!(
        log.contains("\"CONNECT /hub/chat?since=0 HTTP/2.0\" 200"),
        "{log}"
    );
}

#[test]
fn chat_over_http3() {
    let w = serve(Proto::H2Tls);
    chat(&w, true);
    let log = w.output();
    for line in [
        "\"GET /chat/ HTTP/3.0\" 200",
        "\"POST /hub/chat HTTP/3.0\" 200",
        "\"GET /hub/chat?since=0 HTTP/3.0\" 200",
    ] {
        assert!(log.contains(line), "{line} not in {log}");
    }
}
