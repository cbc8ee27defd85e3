//! Admission webhook configurations as the analysis needs them, read from JSON of any served
//! version with that version's defaults (kubernetes `pkg/apis/admissionregistration/v1/
//! defaults.go`, `v1beta1/defaults.go`): in `admissionregistration.k8s.io/v1`
//! an unset failurePolicy is Fail and timeoutSeconds 10; in v1beta1 Ignore and 30, matchPolicy
//! Exact, sideEffects Unknown, admissionReviewVersions `[v1beta1]`.

use std::collections::BTreeMap;

use serde::Serialize;
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// A label selector (namespaceSelector, objectSelector). Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
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
    pub fn from_value(v: &Value) -> Selector {
        let match_labels = v["matchLabels"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
            .unwrap_or_default();
        let match_expressions = v["matchExpressions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| Requirement {
                        key: e["key"].as_str().unwrap_or("").to_string(),
                        operator: e["operator"].as_str().unwrap_or("").to_string(),
                        values: e["values"]
                            .as_array()
                            .map(|v| v.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Selector { match_labels, match_expressions }
    }

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    pub scope: String,
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

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
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
        check_shape(v, kind, source)?;
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            return Err(Error::invalid_data(
                format!("A {} in {source} has no name", kind.kind()),
                "metadata.name is empty",
            ));
        }
        let mut webhooks = Vec::new();
        for (index, w) in v["webhooks"].as_array().cloned().unwrap_or_default().iter().enumerate() {
            let fp = w["failurePolicy"].as_str();
            let failure_policy = match fp {
                Some("Ignore") => FailurePolicy::Ignore,
                Some(_) => FailurePolicy::Fail,
                None if beta => FailurePolicy::Ignore,
                None => FailurePolicy::Fail,
            };
            let client = &w["clientConfig"];
            let client_config = if let Some(url) = client["url"].as_str() {
                ClientConfig::Url(url.to_string())
            } else if client["service"].is_object() {
                let s = &client["service"];
                ClientConfig::Service {
                    namespace: s["namespace"].as_str().unwrap_or("default").to_string(),
                    name: s["name"].as_str().unwrap_or("").to_string(),
                    path: s["path"].as_str().map(str::to_string),
                    port: s["port"].as_u64().unwrap_or(443) as u16,
                }
            } else {
                ClientConfig::Missing
            };
            let rules = w["rules"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .map(|r| Rule {
                            operations: strings(&r["operations"]),
                            api_groups: strings(&r["apiGroups"]),
                            api_versions: strings(&r["apiVersions"]),
                            resources: strings(&r["resources"]),
                            scope: r["scope"].as_str().unwrap_or("*").to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            webhooks.push(Webhook {
                index,
                name: w["name"].as_str().unwrap_or("").to_string(),
                failure_policy,
                failure_policy_explicit: fp.is_some(),
                match_policy: w["matchPolicy"]
                    .as_str()
                    .unwrap_or(if beta { "Exact" } else { "Equivalent" })
                    .to_string(),
                side_effects: w["sideEffects"].as_str().unwrap_or(if beta { "Unknown" } else { "" }).to_string(),
                timeout_seconds: w["timeoutSeconds"].as_u64().map(|t| t as u32).unwrap_or(if beta { 30 } else { 10 }),
                admission_review_versions: match strings(&w["admissionReviewVersions"]) {
                    v if v.is_empty() && beta => vec!["v1beta1".into()],
                    v => v,
                },
                rules,
                namespace_selector: Selector::from_value(&w["namespaceSelector"]),
                namespace_selector_set: w["namespaceSelector"].is_object()
                    && !Selector::from_value(&w["namespaceSelector"]).is_empty(),
                object_selector: Selector::from_value(&w["objectSelector"]),
                match_conditions: w["matchConditions"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|c| {
                                (
                                    c["name"].as_str().unwrap_or("").to_string(),
                                    c["expression"].as_str().unwrap_or("").to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                client: client_config,
                ca_bundle: client["caBundle"].as_str().map(str::to_string),
            });
        }
        Ok(Some(WebhookConfig {
            kind,
            name,
            api_version,
            resource_version: v["metadata"]["resourceVersion"].as_str().map(str::to_string),
            webhooks,
            source: source.to_string(),
        }))
    }
}

/// Every webhook configuration in a set of documents (objects, `List`s, multi-document YAML).
/// The fields the analysis reads must have their API types: a string where a list belongs
/// would otherwise read as "no webhooks" or "no rules".
fn check_shape(v: &Value, kind: ConfigKind, source: &str) -> Result<()> {
    let name = v["metadata"]["name"].as_str().unwrap_or("?");
    let bad = |field: String, want: &str| {
        Err(Error::invalid_data(
            format!("{} {name} in {source} is not valid", kind.kind()),
            format!("{field} must be {want}"),
        ))
    };
    let is = |x: &Value, want: fn(&Value) -> bool| x.is_null() || want(x);
    if !is(&v["webhooks"], Value::is_array) {
        return bad("webhooks".into(), "a list");
    }
    for (i, w) in v["webhooks"].as_array().into_iter().flatten().enumerate() {
        if !w.is_object() {
            return bad(format!("webhooks[{i}]"), "an object");
        }
        for (field, want, ok) in [
            ("rules", "a list", is(&w["rules"], Value::is_array)),
            ("clientConfig", "an object", is(&w["clientConfig"], Value::is_object)),
            ("namespaceSelector", "an object", is(&w["namespaceSelector"], Value::is_object)),
            ("objectSelector", "an object", is(&w["objectSelector"], Value::is_object)),
            ("matchConditions", "a list", is(&w["matchConditions"], Value::is_array)),
            ("failurePolicy", "a string", is(&w["failurePolicy"], Value::is_string)),
            ("timeoutSeconds", "a number", is(&w["timeoutSeconds"], Value::is_number)),
        ] {
            if !ok {
                return bad(format!("webhooks[{i}].{field}"), want);
            }
        }
        for (j, r) in w["rules"].as_array().into_iter().flatten().enumerate() {
            for field in ["operations", "apiGroups", "apiVersions", "resources"] {
                if !is(&r[field], Value::is_array) {
                    return bad(format!("webhooks[{i}].rules[{j}].{field}"), "a list");
                }
            }
        }
    }
    Ok(())
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
