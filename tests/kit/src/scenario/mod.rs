//! Named scenarios, in two worlds: the simulated API server over a real etcd cluster, or the
//! real control plane (`crate::real`). Each is set up the way a cluster looks in one of the
//! runbooks' situations. `healthy-ha` is the base; every other scenario is `healthy-ha` with one
//! thing broken (except `managed` and `large-cluster`, which differ in shape and, with
//! `etcd-bloated`, run on the simulator only).

pub mod world;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::SignedDuration;
use serde_json::json;

use crate::apiserver::apf::{ApfModel, LevelState, RequestState};
use crate::apiserver::metrics::{Extra, LoadProfile, MetricsModel};
use crate::apiserver::registry::Flowcontrol;
use crate::apiserver::streaming::Image;
use crate::apiserver::{
    HealthModel, KubeVersion, ReplicaSpec, Rule, ServingCert, SimApiServer, SimConfig, SimParts, User,
};
use crate::etcd::{EtcdCluster, EtcdOptions};
use crate::etcd_data::{Inventory, LoadSpec};
use crate::pki::{Ca, Validity};
use crate::webhook_backend::WebhookBackend;
use world::{Capture, EtcdEndpoint, NodeSpec, SimWorld};

/// Which control plane runs a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum World {
    /// The simulated kube-apiserver (fast; states one machine cannot reach) over real etcd.
    Sim,
    /// The real control plane built from the Kubernetes and etcd Go modules.
    Real,
}

impl World {
    pub fn name(self) -> String {
        cpkit::cli::value_name(&self)
    }

    /// True when `scenario` can run in this world.
    pub fn supports(self, scenario: Scenario) -> bool {
        match self {
            World::Sim => true,
            World::Real => crate::real::scenarios::supports(scenario),
        }
    }
}

/// The scenarios of the test kit (`democluster --list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// 3 control-plane nodes, 3 etcd members, 2 workers, everything healthy.
    HealthyHa,
    /// The etcd member of the third control-plane node is down (quorum kept).
    EtcdMemberDown,
    /// etcd reached its quota: the NOSPACE alarm is raised and writes fail.
    EtcdNospace,
    /// A large, fragmented etcd database near its quota, and slow etcd requests.
    EtcdBloated,
    /// The API server's serving certificate expires in 20 days, the admin's client certificate in
    /// 25, the etcd members' server certificates in 18.
    CertsExpiring,
    /// The API server's serving certificate expired 3 days ago.
    CertsExpired,
    /// A Fail webhook matching every resource whose only backend pod was OOM-killed; cp-2's
    /// kube-scheduler restarted meanwhile, and its mirror pod cannot be re-created.
    WebhookLockout,
    /// A monitoring service account floods LISTs; its priority level rejects requests.
    ApfOverload,
    /// The API server replica of the third control-plane node is down.
    ApiserverReplicaDown,
    /// Every kube-scheduler crash-loops: its leader lease is stale.
    LeaderLost,
    /// metrics.k8s.io is unavailable (its backend is down).
    AggregatedApiDown,
    /// The API server of cp-2 runs out of file descriptors (simulated: 63,900 of 65,536 open; real:
    /// started with a low open-files limit).
    ApiserverFdsExhausted,
    /// An EKS-like managed cluster: no control-plane pods, no etcd access.
    Managed,
    /// The kubeconfig's user may read little (no leases, /metrics, exec, webhooks).
    RbacLimited,
    /// 5000 nodes and 50,000 pods.
    LargeCluster,
}

impl Scenario {
    /// Its name on the command line (`healthy-ha`).
    pub fn name(self) -> String {
        cpkit::cli::value_name(&self)
    }

    pub fn all() -> &'static [Scenario] {
        <Scenario as clap::ValueEnum>::value_variants()
    }
}

/// What a scenario did, for tests to assert against.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub control_plane_nodes: Vec<String>,
    pub worker_nodes: Vec<String>,
    pub down_etcd_member: Option<String>,
    pub down_replica: Option<String>,
    /// (configuration, webhook) at fault.
    pub lockout_webhook: Option<(String, String)>,
    /// A kube-system mirror pod the kubelet cannot recreate while the lockout webhook refuses it.
    pub refused_mirror_pod: Option<String>,
    pub flooding_user: Option<String>,
    /// The replica the flood lands on (real world: one; the simulator weighs replica 0 most).
    pub hot_replica: Option<String>,
    pub stale_lease: Option<String>,
    pub unavailable_apiservice: Option<String>,
    pub serving_cert_not_after: Option<jiff::Timestamp>,
    /// When the etcd members' server certificates expire, where a scenario shortened them.
    pub etcd_cert_not_after: Option<jiff::Timestamp>,
    pub etcd_inventory: Option<Inventory>,
    /// The context whose user is the scenario's limited user, if any.
    pub limited_context: Option<String>,
    /// The replica short of file descriptors.
    pub fd_short_replica: Option<String>,
    /// The addresses the replicas advertise when they are not reachable from here.
    pub unreachable_replica_addresses: Vec<String>,
}

/// Options beyond the scenario.
#[derive(Debug, Clone)]
pub struct Options {
    pub world: World,
    /// Kubernetes minor version simulated (the capture used is the nearest of 1.31–1.34); the
    /// real world runs the version it was built with.
    pub minor: u32,
    /// Directory for the kubeconfig (default: a temp dir owned by the cluster).
    pub dir: Option<PathBuf>,
    /// The replicas advertise addresses that accept connections and never answer (a bastion,
    /// a private endpoint): alive, but not reachable from this machine.
    pub unreachable_replicas: bool,
    /// The etcd that runs (default: the world's own, Debian's 3.4 under the simulator, 3.6 in
    /// the real world).
    pub etcd: Option<crate::etcd::EtcdRelease>,
}

