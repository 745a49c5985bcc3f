//! TLS to `https://` upstreams: rustls (ring), TLS 1.2 and 1.3, the server's
//! certificate verified against the system's roots or a configured CA for the host of
//! the upstream's URL (which is also the SNI), ALPN offering HTTP/2 then HTTP/1.1,
//! and a client certificate for mutual TLS when configured.

use std::path::PathBuf;
use std::sync::Arc;

/// How wharf authenticates upstreams, and itself to them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// CA certificates (PEM) that upstream certificates must chain to, instead of the
    /// system's roots.
    pub ca: Option<PathBuf>,
    /// A client certificate chain (PEM) to present (mutual TLS) ...
    pub client_cert: Option<PathBuf>,
    /// ... and its private key (PEM).
    pub client_key: Option<PathBuf>,
}

/// The rustls client configuration for `t`; an error names the file or what is
/// missing.
pub fn client_config(t: &UpstreamTls) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &t.ca {
        Some(path) => {
            for cert in wharf_tls::read_certs(path).map_err(|e| e.to_string())? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!(
                    "no system CA certificates found ({:?}); set a CA file",
                    found.errors
                ));
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut cfg = match (&t.client_cert, &t.client_key) {
        (Some(cert), Some(key)) => {
            let chain = wharf_tls::read_certs(cert).map_err(|e| e.to_string())?;
            let key = wharf_tls::read_key(key).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("a client certificate needs both the chain and the key".into()),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
