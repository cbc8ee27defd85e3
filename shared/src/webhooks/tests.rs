//! Table tests of the lockout analysis, and the verdicts on the real manifests of
//! tests/fixtures/webhooks/ (each file's verdict defended in a comment).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::analysis::*;
use super::model::*;
use crate::exit::Status;

fn config(webhook: Value) -> WebhookConfig {
    let doc = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "cfg"}, "webhooks": [webhook]});
    WebhookConfig::from_value(&doc, "test").unwrap().unwrap()
}

fn webhook(rules: Value, extra: Value) -> Value {
    let mut w = json!({
        "name": "w.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"namespace": "guard", "name": "guard-svc"}, "caBundle": ""},
        "rules": rules
    });
    if let (Some(w), Some(e)) = (w.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            w.insert(k.clone(), v.clone());
        }
    }
    w
}

fn rule(groups: &[&str], resources: &[&str]) -> Value {
    json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": groups, "apiVersions": ["*"], "resources": resources, "scope": "*"}])
}

/// A backend pod in CrashLoopBackOff after `restarts` restarts on `node`.
fn crash_looping(name: &str, restarts: i64, node: &str) -> BackendPod {
    BackendPod {
        name: name.into(),
        ready: false,
        restarts,
        node: Some(node.into()),
        problem: Some("CrashLoopBackOff".into()),
        named_ports: BTreeMap::new(),
    }
}

/// The backend Services a live scan read: guard/guard-svc, the one `webhook` calls.
fn with_backend(service: ServiceFacts) -> Option<BTreeMap<(String, String), ServiceFacts>> {
    Some(BTreeMap::from([(("guard".to_string(), "guard-svc".to_string()), service)]))
}

fn lockout(c: &WebhookConfig, facts: &ClusterFacts) -> Option<Status> {
    analyse(std::slice::from_ref(c), facts).into_iter().find(|f| f.kind == FindingKind::Lockout).map(|f| f.severity)
}

fn live_namespaces() -> ClusterFacts {
    let mut ns = BTreeMap::new();
    for (name, labels) in [
        ("kube-system", vec![]),
        ("kube-node-lease", vec![]),
        ("guard", vec![]),
        ("team-a", vec![("policy", "enforced")]),
    ] {
        let mut l: BTreeMap<String, String> = labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        l.insert("kubernetes.io/metadata.name".into(), name.into());
        ns.insert(name.to_string(), l);
    }
    ClusterFacts { namespaces: Some(ns), ..Default::default() }
}

