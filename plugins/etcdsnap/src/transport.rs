//! How etcdsnap reaches etcd: a port-forward through the API server to a member's client port
//! (a local listener hands each gRPC connection its own tunnel), `etcdctl` exec'd in the member's
//! pod, or direct gRPC to `--endpoints` with certificate flags.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpkit::Cluster;
use cpkit::error::{Error, ErrorKind, Result};
use cpkit::etcd::direct::{EtcdTls, EtcdTlsArgs, connect};
use cpkit::etcd::pods::{EtcdPod, find};
use cpkit::resources::Select;
use cpkit::stream::{Tunnel, port_forward};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// port-forward when allowed, else exec
    Auto,
    /// gRPC through a port-forward to the member's client port
    PortForward,
    /// etcdctl inside the member's pod (the file stays on its node)
    Exec,
    /// gRPC to --endpoints with certificate flags (on a control-plane node or bastion)
    Direct,
}

impl Via {
    pub fn name(self) -> String {
        cpkit::cli::value_name(&self)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RouteArgs {
    /// How to reach etcd
    #[arg(long, value_enum, default_value_t = Via::Auto, help_heading = "etcd connection")]
    pub via: Via,

    /// The member to use (its name, pod or node; default: a healthy follower)
    #[arg(long, value_name = "NAME", help_heading = "etcd connection")]
    pub member: Option<String>,

    /// etcd client URLs for --via direct (e.g. https://10.0.0.1:2379)
    #[arg(long, value_delimiter = ',', value_name = "URLS", help_heading = "etcd connection")]
    pub endpoints: Vec<String>,

    #[command(flatten)]
    pub tls: EtcdTlsArgs,
}

impl RouteArgs {
    pub fn is_direct(&self) -> bool {
        self.via == Via::Direct || (self.via == Via::Auto && !self.endpoints.is_empty())
    }
}

/// A resolved way to one member.
pub struct Route {
    pub via: Via,
    /// The URL the gRPC client dials.
    pub endpoint: String,
    /// What to show: the member's pod and transport, or the URL.
    pub endpoint_label: String,
    pub member: String,
    /// The kubeconfig cluster name (for file names), empty for direct.
    pub cluster_name: String,
    pub kubernetes_version: Option<String>,
    pub pod: Option<EtcdPod>,
    tls: Option<EtcdTls>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Route {
    pub async fn client(&self, timeout: Duration) -> Result<etcd_client::Client> {
        let tls = self.tls.clone().unwrap_or(EtcdTls { ca_pem: None, cert_pem: None, key_pem: None });
        connect(std::slice::from_ref(&self.endpoint), &tls, timeout.min(Duration::from_secs(30))).await
    }

    pub fn close(&self) {
        if let Some(f) = &self.forwarder {
            f.abort();
        }
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        self.close();
    }
}

/// Picks the member's pod: `--member` (member, pod or node name), else the first running one.
pub fn pick_pod(pods: &[EtcdPod], wanted: Option<&str>) -> Result<EtcdPod> {
    if let Some(w) = wanted {
        return pods.iter().find(|p| p.member == w || p.pod.name == w || p.pod.node == w).cloned().ok_or_else(|| {
            Error::usage(
                format!("No etcd member {w:?}"),
                format!("The members are: {}.", pods.iter().map(|p| p.member.as_str()).collect::<Vec<_>>().join(", ")),
            )
        });
    }
    pods.iter().find(|p| p.is_running()).or(pods.first()).cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            "No etcd pods in kube-system (label component=etcd)",
            "the cluster's etcd is not run as kubeadm static pods (a managed cluster, or external etcd)",
            "Use --via direct --endpoints https://HOST:2379 with --etcd-cacert/--etcd-cert/--etcd-key on a machine that reaches etcd.",
        )
    })
}

/// The etcd pods; none on a managed control plane is said as such (the provider runs etcd, out of
/// reach: no endpoint to pass to --via direct either).
pub async fn find_pods(cluster: &Cluster) -> Result<Vec<EtcdPod>> {
    let pods = find(cluster).await?;
    if !pods.is_empty() {
        return Ok(pods);
    }
    let (version, nodes) =
        tokio::join!(kubernetes_version(cluster), cluster.first::<k8s_openapi::api::core::v1::Node>(Select::all(), 5));
    let labels: Vec<String> = nodes
        .map(|nodes| nodes.into_iter().flat_map(|n| n.metadata.labels.unwrap_or_default().into_keys()).collect())
        .unwrap_or_default();
    match cpkit::controlplane::detect_provider(version.as_deref().unwrap_or(""), &labels) {
        Some(provider) => Err(Error::new(
            ErrorKind::Config,
            format!("etcd is not reachable on a managed control plane ({})", provider.name()),
            "the provider runs etcd privately: no etcd pods, and no endpoint a client may dial",
            "The provider backs etcd up itself; for your objects use Velero or your GitOps repository. `kubectl cphealth` still checks what the API shows.",
        )),
        None => Ok(pods),
    }
}

