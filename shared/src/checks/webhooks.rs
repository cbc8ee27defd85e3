//! Check 10, `webhooks`: the webhooks that lock the cluster now or could (the webhookguard
//! analysis, `webhooks::analyse`), worded as one check.

use std::collections::BTreeSet;

use crate::exit::Status;
use crate::report::{CheckResult, one_line};
use crate::webhooks::{Finding, FindingKind as K};

#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Webhooks across every configuration.
    pub webhook_count: usize,
    /// The analysis' findings, worst first.
    pub findings: &'a [Finding],
    /// What the analysis could not read (a Service, an EndpointSlice), said as evidence.
    pub unread: &'a [String],
}

/// The severity of a finding in cphealth, or `None` when it is webhookguard's advice only
/// (timeouts, side effects ...). A lockout that has not happened (backend up) is a WARNING.
fn severity(f: &Finding) -> Option<Status> {
    match (f.kind, f.severity) {
        (K::BackendDown | K::BackendTls | K::Runtime, s) => Some(s),
        (K::Lockout, Status::Critical) | (K::SelfDeadlock, _) => Some(Status::Warning),
        (K::CaBundle, Status::Critical) => Some(Status::Critical),
        (K::PolicyConfig | K::PolicyRejects, s) => (s != Status::Ok).then_some(s),
        _ => None,
    }
}

