//! `kubectl webhookguard` end to end: offline scans of the real manifests in
//! tests/fixtures/webhooks/ (each file's source in tests/fixtures/SOURCES.md), and the live
//! scan, probe, disarm and restore in both worlds of the test kit (the simulated API server and
//! the real control plane), run through kubectl.

use std::path::{Path, PathBuf};

use cpkit_e2e::{describe, in_both_worlds, kubectl, plugin, start, text};
use serde_json::Value;
use testkit::{DemoCluster, Scenario, World};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/webhooks").join(name)
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

/// (finding kind, severity) pairs of one webhook.
fn findings_of(report: &Value, webhook: &str) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["webhook"] == webhook)
        .map(|f| (f["kind"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string()))
        .collect()
}

fn has(report: &Value, webhook: &str, kind: &str, severity: &str) -> bool {
    findings_of(report, webhook).contains(&(kind.to_string(), severity.to_string()))
}

fn offline(file: &str) -> (std::process::Output, Value) {
    let path = fixture(file);
    let out = plugin("webhookguard", &["scan", "-f", path.to_str().unwrap(), "-o", "json"], &[]);
    let report = json_of(&out);
    (out, report)
}

#[test]
fn offline_verdicts_of_every_real_manifest() {
    // aws-load-balancer-controller.yaml (controller-gen output): mpod.elbv2.k8s.aws fails closed
    // on every pod CREATE with no selector, so a dead controller blocks kube-system pods and its
    // own namespace's. CRITICAL.
    let (out, r) = offline("aws-load-balancer-controller.yaml");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(r["verdict"], "CRITICAL");
    assert!(has(&r, "mpod.elbv2.k8s.aws", "LOCKOUT", "CRITICAL"));
    assert!(has(&r, "mpod.elbv2.k8s.aws", "SELF-DEADLOCK", "CRITICAL"));
    assert!(has(&r, "vingress.elbv2.k8s.aws", "REVIEW-VERSIONS", "WARNING"));
    assert!(!findings_of(&r, "vingress.elbv2.k8s.aws").iter().any(|(k, _)| k == "LOCKOUT"), "ingresses do not heal");

    // k8s-docs-csr-delegation-policy.yaml (Kubernetes documentation): a ValidatingAdmissionPolicy
    // with a ConfigMap param on ClusterRole CREATE. Nothing the cluster needs to heal creates
    // ClusterRoles, and whether the param exists is a live fact. OK, the policy listed.
    let (out, r) = offline("k8s-docs-csr-delegation-policy.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(r["findings"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["bindings"][0]["paramRef"]["name"], "admission-policies-installer-csr-config", "{r}");
    // k8s-docs-policy-match-conditions.yaml: a policy without a binding enforces nothing. OK.
    let (out, r) = offline("k8s-docs-policy-match-conditions.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!((r["policies"].as_array().unwrap().len(), r["bindings"].as_array().unwrap().len()), (1, 0), "{r}");

    // gatekeeper-generated-vap.yaml (Gatekeeper's code run on its demo): every resource, but
    // parameterNotFoundAction Allow, and whether its constraint kind is served is a live fact. OK.
    let (out, r) = offline("gatekeeper-generated-vap.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(r["findings"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["policies"][0]["paramKind"]["kind"], "K8sRequiredLabels", "{r}");
    // kyverno-generated-deny-exec.yaml (Kyverno's generated policy for a ClusterPolicy): Deny on
    // pods/exec, which no write of the cluster's healing goes through. OK.
    let (out, r) = offline("kyverno-generated-deny-exec.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(r["findings"].as_array().unwrap().is_empty(), "{r}");
    // kyverno-generated-check-label-app4.yaml: label `app` required on everything, read without
    // has(), but in production and staging only, and the binding warns and audits. OK.
    let (out, r) = offline("kyverno-generated-check-label-app4.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(r["findings"].as_array().unwrap().is_empty(), "{r}");
    // The same policy with Deny everywhere: its validation is evaluated on the writers' own
    // objects, so the mirror pods (no `app` label) are denied and the leader leases (no labels
    // at all) fail it. CRITICAL, with the binding-scoped fix.
    let text = std::fs::read_to_string(fixture("kyverno-generated-check-label-app4.yaml")).unwrap();
    let everywhere = text
        .replace("validationActions: [Audit, Warn]", "validationActions: [Deny]")
        .replace(
            "    namespaceSelector:\n      matchExpressions:\n      - key: kubernetes.io/metadata.name\n        operator: In\n        values:\n        - production\n        - staging\n",
            "",
        );
    assert!(!everywhere.contains("namespaceSelector") && everywhere.contains("[Deny]"), "{everywhere}");
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join("check-label-app4-deny-everywhere.yaml");
    std::fs::write(&edited, everywhere).unwrap();
    let out = plugin("webhookguard", &["scan", "-f", edited.to_str().unwrap(), "-o", "json"], &[]);
    let r = json_of(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(has(&r, "check-label-app4-binding", "POLICY-REJECTS", "CRITICAL"), "{r}");
    let f = r["findings"].as_array().unwrap().iter().find(|f| f["kind"] == "POLICY-REJECTS").unwrap();
    assert!(f["summary"].as_str().unwrap().contains("is false for the kubelet creating the mirror pod"), "{f}");
    assert!(
        f["fix"]["command"]
            .as_str()
            .unwrap()
            .starts_with("kubectl patch validatingadmissionpolicybinding check-label-app4-binding "),
        "{f}"
    );

    // linkerd.yaml (Linkerd's injector as `kubectl get` showed it in a cluster): it cannot lock
    // anything, but its captured caBundle expired on 2026-06-04, so it silently fails open. WARNING.
    let (out, r) = offline("linkerd.yaml");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(has(&r, "linkerd-proxy-injector.linkerd.io", "CA-BUNDLE", "WARNING"), "{r}");

    // azure-workload-identity.yaml: Ignore policy, objectSelector on a label pods must opt in
    // with. Nothing can lock; the empty caBundle (injected at run time) is only a note. OK.
    let (out, r) = offline("azure-workload-identity.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(r["verdict"], "OK");
    assert!(has(&r, "mutation.azure-workload-identity.io", "CA-BUNDLE", "OK"));

    // cert-manager.yaml: Fail, but only on cert-manager's own resources, and kube-system and
    // cert-manager excluded; timeoutSeconds 30 and v1beta1-only reviews are WARNINGs.
    let (out, r) = offline("cert-manager.yaml");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(r["verdict"], "WARNING");
    assert!(!findings_of(&r, "webhook.cert-manager.io").iter().any(|(k, _)| k == "LOCKOUT"));
    assert!(has(&r, "webhook.cert-manager.io", "TIMEOUT", "WARNING"));

    // ingress-nginx.yaml: Fail on ingresses only, which do not heal a cluster. OK.
    let (out, r) = offline("ingress-nginx.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(r["verdict"], "OK");

    // istio.yaml: Fail on every pod of namespaces labelled istio-injection=enabled. Offline
    // the namespace labels are unknown, so a lockout is possible but not certain: WARNING,
    // and the scan says it cannot tell without the cluster.
    let (out, r) = offline("istio.yaml");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(r["verdict"], "WARNING");
    assert!(has(&r, "sidecar-injector.istio.io", "LOCKOUT", "WARNING"));
    assert!(has(&r, "sidecar-injector.istio.io", "SIDE-EFFECTS", "WARNING"));
    let lockout = r["findings"].as_array().unwrap().iter().find(|f| f["kind"] == "LOCKOUT").unwrap();
    assert!(lockout["summary"].as_str().unwrap().contains("cannot tell without the cluster"), "{lockout}");

    // knative-serving.yaml: the config webhook has no rules in the manifest (knative fills them
    // at run time); the other fails open. OK with notes.
    let (out, r) = offline("knative-serving.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(has(&r, "config.webhook.serving.knative.dev", "NO-RULES", "OK"));

    // vault-k8s.yaml: Ignore policy on pods. OK.
    let (out, r) = offline("vault-k8s.yaml");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(r["verdict"], "OK");

    // capsule.yaml (controller-gen output, before kustomize adds its namespaceSelector patch):
    // every webhook Fail without selectors. The tenant cordoning webhook intercepts every
    // resource, so kube-system pods, leases and nodes; the nodes webhook blocks the kubelet's
    // Node updates; at the default 10 s timeout on leases, leader election is at risk too.
    let (out, r) = offline("capsule.yaml");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(r["verdict"], "CRITICAL");
    assert!(has(&r, "cordoning.tenant.capsule.clastix.io", "LOCKOUT", "CRITICAL"));
    assert!(has(&r, "cordoning.tenant.capsule.clastix.io", "LEADER-ELECTION", "WARNING"));
    assert!(has(&r, "nodes.capsule.clastix.io", "LOCKOUT", "CRITICAL"));
    assert!(has(&r, "namespaces.capsule.clastix.io", "NAMESPACE-CHANGES", "WARNING"));
    assert!(!findings_of(&r, "services.capsule.clastix.io").iter().any(|(k, _)| k == "LOCKOUT"));

    // gatekeeper.yaml: the policy webhooks intercept every resource but fail open with 1-3 s
    // timeouts; only the namespace-label check is Fail, on namespaces. WARNING.
    let (out, r) = offline("gatekeeper.yaml");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(r["verdict"], "WARNING");
    assert!(!findings_of(&r, "validation.gatekeeper.sh").iter().any(|(k, _)| k == "LOCKOUT" || k == "LEADER-ELECTION"));
    assert!(has(&r, "check-ignore-label.gatekeeper.sh", "NAMESPACE-CHANGES", "WARNING"));
}

#[test]
fn offline_scans_read_directories_stdin_and_honour_the_allowlist() {
    let dir = fixture("");
    // The whole directory: 14 configurations and 5 admission policies, the worst verdict wins,
    // and the table says where facts are unknown.
    let out = plugin("webhookguard", &["-f", dir.to_str().unwrap(), "--color", "never"], &[]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stdout.starts_with("Scanned 14 configurations (31 webhooks), 5 admission policies (4 bindings) from "),
        "{stdout}"
    );
    assert!(stdout.contains("note: offline: namespace labels, backend services"), "{stdout}");
    // --fail-on critical turns the istio WARNING into exit 0.
    let istio = fixture("istio.yaml");
    let out = plugin("webhookguard", &["-f", istio.to_str().unwrap(), "--fail-on", "critical"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // stdin, as a Helm-rendered stream would come: the aws manifest piped in.
    let mut child = std::process::Command::new(cpkit_e2e::plugin_binary("webhookguard"))
        .args(["scan", "-f", "-", "-o", "yaml"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let manifest = std::fs::read(fixture("aws-load-balancer-controller.yaml")).unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &manifest).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let yaml: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(yaml["kind"], "WebhookScan");
    assert_eq!(yaml["source"], "stdin");

    // Accepting the aws risks: the verdict drops to what remains (the v1beta1 warnings).
    let allow = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        allow.path(),
        "- config: mutating-webhook-configuration\n  webhook: mpod.elbv2.k8s.aws\n  finding: '*'\n  reason: accepted until the controller moves to its own node pool (OPS-1234)\n",
    )
    .unwrap();
    let aws = fixture("aws-load-balancer-controller.yaml");
    let out = plugin(
        "webhookguard",
        &["-f", aws.to_str().unwrap(), "--allowlist", allow.path().to_str().unwrap(), "-o", "json"],
        &[],
    );
    let r = json_of(&out);
    assert_eq!(r["verdict"], "WARNING", "{}", describe(&out));
    assert_eq!(out.status.code(), Some(1));
    let lockout = r["findings"].as_array().unwrap().iter().find(|f| f["kind"] == "LOCKOUT").unwrap();
    assert!(lockout["accepted"].as_str().unwrap().contains("OPS-1234"), "{lockout}");

    // A file that is not YAML is a clear error, not a panic.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "webhooks: [unclosed\n").unwrap();
    let out = plugin("webhookguard", &["-f", bad.path().to_str().unwrap()], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn dry_run_pod(c: &DemoCluster, pod: &Path) -> std::process::Output {
    c.kubectl(&["create", "-f", pod.to_str().unwrap(), "--dry-run=server", "--validate=false"])
}

fn config_json(c: &DemoCluster, name: &str) -> Value {
    let out = c.kubectl(&["get", "validatingwebhookconfiguration", name, "-o", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The object without what the server sets on every write.
fn comparable(mut v: Value) -> Value {
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in ["resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"] {
            m.remove(k);
        }
    }
    v
}

in_both_worlds! {
    fn webhook_lockout_scan_probe_disarm_restore(world) {
        let c = start(world, Scenario::WebhookLockout);
        let (config, webhook) = c.facts.lockout_webhook.clone().unwrap();
        let env = c.env();

        // scan: CRITICAL, the live outage first, naming the webhook.
        let out = kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let r = json_of(&out);
        assert_eq!(r["verdict"], "CRITICAL");
        let first = &r["findings"][0];
        assert_eq!((first["kind"].as_str(), first["webhook"].as_str()), (Some("BACKEND-DOWN"), Some(webhook.as_str())));
        assert!(first["summary"].as_str().unwrap().starts_with("LIVE OUTAGE"), "{first}");
        // The chain counts the pods that run, not the Deployment's status, which the webhook
        // keeps stale on the real control plane (it said "1 of 1 replica ready").
        let backend = first["evidence"].as_array().unwrap().iter().find(|e| e["name"] == "backend").unwrap()["value"].clone();
        assert!(backend.as_str().unwrap().contains(": 0 of 1 replica ready"), "{first}");
        assert!(has(&r, &webhook, "LOCKOUT", "CRITICAL"));
        assert!(has(&r, &webhook, "SELF-DEADLOCK", "CRITICAL"));
        // The well-run cert-manager webhook has no findings.
        let cert_manager: Vec<String> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["webhook"] == "webhook.cert-manager.io")
            .map(|f| format!("{} {}: {} {}", f["severity"], f["kind"], f["summary"], f["evidence"]))
            .collect();
        assert!(cert_manager.is_empty(), "cert-manager's webhook has findings: {cert_manager:#?}");

        // probe: names the webhook from the API server's error.
        let out = kubectl(&["webhookguard", "probe", "--color", "never"], &env);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let kube_system_pod = stdout.lines().find(|l| l.starts_with("kube-system") && l.contains("Pod")).unwrap();
        assert!(kube_system_pod.contains("CRITICAL") && kube_system_pod.contains(&webhook), "{stdout}");
        // The call fails as the API server words it: the simulator dials the ClusterIP (refused);
        // the real one routes to endpoints (--enable-aggregator-routing) and finds none.
        let reason = match world {
            World::Sim => "call failed: dial tcp",
            World::Real => "call failed: no endpoints available for service \"pod-validator\"",
        };
        assert!(kube_system_pod.contains(reason), "{stdout}");

        // The user-visible lockout: a server-side dry-run create of a kube-system pod fails.
        let pod = c.dir.join("probe-pod.json");
        std::fs::write(
            &pod,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"coredns-test","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"registry.k8s.io/coredns/coredns:v1.11.3"}]}}"#,
        )
        .unwrap();
        let before = dry_run_pod(&c, &pod);
        assert!(!before.status.success());
        assert!(text(&before).1.contains(&format!("failed calling webhook \"{webhook}\"")), "{}", describe(&before));

        let original = config_json(&c, &config);
        let backups = tempfile::tempdir().unwrap();
        let backup_dir = backups.path().to_str().unwrap();

        // Without --yes: the plan, and nothing changes.
        let out = kubectl(&["webhookguard", "disarm", &config, "--mode", "ignore", "--backup-dir", backup_dir], &env);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(stdout.contains(&format!("{webhook}: failurePolicy Fail → Ignore")), "{stdout}");
        assert!(stdout.contains("Nothing changed."), "{stdout}");
        // Created as an admin creates it (kubectl-create): no controller to warn of (the real
        // world's kit client wrote as "unknown", which reads as one).
        assert!(!stdout.contains("will restore it"), "{stdout}");
        assert_eq!(config_json(&c, &config), original);
        assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 0, "no backup without --yes");

        // With --yes: backup first, the change, verified by a probe, the undo printed.
        let out =
            kubectl(&["webhookguard", "disarm", &config, "--mode", "ignore", "--yes", "--backup-dir", backup_dir], &env);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(stdout.contains("1 change applied, read back and verified"), "{stdout}");
        let undo = stdout.lines().skip_while(|l| !l.starts_with("Undo:")).nth(1).unwrap().trim().to_string();
        assert!(undo.starts_with("kubectl webhookguard restore ") && undo.ends_with(" --yes"), "{undo}");
        let backup = PathBuf::from(undo.split_whitespace().nth(3).unwrap());
        assert!(backup.starts_with(backups.path()), "{undo}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
        let saved: Value = serde_json::from_slice(&std::fs::read(&backup).unwrap()).unwrap();
        assert_eq!(comparable(saved.clone()), comparable(original.clone()), "the backup is the object as it was");
        assert_eq!(config_json(&c, &config)["webhooks"][0]["failurePolicy"], "Ignore");
        let after = dry_run_pod(&c, &pod);
        assert!(after.status.success(), "{}", describe(&after));

        // The printed undo, pasted while the backend is still down: restoring would lock the
        // cluster again, so it is refused, says why, and changes nothing.
        let args: Vec<&str> = undo.split_whitespace().skip(1).collect();
        let out = kubectl(&[&args[..], &["--backup-dir", backup_dir]].concat(), &env);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(stdout.contains("Refused: restoring would lock the cluster again"), "{stdout}");
        assert!(stdout.contains(&format!("{webhook}: LIVE OUTAGE: service default/pod-validator has no ready endpoints")), "{stdout}");
        assert!(stdout.contains("--force"), "{stdout}");
        assert_eq!(config_json(&c, &config)["webhooks"][0]["failurePolicy"], "Ignore", "nothing changed");
        assert!(dry_run_pod(&c, &pod).status.success(), "pods can still be created");

        // --force restores it as saved; the probe after the change shows the lockout is back.
        let out = kubectl(&[&args[..], &["--backup-dir", backup_dir, "--force"]].concat(), &env);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(stdout.contains("read back, it matches the backup"), "{stdout}");
        assert!(stdout.contains("Probe after the restore:"), "{stdout}");
        let restored = config_json(&c, &config);
        assert_eq!(comparable(restored), comparable(original.clone()), "restore gives back the original object");
        assert!(!dry_run_pod(&c, &pod).status.success(), "the lockout is back, as it was");
        // Restoring again is a no-op.
        let out = kubectl(&args, &env);
        assert!(text(&out).0.contains("it already matches the backup"), "{}", describe(&out));

        // delete mode and its undo: the configuration is gone, then re-created as it was.
        let out = kubectl(
            &["webhookguard", "disarm", &config, "--mode", "delete", "--yes", "--backup-dir", backup_dir, "-o", "json"],
            &env,
        );
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let doc = json_of(&out);
        assert_eq!((doc["applied"].as_bool(), doc["verified"].as_bool()), (Some(true), Some(true)));
        assert!(c.kubectl(&["get", "validatingwebhookconfiguration", &config]).status.code() != Some(0));
        let backup = doc["backup"].as_str().unwrap();
        // Re-creating it is refused too while its backend is down; --force does it.
        let out = kubectl(&["webhookguard", "restore", backup, "--yes", "-o", "json"], &env);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let doc = json_of(&out);
        assert_eq!(doc["applied"], false);
        assert!(doc["refused"][0]["summary"].as_str().unwrap().starts_with("LIVE OUTAGE"), "{doc}");
        assert!(c.kubectl(&["get", "validatingwebhookconfiguration", &config]).status.code() != Some(0));
        let out = kubectl(&["webhookguard", "restore", backup, "--yes", "--force"], &env);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert_eq!(comparable(config_json(&c, &config)), comparable(original));
    }
}

in_both_worlds! {
    fn a_concurrent_change_is_never_overwritten(world) {
        let c = start(world, Scenario::WebhookLockout);
        let (config, _) = c.facts.lockout_webhook.clone().unwrap();
        let env = c.env();
        let backups = tempfile::tempdir().unwrap();
        let backup_dir = backups.path().to_str().unwrap();

        // The operator reads the plan...
        let out = kubectl(&["webhookguard", "disarm", &config, "--mode", "exclude-system", "-o", "json"], &env);
        let plan = json_of(&out);
        let seen = plan["plan"]["resourceVersion"].as_str().unwrap().to_string();
        assert!(!seen.is_empty());
        // ...meanwhile someone else changes the configuration...
        let out = c.kubectl(&["label", "validatingwebhookconfiguration", &config, "owner=helm-upgrade"]);
        assert!(out.status.success(), "{}", describe(&out));
        let changed = config_json(&c, &config);
        // ...and applying the plan seen is refused by the API server's precondition, for an update
        // and for a delete (DeleteOptions preconditions) alike.
        let stale = |mode: &str| {
            let args = ["webhookguard", "disarm", &config, "--mode", mode, "--yes", "--resource-version", &seen];
            kubectl(&[&args[..], &["--backup-dir", backup_dir]].concat(), &env)
        };
        let out = stale("exclude-system");
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            stderr.contains(&format!("changed since it was read (resourceVersion {seen}); nothing was written")),
            "{stderr}"
        );
        assert_eq!(config_json(&c, &config), changed, "the concurrent change survives untouched");
        let out = stale("delete");
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert_eq!(config_json(&c, &config), changed);
    }
}

in_both_worlds! {
    fn usage_errors_and_unknown_names(world) {
        let c = start(world, Scenario::HealthyHa);
        let env = c.env();
        let out = kubectl(&["webhookguard", "disarm", "no-such-config", "--mode", "ignore"], &env);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(stderr.contains("No webhook configuration named no-such-config"), "{stderr}");
        // cert-manager has a validating and a mutating configuration of the same name.
        let out = kubectl(&["webhookguard", "disarm", "cert-manager-webhook", "--mode", "ignore"], &env);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        assert!(stderr.contains("--kind validating|mutating"), "{stderr}");
        let out = kubectl(
            &[
                "webhookguard",
                "disarm",
                "validatingwebhookconfiguration/cert-manager-webhook",
                "--mode",
                "ignore",
                "--webhook",
                "nope",
            ],
            &env,
        );
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        assert!(stderr.contains("has no webhook \"nope\"") && stderr.contains("webhook.cert-manager.io"), "{stderr}");
        let out = kubectl(&["webhookguard", "disarm", "pods/x", "--mode", "ignore"], &env);
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        let out = kubectl(&["webhookguard", "disarm", "x", "--mode", "sideways"], &env);
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        // A well-run cluster scans clean.
        let out = kubectl(&["webhookguard", "--sample", "0"], &env);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    }
}

/// A Fail webhook on pod creation whose backend Service does not exist, called only when
/// `condition` holds.
fn conditional_webhook(name: &str, condition: &str) -> Value {
    serde_json::json!({
        "name": name,
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 5,
        "clientConfig": {"service": {"namespace": "default", "name": "no-such-backend", "port": 443}},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "matchConditions": [{"name": "where", "expression": condition}],
    })
}

in_both_worlds! {
    fn match_conditions_are_judged_by_evaluation(world) {
        let c = start(world, Scenario::HealthyHa);
        let env = c.env();
        let config = serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "cel-conditions"},
            "webhooks": [
                conditional_webhook("skips-kube-system.example.com", "request.namespace != 'kube-system'"),
                // Mentions kube-system, and applies only there.
                conditional_webhook("only-kube-system.example.com", "request.namespace == 'kube-system'"),
            ],
        });
        let file = c.dir.join("cel-conditions.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let out = c.kubectl(&["create", "-f", file.to_str().unwrap(), "--validate=false"]);
        assert!(out.status.success(), "{}", describe(&out));

        let out = kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let r = json_of(&out);
        let only = "only-kube-system.example.com";
        assert!(has(&r, only, "LOCKOUT", "CRITICAL"), "{r}");
        assert!(has(&r, only, "BACKEND-DOWN", "CRITICAL"), "{r}");
        let lockout = r["findings"].as_array().unwrap().iter().find(|f| f["webhook"] == only && f["kind"] == "LOCKOUT").unwrap();
        assert!(lockout["evidence"][0]["value"].as_str().unwrap().contains("its matchConditions are all true"), "{lockout}");
        // The other one only blocks pods outside kube-system: its dead backend is a WARNING and
        // no lockout. (It does intercept its own namespace, default: SELF-DEADLOCK.)
        let skips = "skips-kube-system.example.com";
        let found = findings_of(&r, skips);
        assert!(found.contains(&("BACKEND-DOWN".to_string(), "WARNING".to_string())), "{found:?}");
        assert!(!found.iter().any(|(kind, _)| kind == "LOCKOUT"), "{found:?}");
        assert!(found.contains(&("SELF-DEADLOCK".to_string(), "CRITICAL".to_string())), "{found:?}");

        // The real API server agrees: a kube-system pod is rejected by the webhook that applies
        // there only, a pod in default by the other. (The simulator does not evaluate CEL.)
        if world == World::Real {
            for (namespace, rejected_by) in [("kube-system", only), ("default", skips)] {
                let pod = c.dir.join(format!("pod-{namespace}.json"));
                let manifest = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "cel-probe", "namespace": namespace},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}});
                std::fs::write(&pod, manifest.to_string()).unwrap();
                let out = dry_run_pod(&c, &pod);
                assert!(!out.status.success(), "{}", describe(&out));
                assert!(text(&out).1.contains(&format!("failed calling webhook \"{rejected_by}\"")), "{}", describe(&out));
            }
        }
    }
}

/// A stand-in for Kyverno's reconciler: while running, puts failurePolicy Fail back on the
/// configuration `name` whenever it is not, as field manager "kyverno".
struct TestController {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestController {
    fn start(env: Vec<(String, String)>, name: &str) -> TestController {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, name) = (stop.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            let run = |args: &[&str]| {
                let mut cmd = std::process::Command::new(testkit::kubectl_path("kubectl"));
                cmd.args(args).envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                cmd.output()
            };
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let policy = run(&[
                    "get",
                    "validatingwebhookconfiguration",
                    &name,
                    "-o",
                    "jsonpath={.webhooks[0].failurePolicy}",
                ]);
                if policy.is_ok_and(|o| o.status.success() && o.stdout != b"Fail") {
                    let patch = r#"[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Fail"}]"#;
                    let _ = run(&[
                        "patch",
                        "validatingwebhookconfiguration",
                        &name,
                        "--type=json",
                        "-p",
                        patch,
                        "--field-manager",
                        "kyverno",
                    ]);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        TestController { stop, thread: Some(thread) }
    }
}

impl Drop for TestController {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

in_both_worlds! {
    fn a_disarm_undone_by_a_controller_is_reported_as_rearmed(world) {
        let c = start(world, Scenario::HealthyHa);
        let env = c.env();
        let name = "kyverno-resource-validating-webhook-cfg";
        // Shaped as Kyverno labels its configurations; on a custom resource only, so the
        // cluster keeps working while it is armed.
        let config = serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, "labels": {"webhook.kyverno.io/managed-by": "kyverno"}},
            "webhooks": [{
                "name": "validate.kyverno.svc-fail", "failurePolicy": "Fail", "sideEffects": "None",
                "admissionReviewVersions": ["v1"], "timeoutSeconds": 5,
                "clientConfig": {"service": {"namespace": "kyverno", "name": "kyverno-svc", "port": 443}},
                "rules": [{"operations": ["CREATE"], "apiGroups": ["example.com"], "apiVersions": ["v1"], "resources": ["widgets"]}],
            }],
        });
        let file = c.dir.join("kyverno-config.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let out = c.kubectl(&["create", "-f", file.to_str().unwrap(), "--validate=false"]);
        assert!(out.status.success(), "{}", describe(&out));
        let backups = tempfile::tempdir().unwrap();
        let backup_dir = backups.path().to_str().unwrap();

        // The plan names who puts it back.
        let out = kubectl(&["webhookguard", "disarm", name, "--mode", "ignore", "--backup-dir", backup_dir], &env);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(
            stdout.contains("Kyverno will restore it within seconds (webhook.kyverno.io/managed-by=kyverno)"),
            "{stdout}"
        );

        // With the controller running, the disarm is undone while it is watched: CRITICAL.
        let controller = TestController::start(env.clone(), name);
        let out = kubectl(
            &["webhookguard", "disarm", name, "--mode", "ignore", "--yes", "--backup-dir", backup_dir, "--watch", "8s", "-o", "json"],
            &env,
        );
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let doc = json_of(&out);
        assert_eq!(doc["applied"], true, "{doc}");
        assert_eq!(doc["rearmed"]["what"][0], "validate.kyverno.svc-fail: failurePolicy is Fail again", "{doc}");
        assert_eq!(doc["rearmers"][0]["who"], "Kyverno", "{doc}");
        if world == World::Real {
            // The real API server records who wrote it last.
            assert_eq!(doc["rearmed"]["writer"], "kyverno", "{doc}");
        }
        drop(controller);

        // Without it, the disarm stays, and the watch says so.
        let out = kubectl(
            &["webhookguard", "disarm", name, "--mode", "ignore", "--yes", "--backup-dir", backup_dir, "--watch", "2s"],
            &env,
        );
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(stdout.contains("Watched it for 2s: it stayed disarmed."), "{stdout}");
        assert_eq!(config_json(&c, name)["webhooks"][0]["failurePolicy"], "Ignore");
    }
}

/// Runs `probe` until it returns Some, for up to 30 s (the real API server's policy and param
/// informers take a moment to see a change).
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

in_both_worlds! {
    fn an_admission_policy_whose_param_is_missing_blocks_kube_system_and_is_found(world) {
        let c = start(world, Scenario::HealthyHa);
        let env = c.env();
        let (policy, binding) = ("pod-name-limits.example.com", "pod-name-limits-binding");
        let manifests = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
             "metadata": {"name": policy},
             "spec": {
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
                "validations": [{"expression": "object.metadata.name.size() <= int(params.data.maxLength)"}]}},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
             "metadata": {"name": binding},
             "spec": {
                "policyName": policy, "validationActions": ["Deny"],
                "paramRef": {"name": "pod-name-limits", "parameterNotFoundAction": "Deny"},
                "matchResources": {"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["kube-system"]}]}}}},
        ]});
        let file = c.dir.join("policy.json");
        std::fs::write(&file, manifests.to_string()).unwrap();
        let out = c.kubectl(&["create", "-f", file.to_str().unwrap(), "--validate=false"]);
        assert!(out.status.success(), "{}", describe(&out));
        let pod_in = |namespace: &str| {
            let pod = c.dir.join(format!("vap-pod-{namespace}.json"));
            let manifest = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "vap-probe", "namespace": namespace},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}});
            std::fs::write(&pod, manifest.to_string()).unwrap();
            dry_run_pod(&c, &pod)
        };
        // The API server really rejects kube-system pods, before any validation runs.
        let rejected = eventually("the policy rejects kube-system pods", || {
            let out = pod_in("kube-system");
            (!out.status.success()).then_some(out)
        });
        assert!(
            text(&rejected).1.contains(&format!(
                "ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: failed to configure binding: no params found"
            )),
            "{}",
            describe(&rejected)
        );
        let out = pod_in("default");
        assert!(out.status.success(), "the binding is for kube-system only: {}", describe(&out));

        // webhookguard finds it, names the missing ConfigMap and the fix.
        let out = kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let r = json_of(&out);
        let finding = r["findings"].as_array().unwrap().iter().find(|f| f["webhook"] == binding).cloned();
        let finding = finding.unwrap_or_else(|| panic!("no finding for {binding}: {r}"));
        assert_eq!((finding["kind"].as_str(), finding["severity"].as_str()), (Some("POLICY-CONFIG"), Some("CRITICAL")), "{finding}");
        let summary = finding["summary"].as_str().unwrap();
        assert!(summary.contains("param ConfigMap kube-system/pod-name-limits missing (parameterNotFoundAction Deny)") && summary.contains("pods in kube-system"), "{summary}");
        assert_eq!(r["bindings"][0]["name"], binding, "{r}");
        let fix = finding["fix"]["command"].as_str().unwrap().to_string();
        assert!(fix.starts_with(&format!("kubectl patch validatingadmissionpolicy {policy} ")), "{fix}");

        // cphealth says it as the webhooks check, with the same fix.
        let out = kubectl(&["cphealth", "--only", "webhooks", "-o", "json"], &env);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let health = json_of(&out);
        let check = &health["checks"][0];
        assert_eq!(check["status"], "CRITICAL", "{check}");
        assert!(check["message"].as_str().unwrap().starts_with(&format!("{binding}: LIVE OUTAGE: param ConfigMap")), "{check}");
        assert!(check["remediation"].to_string().contains("kubectl patch validatingadmissionpolicy"), "{check}");

        // The fix, pasted, lets kube-system pods through; the policy then enforces nothing.
        let args = shell_words(&fix);
        let out = c.kubectl(&args.iter().skip(1).map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", describe(&out));
        eventually("the patched policy admits kube-system pods", || pod_in("kube-system").status.success().then_some(()));
        let r = json_of(&kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env));
        assert!(has(&r, binding, "POLICY-CONFIG", "WARNING"), "{r}");

        // With the param in place there is nothing to report.
        // (From JSON: kubectl's typed `create configmap` sends protobuf, which the simulator does
        // not decode.)
        let param = c.dir.join("param.json");
        std::fs::write(&param, serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "pod-name-limits", "namespace": "kube-system"}, "data": {"maxLength": "63"}}).to_string()).unwrap();
        let out = c.kubectl(&["create", "-f", param.to_str().unwrap(), "--validate=false"]);
        assert!(out.status.success(), "{}", describe(&out));
        let r = json_of(&kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env));
        assert!(findings_of(&r, binding).is_empty(), "{r}");
    }
}

