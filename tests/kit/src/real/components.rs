//! The command lines of the control-plane components, with the flags kubeadm gives them
//! (kubernetes `cmd/kubeadm/app/phases/controlplane/manifests.go`), adapted to several nodes on
//! one machine: each process binds its node's loopback address instead of 0.0.0.0/127.0.0.1.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::pki::NodePki;

/// What differs between the kube-apiservers of a scenario.
#[derive(Debug, Clone, Default)]
pub struct ApiserverTuning {
    /// `--max-requests-inflight` (kubeadm leaves the default, 400).
    pub max_requests_inflight: Option<u32>,
    /// `--max-mutating-requests-inflight` (default 200).
    pub max_mutating_requests_inflight: Option<u32>,
    /// More flags, `--name=value`.
    pub extra: Vec<String>,
}

/// Leader election timing of kube-controller-manager and kube-scheduler.
#[derive(Debug, Clone, Copy)]
pub struct LeaderElection {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElection {
    /// The components' defaults (15 s / 10 s / 2 s).
    pub const DEFAULT: LeaderElection = LeaderElection {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };

    /// Short enough that a test sees a lease go stale within seconds.
    pub const FAST: LeaderElection = LeaderElection {
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_secs(1),
    };

    fn flags(&self) -> Vec<String> {
        vec![
            "--leader-elect=true".into(),
            format!("--leader-elect-lease-duration={}s", self.lease_duration.as_secs()),
            format!("--leader-elect-renew-deadline={}s", self.renew_deadline.as_secs()),
            format!("--leader-elect-retry-period={}s", self.retry_period.as_secs()),
        ]
    }
}

pub struct ApiserverArgs<'a> {
    pub pki: &'a NodePki,
    pub ip: Ipv4Addr,
    /// `--advertise-address` (the node's address unless the replicas are made unreachable).
    pub advertise_ip: Ipv4Addr,
    pub port: u16,
    pub etcd_servers: &'a str,
    pub etcd_pki: &'a std::path::Path,
    pub tuning: &'a ApiserverTuning,
}

/// kube-apiserver's flags, in kubeadm's order.
pub fn apiserver(a: &ApiserverArgs) -> Vec<String> {
    let p = |f: &str| a.pki.arg(f);
    let etcd = |f: &str| a.etcd_pki.join(f).display().to_string();
    let mut v = vec![
        "kube-apiserver".to_string(),
        format!("--advertise-address={}", a.advertise_ip),
        "--allow-privileged=true".into(),
        "--authorization-mode=Node,RBAC".into(),
        format!("--bind-address={}", a.ip),
        format!("--client-ca-file={}", p("ca.crt")),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--enable-bootstrap-token-auth=true".into(),
        format!("--etcd-cafile={}", etcd("ca.crt")),
        format!("--etcd-certfile={}", p("apiserver-etcd-client.crt")),
        format!("--etcd-keyfile={}", p("apiserver-etcd-client.key")),
        format!("--etcd-servers={}", a.etcd_servers),
        // Webhooks and aggregated APIs are reached through their endpoints rather than their
        // ClusterIP (there is no kube-proxy here): a service without ready endpoints fails
        // without a dial, and nothing outside loopback is ever dialled.
        "--enable-aggregator-routing=true".into(),
        format!("--kubelet-client-certificate={}", p("apiserver-kubelet-client.crt")),
        format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
        format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
        format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
        "--requestheader-allowed-names=front-proxy-client".into(),
        format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        format!("--secure-port={}", a.port),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        format!("--tls-cert-file={}", p("apiserver.crt")),
        format!("--tls-private-key-file={}", p("apiserver.key")),
    ];
    if let Some(n) = a.tuning.max_requests_inflight {
        v.push(format!("--max-requests-inflight={n}"));
    }
    if let Some(n) = a.tuning.max_mutating_requests_inflight {
        v.push(format!("--max-mutating-requests-inflight={n}"));
    }
    v.extend(a.tuning.extra.iter().cloned());
    v
}

/// kube-controller-manager's flags.
pub fn controller_manager(pki: &NodePki, ip: Ipv4Addr, port: u16, election: LeaderElection) -> Vec<String> {
    let conf = pki.file("controller-manager.conf").display().to_string();
    let mut v = vec![
        "kube-controller-manager".to_string(),
        format!("--authentication-kubeconfig={conf}"),
        format!("--authorization-kubeconfig={conf}"),
        format!("--bind-address={ip}"),
        format!("--client-ca-file={}", pki.arg("ca.crt")),
        "--cluster-name=kubernetes".into(),
        format!("--cluster-signing-cert-file={}", pki.arg("ca.crt")),
        format!("--cluster-signing-key-file={}", pki.arg("ca.key")),
        "--controllers=*,bootstrapsigner,tokencleaner".into(),
        format!("--kubeconfig={conf}"),
        format!("--requestheader-client-ca-file={}", pki.arg("front-proxy-ca.crt")),
        format!("--root-ca-file={}", pki.arg("ca.crt")),
        format!("--secure-port={port}"),
        format!("--service-account-private-key-file={}", pki.arg("sa.key")),
        "--use-service-account-credentials=true".into(),
        // Not kubeadm's (it leaves 20/30): with a credential per controller, the default client
        // throttle spends ~4 s of every start creating service accounts and tokens before the
        // first ReplicaSet; nothing the plugins read depends on it.
        "--kube-api-qps=200".into(),
        "--kube-api-burst=400".into(),
    ];
    v.extend(election.flags());
    v
}

/// kube-scheduler's flags.
pub fn scheduler(pki: &NodePki, ip: Ipv4Addr, port: u16, election: LeaderElection) -> Vec<String> {
    let conf = pki.file("scheduler.conf").display().to_string();
    let mut v = vec![
        "kube-scheduler".to_string(),
        format!("--authentication-kubeconfig={conf}"),
        format!("--authorization-kubeconfig={conf}"),
        format!("--bind-address={ip}"),
        format!("--kubeconfig={conf}"),
        format!("--secure-port={port}"),
    ];
    v.extend(election.flags());
    v
}

/// kwok managing one node: its address and kubelet port, heartbeats, exec and port-forward.
/// Pods of node `index` get addresses from `10.244.<index>.0/24`: outside loopback, never dialled
/// (EndpointSlices refuse 127/8), and distinct per node as a CNI would make them.
pub fn kwok(
    kubeconfig: &str,
    config: &str,
    node: &str,
    ip: Ipv4Addr,
    port: u16,
    tls: (&str, &str),
    index: usize,
) -> Vec<String> {
    vec![
        "kwok".to_string(),
        format!("--kubeconfig={kubeconfig}"),
        format!("--config={config}"),
        format!("--manage-single-node={node}"),
        format!("--node-ip={ip}"),
        format!("--node-name={node}"),
        format!("--node-port={port}"),
        format!("--server-address={ip}:{port}"),
        format!("--tls-cert-file={}", tls.0),
        format!("--tls-private-key-file={}", tls.1),
        "--node-lease-duration-seconds=40".into(),
        format!("--cidr=10.244.{}.1/24", index % 250),
    ]
}
