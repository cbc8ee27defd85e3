//! Check 2, `health`: `/livez?verbose` and `/readyz?verbose` of every replica
//! (<https://kubernetes.io/docs/reference/using-api/health-checks/>).

use std::collections::{BTreeMap, BTreeSet};

use crate::client::RawResponse;
use crate::error::{Error, ErrorKind};
use crate::exit::Status;
use crate::health::{CheckState, explain_check};
use crate::report::CheckResult;

use super::short_error;

/// What one replica answered.
#[derive(Debug, Clone)]
pub struct ReplicaHealth {
    pub name: String,
    pub url: String,
    /// Its kube-apiserver pod, when known.
    pub pod: Option<String>,
    pub livez: Result<RawResponse, Error>,
    pub readyz: Result<RawResponse, Error>,
}

impl ReplicaHealth {
    fn label(&self) -> String {
        if self.name == self.url || self.name == "api" {
            self.url.clone()
        } else {
            format!("{} ({})", self.name, self.url)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Facts {
    pub replicas: Vec<ReplicaHealth>,
    /// Why the reads went through the configured server (one replica's view), when they did.
    pub read_through: Option<String>,
}

fn refused(answer: &Result<RawResponse, Error>) -> bool {
    match answer {
        Err(e) => e.kind == ErrorKind::Forbidden,
        Ok(resp) => resp.status == 401 || resp.status == 403,
    }
}

pub fn judge(f: &Facts) -> CheckResult {
    if !f.replicas.is_empty() && f.replicas.iter().all(|s| refused(&s.readyz)) {
        return CheckResult::not_permitted("health", "get on /readyz and /livez");
    }
    let mut r = CheckResult::ok("health", "");
    if let Some(why) = &f.read_through {
        r.push_evidence("replicas", why.clone());
    }
    // "endpoint/check" → the replicas where it fails.
    let mut failing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut answered = 0;
    // (livez ok, livez total, readyz ok, readyz total), summed over the replicas.
    let mut totals = (0usize, 0usize, 0usize, 0usize);
    for s in &f.replicas {
        let label = s.label();
        let mut replica_ok = true;
        for (endpoint, answer) in [("livez", &s.livez), ("readyz", &s.readyz)] {
            let sub = format!("{endpoint} {}", s.name);
            let resp = match answer {
                Err(e) if e.kind == ErrorKind::Forbidden => {
                    r.sub(sub, Status::Skipped, e.to_string());
                    continue;
                }
                Ok(resp) if resp.status == 401 || resp.status == 403 => {
                    r.sub(
                        sub,
                        Status::Skipped,
                        format!("{label}: not permitted (HTTP {}): needs get on /{endpoint}", resp.status),
                    );
                    continue;
                }
                Err(e) => {
                    replica_ok = false;
                    r.sub(sub, Status::Unknown, format!("{label} did not answer: {}", short_error(e)));
                    continue;
                }
                Ok(resp) => resp,
            };
            let body = crate::health::parse(&resp.text());
            let ok = body.count(CheckState::Ok) + body.count(CheckState::Excluded);
            let total = body.checks.len();
            if endpoint == "livez" {
                totals.0 += ok;
                totals.1 += total;
            } else {
                totals.2 += ok;
                totals.3 += total;
            }
            for line in body.failed() {
                failing.entry(format!("{endpoint}/{}", line.name)).or_default().push(s.name.clone());
                r.sub(
                    format!("{endpoint} {} [-]{}", s.name, line.name),
                    Status::Critical,
                    format!("{label}: {} — {}", line.name, explain_check(&line.name)),
                );
            }
            let any_failed = body.failed().next().is_some();
            if resp.status != 200 && !any_failed {
                failing.entry(format!("{endpoint} (HTTP {})", resp.status)).or_default().push(s.name.clone());
                r.sub(
                    sub,
                    Status::Critical,
                    format!(
                        "{label} answered HTTP {}: {}",
                        resp.status,
                        crate::output::wrap::shorten(resp.text().trim(), 200)
                    ),
                );
            } else if !any_failed {
                r.sub(sub, Status::Ok, format!("{label}: {ok}/{total} checks pass"));
            }
        }
        if replica_ok {
            answered += 1;
        }
    }
    if failing.is_empty() {
        // A check that evaluated nothing never reads "0/0 pass".
        if answered == 0 {
            r.status = Status::Unknown;
            let errors: Vec<&str> = r.subchecks.iter().map(|s| s.message.as_str()).collect();
            r.message = format!("no replica answered /livez or /readyz: {}", errors.join("; "));
            return r;
        }
        let counted = |ok: usize, total: usize| {
            if total == 0 { "answers ok".to_string() } else { format!("{ok}/{total} checks pass") }
        };
        r.message = if answered > 1 {
            format!(
                "livez ({} checks) and readyz ({} checks) pass on each of {answered} replicas",
                totals.1 / answered,
                totals.3 / answered
            )
        } else {
            format!("livez {}, readyz {}", counted(totals.0, totals.1), counted(totals.2, totals.3))
        };
        if f.read_through.is_some() {
            r.message.push_str(" (one replica's view, through the configured server)");
        }
        return r;
    }
    let mut parts = Vec::new();
    for (check, replicas) in &failing {
        let all = replicas.len() >= answered.max(1);
        r.raise(if all { Status::Critical } else { Status::Warning });
        parts.push(format!(
            "{check} fails on {}",
            if all && answered > 1 { "every replica".to_string() } else { replicas.join(", ") }
        ));
    }
    r.message = parts.join("; ");
    let names: BTreeSet<&str> = failing.keys().map(|k| k.split_once('/').map(|(_, n)| n).unwrap_or(k)).collect();
    if names.iter().any(|n| n.starts_with("etcd")) {
        let on: BTreeSet<&str> = failing
            .iter()
            .filter(|(check, _)| check.split_once('/').map_or(check.as_str(), |(_, n)| n).starts_with("etcd"))
            .flat_map(|(_, replicas)| replicas.iter().map(String::as_str))
            .collect();
        let on = on.into_iter().collect::<Vec<_>>().join(", ");
        r.fix(
            format!("The API server cannot reach etcd: see the etcd check; on {on}, check the API server's --etcd-servers and etcd certificates."),
            &[&format!("crictl logs $(crictl ps -q --name kube-apiserver) 2>&1 | grep -i etcd | tail   # on {on}")],
            "low: diagnosis",
        );
    } else {
        let failing_replicas: BTreeSet<&String> = failing.values().flatten().collect();
        let logs: Vec<String> = f
            .replicas
            .iter()
            .filter(|s| failing_replicas.contains(&s.name))
            .map(|s| match &s.pod {
                Some(pod) => format!("kubectl logs -n kube-system {pod} --tail=200"),
                None => format!("kubectl logs -n kube-system -l component=kube-apiserver --tail=200   # {}", s.url),
            })
            .collect();
        r.fix(
            "Read the failing API server's log for the failing check; a stuck start-up hook usually clears after a restart of that replica (one replica at a time).",
            &logs.iter().map(String::as_str).collect::<Vec<_>>(),
            "medium: restarting a replica drops its connections",
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{answer, error, forbidden};

    const HEALTHY: &str = "[+]ping ok\n[+]log ok\n[+]etcd ok\nlivez check passed\n";
    const ETCD_FAILS: &str = "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\nreadyz check failed\n";
    const HOOK_FAILS: &str =
        "[+]ping ok\n[+]etcd ok\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\nreadyz check failed\n";

    fn replica(name: &str, livez: Result<RawResponse, Error>, readyz: Result<RawResponse, Error>) -> ReplicaHealth {
        ReplicaHealth {
            name: name.into(),
            url: format!("https://127.0.0.{}:6443", name.len()),
            pod: Some(format!("kube-apiserver-{name}")),
            livez,
            readyz,
        }
    }

    fn ok(name: &str) -> ReplicaHealth {
        replica(name, answer(200, HEALTHY), answer(200, HEALTHY))
    }

    fn facts(replicas: Vec<ReplicaHealth>) -> Facts {
        Facts { replicas, read_through: None }
    }

    #[test]
    fn verdicts_by_how_many_replicas_fail_what() {
        let refused = || Err(error(ErrorKind::ConnectionRefused, "GET /readyz", "connection refused"));
        let cases: Vec<(&str, Vec<ReplicaHealth>, Status, &str)> = vec![
            ("all pass", vec![ok("cp-1"), ok("cp-2"), ok("cp-3")], Status::Ok, "pass on each of 3 replicas"),
            ("one replica", vec![ok("cp-1")], Status::Ok, "livez 3/3 checks pass, readyz 3/3 checks pass"),
            (
                "etcd fails on one of three",
                vec![ok("cp-1"), ok("cp-2"), replica("cp-3", answer(200, HEALTHY), answer(500, ETCD_FAILS))],
                Status::Warning,
                "readyz/etcd fails on cp-3",
            ),
            (
                "etcd fails everywhere",
                vec![
                    replica("cp-1", answer(200, HEALTHY), answer(500, ETCD_FAILS)),
                    replica("cp-2", answer(200, HEALTHY), answer(500, ETCD_FAILS)),
                ],
                Status::Critical,
                "readyz/etcd fails on every replica",
            ),
            (
                "a bare 500",
                vec![replica("cp-1", answer(200, HEALTHY), answer(500, "internal error"))],
                Status::Critical,
                "readyz (HTTP 500) fails on cp-1",
            ),
            (
                "nobody answered: nothing evaluated, never 0/0",
                vec![replica("cp-1", refused(), refused())],
                Status::Unknown,
                "no replica answered /livez or /readyz",
            ),
        ];
        for (case, replicas, status, message) in cases {
            let r = judge(&facts(replicas));
            assert_eq!(r.status, status, "{case}: {}", r.message);
            assert!(r.message.contains(message), "{case}: {}", r.message);
            assert!(!r.message.contains("0/0"), "{case}: {}", r.message);
        }
    }

    #[test]
    fn the_fix_follows_the_failing_check() {
        let etcd = judge(&facts(vec![replica("cp-1", answer(200, HEALTHY), answer(500, ETCD_FAILS))]));
        assert!(etcd.remediation[0].action.contains("see the etcd check; on cp-1, check"), "{:?}", etcd.remediation);
        assert!(etcd.remediation[0].commands[0].ends_with("# on cp-1"), "{:?}", etcd.remediation);
        let hook = judge(&facts(vec![ok("cp-1"), replica("cp-2", answer(200, HEALTHY), answer(500, HOOK_FAILS))]));
        assert_eq!(hook.remediation[0].commands, ["kubectl logs -n kube-system kube-apiserver-cp-2 --tail=200"]);
    }

    #[test]
    fn refused_everywhere_is_unknown_with_the_permission() {
        let r = judge(&facts(vec![replica("cp-1", Err(forbidden("get on /livez")), Err(forbidden("get on /readyz")))]));
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.missing_permission.as_deref(), Some("get on /readyz and /livez"));
    }

    #[test]
    fn one_replicas_view_says_so() {
        let mut f = facts(vec![ok("api")]);
        f.read_through = Some("no replica address is reachable from here".into());
        let r = judge(&f);
        assert!(r.message.ends_with("(one replica's view, through the configured server)"), "{}", r.message);
    }
}
