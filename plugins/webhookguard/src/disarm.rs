//! `disarm` and `restore`: the emergency lever and its undo. Both read the object, show the plan,
//! and change nothing without `--yes`; with it they first save the object as read to a backup
//! file (written atomically), then write with the resourceVersion as a precondition, so a
//! concurrent change is never overwritten.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cpkit::Cluster;
use cpkit::access::Access;
use cpkit::error::{Error, ErrorKind, Result};
use cpkit::resources;
use cpkit::webhooks::ConfigKind;
use cpkit::webhooks::defuse::{self, Plan};
use cpkit::webhooks::rearm::{self, Rearmer};
use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

const GROUP: &str = "admissionregistration.k8s.io";

/// `validating` / `mutating` (also accepts the kinds and resource names kubectl knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    Validating,
    Mutating,
}

impl KindArg {
    fn kind(self) -> ConfigKind {
        match self {
            KindArg::Validating => ConfigKind::Validating,
            KindArg::Mutating => ConfigKind::Mutating,
        }
    }
}

/// Splits `validatingwebhookconfiguration/NAME` (any of kubectl's spellings) from a plain name.
pub fn parse_target(target: &str, kind: Option<KindArg>) -> Result<(Option<ConfigKind>, String)> {
    let Some((prefix, name)) = target.split_once('/') else {
        return Ok((kind.map(KindArg::kind), target.to_string()));
    };
    let prefix = prefix.to_ascii_lowercase();
    let prefix = prefix.split('.').next().unwrap_or("");
    let parsed = match prefix {
        "validatingwebhookconfiguration" | "validatingwebhookconfigurations" => ConfigKind::Validating,
        "mutatingwebhookconfiguration" | "mutatingwebhookconfigurations" => ConfigKind::Mutating,
        other => {
            return Err(Error::usage(
                format!("{other:?} is not a webhook configuration type"),
                "Name it as NAME, validatingwebhookconfiguration/NAME or mutatingwebhookconfiguration/NAME.",
            ));
        }
    };
    if let Some(k) = kind
        && k.kind() != parsed
    {
        return Err(Error::usage(format!("{target} contradicts --kind"), "Drop --kind or the type prefix."));
    }
    Ok((Some(parsed), name.to_string()))
}

fn object_path(kind: ConfigKind, name: &str) -> String {
    format!("/apis/{GROUP}/v1/{}/{name}", kind.resource())
}

/// Reads the configuration; with no kind given, looks in both and insists on one match.
pub async fn read_config(cluster: &Cluster, kind: Option<ConfigKind>, name: &str) -> Result<(ConfigKind, Value)> {
    let kinds = match kind {
        Some(k) => vec![k],
        None => vec![ConfigKind::Validating, ConfigKind::Mutating],
    };
    let mut found = Vec::new();
    for k in &kinds {
        if let Some(v) = get_optional(cluster, *k, name).await? {
            found.push((*k, v));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::new(
            ErrorKind::NotFound,
            format!("No webhook configuration named {name}"),
            format!("neither {} has it", kinds.iter().map(|k| k.resource()).collect::<Vec<_>>().join(" nor ")),
            "List them with `kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations`, or run `kubectl webhookguard scan`.",
        )),
        _ => Err(Error::usage(
            format!("Both a validating and a mutating configuration are named {name}"),
            "Say which with --kind validating|mutating (or validatingwebhookconfiguration/NAME).",
        )),
    }
}

async fn get_optional(cluster: &Cluster, kind: ConfigKind, name: &str) -> Result<Option<Value>> {
    let path = object_path(kind, name);
    let response = cluster.get_raw(&path).await?;
    if response.status == 404 {
        return Ok(None);
    }
    if !response.is_success() {
        let access = Access::resource("get", GROUP, kind.resource(), None);
        return Err(cpkit::error::http_error(
            cluster.server(),
            &format!("GET {path}"),
            response.status,
            &response.body,
            None,
            Some(&access),
        ));
    }
    let mut v: Value = cpkit::client::decode_json(&path, &response.body)?;
    v["kind"] = json!(kind.kind());
    v["apiVersion"] = json!(format!("{GROUP}/v1"));
    Ok(Some(v))
}

