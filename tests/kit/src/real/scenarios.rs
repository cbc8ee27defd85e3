//! The scenarios a real control plane can be put into on one machine, done for real: a member
//! killed, a quota filled until etcd raises NOSPACE, schedulers stopped until their lease goes
//! stale, a Fail webhook whose service has no ready endpoints, an APIService whose backend is
//! dead, a low inflight limit flooded by one service account. kwok is every node's kubelet but
//! does not watch processes, so where a process dies the kit reports its pod's state as the
//! kubelet would (`crash_loop`).

use std::time::Duration;

use jiff::SignedDuration;
use serde_json::{Value, json};

use super::{Component, RealCluster, RealOptions};
use crate::etcd_data::Inventory;
use crate::pki::Validity;
use crate::scenario::{Facts, Scenario};

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// True when `scenario` runs on the real control plane (the others need states one machine
/// cannot produce: 5000 nodes, a managed control plane, a multi-GB database).
pub fn supports(scenario: Scenario) -> bool {
    !matches!(scenario, Scenario::Managed | Scenario::LargeCluster | Scenario::EtcdBloated)
}

/// Starts `scenario` on a real control plane.
pub fn start(scenario: Scenario, kit: &crate::scenario::Options) -> std::io::Result<(RealCluster, Facts)> {
    if !supports(scenario) {
        return Err(io_err(format!("scenario {} runs on the simulated API server only", scenario.name())));
    }
    let mut options = RealOptions {
        name: scenario.name().to_string(),
        dir: kit.dir.clone(),
        unreachable_replicas: kit.unreachable_replicas,
        ..RealOptions::default()
    };
    if let Some(release) = kit.etcd {
        options.etcd = release;
    }
    let mut facts = Facts::default();
    match scenario {
        Scenario::EtcdNospace => options.etcd_quota_backend_bytes = 40 * 1024 * 1024,
        Scenario::CertsExpiring => {
            options.serving_validity = Validity::expiring_in(345, SignedDuration::from_hours(24 * 20));
            options.admin_validity = Validity::expiring_in(340, SignedDuration::from_hours(24 * 25));
            options.etcd_server_validity = crate::scenario::expiring_etcd_certificates();
            facts.etcd_cert_not_after = Some(options.etcd_server_validity.not_after);
        }
        Scenario::ApfOverload => {
            options.apiserver.max_requests_inflight = Some(20);
            options.apiserver.max_mutating_requests_inflight = Some(10);
        }
        _ => {}
    }
    facts.serving_cert_not_after = Some(options.serving_validity.not_after);
    let mut cluster = RealCluster::start(options)?;
    facts.control_plane_nodes = cluster.control_planes().map(|n| n.name.clone()).collect();
    facts.worker_nodes = cluster.nodes.iter().filter(|n| !n.control_plane).map(|n| n.name.clone()).collect();
    add_workloads(&cluster)?;
    add_cert_manager(&cluster)?;
    cluster.wait_for("the workloads' Deployments available", Duration::from_secs(60), deployments_available)?;

    match scenario {
        Scenario::HealthyHa | Scenario::CertsExpiring => {}
        Scenario::EtcdMemberDown => {
            let i = 2;
            let name = cluster.nodes[i].name.clone();
            cluster.etcd.kill(i);
            // The load balancer may still hand this write to the replica whose member just died.
            with_retries(|| cluster.crash_loop("kube-system", &format!("etcd-{name}"), 6, "Error", 1))?;
            // kubeadm points each apiserver at its local member: cp-3's readyz fails for etcd.
            cluster.wait_for(
                "kube-apiserver on the member's node to report etcd failing",
                Duration::from_secs(60),
                |c| c.replica_get(i, "/readyz").is_ok_and(|a| a.code == 500),
            )?;
            facts.down_etcd_member = Some(name);
        }
        Scenario::EtcdNospace => fill_until_nospace(&cluster)?,
        Scenario::LeaderLost => {
            for i in 0..cluster.etcd.members.len() {
                // Crashed, not stopped: a stopped scheduler hands its lease back first.
                cluster.kill(Component::Scheduler, i);
                let name = cluster.nodes[i].name.clone();
                cluster.crash_loop("kube-system", &format!("kube-scheduler-{name}"), 14, "Error", 1)?;
            }
            let lease = cluster.options.leader_election.lease_duration;
            cluster
                .wait_for("the kube-scheduler lease to go stale", lease * 4, |c| lease_is_stale(c, "kube-scheduler"))?;
            facts.stale_lease = Some("kube-system/kube-scheduler".into());
        }
        Scenario::CertsExpired => {
            // Certificates expire while the cluster runs: kube-apiserver reloads its serving
            // certificate from the file (dynamic serving content), and new TLS connections fail.
            let expired = Validity::expiring_in(368, -SignedDuration::from_hours(24 * 3));
            cluster.reissue_serving_certs(expired)?;
            facts.serving_cert_not_after = Some(expired.not_after);
        }
        Scenario::WebhookLockout => {
            // cp-2's scheduler restarts as the webhook's backend dies: its kubelet deletes the
            // mirror pod, and once the webhook refuses, cannot create the new one.
            let mirror = format!("kube-scheduler-{}", cluster.nodes[1].name);
            let path = format!("/api/v1/namespaces/kube-system/pods/{mirror}");
            let old = cluster.get(&path)?.body;
            cluster.delete(&format!("{path}?gracePeriodSeconds=0"))?;
            cluster.wait_for("the old mirror pod to be gone", Duration::from_secs(30), |c| {
                c.get(&path).is_ok_and(|a| a.code == 404)
            })?;
            add_pod_validator(&cluster)?;
            recreate_refused(&cluster, &old)?;
            facts.lockout_webhook = Some(("pod-validator".into(), "validate.pod.com".into()));
            facts.refused_mirror_pod = Some(mirror);
        }
        Scenario::ApfOverload => {
            let user = "system:serviceaccount:monitoring:prometheus-k8s";
            super::load::flood(&cluster, "monitoring", "prometheus-k8s", 0)?;
            facts.flooding_user = Some(user.into());
            facts.hot_replica = Some(cluster.nodes[0].name.clone());
        }
        Scenario::ApiserverReplicaDown => {
            let i = 2;
            let name = cluster.nodes[i].name.clone();
            cluster.kill(Component::Apiserver, i);
            with_retries(|| cluster.crash_loop("kube-system", &format!("kube-apiserver-{name}"), 9, "Error", 1))?;
            wait_for_leaders(&cluster)?;
            facts.down_replica = Some(name);
        }
        Scenario::ApiserverFdsExhausted => {
            // Lowered once it runs (a start-up needs more than it keeps): 85% of the new limit in
            // use, with room left for the connections a check opens.
            cluster.squeeze_open_files(Component::Apiserver, 1, 0.85)?;
            facts.fd_short_replica = Some(cluster.nodes[1].name.clone());
        }
        Scenario::AggregatedApiDown => {
            add_metrics_server(&cluster)?;
            facts.unavailable_apiservice = Some("v1beta1.metrics.k8s.io".into());
        }
        Scenario::RbacLimited => {
            cluster.create(&json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "ops-readonly"},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces", "events", "services"], "verbs": ["get", "list"]},
                    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list"]},
                ],
            }))?;
            cluster.create(&json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "ops-readonly"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ops-readonly"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ops"}],
            }))?;
            let context = cluster.add_user("ops-readonly", &["ops"])?;
            cluster.use_context(&context)?;
            facts.limited_context = Some(context);
        }
        Scenario::Managed | Scenario::LargeCluster | Scenario::EtcdBloated => unreachable!("checked by supports"),
    }
    facts.etcd_inventory = cluster.etcd_inventory().ok();
    if let Some(b) = &cluster.black_hole {
        facts.unreachable_replica_addresses = b.ips.iter().map(|ip| format!("{ip}:{}", b.port)).collect();
    }
    Ok((cluster, facts))
}

