//! What changes by itself in a live cluster: lease holders renew their leases.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{Sim, registry};

/// `metav1.MicroTime` as the API server writes it.
pub fn micro_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Renews the live leases every second (controllers renew every 2 s, the kubelet every 10 s).
pub async fn run(sim: Arc<Sim>) {
    let Some(leases) = registry::find("coordination.k8s.io", "leases") else {
        return;
    };
    loop {
        let live = sim.live_leases.read().map(|l| l.clone()).unwrap_or_default();
        if let Ok(mut store) = sim.store.write() {
            let now = micro_time(jiff::Timestamp::now());
            for (ns, name) in &live {
                store.modify(leases, ns, name, |lease| lease["spec"]["renewTime"] = json!(now));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
