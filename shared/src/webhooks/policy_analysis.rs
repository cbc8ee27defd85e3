//! Which ValidatingAdmissionPolicy bindings reject what the cluster needs to heal because the
//! policy cannot be configured: a `paramKind` the API does not serve, or a `paramRef` that finds
//! no object with `parameterNotFoundAction: Deny`. The API server turns either into an error of
//! the policy's failurePolicy for every request the policy and binding match — before
//! matchConditions are looked at (k8s.io/apiserver `pkg/admission/plugin/policy/generic/
//! policy_dispatcher.go`: `Dispatch`, `CollectParams`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::analysis::{ClusterFacts, Finding, FindingKind, Fix};
use super::model::{FailurePolicy, Tri};
use super::policies::{AdmissionPolicy, MatchResources, ParamKind, ParamRef, Policies, PolicyBinding};
use super::requests::{HealingRequest, TARGETS, Target};
use crate::exit::Status;
use crate::report::Evidence;

/// Whether the API serves a paramKind, from discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindState {
    Served { namespaced: bool },
    NotServed,
}

/// What a live scan knows of policies' params. Offline scans know nothing.
#[derive(Debug, Clone, Default)]
pub struct PolicyFacts {
    /// By (apiVersion, kind); a kind not listed is unknown (offline, or discovery failed).
    pub param_kinds: BTreeMap<(String, String), KindState>,
    /// Whether a binding's paramRef finds an object: by (binding, namespace looked in), the
    /// namespace "" when the lookup does not depend on the request's namespace.
    pub params_found: BTreeMap<(String, String), bool>,
}

impl PolicyFacts {
    fn kind(&self, kind: &ParamKind) -> Option<KindState> {
        self.param_kinds.get(&(kind.api_version.clone(), kind.kind.clone())).copied()
    }

    /// Whether params of `kind` live in namespaces (unknown: true unless a well-known
    /// cluster-scoped kind).
    pub fn kind_is_namespaced(&self, kind: &ParamKind) -> bool {
        match self.kind(kind) {
            Some(KindState::Served { namespaced }) => namespaced,
            _ => !matches!(
                kind.kind.as_str(),
                "Namespace" | "Node" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
            ),
        }
    }
}

/// The namespace a binding's params are read from for a request in `request_namespace`, "" when
/// it does not depend on the request (a set `paramRef.namespace`, a cluster-scoped paramKind).
pub fn param_namespace<'a>(param_ref: &'a ParamRef, namespaced_kind: bool, request_namespace: &'a str) -> &'a str {
    match &param_ref.namespace {
        Some(ns) => ns,
        None if namespaced_kind => request_namespace,
        None => "",
    }
}

/// `ConfigMap kube-system/limits`, `Constraint all-must-have-owner`, `ConfigMap objects selected
/// by tier=x in kube-system`.
fn param_text(kind: &ParamKind, param_ref: &ParamRef, namespace: &str) -> String {
    match (&param_ref.name, &param_ref.selector, namespace) {
        (Some(n), _, "") => format!("{} {n}", kind.kind),
        (Some(n), _, ns) => format!("{} {ns}/{n}", kind.kind),
        (None, Some(s), "") => format!("{} objects selected by {}", kind.kind, s.describe()),
        (None, Some(s), ns) => format!("{} objects selected by {} in {ns}", kind.kind, s.describe()),
        (None, None, _) => format!("{} (no name nor selector)", kind.kind),
    }
}

/// Why every request the binding matches fails, if it does.
fn configuration_error(
    kind: &ParamKind,
    param_ref: &ParamRef,
    binding: &PolicyBinding,
    facts: &PolicyFacts,
    request_namespace: &str,
) -> Option<(Tri, String)> {
    if facts.kind(kind) == Some(KindState::NotServed) {
        return Some((Tri::Yes, format!("paramKind {} {} not served by this API server", kind.api_version, kind.kind)));
    }
    if !param_ref.deny_when_missing {
        // Allow: no param object admits the request.
        return None;
    }
    let found = facts
        .params_found
        .get(&(binding.name.clone(), String::new()))
        .or_else(|| facts.params_found.get(&(binding.name.clone(), request_namespace.to_string())));
    let param = param_text(kind, param_ref, param_ref.namespace.as_deref().unwrap_or(request_namespace));
    match found {
        Some(true) => None,
        Some(false) => Some((Tri::Yes, format!("param {param} missing (parameterNotFoundAction Deny)"))),
        None => Some((
            Tri::Unknown,
            format!("if param {param} is missing, parameterNotFoundAction Deny rejects these requests"),
        )),
    }
}