fn deployments_available(c: &RealCluster) -> bool {
    c.get("/apis/apps/v1/deployments").is_ok_and(|a| {
        a.body["items"].as_array().is_some_and(|items| {
            !items.is_empty()
                && items.iter().all(|d| {
                    d["status"]["availableReplicas"] == d["spec"]["replicas"]
                        && d["status"]["updatedReplicas"] == d["spec"]["replicas"]
                })
        })
    })
}

/// Waits until both leader leases are fresh again (after a failover: a leader whose node lost
/// its API server stops renewing and exits, and another node's instance takes over after the
/// lease), then reports the components that exited as crash-looping, as their kubelet would.
fn wait_for_leaders(c: &RealCluster) -> std::io::Result<()> {
    let lease = c.options.leader_election.lease_duration;
    std::thread::sleep(lease);
    c.wait_until("the leader leases to be held and renewed", lease * 10, |c| {
        ["kube-controller-manager", "kube-scheduler"].iter().all(|l| lease_is_fresh(c, l))
    })?;
    for (component, node) in c.exited() {
        if matches!(component, Component::ControllerManager | Component::Scheduler) {
            let pod = format!("{}-{}", component.name(), c.nodes[node].name);
            c.crash_loop("kube-system", &pod, 3, "Error", 1)?;
        }
    }
    Ok(())
}

