//! What a ValidatingAdmissionPolicy's validations decide for the writes the cluster needs to heal,
//! evaluated in CEL on the requests the analysis knows. The API server evaluates the policy's
//! matchConditions, then each validation: false denies the request when the binding's
//! validationActions include Deny; an error is decided by the policy's failurePolicy
//! (k8s.io/apiserver `pkg/admission/plugin/policy/validating/validator.go`). Reading a field the
//! object lacks is such an error (`no such key`), hence `has()`. Measured on kube-apiserver 1.36:
//! `'app' in object.metadata.labels` on a ConfigMap without labels is rejected with "resulted in
//! error: no such key: labels"; with validationActions Warn and Audit both it and a false
//! validation are admitted with a warning.
//!
//! The analysis' objects carry what the real writers send in metadata (name, namespace, labels),
//! not specs: an expression that reads any other part of the object is not judged here.

use std::collections::BTreeSet;

use serde_json::json;

use super::analysis::{ClusterFacts, Finding, FindingKind, Fix};
use super::conditions::{CompileCache, ConditionOutcome, Expression, MatchConditions, RequestContext};
use super::model::{FailurePolicy, Tri};
use super::policies::{AdmissionPolicy, Policies, PolicyBinding, PolicyKind};
use super::policy_analysis::{binding_finding, both, selects};
use super::requests::{TARGETS, Target};
use crate::exit::Status;
use crate::report::Evidence;

/// The parts of an object the analysis' requests carry as the real writers send them.
const MODELED_FIELDS: [&str; 6] =
    ["apiVersion", "kind", "metadata", "metadata.name", "metadata.namespace", "metadata.labels"];

/// What one validation did to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Denies,
    Errors(String),
    /// It reads this spec field without has(): an object that omits it fails the expression.
    MayError(String),
}

impl Verdict {
    fn certain(&self) -> bool {
        !matches!(self, Verdict::MayError(_))
    }
}

/// Spec fields the API server's defaulting always sets, so reading them cannot fail (kubernetes
/// `pkg/apis/core/v1/defaults.go`, `SetDefaults_PodSpec`; `containers` is required).
const ALWAYS_SET: &[(&str, &[&str])] = &[(
    "Pod",
    &[
        "spec.containers",
        "spec.restartPolicy",
        "spec.dnsPolicy",
        "spec.schedulerName",
        "spec.terminationGracePeriodSeconds",
        "spec.securityContext",
        "spec.enableServiceLinks",
    ],
)];

/// Kinds whose writers' objects commonly leave spec fields out (a pod with hostNetwork false, a
/// node without taints): where a spec read without has() is worth saying.
const SPARSE_KINDS: [&str; 2] = ["Pod", "Node"];

/// The first spec field `e` reads without has() that an object of `kind` may lack.
fn may_lack(e: &Expression, kind: &str) -> Option<String> {
    if !SPARSE_KINDS.contains(&kind) {
        return None;
    }
    let set = ALWAYS_SET.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f).unwrap_or(&[]);
    e.unguarded_spec_reads()
        .into_iter()
        .find(|field| !set.iter().any(|s| field == s || field.starts_with(&format!("{s}."))))
}

struct Rejection<'a> {
    target: &'a Target,
    what: &'static str,
    validation: String,
    verdict: Verdict,
}

/// Whether the interpreter can judge `e` on the analysis' objects: it runs here and reads only
/// what they carry.
fn judgeable(e: &Expression) -> bool {
    e.unusable().is_none() && e.object_fields().iter().all(|f| MODELED_FIELDS.contains(&f.as_str()))
}

