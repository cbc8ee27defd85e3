//! The etcd members as kubeadm static pods describe them (kubeadm `cmd/kubeadm/app/phases/etcd/
//! local.go`): where each
//! member listens, which certificates it uses, where its data lives — and running `etcdctl`
//! inside a pod with the pod's own certificate flags, reading the certificate a member serves
//! through a port-forward, or reading a file through the image's shell
//! (`sh -c 'echo "$(<FILE)"'`: the etcd image has no `cat`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::certs::CertInfo;
use crate::client::Cluster;
use crate::controlplane::ComponentPod;
use crate::error::{Error, ErrorKind, Result};
use crate::resources::Select;
use crate::stream::{ExecOutput, exec};

/// An etcd member's pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdPod {
    pub pod: ComponentPod,
    /// `--name`.
    pub member: String,
    /// The client URL on the node's loopback (`https://127.0.0.1:2379`), reachable from inside
    /// the hostNetwork pod and through a port-forward.
    pub local_client_url: Option<String>,
    /// `--advertise-client-urls`.
    pub advertise_client_urls: Vec<String>,
    pub client_port: Option<u16>,
    pub trusted_ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub peer_cert_file: Option<String>,
    pub data_dir: Option<String>,
    pub quota_backend_bytes: Option<u64>,
    pub initial_cluster: Option<String>,
    pub initial_cluster_token: Option<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    /// The plain-HTTP metrics port of `--listen-metrics-urls` (kubeadm: `http://127.0.0.1:2381`),
    /// on the node's loopback: reachable through a port-forward to the hostNetwork pod.
    pub metrics_port: Option<u16>,
}

