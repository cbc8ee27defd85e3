//! A healthy admission webhook backend: an HTTPS server on loopback that allows every
//! AdmissionReview, with a serving certificate for `<service>.<namespace>.svc` signed by its own
//! CA (the `caBundle` of the webhook configuration).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde_json::{Value, json};

use crate::pki::{Ca, LeafSpec, Validity};

/// A running backend.
pub struct WebhookBackend {
    /// One address per replica (same port).
    pub addrs: Vec<SocketAddr>,
    /// base64 of the CA's PEM, for `clientConfig.caBundle`.
    pub ca_bundle: String,
    pub calls: Arc<AtomicU64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for WebhookBackend {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl WebhookBackend {
    /// Serves `<service>.<namespace>.svc` on each of `ips` (one per replica) on a common port.
    pub fn start(service: &str, namespace: &str, ips: &[std::net::Ipv4Addr]) -> std::io::Result<WebhookBackend> {
        use base64::Engine;
        let ca = Ca::new(&format!("{service}-ca"));
        let host = format!("{service}.{namespace}.svc");
        let leaf = ca.issue(
            &LeafSpec {
                common_name: host.clone(),
                dns_names: vec![host.clone(), format!("{host}.cluster.local")],
                server: true,
                ..Default::default()
            },
            Validity::days(365),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key =
            PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(leaf.cert_der.clone())], key)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let port = crate::net::free_port_on(ips)?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for ip in ips {
            let l = std::net::TcpListener::bind((*ip, port))?;
            l.set_nonblocking(true)?;
            addrs.push(l.local_addr()?);
            listeners.push(l);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let calls = Arc::new(AtomicU64::new(0));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let counter = calls.clone();
        let _guard = runtime.enter();
        for listener in listeners {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            runtime.spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { continue };
                    let _ = tcp.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let counter = counter.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                            let counter = counter.clone();
                            async move {
                                counter.fetch_add(1, Ordering::Relaxed);
                                let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                let review: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                                let answer = json!({
                                    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                    "response": {"uid": review["request"]["uid"], "allowed": true}
                                });
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .header("Content-Type", "application/json")
                                        .body(Full::new(Bytes::from(answer.to_string())))
                                        .expect("valid response"),
                                )
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        }
        drop(_guard);
        Ok(WebhookBackend {
            addrs,
            ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca.cert.cert_pem.as_bytes()),
            calls,
            runtime: Some(runtime),
        })
    }
}
