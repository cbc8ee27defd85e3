//! The three views as rows of cells with sort keys: shared by the TUI and `--once`.

use std::collections::BTreeMap;

use cpkit::duration::short_latency_secs;
use cpkit::error::ErrorKind;
use cpkit::exit::Status;

use crate::gather::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    /// Priority levels: seats, queues, rejections
    Levels,
    /// Flow schemas: traffic and rejections by schema
    Schemas,
    /// Who is queued or executing, grouped by user
    Flows,
}

impl View {
    pub const ALL: [View; 3] = [View::Levels, View::Schemas, View::Flows];

    pub fn title(self) -> &'static str {
        match self {
            View::Levels => "Priority levels",
            View::Schemas => "Flow schemas",
            View::Flows => "Flows",
        }
    }

    /// The column sorted on until the user picks another (descending).
    pub fn default_sort(self) -> &'static str {
        match self {
            View::Levels | View::Schemas => "REJECTED/S",
            View::Flows => "QUEUED",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Text(String),
    Number(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cells: Vec<String>,
    pub keys: Vec<Key>,
    /// Colour of the row: CRITICAL rejecting, WARNING queuing.
    pub status: Status,
    /// Utilisation 0..1 for the bar (levels only).
    pub utilisation: Option<f64>,
    /// The level's name, for its sparkline.
    pub level: Option<String>,
}

/// What the rows need besides the snapshot.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// FlowSchema name → matchingPrecedence (when the schemas could be read).
    pub precedence: BTreeMap<String, i64>,
    pub per_replica: bool,
}

fn rate(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v < 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn count(v: f64) -> String {
    format!("{}", v.round() as i64)
}

fn opt_count(v: Option<f64>) -> String {
    v.map(count).unwrap_or_else(|| "-".into())
}

fn p99(v: Option<f64>) -> String {
    v.map(short_latency_secs).unwrap_or_else(|| "-".into())
}

fn reasons(r: &BTreeMap<String, f64>) -> String {
    let parts: Vec<String> = r.iter().filter(|(_, v)| **v > 0.0).map(|(k, v)| format!("{k} {}", rate(*v))).collect();
    if parts.is_empty() { "-".into() } else { parts.join(", ") }
}

pub fn columns(view: View, ctx: &Context) -> Vec<&'static str> {
    let mut c: Vec<&'static str> = match view {
        View::Levels => vec![
            "PRIORITY LEVEL",
            "NOMINAL",
            "CURRENT",
            "EXECUTING",
            "IN QUEUE",
            "WAIT P99",
            "DISPATCHED/S",
            "REJECTED/S",
            "REASONS",
            "UTIL",
        ],
        View::Schemas => vec![
            "FLOW SCHEMA",
            "PRIORITY LEVEL",
            "PRECEDENCE",
            "DISPATCHED/S",
            "REJECTED/S",
            "WAIT P99",
            "IN QUEUE",
            "EXECUTING",
        ],
        View::Flows => {
            vec!["USER", "FLOW SCHEMA", "PRIORITY LEVEL", "QUEUED", "EXECUTING", "SEATS", "LONGEST WAIT", "TOP REQUEST"]
        }
    };
    if ctx.per_replica && view != View::Flows {
        c.insert(0, "REPLICA");
    }
    c
}

fn level_rows(stats: &cpkit::apf::stats::Stats, replica: Option<&str>) -> Vec<Row> {
    stats
        .levels
        .iter()
        .map(|l| {
            let rejected = l.rejected_total();
            // The exempt level never queues or rejects (k8s.io/apiserver flowcontrol bootstrap
            // `MandatoryPriorityLevelConfigurationExempt`): its seats in use are no saturation.
            let exempt = l.name == "exempt";
            let util = if exempt { None } else { l.utilisation() };
            let mut cells = vec![
                l.name.clone(),
                opt_count(l.nominal_seats),
                opt_count(l.current_limit_seats),
                count(l.executing_seats),
                count(l.inqueue_requests),
                p99(l.wait_p99_seconds),
                rate(l.dispatched_per_second),
                rate(rejected),
                reasons(&l.rejected_per_second),
                utilisation_cell(util, l.hottest_replica.as_ref().filter(|_| !exempt)),
            ];
            let mut keys = vec![
                Key::Text(l.name.clone()),
                Key::Number(l.nominal_seats.unwrap_or(-1.0)),
                Key::Number(l.current_limit_seats.unwrap_or(-1.0)),
                Key::Number(l.executing_seats),
                Key::Number(l.inqueue_requests),
                Key::Number(l.wait_p99_seconds.unwrap_or(-1.0)),
                Key::Number(l.dispatched_per_second),
                Key::Number(rejected),
                Key::Text(cells[8].clone()),
                Key::Number(util.unwrap_or(-1.0)),
            ];
            if let Some(r) = replica {
                cells.insert(0, r.to_string());
                keys.insert(0, Key::Text(r.to_string()));
            }
            Row {
                cells,
                keys,
                status: status_of(&l.name, rejected, l.inqueue_requests),
                // The bar shows the replica at its limit, not the average over replicas.
                utilisation: l.hottest_replica.as_ref().filter(|_| !exempt).map(|h| h.utilisation).or(util),
                level: Some(l.name.clone()),
            }
        })
        .collect()
}

