//! Network faults at every step, in both worlds: each plugin's read path through a front that
//! resets, never answers, trickles, answers 401/403/404/429/500/503, truncated or malformed
//! JSON, HTML, or serves an expired or foreign-CA certificate; a refused port and a failing DNS
//! lookup; faults on one path while the rest works (partial results kept), a conflict on a
//! write, and a replica that dies between two calls. Every run must end near its timeout with
//! a message naming the cause and the exit code of its class — never a panic.

use std::path::Path;
use std::time::{Duration, Instant};

use cpkit_e2e::{describe, in_both_worlds, kubectl, start, text};
use serde_json::Value;
use testkit::api_front::{ApiFront, Fault, Identity, Rule};
use testkit::{DemoCluster, Scenario};

const TIMEOUT: &str = "--request-timeout=2s";
/// The request timeout and what a run may take beyond it: kubectl's and a debug plugin's
/// start-up on a machine whose two cores are busy with the other tests' control planes, a retry
/// after Retry-After. Far below the 10 s default a run that ignored the flag would wait, and
/// below three timeouts one after another. (A report's own duration, start-up left out, is held
/// to less than two: `cphealth_json`.)
const LIMIT: Duration = Duration::from_millis(5500);

/// The read path of each plugin.
const COMMANDS: [&[&str]; 4] = [
    &["cphealth", "--sample", "0"],
    &["apftop", "--once", "--interval", "300ms"],
    &["webhookguard"],
    &["etcdsnap", "members"],
];

fn env_for(kubeconfig: &Path, dir: &Path) -> Vec<(String, String)> {
    vec![
        ("KUBECONFIG".to_string(), kubeconfig.display().to_string()),
        ("KUBECACHEDIR".to_string(), dir.join("cache").display().to_string()),
    ]
}

/// Runs `command` with the request timeout and returns its output and duration.
fn run(command: &[&str], env: &[(String, String)]) -> (std::process::Output, Duration) {
    let mut args = command.to_vec();
    args.push(TIMEOUT);
    // The plugins are built (if stale) before the clock starts.
    cpkit_e2e::path_with_plugins();
    let started = Instant::now();
    let out = kubectl(&args, env);
    (out, started.elapsed())
}

/// A whole-server fault: every plugin fails with `codes`, saying one of `phrases`, in time.
fn expect_failure(what: &str, env: &[(String, String)], codes: &[i32], phrases: &[&str]) {
    for command in COMMANDS {
        let (out, took) = run(command, env);
        let all = {
            let (o, e) = text(&out);
            format!("{o}{e}")
        };
        assert_ne!(out.status.code(), Some(101), "{what}: {command:?} panicked: {}", describe(&out));
        assert!(
            out.status.code().is_some_and(|c| codes.contains(&c)),
            "{what}: {command:?} exit {:?}, expected one of {codes:?}: {}",
            out.status.code(),
            describe(&out)
        );
        assert!(
            phrases.iter().any(|p| all.contains(p)),
            "{what}: {command:?} does not say any of {phrases:?}: {}",
            describe(&out)
        );
        assert!(took < LIMIT, "{what}: {command:?} took {took:?}: {}", describe(&out));
    }
}

fn cphealth_json(env: &[(String, String)], extra: &[&str]) -> (Value, std::process::Output, Duration) {
    let mut args = vec!["cphealth", "--sample", "0", "-o", "json"];
    args.extend(extra);
    let (out, took) = run(&args, env);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)));
    // The checks run at once: a fault costs one timeout, never one per check.
    let own = report["durationSeconds"].as_f64().unwrap_or(f64::MAX);
    assert!(own < 4.0, "two timeouts of 2 s one after another: the report took {own} s: {}", describe(&out));
    (report, out, took)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).unwrap_or(&Value::Null)
}

fn front_for(c: &DemoCluster, identity: Identity, dir: &Path) -> (ApiFront, Vec<(String, String)>) {
    let front = ApiFront::start(c.upstream(), identity).unwrap();
    let kubeconfig = front.write_kubeconfig(&dir.join(format!("{identity:?}"))).unwrap();
    let env = env_for(&kubeconfig, dir);
    (front, env)
}

