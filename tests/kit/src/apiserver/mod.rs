//! A simulated kube-apiserver speaking the real wire protocols: HTTPS with the cluster CA,
//! client-certificate and bearer-token users, JSON and Table answers, pagination, health
//! endpoints, `/metrics`, APF debug dumps, WebSocket exec and port-forward, admission webhooks
//! on creates. Every replica of an HA control plane listens on its node's loopback address
//! (127.0.0.2, .3, ...) on one port; a TCP load balancer on 127.0.0.1 with the same port spreads
//! connections over the replicas that are up. Like a real one it sets TCP_NODELAY, gzips
//! `/metrics` and large answers for clients that ask, and impersonates as the apiserver's filter.
//!
//! Not simulated (nothing in the suite needs it): protobuf bodies (clients are answered in JSON),
//! OpenAPI documents, watches, and SPDY — so `kubectl port-forward` itself does not work against
//! it, while the WebSocket port-forward of kube-rs and the official Python client does.

pub mod admission;
pub mod apf;
pub mod auth;
pub mod authn;
pub mod discovery;
pub mod dynamics;
pub mod exposition;
pub mod health;
pub mod http;
pub mod lb;
pub mod metrics;
pub mod patch;
pub mod registry;
pub mod rest;
pub mod routes;
pub mod store;
pub mod streaming;
pub mod tables;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::sync::watch;

use crate::pki::{Ca, KeyedCert, Validity};

pub use auth::{Identity, Rule, User};
pub use health::HealthModel;
pub use store::Store;

/// The version the server reports (`/version`), e.g. 1.33.0.
#[derive(Debug, Clone)]
pub struct KubeVersion {
    pub minor: u32,
    pub git_version: String,
    pub platform: String,
}

impl KubeVersion {
    pub fn new(minor: u32, patch: u32) -> Self {
        KubeVersion { minor, git_version: format!("v1.{minor}.{patch}"), platform: "linux/amd64".into() }
    }
}

/// Injected trouble on requests whose path starts with `path_prefix` ("" = every request).
#[derive(Debug, Clone, Default)]
pub struct Fault {
    pub path_prefix: String,
    /// Only on this replica (None = all).
    pub replica: Option<usize>,
    pub latency: Option<Duration>,
    /// Answer with this status instead (429 carries `Retry-After`).
    pub status: Option<u16>,
    pub retry_after_seconds: Option<u64>,
    /// Close the connection without answering.
    pub reset: bool,
}

/// How the serving certificate is made (TLS faults).
#[derive(Debug, Clone, Copy)]
pub enum ServingCert {
    /// Signed by the cluster CA, valid as given.
    Valid(Validity),
    /// Signed by another CA than the kubeconfig's: "x509: certificate signed by unknown authority".
    ForeignCa,
}

/// One API server replica.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    pub node: String,
    pub ip: Ipv4Addr,
    pub up: bool,
}

/// Static configuration of the simulated server.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub version: KubeVersion,
    pub replicas: Vec<ReplicaSpec>,
    pub serving_cert: ServingCert,
    /// The flowcontrol.apiserver.k8s.io versions served.
    pub flowcontrol: registry::Flowcontrol,
    /// Validity of the admin's client certificate in the kubeconfig.
    pub admin_cert_validity: Validity,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            version: KubeVersion::new(33, 0),
            replicas: vec![ReplicaSpec { node: "cp1".into(), ip: crate::net::control_plane_ip(0), up: true }],
            serving_cert: ServingCert::Valid(Validity::days(365)),
            flowcontrol: registry::Flowcontrol::for_minor(33),
            admin_cert_validity: Validity::days(365),
        }
    }
}

/// The shared state of every replica.
pub struct Sim {
    pub config: SimConfig,
    pub store: RwLock<Store>,
    pub users: RwLock<Vec<User>>,
    /// Per replica.
    pub health: RwLock<Vec<HealthModel>>,
    pub metrics: metrics::MetricsModel,
    pub apf: RwLock<apf::ApfModel>,
    pub faults: RwLock<Vec<Fault>>,
    pub exec: streaming::ExecEnv,
    pub started: Instant,
    pub ca: Ca,
    pub port: u16,
    /// Requests served, per replica.
    pub requests: Vec<AtomicU64>,
    /// The last requests (method, path, user agent), for tests.
    pub request_log: Mutex<Vec<(String, String, String)>>,
    /// Answers sent gzip-compressed (the client asked for it).
    pub gzipped: AtomicU64,
    /// Leases whose holders are alive and renew them, as (namespace, name).
    pub live_leases: RwLock<Vec<(String, String)>>,
    /// Users whose flow's queues are full on a replica: APF rejects their requests there with
    /// 429, as (user, replica).
    pub throttled: RwLock<Vec<(String, usize)>>,
}

