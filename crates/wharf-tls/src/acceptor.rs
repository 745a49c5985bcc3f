//! Handshakes: the configuration for a connection is chosen from its ClientHello's
//! server name (SNI), so each site has its own certificate chain and its own client
//! authentication.
//!
//! Sites with the same certificate and the same client authentication share one
//! configuration (a *group*). A transport remembers the group of each connection and
//! answers 421 to a request whose host belongs to another group: otherwise a client
//! could complete a handshake for a site without client authentication and then
//! address one that requires it.
//!
//! Reloads (SIGHUP, or changed files) build every configuration afresh and swap them
//! in; established connections keep the one they started with. A reload that fails
//! keeps the previous configurations and reports why. Session resumption (tickets and
//! a session cache) survives reloads, shared by every group.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;
use wharf_http::conn::TlsInfo;
use wharf_http::host::Router;

use crate::TlsError;

/// Sessions kept for resumption by session ID (TLS 1.2) and stateful tickets.
const SESSION_CACHE: usize = 16 * 1024;

/// One site's TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteTls {
    /// Host names (exact, or `*.suffix`), as for the site itself.
    pub names: Vec<String>,
    /// Whether this site answers clients that send no (or an unknown) server name.
    pub default: bool,
    /// Where the certificate chain and key come from.
    pub cert: CertSource,
    /// Whether clients must present a certificate.
    pub client_auth: ClientAuth,
}

/// A certificate chain and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files, re-read on every reload.
    Files {
        /// The leaf followed by its intermediates.
        chain: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// PEM text (a certificate wharf issued itself).
    Pem {
        /// The leaf followed by its intermediates.
        chain: String,
        /// The private key.
        key: String,
    },
}

/// Client authentication (mutual TLS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates are asked for.
    #[default]
    Off,
    /// A certificate is asked for; a client without one is let in, one with a
    /// certificate that does not chain to `ca` is refused.
    Optional(PathBuf),
    /// Clients without a certificate chaining to `ca` are refused in the handshake.
    Required(PathBuf),
}

/// The handshake settings of a listener.
pub struct Acceptor {
    sites: Vec<SiteTls>,
    router: Router,
    /// Site index → group index.
    group_of: Vec<usize>,
    /// Group index → a site of that group (whose settings build its configuration).
    groups: Vec<usize>,
    alpn: Vec<Vec<u8>>,
    configs: RwLock<Arc<Vec<Arc<ServerConfig>>>>,
    resumption: Arc<Resumption>,
    /// The files' timestamps when they were last read (for [`Acceptor::watch`]).
    loaded: std::sync::Mutex<Vec<Stamp>>,
    /// Successful loads so far (see [`Acceptor::generation`]).
    generation: AtomicU64,
    handshake_timeout: Duration,
}

/// A completed handshake.
pub struct Accepted {
    /// The encrypted stream.
    pub stream: TlsStream<TcpStream>,
    /// What services may learn of the session.
    pub info: TlsInfo,
    /// The configuration group chosen by SNI (see [`Acceptor::group_for_host`]).
    pub group: usize,
    /// The protocol agreed by ALPN, if any.
    pub alpn: Option<Vec<u8>>,
}

/// Why a connection did not become a TLS session.
#[derive(Debug)]
pub enum AcceptError {
    /// The client's first byte is not a TLS handshake record: it speaks plaintext. The
    /// stream is handed back so the transport can say so in the client's language.
    NotTls(TcpStream),
    /// The handshake failed (bad ClientHello, no shared version, certificate refused).
    Handshake(std::io::Error),
    /// The client was silent or slow beyond the handshake timeout.
    Timeout,
}