in_both_worlds! {
    fn every_fault_of_the_server_gives_a_clear_error_in_time(world) {
        let c = start(world, Scenario::HealthyHa);
        let dir = tempfile::tempdir().unwrap();
        let (front, env) = front_for(&c, Identity::Trusted, dir.path());
        // Through the front, untouched: the cluster reads healthy. (Not the load check: with
        // --sample 0 its latencies are since the API server started, and a loaded CI machine
        // makes a fresh server's boot slow.)
        let (report, out, _) = cphealth_json(&env, &["--skip", "etcd,load"]);
        assert_eq!(report["verdict"], "OK", "{}", describe(&out));

        let cases: Vec<(&str, Fault, &[i32], &[&str])> = vec![
            ("reset", Fault::Reset, &[2], &["connection reset", "closed the connection"]),
            ("reset mid-body", Fault::ResetMidBody, &[2], &["connection reset", "closed the connection", "ended early"]),
            ("no answer", Fault::NeverAnswer, &[2], &["within 2"]),
            ("slow body", Fault::SlowBody(64), &[2], &["within 2"]),
            ("401", Fault::Status { code: 401, retry_after: None }, &[3], &["401"]),
            ("403", Fault::Status { code: 403, retry_after: None }, &[3], &["403"]),
            ("404", Fault::Status { code: 404, retry_after: None }, &[2], &["404"]),
            ("429", Fault::Status { code: 429, retry_after: Some(1) }, &[2], &["429"]),
            ("500", Fault::Status { code: 500, retry_after: None }, &[2], &["500"]),
            ("503", Fault::Status { code: 503, retry_after: Some(1) }, &[2], &["503"]),
            ("truncated JSON", Fault::TruncatedJson, &[2], &["cut short"]),
            ("malformed JSON", Fault::MalformedJson, &[2], &["cut short", "not the JSON expected", "not metrics"]),
            ("HTML", Fault::WrongContentType, &[2], &["text/html"]),
        ];
        for (what, fault, codes, phrases) in cases {
            front.set_rules(vec![Rule::all(fault)]);
            expect_failure(what, &env, codes, phrases);
        }
        front.set_rules(vec![]);

        // Certificates: expired (with its date) and from another CA.
        let (_expired, env_expired) = front_for(&c, Identity::Expired, dir.path());
        expect_failure("expired certificate", &env_expired, &[2], &["expired"]);
        let (_foreign, env_foreign) = front_for(&c, Identity::ForeignCa, dir.path());
        expect_failure("foreign CA", &env_foreign, &[2], &["unknown authority"]);
    }
}

in_both_worlds! {
    fn a_fault_on_one_path_keeps_the_other_results(world) {
        let c = start(world, Scenario::HealthyHa);
        let dir = tempfile::tempdir().unwrap();
        let (front, env) = front_for(&c, Identity::Trusted, dir.path());

        // /metrics fails: the load check says so, every other check still reports.
        front.set_rules(vec![Rule::path("/metrics", Fault::Status { code: 500, retry_after: None })]);
        let (report, out, took) = cphealth_json(&env, &["--skip", "etcd"]);
        assert!(took < LIMIT, "{took:?}");
        assert_ne!(check(&report, "load")["status"], "OK", "{}", describe(&out));
        assert!(check(&report, "load")["message"].as_str().unwrap_or("").contains("500"), "{}", describe(&out));
        for name in ["apiserver", "health", "nodes", "webhooks", "leader-election"] {
            assert_eq!(check(&report, name)["status"], "OK", "{name}: {}", describe(&out));
        }

        // An aggregated API that hangs: its check ends near the timeout, naming it.
        let apiservice = serde_json::json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1alpha1.hang.cpkit.dev"},
            "spec": {"group": "hang.cpkit.dev", "version": "v1alpha1", "groupPriorityMinimum": 100,
                     "versionPriority": 10, "insecureSkipTLSVerify": true,
                     "service": {"namespace": "kube-system", "name": "hang"}}});
        let file = dir.path().join("apiservice.json");
        std::fs::write(&file, apiservice.to_string()).unwrap();
        let created = c.kubectl(&["create", "--validate=false", "-f", file.to_str().unwrap()]);
        assert!(created.status.success(), "{}", describe(&created));
        front.set_rules(vec![Rule::path("/apis/hang.cpkit.dev/", Fault::NeverAnswer)]);
        let (report, out, took) = cphealth_json(&env, &["--skip", "etcd,load"]);
        assert!(took < LIMIT, "{took:?}: {}", describe(&out));
        let aggregated = check(&report, "aggregated-apis");
        assert_ne!(aggregated["status"], "OK", "{}", describe(&out));
        assert!(aggregated["message"].as_str().unwrap_or("").contains("v1alpha1.hang.cpkit.dev"), "{aggregated}");
        let subs = aggregated["subchecks"].to_string();
        assert!(subs.contains("did not answer within"), "{aggregated}");
        assert_eq!(check(&report, "health")["status"], "OK", "{}", describe(&out));
        assert!(c.kubectl(&["delete", "apiservice", "v1alpha1.hang.cpkit.dev"]).status.success());

        // apftop without the request dump: levels still shown, the flows explained.
        front.set_rules(vec![Rule::path(
            "/debug/api_priority_and_fairness/dump_requests",
            Fault::Status { code: 403, retry_after: None },
        )]);
        let (out, took) = run(&["apftop", "--once", "--interval", "300ms", "--color", "never"], &env);
        let (stdout, stderr) = text(&out);
        assert!(took < LIMIT, "{took:?}");
        assert!(out.status.code().is_some_and(|c| c <= 1), "{}", describe(&out));
        assert!(stdout.contains("workload-high"), "levels are shown: {stdout}");
        assert!(format!("{stdout}{stderr}").contains("/debug/api_priority_and_fairness"), "{}", describe(&out));

        // webhookguard on a server without ValidatingAdmissionPolicy: webhooks still scanned.
        front.set_rules(vec![Rule::path(
            "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolic",
            Fault::Status { code: 404, retry_after: None },
        )]);
        let (out, took) = run(&["webhookguard", "-o", "json"], &env);
        assert!(took < LIMIT, "{took:?}");
        assert!(out.status.code().is_some_and(|c| c <= 1), "{}", describe(&out));
        let scan: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", describe(&out)));
        assert!(scan["configurations"].is_array(), "{scan}");

        // A write that conflicts: nothing is changed, the message says why.
        let hook = serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "cpkit-conflict"},
            "webhooks": [{"name": "conflict.cpkit.dev", "failurePolicy": "Fail", "sideEffects": "None",
                          "admissionReviewVersions": ["v1"],
                          "clientConfig": {"service": {"namespace": "default", "name": "nowhere", "port": 443}},
                          "rules": [{"apiGroups": ["cpkit.dev"], "apiVersions": ["*"], "operations": ["CREATE"], "resources": ["things"]}]}]});
        let file = dir.path().join("hook.json");
        std::fs::write(&file, hook.to_string()).unwrap();
        assert!(c.kubectl(&["create", "--validate=false", "-f", file.to_str().unwrap()]).status.success());
        front.set_rules(vec![
            Rule::method("PATCH", "/apis/admissionregistration.k8s.io/", Fault::Status { code: 409, retry_after: None }),
            Rule::method("PUT", "/apis/admissionregistration.k8s.io/", Fault::Status { code: 409, retry_after: None }),
        ]);
        let backups = dir.path().join("backups");
        let (out, _) = run(
            &["webhookguard", "disarm", "cpkit-conflict", "--mode", "ignore", "--yes", "--backup-dir", backups.to_str().unwrap()],
            &env,
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(format!("{stdout}{stderr}").contains("changed since it was read"), "{}", describe(&out));
        let now = c.kubectl(&["get", "validatingwebhookconfiguration", "cpkit-conflict", "-o", "json"]);
        let now: Value = serde_json::from_slice(&now.stdout).unwrap();
        assert_eq!(now["webhooks"][0]["failurePolicy"], "Fail", "the configuration was changed");
        front.set_rules(vec![]);
    }
}

