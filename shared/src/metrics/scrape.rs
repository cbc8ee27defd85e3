//! An owned selection of a scrape: only the families a check asks for are kept, the rest of a
//! multi-MB exposition is skipped without allocation. Aggregations mirror the PromQL the runbooks
//! use: `sum by (...)`, `increase`, `histogram_quantile(sum by (le, ...) (increase(...)))`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::histogram::{Histogram, counter_delta};
use super::text::{Event, MetricType, ParseStats, parse_bytes};

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

/// One sample kept from a scrape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnedSample {
    /// The sample name (`x_bucket`, `x_sum`, `x_count` for histograms).
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl OwnedSample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The labels except `le` (the identity of a histogram series).
    fn series_key(&self, drop_le: bool) -> Vec<(String, String)> {
        let mut key: Vec<(String, String)> =
            self.labels.iter().filter(|(k, _)| !(drop_le && k == "le")).cloned().collect();
        key.sort();
        key
    }

    fn group_key(&self, by: &[&str]) -> Vec<String> {
        by.iter().map(|l| self.label(l).unwrap_or("").to_string()).collect()
    }
}

/// A metric family with its kept samples.
#[derive(Debug, Clone, Serialize)]
pub struct Family {
    pub name: String,
    pub kind: MetricType,
    pub help: String,
    pub samples: Vec<OwnedSample>,
}

/// The kept part of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    families: HashMap<String, Family>,
    pub stats: ParseStats,
}

/// A filter over samples (`|s| s.label("verb") != Some("WATCH")`).
pub type SampleFilter<'f> = &'f dyn Fn(&OwnedSample) -> bool;

/// Keeps every sample.
pub fn any(_: &OwnedSample) -> bool {
    true
}

const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

