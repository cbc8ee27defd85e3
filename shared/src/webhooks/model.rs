//! Admission webhook configurations as the analysis needs them, read from JSON of any served
//! version with that version's defaults (kubernetes `pkg/apis/admissionregistration/v1/
//! defaults.go`, `v1beta1/defaults.go`): in `admissionregistration.k8s.io/v1`
//! an unset failurePolicy is Fail and timeoutSeconds 10; in v1beta1 Ignore and 30, matchPolicy
//! Exact, sideEffects Unknown, admissionReviewVersions `[v1beta1]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ConfigKind {
    Validating,
    Mutating,
    /// Admission policies (their findings name a binding where webhooks name a webhook).
    ValidatingPolicy,
    MutatingPolicy,
}

impl ConfigKind {
    /// `validatingwebhookconfiguration/NAME`, as kubectl names an object.
    pub fn object(self, name: &str) -> String {
        format!("{}/{name}", self.kind().to_ascii_lowercase())
    }

    pub fn kind(self) -> &'static str {
        match self {
            ConfigKind::Validating => "ValidatingWebhookConfiguration",
            ConfigKind::Mutating => "MutatingWebhookConfiguration",
            ConfigKind::ValidatingPolicy => "ValidatingAdmissionPolicy",
            ConfigKind::MutatingPolicy => "MutatingAdmissionPolicy",
        }
    }

    /// The plural resource (`validatingwebhookconfigurations`).
    pub fn resource(self) -> &'static str {
        match self {
            ConfigKind::Validating => "validatingwebhookconfigurations",
            ConfigKind::Mutating => "mutatingwebhookconfigurations",
            ConfigKind::ValidatingPolicy => "validatingadmissionpolicies",
            ConfigKind::MutatingPolicy => "mutatingadmissionpolicies",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FailurePolicy {
    Fail,
    Ignore,
}

/// A label selector requirement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// A label selector (namespaceSelector, objectSelector). Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

/// Three-valued answer for selectors evaluated on partly known labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Tri {
    Yes,
    No,
    Unknown,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Evaluates against labels where only the keys in `known` are known to be absent-or-set;
    /// `complete` means the label set is exact (a namespace read from the cluster).
    pub fn evaluate(&self, labels: &BTreeMap<String, String>, complete: bool) -> Tri {
        let mut unknown = false;
        let lookup = |key: &str| -> Option<Option<&String>> {
            match labels.get(key) {
                Some(v) => Some(Some(v)),
                None if complete => Some(None),
                None => None,
            }
        };
        for (k, v) in &self.match_labels {
            match lookup(k) {
                Some(Some(have)) if have == v => {}
                Some(_) => return Tri::No,
                None => unknown = true,
            }
        }
        for r in &self.match_expressions {
            let known = lookup(&r.key);
            let outcome = match (r.operator.as_str(), known) {
                ("In", Some(v)) => Some(v.is_some_and(|v| r.values.contains(v))),
                ("NotIn", Some(v)) => Some(!v.is_some_and(|v| r.values.contains(v))),
                ("Exists", Some(v)) => Some(v.is_some()),
                ("DoesNotExist", Some(v)) => Some(v.is_none()),
                (_, None) => None,
                _ => Some(false),
            };
            match outcome {
                Some(true) => {}
                Some(false) => return Tri::No,
                None => unknown = true,
            }
        }
        if unknown { Tri::Unknown } else { Tri::Yes }
    }

    /// Does an object without any label match? (An opt-in selector does not.)
    pub fn matches_unlabelled(&self) -> bool {
        self.evaluate(&BTreeMap::new(), true) == Tri::Yes
    }

    /// `key op [values]` for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.extend(self.match_expressions.iter().map(|r| {
            if r.values.is_empty() {
                format!("{} {}", r.key, r.operator)
            } else {
                format!("{} {} [{}]", r.key, r.operator, r.values.join(","))
            }
        }));
        if parts.is_empty() { "(matches everything)".into() } else { parts.join(", ") }
    }
}

/// One rule (operations × groups × versions × resources × scope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    pub scope: String,
}

impl Default for Rule {
    /// An unset scope is `*` (every scope).
    fn default() -> Rule {
        Rule { operations: vec![], api_groups: vec![], api_versions: vec![], resources: vec![], scope: "*".into() }
    }
}

