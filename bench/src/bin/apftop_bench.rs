//! The cpkit metrics parser against Python's `prometheus_client` text parser on the same files —
//! the four real API server scrapes (tests/fixtures/clusters/*/apiserver.metrics) and a 20 MB
//! scrape built from their series — and apftop's CPU per refresh on the 20 MB one.
//!
//! pip install prometheus_client
//! cargo build --release -p cpkit-bench --bin apftop_bench && target/release/apftop_bench

use std::process::Command;
use std::time::Duration;

use cpkit::apf::stats::{aggregate, replica_stats, selection};
use cpkit::metrics::{Scrape, Selection};
use cpkit_bench::{large_scrape, real_scrapes};

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The best of `runs` CPU times of `f`.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let start = thread_cpu();
            std::hint::black_box(f());
            thread_cpu() - start
        })
        .min()
        .unwrap_or_default()
}

/// prometheus_client's parser on `path`: seconds for the best of 3, or None when absent.
fn python_seconds(path: &std::path::Path) -> Option<f64> {
    let script = "import sys, time\nfrom prometheus_client.parser import text_string_to_metric_families as parse\n\
                  data = open(sys.argv[1]).read()\nbest = None\nfor _ in range(3):\n    t = time.process_time()\n    n = sum(len(f.samples) for f in parse(data))\n    d = time.process_time() - t\n    best = d if best is None or d < best else best\nprint(best, n)\n";
    let out = Command::new("python3").args(["-c", script]).arg(path).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).split_whitespace().next()?.parse().ok()
}

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("apftop-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut inputs = real_scrapes();
    inputs.push(("20 MB built from them".into(), large_scrape(20 << 20)));
    println!("| input | size | cpkit, every family | prometheus_client | ratio |");
    println!("|---|---|---|---|---|");
    for (name, bytes) in &inputs {
        let mb = bytes.len() as f64 / 1e6;
        let ours = best(runs, || Scrape::parse(bytes, &Selection::all()).stats.samples);
        let path = dir.join("scrape.txt");
        std::fs::write(&path, bytes).expect("write scrape");
        let theirs = python_seconds(&path);
        let ours_mbs = mb / ours.as_secs_f64();
        match theirs {
            Some(t) => println!(
                "| {name} | {mb:.1} MB | {ours_mbs:.0} MB/s | {:.1} MB/s | {:.0}x |",
                mb / t,
                t / ours.as_secs_f64()
            ),
            None => println!(
                "| {name} | {mb:.1} MB | {ours_mbs:.0} MB/s | not installed (pip install prometheus_client) | - |"
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    // One apftop refresh on the 20 MB scrape: parse the flowcontrol families and the request
    // counter, compute rates and P99 against the previous scrape, sum over three replicas.
    let (_, big) = inputs.last().expect("inputs");
    let previous = Scrape::parse(big, &selection());
    let refresh = best(runs, || {
        let newer = Scrape::parse(big, &selection());
        let one = replica_stats(Some(&previous), &newer, 2.0);
        aggregate([&one, &one, &one]).levels.len()
    });
    println!();
    println!(
        "| apftop refresh on the 20 MB scrape (parse + rates + P99 + sum of 3 replicas), CPU, best of {runs} | {:.1} ms |",
        refresh.as_secs_f64() * 1000.0
    );
}
