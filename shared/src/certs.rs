//! X.509 certificates: parsing PEM, DER and base64 bundles (kubeconfig client certificates,
//! webhook `caBundle`s, etcd certificates read from pods) with their expiry, and a TLS probe that
//! records a server's chain even when it would not verify (an expired certificate is exactly what
//! a health check must be able to describe).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use x509_parser::prelude::*;

use crate::error::{Error, ErrorKind, Result, TransportCause, transport_error};
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
    /// Whole days until expiry (negative once expired).
    pub fn days_left(&self, now: Timestamp) -> i64 {
        (self.not_after.as_second() - now.as_second()).div_euclid(86_400)
    }

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
    if left < 7 * 86_400 {
        Status::Critical
    } else if left < 30 * 86_400 {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// "expires 2027-01-05 10:00 UTC (in 43d)" / "EXPIRED on ... (3d ago)".
pub fn describe_expiry(not_after: Timestamp, now: Timestamp) -> String {
    let when = crate::error::format_time(not_after);
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

/// What a TLS handshake with a server showed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsProbe {
    /// The chain as the server sent it, leaf first.
    pub chain: Vec<CertInfo>,
    /// `None` when the chain verifies against the kubeconfig's CA and the server name; else why not.
    pub verification_error: Option<String>,
    /// True when verification was not attempted (`--insecure-skip-tls-verify`).
    pub verification_skipped: bool,
    #[serde(skip)]
    pub handshake_time: Duration,
    /// The server's clock, from nothing: TLS 1.3 does not carry it. Filled by callers from `Date`.
    #[serde(skip)]
    pub connected_to: String,
}

impl TlsProbe {
    pub fn leaf(&self) -> Option<&CertInfo> {
        self.chain.first()
    }
}

#[derive(Debug)]
struct RecordingVerifier {
    inner: Option<Arc<dyn ServerCertVerifier>>,
    seen: Mutex<Option<(Vec<CertificateDer<'static>>, Option<String>)>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        let verdict = self.inner.as_ref().map(|v| {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .err()
                .map(|e| describe_tls_error(&e))
        });
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((chain, verdict.flatten()));
        }
        // The probe only reads the chain; nothing is sent over this connection.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn describe_tls_error(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "x509: certificate signed by unknown authority".to_string()
        }
        rustls::Error::InvalidCertificate(C::ExpiredContext { not_after, .. }) => format!(
            "x509: certificate has expired (NotAfter {})",
            Timestamp::from_second(not_after.as_secs() as i64).map(crate::error::format_time).unwrap_or_default()
        ),
        rustls::Error::InvalidCertificate(C::Expired) => "x509: certificate has expired".to_string(),
        rustls::Error::InvalidCertificate(C::NotValidForNameContext { expected, presented }) => {
            format!("x509: certificate is valid for {}, not {expected:?}", presented.join(", "))
        }
        other => other.to_string(),
    }
}

fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A verifier for the kubeconfig's trust settings: its CA bundle, or the system's roots.
fn trust_verifier(config: &kube::Config) -> Result<Option<Arc<dyn ServerCertVerifier>>> {
    if config.accept_invalid_certs {
        return Ok(None);
    }
    let provider = crypto_provider();
    match &config.root_cert {
        Some(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for der in roots {
                store.add(CertificateDer::from(der.clone())).map_err(|e| {
                    Error::config("The kubeconfig's certificate-authority data is unusable", e.to_string(), "")
                })?;
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .map_err(|e| {
                    Error::config("Cannot build a TLS verifier from the kubeconfig's CA", e.to_string(), "")
                })?;
            Ok(Some(verifier))
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| Error::config("Cannot load the system's trusted CAs", e.to_string(), ""))?;
            Ok(Some(Arc::new(verifier)))
        }
    }
}

