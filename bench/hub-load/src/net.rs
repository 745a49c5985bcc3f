//! Sockets (loopback only, spread over source addresses), the file limit, and
//! what /proc says about the server.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

/// Connects to `addr` (a loopback address). With `source_ips` > 0 the socket is
/// first bound to 127.0.0.(2 + idx % source_ips) with IP_BIND_ADDRESS_NO_PORT, so
/// the port is chosen at connect time per (source, destination) pair: each source
/// address brings its own ephemeral port range (net.ipv4.ip_local_port_range).
pub async fn connect(addr: SocketAddr, idx: usize, source_ips: u32) -> io::Result<TcpStream> {
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if source_ips > 0 && addr.is_ipv4() {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let last = (2 + idx % source_ips as usize) as u8;
        sock.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0))?;
    }
    let s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// `connect`, up to 3 tries (each within `timeout`); a try that finds no free port
/// (EADDRNOTAVAIL) moves on to the next source address.
pub async fn connect_retry(
    addr: SocketAddr,
    idx: usize,
    source_ips: u32,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let mut last = None;
    for attempt in 0..3 {
        let i = idx + attempt * 7919;
        match tokio::time::timeout(timeout, connect(addr, i, source_ips)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => {
                if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && source_ips == 0 {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{e} (out of ephemeral ports: use --source-ips N)"),
                    ));
                }
                last = Some(e);
            }
            Err(_) => last = Some(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    Err(last.unwrap())
}

/// Raises RLIMIT_NOFILE to its hard limit; returns (soft, hard) after.
pub fn raise_nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls with a valid rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        let want = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            r = want;
        }
    }
    (r.rlim_cur as u64, r.rlim_max as u64)
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// User + system CPU seconds of `pid` (all its threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks as f64 / hz)
}

/// This process's user + system CPU seconds.
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}
