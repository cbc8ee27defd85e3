//! Regression tests for the defects an adversarial run found (issue: hardening), each through
//! the binaries as a user or an attacker would meet it: planted `.part` files, crafted
//! snapshots, YAML that hides or explodes, special files and loops, signals mid-write or
//! mid-screen, a snapshot cut while it is read, a context naming a missing user, and files that
//! must stay private whatever the umask.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cpkit_e2e::{describe, kubectl, plugin, plugin_binary, text};
use testkit::etcd::{EtcdCluster, EtcdOptions};
use testkit::etcd_data::{LoadSpec, load};
use testkit::fault_proxy::{Damage, FaultProxy};
use testkit::{DemoCluster, Scenario};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn single_member(plain: bool) -> EtcdCluster {
    let mut e = EtcdCluster::start(EtcdOptions { plain_client: plain, ..EtcdOptions::members(1) }).unwrap();
    e.wait_healthy(Duration::from_secs(20)).unwrap();
    e
}

fn save_direct(etcd: &EtcdCluster, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["save".to_string(), file.display().to_string()];
    args.extend(cpkit_e2e::etcd_direct_flags(etcd));
    args.extend(extra.iter().map(|s| s.to_string()));
    plugin("etcdsnap", &args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

/// Runs `cmd` for at most `limit`; a run past it is killed and reported as None.
fn run_bounded(mut cmd: Command, limit: Duration) -> Option<std::process::Output> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn plugin_cmd(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(plugin_binary(name));
    cmd.args(args);
    cmd
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Defect 3: another user plants `<file>.part` (a symlink to a file of root's choosing, or a
/// world-writable file of their own) before root saves: neither is opened, followed or reused.
#[test]
fn a_planted_part_file_is_never_followed_or_reused() {
    let etcd = single_member(false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "root's file\n").unwrap();
    let file = dir.path().join("s.db");
    std::os::unix::fs::symlink(&victim, dir.path().join("s.db.part")).unwrap();
    let planted = dir.path().join("s.db.json.part");
    std::fs::write(&planted, "planted\n").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();

    let out = save_direct(&etcd, &file, &[]);
    assert!(std::fs::read(&victim).unwrap() == b"root's file\n", "the symlink's target was overwritten");
    assert!(std::fs::read(&planted).unwrap() == b"planted\n", "the planted .part was reused");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for written in [file.clone(), dir.path().join("s.db.json")] {
        let meta = std::fs::symlink_metadata(&written).unwrap();
        assert!(meta.file_type().is_file(), "{} is not a regular file", written.display());
        assert_eq!(meta.mode() & 0o777, 0o600, "{}", written.display());
        assert_eq!(meta.uid(), 0, "{} belongs to someone else", written.display());
    }
}

/// Defect 3, the class: everything the suite writes is 0600, in directories it creates 0700,
/// whatever the umask (a snapshot and its record, a diagnostics bundle, a webhook backup).
#[test]
fn files_are_private_whatever_the_umask() {
    let etcd = single_member(false);
    let c = DemoCluster::start(Scenario::WebhookLockout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let under_umask = |args: &[&str], env: &[(String, String)]| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("umask 000; exec \"$@\"").arg("sh").args(args);
        cmd.env("PATH", cpkit_e2e::path_with_plugins());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let snapshots = dir.path().join("new/snapshots");
    let mut save = vec!["kubectl-etcdsnap".to_string(), "save".into(), "--dir".into(), snapshots.display().to_string()];
    save.extend(cpkit_e2e::etcd_direct_flags(&etcd));
    let out = under_umask(&save.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let bundle = dir.path().join("new/bundles/b.tar.gz");
    let out = under_umask(&["kubectl-cphealth", "bundle", "-f", bundle.to_str().unwrap(), "--sample", "0"], &c.env());
    assert!(out.status.success(), "{}", describe(&out));
    let backups = dir.path().join("new/backups");
    let (culprit, _) = c.facts.lockout_webhook.clone().expect("the lockout scenario names its webhook");
    let out = under_umask(
        &[
            "kubectl-webhookguard",
            "disarm",
            &culprit,
            "--mode",
            "ignore",
            "--yes",
            "--backup-dir",
            backups.to_str().unwrap(),
        ],
        &c.env(),
    );
    assert!(out.status.code().is_some_and(|c| c <= 2), "{}", describe(&out));
    for created in ["new", "new/snapshots", "new/bundles", "new/backups"] {
        assert_eq!(mode(&dir.path().join(created)), 0o700, "{created}");
    }
    let mut files = Vec::new();
    for d in ["new/snapshots", "new/bundles", "new/backups"] {
        for entry in std::fs::read_dir(dir.path().join(d)).unwrap().flatten().map(|e| e.path()) {
            if entry.is_dir() {
                // Backups are kept per context: that directory is private too.
                assert_eq!(mode(&entry), 0o700, "{}", entry.display());
                files.extend(std::fs::read_dir(&entry).unwrap().flatten().map(|e| e.path()));
            } else {
                files.push(entry);
            }
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

/// FNV-1a 64, bbolt's meta checksum.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

const PAGE: usize = 4096;
/// Offsets inside a meta page: the page header is 16 bytes, then magic, version, page size,
/// flags (4 bytes each), root bucket (root, sequence), freelist, pgid, txid, checksum.
const META_ROOT: usize = 16 + 16;
const META_FREELIST: usize = META_ROOT + 16;
const META_PGID: usize = META_FREELIST + 8;
const META_CHECKSUM: usize = META_PGID + 16;

fn meta_u64(db: &[u8], page: usize, at: usize) -> u64 {
    u64::from_le_bytes(db[page * PAGE + at..page * PAGE + at + 8].try_into().unwrap())
}

/// Sets a field of both meta pages and fixes their checksums (a crafted file, not a damaged one).
fn set_meta(db: &mut [u8], at: usize, value: u64) {
    for page in 0..2 {
        let base = page * PAGE;
        db[base + at..base + at + 8].copy_from_slice(&value.to_le_bytes());
        let sum = fnv1a64(&db[base + 16..base + META_CHECKSUM]);
        db[base + META_CHECKSUM..base + META_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Defect 5: crafted snapshots (valid checksums, hostile numbers) are reported as unusable,
/// never a panic (exit 101) or an out-of-memory.
#[test]
fn crafted_snapshots_are_errors_not_panics() {
    let etcd = single_member(false);
    let rt = rt();
    let client = rt.block_on(etcd.client()).unwrap();
    rt.block_on(load(&client, &LoadSpec::default())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    let out = save_direct(&etcd, &good, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // Without etcd's digest trailer (a copied db file): the pages themselves are read.
    let mut pages = std::fs::read(&good).unwrap();
    pages.truncate(pages.len() - 32);
    let high_water = meta_u64(&pages, 0, META_PGID);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut zero_pgid = pages.clone();
    set_meta(&mut zero_pgid, META_PGID, 0);
    cases.push(("pgid 0", zero_pgid));
    let mut root_beyond = pages.clone();
    set_meta(&mut root_beyond, META_ROOT, high_water + 1000);
    cases.push(("root beyond the high-water mark", root_beyond));
    // A freelist page whose count is 0xFFFF with a 64-bit count of 2^61 (count * 8 overflows).
    let mut freelist = pages.clone();
    let last = high_water as usize - 1;
    set_meta(&mut freelist, META_FREELIST, last as u64);
    let at = last * PAGE;
    freelist[at + 8..at + 10].copy_from_slice(&0x10u16.to_le_bytes());
    freelist[at + 10..at + 12].copy_from_slice(&0xFFFFu16.to_le_bytes());
    freelist[at + 16..at + 24].copy_from_slice(&(1u64 << 61).to_le_bytes());
    cases.push(("freelist count 2^61", freelist));
    for (name, bytes) in cases {
        let file = dir.path().join(format!("{}.db", name.replace(' ', "-")));
        std::fs::write(&file, bytes).unwrap();
        for command in [&["status"][..], &["drill"][..]] {
            let mut args = command.to_vec();
            args.push(file.to_str().unwrap());
            let out = run_bounded(plugin_cmd("etcdsnap", &args), Duration::from_secs(60))
                .unwrap_or_else(|| panic!("{name}: {command:?} did not finish"));
            assert_eq!(out.status.code(), Some(2), "{name}: {command:?}: {}", describe(&out));
            assert!(text(&out).1.contains("is not a usable etcd snapshot"), "{name}: {}", describe(&out));
        }
    }
}

fn offline_scan(file: &Path) -> Option<std::process::Output> {
    let mut cmd = plugin_cmd("webhookguard", &["scan", "-f", file.to_str().unwrap(), "-o", "json"]);
    // 1 GiB of address space: an alias bomb's expansion dies here instead of taking the machine.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    run_bounded(cmd, Duration::from_secs(30))
}

/// Defect 7: YAML that expands (a few KB of aliases of aliases, ~60^5 values) is refused with
/// a clear error, in bounded memory.
#[test]
fn yaml_alias_expansion_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let value = format!("\"{}\"", "x".repeat(100));
    let mut bomb = format!("a0: &a0 [{}]\n", vec![value; 60].join(", "));
    for i in 1..5 {
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 60].join(", ")));
    }
    bomb.push_str("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: bomb}\nwebhooks: *a4\n");
    let file = dir.path().join("bomb.yaml");
    std::fs::write(&file, &bomb).unwrap();
    let out = offline_scan(&file).expect("the alias bomb is refused in time");
    assert!(matches!(out.status.code(), Some(2) | Some(64)), "{}", describe(&out));
    assert!(text(&out).1.contains("aliases"), "{}", describe(&out));
}

/// Defect 7: a local tag does not hide what it tags (kubectl's decoder reads through it);
/// empty files, garbage, unknown kinds and wrong types are errors, never "OK".
#[test]
fn yaml_that_hides_or_holds_nothing_is_never_ok() {
    let dir = tempfile::tempdir().unwrap();
    // A Fail */* webhook behind a local tag: still found (CRITICAL, exit 2).
    let tagged = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: hidden-lock\nwebhooks: !x\n- name: lock.example.com\n  failurePolicy: Fail\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  clientConfig:\n    service: {name: guard, namespace: guard, port: 443}\n  rules:\n  - apiGroups: ['*']\n    apiVersions: ['*']\n    operations: ['*']\n    resources: ['*/*']\n";
    let file = dir.path().join("tagged.yaml");
    std::fs::write(&file, tagged).unwrap();
    let out = offline_scan(&file).expect("finishes");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(text(&out).0.contains("lock.example.com"), "{}", describe(&out));

    for (name, body) in [
        ("empty.yaml", ""),
        ("comments.yaml", "# nothing here\n---\n"),
        ("garbage.yaml", "\u{1}\u{2}not: [yaml"),
        ("unknown-kind.yaml", "apiVersion: admissionregistration.k8s.io/v1\nkind: WebhookThing\nmetadata: {name: x}\n"),
        (
            "wrong-type.yaml",
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: x}\nwebhooks: 42\n",
        ),
        ("no-kind.yaml", "metadata: {name: x}\nwebhooks: []\n"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, body).unwrap();
        let out = offline_scan(&file).expect("finishes");
        assert!(matches!(out.status.code(), Some(2) | Some(64)), "{name}: {}", describe(&out));
        assert!(!text(&out).0.contains("\"OK\""), "{name}: {}", describe(&out));
    }
}

/// Defect 8: FIFOs, devices and directory loops never hang or eat memory: regular files only
/// (or `-`), loop-safe walks.
#[test]
fn special_files_and_loops_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid, NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    for (what, cmd) in [
        ("status of a FIFO", plugin_cmd("etcdsnap", &["status", fifo.to_str().unwrap()])),
        ("scan of a FIFO", plugin_cmd("webhookguard", &["scan", "-f", fifo.to_str().unwrap()])),
        ("status of /dev/zero", plugin_cmd("etcdsnap", &["status", "/dev/zero"])),
        ("scan of /dev/zero", plugin_cmd("webhookguard", &["scan", "-f", "/dev/zero"])),
        (
            "restore-plan of a FIFO",
            plugin_cmd("etcdsnap", &["restore-plan", fifo.to_str().unwrap(), "--members", "a=https://127.0.0.1:2380"]),
        ),
    ] {
        let out = run_bounded(cmd, Duration::from_secs(10)).unwrap_or_else(|| panic!("{what} hangs"));
        assert!(matches!(out.status.code(), Some(2) | Some(3) | Some(64)), "{what}: {}", describe(&out));
        assert!(text(&out).1.contains("only regular files are read"), "{what}: {}", describe(&out));
    }
    // A tree whose symlinks lead back up: each manifest is read once.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/webhooks/cert-manager.yaml"))
            .unwrap();
    std::fs::write(tree.join("a/b/hook.yaml"), manifest).unwrap();
    std::os::unix::fs::symlink("..", tree.join("a/b/up")).unwrap();
    std::os::unix::fs::symlink("../..", tree.join("a/b/upup")).unwrap();
    let out = run_bounded(
        plugin_cmd("webhookguard", &["scan", "-f", tree.to_str().unwrap(), "-o", "json"]),
        Duration::from_secs(20),
    )
    .expect("the walk ends");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", describe(&out)));
    let names: Vec<&str> =
        report["configurations"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names.len(), unique.len(), "a configuration was read more than once: {names:?}");
    assert!(!names.is_empty(), "{}", describe(&out));
}

/// Defect 9: `save` removes its partial file on SIGTERM and SIGHUP as it does on Ctrl-C.
#[test]
fn save_removes_its_part_on_every_signal() {
    let etcd = single_member(true);
    let rt = rt();
    let client = rt.block_on(etcd.client()).unwrap();
    rt.block_on(load(&client, &LoadSpec::sized(8 << 20))).unwrap();
    let plain: std::net::SocketAddr =
        format!("127.0.0.1:{}", etcd.members[0].plain_client_port.unwrap()).parse().unwrap();
    let slow = FaultProxy::start(plain, Damage::Throttle(1 << 20)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let child = Command::new(plugin_binary("etcdsnap"))
            .args(["save", file.to_str().unwrap(), "--via", "direct", &format!("--endpoints={}", slow.url())])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| e.path().to_string_lossy().ends_with(".part")) {
            assert!(Instant::now() < deadline, "saving never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(128 + signal), "{}", describe(&out));
        let left: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "signal {signal} left {left:?}");
    }
}

/// Defect 9: a snapshot cut while `status` reads it gives an error (or, read before the cut, a
/// report), never SIGBUS.
#[test]
fn a_snapshot_cut_while_read_is_an_error_not_a_crash() {
    let etcd = single_member(false);
    let rt = rt();
    let client = rt.block_on(etcd.client()).unwrap();
    rt.block_on(load(&client, &LoadSpec::sized(48 << 20))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    let out = save_direct(&etcd, &good, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let started = Instant::now();
    let out = plugin("etcdsnap", &["status", good.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let full = started.elapsed();
    // The tree walk comes first: cut early and late.
    for fraction in [0.02, 0.05, 0.1, 0.2, 0.4] {
        let file = dir.path().join("cut.db");
        std::fs::copy(&good, &file).unwrap();
        let child = Command::new(plugin_binary("etcdsnap"))
            .args(["status", file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(fraction));
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(4096 * 3).unwrap();
        let out = child.wait_with_output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), None, "killed by a signal at {fraction}: {}", describe(&out));
        assert!(matches!(out.status.code(), Some(0) | Some(2)), "{}", describe(&out));
        if out.status.code() == Some(2) {
            assert!(text(&out).1.contains("is not a usable etcd snapshot"), "{}", describe(&out));
        }
    }
}

/// Defect 10: a context naming a user that is not in the kubeconfig is an error naming it
/// (exit 3), not a run as nobody that reads "OK, mostly skipped".
#[test]
fn a_context_naming_a_missing_user_is_unknown() {
    let c = DemoCluster::start(Scenario::HealthyHa).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let mut doc: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(&c.kubeconfig).unwrap()).unwrap();
    let cluster = doc["clusters"][0]["name"].clone();
    doc["contexts"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "ghostly", "context": {"cluster": cluster, "user": "ghost-user"}
    }));
    std::fs::write(&config, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let env = vec![("KUBECONFIG".to_string(), config.display().to_string())];
    for command in [&["cphealth"][..], &["apftop", "--once"], &["webhookguard"], &["etcdsnap", "members"]] {
        let mut args = command.to_vec();
        args.extend(["--context", "ghostly"]);
        let out = kubectl(&args, &env);
        assert_eq!(out.status.code(), Some(3), "{command:?}: {}", describe(&out));
        assert!(text(&out).1.contains("\"ghost-user\""), "{command:?}: {}", describe(&out));
    }
}

/// Defect 9: apftop's screen (raw mode, alternate screen, hidden cursor) is put back on every
/// signal that ends it. Runs apftop on a pseudo-terminal and reads the terminal's modes after.
#[test]
fn apftop_restores_the_terminal_on_every_signal() {
    let c = DemoCluster::start(Scenario::HealthyHa).unwrap();
    for signal in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
        let (mut master, slave) = openpty();
        let slave_fd = std::os::fd::AsRawFd::as_raw_fd(&slave);
        let mut cmd = Command::new(plugin_binary("apftop"));
        cmd.args(["--interval", "500ms"]).envs(c.env()).env("TERM", "xterm-256color");
        cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave.try_clone().unwrap());
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        // Read the screen until apftop has drawn it.
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut reader = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut screen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&screen).contains("PRIORITY") {
            assert!(Instant::now() < deadline, "apftop never drew: {}", String::from_utf8_lossy(&screen));
            if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
                screen.extend(chunk);
            }
        }
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(300)) {
            screen.extend(chunk);
        }
        let screen = String::from_utf8_lossy(&screen).into_owned();
        assert_eq!(status.code(), Some(if signal == libc::SIGINT { 130 } else { 128 + signal }), "{signal}");
        let after = &screen[screen.rfind("\x1b[?1049h").expect("the alternate screen was entered")..];
        assert!(after.contains("\x1b[?1049l"), "signal {signal}: the alternate screen was left on");
        assert!(after.contains("\x1b[?25h"), "signal {signal}: the cursor stays hidden");
        // SAFETY: a termios struct for tcgetattr to fill.
        let mut modes: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::tcgetattr(slave_fd, &mut modes) }, 0);
        assert!(modes.c_lflag & libc::ICANON != 0, "signal {signal}: the terminal stays raw (no ICANON)");
        assert!(modes.c_lflag & libc::ECHO != 0, "signal {signal}: the terminal stays raw (no ECHO)");
        let _ = std::io::Write::flush(&mut master);
    }
}

fn openpty() -> (std::fs::File, std::fs::File) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize { ws_row: 40, ws_col: 140, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty fills two descriptors we then own.
    let rc =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: sets the window size of the terminal we just opened.
    unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &size) };
    use std::os::fd::FromRawFd;
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe { (std::fs::File::from_raw_fd(master), std::fs::File::from_raw_fd(slave)) }
}
