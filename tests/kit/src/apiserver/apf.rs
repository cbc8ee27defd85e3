//! API Priority and Fairness as the simulated server exposes it: the debug dumps in their real
//! column formats (comma + tab, aligned like Go's tabwriter) and the
//! `X-Kubernetes-PF-FlowSchema-UID` / `-PriorityLevel-UID` response headers, from a classifier
//! over the FlowSchemas in the store.

use std::time::Duration;

use http::Method;
use serde_json::Value;

use super::Sim;
use super::auth::Identity;
use super::http::Query;
use super::registry;

/// One priority level's counters in `dump_priority_levels`.
#[derive(Debug, Clone, Default)]
pub struct LevelState {
    pub name: String,
    pub active_queues: u32,
    pub waiting: u32,
    pub executing: u32,
    pub dispatched_start: u64,
    pub dispatched_per_second: f64,
    pub rejected_per_second: f64,
    pub timedout_per_second: f64,
    pub queues: u32,
}

/// One request in `dump_requests`.
#[derive(Debug, Clone, Default)]
pub struct RequestState {
    pub priority_level: String,
    pub flow_schema: String,
    pub queue_index: i32,
    pub index_in_queue: i32,
    pub distinguisher: String,
    pub arrive_time: String,
    pub initial_seats: u32,
    pub start_time: String,
    pub user: String,
    pub verb: String,
    pub api_path: String,
    pub namespace: String,
    pub resource: String,
    /// The replica it waits or runs on (a client's HTTP/2 connection lands on one); None: each.
    pub replica: Option<usize>,
}

/// The APF state of the simulated server.
#[derive(Debug, Clone, Default)]
pub struct ApfModel {
    pub levels: Vec<LevelState>,
    pub requests: Vec<RequestState>,
}

