//! Admission policies and their bindings (`admissionregistration.k8s.io/v1`: Validating, GA in
//! 1.30; Mutating, GA in 1.36) as the analysis needs them: what they match, their failurePolicy
//! and their params. Field meanings and defaults: kubernetes
//! `staging/src/k8s.io/api/admissionregistration/v1/types.go` (`failurePolicy` defaults to Fail; a
//! binding's `paramRef.parameterNotFoundAction` is Allow or Deny).

use serde::Serialize;
use serde_json::Value;

use super::model::{FailurePolicy, Rule, Selector};

/// A rule with the object names it is limited to (`resourceNames`, empty for all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedRule {
    pub rule: Rule,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl NamedRule {
    pub fn matches(&self, operation: &str, name: &str, target: &super::requests::Resource, namespaced: bool) -> bool {
        self.rule.matches(operation, target.group, target.resource, target.subresource, namespaced)
            && (self.names.is_empty() || self.names.iter().any(|n| n == name))
    }
}

/// `matchConstraints` of a policy or `matchResources` of a binding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchResources {
    pub rules: Vec<NamedRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<NamedRule>,
    pub namespace_selector: Selector,
    pub object_selector: Selector,
}

/// `spec.paramKind` of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParamKind {
    pub api_version: String,
    pub kind: String,
}

impl ParamKind {
    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
    }
}

/// `spec.paramRef` of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParamRef {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub selector: Option<Selector>,
    /// `parameterNotFoundAction: Deny`: no param object makes every matched request a failure
    /// of the policy's failurePolicy.
    pub deny_when_missing: bool,
}

/// Validating or Mutating: the two kinds share params, matching and failure handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PolicyKind {
    Validating,
    Mutating,
}

impl PolicyKind {
    /// `ValidatingAdmissionPolicy`, `MutatingAdmissionPolicy`.
    pub fn kind(self) -> &'static str {
        match self {
            PolicyKind::Validating => "ValidatingAdmissionPolicy",
            PolicyKind::Mutating => "MutatingAdmissionPolicy",
        }
    }

    pub fn config_kind(self) -> super::model::ConfigKind {
        match self {
            PolicyKind::Validating => super::model::ConfigKind::ValidatingPolicy,
            PolicyKind::Mutating => super::model::ConfigKind::MutatingPolicy,
        }
    }

    /// The resource, singular, as kubectl takes it.
    pub fn resource(self) -> &'static str {
        match self {
            PolicyKind::Validating => "validatingadmissionpolicy",
            PolicyKind::Mutating => "mutatingadmissionpolicy",
        }
    }
}

/// A Validating or MutatingAdmissionPolicy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionPolicy {
    pub kind: PolicyKind,
    pub name: String,
    pub failure_policy: FailurePolicy,
    pub failure_policy_explicit: bool,
    pub param_kind: Option<ParamKind>,
    pub constraints: MatchResources,
    pub match_conditions: Vec<(String, String)>,
    pub validations: Vec<String>,
    pub source: String,
}

/// A Validating or MutatingAdmissionPolicyBinding.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyBinding {
    /// The kind of the policy it binds.
    pub kind: PolicyKind,
    pub name: String,
    pub policy: String,
    pub param_ref: Option<ParamRef>,
    /// Narrows the policy's constraints; None matches what the policy matches.
    pub resources: Option<MatchResources>,
    /// Deny, Warn, Audit (validating bindings only).
    pub validation_actions: Vec<String>,
    pub source: String,
}

/// The policies and bindings of some documents.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Policies {
    pub policies: Vec<AdmissionPolicy>,
    pub bindings: Vec<PolicyBinding>,
}

impl Policies {
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.bindings.is_empty()
    }

    pub fn extend(&mut self, other: Policies) {
        self.policies.extend(other.policies);
        self.bindings.extend(other.bindings);
    }

    /// The policy a binding names (of the binding's kind).
    pub fn policy_of(&self, binding: &PolicyBinding) -> Option<&AdmissionPolicy> {
        self.policies.iter().find(|p| p.kind == binding.kind && p.name == binding.policy)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn named_rules(v: &Value) -> Vec<NamedRule> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| NamedRule {
            rule: Rule {
                operations: strings(&r["operations"]),
                api_groups: strings(&r["apiGroups"]),
                api_versions: strings(&r["apiVersions"]),
                resources: strings(&r["resources"]),
                scope: r["scope"].as_str().unwrap_or("*").to_string(),
            },
            names: strings(&r["resourceNames"]),
        })
        .collect()
}