/// Splits a pasteable command with single-quoted arguments, as a shell would.
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for ch in command.chars() {
        match ch {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(ch),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

in_both_worlds! {
    fn the_pause_step_is_taken_only_with_its_flag_and_yes(world) {
        let c = start(world, Scenario::HealthyHa);
        let env = c.env();
        let name = "kyverno-policy-validating-webhook-cfg";
        let deployment = "kyverno-admission-controller";
        let objects = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kyverno"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": deployment, "namespace": "kyverno"},
             "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "kyverno"}},
                      "template": {"metadata": {"labels": {"app": "kyverno"}},
                                   "spec": {"containers": [{"name": "kyverno", "image": "registry.k8s.io/pause:3.10"}]}}}},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
             "metadata": {"name": name, "labels": {"webhook.kyverno.io/managed-by": "kyverno"}},
             "webhooks": [{
                "name": "validate.kyverno.svc-fail", "failurePolicy": "Fail", "sideEffects": "None",
                "admissionReviewVersions": ["v1"], "timeoutSeconds": 5,
                "clientConfig": {"service": {"namespace": "kyverno", "name": "kyverno-svc", "port": 443}},
                "rules": [{"operations": ["CREATE"], "apiGroups": ["example.com"], "apiVersions": ["v1"], "resources": ["widgets"]}]}]},
        ]});
        let file = c.dir.join("kyverno.json");
        std::fs::write(&file, objects.to_string()).unwrap();
        let out = c.kubectl(&["create", "-f", file.to_str().unwrap(), "--validate=false"]);
        assert!(out.status.success(), "{}", describe(&out));
        let replicas = || {
            let out = c.kubectl(&["-n", "kyverno", "get", "deployment", deployment, "-o", "jsonpath={.spec.replicas}"]);
            text(&out).0
        };
        let backups = tempfile::tempdir().unwrap();
        let backup_dir = backups.path().to_str().unwrap();
        let disarm = |extra: &[&str]| {
            let mut args = vec!["webhookguard", "disarm", name, "--mode", "ignore", "--backup-dir", backup_dir, "--watch", "0s"];
            args.extend_from_slice(extra);
            kubectl(&args, &env)
        };

        // The flag without --yes: the plan says the step will be taken, and nothing is.
        let out = disarm(&["--pause-rearmers"]);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(stdout.contains(&format!("kubectl -n kyverno scale deployment {deployment} --replicas=0")), "{stdout}");
        assert!(stdout.contains("With --pause-rearmers and --yes, the pause steps above are taken first."), "{stdout}");
        assert!(stdout.contains("--pause-rearmers --yes"), "the command to apply keeps the flag: {stdout}");
        assert_eq!(replicas(), "2");

        // --yes without the flag: the configuration changes, the controller does not.
        let out = disarm(&["--yes", "-o", "json"]);
        assert_eq!(json_of(&out)["applied"], true, "{}", describe(&out));
        assert_eq!(replicas(), "2");
        let out = c.kubectl(&["patch", "validatingwebhookconfiguration", name, "--type=json",
            "-p", r#"[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Fail"}]"#]);
        assert!(out.status.success(), "{}", describe(&out));

        // Both: paused first, and its resume printed with the undo.
        let out = disarm(&["--yes", "--pause-rearmers", "-o", "json"]);
        let doc = json_of(&out);
        assert_eq!(doc["applied"], true, "{doc}");
        assert_eq!(doc["paused"][0]["replicas"], 2, "{doc}");
        let resume = format!("kubectl -n kyverno scale deployment {deployment} --replicas=2");
        assert_eq!(doc["resume"][0], resume.as_str(), "{doc}");
        assert_eq!(replicas(), "0");
        assert_eq!(config_json(&c, name)["webhooks"][0]["failurePolicy"], "Ignore");
        // The printed resume, pasted, scales it back.
        let words = shell_words(&resume);
        let out = c.kubectl(&words.iter().skip(1).map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", describe(&out));
        assert_eq!(replicas(), "2");
    }
}

in_both_worlds! {
    fn a_dead_backend_is_traced_to_its_workload_and_diagnosed_before_the_lever(world) {
        let c = start(world, Scenario::HealthyHa);
        let env = c.env();
        let (ns, webhook) = ("guard-chain", "chain.example.com");
        let objects = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "guard-webhook", "namespace": ns},
             "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "guard-chain"}},
                      "template": {"metadata": {"labels": {"app": "guard-chain"}},
                                   "spec": {"containers": [{"name": "webhook", "image": "registry.k8s.io/pause:3.10"}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "guard-svc", "namespace": ns},
             "spec": {"selector": {"app": "guard-chain"}, "ports": [{"port": 443, "targetPort": 8443}]}},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
             "metadata": {"name": "guard-chain"},
             "webhooks": [{
                "name": webhook, "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
                "clientConfig": {"service": {"namespace": ns, "name": "guard-svc", "port": 443}},
                "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [ns]}]},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]}]},
        ]});
        let file = c.dir.join("chain.json");
        std::fs::write(&file, objects.to_string()).unwrap();
        let out = c.kubectl(&["create", "-f", file.to_str().unwrap(), "--validate=false"]);
        assert!(out.status.success(), "{}", describe(&out));

        // Scaled to 0: the dead backend is traced to its Deployment, and the fix says to look
        // there before it says to disarm.
        let r = json_of(&kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env));
        let down = r["findings"].as_array().unwrap().iter().find(|f| f["webhook"] == webhook && f["kind"] == "BACKEND-DOWN").cloned();
        let down = down.unwrap_or_else(|| panic!("no BACKEND-DOWN for {webhook}: {r}"));
        assert_eq!(down["severity"], "WARNING", "configmaps in its own namespace only: {down}");
        let backend = down["evidence"].as_array().unwrap().iter().find(|e| e["name"] == "backend").unwrap()["value"].clone();
        assert_eq!(backend, "deployment guard-chain/guard-webhook: 0 of 0 replicas ready (scaled to 0), no PodDisruptionBudget", "{down}");
        let fix = down["fix"]["description"].as_str().unwrap();
        assert!(fix.starts_with("Diagnose first: `kubectl -n guard-chain describe deployment guard-webhook`"), "{fix}");
        assert!(down["fix"]["command"].as_str().unwrap().starts_with("kubectl webhookguard disarm"), "{down}");
        // -v shows the chain in the text too.
        let out = kubectl(&["webhookguard", "-v", "--color", "never", "--sample", "300ms"], &env);
        assert!(text(&out).0.contains("backend: deployment guard-chain/guard-webhook: 0 of 0 replicas ready"), "{}", describe(&out));

        // On the real control plane a replica comes up (kwok runs it): the backend is alive
        // and fragile, and the chain names its pod and node. (The simulator runs no controllers.)
        if world == World::Real {
            let out = c.kubectl(&["-n", ns, "scale", "deployment", "guard-webhook", "--replicas=1"]);
            assert!(out.status.success(), "{}", describe(&out));
            let fragile = eventually("the backend has a ready replica", || {
                let r = json_of(&kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env));
                r["findings"].as_array().unwrap().iter().find(|f| f["webhook"] == webhook && f["kind"] == "FRAGILE-BACKEND").cloned()
            });
            let backend = fragile["evidence"][0]["value"].as_str().unwrap().to_string();
            assert!(backend.starts_with("deployment guard-chain/guard-webhook: 1 of 1 replica ready, no PodDisruptionBudget; pod guard-webhook-"), "{backend}");
            assert!(backend.contains(" ready on node "), "{backend}");
        }
    }
}

