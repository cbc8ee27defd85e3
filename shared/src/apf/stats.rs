//! Per priority level and per FlowSchema statistics from `/metrics`: gauges of the newer scrape,
//! rates from counter deltas between two scrapes (resets handled), wait P99 from histogram
//! bucket deltas. One replica at a time; `aggregate` sums replicas (APF state is per replica).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metrics::{Histogram, Scrape, Selection, any};

const PREFIX: &str = "apiserver_flowcontrol_";

/// What apftop scrapes: the flowcontrol families and the request counter (for 429s).
pub fn selection() -> Selection {
    Selection::families(&["apiserver_request_total"]).with_prefixes(&[PREFIX])
}

fn family(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// One priority level.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LevelStats {
    pub name: String,
    pub nominal_seats: Option<f64>,
    /// After borrowing and lending (ALPHA metric; absent on old servers).
    pub current_limit_seats: Option<f64>,
    pub executing_seats: f64,
    pub executing_requests: f64,
    pub inqueue_requests: f64,
    pub dispatched_per_second: f64,
    /// By reason: `queue-full`, `concurrency-limit`, `time-out`.
    pub rejected_per_second: BTreeMap<String, f64>,
    pub wait_p99_seconds: Option<f64>,
    #[serde(skip)]
    pub wait: Histogram,
    /// In a sum of replicas: the replica whose seats are the most used, and how much (a sum
    /// would hide it: 43% summed while one replica is at 98%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hottest_replica: Option<HotReplica>,
}

/// The replica that uses most of a priority level's seats.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HotReplica {
    pub replica: String,
    pub utilisation: f64,
}

impl LevelStats {
    pub fn rejected_total(&self) -> f64 {
        self.rejected_per_second.values().sum()
    }

    /// Executing seats over the current (else nominal) limit.
    pub fn utilisation(&self) -> Option<f64> {
        let limit = self.current_limit_seats.or(self.nominal_seats)?;
        (limit > 0.0).then(|| self.executing_seats / limit)
    }
}

/// One FlowSchema.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaStats {
    pub name: String,
    pub priority_level: String,
    pub dispatched_per_second: f64,
    pub rejected_per_second: BTreeMap<String, f64>,
    pub inqueue_requests: f64,
    pub executing_requests: f64,
    pub wait_p99_seconds: Option<f64>,
    #[serde(skip)]
    pub wait: Histogram,
}

impl SchemaStats {
    pub fn rejected_total(&self) -> f64 {
        self.rejected_per_second.values().sum()
    }
}

/// A replica's (or the aggregate's) statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub levels: Vec<LevelStats>,
    pub schemas: Vec<SchemaStats>,
    pub status_429_per_second: f64,
    /// False after a single scrape: rates and P99 over a window are unknown.
    pub rates_known: bool,
}

impl Stats {
    pub fn rejected_by_reason(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for l in &self.levels {
            for (r, v) in &l.rejected_per_second {
                *out.entry(r.clone()).or_insert(0.0) += v;
            }
        }
        out
    }
}

fn first_present<'a>(scrape: &Scrape, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|n| scrape.has_family(&family(n)))
}

