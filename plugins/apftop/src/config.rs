//! Reading the APF configuration (FlowSchemas, priority levels) in the newest version the
//! cluster serves: v1, else v1beta3, else v1beta2 — by discovery.

use cpkit::Cluster;
use cpkit::access::Access;
use cpkit::apf::model::{FlowSchema, PriorityLevel, sort_schemas};
use cpkit::error::{Error, ErrorKind, Result};
use serde_json::Value;

const GROUP: &str = "flowcontrol.apiserver.k8s.io";
const VERSIONS: [&str; 3] = ["v1", "v1beta3", "v1beta2"];

/// The newest of v1, v1beta3, v1beta2 the APIGroup document lists.
pub fn pick_version(group_document: &Value) -> Option<&'static str> {
    let served: Vec<&str> =
        group_document["versions"].as_array().into_iter().flatten().filter_map(|v| v["version"].as_str()).collect();
    VERSIONS.into_iter().find(|v| served.contains(v))
}

pub struct Config {
    pub version: &'static str,
    pub schemas: Vec<FlowSchema>,
    pub levels: Vec<PriorityLevel>,
}

pub async fn read(cluster: &Cluster) -> Result<Config> {
    let access = Access::non_resource("get", &format!("/apis/{GROUP}"));
    let group: Value = match cluster.get_json(&format!("/apis/{GROUP}"), &access).await {
        Ok(g) => g,
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Err(Error::new(
                ErrorKind::NotServed,
                "The cluster does not serve API Priority and Fairness (flowcontrol.apiserver.k8s.io)",
                "the API group is missing: APF is disabled (--enable-priority-and-fairness=false) or the server predates it",
                "apftop needs APF; on such a server, look at apiserver_current_inflight_requests instead (kubectl cphealth).",
            ));
        }
        Err(e) => return Err(e),
    };
    let version = pick_version(&group).ok_or_else(|| {
        Error::new(
            ErrorKind::NotServed,
            "The cluster serves flowcontrol.apiserver.k8s.io in no version apftop reads",
            "neither v1, v1beta3 nor v1beta2 is listed",
            "Upgrade apftop, or read the objects with kubectl get flowschemas.",
        )
    })?;
    let list = |resource: &'static str| async move {
        cluster
            .list_all::<Value>(
                &format!("/apis/{GROUP}/{version}/{resource}"),
                &Access::resource("list", GROUP, resource, None),
            )
            .await
    };
    let (schemas, levels) = tokio::join!(list("flowschemas"), list("prioritylevelconfigurations"));
    let mut schemas: Vec<FlowSchema> = schemas?.iter().map(FlowSchema::from_value).collect();
    sort_schemas(&mut schemas);
    let mut levels: Vec<PriorityLevel> = levels?.iter().map(PriorityLevel::from_value).collect();
    levels.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Config { version, schemas, levels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newest_served_version_wins() {
        let g = |vs: &[&str]| json!({"versions": vs.iter().map(|v| json!({"groupVersion": format!("{GROUP}/{v}"), "version": v})).collect::<Vec<_>>()});
        assert_eq!(pick_version(&g(&["v1", "v1beta3"])), Some("v1"));
        assert_eq!(pick_version(&g(&["v1beta3", "v1beta2"])), Some("v1beta3"));
        assert_eq!(pick_version(&g(&["v1beta2", "v1beta1"])), Some("v1beta2"));
        assert_eq!(pick_version(&g(&["v1alpha1"])), None);
        assert_eq!(pick_version(&json!({})), None);
    }
}
