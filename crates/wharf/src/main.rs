//! The `wharf` binary: command line, configuration, logging, and wiring the
//! static-file service (`wharf-files`) to the transports (`wharf-server`).

mod cli;
mod config;
mod tls;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use http::Request;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use wharf_files::Files;
use wharf_server::{AccessLog, Listener, LogFormat, Mode, RequestBody, Shutdown};
use wharf_tls::Acceptor;

use crate::cli::{Cli, Command, ServeArgs};
use crate::config::{line_of, Config, ConfigError, Step};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args, cli.data_dir),
        Command::CheckConfig { file } => check_config(&file),
        Command::Ca(cmd) => tls::ca_command(cmd, &tls::data_dir(cli.data_dir, None)),
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
    println!(
        "{}: ok ({} site(s), {} listener(s))",
        file.display(),
        cfg.sites.len(),
        cfg.listen.len()
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
            cfg.sites.push(site);
        }
        (None, false) => {}
    }
    if args.tls {
        cfg.tls.listen = if args.listen.is_empty() {
            vec![std::net::SocketAddr::from(([127, 0, 0, 1], 8443))]
        } else {
            args.listen.clone()
        };
        cfg.listen.clear();
    } else if !args.listen.is_empty() {
        cfg.listen.clone_from(&args.listen);
    }
    if args.explain {
        cfg.sites.iter_mut().for_each(|s| s.explain = true);
    }
    if let Some(f) = args.access_log {
        cfg.log.access = f.into();
    }
    Ok((cfg, src))
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
    let (cfg, src) = effective_config(&args)?;
    init_logging(&cfg);
    let files = build_files(&cfg, args.config.as_deref().zip(src.as_deref()))?;
    let tls = if cfg.tls.listen.is_empty() {
        None
    } else {
        let setup = tls::setup(&cfg, &tls::data_dir(data_dir, Some(&cfg)))?;
        if let Some((names, root)) = &setup.issued {
            println!("{}", tls::trust_hint(names, root));
        }
        Some(setup.acceptor)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ConfigError(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run(cfg, files, tls))
}

/// Binds `addr`; prints what it serves.
async fn bind(
    addr: &std::net::SocketAddr,
    scheme: &str,
    what: &str,
) -> Result<tokio::net::TcpListener, ConfigError> {
    let fail = |e: std::io::Error| ConfigError(format!("listen {addr}: {e}"));
    let l = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
    let local = l.local_addr().map_err(fail)?;
    println!("wharf: listening on {scheme}://{local}/ ({what})");
    Ok(l)
}

async fn run(cfg: Config, files: Files, tls: Option<Arc<Acceptor>>) -> Result<(), ConfigError> {
    let (mut signals, hup) = Signals::install()?;
    let service = Arc::new(FileService(files));
    let shutdown = Shutdown::new();
    let mut listeners = Vec::new();
    let mut https_port = None;
    let http3 = cfg.http.http3 && tls.as_ref().is_some_and(|a| a.quic_client_auth().is_some());
    if cfg.http.http3 && !http3 && tls.is_some() {
        tracing::warn!("HTTP/3 is off: {}", wharf_tls::TlsError::MixedClientAuth);
    }
    for addr in &cfg.tls.listen {
        let acceptor = tls.clone().expect("built when TLS listeners exist");
        let what = if http3 {
            "HTTP/1.1, HTTP/2, HTTP/3"
        } else {
            "HTTP/1.1, HTTP/2"
        };
        let tcp = bind(addr, "https", what).await?;
        let local = tcp
            .local_addr()
            .map_err(|e| ConfigError(format!("listen {addr}: {e}")))?;
        https_port = https_port.or(Some(local.port()));
        // HTTP/3 takes the same port over UDP.
        let quic = if http3 {
            Some(
                std::net::UdpSocket::bind(local)
                    .map_err(|e| ConfigError(format!("listen {local} (UDP, HTTP/3): {e}")))?,
            )
        } else {
            None
        };
        listeners.push(Listener {
            tcp,
            mode: Mode::Tls {
                acceptor,
                alt_svc: None,
            },
            quic,
        });
    }
    let redirect = https_port.filter(|_| cfg.tls.redirect);
    for addr in &cfg.listen {
        let what = if redirect.is_some() {
            "redirects to HTTPS"
        } else {
            "HTTP/1.1, h2c"
        };
        listeners.push(Listener {
            tcp: bind(addr, "http", what).await?,
            mode: Mode::Cleartext { redirect },
            quic: None,
        });
    }
    for site in &cfg.sites {
        let names: Vec<String> = site.names.iter().map(ToString::to_string).collect();
        let default = if site.default { " (default site)" } else { "" };
        println!(
            "wharf:   serving {} for [{}]{default}",
            site.root.display(),
            names.join(", ")
        );
    }
    let mut background = tokio::task::JoinSet::new();
    if let Some(acceptor) = &tls {
        background.spawn(tls::reload_on_sighup(hup, acceptor.clone()));
        background.spawn(acceptor.clone().watch(cfg.tls.watch_interval));
    }
    let log = AccessLog {
        format: cfg.log.access,
    };
    let server = tokio::spawn(wharf_server::serve(
        listeners,
        service,
        cfg.limits.clone(),
        cfg.http.clone(),
        log,
        shutdown.clone(),
    ));
    signals.stop().await;
    background.abort_all();
    tracing::info!(grace = ?cfg.shutdown_grace, "shutting down: no new connections; draining requests in flight");
    shutdown.trigger();
    let _ = server.await;
    if shutdown.drained(cfg.shutdown_grace).await {
        tracing::info!("shutdown complete");
    } else {
        tracing::warn!("grace period over: closing the remaining connections");
    }
    Ok(())
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

/// Access lines go to stdout as they are; diagnostics to stderr with time and level.
fn init_logging(cfg: &Config) {
    let access = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target() == "wharf::access"
        }));
    let diag_filter = EnvFilter::try_new(&cfg.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let diagnostics = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target() != "wharf::access"
        }))
        .with_filter(diag_filter);
    let on = cfg.log.access != LogFormat::Off;
    tracing_subscriber::registry()
        .with(on.then_some(access))
        .with(diagnostics)
        .init();
}

/// The file service as a transport-facing [`wharf_server::Service`].
struct FileService(Files);

impl wharf_server::Service for FileService {
    type Body = wharf_files::Body;

    async fn call(&self, req: Request<RequestBody>) -> http::Response<Self::Body> {
        // Transports box each request's future (HTTP/1.1) or hold it in a per-stream
        // slot (HTTP/2, HTTP/3), so idle connections keep no room for it.
        self.0.serve(&req).await
    }
}
