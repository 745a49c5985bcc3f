//! A local certificate authority: the chain of trust of the HTTPS chapter, made usable.
//!
//! `wharf ca init` creates a root CA and an intermediate CA signed by it; leaves are
//! signed by the intermediate, so a client that trusts the root verifies the
//! three-level chain root → intermediate → leaf, as browsers do for public sites. The
//! root's key is only used to sign the intermediate. Keys are ECDSA P-256, written
//! mode 0600 in a 0700 directory; files are replaced atomically.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use crate::TlsError;

/// How long issued leaves are valid by default: the 397 days browsers accept.
pub const LEAF_DAYS: u32 = 397;
const ROOT_DAYS: i64 = 3650;
const INTERMEDIATE_DAYS: i64 = 1825;

/// A certificate authority kept in a directory (the wharf data directory's `ca/`).
#[derive(Clone, Debug)]
pub struct LocalCa {
    dir: PathBuf,
}

/// What a leaf is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A server certificate (`serverAuth`).
    Server,
    /// A client certificate for mutual TLS (`clientAuth`).
    Client,
}

/// A leaf certificate request.
#[derive(Clone, Debug)]
pub struct LeafRequest {
    /// DNS names and IP addresses; the first is also the common name.
    pub names: Vec<String>,
    /// Server or client certificate.
    pub usage: Usage,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl LeafRequest {
    /// A leaf valid from an hour ago for `days` days.
    pub fn new(names: Vec<String>, usage: Usage, days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        LeafRequest {
            names,
            usage,
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(u64::from(days) * 86_400),
        }
    }
}

/// An issued leaf, in PEM.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The leaf followed by the intermediate: what a server sends.
    pub chain_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
}

impl LocalCa {
    /// The authority kept in `data_dir/ca`.
    pub fn new(data_dir: &Path) -> Self {
        LocalCa {
            dir: data_dir.join("ca"),
        }
    }

    /// wharf's data directory: `$WHARF_DATA_DIR`, else `$XDG_DATA_HOME/wharf`, else
    /// `~/.local/share/wharf`.
    pub fn default_data_dir() -> PathBuf {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("WHARF_DATA_DIR")
            .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("wharf")))
            .or_else(|| env("HOME").map(|h| h.join(".local/share/wharf")))
            .unwrap_or_else(|| PathBuf::from(".wharf"))
    }

    /// The root certificate, which clients are told to trust.
    pub fn root_path(&self) -> PathBuf {
        self.dir.join("root.pem")
    }

    fn intermediate_path(&self) -> PathBuf {
        self.dir.join("intermediate.pem")
    }

    fn intermediate_key_path(&self) -> PathBuf {
        self.dir.join("intermediate-key.pem")
    }

    /// Whether the authority exists.
    pub fn exists(&self) -> bool {
        self.root_path().is_file()
            && self.intermediate_path().is_file()
            && self.intermediate_key_path().is_file()
    }

    /// Creates the root and intermediate unless they exist. Returns whether it created them.
    pub fn init(&self) -> Result<bool, TlsError> {
        if self.exists() {
            return Ok(false);
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| TlsError::io(&self.dir, e))?;
        // Two authorities on one host must differ by name, or a chain from one
        // would be checked against the other's key instead of being unknown.
        let host = format!("{}, {}", hostname(), random_id()?);
        let now = OffsetDateTime::now_utc();
        let root_key = KeyPair::generate()?;
        let root = ca_params(&format!("wharf local root CA ({host})"), 1, now, ROOT_DAYS)
            .self_signed(&root_key)?;
        let inter_key = KeyPair::generate()?;
        let inter_params = ca_params(
            &format!("wharf local intermediate CA ({host})"),
            0,
            now,
            INTERMEDIATE_DAYS,
        );
        let root_issuer = Issuer::from_ca_cert_der(root.der(), &root_key)?;
        let inter = inter_params.signed_by(&inter_key, &root_issuer)?;
        write_private(&self.dir.join("root-key.pem"), &root_key.serialize_pem())?;
        write_private(&self.intermediate_key_path(), &inter_key.serialize_pem())?;
        write_public(&self.intermediate_path(), &inter.pem())?;
        // Written last: its presence means the authority is complete.
        write_public(&self.root_path(), &root.pem())?;
        Ok(true)
    }

    /// Issues a leaf signed by the intermediate.
    pub fn issue(&self, req: &LeafRequest) -> Result<Leaf, TlsError> {
        if req.names.is_empty() {
            return Err(TlsError::Ca("a certificate needs at least one name".into()));
        }
        let read = |p: PathBuf| fs::read_to_string(&p).map_err(|e| TlsError::io(&p, e));
        let inter_pem = read(self.intermediate_path())?;
        let inter_key = KeyPair::from_pem(&read(self.intermediate_key_path())?)?;
        let issuer = Issuer::from_ca_cert_pem(&inter_pem, &inter_key)?;
        let mut params = CertificateParams::new(req.names.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, req.names[0].as_str());
        params.not_before = req.not_before;
        params.not_after = req.not_after;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match req.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let key = KeyPair::generate()?;
        let leaf = params.signed_by(&key, &issuer)?;
        Ok(Leaf {
            chain_pem: format!("{}{}", leaf.pem(), inter_pem),
            key_pem: key.serialize_pem(),
        })
    }
}

