//! Parses the 1.34 capture repeatedly with every family kept (for `perf record`).
fn main() {
    let bytes =
        std::fs::read(cpkit_bench::fixtures_dir().join("clusters/k8s-1.34/apiserver.metrics")).expect("fixture");
    let mut n = 0;
    for _ in 0..100 {
        n += cpkit::metrics::Scrape::parse(&bytes, &cpkit::metrics::Selection::all()).stats.samples;
    }
    println!("{n}");
}