fn lease_is_fresh(c: &RealCluster, name: &str) -> bool {
    let Ok(a) = c.get(&format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}")) else {
        return false;
    };
    let renewed = a.body["spec"]["renewTime"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let duration = a.body["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(15);
    renewed.is_some_and(|t| jiff::Timestamp::now().duration_since(t) < SignedDuration::from_secs(duration) / 2)
}

fn lease_is_stale(c: &RealCluster, name: &str) -> bool {
    let Ok(a) = c.get(&format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}")) else {
        return false;
    };
    let renewed = a.body["spec"]["renewTime"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let duration = a.body["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(15);
    // Clearly past its duration (twice), so a check run right after sees it stale too.
    renewed.is_some_and(|t| jiff::Timestamp::now().duration_since(t) > SignedDuration::from_secs(2 * duration))
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn deployment(ns: &str, name: &str, replicas: u32, image: &str, tolerate_control_plane: bool) -> Value {
    let mut spec = json!({"containers": [{"name": name, "image": image}]});
    if tolerate_control_plane {
        spec["tolerations"] = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
        spec["priorityClassName"] = json!("system-cluster-critical");
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    })
}

fn service(ns: &str, name: &str, port: u16, target: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"name": "https", "port": port, "targetPort": target}]},
    })
}

/// What every scenario runs: CoreDNS and a small application.
fn add_workloads(c: &RealCluster) -> std::io::Result<()> {
    c.create(&deployment("kube-system", "coredns", 2, "registry.k8s.io/coredns/coredns:v1.12.1", true))?;
    for ns in ["team-a", "monitoring"] {
        c.create(&namespace(ns))?;
    }
    c.create(&deployment("team-a", "web", 3, "registry.example.com/web:2.4.1", false))?;
    c.create(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": "team-a"},
                     "data": {"listen": ":8080"}}),
    )?;
    c.create(&json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "prometheus-k8s", "namespace": "monitoring"}}))?;
    Ok(())
}

