//! `kubectl-etcdsnap save --via direct` (plain and `--compress zstd`) against `etcdctl snapshot
//! save`; `save --to s3://` against `etcdctl snapshot save` followed by `aws s3 cp` to the same
//! S3 server (moto on loopback, started afresh for each run; and MinIO the same way, over HTTP
//! and over HTTPS with a private CA, when `dev/build-tools minio` has built it); and `etcdsnap status` against
//! `etcdctl snapshot status`, side by side on the same real etcd (TLS, loopback) holding at least
//! 1 GiB of Kubernetes-shaped values (the captures' pods, `Filler::Pods`): wall time, peak RSS
//! and CPU time, median of RUNS (for the S3 pairs also the CPU that etcd and the store spent
//! meanwhile: the two cores are shared); the status numbers must be identical.
//!
//! cargo build --profile demo --workspace --bins -p cpkit-bench && dev/build-tools &&
//! dev/build-tools minio && target/demo/etcdsnap_bench
//! (SIZE_MB=1100 RUNS=3 VALUE_KB=16 by default; VALUE_KB=2 gives many more, smaller keys;
//! FILLER=letters fills the values with pseudo-random letters instead)

use std::process::Command;
use std::time::Duration;

use cpkit_bench::{Measured, bin_dir, measure, median, process_cpu};
use testkit::etcd::{EtcdCluster, EtcdOptions};
use testkit::etcd_data::{Filler, LoadSpec, load};
use testkit::s3::Serving;

/// One side of an S3 pair: its client processes, and the CPU etcd and the store spent meanwhile.
struct Accounted {
    client: Measured,
    etcd_cpu: Duration,
    store_cpu: Duration,
}

fn median_of(v: &[Measured], f: impl Fn(&Measured) -> f64) -> f64 {
    let mut x: Vec<f64> = v.iter().map(f).collect();
    x.sort_by(f64::total_cmp);
    x[x.len() / 2]
}

