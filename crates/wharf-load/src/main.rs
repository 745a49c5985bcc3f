//! `wharf-load`: an HTTP/3 (or HTTP/2) load generator for `bench/`.
//!
//! `-c` connections each keep `-m` requests in flight for `-d`; every response body
//! is read to its end. Prints requests/s, bytes/s, latency percentiles and errors,
//! and with `--json` one JSON object. The same program measures HTTP/2 (over TLS,
//! ALPN h2) so that HTTP/3 and HTTP/2 are compared with the same client.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::Request;

/// HTTP/3 and HTTP/2 load generator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// https:// URL to request (GET).
    url: http::Uri,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 32)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(short = 'm', long, default_value_t = 10)]
    streams: usize,
    /// Duration in seconds.
    #[arg(short = 'd', long, default_value_t = 10)]
    duration: u64,
    /// Protocol.
    #[arg(long, value_enum, default_value_t = Proto::H3)]
    proto: Proto,
    /// PEM file of the CA to trust.
    #[arg(long)]
    cacert: std::path::PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Print each HTTP/3 connection's QUIC statistics to stderr at its end.
    #[arg(long)]
    quic_stats: bool,
    /// HTTP/3 only: open -c connections, complete one GET on each, then hold them
    /// idle. Prints "READY <opened> <failed>", waits for a line on stdin, prints
    /// "OPEN <still open>" and exits (as bench/idle_conns.py does over TCP).
    #[arg(long)]
    idle: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Proto {
    H3,
    H2,
}