/// Do the policy's constraints (or a binding's resources) select this request? As the API
/// server's matcher: resourceRules (with resourceNames), excludeResourceRules, namespaceSelector,
/// objectSelector. `rules_required` is false for a binding, whose empty rules do not narrow.
pub(super) fn selects(
    m: &MatchResources,
    rules_required: bool,
    target: &Target,
    healing: &HealingRequest,
    facts: &ClusterFacts,
) -> (Tri, String) {
    let object = &target.object;
    let namespaced = object.namespace.is_some();
    let matches = |r: &&super::policies::NamedRule| r.matches(healing.operation, healing.name, object, namespaced);
    let rule = m.rules.iter().find(matches);
    if rule.is_none() && (rules_required || !m.rules.is_empty()) {
        return (Tri::No, String::new());
    }
    if m.exclude.iter().any(|r| matches(&r)) {
        return (Tri::No, format!("{}: excludeResourceRules exclude it", healing.what));
    }
    let mut why = match rule {
        Some(r) => format!("{}: rule {}", healing.what, r.rule.describe()),
        None => healing.what.to_string(),
    };
    let mut result = Tri::Yes;
    let labels = healing.label_map();
    match super::analysis::namespace_gate(&m.namespace_selector, target, healing, &labels, facts) {
        (Tri::No, excluded) => return (Tri::No, excluded),
        (Tri::Unknown, note) => {
            result = Tri::Unknown;
            why.push_str(&note);
        }
        (Tri::Yes, note) => why.push_str(&note),
    }
    if !m.object_selector.is_empty() && m.object_selector.evaluate(&labels, true) != Tri::Yes {
        return (
            Tri::No,
            format!("{}: objectSelector {} does not select it", healing.what, m.object_selector.describe()),
        );
    }
    (result, why)
}

pub(super) fn both(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::No, _) | (_, Tri::No) => Tri::No,
        (Tri::Yes, Tri::Yes) => Tri::Yes,
        _ => Tri::Unknown,
    }
}

/// Analyses every binding of `policies`. `param_kinds_namespaced` tells, by (apiVersion, kind),
/// whether a paramKind is namespaced (a live scan reads it from discovery; offline the common
/// kinds are known).
pub fn analyse_policies(policies: &Policies, facts: &ClusterFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    for binding in &policies.bindings {
        let Some(policy) = policies.policy_of(binding) else { continue };
        let (Some(kind), Some(param_ref)) = (&policy.param_kind, &binding.param_ref) else { continue };
        let mut certain: Vec<(&Target, String)> = Vec::new();
        let mut possible: Vec<(&Target, String)> = Vec::new();
        let mut errors: BTreeSet<String> = BTreeSet::new();
        for target in TARGETS {
            let mut verdict = Tri::No;
            let mut evidence = String::new();
            for healing in target.requests {
                let (by_policy, why) = selects(&policy.constraints, true, target, healing, facts);
                let by_binding =
                    binding.resources.as_ref().map_or(Tri::Yes, |m| selects(m, false, target, healing, facts).0);
                let matched = both(by_policy, by_binding);
                if matched == Tri::No {
                    continue;
                }
                let namespaced_kind = facts.policies.kind_is_namespaced(kind);
                let ns = param_namespace(param_ref, namespaced_kind, target.object.namespace.unwrap_or(""));
                let Some((error_known, error)) = configuration_error(kind, param_ref, binding, &facts.policies, ns)
                else {
                    continue;
                };
                let now = both(matched, error_known);
                if now == Tri::Yes || verdict == Tri::No {
                    verdict = now;
                    evidence = format!("{why}; {error}");
                    errors.insert(error);
                }
                if verdict == Tri::Yes {
                    break;
                }
            }
            match verdict {
                Tri::Yes => certain.push((target, evidence)),
                Tri::Unknown => possible.push((target, evidence)),
                Tri::No => {}
            }
        }
        if let Some(f) = finding(policy, binding, &certain, &possible, &errors) {
            out.push(f);
        } else if let Some(f) = outage_elsewhere(policy, binding, kind, param_ref, facts) {
            out.push(f);
        }
    }
    out.extend(super::policy_validations::analyse_validations(policies, facts));
    out
}

