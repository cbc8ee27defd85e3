//! The objects of a simulated cluster, built from the real captures: the kubeadm static pods of
//! every control-plane node (the capture's pod specs with kubeadm paths and flags pointing at the
//! kit's etcd members), nodes, the capture's other pods, services and endpoints, leases,
//! configmaps, APIServices, the default APF objects.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::apiserver::registry::{self, ResourceType};
use crate::apiserver::store::Store;
use crate::apiserver::streaming::{ExecEnv, Image, PodRuntime};
use crate::fixtures;

/// A node of the simulated cluster.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub ip: Ipv4Addr,
    pub control_plane: bool,
}

/// Where one control-plane node's etcd member listens (from the harness).
#[derive(Debug, Clone)]
pub struct EtcdEndpoint {
    /// `--quota-backend-bytes` when set (0 = etcd's default).
    pub quota_backend_bytes: u64,
    pub client_port: u16,
    pub peer_port: u16,
    pub metrics_port: u16,
    pub node_root: std::path::PathBuf,
}

pub fn rt(group: &str, resource: &str) -> &'static ResourceType {
    registry::find(group, resource).unwrap_or_else(|| panic!("resource type {group}/{resource} is registered"))
}

pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Moves every RFC 3339 timestamp of a capture by `offset` (captures are months old; the
/// simulated cluster should look a few days old).
pub fn shift_times(v: &mut Value, offset: SignedDuration) {
    match v {
        Value::String(s) => {
            if s.len() >= 20
                && s.as_bytes()[4] == b'-'
                && s.as_bytes()[10] == b'T'
                && s.ends_with('Z')
                && let Ok(t) = s.parse::<Timestamp>()
            {
                let shifted = t + offset;
                *s = if s.contains('.') {
                    shifted.strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
                } else {
                    rfc3339(shifted)
                };
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| shift_times(x, offset)),
        Value::Object(o) => o.values_mut().for_each(|x| shift_times(x, offset)),
        _ => {}
    }
}

/// Replaces `--flag=...` in a command, or appends it.
pub fn set_flag(command: &mut Value, flag: &str, value: &str) {
    let Some(args) = command.as_array_mut() else {
        return;
    };
    let prefix = format!("--{flag}=");
    let new = json!(format!("{prefix}{value}"));
    match args.iter_mut().find(|a| a.as_str().is_some_and(|s| s.starts_with(&prefix))) {
        Some(a) => *a = new,
        None => args.push(new),
    }
}

/// Text replacement inside a JSON value (for paths such as minikube's cert directory).
pub fn replace_all(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_all(x, from, to)),
        Value::Object(o) => o.values_mut().for_each(|x| replace_all(x, from, to)),
        _ => {}
    }
}

fn set_probe_ports(container: &mut Value, port: u16, host: &str) {
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if container[probe]["httpGet"].is_object() {
            container[probe]["httpGet"]["port"] = json!(port);
            container[probe]["httpGet"]["host"] = json!(host);
        }
    }
}

/// The capture of one Kubernetes minor version, rewritten to loopback.
pub struct Capture {
    pub minor: u32,
    pub pods: Vec<Value>,
    pub nodes: Vec<Value>,
    pub namespaces: Vec<Value>,
    pub services: Vec<Value>,
    pub endpoints: Vec<Value>,
    /// How far the capture's timestamps are moved.
    pub offset: SignedDuration,
}

impl Capture {
    pub fn load(minor: u32) -> std::io::Result<Capture> {
        let dir = fixtures::cluster_dir(minor);
        let nodes = fixtures::list_items(&dir.join("nodes.yaml"))?;
        let captured_at = nodes
            .first()
            .and_then(|n| n["metadata"]["creationTimestamp"].as_str())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let offset = Timestamp::now().duration_since(captured_at) - SignedDuration::from_hours(24 * 12);
        let load = |file: &str| -> std::io::Result<Vec<Value>> {
            let mut items = fixtures::list_items(&dir.join(file))?;
            for i in &mut items {
                shift_times(i, offset);
            }
            Ok(items)
        };
        Ok(Capture {
            minor: minor.clamp(31, 34),
            pods: load("pods.yaml")?,
            nodes: load("nodes.yaml")?,
            namespaces: load("namespaces.yaml")?,
            services: load("services.yaml")?,
            endpoints: load("endpoints.yaml")?,
            offset,
        })
    }