fn port_of(url: &str) -> Option<u16> {
    url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

impl EtcdPod {
    pub fn from_component(pod: &ComponentPod) -> Option<EtcdPod> {
        if pod.component != "etcd" {
            return None;
        }
        let f = &pod.flags;
        let listen = f.list("listen-client-urls");
        let local = listen
            .iter()
            .find(|u| u.contains("://127.0.0.1:") || u.contains("://localhost:") || u.contains("://[::1]:"))
            .cloned()
            .or_else(|| listen.first().cloned());
        let advertise = f.list("advertise-client-urls");
        let client_port = local.as_deref().and_then(port_of).or_else(|| advertise.first().and_then(|u| port_of(u)));
        Some(EtcdPod {
            member: f.get("name").unwrap_or(&pod.node).to_string(),
            local_client_url: local,
            advertise_client_urls: advertise,
            client_port,
            trusted_ca_file: f.get("trusted-ca-file").map(str::to_string),
            cert_file: f.get("cert-file").map(str::to_string),
            key_file: f.get("key-file").map(str::to_string),
            peer_cert_file: f.get("peer-cert-file").map(str::to_string),
            data_dir: f.get("data-dir").map(str::to_string),
            quota_backend_bytes: f.get("quota-backend-bytes").and_then(|q| q.parse().ok()),
            initial_cluster: f.get("initial-cluster").map(str::to_string),
            initial_cluster_token: f.get("initial-cluster-token").map(str::to_string),
            initial_advertise_peer_urls: f.list("initial-advertise-peer-urls"),
            metrics_port: f
                .list("listen-metrics-urls")
                .iter()
                .find(|u| u.starts_with("http://"))
                .and_then(|u| port_of(u)),
            pod: pod.clone(),
        })
    }

    /// `--endpoints --cacert --cert --key` for etcdctl inside this pod.
    pub fn etcdctl_flags(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(u) = &self.local_client_url {
            v.push(format!("--endpoints={u}"));
        }
        if let Some(c) = &self.trusted_ca_file {
            v.push(format!("--cacert={c}"));
        }
        if let Some(c) = &self.cert_file {
            v.push(format!("--cert={c}"));
        }
        if let Some(k) = &self.key_file {
            v.push(format!("--key={k}"));
        }
        v
    }

    pub fn is_running(&self) -> bool {
        self.pod.phase == "Running" && self.pod.ready
    }
}

/// The etcd pods of a kubeadm cluster (`component=etcd` in kube-system).
pub async fn find(cluster: &Cluster) -> Result<Vec<EtcdPod>> {
    let pods: Vec<Pod> = cluster.list(Select::namespace("kube-system").labels("component=etcd")).await?;
    Ok(pods.iter().filter_map(ComponentPod::from_pod).filter_map(|p| EtcdPod::from_component(&p)).collect())
}

/// Runs `etcdctl <args>` in the pod with its own certificate flags and a short command timeout.
pub async fn etcdctl(cluster: &Cluster, pod: &EtcdPod, args: &[&str], timeout: Duration) -> Result<ExecOutput> {
    let command_timeout = format!("--command-timeout={}s", timeout.as_secs().clamp(2, 30));
    let all: Vec<&str> = std::iter::once(command_timeout.as_str()).chain(args.iter().copied()).collect();
    etcdctl_with(cluster, pod, &all, timeout).await
}

/// Runs `etcdctl <args>` in the pod with its certificate flags and no timeout flags of ours (for
/// long operations: the caller passes `--command-timeout`), bounded by `timeout`.
pub async fn etcdctl_with(cluster: &Cluster, pod: &EtcdPod, args: &[&str], timeout: Duration) -> Result<ExecOutput> {
    etcdctl_within(cluster, pod, args, Duration::from_secs(5), timeout + Duration::from_secs(5)).await
}

/// `etcdctl <args>` with a dial timeout and a whole-exec budget of the caller's.
async fn etcdctl_within(
    cluster: &Cluster,
    pod: &EtcdPod,
    args: &[&str],
    dial: Duration,
    budget: Duration,
) -> Result<ExecOutput> {
    let mut command = vec!["etcdctl".to_string()];
    command.extend(pod.etcdctl_flags());
    command.push(format!("--dial-timeout={}s", dial.as_secs().max(1)));
    command.extend(args.iter().map(std::string::ToString::to_string));
    exec(cluster, &pod.pod.namespace, &pod.pod.name, Some(&pod.pod.container), &command, budget).await
}

/// etcd's own `/metrics` through a port-forward to the pod's plain-HTTP metrics port, bounded by
/// `timeout` (the etcd pod is hostNetwork: the tunnel ends on the node's loopback, where kubeadm's
/// `--listen-metrics-urls=http://127.0.0.1:2381` listens; no certificate is needed).
pub async fn metrics(
    cluster: &Cluster,
    pod: &EtcdPod,
    selection: &crate::metrics::Selection,
    timeout: Duration,
) -> Result<crate::metrics::Scrape> {
    let Some(port) = pod.metrics_port else {
        return Err(Error::new(
            ErrorKind::NotServed,
            format!("{} has no plain-HTTP metrics listener", pod.pod.name),
            "its etcd runs without --listen-metrics-urls=http://…",
            "",
        ));
    };
    let what = format!("GET /metrics of {} through a port-forward to port {port}", pod.pod.name);
    let target = (pod.pod.namespace.as_str(), pod.pod.name.as_str(), port);
    crate::stream::through_port_forward(cluster, target, timeout, &what, |stream| async {
        let failed = |why: String| Error::new(ErrorKind::Failed, what.clone(), why, "");
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| failed(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let request = http::Request::get("/metrics")
            .header(http::header::HOST, format!("127.0.0.1:{port}"))
            .header(http::header::ACCEPT, "text/plain")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| failed(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body()).await.map_err(|e| failed(e.to_string()));
        driver.abort();
        let body = body?;
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        Ok(crate::metrics::Scrape::parse(&body.to_bytes(), selection))
    })
    .await
}

/// The certificate a member serves on its client port, read by a TLS handshake through a
/// port-forward: the server sends its chain before it asks for the client certificate this
/// client does not present, so no key is needed and nothing is sent after the handshake. Works
/// with every image, shell or not (etcd 3.6 images have none).
pub async fn serving_certificate(cluster: &Cluster, pod: &EtcdPod, timeout: Duration) -> Result<CertInfo> {
    let Some(port) = pod.client_port else {
        return Err(Error::new(
            ErrorKind::NotServed,
            format!("{} has no client port", pod.pod.name),
            "its etcd flags name no --listen-client-urls or --advertise-client-urls",
            "",
        ));
    };
    let label = format!("etcd member {} (port {port} of pod {})", pod.member, pod.pod.name);
    let what = format!("TLS handshake with {label} through a port-forward");
    let target = (pod.pod.namespace.as_str(), pod.pod.name.as_str(), port);
    crate::stream::through_port_forward(cluster, target, timeout, &what, |stream| async {
        let probe = crate::certs::served_chain(stream, "localhost", timeout, &label).await?;
        probe.chain.into_iter().next().ok_or_else(|| {
            Error::new(ErrorKind::Tls, format!("{label} served no certificate"), "the chain was empty", "")
        })
    })
    .await
}

/// Reads a text file in the pod through the shell's `$(<FILE)` (the etcd image has no `cat`).
/// Fails when the image has no shell (etcd 3.6).
pub async fn read_file(cluster: &Cluster, pod: &EtcdPod, path: &str, timeout: Duration) -> Result<String> {
    let script = format!("echo \"$(<{path})\"");
    let out = exec(
        cluster,
        &pod.pod.namespace,
        &pod.pod.name,
        Some(&pod.pod.container),
        &["sh".to_string(), "-c".to_string(), script],
        timeout,
    )
    .await?;
    if !out.success() {
        let reason = out.failure_reason();
        // The runtime's words (containerd, CRI-O) for a command that is not in the image.
        let why = if reason.contains("\"sh\": executable file not found") {
            "its image has no shell: etcd 3.6 images have none".to_string()
        } else {
            reason
        };
        return Err(Error::new(
            ErrorKind::Failed,
            format!("Cannot read {path} in {}", pod.pod.name),
            why,
            "etcd 3.6 images have no shell; copy the file from the control-plane node instead.",
        ));
    }
    Ok(out.stdout_text())
}

/// The cluster status through `etcdctl` in `pod`: member list, endpoint status and health of
/// every member, alarms — four commands run concurrently. Each member has `per_member` to answer:
/// `endpoint status --cluster` asks the members one after another, so a dead member costs its
/// share and the others are still reported (`members` is how many there are, for the budget).
pub async fn status_via_exec(
    cluster: &Cluster,
    pod: &EtcdPod,
    per_member: Duration,
    members: usize,
) -> Result<super::status::ClusterStatus> {
    use super::status::*;
    let seconds = per_member.as_secs().clamp(1, 30);
    let command_timeout = format!("--command-timeout={seconds}s");
    let dial = Duration::from_secs(seconds.min(5));
    let one = Duration::from_secs(seconds) + Duration::from_secs(5);
    let every = Duration::from_secs(seconds) * members.max(1) as u32 + Duration::from_secs(5);
    let run = |args: &'static [&'static str], budget: Duration| {
        let all: Vec<&str> = std::iter::once(command_timeout.as_str()).chain(args.iter().copied()).collect();
        async move { etcdctl_within(cluster, pod, &all, dial, budget).await }
    };
    // The alarms come with the statuses: three execs, not four (each costs the API server, the
    // kubelet and etcd a TLS-authenticated etcdctl run).
    let (members, statuses, healths) = tokio::join!(
        run(&["member", "list", "-w", "json"], one),
        run(&["endpoint", "status", "--cluster", "-w", "json"], every),
        run(&["endpoint", "health", "--cluster", "-w", "json"], one + Duration::from_secs(seconds)),
    );
    let members = members?;
    if !members.success() {
        return Err(Error::new(
            ErrorKind::Failed,
            format!("etcdctl member list failed in {}", pod.pod.name),
            members.failure_reason(),
            "Check the etcd pod's certificate flags and that the member answers.",
        ));
    }
    let bad = |what: &str, e: String| Error::invalid_data(format!("etcdctl {what} in {}", pod.pod.name), e);
    let member_list = parse_member_list(&members.stdout_text()).map_err(|e| bad("member list", e))?;
    let statuses = statuses?;
    let status_list = parse_endpoint_status(&statuses.stdout_text()).map_err(|e| bad("endpoint status", e))?;
    let healths = healths?;
    let mut health_list = parse_endpoint_health(&healths.stdout_text()).map_err(|e| bad("endpoint health", e))?;
    if any_slow_health(&health_list) {
        // Measured while three other etcdctl ran beside it: ask once more, alone.
        let again = run(&["endpoint", "health", "--cluster", "-w", "json"], one + Duration::from_secs(seconds)).await;
        if let Ok(second) = again.map(|o| parse_endpoint_health(&o.stdout_text()))
            && let Ok(second) = second
        {
            keep_faster_health(&mut health_list, &second);
        }
    }
    let alarm_list = alarms_in_statuses(&status_list);
    Ok(from_etcdctl(
        &member_list,
        &status_list,
        &health_list,
        &alarm_list,
        &failed_endpoints(&statuses.stderr_text()),
        pod.quota_backend_bytes.unwrap_or(0),
        &format!("etcdctl in kube-system/{}", pod.pod.name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_minikube_and_kubeadm_layouts() {
        // tests/fixtures/clusters/k8s-1.34/pods.yaml (minikube cert paths)
        let text = crate::test_files::text("tests/fixtures/clusters/k8s-1.34/pods.yaml");
        let list: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let pods: Vec<Pod> =
            list["items"].as_array().unwrap().iter().map(|p| serde_json::from_value(p.clone()).unwrap()).collect();
        let etcd: Vec<EtcdPod> =
            pods.iter().filter_map(ComponentPod::from_pod).filter_map(|p| EtcdPod::from_component(&p)).collect();
        assert_eq!(etcd.len(), 1);
        let e = &etcd[0];
        assert_eq!(e.local_client_url.as_deref(), Some("https://127.0.0.1:2379"));
        assert_eq!(e.client_port, Some(2379));
        assert_eq!(e.data_dir.as_deref(), Some("/var/lib/minikube/etcd"));
        assert_eq!(e.quota_backend_bytes, None);
        assert_eq!(
            e.etcdctl_flags(),
            [
                "--endpoints=https://127.0.0.1:2379",
                "--cacert=/var/lib/minikube/certs/etcd/ca.crt",
                "--cert=/var/lib/minikube/certs/etcd/server.crt",
                "--key=/var/lib/minikube/certs/etcd/server.key"
            ]
        );
        assert!(e.initial_cluster.as_deref().unwrap().contains("=https://192.168."));
        assert!(e.member.starts_with("datagen-1-34") || !e.member.is_empty());
    }
}
