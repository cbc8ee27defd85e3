//! Typed reads of Kubernetes resources, as kube-rs's `Api::<K>` does: the request path and the
//! RBAC [`Access`] a 403 names both come from the k8s-openapi type (its group, version, plural
//! and scope), so the two cannot drift apart; `/version` is read as its typed `Info` too. Raw
//! paths stay for the other non-resource URLs (`/readyz`, `/metrics`, the APF debug dumps).

use k8s_openapi::apimachinery::pkg::version::Info;
use k8s_openapi::{ListableResource, Resource};
use serde::de::DeserializeOwned;

use crate::access::Access;
use crate::client::{Cluster, ListPage, RawResponse, decode_json, percent_encode};
use crate::error::Result;

/// Which items of a collection: a namespace (none for cluster-scoped kinds, or for all
/// namespaces), a label selector and a field selector, in kubectl's syntax.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Select<'a> {
    pub namespace: Option<&'a str>,
    pub labels: Option<&'a str>,
    pub fields: Option<&'a str>,
}

impl<'a> Select<'a> {
    /// Every item (of a cluster-scoped kind, or in every namespace).
    pub fn all() -> Self {
        Select::default()
    }

    /// The items in `namespace`.
    pub fn namespace(namespace: &'a str) -> Self {
        Select { namespace: Some(namespace), ..Select::default() }
    }

    pub fn labels(mut self, selector: &'a str) -> Self {
        self.labels = Some(selector);
        self
    }

    pub fn fields(mut self, selector: &'a str) -> Self {
        self.fields = Some(selector);
        self
    }
}

/// `/api/v1` for the core group, `/apis/<group>/<version>` for the others.
fn group_path<K: Resource>() -> String {
    if K::GROUP.is_empty() { format!("/api/{}", K::VERSION) } else { format!("/apis/{}/{}", K::GROUP, K::VERSION) }
}

/// The path of the collection of `K` that `select` names, selectors in its query.
pub fn collection_path<K: Resource>(select: Select<'_>) -> String {
    let mut path = group_path::<K>();
    if let Some(ns) = select.namespace {
        path.push_str(&format!("/namespaces/{ns}"));
    }
    path.push('/');
    path.push_str(K::URL_PATH_SEGMENT);
    let query: Vec<String> = [("labelSelector", select.labels), ("fieldSelector", select.fields)]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| format!("{key}={}", percent_encode(v))))
        .collect();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    path
}

/// The path of the `K` named `name` (in `namespace` for namespaced kinds).
pub fn object_path<K: Resource>(namespace: Option<&str>, name: &str) -> String {
    let select = Select { namespace, ..Select::default() };
    format!("{}/{name}", collection_path::<K>(select))
}

/// `verb` on `K` (in `namespace`), for the 403 that names the missing permission.
pub fn access<K: Resource>(verb: &str, namespace: Option<&str>) -> Access {
    Access::resource(verb, K::GROUP, K::URL_PATH_SEGMENT, namespace)
}

impl Cluster {
    /// The `K` named `name`.
    pub async fn get<K: Resource + DeserializeOwned>(&self, namespace: Option<&str>, name: &str) -> Result<K> {
        self.get_json(&object_path::<K>(namespace, name), &access::<K>("get", namespace)).await
    }

    /// Every `K` that `select` names, read in pages of 500 (for the small collections:
    /// control-plane pods, leases, webhooks).
    pub async fn list<K: Resource + ListableResource + DeserializeOwned>(&self, select: Select<'_>) -> Result<Vec<K>> {
        self.list_as::<K, K>(select).await
    }

    /// Every `K` that `select` names, decoded as `T`.
    pub async fn list_as<K: Resource, T: DeserializeOwned>(&self, select: Select<'_>) -> Result<Vec<T>> {
        self.list_all(&collection_path::<K>(select), &access::<K>("list", select.namespace)).await
    }

    /// The first `n` of `K` that `select` names, in one request (a sample: a few nodes).
    pub async fn first<K: Resource + ListableResource + DeserializeOwned>(
        &self,
        select: Select<'_>,
        n: u32,
    ) -> Result<Vec<K>> {
        let path = collection_path::<K>(select);
        let sep = if path.contains('?') { '&' } else { '?' };
        let page: ListPage<K> =
            self.get_json(&format!("{path}{sep}limit={n}"), &access::<K>("list", select.namespace)).await?;
        Ok(page.items)
    }

    /// Each `K` that `select` names, decoded as `T`, handed to `visit` page by page, so memory stays constant
    /// however big the collection is (nodes of a 5000-node cluster).
    pub async fn list_each<K, T, F>(&self, select: Select<'_>, page_size: u32, visit: F) -> Result<()>
    where
        K: Resource,
        T: DeserializeOwned,
        F: FnMut(T),
    {
        self.list_paged(&collection_path::<K>(select), page_size, &access::<K>("list", select.namespace), visit).await
    }

    /// `GET /version`, typed: the server's build (`gitVersion`, `major`, `minor`, ...).
    pub async fn version(&self) -> Result<Info> {
        Ok(self.version_answer().await?.0)
    }

    /// `GET /version` with its raw answer (the `Date` header, for clock skew).
    pub async fn version_answer(&self) -> Result<(Info, RawResponse)> {
        let answer = self.get_ok(VERSION_PATH, &Access::non_resource("get", VERSION_PATH)).await?;
        Ok((decode_json(VERSION_PATH, &answer.body)?, answer))
    }
}

const VERSION_PATH: &str = "/version";

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Event, Node, Pod};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;

    #[test]
    fn paths_come_from_the_type() {
        assert_eq!(collection_path::<Node>(Select::all()), "/api/v1/nodes");
        assert_eq!(
            collection_path::<Pod>(Select::namespace("kube-system").labels("tier=control-plane")),
            "/api/v1/namespaces/kube-system/pods?labelSelector=tier%3Dcontrol-plane"
        );
        assert_eq!(
            collection_path::<EndpointSlice>(
                Select::namespace("default").labels("kubernetes.io/service-name=kubernetes")
            ),
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes"
        );
        assert_eq!(
            collection_path::<Event>(Select::namespace("kube-system").fields("type=Warning").labels("a!=b")),
            "/api/v1/namespaces/kube-system/events?labelSelector=a%21%3Db&fieldSelector=type%3DWarning"
        );
        assert_eq!(collection_path::<APIService>(Select::all()), "/apis/apiregistration.k8s.io/v1/apiservices");
        assert_eq!(
            object_path::<Lease>(Some("kube-system"), "kube-scheduler"),
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler"
        );
    }

    #[test]
    fn the_access_names_the_same_resource_as_the_path() {
        assert_eq!(
            access::<Lease>("get", Some("kube-system")).describe(),
            "get on leases.coordination.k8s.io in kube-system"
        );
        assert_eq!(access::<Node>("list", None).describe(), "list on nodes");
        assert_eq!(access::<APIService>("list", None).describe(), "list on apiservices.apiregistration.k8s.io");
    }
}
