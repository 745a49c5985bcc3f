//! The `wharf` binary: command line, configuration, logging, and wiring the
//! static-file service (`wharf-files`) to the transports (`wharf-server`).

mod app;
mod cli;
mod config;
mod ftp;
mod tls;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use wharf_files::Files;
use wharf_server::{AccessLog, Listener, Mode, Shutdown};
use wharf_tls::Acceptor;

use crate::cli::{Cli, Command, FrontArgs, ProxyArgs, ServeArgs};
use crate::config::{line_of, Config, ConfigError, Listen, Step};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args, cli.data_dir),
        Command::Proxy(args) => proxy(args, cli.data_dir),
        Command::CheckConfig { file } => check_config(&file),
        Command::Ca(cmd) => tls::ca_command(cmd, &tls::data_dir(cli.data_dir, None)),
        Command::FtpUser(cmd) => ftp::user_command(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wharf: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `wharf check-config FILE`: everything `serve` would check before listening.
fn check_config(file: &std::path::Path) -> Result<(), ConfigError> {
    let (cfg, src) = Config::load(file)?;
    build_files(&cfg, Some((file, &src)))?;
    ftp::check(&cfg)?;
    println!(
        "{}: ok ({} site(s), {} listener(s))",
        file.display(),
        cfg.sites.len(),
        cfg.listen.len() + cfg.tls.listen.len()
    );
    Ok(())
}

/// The configuration `serve` runs with: the file's, then the command line's overrides.
fn effective_config(args: &ServeArgs) -> Result<(Config, Option<String>), ConfigError> {
    let (mut cfg, src) = match &args.config {
        Some(path) => {
            let (cfg, src) = Config::load(path)?;
            (cfg, Some(src))
        }
        None => (Config::default(), None),
    };
    match (&args.dir, cfg.sites.is_empty()) {
        (Some(_), false) => {
            return Err(ConfigError(
                "give either DIR or [[site]] tables in the config, not both".into(),
            ));
        }
        (dir, true) => {
            let mut site = wharf_files::SiteConfig::new(dir.clone().unwrap_or_else(|| ".".into()));
            site.listing = args.listing;
            site.file_events = true; // live reload through the hub's `_files` channel
            cfg.sites.push(site);
        }
        (None, false) => {}
    }
    apply_front(&mut cfg, &args.front);
    if !args.ftp_listen.is_empty() {
        cfg.ftp.listen = args.ftp_listen.clone();
    }
    if !args.ftp_implicit_listen.is_empty() {
        cfg.ftp.implicit_listen = args.ftp_implicit_listen.clone();
    }
    if let Some(path) = &args.ws_echo {
        if !path.starts_with('/') {
            return Err(ConfigError(format!(
                "--ws-echo {path}: must start with / (a request path)"
            )));
        }
        cfg.websocket
            .push(config::WebSocketConfig::echo(path.clone()));
    }
    Ok((cfg, src))
}

/// The listeners, explanations and access log the command line asks for.
fn apply_front(cfg: &mut Config, front: &FrontArgs) {
    let listen = match front.port {
        Some(port) => Some(Listen::Loopback(port)),
        None if front.listen.is_empty() => None,
        None => Some(Listen::Addrs(front.listen.clone())),
    };
    if front.tls {
        cfg.tls.listen = listen.unwrap_or(Listen::Loopback(config::DEFAULT_HTTPS_PORT));
        cfg.listen = Listen::Addrs(Vec::new());
    } else if let Some(listen) = listen {
        cfg.listen = listen;
    }
    if front.explain {
        cfg.sites.iter_mut().for_each(|s| s.explain = true);
    }
    if let Some(f) = front.access_log {
        cfg.log.access = f.into();
    }
}

/// The configuration of `wharf proxy`: every request to the upstreams, with the
/// `[proxy]` settings (and listeners, TLS, limits, logging) of `--config`. Sites are
/// never reached by a request; they only name the certificates (without any, a
/// default site stands for localhost's automatic certificate with `--tls`).
fn proxy_config(args: &ProxyArgs) -> Result<Config, ConfigError> {
    let upstreams = args
        .to
        .iter()
        .map(|u| wharf_proxy::Upstream::parse(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError(format!("--to {e}")))?;
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?.0,
        None => Config::default(),
    };
    if cfg.sites.is_empty() {
        cfg.sites.push(wharf_files::SiteConfig::new("."));
    }
    cfg.hub.enabled = false;
    apply_front(&mut cfg, &args.front);
    let mut proxy = cfg
        .proxy_settings
        .proxy(vec![wharf_proxy::GroupConfig::new("default", upstreams)]);
    if args.change_host {
        proxy.host = wharf_proxy::HostHeader::Upstream;
    }
    if args.cache && proxy.cache.is_none() {
        proxy.cache = Some(wharf_proxy::CacheConfig::default());
    }
    cfg.proxy = Some(proxy);
    cfg.proxy_everything = true;
    Ok(cfg)
}

fn build_files(cfg: &Config, src: Option<(&std::path::Path, &str)>) -> Result<Files, ConfigError> {
    Files::new(&cfg.sites, cfg.file_cache).map_err(|e| {
        let place = src
            .and_then(|(path, text)| {
                Some(format!(
                    "{}: line {}: ",
                    path.display(),
                    line_of(
                        text,
                        &[Step::Key("site"), Step::Index(e.site), Step::Key(e.setting)]
                    )?
                ))
            })
            .unwrap_or_default();
        ConfigError(format!(
            "{place}site[{}].{}: {} ({})",
            e.site, e.setting, e.message, e.root
        ))
    })
}

fn serve(args: ServeArgs, data_dir: Option<std::path::PathBuf>) -> Result<(), ConfigError> {
    let (mut cfg, src) = effective_config(&args)?;
    cfg.build_proxy();
    init_logging(&cfg);
    let files = build_files(&cfg, args.config.as_deref().zip(src.as_deref()))?;
    start(cfg, files, data_dir, &args.ftp_user)
}

fn proxy(args: ProxyArgs, data_dir: Option<std::path::PathBuf>) -> Result<(), ConfigError> {
    let cfg = proxy_config(&args)?;
    init_logging(&cfg);
    let files = build_files(&cfg, None)?;
    start(cfg, files, data_dir, &[])
}

/// Sets up TLS and FTP as configured, starts the runtime and runs until a signal.
fn start(
    cfg: Config,
    files: Files,
    data_dir: Option<std::path::PathBuf>,
    ftp_users: &[String],
) -> Result<(), ConfigError> {
    let f = &cfg.ftp;
    let ftp_tls = !f.implicit_listen.is_empty() || f.require_tls || f.require_tls_data;
    let (tls, ftp_acceptor) = if cfg.tls.listen.is_empty() && !ftp_tls {
        (None, None)
    } else {
        let setup = tls::setup(&cfg, &tls::data_dir(data_dir, Some(&cfg)))?;
        if let Some((names, root)) = &setup.issued {
            println!("{}", tls::trust_hint(names, root));
        }
        let http = (!cfg.tls.listen.is_empty()).then_some(setup.acceptor);
        (http, Some(setup.ftp))
    };
    let ftp = ftp::settings(&cfg, ftp_users, ftp_acceptor)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ConfigError(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run(cfg, files, tls, ftp))
}

/// The event loops the HTTP connections of a server that proxies live on: one per
/// CPU the process may run on, as many as the runtime has worker threads but no
/// more than CPUs, or none on a single CPU. Without them (and always for a server
/// of files alone) the work-stealing runtime serves the connections;
/// ARCHITECTURE.md says why.
fn event_loops() -> Result<Option<Arc<wharf_server::Loops>>, ConfigError> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return Ok(None);
    }
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    wharf_server::Loops::start(workers.min(cpus))
        .map(Some)
        .map_err(|e| ConfigError(format!("cannot start the event loops: {e}")))
}

