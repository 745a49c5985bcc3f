//! The identity a verified client certificate states: subject and alternative names.

use rustls::pki_types::CertificateDer;
use wharf_http::conn::ClientIdentity;
use x509_parser::extensions::GeneralName;

/// Reads the subject and SANs of `cert` (already verified by rustls).
pub(crate) fn of(cert: &CertificateDer<'_>) -> Option<ClientIdentity> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert).ok()?;
    let sans = x509
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
                    GeneralName::RFC822Name(m) => Some(format!("email:{m}")),
                    GeneralName::URI(u) => Some(format!("URI:{u}")),
                    GeneralName::IPAddress(ip) => ip_text(ip).map(|ip| format!("IP:{ip}")),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ClientIdentity {
        subject: x509.subject().to_string(),
        sans,
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{LeafRequest, LocalCa, Usage};
    use rustls::pki_types::pem::PemObject as _;

    #[test]
    fn subject_and_sans_of_an_issued_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::new(dir.path());
        ca.init().unwrap();
        let leaf = ca
            .issue(&LeafRequest::new(
                vec!["alice.test".into(), "10.0.0.1".into()],
                Usage::Client,
                1,
            ))
            .unwrap();
        let der = CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let id = of(&der).unwrap();
        assert_eq!(id.subject, "CN=alice.test");
        assert_eq!(id.sans, ["DNS:alice.test", "IP:10.0.0.1"]);
    }
}