impl Default for Options {
    fn default() -> Self {
        Options { world: World::Sim, minor: 33, dir: None, unreachable_replicas: false, etcd: None }
    }
}

/// A running scenario in either world, with its kubeconfig.
pub struct DemoCluster {
    pub world: World,
    pub scenario: Scenario,
    pub facts: Facts,
    pub kubeconfig: PathBuf,
    pub context: String,
    backend: Backend,
    pub dir: PathBuf,
}

enum Backend {
    Sim(Box<SimBackend>),
    Real(Box<crate::real::RealCluster>),
}

struct SimBackend {
    apiserver: SimApiServer,
    _black_hole: Option<crate::black_hole::BlackHole>,
    etcd: Option<EtcdCluster>,
    _webhook_backends: Vec<WebhookBackend>,
    _dir: Option<tempfile::TempDir>,
}

const CP_NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

fn kubeadm_config(minor: u32, port: u16) -> String {
    format!(
        "apiServer: {{}}\napiVersion: kubeadm.k8s.io/v1beta4\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrolPlaneEndpoint: 127.0.0.1:{port}\ncontrollerManager: {{}}\ndns: {{}}\nencryptionAlgorithm: RSA-2048\netcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: v1.{minor}.0\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\nproxy: {{}}\nscheduler: {{}}\n"
    )
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl DemoCluster {
    /// Starts `scenario` on the simulated API server. Everything is torn down when the value is
    /// dropped.
    pub fn start(scenario: Scenario) -> std::io::Result<DemoCluster> {
        DemoCluster::start_with(scenario, Options::default())
    }

    /// Starts `scenario` in `world`.
    pub fn start_in(world: World, scenario: Scenario) -> std::io::Result<DemoCluster> {
        DemoCluster::start_with(scenario, Options { world, ..Options::default() })
    }

    pub fn start_with(scenario: Scenario, options: Options) -> std::io::Result<DemoCluster> {
        match options.world {
            World::Sim => DemoCluster::start_sim(scenario, options),
            World::Real => {
                let (cluster, facts) = crate::real::scenarios::start(scenario, &options)?;
                let context = facts.limited_context.clone().unwrap_or_else(|| scenario.name().to_string());
                Ok(DemoCluster {
                    world: World::Real,
                    scenario,
                    facts,
                    kubeconfig: cluster.kubeconfig.clone(),
                    context,
                    dir: cluster
                        .kubeconfig
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| cluster.root().to_path_buf()),
                    backend: Backend::Real(Box::new(cluster)),
                })
            }
        }
    }

    /// The simulated API server. Panics in the real world: tests that reach into the simulator
    /// run there only.
    pub fn apiserver(&self) -> &SimApiServer {
        match &self.backend {
            Backend::Sim(sim) => &sim.apiserver,
            Backend::Real(_) => panic!("the simulated API server exists in the sim world only"),
        }
    }

    /// The real control plane, in the real world.
    pub fn real(&self) -> Option<&crate::real::RealCluster> {
        match &self.backend {
            Backend::Real(r) => Some(r),
            Backend::Sim(_) => None,
        }
    }

    /// The etcd cluster (both worlds run a real one; managed clusters have none).
    pub fn etcd(&self) -> Option<&EtcdCluster> {
        match &self.backend {
            Backend::Sim(sim) => sim.etcd.as_ref(),
            Backend::Real(r) => Some(&r.etcd),
        }
    }

    pub fn etcd_mut(&mut self) -> Option<&mut EtcdCluster> {
        match &mut self.backend {
            Backend::Sim(sim) => sim.etcd.as_mut(),
            Backend::Real(r) => Some(&mut r.etcd),
        }
    }

    /// The private key of the kubeconfig admin's client certificate (secret-leak tests look
    /// for it).
    pub fn admin_key_pem(&self) -> String {
        match &self.backend {
            Backend::Sim(sim) => sim.apiserver.admin_cert().key_pem.clone(),
            Backend::Real(r) => r.admin.key_pem.clone(),
        }
    }

    /// The API server behind the load balancer and the admin's credentials, for a fault front
    /// ([`crate::api_front::ApiFront`]).
    pub fn upstream(&self) -> crate::api_front::Upstream {
        match &self.backend {
            Backend::Sim(sim) => crate::api_front::Upstream {
                url: sim.apiserver.lb_url(),
                ca_pem: sim.apiserver.ca_pem().to_string(),
                admin: sim.apiserver.admin_cert().clone(),
            },
            Backend::Real(r) => crate::api_front::Upstream {
                url: r.lb_url.clone(),
                ca_pem: r.pki.ca.cert.cert_pem.clone(),
                admin: r.admin.clone(),
            },
        }
    }

    /// Stops API server replica `i` (its node's kube-apiserver in the real world): its address
    /// refuses connections from then on.
    pub fn stop_apiserver_replica(&self, i: usize) {
        match &self.backend {
            Backend::Sim(sim) => sim.apiserver.stop_replica(i),
            Backend::Real(r) => r.kill(crate::real::Component::Apiserver, i),
        }
    }

    /// Replica `i` dies and stays dead: its process stops and its identity lease is no longer
    /// renewed. The simulator dates the last renewal two minutes back; a real lease turns stale
    /// after three missed 10 s renewals ([`DemoCluster::identity_lease_age`] tells).
    pub fn apiserver_replica_dies(&self, i: usize) {
        self.stop_apiserver_replica(i);
        if let Backend::Sim(sim) = &self.backend {
            let node = sim.apiserver.sim.config.replicas[i].node.clone();
            let when = crate::apiserver::dynamics::micro_time(jiff::Timestamp::now() - SignedDuration::from_mins(2));
            let rt = world::rt("coordination.k8s.io", "leases");
            if let Ok(mut store) = sim.apiserver.sim.store.write() {
                let name = store.list(rt, Some("kube-system")).iter().find_map(|l| {
                    (l["metadata"]["labels"]["kubernetes.io/hostname"] == node.as_str())
                        .then(|| l["metadata"]["name"].as_str().map(str::to_string))
                        .flatten()
                });
                if let Some(name) = name {
                    store.modify(rt, "kube-system", &name, |l| l["spec"]["renewTime"] = serde_json::json!(when));
                    if let Ok(mut live) = sim.apiserver.sim.live_leases.write() {
                        live.retain(|(ns, n)| !(ns == "kube-system" && *n == name));
                    }
                }
            }
        }
    }

    /// How long ago the identity lease of the replica on `node` was renewed (seconds).
    pub fn identity_lease_age(&self, node: &str) -> Option<i64> {
        let leases: Vec<serde_json::Value> = match &self.backend {
            Backend::Sim(sim) => sim.apiserver.sim.store.read().ok()?.list(world::rt("coordination.k8s.io", "leases"), Some("kube-system")),
            Backend::Real(r) => r
                .get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases?labelSelector=apiserver.kubernetes.io%2Fidentity%3Dkube-apiserver")
                .ok()?
                .body["items"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        };
        let lease = leases.iter().find(|l| l["metadata"]["labels"]["kubernetes.io/hostname"] == node)?;
        let renewed: jiff::Timestamp = lease["spec"]["renewTime"].as_str()?.parse().ok()?;
        Some(jiff::Timestamp::now().as_second() - renewed.as_second())
    }

    /// The Kubernetes version the API server reports.
    pub fn git_version(&self) -> String {
        match &self.backend {
            Backend::Sim(sim) => sim.apiserver.sim.config.version.git_version.clone(),
            Backend::Real(_) => crate::real::KUBERNETES_VERSION.to_string(),
        }
    }

    fn start_sim(scenario: Scenario, options: Options) -> std::io::Result<DemoCluster> {
        let (owned_dir, dir) = match &options.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new().prefix("cpkit-cluster-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let minor = options.minor;
        let managed = scenario == Scenario::Managed;
        let mut facts = Facts::default();
        let capture = Capture::load(minor)?;
        let version = KubeVersion {
            minor,
            git_version: if managed { format!("v1.{minor}.5-eks-3cfe0ce") } else { format!("v1.{minor}.0") },
            platform: "linux/amd64".into(),
        };

        // etcd: a real 3-member cluster for every self-managed scenario.
        let etcd_validity = (scenario == Scenario::CertsExpiring && !managed).then(expiring_etcd_certificates);
        let etcd = if managed {
            None
        } else {
            let mut opts = EtcdOptions::members(3);
            opts.release = options.etcd.unwrap_or_default();
            opts.node_names = CP_NAMES.iter().map(|s| s.to_string()).collect();
            if let Some(v) = etcd_validity {
                opts.server_cert_validity = v;
            }
            match scenario {
                Scenario::EtcdNospace => opts.quota_backend_bytes = 12 * 1024 * 1024,
                Scenario::EtcdBloated => opts.quota_backend_bytes = 56 * 1024 * 1024,
                _ => {}
            }
            Some(EtcdCluster::start(opts)?)
        };
        if let Some(etcd) = &etcd {
            // On a thread of its own: callers may be inside an async runtime.
            let endpoints = etcd.endpoints();
            let tls = etcd.client_tls();
            let quota = etcd.options.quota_backend_bytes;
            let loaded = std::thread::scope(|scope| {
                scope
                    .spawn(|| load_scenario_data(scenario, &endpoints, &tls, quota))
                    .join()
                    .unwrap_or_else(|_| Err(io_err("data loader panicked")))
            })?;
            facts.etcd_inventory = Some(loaded);
        }
        // Nodes and replicas.
        let cp_count = if managed { 0 } else { 3 };
        let mut nodes: Vec<NodeSpec> = (0..cp_count)
            .map(|i| NodeSpec { name: CP_NAMES[i].into(), ip: crate::net::control_plane_ip(i), control_plane: true })
            .collect();
        let workers = if scenario == Scenario::LargeCluster {
            0
        } else if managed {
            3
        } else {
            2
        };
        for i in 0..workers {
            let ip = crate::net::worker_ip(i);
            let name = if managed {
                format!("ip-{}.ec2.internal", ip.to_string().replace('.', "-"))
            } else {
                format!("worker-{}", i + 1)
            };
            nodes.push(NodeSpec { name, ip, control_plane: false });
        }
        facts.control_plane_nodes = nodes.iter().filter(|n| n.control_plane).map(|n| n.name.clone()).collect();
        facts.worker_nodes = nodes.iter().filter(|n| !n.control_plane).map(|n| n.name.clone()).collect();
        let replicas: Vec<ReplicaSpec> = if managed {
            (0..2)
                .map(|i| ReplicaSpec {
                    node: format!("eks-control-plane-{}", i + 1),
                    ip: crate::net::control_plane_ip(i),
                    up: true,
                })
                .collect()
        } else {
            nodes
                .iter()
                .filter(|n| n.control_plane)
                .map(|n| ReplicaSpec { node: n.name.clone(), ip: n.ip, up: true })
                .collect()
        };
        let mut all_ips = vec![Ipv4Addr::LOCALHOST];
        all_ips.extend(replicas.iter().map(|r| r.ip));
        let port = crate::net::free_port_on(&all_ips)?;

        let ca = Ca::new("kubernetes");
        let mut world = SimWorld::new(&capture.kubelet_version(), port)?;
        if let Some(etcd) = &etcd {
            // The etcd pods' image runs the same release as the members.
            let release = etcd.options.release;
            world.exec.provide(Image::Etcd35, "etcd", &release.server()?)?;
            world.exec.provide(Image::Etcd35, "etcdctl", &release.etcdctl()?)?;
        }
        world.add_namespaces(&capture, &["default", "kube-system", "kube-public", "kube-node-lease"]);
        world.add_nodes(&capture, &nodes, managed);
        if let Some(etcd) = &etcd {
            let initial_cluster =
                etcd.members.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect::<Vec<_>>().join(",");
            for (i, node) in nodes.iter().filter(|n| n.control_plane).enumerate() {
                let m = &etcd.members[i];
                let endpoint = EtcdEndpoint {
                    quota_backend_bytes: etcd.options.quota_backend_bytes,
                    client_port: m.client_port,
                    peer_port: m.peer_port,
                    metrics_port: m.metrics_port,
                    node_root: m.node_root.clone(),
                };
                world.add_control_plane(&capture, node, Some(&endpoint), &initial_cluster);
            }
        }
        world.add_workload_pods(&capture);
        let black_hole = if options.unreachable_replicas && !managed {
            Some(crate::black_hole::BlackHole::start(replicas.len(), port)?)
        } else {
            None
        };
        let replica_addrs: Vec<(String, Ipv4Addr)> = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| (r.node.clone(), black_hole.as_ref().map(|b| b.ips[i]).unwrap_or(r.ip)))
            .collect();
        world.add_services(&capture, &replica_addrs);
        if let Some(b) = &black_hole {
            for (node, ip) in &replica_addrs {
                world.advertise_apiserver_at(node, *ip, port);
            }
            facts.unreachable_replica_addresses = b.ips.iter().map(|ip| format!("{ip}:{port}")).collect();
        }
        let holders: Vec<(&str, String)> = if managed {
            vec![
                ("kube-controller-manager", "ip-172-16-61-10.ec2.internal".to_string()),
                ("kube-scheduler", "ip-172-16-93-77.ec2.internal".to_string()),
            ]
        } else {
            vec![("kube-controller-manager", CP_NAMES[0].to_string()), ("kube-scheduler", CP_NAMES[1].to_string())]
        };
        let holder_refs: Vec<(&str, &str)> = holders.iter().map(|(l, h)| (*l, h.as_str())).collect();
        world.add_control_plane_leases(&holder_refs, &replicas.iter().map(|r| r.node.clone()).collect::<Vec<_>>());
        world.add_configmaps(&ca.cert.cert_pem, &kubeadm_config(minor, port));
        world.add_apiservices(Flowcontrol::for_minor(minor), scenario != Scenario::AggregatedApiDown);
        world.add_flowcontrol_defaults();

        let base_metrics = crate::fixtures::apiserver_metrics(minor)?;
        let metrics = MetricsModel::from_capture(&base_metrics);
        let mut load = LoadProfile::default();
        let mut apf = default_apf();
        let mut health: Vec<HealthModel> = replicas.iter().map(|_| HealthModel::for_version(minor)).collect();
        let mut users = vec![User {
            name: "viewer".into(),
            groups: vec![],
            token: Some(format!("viewer-{:016x}", rand::random::<u64>())),
            rules: vec![Rule::resources(&["get", "list"], &["*"], &["*"])],
        }];
        let mut serving = ServingCert::Valid(Validity::days(300));
        let mut admin_validity = Validity::days(300);
        let mut backends = Vec::new();
        let mut stop_replica: Option<usize> = None;

        // A well-run webhook every self-managed scenario has: cert-manager's, HA with a PDB.
        if !managed {
            add_cert_manager(&mut world, &mut backends)?;
        }

        match scenario {
            Scenario::HealthyHa | Scenario::Managed => {}
            Scenario::EtcdNospace => {
                // Lease renewals are etcd writes, refused under NOSPACE (the real control plane
                // shows it): the leader leases stop being renewed.
                world.stale_lease("kube-system", "kube-scheduler", 1);
                world.stale_lease("kube-system", "kube-controller-manager", 1);
            }
            Scenario::EtcdMemberDown => {
                let member = CP_NAMES[2].to_string();
                world.crash_loop("kube-system", &format!("etcd-{member}"), 6, "Error", 1);
                // kubeadm points each apiserver at its local member only.
                health[2].fail("etcd", "etcd client connection not yet established");
                health[2].fail("etcd-readiness", "etcd client connection not yet established");
                facts.down_etcd_member = Some(member);
            }
            Scenario::EtcdBloated => {
                load.extras.push(Extra::histogram(
                    "etcd_request_duration_seconds",
                    &[("operation", "listWithCount"), ("type", "/registry/pods/")],
                    &[
                        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
                        10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
                    ],
                    3.5,
                    40.0,
                ));
            }
            Scenario::CertsExpiring => {
                serving = ServingCert::Valid(Validity::expiring_in(345, SignedDuration::from_hours(24 * 20)));
                admin_validity = Validity::expiring_in(340, SignedDuration::from_hours(24 * 25));
            }
            Scenario::CertsExpired => {
                serving = ServingCert::Valid(Validity::expiring_in(368, -SignedDuration::from_hours(24 * 3)));
            }
            Scenario::WebhookLockout => {
                // cp-2's scheduler restarted as the webhook's backend died: the kubelet deleted
                // its mirror pod, and the webhook refuses the new one.
                let mirror = format!("kube-scheduler-{}", CP_NAMES[1]);
                let _ = world.store.delete(world::rt("", "pods"), "kube-system", &mirror, None, false);
                add_pod_validator(&mut world, &mut load);
                facts.lockout_webhook = Some(("pod-validator".into(), "validate.pod.com".into()));
                facts.refused_mirror_pod = Some(mirror);
            }
            Scenario::ApfOverload => {
                let user = "system:serviceaccount:monitoring:prometheus-k8s";
                world.add_namespaces(&capture, &["monitoring", "ci-cd"]);
                apf_overload(&mut load, &mut apf, user);
                facts.flooding_user = Some(user.into());
                facts.hot_replica = Some(CP_NAMES[0].into());
            }
            Scenario::ApiserverReplicaDown => {
                let node = CP_NAMES[2].to_string();
                world.crash_loop("kube-system", &format!("kube-apiserver-{node}"), 9, "Error", 1);
                // A dead replica stops renewing its identity lease.
                if let Some(lease) = world.identity_lease_of(&node) {
                    world.stale_lease("kube-system", &lease, 2);
                }
                stop_replica = Some(2);
                facts.down_replica = Some(node);
            }
            Scenario::LeaderLost => {
                for node in CP_NAMES {
                    world.crash_loop("kube-system", &format!("kube-scheduler-{node}"), 14, "Error", 1);
                }
                world.stale_lease("kube-system", "kube-scheduler", 6);
                facts.stale_lease = Some("kube-system/kube-scheduler".into());
            }
            Scenario::ApiserverFdsExhausted => {
                // Its process metrics only: the rest of the replica is healthy.
                let short = 1;
                for (family, value) in [("process_max_fds", 65_536.0), ("process_open_fds", 63_900.0)] {
                    load.replica_extras.push((short, Extra::setting(family, &[], value)));
                }
                facts.fd_short_replica = Some(CP_NAMES[short].into());
            }
            Scenario::AggregatedApiDown => {
                let pods: Vec<String> = world
                    .store
                    .list(world::rt("", "pods"), Some("kube-system"))
                    .iter()
                    .filter_map(|p| {
                        p["metadata"]["name"].as_str().filter(|n| n.starts_with("metrics-server")).map(str::to_string)
                    })
                    .collect();
                for p in pods {
                    world.crash_loop("kube-system", &p, 11, "Error", 1);
                }
                load.extras.push(Extra::gauge(
                    "aggregator_unavailable_apiservice",
                    &[("name", "v1beta1.metrics.k8s.io")],
                    1.0,
                ));
                facts.unavailable_apiservice = Some("v1beta1.metrics.k8s.io".into());
            }
            Scenario::RbacLimited => {
                users.push(User {
                    name: "ops-readonly".into(),
                    groups: vec!["ops".into()],
                    token: Some(format!("ops-{:016x}", rand::random::<u64>())),
                    rules: vec![
                        Rule::resources(
                            &["get", "list"],
                            &[""],
                            &["pods", "nodes", "namespaces", "events", "services"],
                        ),
                        Rule::resources(&["get", "list"], &["discovery.k8s.io"], &["endpointslices"]),
                    ],
                });
                facts.limited_context = Some(format!("{}-ops-readonly", scenario.name()));
            }
            Scenario::LargeCluster => add_large_cluster(&mut world, 5000, 50_000),
        }

        if let ServingCert::Valid(v) = serving {
            facts.serving_cert_not_after = Some(v.not_after);
        }
        facts.etcd_cert_not_after = etcd_validity.map(|v| v.not_after);
        let config = SimConfig {
            version,
            replicas,
            serving_cert: serving,
            flowcontrol: Flowcontrol::for_minor(minor),
            admin_cert_validity: admin_validity,
        };
        metrics.set_load(load);
        let SimWorld { store, exec, live_leases, .. } = world;
        let parts = SimParts { config, store, users, health, metrics, apf, exec, ca, live_leases, port: Some(port) };
        let apiserver = SimApiServer::start(parts)?;
        if let Some(i) = stop_replica {
            apiserver.stop_replica(i);
        }
        if let Some(user) = &facts.flooding_user
            && let Ok(mut t) = apiserver.sim.throttled.write()
        {
            t.push((user.clone(), 0));
        }
        // rbac-limited's kubeconfig starts in the limited user's context.
        let context = facts.limited_context.clone().unwrap_or_else(|| scenario.name().to_string());
        let kubeconfig = apiserver.write_kubeconfig_as(&dir, &scenario.name(), Some(&context))?;
        let mut etcd = etcd;
        if let (Some(e), Some(_)) = (etcd.as_mut(), &facts.down_etcd_member) {
            e.kill(2);
        }
        Ok(DemoCluster {
            world: World::Sim,
            scenario,
            facts,
            kubeconfig,
            context,
            backend: Backend::Sim(Box::new(SimBackend {
                apiserver,
                _black_hole: black_hole,
                etcd,
                _webhook_backends: backends,
                _dir: owned_dir,
            })),
            dir,
        })
    }

    /// Environment for commands run against this cluster: KUBECONFIG and a private kubectl cache.
    pub fn env(&self) -> Vec<(String, String)> {
        if let Some(r) = self.real() {
            return r.env();
        }
        vec![
            ("KUBECONFIG".into(), self.kubeconfig.display().to_string()),
            ("KUBECACHEDIR".into(), self.dir.join("kube-cache").display().to_string()),
        ]
    }
}

/// Loads the scenario's data into etcd (its own runtime: the caller may be async).
fn load_scenario_data(
    scenario: Scenario,
    endpoints: &[String],
    tls: &crate::etcd::ClientTls,
    quota: u64,
) -> std::io::Result<Inventory> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = crate::etcd::connect_client(endpoints, tls).await.map_err(io_err)?;
        let spec = match scenario {
            Scenario::EtcdBloated => LoadSpec {
                namespaces: 8,
                pods_per_namespace: 340,
                value_size: 16 * 1024,
                pod_updates: 0,
                delete_every: 0,
                ..LoadSpec::default()
            },
            _ => LoadSpec::default(),
        };
        let inventory = crate::etcd_data::load(&client, &spec).await.map_err(io_err)?;
        match scenario {
            Scenario::EtcdNospace => {
                let mut members = Vec::new();
                for endpoint in endpoints {
                    members
                        .push(crate::etcd::connect_client(std::slice::from_ref(endpoint), tls).await.map_err(io_err)?);
                }
                crate::etcd_data::fill_until_nospace(&client, &members, 64 * 1024, quota).await.map_err(io_err)?;
            }
            Scenario::EtcdBloated => {
                // Shrink every pod to a small value, then compact: the freed pages stay in the file.
                crate::etcd_data::shrink_pods(&client).await.map_err(io_err)?;
            }
            _ => {}
        }
        Ok(inventory)
    })
}