/// One bound address: its TCP listener and, for HTTP/3, the UDP socket on the same
/// address and port.
struct Bound {
    tcp: tokio::net::TcpListener,
    udp: Option<std::net::UdpSocket>,
    local: SocketAddr,
}

/// Why an address could not be bound.
struct BindError {
    addr: SocketAddr,
    udp: bool,
    error: std::io::Error,
}

impl From<BindError> for ConfigError {
    fn from(e: BindError) -> ConfigError {
        let what = if e.udp { " (UDP, HTTP/3)" } else { "" };
        ConfigError(format!("listen {}{what}: {}", e.addr, e.error))
    }
}

/// Connections the kernel queues before wharf accepts them (capped by
/// `net.core.somaxconn`). The usual default of 128 overflowed when ten thousand hub
/// clients (re)connected at once: a browser reconnecting after a restart waits a
/// SYN retransmission (a second or more) for every overflow.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds TCP on `addr` and, with `udp`, UDP on the same address and port.
async fn bind_one(addr: SocketAddr, udp: bool) -> Result<Bound, BindError> {
    let fail = |addr, udp| move |error| BindError { addr, udp, error };
    let tcp = listen_tcp(addr).map_err(fail(addr, false))?;
    let local = tcp.local_addr().map_err(fail(addr, false))?;
    let udp = match udp {
        true => Some(std::net::UdpSocket::bind(local).map_err(fail(local, true))?),
        false => None,
    };
    Ok(Bound { tcp, udp, local })
}