/// Go's tabwriter as `dump_*` use it: cells end with `,`, columns padded to the widest cell
/// plus one space; the last cell of a row is not padded.
pub fn tabwrite(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.push_str(&" ".repeat(widths[i] + 1 - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

fn cells(values: &[String], trailing_comma: bool) -> Vec<String> {
    let n = values.len();
    values
        .iter()
        .enumerate()
        .map(|(i, v)| if i + 1 < n || trailing_comma { format!("{v},") } else { v.clone() })
        .collect()
}

impl ApfModel {
    /// What one replica sees (APF state is per replica): its own requests, and the levels'
    /// counts and rates scaled by the share of the load it carries.
    pub fn on_replica(&self, replica: usize, weight: f64) -> ApfModel {
        let scale = |v: u32| (v as f64 * weight).round() as u32;
        ApfModel {
            levels: self
                .levels
                .iter()
                .map(|l| LevelState {
                    active_queues: scale(l.active_queues),
                    waiting: scale(l.waiting),
                    executing: scale(l.executing),
                    dispatched_start: (l.dispatched_start as f64 * weight) as u64,
                    dispatched_per_second: l.dispatched_per_second * weight,
                    rejected_per_second: l.rejected_per_second * weight,
                    timedout_per_second: l.timedout_per_second * weight,
                    ..l.clone()
                })
                .collect(),
            requests: self.requests.iter().filter(|r| r.replica.is_none_or(|at| at == replica)).cloned().collect(),
        }
    }

    pub fn dump_priority_levels(&self, uptime: Duration) -> String {
        let t = uptime.as_secs_f64();
        let header: Vec<String> = [
            "PriorityLevelName",
            "ActiveQueues",
            "IsIdle",
            "IsQuiescing",
            "WaitingRequests",
            "ExecutingRequests",
            "DispatchedRequests",
            "RejectedRequests",
            "TimedoutRequests",
            "CancelledRequests",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut rows = vec![cells(&header, false)];
        let mut levels = self.levels.clone();
        levels.sort_by(|a, b| a.name.cmp(&b.name));
        for l in &levels {
            let idle = l.waiting == 0 && l.executing == 0;
            rows.push(cells(
                &[
                    l.name.clone(),
                    l.active_queues.to_string(),
                    idle.to_string(),
                    "false".into(),
                    l.waiting.to_string(),
                    l.executing.to_string(),
                    (l.dispatched_start + (l.dispatched_per_second * t) as u64).to_string(),
                    ((l.rejected_per_second * t) as u64).to_string(),
                    ((l.timedout_per_second * t) as u64).to_string(),
                    "0".into(),
                ],
                false,
            ));
        }
        tabwrite(&rows)
    }

    pub fn dump_queues(&self) -> String {
        let header: Vec<String> = [
            "PriorityLevelName",
            "Index",
            "PendingRequests",
            "ExecutingRequests",
            "SeatsInUse",
            "NextDispatchR",
            "InitialSeatsSum",
            "MaxSeatsSum",
            "TotalWorkSum",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut rows = vec![cells(&header, false)];
        let mut levels = self.levels.clone();
        levels.sort_by(|a, b| a.name.cmp(&b.name));
        for l in &levels {
            for q in 0..l.queues {
                let pending = self
                    .requests
                    .iter()
                    .filter(|r| {
                        r.priority_level == l.name && r.queue_index == q as i32 && r.start_time.starts_with("0001")
                    })
                    .count();
                let executing = self
                    .requests
                    .iter()
                    .filter(|r| {
                        r.priority_level == l.name && r.queue_index == q as i32 && !r.start_time.starts_with("0001")
                    })
                    .count();
                let seats: u32 = self
                    .requests
                    .iter()
                    .filter(|r| r.priority_level == l.name && r.queue_index == q as i32)
                    .map(|r| r.initial_seats)
                    .sum();
                rows.push(cells(
                    &[
                        l.name.clone(),
                        q.to_string(),
                        pending.to_string(),
                        executing.to_string(),
                        (executing as u32).to_string(),
                        format!("{:.8}ss", if pending > 0 { 77.64342019 } else { 0.0 }),
                        seats.to_string(),
                        seats.to_string(),
                        format!("{:.8}ss", seats as f64 * 0.003),
                    ],
                    false,
                ));
            }
        }
        tabwrite(&rows)
    }

    pub fn dump_requests(&self, details: bool) -> String {
        let mut header: Vec<String> = [
            "PriorityLevelName",
            "FlowSchemaName",
            "QueueIndex",
            "RequestIndexInQueue",
            "FlowDistingsher",
            "ArriveTime",
            "InitialSeats",
            "FinalSeats",
            "AdditionalLatency",
            "StartTime",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if details {
            header.extend(
                ["UserName", "Verb", "APIPath", "Namespace", "Name", "APIVersion", "Resource", "SubResource"]
                    .iter()
                    .map(|s| s.to_string()),
            );
        }
        let mut rows = vec![cells(&header, false)];
        for r in &self.requests {
            let mut v = vec![
                r.priority_level.clone(),
                r.flow_schema.clone(),
                r.queue_index.to_string(),
                r.index_in_queue.to_string(),
                r.distinguisher.clone(),
                r.arrive_time.clone(),
                r.initial_seats.to_string(),
                "0".into(),
                "0s".into(),
                r.start_time.clone(),
            ];
            if details {
                v.extend([
                    r.user.clone(),
                    r.verb.clone(),
                    r.api_path.clone(),
                    r.namespace.clone(),
                    String::new(),
                    "v1".into(),
                    r.resource.clone(),
                    String::new(),
                ]);
            }
            rows.push(cells(&v, details));
        }
        tabwrite(&rows)
    }
}

/// Which FlowSchema (and its priority level) serves a request: lowest precedence first, ties
/// by name; the subject and one rule must match.
pub fn classify(
    schemas: &[Value],
    identity: &Identity,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    path: Option<&str>,
) -> Option<Value> {
    let mut sorted: Vec<&Value> = schemas.iter().collect();
    sorted.sort_by(|a, b| {
        let pa = a["spec"]["matchingPrecedence"].as_i64().unwrap_or(1000);
        let pb = b["spec"]["matchingPrecedence"].as_i64().unwrap_or(1000);
        pa.cmp(&pb).then_with(|| a["metadata"]["name"].as_str().cmp(&b["metadata"]["name"].as_str()))
    });
    // A `*` is a wildcard only as the list's sole member (the API validates it so).
    let has = |list: &Value, want: &str| {
        list.as_array().is_some_and(|l| (l.len() == 1 && l[0] == "*") || l.iter().any(|x| x.as_str() == Some(want)))
    };
    for fs in sorted {
        for rule in fs["spec"]["rules"].as_array().cloned().unwrap_or_default() {
            let subject_ok = rule["subjects"].as_array().is_some_and(|subjects| {
                subjects.iter().any(|s| match s["kind"].as_str() {
                    Some("User") => {
                        s["user"]["name"] == "*" || s["user"]["name"].as_str() == Some(identity.user.as_str())
                    }
                    Some("Group") => {
                        s["group"]["name"] == "*"
                            || identity.groups.iter().any(|g| s["group"]["name"].as_str() == Some(g.as_str()))
                    }
                    Some("ServiceAccount") => {
                        let ns = s["serviceAccount"]["namespace"].as_str().unwrap_or("");
                        let name = s["serviceAccount"]["name"].as_str().unwrap_or("");
                        let prefix = format!("system:serviceaccount:{ns}:");
                        identity.user.starts_with(&prefix) && (name == "*" || identity.user[prefix.len()..] == *name)
                    }
                    _ => false,
                })
            });
            if !subject_ok {
                continue;
            }
            let rule_ok = match path {
                Some(p) => rule["nonResourceRules"].as_array().is_some_and(|rs| {
                    rs.iter().any(|r| {
                        has(&r["verbs"], verb)
                            && r["nonResourceURLs"].as_array().is_some_and(|urls| {
                                urls.iter().any(|u| {
                                    // Exact, or a prefix that ends in `/` (`/healthz` covers
                                    // `/healthz/etcd`; `/healthz/*` does not cover `/healthz`).
                                    let u = u.as_str().unwrap_or("");
                                    let mut prefix = u.trim_end_matches('*').to_string();
                                    if !prefix.ends_with('/') {
                                        prefix.push('/');
                                    }
                                    u == "*" || u == p || p.starts_with(&prefix)
                                })
                            })
                    })
                }),
                None => rule["resourceRules"].as_array().is_some_and(|rs| {
                    rs.iter().any(|r| {
                        let scope_ok = if namespace.is_empty() {
                            r["clusterScope"] == true
                        } else {
                            has(&r["namespaces"], namespace)
                        };
                        has(&r["verbs"], verb)
                            && has(&r["apiGroups"], group)
                            && has(&r["resources"], resource)
                            && scope_ok
                    })
                }),
            };
            if rule_ok {
                return Some(fs.clone());
            }
        }
    }
    None
}

/// The UIDs for the response headers of a request.
pub fn response_uids(sim: &Sim, identity: &Identity, method: &Method, path: &str, query: &Query) -> (String, String) {
    let store = sim.store.read().expect("store lock");
    let (Some(fs_rt), Some(pl_rt)) = (
        registry::find("flowcontrol.apiserver.k8s.io", "flowschemas"),
        registry::find("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
    ) else {
        return (String::new(), String::new());
    };
    let schemas = store.list(fs_rt, None);
    let (verb, group, resource, namespace, non_resource) = match super::routes::parse_resource_path(path) {
        Some(rp) => {
            let verb = super::rest::verb_of(method, &rp, query);
            let resource =
                if rp.subresource.is_empty() { rp.resource } else { format!("{}/{}", rp.resource, rp.subresource) };
            (verb, rp.group, resource, rp.namespace, None)
        }
        None => ("get", String::new(), String::new(), String::new(), Some(path)),
    };
    let Some(fs) = classify(&schemas, identity, verb, &group, &resource, &namespace, non_resource) else {
        return (String::new(), String::new());
    };
    let pl_name = fs["spec"]["priorityLevelConfiguration"]["name"].as_str().unwrap_or("");
    let pl_uid = store
        .get(pl_rt, "", pl_name)
        .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_string))
        .unwrap_or_default();
    (fs["metadata"]["uid"].as_str().unwrap_or("").to_string(), pl_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_format_matches_the_real_one() {
        // tests/fixtures/flowcontrol/website-dump_priority_levels.txt, first two lines.
        let fixture = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/flowcontrol/website-dump_priority_levels.txt"
        ))
        .unwrap();
        let model = ApfModel {
            levels: [
                "catch-all",
                "exempt",
                "global-default",
                "leader-election",
                "node-high",
                "system",
                "workload-high",
                "workload-low",
            ]
            .iter()
            .zip([1u64, 0, 46, 4, 34, 48, 500, 0])
            .map(|(n, d)| LevelState { name: n.to_string(), dispatched_start: d, ..Default::default() })
            .collect(),
            requests: vec![],
        };
        assert_eq!(model.dump_priority_levels(Duration::ZERO), fixture);
    }
}
