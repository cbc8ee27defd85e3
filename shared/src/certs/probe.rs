//! A TLS probe that records a server's chain even when it would not verify (an expired
//! certificate is exactly what a health check must be able to describe).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;

use super::{CertInfo, parse_der};
use crate::error::{Error, ErrorKind, Result, TransportCause, transport_error};

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
            Timestamp::from_second(not_after.as_secs() as i64).map(crate::duration::format_time).unwrap_or_default()
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
    let mut probe = handshake(tcp, &name_for_sni, trust_verifier(config)?, left, label, server_url, false).await?;
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
    let mut probe = handshake(stream, server_name, Some(verifier), timeout, label, server_name, false).await?;
    probe.handshake_time = started.elapsed();
    probe.connected_to = server_name.to_string();
    Ok(probe)
}

/// The chain a server sends over `stream`, unverified: for a server that requires a client
/// certificate this client does not have (an etcd member), the handshake is refused after the
/// server has sent its chain, and the chain is still what it served.
pub async fn served_chain<S>(stream: S, server_name: &str, timeout: Duration, label: &str) -> Result<TlsProbe>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut probe = handshake(stream, server_name, None, timeout, label, server_name, true).await?;
    probe.verification_skipped = true;
    Ok(probe)
}

/// The handshake itself, recording the chain whatever the verdict; with `chain_suffices`, a
/// handshake the server refuses after sending its chain still yields it.
async fn handshake<S>(
    stream: S,
    server_name: &str,
    inner: Option<Arc<dyn ServerCertVerifier>>,
    timeout: Duration,
    label: &str,
    address: &str,
    chain_suffices: bool,
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
    let outcome = tokio::time::timeout(timeout, connector.connect(name, stream)).await;
    let recorded = verifier.seen.lock().ok().and_then(|mut s| s.take());
    match outcome {
        Err(_) => return Err(transport_error(label, address, TransportCause::Timeout, Some(timeout))),
        Ok(Err(_)) if chain_suffices && recorded.is_some() => {}
        Ok(Err(e)) => return Err(transport_error(label, address, crate::error::transport_cause(&e), Some(timeout))),
        Ok(Ok(_stream)) => {}
    }
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

    /// A server that, like an etcd member with `--client-cert-auth`, refuses clients without a
    /// certificate, speaking only `version`.
    fn server_requiring_client_certs(version: &'static rustls::SupportedProtocolVersion) -> tokio_rustls::TlsAcceptor {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "etcd-cp-1");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().clone();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der.clone()).unwrap();
        let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
            .build()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_client_cert_verifier(clients)
            .with_single_cert(vec![der], key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    #[tokio::test]
    async fn a_server_that_refuses_clients_without_a_certificate_still_shows_its_own() {
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let acceptor = server_requiring_client_certs(version);
            let (client, server) = tokio::io::duplex(64 * 1024);
            let serving = tokio::spawn(async move { acceptor.accept(server).await.is_ok() });
            let probe = served_chain(client, "localhost", Duration::from_secs(5), "etcd member cp-1").await;
            let probe = probe.unwrap_or_else(|e| panic!("{version:?}: {e}"));
            assert_eq!(probe.leaf().map(CertInfo::name), Some("etcd-cp-1"), "{version:?}");
            assert!(probe.verification_skipped);
            assert!(!serving.await.unwrap(), "{version:?}: the server refused the client without a certificate");
        }
    }

    #[tokio::test]
    async fn a_peer_that_is_not_tls_is_an_error() {
        let (client, server) = tokio::io::duplex(1024);
        drop(server);
        let e = served_chain(client, "localhost", Duration::from_secs(5), "etcd member cp-1").await.unwrap_err();
        assert!(e.what.contains("etcd member cp-1"), "{e}");
    }
}