/// A TCP listener on `addr` (address reuse on, as `TcpListener::bind` does) with
/// [`LISTEN_BACKLOG`].
fn listen_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds every address of `listen`: TCP, and with `udp` UDP on the same port.
async fn bind_all(listen: &Listen, udp: bool) -> Result<Vec<Bound>, ConfigError> {
    match listen {
        Listen::Addrs(addrs) => {
            let mut bound = Vec::with_capacity(addrs.len());
            for addr in addrs {
                bound.push(bind_one(*addr, udp).await?);
            }
            Ok(bound)
        }
        Listen::Loopback(port) => bind_loopback(*port, udp).await,
    }
}

/// Binds `localhost`: 127.0.0.1 and [::1] on `port` (port 0: one free port for
/// both). [::1] is left out, with a warning, where the machine has no IPv6.
async fn bind_loopback(port: u16, udp: bool) -> Result<Vec<Bound>, ConfigError> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    // With port 0 the system picks 127.0.0.1's port; another program may hold it
    // on [::1] (or over UDP). Then try another.
    let mut attempts = if port == 0 { 32 } else { 1 };
    loop {
        attempts -= 1;
        let retry = |e: &BindError| attempts > 0 && e.error.kind() == ErrorKind::AddrInUse;
        let v4 = match bind_one((Ipv4Addr::LOCALHOST, port).into(), udp).await {
            Ok(b) => b,
            Err(e) if retry(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        let v6_addr = SocketAddr::from((Ipv6Addr::LOCALHOST, v4.local.port()));
        match bind_one(v6_addr, udp).await {
            Ok(v6) => return Ok(vec![v4, v6]),
            Err(e) if no_ipv6(&e.error) => {
                tracing::warn!(
                    error = %e.error,
                    "no IPv6 loopback: listening on {} only, not on {v6_addr}",
                    v4.local
                );
                return Ok(vec![v4]);
            }
            Err(e) if retry(&e) => continue,
            Err(e) => {
                let ConfigError(msg) = e.into();
                return Err(ConfigError(format!(
                    "{msg} (by default wharf listens on both 127.0.0.1 and [::1]; \
                     --listen {} listens on the first only)",
                    v4.local
                )));
            }
        }
    }
}

/// True when `e` says the machine has no IPv6 loopback: the address is not
/// configured (IPv6 disabled on `lo`), or the kernel has no IPv6 at all.
fn no_ipv6(e: &std::io::Error) -> bool {
    /// Linux's EAFNOSUPPORT, which `std::io::ErrorKind` does not name.
    const EAFNOSUPPORT: i32 = 97;
    e.kind() == ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(EAFNOSUPPORT)
}

async fn run(
    cfg: Config,
    files: Files,
    tls: Option<Arc<Acceptor>>,
    ftp: Option<wharf_ftp::Config>,
) -> Result<(), ConfigError> {
    let (mut signals, hup) = Signals::install()?;
    let shutdown = Shutdown::new();
    let app = app::App::new(files, &cfg, shutdown.token()).await;
    let service = Arc::new(app.map_err(ConfigError)?);
    app::App::publish_file_events(&service, &cfg);
    let mut listeners = Vec::new();
    let mut https_port = None;
    let http3 = cfg.http.http3 && tls.as_ref().is_some_and(|a| a.quic_client_auth().is_some());
    if cfg.http.http3 && !http3 && tls.is_some() {
        tracing::warn!("HTTP/3 is off: {}", wharf_tls::TlsError::MixedClientAuth);
    }
    // HTTP/3 takes the same port over UDP.
    for bound in bind_all(&cfg.tls.listen, http3).await? {
        let acceptor = tls.clone().expect("built when TLS listeners exist");
        let what = if http3 {
            "HTTP/1.1, HTTP/2, HTTP/3"
        } else {
            "HTTP/1.1, HTTP/2"
        };
        println!("wharf: listening on https://{}/ ({what})", bound.local);
        https_port = https_port.or(Some(bound.local.port()));
        listeners.push(Listener {
            tcp: bound.tcp,
            mode: Mode::Tls {
                acceptor,
                alt_svc: None,
            },
            quic: bound.udp,
        });
    }
    let redirect = https_port.filter(|_| cfg.tls.redirect);
    for bound in bind_all(&cfg.listen, false).await? {
        let what = if redirect.is_some() {
            "redirects to HTTPS"
        } else {
            "HTTP/1.1, h2c"
        };
        println!("wharf: listening on http://{}/ ({what})", bound.local);
        listeners.push(Listener {
            tcp: bound.tcp,
            mode: Mode::Cleartext { redirect },
            quic: None,
        });
    }
    let members = |g: &wharf_proxy::GroupConfig| {
        let to: Vec<String> = g.members.iter().map(|(u, _)| u.to_string()).collect();
        to.join(", ")
    };
    match &cfg.proxy {
        Some(p) if cfg.proxy_everything => {
            let cache = match &p.cache {
                Some(c) => format!(", shared cache of {} MiB", c.max_bytes >> 20),
                None => String::new(),
            };
            println!(
                "wharf:   proxying to {} (round robin{cache})",
                members(&p.groups[0])
            );
        }
        _ => {
            for site in &cfg.sites {
                println!("wharf:   {}", serving(site));
                for route in &site.proxy {
                    let group = cfg
                        .proxy
                        .iter()
                        .flat_map(|p| &p.groups)
                        .find(|g| g.name == route.upstream);
                    let to = group.map(members).unwrap_or_default();
                    println!(
                        "wharf:     {}* proxied to upstream {} ({to})",
                        route.path, route.upstream
                    );
                }
            }
        }
    }
    if let Some(line) = app::hub_line(&cfg) {
        println!("wharf:   {line}");
    }
    let mut acceptors: Vec<Arc<Acceptor>> = tls.iter().cloned().collect();
    acceptors.extend(ftp.as_ref().and_then(|f| f.tls.clone()));
    let ftp_server = match ftp {
        Some(settings) => Some(start_ftp(&cfg, settings, &service, &shutdown).await?),
        None => None,
    };
    let mut background = tokio::task::JoinSet::new();
    for acceptor in &acceptors {
        background.spawn(acceptor.clone().watch(cfg.tls.watch_interval));
    }
    if !acceptors.is_empty() {
        background.spawn(tls::reload_on_sighup(hup, acceptors));
    }
    let log = AccessLog {
        format: cfg.log.access,
    };
    let loops = match cfg.proxy {
        Some(_) => event_loops()?,
        None => None,
    };
    let server = tokio::spawn(wharf_server::serve(
        listeners,
        service,
        cfg.limits.clone(),
        cfg.http.clone(),
        log,
        shutdown.clone(),
        loops.clone(),
    ));
    signals.stop().await;
    background.abort_all();
    tracing::info!(grace = ?cfg.shutdown_grace, "shutting down: no new connections; draining requests in flight");
    let deadline = tokio::time::Instant::now() + cfg.shutdown_grace;
    shutdown.trigger();
    let _ = server.await;
    let ftp_drained = match ftp_server {
        Some((ftp, mut task)) => match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                // Transfers still running are stopped; their sessions then end.
                ftp.abort_transfers();
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
                false
            }
        },
        None => true,
    };
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if shutdown.drained(left).await && ftp_drained {
        tracing::info!("shutdown complete");
    } else {
        tracing::warn!("grace period over: closing the remaining connections");
    }
    Ok(())
}

