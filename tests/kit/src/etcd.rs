//! Real etcd clusters on loopback with TLS and client-cert auth — Debian's etcd 3.4, or etcd 3.5
//! or 3.6 built from their Go modules by `dev/build-controlplane` — laid out like kubeadm
//! control-plane nodes:
//!
//! ```text
//! <root>/nodes/<node>/etc/kubernetes/pki/etcd/{ca.crt,ca.key,server.*,peer.*,healthcheck-client.*}
//! <root>/nodes/<node>/var/lib/etcd            (--data-dir)
//! ```
//!
//! Members are killed and the directory removed on drop, also when a test panics.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::net;
use crate::pki::{Ca, KeyedCert, LeafSpec, Validity};
use crate::process::{ChildGuard, GO_GC};

/// Which etcd runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EtcdRelease {
    /// Debian's packaged etcd (3.4 in Debian 12), from PATH.
    #[default]
    Debian,
    /// etcd 3.5 built from `go.etcd.io/etcd/server/v3` v3.5 (`tests/controlplane/etcd-3.5`).
    V3_5,
    /// etcd 3.6 built from `go.etcd.io/etcd/server/v3` (see `crate::binaries`).
    V3_6,
}

impl EtcdRelease {
    pub fn server(self) -> std::io::Result<PathBuf> {
        match self {
            EtcdRelease::Debian => which::which("etcd").map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the etcd server binary is not on PATH (Debian/Ubuntu: apt install etcd-server)",
                )
            }),
            EtcdRelease::V3_5 => crate::binaries::controlplane("etcd-3.5/etcd"),
            EtcdRelease::V3_6 => crate::binaries::controlplane("etcd"),
        }
    }

    /// The client tool for member and endpoint commands.
    pub fn etcdctl(self) -> std::io::Result<PathBuf> {
        match self {
            EtcdRelease::Debian => which::which("etcdctl").map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "etcdctl is not on PATH (Debian/Ubuntu: apt install etcd-client)",
                )
            }),
            EtcdRelease::V3_5 => crate::binaries::controlplane("etcd-3.5/etcdctl"),
            EtcdRelease::V3_6 => crate::binaries::controlplane("etcdctl"),
        }
    }

    /// `etcdutl` (3.5+); 3.4 restores with `etcdctl snapshot restore`.
    pub fn etcdutl(self) -> Option<PathBuf> {
        match self {
            EtcdRelease::Debian => None,
            EtcdRelease::V3_5 => crate::binaries::controlplane("etcd-3.5/etcdutl").ok(),
            EtcdRelease::V3_6 => crate::binaries::controlplane("etcdutl").ok(),
        }
    }

    /// The image the member's pod would run (registry.k8s.io/etcd tags kubeadm uses).
    pub fn image(self) -> &'static str {
        match self {
            EtcdRelease::Debian => "registry.k8s.io/etcd:3.4.23-0",
            EtcdRelease::V3_5 => "registry.k8s.io/etcd:3.5.21-0",
            EtcdRelease::V3_6 => "registry.k8s.io/etcd:3.6.16-0",
        }
    }
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    pub release: EtcdRelease,
    /// Listen on 127.0.0.1 as well as the node address (kubeadm's layout). Off when several
    /// members share a port number on their own node addresses.
    pub listen_on_localhost: bool,
    /// Try etcd's own ports (2379 client, 2380 peer) first, on each node address.
    pub standard_ports: bool,
    pub members: usize,
    /// `--quota-backend-bytes` (0 = etcd's default, 2 GiB).
    pub quota_backend_bytes: u64,
    /// Validity of the members' server certificates (the CA is always valid).
    pub server_cert_validity: Validity,
    /// Node names; default `cp1`, `cp2`, ...
    pub node_names: Vec<String>,
    /// Directory under which the temporary root is created (default: /dev/shm when present, for
    /// fast fsyncs, else the system temp dir).
    pub parent_dir: Option<PathBuf>,
    pub cluster_token: String,
    /// Also listen on plain `http://127.0.0.1:<port>` (for tests that tamper with the bytes).
    pub plain_client: bool,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            release: EtcdRelease::Debian,
            listen_on_localhost: true,
            standard_ports: false,
            members: 1,
            quota_backend_bytes: 0,
            server_cert_validity: Validity::days(365),
            node_names: Vec::new(),
            parent_dir: None,
            cluster_token: "kubeadm-etcd-cluster".into(),
            plain_client: false,
        }
    }
}

