//! The cpkit Prometheus text parser on real API server scrapes (tests/fixtures/clusters/*/
//! apiserver.metrics) and on a 20 MB scrape built from them.
//!
//! `cargo bench -p cpkit-bench --bench metrics_parse`

use cpkit::metrics::{Event, Scrape, Selection};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn parse_all_samples(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics_parse");
    let mut inputs = cpkit_bench::real_scrapes();
    inputs.push(("20MB".into(), cpkit_bench::large_scrape(20 << 20)));
    for (name, bytes) in &inputs {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("every_sample/{name}"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                let stats = cpkit::metrics::text::parse_bytes(bytes, &mut |e| {
                    if let Event::Sample(s) = e {
                        sum += s.value;
                    }
                });
                (stats.samples, sum)
            })
        });
        // What a check does: keep a handful of families, skip the rest.
        let selection = Selection::families(&[
            "apiserver_request_duration_seconds",
            "apiserver_request_total",
            "apiserver_current_inflight_requests",
        ])
        .with_prefixes(&["apiserver_flowcontrol_"]);
        group.bench_function(format!("selected_families/{name}"), |b| {
            b.iter(|| Scrape::parse(bytes, &selection).stats.samples)
        });
    }
    group.finish();
}

criterion_group!(benches, parse_all_samples);
criterion_main!(benches);
