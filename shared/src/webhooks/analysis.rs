//! Which webhooks can lock a cluster, and why (k8s.io/apiserver `pkg/admission/plugin/webhook/`;
//! the Kubernetes documentation's "Admission Webhook Good Practices").
//!
//! A webhook with an effective `failurePolicy: Fail` whose rules reach what the cluster needs to
//! heal — pods or leases in kube-system, leases in kube-node-lease, nodes, RBAC, CSRs,
//! TokenReviews/SubjectAccessReviews — and whose selectors do not exclude those objects turns
//! its backend's death into a cluster lockout. Webhook configurations themselves are never sent
//! to webhooks, so patching or deleting a configuration always works.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use super::conditions::{CompileCache, ConditionOutcome, MatchConditions, RequestContext};
use super::model::{ClientConfig, ConfigKind, FailurePolicy, Tri, Webhook, WebhookConfig};
use super::requests::{HealingRequest, REPLICASET_CONTROLLER, Resource, TARGETS, Target, request};
use crate::exit::Status;
use crate::report::Evidence;

/// What the analysis found, most urgent kinds first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum FindingKind {
    BackendDown,
    BackendTls,
    PolicyConfig,
    PolicyRejects,
    Lockout,
    SelfDeadlock,
    CaBundle,
    Runtime,
    NamespaceChanges,
    LeaderElection,
    FragileBackend,
    Timeout,
    SideEffects,
    ReviewVersions,
    AllOperations,
    NoRules,
}

impl FindingKind {
    pub fn label(self) -> &'static str {
        match self {
            FindingKind::BackendDown => "BACKEND DOWN",
            FindingKind::BackendTls => "BACKEND TLS",
            FindingKind::PolicyConfig => "POLICY CONFIG",
            FindingKind::PolicyRejects => "POLICY REJECTS",
            FindingKind::Lockout => "LOCKOUT",
            FindingKind::SelfDeadlock => "SELF-DEADLOCK",
            FindingKind::CaBundle => "CA BUNDLE",
            FindingKind::Runtime => "RUNTIME",
            FindingKind::NamespaceChanges => "NAMESPACE CHANGES",
            FindingKind::LeaderElection => "LEADER-ELECTION",
            FindingKind::FragileBackend => "FRAGILE BACKEND",
            FindingKind::Timeout => "TIMEOUT",
            FindingKind::SideEffects => "SIDE EFFECTS",
            FindingKind::ReviewVersions => "REVIEW VERSIONS",
            FindingKind::AllOperations => "ALL OPERATIONS",
            FindingKind::NoRules => "NO RULES",
        }
    }
}

/// A fix as a JSON patch of the configuration, with the command that applies it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    pub description: String,
    /// RFC 6902 operations on the configuration object.
    pub patch: Value,
    pub command: String,
}

/// One finding about one webhook.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Status,
    pub config_kind: ConfigKind,
    pub config: String,
    pub webhook: String,
    pub webhook_index: usize,
    pub summary: String,
    pub explanation: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
    /// Set when an allowlist accepts this risk (the reason given there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
    /// What a dead backend blocks, when that is all it blocks ("resources of metallb.io cannot
    /// be created or changed").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<String>,
}

/// The state of a webhook's backend Service, read from the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceFacts {
    pub exists: bool,
    pub ready_endpoints: usize,
    pub not_ready_endpoints: usize,
    /// Nodes of the ready endpoints.
    pub nodes: BTreeSet<String>,
    /// A PodDisruptionBudget selects the Service's pods.
    pub has_pdb: bool,
    pub cluster_ip: Option<String>,
    /// The Service's selector.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// The Deployment or StatefulSet whose pod template the selector matches: where a dead
    /// backend is diagnosed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// The pods the selector matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<BackendPod>,
    /// Its ports: (port, targetPort as a number or a name).
    #[serde(skip)]
    pub ports: Vec<(u16, String)>,
}

/// A backend's Deployment or StatefulSet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// `deployment`, `statefulset`.
    pub kind: String,
    pub name: String,
    pub replicas: i64,
    pub ready_replicas: i64,
}

/// One pod of a backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendPod {
    pub name: String,
    pub ready: bool,
    pub restarts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why it is not running: a waiting reason (CrashLoopBackOff) or the last termination's
    /// (OOMKilled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Its containers' named ports, for a Service's named targetPort.
    #[serde(skip)]
    pub named_ports: BTreeMap<String, u16>,
}

impl ServiceFacts {
    /// The chain from the Service to its pods, in words: "deployment kyverno/kyverno: 0 of 2
    /// replicas ready, no PodDisruptionBudget; pod kyverno-7d9 not ready (CrashLoopBackOff, 14
    /// restarts) on node w-1".
    pub fn chain(&self, ns: &str) -> String {
        let selector = self.selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let mut parts = Vec::new();
        // The pods read say what runs: the workload's status can be stale, as when a lockout
        // also refuses its controller's status updates (the real webhook-lockout: 1 of 1 ready).
        let ready = match &self.workload {
            Some(w) if self.pods.is_empty() => w.ready_replicas,
            _ => self.pods.iter().filter(|p| p.ready).count() as i64,
        };
        match &self.workload {
            Some(w) => parts.push(format!(
                "{} {ns}/{}: {} of {} replica{} ready{}, {}",
                w.kind,
                w.name,
                ready,
                w.replicas,
                if w.replicas == 1 { "" } else { "s" },
                if w.replicas == 0 { " (scaled to 0)" } else { "" },
                if self.has_pdb { "a PodDisruptionBudget covers it" } else { "no PodDisruptionBudget" }
            )),
            None if selector.is_empty() => parts.push("the Service has no selector".into()),
            None => parts.push(format!("no Deployment or StatefulSet in {ns} runs pods matching {selector}")),
        }
        for p in self.pods.iter().take(3) {
            let mut text = format!("pod {} {}", p.name, if p.ready { "ready" } else { "not ready" });
            let details: Vec<String> = p
                .problem
                .iter()
                .cloned()
                .chain(
                    (p.restarts > 0)
                        .then(|| format!("{} restart{}", p.restarts, if p.restarts == 1 { "" } else { "s" })),
                )
                .collect();
            if !details.is_empty() {
                text.push_str(&format!(" ({})", details.join(", ")));
            }
            if let Some(node) = &p.node {
                text.push_str(&format!(" on node {node}"));
            }
            parts.push(text);
        }
        if self.pods.len() > 3 {
            parts.push(format!("{} more pods", self.pods.len() - 3));
        }
        parts.join("; ")
    }

