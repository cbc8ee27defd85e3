//! `kubectl cphealth bundle` (contents, and no secret material) and `kubectl cphealth rbac`
//! (the printed roles are enough for every check), in both worlds of the test kit.

use std::io::Read;

use cpkit_e2e::{describe, in_both_worlds, kubectl, start, text, viewer};
use serde_json::Value;
use testkit::apiserver::{Rule, User};
use testkit::{DemoCluster, Scenario, World};

fn base64_of(text: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = text.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() { out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char) } else { out.push('=') }
        }
    }
    out
}

fn entries(path: &std::path::Path) -> Vec<(String, String)> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = String::new();
        e.read_to_string(&mut data).unwrap();
        out.push((name, data));
    }
    out
}

/// Gives `user` the roles of `manifests` (what `kubectl cphealth rbac` prints) and returns a
/// context that acts as that user: rules of the simulator, or `kubectl apply` of the printed
/// manifests and a client certificate on the real control plane.
fn grant(c: &DemoCluster, user: &str, manifests: &str) -> String {
    match c.world {
        World::Sim => {
            c.apiserver().sim.users.write().unwrap().push(User {
                name: user.into(),
                groups: vec![],
                token: Some(format!("{user}-token-123456")),
                rules: rules_from_manifests(manifests),
            });
            c.apiserver().write_kubeconfig(&c.dir, &c.context).unwrap();
            format!("{}-{user}", c.context)
        }
        World::Real => {
            let file = c.dir.join(format!("{user}-rbac.yaml"));
            std::fs::write(&file, manifests).unwrap();
            let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]);
            assert!(out.status.success(), "{}", describe(&out));
            c.real().unwrap().add_user(user, &[]).unwrap()
        }
    }
}

in_both_worlds! {
fn bundle_has_the_diagnostics_and_no_secrets(world) {
    let c = start(world, Scenario::HealthyHa);
    // Plant a Secret. (kubectl's typed `create secret` sends protobuf, which the simulator does
    // not decode: create it from JSON.)
    let secret_value = "s3cr3t-planted-value-42";
    let file = c.dir.join("secret.json");
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db-password", "namespace": "kube-system"}, "data": {"password": base64_of(secret_value)}});
    std::fs::write(&file, secret.to_string()).unwrap();
    let out = c.kubectl(&["create", "--validate=false", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let (viewer_context, token) = viewer(&c);
    let admin_key = c.admin_key_pem();
    let dir = tempfile::tempdir().unwrap();
    for (context, file) in [(c.context.clone(), "admin.tar.gz"), (viewer_context, "viewer.tar.gz")] {
        let path = dir.path().join(file);
        let out = kubectl(
            &["cphealth", "bundle", "--context", &context, "-f", path.to_str().unwrap(), "--sample", "300ms"],
            &c.env(),
        );
        assert!(out.status.success(), "{}", describe(&out));
        assert!(text(&out).0.starts_with(&format!("wrote {}", path.display())), "{}", describe(&out));
        let files = entries(&path);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for expected in [
            "README.txt",
            "cluster.json",
            "report.json",
            "readyz.txt",
            "livez.txt",
            "nodes.json",
            "kube-system/control-plane-pods.json",
            "kube-system/events.json",
            "webhooks.json",
            "apf/flowschemas.json",
        ]
        .into_iter()
        // The admin may exec into etcd and read /metrics; the viewer may not (see below).
        .chain(if file == "admin.tar.gz" {
            // Each replica's /metrics (one through the load balancer said little about the others).
            vec!["etcd/status.json", "metrics/cp-1.metrics", "metrics/cp-2.metrics", "metrics/cp-3.metrics"]
        } else {
            vec![]
        }) {
            assert!(
                names.iter().any(|n| n.ends_with(&format!("/{expected}"))),
                "{expected} missing in {context}: {names:?}"
            );
        }
        assert!(names.iter().any(|n| n.contains("/logs/etcd-cp-1_etcd.log")), "{names:?}");
        for (name, data) in &files {
            assert!(!data.contains(secret_value), "{name} holds the Secret's value");
            assert!(!data.contains(&token), "{name} holds the bearer token");
            assert!(!data.contains("PRIVATE KEY"), "{name} holds a private key");
            assert!(!data.contains(admin_key.lines().nth(1).unwrap()), "{name} holds the client key");
        }
        let report: Value =
            serde_json::from_str(&files.iter().find(|(n, _)| n.ends_with("/report.json")).unwrap().1).unwrap();
        // The viewer may not exec into etcd nor read leases: those checks are UNKNOWN.
        let not_ok: Vec<String> = report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] != "OK")
            .map(|c| format!("{} {}: {}", c["name"], c["status"], c["message"]))
            .collect();
        // The admin may read everything: no check is UNKNOWN. (Not "OK": the cluster's health is
        // not the bundle's business, and a loaded CI machine makes etcd or leases slow.)
        let unknown = report["checks"].as_array().into_iter().flatten().filter(|c| c["status"] == "UNKNOWN").count();
        if file == "admin.tar.gz" {
            assert_eq!(unknown, 0, "{file}: {not_ok:#?}");
            assert_ne!(report["verdict"], "UNKNOWN", "{file}: {not_ok:#?}");
        } else {
            assert_eq!(report["verdict"], "UNKNOWN", "{file}: {not_ok:#?}");
        }
        if let Some((_, etcd)) = files.iter().find(|(n, _)| n.ends_with("/etcd/status.json")) {
            let etcd: Value = serde_json::from_str(etcd).unwrap();
            assert_eq!(etcd["members"].as_array().unwrap().len(), 3);
        }
    }
    // The viewer may not read /metrics: the bundle says so instead of failing.
    let viewer = entries(&dir.path().join("viewer.tar.gz"));
    let readme = &viewer.iter().find(|(n, _)| n.ends_with("README.txt")).unwrap().1;
    assert!(readme.contains("metrics of cp-1:") && readme.contains("403"), "{readme}");
    assert!(readme.contains("etcd status:") && readme.contains("pods/exec"), "{readme}");
    // An existing file is not overwritten without --force.
    let again = kubectl(
        &["cphealth", "bundle", "-f", dir.path().join("admin.tar.gz").to_str().unwrap(), "--sample", "0"],
        &c.env(),
    );
    assert!(!again.status.success());
    assert!(text(&again).1.contains("already exists"), "{}", describe(&again));
}
}

