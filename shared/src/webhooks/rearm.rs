//! Who puts a webhook configuration back after a disarm, read from the object itself:
//! `metadata.managedFields[].manager`, owner references, Helm and OLM labels, and the policy
//! engines and meshes known to reconcile their configurations within seconds (kyverno#5355,
//! kyverno#6809; Gatekeeper, istiod and Linkerd do the same; cert-manager's cainjector only
//! rewrites `caBundle`). And, after a disarm, whether the change was undone.

use serde::Serialize;
use serde_json::Value;

use super::defuse::{Mode, Plan};

/// How soon a re-armer undoes a disarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Undoes {
    /// A controller reconciles it: within seconds.
    WithinSeconds,
    /// The next `helm upgrade` (or GitOps sync) of its release.
    NextRelease,
    /// It rewrites the caBundle only: a disarm stays.
    CaBundleOnly,
}

/// A controller's Deployment, to scale to 0 while the configuration stays disarmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub namespace: String,
    pub name: String,
}

impl Deployment {
    pub fn pause_command(&self) -> String {
        format!("kubectl -n {} scale deployment {} --replicas=0", self.namespace, self.name)
    }

    pub fn resume_command(&self, replicas: i64) -> String {
        format!("kubectl -n {} scale deployment {} --replicas={replicas}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rearmer {
    /// "Kyverno", "Helm release kyverno/kyverno".
    pub who: String,
    /// What in the object says so.
    pub evidence: String,
    pub undoes: Undoes,
    /// The Deployment that pauses it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
}

struct KnownController {
    who: &'static str,
    /// Substrings of its managedFields manager names.
    managers: &'static [&'static str],
    /// Labels (value `*`: any) and annotations that mark what it manages.
    marks: &'static [(&'static str, &'static str)],
    /// Its Deployment; the namespace defaults to the webhook backend's.
    deployment: &'static str,
    default_namespace: &'static str,
    undoes: Undoes,
}

const KNOWN_CONTROLLERS: &[KnownController] = &[
    KnownController {
        who: "Kyverno",
        managers: &["kyverno"],
        marks: &[("webhook.kyverno.io/managed-by", "kyverno"), ("app.kubernetes.io/managed-by", "kyverno")],
        deployment: "kyverno-admission-controller",
        default_namespace: "kyverno",
        undoes: Undoes::WithinSeconds,
    },
    KnownController {
        who: "Gatekeeper",
        managers: &["gatekeeper"],
        marks: &[("gatekeeper.sh/system", "yes")],
        deployment: "gatekeeper-controller-manager",
        default_namespace: "gatekeeper-system",
        undoes: Undoes::WithinSeconds,
    },
    KnownController {
        who: "istiod",
        managers: &["pilot-discovery", "istiod"],
        marks: &[("app", "istiod"), ("istio.io/rev", "*")],
        deployment: "istiod",
        default_namespace: "istio-system",
        undoes: Undoes::WithinSeconds,
    },
    KnownController {
        who: "Linkerd",
        managers: &["linkerd"],
        marks: &[("linkerd.io/control-plane-ns", "*")],
        deployment: "linkerd-proxy-injector",
        default_namespace: "linkerd",
        undoes: Undoes::WithinSeconds,
    },
    KnownController {
        who: "OPA kube-mgmt",
        managers: &["kube-mgmt"],
        marks: &[],
        deployment: "opa",
        default_namespace: "opa",
        undoes: Undoes::WithinSeconds,
    },
    KnownController {
        who: "cert-manager's cainjector",
        managers: &["cainjector"],
        marks: &[("cert-manager.io/inject-ca-from", "*"), ("cert-manager.io/inject-ca-from-secret", "*")],
        deployment: "cert-manager-cainjector",
        default_namespace: "cert-manager",
        undoes: Undoes::CaBundleOnly,
    },
];

/// Writers that do not re-arm: people with kubectl, the API server, this tool.
fn is_one_off_writer(manager: &str) -> bool {
    manager.starts_with("kubectl")
        || manager == "kube-apiserver"
        || manager == "helm"
        || manager == "before-first-apply"
}

/// The labels and annotations of `object`, as (key, value).
fn marks(object: &Value) -> Vec<(&str, &str)> {
    ["labels", "annotations"]
        .iter()
        .filter_map(|k| object["metadata"][*k].as_object())
        .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))))
        .collect()
}

/// The namespace of the first webhook's backend Service: where its controller usually runs.
fn backend_namespace(object: &Value) -> Option<&str> {
    object["webhooks"].as_array()?.iter().find_map(|w| w["clientConfig"]["service"]["namespace"].as_str())
}