    /// The command that shows why the backend is down.
    pub fn diagnose_command(&self, ns: &str, service: &str) -> String {
        match &self.workload {
            Some(w) => format!("kubectl -n {ns} describe {} {}", w.kind, w.name),
            None => format!("kubectl -n {ns} describe service {service}"),
        }
    }
}

/// What `/metrics` says about a webhook.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRuntime {
    pub errors_per_second: f64,
    pub fail_open_per_second: f64,
    pub p99_seconds: Option<f64>,
}

/// What is known about the cluster. Offline scans leave everything unknown.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    /// Labels of every namespace (None offline: only `kubernetes.io/metadata.name` is known).
    pub namespaces: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Backend services by (namespace, name); only for live scans.
    pub services: Option<BTreeMap<(String, String), ServiceFacts>>,
    /// By webhook name.
    pub runtime: BTreeMap<String, WebhookRuntime>,
    pub now: Option<Timestamp>,
    /// What is known of admission policies' params.
    pub policies: super::policy_analysis::PolicyFacts,
    /// TLS handshakes with backends through a port-forward, by (`kind/name` of the
    /// configuration, webhook).
    pub backend_tls: BTreeMap<(String, String), BackendTls>,
}

/// What a TLS handshake with a webhook's backend showed, made as the API server makes it: through
/// a port-forward to one of its ready pods, trusting only the webhook's caBundle, expecting the
/// name `<service>.<namespace>.svc` (k8s.io/apiserver `pkg/util/webhook/authentication.go`,
/// `serviceresolver.go`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    pub pod: String,
    pub port: u16,
    pub server_name: String,
    /// The serving certificate.
    pub leaf: Option<crate::certs::CertInfo>,
    /// The caBundle's certificates, by name.
    pub ca: Vec<String>,
    /// Why the chain does not verify; None when it does.
    pub error: Option<String>,
}

impl BackendTls {
    /// "pod cert-manager/cert-manager-webhook-5d8 serves cert-manager-webhook.cert-manager.svc
    /// (issuer cert-manager-webhook-ca, valid until 2027-12-01)".
    pub fn describe(&self, ns: &str) -> String {
        let cert = match &self.leaf {
            Some(l) => format!(
                "{} (issuer {}, SANs {}, valid until {})",
                l.name(),
                l.issuer,
                l.sans().join(", "),
                crate::duration::format_time(l.not_after)
            ),
            None => "no certificate".into(),
        };
        format!("pod {ns}/{}:{} serves {cert}; caBundle: {}", self.pod, self.port, self.ca.join(", "))
    }
}

/// What to change so that the API server accepts the backend's certificate again.
fn tls_remedy(t: &BackendTls) -> String {
    let error = t.error.as_deref().unwrap_or("");
    if error.contains("unknown authority") {
        "Put the CA that signed it into caBundle, or re-issue the serving certificate from the caBundle's CA (cert-manager's cainjector injects the CA named by the `cert-manager.io/inject-ca-from` annotation; after a CA rotation it can lag behind)".into()
    } else if error.contains("expired") {
        "Renew the serving certificate and restart the backend if it does not reload it".into()
    } else if error.contains("valid for") {
        format!("Re-issue the serving certificate with the DNS name {}", t.server_name)
    } else {
        "Compare the serving certificate with caBundle".into()
    }
}

impl ClusterFacts {
    pub fn offline() -> ClusterFacts {
        ClusterFacts::default()
    }

    pub(super) fn namespace_labels(&self, ns: &str) -> (BTreeMap<String, String>, bool) {
        if let Some(all) = &self.namespaces
            && let Some(labels) = all.get(ns)
        {
            let mut l = labels.clone();
            l.entry("kubernetes.io/metadata.name".into()).or_insert_with(|| ns.to_string());
            return (l, true);
        }
        // Since 1.21 every namespace carries its name as a label.
        (BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())]), false)
    }
}

/// Does the webhook reach `target`? Each request that writes it goes through the gates the API
/// server applies, in its order (`staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/
/// generic/dispatcher.go` and `predicates/`): rules, namespaceSelector, objectSelector, then
/// matchConditions. Reached if any request is; unknown if any might be.
fn reaches(
    webhook: &Webhook,
    conditions: &MatchConditions,
    target: &Target,
    prepared: &[PreparedRequest],
    facts: &ClusterFacts,
) -> (Tri, String) {
    let mut unknown: Option<String> = None;
    let mut excluded = String::new();
    for (healing, prepared) in target.requests.iter().zip(prepared) {
        match request_reaches(webhook, conditions, target, healing, prepared, facts) {
            (Tri::Yes, why) => return (Tri::Yes, why),
            (Tri::Unknown, why) => {
                unknown.get_or_insert(why);
            }
            (Tri::No, why) => {
                if excluded.is_empty() {
                    excluded = why;
                }
            }
        }
    }
    match unknown {
        Some(why) => (Tri::Unknown, why),
        None => (Tri::No, excluded),
    }
}

