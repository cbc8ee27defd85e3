//! Every API server replica: the addresses of the `kubernetes` EndpointSlice, plus replicas
//! whose kube-apiserver static pod exists but that left the EndpointSlice (down long enough).
//! APF state and counters are per replica, so views of them must reach each one directly.

use serde_json::Value;

use std::time::Duration;

use crate::client::Cluster;
use crate::controlplane::ComponentPod;
use crate::error::{Access, ErrorKind, Result};

/// One API server replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Node name when known, else the address.
    pub name: String,
    pub url: String,
    /// Listed in the `kubernetes` EndpointSlice.
    pub in_endpoints: bool,
    /// Has a kube-apiserver static pod.
    pub pod: Option<String>,
}

/// Builds the replica list from the `kubernetes` EndpointSlices and the kube-apiserver pods.
pub fn from_endpoints(slices: &[Value], apiservers: &[ComponentPod]) -> Vec<Replica> {
    let mut out: Vec<Replica> = Vec::new();
    for slice in slices {
        let port = slice["ports"][0]["port"].as_u64().unwrap_or(443);
        for ep in slice["endpoints"].as_array().into_iter().flatten() {
            for addr in ep["addresses"].as_array().into_iter().flatten() {
                let ip = addr.as_str().unwrap_or("").to_string();
                let host = if ip.contains(':') { format!("[{ip}]") } else { ip.clone() };
                let pod = apiservers.iter().find(|p| {
                    p.flags.get("advertise-address") == Some(ip.as_str()) || p.host_ip.as_deref() == Some(ip.as_str())
                });
                out.push(Replica {
                    name: pod
                        .map(|p| p.node.clone())
                        .or_else(|| ep["nodeName"].as_str().map(str::to_string))
                        .unwrap_or_else(|| ip.clone()),
                    url: format!("https://{host}:{port}"),
                    in_endpoints: true,
                    pod: pod.map(|p| p.name.clone()),
                });
            }
        }
    }
    for p in apiservers {
        let Some(ip) = p.flags.get("advertise-address").map(str::to_string).or_else(|| p.host_ip.clone()) else {
            continue;
        };
        let port = p.flags.get("secure-port").unwrap_or("6443");
        let url = format!("https://{ip}:{port}");
        if !out.iter().any(|r| r.url == url) {
            out.push(Replica { name: p.node.clone(), url, in_endpoints: false, pod: Some(p.name.clone()) });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The `kubernetes` EndpointSlices of the default namespace.
pub async fn read_endpoint_slices(cluster: &Cluster) -> Result<Vec<Value>> {
    let access = Access::resource("list", "discovery.k8s.io", "endpointslices", Some("default"));
    cluster
        .list_all(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes",
            &access,
        )
        .await
}

/// The control-plane static pods of kube-system (kubeadm labels them tier=control-plane).
pub async fn read_control_plane_pods(cluster: &Cluster) -> Result<Vec<ComponentPod>> {
    let access = Access::resource("list", "", "pods", Some("kube-system"));
    let pods: Vec<k8s_openapi::api::core::v1::Pod> =
        cluster.list_all("/api/v1/namespaces/kube-system/pods?labelSelector=tier%3Dcontrol-plane", &access).await?;
    Ok(pods.iter().filter_map(ComponentPod::from_pod).collect())
}

/// Why the replicas cannot be asked one by one with the kubeconfig's trust, if so: through a
/// proxy (an OIDC or access proxy, Rancher, Teleport) the configured server presents one CA and
/// the replicas behind it another. One TLS handshake with the first replica tells (nothing is
/// sent before the certificate verifies).
pub async fn direct_access_refused(cluster: &Cluster, replicas: &[Replica]) -> Option<String> {
    if replicas.iter().any(|r| r.url == cluster.server()) {
        return None;
    }
    let first = replicas.first()?;
    let timeout = cluster.timeout().unwrap_or(Duration::from_secs(3)).min(Duration::from_secs(3));
    let refused = match crate::certs::probe_tls(cluster.config(), &first.url, timeout).await {
        Ok(probe) => probe.verification_error.filter(|e| !e.contains("expired")),
        Err(e) if e.kind == ErrorKind::TlsUnknownAuthority || e.kind == ErrorKind::TlsBadName => Some(e.why),
        Err(_) => None,
    }?;
    Some(format!(
        "the replicas' certificates do not verify with the kubeconfig's CA ({first}: {refused}): {server} is a proxy or load balancer with its own certificate, so the replicas are read through it",
        first = first.name,
        server = cluster.server()
    ))
}

/// Every replica, or just the configured server when they cannot be listed (managed clusters,
/// missing permission) — with the reason. A server that cannot be reached at all is an error:
/// reading it again for each replica would only multiply the wait.
pub async fn discover(cluster: &Cluster) -> Result<(Vec<Replica>, Option<String>)> {
    let lb = || Replica { name: "api".into(), url: cluster.server().to_string(), in_endpoints: true, pod: None };
    let (slices, pods) = tokio::join!(read_endpoint_slices(cluster), read_control_plane_pods(cluster));
    let apiservers: Vec<ComponentPod> =
        pods.map(|p| p.into_iter().filter(|c| c.component == "kube-apiserver").collect()).unwrap_or_default();
    match slices {
        Ok(slices) => {
            let replicas = from_endpoints(&slices, &apiservers);
            if let Some(why) = direct_access_refused(cluster, &replicas).await {
                return Ok((vec![lb()], Some(why)));
            }
            if replicas.is_empty() {
                Ok((
                    vec![lb()],
                    Some("the kubernetes EndpointSlice lists no replica; reading the configured server".into()),
                ))
            } else {
                Ok((replicas, None))
            }
        }
        Err(e) if e.kind.is_unreachable() => Err(e),
        Err(e) => Ok((vec![lb()], Some(format!("replicas unknown ({}); reading the configured server only", e.what)))),
    }
}

/// A client for `replica` (the configured one when it is the configured server).
pub fn client_for(cluster: &Cluster, replica: &Replica) -> Result<Cluster> {
    if replica.url == cluster.server() { Ok(cluster.clone()) } else { cluster.for_server(&replica.url) }
}
