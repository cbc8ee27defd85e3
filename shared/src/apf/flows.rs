//! The requests in `dump_requests`, grouped by who sent them, so the flooding client stands out.

use std::collections::BTreeMap;

use serde::Serialize;

use super::dump::RequestDump;

/// Everything one user has queued or executing (over every replica scraped).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowGroup {
    pub user: String,
    pub flow_schemas: Vec<String>,
    pub priority_levels: Vec<String>,
    pub queued: usize,
    pub executing: usize,
    pub seats: i64,
    /// The longest a queued request has waited (seconds).
    pub longest_wait_seconds: f64,
    /// The most frequent `verb resource` (or path) and its count.
    pub top_request: String,
    pub replicas: Vec<String>,
    /// Every distinct verb seen (for a suggested FlowSchema).
    pub verbs: Vec<String>,
}

impl FlowGroup {
    pub fn total(&self) -> usize {
        self.queued + self.executing
    }
}

fn what(r: &RequestDump) -> String {
    match (r.verb.as_deref(), r.resource.as_deref(), r.path.as_deref()) {
        (Some(v), Some(res), _) if !res.is_empty() => {
            let ns = r.namespace.as_deref().filter(|n| !n.is_empty()).map(|n| format!(" in {n}")).unwrap_or_default();
            format!("{v} {res}{ns}")
        }
        (Some(v), _, Some(p)) => format!("{v} {p}"),
        _ => format!("{} ({})", r.flow_schema, r.priority_level),
    }
}

/// Groups `(replica, request)` pairs by user; the biggest flows first (queued + executing,
/// then seats, then name).
pub fn group(requests: &[(String, RequestDump)], now: jiff::Timestamp) -> Vec<FlowGroup> {
    #[derive(Default)]
    struct Acc {
        schemas: Vec<String>,
        levels: Vec<String>,
        queued: usize,
        executing: usize,
        seats: i64,
        longest: f64,
        what: BTreeMap<String, usize>,
        replicas: Vec<String>,
        verbs: Vec<String>,
    }
    let mut by_user: BTreeMap<String, Acc> = BTreeMap::new();
    for (replica, r) in requests {
        let who = r.who();
        if who.is_empty() {
            continue;
        }
        let a = by_user.entry(who.to_string()).or_default();
        let push = |v: &mut Vec<String>, s: &str| {
            if !v.iter().any(|x| x == s) {
                v.push(s.to_string());
            }
        };
        push(&mut a.schemas, &r.flow_schema);
        push(&mut a.levels, &r.priority_level);
        push(&mut a.replicas, replica);
        if let Some(v) = r.verb.as_deref().filter(|v| !v.is_empty()) {
            push(&mut a.verbs, v);
        }
        a.seats += r.initial_seats;
        if r.is_executing() {
            a.executing += 1;
        } else {
            a.queued += 1;
            if let Some(t) = r.arrive_time {
                a.longest = a.longest.max((now - t).total(jiff::Unit::Second).unwrap_or(0.0).max(0.0));
            }
        }
        *a.what.entry(what(r)).or_insert(0) += 1;
    }
    let mut out: Vec<FlowGroup> = by_user
        .into_iter()
        .map(|(user, a)| {
            let top = a.what.iter().max_by(|x, y| x.1.cmp(y.1).then_with(|| y.0.cmp(x.0)));
            FlowGroup {
                user,
                flow_schemas: a.schemas,
                priority_levels: a.levels,
                queued: a.queued,
                executing: a.executing,
                seats: a.seats,
                longest_wait_seconds: a.longest,
                top_request: top.map(|(w, n)| format!("{w} ×{n}")).unwrap_or_default(),
                replicas: a.replicas,
                verbs: a.verbs,
            }
        })
        .collect();
    out.sort_by(|a, b| b.total().cmp(&a.total()).then(b.seats.cmp(&a.seats)).then_with(|| a.user.cmp(&b.user)));
    out
}

/// The path of apftop's own reads of the APF state.
const DEBUG_PREFIX: &str = "/debug/api_priority_and_fairness/";

/// The requests an observer (apftop itself, or anyone reading the APF debug dumps) has in
/// flight while the dump is taken: every `/debug/api_priority_and_fairness/*` request, and
/// the `/metrics` scrapes of the users who sent them. They are the measurement, not the load.
pub fn is_observer(r: &RequestDump, observers: &[&str]) -> bool {
    match r.path.as_deref() {
        Some(p) if p.starts_with(DEBUG_PREFIX) => true,
        Some("/metrics") => observers.contains(&r.who()),
        _ => false,
    }
}

