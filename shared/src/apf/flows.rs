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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apf::dump::parse_requests;

    #[test]
    fn the_loadtest_account_of_the_website_example_stands_out() {
        // tests/fixtures/flowcontrol/website-dump_requests-includeRequestDetails.txt
        let text = std::fs::read_to_string(format!(
            "{}/../tests/fixtures/flowcontrol/website-dump_requests-includeRequestDetails.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
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
}