#[test]
fn lockout_table() {
    let offline = ClusterFacts::offline();
    let live = live_namespaces();
    let (off, live) = (&offline, &live);
    let (crit, warn) = (Some(Status::Critical), Some(Status::Warning));
    let name_not_in = |names: &[&str]| json!({"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": names}]}});
    let no_system = name_not_in(&["kube-system", "kube-node-lease"]);
    let opt_in = json!({"namespaceSelector": {"matchLabels": {"policy": "enforced"}}});
    let opt_out =
        json!({"namespaceSelector": {"matchExpressions": [{"key": "policy", "operator": "NotIn", "values": ["off"]}]}});
    let condition = |expression: &str| json!({"matchConditions": [{"name": "c", "expression": expression}]});
    let objects = |selector: Value| json!({"objectSelector": selector});
    // A webhook on `resources` of `groups`, for CREATE and UPDATE, with `extra` fields.
    let w = |groups: &[&str], resources: &[&str], extra: Value| webhook(rule(groups, resources), extra);
    let all_rules = |operations: &str, groups: &str, resources: &str, scope: &str| json!([{"operations": [operations], "apiGroups": [groups], "apiVersions": ["*"], "resources": [resources], "scope": scope}]);
    let (rbac, coordination, certificates) =
        ("rbac.authorization.k8s.io", "coordination.k8s.io", "certificates.k8s.io");
    let none = || json!({});
    // (case, webhook, facts, expected LOCKOUT severity)
    let cases: Vec<(&str, Value, &ClusterFacts, Option<Status>)> = vec![
        ("every resource, Fail by v1 default", webhook(all_rules("*", "*", "*/*", "*"), none()), off, crit),
        ("wildcard resources", w(&["*"], &["*"], json!({"failurePolicy": "Fail"})), off, crit),
        ("Ignore never locks", w(&["*"], &["*"], json!({"failurePolicy": "Ignore"})), off, None),
        ("pods in core group", w(&[""], &["pods"], none()), off, crit),
        ("pods excluded by name label", w(&[""], &["pods"], no_system.clone()), off, None),
        ("pods, opt-in selector offline is unknown", w(&[""], &["pods"], opt_in.clone()), off, warn),
        ("pods, opt-in selector live excludes kube-system", w(&[""], &["pods"], opt_in), live, None),
        ("pods, opt-out selector live keeps kube-system", w(&[""], &["pods"], opt_out), live, crit),
        ("objectSelector opt-in", w(&[""], &["pods"], objects(json!({"matchLabels": {"inject": "true"}}))), off, None),
        (
            "objectSelector opt-out",
            w(&[""], &["pods"], objects(json!({"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}))),
            off,
            crit,
        ),
        (
            "matchConditions excluding kube-system",
            w(&[""], &["pods"], condition("request.namespace != 'kube-system'")),
            off,
            None,
        ),
        ("matchConditions unknown", w(&[""], &["pods"], condition("object.metadata.labels['team'] == 'a'")), off, warn),
        ("leases", w(&[coordination], &["leases"], no_system.clone()), off, None),
        ("leases without selector", w(&[coordination], &["leases"], none()), off, crit),
        ("nodes ignore namespaceSelector (cluster-scoped)", w(&[""], &["nodes"], no_system.clone()), off, crit),
        ("nodes/status via subresource wildcard", w(&[""], &["nodes/*"], none()), off, crit),
        ("subresource rule does not match main resource", w(&[""], &["pods/status"], none()), off, None),
        ("pods/* also matches pods (rules.go: sub * matches no subresource)", w(&[""], &["pods/*"], none()), off, crit),
        ("RBAC", w(&[rbac], &["clusterroles"], none()), off, crit),
        ("CSRs", w(&[certificates], &["certificatesigningrequests"], none()), off, crit),
        ("TokenReviews", w(&["authentication.k8s.io"], &["tokenreviews"], none()), off, crit),
        ("SubjectAccessReviews", w(&["authorization.k8s.io"], &["subjectaccessreviews"], none()), off, crit),
        ("clusterrolebindings", w(&[rbac], &["clusterrolebindings"], no_system.clone()), off, crit),
        ("rolebindings in kube-system", w(&[rbac], &["rolebindings"], none()), off, crit),
        ("roles, kube-system excluded", w(&[rbac], &["roles"], no_system), off, None),
        (
            "leases in kube-node-lease only, kube-system excluded",
            w(&[coordination], &["leases"], name_not_in(&["kube-system"])),
            off,
            crit,
        ),
        ("CSR approval subresource", w(&[certificates], &["certificatesigningrequests/approval"], none()), off, None),
        ("wildcard group with named resource", w(&["*"], &["leases"], none()), off, crit),
        (
            "namespaces alone are not a lockout (a NAMESPACE CHANGES warning)",
            w(&[""], &["namespaces"], none()),
            off,
            None,
        ),
        ("wrong group", w(&["apps"], &["pods"], none()), off, None),
        ("scope Cluster skips namespaced pods", webhook(all_rules("*", "*", "pods", "Cluster"), none()), off, None),
        ("DELETE only", webhook(all_rules("DELETE", "", "pods", "*"), none()), off, None),
        ("custom resources only", w(&["example.com"], &["*"], none()), off, None),
    ];
    for (name, w, facts, want) in cases {
        let c = config(w);
        assert_eq!(lockout(&c, facts), want, "{name}");
    }
    // A Fail webhook on namespaces is a WARNING of its own kind.
    let c = config(webhook(rule(&[""], &["namespaces"]), json!({})));
    let f = analyse(&[c], &offline);
    assert!(f.iter().any(|f| f.kind == FindingKind::NamespaceChanges && f.severity == Status::Warning), "{f:?}");
}

#[test]
fn v1beta1_defaults_to_ignore() {
    let doc = json!({"apiVersion": "admissionregistration.k8s.io/v1beta1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "old"},
        "webhooks": [{"name": "x", "clientConfig": {"service": {"namespace": "a", "name": "b"}}, "rules": rule(&["*"], &["*"])}]});
    let c = WebhookConfig::from_value(&doc, "t").unwrap().unwrap();
    assert_eq!(c.webhooks[0].failure_policy, FailurePolicy::Ignore);
    assert_eq!(c.webhooks[0].timeout_seconds, 30);
    assert_eq!(c.webhooks[0].admission_review_versions, ["v1beta1"]);
    assert_eq!(lockout(&c, &ClusterFacts::offline()), None);
    let v1 = WebhookConfig::from_value(&json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "new"},
        "webhooks": [{"name": "x", "clientConfig": {"service": {"namespace": "a", "name": "b"}}, "rules": rule(&["*"], &["*"])}]}), "t").unwrap().unwrap();
    assert_eq!(v1.webhooks[0].failure_policy, FailurePolicy::Fail);
    assert_eq!(v1.webhooks[0].timeout_seconds, 10);
}