impl EtcdOptions {
    pub fn members(n: usize) -> Self {
        EtcdOptions { members: n, ..Default::default() }
    }
}

/// One member, i.e. one control-plane node's etcd.
#[derive(Debug)]
pub struct EtcdMember {
    pub name: String,
    pub node_ip: Ipv4Addr,
    pub client_port: u16,
    pub peer_port: u16,
    pub metrics_port: u16,
    /// The plain-HTTP client port on 127.0.0.1, with `EtcdOptions::plain_client`.
    pub plain_client_port: Option<u16>,
    pub listen_on_localhost: bool,
    pub release: EtcdRelease,
    /// The node's file system root (paths in pod specs are relative to it).
    pub node_root: PathBuf,
    args: Vec<String>,
    process: Option<ChildGuard>,
    log_path: PathBuf,
}

impl EtcdMember {
    /// `https://127.0.0.1:<client port>` — what the apiserver on the same node uses (the node
    /// address when the member does not listen on 127.0.0.1).
    pub fn local_client_url(&self) -> String {
        if self.listen_on_localhost { format!("https://127.0.0.1:{}", self.client_port) } else { self.client_url() }
    }

    /// The command line the member runs with (for its pod's spec).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// `https://<node ip>:<client port>` — the advertised client URL.
    pub fn client_url(&self) -> String {
        format!("https://{}:{}", self.node_ip, self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("https://{}:{}", self.node_ip, self.peer_port)
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.node_root.join("etc/kubernetes/pki/etcd")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.node_root.join("var/lib/etcd")
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.is_running())
    }

    /// Where the member's output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The member's log (stderr), for test failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let etcd = self.release.server()?;
        let mut cmd = Command::new(etcd);
        cmd.args(&self.args).stdin(Stdio::null());
        // The CRI-format copy is what a kubelet would serve as the etcd pod's logs.
        crate::process::capture_output(&mut cmd, &self.log_path, Some(&self.log_path.with_extension("cri.log")))?;
        cmd.env_clear().env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH).env(GO_GC.0, GO_GC.1);
        self.process = Some(ChildGuard::spawn(&format!("etcd-{}", self.name), &mut cmd)?);
        Ok(())
    }
}

/// A running etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    pub members: Vec<EtcdMember>,
    pub ca: CaFiles,
    root: tempfile::TempDir,
    pub options: EtcdOptions,
    _claims: Vec<net::PortClaim>,
}

/// The etcd CA, kept so tests can issue more certificates (e.g. a client cert for etcdsnap).
pub struct CaFiles {
    pub ca: Ca,
    pub healthcheck_client: KeyedCert,
}

impl std::fmt::Debug for CaFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaFiles")
    }
}

