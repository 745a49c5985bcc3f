//! Test harness: runs the real `wharf` binary on 127.0.0.1:0 over a temporary site and
//! talks to it with reqwest, raw TCP, and curl.

#![allow(dead_code, unreachable_pub, missing_docs)] // each test file uses a part

pub mod dns;
pub mod ftp;
pub mod hub;
pub mod redis;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How a test talks to wharf: the same tests run over every version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 over cleartext TCP.
    H1,
    /// HTTP/2 over cleartext TCP with prior knowledge.
    H2c,
    /// HTTP/1.1 over TLS (ALPN http/1.1).
    H1Tls,
    /// HTTP/2 over TLS (ALPN h2).
    H2Tls,
    /// HTTP/3 over QUIC, on the TLS listener's UDP port.
    H3,
}

impl Proto {
    pub fn tls(self) -> bool {
        matches!(self, Proto::H1Tls | Proto::H2Tls | Proto::H3)
    }

    pub fn version(self) -> reqwest::Version {
        match self {
            Proto::H1 | Proto::H1Tls => reqwest::Version::HTTP_11,
            Proto::H2c | Proto::H2Tls => reqwest::Version::HTTP_2,
            Proto::H3 => reqwest::Version::HTTP_3,
        }
    }
}

/// A running wharf.
pub struct Wharf {
    child: Child,
    pub addr: SocketAddr,
    pub proto: Proto,
    /// Everything written to stdout (startup lines, access log).
    out: Arc<(Mutex<String>, Condvar)>,
    /// Everything written to stderr (diagnostics); also echoed to the test's stderr.
    err: Arc<(Mutex<String>, Condvar)>,
    pub dir: tempfile::TempDir,
}

/// Text a process writes, line by line, and a condition variable to wait on it.
type Sink = Arc<(Mutex<String>, Condvar)>;

/// Builds the temporary directory and configuration of a test server.
pub struct Builder {
    dir: tempfile::TempDir,
    config: String,
    args: Vec<String>,
    proto: Proto,
    /// Listen where wharf does by default (both loopbacks), on a free port.
    default_listeners: bool,
    /// `--listen` (127.0.0.1:0 unless said).
    listen: &'static str,
    /// A command (and its arguments) that runs wharf, given as its last arguments.
    wrapper: Vec<String>,
    /// What to serve instead of the fixture site: a directory, or `--config FILE`.
    serving: Option<Vec<String>>,
    /// Environment variables to set.
    env: Vec<(String, String)>,
    /// Environment variables to remove.
    env_remove: Vec<String>,
    /// The subcommand: `serve`, or `proxy`.
    command: &'static str,
}