#[test]
fn self_deadlock_backend_down_and_fixes() {
    let c = config(webhook(
        json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}]),
        json!({}),
    ));
    let mut facts = live_namespaces();
    facts.services = with_backend(ServiceFacts {
        exists: true,
        ready_endpoints: 0,
        not_ready_endpoints: 1,
        selector: BTreeMap::from([("app".to_string(), "guard".to_string())]),
        workload: Some(crate::webhooks::analysis::Workload {
            kind: "deployment".into(),
            name: "guard-webhook".into(),
            replicas: 1,
            ready_replicas: 0,
        }),
        pods: vec![crash_looping("guard-webhook-7d9f-x2", 14, "w-1")],
        ..Default::default()
    });
    let findings = analyse(std::slice::from_ref(&c), &facts);
    assert_eq!(findings[0].kind, FindingKind::BackendDown, "a live outage comes first");
    // The chain, and the diagnosis before the lever.
    let chain = "deployment guard/guard-webhook: 0 of 1 replica ready, no PodDisruptionBudget; pod guard-webhook-7d9f-x2 not ready (CrashLoopBackOff, 14 restarts) on node w-1";
    assert_eq!(findings[0].evidence.iter().find(|e| e.name == "backend").map(|e| e.value.as_str()), Some(chain));
    let fix = findings[0].fix.as_ref().unwrap();
    assert!(
        fix.description.starts_with(&format!("Diagnose first: `kubectl -n guard describe deployment guard-webhook` ({chain}). Then bring the backend back and, as the emergency step meanwhile, defuse the webhook")),
        "{}",
        fix.description
    );
    assert!(
        findings[0].summary.starts_with("LIVE OUTAGE: service guard/guard-svc has no ready endpoints"),
        "{}",
        findings[0].summary
    );
    assert!(findings[0].fix.as_ref().unwrap().command.contains(
        "kubectl webhookguard disarm validatingwebhookconfiguration/cfg --webhook w.example.com --mode ignore --yes"
    ));
    let deadlock = findings.iter().find(|f| f.kind == FindingKind::SelfDeadlock).expect("self-deadlock");
    assert_eq!(deadlock.severity, Status::Critical);
    let lock = findings.iter().find(|f| f.kind == FindingKind::Lockout).unwrap();
    assert!(lock.summary.contains("pods in kube-system") && lock.summary.contains("nodes"), "{}", lock.summary);
    assert_eq!(
        lock.fix.as_ref().unwrap().patch,
        json!([{"op": "add", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}])
    );
    assert!(findings.iter().any(|f| f.kind == FindingKind::AllOperations));
    assert!(
        findings.iter().any(|f| f.kind == FindingKind::CaBundle && f.severity == Status::Warning),
        "empty caBundle on a live cluster"
    );
    assert_eq!(worst(&findings), Status::Critical);
    // The namespace fix appends to an existing selector.
    let pods_only = config(webhook(
        rule(&[""], &["pods"]),
        json!({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}}),
    ));
    let f =
        analyse(&[pods_only], &ClusterFacts::offline()).into_iter().find(|f| f.kind == FindingKind::Lockout).unwrap();
    assert_eq!(f.fix.unwrap().patch[0]["path"], "/webhooks/0/namespaceSelector/matchExpressions/-");
}

#[test]
fn fragile_and_healthy_backends() {
    let w = webhook(rule(&["example.com"], &["*"]), json!({"failurePolicy": "Fail", "timeoutSeconds": 5}));
    let c = config(w);
    let mut facts = live_namespaces();
    facts.services = with_backend(ServiceFacts {
        exists: true,
        ready_endpoints: 1,
        nodes: ["n1".to_string()].into(),
        ..Default::default()
    });
    let f = analyse(std::slice::from_ref(&c), &facts);
    let fragile = f.iter().find(|f| f.kind == FindingKind::FragileBackend).unwrap();
    assert!(
        fragile.summary.contains("1 ready replica") && fragile.summary.contains("no PodDisruptionBudget"),
        "{}",
        fragile.summary
    );
    facts.services = with_backend(ServiceFacts {
        exists: true,
        ready_endpoints: 2,
        nodes: ["n1".to_string(), "n2".to_string()].into(),
        has_pdb: true,
        ..Default::default()
    });
    let f = analyse(&[c], &facts);
    assert!(!f.iter().any(|f| f.kind == FindingKind::FragileBackend));
    facts.services = Some(BTreeMap::new());
    let unknown = analyse(&[config(webhook(rule(&[""], &["pods"]), json!({})))], &facts);
    assert!(!unknown.iter().any(|f| f.kind == FindingKind::BackendDown), "an unread backend is unknown, not down");
}

#[test]
fn allowlist_accepts_named_risks() {
    let c = config(webhook(rule(&[""], &["pods"]), json!({})));
    let mut f = analyse(&[c], &ClusterFacts::offline());
    apply_allowlist(
        &mut f,
        &[Accepted {
            config: "cfg".into(),
            webhook: None,
            finding: "LOCKOUT".into(),
            reason: "policy engine; reviewed 2026-10".into(),
        }],
    );
    let lock = f.iter().find(|f| f.kind == FindingKind::Lockout).unwrap();
    assert_eq!(lock.accepted.as_deref(), Some("policy engine; reviewed 2026-10"));
    assert_eq!(worst(&f), Status::Critical, "the self-deadlock is not accepted");
    apply_allowlist(
        &mut f,
        &[Accepted {
            config: "cfg".into(),
            webhook: Some("w.example.com".into()),
            finding: "*".into(),
            reason: "all reviewed".into(),
        }],
    );
    assert!(f.iter().all(|f| f.accepted.is_some()));
    assert_eq!(worst(&f), Status::Ok);
}

fn scan_fixture(file: &str) -> (Vec<WebhookConfig>, Vec<Finding>) {
    let text = crate::test_files::text(&format!("tests/fixtures/webhooks/{file}"));
    let docs = crate::yaml::documents(file, &text).unwrap();
    let configs = configs_from_documents(&docs, file).unwrap();
    let findings = analyse(&configs, &ClusterFacts::offline());
    (configs, findings)
}

fn kinds(findings: &[Finding], webhook: &str) -> Vec<(FindingKind, Status)> {
    findings.iter().filter(|f| f.webhook == webhook).map(|f| (f.kind, f.severity)).collect()
}