/// Everyone who would put `object` (a webhook configuration as read) back, known controllers
/// first.
pub fn rearmers(object: &Value) -> Vec<Rearmer> {
    let managers: Vec<&str> = object["metadata"]["managedFields"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["manager"].as_str()).collect())
        .unwrap_or_default();
    let marks = marks(object);
    let mut out = Vec::new();
    let mut explained: Vec<&str> = Vec::new();
    for known in KNOWN_CONTROLLERS {
        let by_manager = managers.iter().find(|m| known.managers.iter().any(|k| m.contains(k)));
        let by_mark = marks.iter().find(|(k, v)| known.marks.iter().any(|(mk, mv)| k == mk && (*mv == "*" || v == mv)));
        let evidence = match (by_manager, by_mark) {
            (Some(m), _) => format!("managedFields manager {m:?}"),
            (None, Some((k, v))) => format!("{k}={v}"),
            (None, None) => continue,
        };
        if let Some(m) = by_manager {
            explained.push(m);
        }
        let namespace = backend_namespace(object).unwrap_or(known.default_namespace).to_string();
        out.push(Rearmer {
            who: known.who.to_string(),
            evidence,
            undoes: known.undoes,
            deployment: (known.undoes == Undoes::WithinSeconds)
                .then(|| Deployment { namespace, name: known.deployment.to_string() }),
        });
    }
    for owner in object["metadata"]["ownerReferences"].as_array().into_iter().flatten() {
        let (kind, name) = (owner["kind"].as_str().unwrap_or("?"), owner["name"].as_str().unwrap_or("?"));
        out.push(Rearmer {
            who: format!("the controller of {kind} {name}"),
            evidence: format!("ownerReferences: {kind} {name}"),
            undoes: Undoes::WithinSeconds,
            deployment: None,
        });
    }
    if let Some((_, owner)) = marks.iter().find(|(k, _)| *k == "olm.owner") {
        out.push(Rearmer {
            who: format!("OLM (operator {owner})"),
            evidence: format!("olm.owner={owner}"),
            undoes: Undoes::WithinSeconds,
            deployment: None,
        });
    }
    // Other controllers that wrote it (controller-runtime's default manager name is "manager").
    for manager in managers.iter().filter(|m| !is_one_off_writer(m) && !explained.contains(m)) {
        if out.iter().any(|r| r.evidence.contains(manager)) {
            continue;
        }
        out.push(Rearmer {
            who: format!("the controller that writes as {manager:?}"),
            evidence: format!("managedFields manager {manager:?}"),
            undoes: Undoes::WithinSeconds,
            deployment: None,
        });
    }
    let helm_release = marks.iter().find(|(k, _)| *k == "meta.helm.sh/release-name").map(|(_, v)| *v);
    let helm_namespace = marks.iter().find(|(k, _)| *k == "meta.helm.sh/release-namespace").map(|(_, v)| *v);
    let helm_label = marks.iter().any(|(k, v)| *k == "app.kubernetes.io/managed-by" && v.eq_ignore_ascii_case("helm"));
    if helm_release.is_some() || helm_label {
        let release = match (helm_namespace, helm_release) {
            (Some(ns), Some(r)) => format!("Helm release {ns}/{r}"),
            (None, Some(r)) => format!("Helm release {r}"),
            _ => "its Helm release".to_string(),
        };
        out.push(Rearmer {
            who: release,
            evidence: if helm_label {
                "app.kubernetes.io/managed-by=Helm".into()
            } else {
                "meta.helm.sh annotations".into()
            },
            undoes: Undoes::NextRelease,
            deployment: None,
        });
    }
    out
}

