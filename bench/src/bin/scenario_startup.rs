//! How long every test-kit scenario takes to start (goal: under 10 s each, data loads for
//! benchmarks aside), and that stopping it leaves no process behind.
//!
//! cargo build --profile demo -p cpkit-bench --bin scenario_startup && target/demo/scenario_startup

use std::time::Instant;

use testkit::{DemoCluster, Scenario};

fn etcd_processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "etcd"))
                .count()
        })
        .unwrap_or(0)
}

fn main() {
    let before = etcd_processes();
    println!("| scenario | start-up | etcd processes left after stop |");
    println!("|---|---|---|");
    let mut worst = 0.0f64;
    for s in Scenario::all() {
        let started = Instant::now();
        let c = DemoCluster::start(*s).expect("scenario starts");
        let took = started.elapsed().as_secs_f64();
        worst = worst.max(took);
        drop(c);
        std::thread::sleep(std::time::Duration::from_millis(300));
        println!("| {} | {took:.1} s | {} |", s.name(), etcd_processes().saturating_sub(before));
    }
    println!("| slowest | {worst:.1} s | |");
}
