//! Data connections: made passively (the client connects to a port wharf opened for
//! it, PASV/EPSV) or actively (wharf connects to the client, PORT/EPRT), then run on
//! a blocking thread that moves the bytes.
//!
//! The connection is set up asynchronously, with the checks that keep strangers out:
//! a passive port accepts only the control connection's peer address (another
//! address is refused and logged: port theft), and an active connection goes only to
//! that address and an unprivileged port (the session refuses the rest: FTP bounce).
//! The transfer itself runs on a blocking thread over a blocking socket, where the
//! kernel moves file bytes with `sendfile(2)` when nothing needs converting or
//! encrypting; `ABOR` shuts the socket down to stop it at once.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU64;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::ascii::{FromNetwork, ToNetwork};
use crate::tree::{FsError, Upload};

/// How the next data connection is to be made.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Accept one connection on this listener.
    Passive(TcpListener),
    /// Connect to the client here.
    Active(SocketAddr),
}

/// Where passive ports are looked for when none are configured: Linux's default
/// ephemeral range.
const EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

/// Ports tried in the ephemeral range before the kernel is asked for one.
const EPHEMERAL_TRIES: usize = 64;

/// A listener for one passive data connection on `ip`, at a port of `range` (or of
/// the ephemeral range) from a pseudo-random start. Ports are chosen here rather than
/// by binding port 0: the kernel's search for a free port scans its bind tables and
/// grows costly with thousands of recent data connections (it took most of the CPU
/// of 200 concurrent sessions).
pub(crate) fn passive_listener(
    ip: IpAddr,
    range: Option<&RangeInclusive<u16>>,
) -> io::Result<TcpListener> {
    let (lo, hi) = range.map_or((*EPHEMERAL.start(), *EPHEMERAL.end()), |r| {
        (*r.start(), *r.end())
    });
    let span = usize::from(hi - lo) + 1;
    let start = next_random() as usize % span;
    let tries = if range.is_some() {
        span
    } else {
        span.min(EPHEMERAL_TRIES)
    };
    for i in 0..tries {
        let port = lo + ((start + i) % span) as u16;
        match listen_on(SocketAddr::new(ip, port)) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            result => return result,
        }
    }
    match range {
        None => listen_on(SocketAddr::new(ip, 0)),
        Some(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("every passive port in {lo}-{hi} is in use"),
        )),
    }
}

/// Listens on `addr` for one connection (and a few strangers, who are refused).
/// `SO_REUSEADDR`, as every FTP server: a port whose earlier data connections are in
/// TIME_WAIT can take a new listener; thousands of transfers leave that many.
fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8)
}

/// A pseudo-random number (splitmix64 over a counter seeded from the clock): port
/// choice only, nothing secret.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    };
    let _ = STATE.compare_exchange(0, seed(), Ordering::Relaxed, Ordering::Relaxed);
    let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why no data connection was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("no data connection from {peer} within {secs} s on port {port}: is a firewall or NAT in the way of passive mode?", secs = .timeout.as_secs())]
    AcceptTimeout {
        peer: IpAddr,
        port: u16,
        timeout: Duration,
    },
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, io::Error),
    #[error("no connection to {0} within {secs} s", secs = .1.as_secs())]
    ConnectTimeout(SocketAddr, Duration),
    #[error("data connection: {0}")]
    Io(#[from] io::Error),
    #[error("aborted")]
    Aborted,
}

