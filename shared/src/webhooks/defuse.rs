//! Defusing a webhook: the change `disarm` makes (fail open, exclude the system namespaces, or
//! delete the configuration) computed from the object as read, and reading the API server's
//! admission errors to name the webhook at fault.

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// What `disarm` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// failurePolicy: Ignore — requests pass while the backend is down
    Ignore,
    /// Keep the policy, but not for kube-system, kube-node-lease and the webhook's own namespace
    ExcludeSystem,
    /// Delete the whole configuration
    Delete,
}

/// The planned change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub mode: Mode,
    pub config: String,
    pub resource_version: String,
    /// The object to write back (None when deleting).
    pub updated: Option<Value>,
    /// One line per change.
    pub changes: Vec<String>,
    /// What the change does not cover.
    pub warnings: Vec<String>,
}

/// Computes the change of `mode` on `object` (a configuration as read from the API), for the
/// webhooks named in `only` (all when empty).
pub fn plan(object: &Value, mode: Mode, only: &[String]) -> Result<Plan> {
    let name = object["metadata"]["name"].as_str().unwrap_or("").to_string();
    let resource_version = object["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
    let webhooks = object["webhooks"].as_array().cloned().unwrap_or_default();
    let known: Vec<String> = webhooks.iter().filter_map(|w| w["name"].as_str().map(str::to_string)).collect();
    for o in only {
        if !known.contains(o) {
            return Err(Error::usage(
                format!("Configuration {name} has no webhook {o:?}"),
                format!("Its webhooks are: {}.", known.join(", ")),
            ));
        }
    }
    let selected = |w: &Value| only.is_empty() || only.iter().any(|o| w["name"].as_str() == Some(o.as_str()));
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    if mode == Mode::Delete {
        if !only.is_empty() && only.len() < known.len() {
            return Err(Error::usage(
                "--mode delete removes the whole configuration",
                "Drop --webhook, or use --mode ignore for single webhooks.",
            ));
        }
        changes.push(format!(
            "delete configuration {name} ({} webhook{})",
            known.len(),
            if known.len() == 1 { "" } else { "s" }
        ));
        return Ok(Plan { mode, config: name, resource_version, updated: None, changes, warnings });
    }
    let mut updated = object.clone();
    for (i, w) in webhooks.iter().enumerate() {
        if !selected(w) {
            continue;
        }
        let wname = w["name"].as_str().unwrap_or("");
        match mode {
            Mode::Ignore => {
                let before = w["failurePolicy"].as_str().unwrap_or("Fail (default)");
                if before == "Ignore" {
                    warnings.push(format!("{wname} already fails open"));
                } else {
                    updated["webhooks"][i]["failurePolicy"] = json!("Ignore");
                    changes.push(format!("{wname}: failurePolicy {before} → Ignore"));
                }
            }
            Mode::ExcludeSystem => {
                let (values, expression) =
                    super::analysis::system_exclusion(w["clientConfig"]["service"]["namespace"].as_str());
                let selector = &mut updated["webhooks"][i]["namespaceSelector"];
                if !selector.is_object() {
                    *selector = json!({});
                }
                match selector["matchExpressions"].as_array_mut() {
                    Some(exprs) => exprs.push(expression),
                    None => selector["matchExpressions"] = json!([expression]),
                }
                changes.push(format!("{wname}: namespaceSelector now excludes {}", values.join(", ")));
                let cluster_scoped = w["rules"].as_array().is_some_and(|rules| {
                    rules.iter().any(|r| {
                        r["resources"].as_array().is_some_and(|rs| {
                            rs.iter().any(|x| {
                                let x = x.as_str().unwrap_or("");
                                x == "*"
                                    || x.starts_with("*/")
                                    || [
                                        "nodes",
                                        "clusterroles",
                                        "clusterrolebindings",
                                        "certificatesigningrequests",
                                        "namespaces",
                                    ]
                                    .contains(&x.split('/').next().unwrap_or(""))
                            })
                        })
                    })
                });
                if cluster_scoped {
                    warnings.push(format!(
                        "{wname} also intercepts cluster-scoped resources (nodes, RBAC, CSRs): a namespaceSelector does not apply to them; use --mode ignore to defuse those too"
                    ));
                }
            }
            Mode::Delete => unreachable!("handled above"),
        }
    }
    if changes.is_empty() {
        return Ok(Plan { mode, config: name, resource_version, updated: None, changes, warnings });
    }
    Ok(Plan { mode, config: name, resource_version, updated: Some(updated), changes, warnings })
}

/// An object fit to re-create from a backup: server-set metadata removed.
pub fn for_create(backup: &Value) -> Value {
    let mut v = backup.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in ["resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink"] {
            m.remove(k);
        }
    }
    v
}

/// What restoring a configuration (as `analyse` judges it against the live cluster) would break
/// again: its dead backends behind a `Fail` policy that reaches control-plane-critical requests
/// (CRITICAL). Empty when restoring is safe; a dead backend that only blocks an add-on's own
/// objects (WARNING) is the user's call and does not stop the restore.
pub fn restore_blockers(findings: &[super::Finding]) -> Vec<&super::Finding> {
    findings
        .iter()
        .filter(|f| {
            matches!(f.kind, super::FindingKind::BackendDown | super::FindingKind::BackendTls)
                && f.severity == crate::exit::Status::Critical
        })
        .collect()
}

