//! `kubectl cphealth` against `healthy-ha` with 50 ms added to every API request, side by side
//! with the runbooks' sequential checklist (bench/seed-quick-checklist.sh) on the same cluster;
//! then `large-cluster` (5000 nodes, 50k pods): wall time and peak RSS; then the same comparison on
//! the real control plane (kube-apiserver 1.36, etcd 3.6, kwok; no added latency), with the CPU
//! the whole machine and the API servers spent during each run (from /proc).
//!
//! cargo build --release --workspace --bins && target/release/cphealth_bench

use std::process::Command;
use std::time::Duration;

use cpkit_bench::{bin_dir, machine_cpu, measure, median, processes_cpu};
use testkit::apiserver::Fault;
use testkit::{DemoCluster, Scenario, World};

/// The runbook checklist against the cluster of `env`, reading etcd through its first member's pod.
fn checklist(
    script: &std::path::Path,
    path: &str,
    env: &[(String, String)],
    etcd: &testkit::etcd::EtcdCluster,
) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .env("PATH", path)
        .env("ETCD_POD", "etcd-cp-1")
        .env("ETCD_ENDPOINT", etcd.members[0].local_client_url())
        .env("ETCD_PKI", etcd.members[0].pki_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let cphealth = bin_dir().join("kubectl-cphealth");
    assert!(cphealth.exists(), "build first: cargo build --release --workspace --bins");
    let sample = std::env::var("SAMPLE").unwrap_or_else(|_| "250ms".into());

    let c = DemoCluster::start(Scenario::HealthyHa).expect("healthy-ha starts");
    c.apiserver().sim.add_fault(Fault {
        path_prefix: String::new(),
        latency: Some(Duration::from_millis(50)),
        ..Default::default()
    });
    let env = c.env();
    let etcd = c.etcd().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seed-quick-checklist.sh");
    let mut path = std::env::var("PATH").unwrap_or_default();
    path = format!("{}:{path}", bin_dir().display());
    let run_script = || measure(&mut checklist(&script, &path, &env, etcd)).expect("script runs");
    let run_cphealth = |sample: &str| {
        let mut cmd = Command::new(&cphealth);
        cmd.args(["--sample", sample]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        measure(&mut cmd).expect("cphealth runs")
    };
    // Warm kubectl's discovery cache and the page cache: the script gets its best case.
    run_script();
    run_cphealth(&sample);
    let script_times: Vec<Duration> = (0..runs.clamp(1, 3)).map(|_| run_script().wall).collect();
    let cp: Vec<_> = (0..runs).map(|_| run_cphealth(&sample)).collect();
    // One scrape, no rate window: what the script's checks see too (no rates at all).
    let single: Vec<_> = (0..runs).map(|_| run_cphealth("0")).collect();
    assert!(cp.iter().chain(&single).all(|m| m.code == Some(0)), "cphealth must pass on healthy-ha: {cp:?}");
    let script_median = median(script_times);
    let cp_median = median(cp.iter().map(|m| m.wall).collect());
    let single_median = median(single.iter().map(|m| m.wall).collect());
    drop(c);

    let large = DemoCluster::start(Scenario::LargeCluster).expect("large-cluster starts");
    let mut cmd = Command::new(&cphealth);
    cmd.args(["--sample", &sample]);
    for (k, v) in large.env() {
        cmd.env(k, v);
    }
    let big = measure(&mut cmd).expect("cphealth runs");
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| sequential runbook checklist, healthy-ha, +50 ms/request (median) | {:.2} s |",
        script_median.as_secs_f64()
    );
    println!(
        "| kubectl cphealth --sample {sample}, same cluster (median of {runs}) | {:.3} s |",
        cp_median.as_secs_f64()
    );
    println!("| speed-up (script / cphealth) | {:.1}x |", script_median.as_secs_f64() / cp_median.as_secs_f64());
    println!(
        "| kubectl cphealth --sample 0 (one scrape, no rates), same cluster (median of {runs}) | {:.3} s |",
        single_median.as_secs_f64()
    );
    println!(
        "| speed-up (script / cphealth --sample 0) | {:.1}x |",
        script_median.as_secs_f64() / single_median.as_secs_f64()
    );
    println!("| kubectl cphealth, large-cluster (5000 nodes, 50k pods): wall | {:.2} s |", big.wall.as_secs_f64());
    println!("| kubectl cphealth, large-cluster: peak RSS | {:.1} MiB |", big.max_rss_kib as f64 / 1024.0);
    drop(large);

    // The real control plane: the same script and cphealth --sample 0, alternating.
    let real = DemoCluster::start_in(World::Real, Scenario::HealthyHa).expect("the real healthy-ha starts");
    let env = real.env();
    let etcd = real.etcd().expect("etcd");
    let script_run = || measure(&mut checklist(&script, &path, &env, etcd)).expect("script runs");
    let cphealth_run = || {
        let mut cmd = Command::new(&cphealth);
        cmd.args(["--sample", "0"]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        measure(&mut cmd).expect("cphealth runs")
    };
    script_run();
    cphealth_run();
    // Where the two cores go: the whole machine's CPU and the API servers' during each run, and
    // what the idle cluster uses meanwhile (controllers, leases, kwok).
    let accounted = |run: &dyn Fn() -> cpkit_bench::Measured| {
        let (machine, servers) = (machine_cpu(), processes_cpu("kube-apiserver"));
        let m = run();
        (m, machine_cpu().saturating_sub(machine), processes_cpu("kube-apiserver").saturating_sub(servers))
    };
    let idle_started = (machine_cpu(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let idle_cores =
        machine_cpu().saturating_sub(idle_started.0).as_secs_f64() / idle_started.1.elapsed().as_secs_f64();
    let mut script_runs = Vec::new();
    let mut cphealth_runs = Vec::new();
    for _ in 0..runs.clamp(1, 3) {
        script_runs.push(accounted(&script_run));
        let m = accounted(&cphealth_run);
        assert_eq!(m.0.code, Some(0), "cphealth must pass on the real healthy-ha");
        cphealth_runs.push(m);
    }
    let med = |v: &[(cpkit_bench::Measured, Duration, Duration)],
               f: fn(&(cpkit_bench::Measured, Duration, Duration)) -> Duration| {
        median(v.iter().map(f).collect()).as_secs_f64()
    };
    let (s, c) = (med(&script_runs, |r| r.0.wall), med(&cphealth_runs, |r| r.0.wall));
    println!("| real control plane: sequential runbook checklist (median) | {s:.2} s |");
    println!("| real control plane: kubectl cphealth --sample 0 (median) | {c:.3} s |");
    println!("| real control plane: speed-up | {:.1}x |", s / c);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) as f64;
    let (sm, cm) = (med(&script_runs, |r| r.1), med(&cphealth_runs, |r| r.1));
    println!(
        "| real control plane: CPU of the whole machine during the script / during cphealth (median) | {sm:.2} s / {cm:.2} s |"
    );
    println!(
        "| real control plane: CPU of the three kube-apiservers during the script / during cphealth (median) | {:.3} s / {:.3} s |",
        med(&script_runs, |r| r.2),
        med(&cphealth_runs, |r| r.2)
    );
    println!("| real control plane: the idle cluster's own CPU | {idle_cores:.2} of {cores:.0} cores |");
    println!("| real control plane: cores busy while cphealth ran | {:.2} of {cores:.0} |", cm / c);
}