/// The etcd members' server certificates of `certs-expiring`: 18 days left, in both worlds.
pub(crate) fn expiring_etcd_certificates() -> Validity {
    Validity::expiring_in(347, SignedDuration::from_hours(24 * 18))
}

fn default_apf() -> ApfModel {
    let levels = [
        ("catch-all", 0u32, 3u64),
        ("exempt", 0, 1893),
        ("global-default", 128, 71),
        ("leader-election", 16, 960),
        ("node-high", 64, 540),
        ("system", 64, 2210),
        ("workload-high", 128, 4120),
        ("workload-low", 128, 210),
    ];
    ApfModel {
        levels: levels
            .iter()
            .map(|(name, queues, dispatched)| LevelState {
                name: name.to_string(),
                queues: *queues,
                dispatched_start: *dispatched,
                dispatched_per_second: (*dispatched as f64 / 600.0).max(0.1),
                ..Default::default()
            })
            .collect(),
        requests: vec![],
    }
}

fn apf_overload(load: &mut LoadProfile, apf: &mut ApfModel, user: &str) {
    let fs = [("flow_schema", "service-accounts"), ("priority_level", "workload-low")];
    load.replica_weights = vec![1.0, 0.15, 0.15];
    load.extras.extend([
        Extra::counter(
            "apiserver_flowcontrol_rejected_requests_total",
            &[fs[0], fs[1], ("reason", "queue-full")],
            24.0,
        ),
        Extra::counter("apiserver_flowcontrol_rejected_requests_total", &[fs[0], fs[1], ("reason", "time-out")], 3.0),
        Extra::counter("apiserver_flowcontrol_dispatched_requests_total", &fs, 38.0),
        Extra::gauge("apiserver_flowcontrol_current_inqueue_requests", &fs, 640.0),
        Extra::gauge("apiserver_flowcontrol_current_executing_requests", &fs, 245.0),
        Extra::gauge("apiserver_flowcontrol_current_executing_seats", &[("priority_level", "workload-low")], 245.0),
        // Borrowing lifted workload-low to 250 seats on every replica; executing seats fill it.
        Extra::setting("apiserver_flowcontrol_current_limit_seats", &[("priority_level", "workload-low")], 250.0),
        Extra::histogram(
            "apiserver_flowcontrol_request_wait_duration_seconds",
            &[("execute", "true"), fs[0], fs[1]],
            &[0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0],
            8.0,
            38.0,
        ),
        Extra::counter(
            "apiserver_request_total",
            &[
                ("code", "429"),
                ("component", "apiserver"),
                ("dry_run", ""),
                ("group", ""),
                ("resource", "pods"),
                ("scope", "cluster"),
                ("subresource", ""),
                ("verb", "LIST"),
                ("version", "v1"),
            ],
            27.0,
        ),
        Extra::gauge("apiserver_current_inflight_requests", &[("request_kind", "readOnly")], 392.0),
    ]);
    for l in &mut apf.levels {
        if l.name == "workload-low" {
            l.active_queues = 96;
            l.waiting = 640;
            l.executing = 245;
            l.dispatched_per_second = 38.0;
            l.rejected_per_second = 27.0;
            l.timedout_per_second = 3.0;
        }
    }
    let now = jiff::Timestamp::now();
    let stamp = |secs: i64| (now - SignedDuration::from_millis(secs)).strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
    for i in 0..40 {
        let executing = i < 8;
        apf.requests.push(RequestState {
            priority_level: "workload-low".into(),
            flow_schema: "service-accounts".into(),
            queue_index: 14,
            index_in_queue: if executing { -1 } else { i - 8 },
            distinguisher: user.into(),
            arrive_time: stamp(9000 - i as i64 * 150),
            initial_seats: 10,
            start_time: if executing { stamp(500) } else { "0001-01-01T00:00:00Z".into() },
            user: user.into(),
            verb: "list".into(),
            api_path: "/api/v1/pods".into(),
            namespace: String::new(),
            resource: "pods".into(),
            replica: Some(0),
        });
    }
    for i in 0..6 {
        apf.requests.push(RequestState {
            priority_level: "workload-low".into(),
            flow_schema: "service-accounts".into(),
            queue_index: 77,
            index_in_queue: i,
            distinguisher: "system:serviceaccount:ci-cd:jenkins".into(),
            arrive_time: stamp(3000 - i as i64 * 200),
            initial_seats: 1,
            start_time: "0001-01-01T00:00:00Z".into(),
            user: "system:serviceaccount:ci-cd:jenkins".into(),
            verb: "create".into(),
            api_path: "/api/v1/namespaces/ci-cd/pods".into(),
            namespace: "ci-cd".into(),
            resource: "pods".into(),
            replica: Some(1),
        });
    }
    apf.requests.push(RequestState {
        priority_level: "exempt".into(),
        flow_schema: "exempt".into(),
        queue_index: -1,
        index_in_queue: -1,
        distinguisher: String::new(),
        arrive_time: stamp(20),
        initial_seats: 1,
        start_time: stamp(20),
        user: "kubernetes-admin".into(),
        verb: "get".into(),
        api_path: "/debug/api_priority_and_fairness/dump_requests".into(),
        namespace: String::new(),
        resource: String::new(),
        replica: None,
    });
}