/// Binds the FTP listeners and starts the FTP server; its task ends once shutdown is
/// triggered and its sessions have finished.
async fn start_ftp(
    cfg: &Config,
    mut settings: wharf_ftp::Config,
    app: &Arc<app::App>,
    shutdown: &Shutdown,
) -> Result<(Arc<wharf_ftp::Server>, tokio::task::JoinHandle<()>), ConfigError> {
    let app = app.clone();
    settings.on_change = Some(ftp::on_change(cfg, move |site, rel| {
        app.files.changed(site, rel)
    }));
    let explicit = if settings.tls.is_some() {
        "FTP, explicit FTPS"
    } else {
        "FTP"
    };
    let root = settings.root.display().to_string();
    let server = wharf_ftp::Server::new(settings).map_err(|e| ConfigError(e.to_string()))?;
    let mut listeners = Vec::new();
    let listens = [(&cfg.ftp.listen, false), (&cfg.ftp.implicit_listen, true)];
    for (addrs, implicit_tls) in listens {
        for addr in addrs {
            let tcp =
                listen_tcp(*addr).map_err(|e| ConfigError(format!("ftp listen {addr}: {e}")))?;
            let local = tcp
                .local_addr()
                .map_err(|e| ConfigError(format!("ftp listen {addr}: {e}")))?;
            match implicit_tls {
                false => println!("wharf: listening on ftp://{local}/ ({explicit})"),
                true => println!("wharf: listening on ftps://{local}/ (implicit FTPS)"),
            }
            listeners.push(wharf_ftp::Listener { tcp, implicit_tls });
        }
    }
    println!("wharf:   FTP serving {root}");
    let server = Arc::new(server);
    let task = tokio::spawn(server.clone().run(listeners, shutdown.token()));
    Ok((server, task))
}

