//! Replicas whose own addresses cannot be dialled from the laptop (a bastion, an access proxy, a
//! private endpoint behind a public load balancer): the kit makes each kube-apiserver advertise
//! an address that accepts connections and never answers. Liveness then comes from the API
//! (identity leases, the EndpointSlice, the static pods), not from reachability.

use std::time::{Duration, Instant};

use cpkit_e2e::{describe, in_both_worlds, kubectl};
use serde_json::Value;
use testkit::scenario::Options;
use testkit::{DemoCluster, Scenario, World};

fn start_unreachable(world: World, scenario: Scenario) -> DemoCluster {
    let options = Options { world, unreachable_replicas: true, ..Options::default() };
    DemoCluster::start_with(scenario, options)
        .unwrap_or_else(|e| panic!("cannot start {} in the {} world: {e}", scenario.name(), world.name()))
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name}"))
}

in_both_worlds! {
    fn a_healthy_cluster_behind_a_bastion_is_ok_with_a_note(world) {
        let c = start_unreachable(world, Scenario::HealthyHa);
        assert_eq!(c.facts.unreachable_replica_addresses.len(), 3);
        // A timeout long beside the report's own work (a scrape parsed by a debug build on a
        // loaded machine takes seconds), so that one wait and two cannot be confused below; and
        // not the request timeout (10 s), whose timers would end at the same moment.
        let out = kubectl(&["cphealth", "-o", "json", "--sample", "0", "--replica-timeout", "6s", "--verbose"], &c.env());
        let r = json_of(&out);
        // Every check is OK but replicas (a NOTE), and load, which may warn: with --sample 0 its
        // latencies are since the API servers started, and a real cluster booted on two busy
        // cores is slow for real. The unreachable addresses change no verdict.
        let load_warns = check(&r, "load")["status"] == "WARNING";
        let (verdict, code) = if load_warns { ("WARNING", 1) } else { ("OK", 0) };
        assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
        assert_eq!(r["verdict"], verdict);
        for c in r["checks"].as_array().unwrap().iter().filter(|c| c["name"] != "load" && c["name"] != "replicas") {
            assert_eq!(c["status"], "OK", "{c}");
        }
        let replicas = check(&r, "replicas");
        assert_eq!(replicas["status"], "NOTE", "{replicas}");
        let msg = replicas["message"].as_str().unwrap();
        assert!(msg.starts_with("cp-1, cp-2, cp-3 alive by their identity leases, not reachable from here"), "{msg}");
        for (i, sub) in replicas["subchecks"].as_array().unwrap().iter().enumerate() {
            assert_eq!(sub["status"], "NOTE", "{sub}");
            let text = sub["message"].as_str().unwrap();
            assert!(text.contains("alive by its identity lease, renewed"), "{text}");
            assert!(
                text.contains(&format!("its address {} is not reachable from this machine (no answer within 6s)", c.facts.unreachable_replica_addresses[i])),
                "{text}"
            );
        }
        // Health and load read through the configured server, and say so; nothing reads "0/0".
        let health = check(&r, "health");
        assert_eq!(health["status"], "OK", "{health}");
        let health_msg = health["message"].as_str().unwrap();
        assert!(health_msg.contains("one replica's view, through the configured server"), "{health_msg}");
        assert!(!health_msg.contains("0/0"), "{health_msg}");
        let load = check(&r, "load");
        assert!(load["status"] == "OK" || load_warns, "{load}");
        assert!(load["message"].as_str().unwrap().contains("one replica's view"), "{load}");
        // The black holes cost the replica timeout once, not once per check or per replica: a
        // second wait would put the report's own duration past twice the timeout. (The report's
        // figure, not the wall clock around kubectl: a loaded machine adds start-up time.)
        let took = r["durationSeconds"].as_f64().unwrap();
        assert!((6.0..12.0).contains(&took), "took {took}s with a 6s replica timeout: {}", describe(&out));
    }
}

in_both_worlds! {
    fn a_dead_replica_behind_a_bastion_is_caught_by_its_stale_identity_lease(world) {
        let c = start_unreachable(world, Scenario::HealthyHa);
        let dead = c.facts.control_plane_nodes[2].clone();
        c.apiserver_replica_dies(2);
        // A real lease turns stale after three missed 10 s renewals.
        let deadline = Instant::now() + Duration::from_secs(90);
        while c.identity_lease_age(&dead).is_none_or(|age| age <= 31) {
            assert!(Instant::now() < deadline, "the identity lease of {dead} is still renewed");
            std::thread::sleep(Duration::from_secs(2));
        }
        let out = kubectl(&["cphealth", "-o", "json", "--sample", "0", "--replica-timeout", "1s", "--only", "replicas,health"], &c.env());
        let r = json_of(&out);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let replicas = check(&r, "replicas");
        assert_eq!(replicas["status"], "WARNING", "{replicas}");
        let msg = replicas["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("replica {dead} (identity lease renewed ")), "{msg}");
        let subs = replicas["subchecks"].to_string();
        assert!(subs.contains("its identity lease was last renewed"), "{subs}");
        assert!(msg.contains("down while the load balancer answers"), "{msg}");
        // The others are NOTEs in the sub-checks (the message leads with the replica down).
        for alive in ["cp-1", "cp-2"] {
            let sub = replicas["subchecks"].as_array().unwrap().iter().find(|s| s["name"] == format!("replica {alive}")).unwrap();
            assert_eq!(sub["status"], "NOTE", "{sub}");
            assert!(sub["message"].as_str().unwrap().contains("alive by its identity lease"), "{sub}");
        }
        let fixes = replicas["remediation"].to_string();
        assert!(fixes.contains(&format!("kubectl logs -n kube-system kube-apiserver-{dead} --previous")), "{fixes}");
    }
}

in_both_worlds! {
    fn apftop_reads_through_the_configured_server_and_says_so(world) {
        let c = start_unreachable(world, Scenario::HealthyHa);
        let out = kubectl(&["apftop", "--once", "--interval", "500ms", "-o", "json", "--replica-timeout", "1s"], &c.env());
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let doc = json_of(&out);
        let s = &doc["snapshot"];
        let replicas = s["replicas"].as_array().unwrap();
        assert_eq!(replicas.len(), 1, "{s}");
        assert_eq!(replicas[0]["ok"], true, "{s}");
        let notes = s["notes"].to_string();
        assert!(notes.contains("no replica's own address is reachable from this machine: read through https://127.0.0.1:"), "{notes}");
        assert!(notes.contains("one replica's view"), "{notes}");
    }
}