fn request_reaches(
    webhook: &Webhook,
    conditions: &MatchConditions,
    target: &Target,
    healing: &HealingRequest,
    prepared: &PreparedRequest,
    facts: &ClusterFacts,
) -> (Tri, String) {
    let namespaced = target.object.namespace.is_some();
    let Some(rule) = webhook.rules.iter().find(|r| {
        r.matches(healing.operation, target.object.group, target.object.resource, target.object.subresource, namespaced)
    }) else {
        // The common case, kept cheap: nothing reads why a target is not reached.
        return (Tri::No, String::new());
    };
    let mut why = format!("{}: rule {}", healing.what, rule.describe());
    let mut result = Tri::Yes;
    let labels = &prepared.labels;
    match namespace_gate(&webhook.namespace_selector, target, healing, labels, facts) {
        (Tri::No, excluded) => return (Tri::No, excluded),
        (Tri::Unknown, note) => {
            result = Tri::Unknown;
            why.push_str(&note);
        }
        (Tri::Yes, note) => why.push_str(&note),
    }
    if !webhook.object_selector.is_empty() {
        // The object's labels are those this writer sets: exact for this request.
        if webhook.object_selector.evaluate(labels, true) != Tri::Yes {
            return (
                Tri::No,
                format!("{}: objectSelector {} does not select it", healing.what, webhook.object_selector.describe()),
            );
        }
        why.push_str(&format!("; objectSelector {} selects it", webhook.object_selector.describe()));
    }
    if !conditions.is_empty() {
        match conditions.evaluate(prepared.context(target, healing)) {
            ConditionOutcome::Skipped { condition } => {
                return (Tri::No, format!("{}: matchCondition {condition} is false", healing.what));
            }
            ConditionOutcome::Called => why.push_str("; its matchConditions are all true"),
            ConditionOutcome::Unknown { reason } => {
                result = Tri::Unknown;
                why.push_str(&format!("; {reason}"));
            }
        }
    }
    (result, why)
}

/// The namespaceSelector gate, with what it adds to the evidence (or why it excludes): the
/// namespace's labels for namespaced objects, a Namespace's own labels, and other cluster-scoped
/// objects are never skipped.
pub(super) fn namespace_gate(
    selector: &super::model::Selector,
    target: &Target,
    healing: &HealingRequest,
    labels: &BTreeMap<String, String>,
    facts: &ClusterFacts,
) -> (Tri, String) {
    let namespace_labels = match target.object.namespace {
        Some(ns) => Some((ns.to_string(), facts.namespace_labels(ns))),
        None if target.object.resource == "namespaces" => Some((healing.name.to_string(), (labels.clone(), true))),
        None => None,
    };
    let Some((ns, (ns_labels, complete))) = namespace_labels else { return (Tri::Yes, String::new()) };
    match selector.evaluate(&ns_labels, complete) {
        Tri::No => (Tri::No, format!("{}: namespaceSelector excludes {ns}", healing.what)),
        Tri::Unknown => {
            (Tri::Unknown, format!("; namespaceSelector {} — {ns}'s labels are unknown offline", selector.describe()))
        }
        Tri::Yes if selector.is_empty() => (Tri::Yes, String::new()),
        Tri::Yes => (Tri::Yes, format!("; namespaceSelector {} does not exclude {ns}", selector.describe())),
    }
}