    fn static_pod(&self, component: &str) -> Option<Value> {
        self.pods
            .iter()
            .find(|p| p["metadata"]["labels"]["component"] == component && p["metadata"]["namespace"] == "kube-system")
            .cloned()
    }

    /// The kubelet version string of the capture (`v1.33.0`).
    pub fn kubelet_version(&self) -> String {
        self.nodes
            .first()
            .and_then(|n| n["status"]["nodeInfo"]["kubeletVersion"].as_str())
            .unwrap_or("v1.33.0")
            .to_string()
    }
}

/// Builder of the cluster's objects.
pub struct SimWorld {
    pub store: Store,
    pub exec: ExecEnv,
    pub live_leases: Vec<(String, String)>,
    pub nodes: Vec<NodeSpec>,
    pub apiserver_port: u16,
    pub version: String,
}

fn ago(minutes: i64) -> String {
    rfc3339(Timestamp::now() - SignedDuration::from_mins(minutes))
}

impl SimWorld {
    pub fn new(version: &str, apiserver_port: u16) -> std::io::Result<SimWorld> {
        Ok(SimWorld {
            store: Store::default(),
            exec: ExecEnv::new()?,
            live_leases: Vec::new(),
            nodes: Vec::new(),
            apiserver_port,
            version: version.into(),
        })
    }

    pub fn put(&mut self, group: &str, resource: &str, obj: Value) -> Value {
        self.store.put(rt(group, resource), obj)
    }

    /// Nodes, from the capture's node as a template.
    pub fn add_nodes(&mut self, capture: &Capture, nodes: &[NodeSpec], managed: bool) {
        let template = capture.nodes.first().cloned().unwrap_or(json!({"metadata": {}, "status": {}}));
        for n in nodes {
            let mut node = template.clone();
            let mut labels: BTreeMap<String, Value> = node["metadata"]["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| {
                            !k.starts_with("minikube.k8s.io")
                                && !k.starts_with("node-role")
                                && !k.starts_with("node.kubernetes.io/exclude")
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            labels.insert("kubernetes.io/hostname".into(), json!(n.name));
            labels.insert("kubernetes.io/arch".into(), json!("amd64"));
            labels.insert("beta.kubernetes.io/arch".into(), json!("amd64"));
            if n.control_plane {
                labels.insert("node-role.kubernetes.io/control-plane".into(), json!(""));
                labels.insert("node.kubernetes.io/exclude-from-external-load-balancers".into(), json!(""));
                node["spec"]["taints"] =
                    json!([{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]);
            }
            if managed {
                labels.insert("eks.amazonaws.com/nodegroup".into(), json!("ng-general"));
                labels.insert("eks.amazonaws.com/capacityType".into(), json!("ON_DEMAND"));
                labels.insert("topology.kubernetes.io/zone".into(), json!("us-east-1a"));
                node["spec"]["providerID"] = json!(format!("aws:///us-east-1a/i-0{:016x}", n.ip.to_bits()));
            }
            node["metadata"]["labels"] = json!(labels);
            node["metadata"]["name"] = json!(n.name);
            if let Some(a) = node["metadata"]["annotations"].as_object_mut() {
                a.retain(|k, _| !k.contains("minikube"));
            }
            node["metadata"]["creationTimestamp"] = json!(ago(60 * 24 * 12));
            node["metadata"].as_object_mut().map(|m| m.remove("uid"));
            node["status"]["addresses"] =
                json!([{"address": n.ip.to_string(), "type": "InternalIP"}, {"address": n.name, "type": "Hostname"}]);
            node["status"]["nodeInfo"]["kubeletVersion"] = json!(self.version);
            node["status"]["nodeInfo"]["architecture"] = json!("amd64");
            let now = rfc3339(Timestamp::now());
            if let Some(conds) = node["status"]["conditions"].as_array_mut() {
                for c in conds {
                    c["lastHeartbeatTime"] = json!(now);
                }
            }
            self.put("", "nodes", node);
            self.put(
                "coordination.k8s.io",
                "leases",
                json!({"metadata": {"name": n.name, "namespace": "kube-node-lease", "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": n.name, "uid": ""}]},
                       "spec": {"holderIdentity": n.name, "leaseDurationSeconds": 40, "renewTime": crate::apiserver::dynamics::micro_time(Timestamp::now())}}),
            );
            self.live_leases.push(("kube-node-lease".into(), n.name.clone()));
            self.nodes.push(n.clone());
        }
    }