/// A binding that fails everything it matches, none of it what the cluster needs to heal: a
/// warning naming what cannot be written (known only when the failure does not depend on the
/// request's namespace).
fn outage_elsewhere(
    policy: &AdmissionPolicy,
    binding: &PolicyBinding,
    kind: &ParamKind,
    param_ref: &ParamRef,
    facts: &ClusterFacts,
) -> Option<Finding> {
    let namespace_independent = param_ref.namespace.is_some() || !facts.policies.kind_is_namespaced(kind);
    let (Tri::Yes, error) = configuration_error(kind, param_ref, binding, &facts.policies, "")? else {
        return None;
    };
    if !namespace_independent && facts.policies.kind(kind) != Some(KindState::NotServed) {
        return None;
    }
    let rules: Vec<super::model::Rule> = policy.constraints.rules.iter().map(|r| r.rule.clone()).collect();
    let radius = super::analysis::blast_radius(&rules);
    let fail = policy.failure_policy == FailurePolicy::Fail;
    let mut f = policy_finding(
        policy,
        binding,
        Status::Warning,
        if fail {
            format!("{error}: {radius} (failurePolicy Fail)")
        } else {
            format!("misconfigured, so it enforces nothing (failurePolicy Ignore): {error}")
        },
    );
    f.fix = fail.then(|| ignore_fix(policy, &error));
    f.blast_radius = fail.then_some(radius);
    Some(f)
}

/// A POLICY CONFIG finding about `binding` of `policy`, without evidence or fix.
fn policy_finding(policy: &AdmissionPolicy, binding: &PolicyBinding, severity: Status, summary: String) -> Finding {
    binding_finding(FindingKind::PolicyConfig, EXPLANATION, policy, binding, severity, summary)
}

/// A finding about `binding` of `policy` (the configuration is the policy, the "webhook" its
/// binding), without evidence or fix.
pub(super) fn binding_finding(
    kind: FindingKind,
    explanation: &str,
    policy: &AdmissionPolicy,
    binding: &PolicyBinding,
    severity: Status,
    summary: String,
) -> Finding {
    Finding {
        kind,
        severity,
        config_kind: policy.kind.config_kind(),
        config: policy.name.clone(),
        webhook: binding.name.clone(),
        webhook_index: 0,
        summary,
        explanation: explanation.into(),
        evidence: Vec::new(),
        fix: None,
        accepted: None,
        blast_radius: None,
    }
}

const EXPLANATION: &str = "An admission policy whose binding cannot be configured (its paramKind not served, or no param object with parameterNotFoundAction Deny) fails every request the policy and binding match with the policy's failurePolicy, whatever its matchConditions say. Policies and bindings are never themselves subject to admission policies, so they can always be fixed through the API.";

/// Diagnosis first (the param to restore), then the lever: fail open.
fn ignore_fix(policy: &AdmissionPolicy, error: &str) -> Fix {
    let patch = json!([{"op": "add", "path": "/spec/failurePolicy", "value": "Ignore"}]);
    let restore = match error.strip_prefix("param ").and_then(|e| e.split_once(" missing (")) {
        Some((param, _)) => format!("Restore the param the binding reads ({param}), or fail open meanwhile"),
        None => "Fix the policy's paramKind or the binding, or fail open meanwhile".into(),
    };
    Fix {
        description: format!(
            "{restore}: failurePolicy Ignore on policy {} (it stops enforcing; undo: set it back to Fail)",
            policy.name
        ),
        command: format!("kubectl patch {} {} --type=json -p '{patch}'", policy.kind.resource(), policy.name),
        patch,
    }
}

