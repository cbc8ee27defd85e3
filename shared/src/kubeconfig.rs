//! Finding and merging kubeconfig files the way kubectl does.
//!
//! kubectl reads `--kubeconfig` if given (it must exist), else every file listed in `KUBECONFIG`
//! (missing ones are skipped, the first file to set a value wins), else `~/.kube/config`.
//! kube-rs' `Kubeconfig::from_env` fails on a missing file, so the listing is done here.

use std::path::{Path, PathBuf};

use kube::config::Kubeconfig;

use crate::error::{Error, ErrorKind, Result};

/// The merged kubeconfig and the files it came from.
#[derive(Debug, Clone)]
pub struct LoadedKubeconfig {
    pub config: Kubeconfig,
    pub files: Vec<PathBuf>,
}

impl LoadedKubeconfig {
    pub fn context_names(&self) -> Vec<String> {
        self.config.contexts.iter().map(|c| c.name.clone()).collect()
    }

    pub fn cluster_names(&self) -> Vec<String> {
        self.config.clusters.iter().map(|c| c.name.clone()).collect()
    }

    pub fn user_names(&self) -> Vec<String> {
        self.config.auth_infos.iter().map(|c| c.name.clone()).collect()
    }
}

/// The paths kubectl would consider, in order: `--kubeconfig`, else `KUBECONFIG`'s list, else the
/// default file.
pub fn candidate_paths(explicit: Option<&Path>, env_value: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    if let Some(value) = env_value {
        let paths: Vec<PathBuf> = std::env::split_paths(value).filter(|p| !p.as_os_str().is_empty()).collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    default_path().into_iter().collect()
}

fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(|home| PathBuf::from(home).join(".kube").join("config"))
}

/// Loads and merges the kubeconfig files. Returns `None` when no file exists (the caller may then
/// fall back to the in-cluster configuration).
pub fn load(explicit: Option<&Path>) -> Result<Option<LoadedKubeconfig>> {
    let env = std::env::var_os("KUBECONFIG");
    load_from(explicit, env.as_deref())
}

/// [`load`] with the `KUBECONFIG` value passed in (testable without touching the environment).
pub fn load_from(explicit: Option<&Path>, env_value: Option<&std::ffi::OsStr>) -> Result<Option<LoadedKubeconfig>> {
    let paths = candidate_paths(explicit, env_value);
    let mut merged: Option<Kubeconfig> = None;
    let mut files = Vec::new();
    for path in paths {
        if !path.exists() {
            if explicit.is_some() {
                return Err(Error::config(
                    format!("Cannot read the kubeconfig {}", path.display()),
                    "the file does not exist",
                    "Check the --kubeconfig path.",
                ));
            }
            continue;
        }
        // A regular file of sane size, checked without blocking (a FIFO would hang the read).
        let file = crate::input::open_regular(&path).map_err(|e| Error::config(e.what, e.why, e.fix))?;
        if file.metadata().map(|m| m.len()).unwrap_or(0) > crate::input::TEXT_LIMIT {
            return Err(Error::config(
                format!("Cannot read the kubeconfig {}", path.display()),
                "it is larger than 32 MiB",
                "Check that KUBECONFIG names kubeconfig files.",
            ));
        }
        let config = Kubeconfig::read_from(&path).map_err(|e| {
            Error::config(
                format!("Cannot read the kubeconfig {}", path.display()),
                error_chain(&e),
                "Fix the file's YAML (`kubectl config view` shows what kubectl makes of it).",
            )
        })?;
        merged = Some(match merged {
            None => config,
            Some(m) => m.merge(config).map_err(|e| {
                Error::config(
                    format!("Cannot merge the kubeconfig {}", path.display()),
                    error_chain(&e),
                    "The files listed in KUBECONFIG disagree on kind or apiVersion.",
                )
            })?,
        });
        files.push(path);
    }
    Ok(merged.map(|config| LoadedKubeconfig { config, files }))
}

