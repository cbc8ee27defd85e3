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
        Selection { exact: names.iter().map(std::string::ToString::to_string).collect(), ..Default::default() }
    }

    pub fn with_families(mut self, names: &[&str]) -> Self {
        self.exact.extend(names.iter().map(std::string::ToString::to_string));
        self
    }

    pub fn with_prefixes(mut self, prefixes: &[&str]) -> Self {
        self.prefixes.extend(prefixes.iter().map(std::string::ToString::to_string));
        self
    }

    pub fn wants(&self, family: &str) -> bool {
        self.all || self.exact.contains(family) || self.prefixes.iter().any(|p| family.starts_with(p.as_str()))
    }

    /// The families named exactly, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.exact.iter().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// One series of a family (one label set, `le` excluded): its plain value, or for histograms
/// and summaries its buckets, sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Label names and (unescaped) values back to back; `ends` holds each pair's (name end,
    /// value end). Two allocations per series instead of two per label.
    text: Box<str>,
    ends: Box<[(u32, u32)]>,
    /// The sample named like the family (counters, gauges, summary quantiles).
    pub value: Option<f64>,
    pub sum: Option<f64>,
    pub count: Option<f64>,
    /// `_bucket` samples, cumulative, sorted by `le`.
    pub buckets: Vec<super::Bucket>,
}

/// A series' label set, comparable across scrapes.
pub(super) type SeriesId<'a> = (&'a str, &'a [(u32, u32)]);

impl Serialize for Series {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = serializer.serialize_struct("Series", 5)?;
        st.serialize_field("labels", &self.labels().collect::<Vec<_>>())?;
        st.serialize_field("value", &self.value)?;
        st.serialize_field("sum", &self.sum)?;
        st.serialize_field("count", &self.count)?;
        st.serialize_field("buckets", &self.buckets)?;
        st.end()
    }
}

impl Series {
    fn from_labels(labels: Labels<'_>) -> Series {
        Series::from_pairs(labels.raw().len(), labels.iter().filter(|(k, _)| *k != "le"))
    }

    /// A series from unescaped (name, value) pairs (the text's, or the protobuf exposition's);
    /// `capacity` is a guess of their total length.
    fn from_pairs<K: AsRef<str>, V: AsRef<str>>(capacity: usize, pairs: impl Iterator<Item = (K, V)>) -> Series {
        let mut text = String::with_capacity(capacity);
        let mut ends = Vec::new();
        for (k, v) in pairs {
            text.push_str(k.as_ref());
            let name_end = text.len() as u32;
            text.push_str(v.as_ref());
            ends.push((name_end, text.len() as u32));
        }
        Series { text: text.into_boxed_str(), ends: ends.into_boxed_slice(), ..Default::default() }
    }

    /// Labels in exposition order, without `le`.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0usize;
        self.ends.iter().map(move |&(n, v)| {
            let (n, v) = (n as usize, v as usize);
            let pair = (&self.text[start..n], &self.text[n..v]);
            start = v;
            pair
        })
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Identifies the label set (for matching series across scrapes).
    pub(super) fn identity(&self) -> SeriesId<'_> {
        (&self.text, &self.ends)
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
    index: FastMap<String, usize>,
}

impl Family {
    fn new(name: &str, kind: MetricType, help: String) -> Family {
        Family { name: name.to_string(), kind, help, series: Vec::new(), index: FastMap::default() }
    }