    /// Marks a node NotReady (kubelet stopped posting status).
    pub fn set_node_not_ready(&mut self, name: &str) {
        self.store.modify(rt("", "nodes"), "", name, |n| {
            if let Some(conds) = n["status"]["conditions"].as_array_mut() {
                for c in conds.iter_mut() {
                    if c["type"] == "Ready" {
                        c["status"] = json!("Unknown");
                        c["reason"] = json!("NodeStatusUnknown");
                        c["message"] = json!("Kubelet stopped posting node status.");
                        c["lastHeartbeatTime"] = json!(ago(9));
                        c["lastTransitionTime"] = json!(ago(8));
                    }
                }
            }
        });
        self.live_leases.retain(|(ns, n)| !(ns == "kube-node-lease" && n == name));
    }

    /// The kubeadm static pods of one control-plane node.
    pub fn add_control_plane(
        &mut self,
        capture: &Capture,
        node: &NodeSpec,
        etcd: Option<&EtcdEndpoint>,
        initial_cluster: &str,
    ) {
        let ip = node.ip.to_string();
        let port = self.apiserver_port;
        for component in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
            if component == "etcd" && etcd.is_none() {
                continue;
            }
            let Some(mut pod) = capture.static_pod(component) else {
                continue;
            };
            // kubeadm's layout instead of minikube's.
            replace_all(&mut pod, "/var/lib/minikube/certs", "/etc/kubernetes/pki");
            replace_all(&mut pod, "/var/lib/minikube/etcd", "/var/lib/etcd");
            let name = format!("{component}-{}", node.name);
            pod["metadata"]["name"] = json!(name);
            pod["metadata"].as_object_mut().map(|m| m.remove("uid"));
            pod["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "v1", "controller": true, "kind": "Node", "name": node.name, "uid": ""}]);
            pod["spec"]["nodeName"] = json!(node.name);
            pod["status"]["hostIP"] = json!(ip);
            pod["status"]["hostIPs"] = json!([{"ip": ip}]);
            pod["status"]["podIP"] = json!(ip);
            pod["status"]["podIPs"] = json!([{"ip": ip}]);
            pod["status"]["startTime"] = json!(ago(60 * 24 * 12));
            pod["metadata"]["creationTimestamp"] = json!(ago(60 * 24 * 12));
            if let Some(cs) = pod["status"]["containerStatuses"].as_array_mut() {
                for c in cs {
                    c["state"] = json!({"running": {"startedAt": ago(60 * 24 * 12)}});
                    c["restartCount"] = json!(0);
                    c["lastState"] = json!({});
                }
            }
            let mut container_value = pod["spec"]["containers"][0].take();
            let container = &mut container_value;
            match component {
                "etcd" => {
                    let e = etcd.expect("checked above");
                    let client = format!("https://{ip}:{}", e.client_port);
                    pod["metadata"]["annotations"]["kubeadm.kubernetes.io/etcd.advertise-client-urls"] = json!(client);
                    let cmd = &mut container["command"];
                    set_flag(cmd, "advertise-client-urls", &client);
                    set_flag(cmd, "initial-advertise-peer-urls", &format!("https://{ip}:{}", e.peer_port));
                    set_flag(cmd, "initial-cluster", initial_cluster);
                    set_flag(cmd, "listen-client-urls", &format!("https://127.0.0.1:{},{client}", e.client_port));
                    set_flag(cmd, "listen-metrics-urls", &format!("http://127.0.0.1:{}", e.metrics_port));
                    set_flag(cmd, "listen-peer-urls", &format!("https://{ip}:{}", e.peer_port));
                    set_flag(cmd, "name", &node.name);
                    if e.quota_backend_bytes > 0 {
                        set_flag(cmd, "quota-backend-bytes", &e.quota_backend_bytes.to_string());
                    }
                    set_probe_ports(container, e.metrics_port, "127.0.0.1");
                    self.exec.add_pod(
                        "kube-system",
                        &name,
                        PodRuntime {
                            image: Image::Etcd35,
                            node_root: Some(e.node_root.clone()),
                            logs: etcd_logs(&node.name),
                            running: true,
                            container: "etcd".into(),
                            uid: String::new(),
                        },
                    );
                }
                "kube-apiserver" => {
                    pod["metadata"]["annotations"]["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"] =
                        json!(format!("{ip}:{port}"));
                    let cmd = &mut container["command"];
                    set_flag(cmd, "advertise-address", &ip);
                    set_flag(cmd, "secure-port", &port.to_string());
                    if let Some(e) = etcd {
                        set_flag(cmd, "etcd-servers", &format!("https://127.0.0.1:{}", e.client_port));
                    }
                    set_probe_ports(container, port, &ip);
                    self.exec.add_pod(
                        "kube-system",
                        &name,
                        PodRuntime {
                            image: Image::Distroless,
                            node_root: None,
                            logs: apiserver_logs(),
                            running: true,
                            container: "kube-apiserver".into(),
                            uid: String::new(),
                        },
                    );
                }
                _ => {
                    set_flag(&mut container["command"], "leader-elect", "true");
                    self.exec.add_pod(
                        "kube-system",
                        &name,
                        PodRuntime { image: Image::Distroless, node_root: None, logs: format!("I0101 00:00:00.000000       1 leaderelection.go:257] attempting to acquire leader lease kube-system/{component}...\n"), running: true, container: component.into(), uid: String::new() },
                    );
                }
            }
            pod["spec"]["containers"][0] = container_value;
            pod["spec"]["containers"][0]["image"] = json!(image_for(component, &self.version));
            if let Some(cs) = pod["status"]["containerStatuses"].as_array_mut() {
                for c in cs {
                    c["image"] = json!(image_for(component, &self.version));
                }
            }
            self.put("", "pods", pod);
        }
    }

