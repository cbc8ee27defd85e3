//! A real control plane on loopback, shaped like a kubeadm cluster: etcd (3.6 built from its Go
//! module, or Debian's 3.4), one kube-apiserver per control-plane node behind a TCP load
//! balancer, kube-controller-manager and kube-scheduler with leader election, and kwok as the
//! kubelet of every node (heartbeats, pod status, and exec/port-forward routed to the processes
//! that run here). The binaries come from `dev/build-controlplane`.
//!
//! Node `cp-N` is the loopback address 127.0.0.(N+1); every component of that node binds it, and
//! runs in a UTS namespace named after the node (identity leases, leader holder identities).
//! Everything is stopped and the directory removed when the value is dropped.
//!
//! One thing a real cluster does that cannot happen on loopback: the API server refuses loopback
//! addresses in Endpoints and EndpointSlices (kubernetes `pkg/apis/core/validation`,
//! `ValidateEndpointIP`), so the `kubernetes` EndpointSlice stays without endpoints here and
//! webhook backends are reached through URL client configs (see `tests/kit/FIDELITY.md`).

pub mod api;
pub mod components;
pub mod load;
pub mod objects;
pub mod pki;
pub mod scenarios;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::etcd::{EtcdCluster, EtcdOptions, EtcdRelease};
use crate::net;
use crate::pki::{LeafSpec, Validity, client_spec, write_private};
use crate::process::ChildGuard;
use crate::webhook_backend::WebhookBackend;
pub use api::{Answer, KitClient, block};
pub use components::{ApiserverTuning, LeaderElection};
pub use objects::RealNode;
use pki::{ClusterPki, NodePki, NodePkiSpec};

/// The Kubernetes version the kit builds (tests/controlplane/go.mod).
pub const KUBERNETES_VERSION: &str = "v1.36.3";

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// How to start a real control plane.
#[derive(Debug, Clone)]
pub struct RealOptions {
    /// Kubeconfig cluster and context name.
    pub name: String,
    /// Control-plane nodes (1 to 3), each with an etcd member and a kube-apiserver.
    pub control_planes: usize,
    pub workers: usize,
    pub etcd: EtcdRelease,
    /// etcd's `--quota-backend-bytes` (0: etcd's default, 2 GiB).
    pub etcd_quota_backend_bytes: u64,
    pub apiserver: ApiserverTuning,
    pub leader_election: LeaderElection,
    /// Validity of the kube-apiserver serving certificates.
    pub serving_validity: Validity,
    /// Validity of the admin's client certificate in the kubeconfig.
    pub admin_validity: Validity,
    /// Validity of the etcd members' server certificates.
    pub etcd_server_validity: Validity,
    /// Where the kubeconfig goes (default: the cluster's temp dir).
    pub dir: Option<PathBuf>,
    /// Each kube-apiserver advertises an address that accepts connections and never answers
    /// (`--advertise-address`, hence the `kubernetes` EndpointSlice): replicas not reachable
    /// from this machine.
    pub unreachable_replicas: bool,
}

impl Default for RealOptions {
    fn default() -> Self {
        RealOptions {
            name: "real".into(),
            control_planes: 3,
            workers: 2,
            etcd: EtcdRelease::V3_6,
            etcd_quota_backend_bytes: 0,
            apiserver: ApiserverTuning::default(),
            leader_election: LeaderElection::FAST,
            serving_validity: Validity::days(365),
            admin_validity: Validity::days(365),
            etcd_server_validity: Validity::days(365),
            dir: None,
            unreachable_replicas: false,
        }
    }
}

/// The components of a node the kit can stop and start again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    Apiserver,
    ControllerManager,
    Scheduler,
    Kubelet,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::Apiserver => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Kubelet => "kwok",
        }
    }
}

struct Process {
    component: Component,
    node: usize,
    argv: Vec<String>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    guard: Option<ChildGuard>,
}

/// A running real control plane.
/// cert-manager's webhook, as every scenario has it: its Service, namespace and container port.
pub const CERT_MANAGER_WEBHOOK: &str = "cert-manager-webhook";
pub const CERT_MANAGER_NAMESPACE: &str = "cert-manager";
pub const CERT_MANAGER_WEBHOOK_PORT: u16 = 10250;

pub struct RealCluster {
    processes: Mutex<Vec<Process>>,
    claims: Mutex<Vec<net::PortClaim>>,
    pub nodes: Vec<RealNode>,
    /// The etcd members, one per control-plane node (same order).
    pub etcd: EtcdCluster,
    /// The user's kubeconfig: context `<name>` (admin through the load balancer) and
    /// `<name>-replica-N` (one replica directly).
    pub kubeconfig: PathBuf,
    pub context: String,
    /// `https://127.0.0.1:<port>`, the load balancer.
    pub lb_url: String,
    /// The port every kube-apiserver listens on (on its node's address).
    pub apiserver_port: u16,
    pub pki: ClusterPki,
    /// The kubeconfig admin's client certificate.
    pub admin: crate::pki::KeyedCert,
    /// Each control-plane node's `etc/kubernetes`.
    pub node_pki: Vec<NodePki>,
    pub options: RealOptions,
    /// The addresses the replicas advertise when they are not reachable from here.
    pub black_hole: Option<crate::black_hole::BlackHole>,
    /// cert-manager's webhook backend (on loopback, reached through port-forwards into its pods:
    /// the API server itself never calls it, its webhook matching only cert-manager's objects).
    pub cert_manager_webhook: WebhookBackend,
    client: KitClient,
    logs: PathBuf,
    /// Taken in `drop` (shut down in the background: the caller may be async).
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
    pub dir: PathBuf,
}

