//! HTTPS as clients see it: curl and reqwest against wharf's local CA, the `wharf ca`
//! commands, mutual TLS, handshake failures the server survives, 421 across
//! certificate groups, the redirect to HTTPS and HSTS, certificate reloads, and HTTP/2
//! virtual hosts.
//!
//! Raw handshakes (to read the certificate a server presents, or to send a ClientHello
//! where none is expected) use a plain rustls client over a std `TcpStream`.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{closed_by_server, curl, raw, read_response, Builder, Proto, RawResponse, PATIENCE};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use wharf_tls::ca::{LeafRequest, LocalCa, Usage};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// An HTTP/3 client trusting `w`'s root, presenting `identity` (chain, key) if given.
fn h3_client(w: &common::Wharf, identity: Option<(&Path, &Path)>) -> wharf_load::Client {
    let roots = std::fs::read(w.root_cert()).unwrap();
    let bind = "127.0.0.1:0".parse().unwrap();
    match identity {
        None => wharf_load::Client::new(&roots, bind),
        Some((chain, key)) => wharf_load::Client::with_identity(
            &roots,
            bind,
            &std::fs::read(chain).unwrap(),
            &std::fs::read(key).unwrap(),
        ),
    }
    .unwrap()
}

/// GET `path` over HTTP/3 on a new connection of `client`: the status, or why there
/// was none.
async fn h3_get(w: &common::Wharf, client: &wharf_load::Client, path: &str) -> Result<u16, String> {
    let conn = client
        .connect(w.addr, "localhost")
        .await
        .map_err(|e| format!("{e:#}"))?;
    let res = conn.get(&w.url(path)).await.map_err(|e| format!("{e:#}"));
    conn.close();
    Ok(res?.head.status().as_u16())
}

/// A client certificate for alice from the CA in `b`'s data directory: (chain, key).
fn alice(b: &Builder) -> (PathBuf, PathBuf) {
    common::issue(
        &b.path().join("data"),
        &b.path().join("certs"),
        &["alice"],
        true,
    )
}

/// A client certificate for mallory from a CA of its own (in the returned
/// directory, which must outlive its use): (directory, chain, key).
fn mallory() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let other = tempfile::tempdir().unwrap();
    let (chain, key) = common::issue(
        other.path(),
        &other.path().join("certs"),
        &["mallory"],
        true,
    );
    (other, chain, key)
}

