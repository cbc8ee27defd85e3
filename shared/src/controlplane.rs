//! The control plane as the API shows it: kubeadm static pods and their command-line flags
//! (kubeadm `cmd/kubeadm/app/phases/controlplane/manifests.go`), leader-election leases, nodes,
//! and whether the control plane is managed
//! (EKS/GKE/AKS) so that invisible components are skipped, not reported missing.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Serialize;

use crate::exit::Status;

/// The four kubeadm control-plane components, in the order people think of them.
pub const COMPONENTS: [&str; 4] = ["kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"];

/// Command-line flags of a container: `--name=value`, `--name value`, `--flag`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Flags(pub BTreeMap<String, String>);

impl Flags {
    pub fn parse(args: &[String]) -> Flags {
        let mut map = BTreeMap::new();
        let mut i = 0;
        while i < args.len() {
            if let Some(flag) = args[i].strip_prefix("--").or_else(|| args[i].strip_prefix('-').filter(|f| f.len() > 1))
            {
                match flag.split_once('=') {
                    Some((k, v)) => {
                        map.insert(k.to_string(), v.to_string());
                    }
                    None => match args.get(i + 1) {
                        Some(next) if !next.starts_with('-') => {
                            map.insert(flag.to_string(), next.clone());
                            i += 1;
                        }
                        _ => {
                            map.insert(flag.to_string(), "true".into());
                        }
                    },
                }
            }
            i += 1;
        }
        Flags(map)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A comma-separated flag as a list (`--listen-client-urls`).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| v == "true" || v == "1")
    }
}

/// Why a container last stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Termination {
    pub reason: String,
    pub exit_code: i32,
    pub finished_at: Option<Timestamp>,
}

/// A control-plane pod (kubeadm mirror pod) as far as health checks need it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPod {
    pub component: String,
    pub name: String,
    pub namespace: String,
    pub node: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    /// `CrashLoopBackOff`, `ImagePullBackOff`, ...
    pub waiting_reason: Option<String>,
    pub last_termination: Option<Termination>,
    pub host_ip: Option<String>,
    pub flags: Flags,
    pub image: String,
    pub container: String,
}

fn to_ts(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Timestamp {
    t.0
}

impl ComponentPod {
    /// Reads a pod; `None` when it has no `component` label.
    pub fn from_pod(pod: &Pod) -> Option<ComponentPod> {
        let meta = &pod.metadata;
        let component = meta.labels.as_ref()?.get("component")?.clone();
        let spec = pod.spec.as_ref()?;
        let container = spec.containers.first()?;
        let mut args: Vec<String> = container.command.clone().unwrap_or_default();
        args.extend(container.args.clone().unwrap_or_default());
        let status = pod.status.as_ref();
        let cs = status.and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first());
        let waiting_reason =
            cs.and_then(|c| c.state.as_ref()).and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.clone());
        let last_termination = cs
            .and_then(|c| c.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .map(|t| Termination {
                reason: t.reason.clone().unwrap_or_default(),
                exit_code: t.exit_code,
                finished_at: t.finished_at.as_ref().map(to_ts),
            })
            .or_else(|| {
                cs.and_then(|c| c.state.as_ref()).and_then(|s| s.terminated.as_ref()).map(|t| Termination {
                    reason: t.reason.clone().unwrap_or_default(),
                    exit_code: t.exit_code,
                    finished_at: t.finished_at.as_ref().map(to_ts),
                })
            });
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status == "True")
            .unwrap_or(false);
        Some(ComponentPod {
            component,
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            node: spec.node_name.clone().unwrap_or_default(),
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Unknown".into()),
            ready,
            restarts: cs.map(|c| c.restart_count).unwrap_or(0),
            waiting_reason,
            last_termination,
            host_ip: status.and_then(|s| s.host_ip.clone()),
            flags: Flags::parse(&args),
            image: container.image.clone().unwrap_or_default(),
            container: container.name.clone(),
        })
    }

    /// "Running", "CrashLoopBackOff (last exit: OOMKilled, 3m ago)".
    pub fn state_text(&self, now: Timestamp) -> String {
        let mut s = self.waiting_reason.clone().unwrap_or_else(|| self.phase.clone());
        if !self.ready && self.waiting_reason.is_none() && self.phase == "Running" {
            s = "Running, not Ready".into();
        }
        if let Some(t) = &self.last_termination
            && (self.waiting_reason.is_some() || !self.ready || self.restarts > 0)
        {
            let when = t
                .finished_at
                .map(|f| format!(", {} ago", crate::duration::human_duration_signed(now.as_second() - f.as_second())))
                .unwrap_or_default();
            let reason = if t.reason.is_empty() { format!("exit code {}", t.exit_code) } else { t.reason.clone() };
            s.push_str(&format!(" (last exit: {reason}{when})"));
        }
        s
    }

    /// Restarted within `window` seconds of `now`?
    pub fn restarted_recently(&self, now: Timestamp, window_secs: i64) -> bool {
        self.restarts > 0
            && self
                .last_termination
                .as_ref()
                .and_then(|t| t.finished_at)
                .is_some_and(|f| now.as_second() - f.as_second() < window_secs)
    }
}

