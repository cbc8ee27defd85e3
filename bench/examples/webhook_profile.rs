//! Reading the YAML, then the lockout analysis alone, 20 times each, on 500 generated
//! configurations or on FILE (for `perf record` and for comparing commits on the same input);
//! `--print` prints the generated set.
fn main() {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--print") {
        print!("{}", cpkit_bench::generated_webhook_configs(500));
        return;
    }
    let text = match arg {
        Some(path) => std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        None => cpkit_bench::generated_webhook_configs(500),
    };
    let started = std::time::Instant::now();
    for _ in 0..20 {
        std::hint::black_box(cpkit::yaml::documents("generated", &text).expect("parses"));
    }
    let parse = started.elapsed() / 20;
    let docs = cpkit::yaml::documents("generated", &text).expect("parses");
    let configs = cpkit::webhooks::configs_from_documents(&docs, "generated").expect("configs");
    let started = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..20 {
        n += cpkit::webhooks::analyse(&configs, &cpkit::webhooks::ClusterFacts::offline()).len();
    }
    println!("{n} findings; YAML {parse:?}, analysis {:?} each", started.elapsed() / 20);
}