/// The default backup directory: `$XDG_STATE_HOME/kubectl-webhookguard/backups`, else
/// `~/.local/state/kubectl-webhookguard/backups` (a place that survives a reboot, unlike /tmp).
pub fn default_backup_dir() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state.join("kubectl-webhookguard").join("backups")
}

fn safe_file_part(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-.".contains(c) { c } else { '-' }).collect()
}

/// The directory of one context's backups: `<dir>/<context>`.
pub fn context_backup_dir(dir: &Path, context: &str) -> PathBuf {
    dir.join(safe_file_part(context))
}

/// The file a backup of `object` goes to: `<dir>/<context>/<name>.<validating|mutating>.<UTC
/// time>.json` (short enough that the printed undo fits a terminal line).
pub fn backup_path(dir: &Path, context: &str, kind: ConfigKind, name: &str, when: jiff::Timestamp) -> PathBuf {
    let kind_word = match kind {
        ConfigKind::Validating => "validating",
        ConfigKind::Mutating => "mutating",
        ConfigKind::ValidatingPolicy | ConfigKind::MutatingPolicy => "policy",
    };
    context_backup_dir(dir, context).join(format!(
        "{}.{kind_word}.{}.json",
        safe_file_part(name),
        when.strftime("%Y%m%dT%H%M%SZ")
    ))
}

/// The backup `restore` means: a path as given, or else a bare file name in the context's
/// backup directory (what the printed undo uses), or in the directory itself (older backups).
pub fn resolve_backup(given: &Path, dir: &Path, context: &str) -> PathBuf {
    let bare = given.components().count() == 1 && !given.exists();
    if bare {
        for candidate in [context_backup_dir(dir, context).join(given), dir.join(given)] {
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    given.to_path_buf()
}

/// Writes the object, as read, to a new file (0600, fsynced, renamed into place).
pub fn write_backup(path: &Path, object: &Value) -> Result<PathBuf> {
    if let Some(dir) = path.parent() {
        // 0700 whatever the umask: backups hold whole configurations.
        cpkit::atomic_file::private_dir(dir)?;
    }
    let mut file = cpkit::atomic_file::AtomicFile::create(path, false)?;
    let mut text = serde_json::to_vec_pretty(object)
        .map_err(|e| Error::invalid_data("Cannot encode the backup", e.to_string()))?;
    text.push(b'\n');
    std::io::Write::write_all(&mut file, &text)
        .map_err(|e| Error::io(format!("Cannot write {}", path.display()), &e))?;
    file.commit()
}

/// Reads a backup written by `disarm` (or any JSON/YAML of one configuration).
pub fn read_backup(path: &Path) -> Result<(ConfigKind, Value)> {
    let text = cpkit::input::read_text(path, cpkit::input::TEXT_LIMIT)?;
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text)
            .map_err(|e| Error::invalid_data(format!("Cannot parse {} as JSON", path.display()), e.to_string()))?
    } else {
        cpkit::yaml::from_str(&path.display().to_string(), &text)?
    };
    let kind = match value["kind"].as_str() {
        Some("ValidatingWebhookConfiguration") => ConfigKind::Validating,
        Some("MutatingWebhookConfiguration") => ConfigKind::Mutating,
        other => {
            return Err(Error::invalid_data(
                format!("{} is not a webhook configuration backup", path.display()),
                format!("its kind is {}", other.unwrap_or("missing")),
            ));
        }
    };
    if value["metadata"]["name"].as_str().unwrap_or("").is_empty() {
        return Err(Error::invalid_data(format!("{} has no metadata.name", path.display()), "it cannot be restored"));
    }
    Ok((kind, value))
}