#[test]
fn aws_load_balancer_controller_locks_pods() {
    // tests/fixtures/webhooks/aws-load-balancer-controller.yaml — controller-gen output:
    // mpod.elbv2.k8s.aws fails closed on every pod CREATE with no selector at all, so a dead
    // controller blocks kube-system pods (and its own namespace's). Every webhook lists only
    // admissionReviewVersions v1beta1. CRITICAL.
    let (configs, f) = scan_fixture("aws-load-balancer-controller.yaml");
    assert_eq!(configs.len(), 2);
    assert_eq!(worst(&f), Status::Critical);
    let pod = kinds(&f, "mpod.elbv2.k8s.aws");
    assert!(pod.contains(&(FindingKind::Lockout, Status::Critical)));
    assert!(pod.contains(&(FindingKind::SelfDeadlock, Status::Critical)), "pods in its namespace `system`");
    assert!(pod.contains(&(FindingKind::Timeout, Status::Warning)), "default 10s on pods");
    assert!(pod.contains(&(FindingKind::ReviewVersions, Status::Warning)));
    assert!(
        !kinds(&f, "vingress.elbv2.k8s.aws").iter().any(|(k, _)| *k == FindingKind::Lockout),
        "ingresses do not heal the cluster"
    );
}

#[test]
fn linkerd_injector_as_it_sat_in_a_cluster() {
    // tests/fixtures/webhooks/linkerd.yaml — `kubectl get -o yaml` of Linkerd's proxy injector
    // (enterprise-2.18, June 2025): Ignore, kube-system and cert-manager excluded by name, its
    // own control-plane pods by objectSelector: it cannot lock anything. But the captured
    // caBundle (issued 2025-06-04 for a year) expired on 2026-06-04: every call now fails TLS
    // and, failing open, pods start without their proxies. WARNING, not an outage.
    let (_, f) = scan_fixture("linkerd.yaml");
    assert_eq!(kinds(&f, "linkerd-proxy-injector.linkerd.io"), vec![(FindingKind::CaBundle, Status::Warning)]);
    assert!(f[0].summary.contains("expired on 2026-06-04"), "{}", f[0].summary);
    assert!(f[0].explanation.contains("silently does not happen"), "{}", f[0].explanation);
}

#[test]
fn azure_workload_identity_is_fine() {
    // tests/fixtures/webhooks/azure-workload-identity.yaml — mutates pods but fails open
    // (Ignore), v1 review versions, sideEffects None: no risk to the cluster. OK.
    let (_, f) = scan_fixture("azure-workload-identity.yaml");
    assert_eq!(worst(&f), Status::Ok);
    assert!(!f.iter().any(|f| f.kind == FindingKind::Lockout));
}

#[test]
fn cert_manager_copy_is_old_but_narrow() {
    // tests/fixtures/webhooks/cert-manager.yaml — a third party's copy of the v0.14-era VWC:
    // Fail, but only on cert-manager.io resources, so no lockout. v1beta1 defaults
    // admissionReviewVersions to [v1beta1] (WARNING); caBundle is injected by cainjector. WARNING.
    let (configs, f) = scan_fixture("cert-manager.yaml");
    assert_eq!(configs[0].webhooks[0].failure_policy, FailurePolicy::Fail);
    assert_eq!(worst(&f), Status::Warning);
    assert!(!f.iter().any(|f| f.kind == FindingKind::Lockout));
    assert!(f.iter().any(|f| f.kind == FindingKind::ReviewVersions));
}

#[test]
fn ingress_nginx_is_narrow() {
    // tests/fixtures/webhooks/ingress-nginx.yaml — Fail on ingresses only, v1, sideEffects None.
    // A dead controller blocks ingress changes, not the cluster (ingress-nginx#6655 is a stale
    // Service, which only a live scan sees). OK offline.
    let (_, f) = scan_fixture("ingress-nginx.yaml");
    assert_eq!(worst(&f), Status::Ok, "{f:#?}");
}

#[test]
fn istio_injector_depends_on_namespace_labels() {
    // tests/fixtures/webhooks/istio.yaml — v1beta1 MWC, explicitly Fail, on pod CREATE in
    // namespaces labelled istio-injection=enabled. Offline nobody knows whether kube-system or
    // istio-system carry that label: possible lockout (WARNING), not a guess either way.
    let (_, f) = scan_fixture("istio.yaml");
    let injector = kinds(&f, "sidecar-injector.istio.io");
    assert!(injector.contains(&(FindingKind::Lockout, Status::Warning)), "{injector:?}");
    assert!(injector.contains(&(FindingKind::SelfDeadlock, Status::Warning)));
    assert_eq!(worst(&f), Status::Warning);
    // Live, with kube-system unlabelled, the lockout disappears.
    let docs = crate::yaml::documents("istio", &crate::test_files::text("tests/fixtures/webhooks/istio.yaml")).unwrap();
    let configs = configs_from_documents(&docs, "istio").unwrap();
    let live = analyse(&configs, &live_namespaces());
    assert!(!live.iter().any(|f| f.kind == FindingKind::Lockout));
}

