//! An owned selection of a scrape: only the families a check asks for are kept, the rest of a
//! multi-MB exposition is skipped without allocation. Each series is kept once, its histogram
//! buckets folded into it (a histogram line costs a float, not a label set). Aggregations mirror
//! the PromQL the runbooks use: `sum by (...)`, `increase`,
//! `histogram_quantile(sum by (le, ...) (increase(...)))`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::histogram::{Histogram, counter_delta};
use super::text::{Event, Labels, MetricType, ParseStats, parse_bytes};

/// Which families to keep.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    all: bool,
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl Selection {
    pub fn all() -> Self {
        Selection { all: true, ..Default::default() }
    }

    pub fn families(names: &[&str]) -> Self {
        Selection { exact: names.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    pub fn with_prefixes(mut self, prefixes: &[&str]) -> Self {
        self.prefixes.extend(prefixes.iter().map(|s| s.to_string()));
        self
    }

    pub fn wants(&self, family: &str) -> bool {
        self.all || self.exact.contains(family) || self.prefixes.iter().any(|p| family.starts_with(p.as_str()))
    }
}

/// One series of a family (one label set, `le` excluded): its plain value, or for histograms
/// and summaries its buckets, sum and count.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// Labels in exposition order, without `le`.
    pub labels: Vec<(String, String)>,
    /// The sample named like the family (counters, gauges, summary quantiles).
    pub value: Option<f64>,
    pub sum: Option<f64>,
    pub count: Option<f64>,
    /// `_bucket` samples, cumulative, sorted by `le`.
    pub buckets: Vec<super::Bucket>,
}

impl Series {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn group_key(&self, by: &[&str]) -> Vec<String> {
        by.iter().map(|l| self.label(l).unwrap_or("").to_string()).collect()
    }

    fn histogram(&self) -> Histogram {
        Histogram { buckets: self.buckets.clone(), sum: self.sum.unwrap_or(0.0), count: self.count.unwrap_or(0.0) }
    }
}

/// A metric family with its kept series.
#[derive(Debug, Clone, Serialize)]
pub struct Family {
    pub name: String,
    pub kind: MetricType,
    pub help: String,
    pub series: Vec<Series>,
    /// Series by their label text (exposition order, `le` removed).
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl Family {
    fn new(name: &str, kind: MetricType, help: String) -> Family {
        Family { name: name.to_string(), kind, help, series: Vec::new(), index: HashMap::new() }
    }

    fn series_mut(&mut self, key: &str, labels: Labels<'_>) -> &mut Series {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let labels =
                    labels.iter().filter(|(k, _)| *k != "le").map(|(k, v)| (k.to_string(), v.into_owned())).collect();
                self.series.push(Series { labels, ..Default::default() });
                self.index.insert(key.to_string(), self.series.len() - 1);
                self.series.len() - 1
            }
        };
        &mut self.series[i]
    }
}

/// Which field of a series a sample name designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Value,
    Sum,
    Count,
    Bucket,
}

/// The kept part of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    families: HashMap<String, Family>,
    pub stats: ParseStats,
}

/// A filter over series (`|s| s.label("verb") != Some("WATCH")`).
pub type SampleFilter<'f> = &'f dyn Fn(&Series) -> bool;

/// Keeps every series.
pub fn any(_: &Series) -> bool {
    true
}

const SUFFIXES: [(&str, Field); 3] = [("_bucket", Field::Bucket), ("_sum", Field::Sum), ("_count", Field::Count)];

/// The label text of a sample without its `le` pair (no allocation when `le` is last, as client
/// libraries write it).
fn key_without_le(raw: &str) -> std::borrow::Cow<'_, str> {
    if let Some(pos) = raw.rfind("le=\"")
        && (pos == 0 || raw.as_bytes()[pos - 1] == b',')
        && raw[pos..].trim_end_matches(',').ends_with('"')
        && raw[pos + 4..].trim_end_matches(',').trim_end_matches('"').find('"').is_none()
    {
        return std::borrow::Cow::Borrowed(raw[..pos].trim_end_matches(','));
    }
    let kept: Vec<&str> = split_pairs(raw).into_iter().filter(|p| !p.trim_start().starts_with("le=")).collect();
    std::borrow::Cow::Owned(kept.join(","))
}