impl Builder {
    /// A directory with `site/` holding the standard fixture files.
    pub fn new() -> Builder {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("dir/sub")).unwrap();
        std::fs::create_dir_all(site.join("assets")).unwrap();
        std::fs::create_dir_all(site.join(".well-known")).unwrap();
        std::fs::write(
            site.join("index.html"),
            "<!DOCTYPE html><title>home</title>\n",
        )
        .unwrap();
        std::fs::write(site.join("hello.txt"), "hello, world\n").unwrap();
        std::fs::write(site.join("digits.txt"), "0123456789".repeat(100)).unwrap();
        std::fs::write(
            site.join("big.txt"),
            "wharf serves files over HTTP. ".repeat(4000),
        )
        .unwrap();
        std::fs::write(
            site.join("image.png"),
            [0x89u8, b'P', b'N', b'G'].repeat(200),
        )
        .unwrap();
        std::fs::write(site.join("data.unknownext"), "bytes").unwrap();
        std::fs::write(
            site.join("assets/app.js"),
            "console.log('app');\n".repeat(50),
        )
        .unwrap();
        std::fs::write(site.join("dir/b.txt"), "b").unwrap();
        std::fs::write(site.join("dir/a&<x>.txt"), "a").unwrap();
        std::fs::write(site.join("dir/.hidden"), "h").unwrap();
        std::fs::write(site.join(".env"), "SECRET=1").unwrap();
        std::fs::write(site.join(".well-known/security.txt"), "Contact: x").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "OUTSIDE THE ROOT").unwrap();
        Builder {
            dir,
            config: String::new(),
            args: Vec::new(),
            proto: Proto::H1,
            default_listeners: false,
            listen: "127.0.0.1:0",
            wrapper: Vec::new(),
            serving: None,
            env: Vec::new(),
            env_remove: Vec::new(),
            command: "serve",
        }
    }

    /// Serve for `proto` (TLS protocols add `--tls`, with a local CA in the test
    /// directory).
    pub fn proto(mut self, proto: Proto) -> Builder {
        self.proto = proto;
        self
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// The temporary directory (holding `site/`, `wharf.toml` and the data directory
    /// `data/`).
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Appends TOML to the configuration (sites are written by the test).
    pub fn config(mut self, toml: &str) -> Builder {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    /// Listen on wharf's default addresses (`--port 0`: 127.0.0.1 and [::1] on one
    /// free port) instead of `--listen 127.0.0.1:0`. `Wharf::addr` is 127.0.0.1's.
    pub fn default_listeners(mut self) -> Builder {
        self.default_listeners = true;
        self
    }

    /// Listens on `addr` (`0.0.0.0:0`: every address, so not on loopback only)
    /// instead of 127.0.0.1:0; the tests still connect over loopback.
    pub fn listen(mut self, addr: &'static str) -> Builder {
        self.listen = addr;
        self
    }

    /// Runs wharf through `wrapper` (`["unshare", "-rn"]`), which gets wharf's path
    /// and arguments as its last arguments and must `exec` it: `Wharf::pid` stays
    /// wharf's.
    pub fn wrapper(mut self, wrapper: &[&str]) -> Builder {
        self.wrapper = wrapper.iter().map(|&a| a.to_owned()).collect();
        self
    }

    /// Serves what `args` name (a directory, or `--config FILE`) instead of the
    /// fixture site and configuration.
    pub fn serving(mut self, args: &[&str]) -> Builder {
        self.serving = Some(args.iter().map(|&a| a.to_owned()).collect());
        self
    }

    /// Runs `wharf proxy` with `args` (`--to URL ...`, `--config FILE`) instead of
    /// serving files.
    pub fn proxy(mut self, args: &[&str]) -> Builder {
        self.command = "proxy";
        self.serving(args)
    }

    /// Runs wharf with the environment variable `key` set to `value`.
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs wharf without the environment variable `key`.
    pub fn env_remove(mut self, key: &str) -> Builder {
        self.env_remove.push(key.to_owned());
        self
    }

    pub fn arg(mut self, a: &str) -> Builder {
        self.args.push(a.to_owned());
        self
    }

    pub fn file(self, rel: &str, content: impl AsRef<[u8]>) -> Builder {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    /// Starts wharf: with the configuration if any was given (and a default site on
    /// `site/` unless it has `[[site]]` tables), else zero-config on `site/`.
    pub fn start(self) -> Wharf {
        let wharf = env!("CARGO_BIN_EXE_wharf");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(wharf);
                cmd
            }
            None => Command::new(wharf),
        };
        cmd.arg(self.command);
        if self.default_listeners {
            cmd.args(["--port", "0"]);
        } else {
            cmd.args(["--listen", self.listen]);
        }
        if let Some(serving) = &self.serving {
            cmd.args(serving);
        } else if !self.config.is_empty() {
            let mut text = self.config.clone();
            if !text.contains("[[site]]") {
                text.push_str("\n[[site]]\nroot = \"site\"\ndefault = true\n");
            }
            let path = self.dir.path().join("wharf.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        } else {
            cmd.arg(self.root());
        }
        cmd.args(&self.args);
        cmd.env("WHARF_DATA_DIR", self.dir.path().join("data"));
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        if self.proto.tls() {
            cmd.arg("--tls");
        }
        spawn(cmd, self.dir, self.proto)
    }
}

/// Collects the lines of `from` into a new sink (echoing them to stderr if `echo`).
fn collect(from: impl Read + Send + 'static, echo: bool) -> Sink {
    let out: Sink = Arc::new((Mutex::new(String::new()), Condvar::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("{line}");
            }
            let (m, cv) = &*sink;
            let mut s = m.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
            cv.notify_all();
        }
    });
    out
}