/// Makes the data connection of `plan` for a client at `peer` whose control
/// connection arrived at `local`.
pub(crate) async fn connect(
    plan: Plan,
    peer: IpAddr,
    local: IpAddr,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<std::net::TcpStream, ConnectError> {
    let work = async {
        match plan {
            Plan::Passive(listener) => accept_from(&listener, peer, timeout).await,
            Plan::Active(to) => connect_to(to, local, timeout).await,
        }
    };
    let tcp = tokio::select! {
        r = work => r?,
        _ = cancel.cancelled() => return Err(ConnectError::Aborted),
    };
    let tcp = tcp.into_std()?;
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    Ok(tcp)
}

async fn accept_from(
    listener: &TcpListener,
    peer: IpAddr,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, ConnectError> {
    let port = listener.local_addr()?.port();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let accepted = tokio::time::timeout_at(deadline, listener.accept()).await;
        let (tcp, from) = match accepted {
            Ok(r) => r?,
            Err(_) => {
                return Err(ConnectError::AcceptTimeout {
                    peer,
                    port,
                    timeout,
                })
            }
        };
        if same_ip(from.ip(), peer) {
            return Ok(tcp);
        }
        tracing::warn!(
            target: "wharf::ftp",
            %from, expected = %peer, port,
            "data connection refused: not from the control connection's address (port theft?)"
        );
    }
}

async fn connect_to(
    to: SocketAddr,
    local: IpAddr,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, ConnectError> {
    let socket = match to {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // From the control connection's own address, so the client sees the server.
    if local.is_ipv4() == to.is_ipv4() {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    match tokio::time::timeout(timeout, socket.connect(to)).await {
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) => Err(ConnectError::Connect(to, e)),
        Err(_) => Err(ConnectError::ConnectTimeout(to, timeout)),
    }
}

/// Whether two addresses are the same host (an IPv4-mapped IPv6 address is its IPv4).
pub(crate) fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// What a transfer moves.
pub(crate) enum Job {
    /// A file from `offset`, converted to CRLF line ends if `ascii`.
    Send {
        file: File,
        offset: u64,
        ascii: bool,
    },
    /// A listing, already formatted.
    Listing(Vec<u8>),
    /// Into an upload, converted from CRLF if `ascii`; kept in part if `keep_partial`.
    Receive {
        upload: Upload,
        ascii: bool,
        keep_partial: bool,
    },
}

/// The shared state of a running transfer: its progress, and a way to stop it.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    bytes: AtomicU64,
    aborted: AtomicBool,
    socket: Mutex<Option<std::net::TcpStream>>,
    /// Fired by [`Progress::abort`]: ends the wait for the data connection.
    cancel: CancellationToken,
}

impl Progress {
    /// Bytes moved so far (on the wire).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Fired when the transfer is stopped.
    pub(crate) fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Stops the transfer: the wait for its data connection ends, and its socket is
    /// shut down, so blocked reads and writes end.
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.cancel.cancel();
        if let Some(s) = self
            .socket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    fn add(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// How a transfer ended badly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransferError {
    /// The data connection failed or was closed early.
    #[error("data connection: {0}")]
    Network(io::Error),
    /// Stopped by `ABOR`.
    #[error("aborted")]
    Aborted,
    /// The file could not be read or written.
    #[error("{0}")]
    Local(FsError),
}

/// A transfer that ended well.
#[derive(Debug)]
pub(crate) struct Done {
    /// Bytes moved on the wire.
    pub(crate) bytes: u64,
    /// An upload, complete but not yet in place: the session commits it once it
    /// knows the client is still there (a client that vanished mid-upload closes its
    /// data connection as if the file had ended).
    pub(crate) upload: Option<Upload>,
}

impl Done {
    fn sent(bytes: u64) -> Done {
        Done {
            bytes,
            upload: None,
        }
    }
}

/// A byte rate shared by every transfer of one user (`max_rate`): each chunk takes
/// the next slot of time on one clock, so N transfers together keep to the rate.
#[derive(Debug)]
pub(crate) struct RateLimit {
    rate: NonZeroU64,
    next: Mutex<Instant>,
}

impl RateLimit {
    pub(crate) fn new(rate: NonZeroU64) -> RateLimit {
        RateLimit {
            rate,
            next: Mutex::new(Instant::now()),
        }
    }

    /// How long to wait, having sent `n` more bytes, before sending again.
    fn reserve(&self, n: usize) -> Duration {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(n as f64 / self.rate.get() as f64);
        next.saturating_duration_since(now)
    }
}

const CHUNK: usize = 256 << 10;

/// Runs `job` over `tcp` (TLS with `tls` when data is protected). Blocking.
pub(crate) fn transfer(
    job: Job,
    tcp: std::net::TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    rate: Option<&RateLimit>,
    progress: &Progress,
) -> Result<Done, TransferError> {
    *progress.socket.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(tcp.try_clone().map_err(TransferError::Network)?);
    if progress.aborted() {
        return Err(TransferError::Aborted);
    }
    let mut limiter = Limiter { rate, progress };
    let net = |e: io::Error| {
        if progress.aborted() {
            TransferError::Aborted
        } else {
            TransferError::Network(e)
        }
    };
    match tls {
        None => match job {
            Job::Send {
                file,
                offset,
                ascii: false,
            } => send_file(&file, offset, &tcp, &mut limiter, progress)
                .map(Done::sent)
                .map_err(|e| match e {
                    Side::Net(e) => net(e),
                    Side::Disk(e) => TransferError::Local(e.into()),
                }),
            job => run(job, &mut &tcp, &mut limiter, progress, net),
        },
        Some(cfg) => {
            let conn = rustls::ServerConnection::new(cfg)
                .map_err(|e| TransferError::Network(io::Error::other(e)))?;
            let mut stream = rustls::StreamOwned::new(conn, &tcp);
            let done = run(job, &mut stream, &mut limiter, progress, net)?;
            stream.conn.send_close_notify();
            let closed = stream.flush();
            // A download is complete only once the client has the close_notify; an
            // uploader may already have closed its end after sending its own.
            if done.upload.is_none() {
                closed.map_err(net)?;
            }
            Ok(done)
        }
    }
}

/// Which side of a copy failed.
enum Side {
    Net(io::Error),
    Disk(io::Error),
}

/// A plain binary download: the kernel copies from the file to the socket.
fn send_file(
    file: &File,
    offset: u64,
    tcp: &std::net::TcpStream,
    limiter: &mut Limiter,
    progress: &Progress,
) -> Result<u64, Side> {
    let mut pos = offset;
    let mut moved = 0;
    loop {
        let chunk = limiter.chunk(CHUNK * 64);
        let n = match rustix::fs::sendfile(tcp, file, Some(&mut pos), chunk) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            // EAGAIN on a blocking socket: the send timeout passed.
            Err(rustix::io::Errno::AGAIN) => return Err(Side::Net(io::ErrorKind::TimedOut.into())),
            Err(e) if e == rustix::io::Errno::PIPE || e == rustix::io::Errno::CONNRESET => {
                return Err(Side::Net(e.into()))
            }
            Err(e) => return Err(Side::Disk(e.into())),
        };
        if n == 0 {
            return Ok(moved);
        }
        moved += n as u64;
        progress.add(n);
        limiter.pace(n);
    }
}

/// Any other transfer, through a buffer.
fn run<S: Read + Write>(
    job: Job,
    net_io: &mut S,
    limiter: &mut Limiter,
    progress: &Progress,
    net: impl Fn(io::Error) -> TransferError,
) -> Result<Done, TransferError> {
    let local = |e: io::Error| TransferError::Local(e.into());
    let mut buf = vec![0u8; CHUNK];
    let mut converted = Vec::new();
    let mut moved = 0u64;
    match job {
        Job::Listing(bytes) => {
            net_io.write_all(&bytes).map_err(&net)?;
            net_io.flush().map_err(&net)?;
            progress.add(bytes.len());
            Ok(Done::sent(bytes.len() as u64))
        }
        Job::Send {
            mut file,
            offset,
            ascii,
        } => {
            use std::io::Seek;
            file.seek(io::SeekFrom::Start(offset)).map_err(local)?;
            let mut to_net = ToNetwork::default();
            loop {
                let want = limiter.chunk(CHUNK);
                let n = file.read(&mut buf[..want]).map_err(local)?;
                if n == 0 {
                    net_io.flush().map_err(&net)?;
                    return Ok(Done::sent(moved));
                }
                let out = if ascii {
                    converted.clear();
                    to_net.convert(&buf[..n], &mut converted);
                    &converted[..]
                } else {
                    &buf[..n]
                };
                net_io.write_all(out).map_err(&net)?;
                moved += out.len() as u64;
                progress.add(out.len());
                limiter.pace(out.len());
            }
        }
        Job::Receive {
            mut upload,
            ascii,
            keep_partial,
        } => {
            let mut from_net = FromNetwork::default();
            let result = (|| loop {
                let want = limiter.chunk(CHUNK);
                let n = match net_io.read(&mut buf[..want]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // A TLS peer that closes without close_notify: accepted, as most
                    // servers do, since FTP marks the end by the close itself.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break Ok(()),
                    Err(e) => break Err(net(e)),
                };
                let data = if ascii {
                    converted.clear();
                    from_net.convert(&buf[..n], &mut converted);
                    &converted[..]
                } else {
                    &buf[..n]
                };
                upload.write(data).map_err(local)?;
                moved += n as u64;
                progress.add(n);
                limiter.pace(n);
            })();
            match result {
                Ok(()) => {
                    converted.clear();
                    from_net.finish(&mut converted);
                    upload.file().write_all(&converted).map_err(local)?;
                    Ok(Done {
                        bytes: moved,
                        upload: Some(upload),
                    })
                }
                Err(e) => {
                    if keep_partial {
                        let _ = upload.keep_partial();
                    }
                    Err(e)
                }
            }
        }
    }
}

/// Keeps a transfer under its user's byte rate by sleeping between chunks, in short
/// steps so that `ABOR` is not kept waiting.
struct Limiter<'a> {
    rate: Option<&'a RateLimit>,
    progress: &'a Progress,
}

impl Limiter<'_> {
    /// The chunk size to use: a tenth of a second's worth when limited.
    fn chunk(&self, max: usize) -> usize {
        match self.rate {
            Some(r) => (r.rate.get() / 10).clamp(1024, max as u64) as usize,
            None => max,
        }
    }

    fn pace(&mut self, n: usize) {
        let Some(rate) = self.rate else { return };
        let mut wait = rate.reserve(n);
        const STEP: Duration = Duration::from_millis(100);
        while !wait.is_zero() && !self.progress.aborted() {
            let nap = wait.min(STEP);
            std::thread::sleep(nap);
            wait -= nap;
        }
    }
}
