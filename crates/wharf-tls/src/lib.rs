//! wharf's TLS: rustls server configurations chosen by server name, certificate
//! reloads, mutual TLS, and a local certificate authority.
//!
//! This crate knows certificates and handshakes, nothing of HTTP beyond the ALPN
//! names it is given, and nothing of files beyond the PEM files it reads.
//!
//! - [`acceptor`]: one rustls configuration per distinct (certificate, client-auth)
//!   pair, chosen by SNI through the same name table that picks sites
//!   ([`wharf_http::host::Router`]); handshakes with a timeout; reloads that leave
//!   established connections alone.
//! - [`ca`]: `wharf ca init / issue / path`: a root and an intermediate CA and leaves.
//! - `identity`: the subject and SANs of a verified client certificate.
//!
//! Only TLS 1.2 and 1.3, with the `ring` provider; rustls, not wharf, does the crypto.

pub mod acceptor;
pub mod ca;
mod identity;

use std::path::Path;

pub use acceptor::{
    read_certs, read_key, AcceptError, Accepted, Acceptor, CertSource, ClientAuth, SiteTls,
};
pub use ca::LocalCa;

/// Why TLS material could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file (or `issued` for generated material).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the material.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// A client CA bundle could not become a verifier.
    #[error("client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// Sites of one listener differ in client authentication, which one QUIC
    /// configuration cannot express.
    #[error("sites differ in client_auth: QUIC (HTTP/3) has one TLS configuration for all sites of a listener")]
    MixedClientAuth,
    /// Certificate generation failed.
    #[error("certificate authority: {0}")]
    Ca(String),
}

impl TlsError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        TlsError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<rcgen::Error> for TlsError {
    fn from(e: rcgen::Error) -> Self {
        TlsError::Ca(e.to_string())
    }
}

/// The crypto provider of every configuration wharf builds.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