/// What every worker adds to.
#[derive(Default)]
struct Totals {
    /// Connections that ended (and were replaced while time remained).
    connections: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // On one CPU (as bench/ pins it) a single-threaded runtime: a task woken by
    // another does not jump the queue there, so the requests that several streams
    // write in one turn leave together, as h2load's event loop sends them.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let rt = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let host = args.url.host().context("URL needs a host")?.to_owned();
    let port = args.url.port_u16().unwrap_or(443);
    let addr: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()?
        .next()
        .context("no address for the host")?;
    let roots = std::fs::read(&args.cacert).context("--cacert")?;
    if args.idle {
        return hold_idle(&args, addr, &host, &roots).await;
    }
    let totals = Arc::new(Totals::default());
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let h3 = match args.proto {
        Proto::H3 => Some(Arc::new(wharf_load::Client::new(
            &roots,
            if addr.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            }
            .parse()?,
        )?)),
        Proto::H2 => None,
    };
    for _ in 0..args.connections {
        let url = args.url.to_string();
        let (totals, h3, host, roots) = (totals.clone(), h3.clone(), host.clone(), roots.clone());
        let (streams, quic_stats) = (args.streams, args.quic_stats);
        tasks.spawn(async move {
            // A connection the server ends (GOAWAY, a request limit) is replaced while
            // time remains; one that cannot be opened stops this worker.
            while Instant::now() < deadline {
                let result = match &h3 {
                    Some(client) => {
                        let conn =
                            h3_connection(client, addr, &host, &url, streams, deadline, &totals);
                        conn.await.map(|stats| {
                            if quic_stats {
                                eprintln!("{}", quic_summary(&stats));
                            }
                        })
                    }
                    None => {
                        h2_connection(addr, &host, &roots, &url, streams, deadline, &totals).await
                    }
                };
                if let Err(e) = result {
                    eprintln!("wharf-load: connection failed: {e:#}");
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                totals.connections.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    report(&args, &totals, started.elapsed());
    Ok(())
}

/// `--idle`: connections that each completed one request, held until stdin says.
async fn hold_idle(args: &Args, addr: SocketAddr, host: &str, roots: &[u8]) -> anyhow::Result<()> {
    let bind = if addr.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let mut client = wharf_load::Client::new(roots, bind.parse()?)?;
    // Opening thousands takes a while: the first must not idle out meanwhile. A PING
    // now and then is all they send.
    client.keep_alive(Duration::from_secs(10));
    let client = Arc::new(client);
    // Opening thousands at once would only queue handshakes; 100 at a time.
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (client, gate, host, url) = (
            client.clone(),
            gate.clone(),
            host.to_owned(),
            args.url.to_string(),
        );
        tasks.spawn(async move {
            let _turn = gate.acquire().await?;
            let conn = client.connect(addr, &host).await.context("connect")?;
            let got = conn.get(&url).await.context("GET")?;
            anyhow::ensure!(got.head.status().is_success(), "GET: {}", got.head.status());
            Ok(conn)
        });
    }
    let mut conns = Vec::new();
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    while let Some(done) = tasks.join_next().await {
        match done.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(conn) => conns.push(conn),
            Err(e) => *failures.entry(format!("{e:#}")).or_default() += 1,
        }
    }
    // Why connections failed, on stderr: stdout carries only the protocol's lines.
    for (why, count) in &failures {
        eprintln!("{count} connection(s) failed: {why}");
    }
    println!("READY {} {}", conns.len(), args.connections - conns.len());
    tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await??;
    println!("OPEN {}", conns.iter().filter(|c| c.is_open()).count());
    for conn in &conns {
        conn.close();
    }
    Ok(())
}

/// Records one request's outcome; false when it failed (the worker then stops and
/// its connection is replaced).
fn record(totals: &Totals, started: Instant, result: anyhow::Result<usize>) -> bool {
    match result {
        Ok(bytes) => {
            totals.requests.fetch_add(1, Ordering::Relaxed);
            totals.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
            totals
                .latencies_us
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(us);
            true
        }
        Err(e) => {
            if totals.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("wharf-load: request failed: {e:#}");
            }
            false
        }
    }
}

async fn h3_connection(
    client: &wharf_load::Client,
    addr: SocketAddr,
    host: &str,
    url: &str,
    streams: usize,
    deadline: Instant,
    totals: &Arc<Totals>,
) -> anyhow::Result<quinn::ConnectionStats> {
    let conn = Arc::new(client.connect(addr, host).await?);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let (conn, totals, url) = (conn.clone(), totals.clone(), url.to_owned());
        workers.spawn(async move {
            while Instant::now() < deadline {
                let started = Instant::now();
                let get = Request::get(url.as_str()).body(Bytes::new());
                let incoming = conn.start(get.expect("valid URL")).await;
                let result = async {
                    let mut incoming = incoming?;
                    if !incoming.head.status().is_success() {
                        return Err(anyhow!("status {}", incoming.head.status()));
                    }
                    let mut n = 0;
                    while let Some(chunk) = incoming.chunk().await? {
                        n += chunk.len();
                    }
                    Ok(n)
                }
                .await;
                if !record(&totals, started, result) {
                    break;
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let stats = conn.stats();
    conn.close();
    Ok(stats)
}

/// One line of a connection's QUIC statistics.
fn quic_summary(s: &quinn::ConnectionStats) -> String {
    format!(
        "quic: rtt {:?} cwnd {} mtu {} | sent {} packets {} bytes, lost {} packets, {} congestion events | received {} packets {} bytes",
        s.path.rtt,
        s.path.cwnd,
        s.path.current_mtu,
        s.path.sent_packets,
        s.udp_tx.bytes,
        s.path.lost_packets,
        s.path.congestion_events,
        s.udp_rx.datagrams,
        s.udp_rx.bytes,
    )
}

async fn h2_connection(
    addr: SocketAddr,
    host: &str,
    roots_pem: &[u8],
    url: &str,
    streams: usize,
    deadline: Instant,
    totals: &Arc<Totals>,
) -> anyhow::Result<()> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(roots_pem) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await?;
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(16 << 20)
        .initial_connection_window_size(64 << 20)
        .handshake::<_, Bytes>(stream)
        .await?;
    let driver = tokio::spawn(conn);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let (mut send, totals, url) = (send.clone(), totals.clone(), url.to_owned());
        workers.spawn(async move {
            while Instant::now() < deadline {
                let started = Instant::now();
                let result = async {
                    send = send.clone().ready().await?;
                    let (response, _) =
                        send.send_request(Request::get(url.as_str()).body(())?, true)?;
                    let response = response.await?;
                    if !response.status().is_success() {
                        return Err(anyhow!("status {}", response.status()));
                    }
                    let mut body = response.into_body();
                    let mut n = 0;
                    while let Some(chunk) = body.data().await {
                        let chunk = chunk?;
                        n += chunk.len();
                        let _ = body.flow_control().release_capacity(chunk.len());
                    }
                    Ok(n)
                }
                .await;
                if !record(&totals, started, result) {
                    break;
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    drop(send);
    driver.abort();
    Ok(())
}

fn report(args: &Args, totals: &Totals, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let requests = totals.requests.load(Ordering::Relaxed);
    let bytes = totals.bytes.load(Ordering::Relaxed);
    let errors = totals.errors.load(Ordering::Relaxed);
    let connections = totals.connections.load(Ordering::Relaxed);
    let mut lat = std::mem::take(
        &mut *totals
            .latencies_us
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    lat.sort_unstable();
    let pct = |p: f64| -> u32 {
        if lat.is_empty() {
            return 0;
        }
        lat[((lat.len() - 1) as f64 * p).round() as usize]
    };
    let (rps, bps) = (requests as f64 / secs, bytes as f64 / secs);
    if args.json {
        println!(
            "{{\"proto\":\"{:?}\",\"requests\":{requests},\"errors\":{errors},\"connections\":{connections},\"seconds\":{secs:.3},\"rps\":{rps:.1},\"bytes_per_sec\":{bps:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{}}}",
            args.proto,
            pct(0.5),
            pct(0.9),
            pct(0.99),
            lat.last().copied().unwrap_or(0)
        );
    } else {
        println!(
            "{:?} {}: {requests} requests in {secs:.2}s on {connections} connections, {errors} errors\n  {rps:.0} req/s, {:.1} MB/s\n  latency p50 {} us, p90 {} us, p99 {} us, max {} us",
            args.proto,
            args.url,
            bps / 1e6,
            pct(0.5),
            pct(0.9),
            pct(0.99),
            lat.last().copied().unwrap_or(0)
        );
    }
}