#[test]
fn knative_and_vault() {
    // tests/fixtures/webhooks/knative-serving.yaml — the defaulting webhook is Fail on Knative's
    // own resources only; the configmap-validation webhook has no rules in the manifest
    // (Knative's webhook controller fills them at run time). OK.
    let (_, f) = scan_fixture("knative-serving.yaml");
    assert_eq!(worst(&f), Status::Ok);
    assert!(f.iter().any(|f| f.kind == FindingKind::NoRules));
    // tests/fixtures/webhooks/vault-k8s.yaml — pod CREATE with an opt-out objectSelector, but
    // Ignore: a dead injector only skips injection. The empty caBundle is patched in by the
    // injector at run time (a note offline). OK.
    let (_, f) = scan_fixture("vault-k8s.yaml");
    assert_eq!(worst(&f), Status::Ok);
    assert!(f.iter().any(|f| f.kind == FindingKind::CaBundle && f.severity == Status::Ok));
}

#[test]
fn a_dead_backend_is_weighed_by_what_it_blocks() {
    // Fixture-free: an add-on webhook (MetalLB-like) whose rules cover only its own group.
    let add_on = config(webhook(
        json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"], "resources": ["ipaddresspools", "bgppeers"]}]),
        json!({"failurePolicy": "Fail"}),
    ));
    let kube_system_pods = config(webhook(rule(&[""], &["pods"]), json!({"failurePolicy": "Fail"})));
    let mut facts = live_namespaces();
    facts.services =
        with_backend(ServiceFacts { exists: true, ready_endpoints: 0, not_ready_endpoints: 2, ..Default::default() });
    let cases = [
        (
            &add_on,
            Status::Warning,
            "service guard/guard-svc has no ready endpoints (2 not ready): resources of metallb.io cannot be created or changed (failurePolicy Fail)",
        ),
        (
            &kube_system_pods,
            Status::Critical,
            "LIVE OUTAGE: service guard/guard-svc has no ready endpoints (2 not ready), and failurePolicy Fail blocks pods in kube-system",
        ),
    ];
    for (c, severity, summary) in cases {
        let findings = analyse(std::slice::from_ref(c), &facts);
        let down = findings.iter().find(|f| f.kind == FindingKind::BackendDown).expect("backend down");
        assert_eq!(down.severity, severity, "{}", down.summary);
        assert_eq!(down.summary, summary);
    }
    let w = &kube_system_pods.webhooks[0];
    assert_eq!(blast_radius(&w.rules), "pods cannot be created or changed");
}

#[test]
fn restoring_is_blocked_only_by_a_dead_backend_that_reaches_critical_requests() {
    let everything = json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}]);
    let addon_only = rule(&["metallb.io"], &["ipaddresspools"]);
    let backend = |ready: usize| {
        let mut facts = live_namespaces();
        facts.services = with_backend(ServiceFacts {
            exists: true,
            ready_endpoints: ready,
            not_ready_endpoints: 1 - ready.min(1),
            ..Default::default()
        });
        facts
    };
    let cases = [
        ("every request, backend down", everything.clone(), json!({"failurePolicy": "Fail"}), 0, 1),
        ("every request, backend up", everything.clone(), json!({"failurePolicy": "Fail"}), 1, 0),
        ("every request, fails open", everything, json!({"failurePolicy": "Ignore"}), 0, 0),
        ("an add-on's own resources, backend down", addon_only, json!({"failurePolicy": "Fail"}), 0, 0),
    ];
    for (case, rules, extra, ready, blockers) in cases {
        let findings = analyse(&[config(webhook(rules, extra))], &backend(ready));
        let found = super::defuse::restore_blockers(&findings);
        assert_eq!(found.len(), blockers, "{case}: {findings:?}");
        if let Some(f) = found.first() {
            assert!(f.summary.starts_with("LIVE OUTAGE: service guard/guard-svc has no ready endpoints"), "{case}");
        }
    }
}

/// The evidence of the LOCKOUT finding, by target label.
fn lockout_evidence(c: &WebhookConfig) -> Vec<(String, String)> {
    analyse(std::slice::from_ref(c), &ClusterFacts::offline())
        .into_iter()
        .filter(|f| f.kind == FindingKind::Lockout)
        .flat_map(|f| f.evidence.into_iter().map(|e| (e.name, e.value)))
        .collect()
}

fn conditions(expressions: &[&str]) -> Value {
    let list: Vec<Value> =
        expressions.iter().enumerate().map(|(i, e)| json!({"name": format!("c{i}"), "expression": e})).collect();
    json!({"matchConditions": list})
}

