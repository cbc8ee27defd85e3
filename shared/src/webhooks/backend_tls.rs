//! The serving certificate of each webhook's backend, checked as the API server checks it when it
//! calls the webhook: TLS to `<service>.<namespace>.svc`, trusting only the webhook's caBundle
//! (k8s.io/apiserver `pkg/util/webhook/authentication.go`). The handshake goes through a
//! port-forward to one ready pod of the Service (`pods/portforward`, nothing else), so it works
//! from a laptop that cannot reach pod addresses. Only the handshake is made: no AdmissionReview
//! is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use super::analysis::{BackendPod, BackendTls, ServiceFacts};
use super::model::{ClientConfig, WebhookConfig};
use crate::client::Cluster;

/// For the port-forward and again for the handshake: a backend that has not answered by then is
/// said to be unchecked, not waited for.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The container port a Service port leads to on `pod`: its targetPort, a number or the name of
/// a container port.
pub fn target_port(svc: &ServiceFacts, service_port: u16, pod: &BackendPod) -> Option<u16> {
    let (_, target) = svc.ports.iter().find(|(port, _)| *port == service_port)?;
    target.parse().ok().or_else(|| pod.named_ports.get(target).copied())
}

/// One backend to check: a Service port and the caBundle that must verify it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Backend {
    namespace: String,
    service: String,
    port: u16,
    ca_bundle: String,
}

/// The handshakes, by (`kind/name` of the configuration, webhook), and what could not be checked and why. Webhooks
/// that share a Service port and caBundle share one handshake.
pub async fn probe_backends(
    cluster: &Cluster,
    configs: &[WebhookConfig],
    services: &BTreeMap<(String, String), ServiceFacts>,
) -> (BTreeMap<(String, String), BackendTls>, Vec<String>) {
    let mut wanted: BTreeMap<Backend, Vec<(String, String)>> = BTreeMap::new();
    for c in configs {
        for w in &c.webhooks {
            let ClientConfig::Service { namespace, name, port, .. } = &w.client else { continue };
            // An empty or unreadable caBundle is a finding of its own.
            let Some(ca_bundle) = w.ca_bundle.as_deref().map(str::trim).filter(|b| !b.is_empty()) else { continue };
            let backend = Backend {
                namespace: namespace.clone(),
                service: name.clone(),
                port: *port,
                ca_bundle: ca_bundle.into(),
            };
            wanted.entry(backend).or_default().push((c.kind.object(&c.name), w.name.clone()));
        }
    }
    let probes = futures::future::join_all(wanted.keys().map(|b| async move {
        let svc = services.get(&(b.namespace.clone(), b.service.clone()))?;
        Some((b, probe(cluster, b, svc).await?))
    }));
    let mut found = BTreeMap::new();
    let mut notes = Vec::new();
    for (backend, outcome) in probes.await.into_iter().flatten() {
        match outcome {
            Ok(tls) => {
                for key in &wanted[backend] {
                    found.insert(key.clone(), tls.clone());
                }
            }
            Err(why) => {
                notes.push(format!("TLS of backend {}/{} not checked ({why})", backend.namespace, backend.service));
            }
        }
    }
    (found, notes)
}

/// None: nothing to check (no ready pod, an unreadable caBundle).
async fn probe(cluster: &Cluster, b: &Backend, svc: &ServiceFacts) -> Option<Result<BackendTls, String>> {
    let pod = svc.pods.iter().find(|p| p.ready)?;
    let roots = crate::certs::base64_bundle_ders(&b.ca_bundle).ok()?;
    let ca = crate::certs::parse_base64_bundle(&b.ca_bundle).ok()?.iter().map(|c| c.name().to_string()).collect();
    let Some(port) = target_port(svc, b.port, pod) else {
        return Some(Err(format!("the Service has no port {} leading to a port of pod {}", b.port, pod.name)));
    };
    let tunnel = match crate::stream::port_forward(cluster, &b.namespace, &pod.name, port, PROBE_TIMEOUT).await {
        Ok(t) => t,
        Err(e) => {
            return Some(Err(match e.refusing_webhook() {
                Some(webhook) => {
                    format!("the port-forward to pod {} is refused by admission webhook {webhook}", pod.name)
                }
                None => e.why,
            }));
        }
    };
    let crate::stream::Tunnel { stream, forwarder } = tunnel;
    let server_name = format!("{}.{}.svc", b.service, b.namespace);
    let label = format!("the backend {}/{}", b.namespace, pod.name);
    let probe = crate::certs::probe_tls_stream(stream, &server_name, &roots, PROBE_TIMEOUT, &label).await;
    forwarder.abort();
    Some(match probe {
        Ok(p) => Ok(BackendTls {
            pod: pod.name.clone(),
            port,
            server_name,
            leaf: p.chain.into_iter().next(),
            ca,
            error: p.verification_error,
        }),
        Err(e) => Err(e.why),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_ports_by_number_by_name_and_missing() {
        let svc = ServiceFacts { ports: vec![(443, "10250".into()), (8443, "https".into())], ..Default::default() };
        let pod = BackendPod {
            name: "webhook-0".into(),
            ready: true,
            restarts: 0,
            node: None,
            problem: None,
            named_ports: BTreeMap::from([("https".to_string(), 9443)]),
        };
        assert_eq!(target_port(&svc, 443, &pod), Some(10250));
        assert_eq!(target_port(&svc, 8443, &pod), Some(9443));
        assert_eq!(target_port(&svc, 9999, &pod), None);
        let unnamed = BackendPod { named_ports: BTreeMap::new(), ..pod };
        assert_eq!(target_port(&svc, 8443, &unnamed), None);
    }
}