/// The share of seats in use; beside a sum of replicas, the hottest replica when it is well
/// above the sum (the one that queues and rejects first): `43% (cp-2 98%)`.
fn utilisation_cell(util: Option<f64>, hottest: Option<&cpkit::apf::stats::HotReplica>) -> String {
    let Some(u) = util else { return "-".into() };
    match hottest {
        Some(h) if h.utilisation - u >= 0.1 => {
            format!("{:.0}% ({} {:.0}%)", u * 100.0, h.replica, h.utilisation * 100.0)
        }
        _ => format!("{:.0}%", u * 100.0),
    }
}

/// A row's colour: rejections by [`cpkit::severity::apf_rejection`] of its priority level.
fn status_of(level: &str, rejected: f64, queued: f64) -> Status {
    if rejected > 0.0 {
        cpkit::severity::apf_rejection(level)
    } else if queued > 0.0 {
        Status::Warning
    } else {
        Status::Ok
    }
}

fn schema_rows(stats: &cpkit::apf::stats::Stats, replica: Option<&str>, ctx: &Context) -> Vec<Row> {
    stats
        .schemas
        .iter()
        .map(|s| {
            let rejected = s.rejected_total();
            let precedence = ctx.precedence.get(&s.name).copied();
            let mut cells = vec![
                s.name.clone(),
                s.priority_level.clone(),
                precedence.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                rate(s.dispatched_per_second),
                rate(rejected),
                p99(s.wait_p99_seconds),
                count(s.inqueue_requests),
                count(s.executing_requests),
            ];
            let mut keys = vec![
                Key::Text(s.name.clone()),
                Key::Text(s.priority_level.clone()),
                Key::Number(precedence.map(|p| p as f64).unwrap_or(-1.0)),
                Key::Number(s.dispatched_per_second),
                Key::Number(rejected),
                Key::Number(s.wait_p99_seconds.unwrap_or(-1.0)),
                Key::Number(s.inqueue_requests),
                Key::Number(s.executing_requests),
            ];
            if let Some(r) = replica {
                cells.insert(0, r.to_string());
                keys.insert(0, Key::Text(r.to_string()));
            }
            Row {
                cells,
                keys,
                status: status_of(&s.priority_level, rejected, s.inqueue_requests),
                utilisation: None,
                level: None,
            }
        })
        .collect()
}

fn flow_rows(snapshot: &Snapshot) -> Vec<Row> {
    snapshot
        .flows
        .iter()
        .map(|f| {
            let cells = vec![
                f.user.clone(),
                f.flow_schemas.join(","),
                f.priority_levels.join(","),
                f.queued.to_string(),
                f.executing.to_string(),
                f.seats.to_string(),
                if f.queued > 0 { short_latency_secs(f.longest_wait_seconds) } else { "-".into() },
                f.top_request.clone(),
            ];
            let keys = vec![
                Key::Text(f.user.clone()),
                Key::Text(cells[1].clone()),
                Key::Text(cells[2].clone()),
                Key::Number(f.queued as f64),
                Key::Number(f.executing as f64),
                Key::Number(f.seats as f64),
                Key::Number(f.longest_wait_seconds),
                Key::Text(f.top_request.clone()),
            ];
            Row {
                cells,
                keys,
                status: if f.queued > 0 { Status::Warning } else { Status::Ok },
                utilisation: None,
                level: None,
            }
        })
        .collect()
}

