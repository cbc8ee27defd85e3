//! Output that fits the user's terminal, end to end through kubectl: every table command at
//! `COLUMNS=80` and `120` has no line longer than that (`-o wide` has everything), rows wrap only
//! between words, webhookguard's disarm fits 80×24 with its undo in view and the undo pastes
//! as printed, and kubectl's plugin completion offers live names from the cluster without ever
//! hanging.

use std::time::{Duration, Instant};

use cpkit_e2e::{describe, kubectl, start, text};
use serde_json::Value;
use testkit::{DemoCluster, Scenario, World};

fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Runs `kubectl <args>` at `COLUMNS=width`; asserts it ran (not a usage error, something
/// printed) and that no line is wider than the terminal. Returns stdout.
fn fitted(env: &[(String, String)], args: &[&str], width: usize) -> String {
    let env = with(env, &[("COLUMNS", &width.to_string()), ("NO_COLOR", "1")]);
    let out = kubectl(args, &env);
    let (stdout, _) = text(&out);
    assert!(matches!(out.status.code(), Some(0..=3)), "kubectl {}: {}", args.join(" "), describe(&out));
    assert!(!stdout.trim().is_empty(), "kubectl {}: {}", args.join(" "), describe(&out));
    for line in stdout.lines() {
        assert!(
            line.chars().count() <= width,
            "kubectl {} at COLUMNS={width}: a line of {} characters:\n{line}\n--- whole output\n{stdout}",
            args.join(" "),
            line.chars().count()
        );
    }
    stdout
}

fn json(env: &[(String, String)], args: &[&str]) -> Value {
    let out = kubectl(args, env);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)))
}

/// Every word of `message` is in `output` whole (a wrapped row breaks only between words).
fn words_whole(message: &str, output: &str) {
    let words: std::collections::HashSet<&str> = output.split_whitespace().collect();
    for w in message.split_whitespace() {
        assert!(words.contains(w), "{w:?} of {message:?} is not whole in:\n{output}");
    }
}

#[test]
fn webhook_lockout_fits_80_and_120_columns() {
    let c = start(World::Sim, Scenario::WebhookLockout);
    let state = tempfile::tempdir().unwrap();
    let env = with(&c.env(), &[("XDG_STATE_HOME", state.path().to_str().unwrap())]);
    let (config, webhook) = c.facts.lockout_webhook.clone().unwrap();
    for width in [80, 120] {
        let report = fitted(&env, &["cphealth"], width);
        // The problem's message is whole, wrapped between words inside its cell.
        let doc = json(&env, &["cphealth", "--only", "webhooks", "-o", "json"]);
        let message = doc["checks"][0]["message"].as_str().unwrap();
        let table = report.split("\nDiagnosis:").next().unwrap();
        words_whole(message, table);
        fitted(&env, &["cphealth", "-v"], width);
        fitted(&env, &["cphealth", "--all-contexts", "--sample", "300ms"], width);
        let scan = fitted(&env, &["webhookguard"], width);
        // SUMMARY is one line per finding; -v and JSON have it whole.
        let findings =
            json(&env, &["webhookguard", "-o", "json", "--sample", "0"])["findings"].as_array().unwrap().len();
        let rows = scan.split("\n\n").nth(1).unwrap().lines().count() - 1;
        assert_eq!(rows, findings, "one line per finding at {width} columns:\n{scan}");
        assert!(scan.contains('…'), "the long summaries are cut at {width} columns:\n{scan}");
        let verbose = fitted(&env, &["webhookguard", "-v"], width);
        let full = json(&env, &["webhookguard", "-o", "json", "--sample", "0"])["findings"][0]["summary"].clone();
        words_whole(full.as_str().unwrap(), &verbose);
        fitted(&env, &["webhookguard", "probe"], width);
        let plan = fitted(&env, &["webhookguard", "disarm", &config, "--mode", "ignore"], width);
        assert!(plan.contains(&format!("{webhook}: failurePolicy Fail → Ignore")), "{plan}");
    }
    // -o wide is where everything is: the wide-only columns, lines as long as they are.
    let wide = kubectl(&["cphealth", "-o", "wide", "--color", "never"], &with(&env, &[("COLUMNS", "80")]));
    let (stdout, _) = text(&wide);
    assert!(stdout.contains("EVIDENCE"), "{stdout}");
    assert!(stdout.lines().any(|l| l.chars().count() > 80), "-o wide is not fitted:\n{stdout}");
    // A pipe without COLUMNS gets whole lines too (scripts grep them).
    let piped = kubectl(&["webhookguard", "--color", "never"], &env);
    assert!(!text(&piped).0.contains('…'), "{}", describe(&piped));

    // The emergency lever at 80×24: disarm's report fits the screen with its undo in view, and
    // the undo, pasted as printed (continuation lines and all), finds its backup.
    let out = kubectl(
        &["webhookguard", "disarm", &config, "--mode", "ignore", "--yes"],
        &with(&env, &[("COLUMNS", "80"), ("LINES", "24"), ("NO_COLOR", "1")]),
    );
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout.lines().count() <= 24, "{} lines:\n{stdout}", stdout.lines().count());
    assert!(stdout.lines().all(|l| l.chars().count() <= 80), "{stdout}");
    let undo: String = stdout.split("Undo:\n").nth(1).unwrap().to_string();
    assert!(undo.trim_start().starts_with("kubectl webhookguard restore "), "{undo}");
    let paste = std::process::Command::new("bash")
        .args(["-c", &undo])
        .env("PATH", cpkit_e2e::path_with_plugins())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    // The backend is still down, so the restore is refused: it found the backup and judged it.
    assert_eq!(paste.status.code(), Some(2), "{}", describe(&paste));
    assert!(text(&paste).0.contains("Refused: restoring would lock the cluster again"), "{}", describe(&paste));
}