/// Waits until `sink` has `n` lines containing `needle`; returns them.
fn wait_in(sink: &Sink, needle: &str, n: usize) -> Vec<String> {
    let (m, cv) = &**sink;
    let deadline = Instant::now() + PATIENCE;
    let mut s = m.lock().unwrap();
    loop {
        let found: Vec<String> = s
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect();
        if found.len() >= n {
            return found;
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no output line with {needle:?}; got:\n{s}"));
        s = cv.wait_timeout(s, left).unwrap().0;
    }
}

fn spawn(mut cmd: Command, dir: tempfile::TempDir, proto: Proto) -> Wharf {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = collect(child.stdout.take().unwrap(), false);
    let err = collect(child.stderr.take().unwrap(), true);
    let mut w = Wharf {
        child,
        addr: "0.0.0.0:0".parse().unwrap(),
        proto,
        out,
        err,
        dir,
    };
    let scheme = if proto.tls() { "https://" } else { "http://" };
    let line = w.wait_for_output(&format!("listening on {scheme}"));
    w.addr = listening_addr(&line, scheme);
    if w.addr.ip().is_unspecified() {
        // Listening on every address: the tests talk to it over loopback.
        w.addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    w
}

/// The address of a `wharf: listening on http://ADDR/ (...)` line.
pub fn listening_addr(line: &str, scheme: &str) -> SocketAddr {
    let rest = line.split(scheme).nth(1).unwrap();
    rest[..rest.find('/').unwrap()].parse().unwrap()
}

impl Wharf {
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.proto.tls() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// The local CA's root certificate (TLS protocols).
    pub fn root_cert(&self) -> PathBuf {
        self.dir.path().join("data/ca/root.pem")
    }

    /// A client speaking this server's protocol, trusting its local CA.
    pub fn client(&self) -> reqwest::blocking::Client {
        self.client_with(|b| b)
    }

    /// [`Wharf::client`], with more settings.
    pub fn client_with(
        &self,
        more: impl FnOnce(reqwest::blocking::ClientBuilder) -> reqwest::blocking::ClientBuilder,
    ) -> reqwest::blocking::Client {
        let b = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PATIENCE);
        let b = match self.proto {
            Proto::H1 | Proto::H1Tls => b.http1_only(),
            Proto::H2c => b.http2_prior_knowledge(),
            Proto::H2Tls | Proto::H3 => b,
        };
        let b = if self.proto.tls() {
            let pem = std::fs::read(self.root_cert()).unwrap();
            b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        } else {
            b
        };
        more(b).build().unwrap()
    }

    /// GET `path` with `headers`, checking the response came over this server's version.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
        self.request("GET", path, headers)
    }

    /// `method path` with `headers`, over this server's version (HTTP/3 with
    /// `wharf-load`'s client), checking the response came over that version.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = if self.proto == Proto::H3 {
            self.h3_request(method, path, headers)
        } else {
            let mut req = self.client().request(method, self.url(path));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.send().unwrap()
        };
        assert_eq!(res.version(), self.proto.version(), "{path}");
        res
    }

    fn h3_request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        let mut req = http::Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(bytes::Bytes::new()).unwrap();
        let roots = std::fs::read(self.root_cert()).unwrap();
        let fetched = within(async {
            let bind = if self.addr.is_ipv6() {
                "[::1]:0"
            } else {
                "127.0.0.1:0"
            };
            let client = wharf_load::Client::new(&roots, bind.parse().unwrap()).unwrap();
            let conn = client.connect(self.addr, "localhost").await.unwrap();
            let fetched = conn.send(req).await.unwrap();
            conn.close();
            fetched
        });
        let (mut head, ()) = fetched.head.into_parts();
        head.version = http::Version::HTTP_3;
        http::Response::from_parts(head, fetched.body).into()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// Waits until stdout has a line containing `needle`; returns that line.
    pub fn wait_for_output(&self, needle: &str) -> String {
        self.wait_for_lines(needle, 1).remove(0)
    }

    /// Waits until stdout has `n` lines containing `needle`; returns them.
    pub fn wait_for_lines(&self, needle: &str, n: usize) -> Vec<String> {
        wait_in(&self.out, needle, n)
    }

    pub fn output(&self) -> String {
        self.out.0.lock().unwrap().clone()
    }

    /// Waits until stderr (diagnostics) has a line containing `needle`; returns it.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        wait_in(&self.err, needle, 1).remove(0)
    }

    /// Waits until stderr has `n` lines containing `needle`; returns them.
    pub fn wait_for_stderr_lines(&self, needle: &str, n: usize) -> Vec<String> {
        wait_in(&self.err, needle, n)
    }

    pub fn stderr(&self) -> String {
        self.err.0.lock().unwrap().clone()
    }

    /// The address of the first HTTPS listener (printed at startup).
    pub fn https_addr(&self) -> SocketAddr {
        listening_addr(&self.wait_for_output("listening on https://"), "https://")
    }

    /// The process id of wharf.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `INT`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit; a process still running after `PATIENCE` is
    /// killed and the test fails.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let (done, timer) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if timer.recv_timeout(PATIENCE).is_err() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        });
        let status = self.child.wait().unwrap();
        let _ = done.send(());
        assert!(
            std::os::unix::process::ExitStatusExt::signal(&status).is_none(),
            "wharf did not exit by itself: {status:?}"
        );
        status
    }

    /// A raw TCP connection with a read timeout.
    pub fn tcp(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s
    }
}