in_both_worlds! {
    fn a_replica_that_dies_between_two_calls_leaves_the_others_reported(world) {
        let c = start(world, Scenario::HealthyHa);
        // apftop samples twice, 3 s apart; the third replica dies in between.
        let env = c.env();
        cpkit_e2e::path_with_plugins();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let out = kubectl(&["apftop", "--once", "--interval", "3s", "--color", "never", TIMEOUT], &env);
            (out, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(1500));
        c.stop_apiserver_replica(2);
        let (out, took) = handle.join().unwrap();
        let (stdout, _) = text(&out);
        assert_ne!(out.status.code(), Some(101), "{}", describe(&out));
        assert!(took < Duration::from_secs(3) + LIMIT, "{took:?}");
        assert!(stdout.contains("workload-high"), "the other replicas are reported: {}", describe(&out));
    }
}

/// A DNS lookup that fails: the plugins run in a mount namespace whose resolv.conf points at a
/// loopback port nobody serves, so the lookup fails without leaving the machine.
#[test]
fn a_failing_dns_lookup_is_named() {
    let unshare = which::which("unshare").expect("unshare (util-linux) is needed for the DNS test");
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n").unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: [{name: c, cluster: {server: \"https://api.cpkit-missing.example:6443\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n",
    )
    .unwrap();
    for command in COMMANDS {
        let script = format!(
            "mount --bind {} /etc/resolv.conf && mount --bind {} /etc/hosts && exec \"$@\"",
            resolv.display(),
            hosts.display()
        );
        let mut cmd = std::process::Command::new(&unshare);
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script, "sh", "kubectl"]);
        cmd.args(command.iter())
            .arg(TIMEOUT)
            .env("KUBECONFIG", &kubeconfig)
            .env("PATH", cpkit_e2e::path_with_plugins());
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let took = started.elapsed();
        let (stdout, stderr) = text(&out);
        assert!(!stderr.contains("mount:"), "the DNS test needs mount namespaces (root): {stderr}");
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", describe(&out));
        assert!(format!("{stdout}{stderr}").contains("api.cpkit-missing.example"), "{command:?}: {}", describe(&out));
        assert!(format!("{stdout}{stderr}").contains("DNS"), "{command:?}: {}", describe(&out));
        assert!(took < LIMIT, "{command:?} took {took:?}");
    }
}