/// Explains a 409: someone changed the object since it was read.
fn conflict(kind: ConfigKind, name: &str, resource_version: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "{} {name} changed since it was read (resourceVersion {resource_version}); nothing was written",
            kind.kind()
        ),
        "someone (a person, Helm, an operator) modified it concurrently, and the write carried the version read as a precondition",
        "Look at what changed (`kubectl get` it), then run the command again to plan from the new version.",
    )
}

/// Applies a disarm plan: PUT with the read resourceVersion, or DELETE with it as a precondition.
pub async fn apply(cluster: &Cluster, kind: ConfigKind, plan: &Plan, uid: &str) -> Result<()> {
    let path = object_path(kind, &plan.config);
    let (method, verb, body) = match &plan.updated {
        Some(updated) => {
            let mut body = updated.clone();
            body["metadata"]["resourceVersion"] = json!(plan.resource_version);
            (Method::PUT, "update", body)
        }
        None => (
            Method::DELETE,
            "delete",
            json!({"apiVersion": "v1", "kind": "DeleteOptions",
                   "preconditions": {"resourceVersion": plan.resource_version, "uid": uid}}),
        ),
    };
    write(cluster, method, &path, verb, kind, &body, &plan.config, &plan.resource_version).await
}

#[allow(clippy::too_many_arguments)]
async fn write(
    cluster: &Cluster,
    method: Method,
    path: &str,
    verb: &str,
    kind: ConfigKind,
    body: &Value,
    name: &str,
    rv: &str,
) -> Result<()> {
    let request = http::Request::builder()
        .method(method.clone())
        .uri(format!("{path}?fieldManager=kubectl-webhookguard"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(serde_json::to_vec(body).unwrap_or_default())
        .map_err(|e| Error::usage(format!("Cannot build a request for {path}: {e}"), ""))?;
    let response = cluster.send(request).await?;
    if response.status == 409 {
        return Err(conflict(kind, name, rv));
    }
    if !response.is_success() {
        let access = Access::resource(verb, GROUP, kind.resource(), None);
        return Err(cpkit::error::http_error(
            cluster.server(),
            &format!("{method} {path}"),
            response.status,
            &response.body,
            None,
            Some(&access),
        ));
    }
    Ok(())
}

/// What `restore` will do.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePlan {
    pub kind: String,
    pub name: String,
    /// `create` (the configuration is gone), `update`, or `none` (it already matches).
    pub action: String,
    /// Fields that differ between the backup and the cluster.
    pub differs: Vec<String>,
    /// The resourceVersion the update is conditioned on.
    pub resource_version: Option<String>,
}

pub fn plan_restore(kind: ConfigKind, backup: &Value, current: Option<&Value>) -> RestorePlan {
    let name = backup["metadata"]["name"].as_str().unwrap_or("").to_string();
    let (action, differs, resource_version) = match current {
        None => ("create", vec!["the whole configuration (it does not exist)".to_string()], None),
        Some(c) => {
            let d = defuse::differs(backup, c);
            let rv = c["metadata"]["resourceVersion"].as_str().map(str::to_string);
            (if d.is_empty() { "none" } else { "update" }, d, rv)
        }
    };
    RestorePlan { kind: kind.kind().to_string(), name, action: action.to_string(), differs, resource_version }
}

/// Writes the backup's content back: creates it when gone, else replaces webhooks, labels and
/// annotations on the current object with its resourceVersion as the precondition.
pub async fn restore(cluster: &Cluster, kind: ConfigKind, backup: &Value, current: Option<&Value>) -> Result<()> {
    let name = backup["metadata"]["name"].as_str().unwrap_or("");
    match current {
        None => {
            let path = format!("/apis/{GROUP}/v1/{}", kind.resource());
            write(cluster, Method::POST, &path, "create", kind, &defuse::for_create(backup), name, "").await
        }
        Some(c) => {
            let mut body = c.clone();
            body["webhooks"] = backup["webhooks"].clone();
            for field in ["labels", "annotations"] {
                match backup["metadata"].get(field) {
                    Some(v) => body["metadata"][field] = v.clone(),
                    None => {
                        if let Some(m) = body["metadata"].as_object_mut() {
                            m.remove(field);
                        }
                    }
                }
            }
            let rv = c["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
            write(cluster, Method::PUT, &object_path(kind, name), "update", kind, &body, name, &rv).await
        }
    }
}

/// Reads the configuration back after a restore and says whether it matches the backup.
pub async fn verify_restore(cluster: &Cluster, kind: ConfigKind, backup: &Value) -> Result<Vec<String>> {
    let name = backup["metadata"]["name"].as_str().unwrap_or("");
    match get_optional(cluster, kind, name).await? {
        Some(now) => Ok(defuse::differs(backup, &now)),
        None => Ok(vec!["the configuration is missing".into()]),
    }
}

/// Re-reads after a disarm: gone (delete) or carrying the planned webhooks.
pub async fn verify_disarm(cluster: &Cluster, kind: ConfigKind, plan: &Plan) -> Result<bool> {
    let now = get_optional(cluster, kind, &plan.config).await?;
    Ok(match (&plan.updated, now) {
        (None, None) => true,
        (Some(updated), Some(now)) => updated["webhooks"] == now["webhooks"],
        _ => false,
    })
}

/// The separate step that pauses a re-arming controller, with its undo.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PauseStep {
    pub who: String,
    #[serde(skip)]
    pub deployment: cpkit::webhooks::rearm::Deployment,
    /// Its replicas now (what resuming scales it back to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    pub pause: String,
    /// Scales it back to the replicas it has now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// Why the replica count is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<String>,
}

/// A pause step for each re-armer with a Deployment that exists; its replicas read now, all
/// Deployments at once.
pub async fn pause_steps(cluster: &Cluster, rearmers: &[Rearmer]) -> Vec<PauseStep> {
    let reads = rearmers.iter().filter_map(|r| r.deployment.as_ref().map(|d| (r, d))).map(|(r, d)| async move {
        let path = resources::object_path::<Deployment>(Some(&d.namespace), &d.name);
        let (replicas, unread) = match cluster.get_raw(&path).await {
            Ok(response) if response.status == 404 => return None,
            Ok(response) if response.is_success() => match cpkit::client::decode_json::<Value>(&path, &response.body) {
                // An unset spec.replicas means 1.
                Ok(v) => (Some(v["spec"]["replicas"].as_i64().unwrap_or(1)), None),
                Err(e) => (None, Some(e.to_string())),
            },
            Ok(response) => (None, Some(format!("GET {path} answered {}", response.status))),
            Err(e) => (None, Some(e.to_string())),
        };
        Some(PauseStep {
            who: r.who.clone(),
            deployment: d.clone(),
            replicas,
            pause: d.pause_command(),
            resume: replicas.map(|n| d.resume_command(n)),
            unread,
        })
    });
    futures::future::join_all(reads).await.into_iter().flatten().collect()
}

/// Takes a pause step: scales the Deployment to 0 if it still has the replicas the plan read (a
/// JSON patch with a `test`: a change made meanwhile is not overwritten, and the printed resume
/// stays right). A step whose replicas could not be read is refused: its undo would be a guess.
pub async fn pause(cluster: &Cluster, step: &PauseStep) -> Result<()> {
    let d = &step.deployment;
    let Some(replicas) = step.replicas else {
        return Err(Error::usage(
            format!("Not pausing {}: its Deployment {}/{} could not be read", step.who, d.namespace, d.name),
            format!(
                "{}. Without its replica count there is no safe way back; scale it yourself: {}",
                step.unread.as_deref().unwrap_or("unknown replicas"),
                step.pause
            ),
        ));
    };
    let path = format!(
        "{}?fieldManager=kubectl-webhookguard",
        resources::object_path::<Deployment>(Some(&d.namespace), &d.name)
    );
    let patch = json!([
        {"op": "test", "path": "/spec/replicas", "value": replicas},
        {"op": "replace", "path": "/spec/replicas", "value": 0}
    ]);
    let access = resources::access::<Deployment>("patch", Some(&d.namespace));
    cluster
        .send_json::<Value>(
            http::Method::PATCH,
            &path,
            "application/json-patch+json",
            serde_json::to_vec(&patch).unwrap_or_default(),
            &access,
        )
        .await
        .map(|_| ())
}

/// A disarm undone while it was watched.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rearmed {
    pub after_seconds: f64,
    pub what: Vec<String>,
    /// The newest managedFields manager of the configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
}