/// What a backup and the current object differ in (webhooks, labels, annotations).
pub fn differs(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if a["webhooks"] != b["webhooks"] {
        out.push("webhooks".to_string());
    }
    for field in ["labels", "annotations"] {
        if a["metadata"][field] != b["metadata"][field] {
            out.push(format!("metadata.{field}"));
        }
    }
    out
}

/// The webhook an admission error names, and why it failed: the API server's texts
/// `failed calling webhook "NAME": ...` and `admission webhook "NAME" denied the request: ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Culprit {
    pub webhook: String,
    /// True when the call failed (backend unreachable, timeout, TLS); false when it denied.
    pub call_failed: bool,
    pub reason: String,
}

pub fn culprit(message: &str) -> Option<Culprit> {
    let quoted = |after: &str| -> Option<(String, String)> {
        let i = message.find(after)? + after.len();
        let rest = &message[i..];
        let end = rest.find('"')?;
        Some((rest[..end].to_string(), rest[end + 1..].trim_start_matches(':').trim().to_string()))
    };
    if let Some((webhook, rest)) = quoted("failed calling webhook \"") {
        // `failed to call webhook: Post "URL": <reason>`: the reason follows the URL.
        let reason = rest
            .find("Post \"")
            .and_then(|i| {
                rest[i + 6..].find('"').map(|j| rest[i + 6 + j + 1..].trim_start_matches(':').trim().to_string())
            })
            .unwrap_or_else(|| rest.trim_start_matches("failed to call webhook:").trim().to_string());
        return Some(Culprit { webhook, call_failed: true, reason });
    }
    if let Some((webhook, rest)) = quoted("admission webhook \"") {
        let reason = rest.trim_start_matches("denied the request").trim_start_matches(':').trim().to_string();
        return Some(Culprit { webhook, call_failed: false, reason });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Value {
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "pod-validator", "resourceVersion": "42"},
        "webhooks": [
          {"name": "a", "failurePolicy": "Fail", "clientConfig": {"service": {"namespace": "guard", "name": "svc"}}, "rules": [{"resources": ["pods"]}]},
          {"name": "b", "clientConfig": {"url": "https://x"}, "rules": [{"resources": ["*"]}], "namespaceSelector": {"matchExpressions": [{"key": "t", "operator": "Exists"}]}}
        ]})
    }

    #[test]
    fn ignore_changes_only_the_named_webhook() {
        let p = plan(&config(), Mode::Ignore, &["a".into()]).unwrap();
        assert_eq!(p.resource_version, "42");
        let u = p.updated.unwrap();
        assert_eq!(u["webhooks"][0]["failurePolicy"], "Ignore");
        assert!(u["webhooks"][1]["failurePolicy"].is_null());
        assert_eq!(p.changes, ["a: failurePolicy Fail → Ignore"]);
        let all = plan(&config(), Mode::Ignore, &[]).unwrap();
        assert_eq!(all.changes[1], "b: failurePolicy Fail (default) → Ignore");
        assert!(plan(&config(), Mode::Ignore, &["nope".into()]).is_err());
    }

    #[test]
    fn exclude_system_appends_and_warns_about_cluster_scope() {
        let p = plan(&config(), Mode::ExcludeSystem, &[]).unwrap();
        let u = p.updated.unwrap();
        assert_eq!(
            u["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["kube-system", "kube-node-lease", "guard"])
        );
        assert_eq!(u["webhooks"][1]["namespaceSelector"]["matchExpressions"].as_array().unwrap().len(), 2);
        assert!(p.warnings.iter().any(|w| w.starts_with("b also intercepts cluster-scoped")));
    }

    #[test]
    fn delete_is_whole_configuration_only() {
        let p = plan(&config(), Mode::Delete, &[]).unwrap();
        assert!(p.updated.is_none());
        assert!(plan(&config(), Mode::Delete, &["a".into()]).is_err());
        let created = for_create(&config());
        assert!(created["metadata"]["resourceVersion"].is_null());
        assert!(differs(&config(), &created).is_empty());
    }

    #[test]
    fn names_the_webhook_from_the_apiserver_error() {
        let refused = "Internal error occurred: failed calling webhook \"validate.pod.com\": failed to call webhook: Post \"https://pod-validator.default.svc:443/validate?timeout=10s\": dial tcp 10.96.100.200:443: connect: connection refused";
        let c = culprit(refused).unwrap();
        assert_eq!(c.webhook, "validate.pod.com");
        assert!(c.call_failed);
        assert_eq!(c.reason, "dial tcp 10.96.100.200:443: connect: connection refused");
        let denied = "admission webhook \"validation.gatekeeper.sh\" denied the request: [required-labels] you must provide labels: {\"owner\"}";
        let c = culprit(denied).unwrap();
        assert_eq!(c.webhook, "validation.gatekeeper.sh");
        assert!(!c.call_failed);
        assert!(c.reason.starts_with("[required-labels]"));
        assert_eq!(culprit("pods \"x\" already exists"), None);
    }
}