in_both_worlds! {
    fn a_mutating_policy_whose_param_is_missing_is_found_and_fixed_as_itself(world) {
        let c = start(world, Scenario::HealthyHa);
        let env = c.env();
        let (policy, binding) = ("pod-owner-label.example.com", "pod-owner-label-binding");
        let manifests = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
             "metadata": {"name": policy},
             "spec": {
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["pods"]}]},
                "reinvocationPolicy": "Never",
                "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
                    "Object{metadata: Object.metadata{labels: {'owner': params.data.owner}}}"}}]}},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
             "metadata": {"name": binding},
             "spec": {
                "policyName": policy,
                "paramRef": {"name": "pod-owner", "parameterNotFoundAction": "Deny"},
                "matchResources": {"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["kube-system"]}]}}}},
        ]});
        let file = c.dir.join("mutating-policy.json");
        std::fs::write(&file, manifests.to_string()).unwrap();
        let out = c.kubectl(&["create", "-f", file.to_str().unwrap(), "--validate=false"]);
        assert!(out.status.success(), "{}", describe(&out));
        let pod = c.dir.join("map-pod.json");
        std::fs::write(&pod, serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "map-probe", "namespace": "kube-system"},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}).to_string()).unwrap();
        let rejected = eventually("the mutating policy rejects kube-system pods", || {
            let out = dry_run_pod(&c, &pod);
            (!out.status.success()).then_some(out)
        });
        assert!(
            text(&rejected).1.contains(&format!(
                "(Forbidden): error when creating \"{}\": policy '{policy}' with binding '{binding}' denied request: failed to configure binding: no params found",
                pod.display()
            )),
            "{}",
            describe(&rejected)
        );

        let out = kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let r = json_of(&out);
        assert!(has(&r, binding, "POLICY-CONFIG", "CRITICAL"), "{r}");
        let finding = r["findings"].as_array().unwrap().iter().find(|f| f["webhook"] == binding).unwrap().clone();
        assert_eq!(finding["configKind"], "MutatingPolicy", "{finding}");
        let fix = finding["fix"]["command"].as_str().unwrap().to_string();
        assert!(fix.starts_with(&format!("kubectl patch mutatingadmissionpolicy {policy} ")), "{fix}");
        // The pasted fix lets the pods through.
        let args = shell_words(&fix);
        let out = c.kubectl(&args.iter().skip(1).map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", describe(&out));
        eventually("the patched policy admits kube-system pods", || dry_run_pod(&c, &pod).status.success().then_some(()));
    }
}