/// Runs a setup write again (5 tries, 1 s apart) when a component was just killed and the load
/// balancer has not noticed yet.
fn with_retries<T>(mut write: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match write() {
            Ok(v) => return Ok(v),
            Err(e) if tries >= 4 => return Err(e),
            Err(_) => {
                tries += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// The well-run webhook every scenario has (as on the simulator): cert-manager's, two replicas
/// and a PDB, matching only cert-manager's own groups — which this cluster never writes, so
/// the API server never dials its pods' (non-loopback) addresses.
fn add_cert_manager(c: &RealCluster) -> std::io::Result<()> {
    let ns = super::CERT_MANAGER_NAMESPACE;
    let name = super::CERT_MANAGER_WEBHOOK;
    c.create(&namespace(ns))?;
    // Its replicas on different nodes, as its chart's anti-affinity puts them: without it the
    // scheduler may place both on the worker that registered first.
    let mut webhook_deployment = deployment(ns, name, 2, "quay.io/jetstack/cert-manager-webhook:v1.16.2", false);
    webhook_deployment["spec"]["template"]["spec"]["affinity"] = json!({"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": name}}, "topologyKey": "kubernetes.io/hostname"}]}});
    c.create(&webhook_deployment)?;
    c.create(&service(ns, name, 443, super::CERT_MANAGER_WEBHOOK_PORT))?;
    c.create(
        &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": ns},
                     "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": name}}}}),
    )?;
    // The backend's own CA: a port-forward into either pod reaches it and verifies.
    let bundle = c.cert_manager_webhook.ca_bundle.clone();
    let webhook = |path: &str| {
        json!({
            "name": "webhook.cert-manager.io", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": name, "namespace": ns, "path": path, "port": 443}, "caBundle": bundle},
            "failurePolicy": "Fail", "matchPolicy": "Equivalent", "sideEffects": "None", "timeoutSeconds": 5,
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", ns]}]},
            "rules": [{"apiGroups": ["cert-manager.io", "acme.cert-manager.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["*/*"], "scope": "*"}],
        })
    };
    c.create(&json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                     "metadata": {"name": name, "labels": {"app": "webhook"}}, "webhooks": [webhook("/validate")]}))?;
    c.create(&json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                     "metadata": {"name": name, "labels": {"app": "webhook"}}, "webhooks": [webhook("/mutate")]}))?;
    // Handed over once both replicas are ready endpoints: a scan before that would rightly call
    // the backend fragile (one ready replica).
    let slices = format!(
        "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{name}"
    );
    c.wait_for("cert-manager-webhook's two ready endpoints", Duration::from_secs(60), |c| {
        c.get(&slices).is_ok_and(|a| {
            let ready = a.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                .filter(|e| e["conditions"]["ready"] == true)
                .count();
            ready >= 2
        })
    })?;
    Ok(())
}

/// Waits for the pods of `app` in `ns` to be Running, then reports each as crash-looping.
fn crash_loop_app(
    c: &RealCluster,
    ns: &str,
    app: &str,
    restarts: u32,
    reason: &str,
    exit: i32,
) -> std::io::Result<Vec<String>> {
    let path = format!("/api/v1/namespaces/{ns}/pods?labelSelector=app%3D{app}");
    c.wait_for(&format!("{ns}/{app}'s pods Running"), Duration::from_secs(30), |c| {
        c.get(&path).is_ok_and(|a| {
            a.body["items"]
                .as_array()
                .is_some_and(|i| !i.is_empty() && i.iter().all(|p| p["status"]["phase"] == "Running"))
        })
    })?;
    let pods = c.get(&path)?.body["items"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> = pods.iter().filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string)).collect();
    for n in &names {
        c.crash_loop(ns, n, restarts, reason, exit)?;
    }
    Ok(names)
}

/// The seeds' case 4 for real: `pod-validator` (validate.pod.com), Fail on every resource, its
/// only pod OOM-killed, so its Service has no ready endpoint and the API server refuses writes.
fn add_pod_validator(c: &RealCluster) -> std::io::Result<()> {
    let ns = "default";
    let name = "pod-validator";
    c.create(&deployment(ns, name, 1, "registry.example.com/pod-validator:1.4.0", false))?;
    c.create(&service(ns, name, 443, 8443))?;
    crash_loop_app(c, ns, name, 12, "OOMKilled", 137)?;
    c.wait_for("pod-validator's endpoints to be not ready", Duration::from_secs(30), |c| {
        c.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dpod-validator")
            .is_ok_and(|a| {
                a.body["items"].as_array().is_some_and(|s| {
                    !s.is_empty()
                        && s.iter().all(|s| {
                            s["endpoints"].as_array().is_none_or(|e| e.iter().all(|e| e["conditions"]["ready"] == false))
                        })
                })
            })
    })?;
    c.create(&json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "validate.pod.com", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": name, "namespace": ns, "path": "/validate", "port": 443}},
            "failurePolicy": "Fail", "matchPolicy": "Equivalent", "sideEffects": "None", "timeoutSeconds": 10,
            "namespaceSelector": {}, "objectSelector": {},
            "rules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/*"], "scope": "*"}],
        }],
    }))?;
    // The API server applies webhook configurations from its informer: wait until it refuses.
    c.wait_for("the webhook to refuse pod creation", Duration::from_secs(30), |c| {
        c.block(c.client().send(
            "POST",
            "/api/v1/namespaces/default/pods?dryRun=All",
            Some(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}})),
            "application/json",
        ))
        .is_ok_and(|a| a.code >= 500 && a.body.to_string().contains("validate.pod.com"))
    })
}

/// Creates `pod` again as its kubelet would, and fails unless the lockout webhook refuses it.
fn recreate_refused(c: &RealCluster, pod: &Value) -> std::io::Result<()> {
    let mut pod = pod.clone();
    for field in ["resourceVersion", "uid", "creationTimestamp", "managedFields"] {
        if let Some(meta) = pod["metadata"].as_object_mut() {
            meta.remove(field);
        }
    }
    if let Some(obj) = pod.as_object_mut() {
        obj.remove("status");
    }
    match c.create(&pod) {
        Err(e) if e.to_string().contains("validate.pod.com") => Ok(()),
        Err(e) => Err(io_err(format!("re-creating the mirror pod failed, but not for the webhook: {e}"))),
        Ok(_) => Err(io_err("the lockout webhook let the mirror pod be re-created")),
    }
}

/// metrics-server whose only pod crash-loops: `v1beta1.metrics.k8s.io` goes `Available=False`.
fn add_metrics_server(c: &RealCluster) -> std::io::Result<()> {
    let ns = "kube-system";
    c.create(&deployment(ns, "metrics-server", 1, "registry.k8s.io/metrics-server/metrics-server:v0.7.2", false))?;
    c.create(&service(ns, "metrics-server", 443, 10250))?;
    crash_loop_app(c, ns, "metrics-server", 11, "Error", 1)?;
    c.create(&json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": {"k8s-app": "metrics-server"}},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
                 "insecureSkipTLSVerify": true, "service": {"name": "metrics-server", "namespace": ns, "port": 443}},
    }))?;
    c.wait_for("the APIService to be unavailable", Duration::from_secs(60), |c| {
        c.get("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io").is_ok_and(|a| {
            a.body["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Available" && c["status"] == "False"))
        })
    })
}

/// Writes ConfigMaps through the API until etcd raises NOSPACE and the API server refuses
/// writes with `etcdserver: mvcc: database space exceeded`.
fn fill_until_nospace(c: &RealCluster) -> std::io::Result<()> {
    c.create(&namespace("logs"))?;
    let blob = "x".repeat(900 * 1024);
    for i in 0..200 {
        let answer = c.block(c.client().send(
            "POST",
            "/api/v1/namespaces/logs/configmaps",
            Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("audit-{i:04}")}, "data": {"log": blob}})),
            "application/json",
        ))?;
        if answer.body.to_string().contains("database space exceeded") {
            return Ok(());
        }
        if !answer.ok() && answer.code != 409 {
            return Err(io_err(format!("filling etcd: {} {}", answer.code, answer.body)));
        }
    }
    Err(io_err("etcd did not reach its quota"))
}

impl RealCluster {
    /// Reports a pod's container as crash-looping, as the kubelet would (kwok does not watch
    /// processes).
    pub fn crash_loop(
        &self,
        namespace: &str,
        pod: &str,
        restarts: u32,
        last_reason: &str,
        exit_code: i32,
    ) -> std::io::Result<()> {
        let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}");
        let current = self.get(&path)?.body;
        let ago =
            |m: i64| (jiff::Timestamp::now() - SignedDuration::from_mins(m)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let conditions: Vec<Value> = current["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                    c["status"] = json!("False");
                    c["reason"] = json!("ContainersNotReady");
                    c["lastTransitionTime"] = json!(ago(7));
                }
                c
            })
            .collect();
        let statuses: Vec<Value> = current["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or("main");
                json!({
                    "name": name, "image": c["image"], "imageID": "", "ready": false, "started": false, "restartCount": restarts,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 5m0s restarting failed container={name} pod={pod}")}},
                    "lastState": {"terminated": {"exitCode": exit_code, "reason": last_reason, "startedAt": ago(4), "finishedAt": ago(3)}},
                })
            })
            .collect();
        self.merge_patch(
            &format!("{path}/status"),
            &json!({"status": {"phase": "Running", "conditions": conditions, "containerStatuses": statuses}}),
        )?;
        Ok(())
    }

    /// Re-issues every kube-apiserver serving certificate with `validity` (the API server
    /// reloads it from the file) and waits until the replicas present it.
    pub fn reissue_serving_certs(&self, validity: Validity) -> std::io::Result<()> {
        for (i, node) in self.control_planes().enumerate() {
            let spec = super::pki::NodePkiSpec {
                node: &node.name,
                ip: node.ip,
                local_apiserver: format!("https://{}:{}", node.ip, self.apiserver_port),
                serving_validity: validity,
            };
            super::pki::write_serving(&self.pki, &self.node_pki[i].pki(), &spec)?;
        }
        let want = validity.not_after.as_second();
        self.wait_for("the replicas to serve the new certificates", Duration::from_secs(90), |c| {
            (0..c.etcd.members.len()).all(|i| c.serving_not_after(i).is_some_and(|t| (t - want).abs() < 2))
        })
    }

    /// The etcd keys per resource, read from etcd itself (ground truth for snapshot tests).
    pub fn etcd_inventory(&self) -> std::io::Result<Inventory> {
        let endpoints = self.etcd.endpoints();
        let tls = self.etcd.client_tls();
        self.block(async move {
            let mut client = crate::etcd::connect_client(&endpoints, &tls).await.map_err(io_err)?;
            let all = client
                .get("/registry/", Some(etcd_client::GetOptions::new().with_prefix().with_keys_only()))
                .await
                .map_err(io_err)?;
            let mut inventory =
                Inventory { revision: all.header().map(|h| h.revision()).unwrap_or(0), ..Default::default() };
            for kv in all.kvs() {
                if let Some(r) = crate::etcd_data::resource_of(&String::from_utf8_lossy(kv.key())) {
                    *inventory.live.entry(r).or_insert(0) += 1;
                    inventory.live_keys += 1;
                }
            }
            Ok(inventory)
        })
    }
}
