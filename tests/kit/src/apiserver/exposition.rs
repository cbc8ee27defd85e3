//! `/metrics` in Prometheus's protobuf exposition, for clients that ask for it as real API servers
//! answer them (client_golang's promhttp negotiates on `Accept`): the rendered text, re-encoded
//! as delimited `MetricFamily` messages (prometheus/client_model `metrics.proto`, v0.6 field
//! numbers). The `+Inf` bucket is left out, as client_golang leaves it out.

use cpkit::metrics::{MetricType, Scrape, Selection, Series};

/// Whether an `Accept` header asks for the protobuf exposition before text.
pub fn wants_protobuf(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| cpkit::metrics::protobuf::is_protobuf(first.trim()))
}

/// The answer, with client_golang's `Content-Type` for it.
pub fn protobuf_response(text: &str) -> super::http::Resp {
    http::Response::builder()
        .status(200)
        .header(
            "Content-Type",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores",
        )
        .body(http_body_util::Full::new(bytes::Bytes::from(protobuf_from_text(text))))
        .expect("valid response")
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn double_field(out: &mut Vec<u8>, field: u64, value: f64) {
    varint(out, (field << 3) | 1);
    out.extend_from_slice(&value.to_bits().to_le_bytes());
}

fn count_field(out: &mut Vec<u8>, field: u64, value: f64) {
    varint(out, field << 3);
    varint(out, value.max(0.0) as u64);
}

fn labels(out: &mut Vec<u8>, series: &Series, skip: &str) {
    for (name, value) in series.labels().filter(|(n, _)| *n != skip) {
        let mut pair = Vec::new();
        bytes_field(&mut pair, 1, name.as_bytes());
        bytes_field(&mut pair, 2, value.as_bytes());
        bytes_field(out, 1, &pair);
    }
}

/// The text exposition `text`, re-encoded.
pub fn protobuf_from_text(text: &str) -> Vec<u8> {
    let scrape = Scrape::parse(text.as_bytes(), &Selection::all());
    let mut out = Vec::new();
    for family in scrape.families() {
        let mut message = Vec::new();
        bytes_field(&mut message, 1, family.name.as_bytes());
        bytes_field(&mut message, 2, family.help.as_bytes());
        let kind = match family.kind {
            MetricType::Counter => 0,
            MetricType::Gauge => 1,
            MetricType::Summary => 2,
            MetricType::Untyped => 3,
            MetricType::Histogram => 4,
        };
        varint(&mut message, 3 << 3);
        varint(&mut message, kind);
        for series in family.series.iter().filter(|s| s.label("quantile").is_none()) {
            let mut metric = Vec::new();
            labels(&mut metric, series, "");
            let mut inner = Vec::new();
            let field = match family.kind {
                MetricType::Summary => {
                    count_field(&mut inner, 1, series.count.unwrap_or(0.0));
                    double_field(&mut inner, 2, series.sum.unwrap_or(0.0));
                    // The quantile series with this series' other labels.
                    let same = |q: &&Series| q.labels().filter(|(n, _)| *n != "quantile").eq(series.labels());
                    for q in family.series.iter().filter(|q| q.label("quantile").is_some()).filter(same) {
                        let mut quantile = Vec::new();
                        let at = q.label("quantile").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                        double_field(&mut quantile, 1, at);
                        double_field(&mut quantile, 2, q.value.unwrap_or(f64::NAN));
                        bytes_field(&mut inner, 3, &quantile);
                    }
                    4
                }
                MetricType::Histogram => {
                    count_field(&mut inner, 1, series.count.unwrap_or(0.0));
                    double_field(&mut inner, 2, series.sum.unwrap_or(0.0));
                    for b in series.buckets.iter().filter(|b| b.le.is_finite()) {
                        let mut bucket = Vec::new();
                        count_field(&mut bucket, 1, b.count);
                        double_field(&mut bucket, 2, b.le);
                        bytes_field(&mut inner, 3, &bucket);
                    }
                    7
                }
                kind => {
                    double_field(&mut inner, 1, series.value.unwrap_or(f64::NAN));
                    match kind {
                        MetricType::Counter => 3,
                        MetricType::Gauge => 2,
                        _ => 5,
                    }
                }
            };
            bytes_field(&mut metric, field, &inner);
            bytes_field(&mut message, 4, &metric);
        }
        varint(&mut out, message.len() as u64);
        out.extend_from_slice(&message);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Re-encoded and read back by cpkit, the text keeps its families, series and values.
    #[test]
    fn text_re_encoded_reads_back_the_same() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{verb=\"GET\"} 3\n\
# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 4\nh_sum 2.5\nh_count 4\n\
# TYPE s summary\ns{quantile=\"0.99\"} 0.2\ns_sum 1\ns_count 2\n# TYPE g gauge\ng 7\n";
        let back = Scrape::parse_protobuf(&protobuf_from_text(text), &Selection::all());
        let text = Scrape::parse(text.as_bytes(), &Selection::all());
        assert_eq!(back.stats.first_error, None);
        for name in ["a_total", "h", "s", "g"] {
            let (a, b) = (text.family(name).unwrap(), back.family(name).unwrap());
            assert_eq!((a.kind, &a.help), (b.kind, &b.help), "{name}");
            assert_eq!(serde_json::to_value(&a.series).unwrap(), serde_json::to_value(&b.series).unwrap(), "{name}");
        }
        assert!(wants_protobuf(cpkit::metrics::protobuf::ACCEPT));
        assert!(!wants_protobuf("text/plain;version=0.0.4,application/vnd.google.protobuf;encoding=delimited"));
    }
}