fn finding(
    policy: &AdmissionPolicy,
    binding: &PolicyBinding,
    certain: &[(&Target, String)],
    possible: &[(&Target, String)],
    errors: &BTreeSet<String>,
) -> Option<Finding> {
    if certain.is_empty() && possible.is_empty() {
        return None;
    }
    let fail = policy.failure_policy == FailurePolicy::Fail;
    let policy_text = if policy.failure_policy_explicit {
        format!("failurePolicy {:?}", policy.failure_policy)
    } else {
        format!("failurePolicy {:?} (the default)", policy.failure_policy)
    };
    let critical: Vec<&str> = certain.iter().filter(|(t, _)| t.critical).map(|(t, _)| t.label).collect();
    let others: Vec<&str> = certain.iter().filter(|(t, _)| !t.critical).map(|(t, _)| t.label).collect();
    let error = errors.iter().next().cloned().unwrap_or_default();
    let (severity, summary) = if certain.is_empty() {
        let labels: Vec<&str> = possible.iter().map(|(t, _)| t.label).collect();
        let severity = if fail && possible.iter().any(|(t, _)| t.critical) { Status::Warning } else { Status::Ok };
        (severity, format!("may reject {} ({policy_text}): cannot tell without the cluster", labels.join(", ")))
    } else if !fail {
        (Status::Warning, format!("misconfigured, so it enforces nothing ({policy_text}): {error}"))
    } else if !critical.is_empty() {
        (Status::Critical, format!("LIVE OUTAGE: {error}, and {policy_text} rejects {}", critical.join(", ")))
    } else {
        (Status::Warning, format!("{error}: {} are rejected ({policy_text})", others.join(", ")))
    };
    let mut f = policy_finding(policy, binding, severity, summary);
    f.evidence =
        certain.iter().chain(possible).map(|(t, why)| Evidence { name: t.label.into(), value: why.clone() }).collect();
    if fail && !certain.is_empty() {
        f.fix = Some(ignore_fix(policy, &error));
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::policies::policies_from_documents;
    use serde_json::{Value, json};

    /// A policy on pod writes with a ConfigMap param, bound to kube-system (the shape of the
    /// Kubernetes documentation's examples), edited per case.
    fn documents(edit: impl FnOnce(&mut Value, &mut Value)) -> Policies {
        let mut policy = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "pod-limits.example.com"},
            "spec": {
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
                "validations": [{"expression": "object.metadata.name.size() < int(params.data.maxLength)"}]
            }
        });
        let mut binding = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "pod-limits-binding"},
            "spec": {
                "policyName": "pod-limits.example.com",
                "validationActions": ["Deny"],
                "paramRef": {"name": "pod-limits", "parameterNotFoundAction": "Deny"},
                "matchResources": {"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["kube-system"]}]}}
            }
        });
        edit(&mut policy, &mut binding);
        policies_from_documents(&[policy, binding], "test").unwrap()
    }

    fn live(found: Option<bool>, served: bool) -> ClusterFacts {
        let mut facts = ClusterFacts::default();
        facts.policies.param_kinds.insert(
            ("v1".into(), "ConfigMap".into()),
            if served { KindState::Served { namespaced: true } } else { KindState::NotServed },
        );
        if let Some(found) = found {
            facts.policies.params_found.insert(("pod-limits-binding".into(), "kube-system".into()), found);
        }
        facts
    }

    fn one(policies: &Policies, facts: &ClusterFacts) -> Option<Finding> {
        let mut all = analyse_policies(policies, facts);
        assert!(all.len() <= 1, "{all:#?}");
        all.pop()
    }

    #[test]
    fn a_missing_param_with_deny_rejects_the_mirror_pods_of_kube_system() {
        let f = one(&documents(|_, _| {}), &live(Some(false), true)).expect("a finding");
        assert_eq!((f.kind, f.severity), (FindingKind::PolicyConfig, Status::Critical));
        assert_eq!((f.config.as_str(), f.webhook.as_str()), ("pod-limits.example.com", "pod-limits-binding"));
        assert!(
            f.summary.starts_with("LIVE OUTAGE: param ConfigMap kube-system/pod-limits missing (parameterNotFoundAction Deny), and failurePolicy Fail (the default) rejects pods in kube-system"),
            "{}",
            f.summary
        );
        assert!(f.evidence[0].value.contains("the kubelet"), "{:?}", f.evidence);
        let fix = f.fix.expect("a fix");
        assert!(fix.description.starts_with("Restore the param the binding reads (ConfigMap kube-system/pod-limits)"));
        assert_eq!(
            fix.command,
            r#"kubectl patch validatingadmissionpolicy pod-limits.example.com --type=json -p '[{"op":"add","path":"/spec/failurePolicy","value":"Ignore"}]'"#
        );
    }

    #[test]
    fn verdicts_by_case() {
        type Edit = fn(&mut Value, &mut Value);
        let none: Edit = |_, _| {};
        // (name, edit, param found, paramKind served, severity, summary)
        type Case = (&'static str, Edit, Option<bool>, bool, Option<Status>, &'static str);
        let cases: &[Case] = &[
            ("the param exists", none, Some(true), true, None, ""),
            (
                "Allow admits without params",
                |_, b| b["spec"]["paramRef"]["parameterNotFoundAction"] = json!("Allow"),
                Some(false),
                true,
                None,
                "",
            ),
            ("paramKind not served", none, None, false, Some(Status::Critical), "paramKind v1 ConfigMap not served"),
            (
                "fails open: enforces nothing",
                |p, _| p["spec"]["failurePolicy"] = json!("Ignore"),
                Some(false),
                true,
                Some(Status::Warning),
                "misconfigured, so it enforces nothing (failurePolicy Ignore)",
            ),
            (
                "matchConditions do not help: params are collected first",
                |p, _| p["spec"]["matchConditions"] = json!([{"name": "never", "expression": "false"}]),
                Some(false),
                true,
                Some(Status::Critical),
                "LIVE OUTAGE",
            ),
            (
                "excludeResourceRules take pods out",
                |p, _| {
                    p["spec"]["matchConstraints"]["excludeResourceRules"] =
                        json!([{"apiGroups": [""], "apiVersions": ["*"], "operations": ["*"], "resources": ["pods"]}]);
                },
                Some(false),
                true,
                None,
                "",
            ),
            (
                "a binding for other namespaces",
                |_, b| {
                    b["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["operator"] =
                        json!("NotIn");
                },
                Some(false),
                true,
                None,
                "",
            ),
            (
                "resourceNames that are not the mirror pods",
                |p, _| p["spec"]["matchConstraints"]["resourceRules"][0]["resourceNames"] = json!(["my-app"]),
                Some(false),
                true,
                None,
                "",
            ),
            (
                "without a paramKind nothing can be missing",
                |p, _| p["spec"].as_object_mut().unwrap().retain(|k, _| k != "paramKind"),
                Some(false),
                true,
                None,
                "",
            ),
            (
                "offline the param is unknown: a possible lockout",
                none,
                None,
                true,
                Some(Status::Warning),
                "may reject pods in kube-system",
            ),
        ];
        for (name, edit, found, served, severity, summary) in cases {
            let mut facts = live(*found, *served);
            if name.starts_with("offline") {
                facts = ClusterFacts::default();
            }
            let f = one(&documents(*edit), &facts);
            assert_eq!(f.as_ref().map(|f| f.severity), *severity, "{name}: {f:#?}");
            if let Some(f) = f {
                assert!(f.summary.contains(summary), "{name}: {}", f.summary);
            }
        }
    }

    #[test]
    fn the_documentation_csr_delegation_policy() {
        // tests/fixtures/webhooks/k8s-docs-csr-delegation-policy.yaml: ClusterRole CREATE only,
        // its ConfigMap param in a fixed namespace with Deny. Nothing the cluster needs to heal
        // creates ClusterRoles: offline, no finding.
        let p = crate::webhooks::policies::fixture("k8s-docs-csr-delegation-policy.yaml");
        assert_eq!((p.policies.len(), p.bindings.len()), (1, 1));
        assert_eq!(p.bindings[0].param_ref.as_ref().and_then(|r| r.namespace.as_deref()), Some("csr-signer-installer"));
        assert!(analyse_policies(&p, &ClusterFacts::default()).is_empty());
        // Live with the ConfigMap gone: every ClusterRole creation fails (installing an
        // operator, for one). A warning naming what cannot be written, and the param to restore.
        let mut facts = live(None, true);
        facts.policies.params_found.insert(("installer-csr-delegation-policy-binding".into(), String::new()), false);
        let f = one(&p, &facts).expect("a finding");
        assert_eq!((f.kind, f.severity), (FindingKind::PolicyConfig, Status::Warning));
        assert_eq!(
            f.summary,
            "param ConfigMap csr-signer-installer/admission-policies-installer-csr-config missing (parameterNotFoundAction Deny): clusterroles.rbac.authorization.k8s.io cannot be created (failurePolicy Fail)"
        );
        assert!(
            f.fix
                .unwrap()
                .description
                .contains("(ConfigMap csr-signer-installer/admission-policies-installer-csr-config)")
        );
    }

    #[test]
    fn gatekeepers_generated_policy_fails_everything_once_its_constraint_kind_is_gone() {
        // tests/fixtures/webhooks/gatekeeper-generated-vap.yaml: what Gatekeeper's code makes of
        // its demo: every resource, paramKind the constraint's kind, parameterNotFoundAction
        // Allow. Offline, and live with the constraint CRD served, nothing fails.
        let p = crate::webhooks::policies::fixture("gatekeeper-generated-vap.yaml");
        assert_eq!((p.policies.len(), p.bindings.len()), (1, 1));
        assert!(analyse_policies(&p, &ClusterFacts::default()).is_empty());
        let kind = ("constraints.gatekeeper.sh/v1beta1".to_string(), "K8sRequiredLabels".to_string());
        let mut facts = ClusterFacts::default();
        facts.policies.param_kinds.insert(kind.clone(), KindState::Served { namespaced: false });
        assert!(analyse_policies(&p, &facts).is_empty());
        // Gatekeeper uninstalled, its CRDs gone, the generated policy left behind: the API
        // server fails every write it matches — everything, kube-system's pods included.
        facts.policies.param_kinds.insert(kind, KindState::NotServed);
        let f = one(&p, &facts).expect("a finding");
        assert_eq!((f.kind, f.severity), (FindingKind::PolicyConfig, Status::Critical));
        assert!(
            f.summary.starts_with("LIVE OUTAGE: paramKind constraints.gatekeeper.sh/v1beta1 K8sRequiredLabels not served by this API server, and failurePolicy Fail rejects pods in kube-system"),
            "{}",
            f.summary
        );
        assert!(
            f.fix.unwrap().command.starts_with("kubectl patch validatingadmissionpolicy gatekeeper-k8srequiredlabels ")
        );
    }

    #[test]
    fn the_documentation_match_conditions_policy_is_not_bound() {
        // tests/fixtures/webhooks/k8s-docs-policy-match-conditions.yaml: a v1alpha1 policy on
        // every CREATE/UPDATE, and no binding: it enforces nothing, so nothing can fail.
        let p = crate::webhooks::policies::fixture("k8s-docs-policy-match-conditions.yaml");
        assert_eq!((p.policies.len(), p.bindings.len()), (1, 0));
        assert_eq!(p.policies[0].match_conditions.len(), 3);
        assert!(analyse_policies(&p, &live(Some(false), true)).is_empty());
    }

    #[test]
    fn mutating_policies_fail_the_same_way_and_are_fixed_as_themselves() {
        let mutating = |p: &mut Value, b: &mut Value| {
            p["kind"] = json!("MutatingAdmissionPolicy");
            b["kind"] = json!("MutatingAdmissionPolicyBinding");
            b["spec"].as_object_mut().unwrap().remove("validationActions");
        };
        let f = one(&documents(mutating), &live(Some(false), true)).expect("a finding");
        assert_eq!((f.severity, f.config_kind), (Status::Critical, crate::webhooks::ConfigKind::MutatingPolicy));
        assert!(f.fix.unwrap().command.starts_with("kubectl patch mutatingadmissionpolicy pod-limits.example.com "));
        // A binding binds a policy of its own kind only.
        let crossed = documents(|p, _| p["kind"] = json!("MutatingAdmissionPolicy"));
        assert!(analyse_policies(&crossed, &live(Some(false), true)).is_empty());
    }

    #[test]
    fn a_binding_of_a_missing_policy_is_inert() {
        let p = documents(|_, b| b["spec"]["policyName"] = json!("gone"));
        assert!(analyse_policies(&p, &live(Some(false), true)).is_empty());
    }
}