pub fn rows(view: View, snapshot: &Snapshot, ctx: &Context) -> Vec<Row> {
    match (view, ctx.per_replica) {
        (View::Flows, _) => flow_rows(snapshot),
        (View::Levels, false) => level_rows(&snapshot.total, None),
        (View::Schemas, false) => schema_rows(&snapshot.total, None, ctx),
        (View::Levels, true) => {
            snapshot.replicas.iter().filter(|r| r.ok).flat_map(|r| level_rows(&r.stats, Some(&r.name))).collect()
        }
        (View::Schemas, true) => {
            snapshot.replicas.iter().filter(|r| r.ok).flat_map(|r| schema_rows(&r.stats, Some(&r.name), ctx)).collect()
        }
    }
}

/// Sorts on `column` (numbers descending, text ascending unless `reverse`), ties by the first
/// column so the order is stable between refreshes.
pub fn sort(rows: &mut [Row], column: usize, reverse: bool) {
    rows.sort_by(|a, b| {
        let primary = match (a.keys.get(column), b.keys.get(column)) {
            (Some(Key::Number(x)), Some(Key::Number(y))) => y.total_cmp(x),
            (Some(Key::Text(x)), Some(Key::Text(y))) => x.cmp(y),
            _ => std::cmp::Ordering::Equal,
        };
        let primary = if reverse { primary.reverse() } else { primary };
        primary.then_with(|| a.cells.first().cmp(&b.cells.first())).then_with(|| a.cells.get(1).cmp(&b.cells.get(1)))
    });
}

/// Keeps rows where any cell contains `filter` (case-insensitive).
pub fn filter(rows: Vec<Row>, filter: &str) -> Vec<Row> {
    if filter.is_empty() {
        return rows;
    }
    let needle = filter.to_lowercase();
    rows.into_iter().filter(|r| r.cells.iter().any(|c| c.to_lowercase().contains(&needle))).collect()
}

/// The summary: replicas with executing and queued requests, then rejections by reason and 429s.
pub fn summary(s: &Snapshot) -> (String, String) {
    let t = &s.total;
    let executing: f64 = t.levels.iter().map(|l| l.executing_requests).sum();
    let seats: f64 = t.levels.iter().map(|l| l.executing_seats).sum();
    let queued: f64 = t.levels.iter().map(|l| l.inqueue_requests).sum();
    let rejected = t.rejected_by_reason();
    // The replicas that did not give their metrics, by why: a refusal is an answer.
    let mut failed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in s.replicas.iter().filter(|r| !r.ok) {
        let why = match r.failure.as_ref().map(|e| e.kind) {
            Some(ErrorKind::Forbidden) => "not permitted",
            Some(ErrorKind::Unauthorized) => "not authenticated",
            Some(ErrorKind::TooManyRequests) => "throttled",
            _ => "no answer",
        };
        failed.entry(why).or_default().push(&r.name);
    }
    let replicas = if failed.is_empty() {
        format!("{} replica{}", s.replicas.len(), if s.replicas.len() == 1 { "" } else { "s" })
    } else {
        let why: Vec<String> = failed.iter().map(|(why, names)| format!("{why}: {}", names.join(", "))).collect();
        format!("{}/{} replicas ({})", s.replicas_ok(), s.replicas.len(), why.join("; "))
    };
    let rates = if s.replicas_ok() == 0 {
        "rates unknown".to_string()
    } else if t.rates_known {
        format!(
            "rejected/s {} · 429/s {}",
            if rejected.values().all(|v| *v == 0.0) { "0".to_string() } else { reasons(&rejected) },
            rate(t.status_429_per_second)
        )
    } else {
        "rates after the next refresh".to_string()
    };
    (
        format!(
            "{} · {replicas} · executing {} ({} seats) · queued {}",
            s.context,
            count(executing),
            count(seats),
            count(queued)
        ),
        rates,
    )
}

/// What one replica's failure weighs, by the same rule as [`verdict`]: answering 429 is CRITICAL;
/// while other replicas answer, one that does not (down, late, refused) is a WARNING; when none
/// answers, the server failing is CRITICAL and a refused permission UNKNOWN.
pub fn replica_failure(s: &Snapshot, r: &crate::gather::ReplicaStatus) -> Status {
    let Some(e) = &r.failure else {
        // Flows unknown on a replica that answers, or judged down by the API.
        return Status::Warning;
    };
    if e.kind == ErrorKind::TooManyRequests {
        Status::Critical
    } else if s.replicas_ok() > 0 {
        Status::Warning
    } else if e.exit_code() == cpkit::exit::EXIT_CRITICAL {
        Status::Critical
    } else {
        Status::Unknown
    }
}