/// Splits a label block on the commas between pairs (not inside quoted values).
fn split_pairs(raw: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in raw.bytes().enumerate() {
        match b {
            b'\\' if in_quotes && !escaped => {
                escaped = true;
                continue;
            }
            b'"' if !escaped => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                out.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        escaped = false;
    }
    if start < raw.len() {
        out.push(&raw[start..]);
    }
    out
}

impl Scrape {
    /// Parses an exposition, keeping the selected families.
    pub fn parse(text: &[u8], selection: &Selection) -> Scrape {
        let mut families: HashMap<String, Family> = HashMap::new();
        // The family announced by the last TYPE line, and whether it is wanted.
        let mut current: Option<(String, MetricType, bool)> = None;
        let mut pending_help: Option<(String, String)> = None;
        let stats = parse_bytes(text, &mut |event| match event {
            Event::Help { family, text } => {
                pending_help = Some((family.to_string(), super::text::unescape(text)));
            }
            Event::Type { family, kind } => {
                let wanted = selection.wants(family);
                if wanted {
                    let help = match pending_help.take() {
                        Some((f, h)) if f == family => h,
                        _ => String::new(),
                    };
                    families.entry(family.to_string()).or_insert_with(|| Family::new(family, kind, help));
                }
                current = Some((family.to_string(), kind, wanted));
            }
            Event::Sample(sample) => {
                // Which family and field the sample belongs to.
                let (family_name, field) = match current.as_ref() {
                    Some((fam, kind, wanted)) if sample.name.starts_with(fam.as_str()) => {
                        let rest = &sample.name[fam.len()..];
                        let field = if rest.is_empty() {
                            Some(Field::Value)
                        } else if matches!(kind, MetricType::Histogram | MetricType::Summary) {
                            SUFFIXES.iter().find(|(s, _)| *s == rest).map(|(_, f)| *f)
                        } else {
                            None
                        };
                        match field {
                            Some(f) if !*wanted => {
                                let _ = f;
                                return;
                            }
                            Some(f) => (fam.clone(), f),
                            None => {
                                if !selection.wants(sample.name) {
                                    return;
                                }
                                (sample.name.to_string(), Field::Value)
                            }
                        }
                    }
                    _ => {
                        if !selection.wants(sample.name) {
                            return;
                        }
                        (sample.name.to_string(), Field::Value)
                    }
                };
                let family = families
                    .entry(family_name.clone())
                    .or_insert_with(|| Family::new(&family_name, MetricType::Untyped, String::new()));
                let key = if field == Field::Bucket {
                    key_without_le(sample.labels.raw())
                } else {
                    sample.labels.raw().into()
                };
                let series = family.series_mut(&key, sample.labels);
                match field {
                    Field::Value => series.value = Some(sample.value),
                    Field::Sum => series.sum = Some(sample.value),
                    Field::Count => series.count = Some(sample.value),
                    Field::Bucket => {
                        if let Some(le) = sample.labels.get("le").and_then(|v| super::text::parse_value(&v)) {
                            match series.buckets.binary_search_by(|b| b.le.total_cmp(&le)) {
                                Ok(i) => series.buckets[i].count = sample.value,
                                Err(i) => series.buckets.insert(i, super::Bucket { le, count: sample.value }),
                            }
                        }
                    }
                }
            }
        });
        Scrape { families, stats }
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    pub fn has_family(&self, name: &str) -> bool {
        self.families.get(name).is_some_and(|f| !f.series.is_empty())
    }

    pub fn family_names(&self) -> impl Iterator<Item = &str> {
        self.families.keys().map(String::as_str)
    }

    /// The family and field of a sample name (`x`, `x_sum`, `x_count`).
    fn resolve(&self, sample_name: &str) -> Option<(&Family, Field)> {
        if let Some(f) = self.families.get(sample_name) {
            return Some((f, Field::Value));
        }
        SUFFIXES.iter().find_map(|(suffix, field)| {
            sample_name.strip_suffix(suffix).and_then(|f| self.families.get(f)).map(|f| (f, *field))
        })
    }

    /// (series, value) for a sample name, series without that field skipped.
    fn values<'s>(&'s self, sample_name: &str) -> Vec<(&'s Series, f64)> {
        let Some((family, field)) = self.resolve(sample_name) else { return Vec::new() };
        family
            .series
            .iter()
            .filter_map(|s| {
                let v = match field {
                    Field::Value => s.value,
                    Field::Sum => s.sum,
                    Field::Count => s.count,
                    Field::Bucket => None,
                };
                v.map(|v| (s, v))
            })
            .collect()
    }

    /// Number of series with a value for `sample_name`.
    pub fn count_series(&self, sample_name: &str) -> usize {
        self.values(sample_name).len()
    }

    /// `sum(sample_name{filter})`, `None` when no series matched.
    pub fn sum(&self, sample_name: &str, filter: SampleFilter<'_>) -> Option<f64> {
        let mut total = None;
        for (s, v) in self.values(sample_name) {
            if filter(s) {
                *total.get_or_insert(0.0) += v;
            }
        }
        total
    }

    /// `sum by (by...) (sample_name{filter})`.
    pub fn sum_by(&self, sample_name: &str, by: &[&str], filter: SampleFilter<'_>) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for (s, v) in self.values(sample_name) {
            if filter(s) {
                *out.entry(s.group_key(by)).or_insert(0.0) += v;
            }
        }
        out
    }

    /// `max by (by...)`.
    pub fn max_by(&self, sample_name: &str, by: &[&str], filter: SampleFilter<'_>) -> BTreeMap<Vec<String>, f64> {
        let mut out: BTreeMap<Vec<String>, f64> = BTreeMap::new();
        for (s, v) in self.values(sample_name) {
            if filter(s) {
                let e = out.entry(s.group_key(by)).or_insert(f64::NEG_INFINITY);
                if v > *e {
                    *e = v;
                }
            }
        }
        out
    }

    /// Histograms of `family` summed by the `by` labels (like `sum by (le, by...)`).
    pub fn histograms_by(
        &self,
        family: &str,
        by: &[&str],
        filter: SampleFilter<'_>,
    ) -> BTreeMap<Vec<String>, Histogram> {
        let mut out: BTreeMap<Vec<String>, Histogram> = BTreeMap::new();
        if let Some(f) = self.families.get(family) {
            for s in f.series.iter().filter(|s| !s.buckets.is_empty() && filter(s)) {
                out.entry(s.group_key(by)).or_default().merge(&s.histogram());
            }
        }
        out
    }

    /// `sum by (by...) (increase(sample_name[...]))` between `older` and `self`, per series
    /// with reset handling; series that appeared since `older` count from zero.
    pub fn increase_by(
        &self,
        older: &Scrape,
        sample_name: &str,
        by: &[&str],
        filter: SampleFilter<'_>,
    ) -> BTreeMap<Vec<String>, f64> {
        let before: HashMap<&Vec<(String, String)>, f64> =
            older.values(sample_name).into_iter().filter(|(s, _)| filter(s)).map(|(s, v)| (&s.labels, v)).collect();
        let mut out = BTreeMap::new();
        for (s, v) in self.values(sample_name) {
            if !filter(s) {
                continue;
            }
            let old = before.get(&s.labels).copied().unwrap_or(0.0);
            *out.entry(s.group_key(by)).or_insert(0.0) += counter_delta(v, old);
        }
        out
    }

    /// Histograms of the observations made between `older` and `self`, summed by `by` — the
    /// input of `histogram_quantile` over a window.
    pub fn histogram_increase_by(
        &self,
        older: &Scrape,
        family: &str,
        by: &[&str],
        filter: SampleFilter<'_>,
    ) -> BTreeMap<Vec<String>, Histogram> {
        let mut out: BTreeMap<Vec<String>, Histogram> = BTreeMap::new();
        let Some(now) = self.families.get(family) else { return out };
        let before: HashMap<&Vec<(String, String)>, &Series> =
            older.families.get(family).map(|f| f.series.iter().map(|s| (&s.labels, s)).collect()).unwrap_or_default();
        for s in now.series.iter().filter(|s| !s.buckets.is_empty() && filter(s)) {
            let current = s.histogram();
            let delta = match before.get(&s.labels) {
                Some(old) => current.delta_since(&old.histogram()),
                None => current,
            };
            out.entry(s.group_key(by)).or_default().merge(&delta);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE_1: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",verb="LIST",resource="pods"} 100
apiserver_request_total{code="500",verb="LIST",resource="pods"} 1
apiserver_request_total{code="200",verb="GET",resource="nodes"} 50
# HELP apiserver_request_duration_seconds [STABLE] Response latency.
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{verb="LIST",le="0.1"} 90
apiserver_request_duration_seconds_bucket{verb="LIST",le="1"} 100
apiserver_request_duration_seconds_bucket{verb="LIST",le="+Inf"} 101
apiserver_request_duration_seconds_sum{verb="LIST"} 12
apiserver_request_duration_seconds_count{verb="LIST"} 101
apiserver_request_duration_seconds_bucket{verb="WATCH",le="0.1"} 0
apiserver_request_duration_seconds_bucket{verb="WATCH",le="1"} 0
apiserver_request_duration_seconds_bucket{verb="WATCH",le="+Inf"} 5
apiserver_request_duration_seconds_sum{verb="WATCH"} 3000
apiserver_request_duration_seconds_count{verb="WATCH"} 5
# TYPE unwanted_total counter
unwanted_total 5
untyped_thing{x="y"} 3
"#;

    #[test]
    fn keeps_only_selected_families() {
        let s = Scrape::parse(SCRAPE_1.as_bytes(), &Selection::families(&["apiserver_request_total"]));
        assert!(s.has_family("apiserver_request_total"));
        assert!(!s.has_family("apiserver_request_duration_seconds"));
        assert!(!s.has_family("unwanted_total"));
        assert_eq!(s.stats.samples, 15);
        assert_eq!(s.family("apiserver_request_total").unwrap().help, "[STABLE] Counter of apiserver requests.");
        let all = Scrape::parse(SCRAPE_1.as_bytes(), &Selection::all());
        assert_eq!(all.sum("untyped_thing", &any), Some(3.0));
        let hist = all.family("apiserver_request_duration_seconds").unwrap();
        assert_eq!(hist.kind, MetricType::Histogram);
        assert_eq!(hist.series.len(), 2, "one series per label set, buckets folded in");
        assert_eq!(hist.series[0].buckets.len(), 3);
        assert_eq!(hist.series[0].labels, vec![("verb".to_string(), "LIST".to_string())]);
    }

    #[test]
    fn sums_by_labels() {
        let s = Scrape::parse(SCRAPE_1.as_bytes(), &Selection::all());
        assert_eq!(s.sum("apiserver_request_total", &any), Some(151.0));
        assert_eq!(s.sum("apiserver_request_total", &|x| x.label("code") == Some("500")), Some(1.0));
        assert_eq!(s.sum("nonexistent", &any), None);
        let by_verb = s.sum_by("apiserver_request_total", &["verb"], &any);
        assert_eq!(by_verb[&vec!["LIST".to_string()]], 101.0);
        assert_eq!(by_verb[&vec!["GET".to_string()]], 50.0);
        assert_eq!(s.count_series("apiserver_request_duration_seconds_count"), 2);
        assert_eq!(s.sum("apiserver_request_duration_seconds_sum", &any), Some(3012.0));
    }

    #[test]
    fn histogram_quantiles_per_verb_skip_watch() {
        let s = Scrape::parse(SCRAPE_1.as_bytes(), &Selection::all());
        let by_verb =
            s.histograms_by("apiserver_request_duration_seconds", &["verb"], &|x| x.label("verb") != Some("WATCH"));
        assert_eq!(by_verb.len(), 1);
        let list = &by_verb[&vec!["LIST".to_string()]];
        assert_eq!(list.count, 101.0);
        assert_eq!(list.sum, 12.0);
        // rank 99.99 is in the (0.1, 1] bucket: 0.1 + 0.9 * (9.99/10)
        let p99 = list.quantile(0.99).unwrap();
        assert!((p99 - (0.1 + 0.9 * (0.99 * 101.0 - 90.0) / 10.0)).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn increases_between_scrapes_with_a_reset_in_one_series() {
        let older = Scrape::parse(SCRAPE_1.as_bytes(), &Selection::all());
        let newer_text = SCRAPE_1
            .replace(
                r#"{code="200",verb="LIST",resource="pods"} 100"#,
                r#"{code="200",verb="LIST",resource="pods"} 160"#,
            )
            .replace(r#"{code="200",verb="GET",resource="nodes"} 50"#, r#"{code="200",verb="GET",resource="nodes"} 4"#)
            .replace(r#"{verb="LIST",le="1"} 100"#, r#"{verb="LIST",le="1"} 110"#)
            .replace(r#"{verb="LIST",le="+Inf"} 101"#, r#"{verb="LIST",le="+Inf"} 111"#)
            .replace(r#"_count{verb="LIST"} 101"#, r#"_count{verb="LIST"} 111"#)
            + "apiserver_request_total{code=\"429\",verb=\"LIST\",resource=\"pods\"} 7\n";
        let newer = Scrape::parse(newer_text.as_bytes(), &Selection::all());
        let inc = newer.increase_by(&older, "apiserver_request_total", &["code"], &any);
        assert_eq!(inc[&vec!["200".to_string()]], 60.0 + 4.0, "GET series reset: counts 4 from zero");
        assert_eq!(inc[&vec!["500".to_string()]], 0.0);
        assert_eq!(inc[&vec!["429".to_string()]], 7.0, "new series counts from zero");
        let h = newer.histogram_increase_by(&older, "apiserver_request_duration_seconds", &["verb"], &any);
        let list = &h[&vec!["LIST".to_string()]];
        assert_eq!(list.count, 10.0);
        // All 10 new LIST observations fell in (0.1, 1].
        assert!(list.quantile(0.5).unwrap() > 0.1);
    }

    #[test]
    fn le_anywhere_in_the_label_block() {
        let text = "# TYPE h histogram\nh_bucket{le=\"1\",a=\"x\"} 1\nh_bucket{a=\"x\",le=\"+Inf\"} 2\nh_count{a=\"x\"} 2\nh_sum{a=\"x\"} 1.5\n";
        let s = Scrape::parse(text.as_bytes(), &Selection::all());
        let f = s.family("h").unwrap();
        assert_eq!(f.series.len(), 1, "{:?}", f.series);
        assert_eq!(f.series[0].buckets.len(), 2);
        assert_eq!(key_without_le(r#"a="x",le="1""#), r#"a="x""#);
        assert_eq!(key_without_le(r#"le="1",a="x""#), r#"a="x""#);
        assert_eq!(key_without_le(r#"a="le=\"1\"",le="2""#), r#"a="le=\"1\"""#);
    }
}