impl Sim {
    pub fn lb_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn replica_url(&self, i: usize) -> String {
        format!("https://{}:{}", self.config.replicas[i].ip, self.port)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds a fault; returns its index for [`Sim::clear_faults`].
    pub fn add_fault(&self, fault: Fault) {
        self.faults.write().expect("faults lock").push(fault);
    }

    pub fn clear_faults(&self) {
        self.faults.write().expect("faults lock").clear();
    }

    /// Number of requests whose path starts with `prefix`.
    pub fn count_requests(&self, prefix: &str) -> usize {
        self.request_log.lock().map(|l| l.iter().filter(|(_, p, _)| p.starts_with(prefix)).count()).unwrap_or(0)
    }
}

/// Everything a scenario hands to the server.
pub struct SimParts {
    pub config: SimConfig,
    pub store: Store,
    pub users: Vec<User>,
    pub health: Vec<HealthModel>,
    pub metrics: metrics::MetricsModel,
    pub apf: apf::ApfModel,
    pub exec: streaming::ExecEnv,
    pub ca: Ca,
    pub live_leases: Vec<(String, String)>,
    /// The port every replica and the load balancer listen on (None: pick a free one).
    pub port: Option<u16>,
}

/// A running simulated API server (all replicas and the load balancer), on its own runtime.
pub struct SimApiServer {
    pub sim: Arc<Sim>,
    runtime: Option<tokio::runtime::Runtime>,
    replica_up: Vec<Arc<AtomicBool>>,
    replica_stop: Vec<watch::Sender<bool>>,
    tls: Vec<Arc<rustls::ServerConfig>>,
    admin: KeyedCert,
}

fn server_tls(serving: &KeyedCert, client_ca: &Ca) -> std::io::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(client_ca.cert.cert_der.clone()))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let certs = vec![CertificateDer::from(serving.cert_der.clone())];
    let key =
        PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl SimApiServer {
    /// Starts every replica that is up and the load balancer.
    pub fn start(parts: SimParts) -> std::io::Result<SimApiServer> {
        let SimParts { config, store, users, health, metrics, apf, exec, ca, live_leases, port } = parts;
        let mut ips: Vec<Ipv4Addr> = vec![Ipv4Addr::LOCALHOST];
        ips.extend(config.replicas.iter().map(|r| r.ip));
        let port = match port {
            Some(p) => p,
            None => crate::net::free_port_on(&ips)?,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sim-apiserver")
            .enable_all()
            .build()?;
        let mut tls = Vec::new();
        for r in &config.replicas {
            let extra_dns = [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                r.node.as_str(),
            ];
            let spec = crate::pki::server_spec("kube-apiserver", &extra_dns, &[std::net::IpAddr::V4(r.ip)]);
            let serving = match config.serving_cert {
                ServingCert::Valid(v) => ca.issue(&spec, v),
                ServingCert::ForeignCa => Ca::new("some-other-ca").issue(&spec, Validity::days(365)),
            };
            tls.push(server_tls(&serving, &ca)?);
        }
        let admin =
            ca.issue(&crate::pki::client_spec("kubernetes-admin", &["system:masters"]), config.admin_cert_validity);
        let replica_count = config.replicas.len();
        let sim = Arc::new(Sim {
            store: RwLock::new(store),
            users: RwLock::new(users),
            health: RwLock::new(health),
            metrics,
            apf: RwLock::new(apf),
            faults: RwLock::new(Vec::new()),
            throttled: RwLock::new(Vec::new()),
            exec,
            started: Instant::now(),
            ca,
            port,
            requests: (0..replica_count).map(|_| AtomicU64::new(0)).collect(),
            request_log: Mutex::new(Vec::new()),
            gzipped: AtomicU64::new(0),
            live_leases: RwLock::new(live_leases),
            config,
        });
        let mut server = SimApiServer {
            sim: sim.clone(),
            runtime: Some(runtime),
            replica_up: (0..replica_count).map(|_| Arc::new(AtomicBool::new(false))).collect(),
            replica_stop: Vec::new(),
            tls,
            admin,
        };
        for i in 0..replica_count {
            let (tx, _) = watch::channel(true);
            server.replica_stop.push(tx);
            if sim.config.replicas[i].up {
                server.start_replica(i)?;
            }
        }
        let addrs: Vec<SocketAddr> = sim.config.replicas.iter().map(|r| SocketAddr::from((r.ip, port))).collect();
        let lb_listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        lb_listener.set_nonblocking(true)?;
        let rt = server.runtime.as_ref().expect("runtime");
        let _guard = rt.enter();
        let lb_listener = tokio::net::TcpListener::from_std(lb_listener)?;
        rt.spawn(lb::run(lb_listener, addrs));
        rt.spawn(dynamics::run(sim.clone()));
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.sim.port
    }

    pub fn lb_url(&self) -> String {
        self.sim.lb_url()
    }

    pub fn replica_url(&self, i: usize) -> String {
        self.sim.replica_url(i)
    }

    pub fn ca_pem(&self) -> &str {
        &self.sim.ca.cert.cert_pem
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().expect("runtime").handle().clone()
    }

    /// Starts (or restarts) replica `i`'s listener.
    pub fn start_replica(&mut self, i: usize) -> std::io::Result<()> {
        if self.replica_up[i].load(Ordering::SeqCst) {
            return Ok(());
        }
        let addr = SocketAddr::from((self.sim.config.replicas[i].ip, self.sim.port));
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let rt = self.runtime.as_ref().expect("runtime");
        let _guard = rt.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (tx, rx) = watch::channel(false);
        self.replica_stop[i] = tx;
        self.replica_up[i].store(true, Ordering::SeqCst);
        rt.spawn(routes::serve(listener, self.tls[i].clone(), self.sim.clone(), i, rx));
        Ok(())
    }

    /// Stops replica `i` (its port then refuses connections).
    pub fn stop_replica(&self, i: usize) {
        let _ = self.replica_stop[i].send(true);
        self.replica_up[i].store(false, Ordering::SeqCst);
        // Let the accept loop notice before callers probe the port.
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Writes a kubeconfig with one context per user: `<name>` for the admin (client
    /// certificate, like kubeadm's admin.conf) and `<name>-<user>` for each token user.
    /// Certificates are embedded; returns the file's path.
    pub fn write_kubeconfig(&self, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
        self.write_kubeconfig_as(dir, name, None)
    }

    /// [`SimApiServer::write_kubeconfig`] with another current context (a token user's).
    pub fn write_kubeconfig_as(&self, dir: &Path, name: &str, current: Option<&str>) -> std::io::Result<PathBuf> {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let server = self.lb_url();
        let mut clusters = vec![
            serde_json::json!({"name": name, "cluster": {"server": server, "certificate-authority-data": b64(self.ca_pem())}}),
        ];
        for (i, _) in self.sim.config.replicas.iter().enumerate() {
            clusters.push(serde_json::json!({"name": format!("{name}-replica-{}", i + 1), "cluster": {"server": self.replica_url(i), "certificate-authority-data": b64(self.ca_pem())}}));
        }
        let mut users = vec![serde_json::json!({"name": format!("{name}-admin"), "user": {
            "client-certificate-data": b64(&self.admin.cert_pem), "client-key-data": b64(&self.admin.key_pem)}})];
        let mut contexts =
            vec![serde_json::json!({"name": name, "context": {"cluster": name, "user": format!("{name}-admin")}})];
        for u in self.sim.users.read().expect("users lock").iter() {
            if let Some(token) = &u.token {
                let user_name = format!("{name}-{}", u.name.replace(':', "-"));
                users.push(serde_json::json!({"name": user_name, "user": {"token": token}}));
                contexts.push(serde_json::json!({"name": user_name, "context": {"cluster": name, "user": user_name}}));
            }
        }
        let doc = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": current.unwrap_or(name),
            "clusters": clusters, "users": users, "contexts": contexts, "preferences": {}
        });
        let text = serde_yaml::to_string(&doc).map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join("kubeconfig");
        crate::pki::write_private(&path, text.as_bytes())?;
        Ok(path)
    }

    /// The admin's client certificate (for tests that check expiry reporting).
    pub fn admin_cert(&self) -> &KeyedCert {
        &self.admin
    }
}

impl Drop for SimApiServer {
    fn drop(&mut self) {
        for tx in &self.replica_stop {
            let _ = tx.send(true);
        }
        // shutdown_background: dropping may happen inside a caller's async runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