/// Listens on 127.0.0.1 and carries each accepted connection through its own tunnel; the first
/// tunnel is opened now, so a refused port-forward is reported before anything else happens.
pub async fn forward(
    cluster: &Cluster,
    pod: &EtcdPod,
    timeout: Duration,
) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let port = pod.client_port.unwrap_or(2379);
    let first = port_forward(cluster, &pod.pod.namespace, &pod.pod.name, port, timeout).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::io("Cannot listen on 127.0.0.1 for the port-forward", &e))?;
    let local = listener.local_addr().map_err(|e| Error::io("Cannot read the local port", &e))?;
    let pending: Arc<Mutex<Option<Tunnel>>> = Arc::new(Mutex::new(Some(first)));
    let cluster = cluster.clone();
    let (ns, name) = (pod.pod.namespace.clone(), pod.pod.name.clone());
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let reuse = pending.lock().ok().and_then(|mut p| p.take());
            let (cluster, ns, name) = (cluster.clone(), ns.clone(), name.clone());
            tokio::spawn(async move {
                let tunnel = match reuse {
                    Some(t) => Ok(t),
                    None => port_forward(&cluster, &ns, &name, port, timeout).await,
                };
                if let Ok(mut t) = tunnel {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut t.stream).await;
                    t.abort();
                }
            });
        }
    });
    Ok((format!("https://127.0.0.1:{}", local.port()), task))
}

async fn kubernetes_version(cluster: &Cluster) -> Option<String> {
    cluster.version().await.ok().map(|v| v.git_version).filter(|v| !v.is_empty())
}

/// Resolves `--via` into a route to one member.
pub async fn resolve(cluster: Option<&Cluster>, args: &RouteArgs, timeout: Duration) -> Result<Route> {
    if args.is_direct() {
        if args.endpoints.is_empty() {
            return Err(Error::usage(
                "--via direct needs --endpoints",
                "e.g. --endpoints https://127.0.0.1:2379 --etcd-cacert ca.crt --etcd-cert c.crt --etcd-key c.key",
            ));
        }
        let tls = EtcdTls::load(&args.tls)?;
        let endpoint = args.endpoints[0].clone();
        return Ok(Route {
            via: Via::Direct,
            endpoint_label: endpoint.clone(),
            endpoint,
            member: String::new(),
            cluster_name: String::new(),
            kubernetes_version: None,
            pod: None,
            tls: Some(tls),
            forwarder: None,
        });
    }
    let cluster =
        cluster.ok_or_else(|| Error::usage("This transport needs a kubeconfig", "Use --via direct --endpoints ..."))?;
    let (pods, version) = tokio::join!(find_pods(cluster), kubernetes_version(cluster));
    let pods = pods?;
    let mut pod = pick_pod(&pods, args.member.as_deref())?;
    let cluster_name = cluster.info.context.clone();
    let exec_route = |pod: EtcdPod| Route {
        via: Via::Exec,
        endpoint: pod.local_client_url.clone().unwrap_or_default(),
        endpoint_label: format!("kube-system/{} (exec)", pod.pod.name),
        member: pod.member.clone(),
        cluster_name: cluster_name.clone(),
        kubernetes_version: version.clone(),
        pod: Some(pod),
        tls: None,
        forwarder: None,
    };
    if args.via == Via::Exec {
        return Ok(exec_route(pod));
    }
    let (endpoint, task) = match forward(cluster, &pod, timeout).await {
        Ok(x) => x,
        Err(e) if args.via == Via::Auto && e.kind == ErrorKind::Forbidden => {
            cpkit::cli::note(&format!("port-forward is not permitted ({}); using exec in the pod instead", e.what));
            return Ok(exec_route(pod));
        }
        Err(e) => return Err(e),
    };
    let tls = match crate::save::tls_for(cluster, &pod, &args.tls, timeout).await {
        Ok(t) => t,
        Err(e) if args.via == Via::Auto => {
            fall_back_note(&e, "using exec in the pod instead");
            task.abort();
            return Ok(exec_route(pod));
        }
        Err(e) => return Err(e),
    };
    let mut route = Route {
        via: Via::PortForward,
        endpoint_label: format!("kube-system/{} (port-forward)", pod.pod.name),
        endpoint,
        member: pod.member.clone(),
        cluster_name,
        kubernetes_version: version,
        pod: Some(pod.clone()),
        tls: Some(tls),
        forwarder: Some(task),
    };
    // Prefer a follower: a snapshot loads the member that serves it.
    if args.member.is_none() && pods.len() > 1 {
        let mut client = route.client(timeout).await?;
        if let Ok(status) = client.status().await
            && status.header().map(etcd_client::ResponseHeader::member_id) == Some(status.leader())
            && let Ok(list) = client.member_list().await
        {
            let follower = list
                .members()
                .iter()
                .filter(|m| m.id() != status.leader())
                .find_map(|m| pods.iter().find(|p| p.member == m.name() && p.is_running()))
                .cloned();
            if let Some(f) = follower {
                route.close();
                let (endpoint, task) = forward(cluster, &f, timeout).await?;
                pod = f;
                route.endpoint = endpoint;
                route.forwarder = Some(task);
                route.endpoint_label = format!("kube-system/{} (port-forward)", pod.pod.name);
                route.member = pod.member.clone();
                route.pod = Some(pod);
            }
        }
    }
    Ok(route)
}

/// Says that the preferred route failed, why, what is used instead, and how to get the preferred
/// route next time (the error's fix, when it has one).
pub fn fall_back_note(e: &Error, instead: &str) {
    let how = if e.fix.is_empty() { String::new() } else { format!(" {}", e.fix) };
    cpkit::cli::note(&format!("{} ({}); {instead}.{how}", e.what, e.why));
}
