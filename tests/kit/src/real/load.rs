//! A bounded load generator: one service account LISTing ConfigMaps with many requests at once,
//! as a monitoring agent gone wild does. Its connections all land on one replica (a client keeps
//! its connections, and HTTP/2 multiplexes over one), so that replica is the hot one. With a low
//! `--max-requests-inflight`, API Priority and Fairness queues the flow in `workload-low` and
//! rejects the overflow with 429 — for real. The flood runs on the cluster's runtime until the
//! cluster is dropped (or at most 15 minutes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::RealCluster;

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Requests in flight at once: over what one replica holds for one flow in `workload-low`
/// (its seats, plus handSize 6 queues × queueLengthLimit 50).
const CONCURRENCY: usize = 400;
const LONGEST: Duration = Duration::from_secs(15 * 60);

/// Counts of the flood's answers as the client saw them.
#[derive(Debug, Default)]
pub struct FloodStats {
    pub sent: AtomicU64,
    pub throttled: AtomicU64,
    pub failed: AtomicU64,
}

/// Starts the flood as `system:serviceaccount:<namespace>:<account>` against replica `replica`
/// and waits until it has rejected some of it.
pub fn flood(c: &RealCluster, namespace: &str, account: &str, replica: usize) -> std::io::Result<Arc<FloodStats>> {
    c.create(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": {"name": format!("{account}-read")},
                     "rules": [{"apiGroups": [""], "resources": ["configmaps", "pods", "nodes"], "verbs": ["get", "list", "watch"]}]}))?;
    c.create(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": format!("{account}-read")},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{account}-read")},
                     "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]}))?;
    // Enough data that each LIST holds its seat a moment (a ~400 KB answer), little enough that
    // the machine stays responsive.
    let blob = "m".repeat(4 * 1024);
    for i in 0..100 {
        c.create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": format!("rules-{i:03}"), "namespace": namespace}, "data": {"rules": blob}}))?;
    }
    let token = c.create(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                  "metadata": {"name": account, "namespace": namespace}, "spec": {"expirationSeconds": 3600}}));
    let token = match token {
        Ok(t) => t,
        Err(_) => c.block(c.client().send(
            "POST",
            &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"),
            Some(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})),
            "application/json",
        ))?
        .body,
    };
    let token = token["status"]["token"].as_str().ok_or_else(|| io_err(format!("no token in {token}")))?.to_string();

    let stats = Arc::new(FloodStats::default());
    let url: http::Uri = format!("https://{}:{}", c.nodes[replica].ip, c.apiserver_port).parse().map_err(io_err)?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(vec![c.pki.ca.cert.cert_der.clone()]);
    config.auth_info.token = Some(token.into());
    config.read_timeout = Some(Duration::from_secs(60));
    // kube retries 429s itself by default; the flood sees them and backs off like client-go.
    config.default_retry = false;
    let path = format!("/api/v1/namespaces/{namespace}/configmaps");
    let started = Instant::now();
    for _ in 0..CONCURRENCY {
        let (config, path, stats) = (config.clone(), path.clone(), stats.clone());
        c.runtime().spawn(async move {
            let Ok(client) = kube::Client::try_from(config) else { return };
            while started.elapsed() < LONGEST {
                let Ok(req) = http::Request::get(&path).body(Vec::<u8>::new()) else { return };
                let req = req.map(kube::client::Body::from);
                stats.sent.fetch_add(1, Ordering::Relaxed);
                match client.send(req).await {
                    Ok(resp) if resp.status() == 429 => {
                        stats.throttled.fetch_add(1, Ordering::Relaxed);
                        // Clients back off a little on 429, as client-go does.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(resp) => {
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                    }
                    Err(_) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
    }
    c.wait_for("APF on the hot replica to reject the flood", Duration::from_secs(60), |c| {
        rejected(c, replica) >= 50.0
    })?;
    Ok(stats)
}

/// `apiserver_flowcontrol_rejected_requests_total` of `workload-low` on one replica.
pub fn rejected(c: &RealCluster, replica: usize) -> f64 {
    let Ok(answer) = c.replica_get(replica, "/metrics") else { return 0.0 };
    answer
        .body
        .as_str()
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_flowcontrol_rejected_requests_total{")
                && l.contains("priority_level=\"workload-low\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
