//! What every plugin must do (issue: foundation): run as `kubectl <plugin>`, answer --help with
//! kubectl-style usage, fail fast and clearly against an unreachable server, complete through
//! kubectl's plugin completion.

use cpkit_e2e::{PLUGINS, describe, kubectl, text};

#[test]
fn kubectl_finds_every_plugin_and_shows_kubectl_style_usage() {
    let out = kubectl(&["plugin", "list"], &[]);
    let (stdout, _) = text(&out);
    for p in PLUGINS {
        assert!(stdout.contains(&format!("kubectl-{p}")), "{p} not listed:\n{}", describe(&out));
        let help = kubectl(&[p, "--help"], &[]);
        assert!(help.status.success(), "{}", describe(&help));
        assert!(text(&help).0.contains(&format!("Usage: kubectl {p} ")), "{}", describe(&help));
        assert!(text(&help).0.contains("--kubeconfig <FILE>"));
        let bad = kubectl(&[p, "--no-such-flag"], &[]);
        assert_eq!(bad.status.code(), Some(64), "usage errors exit 64: {}", describe(&bad));
    }
}

/// A server that accepts connections and never answers (a black hole: an overloaded API
/// server, a dead proxy) bounds every plugin near --request-timeout, not a multiple of it.
#[test]
fn every_plugin_gives_up_on_a_silent_server_near_the_request_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: [{{name: c, cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: sometoken123}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\n"),
    )
    .unwrap();
    let commands: &[&[&str]] = &[&["cphealth"], &["apftop", "--once"], &["webhookguard"], &["etcdsnap", "members"]];
    for command in commands {
        let mut args = command.to_vec();
        args.extend(["--kubeconfig", kubeconfig.to_str().unwrap(), "--request-timeout=2s"]);
        let started = std::time::Instant::now();
        let out = kubectl(&args, &[]);
        let elapsed = started.elapsed();
        assert!(!out.status.success(), "{command:?}: {}", describe(&out));
        assert!(elapsed < std::time::Duration::from_millis(3500), "{command:?} took {elapsed:?}: {}", describe(&out));
        let (stdout, stderr) = text(&out);
        assert!(format!("{stdout}{stderr}").contains("within 2"), "{command:?} names the timeout: {}", describe(&out));
    }
}

#[test]
fn every_plugin_explains_an_unreachable_server_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n",
    )
    .unwrap();
    for p in PLUGINS {
        let started = std::time::Instant::now();
        // etcdsnap has no default action: ask it for the members.
        let mut args = vec![p];
        if p == "etcdsnap" {
            args.push("members");
        }
        args.extend(["--kubeconfig", kubeconfig.to_str().unwrap(), "--request-timeout=3s"]);
        let out = kubectl(&args, &[]);
        let elapsed = started.elapsed();
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{p}: {}", describe(&out));
        assert!(elapsed.as_secs() < 10, "{p} took {elapsed:?}");
        let refused = "Cannot connect to the API server at https://127.0.0.1:1: connection refused";
        if p == "cphealth" {
            // A health check reports it as its verdict: CRITICAL, on stdout, the other checks skipped.
            assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
            let key_fact = "Cannot connect to the API server at https://127.0.0.1:1 (connection refused)";
            assert!(stdout.lines().any(|l| l.starts_with("apiserver ") && l.contains(key_fact)), "{}", describe(&out));
            assert!(stdout.contains("not run: the API server is unreachable (connection refused)"));
            continue;
        }
        assert!(stderr.contains(refused), "{p}: {}", describe(&out));
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE") && !stderr.contains("Error {"),
            "{p}: {}",
            describe(&out)
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one paragraph: {}", describe(&out));
    }
}

#[test]
fn kubectl_plugin_completion_lists_flags_and_contexts() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod-eu\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: prod-eu, context: {cluster: c, user: u}}, {name: staging, context: {cluster: c, user: u}}]\n",
    )
    .unwrap();
    let env = [("KUBECONFIG".to_string(), kubeconfig.display().to_string())];
    for p in PLUGINS {
        let out = kubectl(&["__complete", p, "--con"], &env);
        let (stdout, _) = text(&out);
        assert!(stdout.lines().any(|l| l.starts_with("--context\t")), "{p}: {}", describe(&out));
        let out = kubectl(&["__complete", p, "--context", ""], &env);
        let lines: Vec<String> = text(&out).0.lines().map(str::to_string).collect();
        assert_eq!(lines, ["prod-eu", "staging", ":4"], "{p}: {}", describe(&out));
        let out = kubectl(&["__complete", p, "-o", "y"], &env);
        assert!(text(&out).0.starts_with("yaml\t"), "{p}: {}", describe(&out));
    }
}

#[test]
fn completion_works_with_older_kubectl_minors_too() {
    let real = which::which("kubectl").unwrap().canonicalize().unwrap();
    let dir = real.parent().unwrap();
    let mut tried = 0;
    for minor in 27..=33 {
        let k = dir.join(format!("kubectl.1.{minor}"));
        if !k.exists() {
            continue;
        }
        tried += 1;
        let out = std::process::Command::new(&k)
            .args(["__complete", "cphealth", "--con"])
            .env("PATH", cpkit_e2e::path_with_plugins())
            .output()
            .unwrap();
        assert!(text(&out).0.contains("--context\t"), "kubectl 1.{minor}: {}", describe(&out));
    }
    assert!(tried > 0, "no kubectl.1.xx beside the real kubectl");
}

#[test]
fn completion_scripts_and_install() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = cpkit_e2e::plugin("webhookguard", &["completion", shell], &[]);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(text(&out).0.contains("kubectl-webhookguard"), "{shell}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(cpkit_e2e::plugin_binary("apftop"), dir.path().join("kubectl-apftop")).unwrap();
    let out = cpkit_e2e::plugin("apftop", &["completion", "install", "--dir", dir.path().to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(text(&out).0.contains("kubectl_complete-apftop"), "{}", describe(&out));
    let link = dir.path().join("kubectl_complete-apftop");
    assert_eq!(std::fs::read_link(&link).unwrap(), std::path::PathBuf::from("kubectl-apftop"));
    // The link answers completion requests.
    let out = std::process::Command::new(&link).args(["--outp"]).output().unwrap();
    assert!(text(&out).0.starts_with("--output\t"), "{}", describe(&out));
}