fn ca_params(name: &str, path_len: u8, now: OffsetDateTime, days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.distinguished_name.push(DnType::OrganizationName, "wharf");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - Duration::from_secs(3600);
    p.not_after = now + time::Duration::days(days);
    p.use_authority_key_identifier_extension = true;
    p
}

/// Random bytes from the system's source.
fn random<const N: usize>() -> Result<[u8; N], TlsError> {
    let mut bytes = [0u8; N];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| TlsError::Ca("no random numbers".into()))?;
    Ok(bytes)
}

/// A positive 128-bit serial (RFC 5280 §4.1.2.2).
fn random_serial() -> Result<rcgen::SerialNumber, TlsError> {
    let mut bytes = random::<16>()?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

/// Six hex digits telling this authority from others on the same host.
fn random_id() -> Result<String, TlsError> {
    Ok(random::<3>()?.iter().map(|b| format!("{b:02x}")).collect())
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Writes `text` to `path` atomically with `mode`.
fn write_mode(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| TlsError::io(path, e))
}

/// A private key: readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    write_mode(path, text, 0o600)
}

/// A certificate.
pub fn write_public(path: &Path, text: &str) -> Result<(), TlsError> {
    write_mode(path, text, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn init_is_idempotent_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::new(dir.path());
        assert!(ca.init().unwrap());
        let root = fs::read(ca.root_path()).unwrap();
        assert!(!ca.init().unwrap(), "second init keeps the authority");
        assert_eq!(fs::read(ca.root_path()).unwrap(), root);
        for key in ["root-key.pem", "intermediate-key.pem"] {
            let mode = fs::metadata(dir.path().join("ca").join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let mode = fs::metadata(dir.path().join("ca"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn leaves_chain_to_the_root_through_the_intermediate() {
        use rustls::client::danger::ServerCertVerifier as _;
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::new(dir.path());
        ca.init().unwrap();
        let leaf = ca
            .issue(&LeafRequest::new(
                vec!["localhost".into(), "127.0.0.1".into()],
                Usage::Server,
                LEAF_DAYS,
            ))
            .unwrap();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(chain.len(), 2, "leaf and intermediate");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca.root_path()).unwrap())
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        for name in ["localhost", "127.0.0.1"] {
            verifier
                .verify_server_cert(
                    &chain[0],
                    &chain[1..],
                    &ServerName::try_from(name).unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from("other.test").unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_err());
    }

    #[test]
    fn issuing_needs_an_authority_and_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::new(dir.path());
        let req = LeafRequest::new(vec!["a.test".into()], Usage::Server, 1);
        assert!(ca.issue(&req).is_err());
        ca.init().unwrap();
        assert!(ca
            .issue(&LeafRequest::new(vec![], Usage::Server, 1))
            .is_err());
    }
}