impl std::fmt::Debug for RealCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealCluster").field("lb_url", &self.lb_url).field("nodes", &self.nodes).finish_non_exhaustive()
    }
}

const CP_NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

/// A port free on every address, preferring `standard` when no other cluster claims it.
fn port_on(ips: &[Ipv4Addr], standard: u16, claims: &Mutex<Vec<net::PortClaim>>) -> std::io::Result<u16> {
    match net::claim_standard(ips, standard) {
        Some(claim) => {
            claims.lock().expect("claims lock").push(claim);
            Ok(standard)
        }
        None => net::free_port_on(ips),
    }
}

impl RealCluster {
    /// Starts the control plane and waits until it is ready: every replica's `/readyz`, nodes
    /// Ready, mirror pods Running, both leader leases held, one identity lease per replica.
    pub fn start(options: RealOptions) -> std::io::Result<RealCluster> {
        let started = Instant::now();
        let cps = options.control_planes.clamp(1, 3);
        for bin in ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"] {
            crate::binaries::controlplane(bin)?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let dir_guard = tempfile::Builder::new().prefix("cpkit-real-").tempdir()?;
        let dir = dir_guard.path().to_path_buf();
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;

        let mut nodes: Vec<RealNode> = (0..cps)
            .map(|i| RealNode { name: CP_NAMES[i].into(), ip: net::control_plane_ip(i), control_plane: true })
            .collect();
        for i in 0..options.workers {
            nodes.push(RealNode { name: format!("worker-{}", i + 1), ip: net::worker_ip(i), control_plane: false });
        }
        let cp_ips: Vec<Ipv4Addr> = nodes[..cps].iter().map(|n| n.ip).collect();

        // etcd: one member per control-plane node, on the node's address only (several members
        // share the port number, as on separate machines).
        let etcd = EtcdCluster::start(EtcdOptions {
            release: options.etcd,
            listen_on_localhost: false,
            standard_ports: true,
            members: cps,
            quota_backend_bytes: options.etcd_quota_backend_bytes,
            node_names: nodes[..cps].iter().map(|n| n.name.clone()).collect(),
            // kubeadm's etcd manifest has no --initial-cluster-token.
            cluster_token: String::new(),
            server_cert_validity: options.etcd_server_validity,
            ..EtcdOptions::default()
        })?;

        let claims = Mutex::new(Vec::new());
        let apiserver_port = port_on(&cp_ips, 6443, &claims)?;
        let lb_port = net::free_port()?;
        let lb_url = format!("https://127.0.0.1:{lb_port}");
        let pki = ClusterPki::new();
        let mut node_pki = Vec::new();
        for (i, node) in nodes[..cps].iter().enumerate() {
            let spec = NodePkiSpec {
                node: &node.name,
                ip: node.ip,
                local_apiserver: format!("https://{}:{apiserver_port}", node.ip),
                serving_validity: options.serving_validity,
            };
            let etc = etcd.members[i].node_root.join("etc/kubernetes");
            node_pki.push(pki::write_node(&pki, &etcd.ca.ca, &etc, &spec)?);
        }

        // The user's kubeconfig: a system:masters admin through the load balancer.
        let admin = pki.ca.issue(&client_spec("kubernetes-admin", &["system:masters"]), options.admin_validity);
        let kube_dir = options.dir.clone().unwrap_or_else(|| dir.clone());
        std::fs::create_dir_all(&kube_dir)?;
        let kubeconfig = kube_dir.join("kubeconfig");
        let replicas: Vec<String> = cp_ips.iter().map(|ip| format!("https://{ip}:{apiserver_port}")).collect();
        write_kubeconfig(&kubeconfig, &options.name, &lb_url, &replicas, &pki.ca.cert.cert_pem, &admin)?;
        let admin_file = dir.join("admin.kubeconfig");
        write_private(
            &admin_file,
            pki::kubeconfig("kubernetes", &lb_url, &pki.ca.cert.cert_pem, "kubernetes-admin", &admin).as_bytes(),
        )?;

        // Load balancer (kubeadm's controlPlaneEndpoint), checking each replica's /readyz as
        // kubeadm's HA guide configures HAProxy to.
        let backends: Vec<SocketAddr> = cp_ips.iter().map(|ip| SocketAddr::from((*ip, apiserver_port))).collect();
        let lb = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", lb_port)))?;
        let ready = crate::apiserver::lb::readyz_checker(&runtime, backends.clone());
        runtime.spawn(crate::apiserver::lb::run_checked(lb, backends, ready));

        let client = block(&runtime, KitClient::from_kubeconfig(&admin_file, Duration::from_secs(10)))?;
        let black_hole = if options.unreachable_replicas {
            Some(crate::black_hole::BlackHole::start(cps, apiserver_port)?)
        } else {
            None
        };
        let cert_manager_webhook =
            WebhookBackend::start(CERT_MANAGER_WEBHOOK, CERT_MANAGER_NAMESPACE, &[Ipv4Addr::LOCALHOST])?;
        let mut cluster = RealCluster {
            processes: Mutex::new(Vec::new()),
            claims,
            nodes,
            etcd,
            kubeconfig,
            context: options.name.clone(),
            lb_url,
            apiserver_port,
            pki,
            admin,
            node_pki,
            options,
            black_hole,
            cert_manager_webhook,
            client,
            logs,
            runtime: Some(runtime),
            _dir: dir_guard,
            dir,
        };
        cluster.start_apiservers()?;
        cluster.wait_for("every kube-apiserver's /readyz", Duration::from_secs(90), |c| {
            (0..cps).all(|i| c.replica_get(i, "/readyz").is_ok_and(|a| a.code == 200))
        })?;
        cluster.register_nodes()?;
        cluster.start_node_components()?;
        cluster.create_mirror_pods()?;
        cluster.create_cluster_objects()?;
        cluster.wait_ready(Duration::from_secs(90))?;
        if std::env::var_os("CPKIT_KIT_VERBOSE").is_some() {
            eprintln!("testkit: real control plane up in {:.1}s", started.elapsed().as_secs_f64());
        }
        Ok(cluster)
    }