pub fn judge(f: &Facts) -> CheckResult {
    let mut r = CheckResult::ok("webhooks", "");
    let mut parts = Vec::new();
    // A dead backend is said once: its lockout or deadlock finding is the same webhook.
    let down: BTreeSet<(&str, &str)> = f
        .findings
        .iter()
        .filter(|f| matches!(f.kind, K::BackendDown | K::BackendTls))
        .map(|f| (f.config.as_str(), f.webhook.as_str()))
        .collect();
    for finding in f.findings {
        if matches!(finding.kind, K::Lockout | K::SelfDeadlock)
            && down.contains(&(finding.config.as_str(), finding.webhook.as_str()))
        {
            continue;
        }
        let Some(status) = severity(finding) else { continue };
        r.raise(status);
        let (webhook, config, summary) = (&finding.webhook, &finding.config, &finding.summary);
        let text = match finding.kind {
            K::Lockout => format!("{webhook} ({config}) would lock the cluster if its backend died: {summary}"),
            _ => format!("{webhook} ({config}): {summary}"),
        };
        // The message leads with the key fact; the whole finding is the sub-check.
        let short = match (finding.kind, &finding.blast_radius) {
            (K::BackendDown, Some(radius)) => format!("{webhook}: backend down, {radius}"),
            (K::BackendTls, Some(radius)) => format!("{webhook}: backend certificate rejected, {radius}"),
            (K::BackendDown | K::BackendTls, None) => {
                format!("{webhook} ({config}): {}", summary.split(", and ").next().unwrap_or(summary))
            }
            (K::Lockout, _) => format!("{webhook} ({config}) would lock the cluster if its backend died"),
            (K::PolicyConfig, _) => format!("{webhook}: {}", summary.split(", and ").next().unwrap_or(summary)),
            // What it rejects; which validation, and why, is the sub-check.
            (K::PolicyRejects, _) => format!("{webhook}: {}", summary.split(": validation").next().unwrap_or(summary)),
            _ => text.clone(),
        };
        r.sub(format!("{} {webhook}", finding.kind.label()), status, text);
        parts.push(short);
        if let Some(fix) = &finding.fix
            && status != Status::Ok
        {
            let risk = if matches!(finding.kind, K::PolicyConfig | K::PolicyRejects) {
                "low: admission policies never apply to policies and bindings, so this works during the outage; the fix says its undo"
            } else {
                "low: webhook configurations are never sent to webhooks, so this works even during a lockout; `kubectl webhookguard restore` undoes it"
            };
            r.fix(fix.description.clone(), &[fix.command.as_str()], risk);
        }
    }
    for n in f.unread {
        r.push_evidence("unknown", n.clone());
    }
    if parts.is_empty() {
        let count = f.webhook_count;
        r.message = format!("{count} webhook{}, none can lock the cluster", if count == 1 { "" } else { "s" });
    } else {
        // One line: the worst finding (findings come worst first); every one is a sub-check.
        r.message = one_line(&parts);
        r.fix("See every finding with its fix", &["kubectl webhookguard scan"], "low: read-only");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::ConfigKind;
    use crate::webhooks::analysis::Fix;

    fn finding(kind: K, severity: Status, webhook: &str, blast_radius: Option<&str>) -> Finding {
        Finding {
            kind,
            severity,
            config_kind: ConfigKind::Validating,
            config: format!("{webhook}-config"),
            webhook: webhook.into(),
            webhook_index: 0,
            summary: "failurePolicy Fail on pods in every namespace, and 2 more rules".into(),
            explanation: String::new(),
            evidence: Vec::new(),
            fix: Some(Fix {
                description: format!("Disarm {webhook}"),
                patch: serde_json::Value::Null,
                command: format!("kubectl webhookguard disarm {webhook}-config --yes"),
            }),
            accepted: None,
            blast_radius: blast_radius.map(str::to_string),
        }
    }

    fn run(findings: &[Finding]) -> CheckResult {
        judge(&Facts { webhook_count: 4, findings, unread: &[] })
    }

    #[test]
    fn verdicts_by_finding() {
        let cases: Vec<(&str, Vec<Finding>, Status, &str)> = vec![
            ("nothing", vec![], Status::Ok, "4 webhooks, none can lock the cluster"),
            (
                "a lockout-capable webhook with its backend up",
                vec![finding(K::Lockout, Status::Critical, "policy.example.com", None)],
                Status::Warning,
                "policy.example.com (policy.example.com-config) would lock the cluster if its backend died",
            ),
            (
                "its backend down: said once, as the dead backend",
                vec![
                    finding(K::BackendDown, Status::Critical, "policy.example.com", None),
                    finding(K::Lockout, Status::Critical, "policy.example.com", None),
                ],
                Status::Critical,
                "policy.example.com (policy.example.com-config): failurePolicy Fail on pods in every namespace",
            ),
            (
                "an add-on's own resources only: WARNING with the blast radius",
                vec![finding(
                    K::BackendDown,
                    Status::Warning,
                    "l2advertisementvalidationwebhook.metallb.io",
                    Some("resources of metallb.io cannot be created or changed"),
                )],
                Status::Warning,
                "l2advertisementvalidationwebhook.metallb.io: backend down, resources of metallb.io cannot be created or changed",
            ),
            (
                "an admission policy's binding without its param",
                vec![Finding {
                    config_kind: ConfigKind::ValidatingPolicy,
                    summary: "LIVE OUTAGE: param ConfigMap kube-system/pod-limits missing (parameterNotFoundAction Deny), and failurePolicy Fail rejects pods in kube-system".into(),
                    ..finding(K::PolicyConfig, Status::Critical, "pod-limits-binding", None)
                }],
                Status::Critical,
                "pod-limits-binding: LIVE OUTAGE: param ConfigMap kube-system/pod-limits missing (parameterNotFoundAction Deny)",
            ),
            (
                "an admission policy whose validation denies the mirror pods",
                vec![Finding {
                    config_kind: ConfigKind::ValidatingPolicy,
                    summary: "rejects pods in kube-system: validation `'team' in object.metadata.labels` is false for the kubelet creating the mirror pod kube-system/kube-apiserver-cp-1".into(),
                    ..finding(K::PolicyRejects, Status::Critical, "require-team-binding", None)
                }],
                Status::Critical,
                "require-team-binding: rejects pods in kube-system",
            ),
            (
                "advice only",
                vec![finding(K::Timeout, Status::Warning, "slow.example.com", None)],
                Status::Ok,
                "4 webhooks, none can lock the cluster",
            ),
        ];
        for (case, findings, status, message) in cases {
            let r = run(&findings);
            assert_eq!(r.status, status, "{case}: {}", r.message);
            assert_eq!(r.message, message, "{case}");
            assert!(r.message.chars().count() <= crate::report::MESSAGE_WIDTH, "{case}");
        }
    }

    #[test]
    fn fixes_are_the_disarms_then_the_scan_once() {
        let findings = [
            finding(K::BackendDown, Status::Critical, "a.example.com", None),
            finding(K::BackendDown, Status::Critical, "b.example.com", None),
        ];
        let r = run(&findings);
        let commands: Vec<&str> = r.remediation.iter().flat_map(|f| f.commands.iter().map(String::as_str)).collect();
        assert_eq!(
            commands,
            [
                "kubectl webhookguard disarm a.example.com-config --yes",
                "kubectl webhookguard disarm b.example.com-config --yes",
                "kubectl webhookguard scan"
            ]
        );
    }
}