/// What in `current` undoes the disarm `plan` made (empty: it stays disarmed). `current` is
/// the configuration as read now (None: it does not exist).
pub fn undone(plan: &Plan, current: Option<&Value>) -> Vec<String> {
    let Some(current) = current else {
        return if plan.mode == Mode::Delete { Vec::new() } else { vec!["the configuration was deleted".into()] };
    };
    let Some(updated) = &plan.updated else {
        return vec!["the configuration exists again".into()];
    };
    let mut out = Vec::new();
    let now: Vec<&Value> = current["webhooks"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    for planned in updated["webhooks"].as_array().into_iter().flatten() {
        let name = planned["name"].as_str().unwrap_or("");
        let Some(live) = now.iter().find(|w| w["name"].as_str() == Some(name)) else {
            continue;
        };
        match plan.mode {
            Mode::Ignore if planned["failurePolicy"] == "Ignore" && live["failurePolicy"] != "Ignore" => {
                out.push(format!(
                    "{name}: failurePolicy is {} again",
                    live["failurePolicy"].as_str().unwrap_or("Fail")
                ));
            }
            Mode::ExcludeSystem if planned["namespaceSelector"] != live["namespaceSelector"] => {
                out.push(format!("{name}: its namespaceSelector no longer excludes the system namespaces"));
            }
            _ => {}
        }
    }
    out
}

/// The manager of the newest managedFields entry: who wrote the object last.
pub fn last_writer(object: &Value) -> Option<String> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .max_by(|a, b| a["time"].as_str().unwrap_or("").cmp(b["time"].as_str().unwrap_or("")))
        .and_then(|m| m["manager"].as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::webhooks::defuse::plan;

    fn config(metadata: Value) -> Value {
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
               "metadata": metadata,
               "webhooks": [{"name": "validate.kyverno.svc-fail", "failurePolicy": "Fail",
                             "clientConfig": {"service": {"namespace": "kyverno-system", "name": "kyverno-svc"}},
                             "rules": []}]})
    }

    fn who(object: &Value) -> Vec<(String, Undoes, Option<String>)> {
        rearmers(object).into_iter().map(|r| (r.who, r.undoes, r.deployment.map(|d| d.pause_command()))).collect()
    }

    #[test]
    fn known_controllers_by_manager_or_label() {
        // Kyverno, as it labels the configurations it manages, in the namespace of its backend.
        let kyverno = config(json!({"name": "kyverno-resource-validating-webhook-cfg",
            "labels": {"webhook.kyverno.io/managed-by": "kyverno"},
            "managedFields": [{"manager": "kyverno", "operation": "Update", "time": "2026-11-30T10:00:00Z"}]}));
        assert_eq!(
            who(&kyverno),
            vec![(
                "Kyverno".to_string(),
                Undoes::WithinSeconds,
                Some(
                    "kubectl -n kyverno-system scale deployment kyverno-admission-controller --replicas=0".to_string()
                )
            )]
        );
        let istio =
            config(json!({"name": "istiod-default-validator", "labels": {"app": "istiod", "istio.io/rev": "default"}}));
        assert_eq!(who(&istio)[0].0, "istiod");
        // cainjector only rewrites caBundle: named, but it does not undo a disarm.
        let cert_manager = config(json!({"name": "cert-manager-webhook",
            "annotations": {"cert-manager.io/inject-ca-from-secret": "cert-manager/cert-manager-webhook-ca"}}));
        assert_eq!(who(&cert_manager), vec![("cert-manager's cainjector".to_string(), Undoes::CaBundleOnly, None)]);
    }

    #[test]
    fn owners_olm_helm_and_unknown_controllers() {
        let object = config(json!({"name": "x",
            "ownerReferences": [{"kind": "Deployment", "name": "policy-operator", "controller": true}],
            "labels": {"olm.owner": "policy-operator.v1.2.0", "app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "policy", "meta.helm.sh/release-namespace": "policy-system"},
            "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update"},
                {"manager": "helm", "operation": "Update"},
                {"manager": "manager", "operation": "Update"}]}));
        let names: Vec<String> = who(&object).into_iter().map(|w| w.0).collect();
        assert_eq!(
            names,
            vec![
                "the controller of Deployment policy-operator",
                "OLM (operator policy-operator.v1.2.0)",
                "the controller that writes as \"manager\"",
                "Helm release policy-system/policy",
            ]
        );
        // Written by hand only: nobody re-arms it.
        let by_hand =
            config(json!({"name": "x", "managedFields": [{"manager": "kubectl-create", "operation": "Update"}]}));
        assert!(rearmers(&by_hand).is_empty());
    }

    #[test]
    fn undone_per_mode() {
        let object = config(json!({"name": "x", "resourceVersion": "7"}));
        let ignore = plan(&object, Mode::Ignore, &[]).unwrap();
        let disarmed = ignore.updated.clone().unwrap();
        assert!(undone(&ignore, Some(&disarmed)).is_empty());
        // A caBundle rotation is not a re-arm; failurePolicy back to Fail is.
        let mut rotated = disarmed.clone();
        rotated["webhooks"][0]["clientConfig"]["caBundle"] = json!("Zm9v");
        assert!(undone(&ignore, Some(&rotated)).is_empty());
        assert_eq!(undone(&ignore, Some(&object)), vec!["validate.kyverno.svc-fail: failurePolicy is Fail again"]);
        let exclude = plan(&object, Mode::ExcludeSystem, &[]).unwrap();
        assert!(undone(&exclude, exclude.updated.as_ref()).is_empty());
        assert_eq!(undone(&exclude, Some(&object)).len(), 1);
        let delete = plan(&object, Mode::Delete, &[]).unwrap();
        assert!(undone(&delete, None).is_empty());
        assert_eq!(undone(&delete, Some(&object)), vec!["the configuration exists again"]);
    }

    #[test]
    fn last_writer_is_the_newest_entry() {
        let object = config(json!({"name": "x", "managedFields": [
            {"manager": "kubectl-webhookguard", "time": "2026-12-01T10:00:01Z"},
            {"manager": "kyverno", "time": "2026-12-01T10:00:03Z"}]}));
        assert_eq!(last_writer(&object).as_deref(), Some("kyverno"));
    }
}
