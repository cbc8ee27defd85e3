//! API server load from two `/metrics` scrapes a few seconds apart (k8s.io/apiserver
//! `pkg/endpoints/metrics/metrics.go`, `pkg/util/flowcontrol/metrics/metrics.go`): inflight
//! requests against their limits, request latency by verb (without long-running WATCH and
//! CONNECT), 5xx and 429 rates, APF rejections by priority level, etcd request latency,
//! admission webhook latency and failures. Thresholds are the runbooks'.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::duration::short_latency_secs;
use crate::exit::Status;
use crate::metrics::{Histogram, Scrape, Selection, Series};
use crate::report::CheckResult;

/// The families the load check reads (everything else of a multi-MB scrape is skipped).
pub fn selection() -> Selection {
    Selection::families(&[
        "apiserver_current_inflight_requests",
        "apiserver_request_duration_seconds",
        "apiserver_request_sli_duration_seconds",
        "apiserver_request_total",
        "apiserver_flowcontrol_rejected_requests_total",
        "apiserver_flowcontrol_dispatched_requests_total",
        "etcd_request_duration_seconds",
        "apiserver_admission_webhook_admission_duration_seconds",
        "apiserver_admission_webhook_rejection_count",
        "apiserver_admission_webhook_fail_open_count",
        "apiserver_storage_size_bytes",
        "apiserver_storage_db_total_size_in_bytes",
        "etcd_db_total_size_in_bytes",
    ])
    .with_families(&crate::checks::resources::FAMILIES)
}

/// `--max-requests-inflight` / `--max-mutating-requests-inflight` of one API server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InflightLimits {
    pub read_only: f64,
    pub mutating: f64,
    /// True when read from the pod's flags, false when the defaults are assumed.
    pub from_flags: bool,
}

impl Default for InflightLimits {
    fn default() -> Self {
        InflightLimits { read_only: 400.0, mutating: 200.0, from_flags: false }
    }
}

/// Two scrapes of one API server replica.
pub struct Window<'a> {
    pub replica: String,
    pub older: &'a Scrape,
    pub newer: &'a Scrape,
    pub seconds: f64,
    pub limits: InflightLimits,
}

fn is_long_running(s: &Series) -> bool {
    matches!(s.label("verb"), Some("WATCH" | "WATCHLIST" | "CONNECT"))
}

/// Requests in flight on one replica against its limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inflight {
    pub replica: String,
    pub read_only: f64,
    pub read_only_limit: f64,
    pub mutating: f64,
    pub mutating_limit: f64,
    /// API Priority and Fairness is on (the default since 1.20): it replaces the max-in-flight
    /// filter, and the two limits form one pool its priority levels share (kubernetes
    /// `pkg/controlplane/apiserver/options`: the server concurrency limit is their sum).
    pub apf: bool,
}

/// What the window showed, summed over replicas.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadSummary {
    pub replicas: usize,
    pub seconds: f64,
    pub inflight: Vec<Inflight>,
    /// P99 by verb, seconds: what clients wait.
    pub p99_by_verb: BTreeMap<String, f64>,
    /// P99 by verb of the server's own work, seconds: `apiserver_request_sli_duration_seconds`
    /// leaves out APF queue waits and webhook calls (k8s.io/apiserver
    /// `pkg/endpoints/metrics/metrics.go`). Empty before 1.26 and in servers without it.
    pub work_p99_by_verb: BTreeMap<String, f64>,
    /// By verb: requests of the window that clients waited longer than [`SLOW_CRITICAL`] for.
    pub over_critical_by_verb: BTreeMap<String, f64>,
    pub requests_per_second: f64,
    pub errors_5xx_per_second: f64,
    /// 5xx answers counted in the window (not a rate: a verdict needs enough of them).
    pub errors_5xx: f64,
    pub throttled_429_per_second: f64,
    /// (priority level, reason) → rejections per second.
    pub apf_rejections: BTreeMap<(String, String), f64>,
    /// etcd P99 by operation, seconds.
    pub etcd_p99_by_operation: BTreeMap<String, f64>,
    /// By operation: etcd requests of the window slower than [`ETCD_SLOW_CRITICAL`].
    pub etcd_over_critical_by_operation: BTreeMap<String, f64>,
    /// Webhook name → P99 seconds.
    pub webhook_p99: BTreeMap<String, f64>,
    /// Webhook name → failed calls per second (`calling_webhook_error`).
    pub webhook_errors_per_second: BTreeMap<String, f64>,
    pub webhook_fail_open_per_second: BTreeMap<String, f64>,
    pub storage_size_bytes: Option<f64>,
}

