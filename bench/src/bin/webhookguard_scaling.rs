//! How `kubectl webhookguard scan -f` grows with the number of configurations, as a table and
//! as JSON: CPU of the whole process at 2,500, 5,000 and 10,000 generated configurations (from
//! the real manifests in tests/fixtures/webhooks/). Linear rendering keeps the cost per
//! configuration flat and the table within a small factor of JSON; the peer of each table figure
//! is the JSON run of the same file, measured in the same run.
//!
//! cargo build --profile demo --workspace --bins && cargo build --profile demo -p cpkit-bench --bins
//! target/demo/webhookguard_scaling          (WEBHOOKGUARD=path/to/kubectl-webhookguard to compare builds)

use std::process::Command;
use std::time::Duration;

use cpkit_bench::{bin_dir, generated_webhook_configs, measure, median};

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let webhookguard =
        std::env::var_os("WEBHOOKGUARD").map(Into::into).unwrap_or_else(|| bin_dir().join("kubectl-webhookguard"));
    assert!(webhookguard.exists(), "build first: cargo build --profile demo --workspace --bins");
    let dir = std::env::temp_dir().join(format!("webhookguard-scaling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| configurations | shape | table: CPU | JSON: CPU | table / JSON | table per configuration |");
    println!("|---|---|---|---|---|---|");
    // Two shapes: the real manifests (most configurations have findings), and configurations
    // without findings (Ignore, one custom resource), which all land in the table's
    // "without findings" list.
    type Shape = (&'static str, fn(usize) -> String);
    let shapes: [Shape; 2] = [("real manifests", generated_webhook_configs), ("no findings", clean_configs)];
    for (count, (shape, generate)) in [2500usize, 5000, 10000].into_iter().flat_map(|n| shapes.map(|s| (n, s))) {
        let file = dir.join(format!("configs-{count}.yaml"));
        std::fs::write(&file, generate(count)).expect("write configs");
        let scan = |format: &str| {
            let mut cmd = Command::new(&webhookguard);
            cmd.args(["scan", "-f"]).arg(&file).args(["-o", format]);
            let m = measure(&mut cmd).expect("webhookguard runs");
            assert!(m.code.is_some_and(|c| c <= 2), "scan must finish with a verdict: {m:?}");
            m.cpu
        };
        let table = median((0..runs).map(|_| scan("table")).collect());
        let json = median((0..runs).map(|_| scan("json")).collect());
        println!(
            "| {count} | {shape} | {:.0} ms | {:.0} ms | {:.2} | {:.1} µs |",
            ms(table),
            ms(json),
            table.as_secs_f64() / json.as_secs_f64(),
            table.as_secs_f64() * 1e6 / count as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` configurations that can lock nothing: failurePolicy Ignore on one custom resource.
fn clean_configs(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: widgets-{i}\nwebhooks:\n- name: widgets-{i}.example.com\n  failurePolicy: Ignore\n  sideEffects: None\n  timeoutSeconds: 5\n  admissionReviewVersions: [v1]\n  clientConfig:\n    service: {{name: widgets, namespace: widgets, port: 443}}\n  rules:\n  - apiGroups: [example.com]\n    apiVersions: [v1]\n    operations: [CREATE]\n    resources: [widgets{i}]\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}
