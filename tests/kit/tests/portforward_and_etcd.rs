//! Port-forward with the WebSocket protocol kube-rs speaks (what etcdsnap uses), carrying a real
//! etcdctl session to a real etcd member, and with the official Python client; and the etcd
//! harness itself.

use std::time::Duration;

use cpkit::cli::{KubeArgs, Plugin};
use testkit::etcd::{EtcdCluster, EtcdOptions};
use testkit::{DemoCluster, Scenario};

const PLUGIN: Plugin = Plugin { name: "kit-test", version: "0" };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_through_a_kube_rs_port_forward_reaches_the_member() {
    let c = DemoCluster::start(Scenario::HealthyHa).expect("scenario starts");
    let etcd = c.etcd().unwrap();
    let member = &etcd.members[1];
    let args = KubeArgs { kubeconfig: Some(c.kubeconfig.clone()), ..Default::default() };
    let cluster = cpkit::Cluster::connect(&args, PLUGIN).await.expect("connects");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let port = member.client_port;
    let forwarder = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let mut tunnel =
                    cpkit::stream::port_forward(&cluster, "kube-system", "etcd-cp-2", port, Duration::from_secs(5))
                        .await
                        .expect("tunnel opens");
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut tunnel.stream).await;
                tunnel.abort();
            });
        }
    });
    let tls = etcd.client_tls();
    let out = tokio::process::Command::new("etcdctl")
        .arg(format!("--endpoints=https://127.0.0.1:{}", local.port()))
        .arg(format!("--cacert={}", tls.cacert.display()))
        .arg(format!("--cert={}", tls.cert.display()))
        .arg(format!("--key={}", tls.key.display()))
        .args(["endpoint", "status", "-w", "json"])
        .output()
        .await
        .expect("etcdctl runs");
    forwarder.abort();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let member_id = json[0]["Status"]["header"]["member_id"].as_u64().unwrap();
    let mut client = etcd.client_for(&[member.local_client_url()]).await.unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(Some(member_id), status.header().map(|h| h.member_id()), "the tunnel reached etcd-cp-2's member");
}

/// The official Python client (Debian's python3-kubernetes, installed by dev/install-deps) opens
/// the tunnel with its own WebSocket implementation; etcd answers through it over TLS.
#[test]
fn the_official_python_client_port_forwards_to_the_member() {
    let c = DemoCluster::start(Scenario::HealthyHa).expect("scenario starts");
    let etcd = c.etcd().unwrap();
    let tls = etcd.client_tls();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_portforward.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(&c.kubeconfig)
        .args(["kube-system", "etcd-cp-3", &etcd.members[2].client_port.to_string()])
        .args([&tls.cacert, &tls.cert, &tls.key])
        .output()
        .expect("/usr/bin/python3 runs (dev/install-deps installs python3-kubernetes)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let version: serde_json::Value = serde_json::from_str(stdout.trim()).expect("etcd's /version JSON");
    let etcd_version = std::process::Command::new("etcd").arg("--version").output().unwrap();
    let expected = String::from_utf8_lossy(&etcd_version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: ").map(str::to_string))
        .unwrap();
    assert_eq!(version["etcdserver"], expected.as_str(), "the real member answered: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_to_a_closed_port_reports_the_kubelet_error() {
    let c = DemoCluster::start(Scenario::HealthyHa).expect("scenario starts");
    let args = KubeArgs { kubeconfig: Some(c.kubeconfig.clone()), ..Default::default() };
    let cluster = cpkit::Cluster::connect(&args, PLUGIN).await.unwrap();
    let dead = testkit::net::dead_port().unwrap();
    let mut tunnel =
        cpkit::stream::port_forward(&cluster, "kube-system", "etcd-cp-1", dead, Duration::from_secs(5)).await.unwrap();
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tunnel.stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the stream ends instead of hanging");
    assert!(buf.is_empty(), "no data from a refused port");
}

#[test]
fn three_member_tls_cluster_elects_a_new_leader_when_the_leader_dies() {
    let mut cluster = EtcdCluster::start(EtcdOptions::members(3)).expect("etcd starts");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let leader = rt.block_on(cluster.leader_index()).expect("a leader");
    cluster.kill(leader);
    let mut new_leader = None;
    for _ in 0..100 {
        if let Some(l) = rt.block_on(cluster.leader_index())
            && l != leader
        {
            new_leader = Some(l);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let new_leader = new_leader.expect("a new leader is elected");
    assert_ne!(new_leader, leader);
    // Quorum holds: writes work with two members.
    rt.block_on(async {
        let endpoints = cluster.running_endpoints();
        let mut c = cluster.client_for(&endpoints).await.unwrap();
        c.put("/registry/test/after-failover", "ok", None).await.expect("quorum kept");
    });
    cluster.restart(leader).unwrap();
    cluster.wait_healthy(Duration::from_secs(20)).expect("the old leader rejoins");
}

#[test]
fn nothing_is_left_behind_even_when_a_test_panics() {
    let (pids, dirs) = std::thread::spawn(|| {
        let c = DemoCluster::start(Scenario::EtcdMemberDown).expect("scenario starts");
        let etcd = c.etcd().unwrap();
        let dirs = vec![etcd.root().to_path_buf(), c.dir.clone()];
        let pids = running_etcd_pids(etcd.root());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _owned = c;
            panic!("a failing test");
        }));
        assert!(result.is_err());
        (pids, dirs)
    })
    .join()
    .unwrap();
    assert!(!pids.is_empty(), "etcd was running");
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "etcd {pid} survived");
    }
    for d in dirs {
        assert!(!d.exists(), "{} survived", d.display());
    }
}

/// PIDs of etcd processes whose command line mentions `root`.
fn running_etcd_pids(root: &std::path::Path) -> Vec<u32> {
    let needle = root.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}