/// Joins an error and its sources into one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Checks that a requested context/cluster/user exists, with the available names in the error.
pub fn check_names(
    loaded: &LoadedKubeconfig,
    context: Option<&str>,
    cluster: Option<&str>,
    user: Option<&str>,
) -> Result<String> {
    let context_name = match context {
        Some(c) => c.to_string(),
        None => match &loaded.config.current_context {
            Some(c) if !c.is_empty() => c.clone(),
            _ => {
                if cluster.is_some() {
                    String::new()
                } else {
                    return Err(Error::config(
                        "No current context in the kubeconfig",
                        format!("{} sets no current-context", describe_files(&loaded.files)),
                        format!(
                            "Pass --context (one of: {}) or run `kubectl config use-context NAME`.",
                            list_or_none(&loaded.context_names())
                        ),
                    ));
                }
            }
        },
    };
    if !context_name.is_empty() && !loaded.context_names().contains(&context_name) {
        return Err(Error::config(
            format!("Context {context_name:?} is not in the kubeconfig"),
            format!("{} has the contexts: {}", describe_files(&loaded.files), list_or_none(&loaded.context_names())),
            "Pick one of those with --context, or check KUBECONFIG.",
        ));
    }
    if let Some(c) = cluster
        && !loaded.cluster_names().iter().any(|n| n == c)
    {
        return Err(Error::config(
            format!("Cluster {c:?} is not in the kubeconfig"),
            format!("the clusters are: {}", list_or_none(&loaded.cluster_names())),
            "Pick one of those with --cluster.",
        ));
    }
    if let Some(u) = user
        && !loaded.user_names().iter().any(|n| n == u)
    {
        return Err(Error::config(
            format!("User {u:?} is not in the kubeconfig"),
            format!("the users are: {}", list_or_none(&loaded.user_names())),
            "Pick one of those with --user.",
        ));
    }
    // The context's own references: a user entry that does not exist would otherwise send
    // anonymous requests, and a run of checks as nobody reads as "OK, mostly skipped".
    let named = loaded.config.contexts.iter().find(|c| c.name == context_name).and_then(|c| c.context.as_ref());
    if let Some(ctx) = named {
        let missing_user = user.is_none()
            && ctx.user.as_deref().is_some_and(|u| !u.is_empty() && !loaded.user_names().iter().any(|n| n == u));
        if missing_user {
            let u = ctx.user.clone().unwrap_or_default();
            return Err(Error::config(
                format!("Context {context_name:?} names the user {u:?}, which is not in the kubeconfig"),
                format!("{} has the users: {}", describe_files(&loaded.files), list_or_none(&loaded.user_names())),
                "Fix the context's user (`kubectl config set-context NAME --user=USER`), or pass --user.",
            ));
        }
        if cluster.is_none() && !ctx.cluster.is_empty() && !loaded.cluster_names().contains(&ctx.cluster) {
            let c = &ctx.cluster;
            return Err(Error::config(
                format!("Context {context_name:?} names the cluster {c:?}, which is not in the kubeconfig"),
                format!("the clusters are: {}", list_or_none(&loaded.cluster_names())),
                "Fix the context's cluster (`kubectl config set-context NAME --cluster=CLUSTER`), or pass --cluster.",
            ));
        }
    }
    Ok(context_name)
}

