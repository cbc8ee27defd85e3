//! Check 3, `replicas`: every API server replica alive or down by what the API says (identity
//! lease, EndpointSlice, static pod: `liveness::judge`), with its version, readiness and
//! serving certificate when it can be dialled from here.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::certs::{CertInfo, describe_expiry, expiry_status};
use crate::error::Error;
use crate::exit::Status;
use crate::liveness::{Liveness, Reach};
use crate::replicas::Survey;
use crate::report::{CheckResult, one_line};

use super::{RENEW_CERTS, RENEW_CERTS_ACTION, short_error};

/// What a reachable replica answered itself.
#[derive(Debug, Clone)]
pub struct ReplicaAnswer {
    /// Its `gitVersion`.
    pub version: Result<String, Error>,
    /// `/readyz` answered 200.
    pub ready: bool,
    pub serving_certificate: Option<CertInfo>,
}

#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub survey: &'a Survey,
    /// By replica URL.
    pub answers: BTreeMap<String, ReplicaAnswer>,
    /// The configured server (the load balancer, usually) answered /version.
    pub load_balancer_answers: bool,
}

pub fn judge(f: &Facts, now: Timestamp) -> CheckResult {
    let survey = f.survey;
    if let Some(e) = &survey.listing_error {
        return CheckResult::from_error("replicas", e);
    }
    if survey.replicas.is_empty() {
        return CheckResult::skipped("replicas", survey.read_through.clone().unwrap_or_default());
    }
    if survey.replicas.iter().any(|r| matches!(r.facts.reach, Reach::OtherCa(_))) {
        return CheckResult::skipped(
            "replicas",
            format!("not visible one by one: {}", survey.read_through.clone().unwrap_or_default()),
        );
    }
    let lb_ok = f.load_balancer_answers;
    let mut r = CheckResult::ok("replicas", "");
    let mut down = Vec::new();
    let mut down_pods = Vec::new();
    let mut down_nodes = Vec::new();
    let mut unreachable = Vec::new();
    let mut not_ready = Vec::new();
    let mut cert_issues: Vec<(String, String)> = Vec::new();
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for surveyed in &survey.replicas {
        let name = &surveyed.replica.name;
        let label = format!("{name} ({})", surveyed.replica.url);
        let pod = || surveyed.replica.pod.clone().unwrap_or_else(|| format!("kube-apiserver-{name}"));
        match (&surveyed.liveness, f.answers.get(&surveyed.replica.url)) {
            (Liveness::Down { cause, detail }, _) => {
                down.push(format!("{name} ({cause})"));
                down_nodes.push(name.clone());
                down_pods.push(pod());
                r.sub(format!("replica {name}"), Status::Warning, format!("{label} is down: {detail}"));
            }
            (Liveness::AliveUnreachable(why), _) => {
                unreachable.push(name.clone());
                r.sub(format!("replica {name}"), Status::Note, format!("{label}: {why}"));
            }
            (Liveness::Reachable, Some(answer)) => match &answer.version {
                Ok(v) => {
                    versions.entry(v.clone()).or_default().push(name.clone());
                    if !answer.ready {
                        not_ready.push(name.clone());
                    }
                    let cert = answer.serving_certificate.as_ref().map(|l| {
                        let st = expiry_status(l.not_after, now);
                        if st != Status::Ok {
                            r.raise(st);
                            cert_issues.push((name.clone(), describe_expiry(l.not_after, now)));
                        }
                        format!(", certificate {}", describe_expiry(l.not_after, now))
                    });
                    let note =
                        if surveyed.replica.in_endpoints { "" } else { " (not in the kubernetes EndpointSlice)" };
                    r.sub(
                        format!("replica {name}"),
                        if answer.ready { Status::Ok } else { Status::Warning },
                        format!(
                            "{label}: {v}, {}{}{note}",
                            if answer.ready { "ready" } else { "NOT ready" },
                            cert.unwrap_or_default()
                        ),
                    );
                }
                Err(e) => {
                    down.push(format!("{name} ({})", short_error(e)));
                    down_nodes.push(name.clone());
                    down_pods.push(pod());
                    r.sub(
                        format!("replica {name}"),
                        Status::Warning,
                        format!("{label} does not answer: {}", short_error(e)),
                    );
                }
            },
            (Liveness::Reachable, None) => {
                r.sub(format!("replica {name}"), Status::Ok, format!("{label}: reachable"));
            }
        }
    }
    let total = survey.replicas.len();
    let mut parts = Vec::new();
    if !down.is_empty() {
        // Down behind a load balancer that still answers: the others carry the load.
        r.raise(if lb_ok && down.len() < total { Status::Warning } else { Status::Critical });
        parts.push(format!(
            "replica {} down while {}",
            down.join(", "),
            if lb_ok { "the load balancer answers" } else { "the load balancer does not answer either" }
        ));
        let logs: Vec<String> =
            down_pods.iter().map(|p| format!("kubectl logs -n kube-system {p} --previous --tail=100")).collect();
        r.fix(
            format!("On {}: `crictl ps -a --name kube-apiserver` and `crictl logs` of the exited container (certificates, etcd reachability, OOM); check the load balancer's health checks so it stops sending traffic there.", down_nodes.join(", ")),
            &logs.iter().map(String::as_str).collect::<Vec<_>>(),
            "medium: fix one replica at a time; the others carry the load meanwhile",
        );
    }
    if !not_ready.is_empty() {
        r.raise(Status::Warning);
        parts.push(format!("replica {} answers but is not ready (see health)", not_ready.join(", ")));
    }
    if !cert_issues.is_empty() {
        // One line per expiry: the replicas share their certificates' dates more often than not.
        let mut by_expiry: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, expiry) in &cert_issues {
            by_expiry.entry(expiry.as_str()).or_default().push(name.as_str());
        }
        for (expiry, names) in by_expiry {
            parts.push(format!("serving certificate of {} {expiry}", names.join(", ")));
        }
        r.fix(RENEW_CERTS_ACTION, RENEW_CERTS, "high: each API server restarts");
    }
    if versions.len() > 1 {
        r.raise(Status::Warning);
        parts.push(format!(
            "version skew: {}",
            versions.iter().map(|(v, names)| format!("{v} on {}", names.join(","))).collect::<Vec<_>>().join(", ")
        ));
    }
    if !unreachable.is_empty() {
        // Alive by the API, not dialable from this laptop: worth knowing, never a fault.
        r.raise(Status::Note);
        let basis = if survey.leases_read { "their identity leases" } else { "the kubernetes EndpointSlice" };
        parts.push(format!(
            "{} alive by {basis}, not reachable from here: health and load read through the configured server",
            unreachable.join(", ")
        ));
    }
    r.push_evidence(
        "replicas",
        survey.replicas.iter().map(|x| format!("{} {}", x.replica.name, x.replica.url)).collect::<Vec<_>>().join(", "),
    );
    if let Some(why) = &survey.read_through {
        r.push_evidence("read through", why.clone());
    }
    if parts.is_empty() {
        let v = versions.keys().next().cloned().unwrap_or_default();
        if total == 1 {
            r.raise(Status::Note);
            r.message = format!("1 replica ({v}, ready): no HA");
        } else {
            r.message = format!("{total} replicas answer and are ready ({v})");
        }
    } else {
        r.message = one_line(&parts);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{DAY, cert, error, now};
    use crate::error::ErrorKind;
    use crate::liveness::{LeaseFact, PodFact, ReplicaFacts};
    use crate::replicas::{Replica, SurveyedReplica};

    /// (case, facts, ..., expected status, expected message)
    type Case = (&'static str, Vec<(SurveyedReplica, Option<ReplicaAnswer>)>, bool, Status, &'static str);

    fn surveyed(name: &str, liveness: Liveness) -> SurveyedReplica {
        let url = format!("https://127.0.0.{}:6443", name.trim_start_matches("cp-"));
        SurveyedReplica {
            replica: Replica { name: name.into(), url: url.clone(), in_endpoints: true, pod: None },
            facts: ReplicaFacts {
                name: name.into(),
                address: url.trim_start_matches("https://").into(),
                in_endpoints: true,
                endpoints_maintained: true,
                lease: LeaseFact::Fresh(std::time::Duration::from_secs(2)),
                pod: PodFact::Running,
                reach: Reach::Answered,
            },
            liveness,
            tls: None,
        }
    }

    fn answer(version: &str, ready: bool, cert_days: i64) -> ReplicaAnswer {
        ReplicaAnswer {
            version: Ok(version.into()),
            ready,
            serving_certificate: Some(cert("kube-apiserver", cert_days * DAY)),
        }
    }

    fn run(replicas: Vec<(SurveyedReplica, Option<ReplicaAnswer>)>, lb_ok: bool) -> CheckResult {
        let answers = replicas.iter().filter_map(|(s, a)| a.clone().map(|a| (s.replica.url.clone(), a))).collect();
        let survey = Survey {
            replicas: replicas.into_iter().map(|(s, _)| s).collect(),
            leases_read: true,
            ..Default::default()
        };
        judge(&Facts { survey: &survey, answers, load_balancer_answers: lb_ok }, now())
    }

    fn down(cause: &str) -> Liveness {
        Liveness::Down { cause: cause.into(), detail: format!("{cause} for 2m") }
    }

    /// A replica that answered: its version, readiness and certificate's days left.
    fn answering(name: &str, version: &str, ready: bool, cert_days: i64) -> (SurveyedReplica, Option<ReplicaAnswer>) {
        (surveyed(name, Liveness::Reachable), Some(answer(version, ready, cert_days)))
    }

    #[test]
    fn verdicts_by_replica_state() {
        let ok = |n: &str| answering(n, "v1.33.1", true, 300);
        let lease_stale = |n: &str| (surveyed(n, down("identity lease stale")), None);
        let unreachable =
            |n: &str| (surveyed(n, Liveness::AliveUnreachable("alive by its identity lease".into())), None);
        let version_times_out = ReplicaAnswer {
            version: Err(error(ErrorKind::Timeout, "GET /version", "i/o timeout")),
            ready: false,
            serving_certificate: None,
        };
        let cases: Vec<Case> = vec![
            (
                "three healthy",
                vec![ok("cp-1"), ok("cp-2"), ok("cp-3")],
                true,
                Status::Ok,
                "3 replicas answer and are ready (v1.33.1)",
            ),
            ("one replica: no HA", vec![ok("cp-1")], true, Status::Note, "1 replica (v1.33.1, ready): no HA"),
            (
                "one down behind a load balancer that answers",
                vec![ok("cp-1"), ok("cp-2"), lease_stale("cp-3")],
                true,
                Status::Warning,
                "replica cp-3 (identity lease stale) down while the load balancer answers",
            ),
            (
                "down and the load balancer silent",
                vec![ok("cp-1"), lease_stale("cp-3")],
                false,
                Status::Critical,
                "the load balancer does not answer either",
            ),
            (
                "alive but not reachable from here: a NOTE",
                vec![unreachable("cp-1"), unreachable("cp-2")],
                true,
                Status::Note,
                "cp-1, cp-2 alive by their identity leases, not reachable from here",
            ),
            (
                "not ready",
                vec![ok("cp-1"), answering("cp-2", "v1.33.1", false, 300)],
                true,
                Status::Warning,
                "replica cp-2 answers but is not ready",
            ),
            (
                "version skew",
                vec![ok("cp-1"), answering("cp-2", "v1.32.4", true, 300)],
                true,
                Status::Warning,
                "version skew: v1.32.4 on cp-2, v1.33.1 on cp-1",
            ),
            (
                "a serving certificate in 5 days",
                vec![ok("cp-1"), answering("cp-2", "v1.33.1", true, 5)],
                true,
                Status::Critical,
                "serving certificate of cp-2 expires",
            ),
            (
                "reachable by TLS but /version fails",
                vec![ok("cp-1"), (surveyed("cp-2", Liveness::Reachable), Some(version_times_out))],
                true,
                Status::Warning,
                "replica cp-2 (i/o timeout) down",
            ),
        ];
        for (case, replicas, lb_ok, status, message) in cases {
            let r = run(replicas, lb_ok);
            assert_eq!(r.status, status, "{case}: {}", r.message);
            assert!(r.message.contains(message), "{case}: {}", r.message);
        }
    }

    #[test]
    fn the_fix_names_the_dead_replicas_node_and_pod() {
        let r = run(
            vec![answering("cp-1", "v1.33.1", true, 300), (surveyed("cp-3", down("identity lease stale")), None)],
            true,
        );
        assert_eq!(
            r.remediation[0].commands,
            ["kubectl logs -n kube-system kube-apiserver-cp-3 --previous --tail=100"]
        );
        assert!(
            r.remediation[0].action.starts_with("On cp-3: `crictl ps -a --name kube-apiserver`"),
            "{:?}",
            r.remediation
        );
    }

    #[test]
    fn a_proxy_with_its_own_ca_or_no_listing_is_not_a_verdict() {
        let mut proxied = surveyed("cp-1", Liveness::Reachable);
        proxied.facts.reach = Reach::OtherCa("unknown authority".into());
        let r = run(vec![(proxied, None)], true);
        assert_eq!(r.status, Status::Skipped);
        let empty = Survey { read_through: Some("the replicas cannot be listed".into()), ..Default::default() };
        let r = judge(&Facts { survey: &empty, answers: BTreeMap::new(), load_balancer_answers: true }, now());
        assert_eq!(r.status, Status::Skipped);
    }
}