/// Is this node a control-plane node (by the kubeadm role labels)?
pub fn is_control_plane(node: &Node) -> bool {
    node.metadata.labels.as_ref().is_some_and(|l| {
        l.contains_key("node-role.kubernetes.io/control-plane") || l.contains_key("node-role.kubernetes.io/master")
    })
}

/// The Ready condition of a node: (ready, reason).
pub fn node_ready(node: &Node) -> (bool, String) {
    let cond =
        node.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    match cond {
        Some(c) => (c.status == "True", c.reason.clone().unwrap_or_else(|| format!("Ready={}", c.status))),
        None => (false, "no Ready condition".into()),
    }
}

/// Conditions every kubelet reports; others are added by distributions (k3s/RKE2
/// `EtcdIsVoter`, cloud node-problem detectors) and are shown, not judged.
const KUBELET_CONDITIONS: [&str; 5] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"];

/// Counts of nodes while pages stream by (names kept only for NotReady nodes).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub total: usize,
    pub ready: usize,
    pub control_plane: usize,
    pub control_plane_not_ready: Vec<String>,
    pub workers_not_ready: usize,
    /// Every NotReady worker, with why.
    pub workers_not_ready_names: Vec<(String, String)>,
    pub kubelet_versions: BTreeMap<String, usize>,
    /// Conditions beyond the kubelet's (`EtcdIsVoter=True` → nodes), shown as read.
    pub other_conditions: BTreeMap<String, usize>,
}

impl NodeSummary {
    pub fn add(&mut self, node: &Node) {
        self.total += 1;
        let name = node.metadata.name.clone().unwrap_or_default();
        let cp = is_control_plane(node);
        let (ready, reason) = node_ready(node);
        if cp {
            self.control_plane += 1;
        }
        if ready {
            self.ready += 1;
        } else if cp {
            self.control_plane_not_ready.push(format!("{name} ({reason})"));
        } else {
            self.workers_not_ready += 1;
            self.workers_not_ready_names.push((name, reason));
        }
        for c in node.status.as_ref().and_then(|s| s.conditions.as_ref()).into_iter().flatten() {
            if !KUBELET_CONDITIONS.contains(&c.type_.as_str()) {
                *self.other_conditions.entry(format!("{}={}", c.type_, c.status)).or_insert(0) += 1;
            }
        }
        if let Some(v) = node.status.as_ref().and_then(|s| s.node_info.as_ref()).map(|i| i.kubelet_version.clone()) {
            *self.kubelet_versions.entry(v).or_insert(0) += 1;
        }
    }
}

/// A managed Kubernetes offering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Provider {
    #[serde(rename = "EKS")]
    Eks,
    #[serde(rename = "GKE")]
    Gke,
    #[serde(rename = "AKS")]
    Aks,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Eks => "EKS",
            Provider::Gke => "GKE",
            Provider::Aks => "AKS",
        }
    }
}

const MANAGED_NODE_LABELS: [(&str, Provider); 4] = [
    ("eks.amazonaws.com/", Provider::Eks),
    ("cloud.google.com/gke-", Provider::Gke),
    ("kubernetes.azure.com/", Provider::Aks),
    ("kubernetes.azure.com", Provider::Aks),
];

/// The managed offering, from the server version (`v1.33.5-eks-3cfe0ce`, `v1.32.2-gke.1297000`)
/// and node labels. A kubeadm cluster on cloud VMs has a cloud providerID but no such version
/// suffix or label, and its control-plane pods are visible; callers combine this with that.
pub fn detect_provider(git_version: &str, node_label_keys: &[String]) -> Option<Provider> {
    let v = git_version.to_ascii_lowercase();
    if v.contains("-eks-") {
        return Some(Provider::Eks);
    }
    if v.contains("-gke.") {
        return Some(Provider::Gke);
    }
    node_label_keys
        .iter()
        .find_map(|k| MANAGED_NODE_LABELS.iter().find(|(prefix, _)| k.starts_with(prefix)).map(|(_, p)| *p))
}

/// A leader-election lease.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseInfo {
    pub namespace: String,
    pub name: String,
    pub holder: Option<String>,
    pub renew_time: Option<Timestamp>,
    pub acquire_time: Option<Timestamp>,
    pub duration_seconds: Option<i32>,
    pub transitions: Option<i32>,
}

