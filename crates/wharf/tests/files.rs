//! Static files with a real client (reqwest): headers, methods, directories, caching,
//! preconditions, ranges, encodings, virtual hosts, path safety and explanations.
//!
//! Every test that does not speak raw HTTP/1.1 runs over HTTP/1.1, h2c, HTTPS/1.1,
//! HTTP/2 over TLS and HTTP/3 (`over_every_version!` at the end): the service must not
//! care.

mod common;

use std::io::Read;

use common::{raw, Builder, Proto};
use reqwest::header::HeaderMap;

fn h<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map_or("", |v| v.to_str().unwrap())
}

fn file_headers_and_content_types(p: Proto) {
    let w = Builder::new().proto(p).start();
    // (path, Content-Type) — RFC 9110 §8.3
    let table = [
        ("/hello.txt", "text/plain; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/image.png", "image/png"),
        ("/data.unknownext", "application/octet-stream"),
    ];
    for (path, ct) in table {
        let res = w.get(path, &[]);
        assert_eq!(res.status(), 200, "{path}");
        let hs = res.headers().clone();
        assert_eq!(h(&hs, "content-type"), ct, "{path}");
        assert!(!h(&hs, "date").is_empty());
        assert!(!h(&hs, "last-modified").is_empty());
        let etag = h(&hs, "etag");
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "strong ETag: {etag}"
        );
        let len: usize = h(&hs, "content-length").parse().unwrap();
        assert_eq!(res.bytes().unwrap().len(), len);
    }
}

fn head_has_the_same_headers_and_no_body(p: Proto) {
    let w = Builder::new().proto(p).start();
    let g = w.get("/digits.txt", &[]);
    let hd = w.request("HEAD", "/digits.txt", &[]);
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "cache-control",
        "accept-ranges",
        "vary",
    ] {
        assert_eq!(h(g.headers(), name), h(hd.headers(), name), "{name}");
    }
    assert_eq!(h(hd.headers(), "content-length"), "1000");
    assert!(hd.bytes().unwrap().is_empty());
}

fn etag_changes_on_same_size_rewrite_within_a_second(p: Proto) {
    let w = Builder::new().proto(p).start();
    let p = w.root().join("hello.txt");
    let mut tags = Vec::new();
    for content in ["aaaa\n", "bbbb\n", "cccc\n"] {
        std::fs::write(&p, content).unwrap();
        let res = w.get("/hello.txt", &[]);
        tags.push(h(res.headers(), "etag").to_owned());
        assert_eq!(res.text().unwrap(), content);
    }
    tags.dedup();
    assert_eq!(tags.len(), 3, "{tags:?}");
}

