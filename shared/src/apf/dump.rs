//! The API server's APF debug dumps (`/debug/api_priority_and_fairness/dump_*`): rows of cells
//! ending in `,`, padded by Go's tabwriter. Columns are found by header name, so a version that
//! adds or reorders columns still parses; a row shorter than the header leaves the rest empty.

use std::collections::HashMap;

use serde::Serialize;

/// A parsed dump: the header and the rows, cells trimmed.
#[derive(Debug, Clone, Default)]
pub struct DumpTable {
    columns: HashMap<String, usize>,
    pub rows: Vec<Vec<String>>,
}

impl DumpTable {
    pub fn parse(text: &str) -> DumpTable {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let Some(header) = lines.next() else { return DumpTable::default() };
        let columns = split_row(header).into_iter().enumerate().map(|(i, name)| (name, i)).collect();
        let rows = lines.map(split_row).collect();
        DumpTable { columns, rows }
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.columns.contains_key(name)
    }

    /// The cell of `column` in `row` ("" when the column or the cell is missing).
    pub fn cell<'a>(&self, row: &'a [String], column: &str) -> &'a str {
        self.columns.get(column).and_then(|&i| row.get(i)).map(String::as_str).unwrap_or("")
    }

    fn number(&self, row: &[String], column: &str) -> i64 {
        self.cell(row, column).parse().unwrap_or(0)
    }
}

fn split_row(line: &str) -> Vec<String> {
    let mut cells: Vec<String> = line.split(',').map(|c| c.trim().to_string()).collect();
    // Rows with details end in `,`: drop the empty cell after it.
    if line.trim_end().ends_with(',') {
        cells.pop();
    }
    cells
}

/// One row of `dump_priority_levels`: counters since the server started.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LevelDump {
    pub name: String,
    pub active_queues: i64,
    pub is_idle: bool,
    pub waiting: i64,
    pub executing: i64,
    pub dispatched: i64,
    pub rejected: i64,
    pub timed_out: i64,
    pub cancelled: i64,
}

pub fn parse_priority_levels(text: &str) -> Vec<LevelDump> {
    let t = DumpTable::parse(text);
    t.rows
        .iter()
        .map(|r| LevelDump {
            name: t.cell(r, "PriorityLevelName").to_string(),
            active_queues: t.number(r, "ActiveQueues"),
            is_idle: t.cell(r, "IsIdle") == "true",
            waiting: t.number(r, "WaitingRequests"),
            executing: t.number(r, "ExecutingRequests"),
            dispatched: t.number(r, "DispatchedRequests"),
            rejected: t.number(r, "RejectedRequests"),
            timed_out: t.number(r, "TimedoutRequests"),
            cancelled: t.number(r, "CancelledRequests"),
        })
        .filter(|l| !l.name.is_empty())
        .collect()
}

/// One row of `dump_queues` (queues of Reject levels have none).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueDump {
    pub priority_level: String,
    pub index: i64,
    pub pending: i64,
    pub executing: i64,
    pub seats_in_use: i64,
}

pub fn parse_queues(text: &str) -> Vec<QueueDump> {
    let t = DumpTable::parse(text);
    t.rows
        .iter()
        .filter(|r| !t.cell(r, "PriorityLevelName").is_empty() && t.cell(r, "PriorityLevelName") != "...")
        .map(|r| QueueDump {
            priority_level: t.cell(r, "PriorityLevelName").to_string(),
            index: t.number(r, "Index"),
            pending: t.number(r, "PendingRequests"),
            executing: t.number(r, "ExecutingRequests"),
            seats_in_use: t.number(r, "SeatsInUse"),
        })
        .collect()
}

/// One request of `dump_requests` (details present with `?includeRequestDetails=1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestDump {
    pub priority_level: String,
    pub flow_schema: String,
    /// -1 for requests not in a queue (exempt).
    pub queue_index: i64,
    /// The flow distinguisher (user or namespace, by the schema's method).
    pub distinguisher: String,
    pub arrive_time: Option<jiff::Timestamp>,
    pub initial_seats: i64,
    /// None while the request waits in its queue (`0001-01-01T00:00:00Z`).
    pub start_time: Option<jiff::Timestamp>,
    pub user: Option<String>,
    pub verb: Option<String>,
    pub path: Option<String>,
    pub namespace: Option<String>,
    pub resource: Option<String>,
}

