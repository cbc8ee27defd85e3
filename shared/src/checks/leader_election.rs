//! Check 5, `leader-election`: the kube-controller-manager and kube-scheduler leader leases
//! (kube-system; <https://kubernetes.io/docs/concepts/architecture/leases/#leader-election>).

use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::controlplane::{LeaseInfo, judge_lease};
use crate::error::{Error, ErrorKind};
use crate::exit::Status;
use crate::report::{CheckResult, one_line};

/// The components that elect a leader through a lease of their name.
pub const ELECTED: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

#[derive(Debug, Clone)]
pub struct Facts {
    /// Each elected component's lease, as read.
    pub leases: Vec<(String, Result<LeaseInfo, Error>)>,
    /// Components whose pods run with `--leader-elect=false` (a single instance, no lease).
    pub election_disabled: BTreeSet<String>,
}

pub fn judge(f: &Facts, now: Timestamp) -> CheckResult {
    let mut r = CheckResult::ok("leader-election", "");
    let mut parts: Vec<(Status, String)> = Vec::new();
    let mut refused = false;
    for (name, lease) in &f.leases {
        match lease {
            Ok(info) => {
                let (st, text) = judge_lease(info, now);
                r.raise(st);
                r.sub(name, st, text.clone());
                if let Some(h) = info.holder_node() {
                    let renewed = info.renew_age(now).map(crate::duration::human_duration_signed).unwrap_or_default();
                    r.push_evidence(name, format!("{h}, renewed {renewed}"));
                }
                parts.push((st, text));
                if st == Status::Critical {
                    r.fix(
                        format!("No active {name}: check its pods (`kubectl get pods -n kube-system -l component={name}`) and logs; they must reach the API server and renew the lease every few seconds."),
                        &[&format!("kubectl logs -n kube-system -l component={name} --tail=50")],
                        "medium: while no leader runs, nothing is scheduled or reconciled",
                    );
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound && f.election_disabled.contains(name) => {
                r.sub(
                    name,
                    Status::Skipped,
                    "leader election disabled (--leader-elect=false: a single instance)".to_string(),
                );
                parts.push((Status::Ok, format!("{name}: leader election disabled")));
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                r.raise(Status::Warning);
                r.sub(name, Status::Warning, format!("no lease kube-system/{name}"));
                parts.push((Status::Warning, format!("{name}: no lease")));
            }
            Err(e) if e.kind == ErrorKind::Forbidden => refused = true,
            Err(e) => {
                r.raise(Status::Unknown);
                parts.push((Status::Unknown, format!("{name}: {e}")));
            }
        }
    }
    if refused && parts.is_empty() {
        return CheckResult::not_permitted("leader-election", "get on leases.coordination.k8s.io in kube-system");
    }
    // The problems lead; healthy leases are in the sub-checks.
    parts.sort_by_key(|p| std::cmp::Reverse(p.0));
    let problems: Vec<String> = parts.iter().filter(|(st, _)| *st > Status::Note).map(|(_, t)| t.clone()).collect();
    let all: Vec<String> = parts.into_iter().map(|(_, t)| t).collect();
    r.message = one_line(if problems.is_empty() { &all } else { &problems });
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{at, error, forbidden, now};

    /// (case, facts, ..., expected status, expected message)
    type Case = (&'static str, Vec<(String, Result<LeaseInfo, Error>)>, &'static [&'static str], Status, &'static str);

    fn lease(name: &str, renewed_secs_ago: i64) -> (String, Result<LeaseInfo, Error>) {
        (
            name.to_string(),
            Ok(LeaseInfo {
                namespace: "kube-system".into(),
                name: name.into(),
                holder: Some("cp-1_4f1b2c".into()),
                renew_time: Some(at(-renewed_secs_ago)),
                acquire_time: Some(at(-86_400)),
                duration_seconds: Some(15),
                transitions: Some(1),
            }),
        )
    }

    fn missing(name: &str) -> (String, Result<LeaseInfo, Error>) {
        (name.to_string(), Err(error(ErrorKind::NotFound, "lease not found", "")))
    }

    fn run(leases: Vec<(String, Result<LeaseInfo, Error>)>, disabled: &[&str]) -> CheckResult {
        judge(
            &Facts { leases, election_disabled: disabled.iter().map(std::string::ToString::to_string).collect() },
            now(),
        )
    }

    #[test]
    fn verdicts_by_lease_state() {
        let cm = "kube-controller-manager";
        let sched = "kube-scheduler";
        let cases: Vec<Case> = vec![
            (
                "both renewed",
                vec![lease(cm, 2), lease(sched, 3)],
                &[],
                Status::Ok,
                "kube-controller-manager: leader cp-1, renewed 2s ago",
            ),
            (
                "scheduler stale",
                vec![lease(cm, 2), lease(sched, 120)],
                &[],
                Status::Critical,
                "kube-scheduler: stale — cp-1 last renewed 2m ago",
            ),
            ("no lease", vec![lease(cm, 2), missing(sched)], &[], Status::Warning, "kube-scheduler: no lease"),
            (
                "election disabled",
                vec![lease(cm, 2), missing(sched)],
                &["kube-scheduler"],
                Status::Ok,
                "kube-controller-manager: leader cp-1",
            ),
        ];
        for (case, leases, disabled, status, message) in cases {
            let r = run(leases, disabled);
            assert_eq!(r.status, status, "{case}: {}", r.message);
            assert!(r.message.starts_with(message), "{case}: {}", r.message);
        }
    }

    #[test]
    fn a_stale_lease_names_the_component_in_its_fix() {
        let r = run(vec![lease("kube-controller-manager", 300)], &[]);
        assert_eq!(
            r.remediation[0].commands,
            ["kubectl logs -n kube-system -l component=kube-controller-manager --tail=50"]
        );
    }

    #[test]
    fn refused_reads_are_unknown_with_the_permission() {
        let r = run(
            vec![
                ("kube-controller-manager".into(), Err(forbidden("get on leases"))),
                ("kube-scheduler".into(), Err(forbidden("get on leases"))),
            ],
            &[],
        );
        assert_eq!(r.status, Status::Unknown);
        assert!(r.missing_permission.is_some());
    }
}