/// Splits the dumped requests into the load and the observers' own requests (returned as a
/// count).
pub fn without_observers(requests: Vec<(String, RequestDump)>) -> (Vec<(String, RequestDump)>, usize) {
    let observer_users: Vec<String> = requests
        .iter()
        .filter(|(_, r)| r.path.as_deref().is_some_and(|p| p.starts_with(DEBUG_PREFIX)))
        .map(|(_, r)| r.who().to_string())
        .collect();
    let observers: Vec<&str> = observer_users.iter().map(String::as_str).collect();
    let before = requests.len();
    let load: Vec<(String, RequestDump)> = requests.into_iter().filter(|(_, r)| !is_observer(r, &observers)).collect();
    let excluded = before - load.len();
    (load, excluded)
}

/// How much of a priority level's queue the flows explain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueAttribution {
    pub priority_level: String,
    /// Queued by the `current_inqueue_requests` gauge (summed over the replicas read).
    pub queued: f64,
    /// Queued requests the dumps name a sender for.
    pub in_flows: usize,
    pub unattributed: f64,
}

/// For each level with a queue: the gauge's count against the requests the dumps list. They
/// differ because the two are read moments apart (requests dispatched or arrived in between),
/// and a replica whose dump could not be read still counts in the gauge.
pub fn attribute_queues(
    levels: &[crate::apf::stats::LevelStats],
    requests: &[(String, RequestDump)],
) -> Vec<QueueAttribution> {
    let mut dumped: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, r) in requests.iter().filter(|(_, r)| !r.is_executing()) {
        *dumped.entry(r.priority_level.as_str()).or_insert(0) += 1;
    }
    levels
        .iter()
        .filter(|l| l.inqueue_requests > 0.0)
        .map(|l| {
            let in_flows = dumped.get(l.name.as_str()).copied().unwrap_or(0);
            QueueAttribution {
                priority_level: l.name.clone(),
                queued: l.inqueue_requests,
                in_flows,
                unattributed: (l.inqueue_requests - in_flows as f64).max(0.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apf::dump::parse_requests;

    #[test]
    fn the_loadtest_account_of_the_website_example_stands_out() {
        // tests/fixtures/flowcontrol/website-dump_requests-includeRequestDetails.txt
        let text =
            crate::test_files::text("tests/fixtures/flowcontrol/website-dump_requests-includeRequestDetails.txt");
        let requests: Vec<(String, RequestDump)> =
            parse_requests(&text).into_iter().map(|r| ("cp-1".to_string(), r)).collect();
        let now: jiff::Timestamp = "2023-07-18T00:13:19Z".parse().unwrap();
        let flows = group(&requests, now);
        assert_eq!(flows.len(), 2);
        let top = &flows[0];
        assert_eq!(top.user, "system:serviceaccount:default:loadtest");
        assert_eq!((top.queued, top.executing, top.seats), (2, 0, 20));
        assert_eq!(top.flow_schemas, ["service-accounts"]);
        assert_eq!(top.top_request, "list configmaps in kube-stress ×2");
        assert!((top.longest_wait_seconds - 10.01).abs() < 0.01, "{}", top.longest_wait_seconds);
        assert_eq!(top.verbs, ["list"]);
        assert_eq!(flows[1].user, "system:serviceaccount:system:admin");
        assert_eq!(flows[1].executing, 1);
    }

    fn request(user: &str, level: &str, path: &str, executing: bool) -> (String, RequestDump) {
        let t: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        (
            "cp-1".into(),
            RequestDump {
                priority_level: level.into(),
                flow_schema: "fs".into(),
                queue_index: 0,
                distinguisher: user.into(),
                arrive_time: Some(t),
                initial_seats: 1,
                start_time: executing.then_some(t),
                user: Some(user.into()),
                verb: Some("get".into()),
                path: Some(path.into()),
                namespace: None,
                resource: None,
            },
        )
    }

    #[test]
    fn the_observers_own_requests_are_not_load() {
        let requests = vec![
            request("sre", "global-default", "/debug/api_priority_and_fairness/dump_requests", true),
            request("sre", "global-default", "/metrics", true),
            request("prometheus", "global-default", "/metrics", true),
            request("flooder", "workload-low", "/api/v1/pods", false),
        ];
        let (load, excluded) = without_observers(requests);
        assert_eq!(excluded, 2, "the dump request and the same user's /metrics scrape");
        let users: Vec<&str> = load.iter().map(|(_, r)| r.who()).collect();
        assert_eq!(users, ["prometheus", "flooder"], "someone else's scrape is load");
    }

    #[test]
    fn queues_the_dumps_do_not_explain_are_counted() {
        let level = |name: &str, queued: f64| crate::apf::stats::LevelStats {
            name: name.into(),
            inqueue_requests: queued,
            ..Default::default()
        };
        let requests = vec![
            request("flooder", "workload-low", "/api/v1/pods", false),
            request("flooder", "workload-low", "/api/v1/pods", false),
            request("flooder", "workload-low", "/api/v1/pods", true),
        ];
        let got = attribute_queues(&[level("workload-low", 5.0), level("exempt", 0.0)], &requests);
        assert_eq!(
            got,
            [QueueAttribution { priority_level: "workload-low".into(), queued: 5.0, in_flows: 2, unattributed: 3.0 }]
        );
    }
}