impl Drop for Wharf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on a fresh single-threaded runtime with a deadline of `PATIENCE`, so a
/// hung exchange fails the test (async clients: HTTP/3, h2, the hub's streams).
pub fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(PATIENCE, f)
                .await
                .expect("finished in time")
        })
}

/// A blocking reqwest client that does not decompress, redirect or pool across tests.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// One parsed HTTP/1.1 response read from a raw stream.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (Content-Length framed, or none for HEAD/304/1xx) from `r`.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> Option<RawResponse> {
    let mut status_line = String::new();
    if r.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut res = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = res
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    if !head_request && status != 304 && status >= 200 {
        res.body = vec![0; len];
        r.read_exact(&mut res.body).ok()?;
    }
    Some(res)
}

/// Writes `request` on a fresh connection and reads one response.
pub fn raw(w: &Wharf, request: &[u8]) -> RawResponse {
    let mut s = w.tcp();
    s.write_all(request).unwrap();
    let mut r = BufReader::new(s);
    read_response(&mut r, request.starts_with(b"HEAD")).expect("a response")
}

/// True when the peer closes `s` (EOF) before `PATIENCE` passes and sends no more bytes.
pub fn closed_by_server(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Runs curl with `args`; returns (stdout, stderr).
pub fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `wharf ARGS` with `data` as its data directory: (success, stdout, stderr).
pub fn wharf_in(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("WHARF_DATA_DIR", data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `wharf ca issue NAMES... --out OUT [--client]` with the CA of `data`: the paths of
/// the chain and key files it wrote.
pub fn issue(data: &Path, out: &Path, names: &[&str], client: bool) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(out).unwrap();
    let mut args = vec!["ca", "issue"];
    args.extend_from_slice(names);
    args.extend(["--out", out.to_str().unwrap()]);
    if client {
        args.push("--client");
    }
    let (ok, stdout, stderr) = wharf_in(data, &args);
    assert!(ok, "wharf {args:?}: {stdout}{stderr}");
    let stem = names[0].replace('*', "_wildcard");
    (
        out.join(format!("{stem}.pem")),
        out.join(format!("{stem}-key.pem")),
    )
}