/// Built-in API groups: the core group, `apps`, `batch` and the `*.k8s.io` groups.
fn is_builtin_group(group: &str) -> bool {
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

/// What a webhook blocks while its backend is down, in words: "resources of metallb.io cannot
/// be created or changed", "pods, deployments.apps cannot be created".
pub fn blast_radius(rules: &[super::model::Rule]) -> String {
    let mut add_on_groups: BTreeSet<&str> = BTreeSet::new();
    let mut builtin: BTreeSet<String> = BTreeSet::new();
    let mut operations: BTreeSet<&str> = BTreeSet::new();
    for rule in rules {
        operations.extend(rule.operations.iter().map(String::as_str));
        for group in &rule.api_groups {
            if group == "*" {
                builtin.insert("resources of every API group".into());
            } else if is_builtin_group(group) {
                for resource in &rule.resources {
                    let resource = resource.split('/').next().unwrap_or(resource);
                    builtin.insert(if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") });
                }
            } else {
                add_on_groups.insert(group.as_str());
            }
        }
    }
    let mut what: Vec<String> = builtin.into_iter().collect();
    if !add_on_groups.is_empty() {
        what.push(format!("resources of {}", add_on_groups.into_iter().collect::<Vec<_>>().join(", ")));
    }
    let any = operations.contains("*");
    let verbs: Vec<&str> =
        [("CREATE", "created"), ("UPDATE", "changed"), ("DELETE", "deleted"), ("CONNECT", "connected to")]
            .iter()
            .filter(|(op, _)| any || operations.contains(op))
            .map(|(_, word)| *word)
            .collect();
    let verbs = match verbs.as_slice() {
        [] => "used".to_string(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    format!("{} cannot be {verbs}", what.join(", "))
}

fn fix_command(config: &WebhookConfig, patch: &Value) -> String {
    format!("kubectl patch {} {} --type=json -p '{}'", config.kind.resource().trim_end_matches('s'), config.name, patch)
}

fn ignore_fix(config: &WebhookConfig, w: &Webhook) -> Fix {
    let patch = json!([{"op": "add", "path": format!("/webhooks/{}/failurePolicy", w.index), "value": "Ignore"}]);
    Fix {
        description: "Fail open (failurePolicy: Ignore) unless enforcement is essential; or keep Fail and exclude kube-system, kube-node-lease and the webhook's own namespace".into(),
        command: fix_command(config, &patch),
        patch,
    }
}

/// The namespaces a Fail webhook must leave alone for the cluster to heal — kube-system,
/// kube-node-lease and its backend's own — and the namespaceSelector expression excluding them
/// (the API server sets the `kubernetes.io/metadata.name` label on every namespace).
pub(super) fn system_exclusion(own_namespace: Option<&str>) -> (Vec<String>, Value) {
    let mut values = vec!["kube-system".to_string(), "kube-node-lease".to_string()];
    if let Some(ns) = own_namespace
        && !values.iter().any(|v| v == ns)
    {
        values.push(ns.to_string());
    }
    let expression = json!({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": values});
    (values, expression)
}

fn exclude_namespaces_fix(config: &WebhookConfig, w: &Webhook, own_namespace: Option<&str>) -> Fix {
    let (values, expression) = system_exclusion(own_namespace);
    let patch = if w.namespace_selector.match_expressions.is_empty() {
        let mut selector = json!({"matchExpressions": [expression]});
        if !w.namespace_selector.match_labels.is_empty() {
            selector["matchLabels"] = json!(w.namespace_selector.match_labels);
        }
        json!([{"op": "add", "path": format!("/webhooks/{}/namespaceSelector", w.index), "value": selector}])
    } else {
        json!([{"op": "add", "path": format!("/webhooks/{}/namespaceSelector/matchExpressions/-", w.index), "value": expression}])
    };
    Fix {
        description: format!("Exclude {} with a namespaceSelector", values.join(", ")),
        command: fix_command(config, &patch),
        patch,
    }
}

fn own_namespace(w: &Webhook) -> Option<&str> {
    match &w.client {
        ClientConfig::Service { namespace, .. } => Some(namespace.as_str()),
        _ => None,
    }
}

/// kube-controller-manager's and kube-scheduler's `--leader-elect-renew-deadline` default.
const LEADER_RENEW_DEADLINE_SECONDS: u32 = 10;
/// What leader election locks are made of.
const LOCK_RESOURCES: [&str; 3] = ["leases", "configmaps", "endpoints"];

const HOT_RESOURCES: [&str; 7] = ["pods", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "*"];

/// A request of `TARGETS` as selectors and conditions see it, prepared once per analysis (the
/// CEL variables only when a webhook has conditions).
struct PreparedRequest {
    labels: BTreeMap<String, String>,
    context: OnceCell<RequestContext>,
}

impl PreparedRequest {
    fn context(&self, target: &Target, healing: &HealingRequest) -> &RequestContext {
        self.context.get_or_init(|| {
            let input = healing.admission(&target.object);
            RequestContext::new(&input.request, &input.object, &input.old_object)
        })
    }
}

struct Evaluation {
    compiled: CompileCache,
    /// By index of `TARGETS`, then of its requests.
    requests: Vec<Vec<PreparedRequest>>,
}

impl Evaluation {
    fn new() -> Evaluation {
        let requests = TARGETS
            .iter()
            .map(|t| {
                t.requests.iter().map(|h| PreparedRequest { labels: h.label_map(), context: OnceCell::new() }).collect()
            })
            .collect();
        Evaluation { compiled: CompileCache::default(), requests }
    }
}

/// Analyses every webhook of `configs`.
pub fn analyse(configs: &[WebhookConfig], facts: &ClusterFacts) -> Vec<Finding> {
    let evaluation = Evaluation::new();
    let mut out = Vec::new();
    for c in configs {
        for w in &c.webhooks {
            analyse_webhook(c, w, facts, &evaluation, &mut out);
        }
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.kind.cmp(&b.kind))
            .then(a.config.cmp(&b.config))
            .then(a.webhook_index.cmp(&b.webhook_index))
    });
    out
}

/// One webhook under judgement, with what every judge below reads: its configuration, the
/// cluster's facts, the healing requests it certainly or possibly reaches, and its backend.
struct Subject<'a> {
    c: &'a WebhookConfig,
    w: &'a Webhook,
    facts: &'a ClusterFacts,
    fail: bool,
    /// Its failurePolicy as a sentence names it (with "the default of" when unset).
    policy_text: String,
    conditions: MatchConditions,
    certain: Vec<(&'static Target, String)>,
    possible: Vec<(&'static Target, String)>,
    /// Its Service backend, when the scan is live and the Service could be read: a backend that
    /// could not be read stays unknown, never a false "down".
    backend: Option<(String, String, ServiceFacts)>,
    runtime: Option<&'a WebhookRuntime>,
    tls: Option<&'a BackendTls>,
}

impl<'a> Subject<'a> {
    fn new(c: &'a WebhookConfig, w: &'a Webhook, facts: &'a ClusterFacts, evaluation: &Evaluation) -> Subject<'a> {
        let policy_text = if w.failure_policy_explicit {
            format!("failurePolicy {:?}", w.failure_policy)
        } else {
            format!("failurePolicy {:?} (the default of {})", w.failure_policy, c.api_version)
        };
        // What it reaches of what the cluster needs to heal.
        let conditions = MatchConditions::compile(&w.match_conditions, &evaluation.compiled);
        let mut certain = Vec::new();
        let mut possible = Vec::new();
        for (target, prepared) in TARGETS.iter().zip(&evaluation.requests) {
            match reaches(w, &conditions, target, prepared, facts) {
                (Tri::Yes, why) => certain.push((target, why)),
                (Tri::Unknown, why) => possible.push((target, why)),
                (Tri::No, _) => {}
            }
        }
        let backend = match (&w.client, &facts.services) {
            (ClientConfig::Service { namespace, name, .. }, Some(services)) => services
                .get(&(namespace.clone(), name.clone()))
                .map(|svc| (namespace.clone(), name.clone(), svc.clone())),
            _ => None,
        };
        Subject {
            c,
            w,
            facts,
            fail: w.failure_policy == FailurePolicy::Fail,
            policy_text,
            conditions,
            certain,
            possible,
            backend,
            runtime: facts.runtime.get(&w.name),
            tls: facts.backend_tls.get(&(c.kind.object(&c.name), w.name.clone())),
        }
    }

    /// The targets of `reached` that the cluster needs to heal.
    fn critical<'r>(&self, reached: &'r [(&'static Target, String)]) -> Vec<&'r (&'static Target, String)> {
        reached.iter().filter(|(t, _)| t.critical).collect()
    }

    fn finding(&self, kind: FindingKind, severity: Status, summary: String, explanation: String) -> Finding {
        Finding {
            kind,
            severity,
            config_kind: self.c.kind,
            config: self.c.name.clone(),
            webhook: self.w.name.clone(),
            webhook_index: self.w.index,
            summary,
            explanation,
            evidence: Vec::new(),
            fix: None,
            accepted: None,
            blast_radius: None,
        }
    }
}

fn analyse_webhook(
    c: &WebhookConfig,
    w: &Webhook,
    facts: &ClusterFacts,
    evaluation: &Evaluation,
    out: &mut Vec<Finding>,
) {
    let subject = Subject::new(c, w, facts, evaluation);
    let s = &subject;
    if no_rules(s, out) {
        return;
    }
    let backend_down = backend_down(s, out);
    expiring_serving_certificate(s, out);
    lockout(s, out);
    let leader_election = leader_election(s, out);
    self_deadlock(s, out);
    fragile_backend(s, backend_down, out);
    hot_path_timeout(s, leader_election, out);
    manifest_hygiene(s, out);
    ca_bundle(s, out);
    runtime(s, backend_down, out);
}

/// A webhook without rules intercepts nothing: nothing more to judge.
fn no_rules(s: &Subject, out: &mut Vec<Finding>) -> bool {
    let Subject { w, .. } = *s;
    if w.rules.is_empty() {
        out.push(s.finding(
            FindingKind::NoRules,
            Status::Ok,
            "has no rules: it intercepts nothing (some operators fill the rules at run time)".into(),
            "A webhook without rules is never called.".into(),
        ));
        return true;
    }
    false
}

/// A backend that is down for the API server now (no service, no ready endpoint, a certificate
/// it rejects): a live outage when it is Fail and reaches what the cluster needs to heal.
fn backend_down(s: &Subject, out: &mut Vec<Finding>) -> bool {
    let Subject { c, w, fail, ref policy_text, ref backend, runtime, tls, .. } = *s;
    let critical_certain = s.critical(&s.certain);
    let critical_possible = s.critical(&s.possible);
    let mut backend_down = false;
    if let Some((ns, name, svc)) = &backend {
        // A backend whose certificate the API server rejects is down for it.
        let (kind, problem) = if !svc.exists {
            (FindingKind::BackendDown, Some(format!("service {ns}/{name} does not exist")))
        } else if svc.ready_endpoints == 0 {
            let p = format!("service {ns}/{name} has no ready endpoints ({} not ready)", svc.not_ready_endpoints);
            (FindingKind::BackendDown, Some(p))
        } else if let Some(t) = tls
            && let Some(error) = &t.error
        {
            let p =
                format!("the backend's serving certificate fails the API server's check as {}: {error}", t.server_name);
            (FindingKind::BackendTls, Some(p))
        } else {
            (FindingKind::BackendDown, None)
        };
        if let Some(p) = problem {
            backend_down = true;
            // In proportion: CRITICAL when the cluster cannot heal (or may not: selectors not
            // readable); a dead backend that only blocks an add-on's own objects is WARNING
            // with what cannot be changed named.
            let reaches_critical = !critical_certain.is_empty();
            let may_reach_critical = !critical_possible.is_empty();
            let severity =
                if fail && (reaches_critical || may_reach_critical) { Status::Critical } else { Status::Warning };
            let summary = if fail && reaches_critical {
                format!(
                    "LIVE OUTAGE: {p}, and {policy_text} blocks {}",
                    critical_certain.iter().map(|(t, _)| t.label).collect::<Vec<_>>().join(", ")
                )
            } else if fail && may_reach_critical {
                format!("{p}: every request it matches is rejected ({policy_text})")
            } else if fail {
                format!("{p}: {} ({policy_text})", blast_radius(&w.rules))
            } else {
                format!("{p}: it fails open, so its policy is not applied")
            };
            let mut f = s.finding(
                kind,
                severity,
                summary,
                if fail {
                    "With failurePolicy Fail, the API server rejects every request the webhook matches while it cannot call the backend. Patching or deleting the webhook configuration itself still works (configurations are never sent to webhooks).".into()
                } else {
                    "With failurePolicy Ignore the API server lets matched requests through unchecked.".into()
                },
            );
            if fail && !reaches_critical && !may_reach_critical {
                f.blast_radius = Some(blast_radius(&w.rules));
            }
            if let Some(r) = runtime
                && r.errors_per_second > 0.0
            {
                f.evidence.push(Evidence {
                    name: "failed calls".into(),
                    value: format!("{:.1}/s (calling_webhook_error)", r.errors_per_second),
                });
            }
            f.evidence.push(Evidence { name: "backend".into(), value: svc.chain(ns) });
            let diagnosis = match tls.filter(|_| kind == FindingKind::BackendTls) {
                Some(t) => {
                    f.evidence.push(Evidence { name: "TLS".into(), value: t.describe(ns) });
                    format!(
                        "Diagnose first: {}. {}. Then, as the emergency step, defuse it (kubectl webhookguard disarm keeps a backup and prints the undo)",
                        t.describe(ns),
                        tls_remedy(t)
                    )
                }
                None => format!(
                    "Diagnose first: `{}` ({}). Then bring the backend back and, as the emergency step meanwhile, defuse the webhook (kubectl webhookguard disarm keeps a backup and prints the undo)",
                    svc.diagnose_command(ns, name),
                    svc.chain(ns)
                ),
            };
            if fail {
                f.fix = Some(Fix {
                    description: diagnosis,
                    patch: ignore_fix(c, w).patch,
                    command: format!(
                        "kubectl webhookguard disarm {}/{} --webhook {} --mode ignore --yes",
                        c.kind.kind().to_ascii_lowercase(),
                        c.name,
                        w.name
                    ),
                });
            }
            out.push(f);
        }
    }
    backend_down
}

/// A serving certificate that verifies today but will not for long.
fn expiring_serving_certificate(s: &Subject, out: &mut Vec<Finding>) {
    let Subject { facts, fail, ref backend, tls, .. } = *s;
    // A serving certificate that verifies today but will not for long.
    if let (Some((ns, _, _)), Some(t)) = (&backend, tls)
        && t.error.is_none()
        && let Some(leaf) = &t.leaf
    {
        let now = facts.now.unwrap_or_else(Timestamp::now);
        let status = match crate::certs::expiry_status(leaf.not_after, now) {
            Status::Critical if !fail => Status::Warning,
            s => s,
        };
        if status != Status::Ok {
            let mut f = s.finding(
                FindingKind::BackendTls,
                status,
                format!(
                    "the backend's serving certificate {} {}",
                    leaf.name(),
                    crate::certs::describe_expiry(leaf.not_after, now)
                ),
                "Once it expires the API server's TLS check fails and every call to the backend fails with it; renew it before then (cert-manager renews at two thirds of its lifetime).".into(),
            );
            f.evidence.push(Evidence { name: "TLS".into(), value: t.describe(ns) });
            out.push(f);
        }
    }
}

/// Fail on what the cluster needs to heal: a lockout once the backend dies (or possibly, when
/// selectors cannot be evaluated); on namespaces, a lesser one.
fn lockout(s: &Subject, out: &mut Vec<Finding>) {
    let Subject { c, w, fail, ref policy_text, ref certain, .. } = *s;
    let critical_certain = s.critical(&s.certain);
    let critical_possible = s.critical(&s.possible);
    if fail && !critical_certain.is_empty() {
        let labels: Vec<&str> = critical_certain.iter().map(|(t, _)| t.label).collect();
        let mut f = s.finding(
            FindingKind::Lockout,
            Status::Critical,
            format!("{policy_text} on {}: if its backend dies the cluster cannot heal", labels.join(", ")),
            critical_certain
                .iter()
                .map(|(t, _)| t.why)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join("; "),
        );
        for (target, why) in &critical_certain {
            f.evidence.push(Evidence { name: target.label.into(), value: why.clone() });
        }
        f.fix = Some(if critical_certain.iter().any(|(t, _)| t.object.namespace.is_none()) {
            ignore_fix(c, w)
        } else {
            exclude_namespaces_fix(c, w, own_namespace(w))
        });
        out.push(f);
    } else if fail && !critical_possible.is_empty() {
        let labels: Vec<&str> = critical_possible.iter().map(|(t, _)| t.label).collect();
        let mut f = s.finding(
            FindingKind::Lockout,
            Status::Warning,
            format!("possible lockout: {policy_text} may reach {} (cannot tell without the cluster)", labels.join(", ")),
            "Whether its selectors exclude these objects depends on facts a manifest does not have; scan the live cluster to know.".into(),
        );
        for (target, why) in &critical_possible {
            f.evidence.push(Evidence { name: target.label.into(), value: why.clone() });
        }
        f.fix = Some(exclude_namespaces_fix(c, w, own_namespace(w)));
        out.push(f);
    } else if fail && certain.iter().any(|(t, _)| t.object.resource == "namespaces") {
        out.push(s.finding(
            FindingKind::NamespaceChanges,
            Status::Warning,
            format!("{policy_text} on namespaces: namespace changes fail while its backend is down"),
            "It does not stop the cluster from healing, but namespaces cannot be created or labelled.".into(),
        ));
    }
}

/// A timeout that reaches the leader renew deadline on kube-system's locks.
fn leader_election(s: &Subject, out: &mut Vec<Finding>) -> bool {
    let Subject { c, w, ref certain, ref possible, .. } = *s;
    // Leader election: a renewal that waits out the webhook's timeout misses the renew
    // deadline, whatever the failurePolicy (open-policy-agent/gatekeeper#3829).
    let lock_targets: Vec<&(&Target, String)> = certain
        .iter()
        .chain(possible.iter())
        .filter(|(t, _)| t.object.namespace == Some("kube-system") && LOCK_RESOURCES.contains(&t.object.resource))
        .collect();
    let leader_election = !lock_targets.is_empty() && w.timeout_seconds >= LEADER_RENEW_DEADLINE_SECONDS;
    if leader_election {
        let patch = json!([{"op": "add", "path": format!("/webhooks/{}/timeoutSeconds", w.index), "value": 5}]);
        let mut f = s.finding(
            FindingKind::LeaderElection,
            Status::Warning,
            format!(
                "timeoutSeconds {} on {} reaches the leader renew deadline ({LEADER_RENEW_DEADLINE_SECONDS}s): a slow backend makes kube-controller-manager and kube-scheduler lose leadership",
                w.timeout_seconds,
                lock_targets.iter().map(|(t, _)| t.label).collect::<Vec<_>>().join(", ")
            ),
            "A lease renewal that waits for the webhook as long as the renew deadline fails, live backend or not; the controllers then restart and stop reconciling. Keep the timeout well under 10s (5s, or 3s as in gatekeeper#3829), or exclude kube-system.".into(),
        );
        for (target, why) in &lock_targets {
            f.evidence.push(Evidence { name: target.label.into(), value: why.clone() });
        }
        f.fix = Some(Fix { description: "Lower timeoutSeconds to 5".into(), command: fix_command(c, &patch), patch });
        out.push(f);
    }
    leader_election
}

/// A Fail webhook intercepting pod creation in its own backend's namespace.
fn self_deadlock(s: &Subject, out: &mut Vec<Finding>) {
    let Subject { c, w, facts, fail, ref conditions, .. } = *s;
    // Its own namespace: pods (or their controllers) there cannot come back once it dies.
    if fail && let Some(ns) = own_namespace(w) {
        let (labels, complete) = facts.namespace_labels(ns);
        let ns_match = w.namespace_selector.evaluate(&labels, complete);
        let intercepts_pods = w.rules.iter().any(|r| {
            ["CREATE"].iter().any(|op| {
                ["pods", "replicasets", "deployments"]
                    .iter()
                    .any(|res| r.matches(op, if *res == "pods" { "" } else { "apps" }, res, "", true))
            })
        });
        let object_ok = w.object_selector.is_empty() || w.object_selector.matches_unlabelled();
        // The CEL variables cost more than the rest of the analysis: only for conditions.
        let condition_match = if conditions.is_empty() {
            Tri::Yes
        } else {
            let recreate =
                request("the replicaset controller recreating a backend pod", "CREATE", "", REPLICASET_CONTROLLER, &[]);
            let input = recreate.admission(&Resource { namespace: Some(ns), ..TARGETS[0].object });
            match conditions.evaluate(&RequestContext::new(&input.request, &input.object, &input.old_object)) {
                ConditionOutcome::Called => Tri::Yes,
                ConditionOutcome::Skipped { .. } => Tri::No,
                ConditionOutcome::Unknown { .. } => Tri::Unknown,
            }
        };
        if intercepts_pods && object_ok && ns_match != Tri::No && condition_match != Tri::No {
            let certain_match = ns_match == Tri::Yes && condition_match == Tri::Yes;
            let mut f = s.finding(
                FindingKind::SelfDeadlock,
                if certain_match { Status::Critical } else { Status::Warning },
                format!(
                    "intercepts pod creation in its own namespace {ns}{}: once its backend dies, its pods cannot be recreated",
                    match (ns_match, condition_match) {
                        (Tri::Yes, Tri::Yes) => "",
                        (_, Tri::Yes) => " (if that namespace matches its namespaceSelector)",
                        _ => " (if its matchConditions let the request through)",
                    }
                ),
                "The webhook's backend runs in the namespace it intercepts: the replacement pod for a crashed backend needs the backend.".into(),
            );
            f.fix = Some(exclude_namespaces_fix(c, w, Some(ns)));
            out.push(f);
        }
    }
}

/// A Fail webhook's backend that one drain or crash takes down.
fn fragile_backend(s: &Subject, backend_down: bool, out: &mut Vec<Finding>) {
    let Subject { fail, ref backend, .. } = *s;
    // Backend fragility.
    if !backend_down && let Some((ns, name, svc)) = &backend {
        let mut reasons = Vec::new();
        if svc.ready_endpoints < 2 {
            reasons.push(format!("{} ready replica", svc.ready_endpoints));
        }
        if svc.ready_endpoints >= 2 && svc.nodes.len() == 1 {
            reasons
                .push(format!("all replicas on node {}", svc.nodes.iter().next().map(String::as_str).unwrap_or("?")));
        }
        if !svc.has_pdb {
            reasons.push("no PodDisruptionBudget".into());
        }
        if !reasons.is_empty() && fail {
            let mut f = s.finding(
                FindingKind::FragileBackend,
                Status::Warning,
                format!("backend {ns}/{name} is fragile: {}", reasons.join(", ")),
                "A Fail webhook needs a backend that survives node drains and crashes: 2+ replicas on different nodes and a PodDisruptionBudget.".into(),
            );
            f.evidence.push(Evidence { name: "backend".into(), value: svc.chain(ns) });
            out.push(f);
        }
    }
}

/// Long timeouts of Fail webhooks on hot resources.
fn hot_path_timeout(s: &Subject, leader_election: bool, out: &mut Vec<Finding>) {
    let Subject { c, w, fail, .. } = *s;
    // Timeouts on hot paths.
    let hot = w
        .rules
        .iter()
        .any(|r| r.resources.iter().any(|res| HOT_RESOURCES.contains(&res.split('/').next().unwrap_or(""))));
    if fail && hot && w.timeout_seconds > 5 && !leader_election {
        let patch = json!([{"op": "add", "path": format!("/webhooks/{}/timeoutSeconds", w.index), "value": 5}]);
        let mut f = s.finding(
            FindingKind::Timeout,
            Status::Warning,
            format!(
                "timeoutSeconds {} on hot resources: a slow backend stalls every matching request that long",
                w.timeout_seconds
            ),
            "Keep timeouts at 5s or less for Fail webhooks on pods and workloads.".into(),
        );
        f.fix = Some(Fix { description: "Lower timeoutSeconds to 5".into(), command: fix_command(c, &patch), patch });
        out.push(f);
    }
}

/// What admissionregistration.k8s.io/v1 asks of every webhook: side effects declared, v1 reviews,
/// and operations listed.
fn manifest_hygiene(s: &Subject, out: &mut Vec<Finding>) {
    let Subject { w, fail, .. } = *s;
    if !matches!(w.side_effects.as_str(), "None" | "NoneOnDryRun") {
        out.push(s.finding(
            FindingKind::SideEffects,
            Status::Warning,
            format!(
                "sideEffects {}: dry-run requests it matches are rejected",
                if w.side_effects.is_empty() { "unset" } else { &w.side_effects }
            ),
            "admissionregistration.k8s.io/v1 requires None or NoneOnDryRun.".into(),
        ));
    }
    if !w.admission_review_versions.iter().any(|v| v == "v1") {
        out.push(s.finding(
            FindingKind::ReviewVersions,
            Status::Warning,
            format!("admissionReviewVersions [{}] lacks v1", w.admission_review_versions.join(", ")),
            "Backends should accept admission.k8s.io/v1 AdmissionReviews.".into(),
        ));
    }
    if w.rules.iter().any(|r| r.operations.iter().any(|o| o == "*")) {
        out.push(s.finding(
            FindingKind::AllOperations,
            if fail { Status::Warning } else { Status::Ok },
            "matches every operation, DELETE and CONNECT included: a dead backend also blocks deletes and exec/port-forward".into(),
            "List the operations the policy needs (usually CREATE, UPDATE).".into(),
        ));
    }
}

/// The caBundle: empty, unreadable or expiring.
fn ca_bundle(s: &Subject, out: &mut Vec<Finding>) {
    let Subject { w, facts, fail, .. } = *s;
    // The CA bundle.
    if matches!(w.client, ClientConfig::Service { .. } | ClientConfig::Url(_)) {
        match w.ca_bundle.as_deref().map(str::trim) {
            None | Some("") => {
                let live = facts.services.is_some();
                out.push(s.finding(
                    FindingKind::CaBundle,
                    if live { Status::Warning } else { Status::Ok },
                    if live {
                        "caBundle is empty: the API server trusts only its system roots for this backend, which an in-cluster serving certificate rarely chains to".into()
                    } else {
                        "caBundle is empty in the manifest: something must inject it at run time (cert-manager's cainjector, istiod, vault-injector)".into()
                    },
                    "Without caBundle the API server verifies the backend against its own system trust roots; set caBundle to the CA that signed the backend's certificate (or let cert-manager's cainjector inject it).".into(),
                ));
            }
            Some(b64) => match crate::certs::parse_base64_bundle(b64) {
                Ok(certs) => {
                    let now = facts.now.unwrap_or_else(Timestamp::now);
                    if let Some(soonest) = certs.iter().min_by_key(|c| c.not_after) {
                        // Failing open, a broken CA silently skips the webhook: not an outage.
                        let status = match crate::certs::expiry_status(soonest.not_after, now) {
                            Status::Critical if !fail => Status::Warning,
                            s => s,
                        };
                        if status != Status::Ok {
                            out.push(s.finding(
                                FindingKind::CaBundle,
                                status,
                                format!(
                                    "caBundle certificate {} {}",
                                    soonest.name(),
                                    crate::certs::describe_expiry(soonest.not_after, now)
                                ),
                                if fail {
                                    "An expired CA in caBundle makes every call to the backend fail TLS verification."
                                        .into()
                                } else {
                                    "An expired CA in caBundle makes every call to the backend fail TLS verification; with failurePolicy Ignore the API server then skips the webhook, so what it does (inject, validate) silently does not happen.".into()
                                },
                            ));
                        }
                    }
                }
                Err(e) => out.push(s.finding(
                    FindingKind::CaBundle,
                    Status::Warning,
                    format!("caBundle is unreadable: {}", e.why),
                    "It must be base64 of PEM certificates.".into(),
                )),
            },
        }
    }
}

/// What the API server's metrics show right now: fail-open skips, failing calls, latency.
fn runtime(s: &Subject, backend_down: bool, out: &mut Vec<Finding>) {
    let Subject { fail, runtime, .. } = *s;
    if let Some(r) = runtime {
        if r.fail_open_per_second > 0.0 {
            out.push(s.finding(
                FindingKind::Runtime,
                Status::Warning,
                format!("fails open {:.1} times/s: its policy is being skipped right now", r.fail_open_per_second),
                "apiserver_admission_webhook_fail_open_count grows: calls to the backend fail and failurePolicy Ignore lets requests through.".into(),
            ));
        }
        if !backend_down && r.errors_per_second > 0.0 {
            out.push(s.finding(
                FindingKind::Runtime,
                if fail { Status::Critical } else { Status::Warning },
                format!("calls fail right now ({:.1}/s calling_webhook_error)", r.errors_per_second),
                "The API server cannot reach or use the backend (network policy, firewall, TLS, timeouts).".into(),
            ));
        }
        if let Some(p) = r.p99_seconds
            && p > 1.0
        {
            out.push(s.finding(
                FindingKind::Runtime,
                Status::Warning,
                format!("p99 admission latency {}", crate::duration::short_latency_secs(p)),
                "Every matched request waits for the webhook.".into(),
            ));
        }
    }
}

/// The worst severity of unaccepted findings.
pub fn worst(findings: &[Finding]) -> Status {
    findings.iter().filter(|f| f.accepted.is_none()).map(|f| f.severity).max().unwrap_or(Status::Ok)
}

/// An allowlist entry: a risk accepted on purpose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Accepted {
    pub config: String,
    #[serde(default)]
    pub webhook: Option<String>,
    /// A finding kind (`LOCKOUT`) or `*`.
    #[serde(default = "any_kind")]
    pub finding: String,
    pub reason: String,
}

fn any_kind() -> String {
    "*".into()
}

/// Marks the findings an allowlist accepts.
pub fn apply_allowlist(findings: &mut [Finding], allow: &[Accepted]) {
    for f in findings.iter_mut() {
        if let Some(a) = allow.iter().find(|a| {
            a.config == f.config
                && a.webhook.as_ref().is_none_or(|w| *w == f.webhook)
                && (a.finding == "*" || a.finding.eq_ignore_ascii_case(f.kind.label()))
        }) {
            f.accepted = Some(a.reason.clone());
        }
    }
}