/// `etcdsnap_bench --load ENDPOINT CACERT CERT KEY SIZE_MB`: writes the data in a child process,
/// so the measuring process stays small (a spawned child inherits its parent's peak RSS).
fn load_child(args: &[String]) {
    let tls = testkit::etcd::ClientTls {
        cacert: args[1].clone().into(),
        cert: args[2].clone().into(),
        key: args[3].clone().into(),
    };
    let size_mb: u64 = args[4].parse().expect("size");
    let value_kb: usize = args.get(5).and_then(|v| v.parse().ok()).unwrap_or(16);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let client = testkit::etcd::connect_client(std::slice::from_ref(&args[0]), &tls).await.expect("client");
        let mut spec = LoadSpec::sized(size_mb << 20);
        // Kubernetes objects are a few KiB: smaller values mean more keys and pages for the same size.
        spec.value_size = value_kb << 10;
        spec.pods_per_namespace = ((size_mb << 20) as usize / spec.value_size).div_ceil(spec.namespaces);
        spec.filler = if args.get(6).map(String::as_str) == Some("letters") { Filler::Letters } else { Filler::Pods };
        load(&client, &spec).await.expect("load");
    });
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--load") {
        load_child(&argv[2..]);
        return;
    }
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let size_mb: u64 = std::env::var("SIZE_MB").ok().and_then(|r| r.parse().ok()).unwrap_or(1100);
    let value_kb: usize = std::env::var("VALUE_KB").ok().and_then(|r| r.parse().ok()).unwrap_or(16);
    let etcdsnap = bin_dir().join("kubectl-etcdsnap");
    assert!(etcdsnap.exists(), "build first: cargo build --profile demo --workspace --bins");
    let mut etcd = EtcdCluster::start(EtcdOptions { quota_backend_bytes: 8 << 30, ..EtcdOptions::members(1) })
        .expect("etcd starts");
    etcd.wait_healthy(Duration::from_secs(20)).expect("etcd healthy");
    let started = std::time::Instant::now();
    let tls = etcd.client_tls();
    let endpoint = etcd.members[0].local_client_url();
    let status = Command::new(std::env::current_exe().expect("self"))
        .arg("--load")
        .arg(&endpoint)
        .args([&tls.cacert, &tls.cert, &tls.key])
        .arg(size_mb.to_string())
        .arg(value_kb.to_string())
        .arg(std::env::var("FILLER").unwrap_or_else(|_| "pods".into()))
        .status()
        .expect("loader runs");
    assert!(status.success(), "loading failed");
    eprintln!("loaded {size_mb} MiB in {:.0}s", started.elapsed().as_secs_f64());
    let dir = tempfile::Builder::new().prefix("etcdsnap-bench-").tempdir_in(etcd.root()).expect("temp dir");
    let ours_file = dir.path().join("ours.db");
    let theirs_file = dir.path().join("theirs.db");
    let save_ours = || {
        let _ = std::fs::remove_file(&ours_file);
        let _ = std::fs::remove_file(dir.path().join("ours.db.json"));
        let mut cmd = Command::new(&etcdsnap);
        cmd.arg("save").arg(&ours_file).args(["--via", "direct", "--endpoints", &endpoint]);
        cmd.arg("--etcd-cacert").arg(&tls.cacert).arg("--etcd-cert").arg(&tls.cert).arg("--etcd-key").arg(&tls.key);
        let m = measure(&mut cmd).expect("etcdsnap runs");
        assert_eq!(m.code, Some(0), "etcdsnap save failed");
        m
    };
    let save_theirs = || {
        let _ = std::fs::remove_file(&theirs_file);
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3").args(["snapshot", "save"]).arg(&theirs_file);
        cmd.arg(format!("--endpoints={endpoint}")).arg(format!("--cacert={}", tls.cacert.display()));
        cmd.arg(format!("--cert={}", tls.cert.display())).arg(format!("--key={}", tls.key.display()));
        let m = measure(&mut cmd).expect("etcdctl runs");
        assert_eq!(m.code, Some(0), "etcdctl snapshot save failed");
        m
    };
    let zst_file = dir.path().join("ours.db.zst");
    let save_compressed = || {
        let _ = std::fs::remove_file(&zst_file);
        let _ = std::fs::remove_file(dir.path().join("ours.db.zst.json"));
        let mut cmd = Command::new(&etcdsnap);
        cmd.arg("save").arg(&zst_file).args(["--via", "direct", "--endpoints", &endpoint, "--compress", "zstd"]);
        cmd.arg("--etcd-cacert").arg(&tls.cacert).arg("--etcd-cert").arg(&tls.cert).arg("--etcd-key").arg(&tls.key);
        let m = measure(&mut cmd).expect("etcdsnap runs");
        assert_eq!(m.code, Some(0), "etcdsnap save --compress zstd failed");
        m
    };
    // Object storage: one pass streaming into the store against a save, then the AWS CLI's copy.
    // The version dev/build-tools installs, read from the script.
    let aws = testkit::binaries::build_tools_dir("awscli").expect("the AWS CLI (dev/build-tools)").join("bin/aws");
    let to_s3_ours = |store: &testkit::s3::S3Server| {
        let mut cmd = Command::new(&etcdsnap);
        cmd.arg("save").args(["--via", "direct", "--endpoints", &endpoint]);
        cmd.arg("--to").arg(format!("s3://{}/ours/", testkit::s3::BUCKET));
        cmd.arg("--etcd-cacert").arg(&tls.cacert).arg("--etcd-cert").arg(&tls.cert).arg("--etcd-key").arg(&tls.key);
        cmd.envs(store.env());
        let m = measure(&mut cmd).expect("etcdsnap runs");
        assert_eq!(m.code, Some(0), "etcdsnap save --to s3:// failed");
        m
    };
    let to_s3_theirs = |store: &testkit::s3::S3Server| {
        let saved = save_theirs();
        let mut cmd = Command::new(&aws);
        cmd.args(["s3", "cp"]).arg(&theirs_file).arg(format!("s3://{}/theirs/snapshot.db", testkit::s3::BUCKET));
        cmd.envs(store.env());
        let copied = measure(&mut cmd).expect("aws runs");
        assert_eq!(copied.code, Some(0), "aws s3 cp failed");
        Measured {
            wall: saved.wall + copied.wall,
            cpu: saved.cpu + copied.cpu,
            max_rss_kib: saved.max_rss_kib.max(copied.max_rss_kib),
            code: Some(0),
        }
    };
    // The CPU time etcd and the store spent while one side ran: where the two cores went.
    let etcd_pids = etcd.pids();
    let accounted = |store: &testkit::s3::S3Server, run: &dyn Fn(&testkit::s3::S3Server) -> Measured| {
        let servers_cpu = || {
            let etcd_cpu: Duration = etcd_pids.iter().map(|&p| process_cpu(p)).sum();
            (etcd_cpu, store.pid().map(process_cpu).unwrap_or_default())
        };
        let before = servers_cpu();
        let client = run(store);
        let after = servers_cpu();
        Accounted { client, etcd_cpu: after.0.saturating_sub(before.0), store_cpu: after.1.saturating_sub(before.1) }
    };
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut compressed = Vec::new();
    let mut s3_ours = Vec::new();
    let mut s3_theirs = Vec::new();
    let with_minio = testkit::binaries::build_tools_dir("minio").is_ok();
    if !with_minio {
        eprintln!("MinIO is not built (dev/build-tools minio): measuring against moto only");
    }
    let mut minio_ours = Vec::new();
    let mut minio_theirs = Vec::new();
    let mut minio_tls_ours = Vec::new();
    let mut minio_tls_theirs = Vec::new();
    for _ in 0..runs {
        theirs.push(save_theirs());
        ours.push(save_ours());
        compressed.push(save_compressed());
        // A fresh store for each pair: moto keeps every object in memory.
        let store = testkit::s3::S3Server::start().expect("moto starts (dev/build-tools installs it)");
        s3_theirs.push(accounted(&store, &to_s3_theirs));
        s3_ours.push(accounted(&store, &to_s3_ours));
        drop(store);
        if with_minio {
            let store = testkit::s3::S3Server::start_minio(Serving::Http).expect("MinIO starts");
            minio_theirs.push(accounted(&store, &to_s3_theirs));
            minio_ours.push(accounted(&store, &to_s3_ours));
            drop(store);
            // Both clients trust its CA through AWS_CA_BUNDLE.
            let store = testkit::s3::S3Server::start_minio(Serving::Https).expect("MinIO starts with TLS");
            minio_tls_theirs.push(accounted(&store, &to_s3_theirs));
            minio_tls_ours.push(accounted(&store, &to_s3_ours));
        }
    }
    let status_ours = |digest: bool| {
        let mut cmd = Command::new(&etcdsnap);
        cmd.arg("status").arg(&theirs_file).args(["-o", "json"]);
        if !digest {
            cmd.arg("--no-digest");
        }
        measure(&mut cmd).expect("etcdsnap status runs")
    };
    let status_theirs = || {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3").args(["snapshot", "status"]).arg(&theirs_file).args(["-w", "json"]);
        measure(&mut cmd).expect("etcdctl status runs")
    };
    // Same numbers: compare the outputs once.
    let a = Command::new(&etcdsnap).arg("status").arg(&theirs_file).args(["-o", "json"]).output().expect("status");
    let b = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status"])
        .arg(&theirs_file)
        .args(["-w", "json"])
        .output()
        .expect("status");
    let ours_json: serde_json::Value = serde_json::from_slice(&a.stdout).expect("etcdsnap json");
    let theirs_json: serde_json::Value = serde_json::from_slice(&b.stdout).expect("etcdctl json");
    assert_eq!(ours_json["etcdctl"], theirs_json, "status numbers differ");
    status_theirs();
    status_ours(true);
    let mut st_ours = Vec::new();
    let mut st_quick = Vec::new();
    let mut st_theirs = Vec::new();
    for _ in 0..runs {
        st_theirs.push(status_theirs());
        st_quick.push(status_ours(false));
        st_ours.push(status_ours(true));
    }
    let wall = |v: &[Measured]| median(v.iter().map(|m| m.wall).collect()).as_secs_f64();
    let rss = |v: &[Measured]| median_of(v, |m| m.max_rss_kib as f64) / 1024.0;
    let file_size = std::fs::metadata(&ours_file).map(|m| m.len()).unwrap_or(0);
    println!(
        "| measurement (etcd 3.4 on loopback with TLS, {:.2} GiB database, median of {runs}) | etcdsnap | etcdctl | ratio |",
        file_size as f64 / (1u64 << 30) as f64
    );
    println!("|---|---|---|---|");
    println!(
        "| save: wall time (etcdsnap verifies the sha256 in transit) | {:.2} s | {:.2} s | {:.2} |",
        wall(&ours),
        wall(&theirs),
        wall(&ours) / wall(&theirs)
    );
    println!("| save: peak RSS | {:.1} MiB | {:.1} MiB | {:.2} |", rss(&ours), rss(&theirs), rss(&ours) / rss(&theirs));
    let client_cpu = |v: &[Measured]| median(v.iter().map(|m| m.cpu).collect()).as_secs_f64();
    println!(
        "| save: CPU time | {:.2} s | {:.2} s | {:.2} |",
        client_cpu(&ours),
        client_cpu(&theirs),
        client_cpu(&ours) / client_cpu(&theirs)
    );
    let zst_size = std::fs::metadata(&zst_file).map(|m| m.len()).unwrap_or(0);
    let theirs_size = std::fs::metadata(&theirs_file).map(|m| m.len()).unwrap_or(0);
    println!(
        "| save --compress zstd (level 3): wall time | {:.2} s | {:.2} s | {:.2} |",
        wall(&compressed),
        wall(&theirs),
        wall(&compressed) / wall(&theirs)
    );
    println!(
        "| save --compress zstd: file size | {:.1} MiB | {:.1} MiB | {:.1}x smaller |",
        zst_size as f64 / (1 << 20) as f64,
        theirs_size as f64 / (1 << 20) as f64,
        theirs_size as f64 / zst_size.max(1) as f64
    );
    println!(
        "| save --compress zstd: peak RSS | {:.1} MiB | {:.1} MiB | {:.2} |",
        rss(&compressed),
        rss(&theirs),
        rss(&compressed) / rss(&theirs)
    );
    let store_rows = |store: &str, accounted_ours: &[Accounted], accounted_theirs: &[Accounted]| {
        let (ours, theirs): (Vec<Measured>, Vec<Measured>) =
            (accounted_ours.iter().map(|a| a.client).collect(), accounted_theirs.iter().map(|a| a.client).collect());
        let (ours, theirs) = (ours.as_slice(), theirs.as_slice());
        println!(
            "| save --to s3:// vs etcdctl snapshot save + aws s3 cp ({store} on loopback): wall time | {:.2} s | {:.2} s | {:.2}x faster |",
            wall(ours),
            wall(theirs),
            wall(theirs) / wall(ours)
        );
        println!(
            "| the same into {store}: peak RSS (theirs: the larger of the two tools) | {:.1} MiB | {:.1} MiB | {:.2} |",
            rss(ours),
            rss(theirs),
            rss(ours) / rss(theirs)
        );
        let cpu = |v: &[Accounted], f: fn(&Accounted) -> Duration| median(v.iter().map(f).collect()).as_secs_f64();
        for (what, f) in [
            ("the client(s)", (|a: &Accounted| a.client.cpu) as fn(&Accounted) -> Duration),
            ("etcd", |a: &Accounted| a.etcd_cpu),
            (store, |a: &Accounted| a.store_cpu),
        ] {
            println!(
                "| the same into {store}: CPU time of {what} | {:.2} s | {:.2} s | {:.2} |",
                cpu(accounted_ours, f),
                cpu(accounted_theirs, f),
                cpu(accounted_ours, f) / cpu(accounted_theirs, f).max(0.001)
            );
        }
    };
    store_rows("moto", &s3_ours, &s3_theirs);
    if with_minio {
        store_rows("MinIO", &minio_ours, &minio_theirs);
        store_rows("MinIO over HTTPS", &minio_tls_ours, &minio_tls_theirs);
    }
    println!(
        "| status --no-digest: wall time (the checks etcdctl makes; identical hash, revision, totalKey, totalSize) | {:.2} s | {:.2} s | {:.1}x faster |",
        wall(&st_quick),
        wall(&st_theirs),
        wall(&st_theirs) / wall(&st_quick)
    );
    println!(
        "| status (default: also the sha256 of the whole file, which etcdctl never checks) | {:.2} s | {:.2} s | {:.1}x |",
        wall(&st_ours),
        wall(&st_theirs),
        wall(&st_theirs) / wall(&st_ours)
    );
    println!(
        "| status: peak RSS | {:.1} MiB | {:.1} MiB | {:.2} |",
        rss(&st_ours),
        rss(&st_theirs),
        rss(&st_ours) / rss(&st_theirs)
    );
}