fn directories_index_redirect_and_methods(p: Proto) {
    let w = Builder::new().proto(p).start();
    let res = w.get("/", &[]);
    assert_eq!(res.text().unwrap(), "<!DOCTYPE html><title>home</title>\n");
    let res = w.get("/dir?x=1&y=%20", &[]);
    assert_eq!(res.status(), 301);
    assert_eq!(h(res.headers(), "location"), "/dir/?x=1&y=%20");
    // Listings are off by default: no index → 404.
    assert_eq!(w.get("/dir/", &[]).status(), 404);
    let res = w.request("OPTIONS", "/hello.txt", &[]);
    assert_eq!(res.status(), 204);
    assert_eq!(h(res.headers(), "allow"), "GET, HEAD, OPTIONS");
    for m in ["POST", "PUT", "DELETE", "PATCH", "BREW"] {
        let res = w.request(m, "/hello.txt", &[]);
        assert_eq!(res.status(), 405, "{m}");
        assert_eq!(h(res.headers(), "allow"), "GET, HEAD, OPTIONS");
    }
    if p != Proto::H1 {
        return; // `OPTIONS *` is HTTP/1.1 wire format
    }
    let res = raw(&w, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(res.status, 204);
}

fn listings_html_and_json_sorted_escaped_without_dotfiles(p: Proto) {
    let w = Builder::new().proto(p).arg("--listing").start();
    let page = w.get("/dir/", &[]).text().unwrap();
    let a = page.find("a&amp;&lt;x&gt;.txt").expect("escaped name");
    let b = page.find(">b.txt<").unwrap();
    let sub = page.find(">sub/<").unwrap();
    assert!(sub < a && a < b, "directories first, then sorted names");
    assert!(page.contains("href=\"./a&amp;%3Cx%3E.txt\""), "{page}");
    assert!(!page.contains(".hidden"));
    let json: serde_json::Value = serde_json::from_str(
        &w.get("/dir/", &[("Accept", "application/json")])
            .text()
            .unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sub", "a&<x>.txt", "b.txt"]);
}

fn dotfiles_policies(p: Proto) {
    // (policy, /.env, /.well-known/security.txt)
    for (policy, env, wk) in [("hide", 404, 200), ("deny", 403, 200), ("allow", 200, 200)] {
        let w = Builder::new()
            .proto(p)
            .config(&format!(
                "[[site]]\nroot = \"site\"\ndefault = true\ndotfiles = \"{policy}\""
            ))
            .start();
        assert_eq!(w.get("/.env", &[]).status(), env, "{policy}");
        assert_eq!(w.get("/dir/.hidden", &[]).status(), env, "{policy}");
        assert_eq!(
            w.get("/.well-known/security.txt", &[]).status(),
            wk,
            "{policy}"
        );
    }
}

fn cache_control_rules_and_expires(p: Proto) {
    let w = Builder::new().proto(p)
        .config(
            "[[site]]\nroot = \"site\"\ndefault = true\n\
             [[site.cache]]\npath = \"/assets/**\"\ncache_control = \"public, max-age=31536000, immutable\"\n\
             [[site.cache]]\npath = \"/hello.txt\"\ncache_control = \"no-store\"\n\
             [[site.cache]]\npath = \"/digits.txt\"\ncache_control = \"private, max-age=60\"",
        )
        .start();
    // (path, Cache-Control, Expires - Date in seconds) — RFC 9111 §5.2.2, §5.3
    let table = [
        (
            "/assets/app.js",
            "public, max-age=31536000, immutable",
            Some(31536000),
        ),
        ("/hello.txt", "no-store", None),
        ("/digits.txt", "private, max-age=60", Some(60)),
        ("/index.html", "no-cache", None),
        ("/image.png", "max-age=3600", Some(3600)),
    ];
    for (path, cc, delta) in table {
        let res = w.get(path, &[]);
        let hs = res.headers();
        assert_eq!(h(hs, "cache-control"), cc, "{path}");
        let date = httpdate(h(hs, "date"));
        match delta {
            Some(d) => assert_eq!(httpdate(h(hs, "expires")) - date, d, "{path}"),
            None => assert!(hs.get("expires").is_none(), "{path}"),
        }
    }
}

fn httpdate(s: &str) -> i64 {
    // Minimal IMF-fixdate parser for tests: "Wed, 25 Nov 2026 08:39:23 GMT".
    let p: Vec<&str> = s.split([' ', ':']).collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (d, m, y): (i64, i64, i64) = (
        p[1].parse().unwrap(),
        months.iter().position(|x| *x == p[2]).unwrap() as i64 + 1,
        p[3].parse().unwrap(),
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400
        + p[4].parse::<i64>().unwrap() * 3600
        + p[5].parse::<i64>().unwrap() * 60
        + p[6].parse::<i64>().unwrap()
}

fn preconditions_in_rfc9110_order(p: Proto) {
    let w = Builder::new().proto(p).start();
    let first = w.get("/hello.txt", &[]);
    let etag = h(first.headers(), "etag").to_owned();
    let lm = h(first.headers(), "last-modified").to_owned();
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    // (request headers, status) — RFC 9110 §13.1, §13.2.2
    let table: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (vec![("If-None-Match", &etag)], 304),
        (vec![("If-None-Match", &weak)], 304), // weak comparison
        (vec![("If-None-Match", &listed)], 304),
        (vec![("If-None-Match", "*")], 304),
        (vec![("If-None-Match", "\"other\", *")], 200), // malformed: `*` must stand alone
        (vec![("If-None-Match", "\"other\"")], 200),
        (vec![("If-Modified-Since", &lm)], 304),
        (vec![("If-Modified-Since", old)], 200),
        (
            vec![("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)],
            200,
        ), // IMS ignored
        (vec![("If-Match", &etag)], 200),
        (vec![("If-Match", "\"other\"")], 412),
        (vec![("If-Match", &weak)], 412), // strong comparison
        (vec![("If-Match", "*")], 200),
        (vec![("If-Unmodified-Since", old)], 412),
        (vec![("If-Unmodified-Since", &lm)], 200),
        (vec![("If-Match", &etag), ("If-None-Match", &etag)], 304),
        (
            vec![("If-Match", "\"other\""), ("If-None-Match", &etag)],
            412,
        ), // If-Match first
    ];
    for (headers, status) in &table {
        let res = w.get("/hello.txt", headers);
        assert_eq!(res.status(), *status, "{headers:?}");
        if *status == 304 {
            let hs = res.headers();
            for name in [
                "etag",
                "cache-control",
                "expires",
                "last-modified",
                "vary",
                "date",
            ] {
                assert!(hs.contains_key(name), "304 carries {name}");
            }
            assert!(res.bytes().unwrap().is_empty());
        }
    }
}

fn ranges_single_suffix_multi_unsatisfiable_and_if_range(p: Proto) {
    let w = Builder::new().proto(p).start();
    let url = "/digits.txt";
    let res = w.get(url, &[("Range", "bytes=0-9")]);
    assert_eq!(res.status(), 206);
    assert_eq!(h(res.headers(), "content-range"), "bytes 0-9/1000");
    assert_eq!(res.text().unwrap(), "0123456789");
    let res = w.get(url, &[("Range", "bytes=-3")]);
    assert_eq!(h(res.headers(), "content-range"), "bytes 997-999/1000");
    assert_eq!(res.text().unwrap(), "789");
    let res = w.get(url, &[("Range", "bytes=995-")]);
    assert_eq!(res.text().unwrap(), "56789");
    let res = w.get(url, &[("Range", "bytes=0-1,5-6")]);
    assert_eq!(res.status(), 206);
    let ct = h(res.headers(), "content-type").to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(&ct)
        .to_owned();
    let body = res.text().unwrap();
    assert_eq!(body.matches(&format!("--{boundary}\r\n")).count(), 2);
    assert!(
        body.contains("Content-Range: bytes 0-1/1000\r\n\r\n01\r\n"),
        "{body}"
    );
    assert!(body.contains("Content-Range: bytes 5-6/1000\r\n\r\n56\r\n"));
    assert!(body.ends_with(&format!("--{boundary}--\r\n")));
    let res = w.get(url, &[("Range", "bytes=5000-")]);
    assert_eq!(res.status(), 416);
    assert_eq!(h(res.headers(), "content-range"), "bytes */1000");
    // If-Range: a matching strong ETag gets the range, anything else the whole file.
    let etag = h(w.get(url, &[]).headers(), "etag").to_owned();
    assert_eq!(
        w.get(url, &[("Range", "bytes=0-0"), ("If-Range", &etag)])
            .status(),
        206
    );
    assert_eq!(
        w.get(url, &[("Range", "bytes=0-0"), ("If-Range", "\"stale\"")])
            .status(),
        200
    );
    // Hundreds of overlapping ranges: ignored (whole file), not amplified.
    let absurd = format!("bytes={}", vec!["0-999"; 300].join(","));
    let res = w.get(url, &[("Range", &absurd)]);
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().unwrap().len(), 1000);
    let overlapping = format!(
        "bytes={}",
        (0..50)
            .map(|i| format!("{i}-{}", i + 100))
            .collect::<Vec<_>>()
            .join(",")
    );
    let res = w.get(url, &[("Range", &overlapping)]);
    assert_eq!(res.status(), 206);
    assert_eq!(
        h(res.headers(), "content-range"),
        "bytes 0-149/1000",
        "coalesced into one range"
    );
}

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => brotli::BrotliDecompress(&mut &data[..], &mut out).unwrap(),
        "zstd" => out = zstd::decode_all(data).unwrap(),
        _ => out = data.to_vec(),
    }
    out
}

fn content_codings_negotiated_with_q_values(p: Proto) {
    let w = Builder::new().proto(p).start();
    let original = std::fs::read(w.root().join("big.txt")).unwrap();
    let url = "/big.txt";
    // (Accept-Encoding, chosen) — RFC 9110 §12.5.3
    let table = [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, br, zstd", "br"),
        ("gzip;q=1, br;q=0.5", "gzip"),
        ("br;q=0, gzip;q=0.1", "gzip"),
        ("*", "br"),
        ("identity", ""),
        ("", ""),
        ("gzip;q=0, identity", ""),
    ];
    let mut etags = std::collections::HashSet::new();
    for (ae, want) in table {
        let res = w.get(url, &[("Accept-Encoding", ae)]);
        assert_eq!(res.status(), 200, "{ae}");
        let hs = res.headers().clone();
        assert_eq!(h(&hs, "content-encoding"), want, "{ae}");
        assert_eq!(h(&hs, "vary"), "Accept-Encoding");
        etags.insert((want.to_owned(), h(&hs, "etag").to_owned()));
        let body = res.bytes().unwrap();
        assert_eq!(decode(want, &body), original, "{ae}");
    }
    let distinct: std::collections::HashSet<_> = etags.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(distinct.len(), 4, "one ETag per encoding: {etags:?}");
    // Nothing acceptable → 406.
    assert_eq!(
        w.get(url, &[("Accept-Encoding", "identity;q=0")]).status(),
        406
    );
    assert_eq!(w.get(url, &[("Accept-Encoding", "*;q=0")]).status(), 406);
    // Already-compressed types are never re-compressed, and get no Vary.
    let res = w.get("/image.png", &[("Accept-Encoding", "gzip, br")]);
    assert!(res.headers().get("content-encoding").is_none());
    assert!(res.headers().get("vary").is_none());
    // Small files are sent as they are.
    let res = w.get("/hello.txt", &[("Accept-Encoding", "gzip")]);
    assert!(res.headers().get("content-encoding").is_none());
}

fn encoded_conditional_and_range_requests(p: Proto) {
    let w = Builder::new().proto(p).start();
    let url = "/big.txt";
    let gz = w.get(url, &[("Accept-Encoding", "gzip")]);
    let etag = h(gz.headers(), "etag").to_owned();
    let full = gz.bytes().unwrap();
    let res = w.get(
        url,
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)],
    );
    assert_eq!(res.status(), 304);
    // The identity representation has another ETag: the gzip one does not validate it.
    assert_eq!(w.get(url, &[("If-None-Match", &etag)]).status(), 200);
    // Range applies to the encoded bytes.
    let res = w.get(url, &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")]);
    assert_eq!(res.status(), 206);
    assert_eq!(h(res.headers(), "content-encoding"), "gzip");
    assert_eq!(
        h(res.headers(), "content-range"),
        format!("bytes 0-9/{}", full.len())
    );
    assert_eq!(res.bytes().unwrap(), full.slice(0..10));
}

