//! The real control plane of the kit — kube-apiserver, kube-controller-manager, kube-scheduler,
//! etcd and kwok built from their Go modules — checked with the machine's real kubectl:
//! `get`, `exec` and `port-forward` (SPDY, which the simulator does not speak).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::etcd::EtcdRelease;
use testkit::real::{RealCluster, RealOptions};

/// Starts a real cluster. A component that loses its port to another process between the kit's
/// pick and its bind ("address already in use", seen once on a loaded machine) is started again
/// once, as the end-to-end tests' `start` does.
fn start(options: RealOptions) -> RealCluster {
    RealCluster::start(options.clone())
        .or_else(|first| {
            if first.to_string().contains("address already in use") {
                eprintln!("a port was taken while starting, trying once more: {first}");
                RealCluster::start(options)
            } else {
                Err(first)
            }
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

fn kubectl(c: &RealCluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl").args(args).envs(c.env()).output().expect("kubectl runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn json(c: &RealCluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (ok, out, err) = kubectl(c, &all);
    assert!(ok, "kubectl {args:?}: {err}");
    serde_json::from_str(&out).expect("kubectl prints JSON")
}

#[test]
fn a_kubeadm_shaped_ha_control_plane_answers_kubectl() {
    let c = start(RealOptions::default());
    let version = json(&c, &["version"]);
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.36.3", "the build stamps the real version");

    // Nodes cp-1..cp-3 on 127.0.0.2..4 and two workers, Ready through kwok's heartbeats.
    let nodes = json(&c, &["get", "nodes"]);
    let nodes = nodes["items"].as_array().unwrap();
    assert_eq!(nodes.len(), 5, "{nodes:?}");
    for (i, name) in ["cp-1", "cp-2", "cp-3"].iter().enumerate() {
        let n = nodes.iter().find(|n| n["metadata"]["name"] == *name).unwrap();
        assert!(n["metadata"]["labels"].get("node-role.kubernetes.io/control-plane").is_some());
        let ip = format!("127.0.0.{}", i + 2);
        assert!(
            n["status"]["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["type"] == "InternalIP" && a["address"] == ip.as_str())
        );
    }

    // The static pods' mirrors, as the kubelet makes them, carrying the flags of the processes.
    let pods = json(&c, &["get", "pods", "-n", "kube-system", "-l", "tier=control-plane"]);
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 12, "{pods:?}");
    for p in pods {
        assert!(p["metadata"]["annotations"].get("kubernetes.io/config.mirror").is_some(), "{p}");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Node", "{p}");
        assert_eq!(p["status"]["phase"], "Running", "{p}");
    }
    let apiserver = pods.iter().find(|p| p["metadata"]["name"] == "kube-apiserver-cp-2").unwrap();
    let command: Vec<&str> =
        apiserver["spec"]["containers"][0]["command"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert!(command.contains(&"--advertise-address=127.0.0.3"), "{command:?}");
    let running = std::fs::read_to_string("/proc/self/mounts").is_ok(); // Linux: the processes are inspectable
    if running {
        let cmdlines: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .collect();
        assert!(
            cmdlines.iter().any(|l| l.contains("kube-apiserver") && l.contains(&command[1..].join(" "))),
            "the mirror pod's command is the running process's"
        );
    }

    // One identity lease per replica, labelled with its node; leaders held by a node.
    let leases =
        json(&c, &["get", "leases", "-n", "kube-system", "-l", "apiserver.kubernetes.io/identity=kube-apiserver"]);
    let mut hosts: Vec<String> = leases["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["metadata"]["labels"]["kubernetes.io/hostname"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["cp-1", "cp-2", "cp-3"], "{leases}");
    for l in ["kube-controller-manager", "kube-scheduler"] {
        let lease = json(&c, &["get", "lease", "-n", "kube-system", l]);
        assert!(lease["spec"]["holderIdentity"].as_str().unwrap().starts_with("cp-"), "{lease}");
    }
    // The real API server refuses loopback endpoint addresses: the kubernetes EndpointSlice stays
    // empty here (documented in tests/kit/FIDELITY.md).
    let slices = json(&c, &["get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes"]);
    assert!(slices["items"].as_array().unwrap().iter().all(|s| s["endpoints"].as_array().is_none_or(|e| e.is_empty())));
    // The endpoint reconciler logs it every 10 s; on a loaded machine, slow-request traces can
    // push it out of any fixed tail, so the whole log is read, for up to 30 s.
    let refused = "may not be in the loopback range";
    c.wait_until("the endpoint reconciler's loopback refusal in the log", Duration::from_secs(30), |c| {
        c.log_tail("kube-apiserver-cp-1", usize::MAX).contains(refused)
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn kubectl_exec_and_spdy_port_forward_reach_the_etcd_members() {
    let c = start(RealOptions { control_planes: 3, workers: 0, ..RealOptions::default() });
    // exec: the real etcdctl runs "in the pod" with the pod's own certificate flags.
    let pod = json(&c, &["get", "pod", "-n", "kube-system", "etcd-cp-2"]);
    let flags: Vec<String> = pod["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .filter_map(|a| {
            let (k, v) = a.split_once('=')?;
            let flag = match k {
                "--trusted-ca-file" => "--cacert",
                "--cert-file" => "--cert",
                "--key-file" => "--key",
                "--advertise-client-urls" => "--endpoints",
                _ => return None,
            };
            Some(format!("{flag}={v}"))
        })
        .collect();
    assert_eq!(flags.len(), 4, "{flags:?}");
    let mut args = vec!["exec", "-n", "kube-system", "etcd-cp-2", "--", "etcdctl"];
    args.extend(flags.iter().map(String::as_str));
    args.extend(["member", "list", "-w", "json"]);
    let (ok, out, err) = kubectl(&c, &args);
    assert!(ok, "{err}");
    let members: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(members["members"].as_array().unwrap().len(), 3);
    // The 3.6 image has no shell: exec of sh fails like containerd says it does.
    let (ok, _, err) = kubectl(&c, &["exec", "-n", "kube-system", "etcd-cp-2", "--", "sh", "-c", "true"]);
    assert!(!ok && err.contains("executable file not found"), "{err}");

    // port-forward: kubectl's own (SPDY over WebSocket) to the member's client port, as its pod
    // advertises it (2379 unless another cluster on this machine holds that port on the address).
    let port = flags
        .iter()
        .find_map(|f| f.strip_prefix("--endpoints="))
        .and_then(|url| url.rsplit(':').next())
        .expect("the pod advertises its client URL")
        .to_string();
    let tls = c.etcd.client_tls();
    let local = testkit::net::free_port().unwrap();
    let mut child = Command::new("kubectl")
        .args(["port-forward", "-n", "kube-system", "pod/etcd-cp-2", &format!("{local}:{port}")])
        .envs(c.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(c.root().join("port-forward.err")).unwrap()))
        .spawn()
        .unwrap();
    let mut line = String::new();
    // Keep reading its output open: kubectl dies of SIGPIPE on its next line otherwise.
    let mut forwarding = BufReader::new(child.stdout.take().unwrap());
    forwarding.read_line(&mut line).unwrap();
    assert!(line.contains("Forwarding from 127.0.0.1"), "{line}");
    let status = Command::new(EtcdRelease::V3_6.etcdctl().unwrap())
        .args([
            &format!("--endpoints=https://127.0.0.1:{local}"),
            &format!("--cacert={}", tls.cacert.display()),
            &format!("--cert={}", tls.cert.display()),
            &format!("--key={}", tls.key.display()),
            // The member's certificate names its node address, not 127.0.0.1: as through any tunnel.
            "--insecure-skip-tls-verify",
            "endpoint",
            "status",
            "-w",
            "json",
        ])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    drop(forwarding);
    let kubectl_said = std::fs::read_to_string(c.root().join("port-forward.err")).unwrap_or_default();
    assert!(
        status.status.success(),
        "{}\nkubectl port-forward said: {kubectl_said}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["Status"]["version"], "3.6.16");
}

#[test]
fn debians_etcd_34_runs_the_control_plane_too_and_nothing_is_left_behind() {
    let c = start(RealOptions { control_planes: 1, workers: 1, etcd: EtcdRelease::Debian, ..RealOptions::default() });
    let (ok, out, err) =
        kubectl(&c, &["get", "pods", "-n", "kube-system", "etcd-cp-1", "-o", "jsonpath={.spec.containers[0].image}"]);
    assert!(ok, "{err}");
    assert_eq!(out, "registry.k8s.io/etcd:3.4.23-0");
    // The 3.4/3.5 image has a static bash as sh (and no cat): reading a file the kubeadm way works.
    let (ok, out, err) = kubectl(
        &c,
        &["exec", "-n", "kube-system", "etcd-cp-1", "--", "sh", "-c", "echo \"$(<etc/kubernetes/pki/etcd/ca.crt)\""],
    );
    assert!(ok && out.starts_with("-----BEGIN CERTIFICATE-----"), "{out}{err}");
    let root = c.root().to_path_buf();
    let etcd_root = c.etcd.root().to_path_buf();
    let pids: Vec<u32> = c.pids();
    assert!(pids.len() >= 5, "apiserver, controller-manager, scheduler, 2 kwok: {pids:?}");
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!root.exists() && !etcd_root.exists(), "temp dirs removed");
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} reaped");
    }
}