#[test]
fn etcd_member_down_fits_80_and_120_columns() {
    let c = start(World::Sim, Scenario::EtcdMemberDown);
    let env = c.env();
    let down = c.facts.down_etcd_member.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let saved = kubectl(&["etcdsnap", "save", "--dir", d], &env);
    assert_eq!(saved.status.code(), Some(0), "{}", describe(&saved));
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "db"))
        .unwrap();
    let f = file.to_str().unwrap();
    for width in [80, 120] {
        let members = fitted(&env, &["etcdsnap", "members"], width);
        // The down member is in the narrow table, and why it is down under it.
        let row = members.lines().find(|l| l.starts_with(&format!("{down} "))).unwrap();
        assert!(row.contains("false"), "{members}");
        assert!(members.lines().any(|l| l.starts_with(&format!("{down}: "))), "{members}");
        fitted(&env, &["etcdsnap", "ls", d], width);
        fitted(&env, &["etcdsnap", "prune", d, "--keep", "0"], width);
        fitted(&env, &["etcdsnap", "status", f], width);
        let plan = fitted(&env, &["etcdsnap", "restore-plan", f], width);
        assert!(plan.contains("--initial-cluster"), "{plan}");
        fitted(&env, &["etcdsnap", "alarm", "list"], width);
        fitted(&env, &["etcdsnap", "defrag", "--all"], width);
        fitted(&env, &["etcdsnap", "compact"], width);
        let data_dir = dir.path().join("restored");
        fitted(&env, &["etcdsnap", "restore", f, "--data-dir", data_dir.to_str().unwrap()], width);
        fitted(&env, &["cphealth"], width);
    }
    let narrow = fitted(&env, &["etcdsnap", "members"], 80);
    assert!(!narrow.contains("RAFT INDEX"), "{narrow}");
    let wide = kubectl(&["etcdsnap", "members", "-o", "wide"], &with(&env, &[("COLUMNS", "80")]));
    let (stdout, _) = text(&wide);
    assert!(stdout.contains("RAFT INDEX") && stdout.contains("ERROR"), "{}", describe(&wide));
}