impl Acceptor {
    /// Loads every site's material. `alpn` lists the protocols offered, preferred first.
    pub fn new(
        sites: Vec<SiteTls>,
        alpn: Vec<Vec<u8>>,
        handshake_timeout: Duration,
    ) -> Result<Self, TlsError> {
        let mut router = Router::default();
        let mut group_of = Vec::with_capacity(sites.len());
        let mut groups = Vec::new();
        for (i, site) in sites.iter().enumerate() {
            router
                .add(i, &site.names, site.default)
                .map_err(|name| TlsError::Ca(format!("name {name} is used twice")))?;
            let same = groups.iter().position(|&g: &usize| {
                sites[g].cert == site.cert && sites[g].client_auth == site.client_auth
            });
            group_of.push(same.unwrap_or_else(|| {
                groups.push(i);
                groups.len() - 1
            }));
        }
        let acceptor = Acceptor {
            sites,
            router,
            group_of,
            groups,
            alpn,
            configs: RwLock::new(Arc::new(Vec::new())),
            resumption: Arc::new(Resumption::new()?),
            loaded: std::sync::Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            handshake_timeout,
        };
        acceptor.reload()?;
        Ok(acceptor)
    }

    /// Re-reads every certificate, key and CA bundle; on error keeps the current ones.
    /// Sessions from before a reload cannot be resumed after it: a resumed session
    /// skips certificate checks, and the client CAs may have changed.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = stamps(&self.files());
        let configs = self
            .groups
            .iter()
            .map(|&site| self.build(&self.sites[site]).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        *self.configs.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(configs);
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        self.resumption.rotate()?;
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn build(&self, site: &SiteTls) -> Result<ServerConfig, TlsError> {
        let builder = ServerConfig::builder_with_provider(crate::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match client_verifier(&site.client_auth)? {
            None => builder.with_no_client_auth(),
            Some(verifier) => builder.with_client_cert_verifier(verifier),
        };
        let (chain, key) = site.cert.load()?;
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Pem {
                path: site.cert.describe(),
                message: e.to_string(),
            })?;
        config.alpn_protocols.clone_from(&self.alpn);
        config.ticketer = self.resumption.clone();
        config.session_storage = self.resumption.clone();
        Ok(config)
    }

    /// The files a reload reads (to watch for changes).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for site in &self.sites {
            if let CertSource::Files { chain, key } = &site.cert {
                files.extend([chain.clone(), key.clone()]);
            }
            if let ClientAuth::Optional(ca) | ClientAuth::Required(ca) = &site.client_auth {
                files.push(ca.clone());
            }
        }
        files.sort();
        files.dedup();
        files
    }

    /// How many configuration groups there are; with one, no request can address
    /// another group than its connection's.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The group of the site a host name belongs to, if any site claims it.
    pub fn group_for_host(&self, host: Option<&str>) -> Option<usize> {
        self.router.find(host).ok().map(|site| self.group_of[site])
    }

    /// The group for a ClientHello: its server name's site, the default site, or the
    /// first site (as nginx's first server block).
    fn group_for_sni(&self, sni: Option<&str>) -> usize {
        self.group_for_host(sni).unwrap_or(0)
    }

    /// The current configuration of a group.
    pub fn config_for(&self, group: usize) -> Arc<ServerConfig> {
        self.configs.read().unwrap_or_else(|p| p.into_inner())[group].clone()
    }

    /// The client authentication all sites share, which QUIC can offer; `None` when
    /// sites differ. QUIC has one configuration for all sites, and a handshake asks
    /// for a client certificate before the server learns which site is wanted.
    pub fn quic_client_auth(&self) -> Option<&ClientAuth> {
        let first = &self.sites.first()?.client_auth;
        self.sites
            .iter()
            .all(|s| &s.client_auth == first)
            .then_some(first)
    }

    /// Counts successful loads. A transport holding a configuration built by
    /// [`Acceptor::quic_config`] builds a new one when this changes (client CAs are
    /// read when a configuration is built; certificates are looked up per handshake).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// A TLS 1.3 configuration for QUIC (HTTP/3): ALPN `h3`, each site's certificate
    /// chosen by SNI from the current TCP configurations, the sites' shared client
    /// authentication (see [`Acceptor::quic_client_auth`]).
    ///
    /// 0-RTT is allowed (RFC 9001 §4.6.1 needs `max_early_data_size` of 2^32-1)
    /// unless clients must authenticate: then every request waits for a verified
    /// handshake. Resumption is stateful (session IDs in the server's cache, no
    /// self-contained tickets): rustls accepts early data only then, because each
    /// such ticket can be used once, which keeps a captured 0-RTT flight from being
    /// replayed.
    pub fn quic_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        let auth = self.quic_client_auth().ok_or(TlsError::MixedClientAuth)?;
        let builder = ServerConfig::builder_with_provider(crate::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let builder = match client_verifier(auth)? {
            None => builder.with_no_client_auth(),
            Some(verifier) => builder.with_client_cert_verifier(verifier),
        };
        let mut config = builder.with_cert_resolver(Arc::new(BySni(self.clone())));
        config.alpn_protocols = vec![b"h3".to_vec()];
        config.max_early_data_size = match auth {
            ClientAuth::Off => u32::MAX,
            _ => 0,
        };
        config.session_storage = self.resumption.clone();
        Ok(config)
    }

    /// The verified client identity of a QUIC connection, from quinn's
    /// `peer_identity` (the client's certificate chain).
    pub fn quic_client_identity(
        identity: Option<Box<dyn std::any::Any>>,
    ) -> Option<wharf_http::conn::ClientIdentity> {
        let chain = identity?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
        crate::identity::of(chain.first()?)
    }

    /// The group of a QUIC connection's server name (as for TCP handshakes).
    pub fn group_for_server_name(&self, sni: Option<&str>) -> usize {
        self.group_for_sni(sni)
    }

    /// Runs the handshake on an accepted connection.
    pub async fn accept(&self, tcp: TcpStream) -> Result<Accepted, AcceptError> {
        match tokio::time::timeout(self.handshake_timeout, self.handshake(tcp)).await {
            Ok(r) => r,
            Err(_) => Err(AcceptError::Timeout),
        }
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Accepted, AcceptError> {
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(0) => {
                return Err(AcceptError::Handshake(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ))
            }
            Ok(_) if first[0] != 0x16 => return Err(AcceptError::NotTls(tcp)),
            Ok(_) => {}
            Err(e) => return Err(AcceptError::Handshake(e)),
        }
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
            .await
            .map_err(AcceptError::Handshake)?;
        let sni: Option<Arc<str>> = start.client_hello().server_name().map(Arc::from);
        let group = self.group_for_sni(sni.as_deref());
        let stream = start
            .into_stream(self.config_for(group))
            .await
            .map_err(AcceptError::Handshake)?;
        let conn = stream.get_ref().1;
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLSv1.3",
        };
        let client = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(crate::identity::of)
            .map(Arc::new);
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        Ok(Accepted {
            info: TlsInfo {
                server_name: sni,
                version,
                client,
            },
            stream,
            group,
            alpn,
        })
    }

    /// Reloads whenever one of [`Acceptor::files`] changes, checking every `every`.
    /// Runs until its task is dropped.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let files = self.files();
        if files.is_empty() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(every).await;
            let now = stamps(&files);
            let seen = self
                .loaded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if now != seen {
                // Whatever happens, this state of the files has been seen.
                *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = now;
                match self.reload() {
                    Ok(()) => tracing::info!("certificates changed on disk: reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "certificates changed on disk but cannot be loaded; keeping the previous ones")
                    }
                }
            }
        }
    }
}

