//! wharf as curl users see it: keep-alive reuse, conditional GET, ranges.

mod common;

use common::{curl, Builder};

#[test]
fn curl_reuses_the_keep_alive_connection() {
    let w = Builder::new().start();
    let (out, err) = curl(&["-v", &w.url("/hello.txt"), &w.url("/digits.txt")]);
    assert!(out.starts_with("hello, world\n"), "{out}");
    // curl 7 says "Re-using", curl 8 "Reusing".
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing connection"),
        "{err}"
    );
    assert_eq!(err.matches("Connected to").count(), 1, "{err}");
}

/// The status code curl reports for a request made with `args`.
fn status(args: &[&str]) -> String {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    curl(&all).0
}

#[test]
fn curl_conditional_get_with_etag_files() {
    let w = Builder::new().start();
    let etag_file = w.dir.path().join("etag");
    let etag_path = etag_file.to_str().unwrap();
    let (out, _) = curl(&["--etag-save", etag_path, &w.url("/hello.txt")]);
    assert_eq!(out, "hello, world\n");
    assert_eq!(
        status(&["--etag-compare", etag_path, &w.url("/hello.txt")]),
        "304"
    );
    std::fs::write(w.root().join("hello.txt"), "changed\n").unwrap();
    assert_eq!(
        status(&["--etag-compare", etag_path, &w.url("/hello.txt")]),
        "200"
    );
    assert_eq!(
        status(&["-z", "Mon, 01 Jan 2001 00:00:00 GMT", &w.url("/hello.txt")]),
        "200"
    );
    assert_eq!(
        status(&["-z", "Fri, 01 Jan 2100 00:00:00 GMT", &w.url("/hello.txt")]),
        "304"
    );
}

#[test]
fn curl_ranges_and_compressed() {
    let w = Builder::new().start();
    let (out, _) = curl(&["-r", "10-19", &w.url("/digits.txt")]);
    assert_eq!(out, "0123456789");
    let (out, _) = curl(&["-r", "-5", &w.url("/digits.txt")]);
    assert_eq!(out, "56789");
    let (out, _) = curl(&["--compressed", &w.url("/big.txt")]);
    assert_eq!(out.len(), "wharf serves files over HTTP. ".len() * 4000);
}