impl LeaseInfo {
    pub fn from_lease(lease: &Lease) -> LeaseInfo {
        let spec = lease.spec.as_ref();
        LeaseInfo {
            namespace: lease.metadata.namespace.clone().unwrap_or_default(),
            name: lease.metadata.name.clone().unwrap_or_default(),
            holder: spec.and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty()),
            renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            acquire_time: spec.and_then(|s| s.acquire_time.as_ref()).map(|t| t.0),
            duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
            transitions: spec.and_then(|s| s.lease_transitions),
        }
    }

    /// The holder's node: `cp-1_0b7c...` → `cp-1`.
    pub fn holder_node(&self) -> Option<&str> {
        self.holder.as_deref().map(|h| h.rsplit_once('_').map(|(n, _)| n).unwrap_or(h))
    }

    /// Seconds since the last renewal.
    pub fn renew_age(&self, now: Timestamp) -> Option<i64> {
        self.renew_time.map(|r| now.as_second() - r.as_second())
    }
}

/// How long past its duration a lease may stay unrenewed while another candidate takes it over:
/// candidates retry every `retryPeriod` (2 s by default in client-go's leader election, and in
/// kubeadm's components), plus a second for renewTime's rounding against our clock.
pub const HANDOVER_GRACE_SECONDS: i64 = 3;