/// Picks a QUIC connection's certificate as a TCP handshake would.
#[derive(Debug)]
struct BySni(Arc<Acceptor>);

/// The verifier of client certificates for `auth`; `None` when none are asked for.
fn client_verifier(
    auth: &ClientAuth,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, TlsError> {
    let (ClientAuth::Optional(ca) | ClientAuth::Required(ca)) = auth else {
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), crate::provider());
    let verifier = match auth {
        ClientAuth::Optional(_) => verifier.allow_unauthenticated(),
        _ => verifier,
    };
    Ok(Some(verifier.build()?))
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("sites", &self.sites.len())
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl rustls::server::ResolvesServerCert for BySni {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let group = self.0.group_for_sni(hello.server_name());
        self.0.config_for(group).cert_resolver.resolve(hello)
    }
}

/// A file's modification time and size, or `None` when it cannot be read.
type Stamp = Option<(SystemTime, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// Session resumption shared by every configuration (TCP and QUIC): stateless
/// tickets and a session cache, both replaced on every reload.
struct Resumption {
    current: RwLock<(Arc<dyn ProducesTickets>, Arc<dyn StoresServerSessions>)>,
}

impl Resumption {
    fn new() -> Result<Self, TlsError> {
        Ok(Resumption {
            current: RwLock::new(Self::fresh()?),
        })
    }

    #[allow(clippy::type_complexity)]
    fn fresh() -> Result<(Arc<dyn ProducesTickets>, Arc<dyn StoresServerSessions>), TlsError> {
        Ok((
            rustls::crypto::ring::Ticketer::new()?,
            ServerSessionMemoryCache::new(SESSION_CACHE),
        ))
    }

    fn rotate(&self) -> Result<(), TlsError> {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Self::fresh()?;
        Ok(())
    }

    fn tickets(&self) -> Arc<dyn ProducesTickets> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    fn sessions(&self) -> Arc<dyn StoresServerSessions> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }
}

