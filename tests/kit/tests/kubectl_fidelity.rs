//! The simulated API server as the real kubectl sees it (kubectl on this machine, the dispatcher
//! picks the minor matching the server), with the real etcd behind `kubectl exec`.

use testkit::{DemoCluster, Scenario};

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

#[test]
fn kubectl_reads_nodes_pods_leases_apf_and_webhooks() {
    let c = DemoCluster::start(Scenario::HealthyHa).expect("scenario starts");

    let nodes = rows(&stdout(&c.kubectl(&["get", "nodes"])));
    assert_eq!(nodes[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let names: Vec<&str> = nodes[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"]);
    assert!(nodes[1..4].iter().all(|r| r[1] == "Ready" && r[2] == "control-plane"));

    let pods =
        rows(&stdout(&c.kubectl(&["get", "pods", "-n", "kube-system", "-l", "tier=control-plane", "-o", "wide"])));
    assert_eq!(&pods[0][..7], ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]);
    assert_eq!(pods.len() - 1, 12, "4 static pods on each of 3 nodes");
    let etcd = pods.iter().find(|r| r[0] == "etcd-cp-2").expect("etcd-cp-2 listed");
    assert_eq!(
        (etcd[1].as_str(), etcd[2].as_str(), etcd[5].as_str(), etcd[6].as_str()),
        ("1/1", "Running", "127.0.0.3", "cp-2")
    );

    let leases = stdout(&c.kubectl(&["get", "leases", "-n", "kube-system"]));
    assert!(leases.lines().any(|l| l.starts_with("kube-scheduler ") && l.contains("cp-2_")), "{leases}");
    assert_eq!(leases.lines().filter(|l| l.starts_with("apiserver-")).count(), 3, "one identity lease per apiserver");

    let apf = stdout(&c.kubectl(&["get", "flowschemas,prioritylevelconfigurations"]));
    for name in [
        "flowschema.flowcontrol.apiserver.k8s.io/service-accounts",
        "prioritylevelconfiguration.flowcontrol.apiserver.k8s.io/workload-low",
    ] {
        assert!(apf.contains(name), "{name} missing in\n{apf}");
    }
    let workload_low = apf.lines().find(|l| l.contains("/workload-low ")).expect("workload-low row");
    assert_eq!(rows(workload_low)[0][1..6], ["Limited", "100", "128", "6", "50"]);

    let webhooks = stdout(&c.kubectl(&["get", "validatingwebhookconfigurations"]));
    assert!(webhooks.lines().any(|l| l.starts_with("cert-manager-webhook ")), "{webhooks}");

    let readyz = stdout(&c.kubectl(&["get", "--raw", "/readyz?verbose"]));
    assert!(readyz.starts_with("[+]ping ok\n[+]log ok\n[+]etcd ok\n"), "{readyz}");
    assert!(readyz.ends_with("readyz check passed\n"));
    let excluded = stdout(&c.kubectl(&["get", "--raw", "/readyz?verbose&exclude=etcd&exclude=nope"]));
    assert!(excluded.contains("[+]etcd excluded: ok\n"));
    assert!(excluded.contains("warn: some health checks cannot be excluded: no matches for \"nope\"\n"));

    // kubectl (Go's transport) asks for gzip: /metrics comes compressed and reads as text.
    let before = c.apiserver().sim.gzipped.load(std::sync::atomic::Ordering::Relaxed);
    let metrics = stdout(&c.kubectl(&["get", "--raw", "/metrics"]));
    assert!(metrics.contains("# TYPE apiserver_request_total counter"), "{}", &metrics[..metrics.len().min(300)]);
    assert_eq!(c.apiserver().sim.gzipped.load(std::sync::atomic::Ordering::Relaxed), before + 1);
}

#[test]
fn kubectl_exec_reaches_the_real_etcd_with_the_pods_cert_paths() {
    let c = DemoCluster::start(Scenario::HealthyHa).expect("scenario starts");
    let etcd = c.etcd().expect("etcd runs");
    let port = etcd.members[0].client_port;
    let endpoint = format!("--endpoints=https://127.0.0.1:{port}");
    let out = c.kubectl(&[
        "exec",
        "-n",
        "kube-system",
        "etcd-cp-1",
        "--",
        "etcdctl",
        &endpoint,
        "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
        "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
        "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
        "endpoint",
        "status",
        "-w",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("etcdctl printed JSON");
    let status = &json[0]["Status"];
    assert!(status["header"]["revision"].as_i64().unwrap() > 1, "{json}");
    assert!(status["version"].as_str().unwrap().starts_with("3."), "{json}");
    assert_eq!(json[0]["Endpoint"], format!("https://127.0.0.1:{port}"));
    let keys = c.kubectl(&[
        "exec",
        "-n",
        "kube-system",
        "etcd-cp-1",
        "--",
        "etcdctl",
        &endpoint,
        "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
        "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
        "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
        "get",
        "/registry/namespaces/",
        "--prefix",
        "--keys-only",
    ]);
    assert!(stdout(&keys).lines().any(|k| k == "/registry/namespaces/team-000"), "the kit's data is in etcd");

    // The etcd image has no tar or cat: kubectl cp and cat fail like on a real cluster.
    let tar = c.kubectl(&["exec", "-n", "kube-system", "etcd-cp-1", "--", "tar", "cf", "-", "/var/lib/etcd"]);
    assert!(!tar.status.success());
    assert!(String::from_utf8_lossy(&tar.stderr).contains("exec: \"tar\": executable file not found in $PATH"));
    let cat =
        c.kubectl(&["exec", "-n", "kube-system", "etcd-cp-1", "--", "sh", "-c", "cat /etc/kubernetes/pki/etcd/ca.crt"]);
    assert_eq!(cat.status.code(), Some(127), "sh reports cat missing");
    // ... but the shell builtin reads files.
    let read = c.kubectl(&[
        "exec",
        "-n",
        "kube-system",
        "etcd-cp-1",
        "--",
        "sh",
        "-c",
        "echo \"$(</etc/kubernetes/pki/etcd/ca.crt)\"",
    ]);
    assert!(stdout(&read).starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn permissions_pagination_and_dry_run_admission() {
    let c = DemoCluster::start(Scenario::WebhookLockout).expect("scenario starts");
    // Dry-run creates run the webhooks: the dead Fail webhook blocks pods with the real text.
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probe"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
    let file = c.dir.join("pod.json");
    std::fs::write(&file, pod).unwrap();
    let out = c.kubectl(&["create", "--dry-run=server", "--validate=false", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Internal error occurred: failed calling webhook \"validate.pod.com\": failed to call webhook: Post \"https://pod-validator.default.svc:443/validate?timeout=10s\": dial tcp 127.96.100.200:443: connect: connection refused"),
        "{err}"
    );
    // Webhook configurations are exempt from webhooks: deleting it works.
    let del = c.kubectl(&["delete", "validatingwebhookconfiguration", "pod-validator"]);
    stdout(&del);
    let again = c.kubectl(&["create", "--dry-run=server", "--validate=false", "-f", file.to_str().unwrap()]);
    assert!(stdout(&again).contains("pod/probe created (server dry run)"));

    // A token user without rights gets the RBAC text; an unknown token gets 401.
    let viewer_ctx = format!("{}-viewer", c.context);
    let denied = c.kubectl(&["--context", &viewer_ctx, "delete", "pod", "-n", "kube-system", "etcd-cp-1"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("pods \"etcd-cp-1\" is forbidden: User \"viewer\" cannot delete resource \"pods\" in API group \"\" in the namespace \"kube-system\""));
    let bad = c.kubectl(&["--token", "nope", "get", "nodes"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Unauthorized"), "{}", String::from_utf8_lossy(&bad.stderr));

    // Impersonation as the apiserver does it: the impersonated user's own groups are not looked
    // up (kubernetes-admin without --as-group is just system:authenticated), groups given with
    // --as-group count, and impersonating needs the impersonate verb.
    let as_admin = c.kubectl(&["--as", "kubernetes-admin", "get", "nodes"]);
    assert!(
        String::from_utf8_lossy(&as_admin.stderr)
            .contains("nodes is forbidden: User \"kubernetes-admin\" cannot list resource \"nodes\""),
        "{}",
        String::from_utf8_lossy(&as_admin.stderr)
    );
    let as_masters = c.kubectl(&["--as", "someone", "--as-group", "system:masters", "get", "nodes", "-o", "name"]);
    assert!(stdout(&as_masters).contains("node/cp-1"));
    let no_right = c.kubectl(&["--context", &viewer_ctx, "--as", "kubernetes-admin", "get", "nodes"]);
    assert!(
        String::from_utf8_lossy(&no_right.stderr)
            .contains("users \"kubernetes-admin\" is forbidden: User \"viewer\" cannot impersonate resource \"users\""),
        "{}",
        String::from_utf8_lossy(&no_right.stderr)
    );
}

#[test]
fn large_cluster_lists_page_by_page() {
    let c = DemoCluster::start(Scenario::LargeCluster).expect("scenario starts");
    let out = stdout(&c.kubectl(&["get", "nodes", "--chunk-size=500", "--no-headers"]));
    assert_eq!(out.lines().count(), 5003, "5000 workers and 3 control-plane nodes");
    let raw = stdout(&c.kubectl(&["get", "--raw", "/api/v1/pods?limit=3"]));
    let page: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert!(page["metadata"]["continue"].as_str().is_some_and(|t| !t.is_empty()));
}

#[test]
fn expired_serving_certificate_fails_tls_like_a_real_cluster() {
    let c = DemoCluster::start(Scenario::CertsExpired).expect("scenario starts");
    let out = c.kubectl(&["get", "nodes"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x509: certificate has expired or is not yet valid"), "{err}");
}