#[test]
fn match_conditions_are_evaluated_target_by_target() {
    let offline = ClusterFacts::offline();
    let pods = || rule(&[""], &["pods"]);
    let all =
        || json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]);
    // (case, rules, conditions, LOCKOUT severity, targets in its evidence)
    type Case<'a> = (&'a str, Value, Value, Option<Status>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            // Mentions kube-system and applies ONLY there: the worst case, not a safe one.
            "== kube-system includes it",
            pods(),
            conditions(&["request.namespace == 'kube-system'"]),
            Some(Status::Critical),
            vec!["pods in kube-system"],
        ),
        ("!= kube-system excludes it", pods(), conditions(&["request.namespace != 'kube-system'"]), None, vec![]),
        (
            "not in a list of system namespaces",
            all(),
            conditions(&["!(request.namespace in ['kube-system', 'kube-node-lease'])"]),
            // Cluster-scoped requests have no namespace: reading it errors, so they are unknown
            // (possible), and the namespaced ones are excluded.
            Some(Status::Warning),
            vec![],
        ),
        (
            "system users skipped: only an administrator's RBAC repair is reached",
            all(),
            conditions(&["!request.userInfo.username.startsWith('system:')"]),
            Some(Status::Critical),
            vec![
                "RBAC (clusterroles)",
                "RBAC (clusterrolebindings)",
                "RBAC (roles in kube-system)",
                "RBAC (rolebindings in kube-system)",
            ],
        ),
        (
            "nodes group skipped: the kubelet's mirror pod is, CoreDNS's pod is not",
            pods(),
            conditions(&["!('system:nodes' in request.userInfo.groups)"]),
            Some(Status::Critical),
            vec!["pods in kube-system"],
        ),
        (
            "one leader skipped, the other still renews through it",
            rule(&["coordination.k8s.io"], &["leases"]),
            conditions(&["request.userInfo.username != 'system:kube-controller-manager'"]),
            Some(Status::Critical),
            vec!["leases in kube-system", "leases in kube-node-lease"],
        ),
        (
            "has() on labels every control-plane writer sets",
            pods(),
            conditions(&[
                "!has(object.metadata.labels) || !('k8s-app' in object.metadata.labels || 'tier' in object.metadata.labels)",
            ]),
            None,
            vec![],
        ),
        (
            "an expression that errors is unknown, never excluded",
            pods(),
            conditions(&["object.metadata.annotations['team'] == 'a'"]),
            Some(Status::Warning),
            vec![],
        ),
        (
            "the authorizer cannot be answered offline",
            pods(),
            conditions(&["authorizer.requestResource.check('create').allowed()"]),
            Some(Status::Warning),
            vec![],
        ),
        (
            "a false condition decides even beside one that errors",
            pods(),
            conditions(&["object.metadata.annotations['team'] == 'a'", "request.namespace != 'kube-system'"]),
            None,
            vec![],
        ),
    ];
    for (name, rules, extra, want, targets) in cases {
        let c = config(webhook(rules, extra));
        assert_eq!(lockout(&c, &offline), want, "{name}");
        if want == Some(Status::Critical) {
            let labels: Vec<String> = lockout_evidence(&c).into_iter().map(|(label, _)| label).collect();
            assert_eq!(labels, targets, "{name}");
        }
    }
    // The evidence names the request that gets through.
    let c = config(webhook(pods(), conditions(&["!('system:nodes' in request.userInfo.groups)"])));
    let evidence = lockout_evidence(&c);
    assert!(evidence[0].1.starts_with("the replicaset controller creating a CoreDNS pod: rule"), "{evidence:?}");
    assert!(evidence[0].1.ends_with("its matchConditions are all true"), "{evidence:?}");
}

#[test]
fn object_selectors_are_evaluated_on_each_writers_labels() {
    let offline = ClusterFacts::offline();
    let with_selector = |selector: Value| config(webhook(rule(&[""], &["pods"]), json!({"objectSelector": selector})));
    // Mirror pods carry tier=control-plane; CoreDNS's and kube-proxy's pods do not.
    let c =
        with_selector(json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["control-plane"]}]}));
    assert_eq!(lockout(&c, &offline), Some(Status::Critical));
    assert!(lockout_evidence(&c)[0].1.starts_with("the replicaset controller"), "{:?}", lockout_evidence(&c));
    let c = with_selector(json!({"matchExpressions": [{"key": "k8s-app", "operator": "DoesNotExist"}]}));
    assert!(lockout_evidence(&c)[0].1.starts_with("the kubelet creating the mirror pod"));
    let c = with_selector(json!({"matchLabels": {"sidecar.istio.io/inject": "true"}}));
    assert_eq!(lockout(&c, &offline), None, "an opt-in label no system pod has");
}