    /// Makes a static pod's container crash-loop (not ready, restarting, last exit as given).
    pub fn crash_loop(&mut self, namespace: &str, pod: &str, restarts: u32, last_reason: &str, exit_code: i32) {
        self.store.modify(rt("", "pods"), namespace, pod, |p| {
            for cond in p["status"]["conditions"].as_array_mut().into_iter().flatten() {
                if cond["type"] == "Ready" || cond["type"] == "ContainersReady" {
                    cond["status"] = json!("False");
                    cond["reason"] = json!("ContainersNotReady");
                    cond["lastTransitionTime"] = json!(ago(7));
                }
            }
            for c in p["status"]["containerStatuses"].as_array_mut().into_iter().flatten() {
                c["ready"] = json!(false);
                c["started"] = json!(false);
                c["restartCount"] = json!(restarts);
                c["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 5m0s restarting failed container={} pod={pod}", c["name"].as_str().unwrap_or(""))}});
                c["lastState"] = json!({"terminated": {"exitCode": exit_code, "reason": last_reason, "startedAt": ago(4), "finishedAt": ago(3)}});
            }
        });
        if let Some(mut r) = self.exec.pod(namespace, pod) {
            r.running = false;
            self.exec.add_pod(namespace, pod, r);
        }
        self.put(
            "",
            "events",
            json!({
                "metadata": {"name": format!("{pod}.{:x}", rand::random::<u32>()), "namespace": namespace},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": namespace, "fieldPath": "spec.containers{main}"},
                "reason": "BackOff", "message": "Back-off restarting failed container", "type": "Warning",
                "count": restarts, "firstTimestamp": ago(60), "lastTimestamp": ago(2),
                "source": {"component": "kubelet"}, "reportingComponent": "kubelet"
            }),
        );
    }

    /// The capture's other pods (DaemonSets, coredns, workloads), spread over the nodes.
    pub fn add_workload_pods(&mut self, capture: &Capture) {
        let workers: Vec<NodeSpec> = self.nodes.iter().filter(|n| !n.control_plane).cloned().collect();
        let all = self.nodes.clone();
        let mut k = 0;
        for pod in &capture.pods {
            if pod["metadata"]["labels"]["tier"] == "control-plane" {
                continue;
            }
            let daemon = pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet";
            let targets: Vec<&NodeSpec> = if daemon {
                all.iter().collect()
            } else {
                vec![&workers.get(k % workers.len().max(1)).unwrap_or(&all[0])]
            };
            k += 1;
            for (i, node) in targets.iter().enumerate() {
                let mut p = pod.clone();
                if daemon && i > 0 {
                    let base = p["metadata"]["name"].as_str().unwrap_or("pod").to_string();
                    let stem = base.rsplit_once('-').map(|(a, _)| a).unwrap_or(&base);
                    p["metadata"]["name"] = json!(format!("{stem}-{:05x}", (node.ip.to_bits() ^ 0x5a5a) & 0xfffff));
                }
                p["metadata"].as_object_mut().map(|m| m.remove("uid"));
                p["spec"]["nodeName"] = json!(node.name);
                p["status"]["hostIP"] = json!(node.ip.to_string());
                p["status"]["hostIPs"] = json!([{"ip": node.ip.to_string()}]);
                if p["spec"]["hostNetwork"] == true {
                    p["status"]["podIP"] = json!(node.ip.to_string());
                    p["status"]["podIPs"] = json!([{"ip": node.ip.to_string()}]);
                }
                let ns = p["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
                let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
                let container = p["spec"]["containers"][0]["name"].as_str().unwrap_or("main").to_string();
                let running = p["status"]["phase"] == "Running";
                self.exec.add_pod(
                    &ns,
                    &name,
                    PodRuntime {
                        image: Image::Shell,
                        node_root: None,
                        logs: format!("starting {container}\n"),
                        running,
                        container,
                        uid: String::new(),
                    },
                );
                self.put("", "pods", p);
            }
        }
    }

    pub fn add_namespaces(&mut self, capture: &Capture, extra: &[&str]) {
        let mut names: Vec<String> = Vec::new();
        for ns in &capture.namespaces {
            let mut n = ns.clone();
            n["metadata"].as_object_mut().map(|m| m.remove("uid"));
            names.push(n["metadata"]["name"].as_str().unwrap_or("").to_string());
            self.put("", "namespaces", n);
        }
        for e in extra {
            if !names.iter().any(|n| n == e) {
                self.put(
                    "",
                    "namespaces",
                    json!({"metadata": {"name": e, "labels": {"kubernetes.io/metadata.name": e}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
                );
                names.push(e.to_string());
            }
        }
    }

    /// Services and Endpoints of the capture, plus EndpointSlices; the `kubernetes` service
    /// lists every API server replica.
    pub fn add_services(&mut self, capture: &Capture, replicas: &[(String, Ipv4Addr)]) {
        let port = self.apiserver_port;
        for svc in &capture.services {
            let mut s = svc.clone();
            s["metadata"].as_object_mut().map(|m| m.remove("uid"));
            if s["metadata"]["name"] == "kubernetes" && s["metadata"]["namespace"] == "default" {
                s["spec"]["ports"][0]["targetPort"] = json!(port);
            }
            self.put("", "services", s);
        }
        for ep in &capture.endpoints {
            let mut e = ep.clone();
            e["metadata"].as_object_mut().map(|m| m.remove("uid"));
            let name = e["metadata"]["name"].as_str().unwrap_or("").to_string();
            let ns = e["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
            if name == "kubernetes" && ns == "default" {
                e["subsets"] = json!([{"addresses": replicas.iter().map(|(_, ip)| json!({"ip": ip.to_string()})).collect::<Vec<_>>(), "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
            }
            // An EndpointSlice per Endpoints, as the mirroring controller keeps them.
            let mut endpoints = Vec::new();
            let mut ports = Vec::new();
            for subset in e["subsets"].as_array().cloned().unwrap_or_default() {
                for (ready, key) in [(true, "addresses"), (false, "notReadyAddresses")] {
                    for a in subset[key].as_array().cloned().unwrap_or_default() {
                        let mut ep = json!({"addresses": [a["ip"]], "conditions": {"ready": ready, "serving": ready, "terminating": false}});
                        if let Some(node) = a["nodeName"].as_str() {
                            ep["nodeName"] = json!(node);
                        }
                        if !a["targetRef"].is_null() {
                            ep["targetRef"] = a["targetRef"].clone();
                        }
                        endpoints.push(ep);
                    }
                }
                ports = subset["ports"].as_array().cloned().unwrap_or_default();
            }
            let slice_name = if name == "kubernetes" {
                "kubernetes".to_string()
            } else {
                format!("{name}-{:05x}", rand::random::<u32>() & 0xfffff)
            };
            let mut labels = json!({"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"});
            if name == "kubernetes" {
                labels["endpointslice.kubernetes.io/managed-by"] = json!("endpointslicemirroring-controller.k8s.io");
            }
            self.put(
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": {"name": slice_name, "namespace": ns, "labels": labels}, "addressType": "IPv4", "endpoints": endpoints, "ports": ports}),
            );
            self.put("", "endpoints", e);
        }
    }

    /// A Service with an EndpointSlice of the given endpoints (address, ready, node, pod).
    pub fn add_service_with_endpoints(
        &mut self,
        namespace: &str,
        name: &str,
        cluster_ip: &str,
        port: u16,
        target_port: u16,
        endpoints: &[(String, bool, String, String)],
    ) {
        self.put(
            "",
            "services",
            json!({"metadata": {"name": name, "namespace": namespace}, "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                   "ports": [{"name": "https", "port": port, "protocol": "TCP", "targetPort": target_port}], "selector": {"app": name}}}),
        );
        let eps: Vec<Value> = endpoints
            .iter()
            .map(|(addr, ready, node, pod)| {
                json!({"addresses": [addr], "conditions": {"ready": ready, "serving": ready, "terminating": false}, "nodeName": node,
                       "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace}})
            })
            .collect();
        self.put(
            "discovery.k8s.io",
            "endpointslices",
            json!({"metadata": {"name": format!("{name}-{:05x}", rand::random::<u32>() & 0xfffff), "namespace": namespace,
                                 "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                   "addressType": "IPv4", "endpoints": eps, "ports": [{"name": "https", "port": target_port, "protocol": "TCP"}]}),
        );
    }

    /// A Deployment and its pods (for webhook backends).
    pub fn add_deployment(&mut self, namespace: &str, name: &str, pods: &[(String, String, bool)], image: &str) {
        let ready = pods.iter().filter(|(_, _, r)| *r).count();
        self.put(
            "apps",
            "deployments",
            json!({"metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                   "spec": {"replicas": pods.len(), "selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "webhook", "image": image}]}}},
                   "status": {"replicas": pods.len(), "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": pods.len(), "observedGeneration": 1}}),
        );
        for (pod, node, is_ready) in pods {
            let node_ip = self.nodes.iter().find(|n| &n.name == node).map(|n| n.ip.to_string()).unwrap_or_default();
            self.put(
                "",
                "pods",
                json!({"metadata": {"name": pod, "namespace": namespace, "labels": {"app": name},
                                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-7d9c8b5f4"), "uid": "", "controller": true}]},
                       "spec": {"nodeName": node, "containers": [{"name": "webhook", "image": image, "resources": {"limits": {"memory": "64Mi"}}}]},
                       "status": {"phase": "Running", "hostIP": node_ip, "podIP": "127.0.0.1", "startTime": ago(600),
                                  "conditions": [{"type": "Ready", "status": if *is_ready { "True" } else { "False" }}],
                                  "containerStatuses": [{"name": "webhook", "image": image, "ready": is_ready, "restartCount": 0, "started": is_ready,
                                                         "state": {"running": {"startedAt": ago(600)}}}]}}),
            );
            self.exec.add_pod(
                namespace,
                pod,
                PodRuntime {
                    image: Image::Distroless,
                    node_root: None,
                    logs: "serving admission webhook on :8443\n".into(),
                    running: *is_ready,
                    container: "webhook".into(),
                    uid: String::new(),
                },
            );
        }
    }

    /// Leader-election leases, apiserver identity leases.
    pub fn add_control_plane_leases(&mut self, holders: &[(&str, &str)], apiservers: &[String]) {
        let now = crate::apiserver::dynamics::micro_time(Timestamp::now());
        for (lease, holder) in holders {
            self.put(
                "coordination.k8s.io",
                "leases",
                json!({"metadata": {"name": lease, "namespace": "kube-system"},
                       "spec": {"holderIdentity": format!("{holder}_{}", crate::apiserver::store::new_uid()), "leaseDurationSeconds": 15,
                                "acquireTime": crate::apiserver::dynamics::micro_time(Timestamp::now() - SignedDuration::from_hours(30)),
                                "renewTime": now, "leaseTransitions": 2}}),
            );
            self.live_leases.push(("kube-system".into(), lease.to_string()));
        }
        for node in apiservers {
            let hash = format!("{:x}", sha2_short(node));
            let name = format!("apiserver-{hash}");
            self.put(
                "coordination.k8s.io",
                "leases",
                json!({"metadata": {"name": name, "namespace": "kube-system", "labels": {"apiserver.kubernetes.io/identity": "kube-apiserver", "kubernetes.io/hostname": node}},
                       "spec": {"holderIdentity": format!("{name}_{}", crate::apiserver::store::new_uid()), "leaseDurationSeconds": 3600, "renewTime": now}}),
            );
            self.live_leases.push(("kube-system".into(), name));
        }
    }

    /// Makes `node`'s kube-apiserver advertise `ip` (its flag and kubeadm's annotation), as one
    /// behind a bastion advertises its private address.
    pub fn advertise_apiserver_at(&mut self, node: &str, ip: Ipv4Addr, port: u16) {
        self.store.modify(rt("", "pods"), "kube-system", &format!("kube-apiserver-{node}"), |p| {
            p["metadata"]["annotations"]["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"] =
                json!(format!("{ip}:{port}"));
            set_flag(&mut p["spec"]["containers"][0]["command"], "advertise-address", &ip.to_string());
        });
    }

    /// The identity lease of the kube-apiserver on `node`, by its hostname label.
    pub fn identity_lease_of(&self, node: &str) -> Option<String> {
        self.store.list(rt("coordination.k8s.io", "leases"), Some("kube-system")).iter().find_map(|l| {
            (l["metadata"]["labels"]["kubernetes.io/hostname"] == node)
                .then(|| l["metadata"]["name"].as_str().map(str::to_string))
                .flatten()
        })
    }

    /// Stops renewing a lease and dates its last renewal `minutes` ago.
    pub fn stale_lease(&mut self, namespace: &str, name: &str, minutes: i64) {
        let when = crate::apiserver::dynamics::micro_time(Timestamp::now() - SignedDuration::from_mins(minutes));
        self.store
            .modify(rt("coordination.k8s.io", "leases"), namespace, name, |l| l["spec"]["renewTime"] = json!(when));
        self.live_leases.retain(|(ns, n)| !(ns == namespace && n == name));
    }

    pub fn add_configmaps(&mut self, ca_pem: &str, cluster_yaml: &str) {
        let namespaces: Vec<String> = self
            .store
            .list(rt("", "namespaces"), None)
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        for ns in namespaces {
            self.put(
                "",
                "configmaps",
                json!({"metadata": {"name": "kube-root-ca.crt", "namespace": ns}, "data": {"ca.crt": ca_pem}}),
            );
        }
        self.put("", "configmaps", json!({"metadata": {"name": "kubeadm-config", "namespace": "kube-system"}, "data": {"ClusterConfiguration": cluster_yaml}}));
    }

    /// APIServices: one Local per served group/version, and metrics.k8s.io through its service.
    pub fn add_apiservices(&mut self, flowcontrol: registry::Flowcontrol, metrics_available: bool) {
        for (group, versions) in registry::groups(flowcontrol).into_iter().chain([("", vec!["v1"])]) {
            for v in versions {
                let name = if group.is_empty() { format!("{v}.") } else { format!("{v}.{group}") };
                self.put(
                    "apiregistration.k8s.io",
                    "apiservices",
                    json!({"metadata": {"name": name, "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                           "spec": {"group": group, "version": v, "groupPriorityMinimum": 18000, "versionPriority": 15},
                           "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local", "message": "Local APIServices are always available", "lastTransitionTime": ago(60 * 24)}]}}),
                );
            }
        }
        let condition = if metrics_available {
            json!({"type": "Available", "status": "True", "reason": "Passed", "message": "all checks passed", "lastTransitionTime": ago(60 * 24)})
        } else {
            json!({"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck",
                   "message": "failing or missing response from https://127.244.0.7:10250/apis/metrics.k8s.io/v1beta1: Get \"https://127.244.0.7:10250/apis/metrics.k8s.io/v1beta1\": dial tcp 127.244.0.7:10250: connect: connection refused",
                   "lastTransitionTime": ago(25)})
        };
        self.put(
            "apiregistration.k8s.io",
            "apiservices",
            json!({"metadata": {"name": "v1beta1.metrics.k8s.io", "labels": {"k8s-app": "metrics-server"}},
                   "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100, "insecureSkipTLSVerify": true,
                            "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443}},
                   "status": {"conditions": [condition]}}),
        );
    }

    pub fn add_flowcontrol_defaults(&mut self) {
        for pl in cpkit::apf::defaults::priority_levels() {
            self.put("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", pl);
        }
        for fs in cpkit::apf::defaults::flow_schemas() {
            let mut fs = fs;
            fs["status"] = json!({"conditions": [{"type": "Dangling", "status": "False", "reason": "Found", "message": "This FlowSchema references the PriorityLevelConfiguration object named \"x\" and it exists", "lastTransitionTime": ago(60 * 24)}]});
            self.put("flowcontrol.apiserver.k8s.io", "flowschemas", fs);
        }
    }
}

fn sha2_short(text: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(text.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) >> 8
}

fn image_for(component: &str, version: &str) -> String {
    match component {
        "etcd" => "registry.k8s.io/etcd:3.5.21-0".into(),
        other => format!("registry.k8s.io/{other}:{version}"),
    }
}

fn etcd_logs(node: &str) -> String {
    let now = Timestamp::now();
    (0..20)
        .map(|i| {
            let t = now - SignedDuration::from_secs(600 - i * 30);
            format!("{{\"level\":\"info\",\"ts\":\"{}\",\"caller\":\"mvcc/index.go:214\",\"msg\":\"compact tree index\",\"revision\":{},\"member\":\"{node}\"}}", t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"), 1000 + i * 37)
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn apiserver_logs() -> String {
    let now = Timestamp::now();
    (0..20)
        .map(|i| {
            let t = now - SignedDuration::from_secs(600 - i * 30);
            format!(
                "I{}       1 controller.go:615] quota admission added evaluator for: leases.coordination.k8s.io",
                t.strftime("%m%d %H:%M:%S%.6f")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
