//! Helpers for end-to-end tests: the plugin binaries (built once per test run), a PATH with the
//! plugins and their completion links, and running them exactly as users do: `kubectl <plugin>`.

pub mod runbook;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const PLUGINS: [&str; 4] = ["cphealth", "etcdsnap", "webhookguard", "apftop"];

/// `target/<profile>` of this test binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Builds the binaries once (a no-op when they are fresh), so tests never run stale ones. The
/// same command as the README's (`--workspace --bins`): another package set would unify
/// features differently and rebuild everything.
pub fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = target_dir().file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--workspace", "--bins"]);
        // Not the variables cargo sets for this test binary: ring's build script reruns when
        // CARGO_MANIFEST_DIR changes, so an inherited one rebuilt ring and everything above it
        // (rustls, kube, the plugins: a minute) here, and again at the next `cargo test`.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if [
                "CARGO_MANIFEST_",
                "CARGO_PKG_",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix))
            {
                cmd.env_remove(key.as_ref());
            }
        }
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo build runs");
        assert!(status.success(), "building the plugins failed");
    });
}

pub fn plugin_binary(name: &str) -> PathBuf {
    ensure_built();
    let p = target_dir().join(format!("kubectl-{name}"));
    assert!(p.exists(), "{} is missing: run `cargo build --bins`", p.display());
    p
}

/// A directory holding `kubectl-<plugin>` and `kubectl_complete-<plugin>` links for all four
/// plugins, as a krew bin dir after `completion install` would.
pub fn plugin_path_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("cpkit-plugins-").tempdir().expect("temp dir");
        for p in PLUGINS {
            let bin = plugin_binary(p);
            std::os::unix::fs::symlink(&bin, dir.path().join(format!("kubectl-{p}"))).expect("link");
            std::os::unix::fs::symlink(format!("kubectl-{p}"), dir.path().join(format!("kubectl_complete-{p}")))
                .expect("link");
        }
        dir
    })
    .path()
}

/// PATH with the plugins first.
pub fn path_with_plugins() -> String {
    let original = std::env::var("PATH").unwrap_or_default();
    format!("{}:{original}", plugin_path_dir().display())
}

/// Sets `env` on `cmd`, with the plugins first on PATH (also when `env` has a PATH of its own).
fn with_env(cmd: &mut Command, env: &[(String, String)]) {
    cmd.env("PATH", path_with_plugins());
    // Output is fitted to COLUMNS: a test sets it when it means to, never by inheritance.
    cmd.env_remove("COLUMNS");
    for (k, v) in env {
        if k == "PATH" {
            cmd.env("PATH", format!("{}:{v}", plugin_path_dir().display()));
        } else {
            cmd.env(k, v);
        }
    }
}

/// `kubectl <args>` with the plugins on PATH and `env` set.
pub fn kubectl(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(which::which("kubectl").expect("kubectl must be installed (see README)"));
    cmd.args(args);
    with_env(&mut cmd, env);
    cmd.output().expect("kubectl runs")
}

/// Runs a plugin binary directly (for -o json parsing, exit codes).
pub fn plugin(name: &str, args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(plugin_binary(name));
    cmd.args(args).env_remove("NO_COLOR");
    with_env(&mut cmd, env);
    cmd.output().expect("plugin runs")
}

pub fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Describes an Output for assertion messages.
pub fn describe(out: &Output) -> String {
    let (o, e) = text(out);
    format!("exit {:?}{}\n--- stdout\n{o}\n--- stderr\n{e}", out.status.code(), check_statuses(&o))
}

/// A cphealth report's checks on one line each, first: a CI log keeps only the first lines of a
/// failure, and the whole report runs to hundreds.
fn check_statuses(stdout: &str) -> String {
    let Ok(report) = serde_json::from_str::<serde_json::Value>(stdout) else { return String::new() };
    let Some(checks) = report["checks"].as_array() else { return String::new() };
    let mut lines = format!(", verdict {}", report["verdict"]);
    for c in checks {
        let message = c["message"].as_str().unwrap_or("");
        lines.push_str(&format!(
            "\n  {} {}: {}",
            c["status"].as_str().unwrap_or("?"),
            c["name"].as_str().unwrap_or("?"),
            message.chars().take(200).collect::<String>()
        ));
    }
    lines
}

/// One end-to-end test body run in both worlds of the test kit: `mod <name>` with a `sim` and a
/// `real` test calling the body with `testkit::World::Sim` / `World::Real`.
///
/// ```ignore
/// in_both_worlds! {
///     fn healthy_ha_is_all_ok(world) {
///         let c = DemoCluster::start_in(world, Scenario::HealthyHa).unwrap();
///         ...
///     }
/// }
/// ```
#[macro_export]
macro_rules! in_both_worlds {
    ($(#[$meta:meta])* fn $name:ident($world:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($world: ::testkit::World) $body

            #[test]
            fn sim() {
                body(::testkit::World::Sim)
            }

            #[test]
            fn real() {
                body(::testkit::World::Real)
            }
        }
    };
}

/// Starts `scenario` in `world`, failing the test with the kit's explanation. A start that fails
/// is tried once more: many clusters start at once in a full run, and a free port picked by one
/// can be taken by another before it binds, or a start can outlast its wait on two busy cores.
/// The cluster under test is always a fresh, complete one.
pub fn start(world: testkit::World, scenario: testkit::Scenario) -> testkit::DemoCluster {
    match testkit::DemoCluster::start_in(world, scenario) {
        Ok(c) => c,
        Err(first) => {
            eprintln!("starting {} in the {} world failed, trying once more: {first}", scenario.name(), world.name());
            testkit::DemoCluster::start_in(world, scenario).unwrap_or_else(|e| {
                panic!(
                    "cannot start {} in the {} world (twice): {e}\nthe first time: {first}",
                    scenario.name(),
                    world.name()
                )
            })
        }
    }
}

/// `--via direct` and the flags that reach the first member of `etcd` with its client
/// certificate (for `etcdsnap save` and the maintenance commands).
pub fn etcd_direct_flags(etcd: &testkit::etcd::EtcdCluster) -> Vec<String> {
    let tls = etcd.client_tls();
    vec![
        "--via".into(),
        "direct".into(),
        format!("--endpoints={}", etcd.members[0].local_client_url()),
        format!("--etcd-cacert={}", tls.cacert.display()),
        format!("--etcd-cert={}", tls.cert.display()),
        format!("--etcd-key={}", tls.key.display()),
    ]
}

/// A user who may get and list every resource (no non-resource URLs such as /metrics), with a
/// bearer token: the simulator's `viewer`, or a service account on the real control plane.
pub fn viewer(c: &testkit::DemoCluster) -> (String, String) {
    match c.world {
        testkit::World::Sim => {
            let token = c
                .apiserver()
                .sim
                .users
                .read()
                .unwrap()
                .iter()
                .find(|u| u.name == "viewer")
                .and_then(|u| u.token.clone())
                .unwrap();
            (format!("{}-viewer", c.context), token)
        }
        testkit::World::Real => c
            .real()
            .unwrap()
            .add_token_user(
                "viewer",
                serde_json::json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}]),
            )
            .unwrap(),
    }
}

/// `etcdctl snapshot status FILE -w json` of the machine's etcdctl (Debian's 3.4).
pub fn etcdctl_status(file: &Path) -> serde_json::Value {
    let out = Command::new("etcdctl")
        .args(["snapshot", "status"])
        .arg(file)
        .args(["-w", "json"])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl runs");
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).expect("etcdctl prints JSON")
}
