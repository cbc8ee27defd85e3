//! The certificates and kubeconfigs of a kubeadm control plane, written into each node's
//! `etc/kubernetes` the way `kubeadm init` / `kubeadm join --control-plane` lay them out
//! (kubernetes `cmd/kubeadm/app/phases/certs/certlist.go`, `phases/kubeconfig/kubeconfig.go`).
//! The CAs and the service-account key pair are shared by every control-plane node.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::pki::{Ca, KeyedCert, LeafSpec, Validity, client_spec, write_private};

/// The cluster-wide secrets every control-plane node holds a copy of.
pub struct ClusterPki {
    pub ca: Ca,
    pub front_proxy_ca: Ca,
    /// `sa.key` / `sa.pub`: signs and verifies service-account tokens.
    pub sa_key_pem: String,
    pub sa_pub_pem: String,
}

impl ClusterPki {
    pub fn new() -> ClusterPki {
        let key = rcgen::KeyPair::generate().expect("generating the service-account key");
        ClusterPki {
            ca: Ca::new("kubernetes"),
            front_proxy_ca: Ca::new("front-proxy-ca"),
            sa_key_pem: key.serialize_pem(),
            sa_pub_pem: key.public_key_pem(),
        }
    }
}

impl Default for ClusterPki {
    fn default() -> Self {
        ClusterPki::new()
    }
}

/// What a node's `etc/kubernetes` needs to know about the node and the cluster.
pub struct NodePkiSpec<'a> {
    pub node: &'a str,
    pub ip: Ipv4Addr,
    /// Where this node's kube-apiserver answers (`https://<ip>:<port>`).
    pub local_apiserver: String,
    /// Validity of the kube-apiserver serving certificate (scenarios shorten it).
    pub serving_validity: Validity,
}

/// One node's `etc/kubernetes` directory.
#[derive(Debug, Clone)]
pub struct NodePki {
    pub root: PathBuf,
}

impl NodePki {
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }

    pub fn file(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// `pki/<relative>` as a string, for command lines.
    pub fn arg(&self, relative: &str) -> String {
        self.pki().join(relative).display().to_string()
    }
}

const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// Writes the node's certificates (the etcd ones are written by `EtcdCluster`) and kubeconfigs.
pub fn write_node(
    pki: &ClusterPki,
    etcd_ca: &Ca,
    etc_kubernetes: &Path,
    spec: &NodePkiSpec,
) -> std::io::Result<NodePki> {
    let dir = etc_kubernetes.join("pki");
    std::fs::create_dir_all(&dir)?;
    let year = Validity::days(365);
    write_ca(&pki.ca, &dir, "ca")?;
    write_ca(&pki.front_proxy_ca, &dir, "front-proxy-ca")?;
    std::fs::write(dir.join("sa.pub"), &pki.sa_pub_pem)?;
    write_private(&dir.join("sa.key"), pki.sa_key_pem.as_bytes())?;

    write_serving(pki, &dir, spec)?;
    pki.ca
        .issue(&client_spec("kube-apiserver-kubelet-client", &["kubeadm:cluster-admins"]), year)
        .write(&dir, "apiserver-kubelet-client")?;
    etcd_ca.issue(&client_spec("kube-apiserver-etcd-client", &[]), year).write(&dir, "apiserver-etcd-client")?;
    pki.front_proxy_ca.issue(&client_spec("front-proxy-client", &[]), year).write(&dir, "front-proxy-client")?;

    let ca_pem = &pki.ca.cert.cert_pem;
    let conf = |user: &str, groups: &[&str]| pki.ca.issue(&client_spec(user, groups), year);
    // kubeadm ≥ 1.29: admin.conf is in kubeadm:cluster-admins, super-admin.conf in system:masters.
    let kubeconfigs = [
        ("admin.conf", "kubernetes-admin", conf("kubernetes-admin", &["kubeadm:cluster-admins"])),
        ("super-admin.conf", "kubernetes-super-admin", conf("kubernetes-super-admin", &["system:masters"])),
        ("controller-manager.conf", "system:kube-controller-manager", conf("system:kube-controller-manager", &[])),
        ("scheduler.conf", "system:kube-scheduler", conf("system:kube-scheduler", &[])),
    ];
    for (file, user, cert) in &kubeconfigs {
        let text = kubeconfig("kubernetes", &spec.local_apiserver, ca_pem, user, cert);
        write_private(&etc_kubernetes.join(file), text.as_bytes())?;
    }
    Ok(NodePki { root: etc_kubernetes.to_path_buf() })
}

/// Writes `apiserver.crt`/`.key`: the serving certificate with kubeadm's SANs (the service
/// names and IP, the node's name and address, and 127.0.0.1 for the load balancer here).
pub fn write_serving(pki: &ClusterPki, dir: &Path, spec: &NodePkiSpec) -> std::io::Result<()> {
    let ips: Vec<IpAddr> = vec![IpAddr::V4(SERVICE_IP), IpAddr::V4(spec.ip), IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let dns: Vec<String> = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        spec.node,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let serving = pki.ca.issue(
        &LeafSpec { common_name: "kube-apiserver".into(), dns_names: dns, ips, server: true, ..Default::default() },
        spec.serving_validity,
    );
    // Key first, then the certificate: the API server reloads when either changes.
    let tmp = dir.join(".apiserver.crt.tmp");
    write_private(&dir.join("apiserver.key"), serving.key_pem.as_bytes())?;
    std::fs::write(&tmp, &serving.cert_pem)?;
    std::fs::rename(tmp, dir.join("apiserver.crt"))
}

fn write_ca(ca: &Ca, dir: &Path, name: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(format!("{name}.crt")), &ca.cert.cert_pem)?;
    write_private(&dir.join(format!("{name}.key")), ca.cert.key_pem.as_bytes())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// A one-context kubeconfig with embedded client certificate, as kubeadm writes them.
pub fn kubeconfig(cluster: &str, server: &str, ca_pem: &str, user: &str, cert: &KeyedCert) -> String {
    let context = format!("{user}@{cluster}");
    let doc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": context, "preferences": {},
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(&cert.cert_pem), "client-key-data": b64(&cert.key_pem)}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}