fn add_cert_manager(world: &mut SimWorld, backends: &mut Vec<WebhookBackend>) -> std::io::Result<()> {
    let ns = "cert-manager";
    let name = "cert-manager-webhook";
    let ips = [Ipv4Addr::new(127, 244, 1, 10), Ipv4Addr::new(127, 244, 2, 11)];
    // Also on the pods' "localhost", where the simulated kubelet's port-forward leads.
    let backend = WebhookBackend::start(name, ns, &[ips[0], ips[1], Ipv4Addr::LOCALHOST])?;
    let port = backend.addrs[0].port();
    let nodes: Vec<String> = world.nodes.iter().filter(|n| !n.control_plane).map(|n| n.name.clone()).collect();
    let node = |i: usize| nodes.get(i % nodes.len().max(1)).cloned().unwrap_or_default();
    world.put(
        "",
        "namespaces",
        json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "status": {"phase": "Active"}}),
    );
    let pods = [
        ("cert-manager-webhook-5d8f7b9c6-4kq2x".to_string(), node(0), true),
        ("cert-manager-webhook-5d8f7b9c6-9zt7m".to_string(), node(1), true),
    ];
    world.add_deployment(ns, name, &pods, "quay.io/jetstack/cert-manager-webhook:v1.16.2");
    world.add_service_with_endpoints(
        ns,
        name,
        "127.99.10.43",
        443,
        port,
        &[
            (ips[0].to_string(), true, pods[0].1.clone(), pods[0].0.clone()),
            (ips[1].to_string(), true, pods[1].1.clone(), pods[1].0.clone()),
        ],
    );
    world.put("policy", "poddisruptionbudgets", json!({"metadata": {"name": name, "namespace": ns}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": name}}}, "status": {"currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1, "expectedPods": 2}}));
    let webhook = |kind_path: &str| {
        json!({
            "name": "webhook.cert-manager.io",
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": name, "namespace": ns, "path": kind_path, "port": 443}, "caBundle": backend.ca_bundle},
            "failurePolicy": "Fail", "matchPolicy": "Equivalent", "sideEffects": "None", "timeoutSeconds": 5,
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "cert-manager"]}]},
            "objectSelector": {},
            "rules": [{"apiGroups": ["cert-manager.io", "acme.cert-manager.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["*/*"], "scope": "*"}]
        })
    };
    world.put(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        json!({"metadata": {"name": name, "labels": {"app": "webhook"}}, "webhooks": [webhook("/validate")]}),
    );
    world.put(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        json!({"metadata": {"name": name, "labels": {"app": "webhook"}}, "webhooks": [webhook("/mutate")]}),
    );
    backends.push(backend);
    Ok(())
}

/// The seeds' case 4: `pod-validator` (validate.pod.com), Fail, every resource, its only pod
/// OOM-killed.
fn add_pod_validator(world: &mut SimWorld, load: &mut LoadProfile) {
    let ns = "default";
    let name = "pod-validator";
    let worker = world.nodes.iter().find(|n| !n.control_plane).map(|n| n.name.clone()).unwrap_or_default();
    let pod = "pod-validator-7d9c8b5f4-x2x7k".to_string();
    world.add_deployment(ns, name, &[(pod.clone(), worker.clone(), false)], "registry.example.com/pod-validator:1.4.0");
    world.crash_loop(ns, &pod, 12, "OOMKilled", 137);
    world.add_service_with_endpoints(
        ns,
        name,
        "127.96.100.200",
        443,
        8443,
        &[("127.244.3.21".into(), false, worker, pod)],
    );
    world.put(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        json!({"metadata": {"name": name},
               "webhooks": [{
                   "name": "validate.pod.com", "admissionReviewVersions": ["v1"],
                   "clientConfig": {"service": {"name": name, "namespace": ns, "path": "/validate", "port": 443}},
                   "failurePolicy": "Fail", "matchPolicy": "Equivalent", "sideEffects": "None", "timeoutSeconds": 10,
                   "namespaceSelector": {}, "objectSelector": {},
                   "rules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/*"], "scope": "*"}]
               }]}),
    );
    world.put(
        "",
        "events",
        json!({"metadata": {"name": "pod-validator-7d9c8b5f4.18a2f0c1", "namespace": ns},
               "involvedObject": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "pod-validator-7d9c8b5f4", "namespace": ns},
               "reason": "FailedCreate", "type": "Warning", "count": 31, "firstTimestamp": world::rfc3339(jiff::Timestamp::now() - SignedDuration::from_mins(20)),
               "lastTimestamp": world::rfc3339(jiff::Timestamp::now()), "source": {"component": "replicaset-controller"},
               "message": "Error creating: Internal error occurred: failed calling webhook \"validate.pod.com\": failed to call webhook: Post \"https://pod-validator.default.svc:443/validate?timeout=10s\": dial tcp 127.96.100.200:443: connect: connection refused"}),
    );
    load.webhook_rates.push(crate::apiserver::metrics::WebhookRate {
        name: "validate.pod.com".into(),
        kind: "validating".into(),
        operation: "CREATE".into(),
        error_type: Some("calling_webhook_error".into()),
        per_second: 2.0,
        latency: 0.002,
    });
}

fn add_large_cluster(world: &mut SimWorld, nodes: usize, pods: usize) {
    use crate::apiserver::store::Generated;
    use std::sync::Arc;
    let version = world.version.clone();
    let created = world::rfc3339(jiff::Timestamp::now() - SignedDuration::from_hours(24 * 40));
    let node_name = |i: usize| format!("node-{i:05}");
    let make_node = {
        let created = created.clone();
        move |i: usize| {
            let ip = crate::net::worker_ip(i);
            let ready = if i % 997 == 13 { "False" } else { "True" };
            json!({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": format!("node-{i:05}"), "uid": format!("00000000-0000-4000-8000-{i:012}"), "resourceVersion": "1000", "creationTimestamp": created,
                                "labels": {"kubernetes.io/hostname": format!("node-{i:05}"), "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "m5.xlarge"}},
                   "spec": {"podCIDR": format!("10.{}.{}.0/24", 64 + i / 256, i % 256)},
                   "status": {"addresses": [{"type": "InternalIP", "address": ip.to_string()}, {"type": "Hostname", "address": format!("node-{i:05}")}],
                              "conditions": [{"type": "Ready", "status": ready, "reason": if ready == "True" { "KubeletReady" } else { "KubeletNotReady" },
                                              "lastHeartbeatTime": world::rfc3339(jiff::Timestamp::now()), "lastTransitionTime": created}],
                              "nodeInfo": {"kubeletVersion": version, "osImage": "Ubuntu 22.04.5 LTS", "kernelVersion": "6.8.0-1021-aws", "containerRuntimeVersion": "containerd://1.7.27", "architecture": "amd64", "operatingSystem": "linux"}}})
        }
    };
    world.store.set_generated(
        world::rt("", "nodes"),
        Generated {
            count: nodes,
            make: Arc::new(make_node),
            find: Arc::new(move |_, name| name.strip_prefix("node-").and_then(|n| n.parse().ok())),
        },
    );
    let per_ns = pods / 100;
    let make_pod = move |i: usize| {
        let ns = format!("team-{:03}", i / per_ns.max(1));
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("app-{i:06}"), "namespace": ns, "uid": format!("00000000-0000-4000-9000-{i:012}"), "resourceVersion": "2000", "creationTimestamp": created,
                            "labels": {"app": format!("app-{}", i % 50)}},
               "spec": {"nodeName": node_name(i % nodes.max(1)), "containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]},
               "status": {"phase": "Running", "podIP": format!("127.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256),
                          "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": created}}}]}})
    };
    world.store.set_generated(
        world::rt("", "pods"),
        Generated {
            count: pods,
            make: Arc::new(make_pod),
            find: Arc::new(move |_, name| name.strip_prefix("app-").and_then(|n| n.parse().ok())),
        },
    );
    for t in 0..100 {
        let ns = format!("team-{t:03}");
        world.put("", "namespaces", json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "status": {"phase": "Active"}}));
    }
}

/// Waits until `f` is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

impl DemoCluster {
    /// Runs the machine's real `kubectl` against this cluster (blocking).
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        self.kubectl_with("kubectl", args)
    }

    /// Runs a given kubectl binary (e.g. `kubectl.1.31` from the same directory).
    pub fn kubectl_with(&self, binary: &str, args: &[&str]) -> std::process::Output {
        let path = kubectl_path(binary);
        let mut cmd = std::process::Command::new(&path);
        cmd.args(args);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
    }
}

/// Finds `kubectl` (or a versioned `kubectl.1.xx` beside the real kubectl).
pub fn kubectl_path(binary: &str) -> PathBuf {
    if binary == "kubectl" {
        return which::which("kubectl").expect("kubectl must be installed on this machine (see README)");
    }
    let real = which::which("kubectl")
        .and_then(|p| p.canonicalize().map_err(|_| which::Error::CannotCanonicalize))
        .expect("kubectl must be installed");
    real.parent().map(|d| d.join(binary)).expect("kubectl has a directory")
}
