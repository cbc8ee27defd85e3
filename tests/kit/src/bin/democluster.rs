//! `democluster --scenario healthy-ha`: starts a scenario — on the simulated API server over real
//! etcd (the default, fast), or with `--world real` on the real control plane built by
//! `dev/build-controlplane` — writes a kubeconfig, prints how to use it, and runs until Ctrl-C,
//! cleaning up after itself.

use std::path::PathBuf;

use clap::Parser;
use testkit::{DemoCluster, Options, Scenario, World};

/// Run a local control plane for trying the plugins.
#[derive(Parser)]
#[command(name = "democluster", version)]
struct Args {
    /// The scenario to run
    #[arg(long, value_enum, default_value = "healthy-ha")]
    scenario: Scenario,

    /// sim: simulated kube-apiserver over real etcd; real: kube-apiserver, controller-manager,
    /// scheduler, etcd 3.6 and kwok nodes built from their Go modules
    #[arg(long, value_enum, default_value = "sim")]
    world: World,

    /// Kubernetes minor version to simulate (captures of 1.31–1.34 ground the data; sim only)
    #[arg(long, default_value_t = 33)]
    minor: u32,

    /// Directory for the kubeconfig (default: a temporary directory, removed on exit)
    #[arg(long)]
    dir: Option<PathBuf>,

    /// The replicas advertise addresses that accept connections and never answer (as through a
    /// bastion or a private endpoint)
    #[arg(long)]
    unreachable_replicas: bool,

    /// Print the environment (export KUBECONFIG=...) and keep running without other output
    #[arg(long)]
    quiet: bool,

    /// Add this latency to every API request (e.g. 50ms), like a distant or loaded API server
    /// (sim only)
    #[arg(long, value_parser = cpkit::duration::duration_arg)]
    latency: Option<std::time::Duration>,

    /// List the scenarios and exit
    #[arg(long)]
    list: bool,
}

fn main() {
    let args = Args::parse();
    if args.list {
        use clap::ValueEnum;
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for s in Scenario::all() {
            let help = s.to_possible_value().and_then(|v| v.get_help().map(|h| h.to_string())).unwrap_or_default();
            let worlds = if World::Real.supports(*s) { "sim, real" } else { "sim" };
            // A closed pipe (`| head`) ends the list quietly.
            if writeln!(out, "{:<24} {:<10} {help}", s.name(), worlds).is_err() {
                break;
            }
        }
        return;
    }
    let started = std::time::Instant::now();
    if !args.world.supports(args.scenario) {
        eprintln!(
            "democluster: scenario {} runs on the simulated API server only (--world sim): one machine cannot produce it for real.",
            args.scenario.name()
        );
        std::process::exit(64);
    }
    let options = Options {
        world: args.world,
        minor: args.minor,
        dir: args.dir.clone(),
        unreachable_replicas: args.unreachable_replicas,
        etcd: None,
    };
    let cluster = match DemoCluster::start_with(args.scenario, options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("democluster: cannot start scenario {} ({} world): {e}", args.scenario.name(), args.world.name());
            std::process::exit(1);
        }
    };
    if let Some(latency) = args.latency {
        match args.world {
            World::Sim => cluster
                .apiserver()
                .sim
                .add_fault(testkit::apiserver::Fault { latency: Some(latency), ..Default::default() }),
            World::Real => eprintln!("democluster: --latency applies to the simulated API server only; ignored"),
        }
    }
    println!("export KUBECONFIG={}", cluster.kubeconfig.display());
    if !args.quiet {
        let server = match cluster.real() {
            Some(r) => r.lb_url.clone(),
            None => cluster.apiserver().lb_url(),
        };
        eprintln!(
            "democluster: scenario {} ({} world) is up in {:.1}s (API server {server}, {} etcd members). Ctrl-C to stop.",
            args.scenario.name(),
            args.world.name(),
            started.elapsed().as_secs_f64(),
            cluster.etcd().map(|e| e.members.len()).unwrap_or(0)
        );
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = ctrlc_channel(tx);
    let _ = rx.recv();
    if !args.quiet {
        eprintln!("democluster: stopping");
    }
    drop(cluster);
}

/// Delivers SIGINT/SIGTERM as a message (no extra crate: a tiny runtime waits for the signal).
fn ctrlc_channel(tx: std::sync::mpsc::Sender<()>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        });
        let _ = tx.send(());
    });
    Ok(())
}