in_both_worlds! {
    fn a_backend_certificate_that_does_not_chain_to_the_ca_bundle_is_found_through_a_port_forward(world) {
        let c = start(world, Scenario::HealthyHa);
        let env = c.env();
        let tls_rows = |r: &Value| -> Vec<Value> { r["backendTls"].as_array().cloned().unwrap_or_default() };
        // cert-manager's backend, reached through a port-forward into one of its pods, serves a
        // certificate for cert-manager-webhook.cert-manager.svc that its caBundle verifies.
        let out = kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let r = json_of(&out);
        let rows = tls_rows(&r);
        assert_eq!(rows.len(), 2, "both configurations' backends: {r}");
        for row in &rows {
            assert_eq!(row["verified"], true, "{row}");
            assert_eq!(row["serverName"], "cert-manager-webhook.cert-manager.svc", "{row}");
            assert_eq!(row["leaf"]["issuer"], "CN=cert-manager-webhook-ca", "{row}");
            assert!(row["pod"].as_str().unwrap().starts_with("cert-manager-webhook-"), "{row}");
        }

        // The cainjector race: caBundle holds another CA (here the cluster's) than the one that
        // signed the serving certificate. The API server would reject every call.
        let other_ca = text(&c.kubectl(&["config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}"])).0;
        assert!(!other_ca.trim().is_empty());
        let patch = format!(r#"[{{"op":"replace","path":"/webhooks/0/clientConfig/caBundle","value":"{}"}}]"#, other_ca.trim());
        let out = c.kubectl(&["patch", "validatingwebhookconfiguration", "cert-manager-webhook", "--type=json", "-p", &patch]);
        assert!(out.status.success(), "{}", describe(&out));
        let out = kubectl(&["webhookguard", "-o", "json", "--sample", "300ms"], &env);
        assert_eq!(out.status.code(), Some(1), "cert-manager's own objects only: a WARNING. {}", describe(&out));
        let r = json_of(&out);
        let finding = r["findings"].as_array().unwrap().iter()
            .find(|f| f["kind"] == "BACKEND-TLS" && f["configKind"] == "Validating")
            .unwrap_or_else(|| panic!("a BACKEND-TLS finding: {r}")).clone();
        assert_eq!(finding["severity"], "WARNING", "{finding}");
        assert!(finding["summary"].as_str().unwrap().contains("x509: certificate signed by unknown authority"), "{finding}");
        let tls = finding["evidence"].as_array().unwrap().iter().find(|e| e["name"] == "TLS").unwrap();
        assert!(tls["value"].as_str().unwrap().contains("(issuer CN=cert-manager-webhook-ca, SANs cert-manager-webhook.cert-manager.svc"), "{tls}");
        assert!(finding["fix"]["description"].as_str().unwrap().contains("Put the CA that signed it into caBundle"), "{finding}");
        // The mutating configuration kept its caBundle: still verified.
        let rows = tls_rows(&r);
        let verified: Vec<(&str, bool)> = rows.iter().map(|r| (r["configuration"].as_str().unwrap(), r["verified"].as_bool().unwrap())).collect();
        assert!(verified.contains(&("mutatingwebhookconfiguration/cert-manager-webhook", true)), "{verified:?}");
        assert!(verified.contains(&("validatingwebhookconfiguration/cert-manager-webhook", false)), "{verified:?}");

        // A user without pods/portforward: the check is skipped and the scan says why.
        let (viewer_context, _) = cpkit_e2e::viewer(&c);
        let out = kubectl(&["webhookguard", "--context", &viewer_context, "-o", "json", "--sample", "300ms"], &env);
        let r = json_of(&out);
        assert!(tls_rows(&r).is_empty(), "{r}");
        let notes: Vec<&str> = r["notes"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
        let note = notes.iter().find(|n| n.starts_with("TLS of backend cert-manager/cert-manager-webhook not checked"))
            .unwrap_or_else(|| panic!("{notes:?}"));
        assert!(note.contains("portforward"), "{note}");
    }
}