fn precompressed_siblings_when_not_older(p: Proto) {
    let text = "precompressed sibling test. ".repeat(100);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut enc, text.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let w = Builder::new()
        .proto(p)
        .file("pre.txt", &text)
        .file("pre.txt.gz", &gz)
        .start();
    let res = w.get("/pre.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(h(res.headers(), "content-encoding"), "gzip");
    assert_eq!(res.bytes().unwrap(), gz, "the sibling's exact bytes");
    // A sibling older than the file is stale and ignored.
    let f = std::fs::File::options()
        .write(true)
        .open(w.root().join("pre.txt.gz"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let res = w.get("/pre.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(h(res.headers(), "content-encoding"), "gzip");
    assert_ne!(res.bytes().unwrap(), gz, "compressed on the fly instead");
}

#[test]
fn virtual_hosts_by_host_wildcard_default_and_absolute_form() {
    let b = Builder::new()
        .file("../a/who.txt", "a")
        .file("../b/who.txt", "b")
        .file("../c/who.txt", "c");
    let w = b
        .config(
            "[[site]]\nnames = [\"a.test\"]\nroot = \"a\"\n\
             [[site]]\nnames = [\"*.b.test\"]\nroot = \"b\"\n\
             [[site]]\nroot = \"c\"\ndefault = true",
        )
        .start();
    // (Host, site)
    for (host, want) in [
        ("a.test", "a"),
        ("A.TEST:8080", "a"),
        ("x.b.test", "b"),
        ("y.x.b.test", "b"),
        ("b.test", "c"),
        ("other", "c"),
    ] {
        let res = raw(
            &w,
            format!("GET /who.txt HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        );
        assert_eq!(res.body, want.as_bytes(), "{host}");
    }
    let res = raw(
        &w,
        b"GET http://a.test/who.txt HTTP/1.1\r\nHost: other\r\n\r\n",
    );
    assert_eq!(res.body, b"a", "absolute-form target wins over Host");
}

#[test]
fn unknown_host_without_default_gets_421() {
    let w = Builder::new()
        .config("[[site]]\nnames = [\"only.test\"]\nroot = \"site\"")
        .start();
    let res = raw(
        &w,
        b"GET /hello.txt HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n",
    );
    assert_eq!(res.status, 421);
    assert!(String::from_utf8_lossy(&res.body).contains("elsewhere.test"));
    assert_eq!(res.header("wharf-explain"), None, "explain is off");
    let res = raw(&w, b"GET /hello.txt HTTP/1.1\r\nHost: only.test\r\n\r\n");
    assert_eq!(res.status, 200);
}

#[test]
fn nothing_outside_the_root_is_served() {
    let b = Builder::new();
    let root = b.root();
    std::os::unix::fs::symlink("../outside.txt", root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("alias.txt")).unwrap();
    let w = b.start();
    for target in [
        "/../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E/outside.txt",
        "/dir/..%2f..%2foutside.txt",
        "/dir/..%2F..%2Foutside.txt",
        "/..%5coutside.txt",
        "/dir\\..\\..\\outside.txt",
        "/hello.txt%00.png",
        "/%ff%fe",
        "/%",
        "/escape.txt",
        "//../outside.txt",
        "/./../outside.txt",
    ] {
        let res = raw(
            &w,
            format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        assert!(matches!(res.status, 400 | 404), "{target}: {}", res.status);
        assert!(
            !String::from_utf8_lossy(&res.body).contains("OUTSIDE"),
            "{target}"
        );
    }
    assert_eq!(
        raw(&w, b"GET /alias.txt HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200,
        "links within the root work"
    );
}

fn symlink_policy_follow_and_never(p: Proto) {
    for (policy, escape, alias) in [
        ("follow", 200, 200),
        ("never", 404, 404),
        ("within-root", 404, 200),
    ] {
        let b = Builder::new().proto(p).config(&format!(
            "[[site]]\nroot = \"site\"\ndefault = true\nsymlinks = \"{policy}\""
        ));
        std::os::unix::fs::symlink("../outside.txt", b.root().join("escape.txt")).unwrap();
        std::os::unix::fs::symlink("hello.txt", b.root().join("alias.txt")).unwrap();
        let w = b.start();
        assert_eq!(w.get("/escape.txt", &[]).status(), escape, "{policy}");
        assert_eq!(w.get("/alias.txt", &[]).status(), alias, "{policy}");
    }
}

fn explain_header_and_access_log_field(p: Proto) {
    let w = Builder::new().proto(p).arg("--explain").start();
    let etag = h(w.get("/hello.txt", &[]).headers(), "etag").to_owned();
    let res = w.get("/hello.txt", &[("If-None-Match", &etag)]);
    let why = h(res.headers(), "wharf-explain").to_owned();
    assert!(
        why.starts_with(&format!("304: If-None-Match {etag} matched current ETag")),
        "{why}"
    );
    let line = w.wait_for_output("304: If-None-Match");
    let version = format!("{:?}", p.version());
    assert!(
        line.contains(&format!("\"GET /hello.txt {version}\" 304")),
        "{line}"
    );
    let res = w.get("/digits.txt", &[("Range", "bytes=0-9")]);
    assert!(h(res.headers(), "wharf-explain").starts_with("206: bytes 0-9 of 1000"));
    let res = w.get("/../x", &[]);
    assert!(
        !h(res.headers(), "wharf-explain").contains(w.root().to_str().unwrap()),
        "no file-system paths"
    );
}

fn explain_is_off_by_default(p: Proto) {
    let w = Builder::new().proto(p).start();
    let res = w.get("/hello.txt", &[]);
    assert!(res.headers().get("wharf-explain").is_none());
}

fn json_access_log(p: Proto) {
    let w = Builder::new()
        .proto(p)
        .arg("--access-log")
        .arg("json")
        .start();
    w.get("/hello.txt", &[("User-Agent", "t\"ester")]);
    let line = w.wait_for_output("\"/hello.txt\"");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["user_agent"], "t\"ester");
}

fn extra_site_headers(p: Proto) {
    let w = Builder::new()
        .proto(p)
        .config(
            "[[site]]\nroot = \"site\"\ndefault = true\n[site.headers]\nX-Frame-Options = \"DENY\"",
        )
        .start();
    assert_eq!(
        h(w.get("/hello.txt", &[]).headers(), "x-frame-options"),
        "DENY"
    );
}

fn a_file_url_ending_in_slash_is_not_found(p: Proto) {
    let w = Builder::new().proto(p).start();
    assert_eq!(w.get("/hello.txt/", &[]).status(), 404);
    assert_eq!(w.get("/hello.txt", &[]).status(), 200);
}

#[test]
fn cache_rules_match_the_normalised_path() {
    let w = Builder::new()
        .config("[[site]]\nroot = \"site\"\ndefault = true\n[[site.cache]]\npath = \"/assets/**\"\ncache_control = \"no-store\"\n[[site.cache]]\npath = \"/dir/index.html\"\ncache_control = \"private, max-age=5\"")
        .file("dir/index.html", "<p>dir</p>")
        .start();
    for target in [
        "/assets/app.js",
        "//assets/app.js",
        "/assets/%61pp.js",
        "/assets//app.js",
    ] {
        let res = raw(
            &w,
            format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        assert_eq!(res.status, 200, "{target}");
        assert_eq!(res.header("cache-control"), Some("no-store"), "{target}");
    }
    assert_eq!(
        h(w.get("/dir/", &[]).headers(), "cache-control"),
        "private, max-age=5",
        "index files match by their own path"
    );
}

fn if_range_dates_must_be_strong_and_of_the_bytes_sent(p: Proto) {
    let w = Builder::new().proto(p).start();
    let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    for name in ["digits.txt", "big.txt"] {
        std::fs::File::options()
            .write(true)
            .open(w.root().join(name))
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
    let lm = "Sun, 13 Sep 2020 12:26:40 GMT";
    let res = w.get("/digits.txt", &[("Range", "bytes=0-0"), ("If-Range", lm)]);
    assert_eq!(h(res.headers(), "last-modified"), lm);
    assert_eq!(
        res.status(),
        206,
        "old Last-Modified is strong (RFC 9110 §8.8.2.2)"
    );
    // A compressed variant was not made at that date: the date says nothing about its bytes.
    let res = w.get(
        "/big.txt",
        &[
            ("Accept-Encoding", "gzip"),
            ("Range", "bytes=0-0"),
            ("If-Range", lm),
        ],
    );
    assert_eq!(h(res.headers(), "content-encoding"), "gzip");
    assert_eq!(res.status(), 200);
}

fn future_modification_times_are_clamped_to_date(p: Proto) {
    let w = Builder::new().proto(p).start();
    let future = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(4_102_444_800); // 2100
    std::fs::File::options()
        .write(true)
        .open(w.root().join("hello.txt"))
        .unwrap()
        .set_modified(future)
        .unwrap();
    let res = w.get("/hello.txt", &[]);
    assert_eq!(
        h(res.headers(), "last-modified"),
        h(res.headers(), "date"),
        "RFC 9110 §8.8.2.1"
    );
    // And a Range with that (weak) date is not honoured.
    let lm = h(res.headers(), "last-modified").to_owned();
    assert_eq!(
        w.get("/hello.txt", &[("Range", "bytes=0-0"), ("If-Range", &lm)])
            .status(),
        200
    );
}

/// Runs each test over every protocol, one module per protocol.
macro_rules! over_every_version {
    ($($name:ident),* $(,)?) => {
        mod h1 { $( #[test] fn $name() { super::$name(super::Proto::H1) } )* }
        mod h2c { $( #[test] fn $name() { super::$name(super::Proto::H2c) } )* }
        mod https1 { $( #[test] fn $name() { super::$name(super::Proto::H1Tls) } )* }
        mod h2 { $( #[test] fn $name() { super::$name(super::Proto::H2Tls) } )* }
        mod h3 { $( #[test] fn $name() { super::$name(super::Proto::H3) } )* }
    };
}

over_every_version!(
    file_headers_and_content_types,
    head_has_the_same_headers_and_no_body,
    etag_changes_on_same_size_rewrite_within_a_second,
    directories_index_redirect_and_methods,
    listings_html_and_json_sorted_escaped_without_dotfiles,
    dotfiles_policies,
    cache_control_rules_and_expires,
    preconditions_in_rfc9110_order,
    ranges_single_suffix_multi_unsatisfiable_and_if_range,
    content_codings_negotiated_with_q_values,
    encoded_conditional_and_range_requests,
    precompressed_siblings_when_not_older,
    symlink_policy_follow_and_never,
    explain_header_and_access_log_field,
    explain_is_off_by_default,
    json_access_log,
    extra_site_headers,
    a_file_url_ending_in_slash_is_not_found,
    if_range_dates_must_be_strong_and_of_the_bytes_sent,
    future_modification_times_are_clamped_to_date,
);
