//! HTTPS setup: each site's certificate (its own files, or one issued by the local CA),
//! `wharf ca` commands, and reloads on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_files::{ClientAuthMode, SiteConfig};
use wharf_tls::ca::{LeafRequest, Usage, LEAF_DAYS};
use wharf_tls::{Acceptor, CertSource, ClientAuth, LocalCa, SiteTls};

use crate::cli::CaCommand;
use crate::config::{Config, ConfigError};

/// The names every automatic certificate covers, so `https://localhost` and the
/// loopback addresses work out of the box.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The data directory: the command line's (or `WHARF_DATA_DIR`), the config's, or
/// the default.
pub(crate) fn data_dir(cli: Option<PathBuf>, cfg: Option<&Config>) -> PathBuf {
    cli.or_else(|| cfg.and_then(|c| c.data_dir.clone()))
        .unwrap_or_else(LocalCa::default_data_dir)
}

/// The acceptor of the TLS listeners, with what the operator should be told.
pub(crate) struct Setup {
    pub(crate) acceptor: Arc<Acceptor>,
    /// The same certificates for FTPS (ALPN `ftp`).
    pub(crate) ftp: Arc<Acceptor>,
    /// Set when wharf issued a certificate: the names and the root to trust.
    pub(crate) issued: Option<(Vec<String>, PathBuf)>,
}

/// Builds the acceptor for `cfg`'s sites; sites without a certificate share one
/// issued by the local CA (created on first use).
pub(crate) fn setup(cfg: &Config, data_dir: &Path) -> Result<Setup, ConfigError> {
    let need_auto: Vec<&SiteConfig> = cfg.sites.iter().filter(|s| s.tls.cert.is_none()).collect();
    let mut issued = None;
    let auto = if need_auto.is_empty() {
        None
    } else {
        let mut names: Vec<String> = LOCAL_NAMES.iter().map(|n| n.to_string()).collect();
        for site in &need_auto {
            for n in &site.names {
                let n = n.to_string();
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        let ca = LocalCa::new(data_dir);
        ca.init()
            .map_err(|e| ConfigError(format!("local CA: {e}")))?;
        let leaf = ca
            .issue(&LeafRequest::new(names.clone(), Usage::Server, LEAF_DAYS))
            .map_err(|e| ConfigError(format!("local CA: {e}")))?;
        issued = Some((names, ca.root_path()));
        Some(CertSource::Pem {
            chain: leaf.chain_pem,
            key: leaf.key_pem,
        })
    };
    let sites: Vec<SiteTls> = cfg
        .sites
        .iter()
        .map(|s| SiteTls {
            names: s.names.iter().map(ToString::to_string).collect(),
            default: s.default,
            cert: match (&s.tls.cert, &s.tls.key) {
                (Some(chain), Some(key)) => CertSource::Files {
                    chain: chain.clone(),
                    key: key.clone(),
                },
                _ => auto
                    .clone()
                    .expect("issued for sites without a certificate"),
            },
            client_auth: match (s.tls.client_auth, s.tls.client_ca.clone()) {
                (ClientAuthMode::Optional, Some(ca)) => ClientAuth::Optional(ca),
                (ClientAuthMode::Required, Some(ca)) => ClientAuth::Required(ca),
                _ => ClientAuth::Off,
            },
        })
        .collect();
    let acceptor = |alpn: &[&[u8]]| {
        Acceptor::new(
            sites.clone(),
            alpn.iter().map(|p| p.to_vec()).collect(),
            cfg.limits.tls_handshake_timeout,
        )
        .map(Arc::new)
        .map_err(|e| ConfigError(format!("TLS: {e}")))
    };
    Ok(Setup {
        acceptor: acceptor(&[b"h2", b"http/1.1"])?,
        ftp: acceptor(&[b"ftp"])?,
        issued,
    })
}

/// Reloads the certificates of every acceptor (HTTPS, FTPS) on SIGHUP, for as long
/// as the task runs.
pub(crate) async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    acceptors: Vec<Arc<Acceptor>>,
) {
    while hup.recv().await.is_some() {
        for acceptor in &acceptors {
            match acceptor.reload() {
                Ok(()) => tracing::info!("SIGHUP: certificates reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: cannot reload certificates; keeping the previous ones")
                }
            }
        }
    }
}

/// `wharf ca ...`.
pub(crate) fn ca_command(cmd: CaCommand, data_dir: &Path) -> Result<(), ConfigError> {
    let ca = LocalCa::new(data_dir);
    let err = |e: wharf_tls::TlsError| ConfigError(format!("local CA: {e}"));
    match cmd {
        CaCommand::Init => {
            let created = ca.init().map_err(err)?;
            let what = if created { "created" } else { "already exists" };
            println!(
                "wharf: local CA {what}: root certificate {}",
                ca.root_path().display()
            );
        }
        CaCommand::Path => {
            if !ca.exists() {
                return Err(ConfigError(format!(
                    "no local CA in {} (run `wharf ca init`)",
                    data_dir.display()
                )));
            }
            println!("{}", ca.root_path().display());
        }
        CaCommand::Issue {
            names,
            client,
            days,
            out,
        } => {
            if ca.init().map_err(err)? {
                println!(
                    "wharf: local CA created: root certificate {}",
                    ca.root_path().display()
                );
            }
            let usage = if client { Usage::Client } else { Usage::Server };
            let leaf = ca
                .issue(&LeafRequest::new(names.clone(), usage, days))
                .map_err(err)?;
            let stem = names[0].replace('*', "_wildcard").replace([':', '/'], "_");
            let cert = out.join(format!("{stem}.pem"));
            let key = out.join(format!("{stem}-key.pem"));
            wharf_tls::ca::write_public(&cert, &leaf.chain_pem).map_err(err)?;
            wharf_tls::ca::write_private(&key, &leaf.key_pem).map_err(err)?;
            println!(
                "wharf: issued {} certificate for {}\n  certificate chain: {}\n  private key:       {}\n  root to trust:     {}",
                if client { "a client" } else { "a server" },
                names.join(", "),
                cert.display(),
                key.display(),
                ca.root_path().display()
            );
        }
    }
    Ok(())
}

/// How to trust the local root, printed when wharf issued a certificate.
pub(crate) fn trust_hint(names: &[String], root: &Path) -> String {
    format!(
        "wharf: HTTPS certificate for {} issued by wharf's local CA.\n\
         wharf:   trust it per command:  curl --cacert {root} https://localhost:PORT/\n\
         wharf:   or system-wide (Debian): sudo cp {root} /usr/local/share/ca-certificates/wharf-local-root.crt && sudo update-ca-certificates",
        names.join(", "),
        root = root.display()
    )
}