    /// The admin client (system:masters through the load balancer).
    pub fn client(&self) -> &KitClient {
        &self.client
    }

    /// The cluster's runtime (its load balancer and load generators run there).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    /// Runs a future on the cluster's runtime.
    pub fn block<F: std::future::Future + Send>(&self, f: F) -> F::Output
    where
        F::Output: Send,
    {
        block(self.runtime.as_ref().expect("the runtime lives until drop"), f)
    }

    pub fn get(&self, path: &str) -> std::io::Result<Answer> {
        self.block(self.client.get(path))
    }

    pub fn create(&self, object: &Value) -> std::io::Result<Value> {
        let collection = api::collection_of(object)?;
        self.block(self.client.create(&collection, object))
    }

    pub fn merge_patch(&self, path: &str, patch: &Value) -> std::io::Result<Value> {
        self.block(self.client.merge_patch(path, patch))
    }

    pub fn delete(&self, path: &str) -> std::io::Result<()> {
        self.block(self.client.delete(path))
    }

    /// GET on one replica directly (not through the load balancer).
    pub fn replica_get(&self, index: usize, path: &str) -> std::io::Result<Answer> {
        let file = self.dir.join(format!("replica-{index}.kubeconfig"));
        if !file.exists() {
            let admin = self.pki.ca.issue(&client_spec("kubernetes-admin", &["system:masters"]), Validity::days(365));
            let url = format!("https://{}:{}", self.nodes[index].ip, self.apiserver_port);
            write_private(
                &file,
                pki::kubeconfig("kubernetes", &url, &self.pki.ca.cert.cert_pem, "kubernetes-admin", &admin).as_bytes(),
            )?;
        }
        self.block(async {
            let c = KitClient::from_kubeconfig(&file, Duration::from_secs(5)).await?;
            c.get(path).await
        })
    }

    /// Control-plane nodes.
    pub fn control_planes(&self) -> impl Iterator<Item = &RealNode> {
        self.nodes.iter().filter(|n| n.control_plane)
    }

    fn spawn(&self, p: &mut Process) -> std::io::Result<()> {
        let node = &self.nodes[p.node];
        let log_path = self.logs.join(format!("{}-{}.log", p.component.name(), node.name));
        let mut cmd = Command::new(&p.binary);
        cmd.args(&p.argv[1..]).stdin(Stdio::null());
        crate::process::capture_output(&mut cmd, &log_path, Some(&Self::cri_log(&log_path)))?;
        cmd.env_clear().env(crate::process::GO_GC.0, crate::process::GO_GC.1);
        for (k, v) in &p.env {
            cmd.env(k, v);
        }
        let name = format!("{}-{}", p.component.name(), node.name);
        p.guard = Some(ChildGuard::spawn_on_host(&name, &mut cmd, Some(&node.name))?);
        Ok(())
    }

    fn add_process(
        &self,
        component: Component,
        node: usize,
        argv: Vec<String>,
        env: Vec<(String, String)>,
    ) -> std::io::Result<()> {
        let binary = crate::binaries::controlplane(component.name())?;
        let mut p = Process { component, node, argv, binary, env, guard: None };
        self.spawn(&mut p)?;
        self.processes.lock().expect("processes lock").push(p);
        Ok(())
    }

    /// The address replica `i` advertises: its node's, or a black hole's.
    pub fn advertise_ip(&self, i: usize) -> std::net::Ipv4Addr {
        match &self.black_hole {
            Some(b) => b.ips[i],
            None => self.nodes[i].ip,
        }
    }