impl Scrape {
    /// Parses an exposition, keeping the selected families.
    pub fn parse(text: &[u8], selection: &Selection) -> Scrape {
        let mut families: HashMap<String, Family> = HashMap::new();
        // The family announced by the last TYPE/HELP line, and whether it is wanted.
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
                    families.entry(family.to_string()).or_insert_with(|| Family {
                        name: family.to_string(),
                        kind,
                        help,
                        samples: Vec::new(),
                    });
                }
                current = Some((family.to_string(), kind, wanted));
            }
            Event::Sample(sample) => {
                let belongs = current.as_ref().is_some_and(|(fam, kind, _)| {
                    sample.name == fam
                        || (matches!(kind, MetricType::Histogram | MetricType::Summary)
                            && sample.name.len() > fam.len()
                            && sample.name.starts_with(fam.as_str())
                            && HISTOGRAM_SUFFIXES.contains(&&sample.name[fam.len()..]))
                });
                let family_name = if belongs {
                    let (fam, _, wanted) = current.as_ref().expect("checked above");
                    if !wanted {
                        return;
                    }
                    fam.clone()
                } else {
                    if !selection.wants(sample.name) {
                        return;
                    }
                    sample.name.to_string()
                };
                let family = families.entry(family_name.clone()).or_insert_with(|| Family {
                    name: family_name,
                    kind: MetricType::Untyped,
                    help: String::new(),
                    samples: Vec::new(),
                });
                family.samples.push(OwnedSample {
                    name: sample.name.to_string(),
                    labels: sample.labels.iter().map(|(k, v)| (k.to_string(), v.into_owned())).collect(),
                    value: sample.value,
                });
            }
        });
        Scrape { families, stats }
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    pub fn has_family(&self, name: &str) -> bool {
        self.families.get(name).is_some_and(|f| !f.samples.is_empty())
    }

    pub fn family_names(&self) -> impl Iterator<Item = &str> {
        self.families.keys().map(String::as_str)
    }

    /// Samples named `sample_name` (a family name, or a histogram's `_bucket`/`_sum`/`_count`).
    pub fn samples<'s>(&'s self, sample_name: &'s str) -> impl Iterator<Item = &'s OwnedSample> + 's {
        let family = self.families.get(sample_name).or_else(|| {
            HISTOGRAM_SUFFIXES
                .iter()
                .find_map(|suffix| sample_name.strip_suffix(suffix).and_then(|f| self.families.get(f)))
        });
        family.into_iter().flat_map(move |f| f.samples.iter().filter(move |s| s.name == sample_name))
    }

    /// `sum(sample_name{filter})`, `None` when no series matched.
    pub fn sum(&self, sample_name: &str, filter: SampleFilter<'_>) -> Option<f64> {
        let mut total = None;
        for s in self.samples(sample_name).filter(|s| filter(s)) {
            *total.get_or_insert(0.0) += s.value;
        }
        total
    }

    /// `sum by (by...) (sample_name{filter})`.
    pub fn sum_by(&self, sample_name: &str, by: &[&str], filter: SampleFilter<'_>) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples(sample_name).filter(|s| filter(s)) {
            *out.entry(s.group_key(by)).or_insert(0.0) += s.value;
        }
        out
    }

    /// `max by (by...)`.
    pub fn max_by(&self, sample_name: &str, by: &[&str], filter: SampleFilter<'_>) -> BTreeMap<Vec<String>, f64> {
        let mut out: BTreeMap<Vec<String>, f64> = BTreeMap::new();
        for s in self.samples(sample_name).filter(|s| filter(s)) {
            let e = out.entry(s.group_key(by)).or_insert(f64::NEG_INFINITY);
            if s.value > *e {
                *e = s.value;
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
        for (key, h) in self.histogram_series(family, filter) {
            let group = by
                .iter()
                .map(|l| key.iter().find(|(k, _)| k == l).map(|(_, v)| v.clone()).unwrap_or_default())
                .collect();
            out.entry(group).or_default().merge(&h);
        }
        out
    }

    /// Every series of a histogram family, keyed by its labels (without `le`).
    fn histogram_series(&self, family: &str, filter: SampleFilter<'_>) -> HashMap<Vec<(String, String)>, Histogram> {
        let mut series: HashMap<Vec<(String, String)>, Histogram> = HashMap::new();
        let Some(f) = self.families.get(family) else {
            return series;
        };
        for s in f.samples.iter().filter(|s| filter(s)) {
            let suffix = &s.name[family.len().min(s.name.len())..];
            match suffix {
                "_bucket" => {
                    let Some(le) = s.label("le").and_then(super::text::parse_value) else {
                        continue;
                    };
                    series.entry(s.series_key(true)).or_default().add_bucket(le, s.value);
                }
                "_sum" => series.entry(s.series_key(true)).or_default().sum += s.value,
                "_count" => series.entry(s.series_key(true)).or_default().count += s.value,
                _ => {}
            }
        }
        series
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
        let before: HashMap<Vec<(String, String)>, f64> =
            older.samples(sample_name).filter(|s| filter(s)).map(|s| (s.series_key(false), s.value)).collect();
        let mut out = BTreeMap::new();
        for s in self.samples(sample_name).filter(|s| filter(s)) {
            let old = before.get(&s.series_key(false)).copied().unwrap_or(0.0);
            *out.entry(s.group_key(by)).or_insert(0.0) += counter_delta(s.value, old);
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
        let before = older.histogram_series(family, filter);
        let mut out: BTreeMap<Vec<String>, Histogram> = BTreeMap::new();
        for (key, now) in self.histogram_series(family, filter) {
            let delta = match before.get(&key) {
                Some(old) => now.delta_since(old),
                None => now,
            };
            let group = by
                .iter()
                .map(|l| key.iter().find(|(k, _)| k == l).map(|(_, v)| v.clone()).unwrap_or_default())
                .collect();
            out.entry(group).or_default().merge(&delta);
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
        assert_eq!(all.family("apiserver_request_duration_seconds").unwrap().kind, MetricType::Histogram);
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
        assert_eq!(s.samples("apiserver_request_duration_seconds_count").count(), 2);
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
}