#[test]
fn apf_overload_fits_80_and_120_columns() {
    let c = start(World::Sim, Scenario::ApfOverload);
    let env = c.env();
    let flooder = c.facts.flooding_user.clone().unwrap();
    for width in [80, 120] {
        let top = fitted(&env, &["apftop", "--once", "--interval", "500ms"], width);
        let flows = top.split("Top flows").nth(1).unwrap();
        // A shortened USER keeps its start, so the flooder is still recognisable.
        let first = flows.lines().nth(2).unwrap();
        let shown = first.split("   ").next().unwrap().trim_end_matches('…');
        assert!(flooder.starts_with(shown) && shown.len() >= 10, "{top}");
        fitted(&env, &["apftop", "config", "--sample", "500ms"], width);
        fitted(&env, &["apftop", "explain", "--as", &flooder, "--resource", "pods"], width);
    }
}

/// `kubectl __complete <plugin> <words>`: the candidates and the directive.
fn complete(env: &[(String, String)], words: &[&str]) -> (Vec<String>, String) {
    let args = [&["__complete"], words].concat();
    let out = kubectl(&args, env);
    let (stdout, _) = text(&out);
    let mut lines: Vec<String> = stdout.lines().map(|l| l.split('\t').next().unwrap_or("").to_string()).collect();
    let directive = lines.pop().unwrap_or_default();
    (lines, directive)
}

#[test]
fn completion_offers_live_names() {
    let c = start(World::Sim, Scenario::WebhookLockout);
    let env = c.env();
    let (config, _) = c.facts.lockout_webhook.clone().unwrap();
    let (names, directive) = complete(&env, &["webhookguard", "disarm", ""]);
    assert!(names.contains(&config), "{names:?}");
    assert!(names.contains(&format!("validatingwebhookconfiguration/{config}")), "{names:?}");
    assert_eq!(directive, ":4");
    let (names, _) = complete(&env, &["webhookguard", "disarm", "pod-"]);
    assert_eq!(names, std::slice::from_ref(&config));
    // Check names, item by item in a comma list.
    let (mut names, _) = complete(&env, &["cphealth", "--only", "etcd,l"]);
    names.sort();
    assert_eq!(names, ["etcd,leader-election", "etcd,load"]);
    // Snapshot files: the shell's own file completion.
    let (names, directive) = complete(&env, &["etcdsnap", "status", ""]);
    assert!(names.is_empty() && directive == ":0", "{names:?} {directive}");
    // Members, from the etcd pods.
    let (names, _) = complete(&env, &["etcdsnap", "members", "--member", ""]);
    let mut expected = c.facts.control_plane_nodes.clone();
    expected.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn completion_never_hangs_on_a_server_that_does_not_answer() {
    // A listener that accepts connections and never says a word (a black-holed API server).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: silent\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: silent\n  context:\n    cluster: silent\n    user: u\ncurrent-context: silent\n"
        ),
    )
    .unwrap();
    // The completer as kubectl runs it (kubectl itself dials the server before it calls a
    // plugin's completer, and takes its own time doing so: not ours to bound).
    let completer = cpkit_e2e::plugin_path_dir().join("kubectl_complete-webhookguard");
    let started = Instant::now();
    let out =
        std::process::Command::new(completer).args(["disarm", ""]).env("KUBECONFIG", &kubeconfig).output().unwrap();
    // Bounded by the plugin's 2 s lookup budget, not by any request timeout (generous: a busy CI).
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(text(&out).0, ":4\n", "no names, no file completion: {}", describe(&out));
    drop(listener);
}

#[test]
fn completion_of_as_lists_service_accounts() {
    // The simulator keeps no ServiceAccounts; the real control plane's controller-manager
    // creates them.
    let c: DemoCluster = start(World::Real, Scenario::HealthyHa);
    let (names, _) = complete(&c.env(), &["apftop", "explain", "--as", "system:serviceaccount:kube-system:"]);
    assert!(names.iter().any(|n| n == "system:serviceaccount:kube-system:default"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("system:serviceaccount:kube-system:")), "{names:?}");
}
