//! The kit's own API client for setting up and inspecting the real control plane: JSON in and
//! out, blocking (tests and the kit's set-up are synchronous), on the cluster's runtime.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Runs `f` to completion on `rt`, also when the caller is itself inside an async runtime.
pub fn block<F: Future + Send>(rt: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join().expect("blocking helper thread"))
    } else {
        rt.block_on(f)
    }
}

/// An admin client of the cluster.
#[derive(Clone)]
pub struct KitClient {
    client: kube::Client,
}

/// An API answer: status code and JSON body (a `Status` object on errors).
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

impl KitClient {
    /// A client from a kubeconfig file (its current context). Call inside the runtime.
    pub async fn from_kubeconfig(path: &Path, timeout: Duration) -> std::io::Result<KitClient> {
        let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(io_err)?;
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(io_err)?;
        config.read_timeout = Some(timeout);
        config.connect_timeout = Some(timeout);
        let client = kube::Client::try_from(config).map_err(io_err)?;
        Ok(KitClient { client })
    }

    /// Sends `method path` with an optional JSON body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> std::io::Result<Answer> {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(bytes)
            .map_err(io_err)?;
        let response = self.client.send(request.map(kube::client::Body::from)).await.map_err(io_err)?;
        let code = response.status().as_u16();
        let raw = http_body_util::BodyExt::collect(response.into_body()).await.map_err(io_err)?.to_bytes();
        let body = serde_json::from_slice(&raw).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into()));
        Ok(Answer { code, body })
    }

    pub async fn get(&self, path: &str) -> std::io::Result<Answer> {
        self.send("GET", path, None, "application/json").await
    }

    /// POST to a collection; an object that already exists is not an error. Recorded as an
    /// admin's `kubectl create` records it (a client without a User-Agent is recorded as
    /// "unknown", which webhookguard rightly reads as a controller that may write it back).
    pub async fn create(&self, collection: &str, object: &Value) -> std::io::Result<Value> {
        let sep = if collection.contains('?') { '&' } else { '?' };
        let path = format!("{collection}{sep}fieldManager=kubectl-create");
        let answer = self.send("POST", &path, Some(object), "application/json").await?;
        if answer.ok() || answer.code == 409 {
            return Ok(answer.body);
        }
        Err(io_err(format!("POST {collection}: {} {}", answer.code, answer.body)))
    }

    /// A merge patch (also of the `status` subresource: pass `.../status`).
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> std::io::Result<Value> {
        let answer = self.send("PATCH", path, Some(patch), "application/merge-patch+json").await?;
        if answer.ok() {
            return Ok(answer.body);
        }
        Err(io_err(format!("PATCH {path}: {} {}", answer.code, answer.body)))
    }

    pub async fn delete(&self, path: &str) -> std::io::Result<()> {
        let answer = self.send("DELETE", path, None, "application/json").await?;
        if answer.ok() || answer.code == 404 {
            return Ok(());
        }
        Err(io_err(format!("DELETE {path}: {} {}", answer.code, answer.body)))
    }
}

/// The collection URL of an object from its apiVersion, kind and namespace (the kinds the kit
/// creates).
pub fn collection_of(object: &Value) -> std::io::Result<String> {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let kind = object["kind"].as_str().unwrap_or("");
    let plural = match kind {
        "Node" => "nodes",
        "Pod" => "pods",
        "ConfigMap" => "configmaps",
        "Secret" => "secrets",
        "Service" => "services",
        "Namespace" => "namespaces",
        "ServiceAccount" => "serviceaccounts",
        "EndpointSlice" => "endpointslices",
        "Deployment" => "deployments",
        "Lease" => "leases",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "ValidatingWebhookConfiguration" => "validatingwebhookconfigurations",
        "MutatingWebhookConfiguration" => "mutatingwebhookconfigurations",
        "ValidatingAdmissionPolicy" => "validatingadmissionpolicies",
        "ValidatingAdmissionPolicyBinding" => "validatingadmissionpolicybindings",
        "APIService" => "apiservices",
        "FlowSchema" => "flowschemas",
        "PriorityLevelConfiguration" => "prioritylevelconfigurations",
        "PodDisruptionBudget" => "poddisruptionbudgets",
        "TokenRequest" => return Err(io_err("a TokenRequest is a subresource of its service account")),
        other => return Err(io_err(format!("the kit does not know the resource of kind {other}"))),
    };
    let base = if api_version.contains('/') { format!("/apis/{api_version}") } else { format!("/api/{api_version}") };
    Ok(match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}"),
        None => format!("{base}/{plural}"),
    })
}