/// Client TLS material for etcdctl-style flags.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub cacert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn default_parent() -> PathBuf {
    if let Ok(dir) = std::env::var("CPKIT_TEST_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && std::fs::metadata(shm).map(|m| !m.permissions().readonly()).unwrap_or(false) {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

impl EtcdCluster {
    /// Starts the members and waits until the cluster has a leader.
    pub fn start(options: EtcdOptions) -> std::io::Result<EtcdCluster> {
        let parent = options.parent_dir.clone().unwrap_or_else(default_parent);
        let root = tempfile::Builder::new().prefix("cpkit-etcd-").tempdir_in(parent)?;
        let ca = Ca::new("etcd-ca");
        let healthcheck_client = ca.issue(
            &LeafSpec {
                common_name: "kube-etcd-healthcheck-client".into(),
                organizations: vec![],
                client: true,
                ..Default::default()
            },
            Validity::days(365),
        );
        let names: Vec<String> = (0..options.members)
            .map(|i| options.node_names.get(i).cloned().unwrap_or_else(|| format!("cp{}", i + 1)))
            .collect();
        let ips: Vec<Ipv4Addr> = (0..options.members).map(net::control_plane_ip).collect();
        let mut members = Vec::new();
        let mut used = std::collections::HashSet::new();
        let mut claims = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let on: Vec<Ipv4Addr> =
                if options.listen_on_localhost { vec![Ipv4Addr::LOCALHOST, ips[i]] } else { vec![ips[i]] };
            let mut pick = |standard: Option<u16>| -> std::io::Result<u16> {
                if let Some(p) = standard.filter(|_| options.standard_ports)
                    && let Some(claim) = net::claim_standard(&on, p)
                {
                    claims.push(claim);
                    return Ok(p);
                }
                loop {
                    let p = net::free_port_on(&on)?;
                    if used.insert(p) {
                        return Ok(p);
                    }
                }
            };
            let client_port = pick(Some(2379))?;
            let peer_port = pick(Some(2380))?;
            let plain_client_port = if options.plain_client { Some(pick(None)?) } else { None };
            // kubeadm serves /health and /metrics on the node's 127.0.0.1.
            let metrics_port = loop {
                let p = net::free_port()?;
                if used.insert(p) {
                    break p;
                }
            };
            let node_root = root.path().join("nodes").join(name);
            members.push(EtcdMember {
                name: name.clone(),
                node_ip: ips[i],
                client_port,
                peer_port,
                metrics_port,
                plain_client_port,
                listen_on_localhost: options.listen_on_localhost,
                release: options.release,
                log_path: root.path().join(format!("etcd-{name}.log")),
                node_root,
                args: Vec::new(),
                process: None,
            });
        }
        let initial_cluster =
            members.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect::<Vec<_>>().join(",");
        for m in &mut members {
            let pki = m.pki_dir();
            std::fs::create_dir_all(&pki)?;
            std::fs::write(pki.join("ca.crt"), &ca.cert.cert_pem)?;
            crate::pki::write_private(&pki.join("ca.key"), ca.cert.key_pem.as_bytes())?;
            let ip = std::net::IpAddr::V4(m.node_ip);
            let server = ca.issue(
                &LeafSpec {
                    common_name: m.name.clone(),
                    dns_names: vec!["localhost".into(), m.name.clone()],
                    ips: vec![std::net::IpAddr::from([127, 0, 0, 1]), ip],
                    server: true,
                    client: true,
                    ..Default::default()
                },
                options.server_cert_validity,
            );
            server.write(&pki, "server")?;
            let peer = ca.issue(
                &LeafSpec {
                    common_name: m.name.clone(),
                    dns_names: vec!["localhost".into(), m.name.clone()],
                    ips: vec![std::net::IpAddr::from([127, 0, 0, 1]), ip],
                    server: true,
                    client: true,
                    ..Default::default()
                },
                Validity::days(365),
            );
            peer.write(&pki, "peer")?;
            healthcheck_client.write(&pki, "healthcheck-client")?;
            let data = m.data_dir();
            std::fs::create_dir_all(&data)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
            let p = |f: &str| pki.join(f).display().to_string();
            m.args = vec![
                format!("--name={}", m.name),
                format!("--data-dir={}", data.display()),
                format!(
                    "--listen-client-urls={}{}{}",
                    if m.listen_on_localhost { format!("https://127.0.0.1:{},", m.client_port) } else { String::new() },
                    m.client_url(),
                    m.plain_client_port.map(|p| format!(",http://127.0.0.1:{p}")).unwrap_or_default()
                ),
                format!("--advertise-client-urls={}", m.client_url()),
                format!("--listen-peer-urls={}", m.peer_url()),
                format!("--initial-advertise-peer-urls={}", m.peer_url()),
                format!("--initial-cluster={initial_cluster}"),
                "--initial-cluster-state=new".into(),
                format!("--listen-metrics-urls=http://127.0.0.1:{}", m.metrics_port),
                format!("--cert-file={}", p("server.crt")),
                format!("--key-file={}", p("server.key")),
                format!("--trusted-ca-file={}", p("ca.crt")),
                "--client-cert-auth=true".into(),
                format!("--peer-cert-file={}", p("peer.crt")),
                format!("--peer-key-file={}", p("peer.key")),
                format!("--peer-trusted-ca-file={}", p("ca.crt")),
                "--peer-client-cert-auth=true".into(),
                "--snapshot-count=10000".into(),
                "--logger=zap".into(),
                "--log-level=warn".into(),
            ];
            if options.quota_backend_bytes > 0 {
                m.args.push(format!("--quota-backend-bytes={}", options.quota_backend_bytes));
            }
            // kubeadm's manifest sets no token (etcd's default applies); empty keeps it so.
            if !options.cluster_token.is_empty() {
                m.args.push(format!("--initial-cluster-token={}", options.cluster_token));
            }
        }
        let mut cluster =
            EtcdCluster { members, ca: CaFiles { ca, healthcheck_client }, root, options, _claims: claims };
        for m in &mut cluster.members {
            m.spawn()?;
        }
        cluster.wait_healthy(Duration::from_secs(20))?;
        Ok(cluster)
    }

    /// The temporary root (node file systems, logs).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Process IDs of the running members.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(|m| m.process.as_ref().and_then(|p| p.pid())).collect()
    }

    /// Client URLs of all members.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.local_client_url()).collect()
    }

    /// Client URLs of the running members.
    pub fn running_endpoints(&mut self) -> Vec<String> {
        self.members.iter_mut().filter_map(|m| if m.is_running() { Some(m.local_client_url()) } else { None }).collect()
    }

    /// TLS files a client may use (the healthcheck-client certificate of member 0's node).
    pub fn client_tls(&self) -> ClientTls {
        let pki = self.members[0].pki_dir();
        ClientTls {
            cacert: pki.join("ca.crt"),
            cert: pki.join("healthcheck-client.crt"),
            key: pki.join("healthcheck-client.key"),
        }
    }

    /// Waits until every running member reports `/health` true.
    pub fn wait_healthy(&mut self, timeout: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = true;
            for m in &mut self.members {
                if !m.is_running() {
                    if m.process.is_some() {
                        return Err(std::io::Error::other(format!(
                            "etcd member {} exited; its log:\n{}",
                            m.name,
                            m.log_tail(30)
                        )));
                    }
                    continue;
                }
                if !metrics_health(m.metrics_port) {
                    all = false;
                }
            }
            if all {
                return Ok(());
            }
            if Instant::now() > deadline {
                let logs: Vec<String> =
                    self.members.iter().map(|m| format!("{}:\n{}", m.name, m.log_tail(20))).collect();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("etcd did not become healthy within {timeout:?}\n{}", logs.join("\n")),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL one member (a crash: no graceful leader transfer).
    pub fn kill(&mut self, index: usize) {
        if let Some(p) = self.members[index].process.as_mut() {
            p.kill();
        }
    }

    /// SIGTERM one member (a clean stop).
    pub fn stop(&mut self, index: usize) {
        if let Some(p) = self.members[index].process.as_mut() {
            p.terminate(Duration::from_secs(5));
        }
    }

    /// Starts a stopped or killed member again with its data.
    pub fn restart(&mut self, index: usize) -> std::io::Result<()> {
        let m = &mut self.members[index];
        if !m.is_running() {
            m.args.retain(|a| !a.starts_with("--initial-cluster-state"));
            m.args.push("--initial-cluster-state=existing".into());
            m.spawn()?;
        }
        Ok(())
    }

    /// A client for the given endpoints with the healthcheck-client certificate.
    pub async fn client_for(&self, endpoints: &[String]) -> Result<Client, etcd_client::Error> {
        connect_client(endpoints, &self.client_tls()).await
    }

    /// A client for every member.
    pub async fn client(&self) -> Result<Client, etcd_client::Error> {
        self.client_for(&self.endpoints()).await
    }

    /// Index of the current leader, asking each running member.
    pub async fn leader_index(&self) -> Option<usize> {
        for m in &self.members {
            let Ok(mut c) = self.client_for(&[m.local_client_url()]).await else {
                continue;
            };
            let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(2), c.status()).await else {
                continue;
            };
            let leader = status.leader();
            let header_member = status.header().map(|h| h.member_id());
            if header_member == Some(leader) {
                return self.members.iter().position(|x| x.name == m.name);
            }
            // Ask which member is the leader by ID.
            if let Ok(Ok(list)) = tokio::time::timeout(Duration::from_secs(2), c.member_list()).await {
                for member in list.members() {
                    if member.id() == leader {
                        return self.members.iter().position(|x| x.name == member.name());
                    }
                }
            }
        }
        None
    }
}

/// An etcd client with TLS client-cert auth.
pub async fn connect_client(endpoints: &[String], tls: &ClientTls) -> Result<Client, etcd_client::Error> {
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    let options = ConnectOptions::new()
        .with_tls(
            TlsOptions::new()
                .ca_certificate(Certificate::from_pem(read(&tls.cacert)))
                .identity(Identity::from_pem(read(&tls.cert), read(&tls.key))),
        )
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(30));
    Client::connect(endpoints, Some(options)).await
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(p) = m.process.as_mut() {
                p.kill();
            }
        }
    }
}

/// `GET /health` on the plain-HTTP metrics listener (kubeadm's `--listen-metrics-urls`).
pub fn metrics_health(port: u16) -> bool {
    http_get_local(port, "/health").map(|body| body.contains("\"health\":\"true\"")).unwrap_or(false)
}

/// A minimal HTTP/1.0 GET against 127.0.0.1 (no client library needed for etcd's metrics port).
pub fn http_get_local(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}
