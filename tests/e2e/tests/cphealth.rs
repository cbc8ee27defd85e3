//! `kubectl cphealth` against every scenario of the test kit, run as users run it (through the
//! real kubectl, with the plugin on PATH). The JSON report is asserted, not just the exit code.
//! Each scenario that a real control plane can produce runs in both worlds with the same body.

use cpkit_e2e::{describe, in_both_worlds, kubectl, start, text};
use serde_json::Value;
use testkit::{DemoCluster, Scenario, World};

fn cphealth(c: &DemoCluster, args: &[&str]) -> (std::process::Output, Value) {
    let mut all = vec!["cphealth", "-o", "json", "--sample", "600ms"];
    all.extend_from_slice(args);
    let out = kubectl(&all, &c.env());
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)));
    // Every message is one line that fits the MESSAGE column of a 120-column table.
    for c in json["checks"].as_array().into_iter().flatten() {
        let m = c["message"].as_str().unwrap_or("");
        assert!(m.chars().count() <= 120 && !m.contains('\n'), "{}: {} chars: {m}", c["name"], m.chars().count());
    }
    (out, json)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name}"))
}

fn status(report: &Value, name: &str) -> String {
    check(report, name)["status"].as_str().unwrap().to_string()
}

fn message(report: &Value, name: &str) -> String {
    check(report, name)["message"].as_str().unwrap().to_string()
}