/// The verdict on a leader lease: stale (no active leader) is CRITICAL, frequent transitions
/// (flapping leadership) a WARNING; just expired is a handover in progress (WARNING).
pub fn judge_lease(lease: &LeaseInfo, now: Timestamp) -> (Status, String) {
    let Some(holder) = &lease.holder else {
        return (Status::Critical, format!("{}: no holder (no active leader)", lease.name));
    };
    let duration = i64::from(lease.duration_seconds.unwrap_or(15));
    let node = lease.holder_node().unwrap_or(holder);
    match lease.renew_age(now) {
        None => (Status::Critical, format!("{}: never renewed (holder {node})", lease.name)),
        Some(age) if age > duration && age <= duration + HANDOVER_GRACE_SECONDS => (
            Status::Warning,
            format!(
                "{}: {node} last renewed {} ago, lease lasts {duration}s: expired, handover due",
                lease.name,
                crate::duration::human_duration_signed(age)
            ),
        ),
        Some(age) if age > duration => (
            Status::Critical,
            format!(
                "{}: stale — {node} last renewed {} ago, lease lasts {duration}s: no active leader",
                lease.name,
                crate::duration::human_duration_signed(age)
            ),
        ),
        Some(age) => {
            let recent_takeover = lease.acquire_time.is_some_and(|a| now.as_second() - a.as_second() < 600);
            if recent_takeover && lease.transitions.unwrap_or(0) >= 5 {
                (
                    Status::Warning,
                    format!(
                        "{}: leader {node} took over {} ago ({} transitions): leadership is flapping",
                        lease.name,
                        crate::duration::human_duration_signed(
                            now.as_second() - lease.acquire_time.map(jiff::Timestamp::as_second).unwrap_or(0)
                        ),
                        lease.transitions.unwrap_or(0)
                    ),
                )
            } else {
                (
                    Status::Ok,
                    format!(
                        "{}: leader {node}, renewed {} ago",
                        lease.name,
                        crate::duration::human_duration_signed(age.max(0))
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_pods(minor: u32) -> Vec<Pod> {
        // tests/fixtures/clusters/k8s-1.3x/pods.yaml: real pods with their static-pod flags.
        let text = crate::test_files::text(&format!("tests/fixtures/clusters/k8s-1.{minor}/pods.yaml"));
        let list: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        list["items"].as_array().unwrap().iter().map(|p| serde_json::from_value(p.clone()).unwrap()).collect()
    }

    #[test]
    fn reads_the_real_static_pods_of_every_capture() {
        for minor in 31..=34 {
            let pods = fixture_pods(minor);
            let cps: Vec<ComponentPod> = pods.iter().filter_map(ComponentPod::from_pod).collect();
            let mut components: Vec<&str> = cps
                .iter()
                .filter(|c| COMPONENTS.contains(&c.component.as_str()))
                .map(|c| c.component.as_str())
                .collect();
            components.sort();
            assert_eq!(
                components,
                ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"],
                "1.{minor}"
            );
            let etcd = cps.iter().find(|c| c.component == "etcd").unwrap();
            // minikube's layout, not kubeadm's default.
            assert_eq!(etcd.flags.get("cert-file"), Some("/var/lib/minikube/certs/etcd/server.crt"), "1.{minor}");
            assert_eq!(etcd.flags.get("trusted-ca-file"), Some("/var/lib/minikube/certs/etcd/ca.crt"));
            assert_eq!(etcd.flags.get("data-dir"), Some("/var/lib/minikube/etcd"));
            assert_eq!(etcd.flags.list("listen-client-urls").len(), 2);
            assert_eq!(
                etcd.flags.get("listen-client-urls").map(|v| v.starts_with("https://127.0.0.1:2379,https://192.168.")),
                Some(true)
            );
            assert!(etcd.ready && etcd.phase == "Running" && etcd.restarts == 0);
            let api = cps.iter().find(|c| c.component == "kube-apiserver").unwrap();
            assert_eq!(api.flags.get("secure-port"), Some("8443"));
            assert_eq!(api.flags.get("etcd-servers"), Some("https://127.0.0.1:2379"));
            let sched = cps.iter().find(|c| c.component == "kube-scheduler").unwrap();
            assert_eq!(sched.flags.bool("leader-elect"), Some(false), "minikube disables leader election");
            assert!(!api.node.is_empty());
        }
    }

    #[test]
    fn flags_in_every_form() {
        let args: Vec<String> =
            ["etcd", "--name=a", "--data-dir", "/x", "--client-cert-auth", "--snapshot-count=10000"]
                .iter()
                .map(std::string::ToString::to_string)
                .collect();
        let f = Flags::parse(&args);
        assert_eq!(f.get("name"), Some("a"));
        assert_eq!(f.get("data-dir"), Some("/x"));
        assert_eq!(f.bool("client-cert-auth"), Some(true));
        assert_eq!(f.get("snapshot-count"), Some("10000"));
    }

    #[test]
    fn lease_verdicts() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |ago: i64| Some(Timestamp::from_second(1_800_000_000 - ago).unwrap());
        let mut lease = LeaseInfo {
            namespace: "kube-system".into(),
            name: "kube-scheduler".into(),
            holder: Some("cp-2_1f0d".into()),
            renew_time: at(2),
            acquire_time: at(86_400),
            duration_seconds: Some(15),
            transitions: Some(2),
        };
        assert_eq!(judge_lease(&lease, now).0, Status::Ok);
        assert!(judge_lease(&lease, now).1.contains("leader cp-2"));
        lease.renew_time = at(360);
        let (s, m) = judge_lease(&lease, now);
        assert_eq!(s, Status::Critical);
        assert!(m.contains("stale") && m.contains("6m") && m.contains("cp-2"), "{m}");
        // Just expired: the other candidates take it over on their next retry.
        lease.renew_time = at(16);
        let (s, m) = judge_lease(&lease, now);
        assert_eq!(s, Status::Warning, "{m}");
        assert!(m.contains("handover"), "{m}");
        lease.renew_time = at(15 + HANDOVER_GRACE_SECONDS + 1);
        assert_eq!(judge_lease(&lease, now).0, Status::Critical);
        lease.renew_time = at(1);
        lease.acquire_time = at(30);
        lease.transitions = Some(9);
        assert_eq!(judge_lease(&lease, now).0, Status::Warning);
        lease.holder = None;
        assert_eq!(judge_lease(&lease, now).0, Status::Critical);
    }

    #[test]
    fn managed_detection() {
        assert_eq!(detect_provider("v1.33.5-eks-3cfe0ce", &[]), Some(Provider::Eks));
        assert_eq!(detect_provider("v1.32.2-gke.1297000", &[]), Some(Provider::Gke));
        assert_eq!(detect_provider("v1.31.1", &["kubernetes.azure.com/cluster".into()]), Some(Provider::Aks));
        assert_eq!(detect_provider("v1.33.0", &["kubernetes.io/hostname".into()]), None);
    }

    #[test]
    fn crash_loop_text() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let pod = ComponentPod {
            component: "kube-apiserver".into(),
            name: "kube-apiserver-cp-3".into(),
            namespace: "kube-system".into(),
            node: "cp-3".into(),
            phase: "Running".into(),
            ready: false,
            restarts: 9,
            waiting_reason: Some("CrashLoopBackOff".into()),
            last_termination: Some(Termination {
                reason: "OOMKilled".into(),
                exit_code: 137,
                finished_at: Some(Timestamp::from_second(1_800_000_000 - 180).unwrap()),
            }),
            host_ip: None,
            flags: Flags::default(),
            image: String::new(),
            container: "kube-apiserver".into(),
        };
        assert_eq!(pod.state_text(now), "CrashLoopBackOff (last exit: OOMKilled, 3m ago)");
        assert!(pod.restarted_recently(now, 3600));
    }
}