/// Connects to `server_url` (https://host:port), completes a TLS handshake with the kubeconfig's
/// trust settings (and `tls-server-name`), and returns the chain and the verification verdict.
/// No client certificate is presented and nothing is sent after the handshake.
pub async fn probe_tls(config: &kube::Config, server_url: &str, timeout: Duration) -> Result<TlsProbe> {
    let uri: http::Uri = server_url
        .parse()
        .map_err(|_| Error::invalid_data(format!("Invalid server address {server_url:?}"), "not a URL"))?;
    let host = uri.host().unwrap_or("localhost").trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name_for_sni = config.tls_server_name.clone().unwrap_or_else(|| host.clone());
    let address = format!("{host}:{port}");
    let label = "the API server";
    let started = Instant::now();
    let tcp = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
        Err(_) => return Err(transport_error(label, server_url, TransportCause::Timeout, Some(timeout))),
        Ok(Err(e)) => {
            return Err(transport_error(label, server_url, crate::error::transport_cause(&e), Some(timeout)));
        }
        Ok(Ok(tcp)) => tcp,
    };
    let left = timeout.saturating_sub(started.elapsed());
    let mut probe = handshake(tcp, &name_for_sni, trust_verifier(config)?, left, label, server_url).await?;
    probe.verification_skipped = config.accept_invalid_certs;
    probe.handshake_time = started.elapsed();
    probe.connected_to = address;
    Ok(probe)
}

/// A TLS handshake over `stream` (a port-forward, say) as a client that trusts only `roots` and
/// expects `server_name`: the chain the server sent and why it does not verify, if it does not.
pub async fn probe_tls_stream<S>(
    stream: S,
    server_name: &str,
    roots: &[CertificateDer<'static>],
    timeout: Duration,
    label: &str,
) -> Result<TlsProbe>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store
            .add(der.clone())
            .map_err(|e| Error::invalid_data(format!("A CA certificate for {label} is unusable"), e.to_string()))?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), crypto_provider())
        .build()
        .map_err(|e| Error::invalid_data(format!("Cannot verify {label} with its CA bundle"), e.to_string()))?;
    let started = Instant::now();
    let mut probe = handshake(stream, server_name, Some(verifier), timeout, label, server_name).await?;
    probe.handshake_time = started.elapsed();
    probe.connected_to = server_name.to_string();
    Ok(probe)
}

/// The handshake itself, recording the chain whatever the verdict.
async fn handshake<S>(
    stream: S,
    server_name: &str,
    inner: Option<Arc<dyn ServerCertVerifier>>,
    timeout: Duration,
    label: &str,
    address: &str,
) -> Result<TlsProbe>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|_| Error::invalid_data(format!("Invalid TLS server name {server_name:?}"), "not a DNS name or IP"))?;
    let verifier = Arc::new(RecordingVerifier { inner, seen: Mutex::new(None), provider: crypto_provider() });
    let tls_config = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("Cannot set up TLS", e.to_string(), ""))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config));
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Err(_) => return Err(transport_error(label, address, TransportCause::Timeout, Some(timeout))),
        Ok(Err(e)) => return Err(transport_error(label, address, crate::error::transport_cause(&e), Some(timeout))),
        Ok(Ok(_stream)) => {}
    }
    let recorded = verifier.seen.lock().ok().and_then(|mut s| s.take());
    let Some((chain_der, verification_error)) = recorded else {
        return Err(Error::new(
            ErrorKind::Tls,
            format!("TLS handshake with {address} gave no certificate"),
            "the server sent no certificate chain",
            "",
        ));
    };
    let mut chain = Vec::new();
    for der in &chain_der {
        chain.push(parse_der(der)?);
    }
    Ok(TlsProbe {
        chain,
        verification_error,
        verification_skipped: false,
        handshake_time: Duration::ZERO,
        connected_to: String::new(),
    })
}

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
        assert_eq!(crate::error::format_time(certs[0].not_after), "2030-06-01 00:00 UTC");
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
        let from_bundle = parse_base64_bundle(&b64).unwrap();
        assert_eq!(from_bundle, certs);
        // A private key next to the certificate is ignored, not an error.
        let with_key =
            format!("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n{pem}");
        assert_eq!(parse_pem_bundle(with_key.as_bytes()).unwrap().len(), 2);
    }
}