impl Rule {
    /// Does the rule intercept `operation` on `group`/`resource[/subresource]` with the given
    /// scope? As the API server's rules matcher does it: `res/sub` with `*` wildcards on either
    /// side, so `*/*` and `pods/*` also match the main resource, `*` and `pods` no subresource.
    pub fn matches(&self, operation: &str, group: &str, resource: &str, subresource: &str, namespaced: bool) -> bool {
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        let resource_ok = self.resources.iter().any(|r| {
            let (rr, rs) = r.split_once('/').unwrap_or((r.as_str(), ""));
            (rr == "*" || rr == resource) && (rs == "*" || rs == subresource)
        });
        let scope_ok = match self.scope.as_str() {
            "Namespaced" => namespaced,
            "Cluster" => !namespaced,
            _ => true,
        };
        any(&self.operations, operation)
            && any(&self.api_groups, group)
            && !self.api_versions.is_empty()
            && resource_ok
            && scope_ok
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {} in {} ({})",
            self.operations.join(","),
            self.resources.join(","),
            self.api_groups
                .iter()
                .map(|g| if g.is_empty() { "core".to_string() } else { g.clone() })
                .collect::<Vec<_>>()
                .join(","),
            self.scope
        )
    }
}

/// Where the API server sends the AdmissionReview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClientConfig {
    Service { namespace: String, name: String, path: Option<String>, port: u16 },
    Url(String),
    Missing,
}

/// One webhook of a configuration, defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Position in the configuration's `webhooks` list (for JSON patches).
    pub index: usize,
    pub name: String,
    pub failure_policy: FailurePolicy,
    /// False when the policy comes from the API version's default.
    pub failure_policy_explicit: bool,
    pub match_policy: String,
    pub side_effects: String,
    pub timeout_seconds: u32,
    pub admission_review_versions: Vec<String>,
    pub rules: Vec<Rule>,
    pub namespace_selector: Selector,
    pub namespace_selector_set: bool,
    pub object_selector: Selector,
    pub match_conditions: Vec<(String, String)>,
    pub client: ClientConfig,
    pub ca_bundle: Option<String>,
}

/// A Validating/MutatingWebhookConfiguration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    pub kind: ConfigKind,
    pub name: String,
    pub api_version: String,
    pub resource_version: Option<String>,
    pub webhooks: Vec<Webhook>,
    /// Where it came from (a file, or "cluster").
    pub source: String,
}

/// A webhook configuration as written: the fields the analysis reads, with their API types.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireConfig {
    metadata: WireMetadata,
    webhooks: Vec<WireWebhook>,
}

/// The metadata the analysis reads, of a configuration, a policy or a binding.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct WireMetadata {
    pub(super) name: String,
    pub(super) resource_version: Option<String>,
}

/// A webhook as written, before the API version's defaults.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireWebhook {
    name: String,
    failure_policy: Option<FailurePolicyName>,
    match_policy: Option<String>,
    side_effects: Option<String>,
    timeout_seconds: Option<u32>,
    admission_review_versions: Vec<String>,
    rules: Vec<Rule>,
    namespace_selector: Selector,
    object_selector: Selector,
    match_conditions: Vec<MatchCondition>,
    client_config: WireClientConfig,
}

/// Any failurePolicy but `Ignore` fails closed, as the API server treats it.
#[derive(Deserialize)]
#[serde(from = "String")]
struct FailurePolicyName(FailurePolicy);

impl From<String> for FailurePolicyName {
    fn from(name: String) -> Self {
        FailurePolicyName(if name == "Ignore" { FailurePolicy::Ignore } else { FailurePolicy::Fail })
    }
}

/// A `matchConditions` entry: a named CEL expression.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct MatchCondition {
    pub(super) name: String,
    pub(super) expression: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireClientConfig {
    url: Option<String>,
    service: Option<WireService>,
    ca_bundle: Option<String>,
}

#[derive(Deserialize)]
#[serde(default)]
struct WireService {
    namespace: String,
    name: String,
    path: Option<String>,
    port: u16,
}

impl Default for WireService {
    fn default() -> Self {
        WireService { namespace: "default".into(), name: String::new(), path: None, port: 443 }
    }
}

