//! The API objects a kubeadm cluster holds about itself: its nodes, the mirror pods the kubelet
//! creates for the static pods (kubernetes `pkg/kubelet/pod/mirror_client.go`: the
//! `kubernetes.io/config.mirror` annotation, the Node as controlling owner), kubeadm's
//! ClusterConfiguration, and kwok's per-pod exec and port-forward routes.

use std::net::Ipv4Addr;
use std::path::Path;

use std::net::SocketAddr;

use serde_json::{Value, json};

/// A node of the cluster.
#[derive(Debug, Clone)]
pub struct RealNode {
    pub name: String,
    pub ip: Ipv4Addr,
    pub control_plane: bool,
}

/// The Node object as `kubeadm join` leaves it (kwok fills the status).
pub fn node(n: &RealNode) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
    });
    let mut taints = json!([]);
    if n.control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = json!("");
        taints = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": n.name, "labels": labels,
                     "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"taints": taints},
    })
}

/// A static pod's mirror: the command line the process really runs, its host paths, kubeadm's
/// labels and annotations.
pub struct MirrorPod<'a> {
    pub component: &'a str,
    pub node: &'a RealNode,
    pub node_uid: &'a str,
    pub image: &'a str,
    pub command: &'a [String],
    /// hostPath volumes: (name, path on the node).
    pub host_paths: Vec<(&'a str, String)>,
    pub annotations: Vec<(&'a str, String)>,
    /// The port and scheme of the liveness probe (kubeadm probes each component locally).
    pub probe: Option<(&'a str, u16, &'a str)>,
}

pub fn mirror_pod(m: &MirrorPod) -> Value {
    let name = format!("{}-{}", m.component, m.node.name);
    let mut annotations = json!({
        "kubernetes.io/config.mirror": format!("{:x}", fnv1a(m.command)),
        "kubernetes.io/config.hash": format!("{:x}", fnv1a(m.command)),
        "kubernetes.io/config.source": "file",
    });
    for (k, v) in &m.annotations {
        annotations[*k] = json!(v);
    }
    let volumes: Vec<Value> = m
        .host_paths
        .iter()
        .map(|(n, p)| json!({"name": n, "hostPath": {"path": p, "type": "DirectoryOrCreate"}}))
        .collect();
    let mounts: Vec<Value> = m.host_paths.iter().map(|(n, p)| json!({"name": n, "mountPath": p})).collect();
    let mut container = json!({
        "name": m.component, "image": m.image, "imagePullPolicy": "IfNotPresent",
        "command": m.command, "volumeMounts": mounts,
        "resources": {"requests": {"cpu": if m.component == "kube-apiserver" { "250m" } else { "100m" }}},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    });
    if let Some((path, port, scheme)) = m.probe {
        let probe = json!({"httpGet": {"host": m.node.ip.to_string(), "path": path, "port": port, "scheme": scheme},
                           "failureThreshold": 8, "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 15});
        container["livenessProbe"] = probe.clone();
        container["startupProbe"] = probe;
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "kube-system",
            "labels": {"component": m.component, "tier": "control-plane"},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": m.node.name, "uid": m.node_uid, "controller": true}],
        },
        "spec": {
            "nodeName": m.node.name, "hostNetwork": true, "priority": 2000001000,
            "priorityClassName": "system-node-critical", "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "tolerations": [{"effect": "NoExecute", "operator": "Exists"}],
            "containers": [container], "volumes": volumes,
        },
    })
}

/// kubeadm's `kube-system/kubeadm-config` ConfigMap.
pub fn kubeadm_config(version: &str, endpoint: &str, pki_dir: &Path) -> Value {
    let config = format!(
        "apiServer: {{}}\napiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\n\
         certificateValidityPeriod: 8760h0m0s\ncertificatesDir: {}\nclusterName: kubernetes\n\
         controlPlaneEndpoint: {endpoint}\ncontrollerManager: {{}}\ndns: {{}}\nencryptionAlgorithm: ECDSA-P256\n\
         etcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\n\
         kubernetesVersion: {version}\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n\
         serviceSubnet: 10.96.0.0/12\nproxy: {{}}\nscheduler: {{}}\n",
        pki_dir.display()
    );
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
           "data": {"ClusterConfiguration": config}})
}

/// Port-forwards into every pod of a namespace (a Deployment's, whose names are not known when
/// kwok starts): `port` of the pods goes to `target`.
#[derive(Debug, Clone)]
pub struct NamespaceForward {
    pub namespace: String,
    pub port: u16,
    pub target: SocketAddr,
}

/// kwok's configuration for one node: its stages, and for the pods on it that have a process of
/// their own here, their logs, and exec and port-forward (the etcd member, the webhook backend).
pub fn kwok_config(stages: &[String], routes: &[PodRoute], forwards: &[NamespaceForward]) -> String {
    let mut docs: Vec<String> = stages.to_vec();
    for f in forwards {
        let forward = json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
            "metadata": {"name": format!("{}-{}", f.namespace, f.port)},
            "spec": {
                "selector": {"matchNamespaces": [f.namespace]},
                "forwards": [{"ports": [f.port], "target": {"address": f.target.ip().to_string(), "port": f.target.port()}}],
            },
        });
        docs.push(serde_yaml::to_string(&forward).unwrap_or_default());
    }
    for r in routes {
        if let Some(file) = &r.logs_file {
            let logs = json!({
                "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
                "metadata": {"name": r.pod, "namespace": r.namespace},
                "spec": {"logs": [{"logsFile": file.display().to_string(), "follow": true}]},
            });
            docs.push(serde_yaml::to_string(&logs).unwrap_or_default());
        }
        if r.work_dir.is_empty() {
            continue;
        }
        let exec = json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec",
            "metadata": {"name": r.pod, "namespace": r.namespace},
            "spec": {"execs": [{"local": {"workDir": r.work_dir}}]},
        });
        let forward = json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
            "metadata": {"name": r.pod, "namespace": r.namespace},
            "spec": {"forwards": r.ports.iter().map(|(port, target)| json!({
                "ports": [port], "target": {"address": target.ip().to_string(), "port": target.port()}
            })).collect::<Vec<_>>()},
        });
        docs.push(serde_yaml::to_string(&exec).unwrap_or_default());
        docs.push(serde_yaml::to_string(&forward).unwrap_or_default());
    }
    docs.join("\n---\n")
}

/// Where logs, exec and port-forward of one pod go.
#[derive(Debug, Clone)]
pub struct PodRoute {
    pub namespace: String,
    pub pod: String,
    /// The process's log file (`kubectl logs`).
    pub logs_file: Option<std::path::PathBuf>,
    /// Exec runs here ("" for no exec or port-forward).
    pub work_dir: String,
    /// (container port, where it really listens)
    pub ports: Vec<(u16, std::net::SocketAddr)>,
}

/// A stable hash for the config hash annotations (the kubelet hashes the pod spec).
fn fnv1a(parts: &[String]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}