/// Re-reads the configuration every half second for `watch`; the first undo seen ends it.
/// A read that fails is skipped: the watch is evidence, not a precondition.
pub async fn watch_for_rearm(cluster: &Cluster, kind: ConfigKind, plan: &Plan, watch: Duration) -> Option<Rearmed> {
    let started = Instant::now();
    while started.elapsed() < watch {
        tokio::time::sleep(Duration::from_millis(500).min(watch)).await;
        let Ok(current) = get_optional(cluster, kind, &plan.config).await else { continue };
        let what = rearm::undone(plan, current.as_ref());
        if !what.is_empty() {
            return Some(Rearmed {
                after_seconds: started.elapsed().as_secs_f64(),
                what,
                writer: current.as_ref().and_then(rearm::last_writer),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_in_kubectl_spellings() {
        assert_eq!(parse_target("x", None).unwrap(), (None, "x".to_string()));
        assert_eq!(parse_target("x", Some(KindArg::Mutating)).unwrap().0, Some(ConfigKind::Mutating));
        assert_eq!(
            parse_target("validatingwebhookconfiguration.admissionregistration.k8s.io/x", None).unwrap(),
            (Some(ConfigKind::Validating), "x".to_string())
        );
        assert_eq!(parse_target("MutatingWebhookConfigurations/y", None).unwrap().0, Some(ConfigKind::Mutating));
        assert!(parse_target("pods/x", None).is_err());
        assert!(parse_target("mutatingwebhookconfiguration/x", Some(KindArg::Validating)).is_err());
    }

    #[test]
    fn backups_round_trip_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let when: jiff::Timestamp = "2026-11-23T06:00:00Z".parse().unwrap();
        let path = backup_path(dir.path(), "kind/prod:1", ConfigKind::Validating, "pod-validator", when);
        assert_eq!(path, dir.path().join("kind-prod-1/pod-validator.validating.20261123T060000Z.json"));
        let object = json!({"kind": "ValidatingWebhookConfiguration", "metadata": {"name": "pod-validator", "resourceVersion": "7"}, "webhooks": []});
        write_backup(&path, &object).unwrap();
        let (kind, back) = read_backup(&path).unwrap();
        assert_eq!(kind, ConfigKind::Validating);
        assert_eq!(back, object);
        assert!(write_backup(&path, &object).is_err());
        // The undo names the file alone; restore finds it in the context's directory.
        let bare = Path::new("pod-validator.validating.20261123T060000Z.json");
        assert_eq!(resolve_backup(bare, dir.path(), "kind/prod:1"), path);
        assert_eq!(resolve_backup(bare, dir.path(), "other"), bare, "another context's backup is not picked");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("pod.json"), r#"{"kind": "Pod", "metadata": {"name": "p"}}"#).unwrap();
        assert!(read_backup(&dir.path().join("pod.json")).is_err());
    }

    #[test]
    fn restore_plans_create_update_or_nothing() {
        let backup = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "webhooks": [{"name": "w", "failurePolicy": "Fail"}]});
        assert_eq!(plan_restore(ConfigKind::Validating, &backup, None).action, "create");
        let mut current = backup.clone();
        current["metadata"]["resourceVersion"] = json!("9");
        assert_eq!(plan_restore(ConfigKind::Validating, &backup, Some(&current)).action, "none");
        current["webhooks"][0]["failurePolicy"] = json!("Ignore");
        let p = plan_restore(ConfigKind::Validating, &backup, Some(&current));
        assert_eq!(
            (p.action.as_str(), p.differs.as_slice(), p.resource_version.as_deref()),
            ("update", &["webhooks".to_string()][..], Some("9"))
        );
    }
}
