//! The decision tree of the runbooks, walked over the checks' findings: network and TLS → the
//! API server process and health → etcd → resources and APF → admission → controllers → nodes
//! (seeds `apiserver-troubleshooting.md` §2.2 排查逻辑决策树). Causal rules link a finding
//! upstream in that tree to the findings it explains; one likely cause with its evidence chain,
//! the others as its consequences, and the first action. Findings no rule links stay
//! independent: a link is never invented.

use serde::Serialize;

use crate::exit::Status;
use crate::report::CheckResult;

/// The tree's order of the checks, upstream first.
pub const TREE_ORDER: [&str; 11] = [
    "apiserver",
    "replicas",
    "health",
    "static-pods",
    "etcd",
    "load",
    "resources",
    "webhooks",
    "aggregated-apis",
    "leader-election",
    "nodes",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cause {
    pub check: String,
    pub finding: String,
    /// The rule that linked it, and the runbook section or upstream source it encodes.
    pub rule: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Consequence {
    pub check: String,
    pub finding: String,
    /// Why it follows from the cause.
    pub because: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    /// One line: "etcd NOSPACE → leader-election, nodes" or "2 independent findings".
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likely_cause: Option<Cause>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consequences: Vec<Consequence>,
    /// Findings no rule links to the cause, as `check: message`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub independent: Vec<String>,
    /// What to do first (the cause's first fix, or the most upstream finding's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_action: Option<String>,
}

/// One causal rule: a finding of `cause_check` that `cause` recognises explains the findings of
/// the `effects` checks that `effect` accepts.
struct Rule {
    name: &'static str,
    source: &'static str,
    cause_check: &'static str,
    cause: fn(&CheckResult) -> bool,
    effects: &'static [(&'static str, &'static str)],
    /// Does `effect` follow from `cause`? (Names must match where a finding names a member or a
    /// replica.)
    effect: fn(cause: &CheckResult, effect: &CheckResult) -> bool,
}

fn is_finding(r: &CheckResult) -> bool {
    matches!(r.status, Status::Warning | Status::Critical)
        || (r.status == Status::Unknown && r.missing_permission.is_none())
}

/// The names a finding is about: members and replicas in bad sub-checks (`member cp-3` → `cp-3`).
fn bad_subjects(r: &CheckResult) -> Vec<String> {
    r.subchecks
        .iter()
        .filter(|s| matches!(s.status, Status::Warning | Status::Critical))
        .filter_map(|s| s.name.strip_prefix("member ").or_else(|| s.name.strip_prefix("replica ")))
        .map(str::to_string)
        .collect()
}

fn names_any(effect: &CheckResult, names: &[String]) -> bool {
    let text = format!(
        "{} {}",
        effect.message,
        effect
            .subchecks
            .iter()
            .filter(|s| s.status > Status::Note)
            .map(|s| s.message.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    names.iter().any(|n| text.contains(n.as_str()))
}

fn any_effect(_: &CheckResult, _: &CheckResult) -> bool {
    true
}

const RULES: &[Rule] = &[
    Rule {
        name: "api-server-unreachable",
        source: "seeds apiserver-troubleshooting.md §2.2 (检查网络连通性: 端口未监听, 证书错误)",
        cause_check: "apiserver",
        cause: |r| r.status == Status::Critical,
        effects: &[
            ("health", "every health endpoint is read through the API server"),
            ("replicas", "the replicas are read through the API server"),
            ("load", "/metrics is read through the API server"),
        ],
        effect: any_effect,
    },
    Rule {
        name: "etcd-quorum-lost",
        source: "seeds control-plane-troubleshooting.md §3.2; etcd Documentation/op-guide/failures.md (majority failure)",
        cause_check: "etcd",
        cause: |r| r.message.contains("QUORUM LOST"),
        effects: &[
            ("health", "the API servers' etcd readiness checks fail without quorum"),
            ("leader-election", "lease renewals are etcd writes, impossible without quorum"),
            ("nodes", "node heartbeats (leases) are etcd writes, impossible without quorum"),
            ("load", "requests that reach etcd fail or time out"),
            ("static-pods", "the control-plane pods that depend on etcd restart"),
        ],
        effect: any_effect,
    },
    Rule {
        name: "etcd-nospace",
        source: "etcd Documentation/op-guide/maintenance.md (Space quota: the NOSPACE alarm makes the cluster read-only)",
        cause_check: "etcd",
        cause: |r| r.message.contains("NOSPACE"),
        effects: &[
            ("leader-election", "lease renewals are etcd writes, refused under NOSPACE"),
            ("nodes", "node lease renewals are etcd writes, refused under NOSPACE"),
            ("load", "writes fail with 5xx under NOSPACE"),
            ("static-pods", "pod status updates are etcd writes, refused under NOSPACE"),
        ],
        effect: any_effect,
    },
    Rule {
        name: "etcd-member-down",
        source: "seeds apiserver-troubleshooting.md §2.2 (/readyz 失败 → 检查 etcd 连接); kubeadm points each API server at its local member",
        cause_check: "etcd",
        cause: |r| r.message.contains("down, quorum kept"),
        effects: &[
            ("health", "the API server beside the member fails its etcd readiness check"),
            ("replicas", "that API server is not ready, so the load balancer drops it"),
            ("static-pods", "the member's static pod is the one that is down"),
            ("load", "the replica beside the member is out of rotation"),
        ],
        effect: |cause, effect| names_any(effect, &bad_subjects(cause)),
    },
    Rule {
        name: "apiserver-replica-down",
        source: "seeds apiserver-troubleshooting.md §2.2 (检查进程状态: 进程不存在)",
        cause_check: "replicas",
        cause: |r| r.message.contains(" down "),
        effects: &[
            ("health", "a replica that is down fails or skips its health endpoints"),
            ("static-pods", "its kube-apiserver static pod is the one that is down"),
            ("load", "a replica that is down is not scraped"),
        ],
        effect: |cause, effect| names_any(effect, &bad_subjects(cause)),
    },
    Rule {
        name: "apiserver-out-of-file-descriptors",
        source: "seeds apiserver-troubleshooting-extended §2.2 (检查资源使用 → 文件描述符耗尽 → 调整 ulimit), §2.1.4 (每个 watch 连接消耗一个 fd)",
        cause_check: "resources",
        cause: |r| r.status >= Status::Warning && r.message.contains("file descriptors open"),
        effects: &[
            ("health", "an API server out of file descriptors fails its checks (its etcd connections too)"),
            ("replicas", "a replica out of file descriptors refuses new connections"),
            ("load", "requests on that replica wait for a descriptor or fail"),
        ],
        effect: |cause, effect| names_any(effect, &bad_subjects(cause)),
    },
    Rule {
        name: "apf-rejects-system-traffic",
        source: "seeds apiserver-troubleshooting.md §2.2 (检查资源使用); kubernetes docs concepts/cluster-administration/flow-control",
        cause_check: "load",
        // A system priority level rejecting, not a critical load with workload-low rejecting.
        cause: |r| r.subchecks.iter().any(|s| s.name.starts_with("apf ") && s.status == Status::Critical),
        effects: &[
            ("leader-election", "leader-election requests are rejected by APF"),
            ("nodes", "node-high requests (node heartbeats) are rejected by APF"),
        ],
        effect: any_effect,
    },
    Rule {
        name: "webhook-lockout",
        source: "seeds apiserver-troubleshooting.md §2.2 (准入控制错误 → 检查 Webhook 配置); kubernetes docs reference/access-authn-authz/extensible-admission-controllers (failurePolicy)",
        cause_check: "webhooks",
        cause: |r| r.status == Status::Critical && r.message.contains("LIVE OUTAGE"),
        effects: &[
            ("etcd", "etcd is unread, not found down: the webhook refuses the exec that reads it"),
            ("load", "the API servers' calls to the webhook fail"),
            ("static-pods", "kube-system pods cannot be recreated while the webhook refuses them"),
            ("leader-election", "lease renewals are refused by the webhook"),
            ("nodes", "node updates are refused by the webhook"),
        ],
        effect: |_, effect| effect.name != "etcd" || effect.message.contains("refused by admission webhook"),
    },
    Rule {
        name: "controller-pod-crashloop",
        source: "seeds control-plane-troubleshooting.md §3.3–3.4 (Controller Manager / Scheduler 故障)",
        cause_check: "static-pods",
        cause: |r| r.message.contains("kube-scheduler") || r.message.contains("kube-controller-manager"),
        effects: &[("leader-election", "no running instance renews the leader lease")],
        effect: |cause, effect| {
            ["kube-scheduler", "kube-controller-manager"]
                .iter()
                .any(|c| cause.message.contains(c) && effect.message.contains(c))
        },
    },
];

fn line(r: &CheckResult) -> String {
    format!("{}: {}", r.name, r.message)
}

fn first_action(r: &CheckResult) -> Option<String> {
    r.remediation.first().map(|f| match f.commands.first() {
        Some(c) => format!("{} (`{c}`)", f.action),
        None => f.action.clone(),
    })
}

/// Links the findings of `results`; `None` when there is nothing to diagnose.
pub fn diagnose(results: &[CheckResult]) -> Option<Diagnosis> {
    let findings: Vec<&CheckResult> = results.iter().filter(|r| is_finding(r)).collect();
    if findings.is_empty() {
        return None;
    }
    let find = |name: &str| findings.iter().copied().find(|r| r.name == name);
    for rule in RULES {
        let Some(cause) = find(rule.cause_check).filter(|c| (rule.cause)(c)) else { continue };
        let consequences: Vec<Consequence> = rule
            .effects
            .iter()
            .filter_map(|(check, because)| {
                let effect = find(check)?;
                (rule.effect)(cause, effect).then(|| Consequence {
                    check: effect.name.clone(),
                    finding: effect.message.clone(),
                    because: because.to_string(),
                })
            })
            .collect();
        if consequences.is_empty() && findings.len() > 1 {
            continue;
        }
        let explained: Vec<&str> = consequences.iter().map(|c| c.check.as_str()).chain([cause.name.as_str()]).collect();
        let independent: Vec<String> =
            findings.iter().filter(|r| !explained.contains(&r.name.as_str())).map(|r| line(r)).collect();
        let mut summary = format!("likely cause: {}", cause.name);
        if !consequences.is_empty() {
            summary.push_str(&format!(
                " → {}",
                consequences.iter().map(|c| c.check.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !independent.is_empty() {
            summary.push_str(&format!("; {} independent", independent.len()));
        }
        return Some(Diagnosis {
            summary,
            likely_cause: Some(Cause {
                check: cause.name.clone(),
                finding: cause.message.clone(),
                rule: rule.name.into(),
                source: rule.source.into(),
            }),
            consequences,
            independent,
            first_action: first_action(cause),
        });
    }
    // No rule links them.
    let mut ordered = findings.clone();
    ordered.sort_by_key(|r| TREE_ORDER.iter().position(|n| *n == r.name).unwrap_or(TREE_ORDER.len()));
    if let [only] = ordered.as_slice() {
        return Some(Diagnosis {
            summary: format!("likely cause: {}", only.name),
            likely_cause: Some(Cause {
                check: only.name.clone(),
                finding: only.message.clone(),
                rule: "single-finding".into(),
                source: "the only finding".into(),
            }),
            consequences: Vec::new(),
            independent: Vec::new(),
            first_action: first_action(only),
        });
    }
    Some(Diagnosis {
        summary: format!(
            "{} independent findings: no causal link between them; {} is upstream in the tree",
            ordered.len(),
            ordered[0].name
        ),
        likely_cause: None,
        consequences: Vec::new(),
        independent: ordered.iter().map(|r| line(r)).collect(),
        first_action: first_action(ordered[0]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn critical(name: &str, message: &str) -> CheckResult {
        CheckResult::new(name, Status::Critical, message)
    }

    fn warning(name: &str, message: &str) -> CheckResult {
        CheckResult::new(name, Status::Warning, message)
    }

    fn with_sub(mut r: CheckResult, sub: &str, status: Status) -> CheckResult {
        r.sub(sub, status, "");
        r
    }

    fn ok(name: &str) -> CheckResult {
        CheckResult::ok(name, "fine")
    }

    #[test]
    fn causal_rules_table() {
        let member_down = |message: &str| with_sub(warning("etcd", message), "member cp-3", Status::Critical);
        let stale_manager_lease = || critical("leader-election", "kube-controller-manager: lease stale");
        // (case, results, likely cause, consequences, independent findings)
        type Case<'a> = (&'a str, Vec<CheckResult>, Option<&'a str>, &'a [&'a str], usize);
        let cases: Vec<Case> = vec![
            ("healthy", vec![ok("etcd"), ok("nodes")], None, &[], 0),
            (
                "NOSPACE → leases and nodes",
                vec![
                    critical("etcd", "NOSPACE alarm raised by cp-1: etcd refuses writes"),
                    critical("leader-election", "kube-scheduler: lease stale"),
                    warning("nodes", "2 workers NotReady (w-1, w-2)"),
                    ok("health"),
                ],
                Some("etcd"),
                &["leader-election", "nodes"],
                0,
            ),
            (
                "member down → its replica's readyz, its pod",
                vec![
                    member_down("member cp-3 down, quorum kept (2 of 3 healthy)"),
                    warning("health", "readyz/etcd fails on cp-3"),
                    warning("static-pods", "etcd-cp-3 CrashLoopBackOff"),
                    critical("aggregated-apis", "v1beta1.metrics.k8s.io not Available"),
                ],
                Some("etcd"),
                &["health", "static-pods"],
                1,
            ),
            (
                "a replica out of file descriptors → its health, not another's load",
                vec![
                    with_sub(
                        critical("resources", "cp-2: 63,900 of 65,536 file descriptors open (98%)"),
                        "replica cp-2",
                        Status::Critical,
                    ),
                    warning("health", "readyz/etcd fails on cp-2"),
                    warning("load", "p99 latency 2.1s on cp-1"),
                ],
                Some("resources"),
                &["health"],
                1,
            ),
            (
                "member down does not explain another replica's failure",
                vec![
                    member_down("member cp-3 down, quorum kept"),
                    warning("health", "readyz/poststarthook fails on cp-1"),
                ],
                None,
                &[],
                2,
            ),
            (
                "lockout webhook → exec into etcd refused",
                vec![
                    critical(
                        "webhooks",
                        "validate.pod.com (pod-validator): LIVE OUTAGE: service default/pod-validator has no ready endpoints",
                    ),
                    CheckResult::new(
                        "etcd",
                        Status::Unknown,
                        "exec into the etcd pods is refused by admission webhook validate.pod.com",
                    ),
                ],
                Some("webhooks"),
                &["etcd"],
                0,
            ),
            (
                "crash-looping scheduler → its lease",
                vec![
                    critical("static-pods", "kube-scheduler-cp-1 CrashLoopBackOff"),
                    critical("leader-election", "kube-scheduler: no leader, lease stale"),
                ],
                Some("static-pods"),
                &["leader-election"],
                0,
            ),
            (
                "one finding is its own cause",
                vec![critical("aggregated-apis", "v1beta1.metrics.k8s.io not Available"), ok("etcd")],
                Some("aggregated-apis"),
                &[],
                0,
            ),
            (
                "a system level rejecting → lease renewals refused",
                vec![
                    with_sub(
                        critical("load", "APF rejects requests (40/s 429s): system time-out 12/s"),
                        "apf system",
                        Status::Critical,
                    ),
                    stale_manager_lease(),
                ],
                Some("load"),
                &["leader-election"],
                0,
            ),
            (
                "workload-low rejecting does not explain a stale lease, however slow the LISTs",
                vec![
                    with_sub(
                        critical(
                            "load",
                            "slow requests: LIST p99 6.2s; APF rejects requests (179/s 429s): workload-low queue-full 198/s",
                        ),
                        "apf workload-low",
                        Status::Warning,
                    ),
                    stale_manager_lease(),
                ],
                None,
                &[],
                2,
            ),
            (
                "permission gaps are not findings",
                vec![CheckResult::not_permitted("load", "get on /metrics"), ok("etcd")],
                None,
                &[],
                0,
            ),
        ];
        for (name, results, expected_cause, expected_consequences, expected_independent) in cases {
            let d = diagnose(&results);
            let cause = d.as_ref().and_then(|d| d.likely_cause.as_ref()).map(|c| c.check.as_str());
            assert_eq!(cause, expected_cause, "{name}: {d:?}");
            let consequences: Vec<&str> =
                d.as_ref().map(|d| d.consequences.iter().map(|c| c.check.as_str()).collect()).unwrap_or_default();
            assert_eq!(consequences, expected_consequences, "{name}");
            assert_eq!(d.as_ref().map(|d| d.independent.len()).unwrap_or(0), expected_independent, "{name}");
            if expected_independent > 1 && expected_cause.is_none() {
                assert!(d.unwrap().summary.contains("no causal link"), "{name}");
            }
        }
    }

    #[test]
    fn every_rule_cites_its_source() {
        for rule in RULES {
            assert!(
                rule.source.contains("seeds") || rule.source.contains("Documentation") || rule.source.contains("docs"),
                "{}",
                rule.name
            );
            assert!(TREE_ORDER.contains(&rule.cause_check), "{}", rule.name);
        }
    }
}