    fn apiserver_argv(&self, i: usize) -> Vec<String> {
        let m = &self.etcd.members[i];
        components::apiserver(&components::ApiserverArgs {
            pki: &self.node_pki[i],
            ip: self.nodes[i].ip,
            advertise_ip: self.advertise_ip(i),
            port: self.apiserver_port,
            etcd_servers: &m.local_client_url(),
            etcd_pki: &m.pki_dir(),
            tuning: &self.options.apiserver,
        })
    }

    fn start_apiservers(&self) -> std::io::Result<()> {
        for i in 0..self.etcd.members.len() {
            self.add_process(Component::Apiserver, i, self.apiserver_argv(i), vec![])?;
        }
        Ok(())
    }

    fn register_nodes(&mut self) -> std::io::Result<()> {
        for n in self.nodes.clone() {
            self.create(&objects::node(&n))?;
        }
        // kubeadm binds kubeadm:cluster-admins (admin.conf's group) to cluster-admin.
        self.create(&json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "kubeadm:cluster-admins"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubeadm:cluster-admins"}],
        }))?;
        Ok(())
    }

    /// The binaries a pod's image has, as a directory for kwok's PATH: exec "in the container"
    /// finds only these (the etcd 3.5 image has a shell, 3.6 none; see the simulator's images).
    fn image_bin_dir(&self, node: usize) -> std::io::Result<PathBuf> {
        let dir = self.dir.join("images").join(&self.nodes[node].name);
        std::fs::create_dir_all(&dir)?;
        let mut links: Vec<(&str, PathBuf)> = Vec::new();
        if self.nodes[node].control_plane {
            let release = self.options.etcd;
            links.push(("etcd", release.server()?));
            links.push(("etcdctl", release.etcdctl()?));
            if let Some(u) = release.etcdutl() {
                links.push(("etcdutl", u));
            }
            if release != EtcdRelease::V3_6 {
                // registry.k8s.io/etcd 3.4/3.5: a static bash as /bin/sh, no cat or tar.
                links.push(("sh", which::which("bash").map_err(io_err)?));
            }
        } else {
            for tool in ["sh", "cat", "tar", "ls", "echo", "sleep"] {
                if let Ok(p) = which::which(tool) {
                    links.push((tool, p));
                }
            }
        }
        for (name, target) in links {
            let link = dir.join(name);
            if !link.exists() {
                std::os::unix::fs::symlink(target, link)?;
            }
        }
        Ok(dir)
    }

    fn kwok_stages() -> std::io::Result<Vec<String>> {
        let dir = crate::binaries::kwok_stages_dir();
        let mut stages = Vec::new();
        for f in [
            "node-initialize.yaml",
            "node-heartbeat-with-lease.yaml",
            "pod-ready.yaml",
            "pod-complete.yaml",
            "pod-delete.yaml",
        ] {
            stages.push(std::fs::read_to_string(dir.join(f)).map_err(|e| {
                io_err(format!("{}: {e} (dev/build-controlplane copies kwok's stages there)", dir.join(f).display()))
            })?);
        }
        Ok(stages)
    }

    /// kube-controller-manager, kube-scheduler (control-plane nodes) and a kwok per node.
    fn start_node_components(&self) -> std::io::Result<()> {
        let stages = Self::kwok_stages()?;
        let election = self.options.leader_election;
        let admin_kubeconfig = self.dir.join("admin.kubeconfig").display().to_string();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.control_plane {
                let pki = &self.node_pki[i];
                let cm_port = port_on(&[node.ip], 10257, &self.claims)?;
                self.add_process(
                    Component::ControllerManager,
                    i,
                    components::controller_manager(pki, node.ip, cm_port, election),
                    vec![],
                )?;
                let sched_port = port_on(&[node.ip], 10259, &self.claims)?;
                self.add_process(
                    Component::Scheduler,
                    i,
                    components::scheduler(pki, node.ip, sched_port, election),
                    vec![],
                )?;
            }
            // kwok: the node's kubelet.
            let kwok_dir = self.dir.join("kwok").join(&node.name);
            std::fs::create_dir_all(&kwok_dir)?;
            let serving = self.pki.ca.issue(
                &LeafSpec {
                    common_name: format!("system:node:{}", node.name),
                    dns_names: vec![node.name.clone()],
                    ips: vec![std::net::IpAddr::V4(node.ip)],
                    server: true,
                    ..Default::default()
                },
                Validity::days(365),
            );
            serving.write(&kwok_dir, "kubelet")?;
            let routes = self.pod_routes(i);
            let config = kwok_dir.join("kwok.yaml");
            let forwards = [objects::NamespaceForward {
                namespace: CERT_MANAGER_NAMESPACE.into(),
                port: CERT_MANAGER_WEBHOOK_PORT,
                target: self.cert_manager_webhook.addrs[0],
            }];
            std::fs::write(&config, objects::kwok_config(&stages, &routes, &forwards))?;
            let port = port_on(&[node.ip], 10250, &self.claims)?;
            let tls = (
                kwok_dir.join("kubelet.crt").display().to_string(),
                kwok_dir.join("kubelet.key").display().to_string(),
            );
            let argv = components::kwok(
                &admin_kubeconfig,
                &config.display().to_string(),
                &node.name,
                node.ip,
                port,
                (&tls.0, &tls.1),
                i,
            );
            let path = self.image_bin_dir(i)?.display().to_string();
            self.add_process(
                Component::Kubelet,
                i,
                argv,
                vec![("PATH".into(), path), ("HOME".into(), kwok_dir.display().to_string())],
            )?;
        }
        Ok(())
    }

    /// Routes of the pods that have a process here: the control-plane components' logs, and
    /// exec and port-forward into the etcd member.
    fn pod_routes(&self, node: usize) -> Vec<objects::PodRoute> {
        let Some(m) = self.etcd.members.get(node).filter(|_| self.nodes[node].control_plane) else {
            return vec![];
        };
        let name = &self.nodes[node].name;
        let mut routes = vec![objects::PodRoute {
            namespace: "kube-system".into(),
            pod: format!("etcd-{name}"),
            logs_file: Some(Self::cri_log(m.log_path())),
            work_dir: m.node_root.display().to_string(),
            ports: vec![
                (m.client_port, SocketAddr::from((m.node_ip, m.client_port))),
                (m.metrics_port, SocketAddr::from((Ipv4Addr::LOCALHOST, m.metrics_port))),
            ],
        }];
        for c in [Component::Apiserver, Component::ControllerManager, Component::Scheduler] {
            routes.push(objects::PodRoute {
                namespace: "kube-system".into(),
                pod: format!("{}-{name}", c.name()),
                logs_file: Some(Self::cri_log(&self.logs.join(format!("{}-{name}.log", c.name())))),
                work_dir: String::new(),
                ports: vec![],
            });
        }
        routes
    }

    /// The CRI-format copy of a component's log, which kwok serves to `kubectl logs`.
    fn cri_log(log: &Path) -> PathBuf {
        log.with_extension("cri.log")
    }

    fn argv_of(&self, component: Component, node: usize) -> Vec<String> {
        let procs = self.processes.lock().expect("processes lock");
        procs.iter().find(|p| p.component == component && p.node == node).map(|p| p.argv.clone()).unwrap_or_default()
    }

    fn create_mirror_pods(&self) -> std::io::Result<()> {
        let version = KUBERNETES_VERSION;
        for (i, node) in self.control_planes().enumerate() {
            let uid = self.get(&format!("/api/v1/nodes/{}", node.name))?.body["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let m = &self.etcd.members[i];
            let etc = self.node_pki[i].root.display().to_string();
            let pki_dir = self.node_pki[i].pki().display().to_string();
            let mut etcd_cmd = vec!["etcd".to_string()];
            etcd_cmd.extend(m.args().iter().cloned());
            let client_url = m.client_url();
            let apiserver = self.argv_of(Component::Apiserver, i);
            let cm = self.argv_of(Component::ControllerManager, i);
            let sched = self.argv_of(Component::Scheduler, i);
            let flag_port = |argv: &[String]| {
                argv.iter().find_map(|a| a.strip_prefix("--secure-port=")).and_then(|p| p.parse().ok()).unwrap_or(0)
            };
            let pods = [
                objects::MirrorPod {
                    component: "etcd",
                    node,
                    node_uid: &uid,
                    image: self.options.etcd.image(),
                    command: &etcd_cmd,
                    host_paths: vec![
                        ("etcd-certs", m.pki_dir().display().to_string()),
                        ("etcd-data", m.data_dir().display().to_string()),
                    ],
                    annotations: vec![("kubeadm.kubernetes.io/etcd.advertise-client-urls", client_url)],
                    probe: Some(("/livez", m.metrics_port, "HTTP")),
                },
                objects::MirrorPod {
                    component: "kube-apiserver",
                    node,
                    node_uid: &uid,
                    image: &format!("registry.k8s.io/kube-apiserver:{version}"),
                    command: &apiserver,
                    host_paths: vec![("k8s-certs", pki_dir.clone()), ("ca-certs", "/etc/ssl/certs".into())],
                    annotations: vec![(
                        "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint",
                        format!("{}:{}", self.advertise_ip(i), self.apiserver_port),
                    )],
                    probe: Some(("/livez", self.apiserver_port, "HTTPS")),
                },
                objects::MirrorPod {
                    component: "kube-controller-manager",
                    node,
                    node_uid: &uid,
                    image: &format!("registry.k8s.io/kube-controller-manager:{version}"),
                    command: &cm,
                    host_paths: vec![
                        ("k8s-certs", pki_dir.clone()),
                        ("kubeconfig", format!("{etc}/controller-manager.conf")),
                    ],
                    annotations: vec![],
                    probe: Some(("/healthz", flag_port(&cm), "HTTPS")),
                },
                objects::MirrorPod {
                    component: "kube-scheduler",
                    node,
                    node_uid: &uid,
                    image: &format!("registry.k8s.io/kube-scheduler:{version}"),
                    command: &sched,
                    host_paths: vec![("kubeconfig", format!("{etc}/scheduler.conf"))],
                    annotations: vec![],
                    probe: Some(("/healthz", flag_port(&sched), "HTTPS")),
                },
            ];
            for pod in &pods {
                self.create(&objects::mirror_pod(pod))?;
            }
        }
        Ok(())
    }

    fn create_cluster_objects(&self) -> std::io::Result<()> {
        let endpoint = self.lb_url.trim_start_matches("https://").to_string();
        self.create(&objects::kubeadm_config(KUBERNETES_VERSION, &endpoint, &self.node_pki[0].pki()))?;
        Ok(())
    }

    fn wait_ready(&self, timeout: Duration) -> std::io::Result<()> {
        let cps = self.etcd.members.len();
        let nodes = self.nodes.len();
        self.wait_for("every node Ready", timeout, |c| {
            c.get("/api/v1/nodes").is_ok_and(|a| {
                let items = a.body["items"].as_array().cloned().unwrap_or_default();
                items.len() == nodes && items.iter().all(is_ready_node)
            })
        })?;
        // kwok (v0.8.0, pkg/kwok/controllers) skips a pod event as "read only" while its node's
        // lease is not yet in kwok's lease cache, and nothing revisits the pod: on a loaded
        // machine a mirror pod created in that window stays Pending. Touching it sends kwok a
        // fresh event, as any later update of the pod would.
        let mut last_nudge = Instant::now();
        let mut not_running = String::new();
        let waited = self.wait_for("the mirror pods Running", timeout, |c| {
            let Ok(answer) = c.get("/api/v1/namespaces/kube-system/pods?labelSelector=tier%3Dcontrol-plane") else {
                return false;
            };
            let items = answer.body["items"].as_array().cloned().unwrap_or_default();
            let pending: Vec<&str> = items
                .iter()
                .filter(|p| p["status"]["phase"] != "Running")
                .filter_map(|p| p["metadata"]["name"].as_str())
                .collect();
            if items.len() == 4 * cps && pending.is_empty() {
                return true;
            }
            not_running = format!("{} of {} mirror pods, not Running: {}", items.len(), 4 * cps, pending.join(", "));
            if last_nudge.elapsed() > Duration::from_secs(10) {
                last_nudge = Instant::now();
                for name in &pending {
                    eprintln!("testkit: {name} not Running after 10 s, touching it for kwok");
                    let touch = json!({"metadata": {"annotations": {
                        "cpkit.test/touched": format!("{:?}", std::time::SystemTime::now())
                    }}});
                    let _ = c.merge_patch(&format!("/api/v1/namespaces/kube-system/pods/{name}"), &touch);
                }
            }
            false
        });
        waited.map_err(|e| io_err(format!("{not_running}\n{e}")))?;
        self.wait_for("leader leases and identity leases", timeout, |c| {
            let held = ["kube-controller-manager", "kube-scheduler"].iter().all(|l| {
                c.get(&format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{l}"))
                    .is_ok_and(|a| a.code == 200 && a.body["spec"]["holderIdentity"].as_str().is_some_and(|h| !h.is_empty()))
            });
            let identities = c
                .get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases?labelSelector=apiserver.kubernetes.io%2Fidentity%3Dkube-apiserver")
                .map(|a| a.body["items"].as_array().map(|v| v.len()).unwrap_or(0))
                .unwrap_or(0);
            held && identities >= cps
        })?;
        Ok(())
    }

    /// Polls `ready` until it holds; on timeout, the error carries the components' log tails. A
    /// component that exits meanwhile is an error (use `wait_until` once a scenario breaks
    /// things on purpose).
    pub fn wait_for(&self, what: &str, timeout: Duration, ready: impl FnMut(&Self) -> bool) -> std::io::Result<()> {
        self.wait(what, timeout, true, ready)
    }

    /// Like `wait_for`, where components may exit (a leader that cannot renew its lease exits).
    pub fn wait_until(&self, what: &str, timeout: Duration, ready: impl FnMut(&Self) -> bool) -> std::io::Result<()> {
        self.wait(what, timeout, false, ready)
    }

    fn wait(
        &self,
        what: &str,
        timeout: Duration,
        strict: bool,
        mut ready: impl FnMut(&Self) -> bool,
    ) -> std::io::Result<()> {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            if ready(self) {
                if std::env::var_os("CPKIT_KIT_VERBOSE").is_some() {
                    eprintln!("testkit: waited {:.1}s for {what}", started.elapsed().as_secs_f64());
                }
                return Ok(());
            }
            if strict && let Some(dead) = self.exited_process() {
                return Err(io_err(format!(
                    "waiting for {what}: {dead} exited; its log:\n{}",
                    self.log_tail(&dead, 30)
                )));
            }
            if Instant::now() > deadline {
                return Err(io_err(format!(
                    "{what}: not within {timeout:?} (component logs: {})\n{}",
                    self.logs.display(),
                    self.error_lines(4)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Components whose process has exited, as (component, node index).
    pub fn exited(&self) -> Vec<(Component, usize)> {
        let mut procs = self.processes.lock().expect("processes lock");
        procs
            .iter_mut()
            .filter_map(|p| {
                let g = p.guard.as_mut()?;
                (!g.is_running()).then_some((p.component, p.node))
            })
            .collect()
    }

    fn exited_process(&self) -> Option<String> {
        let mut procs = self.processes.lock().expect("processes lock");
        procs.iter_mut().find_map(|p| {
            let g = p.guard.as_mut()?;
            (!g.is_running()).then(|| g.name().to_string())
        })
    }

    /// The last lines of a component's log (`kube-apiserver-cp-1`, ...).
    pub fn log_tail(&self, process: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.logs.join(format!("{process}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The last error lines of each component's log (klog `E...` lines), for failure messages.
    fn error_lines(&self, per_component: usize) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(&self.logs) else { return out };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().trim_end_matches(".log").to_string())
            .filter(|n| !n.ends_with(".cri"))
            .collect();
        names.sort();
        for name in names {
            let text = std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
            let errors: Vec<&str> = text
                .lines()
                .filter(|l| {
                    (l.starts_with('E') || l.starts_with('F') || l.contains(r#""level":"ERROR""#))
                        && !l.contains("may not be in the loopback range")
                })
                .collect();
            if !errors.is_empty() {
                out.push_str(&format!(
                    "--- {name}\n{}\n",
                    errors[errors.len().saturating_sub(per_component)..].join("\n")
                ));
            }
        }
        out
    }

    /// The process IDs of every running component and etcd member.
    pub fn pids(&self) -> Vec<u32> {
        let procs = self.processes.lock().expect("processes lock");
        let mut pids: Vec<u32> = procs.iter().filter_map(|p| p.guard.as_ref().and_then(|g| g.pid())).collect();
        pids.extend(self.etcd.pids());
        pids
    }

    /// Stops a component (SIGTERM, then SIGKILL): a crashed or stopped process on a node.
    pub fn stop(&self, component: Component, node: usize) {
        let mut procs = self.processes.lock().expect("processes lock");
        for p in procs.iter_mut().filter(|p| p.component == component && p.node == node) {
            if let Some(mut g) = p.guard.take() {
                g.terminate(Duration::from_secs(5));
            }
        }
    }

    /// Kills a component (SIGKILL): a crash, with no graceful hand-over.
    /// Lowers a running component's open-files limit (soft and hard) to what it holds now divided
    /// by `share`: it then uses `share` of its limit, as a process whose runtime set a low
    /// `LimitNOFILE` does once its connections grow. Returns (open, limit).
    pub fn squeeze_open_files(&self, component: Component, node: usize, share: f64) -> std::io::Result<(u64, u64)> {
        let procs = self.processes.lock().expect("processes lock");
        let pid = procs
            .iter()
            .find(|p| p.component == component && p.node == node)
            .and_then(|p| p.guard.as_ref())
            .and_then(|g| g.pid())
            .ok_or_else(|| std::io::Error::other(format!("{} on node {node} is not running", component.name())))?;
        let open = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
        let limit = (open as f64 / share).ceil() as u64;
        crate::process::set_open_files_limit(pid, limit)?;
        Ok((open, limit))
    }

    pub fn kill(&self, component: Component, node: usize) {
        let mut procs = self.processes.lock().expect("processes lock");
        for p in procs.iter_mut().filter(|p| p.component == component && p.node == node) {
            if let Some(mut g) = p.guard.take() {
                g.kill();
            }
        }
    }

    /// Starts a stopped component again with the same command line.
    pub fn restart(&self, component: Component, node: usize) -> std::io::Result<()> {
        let mut procs = self.processes.lock().expect("processes lock");
        for p in procs.iter_mut().filter(|p| p.component == component && p.node == node && p.guard.is_none()) {
            self.spawn(p)?;
        }
        Ok(())
    }

    /// Environment for commands run against this cluster: its kubeconfig, a private kubectl
    /// cache, and the etcd tools of its etcd release first on PATH (what an SRE restoring its
    /// snapshots uses: etcdutl and etcd 3.6 for a 3.6 cluster).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("KUBECONFIG".into(), self.kubeconfig.display().to_string()),
            ("KUBECACHEDIR".into(), self.dir.join("kube-cache").display().to_string()),
        ];
        if let Ok(tools) = self.etcd_tools_dir() {
            let path = std::env::var("PATH").unwrap_or_default();
            env.push(("PATH".into(), format!("{}:{path}", tools.display())));
        }
        env
    }

    /// A directory with this cluster's etcd, etcdctl and etcdutl (none for Debian's, on PATH).
    pub fn etcd_tools_dir(&self) -> std::io::Result<PathBuf> {
        let release = self.options.etcd;
        if release == EtcdRelease::Debian {
            return Err(io_err("Debian's etcd tools are on PATH"));
        }
        let dir = self.dir.join("etcd-tools");
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            let mut tools = vec![("etcd", release.server()?), ("etcdctl", release.etcdctl()?)];
            tools.extend(release.etcdutl().map(|u| ("etcdutl", u)));
            for (name, target) in tools {
                std::os::unix::fs::symlink(target, dir.join(name))?;
            }
        }
        Ok(dir)
    }

    /// Adds a client-certificate user (`CN=user, O=groups`) and a context `<name>-<user>` to the
    /// kubeconfig; returns the context name.
    pub fn add_user(&self, user: &str, groups: &[&str]) -> std::io::Result<String> {
        let cert = self.pki.ca.issue(&client_spec(user, groups), Validity::days(365));
        add_cert_user(&self.kubeconfig, &self.options.name, user, &cert)
    }

    pub fn root(&self) -> &Path {
        &self.dir
    }

    /// Adds a user authenticated by a service-account token (`default/<name>`) bound to a
    /// ClusterRole with `rules`, and a context `<name>-<user>`; returns the context and token.
    pub fn add_token_user(&self, name: &str, rules: Value) -> std::io::Result<(String, String)> {
        self.create(
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "default"}}),
        )?;
        self.create(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}))?;
        self.create(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]}))?;
        let answer = self.block(self.client.send(
            "POST",
            &format!("/api/v1/namespaces/default/serviceaccounts/{name}/token"),
            Some(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})),
            "application/json",
        ))?;
        let token = answer.body["status"]["token"]
            .as_str()
            .ok_or_else(|| io_err(format!("no token for {name}: {}", answer.body)))?
            .to_string();
        let mut doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&self.kubeconfig)?).map_err(io_err)?;
        let context = format!("{}-{name}", self.options.name);
        if let Some(users) = doc["users"].as_array_mut() {
            users.push(json!({"name": context, "user": {"token": token}}));
        }
        if let Some(contexts) = doc["contexts"].as_array_mut() {
            contexts.push(json!({"name": context, "context": {"cluster": self.options.name, "user": context}}));
        }
        write_private(&self.kubeconfig, serde_yaml::to_string(&doc).map_err(io_err)?.as_bytes())?;
        Ok((context, token))
    }

    /// Makes `context` the kubeconfig's current context.
    pub fn use_context(&self, context: &str) -> std::io::Result<()> {
        let mut doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&self.kubeconfig)?).map_err(io_err)?;
        doc["current-context"] = json!(context);
        write_private(&self.kubeconfig, serde_yaml::to_string(&doc).map_err(io_err)?.as_bytes())
    }

    /// The notAfter (Unix seconds) of the certificate replica `index` serves now.
    pub fn serving_not_after(&self, index: usize) -> Option<i64> {
        let url = format!("https://{}:{}", self.nodes[index].ip, self.apiserver_port);
        let mut config = kube::Config::new(url.parse().ok()?);
        config.accept_invalid_certs = true;
        let probe = self.block(cpkit::certs::probe_tls(&config, &url, Duration::from_secs(5))).ok()?;
        probe.leaf().map(|c| c.not_after.as_second())
    }
}

