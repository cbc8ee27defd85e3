//! `kubectl webhookguard scan -f` on 500 generated webhook configurations (from the real
//! manifests in tests/fixtures/webhooks/): CPU time of the whole process (start, YAML parsing,
//! analysis, output), side by side with PyYAML's C loader only parsing the same file (a floor
//! for any Python tool), plus the in-process parse + analysis time.
//!
//! cargo build --release --workspace --bins && target/release/webhookguard_bench

use std::process::Command;
use std::time::{Duration, Instant};

use cpkit_bench::{bin_dir, generated_webhook_configs, measure, median};

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(9);
    let count: usize = std::env::var("CONFIGS").ok().and_then(|r| r.parse().ok()).unwrap_or(500);
    let webhookguard = bin_dir().join("kubectl-webhookguard");
    assert!(webhookguard.exists(), "build first: cargo build --release --workspace --bins");
    let dir = std::env::temp_dir().join(format!("webhookguard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("configs.yaml");
    let text = generated_webhook_configs(count);
    std::fs::write(&file, &text).expect("write configs");

    let scan = || {
        let mut cmd = Command::new(&webhookguard);
        cmd.args(["scan", "-f"]).arg(&file).args(["-o", "json"]);
        measure(&mut cmd).expect("webhookguard runs")
    };
    let pyyaml = || {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", "import sys, yaml; list(yaml.load_all(open(sys.argv[1]), Loader=yaml.CSafeLoader))"])
            .arg(&file);
        measure(&mut cmd).expect("python3 runs")
    };
    scan();
    let ours: Vec<_> = (0..runs).map(|_| scan()).collect();
    assert!(ours.iter().all(|m| m.code.is_some_and(|c| c <= 2)), "scan must finish with a verdict: {ours:?}");
    let has_pyyaml = pyyaml().code == Some(0);
    let peer = if has_pyyaml { Some(median((0..runs).map(|_| pyyaml().cpu).collect())) } else { None };

    // In process: parse + analyse only.
    let rounds = 20;
    let started = Instant::now();
    let mut findings = 0;
    for _ in 0..rounds {
        let docs = cpkit::yaml::documents("generated", &text).expect("parses");
        let configs = cpkit::webhooks::configs_from_documents(&docs, "generated").expect("configs");
        findings = cpkit::webhooks::analyse(&configs, &cpkit::webhooks::ClusterFacts::offline()).len();
    }
    let in_process = started.elapsed() / rounds;
    let _ = std::fs::remove_dir_all(&dir);

    let cpu = median(ours.iter().map(|m| m.cpu).collect());
    let wall = median(ours.iter().map(|m| m.wall).collect());
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| measurement ({count} configurations, {:.1} MB of YAML, {findings} findings) | value |",
        text.len() as f64 / 1e6
    );
    println!("|---|---|");
    println!("| kubectl-webhookguard scan -f -o json: CPU, median of {runs} | {:.1} ms |", ms(cpu));
    println!("| same: wall | {:.1} ms |", ms(wall));
    println!("| same: peak RSS | {:.1} MiB |", median_rss(&ours) as f64 / 1024.0);
    println!("| parse + analyse in process | {:.1} ms |", ms(in_process));
    match peer {
        Some(p) => {
            println!("| python3 PyYAML CSafeLoader, parsing only: CPU, median of {runs} | {:.1} ms |", ms(p));
            println!("| ratio (PyYAML parse / webhookguard full scan) | {:.1}x |", p.as_secs_f64() / cpu.as_secs_f64());
        }
        None => println!("| python3 with PyYAML | not installed: no peer figure |"),
    }
}

fn median_rss(v: &[cpkit_bench::Measured]) -> i64 {
    let mut r: Vec<i64> = v.iter().map(|m| m.max_rss_kib).collect();
    r.sort();
    r[r.len() / 2]
}