fn match_resources(v: &Value) -> MatchResources {
    MatchResources {
        rules: named_rules(&v["resourceRules"]),
        exclude: named_rules(&v["excludeResourceRules"]),
        namespace_selector: Selector::from_value(&v["namespaceSelector"]),
        object_selector: Selector::from_value(&v["objectSelector"]),
    }
}

fn policy(kind: PolicyKind, v: &Value, source: &str) -> AdmissionPolicy {
    let spec = &v["spec"];
    let failure = spec["failurePolicy"].as_str();
    AdmissionPolicy {
        kind,
        name: v["metadata"]["name"].as_str().unwrap_or("").to_string(),
        failure_policy: if failure == Some("Ignore") { FailurePolicy::Ignore } else { FailurePolicy::Fail },
        failure_policy_explicit: failure.is_some(),
        param_kind: spec["paramKind"]["kind"].as_str().map(|kind| ParamKind {
            api_version: spec["paramKind"]["apiVersion"].as_str().unwrap_or("v1").to_string(),
            kind: kind.to_string(),
        }),
        constraints: match_resources(&spec["matchConstraints"]),
        match_conditions: spec["matchConditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c["expression"].as_str().unwrap_or("").to_string()))
            .collect(),
        validations: spec["validations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["expression"].as_str().map(str::to_string))
            .collect(),
        source: source.to_string(),
    }
}

fn binding(kind: PolicyKind, v: &Value, source: &str) -> PolicyBinding {
    let spec = &v["spec"];
    let param_ref = spec["paramRef"].as_object().map(|_| {
        let p = &spec["paramRef"];
        ParamRef {
            name: p["name"].as_str().filter(|n| !n.is_empty()).map(str::to_string),
            namespace: p["namespace"].as_str().filter(|n| !n.is_empty()).map(str::to_string),
            selector: p["selector"].is_object().then(|| Selector::from_value(&p["selector"])),
            deny_when_missing: p["parameterNotFoundAction"].as_str() == Some("Deny"),
        }
    });
    PolicyBinding {
        kind,
        name: v["metadata"]["name"].as_str().unwrap_or("").to_string(),
        policy: spec["policyName"].as_str().unwrap_or("").to_string(),
        param_ref,
        resources: spec["matchResources"].is_object().then(|| match_resources(&spec["matchResources"])),
        validation_actions: strings(&spec["validationActions"]),
        source: source.to_string(),
    }
}

/// The admission policies and bindings among `docs` (Lists unpacked); other objects are skipped.
pub fn policies_from_documents(docs: &[Value], source: &str) -> Policies {
    let mut out = Policies::default();
    for d in docs {
        if !d["apiVersion"].as_str().is_some_and(|v| v.starts_with("admissionregistration.k8s.io/")) {
            if d["kind"].as_str().is_some_and(|k| k.ends_with("List")) {
                out.extend(policies_from_documents(
                    d["items"].as_array().map(std::vec::Vec::as_slice).unwrap_or(&[]),
                    source,
                ));
            }
            continue;
        }
        match d["kind"].as_str() {
            Some("ValidatingAdmissionPolicy") => out.policies.push(policy(PolicyKind::Validating, d, source)),
            Some("ValidatingAdmissionPolicyBinding") => out.bindings.push(binding(PolicyKind::Validating, d, source)),
            Some("MutatingAdmissionPolicy") => out.policies.push(policy(PolicyKind::Mutating, d, source)),
            Some("MutatingAdmissionPolicyBinding") => out.bindings.push(binding(PolicyKind::Mutating, d, source)),
            Some(k) if k.ends_with("List") => {
                out.extend(policies_from_documents(
                    d["items"].as_array().map(std::vec::Vec::as_slice).unwrap_or(&[]),
                    source,
                ));
            }
            _ => {}
        }
    }
    out
}

/// The policies of a file in tests/fixtures/webhooks/.
#[cfg(test)]
pub(crate) fn fixture(file: &str) -> Policies {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/webhooks").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let documents = crate::yaml::documents(file, &text).unwrap_or_else(|e| panic!("{file}: {e}"));
    policies_from_documents(&documents, file)
}
