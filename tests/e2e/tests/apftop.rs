//! `kubectl apftop` end to end against the test kit's clusters, through kubectl: the flooding
//! client of apf-overload, explain with the API server's confirmation, config lint, a replica
//! that does not answer, missing permissions, and flowcontrol v1beta3 on an older server. The
//! scenarios a real control plane can produce run in both worlds with the same body.

use cpkit_e2e::{describe, in_both_worlds, kubectl, start, text};
use serde_json::Value;
use testkit::scenario::Options;
use testkit::{DemoCluster, Scenario, World};

fn once(c: &DemoCluster, extra: &[&str]) -> (std::process::Output, Value) {
    let mut args = vec!["apftop", "--once", "--interval", "800ms", "-o", "json"];
    args.extend_from_slice(extra);
    let out = kubectl(&args, &c.env());
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)));
    (out, json)
}

fn level<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["total"]["levels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no level {name}"))
}

in_both_worlds! {
    fn apf_overload_shows_the_flooding_client_and_its_rejections(world) {
        let c = start(world, Scenario::ApfOverload);
        let flooder = c.facts.flooding_user.clone().unwrap();
        let (out, doc) = once(&c, &[]);
        // Workload traffic refused is a WARNING, as cphealth's load check says for the same state.
        // Each assertion prints what it read: a CI log keeps only the first lines of a failure.
        let levels_seen = || {
            doc["snapshot"]["total"]["levels"].as_array().map_or(String::new(), |ls| {
                ls.iter().map(|l| format!("{}: rejected {}", l["name"], l["rejectedPerSecond"])).collect::<Vec<_>>().join("; ")
            })
        };
        assert_eq!(out.status.code(), Some(1), "levels: {}; replicas: {}; {}", levels_seen(), doc["snapshot"]["replicas"], describe(&out));
        assert_eq!((doc["kind"].as_str(), doc["verdict"].as_str()), (Some("ApfSnapshot"), Some("WARNING")));
        let s = &doc["snapshot"];
        assert_eq!(s["replicas"].as_array().unwrap().len(), 3, "every replica is scraped");
        assert!(s["replicas"].as_array().unwrap().iter().all(|r| r["ok"] == true), "{}", s["replicas"]);
        // The flooding service account is the top flow, queued on workload-low.
        let top = &s["flows"][0];
        assert_eq!(top["user"], flooder.as_str(), "{}", s["flows"]);
        assert!(top["queued"].as_u64().unwrap() > 0, "{top}");
        assert_eq!(top["priorityLevels"][0], "workload-low", "{top}");
        // APF state is per replica: the flooder's connections land on one replica.
        let flow_of = |user: &str| s["flows"].as_array().unwrap().iter().find(|f| f["user"] == user).cloned().unwrap();
        assert_eq!(top["replicas"], serde_json::json!([c.facts.hot_replica.clone().unwrap()]), "{top}");
        // Each replica executes apftop's own dump request while it dumps: that is the
        // measurement, not load, so it is left out of the flows and counted apart.
        let flows = s["flows"].as_array().unwrap();
        assert!(
            flows.iter().all(|f| !f["topRequest"].as_str().unwrap_or("").contains("/debug/api_priority_and_fairness")),
            "apftop's own requests are no flow: {}",
            s["flows"]
        );
        if world == World::Sim {
            // (In the real world kwok heartbeats as kubernetes-admin: a flow of its own.)
            let users: Vec<&str> = flows.iter().filter_map(|f| f["user"].as_str()).collect();
            assert!(!users.contains(&"kubernetes-admin"), "apftop's own requests are no flow: {users:?}");
        }
        assert!(s["observerRequests"].as_u64().unwrap_or(0) >= 3, "one dump request per replica: {}", s["observerRequests"]);
        // The exempt level never queues nor rejects: its seats in use are no utilisation (the
        // real world read "75% (cp-3 100%)" there).
        let table = kubectl(&["apftop", "--once", "--interval", "300ms", "--color", "never"], &c.env());
        let (text_out, _) = text(&table);
        let exempt = text_out.lines().find(|l| l.starts_with("exempt ")).unwrap_or_else(|| panic!("{text_out}"));
        assert!(exempt.trim_end().ends_with(" -"), "{text_out}");
        // The flows account for the queues: what the dumps list of workload-low's queue is
        // what the flows hold, and the rest is counted as unattributed.
        let queued_in_flows: u64 = s["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["priorityLevels"] == serde_json::json!(["workload-low"]))
            .map(|f| f["queued"].as_u64().unwrap())
            .sum();
        let low_queue = s["queueAttribution"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["priorityLevel"] == "workload-low")
            .cloned()
            .unwrap_or_else(|| panic!("workload-low has a queue: {}", s["queueAttribution"]));
        assert_eq!(low_queue["inFlows"].as_u64(), Some(queued_in_flows), "{low_queue}");
        let (queued, unattributed) = (low_queue["queued"].as_f64().unwrap(), low_queue["unattributed"].as_f64().unwrap());
        assert_eq!(unattributed, (queued - queued_in_flows as f64).max(0.0), "{low_queue}");
        if world == World::Sim {
            // The simulator also has jenkins creating pods on another replica.
            let jenkins = flow_of("system:serviceaccount:ci-cd:jenkins");
            assert_eq!(jenkins["replicas"].as_array().unwrap().len(), 1, "{jenkins}");
            assert_ne!(top["replicas"], jenkins["replicas"]);
        }
        // Its level rejects, for the right reasons; the others do not.
        let low = level(s, "workload-low");
        assert!(low["rejectedPerSecond"]["queue-full"].as_f64().unwrap() > 10.0, "{low}");
        if world == World::Sim {
            // Requests that waited too long (the simulator's flood waits 8 s; the real one backs off).
            assert!(low["rejectedPerSecond"]["time-out"].as_f64().unwrap() > 0.0, "{low}");
        }
        assert!(low["waitP99Seconds"].as_f64().unwrap() > 0.5, "{low}");
        // The sum over replicas does not hide the hot one: it is named beside the sum.
        let hot = &low["hottestReplica"];
        assert_eq!(hot["replica"].as_str(), c.facts.hot_replica.as_deref(), "{low}");
        let summed = low["executingSeats"].as_f64().unwrap() / low["nominalSeats"].as_f64().unwrap();
        assert!(hot["utilisation"].as_f64().unwrap_or(0.0) > summed, "{low}");
        for other in ["system", "workload-high", "global-default", "node-high", "leader-election"] {
            let l = level(s, other);
            assert!(l["rejectedPerSecond"].as_object().unwrap().values().all(|v| v == 0.0), "{l}");
        }
        assert!(s["total"]["status429PerSecond"].as_f64().unwrap_or(0.0) > 0.0, "{}", s["total"]);

        // The same as a table, the way a person reads it when stdout is not a terminal.
        let out = kubectl(&["apftop", "--interval", "500ms", "--color", "never"], &c.env());
        let (stdout, _) = text(&out);
        assert!(stdout.starts_with("APF WARNING — apf-overload · 3 replicas"), "{stdout}");
        let flows = stdout.split("Top flows").nth(1).unwrap_or_else(|| panic!("{}", describe(&out)));
        assert!(flows.lines().nth(2).unwrap_or("").starts_with(&flooder), "{stdout}");
        let levels = stdout.split("Priority levels").nth(1).unwrap_or_else(|| panic!("{}", describe(&out)));
        let low_row = levels.lines().nth(2).unwrap_or("");
        assert!(low_row.starts_with("workload-low"), "sorted by rejections: {stdout}");
        let hot = c.facts.hot_replica.clone().unwrap();
        assert!(low_row.contains(&format!("({hot} ")), "the hot replica beside the sum: {low_row}");

        // explain names the schema, and the API server confirms it by impersonation.
        let out = kubectl(&["apftop", "explain", "--as", &flooder, "--resource", "pods", "-o", "json"], &c.env());
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let e: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", describe(&out)));
        assert_eq!(e["explanation"]["flowSchema"], "service-accounts", "{e}");
        assert_eq!(e["explanation"]["priorityLevel"], "workload-low");
        assert_eq!(e["explanation"]["flow"], flooder.as_str());
        assert_eq!(e["confirmation"]["confirmed"], true, "{e}");
        assert_eq!(e["explanation"]["runnersUp"], serde_json::json!(["global-default", "catch-all"]));

        // config: the rejecting level is a finding, and the suggestion isolates the flooder.
        let out = kubectl(&["apftop", "config", "--sample", "800ms", "-o", "json"], &c.env());
        let cfg: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
        assert_eq!(cfg["apiVersionRead"], "flowcontrol.apiserver.k8s.io/v1");
        let finding = cfg["findings"]
            .as_array()
            .and_then(|fs| fs.iter().find(|f| f["kind"] == "RejectingAtLimit"))
            .unwrap_or_else(|| panic!("no RejectingAtLimit finding: {}", cfg["findings"]));
        assert_eq!(finding["object"], "prioritylevelconfiguration/workload-low", "{finding}");
        assert_eq!(cfg["suggestion"]["user"], flooder.as_str(), "{}", cfg["suggestion"]);
        assert_eq!(cfg["suggestion"]["objects"][1]["kind"], "FlowSchema");
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    }
}

in_both_worlds! {
    fn healthy_ha_has_no_rejections(world) {
        let c = start(world, Scenario::HealthyHa);
        let (out, doc) = once(&c, &[]);
        let s = &doc["snapshot"];
        assert_eq!(doc["verdict"], "OK", "{}", describe(&out));
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(s["total"]["ratesKnown"], true);
        for l in s["total"]["levels"].as_array().unwrap() {
            assert!(l["rejectedPerSecond"].as_object().unwrap().values().all(|v| v == 0.0), "{l}");
        }
        assert_eq!(s["total"]["status429PerSecond"], 0.0);
        // --per-replica splits the levels by replica in the table.
        let out = kubectl(&["apftop", "--once", "--per-replica", "--interval", "300ms", "--color", "never"], &c.env());
        let (stdout, _) = text(&out);
        let header = stdout.lines().find(|l| l.starts_with("REPLICA")).unwrap_or_else(|| panic!("{stdout}"));
        assert!(header.contains("PRIORITY LEVEL"));
        for node in &c.facts.control_plane_nodes {
            assert!(stdout.lines().any(|l| l.starts_with(node.as_str()) && l.contains("workload-low")), "{node}: {stdout}");
        }
    }
}

in_both_worlds! {
    fn a_replica_that_does_not_answer_is_shown_while_the_others_report(world) {
        let c = start(world, Scenario::ApiserverReplicaDown);
        let down = c.facts.down_replica.clone().unwrap();
        let (out, doc) = once(&c, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let replicas = doc["snapshot"]["replicas"].as_array().unwrap();
        let bad = replicas.iter().find(|r| r["name"] == down.as_str()).unwrap();
        assert_eq!(bad["ok"], false);
        // Judged down by what the API says (its static pod), not dialled again.
        assert!(bad["error"].as_str().unwrap().starts_with("down: its static pod is CrashLoopBackOff"), "{bad}");
        assert!(bad["error"].as_str().unwrap().contains("refuses connections"), "{bad}");
        assert_eq!(replicas.iter().filter(|r| r["ok"] == true).count(), 2);
        assert!(!doc["snapshot"]["total"]["levels"].as_array().unwrap().is_empty());
    }
}

in_both_worlds! {
    fn a_replica_whose_etcd_is_gone_is_cut_off_not_waited_for(world) {
        // Beside a dead etcd member, kube-apiserver answers /metrics only after its 20 s etcd
        // dial timeout; each sample waits a few seconds past the other replicas' answers, not
        // the request timeout (30 s here: two samples would take 40 s).
        let c = start(world, Scenario::EtcdMemberDown);
        let down = c.facts.down_etcd_member.clone().unwrap();
        let started = std::time::Instant::now();
        let (out, doc) = once(&c, &["--request-timeout", "30s"]);
        let took = started.elapsed();
        let replicas = doc["snapshot"]["replicas"].as_array().unwrap();
        let late = replicas.iter().find(|r| r["name"] == down.as_str()).unwrap_or_else(|| panic!("{}", describe(&out)));
        assert_eq!(late["ok"], false, "{late}");
        assert!(late["error"].as_str().unwrap().contains("no answer 3"), "{late}");
        assert!(late["error"].as_str().unwrap().contains("after another replica answered"), "{late}");
        assert_eq!(replicas.iter().filter(|r| r["ok"] == true).count(), 2, "{}", describe(&out));
        assert!(took < std::time::Duration::from_secs(38), "{took:?}: {}", describe(&out));
        // One replica late while the others answer weighs as the verdict does: a WARNING.
        let table = kubectl(&["apftop", "--once", "--interval", "300ms", "--color", "never"], &c.env());
        let (stdout, _) = text(&table);
        assert!(stdout.starts_with("APF WARNING"), "{stdout}");
        assert!(stdout.contains(&format!("\n  WARNING {down}: GET /metrics on {down}: no answer")), "{stdout}");
    }
}

in_both_worlds! {
    fn missing_permissions_degrade_with_a_note(world) {
        let c = start(world, Scenario::RbacLimited);
        let out = kubectl(&["apftop", "--once", "--interval", "300ms", "--color", "never"], &c.env());
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
        assert!(stdout.starts_with("APF UNKNOWN"), "{stdout}");
        // A refusal is an answer (it read "no answer: cp-1, cp-2, cp-3", and "rates after the next refresh").
        assert!(stdout.contains("0/3 replicas (not permitted: cp-1, cp-2, cp-3)"), "{stdout}");
        assert!(stdout.contains("rates unknown") && !stdout.contains("next refresh"), "{stdout}");
        assert!(
            stdout.contains("cp-1, cp-2, cp-3: Permission denied for GET /metrics"),
            "one line for all replicas: {stdout}"
        );
        assert!(stdout.contains("needs get on nonResourceURL /debug/api_priority_and_fairness/*"), "{stdout}");
    }
}

#[test]
fn older_servers_are_read_through_v1beta3() {
    let c = DemoCluster::start_with(Scenario::HealthyHa, Options { minor: 28, ..Default::default() }).unwrap();
    let out = kubectl(
        &[
            "apftop",
            "explain",
            "--as",
            "system:serviceaccount:kube-system:coredns",
            "--resource",
            "endpoints",
            "-o",
            "json",
        ],
        &c.env(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["apiVersionRead"], "flowcontrol.apiserver.k8s.io/v1beta3");
    assert_eq!(e["explanation"]["flowSchema"], "kube-system-service-accounts");
    assert_eq!(e["confirmation"]["confirmed"], true, "{e}");
    // Without --as, explain is a usage error.
    let out = kubectl(&["apftop", "explain", "--resource", "pods"], &c.env());
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
}