    fn series_mut(&mut self, key: &str, labels: Labels<'_>) -> &mut Series {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                self.series.push(Series::from_labels(labels));
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
    pub(super) families: FastMap<String, Family>,
    pub stats: ParseStats,
}

/// A filter over series (`|s| s.label("verb") != Some("WATCH")`).
pub type SampleFilter<'f> = &'f dyn Fn(&Series) -> bool;

/// Keeps every series.
pub fn any(_: &Series) -> bool {
    true
}

const SUFFIXES: [(&str, Field); 3] = [("_bucket", Field::Bucket), ("_sum", Field::Sum), ("_count", Field::Count)];

/// The label text without `le`, and `le`'s value when `le` is the last pair (the fast path:
/// client libraries write it last); otherwise the value is looked up by the caller.
fn split_le(raw: &str) -> (std::borrow::Cow<'_, str>, Option<&str>) {
    let body = raw.strip_suffix(',').unwrap_or(raw);
    if let Some(pos) = memchr::memmem::rfind(body.as_bytes(), b"le=\"")
        && (pos == 0 || body.as_bytes()[pos - 1] == b',')
        && body.ends_with('"')
    {
        let value = &body[pos + 4..body.len() - 1];
        if !value.contains('"') {
            let key = body[..pos].strip_suffix(',').unwrap_or(&body[..pos]);
            return (std::borrow::Cow::Borrowed(key), Some(value));
        }
    }
    let kept: Vec<&str> = split_pairs(raw).into_iter().filter(|p| !p.trim_start().starts_with("le=")).collect();
    (std::borrow::Cow::Owned(kept.join(",")), None)
}

/// FxHash (rustc's): label texts are hashed once per sample, and SipHash's DoS resistance buys
/// nothing for a scrape we asked for.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

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
        let mut families: Vec<Family> = Vec::new();
        let mut by_name: FastMap<String, usize> = FastMap::default();
        // The family the previous sample went to: consecutive samples share it.
        let mut last: Option<usize> = None;
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
                    if !by_name.contains_key(family) {
                        by_name.insert(family.to_string(), families.len());
                        families.push(Family::new(family, kind, help));
                    }
                }
                current = Some((family.to_string(), kind, wanted));
            }
            Event::Sample(sample) => {
                // Which family and field the sample belongs to.
                // Borrowed names: no allocation per sample.
                let (family_name, field): (&str, Field) = match current.as_ref() {
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
                            Some(_) if !*wanted => return,
                            Some(f) => (fam.as_str(), f),
                            None => {
                                if !selection.wants(sample.name) {
                                    return;
                                }
                                (sample.name, Field::Value)
                            }
                        }
                    }
                    _ => {
                        if !selection.wants(sample.name) {
                            return;
                        }
                        (sample.name, Field::Value)
                    }
                };
                let index = match last {
                    Some(i) if families[i].name == family_name => i,
                    _ => match by_name.get(family_name) {
                        Some(&i) => i,
                        None => {
                            by_name.insert(family_name.to_string(), families.len());
                            families.push(Family::new(family_name, MetricType::Untyped, String::new()));
                            families.len() - 1
                        }
                    },
                };
                last = Some(index);
                let family = &mut families[index];
                let (key, le) = if field == Field::Bucket {
                    split_le(sample.labels.raw())
                } else {
                    (sample.labels.raw().into(), None)
                };
                let series = family.series_mut(&key, sample.labels);
                match field {
                    Field::Value => series.value = Some(sample.value),
                    Field::Sum => series.sum = Some(sample.value),
                    Field::Count => series.count = Some(sample.value),
                    Field::Bucket => {
                        let le = match le {
                            Some(v) => super::text::parse_value(v),
                            None => sample.labels.get("le").and_then(|v| super::text::parse_value(&v)),
                        };
                        if let Some(le) = le {
                            match series.buckets.binary_search_by(|b| b.le.total_cmp(&le)) {
                                Ok(i) => series.buckets[i].count = sample.value,
                                Err(i) => series.buckets.insert(i, super::Bucket { le, count: sample.value }),
                            }
                        }
                    }
                }
            }
        });
        Scrape { families: families.into_iter().map(|f| (f.name.clone(), f)).collect(), stats }
    }

    /// Reads the protobuf exposition ([`super::protobuf`]), keeping the selected families.
    pub fn parse_protobuf(body: &[u8], selection: &Selection) -> Scrape {
        let mut families = FastMap::default();
        let stats = super::protobuf::decode(body, &|name| selection.wants(name), &mut |decoded| {
            let mut family = Family::new(decoded.name, decoded.kind, decoded.help.to_string());
            family.series = decoded
                .series
                .into_iter()
                .map(|d| Series {
                    value: d.value,
                    sum: d.sum,
                    count: d.count,
                    buckets: d.buckets.into_iter().map(|(le, count)| super::Bucket { le, count }).collect(),
                    ..Series::from_pairs(0, d.labels.iter().map(|(k, v)| (k, v)))
                })
                .collect();
            families.insert(family.name.clone(), family);
        });
        Scrape { families, stats }
    }

    /// The kept families, in no particular order.
    pub fn families(&self) -> impl Iterator<Item = &Family> {
        self.families.values()
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    pub fn has_family(&self, name: &str) -> bool {
        self.families.get(name).is_some_and(|f| !f.series.is_empty())
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
        let before: HashMap<SeriesId<'_>, f64> =
            older.values(sample_name).into_iter().filter(|(s, _)| filter(s)).map(|(s, v)| (s.identity(), v)).collect();
        let mut out = BTreeMap::new();
        for (s, v) in self.values(sample_name) {
            if !filter(s) {
                continue;
            }
            let old = before.get(&s.identity()).copied().unwrap_or(0.0);
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
        let before: HashMap<SeriesId<'_>, &Series> = older
            .families
            .get(family)
            .map(|f| f.series.iter().map(|s| (s.identity(), s)).collect())
            .unwrap_or_default();
        for s in now.series.iter().filter(|s| !s.buckets.is_empty() && filter(s)) {
            let current = s.histogram();
            let delta = match before.get(&s.identity()) {
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
        assert_eq!(hist.series[0].labels().collect::<Vec<_>>(), vec![("verb", "LIST")]);
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
        assert_eq!(s.values("apiserver_request_duration_seconds_count").len(), 2);
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
        assert_eq!(split_le(r#"a="x",le="1""#), (r#"a="x""#.into(), Some("1")));
        assert_eq!(split_le(r#"le="1",a="x""#), (r#"a="x""#.into(), None));
        assert_eq!(split_le(r#"a="le=\"1\"",le="2""#), (r#"a="le=\"1\"""#.into(), Some("2")));
        assert_eq!(split_le(r#"le="+Inf""#), ("".into(), Some("+Inf")));
    }
}