/// The diagnosis' likely cause and the checks it explains.
fn diagnosis(report: &Value) -> (String, Vec<String>) {
    let d = &report["diagnosis"];
    let consequences = d["consequences"]
        .as_array()
        .map(|a| a.iter().map(|c| c["check"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default();
    (d["likelyCause"]["check"].as_str().unwrap_or("").to_string(), consequences)
}

in_both_worlds! {
    fn healthy_ha_is_all_ok(world) {
        let c = start(world, Scenario::HealthyHa);
        let (out, r) = cphealth(&c, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert_eq!(r["apiVersion"], "cpkit.dev/v1alpha1");
        assert_eq!(r["kind"], "HealthReport");
        assert_eq!(r["verdict"], "OK");
        assert_eq!(r["checks"].as_array().unwrap().len(), 11);
        assert!(r["diagnosis"].is_null(), "nothing to diagnose: {}", r["diagnosis"]);
        for c in r["checks"].as_array().unwrap() {
            assert_eq!(c["status"], "OK", "{c}");
        }
        assert!(message(&r, "replicas").contains("3 replicas answer and are ready"));
        assert!(message(&r, "etcd").starts_with("3/3 members healthy"));
        // Each member's served certificate is read, whether its image has a shell or not (3.6's
        // has none).
        let etcd_subchecks = check(&r, "etcd")["subchecks"].as_array().unwrap();
        let certificates: Vec<&Value> =
            etcd_subchecks.iter().filter(|s| s["name"].as_str().unwrap_or("").starts_with("certificate ")).collect();
        assert_eq!(certificates.len(), 3, "{}", check(&r, "etcd"));
        for s in certificates {
            assert_eq!(s["status"], "OK", "{s}");
            assert!(s["message"].as_str().unwrap_or("").contains(" expires "), "{s}");
        }
        assert!(message(&r, "static-pods").starts_with("12/12 control-plane pods Ready on 3 nodes"));
        assert_eq!(r["version"], c.git_version().as_str());
        if world == World::Sim {
            // The /metrics scrapes (3.2 MB each) travel gzip-compressed, as a real apiserver
            // sends them to a client that asks, and the load check read them.
            assert!(c.apiserver().sim.gzipped.load(std::sync::atomic::Ordering::Relaxed) >= 6, "two scrapes of 3 replicas");
        }
        assert!(message(&r, "load").starts_with("inflight "), "{}", message(&r, "load"));
        assert!(message(&r, "resources").starts_with("3 replicas, 3 etcd members: file descriptors at most"), "{}", check(&r, "resources"));
        // The table lists passed checks too, and -o wide adds duration and evidence.
        let table = kubectl(&["cphealth", "--sample", "300ms", "-o", "wide"], &c.env());
        let (stdout, _) = text(&table);
        assert!(stdout.contains("Verdict:  OK — 11 checks: 11 OK"), "{stdout}");
        assert!(stdout.lines().any(|l| l.starts_with("CHECK") && l.contains("DURATION") && l.contains("EVIDENCE")));
        assert!(stdout.lines().any(|l| l.starts_with("leader-election ") && l.contains("OK")));
    }
}

in_both_worlds! {
    fn etcd_member_down_is_a_warning_naming_the_member(world) {
        let c = start(world, Scenario::EtcdMemberDown);
        let (out, r) = cphealth(&c, &["--verbose", "--request-timeout", "30s"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert_eq!(r["verdict"], "WARNING");
        assert_eq!(status(&r, "etcd"), "WARNING");
        assert!(message(&r, "etcd").contains("member cp-3 down, quorum kept (2 of 3 healthy"), "{}", message(&r, "etcd"));
        let subs = check(&r, "etcd")["subchecks"].as_array().unwrap();
        assert!(subs.iter().any(|s| s["name"] == "member cp-3" && s["status"] == "CRITICAL"));
        assert!(message(&r, "static-pods").contains("etcd-cp-3 CrashLoopBackOff"));
        assert!(message(&r, "health").contains("fails on cp-3"), "its apiserver lost its local etcd");
        // Beside the dead member, kube-apiserver answers /metrics only after its 20 s etcd dial
        // timeout: that replica is cut off a few seconds after the others answered, not waited
        // for to the request timeout (30 s here).
        let load = check(&r, "load");
        assert_eq!(load["status"], "OK", "{load}");
        let evidence = load["evidence"].as_array().unwrap();
        assert!(evidence.iter().any(|e| e["name"] == "not scraped" && e["value"].as_str().unwrap_or("").starts_with("cp-3: ")), "{load}");
        assert!(load["durationSeconds"].as_f64().unwrap() < 19.0, "{load}");
        // One root cause: the member; its replica's readyz and its static pod follow from it.
        let (cause, follows) = diagnosis(&r);
        assert_eq!(cause, "etcd", "{}", r["diagnosis"]);
        assert_eq!(r["diagnosis"]["likelyCause"]["rule"], "etcd-member-down");
        for effect in ["health", "static-pods"] {
            assert!(follows.iter().any(|f| f == effect), "{effect}: {}", r["diagnosis"]);
        }
    }
}

in_both_worlds! {
    fn leader_lost_is_critical_on_the_scheduler_lease(world) {
        let c = start(world, Scenario::LeaderLost);
        let (out, r) = cphealth(&c, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert_eq!(status(&r, "leader-election"), "CRITICAL");
        let m = message(&r, "leader-election");
        assert!(m.contains("kube-scheduler: stale — cp-") && m.contains("no active leader"), "{m}");
        // The healthy lease is a sub-check; the message leads with the problem.
        assert!(check(&r, "leader-election")["subchecks"].to_string().contains("leader cp-"), "{}", check(&r, "leader-election"));
        let (cause, follows) = diagnosis(&r);
        assert_eq!((cause.as_str(), follows), ("static-pods", vec!["leader-election".to_string()]), "{}", r["diagnosis"]);
    }
}

in_both_worlds! {
    fn expired_serving_certificate_is_critical_with_its_date(world) {
        let c = start(world, Scenario::CertsExpired);
        let (out, r) = cphealth(&c, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert_eq!(r["verdict"], "CRITICAL");
        let date = cpkit::duration::format_time(c.facts.serving_cert_not_after.unwrap());
        let m = message(&r, "apiserver");
        assert!(m.contains(&format!("serving certificate kube-apiserver expired on {date} (3d ago)")), "{m}");
        assert!(check(&r, "apiserver")["remediation"].to_string().contains("kubeadm certs renew all"));
        assert_eq!(status(&r, "etcd"), "SKIPPED", "nothing else can be read");
        // -v tells the error in one paragraph.
        let table = kubectl(&["cphealth", "--sample", "0", "-v"], &c.env());
        assert!(text(&table).0.contains("x509: certificate has expired"), "{}", describe(&table));
    }
}

in_both_worlds! {
    fn expiring_certificates_warn(world) {
        let c = start(world, Scenario::CertsExpiring);
        let (out, r) = cphealth(&c, &["--only", "apiserver,replicas,etcd"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let m = message(&r, "apiserver");
        let date = cpkit::duration::format_time(c.facts.serving_cert_not_after.unwrap());
        assert!(m.contains(&format!("serving certificate kube-apiserver expires {date}")), "{m}");
        assert!(m.contains("client certificate kubernetes-admin: 2"), "{m}");
        assert!(m.ends_with("d left"), "{m}");
        assert!(message(&r, "replicas").contains(&format!("serving certificate of cp-1, cp-2, cp-3 expires {date}")), "{}", message(&r, "replicas"));
        // etcd's server certificates, read from what each member serves: the fact leads.
        assert_eq!(status(&r, "etcd"), "WARNING", "{}", check(&r, "etcd"));
        let m = message(&r, "etcd");
        let etcd_date = cpkit::duration::format_time(c.facts.etcd_cert_not_after.unwrap());
        assert!(m.starts_with("etcd server certificates of all 3 members: 1"), "{m}");
        assert!(m.contains("d left; 3/3 members healthy"), "{m}");
        let etcd_check = check(&r, "etcd");
        for node in &c.facts.control_plane_nodes {
            assert!(etcd_check["remediation"].to_string().contains(&format!("# on {node}")), "{etcd_check}");
            let sub = etcd_check["subchecks"].as_array().unwrap().iter().find(|s| s["name"] == format!("certificate {node}"));
            let sub = sub.unwrap_or_else(|| panic!("no certificate sub-check of {node}: {etcd_check}"));
            assert_eq!(sub["status"], "WARNING", "{sub}");
            assert!(sub["message"].as_str().unwrap().contains(&format!(" expires {etcd_date} (in 1")), "{sub}");
        }
        assert_eq!(r["checks"].as_array().unwrap().len(), 3, "--only");
        // The API server's certificate seen twice (load balancer, replicas) is one fix, printed once.
        let table = kubectl(&["cphealth", "--sample", "0", "--only", "apiserver,replicas,etcd"], &c.env());
        let (table, _) = text(&table);
        assert_eq!(table.lines().filter(|l| l.trim() == "$ kubeadm certs renew all").count(), 1, "{table}");
        // The etcd and admin.conf renewals say that one covers them too.
        assert_eq!(table.matches("`kubeadm certs renew all` renews").count(), 2, "{table}");
        assert!(table.contains("apiserver, replicas: Renew the control-plane certificates"), "{table}");
    }
}

in_both_worlds! {
    fn webhook_lockout_is_critical_naming_the_webhook(world) {
        let c = start(world, Scenario::WebhookLockout);
        // Users keep trying to write while cphealth samples: the failing calls to the webhook
        // are what the load check's rates see (a quiet cluster makes none in the window).
        let done = std::sync::atomic::AtomicBool::new(false);
        let (out, r) = std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0.. {
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let _ = c.kubectl(&["create", "configmap", &format!("blocked-{i}"), "-n", "default"]);
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
            std::thread::sleep(std::time::Duration::from_millis(300));
            let result = cphealth(&c, &["--sample", "2s"]);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            result
        });
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert_eq!(status(&r, "webhooks"), "CRITICAL");
        let m = message(&r, "webhooks");
        assert!(
            m.starts_with(
                "validate.pod.com (pod-validator): LIVE OUTAGE: service default/pod-validator has no ready endpoints"
            ),
            "{m}"
        );
        assert!(
            check(&r, "webhooks")["remediation"]
                .to_string()
                .contains("kubectl webhookguard disarm validatingwebhookconfiguration/pod-validator --webhook validate.pod.com --mode ignore --yes")
        );
        assert!(message(&r, "load").contains("calls to webhook validate.pod.com fail"), "{}", message(&r, "load"));
        // The webhook matches */* with every operation: CONNECT on pods/exec too. etcd is not
        // judged down for it; the check names the webhook instead.
        assert_eq!(status(&r, "etcd"), "UNKNOWN", "{}", message(&r, "etcd"));
        assert!(message(&r, "etcd").starts_with("exec into the etcd pods is refused by admission webhook validate.pod.com"));
        // cp-2's scheduler restarted: its mirror pod was deleted and the webhook refuses the new one.
        let mirror = c.facts.refused_mirror_pod.clone().expect("the lockout scenario names the refused mirror pod");
        assert_eq!(mirror, "kube-scheduler-cp-2");
        assert_eq!(status(&r, "static-pods"), "WARNING", "{}", message(&r, "static-pods"));
        assert!(message(&r, "static-pods").starts_with("kube-scheduler missing on cp-2"), "{}", message(&r, "static-pods"));
        let (cause, follows) = diagnosis(&r);
        assert_eq!(cause, "webhooks", "{}", r["diagnosis"]);
        for effect in ["etcd", "load", "static-pods"] {
            assert!(follows.contains(&effect.to_string()), "{effect}: {}", r["diagnosis"]);
        }
        let because = r["diagnosis"]["consequences"].to_string();
        assert!(because.contains("kube-system pods cannot be recreated while the webhook refuses them"), "{because}");
        assert!(r["diagnosis"]["firstAction"].as_str().unwrap().contains("kubectl webhookguard disarm validatingwebhookconfiguration/pod-validator"));
        // "What to do" starts with the cause's fix; its consequences' fixes come last (they
        // came in check order: static-pods, leader-election and etcd before the webhook).
        let table = kubectl(&["cphealth", "--sample", "0", "--only", "static-pods,etcd,webhooks"], &c.env());
        let (table, _) = text(&table);
        let todo = table.split("What to do:\n").nth(1).unwrap_or_else(|| panic!("{table}"));
        assert!(todo.starts_with("webhooks: Diagnose first"), "{table}");
        assert_eq!(table.matches("Diagnose first").count(), 1, "the cause's fix is said once: {table}");
        assert!(todo.find("static-pods:") > todo.find("webhooks:"), "{table}");
    }
}

in_both_worlds! {
    fn a_replica_short_of_file_descriptors_is_named_with_the_fix(world) {
        let c = start(world, Scenario::ApiserverFdsExhausted);
        let short = c.facts.fd_short_replica.clone().expect("the scenario names its replica");
        let (out, r) = cphealth(&c, &["--sample", "1s"]);
        let status = status(&r, "resources");
        let expected_exit = if status == "CRITICAL" { 2 } else { 1 };
        assert!(status == "WARNING" || status == "CRITICAL", "{status}: {}", message(&r, "resources"));
        assert_eq!(out.status.code(), Some(expected_exit), "{}", describe(&out));
        let m = message(&r, "resources");
        assert!(m.starts_with(&format!("{short}: ")) && m.contains("file descriptors open"), "{m}");
        let resources = check(&r, "resources");
        let fix = resources["remediation"].to_string();
        assert!(fix.contains(&format!("kubectl logs -n kube-system kube-apiserver-{short}")), "{fix}");
        assert!(fix.contains("LimitNOFILE"), "{fix}");
        // The other replicas are fine, and say so with their numbers.
        for sub in resources["subchecks"].as_array().unwrap() {
            let about_short = sub["name"] == format!("replica {short}");
            assert_eq!(sub["status"] != "OK", about_short, "{sub}");
            assert!(sub["message"].as_str().unwrap().contains("file descriptors open"), "{sub}");
        }
        assert_eq!(diagnosis(&r).0, "resources", "{}", r["diagnosis"]);
    }
}

in_both_worlds! {
    fn a_replica_down_behind_the_load_balancer_is_a_warning(world) {
        let c = start(world, Scenario::ApiserverReplicaDown);
        let (out, r) = cphealth(&c, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert_eq!(status(&r, "replicas"), "WARNING");
        assert!(
            message(&r, "replicas").starts_with("replica cp-3 (static pod CrashLoopBackOff, 9 restarts) down while the load balancer answers"),
            "{}",
            message(&r, "replicas")
        );
        let subs = check(&r, "replicas")["subchecks"].to_string();
        assert!(subs.contains("refuses connections from this machine"), "{subs}");
        assert!(check(&r, "replicas")["remediation"].to_string().contains("kubectl logs -n kube-system kube-apiserver-cp-3 --previous"));
        assert!(check(&r, "replicas")["remediation"][0]["action"].as_str().unwrap().starts_with("On cp-3: "), "{}", check(&r, "replicas"));
        assert_eq!(status(&r, "apiserver"), "OK");
        // The replicas and static-pods fixes both point at that pod's logs: printed once.
        let table = kubectl(&["cphealth", "--sample", "0"], &c.env());
        let (table, _) = text(&table);
        assert_eq!(table.matches("$ kubectl logs -n kube-system kube-apiserver-cp-3 --previous --tail=100").count(), 1, "{table}");
    }
}

#[test]
fn managed_clusters_skip_what_they_cannot_see() {
    let c = DemoCluster::start(Scenario::Managed).unwrap();
    let (out, r) = cphealth(&c, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(r["managed"], "EKS");
    assert_eq!(r["verdict"], "OK");
    for name in ["static-pods", "etcd", "replicas"] {
        assert_eq!(status(&r, name), "SKIPPED", "{name}");
        assert!(message(&r, name).contains("managed control plane (EKS)"), "{name}: {}", message(&r, name));
    }
    assert_eq!(status(&r, "leader-election"), "OK");
    // Not applicable is SKIPPED and leaves the verdict alone; not permitted would be UNKNOWN.
    assert!(r["checks"].as_array().unwrap().iter().all(|c| c["missingPermission"].is_null()));
}

in_both_worlds! {
    fn limited_rights_are_unknown_naming_the_permission(world) {
        let c = start(world, Scenario::RbacLimited);
        let (out, r) = cphealth(&c, &[]);
        // Nothing was verified for those checks: UNKNOWN (exit 3), never a silent OK.
        assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
        assert_eq!(r["verdict"], "UNKNOWN");
        assert_eq!(r["context"], "rbac-limited-ops-readonly");
        assert_eq!(message(&r, "leader-election"), "not permitted: needs get on leases.coordination.k8s.io in kube-system");
        assert_eq!(status(&r, "leader-election"), "UNKNOWN");
        assert_eq!(check(&r, "leader-election")["missingPermission"], "get on leases.coordination.k8s.io in kube-system");
        assert_eq!(message(&r, "load"), "not permitted: needs get on /metrics");
        assert!(message(&r, "etcd").contains("create on pods/exec in kube-system"));
        assert_eq!(status(&r, "nodes"), "OK");
        // One line names the command that prints the role; the fix is given once.
        let table = kubectl(&["cphealth", "--sample", "0", "--color", "never"], &c.env());
        let (stdout, _) = text(&table);
        let access = stdout.lines().find(|l| l.starts_with("Access:")).unwrap_or_else(|| panic!("{stdout}"));
        assert!(access.contains("leader-election") && access.contains("load"), "{access}");
        assert!(access.ends_with("could not run for lack of permissions: `kubectl cphealth rbac` prints the read-only role"), "{access}");
        assert_eq!(stdout.matches("$ kubectl cphealth rbac").count(), 1, "{stdout}");
    }
}

in_both_worlds! {
    fn etcd_nospace_is_critical_with_the_alarm(world) {
        let c = start(world, Scenario::EtcdNospace);
        let (out, r) = cphealth(&c, &["--only", "etcd"]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let m = message(&r, "etcd");
        assert!(m.contains("NOSPACE alarm raised by") && m.contains("etcd refuses writes"), "{m}");
        // etcd 3.6 reports members with an active alarm as unhealthy: they still hold quorum.
        assert!(!m.contains("QUORUM LOST"), "{m}");
        assert!(check(&r, "etcd")["remediation"].to_string().contains("kubectl etcdsnap alarm disarm"));
    }
}

in_both_worlds! {
    fn etcd_nospace_is_the_root_cause_of_the_lost_leader_leases(world) {
        let c = start(world, Scenario::EtcdNospace);
        // Lease renewals are etcd writes: refused from the alarm on, so the leases go stale.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        let r = loop {
            let (_, r) = cphealth(&c, &["--only", "etcd,leader-election,health", "--sample", "0"]);
            if status(&r, "leader-election") != "OK" {
                break r;
            }
            assert!(std::time::Instant::now() < deadline, "the leases are still renewed: {}", message(&r, "leader-election"));
            std::thread::sleep(std::time::Duration::from_secs(3));
        };
        let (cause, follows) = diagnosis(&r);
        assert_eq!(cause, "etcd", "{}", r["diagnosis"]);
        assert_eq!(r["diagnosis"]["likelyCause"]["rule"], "etcd-nospace");
        assert!(follows.contains(&"leader-election".to_string()), "{}", r["diagnosis"]);
        assert!(r["diagnosis"]["summary"].as_str().unwrap().starts_with("likely cause: etcd → leader-election"));
        assert!(r["diagnosis"]["firstAction"].as_str().unwrap().contains("alarm"), "{}", r["diagnosis"]);
        // The table says it in words.
        let table = kubectl(&["cphealth", "--only", "etcd,leader-election", "--sample", "0", "--color", "never"], &c.env());
        let (stdout, _) = text(&table);
        assert!(stdout.contains("Diagnosis: likely cause: etcd → leader-election"), "{stdout}");
        assert!(stdout.contains("← leader-election:"), "{stdout}");
    }
}

#[test]
fn etcd_bloat_warns_with_its_free_pages() {
    let c = DemoCluster::start(Scenario::EtcdBloated).unwrap();
    let (_, r) = cphealth(&c, &["--only", "etcd,load"]);
    let m = message(&r, "etcd");
    assert_eq!(status(&r, "etcd"), "WARNING");
    assert!(m.contains("of the 56.0 MiB quota") && m.contains("free pages") && m.contains("defragment"), "{m}");
    assert!(message(&r, "load").contains("slow etcd requests (p99): listWithCount"), "{}", message(&r, "load"));
}

in_both_worlds! {
    fn apf_overload_rejects_on_the_hot_replica(world) {
        let c = start(world, Scenario::ApfOverload);
        // A real server rejects in bursts (clients back off): a longer window sees them.
        let (out, r) = cphealth(&c, &["--only", "load", "--sample", "2s"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let m = message(&r, "load");
        assert!(m.contains("APF rejects requests") && m.contains("workload-low queue-full"), "{m}");
        // Under APF the two inflight limits are one pool per replica; the flood's replica
        // holds the most.
        let hot = c.facts.hot_replica.clone().unwrap();
        let in_flight = |sub: &Value| {
            let text = sub["message"].as_str().unwrap_or("");
            text.split_once(": ").and_then(|(_, rest)| rest.split('/').next()?.parse::<u32>().ok()).unwrap_or(0)
        };
        let subs = check(&r, "load")["subchecks"].as_array().unwrap().clone();
        let inflight: Vec<&Value> = subs.iter().filter(|s| s["name"].as_str().unwrap().starts_with("inflight ")).collect();
        let most = inflight.iter().map(|s| in_flight(s)).max().unwrap();
        let hot_sub = inflight.iter().find(|s| s["name"] == format!("inflight {hot}").as_str()).unwrap();
        // The gauge is read at one instant: a tie at the top is the hot replica holding the most too.
        assert_eq!(in_flight(hot_sub), most, "{subs:?}");
    }
}

in_both_worlds! {
    fn aggregated_api_down_is_critical(world) {
        let c = start(world, Scenario::AggregatedApiDown);
        let (out, r) = cphealth(&c, &["--only", "aggregated-apis"]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            message(&r, "aggregated-apis")
                .starts_with("v1beta1.metrics.k8s.io (kube-system/metrics-server) unavailable for"),
            "{}",
            message(&r, "aggregated-apis")
        );
    }
}

#[test]
fn large_cluster_counts_every_node() {
    let c = DemoCluster::start(Scenario::LargeCluster).unwrap();
    let (_, r) = cphealth(&c, &["--only", "nodes"]);
    let m = message(&r, "nodes");
    assert!(m.contains("4997/5003 Ready (3 control-plane)"), "{m}");
    assert!(m.contains("6 workers NotReady (node-00013"), "{m}");
}

#[test]
fn an_unreachable_api_server_is_critical_with_the_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n").unwrap();
    let env = [("KUBECONFIG".to_string(), kubeconfig.display().to_string())];
    let out = kubectl(&["cphealth", "-o", "json"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The key fact in the message; the explanation and the fix in the sub-check and the fixes.
    assert_eq!(
        message(&r, "apiserver"),
        "Cannot connect to the API server at https://127.0.0.1:1 (connection refused)"
    );
    let request = check(&r, "apiserver")["subchecks"][0].clone();
    assert!(
        request["message"].as_str().unwrap().contains("nothing is listening at that address and port"),
        "{request}"
    );
    assert!(check(&r, "apiserver")["remediation"].to_string().contains("sport = :1"), "{}", check(&r, "apiserver"));
    assert_eq!(status(&r, "nodes"), "SKIPPED");
}

in_both_worlds! {
    fn several_contexts_at_once_and_watch(world) {
        let a = start(world, Scenario::HealthyHa);
        let b = start(world, Scenario::LeaderLost);
        let joined = format!("{}:{}", a.kubeconfig.display(), b.kubeconfig.display());
        let env = vec![("KUBECONFIG".to_string(), joined)];
        // Without the checks that time the machine (etcd's health-check latency, request
        // latency): two real control planes at once on two busy cores are slow for real, and
        // this test is about contexts, not about speed.
        let out = kubectl(
            &["cphealth", "--contexts", "healthy-ha,leader-lost", "--sample", "300ms", "--skip", "etcd,load"],
            &env,
        );
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let (stdout, _) = text(&out);
        let rows: Vec<&str> = stdout.lines().collect();
        assert!(rows[0].starts_with("CONTEXT"), "{stdout}");
        assert!(rows.iter().any(|l| l.starts_with("healthy-ha ") && l.contains("OK")), "{stdout}");
        // The ISSUE cell holds the first problem of the context. The scheduler's lease is the
        // stale one here; on two busy cores the controller-manager's 4 s lease of the kit can be
        // late too, and it sorts first (its own test names the scheduler).
        assert!(
            rows.iter().any(|l| l.starts_with("leader-lost ") && l.contains("CRITICAL") && l.contains("leader-election: kube-")),
            "{stdout}"
        );
        // --watch re-runs and reports changes.
        let mut child = std::process::Command::new(which::which("kubectl").unwrap())
            .args(["cphealth", "--watch", "--interval", "1s", "--sample", "0", "--only", "apiserver,leader-election"])
            .env("PATH", cpkit_e2e::path_with_plugins())
            .env("KUBECONFIG", a.kubeconfig.display().to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3500));
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.matches("every 1s").count() >= 2, "{stdout}");
        assert!(stdout.contains("Changed:"), "{stdout}");
    }
}

in_both_worlds! {
    fn an_add_on_webhook_with_a_dead_backend_is_a_warning_naming_what_is_blocked(world) {
        // A MetalLB-like webhook: Fail, only its own API group, its service gone. The control
        // plane is fine; MetalLB's objects cannot be changed.
        let c = start(world, Scenario::HealthyHa);
        let manifest = r#"{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "metallb-webhook-configuration"},
            "webhooks": [{"name": "ipaddresspoolvalidationwebhook.metallb.io", "failurePolicy": "Fail", "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {"namespace": "metallb-system", "name": "metallb-webhook-service", "path": "/validate-metallb-io-v1beta1-ipaddresspool"}},
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"], "resources": ["ipaddresspools"]}]}]}"#;
        let file = c.dir.join("metallb-webhook.json");
        std::fs::write(&file, manifest).unwrap();
        let applied = c.kubectl(&["create", "--validate=false", "-f", file.to_str().unwrap()]);
        assert!(applied.status.success(), "{}", describe(&applied));
        let (out, r) = cphealth(&c, &["--only", "webhooks"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert_eq!(status(&r, "webhooks"), "WARNING");
        let m = message(&r, "webhooks");
        assert!(
            m.starts_with("ipaddresspoolvalidationwebhook.metallb.io: backend down, resources of metallb.io cannot be created or changed"),
            "{m}"
        );
        let subs = check(&r, "webhooks")["subchecks"].to_string();
        assert!(subs.contains("service metallb-system/metallb-webhook-service does not exist"), "{subs}");
        let fixes = check(&r, "webhooks")["remediation"].to_string();
        assert!(fixes.contains("kubectl webhookguard disarm validatingwebhookconfiguration/metallb-webhook-configuration --webhook ipaddresspoolvalidationwebhook.metallb.io"), "{fixes}");
    }
}

#[test]
fn check_names_are_validated_with_a_suggestion() {
    let out = kubectl(&["cphealth", "--only", "etc"], &[]);
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("a similar value exists: 'etcd'"), "{stderr}");
    assert!(stderr.contains("static-pods, leader-election"), "the names are listed: {stderr}");
    // A check's name given as a word: the flag it belongs to is suggested.
    let out = kubectl(&["cphealth", "etcd"], &[]);
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("did you mean `kubectl cphealth --only etcd`?"), "{stderr}");
}