#[test]
fn leader_election_timeouts() {
    let offline = ClusterFacts::offline();
    let leases = || rule(&["coordination.k8s.io"], &["leases"]);
    let leader = |c: &WebhookConfig| {
        analyse(std::slice::from_ref(c), &offline)
            .into_iter()
            .find(|f| f.kind == FindingKind::LeaderElection)
            .map(|f| (f.severity, f.summary, f.fix.map(|x| x.command)))
    };
    // The v1 default of 10 s is the renew deadline itself.
    let c = config(webhook(leases(), json!({})));
    let (severity, summary, fix) = leader(&c).expect("10s on leases in kube-system");
    assert_eq!(severity, Status::Warning);
    assert!(
        summary.starts_with("timeoutSeconds 10 on leases in kube-system reaches the leader renew deadline"),
        "{summary}"
    );
    assert!(fix.unwrap().contains(r#""path":"/webhooks/0/timeoutSeconds","value":5"#));
    // A live backend that answers slowly stalls renewals under Ignore too.
    let c = config(webhook(leases(), json!({"failurePolicy": "Ignore", "timeoutSeconds": 30})));
    assert!(leader(&c).is_some());
    // Legacy lock objects.
    let c = config(webhook(rule(&[""], &["configmaps", "endpoints"]), json!({"timeoutSeconds": 15})));
    let (_, summary, _) = leader(&c).unwrap();
    assert!(summary.contains("configmaps in kube-system, endpoints in kube-system"), "{summary}");
    // Short enough, or kube-system excluded, or only node leases: no finding.
    assert!(leader(&config(webhook(leases(), json!({"timeoutSeconds": 5})))).is_none());
    let exclude = json!({"timeoutSeconds": 10, "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}});
    assert!(leader(&config(webhook(leases(), exclude))).is_none());
    let skip_leaders = conditions(&["!request.userInfo.username.startsWith('system:kube-')"]);
    assert!(leader(&config(webhook(leases(), skip_leaders))).is_none());
    // The LEADER-ELECTION finding replaces TIMEOUT on the same webhook.
    let c = config(webhook(rule(&["*"], &["*"]), json!({"timeoutSeconds": 20})));
    let kinds: Vec<FindingKind> = analyse(&[c], &offline).into_iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FindingKind::LeaderElection) && !kinds.contains(&FindingKind::Timeout), "{kinds:?}");
}

#[test]
fn capsule_locks_every_path_until_its_selector_patch() {
    // tests/fixtures/webhooks/capsule.yaml — controller-gen output of projectcapsule/capsule:
    // Fail everywhere, no selectors (kustomize patches them in at deploy time).
    let (_, findings) = scan_fixture("capsule.yaml");
    let cordoning = kinds(&findings, "cordoning.tenant.capsule.clastix.io");
    assert!(cordoning.contains(&(FindingKind::Lockout, Status::Critical)), "{cordoning:?}");
    assert!(cordoning.contains(&(FindingKind::LeaderElection, Status::Warning)), "{cordoning:?}");
    // UPDATE on nodes only: the kubelet's own Node updates go through it.
    let nodes = findings
        .iter()
        .find(|f| f.webhook == "nodes.capsule.clastix.io" && f.kind == FindingKind::Lockout)
        .expect("nodes lockout");
    assert!(nodes.evidence[0].value.starts_with("the kubelet updating its Node's labels"), "{:?}", nodes.evidence);
    // UPDATE/DELETE on every resource: lease renewals are UPDATEs.
    let objects = kinds(&findings, "resource-objects.tenant.capsule.clastix.io");
    assert!(objects.contains(&(FindingKind::Lockout, Status::Critical)), "{objects:?}");
    assert!(kinds(&findings, "pvc.capsule.clastix.io").iter().all(|(k, _)| *k != FindingKind::Lockout));
}

#[test]
fn gatekeeper_fails_open_and_names_its_reconciler() {
    // tests/fixtures/webhooks/gatekeeper.yaml — open-policy-agent/gatekeeper deploy/gatekeeper.yaml:
    // Ignore with 1-3 s timeouts on every resource; the Fail webhook is on namespaces only.
    let (configs, findings) = scan_fixture("gatekeeper.yaml");
    assert!(
        kinds(&findings, "validation.gatekeeper.sh")
            .iter()
            .all(|(k, s)| *k != FindingKind::Lockout && *s != Status::Critical)
    );
    assert!(
        kinds(&findings, "check-ignore-label.gatekeeper.sh")
            .contains(&(FindingKind::NamespaceChanges, Status::Warning))
    );
    assert_eq!(worst(&findings), Status::Warning);
    assert_eq!(configs.len(), 2);
    // Its label names Gatekeeper as the controller that puts a disarmed configuration back.
    let text = crate::test_files::text("tests/fixtures/webhooks/gatekeeper.yaml");
    let docs = crate::yaml::documents("gatekeeper.yaml", &text).unwrap();
    let vwc = docs.iter().find(|d| d["kind"] == "ValidatingWebhookConfiguration").unwrap();
    let rearmers = super::rearm::rearmers(vwc);
    assert_eq!(rearmers[0].who, "Gatekeeper");
    assert_eq!(
        rearmers[0].deployment.as_ref().map(super::rearm::Deployment::pause_command).as_deref(),
        Some("kubectl -n gatekeeper-system scale deployment gatekeeper-controller-manager --replicas=0")
    );
}

fn serving_cert(cn: &str, issuer: &str, not_after: &str) -> crate::certs::CertInfo {
    crate::certs::CertInfo {
        subject: format!("CN={cn}"),
        common_name: Some(cn.into()),
        issuer: format!("CN={issuer}"),
        serial: "01".into(),
        not_before: "2026-01-01T00:00:00Z".parse().unwrap(),
        not_after: not_after.parse().unwrap(),
        dns_names: vec![cn.into()],
        ip_addresses: vec![],
        is_ca: false,
    }
}

#[test]
fn a_backend_certificate_the_api_server_rejects_is_a_dead_backend_named_with_its_certificates() {
    // Fail on pods everywhere: a certificate the API server rejects stops kube-system pods as a
    // dead backend does, and the fix diagnoses the certificates before the lever.
    let w = webhook(rule(&[""], &["pods"]), json!({"failurePolicy": "Fail"}));
    let c = config(w);
    let mut facts = live_namespaces();
    facts.now = Some("2026-12-02T00:00:00Z".parse().unwrap());
    let healthy = ServiceFacts {
        exists: true,
        ready_endpoints: 2,
        nodes: ["n1".to_string(), "n2".to_string()].into(),
        has_pdb: true,
        ..Default::default()
    };
    facts.services = with_backend(healthy);
    let tls = |error: Option<&str>, not_after: &str| crate::webhooks::analysis::BackendTls {
        pod: "guard-7d9-x2x7k".into(),
        port: 8443,
        server_name: "guard-svc.guard.svc".into(),
        leaf: Some(serving_cert("guard-svc.guard.svc", "guard-ca-2", not_after)),
        ca: vec!["guard-ca-1".into()],
        error: error.map(str::to_string),
    };
    let key = ("validatingwebhookconfiguration/cfg".to_string(), "w.example.com".to_string());
    facts
        .backend_tls
        .insert(key.clone(), tls(Some("x509: certificate signed by unknown authority"), "2027-12-01T00:00:00Z"));
    let f = analyse(std::slice::from_ref(&c), &facts);
    let bad = f.iter().find(|f| f.kind == FindingKind::BackendTls).expect("a BACKEND TLS finding");
    assert_eq!(bad.severity, Status::Critical);
    assert!(
        bad.summary.starts_with("LIVE OUTAGE: the backend's serving certificate fails the API server's check as guard-svc.guard.svc: x509: certificate signed by unknown authority"),
        "{}",
        bad.summary
    );
    let described = &bad.evidence.iter().find(|e| e.name == "TLS").unwrap().value;
    assert_eq!(
        described,
        "pod guard/guard-7d9-x2x7k:8443 serves guard-svc.guard.svc (issuer CN=guard-ca-2, SANs guard-svc.guard.svc, valid until 2027-12-01 00:00 UTC); caBundle: guard-ca-1"
    );
    let fix = bad.fix.as_ref().unwrap();
    assert!(
        fix.description.starts_with("Diagnose first: pod guard/guard-7d9-x2x7k:8443 serves"),
        "{}",
        fix.description
    );
    assert!(fix.description.contains("Put the CA that signed it into caBundle"), "{}", fix.description);
    assert!(
        fix.command
            .starts_with("kubectl webhookguard disarm validatingwebhookconfiguration/cfg --webhook w.example.com")
    );
    assert_eq!(crate::webhooks::defuse::restore_blockers(&f).len(), 1, "restoring it would lock the cluster again");

    // Verified, but expiring in 20 days: a WARNING with the date, no outage.
    facts.backend_tls.insert(key.clone(), tls(None, "2026-12-22T00:00:00Z"));
    let f = analyse(std::slice::from_ref(&c), &facts);
    let soon = f.iter().find(|f| f.kind == FindingKind::BackendTls).expect("an expiry finding");
    assert_eq!(soon.severity, Status::Warning);
    assert!(
        soon.summary
            .starts_with("the backend's serving certificate guard-svc.guard.svc expires 2026-12-22 00:00 UTC (in 20d)"),
        "{}",
        soon.summary
    );
    // Verified and far from expiry: nothing to say.
    facts.backend_tls.insert(key, tls(None, "2027-12-01T00:00:00Z"));
    let f = analyse(&[c], &facts);
    assert!(!f.iter().any(|f| f.kind == FindingKind::BackendTls), "{f:#?}");
}

#[test]
fn manifests_are_read_with_their_api_types() {
    // A `null` reads as unset (a Helm template's empty `matchLabels:`), as the API server reads it.
    let nulls =
        webhook(rule(&[""], &["pods"]), json!({"objectSelector": {"matchLabels": null}, "timeoutSeconds": null}));
    let c = config(nulls);
    assert!(c.webhooks[0].object_selector.is_empty());
    assert_eq!((c.webhooks[0].timeout_seconds, c.webhooks[0].rules[0].scope.as_str()), (10, "*"));
    // A wrong type is an error that names the field, never a webhook without rules.
    let doc = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "bad"}, "webhooks": [{"name": "x", "rules": "pods"}]});
    let e = WebhookConfig::from_value(&doc, "f.yaml").unwrap_err();
    assert_eq!(e.what, "ValidatingWebhookConfiguration bad in f.yaml is not valid");
    assert!(e.why.starts_with("webhooks[0].rules: invalid type: string \"pods\", expected a sequence"), "{}", e.why);
    // Admission policies too (they were read leniently: wrong types matched nothing).
    let policy = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "p"}, "spec": {"matchConstraints": {"resourceRules": {"apiGroups": [""]}}}});
    let e = crate::webhooks::policies_from_documents(&[policy], "p.yaml").unwrap_err();
    assert!(e.why.starts_with("spec.matchConstraints.resourceRules: invalid type: map"), "{}", e.why);
}

#[test]
fn the_backend_chain_trusts_the_pods_over_a_stale_workload_status() {
    // The real webhook-lockout: the webhook also refuses the Deployment's status update, so it
    // still says 1 ready replica while its only pod crash-loops.
    let svc = ServiceFacts {
        exists: true,
        workload: Some(Workload {
            kind: "deployment".into(),
            name: "pod-validator".into(),
            replicas: 1,
            ready_replicas: 1,
        }),
        pods: vec![crash_looping("pod-validator-5f9", 12, "worker-1")],
        ..Default::default()
    };
    assert!(
        svc.chain("default").starts_with("deployment default/pod-validator: 0 of 1 replica ready"),
        "{}",
        svc.chain("default")
    );
    let unread = ServiceFacts { pods: Vec::new(), ..svc };
    assert!(unread.chain("default").starts_with("deployment default/pod-validator: 1 of 1 replica ready"));
}