/// The worst state a snapshot shows: rejections weighed by priority level (CRITICAL where the
/// cluster's own traffic is refused, as cphealth's load check; a replica answering 429 is
/// CRITICAL), WARNING with queuing or a replica not answering, UNKNOWN when none answers.
pub fn verdict(s: &Snapshot) -> Status {
    let throttled = s.replicas.iter().any(|r| r.failure.as_ref().is_some_and(|e| e.kind == ErrorKind::TooManyRequests));
    if s.replicas_ok() == 0 {
        // The server failing (5xx, 429) is its state; a refused permission is only ours.
        let failing =
            s.replicas.iter().any(|r| r.failure.as_ref().is_some_and(|e| e.exit_code() == cpkit::exit::EXIT_CRITICAL));
        return if throttled || failing { Status::Critical } else { Status::Unknown };
    }
    if throttled {
        return Status::Critical;
    }
    // Rejections weigh as in cphealth: by whose traffic is refused.
    let rejections = s
        .total
        .levels
        .iter()
        .filter(|l| l.rejected_total() > 0.0)
        .map(|l| cpkit::severity::apf_rejection(&l.name))
        .max();
    let queued: f64 = s.total.levels.iter().map(|l| l.inqueue_requests).sum();
    if let Some(worst) = rejections {
        worst
    } else if queued > 0.0 || s.total.status_429_per_second > 0.0 || s.replicas_ok() < s.replicas.len() {
        Status::Warning
    } else {
        Status::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gather::ReplicaStatus;
    use cpkit::Error;
    use cpkit::apf::stats::Stats;

    fn replica(name: &str, failure: Option<Error>) -> ReplicaStatus {
        ReplicaStatus {
            name: name.into(),
            url: format!("https://{name}:6443"),
            ok: failure.is_none(),
            error: failure.as_ref().map(|e| e.why.clone()),
            stats: Stats::default(),
            failure,
        }
    }

    fn snapshot(replicas: Vec<ReplicaStatus>) -> Snapshot {
        Snapshot {
            context: "c".into(),
            taken_at: String::new(),
            window_seconds: 0.0,
            replicas,
            total: Stats::default(),
            flows: Vec::new(),
            observer_requests: 0,
            queue_attribution: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_replica_failure_weighs_as_the_verdict_does() {
        let late = || Error::new(ErrorKind::Timeout, "GET /metrics on cp-3", "no answer 3s after another replica", "");
        let refused = || Error::new(ErrorKind::Forbidden, "GET /metrics", "forbidden", "");
        let throttled = || Error::new(ErrorKind::TooManyRequests, "GET /metrics", "429", "");
        let cases = [
            (
                "one late while the others answer",
                vec![replica("cp-1", None), replica("cp-3", Some(late()))],
                Status::Warning,
            ),
            (
                "every replica late",
                vec![replica("cp-1", Some(late())), replica("cp-3", Some(late()))],
                Status::Critical,
            ),
            (
                "not permitted anywhere",
                vec![replica("cp-1", Some(refused())), replica("cp-3", Some(refused()))],
                Status::Unknown,
            ),
            (
                "429 while others answer",
                vec![replica("cp-1", None), replica("cp-3", Some(throttled()))],
                Status::Critical,
            ),
        ];
        for (case, replicas, want) in cases {
            let s = snapshot(replicas);
            assert_eq!(replica_failure(&s, &s.replicas[1]), want, "{case}");
            assert!(verdict(&s) >= want || want == Status::Unknown, "{case}: the line is never worse than the verdict");
        }
    }

    #[test]
    fn the_summary_says_why_replicas_gave_no_metrics() {
        // The real rbac-limited: every replica answered 403, which is not "no answer".
        let refused = || Error::new(ErrorKind::Forbidden, "GET /metrics", "forbidden", "");
        let s = snapshot(vec![replica("cp-1", Some(refused())), replica("cp-2", Some(refused()))]);
        assert_eq!(
            summary(&s),
            (
                "c · 0/2 replicas (not permitted: cp-1, cp-2) · executing 0 (0 seats) · queued 0".into(),
                "rates unknown".into()
            )
        );
        let late = Error::new(ErrorKind::Timeout, "GET /metrics on cp-3", "no answer 3s after another replica", "");
        let s = snapshot(vec![replica("cp-1", None), replica("cp-2", Some(refused())), replica("cp-3", Some(late))]);
        assert!(summary(&s).0.contains("1/3 replicas (no answer: cp-3; not permitted: cp-2)"), "{:?}", summary(&s));
    }
}