/// Every certificate of a PEM file.
fn certs(pem: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(pem)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The first certificate (the leaf) of a PEM chain, in DER.
fn leaf_of_file(pem: &Path) -> Vec<u8> {
    certs(pem)[0].to_vec()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A reqwest client trusting only `root`, without redirects, with `more` settings.
fn client_trusting(
    root: &Path,
    more: impl FnOnce(reqwest::blocking::ClientBuilder) -> reqwest::blocking::ClientBuilder,
) -> reqwest::blocking::Client {
    let pem = std::fs::read(root).unwrap();
    let b = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    more(b).build().unwrap()
}

/// A client certificate for reqwest: the chain (leaf and intermediate) and its key.
fn identity(chain: &Path, key: &Path) -> reqwest::Identity {
    let mut pem = std::fs::read(chain).unwrap();
    pem.extend(std::fs::read(key).unwrap());
    reqwest::Identity::from_pem(&pem).unwrap()
}

/// An error with all its sources, in Debug and Display form, to look for a cause in.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{e:?}");
    let mut cur = Some(e);
    while let Some(x) = cur {
        text.push_str(" / ");
        text.push_str(&x.to_string());
        cur = x.source();
    }
    text
}

/// A rustls client configuration trusting `root` (nothing if `None`), offering `alpn`.
/// It never resumes a session: every connection sees the certificate the server
/// presents now, not the one of the session it would resume.
fn rustls_config(root: Option<&Path>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    rustls_client_config(root, alpn, None)
}

/// [`rustls_config`], presenting the client certificate `(chain, key)` if given.
fn rustls_client_config(
    root: Option<&Path>,
    alpn: &[&[u8]],
    client: Option<(&Path, &Path)>,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in root.map(certs).unwrap_or_default() {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(
                certs(chain),
                rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr` for server name `name` (an IP address sends no SNI),
/// with the handshake done.
fn try_tls_connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(PATIENCE))?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> TlsStream {
    try_tls_connect(addr, config, name).unwrap_or_else(|e| panic!("handshake with {name}: {e}"))
}

/// The leaf certificate the server presented, in DER.
fn peer_leaf(s: &TlsStream) -> Vec<u8> {
    s.conn.peer_certificates().expect("a server certificate")[0].to_vec()
}

/// GET `path` over an established HTTP/1.1 TLS connection, keeping it open.
fn get_over(s: &mut TlsStream, path: &str) -> RawResponse {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    s.flush().unwrap();
    read_response(&mut BufReader::new(s), false).expect("a response")
}

/// What a server answers a raw HTTP/1.1 client with `config` for `GET /hello.txt`:
/// `response: ...` with what it sent, or the error (a TLS alert) that ended the
/// connection. TLS 1.3 clients finish their side of the handshake before the server
/// has checked their certificate, so a refusal arrives as an alert on the first read.
fn answer(addr: SocketAddr, config: &Arc<ClientConfig>) -> String {
    let mut s = match try_tls_connect(addr, config, "localhost") {
        Ok(s) => s,
        Err(e) => return format!("handshake: {e:?}"),
    };
    let request = b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if let Err(e) = s.write_all(request) {
        return format!("write: {e:?}");
    }
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => format!("response: {}", String::from_utf8_lossy(&got)),
        Err(e) => format!("read: {e:?} after {:?}", String::from_utf8_lossy(&got)),
    }
}

/// A site on `root` serving `names` with the certificate `certs/STEM.pem` (from
/// `wharf ca issue`), as a `[[site]]` table.
fn site_with_cert(root: &str, names: &[&str], stem: &str) -> String {
    format!(
        "[[site]]\nroot = \"{root}\"\nnames = {names:?}\n[site.tls]\ncert = \"certs/{stem}.pem\"\nkey = \"certs/{stem}-key.pem\"\n\n"
    )
}

// ---------------------------------------------------------------------------------
// 1. curl
// ---------------------------------------------------------------------------------

#[test]
fn curl_gets_h2_and_http11_over_tls_and_h2c_in_cleartext() {
    let w = Builder::new().proto(Proto::H2Tls).start();
    let root = w.root_cert();
    let root = root.to_str().unwrap();
    let url = w.url("/hello.txt");
    let w_fmt = "%{http_code} %{http_version}";
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (out, err) = curl(&["--cacert", root, flag, "-w", w_fmt, &url]);
        assert_eq!(out, format!("hello, world\n200 {version}"), "{flag}: {err}");
    }
    // Without the local root, curl refuses the certificate.
    let (out, _) = curl(&["-w", "%{http_code}", &url]);
    assert_eq!(out, "000");

    let clear = Builder::new().start();
    let (out, err) = curl(&[
        "--http2-prior-knowledge",
        "-w",
        w_fmt,
        &clear.url("/hello.txt"),
    ]);
    assert_eq!(out, "hello, world\n200 2", "{err}");
}

// ---------------------------------------------------------------------------------
// 2. wharf ca
// ---------------------------------------------------------------------------------

#[test]
fn ca_cli_init_path_issue_and_serving_the_issued_certificate() {
    let b = Builder::new();
    let data = b.path().join("data");
    let ca = data.join("ca");

    let (ok, out, err) = common::wharf_in(&data, &["ca", "path"]);
    assert!(!ok, "ca path without a CA must fail: {out}");
    assert!(
        err.contains("no local CA") && err.contains("wharf ca init"),
        "{err}"
    );

    let (ok, out, err) = common::wharf_in(&data, &["ca", "init"]);
    assert!(ok && out.contains("created"), "{out}{err}");
    for key in ["root-key.pem", "intermediate-key.pem"] {
        assert_eq!(mode(&ca.join(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&ca), 0o700);
    let root = std::fs::read(ca.join("root.pem")).unwrap();

    let (ok, out, err) = common::wharf_in(&data, &["ca", "init"]);
    assert!(ok && out.contains("already exists"), "{out}{err}");
    assert_eq!(std::fs::read(ca.join("root.pem")).unwrap(), root);

    let (ok, out, err) = common::wharf_in(&data, &["ca", "path"]);
    assert!(ok, "{err}");
    let root_path = PathBuf::from(out.trim());
    assert_eq!(root_path, ca.join("root.pem"));

    let out_dir = b.path().join("certs");
    let issued = [
        common::issue(&data, &out_dir, &["a.test", "127.0.0.1"], false),
        common::issue(&data, &out_dir, &["alice"], true),
        common::issue(&data, &out_dir, &["*.w.test"], false),
    ];
    for (chain, key) in &issued {
        assert_eq!(certs(chain).len(), 2, "leaf and intermediate: {chain:?}");
        assert_eq!(mode(key), 0o600, "{key:?}");
    }
    assert!(out_dir.join("_wildcard.w.test.pem").is_file());
    assert_eq!(
        std::fs::read(&root_path).unwrap(),
        root,
        "issuing keeps the root"
    );

    let w = b
        .config(&site_with_cert("site", &["a.test"], "a.test"))
        .proto(Proto::H1Tls)
        .start();
    let c = client_trusting(&root_path, |b| b.resolve("a.test", w.addr));
    let res = c
        .get(format!("https://a.test:{}/hello.txt", w.addr.port()))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().unwrap(), "hello, world\n");
    // The server presents the issued leaf, not one of its own.
    let config = rustls_config(Some(&root_path), &[b"http/1.1"]);
    let s = tls_connect(w.addr, &config, "a.test");
    assert_eq!(peer_leaf(&s), leaf_of_file(&issued[0].0));
}

// ---------------------------------------------------------------------------------
// 3, 4. Mutual TLS
// ---------------------------------------------------------------------------------

#[test]
fn required_client_certificates_are_checked_in_the_handshake() {
    let b = Builder::new();
    let (chain, key) = alice(&b);
    let (_other, m_chain, m_key) = mallory();
    let w = b
        .config(
            "[[site]]\nroot = \"site\"\ndefault = true\n[site.tls]\nclient_auth = \"required\"\nclient_ca = \"data/ca/root.pem\"\n",
        )
        .proto(Proto::H2Tls)
        .start();
    let url = w.url("/hello.txt");
    let alice = || w.client_with(|b| b.identity(identity(&chain, &key)));

    let res = alice().get(&url).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.text().unwrap(), "hello, world\n");
    let line = w.wait_for_output("client=\"CN=alice");
    assert!(line.contains("DNS:alice"), "{line}");

    assert!(
        w.client().get(&url).send().is_err(),
        "without a certificate"
    );
    let mallory = w.client_with(|b| b.identity(identity(&m_chain, &m_key)));
    assert!(
        mallory.get(&url).send().is_err(),
        "another CA's certificate"
    );
    // What the handshake said, seen by a raw client.
    let root = w.root_cert();
    let raw = |client| {
        answer(
            w.addr,
            &rustls_client_config(Some(&root), &[b"http/1.1"], client),
        )
    };
    let text = raw(None);
    assert!(
        text.contains("AlertReceived(CertificateRequired)"),
        "{text}"
    );
    let text = raw(Some((&m_chain, &m_key)));
    assert!(text.contains("AlertReceived("), "{text}");
    eprintln!("another CA's certificate: {text}");
    let text = raw(Some((&chain, &key)));
    assert!(text.starts_with("response: HTTP/1.1 200"), "{text}");

    let res = alice().get(&url).send().unwrap();
    assert_eq!(res.status(), 200, "still serving");
    // Only alice's three requests reached HTTP.
    w.wait_for_lines("GET /hello.txt", 3);
    let out = w.output();
    assert_eq!(out.matches("GET /hello.txt").count(), 3, "{out}");
    assert!(!out.contains("mallory"), "{out}");
}

#[test]
fn optional_client_certificates_guard_client_auth_paths() {
    let b = Builder::new().file("private/x.txt", "secret\n");
    let (chain, key) = alice(&b);
    let w = b
        .config(
            "[[site]]\nroot = \"site\"\ndefault = true\n[site.tls]\nclient_auth = \"optional\"\nclient_ca = \"data/ca/root.pem\"\nclient_auth_paths = [\"/private/**\"]\n",
        )
        .proto(Proto::H1Tls)
        .start();
    let anonymous = w.client();
    let alice = w.client_with(|b| b.identity(identity(&chain, &key)));
    let status = |c: &reqwest::blocking::Client, path| c.get(w.url(path)).send().unwrap().status();

    assert_eq!(status(&anonymous, "/hello.txt"), 200);
    assert_eq!(status(&anonymous, "/private/x.txt"), 403);
    assert_eq!(status(&alice, "/hello.txt"), 200);
    let res = alice.get(w.url("/private/x.txt")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().unwrap(), "secret\n");
    let line = w.wait_for_output("GET /private/x.txt HTTP/1.1\" 200");
    assert!(line.contains("client=\"CN=alice; DNS:alice\""), "{line}");
    let line = w.wait_for_output("GET /private/x.txt HTTP/1.1\" 403");
    assert!(!line.contains("client="), "{line}");
}

/// The same over HTTP/3: QUIC's handshake asks for the certificate, and requests
/// wait for it (no 0-RTT where clients must authenticate).
#[test]
fn client_certificates_over_http3() {
    let b = Builder::new().file("private/x.txt", "secret\n");
    let (chain, key) = alice(&b);
    let (_other, m_chain, m_key) = mallory();
    for (auth, paths) in [
        ("required", ""),
        ("optional", "client_auth_paths = [\"/private/**\"]\n"),
    ] {
        let w = Builder::new()
            .config(&format!(
                "[[site]]\nroot = \"{}\"\ndefault = true\n[site.tls]\nclient_auth = \"{auth}\"\nclient_ca = \"{}\"\n{paths}",
                b.root().display(),
                b.path().join("data/ca/root.pem").display(),
            ))
            .proto(Proto::H2Tls)
            .start();
        common::within(async {
            let alice = h3_client(&w, Some((&chain, &key)));
            assert_eq!(
                h3_get(&w, &alice, "/private/x.txt").await,
                Ok(200),
                "{auth}"
            );
            let anonymous = h3_get(&w, &h3_client(&w, None), "/private/x.txt").await;
            let mallory = h3_client(&w, Some((&m_chain, &m_key)));
            let mallory = h3_get(&w, &mallory, "/hello.txt").await;
            assert!(
                mallory.is_err(),
                "{auth}: another CA's certificate: {mallory:?}"
            );
            if auth == "required" {
                assert!(
                    anonymous.is_err(),
                    "{auth}: without a certificate: {anonymous:?}"
                );
            } else {
                assert_eq!(anonymous, Ok(403), "{auth}: without a certificate");
            }
            assert_eq!(
                h3_get(&w, &alice, "/hello.txt").await,
                Ok(200),
                "still serving"
            );
        });
        let line = w.wait_for_output("\"GET /private/x.txt HTTP/3.0\" 200");
        assert!(line.contains("client=\"CN=alice; DNS:alice\""), "{line}");
        assert!(!w.output().contains("mallory"), "{}", w.output());
    }
}

/// Sites that differ in client authentication cannot share one QUIC configuration:
/// HTTP/3 is off, with a warning, and not advertised.
#[test]
fn http3_is_off_when_sites_differ_in_client_auth() {
    let w = Builder::new()
        .config(
            "[[site]]\nroot = \"site\"\ndefault = true\n\n[[site]]\nroot = \"site\"\nnames = [\"private.test\"]\n[site.tls]\nclient_auth = \"required\"\nclient_ca = \"data/ca/root.pem\"\n",
        )
        .proto(Proto::H2Tls)
        .start();
    let line = w.wait_for_stderr("HTTP/3 is off");
    assert!(line.contains("sites differ in client_auth"), "{line}");
    let res = w.get("/hello.txt", &[]);
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("alt-svc").is_none(),
        "{:?}",
        res.headers()
    );
}

// ---------------------------------------------------------------------------------
// 5. Failures the server survives
// ---------------------------------------------------------------------------------

#[test]
fn plaintext_on_the_tls_port_gets_a_plaintext_400_and_close() {
    let w = Builder::new().proto(Proto::H1Tls).start();
    let mut s = w.tcp();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let res = read_response(&mut r, false).expect("a plaintext response");
    assert_eq!(res.status, 400);
    let body = String::from_utf8_lossy(&res.body);
    assert!(body.contains("https://"), "{body}");
    assert!(closed_by_server(&mut r));
    assert_eq!(w.get("/hello.txt", &[]).status(), 200, "still serving");
}

#[test]
fn a_tls_client_hello_on_a_cleartext_port_is_closed_without_a_reply() {
    let w = Builder::new().start();
    let mut tcp = w.tcp();
    let config = rustls_config(None, &[b"http/1.1"]);
    let mut conn =
        ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    while conn.wants_write() {
        conn.write_tls(&mut tcp).unwrap();
    }
    let mut got = Vec::new();
    match tcp.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(w.get("/hello.txt", &[]).status(), 200, "still serving");
}

#[test]
fn a_client_that_does_not_trust_the_ca_fails_verification() {
    let w = Builder::new().proto(Proto::H2Tls).start();
    // A client trusting no root at all.
    let nobody = reqwest::blocking::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let e = nobody.get(w.url("/hello.txt")).send().unwrap_err();
    let text = error_text(&e);
    assert!(text.contains("UnknownIssuer"), "{text}");
    // A client trusting another wharf CA. Both CAs' names are the same (they only
    // carry the host name), so rustls checks the intermediate's signature against the
    // wrong root's key: BadSignature rather than UnknownIssuer.
    let other = tempfile::tempdir().unwrap();
    let (ok, out, err) = common::wharf_in(other.path(), &["ca", "init"]);
    assert!(ok, "{out}{err}");
    let stranger = client_trusting(&other.path().join("ca/root.pem"), |b| b);
    let e = stranger.get(w.url("/hello.txt")).send().unwrap_err();
    let text = error_text(&e);
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert_eq!(w.get("/hello.txt", &[]).status(), 200, "still serving");
}

#[test]
fn an_expired_certificate_fails_verification_while_other_sites_are_served() {
    let b = Builder::new();
    let ca = LocalCa::new(&b.path().join("data"));
    ca.init().unwrap();
    let mut req = LeafRequest::new(vec!["expired.test".into()], Usage::Server, 1);
    req.not_before -= Duration::from_secs(10 * 86_400);
    req.not_after = req.not_before + Duration::from_secs(86_400);
    let leaf = ca.issue(&req).unwrap();
    std::fs::create_dir_all(b.path().join("certs")).unwrap();
    std::fs::write(b.path().join("certs/expired.test.pem"), leaf.chain_pem).unwrap();
    std::fs::write(b.path().join("certs/expired.test-key.pem"), leaf.key_pem).unwrap();
    let config = format!(
        "[[site]]\nroot = \"site\"\ndefault = true\n\n{}",
        site_with_cert("site", &["expired.test"], "expired.test")
    );
    let w = b.config(&config).proto(Proto::H1Tls).start();
    let c = w.client_with(|b| b.resolve("expired.test", w.addr));
    let e = c
        .get(format!("https://expired.test:{}/hello.txt", w.addr.port()))
        .send()
        .unwrap_err();
    let text = error_text(&e);
    assert!(text.contains("Expired"), "{text}");
    // The default site (no SNI: an IP address) has a valid certificate.
    assert_eq!(w.get("/hello.txt", &[]).status(), 200, "still serving");
}

#[test]
fn a_server_name_outside_the_certificate_fails_verification() {
    // The only site is a.test; a ClientHello for other.test gets the first group's
    // certificate (a.test's), which the client rejects for the name it asked for.
    let b = Builder::new();
    common::issue(
        &b.path().join("data"),
        &b.path().join("certs"),
        &["a.test"],
        false,
    );
    let w = b
        .config(&site_with_cert("site", &["a.test"], "a.test"))
        .proto(Proto::H1Tls)
        .start();
    let c = w.client_with(|b| b.resolve("a.test", w.addr).resolve("other.test", w.addr));
    let port = w.addr.port();
    let e = c
        .get(format!("https://other.test:{port}/hello.txt"))
        .send()
        .unwrap_err();
    let text = error_text(&e);
    assert!(text.contains("NotValidForName"), "{text}");
    let res = c
        .get(format!("https://a.test:{port}/hello.txt"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "still serving");
}

// ---------------------------------------------------------------------------------
// 6. 421 across certificate groups
// ---------------------------------------------------------------------------------

/// Sites a.test (`site/a`) and b.test (`site/b`), each with its own issued certificate.
fn two_certificate_groups(proto: Proto) -> common::Wharf {
    let b = Builder::new()
        .file("a/who.txt", "a\n")
        .file("b/who.txt", "b\n");
    let data = b.path().join("data");
    let certs = b.path().join("certs");
    common::issue(&data, &certs, &["a.test"], false);
    common::issue(&data, &certs, &["b.test"], false);
    let config = format!(
        "{}{}",
        site_with_cert("site/a", &["a.test"], "a.test"),
        site_with_cert("site/b", &["b.test"], "b.test")
    );
    b.config(&config).proto(proto).start()
}

#[test]
fn a_host_of_another_certificate_group_gets_421_over_http1() {
    let w = two_certificate_groups(Proto::H1Tls);
    let port = w.addr.port();
    let c = w.client_with(|b| b.resolve("a.test", w.addr).resolve("b.test", w.addr));
    for host in ["a.test", "b.test"] {
        let res = c
            .get(format!("https://{host}:{port}/who.txt"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "{host}");
        assert_eq!(res.text().unwrap(), format!("{}\n", &host[..1]));
    }
    let res = c
        .get(format!("https://a.test:{port}/who.txt"))
        .header("host", format!("b.test:{port}"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 421);
    // And the connection (or a new one) still serves a.test.
    let res = c
        .get(format!("https://a.test:{port}/who.txt"))
        .send()
        .unwrap();
    assert_eq!(res.text().unwrap(), "a\n");
}

#[test]
fn an_authority_of_another_certificate_group_gets_421_over_http2() {
    let w = two_certificate_groups(Proto::H2Tls);
    let port = w.addr.port();
    let config = rustls_config(Some(&w.root_cert()), &[b"h2"]);
    // Three requests on one connection whose SNI is a.test.
    let answers = common::within(async {
        tokio::time::timeout(PATIENCE, async {
            let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(ServerName::try_from("a.test").unwrap(), tcp)
                .await
                .unwrap();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            let (client, conn) = h2::client::handshake(tls).await.unwrap();
            tokio::spawn(conn);
            let mut answers = Vec::new();
            for host in ["a.test", "b.test", "a.test"] {
                let req = http::Request::get(format!("https://{host}:{port}/who.txt"))
                    .body(())
                    .unwrap();
                let mut client = client.clone().ready().await.unwrap();
                let (res, _) = client.send_request(req, true).unwrap();
                let res = res.await.unwrap();
                let status = res.status().as_u16();
                let mut body = res.into_body();
                let mut bytes = Vec::new();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    let _ = body.flow_control().release_capacity(chunk.len());
                    bytes.extend_from_slice(&chunk);
                }
                answers.push((host, status, String::from_utf8_lossy(&bytes).into_owned()));
            }
            answers
        })
        .await
        .expect("answers within PATIENCE")
    });
    assert_eq!(answers[0], ("a.test", 200, "a\n".into()));
    assert_eq!(answers[1].1, 421, "{answers:?}");
    assert_eq!(answers[2], ("a.test", 200, "a\n".into()));
}

// ---------------------------------------------------------------------------------
// 7. Redirect and HSTS
// ---------------------------------------------------------------------------------

const HSTS_SITE: &str =
    "[[site]]\nroot = \"site\"\ndefault = true\n[site.tls]\nhsts = \"max-age=60\"\n";

#[test]
fn cleartext_redirects_to_https_keeping_host_and_target() {
    let w = Builder::new()
        .config("[tls]\nlisten = [\"127.0.0.1:0\"]\nredirect = true\n")
        .config(HSTS_SITE)
        .start();
    let line = w.wait_for_output("listening on http://");
    assert!(line.contains("(redirects to HTTPS)"), "{line}");
    let https = w.https_addr();
    let clear = w.addr.port();
    for (host, name) in [
        (format!("127.0.0.1:{clear}"), "127.0.0.1"),
        (format!("localhost:{clear}"), "localhost"),
    ] {
        let res = raw(
            &w,
            format!("GET /hello.txt?x=1 HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        );
        assert_eq!(res.status, 308, "{host}");
        let want = format!("https://{name}:{}/hello.txt?x=1", https.port());
        assert_eq!(res.header("location"), Some(want.as_str()), "{host}");
        assert_eq!(res.header("strict-transport-security"), None, "{host}");
    }
    // h2c is redirected too.
    let h2c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2c.get(w.url("/dir/?a=b")).send().unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers()["location"],
        format!("https://127.0.0.1:{}/dir/?a=b", https.port()).as_str()
    );
    // Where it points, HTTPS answers with HSTS.
    let c = client_trusting(&w.root_cert(), |b| b);
    let res = c
        .get(format!("https://127.0.0.1:{}/hello.txt?x=1", https.port()))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["strict-transport-security"], "max-age=60");
}

#[test]
fn hsts_is_sent_over_https_only() {
    // One server, both listeners, no redirect: the same site over each.
    let w = Builder::new()
        .config("[tls]\nlisten = [\"127.0.0.1:0\"]\n")
        .config(HSTS_SITE)
        .start();
    let https = w.https_addr();
    let res = w.get("/hello.txt", &[]);
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("strict-transport-security"), None);
    let c = client_trusting(&w.root_cert(), |b| b);
    let res = c.get(format!("https://{https}/hello.txt")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["strict-transport-security"], "max-age=60");

    // A cleartext-only server with HSTS configured never sends it.
    let plain = Builder::new().config(HSTS_SITE).start();
    let res = plain.get("/hello.txt", &[]);
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("strict-transport-security"), None);
}

// ---------------------------------------------------------------------------------
// 8. Reloads
// ---------------------------------------------------------------------------------

const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A server whose only site uses `certs/localhost.pem` and its key (from
/// `wharf ca issue`), checking the files for changes every `watch_interval`.
struct Reloadable {
    w: common::Wharf,
    data: PathBuf,
    chain: PathBuf,
    key: PathBuf,
    /// A raw client trusting the local CA, never resuming sessions.
    config: Arc<ClientConfig>,
}

impl Reloadable {
    fn start(watch_interval: &str) -> Reloadable {
        let b = Builder::new();
        let data = b.path().join("data");
        let (chain, key) = common::issue(&data, &b.path().join("certs"), &NAMES, false);
        let config = format!(
            "[tls]\nwatch_interval = \"{watch_interval}\"\n\n[[site]]\nroot = \"site\"\ndefault = true\n[site.tls]\ncert = \"certs/localhost.pem\"\nkey = \"certs/localhost-key.pem\"\n"
        );
        let w = b.config(&config).proto(Proto::H1Tls).start();
        let config = rustls_config(Some(&w.root_cert()), &[b"http/1.1"]);
        Reloadable {
            w,
            data,
            chain,
            key,
            config,
        }
    }

    fn connect(&self) -> TlsStream {
        tls_connect(self.w.addr, &self.config, "localhost")
    }

    /// Issues a new certificate and key in place of the files; returns the new leaf.
    fn reissue(&self) -> Vec<u8> {
        common::issue(&self.data, self.chain.parent().unwrap(), &NAMES, false);
        leaf_of_file(&self.chain)
    }
}

#[test]
fn sighup_reloads_certificates_and_established_connections_keep_working() {
    let r = Reloadable::start("1h");
    let old = leaf_of_file(&r.chain);
    let mut kept = r.connect();
    assert_eq!(peer_leaf(&kept), old);
    assert_eq!(get_over(&mut kept, "/hello.txt").status, 200);
    let pooled = r.w.client();
    let status = || pooled.get(r.w.url("/hello.txt")).send().unwrap().status();
    assert_eq!(status(), 200);

    let new = r.reissue();
    assert_ne!(new, old);
    r.w.signal("HUP");
    r.w.wait_for_stderr("SIGHUP: certificates reloaded");

    let fresh = peer_leaf(&r.connect());
    let which = if fresh == old {
        "the old one"
    } else {
        "another"
    };
    assert!(
        fresh == new,
        "a new connection got {which}, not the new certificate"
    );
    let res = get_over(&mut kept, "/hello.txt");
    assert_eq!(res.status, 200, "the established connection keeps working");
    assert_eq!(res.body, b"hello, world\n");
    assert_eq!(status(), 200, "reqwest's pooled connection keeps working");
}

#[test]
fn a_reload_with_a_broken_key_keeps_the_old_certificate() {
    let r = Reloadable::start("1h");
    let old = leaf_of_file(&r.chain);
    assert_eq!(peer_leaf(&r.connect()), old);
    std::fs::write(&r.key, "not a key\n").unwrap();
    r.w.signal("HUP");
    let line = r.w.wait_for_stderr("cannot reload certificates");
    assert!(line.contains("localhost-key.pem"), "{line}");
    let mut s = r.connect();
    assert_eq!(peer_leaf(&s), old);
    assert_eq!(get_over(&mut s, "/hello.txt").status, 200);
}

#[test]
fn a_reload_with_the_key_of_another_certificate_keeps_the_old_certificate() {
    let r = Reloadable::start("1h");
    let old = leaf_of_file(&r.chain);
    assert_eq!(peer_leaf(&r.connect()), old);
    let elsewhere = r.w.dir.path().join("elsewhere");
    let (_, other_key) = common::issue(&r.data, &elsewhere, &NAMES, false);
    std::fs::copy(other_key, &r.key).unwrap();
    r.w.signal("HUP");
    r.w.wait_for_stderr("cannot reload certificates");
    let mut s = r.connect();
    assert_eq!(peer_leaf(&s), old);
    assert_eq!(get_over(&mut s, "/hello.txt").status, 200);
}

#[test]
fn changed_certificate_files_are_picked_up_by_polling() {
    let r = Reloadable::start("50ms");
    assert_eq!(peer_leaf(&r.connect()), leaf_of_file(&r.chain));
    let new = r.reissue();
    let deadline = Instant::now() + PATIENCE;
    loop {
        // Between the writes of chain and key a reload may fail: not yet.
        if let Ok(mut s) = try_tls_connect(r.w.addr, &r.config, "localhost") {
            if peer_leaf(&s) == new {
                assert_eq!(get_over(&mut s, "/hello.txt").status, 200);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server requiring client certificates that chain to `clients.pem` (alice's CA),
/// alice's certificate, and another CA to put in its place.
struct ClientCaReload {
    w: common::Wharf,
    chain: PathBuf,
    key: PathBuf,
    other: tempfile::TempDir,
}

impl ClientCaReload {
    fn start(proto: Proto) -> ClientCaReload {
        let b = Builder::new();
        let (chain, key) = alice(&b);
        std::fs::copy(
            b.path().join("data/ca/root.pem"),
            b.path().join("clients.pem"),
        )
        .unwrap();
        let other = tempfile::tempdir().unwrap();
        let (ok, out, err) = common::wharf_in(other.path(), &["ca", "init"]);
        assert!(ok, "{out}{err}");
        let w = b
            .config(
                "[tls]\nwatch_interval = \"1h\"\n\n[[site]]\nroot = \"site\"\ndefault = true\n[site.tls]\nclient_auth = \"required\"\nclient_ca = \"clients.pem\"\n",
            )
            .proto(proto)
            .start();
        ClientCaReload {
            w,
            chain,
            key,
            other,
        }
    }

    /// Trusts the other CA instead of alice's, and reloads (SIGHUP).
    fn distrust_alice(&self) {
        std::fs::copy(
            self.other.path().join("ca/root.pem"),
            self.w.dir.path().join("clients.pem"),
        )
        .unwrap();
        self.w.signal("HUP");
        self.w.wait_for_stderr("SIGHUP: certificates reloaded");
    }
}

/// Session tickets outlive reloads (by design: one ticketer for every configuration),
/// and a resumed TLS 1.3 session does not present the client certificate again. So a
/// client whose CA a reload removed from `client_ca` is still served, under its old
/// identity, for as long as its ticket is valid, while a full handshake is refused.
#[test]
fn a_reload_that_drops_a_client_ca_also_refuses_resumed_sessions() {
    let r = ClientCaReload::start(Proto::H1Tls);
    let fresh = rustls_client_config(
        Some(&r.w.root_cert()),
        &[b"http/1.1"],
        Some((&r.chain, &r.key)),
    );
    let mut resuming = (*fresh).clone();
    resuming.resumption = rustls::client::Resumption::default();
    let resuming = Arc::new(resuming);
    let text = answer(r.w.addr, &resuming);
    assert!(text.starts_with("response: HTTP/1.1 200"), "{text}");

    r.distrust_alice();
    let text = answer(r.w.addr, &fresh);
    assert!(text.contains("AlertReceived("), "a full handshake: {text}");
    let text = answer(r.w.addr, &resuming);
    assert!(text.contains("AlertReceived("), "a resumed session: {text}");
}

/// Over HTTP/3 too: after the reload QUIC asks for a certificate from the new CA,
/// and the session the client kept from before is not resumed.
#[test]
fn a_reload_reaches_client_authentication_over_http3() {
    let r = ClientCaReload::start(Proto::H2Tls);
    let w = &r.w;
    common::within(async {
        let alice = h3_client(w, Some((&r.chain, &r.key)));
        assert_eq!(h3_get(w, &alice, "/hello.txt").await, Ok(200));
        alice.wait_idle().await;
        r.distrust_alice();
        let again = h3_get(w, &alice, "/hello.txt").await;
        assert!(again.is_err(), "alice's CA is no longer trusted: {again:?}");
        let fresh = h3_client(w, Some((&r.chain, &r.key)));
        let fresh = h3_get(w, &fresh, "/hello.txt").await;
        assert!(fresh.is_err(), "a full handshake: {fresh:?}");
    });
}

// ---------------------------------------------------------------------------------
// 9. HTTP/2 virtual hosts
// ---------------------------------------------------------------------------------

#[test]
fn http2_virtual_hosts_by_authority_share_the_automatic_certificate() {
    let w = Builder::new()
        .file("a/who.txt", "a\n")
        .file("b/who.txt", "b\n")
        .config("[[site]]\nroot = \"site/a\"\nnames = [\"a.test\"]\n\n[[site]]\nroot = \"site/b\"\nnames = [\"b.test\"]\n")
        .proto(Proto::H2Tls)
        .start();
    let port = w.addr.port();
    let c = w.client_with(|b| b.resolve("a.test", w.addr).resolve("b.test", w.addr));
    for host in ["a.test", "b.test", "a.test"] {
        let res = c
            .get(format!("https://{host}:{port}/who.txt"))
            .send()
            .unwrap();
        assert_eq!(res.version(), reqwest::Version::HTTP_2, "{host}");
        assert_eq!(res.status(), 200, "{host}");
        assert_eq!(res.text().unwrap(), format!("{}\n", &host[..1]), "{host}");
    }
    // One certificate (one group) covers both names.
    let config = rustls_config(Some(&w.root_cert()), &[b"h2"]);
    assert_eq!(
        peer_leaf(&tls_connect(w.addr, &config, "a.test")),
        peer_leaf(&tls_connect(w.addr, &config, "b.test"))
    );
}