/// Findings for validating bindings that deny (or, failing closed, error on) what the cluster
/// needs to heal.
pub fn analyse_validations(policies: &Policies, facts: &ClusterFacts) -> Vec<Finding> {
    let cache = CompileCache::default();
    let mut out = Vec::new();
    for binding in &policies.bindings {
        if binding.kind != PolicyKind::Validating || !binding.validation_actions.iter().any(|a| a == "Deny") {
            continue;
        }
        let Some(policy) = policies.policy_of(binding) else { continue };
        let all: Vec<(String, Expression)> =
            policy.validations.iter().map(|v| (v.clone(), Expression::compile(v, &cache))).collect();
        let validations: Vec<&(String, Expression)> = all.iter().filter(|(_, e)| judgeable(e)).collect();
        let fail = policy.failure_policy == FailurePolicy::Fail;
        if validations.is_empty() && !fail {
            continue;
        }
        let conditions = MatchConditions::compile(&policy.match_conditions, &cache);
        let mut rejections = Vec::new();
        for target in TARGETS {
            for healing in target.requests {
                let by_policy = selects(&policy.constraints, true, target, healing, facts).0;
                let by_binding =
                    binding.resources.as_ref().map_or(Tri::Yes, |m| selects(m, false, target, healing, facts).0);
                // Only a certain match is judged: a namespace the scan could not read is not.
                if both(by_policy, by_binding) != Tri::Yes {
                    continue;
                }
                let input = healing.admission(&target.object);
                let context = RequestContext::new(&input.request, &input.object, &input.old_object);
                if conditions.evaluate(&context) != ConditionOutcome::Called {
                    continue;
                }
                let verdict = validations
                    .iter()
                    .find_map(|(text, e)| match context.evaluate(e) {
                        Ok(true) => None,
                        Ok(false) => Some((text, Verdict::Denies)),
                        Err(why) if fail => Some((text, Verdict::Errors(why))),
                        Err(_) => None,
                    })
                    .or_else(|| {
                        // What cannot be evaluated here may still fail on what its object lacks.
                        let kind = target.object.kind;
                        all.iter()
                            .filter(|_| fail)
                            .find_map(|(text, e)| Some((text, Verdict::MayError(may_lack(e, kind)?))))
                    });
                if let Some((validation, verdict)) = verdict {
                    rejections.push(Rejection { target, what: healing.what, validation: validation.clone(), verdict });
                    break;
                }
            }
        }
        if let Some(f) = finding(policy, binding, &rejections) {
            out.push(f);
        }
    }
    out
}

fn finding(policy: &AdmissionPolicy, binding: &PolicyBinding, rejections: &[Rejection]) -> Option<Finding> {
    // Certain rejections speak for the finding when there are any.
    let certain: Vec<&Rejection> = rejections.iter().filter(|r| r.verdict.certain()).collect();
    let rejections: Vec<&Rejection> = if certain.is_empty() { rejections.iter().collect() } else { certain };
    let first = *rejections.iter().find(|r| r.target.critical).or(rejections.first())?;
    let mut labels: Vec<&str> = Vec::new();
    for r in &rejections {
        if !labels.contains(&r.target.label) {
            labels.push(r.target.label);
        }
    }
    let critical = rejections.iter().any(|r| r.target.critical && r.verdict.certain());
    let how = match &first.verdict {
        Verdict::MayError(field) => format!(
            "validation `{}` reads {field} without has(), so {} fails it if the object leaves {field} out (the API server omits unset, false and empty fields), and failurePolicy Fail rejects it",
            first.validation, first.what
        ),
        Verdict::Denies => format!("validation `{}` is false for {}", first.validation, first.what),
        Verdict::Errors(why) => format!(
            "validation `{}` cannot be evaluated for {} ({}), and failurePolicy Fail rejects it",
            first.validation,
            first.what,
            why.trim_start_matches("it fails to evaluate: ")
        ),
    };
    let named = match labels.len() {
        0..=3 => labels.join(", "),
        n => format!("{} and {} more", labels[..3].join(", "), n - 3),
    };
    let verb = if first.verdict.certain() { "rejects" } else { "may reject" };
    let summary = format!("{verb} {named}: {how}");
    let evidence = rejections
        .iter()
        .map(|r| Evidence {
            name: r.target.label.into(),
            value: match &r.verdict {
                Verdict::Denies => format!("{}: `{}` is false", r.what, r.validation),
                Verdict::Errors(why) => format!("{}: `{}`: {why}", r.what, r.validation),
                Verdict::MayError(field) => format!("{}: `{}` reads {field} without has()", r.what, r.validation),
            },
        })
        .collect();
    let errors: BTreeSet<&str> = rejections
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Errors(_) | Verdict::MayError(_)))
        .map(|r| r.validation.as_str())
        .collect();
    let severity = if critical { Status::Critical } else { Status::Warning };
    let mut f = binding_finding(FindingKind::PolicyRejects, EXPLANATION, policy, binding, severity, summary);
    f.evidence = evidence;
    f.fix = Some(fix(binding, &labels, &errors));
    Some(f)
}

