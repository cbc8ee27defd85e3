//! X.509 certificates: parsing PEM, DER and base64 bundles (kubeconfig client certificates,
//! webhook `caBundle`s, etcd certificates read from pods) with their expiry; `probe` is the TLS
//! handshake that reads a server's chain.

use jiff::Timestamp;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use x509_parser::prelude::*;

use crate::error::{Error, Result};
use crate::exit::Status;

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    pub subject: String,
    pub common_name: Option<String>,
    pub issuer: String,
    pub serial: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub is_ca: bool,
}

impl CertInfo {
    /// A short name for messages: the CN, else the subject.
    pub fn name(&self) -> &str {
        self.common_name.as_deref().unwrap_or(&self.subject)
    }

    pub fn sans(&self) -> Vec<String> {
        self.dns_names.iter().chain(self.ip_addresses.iter()).cloned().collect()
    }
}

/// Expiry thresholds of the runbooks: WARNING under 30 days, CRITICAL under 7 days or expired.
pub fn expiry_status(not_after: Timestamp, now: Timestamp) -> Status {
    let left = not_after.as_second() - now.as_second();
    Status::grade(left < 7 * 86_400, left < 30 * 86_400)
}

/// "expires 2027-01-05 10:00 UTC (in 43d)" / "EXPIRED on ... (3d ago)".
pub fn describe_expiry(not_after: Timestamp, now: Timestamp) -> String {
    let when = crate::duration::format_time(not_after);
    let delta = not_after.as_second() - now.as_second();
    if delta < 0 {
        format!("expired on {when} ({} ago)", crate::duration::human_duration_signed(-delta))
    } else {
        format!("expires {when} (in {})", crate::duration::human_duration_signed(delta))
    }
}

/// The same in a few words, for one-line messages: `24d left`, `expired 3d ago`.
pub fn describe_expiry_short(not_after: Timestamp, now: Timestamp) -> String {
    let delta = not_after.as_second() - now.as_second();
    if delta < 0 {
        format!("expired {} ago", crate::duration::human_duration_signed(-delta))
    } else {
        format!("{} left", crate::duration::human_duration_signed(delta))
    }
}

fn asn1_to_timestamp(t: &ASN1Time) -> Timestamp {
    Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Parses one DER certificate.
pub fn parse_der(der: &[u8]) -> Result<CertInfo> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::invalid_data("Cannot parse a certificate", format!("not valid DER X.509: {e}")))?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
    let is_ca = cert.basic_constraints().ok().flatten().map(|bc| bc.value.ca).unwrap_or(false);
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        common_name,
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: asn1_to_timestamp(&cert.validity().not_before),
        not_after: asn1_to_timestamp(&cert.validity().not_after),
        dns_names,
        ip_addresses,
        is_ca,
    })
}

/// Parses every `CERTIFICATE` block of a PEM text (private keys and other blocks are ignored,
/// never copied).
pub fn parse_pem_bundle(pem: &[u8]) -> Result<Vec<CertInfo>> {
    let mut out = Vec::new();
    for der in CertificateDer::pem_slice_iter(pem) {
        let der = der.map_err(|e| Error::invalid_data("Cannot parse PEM certificates", e.to_string()))?;
        out.push(parse_der(&der)?);
    }
    if out.is_empty() {
        return Err(Error::invalid_data("Cannot parse PEM certificates", "no CERTIFICATE block found"));
    }
    Ok(out)
}

/// Parses a `caBundle`-style value: base64 of PEM (what Kubernetes stores), or of DER.
pub fn parse_base64_bundle(b64: &str) -> Result<Vec<CertInfo>> {
    base64_bundle_ders(b64)?.iter().map(|der| parse_der(der)).collect()
}

/// The certificates of a `caBundle`-style value, as DER.
pub fn base64_bundle_ders(b64: &str) -> Result<Vec<CertificateDer<'static>>> {
    use base64::Engine;
    let cleaned: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    if cleaned.is_empty() {
        return Err(Error::invalid_data("Cannot parse the CA bundle", "it is empty"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| Error::invalid_data("Cannot parse the CA bundle", format!("not valid base64: {e}")))?;
    if !(bytes.starts_with(b"-----BEGIN") || bytes.windows(10).any(|w| w == b"-----BEGIN")) {
        return Ok(vec![CertificateDer::from(bytes)]);
    }
    let mut out = Vec::new();
    for der in CertificateDer::pem_slice_iter(&bytes) {
        out.push(der.map_err(|e| Error::invalid_data("Cannot parse PEM certificates", e.to_string()))?);
    }
    if out.is_empty() {
        return Err(Error::invalid_data("Cannot parse PEM certificates", "no CERTIFICATE block found"));
    }
    Ok(out)
}

#[cfg(feature = "client")]
mod probe;
#[cfg(feature = "client")]
pub use probe::{TlsProbe, probe_tls, probe_tls_stream, served_chain};

#[cfg(test)]
mod tests {
    use super::*;

    fn generated_cert(cn: &str, not_after: (i32, u8, u8)) -> String {
        let mut params = rcgen::CertificateParams::new(vec!["kubernetes".into(), "127.0.0.1".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn expiry_thresholds() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let day = 86_400;
        let at = |d: i64| Timestamp::from_second(1_800_000_000 + d * day).unwrap();
        assert_eq!(expiry_status(at(90), now), Status::Ok);
        assert_eq!(expiry_status(at(29), now), Status::Warning);
        assert_eq!(expiry_status(at(6), now), Status::Critical);
        assert_eq!(expiry_status(at(-1), now), Status::Critical);
        assert!(describe_expiry(at(-3), now).starts_with("expired on 2027-01-12"), "{}", describe_expiry(at(-3), now));
        assert!(describe_expiry(at(40), now).contains("(in 40d)"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_pem_bundle(b"not a pem").is_err());
        assert!(parse_base64_bundle("").is_err());
        assert!(parse_base64_bundle("!!!").is_err());
        assert!(parse_der(b"\x30\x03\x02\x01\x00").is_err());
    }

    #[test]
    fn parses_pem_and_base64_bundles() {
        use base64::Engine;
        let pem = generated_cert("front-proxy-ca", (2030, 6, 1)) + &generated_cert("second", (2031, 1, 1));
        let certs = parse_pem_bundle(pem.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].name(), "front-proxy-ca");
        assert!(certs[0].is_ca);
        assert_eq!(certs[0].dns_names, vec!["kubernetes"]);
        assert_eq!(certs[0].ip_addresses, vec!["127.0.0.1"]);
        assert_eq!(crate::duration::format_time(certs[0].not_after), "2030-06-01 00:00 UTC");
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
        let from_bundle = parse_base64_bundle(&b64).unwrap();
        assert_eq!(from_bundle, certs);
        // A private key next to the certificate is ignored, not an error.
        let with_key =
            format!("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n{pem}");
        assert_eq!(parse_pem_bundle(with_key.as_bytes()).unwrap().len(), 2);
    }
}
