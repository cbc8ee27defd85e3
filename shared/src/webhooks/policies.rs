//! Admission policies and their bindings (`admissionregistration.k8s.io/v1`: Validating, GA in
//! 1.30; Mutating, GA in 1.36) as the analysis needs them: what they match, their failurePolicy
//! and their params. Field meanings and defaults: kubernetes
//! `staging/src/k8s.io/api/admissionregistration/v1/types.go` (`failurePolicy` defaults to Fail; a
//! binding's `paramRef.parameterNotFoundAction` is Allow or Deny).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{FailurePolicy, Rule, Selector, WireMetadata, read_object};
use crate::error::Result;

/// A rule with the object names it is limited to (`resourceNames`, empty for all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedRule {
    #[serde(flatten)]
    pub rule: Rule,
    #[serde(skip_serializing_if = "Vec::is_empty", rename(deserialize = "resourceNames"), default)]
    pub names: Vec<String>,
}

impl NamedRule {
    pub fn matches(&self, operation: &str, name: &str, target: &super::requests::Resource, namespaced: bool) -> bool {
        self.rule.matches(operation, target.group, target.resource, target.subresource, namespaced)
            && (self.names.is_empty() || self.names.iter().any(|n| n == name))
    }
}

/// `matchConstraints` of a policy or `matchResources` of a binding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MatchResources {
    #[serde(rename(deserialize = "resourceRules"))]
    pub rules: Vec<NamedRule>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename(deserialize = "excludeResourceRules"))]
    pub exclude: Vec<NamedRule>,
    pub namespace_selector: Selector,
    pub object_selector: Selector,
}

/// `spec.paramKind` of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParamKind {
    #[serde(default = "core_v1")]
    pub api_version: String,
    pub kind: String,
}

fn core_v1() -> String {
    "v1".into()
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

/// A policy or binding as written: the fields the analysis reads, with their API types.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WireObject<Spec> {
    metadata: WireMetadata,
    spec: Spec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PolicySpec {
    failure_policy: Option<String>,
    param_kind: Option<ParamKind>,
    match_constraints: MatchResources,
    match_conditions: Vec<super::model::MatchCondition>,
    validations: Vec<Validation>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Validation {
    expression: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct BindingSpec {
    policy_name: String,
    param_ref: Option<WireParamRef>,
    match_resources: Option<MatchResources>,
    validation_actions: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireParamRef {
    name: Option<String>,
    namespace: Option<String>,
    selector: Option<Selector>,
    parameter_not_found_action: Option<String>,
}

fn policy(kind: PolicyKind, v: &Value, source: &str) -> Result<AdmissionPolicy> {
    let wire: WireObject<PolicySpec> = read_object(v, || described(kind.kind(), v, source))?;
    let spec = wire.spec;
    Ok(AdmissionPolicy {
        kind,
        name: wire.metadata.name,
        failure_policy: if spec.failure_policy.as_deref() == Some("Ignore") {
            FailurePolicy::Ignore
        } else {
            FailurePolicy::Fail
        },
        failure_policy_explicit: spec.failure_policy.is_some(),
        param_kind: spec.param_kind,
        constraints: spec.match_constraints,
        match_conditions: spec.match_conditions.into_iter().map(|c| (c.name, c.expression)).collect(),
        validations: spec.validations.into_iter().filter_map(|c| c.expression).collect(),
        source: source.to_string(),
    })
}

fn binding(kind: PolicyKind, v: &Value, source: &str) -> Result<PolicyBinding> {
    let wire: WireObject<BindingSpec> = read_object(v, || described(&format!("{}Binding", kind.kind()), v, source))?;
    let spec = wire.spec;
    let not_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Ok(PolicyBinding {
        kind,
        name: wire.metadata.name,
        policy: spec.policy_name,
        param_ref: spec.param_ref.map(|p| ParamRef {
            name: not_empty(p.name),
            namespace: not_empty(p.namespace),
            selector: p.selector,
            deny_when_missing: p.parameter_not_found_action.as_deref() == Some("Deny"),
        }),
        resources: spec.match_resources,
        validation_actions: spec.validation_actions,
        source: source.to_string(),
    })
}

/// "ValidatingAdmissionPolicy NAME in SOURCE", for an error.
fn described(kind: &str, v: &Value, source: &str) -> String {
    format!("{kind} {} in {source}", v["metadata"]["name"].as_str().unwrap_or("?"))
}

/// The admission policies and bindings among `docs` (Lists unpacked); other objects are skipped.
pub fn policies_from_documents(docs: &[Value], source: &str) -> Result<Policies> {
    let mut out = Policies::default();
    for d in docs {
        let admission = d["apiVersion"].as_str().is_some_and(|v| v.starts_with("admissionregistration.k8s.io/"));
        match (d["kind"].as_str(), admission) {
            (Some("ValidatingAdmissionPolicy"), true) => out.policies.push(policy(PolicyKind::Validating, d, source)?),
            (Some("MutatingAdmissionPolicy"), true) => out.policies.push(policy(PolicyKind::Mutating, d, source)?),
            (Some("ValidatingAdmissionPolicyBinding"), true) => {
                out.bindings.push(binding(PolicyKind::Validating, d, source)?);
            }
            (Some("MutatingAdmissionPolicyBinding"), true) => {
                out.bindings.push(binding(PolicyKind::Mutating, d, source)?);
            }
            (Some(k), _) if k.ends_with("List") => {
                out.extend(policies_from_documents(d["items"].as_array().map(Vec::as_slice).unwrap_or(&[]), source)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The policies of a file in tests/fixtures/webhooks/.
#[cfg(test)]
pub(crate) fn fixture(file: &str) -> Policies {
    let text = crate::test_files::text(&format!("tests/fixtures/webhooks/{file}"));
    let documents = crate::yaml::documents(file, &text).unwrap_or_else(|e| panic!("{file}: {e}"));
    policies_from_documents(&documents, file).unwrap_or_else(|e| panic!("{file}: {e}"))
}
