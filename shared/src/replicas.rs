//! Every API server replica: the addresses of the `kubernetes` EndpointSlice, plus replicas
//! whose kube-apiserver static pod exists but that left the EndpointSlice (down long enough).
//! APF state and counters are per replica, so views of them reach each one directly when its
//! address can be dialled from here, and go through the configured server when none can.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use std::time::Duration;

use crate::client::Cluster;
use crate::controlplane::ComponentPod;
use crate::error::{ErrorKind, Result};
use crate::liveness::{
    self, DEFAULT_RENEW_INTERVAL, IdentityLease, Liveness, PodFact, Reach, ReplicaFacts, lease_fact,
};
use crate::resources::Select;

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
pub fn from_endpoints(slices: &[EndpointSlice], apiservers: &[ComponentPod]) -> Vec<Replica> {
    let mut out: Vec<Replica> = Vec::new();
    for slice in slices {
        let port = slice.ports.iter().flatten().next().and_then(|p| p.port).unwrap_or(443);
        for ep in &slice.endpoints {
            for ip in &ep.addresses {
                let host = if ip.contains(':') { format!("[{ip}]") } else { ip.clone() };
                let pod = apiservers.iter().find(|p| {
                    p.flags.get("advertise-address") == Some(ip.as_str()) || p.host_ip.as_deref() == Some(ip.as_str())
                });
                out.push(Replica {
                    name: pod.map(|p| p.node.clone()).or_else(|| ep.node_name.clone()).unwrap_or_else(|| ip.clone()),
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
pub async fn read_endpoint_slices(cluster: &Cluster) -> Result<Vec<EndpointSlice>> {
    cluster.list(Select::namespace("default").labels("kubernetes.io/service-name=kubernetes")).await
}

/// The control-plane static pods of kube-system (kubeadm labels them tier=control-plane).
pub async fn read_control_plane_pods(cluster: &Cluster) -> Result<Vec<ComponentPod>> {
    let pods: Vec<Pod> = cluster.list(Select::namespace("kube-system").labels("tier=control-plane")).await?;
    Ok(pods.iter().filter_map(ComponentPod::from_pod).collect())
}

/// The identity leases of the API server replicas (kube-system).
pub async fn read_identity_leases(cluster: &Cluster) -> Result<Vec<IdentityLease>> {
    let leases: Vec<Lease> = cluster
        .list(Select::namespace("kube-system").labels("apiserver.kubernetes.io/identity=kube-apiserver"))
        .await?;
    Ok(leases.iter().filter_map(IdentityLease::from_lease).collect())
}

/// Dials `url` with the kubeconfig's trust, within `timeout` (connect and TLS handshake); the
/// handshake's certificates come back too, so that nobody dials the replica for them again.
pub async fn reach(cluster: &Cluster, url: &str, timeout: Duration) -> (Reach, Option<crate::certs::TlsProbe>) {
    let reach = match crate::certs::probe_tls(cluster.config(), url, timeout).await {
        Ok(probe) => {
            let reach = match &probe.verification_error {
                // An expired certificate is still this cluster's replica: the certificate checks say so.
                Some(e) if !e.contains("expired") => Reach::OtherCa(e.clone()),
                _ => Reach::Answered,
            };
            return (reach, Some(probe));
        }
        Err(e) if e.kind == ErrorKind::TlsUnknownAuthority || e.kind == ErrorKind::TlsBadName => Reach::OtherCa(e.why),
        Err(e) if e.kind == ErrorKind::ConnectionRefused => Reach::Refused,
        Err(e) if e.kind == ErrorKind::Timeout => {
            Reach::NotReachable(format!("no answer within {}", crate::duration::short_limit(timeout)))
        }
        Err(e) => Reach::NotReachable(e.why),
    };
    (reach, None)
}

/// One replica with what the API and a dial from here say about it.
#[derive(Debug, Clone)]
pub struct SurveyedReplica {
    pub replica: Replica,
    pub facts: ReplicaFacts,
    pub liveness: Liveness,
    /// The certificates its TLS handshake showed, when it answered.
    pub tls: Option<crate::certs::TlsProbe>,
}

/// Every replica judged alive or down, and where per-replica reads (health, /metrics, APF
/// dumps) go.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub replicas: Vec<SurveyedReplica>,
    /// Why per-replica reads go through the configured server instead of each replica: none is
    /// reachable from here, a proxy with its own CA, the replicas cannot be listed.
    pub read_through: Option<String>,
    /// Whether identity leases were readable (liveness then rests on them).
    pub leases_read: bool,
    /// Why the replicas could not be listed (a missing permission, an error answer).
    pub listing_error: Option<crate::error::Error>,
}

impl Survey {
    /// Where per-replica reads go: each reachable replica, else the configured server.
    pub fn targets(&self, cluster: &Cluster) -> Vec<Replica> {
        let reachable: Vec<Replica> = if self.read_through.is_some() {
            Vec::new()
        } else {
            self.replicas.iter().filter(|r| r.liveness == Liveness::Reachable).map(|r| r.replica.clone()).collect()
        };
        if reachable.is_empty() { vec![configured_server(cluster)] } else { reachable }
    }
}

/// The configured server, as the one replica it leads to.
pub fn configured_server(cluster: &Cluster) -> Replica {
    Replica { name: "api".into(), url: cluster.server().to_string(), in_endpoints: true, pod: None }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// Judges every replica from its lease, EndpointSlice entry and pod, dialling each address
/// once, all at once, within `replica_timeout`: a black-holed address costs that once.
/// `apiservers` (the kube-apiserver static pods) is read alongside the EndpointSlice and the
/// leases: one round trip, not two.
pub async fn survey(
    cluster: &Cluster,
    apiservers: impl std::future::Future<Output = Vec<ComponentPod>>,
    replica_timeout: Duration,
) -> Result<Survey> {
    let (slices, leases, apiservers) =
        tokio::join!(read_endpoint_slices(cluster), read_identity_leases(cluster), apiservers);
    let apiservers = apiservers.as_slice();
    let slices = match slices {
        Ok(s) => s,
        Err(e) if e.kind.is_unreachable() => return Err(e),
        Err(e) => {
            return Ok(Survey {
                read_through: Some(format!("replicas unknown ({}); reading the configured server only", e.what)),
                listing_error: Some(e),
                ..Survey::default()
            });
        }
    };
    let replicas = from_endpoints(&slices, apiservers);
    if replicas.is_empty() {
        return Ok(Survey {
            read_through: Some("the kubernetes EndpointSlice lists no replica; reading the configured server".into()),
            ..Survey::default()
        });
    }
    let leases = leases.ok();
    let now = jiff::Timestamp::now();
    let endpoints_maintained = replicas.iter().any(|r| r.in_endpoints);
    let reaches = futures::future::join_all(replicas.iter().map(|r| reach(cluster, &r.url, replica_timeout))).await;
    let surveyed: Vec<SurveyedReplica> = replicas
        .into_iter()
        .zip(reaches)
        .map(|(replica, (reach, tls))| {
            let pod = replica.pod.as_ref().and_then(|name| apiservers.iter().find(|p| &p.name == name));
            let pod_fact = match pod {
                None => PodFact::Unknown,
                Some(p) => match (&p.waiting_reason, p.phase.as_str()) {
                    (Some(why), _) => PodFact::NotRunning(format!("{why}, {} restarts", p.restarts)),
                    (None, "Running") => PodFact::Running,
                    (None, phase) => PodFact::NotRunning(phase.to_string()),
                },
            };
            let facts = ReplicaFacts {
                name: replica.name.clone(),
                address: host_port(&replica.url),
                in_endpoints: replica.in_endpoints,
                endpoints_maintained,
                lease: lease_fact(leases.as_deref(), &replica.name, now, DEFAULT_RENEW_INTERVAL),
                pod: pod_fact,
                reach,
            };
            let liveness = liveness::judge(&facts);
            SurveyedReplica { replica, facts, liveness, tls }
        })
        .collect();
    let server = cluster.server();
    let read_through = if let Some(other) = surveyed.iter().find_map(|r| match &r.facts.reach {
        Reach::OtherCa(why) => Some((r.replica.name.clone(), why.clone())),
        _ => None,
    }) {
        Some(format!(
            "the replicas' certificates do not verify with the kubeconfig's CA ({}: {}): {server} is a proxy or load balancer with its own certificate, so the replicas are read through it",
            other.0, other.1
        ))
    } else if !surveyed.iter().any(|r| r.liveness == Liveness::Reachable) {
        Some(format!(
            "no replica's own address is reachable from this machine: read through {server}, one replica's view"
        ))
    } else {
        None
    };
    Ok(Survey {
        replicas: surveyed,
        read_through,
        leases_read: leases.is_some_and(|l| !l.is_empty()),
        listing_error: None,
    })
}

/// The replicas of `cluster` judged alive or down (what APF views read from: see
/// [`Survey::targets`]). A server that cannot be reached at all is an error: reading it again for
/// each replica would only multiply the wait.
pub async fn discover(cluster: &Cluster, replica_timeout: Duration) -> Result<Survey> {
    let apiservers = async {
        read_control_plane_pods(cluster)
            .await
            .map(|p| p.into_iter().filter(|c| c.component == "kube-apiserver").collect())
            .unwrap_or_default()
    };
    survey(cluster, apiservers, replica_timeout).await
}

impl Survey {
    /// The replicas judged down, with the evidence.
    pub fn down(&self) -> Vec<(Replica, String)> {
        self.replicas
            .iter()
            .filter_map(|r| match &r.liveness {
                Liveness::Down { detail, .. } => Some((r.replica.clone(), detail.clone())),
                _ => None,
            })
            .collect()
    }
}

/// A client for `replica` (the configured one when it is the configured server).
pub fn client_for(cluster: &Cluster, replica: &Replica) -> Result<Cluster> {
    if replica.url == cluster.server() { Ok(cluster.clone()) } else { cluster.for_server(&replica.url) }
}