impl RequestDump {
    pub fn is_executing(&self) -> bool {
        self.start_time.is_some()
    }

    /// Who sent it: the user when the details are there, else the distinguisher.
    pub fn who(&self) -> &str {
        self.user.as_deref().filter(|u| !u.is_empty()).unwrap_or(&self.distinguisher)
    }
}

fn timestamp(text: &str) -> Option<jiff::Timestamp> {
    let t: jiff::Timestamp = text.parse().ok()?;
    // Go's zero time marks "not started".
    (t.as_second() > -62_000_000_000).then_some(t)
}

pub fn parse_requests(text: &str) -> Vec<RequestDump> {
    let t = DumpTable::parse(text);
    let details = t.has_column("UserName");
    let opt = |r: &[String], c: &str| details.then(|| t.cell(r, c).to_string());
    t.rows
        .iter()
        .filter(|r| !t.cell(r, "PriorityLevelName").is_empty())
        .map(|r| RequestDump {
            priority_level: t.cell(r, "PriorityLevelName").to_string(),
            flow_schema: t.cell(r, "FlowSchemaName").to_string(),
            queue_index: t.number(r, "QueueIndex"),
            // Upstream spells the column FlowDistingsher; accept the correct spelling too.
            distinguisher: if t.has_column("FlowDistingsher") {
                t.cell(r, "FlowDistingsher").to_string()
            } else {
                t.cell(r, "FlowDistinguisher").to_string()
            },
            arrive_time: timestamp(t.cell(r, "ArriveTime")),
            initial_seats: t.number(r, "InitialSeats"),
            start_time: timestamp(t.cell(r, "StartTime")),
            user: opt(r, "UserName"),
            verb: opt(r, "Verb"),
            path: opt(r, "APIPath"),
            namespace: opt(r, "Namespace"),
            resource: opt(r, "Resource"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        crate::test_files::text(&format!("tests/fixtures/flowcontrol/{name}"))
    }

    #[test]
    fn priority_levels_of_the_website_example() {
        // tests/fixtures/flowcontrol/website-dump_priority_levels.txt
        let levels = parse_priority_levels(&fixture("website-dump_priority_levels.txt"));
        assert_eq!(levels.len(), 8);
        let wh = levels.iter().find(|l| l.name == "workload-high").unwrap();
        assert_eq!((wh.dispatched, wh.rejected, wh.is_idle), (500, 0, true));
        assert_eq!(levels[0].name, "catch-all");
    }

    #[test]
    fn queues_skip_the_elisions() {
        // tests/fixtures/flowcontrol/website-dump_queues.txt: the docs elide rows with "...".
        let queues = parse_queues(&fixture("website-dump_queues.txt"));
        let q14 = queues.iter().find(|q| q.priority_level == "workload-low" && q.index == 14).unwrap();
        assert_eq!((q14.pending, q14.executing), (27, 0));
        assert!(queues.iter().all(|q| !q.priority_level.starts_with("...")));
    }

    #[test]
    fn requests_with_and_without_details() {
        // tests/fixtures/flowcontrol/website-dump_requests-includeRequestDetails.txt
        let rs = parse_requests(&fixture("website-dump_requests-includeRequestDetails.txt"));
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[0].flow_schema, "exempt");
        assert_eq!(rs[0].queue_index, -1);
        assert!(rs[0].is_executing());
        let queued = &rs[1];
        assert_eq!(queued.who(), "system:serviceaccount:default:loadtest");
        assert_eq!(queued.verb.as_deref(), Some("list"));
        assert_eq!(queued.path.as_deref(), Some("/api/v1/namespaces/kube-stress/configmaps"));
        assert_eq!(queued.resource.as_deref(), Some("configmaps"));
        assert_eq!(queued.initial_seats, 10);
        assert!(!queued.is_executing(), "start time 0001-01-01 means still queued");
        // tests/fixtures/flowcontrol/website-dump_requests.txt: no details, the distinguisher names the flow.
        let rs = parse_requests(&fixture("website-dump_requests.txt"));
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[2].who(), "system:serviceaccount:default:loadtest");
        assert_eq!(rs[2].user, None);
    }

    #[test]
    fn garbage_does_not_panic() {
        assert!(parse_requests("").is_empty());
        assert!(parse_priority_levels("not a dump").is_empty());
        let rs = parse_requests("PriorityLevelName, FlowSchemaName\nx\n");
        assert_eq!(rs[0].flow_schema, "");
    }
}