fn describe_files(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        many => format!(
            "the merged kubeconfig ({})",
            many.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() { "none".to_string() } else { names.join(", ") }
}

/// The error when neither a kubeconfig nor an in-cluster configuration is available.
pub fn no_configuration(in_cluster_reason: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        "No Kubernetes configuration found",
        format!(
            "no kubeconfig file exists (--kubeconfig, KUBECONFIG, ~/.kube/config) and this is not a pod ({in_cluster_reason})"
        ),
        "Point KUBECONFIG or --kubeconfig at a kubeconfig file.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const FIRST: &str = r#"
apiVersion: v1
kind: Config
current-context: alpha
clusters:
- name: shared
  cluster: {server: "https://127.0.0.1:1111"}
- name: only-first
  cluster: {server: "https://127.0.0.1:1112"}
contexts:
- name: alpha
  context: {cluster: shared, user: alice}
users:
- name: alice
  user: {token: first-token}
"#;

    const SECOND: &str = r#"
apiVersion: v1
kind: Config
current-context: beta
clusters:
- name: shared
  cluster: {server: "https://127.0.0.1:2222"}
- name: only-second
  cluster: {server: "https://127.0.0.1:2223"}
contexts:
- name: alpha
  context: {cluster: only-second, user: bob}
- name: beta
  context: {cluster: only-second, user: bob}
users:
- name: bob
  user: {token: second-token}
"#;

    #[test]
    fn merges_like_kubectl_first_file_wins_missing_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", FIRST);
        let b = write(dir.path(), "b", SECOND);
        let missing = dir.path().join("does-not-exist");
        let env = std::env::join_paths([missing.clone(), a.clone(), b.clone()]).unwrap();
        let loaded = load_from(None, Some(&env)).unwrap().unwrap();
        assert_eq!(loaded.files, vec![a, b]);
        assert_eq!(loaded.config.current_context.as_deref(), Some("alpha"));
        let shared = loaded.config.clusters.iter().find(|c| c.name == "shared").unwrap();
        assert_eq!(shared.cluster.as_ref().unwrap().server.as_deref(), Some("https://127.0.0.1:1111"));
        let alpha = loaded.config.contexts.iter().find(|c| c.name == "alpha").unwrap();
        assert_eq!(alpha.context.as_ref().unwrap().cluster, "shared");
        let mut contexts = loaded.context_names();
        contexts.sort();
        assert_eq!(contexts, vec!["alpha", "beta"]);
        let mut clusters = loaded.cluster_names();
        clusters.sort();
        assert_eq!(clusters, vec!["only-first", "only-second", "shared"]);
    }

    #[test]
    fn explicit_kubeconfig_must_exist_and_wins_over_env() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", FIRST);
        let b = write(dir.path(), "b", SECOND);
        let loaded = load_from(Some(&b), Some(a.as_os_str())).unwrap().unwrap();
        assert_eq!(loaded.config.current_context.as_deref(), Some("beta"));
        let err = load_from(Some(&dir.path().join("nope")), None).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn all_missing_means_no_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("missing").into_os_string();
        assert!(load_from(None, Some(&env)).unwrap().is_none());
    }

    #[test]
    fn broken_yaml_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "bad", "clusters: [this is: not: valid");
        let err = load_from(None, Some(bad.as_os_str())).unwrap_err();
        assert!(err.to_string().contains(&bad.display().to_string()), "{err}");
    }

    #[test]
    fn unknown_context_lists_the_available_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", FIRST);
        let loaded = load_from(Some(&a), None).unwrap().unwrap();
        assert_eq!(check_names(&loaded, None, None, None).unwrap(), "alpha");
        let err = check_names(&loaded, Some("prod"), None, None).unwrap_err();
        assert!(err.to_string().contains("alpha"), "{err}");
        assert!(check_names(&loaded, None, Some("nope"), None).is_err());
        assert!(check_names(&loaded, None, None, Some("alice")).is_ok());
    }

    #[test]
    fn a_context_naming_a_missing_user_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "config",
            "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:6443\"}}]\nusers: [{name: admin, user: {token: abcdefgh12345678}}]\ncontexts: [{name: prod, context: {cluster: c, user: admin-typo}}]\n",
        );
        let loaded = load_from(Some(&file), None).unwrap().unwrap();
        let e = check_names(&loaded, None, None, None).unwrap_err();
        assert_eq!(e.what, "Context \"prod\" names the user \"admin-typo\", which is not in the kubeconfig");
        assert!(e.why.contains("admin"), "{e:?}");
        assert_eq!(e.exit_code(), crate::exit::EXIT_UNKNOWN);
        // --user names an existing one instead: fine.
        assert!(check_names(&loaded, None, None, Some("admin")).is_ok());
    }
}