const EXPLANATION: &str = "An admission policy's validations run on every request its constraints, its binding and its matchConditions select: false denies the request when the binding's validationActions include Deny, and an expression that fails (a field the object lacks, read without has()) is decided by the policy's failurePolicy. The writes here are the ones the cluster makes to heal, as the real writers send them. Policies and bindings are never themselves subject to admission policies, so they can always be fixed through the API.";

/// Stop denying on this binding, keep the record: with validationActions Warn and Audit, neither
/// a false validation nor one that errors rejects (the API server's validating dispatcher acts
/// on a Deny decision only through the binding's actions). Diagnosis first: what to change.
fn fix(binding: &PolicyBinding, labels: &[&str], errors: &BTreeSet<&str>) -> Fix {
    let patch = json!([{"op": "replace", "path": "/spec/validationActions", "value": ["Warn", "Audit"]}]);
    let diagnosis = if errors.is_empty() {
        format!("Exclude {} from binding {} (its matchResources)", labels.join(", "), binding.name)
    } else {
        let list: Vec<String> = errors.iter().map(|e| format!("`{e}`")).collect();
        format!("Guard the fields read with has() in {}", list.join(", "))
    };
    Fix {
        description: format!(
            "{diagnosis}, or stop denying meanwhile: validationActions Warn and Audit on binding {} (undo: set them back to {:?})",
            binding.name, binding.validation_actions
        ),
        command: format!("kubectl patch validatingadmissionpolicybinding {} --type=json -p '{patch}'", binding.name),
        patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::policies::policies_from_documents;
    use serde_json::{Value, json};

    /// A policy on pod creation and its Deny binding, cluster-wide, with `validations`.
    fn policies(validations: &[&str], edit: impl FnOnce(&mut Value, &mut Value)) -> Policies {
        let validations: Vec<Value> = validations.iter().map(|e| json!({"expression": e})).collect();
        let mut policy = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "require-team"},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{"apiGroups": ["", "coordination.k8s.io"], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["pods", "leases"]}]},
                "validations": validations
            }
        });
        let mut binding = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "require-team-binding"},
            "spec": {"policyName": "require-team", "validationActions": ["Deny"]}
        });
        edit(&mut policy, &mut binding);
        policies_from_documents(&[policy, binding], "test").unwrap()
    }

    fn judge(validations: &[&str], edit: impl FnOnce(&mut Value, &mut Value)) -> Option<Finding> {
        let mut all = analyse_validations(&policies(validations, edit), &ClusterFacts::default());
        assert!(all.len() <= 1, "{all:#?}");
        all.pop()
    }

    #[test]
    fn a_required_label_the_mirror_pods_lack_denies_them() {
        let f =
            judge(&["has(object.metadata.labels) && 'team' in object.metadata.labels"], |_, _| {}).expect("a finding");
        assert_eq!((f.kind, f.severity), (FindingKind::PolicyRejects, Status::Critical));
        assert_eq!(f.config, "require-team");
        assert_eq!(f.webhook, "require-team-binding");
        assert!(
            f.summary.starts_with("rejects pods in kube-system, leases in kube-system, leases in kube-node-lease: validation `has(object.metadata.labels) && 'team' in object.metadata.labels` is false for the kubelet creating the mirror pod kube-system/kube-apiserver-cp-1"),
            "{}",
            f.summary
        );
        let fix = f.fix.expect("a fix");
        assert_eq!(
            fix.command,
            r#"kubectl patch validatingadmissionpolicybinding require-team-binding --type=json -p '[{"op":"replace","path":"/spec/validationActions","value":["Warn","Audit"]}]'"#
        );
        assert!(fix.description.contains("undo: set them back to [\"Deny\"]"), "{}", fix.description);
    }

    #[test]
    fn a_field_read_without_has_errors_on_objects_that_lack_it() {
        // The leader leases carry no labels: reading them is `no such key`, and Fail rejects.
        let f = judge(&["object.metadata.labels['team'] != 'forbidden'"], |p, _| {
            p["spec"]["matchConstraints"]["resourceRules"][0]["resources"] = json!(["leases"]);
        })
        .expect("a finding");
        assert_eq!(f.severity, Status::Critical);
        assert!(
            f.summary.starts_with("rejects leases in kube-system, leases in kube-node-lease: validation `object.metadata.labels['team'] != 'forbidden'` cannot be evaluated for kube-controller-manager renewing its leader lease (No such key: labels), and failurePolicy Fail rejects it"),
            "{}",
            f.summary
        );
        let fix = f.fix.expect("a fix");
        assert!(
            fix.description.starts_with(
                "Guard the fields read with has() in `object.metadata.labels['team'] != 'forbidden'`, or stop denying meanwhile"
            ),
            "{}",
            fix.description
        );
        assert!(
            fix.command.starts_with("kubectl patch validatingadmissionpolicybinding require-team-binding --type=json")
        );
    }

    #[test]
    fn a_spec_field_read_without_has_may_reject_the_pods_that_leave_it_out() {
        // `hostNetwork: false` is left out of a pod (the API omits false), so this errors on the
        // CoreDNS and kube-proxy pods; which writer's object has it cannot be told here: WARNING.
        let f = judge(&["object.spec.hostNetwork == false"], |_, _| {}).expect("a finding");
        assert_eq!((f.kind, f.severity), (FindingKind::PolicyRejects, Status::Warning));
        assert!(
            f.summary.starts_with("may reject pods in kube-system: validation `object.spec.hostNetwork == false` reads spec.hostNetwork without has(), so the kubelet creating the mirror pod kube-system/kube-apiserver-cp-1 fails it if the object leaves spec.hostNetwork out"),
            "{}",
            f.summary
        );
        assert!(
            f.fix
                .unwrap()
                .description
                .starts_with("Guard the fields read with has() in `object.spec.hostNetwork == false`")
        );
        type Edit = fn(&mut Value, &mut Value);
        let none: Edit = |_, _| {};
        let cases: &[(&str, &str, Edit)] = &[
            ("guarded", "!has(object.spec.hostNetwork) || object.spec.hostNetwork == false", none),
            ("defaulted by the API server", "object.spec.dnsPolicy != 'None'", none),
            ("failing open", "object.spec.hostNetwork == false", |p, _| p["spec"]["failurePolicy"] = json!("Ignore")),
            ("leases only: their writers' specs are whole", "object.spec.holderIdentity != ''", |p, _| {
                p["spec"]["matchConstraints"]["resourceRules"][0]["resources"] = json!(["leases"]);
            }),
        ];
        for (name, validation, edit) in cases {
            assert!(judge(&[validation], *edit).is_none(), "{name}");
        }
        // A certain rejection speaks for the finding: CRITICAL, whatever else may fail.
        let f = judge(&["object.spec.hostNetwork == false", "'team' in object.metadata.labels"], |_, _| {}).unwrap();
        assert_eq!(f.severity, Status::Critical);
        assert!(f.summary.starts_with("rejects pods in kube-system"), "{}", f.summary);
    }

    #[test]
    fn verdicts_by_case() {
        type Edit = fn(&mut Value, &mut Value);
        let none: Edit = |_, _| {};
        // (name, validations, edit, severity)
        let cases: &[(&str, &[&str], Edit, Option<Status>)] = &[
            (
                "guarded by has(): admits",
                &[
                    "!has(object.metadata.labels) || !('team' in object.metadata.labels) || object.metadata.labels.team != ''",
                ],
                none,
                None,
            ),
            (
                "failing open: an error admits",
                &["object.metadata.labels['team'] != ''"],
                |p, _| p["spec"]["failurePolicy"] = json!("Ignore"),
                None,
            ),
            (
                "failing open still denies on false",
                &["has(object.metadata.labels) && 'team' in object.metadata.labels"],
                |p, _| p["spec"]["failurePolicy"] = json!("Ignore"),
                Some(Status::Critical),
            ),
            (
                "Warn and Audit do not deny",
                &["false"],
                |_, b| b["spec"]["validationActions"] = json!(["Warn", "Audit"]),
                None,
            ),
            (
                "a spec the analysis does not carry is not judged",
                &["object.spec.containers.all(c, c.image.startsWith('registry.example.com/'))"],
                none,
                None,
            ),
            ("params are not judged", &["object.metadata.name.size() < int(params.data.maxLength)"], none, None),
            (
                "matchConditions skip the writers",
                &["false"],
                |p, _| {
                    p["spec"]["matchConditions"] = json!([{"name": "not-system", "expression": "!request.userInfo.username.startsWith('system:')"}]);
                },
                None,
            ),
            (
                "a binding elsewhere",
                &["false"],
                |_, b| b["spec"]["matchResources"] = json!({"namespaceSelector": {"matchLabels": {"team": "a"}}}),
                None,
            ),
            (
                "the whole object handed on is not judged",
                &["[object, oldObject].exists(o, o != null && 'team' in o.metadata.labels)"],
                none,
                None,
            ),
            (
                "a name rule on the writers' names",
                &["!object.metadata.name.startsWith('kube-')"],
                none,
                Some(Status::Critical),
            ),
            (
                "only namespaces: not what the cluster needs to heal",
                &["false"],
                |p, _| p["spec"]["matchConstraints"]["resourceRules"][0] = json!({"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["namespaces"]}),
                Some(Status::Warning),
            ),
        ];
        for (name, validations, edit, severity) in cases {
            let f = judge(validations, *edit);
            assert_eq!(f.as_ref().map(|f| f.severity), *severity, "{name}: {f:#?}");
        }
    }

    #[test]
    fn kyvernos_generated_exec_policy_leaves_the_cluster_alone() {
        // tests/fixtures/webhooks/kyverno-generated-deny-exec.yaml: Kyverno's generated policy
        // and Deny binding on pods/exec (CONNECT). No write the cluster makes to heal goes
        // through pods/exec: nothing to report, live or not.
        let p = crate::webhooks::policies::fixture("kyverno-generated-deny-exec.yaml");
        assert_eq!((p.policies.len(), p.bindings.len()), (1, 1));
        assert_eq!(p.policies[0].match_conditions[0].1, "request.operation == 'CONNECT'");
        assert!(crate::webhooks::analyse_policies(&p, &ClusterFacts::default()).is_empty());
    }

    #[test]
    fn kyvernos_generated_label_policy_would_reject_the_control_plane_if_it_denied_everywhere() {
        // tests/fixtures/webhooks/kyverno-generated-check-label-app4.yaml: every resource must
        // carry label `app`, read without has(). As generated it is safe: production and
        // staging only, and its binding only warns and audits.
        let p = crate::webhooks::policies::fixture("kyverno-generated-check-label-app4.yaml");
        assert_eq!(p.bindings[0].validation_actions, ["Audit", "Warn"]);
        assert!(crate::webhooks::analyse_policies(&p, &ClusterFacts::default()).is_empty());
        // Bound with Deny and without its namespaceSelector, it denies the mirror pods (their
        // labels have no `app`) and fails on the leader leases, which carry no labels at all.
        let mut edited = p.clone();
        edited.bindings[0].validation_actions = vec!["Deny".into()];
        edited.policies[0].constraints.namespace_selector = Default::default();
        let f = analyse_validations(&edited, &ClusterFacts::default()).pop().expect("a finding");
        assert_eq!((f.kind, f.severity), (FindingKind::PolicyRejects, Status::Critical));
        assert!(f.summary.starts_with("rejects pods in kube-system, leases in kube-system, "), "{}", f.summary);
        let lease = f.evidence.iter().find(|e| e.name == "leases in kube-system").expect("the leases");
        assert!(
            lease.value.ends_with("`'app' in object.metadata.labels`: it fails to evaluate: No such key: labels"),
            "{}",
            lease.value
        );
        assert!(
            f.fix
                .unwrap()
                .description
                .starts_with("Guard the fields read with has() in `'app' in object.metadata.labels`")
        );
    }
}