fn merge_into(target: &mut BTreeMap<Vec<String>, Histogram>, add: BTreeMap<Vec<String>, Histogram>) {
    for (k, h) in add {
        target.entry(k).or_default().merge(&h);
    }
}

fn add_rates(target: &mut BTreeMap<Vec<String>, f64>, add: BTreeMap<Vec<String>, f64>, seconds: f64) {
    if seconds <= 0.0 {
        return;
    }
    for (k, v) in add {
        *target.entry(k).or_insert(0.0) += v / seconds;
    }
}

/// Sums the windows of every replica.
pub fn summarise(windows: &[Window<'_>]) -> LoadSummary {
    let mut s = LoadSummary { replicas: windows.len(), ..Default::default() };
    let mut latency: BTreeMap<Vec<String>, Histogram> = BTreeMap::new();
    let mut work_latency: BTreeMap<Vec<String>, Histogram> = BTreeMap::new();
    let mut etcd: BTreeMap<Vec<String>, Histogram> = BTreeMap::new();
    let mut webhook_latency: BTreeMap<Vec<String>, Histogram> = BTreeMap::new();
    let mut codes: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    let mut rejections: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    let mut webhook_errors: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    let mut fail_open: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for w in windows {
        s.seconds = s.seconds.max(w.seconds);
        let inflight = w.newer.sum_by("apiserver_current_inflight_requests", &["request_kind"], &crate::metrics::any);
        let get = |k: &str| inflight.get(&vec![k.to_string()]).copied().unwrap_or(0.0);
        s.inflight.push(Inflight {
            replica: w.replica.clone(),
            read_only: get("readOnly"),
            read_only_limit: w.limits.read_only,
            mutating: get("mutating"),
            mutating_limit: w.limits.mutating,
            apf: w.newer.has_family("apiserver_flowcontrol_dispatched_requests_total")
                || w.newer.has_family("apiserver_flowcontrol_current_executing_requests"),
        });
        merge_into(
            &mut latency,
            w.newer.histogram_increase_by(w.older, "apiserver_request_duration_seconds", &["verb"], &|x| {
                !is_long_running(x)
            }),
        );
        merge_into(
            &mut work_latency,
            w.newer.histogram_increase_by(w.older, "apiserver_request_sli_duration_seconds", &["verb"], &|x| {
                !is_long_running(x)
            }),
        );
        merge_into(
            &mut etcd,
            w.newer.histogram_increase_by(
                w.older,
                "etcd_request_duration_seconds",
                &["operation"],
                &crate::metrics::any,
            ),
        );
        merge_into(
            &mut webhook_latency,
            w.newer.histogram_increase_by(
                w.older,
                "apiserver_admission_webhook_admission_duration_seconds",
                &["name"],
                &crate::metrics::any,
            ),
        );
        let by_code = w.newer.increase_by(w.older, "apiserver_request_total", &["code"], &crate::metrics::any);
        s.errors_5xx += by_code.iter().filter(|(code, _)| code.join("").starts_with('5')).map(|(_, n)| n).sum::<f64>();
        add_rates(&mut codes, by_code, w.seconds);
        add_rates(
            &mut rejections,
            w.newer.increase_by(
                w.older,
                "apiserver_flowcontrol_rejected_requests_total",
                &["priority_level", "reason"],
                &crate::metrics::any,
            ),
            w.seconds,
        );
        add_rates(
            &mut webhook_errors,
            w.newer.increase_by(w.older, "apiserver_admission_webhook_rejection_count", &["name"], &|x| {
                x.label("error_type") == Some("calling_webhook_error")
            }),
            w.seconds,
        );
        add_rates(
            &mut fail_open,
            w.newer.increase_by(
                w.older,
                "apiserver_admission_webhook_fail_open_count",
                &["name"],
                &crate::metrics::any,
            ),
            w.seconds,
        );
        let size =
            ["apiserver_storage_size_bytes", "apiserver_storage_db_total_size_in_bytes", "etcd_db_total_size_in_bytes"]
                .iter()
                .find_map(|f| w.newer.max_by(f, &[], &crate::metrics::any).values().next().copied());
        if let Some(size) = size {
            s.storage_size_bytes = Some(s.storage_size_bytes.map_or(size, |x: f64| x.max(size)));
        }
    }
    for (k, h) in latency {
        if let Some(p) = h.quantile(0.99).filter(|_| h.count > 0.0) {
            s.p99_by_verb.insert(k.join(""), p);
            s.over_critical_by_verb.insert(k.join(""), h.count_above(SLOW_CRITICAL));
        }
    }
    for (k, h) in work_latency {
        if let Some(p) = h.quantile(0.99).filter(|_| h.count > 0.0) {
            s.work_p99_by_verb.insert(k.join(""), p);
        }
    }
    for (k, h) in etcd {
        if let Some(p) = h.quantile(0.99).filter(|_| h.count > 0.0) {
            s.etcd_p99_by_operation.insert(k.join(""), p);
            s.etcd_over_critical_by_operation.insert(k.join(""), h.count_above(ETCD_SLOW_CRITICAL));
        }
    }
    for (k, h) in webhook_latency {
        if let Some(p) = h.quantile(0.99).filter(|_| h.count > 0.0) {
            s.webhook_p99.insert(k.join(""), p);
        }
    }
    for (code, rate) in &codes {
        s.requests_per_second += rate;
        let c = code.join("");
        if c.starts_with('5') {
            s.errors_5xx_per_second += rate;
        }
        if c == "429" {
            s.throttled_429_per_second += rate;
        }
    }
    for (k, v) in rejections {
        if v > 0.0 {
            s.apf_rejections.insert((k[0].clone(), k[1].clone()), v);
        }
    }
    s.webhook_errors_per_second =
        webhook_errors.into_iter().filter(|(_, v)| *v > 0.0).map(|(k, v)| (k.join(""), v)).collect();
    s.webhook_fail_open_per_second =
        fail_open.into_iter().filter(|(_, v)| *v > 0.0).map(|(k, v)| (k.join(""), v)).collect();
    s
}

/// Why a finding past the critical line stays a warning.
fn too_few(count: f64, what: &str) -> String {
    let count = count.round() as u64;
    format!(
        "only {count} request{} {what} in the window (a critical needs {CRITICAL_NEEDS_REQUESTS})",
        if count == 1 { "" } else { "s" }
    )
}

fn rate(v: f64) -> String {
    if v >= 10.0 { format!("{v:.0}/s") } else { format!("{v:.1}/s") }
}

/// Clients waiting longer than this (p99) is critical, beyond `SLOW_WARNING` (1 s) a warning.
pub const SLOW_CRITICAL: f64 = 5.0;
const SLOW_WARNING: f64 = 1.0;
/// etcd requests slower than this (p99, as the API server times them) is critical.
pub const ETCD_SLOW_CRITICAL: f64 = 2.0;
const ETCD_SLOW_WARNING: f64 = 0.5;
/// A critical needs a pattern: at least this many requests past the line in the window. In a
/// short window of a quiet cluster one slow or failed request is the whole p99 or 5% of the
/// requests; that is worth a warning, not the verdict of an outage.
pub const CRITICAL_NEEDS_REQUESTS: f64 = 3.0;

/// The verdict on the load of the API servers.
pub fn judge(s: &LoadSummary) -> CheckResult {
    let mut r = CheckResult::ok("load", "");
    let mut problems = Vec::new();
    let mut fine = Vec::new();
    let replicas = format!("{} replica{}", s.replicas, if s.replicas == 1 { "" } else { "s" });
    r.push_evidence(
        "window",
        if s.seconds > 0.0 {
            format!("{:.1}s over {replicas}", s.seconds)
        } else {
            format!("one scrape of {replicas} (--sample 0): latencies since the API servers started, no rates")
        },
    );

    // Inflight against the limits: one pool under APF, two limits without it.
    let mut worst_inflight = (0.0_f64, String::new());
    for i in &s.inflight {
        let pools = if i.apf {
            vec![(i.read_only + i.mutating, i.read_only_limit + i.mutating_limit, "")]
        } else {
            vec![(i.read_only, i.read_only_limit, "read-only "), (i.mutating, i.mutating_limit, "mutating ")]
        };
        for (used, limit, kind) in pools {
            if limit <= 0.0 {
                continue;
            }
            let replica = &i.replica;
            let pct = used / limit * 100.0;
            // The sub-check's name says which replica; the message leads with it.
            let share = format!("{used:.0}/{limit:.0} {kind}in flight ({pct:.0}%)");
            let text = format!("{replica}: {share}");
            r.sub(
                format!(
                    "inflight {replica}{}",
                    if kind.is_empty() { String::new() } else { format!(" {}", kind.trim()) }
                ),
                Status::grade(pct >= 100.0, pct > 80.0),
                share,
            );
            if pct > worst_inflight.0 {
                worst_inflight = (pct, text);
            }
        }
    }
    if worst_inflight.0 > 80.0 {
        r.raise(if worst_inflight.0 >= 100.0 { Status::Critical } else { Status::Warning });
        problems.push(worst_inflight.1.clone());
    } else if !s.inflight.is_empty() {
        let (ro, rl, m, ml) = s.inflight.iter().fold((0.0, 0.0, 0.0, 0.0), |a, x| {
            (a.0 + x.read_only, a.1 + x.read_only_limit, a.2 + x.mutating, a.3 + x.mutating_limit)
        });
        fine.push(format!("inflight {ro:.0}/{rl:.0} read, {m:.0}/{ml:.0} write"));
    }

    // Latency by verb.
    let mut slow: Vec<String> = Vec::new();
    let latency_status = |p99: f64| Status::grade(p99 > SLOW_CRITICAL, p99 > SLOW_WARNING);
    let mut slow_status = Status::Ok;
    for (verb, p99) in &s.p99_by_verb {
        let waited = latency_status(*p99);
        let seen = format!("{verb} p99 {}", short_latency_secs(*p99));
        // Time queued by APF or spent in webhooks is judged by their own findings (a system
        // level rejecting is critical there): on its own it is a warning, the server's own work
        // keeps its full weight.
        let (st, detail, brief) = match s.work_p99_by_verb.get(verb) {
            Some(&work) if latency_status(work) < waited => {
                let st = latency_status(work).max(waited.min(Status::Warning));
                let work = short_latency_secs(work);
                (
                    st,
                    format!("{seen} ({work} of it the server's own work; the rest queued in APF or in webhooks)"),
                    format!("{seen} ({work} server work)"),
                )
            }
            _ => (waited, seen.clone(), seen),
        };
        let over = s.over_critical_by_verb.get(verb).copied().unwrap_or(0.0);
        let (st, detail) = if st == Status::Critical && over < CRITICAL_NEEDS_REQUESTS {
            (Status::Warning, format!("{detail}; {}", too_few(over, &format!("took over {SLOW_CRITICAL}s"))))
        } else {
            (st, detail)
        };
        r.sub(format!("p99 {verb}"), st, detail);
        if st != Status::Ok {
            r.raise(st);
            slow_status = slow_status.max(st);
            slow.push(brief);
        }
    }
    // Told after the rejections (APF, 429s) unless it is worse: clients failing come before
    // clients waiting, and a queue that rejects also explains the waits.
    let slow_problem = (!slow.is_empty()).then(|| format!("slow requests: {}", slow.join(", ")));
    if slow_problem.is_none()
        && let Some((verb, p)) = s.p99_by_verb.iter().max_by(|a, b| a.1.total_cmp(b.1))
    {
        fine.push(format!("p99 ≤ {} ({verb})", short_latency_secs(*p)));
    }

    // Errors and throttling.
    if s.requests_per_second > 0.0 {
        let ratio = s.errors_5xx_per_second / s.requests_per_second * 100.0;
        r.push_evidence(
            "requests",
            format!(
                "{} ({} 5xx = {ratio:.2}%, {} 429)",
                rate(s.requests_per_second),
                rate(s.errors_5xx_per_second),
                rate(s.throttled_429_per_second)
            ),
        );
        if ratio > 1.0 {
            let st =
                if ratio > 5.0 && s.errors_5xx >= CRITICAL_NEEDS_REQUESTS { Status::Critical } else { Status::Warning };
            r.raise(st);
            r.sub(
                "5xx",
                st,
                if ratio > 5.0 && st == Status::Warning {
                    format!("{ratio:.1}% of requests fail with 5xx; {}", too_few(s.errors_5xx, "failed"))
                } else {
                    format!("{ratio:.1}% of requests fail with 5xx ({:.0} in the window)", s.errors_5xx)
                },
            );
            problems.push(format!("{ratio:.1}% of requests fail with 5xx"));
            r.fix("Look at what fails: `kubectl get --raw /metrics | grep 'apiserver_request_total{.*code=\"5'`; usually etcd trouble or an aggregated API/webhook that is down (see the other checks).", &[], "low: read-only");
        } else {
            fine.push("no 5xx".into());
        }
    }
    let rejections_at = problems.len();
    let mut rejections_status = Status::Ok;
    if !s.apf_rejections.is_empty() {
        let mut by_level: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((level, reason), v) in &s.apf_rejections {
            by_level.entry(level).or_default().push(format!("{reason} {}", rate(*v)));
        }
        for (level, reasons) in &by_level {
            let st = crate::severity::apf_rejection(level);
            r.raise(st);
            rejections_status = rejections_status.max(st);
            r.sub(
                format!("apf {level}"),
                st,
                format!("priority level {level} rejects requests: {}", reasons.join(", ")),
            );
        }
        problems.push(format!(
            "APF rejects requests ({} 429s): {}",
            rate(s.throttled_429_per_second),
            by_level.iter().map(|(l, rs)| format!("{l} {}", rs.join("+"))).collect::<Vec<_>>().join("; ")
        ));
        r.fix(
            "Find who floods the saturated priority level and isolate it with its own FlowSchema and priority level instead of raising global limits.",
            &["kubectl apftop", "kubectl apftop config   # suggests a FlowSchema for the noisy client"],
            "medium: APF changes take effect at once; never disable the defaults",
        );
    } else if s.throttled_429_per_second > 0.0 {
        r.raise(Status::Warning);
        rejections_status = Status::Warning;
        problems.push(format!("{} requests answered 429", rate(s.throttled_429_per_second)));
    } else {
        fine.push("no 429s".into());
    }
    if let Some(p) = slow_problem {
        if slow_status > rejections_status {
            problems.insert(rejections_at, p);
        } else {
            problems.push(p);
        }
    }

    // etcd latency as the API server sees it.
    let mut etcd_slow = Vec::new();
    for (op, p99) in &s.etcd_p99_by_operation {
        let over = s.etcd_over_critical_by_operation.get(op).copied().unwrap_or(0.0);
        let mut detail = format!("etcd {op} p99 {}", short_latency_secs(*p99));
        let st = Status::grade(*p99 > ETCD_SLOW_CRITICAL && over >= CRITICAL_NEEDS_REQUESTS, *p99 > ETCD_SLOW_WARNING);
        if *p99 > ETCD_SLOW_CRITICAL && st == Status::Warning {
            detail = format!("{detail}; {}", too_few(over, &format!("took over {ETCD_SLOW_CRITICAL}s")));
        }
        r.sub(format!("etcd p99 {op}"), st, detail);
        if st != Status::Ok {
            r.raise(st);
            etcd_slow.push(format!("{op} {}", short_latency_secs(*p99)));
        }
    }
    if !etcd_slow.is_empty() {
        problems.push(format!("slow etcd requests (p99): {}", etcd_slow.join(", ")));
        r.fix(
            "etcd is slow: check its db size and fragmentation (the etcd check), disk latency on the control-plane nodes (etcd needs low-latency fsync, SSDs), and large LISTs (events, pods cluster-wide).",
            &["kubectl etcdsnap members", "kubectl etcdsnap defrag --all"],
            "medium: defragmentation blocks each member while it runs",
        );
    } else if let Some(max) = s.etcd_p99_by_operation.values().copied().reduce(f64::max) {
        fine.push(format!("etcd p99 ≤ {}", short_latency_secs(max)));
    }

    // Webhooks.
    for (name, p99) in &s.webhook_p99 {
        if *p99 > 1.0 {
            r.raise(Status::Warning);
            problems.push(format!("webhook {name} p99 {}", short_latency_secs(*p99)));
        }
    }
    for (name, v) in &s.webhook_errors_per_second {
        r.raise(Status::Warning);
        problems.push(format!("calls to webhook {name} fail ({})", rate(*v)));
    }
    for (name, v) in &s.webhook_fail_open_per_second {
        r.raise(Status::Warning);
        problems.push(format!("webhook {name} fails open ({}): its policy is not enforced", rate(*v)));
    }
    if let Some(size) = s.storage_size_bytes {
        r.push_evidence("etcd db size (API server's view)", crate::output::human_bytes(size as u64));
    }

    r.message = if problems.is_empty() { fine.join(", ") } else { crate::report::one_line(&problems) };
    if r.message.is_empty() {
        r.message = "no traffic in the window".into();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(path: &str) -> Scrape {
        Scrape::parse(&crate::test_files::bytes(&format!("tests/fixtures/{path}")), &selection())
    }

    /// A second scrape: the first one with every counter and bucket grown by `factor`, plus
    /// extra lines.
    fn grown(path: &str, factor: f64, extra: &str) -> Scrape {
        let text = crate::test_files::text(&format!("tests/fixtures/{path}"));
        let mut out = String::new();
        let mut counter_like = false;
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                counter_like = t.ends_with(" counter") || t.ends_with(" histogram");
                out.push_str(line);
            } else if !line.starts_with('#') && counter_like {
                let (head, v) = line.rsplit_once(' ').unwrap();
                let v: f64 = crate::metrics::text::parse_value(v).unwrap();
                out.push_str(&format!("{head} {}", (v * factor).round()));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out.push_str(extra);
        Scrape::parse(out.as_bytes(), &selection())
    }

    /// `seconds` between two scrapes of one replica, "cp", with the default limits.
    fn window<'a>(older: &'a Scrape, newer: &'a Scrape, seconds: f64) -> Window<'a> {
        Window { replica: "cp".into(), older, newer, seconds, limits: InflightLimits::default() }
    }

    #[test]
    fn reads_every_real_capture() {
        // tests/fixtures/clusters/k8s-1.3x/apiserver.metrics: the values the check extracts.
        for minor in 31..=34 {
            let path = format!("clusters/k8s-1.{minor}/apiserver.metrics");
            let older = scrape(&path);
            let newer = grown(&path, 2.0, "");
            let w = window(&older, &newer, 10.0);
            let s = summarise(&[w]);
            assert_eq!(s.inflight.len(), 1);
            assert!(s.inflight[0].read_only >= 0.0 && s.inflight[0].read_only < 400.0, "1.{minor}: {:?}", s.inflight);
            assert!(
                s.p99_by_verb.contains_key("GET") && s.p99_by_verb.contains_key("LIST"),
                "1.{minor}: {:?}",
                s.p99_by_verb
            );
            assert!(!s.p99_by_verb.contains_key("WATCH"), "WATCH is excluded");
            assert!(s.work_p99_by_verb.contains_key("LIST"), "1.{minor}: apiserver_request_sli_duration_seconds");
            assert!(s.requests_per_second > 1.0);
            assert!(!s.etcd_p99_by_operation.is_empty(), "1.{minor}");
            assert!(s.storage_size_bytes.unwrap() > 1e6, "apiserver_storage_size_bytes (1.28+)");
            assert!(s.apf_rejections.is_empty());
            let r = judge(&s);
            assert_ne!(r.status, Status::Critical, "1.{minor}: {}", r.message);
            // One scrape (--sample 0): the window says so, once.
            let single = judge(&summarise(&[window(&newer, &newer, 0.0)]));
            let windows: Vec<&str> =
                single.evidence.iter().filter(|e| e.name == "window").map(|e| e.value.as_str()).collect();
            assert_eq!(windows.len(), 1, "1.{minor}: {windows:?}");
            assert!(windows[0].starts_with("one scrape of 1 replica (--sample 0)"), "1.{minor}: {windows:?}");
        }
    }

    #[test]
    fn the_1_26_excerpt_reads_too() {
        // tests/fixtures/metrics-excerpts/kube-apiserver-v1.26.8-nri-kubernetes-excerpt.prom
        let path = "metrics-excerpts/kube-apiserver-v1.26.8-nri-kubernetes-excerpt.prom";
        let older = scrape(path);
        // The excerpt has the inflight gauges but not the request histograms: the check still
        // reads what is there.
        assert!(older.has_family("apiserver_current_inflight_requests"));
        assert!(!older.has_family("apiserver_request_duration_seconds"));
        let w = window(&older, &older, 2.0);
        let s = summarise(&[w]);
        assert_eq!(s.inflight.len(), 1);
        assert!(s.p99_by_verb.is_empty());
        assert_eq!(judge(&s).status, Status::Ok);
    }

    #[test]
    fn apf_rejections_and_429s_are_reported_by_level() {
        let path = "clusters/k8s-1.33/apiserver.metrics";
        let older = scrape(path);
        let newer = grown(
            path,
            1.0,
            "apiserver_flowcontrol_rejected_requests_total{flow_schema=\"service-accounts\",priority_level=\"workload-low\",reason=\"queue-full\"} 240\n\
             apiserver_request_total{code=\"429\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"cluster\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 270\n",
        );
        let w = window(&older, &newer, 10.0);
        let s = summarise(&[w]);
        assert_eq!(s.apf_rejections.get(&("workload-low".to_string(), "queue-full".to_string())), Some(&24.0));
        assert_eq!(s.throttled_429_per_second, 27.0);
        let r = judge(&s);
        assert_eq!(r.status, Status::Warning, "workload-low is not a system level");
        assert!(r.message.contains("APF rejects requests (27/s 429s): workload-low queue-full 24/s"), "{}", r.message);
    }

    #[test]
    fn latency_from_queueing_alone_is_a_warning_slow_work_stays_critical() {
        // A flood in workload-low on a real 1.36 API server: its LISTs wait ~15 s in the APF
        // queue (the queue timeout), the server's own work is quick.
        let summary = |work: Option<f64>| LoadSummary {
            replicas: 1,
            seconds: 7.0,
            p99_by_verb: BTreeMap::from([("LIST".to_string(), 14.89), ("GET".to_string(), 0.05)]),
            work_p99_by_verb: work.map(|w| BTreeMap::from([("LIST".to_string(), w)])).unwrap_or_default(),
            over_critical_by_verb: BTreeMap::from([("LIST".to_string(), 40.0)]),
            apf_rejections: BTreeMap::from([(("workload-low".to_string(), "queue-full".to_string()), 198.0)]),
            throttled_429_per_second: 179.0,
            ..Default::default()
        };
        let queued = judge(&summary(Some(0.12)));
        assert_eq!(queued.status, Status::Warning, "{}", queued.message);
        assert!(
            queued.subchecks.iter().any(|s| s.message
                == "LIST p99 14.89s (120ms of it the server's own work; the rest queued in APF or in webhooks)"),
            "{}",
            queued.message
        );
        // What queues them comes first: it explains the slowness.
        assert!(
            queued.message.starts_with("APF rejects requests (179/s 429s): workload-low queue-full 198/s; slow requests: LIST p99 14.89s (120ms server work)"),
            "{}",
            queued.message
        );
        // Slow work as slow as the rejections are bad (both WARNING, a loaded machine): the
        // rejections still lead, the slowness follows.
        let some_work = judge(&summary(Some(2.6)));
        assert_eq!(some_work.status, Status::Warning, "{}", some_work.message);
        assert!(
            some_work.message.starts_with("APF rejects requests (179/s 429s): workload-low queue-full 198/s; slow requests: LIST p99 14.89s (2.60s server work)"),
            "{}",
            some_work.message
        );
        let slow_work = judge(&summary(Some(6.0)));
        assert_eq!(slow_work.status, Status::Critical, "{}", slow_work.message);
        assert!(
            slow_work.message.starts_with("slow requests: LIST p99 14.89s"),
            "worse comes first: {}",
            slow_work.message
        );
        assert!(!slow_work.message.contains("queued"), "{}", slow_work.message);
        // Without the SLI histogram (before 1.26) what clients wait is all there is.
        assert_eq!(judge(&summary(None)).status, Status::Critical);
    }

    #[test]
    fn one_slow_or_failed_request_in_a_quiet_window_is_a_warning() {
        // The kit's etcd-member-down on a loaded CI machine: 20 requests in 1.7 s, one PUT
        // waited 7.9 s on etcd and one request failed.
        let quiet = |over: f64, failed: f64| LoadSummary {
            replicas: 2,
            seconds: 1.7,
            p99_by_verb: BTreeMap::from([("PUT".to_string(), 7.9)]),
            over_critical_by_verb: BTreeMap::from([("PUT".to_string(), over)]),
            etcd_p99_by_operation: BTreeMap::from([("update".to_string(), 7.9)]),
            etcd_over_critical_by_operation: BTreeMap::from([("update".to_string(), over)]),
            requests_per_second: 12.0,
            errors_5xx_per_second: 0.7,
            errors_5xx: failed,
            ..Default::default()
        };
        let r = judge(&quiet(1.0, 1.0));
        assert_eq!(r.status, Status::Warning, "{}", r.message);
        assert_eq!(
            r.message,
            "5.8% of requests fail with 5xx; slow requests: PUT p99 7.90s; slow etcd requests (p99): update 7.90s"
        );
        let sub = |r: &CheckResult, name: &str| r.subchecks.iter().find(|s| s.name == name).cloned().unwrap();
        assert_eq!(
            sub(&r, "p99 PUT").message,
            "PUT p99 7.90s; only 1 request took over 5s in the window (a critical needs 3)"
        );
        assert_eq!(
            sub(&r, "5xx").message,
            "5.8% of requests fail with 5xx; only 1 request failed in the window (a critical needs 3)"
        );
        assert!(
            sub(&r, "etcd p99 update")
                .message
                .ends_with("only 1 request took over 2s in the window (a critical needs 3)")
        );
        // The same numbers from a pattern are critical, each of them.
        let r = judge(&quiet(3.0, 3.0));
        assert_eq!(r.status, Status::Critical);
        for name in ["p99 PUT", "5xx", "etcd p99 update"] {
            assert_eq!(sub(&r, name).status, Status::Critical, "{name}");
        }
    }

    #[test]
    fn rejections_in_system_levels_are_critical_and_inflight_limits_count() {
        let path = "clusters/k8s-1.33/apiserver.metrics";
        let older = scrape(path);
        let newer = grown(
            path,
            1.0,
            "apiserver_flowcontrol_rejected_requests_total{flow_schema=\"system-nodes\",priority_level=\"system\",reason=\"time-out\"} 5\n",
        );
        let limits = InflightLimits { read_only: 1.0, mutating: 200.0, from_flags: true };
        let w = Window { replica: "cp-1".into(), older: &older, newer: &newer, seconds: 5.0, limits };
        let r = judge(&summarise(&[w]));
        assert_eq!(r.status, Status::Critical);
        assert!(r.subchecks.iter().any(|s| s.name == "apf system" && s.status == Status::Critical));
    }

    #[test]
    fn under_apf_the_two_inflight_limits_are_one_pool() {
        // kube-apiserver 1.36.3 of the kit's apf-overload (limits 20 + 10): 21 read-only requests
        // executing is within the pool of 30 seats, not 105% of a read-only limit.
        let gauges = "# TYPE apiserver_current_inflight_requests gauge\napiserver_current_inflight_requests{request_kind=\"mutating\"} 1\napiserver_current_inflight_requests{request_kind=\"readOnly\"} 21\n";
        let apf = "# TYPE apiserver_flowcontrol_dispatched_requests_total counter\napiserver_flowcontrol_dispatched_requests_total{flow_schema=\"service-accounts\",priority_level=\"workload-low\"} 6825\n";
        let limits = InflightLimits { read_only: 20.0, mutating: 10.0, from_flags: true };
        let with_apf = Scrape::parse(format!("{gauges}{apf}").as_bytes(), &selection());
        let w = Window { replica: "cp-1".into(), older: &with_apf, newer: &with_apf, seconds: 1.0, limits };
        let r = judge(&summarise(&[w]));
        assert!(
            r.subchecks
                .iter()
                .any(|s| s.name == "inflight cp-1" && s.status == Status::Ok && s.message == "22/30 in flight (73%)"),
            "{:?}",
            r.subchecks
        );
        // With APF off (--enable-priority-and-fairness=false) the max-in-flight filter enforces each.
        let without = Scrape::parse(gauges.as_bytes(), &selection());
        let w = Window { replica: "cp-1".into(), older: &without, newer: &without, seconds: 1.0, limits };
        let r = judge(&summarise(&[w]));
        assert_eq!(r.status, Status::Critical);
        assert!(r.message.contains("cp-1: 21/20 read-only in flight (105%)"), "{}", r.message);
    }
}