/// What a site serves, for whom: `serving ROOT for a.test, *.b.test`.
fn serving(site: &wharf_files::SiteConfig) -> String {
    let root = site.root.display();
    let names: Vec<String> = site.names.iter().map(ToString::to_string).collect();
    let names = names.join(", ");
    match (names.is_empty(), site.default) {
        (true, true) => format!("serving {root} (default site, any host)"),
        (false, true) => format!("serving {root} for {names} (default site: also any other host)"),
        (false, false) => format!("serving {root} for {names}"),
        // Refused by `Files::new`: no request could reach it.
        (true, false) => format!("serving {root} for no host"),
    }
}

/// The signals wharf handles, installed before it listens: a signal that arrives
/// as soon as the address is printed must not find the default action (death).
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    /// SIGINT and SIGTERM (stop), and SIGHUP (reload certificates).
    fn install() -> Result<(Signals, Signal), ConfigError> {
        let on = |kind| {
            signal(kind).map_err(|e| ConfigError(format!("cannot install signal handlers: {e}")))
        };
        let stop = Signals {
            int: on(SignalKind::interrupt())?,
            term: on(SignalKind::terminate())?,
        };
        Ok((stop, on(SignalKind::hangup())?))
    }

    /// SIGINT or SIGTERM.
    async fn stop(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Diagnostics go to stderr with time and level, in colour only for a person at a
/// terminal (see [`colour`]); access lines are written to stdout by the transports
/// (`wharf_server::access_log`).
fn init_logging(cfg: &Config) {
    use std::io::IsTerminal;
    let diag_filter = EnvFilter::try_new(diagnostics_filter(&cfg.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let diagnostics = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_filter(diag_filter);
    tracing_subscriber::registry().with(diagnostics).init();
}

/// The configured filter, with rustls's warning about an IP address sent as a TLS
/// server name lowered to `error` unless the filter names rustls itself: curl and lftp
/// send one whenever they connect to an address (RFC 6066 §3 forbids it), the handshake
/// goes on without it, and one line per connection buried the warnings that matter.
fn diagnostics_filter(level: &str) -> String {
    if level.contains("rustls") {
        level.to_owned()
    } else {
        format!("{level},rustls::msgs::handshake=error")
    }
}

/// Whether diagnostics are coloured: only on a terminal (not in files, pipes or
/// journals, where escape codes are noise), and never when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cleartext and TLS listeners `wharf serve ARGS` binds.
    fn listeners(args: &[&str]) -> (Listen, Listen) {
        let cli = Cli::try_parse_from([&["wharf", "serve"], args].concat()).unwrap();
        let Command::Serve(args) = cli.command else {
            unreachable!("a serve command")
        };
        let (cfg, _) = effective_config(&args).unwrap();
        (cfg.listen, cfg.tls.listen)
    }

    #[test]
    fn without_addresses_wharf_listens_on_both_loopbacks() {
        let none = || Listen::Addrs(Vec::new());
        let addr = |a: &str| Listen::Addrs(vec![a.parse().unwrap()]);
        let table: [(&[&str], Listen, Listen); 6] = [
            (&[], Listen::Loopback(8080), none()),
            (&["--tls"], none(), Listen::Loopback(8443)),
            (&["--port", "9000"], Listen::Loopback(9000), none()),
            (&["--tls", "--port", "0"], none(), Listen::Loopback(0)),
            (&["--listen", "127.0.0.1:80"], addr("127.0.0.1:80"), none()),
            (
                &["--tls", "--listen", "[::1]:443"],
                none(),
                addr("[::1]:443"),
            ),
        ];
        for (args, cleartext, tls) in table {
            assert_eq!(listeners(args), (cleartext, tls), "{args:?}");
        }
        let both = Cli::try_parse_from(["wharf", "serve", "--port", "1", "--listen", "[::1]:1"]);
        assert!(both.is_err(), "--port and --listen together");
    }

    #[test]
    fn the_startup_line_names_root_and_hosts() {
        let site = |names: &[&str], default| {
            let mut s = wharf_files::SiteConfig::new("www");
            s.names = names
                .iter()
                .map(|n| wharf_files::config::ServerName::new(n).unwrap())
                .collect();
            s.default = default;
            serving(&s)
        };
        assert_eq!(site(&[], true), "serving www (default site, any host)");
        assert_eq!(
            site(&["a.test", "*.b.test"], true),
            "serving www for a.test, *.b.test (default site: also any other host)"
        );
        assert_eq!(site(&["a.test"], false), "serving www for a.test");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(
            colour(true, Some(OsStr::new(""))),
            "empty NO_COLOR is unset"
        );
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new(""))));
    }

    #[test]
    fn rustls_ip_server_name_warnings_are_quiet_unless_asked_for() {
        assert_eq!(
            diagnostics_filter("info"),
            "info,rustls::msgs::handshake=error"
        );
        assert_eq!(diagnostics_filter("rustls=debug"), "rustls=debug");
        assert!(EnvFilter::try_new(diagnostics_filter("wharf=debug,info")).is_ok());
    }

    #[test]
    fn no_ipv6_is_a_missing_address_or_family_not_a_taken_port() {
        use std::io::Error;
        assert!(no_ipv6(&Error::from(ErrorKind::AddrNotAvailable)));
        assert!(no_ipv6(&Error::from_raw_os_error(97))); // EAFNOSUPPORT
        assert!(!no_ipv6(&Error::from(ErrorKind::AddrInUse)));
        assert!(!no_ipv6(&Error::from(ErrorKind::PermissionDenied)));
    }
}