/// Reads `v` as `T` with `null`s as unset; a wrong type names its field
/// (`webhooks[0].rules: invalid type: string "pods", expected a sequence`).
pub(super) fn read_object<T: serde::de::DeserializeOwned>(v: &Value, what: impl Fn() -> String) -> Result<T> {
    let mut read = serde_path_to_error::deserialize(v);
    if read.is_err() {
        // A `null` reads as unset, as the API server's decoder reads it.
        let mut without_nulls = v.clone();
        drop_nulls(&mut without_nulls);
        read = serde_path_to_error::deserialize(&without_nulls);
    }
    read.map_err(|e| Error::invalid_data(format!("{} is not valid", what()), format!("{}: {}", e.path(), e.inner())))
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

impl WebhookConfig {
    /// Reads one object; `Ok(None)` when it is not a webhook configuration.
    pub fn from_value(v: &Value, source: &str) -> Result<Option<WebhookConfig>> {
        let kind = match v["kind"].as_str() {
            Some("ValidatingWebhookConfiguration") => ConfigKind::Validating,
            Some("MutatingWebhookConfiguration") => ConfigKind::Mutating,
            _ => return Ok(None),
        };
        let api_version = v["apiVersion"].as_str().unwrap_or("admissionregistration.k8s.io/v1").to_string();
        let beta = api_version.ends_with("/v1beta1");
        let name = v["metadata"]["name"].as_str().unwrap_or("?");
        let wire: WireConfig = read_object(v, || format!("{} {name} in {source}", kind.kind()))?;
        if wire.metadata.name.is_empty() {
            return Err(Error::invalid_data(
                format!("A {} in {source} has no name", kind.kind()),
                "metadata.name is empty",
            ));
        }
        let webhooks = wire.webhooks.into_iter().enumerate().map(|(index, w)| {
            let client = match (w.client_config.url, w.client_config.service) {
                (Some(url), _) => ClientConfig::Url(url),
                (None, Some(s)) => {
                    ClientConfig::Service { namespace: s.namespace, name: s.name, path: s.path, port: s.port }
                }
                (None, None) => ClientConfig::Missing,
            };
            Webhook {
                index,
                name: w.name,
                failure_policy: match &w.failure_policy {
                    Some(FailurePolicyName(policy)) => *policy,
                    None if beta => FailurePolicy::Ignore,
                    None => FailurePolicy::Fail,
                },
                failure_policy_explicit: w.failure_policy.is_some(),
                match_policy: w.match_policy.unwrap_or_else(|| if beta { "Exact" } else { "Equivalent" }.into()),
                side_effects: w.side_effects.unwrap_or_else(|| if beta { "Unknown" } else { "" }.into()),
                timeout_seconds: w.timeout_seconds.unwrap_or(if beta { 30 } else { 10 }),
                admission_review_versions: match w.admission_review_versions {
                    v if v.is_empty() && beta => vec!["v1beta1".into()],
                    v => v,
                },
                rules: w.rules,
                namespace_selector_set: !w.namespace_selector.is_empty(),
                namespace_selector: w.namespace_selector,
                object_selector: w.object_selector,
                match_conditions: w.match_conditions.into_iter().map(|c| (c.name, c.expression)).collect(),
                client,
                ca_bundle: w.client_config.ca_bundle,
            }
        });
        Ok(Some(WebhookConfig {
            kind,
            name: wire.metadata.name,
            api_version,
            resource_version: wire.metadata.resource_version,
            webhooks: webhooks.collect(),
            source: source.to_string(),
        }))
    }
}

pub fn configs_from_documents(docs: &[Value], source: &str) -> Result<Vec<WebhookConfig>> {
    let mut out = Vec::new();
    for (index, d) in docs.iter().enumerate() {
        let (api_version, kind) = (d["apiVersion"].as_str().unwrap_or(""), d["kind"].as_str().unwrap_or(""));
        if api_version.is_empty() || kind.is_empty() {
            return Err(Error::invalid_data(
                format!("Document {} of {source} is not a Kubernetes object", index + 1),
                "it has no apiVersion and kind",
            ));
        }
        // A kind of the admission group this reader does not know would be skipped silently.
        if api_version.starts_with("admissionregistration.k8s.io/")
            && !matches!(
                kind,
                "ValidatingWebhookConfiguration"
                    | "MutatingWebhookConfiguration"
                    | "ValidatingWebhookConfigurationList"
                    | "MutatingWebhookConfigurationList"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
                    | "MutatingAdmissionPolicy"
                    | "MutatingAdmissionPolicyBinding"
            )
        {
            return Err(Error::invalid_data(
                format!("Document {} of {source} has an unknown kind {kind:?} of {api_version}", index + 1),
                "it is not a webhook configuration or an admission policy",
            ));
        }
        if kind.ends_with("List") {
            out.extend(configs_from_documents(
                d["items"].as_array().map(std::vec::Vec::as_slice).unwrap_or(&[]),
                source,
            )?);
        } else if let Some(c) = WebhookConfig::from_value(d, source)? {
            out.push(c);
        }
    }
    Ok(out)
}