/// The roles `kubectl cphealth rbac` prints, as the simulated API server's rules.
fn rules_from_manifests(yaml: &str) -> Vec<Rule> {
    let docs = cpkit::yaml::documents("rbac", yaml).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let mut rules = Vec::new();
    for d in docs.iter().filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role") {
        let ns: Vec<String> = d["metadata"]["namespace"].as_str().map(|n| vec![n.to_string()]).unwrap_or_default();
        for r in d["rules"].as_array().unwrap() {
            rules.push(Rule {
                verbs: strings(&r["verbs"]),
                api_groups: strings(&r["apiGroups"]),
                resources: strings(&r["resources"]),
                namespaces: ns.clone(),
                non_resource_urls: strings(&r["nonResourceURLs"]),
            });
        }
    }
    rules
}

in_both_worlds! {
fn the_printed_rbac_enables_every_check(world) {
    let c = start(world, Scenario::HealthyHa);
    let out = kubectl(&["cphealth", "rbac", "--bind-user", "oncall"], &c.env());
    assert!(out.status.success(), "{}", describe(&out));
    let yaml = text(&out).0;
    assert!(
        yaml.contains("resourceNames: [\"etcd-cp-1\", \"etcd-cp-2\", \"etcd-cp-3\"]"),
        "exec limited to the etcd pods: {yaml}"
    );
    let rules = rules_from_manifests(&yaml);
    assert!(rules.iter().all(|r| r.verbs.iter().all(|v| ["get", "list", "create"].contains(&v.as_str()))));
    let oncall = grant(&c, "oncall", &yaml);
    let out = kubectl(&["cphealth", "--context", &oncall, "-o", "json", "--sample", "300ms"], &c.env());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(r["verdict"], "OK", "{}", describe(&out));
    for check in r["checks"].as_array().unwrap() {
        assert_eq!(check["status"], "OK", "with the printed roles nothing is skipped: {check}");
    }
    // Without the optional exec Role, etcd falls back to the metrics and says why.
    let out = kubectl(&["cphealth", "rbac", "--bind-user", "reader"], &c.env());
    let reader_yaml: String = text(&out)
        .0
        .split("\n---\n")
        .filter(|doc| !doc.contains("cpkit-cphealth-etcd-exec"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let reader = grant(&c, "reader", &reader_yaml);
    let out = kubectl(&["cphealth", "--context", &reader, "-o", "json", "--only", "etcd"], &c.env());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    let etcd = &r["checks"][0];
    assert_eq!(etcd["status"], "UNKNOWN", "etcd's members were not verified: {etcd}");
    assert_eq!(etcd["missingPermission"], "get and create on pods/exec in kube-system");
    assert!(etcd["message"].as_str().unwrap().contains("metrics: db"), "{etcd}");
}
}