impl std::fmt::Debug for Resumption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resumption")
    }
}

impl ProducesTickets for Resumption {
    fn enabled(&self) -> bool {
        self.tickets().enabled()
    }

    fn lifetime(&self) -> u32 {
        self.tickets().lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.tickets().encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.tickets().decrypt(cipher)
    }
}

impl StoresServerSessions for Resumption {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.sessions().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.sessions().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.sessions().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

impl CertSource {
    /// Where the material comes from, for error messages.
    fn describe(&self) -> String {
        match self {
            CertSource::Files { chain, key } => {
                format!("{} with {}", chain.display(), key.display())
            }
            CertSource::Pem { .. } => "issued certificate".into(),
        }
    }

    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        match self {
            CertSource::Files { chain, key } => Ok((read_certs(chain)?, read_key(key)?)),
            CertSource::Pem { chain, key } => {
                let pem_err = |m: &str| TlsError::Pem {
                    path: "issued".into(),
                    message: m.into(),
                };
                let certs = CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| pem_err(&e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| pem_err(&e.to_string()))?;
                Ok((certs, key))
            }
        }
    }
}

/// Every certificate of a PEM file; at least one.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            message: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.display().to_string(),
        message: format!("no usable private key ({e})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{LeafRequest, LocalCa, Usage};

    fn issued(ca: &LocalCa, name: &str) -> CertSource {
        let leaf = ca
            .issue(&LeafRequest::new(vec![name.into()], Usage::Server, 1))
            .unwrap();
        CertSource::Pem {
            chain: leaf.chain_pem,
            key: leaf.key_pem,
        }
    }

    #[test]
    fn sites_with_the_same_material_share_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::new(dir.path());
        ca.init().unwrap();
        let a = issued(&ca, "a.test");
        let b = issued(&ca, "b.test");
        let site = |names: &[&str], cert: &CertSource, auth: ClientAuth, default| SiteTls {
            names: names.iter().map(|n| n.to_string()).collect(),
            default,
            cert: cert.clone(),
            client_auth: auth,
        };
        let root = ca.root_path();
        let acc = Acceptor::new(
            vec![
                site(&["a.test"], &a, ClientAuth::Off, true),
                site(&["www.a.test"], &a, ClientAuth::Off, false),
                site(&["*.b.test"], &b, ClientAuth::Off, false),
                site(&["admin.a.test"], &a, ClientAuth::Required(root), false),
            ],
            vec![b"h2".to_vec()],
            Duration::from_secs(1),
        )
        .unwrap();
        // (host, group)
        let table = [
            (Some("a.test"), Some(0)),
            (Some("www.a.test"), Some(0)),
            (Some("x.b.test"), Some(1)),
            (Some("admin.a.test"), Some(2)),
            (Some("unknown.test"), Some(0)), // default site
            (None, Some(0)),
        ];
        for (host, group) in table {
            assert_eq!(acc.group_for_host(host), group, "{host:?}");
        }
        assert_eq!(acc.config_for(0).alpn_protocols, [b"h2".to_vec()]);
    }

    #[test]
    fn bad_material_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let site = SiteTls {
            names: vec![],
            default: true,
            cert: CertSource::Files {
                chain: empty.clone(),
                key: empty.clone(),
            },
            client_auth: ClientAuth::Off,
        };
        let err = Acceptor::new(vec![site], vec![], Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("empty.pem") && err.contains("CERTIFICATE"),
            "{err}"
        );
    }
}