fn is_ready_node(n: &Value) -> bool {
    n["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn write_kubeconfig(
    path: &Path,
    name: &str,
    lb_url: &str,
    replicas: &[String],
    ca_pem: &str,
    admin: &crate::pki::KeyedCert,
) -> std::io::Result<()> {
    let mut clusters =
        vec![json!({"name": name, "cluster": {"server": lb_url, "certificate-authority-data": b64(ca_pem)}})];
    for (i, url) in replicas.iter().enumerate() {
        clusters.push(json!({"name": format!("{name}-replica-{}", i + 1), "cluster": {"server": url, "certificate-authority-data": b64(ca_pem)}}));
    }
    let doc = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": name, "preferences": {},
        "clusters": clusters,
        "users": [{"name": format!("{name}-admin"), "user": {"client-certificate-data": b64(&admin.cert_pem), "client-key-data": b64(&admin.key_pem)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": format!("{name}-admin")}}],
    });
    let text = serde_yaml::to_string(&doc).map_err(io_err)?;
    write_private(path, text.as_bytes())
}

fn add_cert_user(path: &Path, cluster: &str, user: &str, cert: &crate::pki::KeyedCert) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let mut doc: Value = serde_yaml::from_str(&text).map_err(io_err)?;
    let context = format!("{cluster}-{}", user.replace(':', "-"));
    if let Some(users) = doc["users"].as_array_mut() {
        users.push(json!({"name": context, "user": {"client-certificate-data": b64(&cert.cert_pem), "client-key-data": b64(&cert.key_pem)}}));
    }
    if let Some(contexts) = doc["contexts"].as_array_mut() {
        contexts.push(json!({"name": context, "context": {"cluster": cluster, "user": context}}));
    }
    write_private(path, serde_yaml::to_string(&doc).map_err(io_err)?.as_bytes())?;
    Ok(context)
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        // Nodes first, then controllers, then the API servers; etcd is dropped after.
        let mut procs = self.processes.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        procs.sort_by_key(|p| match p.component {
            Component::Kubelet => 0,
            Component::Scheduler | Component::ControllerManager => 1,
            Component::Apiserver => 2,
        });
        for p in &mut procs {
            if let Some(mut g) = p.guard.take() {
                g.kill();
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