/// Statistics of one replica from two scrapes `seconds` apart (or one: `older` None).
pub fn replica_stats(older: Option<&Scrape>, newer: &Scrape, seconds: f64) -> Stats {
    let pl = "priority_level";
    let fs = "flow_schema";
    let gauge_by = |name: &str, by: &[&str]| newer.sum_by(&family(name), by, &any);
    let one = |m: &BTreeMap<Vec<String>, f64>, k: &[String]| m.get(k).copied();
    // Older servers: request_concurrency_limit / request_concurrency_in_use.
    let nominal = first_present(newer, &["nominal_limit_seats", "request_concurrency_limit"])
        .map(|n| gauge_by(n, &[pl]))
        .unwrap_or_default();
    let current_limit = gauge_by("current_limit_seats", &[pl]);
    let exec_seats = first_present(newer, &["current_executing_seats", "request_concurrency_in_use"])
        .map(|n| gauge_by(n, &[pl]))
        .unwrap_or_default();
    let exec_requests = gauge_by("current_executing_requests", &[pl]);
    let inqueue = gauge_by("current_inqueue_requests", &[pl]);
    let exec_requests_fs = gauge_by("current_executing_requests", &[pl, fs]);
    let inqueue_fs = gauge_by("current_inqueue_requests", &[pl, fs]);
    let rate = |m: BTreeMap<Vec<String>, f64>| -> BTreeMap<Vec<String>, f64> {
        m.into_iter().map(|(k, v)| (k, if seconds > 0.0 { v / seconds } else { 0.0 })).collect()
    };
    let (dispatched_fs, rejected_fs, waits_fs, status_429) = match older {
        Some(old) if seconds > 0.0 => (
            rate(newer.increase_by(old, &family("dispatched_requests_total"), &[pl, fs], &any)),
            rate(newer.increase_by(old, &family("rejected_requests_total"), &[pl, fs, "reason"], &any)),
            newer.histogram_increase_by(old, &family("request_wait_duration_seconds"), &[pl, fs], &|s| {
                s.label("execute") != Some("false")
            }),
            newer
                .increase_by(old, "apiserver_request_total", &[], &|s| s.label("code") == Some("429"))
                .values()
                .sum::<f64>()
                / seconds,
        ),
        _ => Default::default(),
    };

    // Every level and schema any metric names.
    let mut level_names: Vec<String> = nominal
        .keys()
        .chain(exec_requests.keys())
        .chain(inqueue.keys())
        .map(|k| k[0].clone())
        .chain(dispatched_fs.keys().chain(rejected_fs.keys()).map(|k| k[0].clone()))
        .collect();
    level_names.sort();
    level_names.dedup();
    let mut schema_keys: Vec<(String, String)> = exec_requests_fs
        .keys()
        .chain(inqueue_fs.keys())
        .chain(dispatched_fs.keys())
        .chain(rejected_fs.keys())
        .map(|k| (k[0].clone(), k[1].clone()))
        .collect();
    schema_keys.sort();
    schema_keys.dedup();

    let schemas: Vec<SchemaStats> = schema_keys
        .iter()
        .map(|(level, name)| {
            let key = vec![level.clone(), name.clone()];
            let wait = waits_fs.get(&key).cloned().unwrap_or_default();
            SchemaStats {
                name: name.clone(),
                priority_level: level.clone(),
                dispatched_per_second: one(&dispatched_fs, &key).unwrap_or(0.0),
                rejected_per_second: rejected_fs
                    .iter()
                    .filter(|(k, _)| k[0] == *level && k[1] == *name)
                    .map(|(k, v)| (k[2].clone(), *v))
                    .collect(),
                inqueue_requests: one(&inqueue_fs, &key).unwrap_or(0.0),
                executing_requests: one(&exec_requests_fs, &key).unwrap_or(0.0),
                wait_p99_seconds: if wait.count > 0.0 { wait.quantile(0.99) } else { None },
                wait,
            }
        })
        .collect();
    let levels = level_names
        .iter()
        .map(|name| {
            let key = vec![name.clone()];
            let mine = schemas.iter().filter(|s| s.priority_level == *name);
            let mut wait = Histogram::default();
            let mut rejected: BTreeMap<String, f64> = BTreeMap::new();
            let mut dispatched = 0.0;
            for s in mine {
                wait.merge(&s.wait);
                dispatched += s.dispatched_per_second;
                for (r, v) in &s.rejected_per_second {
                    *rejected.entry(r.clone()).or_insert(0.0) += v;
                }
            }
            LevelStats {
                name: name.clone(),
                nominal_seats: one(&nominal, &key),
                current_limit_seats: one(&current_limit, &key),
                executing_seats: one(&exec_seats, &key).unwrap_or(0.0),
                executing_requests: one(&exec_requests, &key).unwrap_or(0.0),
                inqueue_requests: one(&inqueue, &key).unwrap_or(0.0),
                dispatched_per_second: dispatched,
                rejected_per_second: rejected,
                wait_p99_seconds: if wait.count > 0.0 { wait.quantile(0.99) } else { None },
                wait,
                hottest_replica: None,
            }
        })
        .collect();
    Stats { levels, schemas, status_429_per_second: status_429, rates_known: older.is_some() && seconds > 0.0 }
}

fn add_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Marks each level of `total` (a sum of `replicas`) with its hottest replica: APF state is per
/// replica, and the one at its limit is the one that queues and rejects.
pub fn mark_hottest(total: &mut Stats, replicas: &[(&str, &Stats)]) {
    for level in &mut total.levels {
        level.hottest_replica = replicas
            .iter()
            .filter_map(|(name, stats)| {
                let u = stats.levels.iter().find(|l| l.name == level.name)?.utilisation()?;
                Some(HotReplica { replica: name.to_string(), utilisation: u })
            })
            .max_by(|a, b| a.utilisation.total_cmp(&b.utilisation));
    }
}

