//! `/metrics` grounded in a real kube-apiserver scrape (the fixtures' 1.31–1.34 captures, with
//! addresses rewritten to loopback): every counter and histogram of the capture keeps its shape
//! and grows over time, and the series a scenario drives (inflight, APF rejections and waits,
//! 429s, webhook calls, etcd latency and size, unavailable APIServices) are generated with their
//! real names and labels on top.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use cpkit::metrics::{Event, MetricType};

use super::Sim;

/// Counters and histograms of the capture double every `GROWTH_SECONDS`.
const GROWTH_SECONDS: f64 = 300.0;

/// Canonical label text: sorted `k="v"` pairs, escaped.
pub fn label_text(labels: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect::<Vec<_>>()
        .join(",")
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[derive(Debug, Clone)]
struct BaseLine {
    sample: String,
    key: String,
    le: Option<String>,
    value: f64,
    is_quantile: bool,
}

#[derive(Debug, Clone)]
struct BaseFamily {
    name: String,
    kind: MetricType,
    header: String,
    lines: Vec<BaseLine>,
}

/// A series a scenario adds or replaces (same family and labels as a captured one replaces it).
#[derive(Debug, Clone)]
pub enum Extra {
    /// value = `start` + `per_second` × uptime × replica weight.
    Counter { family: String, labels: Vec<(String, String)>, start: f64, per_second: f64 },
    /// A gauge; `scaled` ones follow the replica's share of the load, the others (limits,
    /// configuration) are the same on every replica.
    Gauge { family: String, labels: Vec<(String, String)>, value: f64, scaled: bool },
    /// `per_second` observations of `latency` seconds each.
    Histogram { family: String, labels: Vec<(String, String)>, bounds: Vec<f64>, latency: f64, per_second: f64 },
}

impl Extra {
    fn family(&self) -> &str {
        match self {
            Extra::Counter { family, .. } | Extra::Gauge { family, .. } | Extra::Histogram { family, .. } => family,
        }
    }

    fn key(&self) -> String {
        match self {
            Extra::Counter { labels, .. } | Extra::Gauge { labels, .. } | Extra::Histogram { labels, .. } => {
                label_text(labels)
            }
        }
    }

    pub fn counter(family: &str, l: &[(&str, &str)], per_second: f64) -> Extra {
        Extra::Counter { family: family.into(), labels: labels(l), start: 0.0, per_second }
    }

    pub fn gauge(family: &str, l: &[(&str, &str)], value: f64) -> Extra {
        Extra::Gauge { family: family.into(), labels: labels(l), value, scaled: true }
    }

    /// A gauge every replica reports alike (a limit, not a load).
    pub fn setting(family: &str, l: &[(&str, &str)], value: f64) -> Extra {
        Extra::Gauge { family: family.into(), labels: labels(l), value, scaled: false }
    }

    pub fn histogram(family: &str, l: &[(&str, &str)], bounds: &[f64], latency: f64, per_second: f64) -> Extra {
        Extra::Histogram { family: family.into(), labels: labels(l), bounds: bounds.to_vec(), latency, per_second }
    }
}

/// Webhook calls the cluster's own controllers keep making (e.g. a ReplicaSet retrying pod
/// creates against a dead webhook).
#[derive(Debug, Clone)]
pub struct WebhookRate {
    pub name: String,
    /// `validating` or `admit`.
    pub kind: String,
    pub operation: String,
    /// `calling_webhook_error` for failed calls, None for successful ones.
    pub error_type: Option<String>,
    pub per_second: f64,
    pub latency: f64,
}

/// What a scenario drives in the metrics.
#[derive(Debug, Clone, Default)]
pub struct LoadProfile {
    pub extras: Vec<Extra>,
    pub webhook_rates: Vec<WebhookRate>,
    /// Multiplier of per-second rates per replica (APF state is per replica: a flooding client on
    /// one HTTP/2 connection lands on one replica). Missing entries mean 1.0.
    pub replica_weights: Vec<f64>,
    /// Series of one replica only (replica index, series): its own process state.
    pub replica_extras: Vec<(usize, Extra)>,
}

#[derive(Debug, Default, Clone)]
struct WebhookCounts {
    requests: BTreeMap<(String, String, String, String, String), f64>,
    rejections: BTreeMap<(String, String, String, String), f64>,
    fail_open: BTreeMap<(String, String), f64>,
    durations: BTreeMap<(String, String, String, String), Vec<f64>>,
}

/// The metrics of the simulated server.
pub struct MetricsModel {
    base: Vec<BaseFamily>,
    pub load: RwLock<LoadProfile>,
    webhooks: Mutex<WebhookCounts>,
}

/// APF's point-in-time gauges of the requests a server holds right now.
const CAPTURED_NOW_GAUGES: [&str; 4] = [
    "apiserver_flowcontrol_current_executing_requests",
    "apiserver_flowcontrol_current_executing_seats",
    "apiserver_flowcontrol_current_inqueue_requests",
    "apiserver_flowcontrol_current_inqueue_seats",
];

const WEBHOOK_BOUNDS: [f64; 8] = [0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10.0, 25.0];

impl MetricsModel {
    /// Builds the model from a capture's text (already rewritten to loopback addresses).
    pub fn from_capture(text: &str) -> MetricsModel {
        let mut base: Vec<BaseFamily> = Vec::new();
        let mut pending_help: Option<String> = None;
        cpkit::metrics::parse(text, |event| match event {
            Event::Help { family, text } => pending_help = Some(format!("# HELP {family} {text}\n")),
            Event::Type { family, kind } => {
                let kind_word = match kind {
                    MetricType::Counter => "counter",
                    MetricType::Gauge => "gauge",
                    MetricType::Histogram => "histogram",
                    MetricType::Summary => "summary",
                    MetricType::Untyped => "untyped",
                };
                let header = format!("{}# TYPE {family} {kind_word}\n", pending_help.take().unwrap_or_default());
                base.push(BaseFamily { name: family.to_string(), kind, header, lines: Vec::new() });
            }
            Event::Sample(s) => {
                let mut pairs: Vec<(String, String)> = Vec::new();
                let mut le = None;
                let mut is_quantile = false;
                for (k, v) in s.labels.iter() {
                    if k == "le" {
                        le = Some(v.into_owned());
                    } else {
                        if k == "quantile" {
                            is_quantile = true;
                        }
                        pairs.push((k.to_string(), v.into_owned()));
                    }
                }
                let line =
                    BaseLine { sample: s.name.to_string(), key: label_text(&pairs), le, value: s.value, is_quantile };
                match base.last_mut() {
                    Some(f) if s.name.starts_with(f.name.as_str()) => f.lines.push(line),
                    _ => base.push(BaseFamily {
                        name: s.name.to_string(),
                        kind: MetricType::Untyped,
                        header: String::new(),
                        lines: vec![line],
                    }),
                }
            }
        });
        // The requests queued or executing when the capture was taken are not this server's: its
        // own are in the APF dumps (empty unless a scenario queues some), and a real server's
        // gauges and dumps agree (apftop showed executing requests with no flow behind them).
        for family in base.iter_mut().filter(|f| CAPTURED_NOW_GAUGES.contains(&f.name.as_str())) {
            for line in &mut family.lines {
                line.value = 0.0;
            }
        }
        MetricsModel { base, load: RwLock::new(LoadProfile::default()), webhooks: Mutex::new(WebhookCounts::default()) }
    }

    /// An empty model (no capture).
    pub fn empty() -> MetricsModel {
        MetricsModel {
            base: Vec::new(),
            load: RwLock::new(LoadProfile::default()),
            webhooks: Mutex::new(WebhookCounts::default()),
        }
    }

    /// The share of the load that `replica` carries (1.0 unless the scenario says otherwise).
    pub fn replica_weight(&self, replica: usize) -> f64 {
        self.load.read().expect("load lock").replica_weights.get(replica).copied().unwrap_or(1.0)
    }

    pub fn set_load(&self, load: LoadProfile) {
        *self.load.write().expect("load lock") = load;
    }

    /// Records one webhook call made by the admission chain.
    pub fn record_webhook(
        &self,
        name: &str,
        kind: &str,
        operation: &str,
        rejected: bool,
        elapsed: Duration,
        error_type: Option<&str>,
    ) {
        let Ok(mut w) = self.webhooks.lock() else {
            return;
        };
        let rejected_text = rejected.to_string();
        let code = match error_type {
            Some("calling_webhook_error") => "0",
            _ if rejected => "400",
            _ => "200",
        };
        *w.requests
            .entry((name.into(), kind.into(), operation.into(), rejected_text.clone(), code.into()))
            .or_insert(0.0) += 1.0;
        if rejected && let Some(t) = error_type {
            *w.rejections.entry((name.into(), kind.into(), operation.into(), t.into())).or_insert(0.0) += 1.0;
        }
        w.durations
            .entry((name.into(), kind.into(), operation.into(), rejected_text))
            .or_default()
            .push(elapsed.as_secs_f64());
    }

    pub fn record_fail_open(&self, name: &str, kind: &str) {
        if let Ok(mut w) = self.webhooks.lock() {
            *w.fail_open.entry((name.into(), kind.into())).or_insert(0.0) += 1.0;
        }
    }

    /// The exposition for `replica` at the server's current uptime.
    pub fn render(&self, sim: &Sim, replica: usize) -> String {
        let t = sim.uptime().as_secs_f64();
        let load = self.load.read().expect("load lock").clone();
        let weight = load.replica_weights.get(replica).copied().unwrap_or(1.0);
        let growth = 1.0 + t / GROWTH_SECONDS * (0.8 + 0.2 * weight);
        let mut extras_by_family: HashMap<&str, Vec<&Extra>> = HashMap::new();
        let own = load.replica_extras.iter().filter(|(r, _)| *r == replica).map(|(_, e)| e);
        for e in load.extras.iter().chain(own) {
            extras_by_family.entry(e.family()).or_default().push(e);
        }
        let mut out = String::with_capacity(4 << 20);
        let mut rendered_families = std::collections::HashSet::new();
        for family in &self.base {
            rendered_families.insert(family.name.as_str());
            out.push_str(&family.header);
            let extras = extras_by_family.get(family.name.as_str());
            let replaced: std::collections::HashSet<String> =
                extras.map(|es| es.iter().map(|e| e.key()).collect()).unwrap_or_default();
            let scale = matches!(family.kind, MetricType::Counter | MetricType::Histogram | MetricType::Summary);
            for line in &family.lines {
                if replaced.contains(&line.key) {
                    continue;
                }
                // Counters grow smoothly (not rounded: rounding would make small series jump and
                // fake error spikes in short windows).
                let value = if !scale || line.is_quantile { line.value } else { milli(line.value * growth) };
                write_line(&mut out, &line.sample, &line.key, line.le.as_deref(), value);
            }
            if let Some(es) = extras {
                for e in es {
                    render_extra(&mut out, e, t, weight);
                }
            }
        }
        for (family, es) in &extras_by_family {
            if rendered_families.contains(family) {
                continue;
            }
            let kind = match es[0] {
                Extra::Counter { .. } => "counter",
                Extra::Gauge { .. } => "gauge",
                Extra::Histogram { .. } => "histogram",
            };
            let _ = writeln!(out, "# HELP {family} [ALPHA] Generated by the simulated API server for its scenario.");
            let _ = writeln!(out, "# TYPE {family} {kind}");
            for e in es {
                render_extra(&mut out, e, t, weight);
            }
        }
        self.render_webhooks(&mut out, &load.webhook_rates, t);
        out
    }

    fn render_webhooks(&self, out: &mut String, rates: &[WebhookRate], t: f64) {
        let Ok(recorded) = self.webhooks.lock() else {
            return;
        };
        let mut w = recorded.clone();
        drop(recorded);
        for r in rates {
            let n = (r.per_second * t).round();
            let rejected = r.error_type.is_some();
            let code = if rejected { "0" } else { "200" };
            *w.requests
                .entry((r.name.clone(), r.kind.clone(), r.operation.clone(), rejected.to_string(), code.into()))
                .or_insert(0.0) += n;
            if let Some(e) = &r.error_type {
                *w.rejections.entry((r.name.clone(), r.kind.clone(), r.operation.clone(), e.clone())).or_insert(0.0) +=
                    n;
            }
            let samples = w
                .durations
                .entry((r.name.clone(), r.kind.clone(), r.operation.clone(), rejected.to_string()))
                .or_default();
            samples.extend(std::iter::repeat_n(r.latency, n as usize));
        }
        if w.requests.is_empty() && w.fail_open.is_empty() {
            return;
        }
        out.push_str("# HELP apiserver_admission_webhook_admission_duration_seconds [STABLE] Admission webhook latency histogram in seconds, identified by name and broken out for each operation and API resource and type (validate or admit).\n# TYPE apiserver_admission_webhook_admission_duration_seconds histogram\n");
        for ((name, kind, op, rejected), samples) in &w.durations {
            let l = labels(&[("name", name), ("operation", op), ("rejected", rejected), ("type", kind)]);
            let key = label_text(&l);
            for b in WEBHOOK_BOUNDS {
                let n = samples.iter().filter(|s| **s <= b).count() as f64;
                write_line(
                    out,
                    "apiserver_admission_webhook_admission_duration_seconds_bucket",
                    &key,
                    Some(&fmt_bound(b)),
                    n,
                );
            }
            write_line(
                out,
                "apiserver_admission_webhook_admission_duration_seconds_bucket",
                &key,
                Some("+Inf"),
                samples.len() as f64,
            );
            write_line(
                out,
                "apiserver_admission_webhook_admission_duration_seconds_sum",
                &key,
                None,
                samples.iter().sum(),
            );
            write_line(
                out,
                "apiserver_admission_webhook_admission_duration_seconds_count",
                &key,
                None,
                samples.len() as f64,
            );
        }
        out.push_str("# HELP apiserver_admission_webhook_request_total [ALPHA] Admission webhook request total, identified by name and broken out for each admission type (validating or mutating) and operation. Additional labels specify whether the request was rejected or not and an HTTP status code. Codes greater than 600 are truncated to 600, to keep the metrics cardinality bounded.\n# TYPE apiserver_admission_webhook_request_total counter\n");
        for ((name, kind, op, rejected, code), v) in &w.requests {
            let key = label_text(&labels(&[
                ("code", code),
                ("name", name),
                ("operation", op),
                ("rejected", rejected),
                ("type", kind),
            ]));
            write_line(out, "apiserver_admission_webhook_request_total", &key, None, *v);
        }
        if !w.rejections.is_empty() {
            out.push_str("# HELP apiserver_admission_webhook_rejection_count [ALPHA] Admission webhook rejection count, identified by name and broken out for each admission type (validating or admit) and operation. Additional labels specify an error type (calling_webhook_error or apiserver_internal_error if an error occurred; no_error otherwise) and optionally a non-zero rejection code if the webhook rejects the request with an HTTP status code (honored by the apiserver when the code is greater or equal to 400). Codes greater than 600 are truncated to 600, to keep the metrics cardinality bounded.\n# TYPE apiserver_admission_webhook_rejection_count counter\n");
            for ((name, kind, op, error_type), v) in &w.rejections {
                let key = label_text(&labels(&[
                    ("error_type", error_type),
                    ("name", name),
                    ("operation", op),
                    ("rejection_code", "0"),
                    ("type", kind),
                ]));
                write_line(out, "apiserver_admission_webhook_rejection_count", &key, None, *v);
            }
        }
        if !w.fail_open.is_empty() {
            out.push_str("# HELP apiserver_admission_webhook_fail_open_count [ALPHA] Admission webhook fail open count, identified by name and broken out for each admission type (validating or mutating).\n# TYPE apiserver_admission_webhook_fail_open_count counter\n");
            for ((name, kind), v) in &w.fail_open {
                write_line(
                    out,
                    "apiserver_admission_webhook_fail_open_count",
                    &label_text(&labels(&[("name", name), ("type", kind)])),
                    None,
                    *v,
                );
            }
        }
    }

    /// `/metrics/slis`: the health checks as gauges and counters.
    pub fn render_slis(&self, sim: &Sim, replica: usize) -> String {
        let health = sim.health.read().expect("health lock");
        let mut out = String::from(
            "# HELP kubernetes_healthcheck [STABLE] This metric records the result of a single healthcheck.\n# TYPE kubernetes_healthcheck gauge\n",
        );
        let Some(model) = health.get(replica) else {
            return out;
        };
        for endpoint in ["healthz", "livez", "readyz"] {
            for c in model.checks(endpoint) {
                let key = label_text(&labels(&[("name", &c.name), ("type", endpoint)]));
                write_line(&mut out, "kubernetes_healthcheck", &key, None, if c.failure.is_none() { 1.0 } else { 0.0 });
            }
        }
        out
    }
}

/// Three decimals: enough for rates, short on the wire.
fn milli(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn fmt_bound(b: f64) -> String {
    if b.is_infinite() { "+Inf".into() } else { format!("{b}") }
}

fn write_line(out: &mut String, sample: &str, key: &str, le: Option<&str>, value: f64) {
    out.push_str(sample);
    match (key.is_empty(), le) {
        (true, None) => {}
        (true, Some(le)) => {
            let _ = write!(out, "{{le=\"{le}\"}}");
        }
        (false, None) => {
            let _ = write!(out, "{{{key}}}");
        }
        (false, Some(le)) => {
            let _ = write!(out, "{{{key},le=\"{le}\"}}");
        }
    }
    out.push(' ');
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.is_nan() {
        out.push_str("NaN");
    } else {
        let _ = write!(out, "{value}");
    }
    out.push('\n');
}

fn render_extra(out: &mut String, e: &Extra, t: f64, weight: f64) {
    match e {
        Extra::Counter { family, labels, start, per_second } => {
            write_line(out, family, &label_text(labels), None, milli(start + per_second * t * weight));
        }
        Extra::Gauge { family, labels, value, scaled } => {
            let v = if *scaled { (*value * weight).round() } else { *value };
            write_line(out, family, &label_text(labels), None, v)
        }
        Extra::Histogram { family, labels, bounds, latency, per_second } => {
            let key = label_text(labels);
            let count = milli(per_second * t * weight);
            for b in bounds {
                write_line(
                    out,
                    &format!("{family}_bucket"),
                    &key,
                    Some(&fmt_bound(*b)),
                    if *latency <= *b { count } else { 0.0 },
                );
            }
            write_line(out, &format!("{family}_bucket"), &key, Some("+Inf"), count);
            write_line(out, &format!("{family}_sum"), &key, None, count * latency);
            write_line(out, &format!("{family}_count"), &key, None, count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_text_is_canonical() {
        assert_eq!(label_text(&labels(&[("b", "2"), ("a", "x\"y")])), "a=\"x\\\"y\",b=\"2\"");
    }

    #[test]
    fn a_captures_requests_in_flight_are_not_the_simulators() {
        let model = MetricsModel::from_capture(concat!(
            "# TYPE apiserver_flowcontrol_current_executing_requests gauge\n",
            "apiserver_flowcontrol_current_executing_requests{flow_schema=\"service-accounts\",priority_level=\"workload-low\"} 1\n",
            "# TYPE apiserver_flowcontrol_dispatched_requests_total counter\n",
            "apiserver_flowcontrol_dispatched_requests_total{flow_schema=\"service-accounts\",priority_level=\"workload-low\"} 42\n",
        ));
        let value = |family: &str| model.base.iter().find(|f| f.name == family).map(|f| f.lines[0].value);
        assert_eq!(value("apiserver_flowcontrol_current_executing_requests"), Some(0.0));
        assert_eq!(value("apiserver_flowcontrol_dispatched_requests_total"), Some(42.0));
    }
}
