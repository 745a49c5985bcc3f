//! 103 Early Hints derived from HTML, preload rules, and HTTP/2 server push, seen by
//! real clients: curl, nghttp and raw HTTP/1.1.

mod common;

use std::io::{BufReader, Write};
use std::process::Command;

use common::{read_response, Builder};

const PAGE: &str = r#"<!DOCTYPE html><title>t</title>
<link rel="stylesheet" href="/style.css">
<link rel="preload" href="/font.woff2" as="font">
<script src="https://cdn.test/other-origin.js"></script>
<body><script src="/app.js"></script></body>"#;

const PAGE_HINTS: [&str; 3] = [
    "</style.css>; rel=preload; as=style",
    "</font.woff2>; rel=preload; as=font; crossorigin",
    "</app.js>; rel=preload; as=script",
];

fn site() -> Builder {
    Builder::new()
        .file("page.html", PAGE)
        .file("style.css", "body{}")
        .file("app.js", "1")
}

/// curl's `-v` response heads (`< ...` lines), in order.
fn curl_heads(args: &[&str]) -> Vec<String> {
    let (_, err) = common::curl(&[&["-v", "-o", "/dev/null"], args].concat());
    err.lines()
        .filter_map(|l| l.strip_prefix("< "))
        .map(|l| l.trim_end().to_ascii_lowercase())
        .collect()
}

#[test]
fn h2_sends_103_with_the_pages_resources_then_the_same_links() {
    let w = site().start();
    let heads = curl_heads(&["--http2-prior-knowledge", &w.url("/page.html")]);
    let early = heads.iter().position(|l| l == "http/2 103").expect("a 103");
    let fin = heads.iter().position(|l| l == "http/2 200").expect("a 200");
    assert!(early < fin, "{heads:?}");
    for (part, range) in [("103", early..fin), ("200", fin..heads.len())] {
        let links: Vec<&str> = heads[range]
            .iter()
            .filter_map(|l| l.strip_prefix("link: "))
            .collect();
        assert_eq!(links, PAGE_HINTS, "{part}: {heads:?}");
    }
}

#[test]
fn no_hints_for_revalidations_other_files_or_when_switched_off() {
    let w = site().start();
    let etag = w.get("/page.html", &[]).headers()["etag"].clone();
    let heads = curl_heads(&[
        "--http2-prior-knowledge",
        "-H",
        &format!("If-None-Match: {}", etag.to_str().unwrap()),
        &w.url("/page.html"),
    ]);
    assert!(heads.contains(&"http/2 304".to_owned()), "{heads:?}");
    assert!(!heads
        .iter()
        .any(|l| l.contains("103") || l.starts_with("link:")));
    let heads = curl_heads(&["--http2-prior-knowledge", &w.url("/style.css")]);
    assert!(!heads.iter().any(|l| l.starts_with("link:")), "{heads:?}");

    let off = site()
        .config("[[site]]\nroot = \"site\"\ndefault = true\nearly_hints = false")
        .start();
    let heads = curl_heads(&["--http2-prior-knowledge", &off.url("/page.html")]);
    assert!(
        !heads
            .iter()
            .any(|l| l.contains("103") || l.starts_with("link:")),
        "{heads:?}"
    );
}

#[test]
fn preload_rules_replace_the_derived_hints() {
    let w = site()
        .config("[[site]]\nroot = \"site\"\ndefault = true\n[[site.preload]]\npath = \"/page.html\"\nresources = [\"/app.js\", \"/img/logo.svg\"]")
        .start();
    let res = w.get("/page.html", &[]);
    let links: Vec<&str> = res
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        links,
        [
            "</app.js>; rel=preload; as=script",
            "</img/logo.svg>; rel=preload; as=image"
        ]
    );
}

#[test]
fn http1_sends_103_only_where_configured_and_in_order_when_pipelined() {
    let plain = site().start();
    let res = common::raw(&plain, b"GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(res.status, 200, "no 103 over HTTP/1.1 by default");
    assert!(res.header("link").is_some());

    let w = site().config("[http]\nearly_hints_http1 = true").start();
    let mut s = w.tcp();
    s.write_all(
        b"GET /page.html HTTP/1.1\r\nHost: t\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\n\r\nGET /page.html HTTP/1.1\r\nHost: t\r\n\r\nGET /page.html HTTP/1.0\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let res = read_response(&mut r, false).expect("a response");
        if res.status == 103 {
            assert_eq!(res.header("link"), Some(PAGE_HINTS[0]));
        }
        seen.push((res.status, res.body.len()));
    }
    assert_eq!(
        seen,
        [
            (103, 0),
            (200, PAGE.len()),
            (200, 6),
            (103, 0),
            (200, PAGE.len()),
            (200, PAGE.len()), // HTTP/1.0: no 103 (RFC 9110 §15.2)
        ]
    );
}

/// `nghttp -nv URL` (Debian nghttp2-client) with `extra` options; its frame log.
fn nghttp(extra: &[&str], url: &str) -> String {
    let out = Command::new("nghttp")
        .args(["-nv", "-t", "20"])
        .args(extra)
        .arg(url)
        .output()
        .expect("nghttp is installed (Debian nghttp2-client)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn server_push_when_the_client_allows_it() {
    let w = site()
        .config("[[site]]\nroot = \"site\"\ndefault = true\n[[site.cache]]\npath = \"/style.css\"\ncache_control = \"public, max-age=600\"\n[[site.preload]]\npath = \"/page.html\"\nresources = [\"/style.css\", \"/app.js\"]\npush = true")
        .start();
    let log = nghttp(&[], &w.url("/page.html"));
    assert_eq!(log.matches("recv PUSH_PROMISE frame").count(), 2, "{log}");
    for path in ["/style.css", "/app.js"] {
        assert!(log.contains(&format!(":path: {path}")), "{log}");
    }
    // The pushed style sheet carries its own caching headers.
    assert!(log.contains("cache-control: public, max-age=600"), "{log}");
    // Both promised streams (2 and 4) get their 200.
    for stream in [2, 4] {
        assert!(
            log.contains(&format!("recv (stream_id={stream}) :status: 200")),
            "{log}"
        );
    }
    // SETTINGS_ENABLE_PUSH = 0: no promise, the Link fields still come.
    let log = nghttp(&["--no-push"], &w.url("/page.html"));
    assert!(!log.contains("PUSH_PROMISE"), "{log}");
    assert!(
        log.contains("link: </style.css>; rel=preload; as=style"),
        "{log}"
    );
}