/// Sums replicas: seats, requests and rates add up; P99 comes from the merged histograms.
pub fn aggregate<'a>(replicas: impl IntoIterator<Item = &'a Stats>) -> Stats {
    let mut levels: BTreeMap<String, LevelStats> = BTreeMap::new();
    let mut schemas: BTreeMap<(String, String), SchemaStats> = BTreeMap::new();
    let mut out = Stats::default();
    let mut any_replica = false;
    let mut all_rates = true;
    for r in replicas {
        any_replica = true;
        all_rates &= r.rates_known;
        out.status_429_per_second += r.status_429_per_second;
        for l in &r.levels {
            let e = levels
                .entry(l.name.clone())
                .or_insert_with(|| LevelStats { name: l.name.clone(), ..Default::default() });
            e.nominal_seats = add_opt(e.nominal_seats, l.nominal_seats);
            e.current_limit_seats = add_opt(e.current_limit_seats, l.current_limit_seats);
            e.executing_seats += l.executing_seats;
            e.executing_requests += l.executing_requests;
            e.inqueue_requests += l.inqueue_requests;
            e.dispatched_per_second += l.dispatched_per_second;
            for (k, v) in &l.rejected_per_second {
                *e.rejected_per_second.entry(k.clone()).or_insert(0.0) += v;
            }
            e.wait.merge(&l.wait);
        }
        for s in &r.schemas {
            let e = schemas.entry((s.priority_level.clone(), s.name.clone())).or_insert_with(|| SchemaStats {
                name: s.name.clone(),
                priority_level: s.priority_level.clone(),
                ..Default::default()
            });
            e.dispatched_per_second += s.dispatched_per_second;
            e.inqueue_requests += s.inqueue_requests;
            e.executing_requests += s.executing_requests;
            for (k, v) in &s.rejected_per_second {
                *e.rejected_per_second.entry(k.clone()).or_insert(0.0) += v;
            }
            e.wait.merge(&s.wait);
        }
    }
    out.levels = levels
        .into_values()
        .map(|mut l| {
            l.wait_p99_seconds = if l.wait.count > 0.0 { l.wait.quantile(0.99) } else { None };
            l
        })
        .collect();
    out.schemas = schemas
        .into_values()
        .map(|mut s| {
            s.wait_p99_seconds = if s.wait.count > 0.0 { s.wait.quantile(0.99) } else { None };
            s
        })
        .collect();
    out.rates_known = any_replica && all_rates;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(minor: u32) -> Scrape {
        let bytes = crate::test_files::bytes(&format!("tests/fixtures/clusters/k8s-1.{minor}/apiserver.metrics"));
        Scrape::parse(&bytes, &selection())
    }

    #[test]
    fn one_real_scrape_gives_limits_and_gauges_but_no_rates() {
        // tests/fixtures/clusters/k8s-1.34/apiserver.metrics
        let s = replica_stats(None, &capture(34), 0.0);
        assert!(!s.rates_known);
        let low = s.levels.iter().find(|l| l.name == "workload-low").unwrap();
        assert_eq!(low.nominal_seats, Some(245.0));
        assert_eq!(low.current_limit_seats, Some(56.0));
        assert_eq!(low.executing_requests, 1.0);
        assert_eq!(low.dispatched_per_second, 0.0);
        assert_eq!(s.levels.len(), 8);
        assert!(s.schemas.iter().any(|f| f.name == "service-accounts" && f.priority_level == "workload-low"));
    }

    #[test]
    fn rates_and_p99_between_scrapes_and_across_replicas() {
        // One replica's counters: dispatched, queue-full and time-out rejections, waits that
        // took up to 10 s, and 429 answers.
        let scrape = |dispatched: u32, queue_full: u32, time_out: Option<u32>, slow_waits: u32, too_many: u32| {
            let series = r#"flow_schema="service-accounts",priority_level="workload-low""#;
            let wait = format!(r#"execute="true",{series}"#);
            let mut text = format!(
                "# TYPE apiserver_flowcontrol_dispatched_requests_total counter\n\
                 apiserver_flowcontrol_dispatched_requests_total{{{series}}} {dispatched}\n\
                 # TYPE apiserver_flowcontrol_rejected_requests_total counter\n\
                 apiserver_flowcontrol_rejected_requests_total{{{series},reason=\"queue-full\"}} {queue_full}\n"
            );
            if let Some(t) = time_out {
                text.push_str(&format!(
                    "apiserver_flowcontrol_rejected_requests_total{{{series},reason=\"time-out\"}} {t}\n"
                ));
            }
            let all = 50 + slow_waits;
            text.push_str(&format!(
                "# TYPE apiserver_flowcontrol_request_wait_duration_seconds histogram\n\
                 apiserver_flowcontrol_request_wait_duration_seconds_bucket{{{wait},le=\"0.1\"}} 50\n\
                 apiserver_flowcontrol_request_wait_duration_seconds_bucket{{{wait},le=\"10\"}} {all}\n\
                 apiserver_flowcontrol_request_wait_duration_seconds_bucket{{{wait},le=\"+Inf\"}} {all}\n\
                 apiserver_flowcontrol_request_wait_duration_seconds_count{{{wait}}} {all}\n\
                 # TYPE apiserver_request_total counter\n\
                 apiserver_request_total{{code=\"429\",verb=\"LIST\"}} {too_many}\n\
                 apiserver_request_total{{code=\"200\",verb=\"LIST\"}} 500\n"
            ));
            Scrape::parse(text.as_bytes(), &selection())
        };
        let older = scrape(100, 10, None, 0, 5);
        let newer = scrape(140, 30, Some(2), 40, 25);
        let s = replica_stats(Some(&older), &newer, 2.0);
        assert!(s.rates_known);
        let low = &s.levels[0];
        assert_eq!(low.name, "workload-low");
        assert_eq!(low.dispatched_per_second, 20.0);
        assert_eq!(low.rejected_per_second["queue-full"], 10.0);
        assert_eq!(low.rejected_per_second["time-out"], 1.0, "a series new since the older scrape counts from 0");
        assert_eq!(s.status_429_per_second, 10.0);
        // The 40 new waits all fell between 0.1 s and 10 s.
        let p99 = low.wait_p99_seconds.unwrap();
        assert!(p99 > 0.1 && p99 <= 10.0, "{p99}");
        // A counter reset on the newer scrape (replica restarted) is not a negative rate.
        let reset = replica_stats(Some(&newer), &older, 2.0);
        assert!(reset.levels[0].dispatched_per_second >= 0.0);
        // Two replicas add up.
        let both = aggregate([&s, &s]);
        assert_eq!(both.levels[0].dispatched_per_second, 40.0);
        assert_eq!(both.rejected_by_reason()["queue-full"], 20.0);
        assert_eq!(both.status_429_per_second, 20.0);
        assert_eq!(both.schemas[0].rejected_total(), 22.0);
        assert!(both.levels[0].wait_p99_seconds.is_some());
    }

    #[test]
    fn the_hottest_replica_is_kept_beside_the_sum() {
        let replica = |executing: f64| Stats {
            levels: vec![LevelStats {
                name: "workload-low".into(),
                nominal_seats: Some(50.0),
                executing_seats: executing,
                ..Default::default()
            }],
            ..Default::default()
        };
        let (a, b, c) = (replica(5.0), replica(49.0), replica(10.0));
        let mut total = aggregate([&a, &b, &c]);
        mark_hottest(&mut total, &[("cp-1", &a), ("cp-2", &b), ("cp-3", &c)]);
        let level = &total.levels[0];
        assert!((level.utilisation().unwrap() - 64.0 / 150.0).abs() < 1e-9, "the sum: 43%");
        let hot = level.hottest_replica.clone().expect("a hottest replica");
        assert_eq!((hot.replica.as_str(), hot.utilisation), ("cp-2", 0.98));
    }

    #[test]
    fn old_metric_names() {
        let s = Scrape::parse(
            b"# TYPE apiserver_flowcontrol_request_concurrency_limit gauge
apiserver_flowcontrol_request_concurrency_limit{priority_level=\"global-default\"} 49
# TYPE apiserver_flowcontrol_request_concurrency_in_use gauge
apiserver_flowcontrol_request_concurrency_in_use{flow_schema=\"global-default\",priority_level=\"global-default\"} 7
",
            &selection(),
        );
        let st = replica_stats(None, &s, 0.0);
        assert_eq!(st.levels[0].nominal_seats, Some(49.0));
        assert_eq!(st.levels[0].executing_seats, 7.0);
        assert_eq!(st.levels[0].utilisation(), Some(7.0 / 49.0));
    }
}
