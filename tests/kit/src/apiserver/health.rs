//! `/livez`, `/readyz`, `/healthz` exactly as apiserver's healthz.go writes them: `[+]name ok`,
//! `[-]name failed: reason withheld`, `[+]name excluded: ok`, the `warn:` line for unknown
//! excludes, always verbose with HTTP 500 on failure, plain `ok` on success without `?verbose`.

/// One check and why it fails (None = passes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub failure: Option<String>,
}

/// The checks of one API server replica.
#[derive(Debug, Clone, Default)]
pub struct HealthModel {
    pub livez: Vec<Check>,
    pub readyz: Vec<Check>,
    pub healthz: Vec<Check>,
}

fn poststarthooks(minor: u32) -> Vec<&'static str> {
    let mut hooks = vec![
        "start-apiserver-admission-initializer",
        "generic-apiserver-start-informers",
        "priority-and-fairness-config-consumer",
        "priority-and-fairness-filter",
        "storage-object-count-tracker-hook",
        "start-apiextensions-informers",
        "start-apiextensions-controllers",
        "crd-informer-synced",
        "start-system-namespaces-controller",
        "start-cluster-authentication-info-controller",
        "start-kube-apiserver-identity-lease-controller",
        "start-kube-apiserver-identity-lease-garbage-collector",
        "start-legacy-token-tracking-controller",
        "start-service-ip-repair-controllers",
        "rbac/bootstrap-roles",
        "scheduling/bootstrap-system-priority-classes",
        "priority-and-fairness-config-producer",
        "bootstrap-controller",
        "aggregator-reload-proxy-client-cert",
        "start-kube-aggregator-informers",
    ];
    if minor >= 31 {
        hooks.push("apiservice-status-local-available-controller");
        hooks.push("apiservice-status-remote-available-controller");
    } else {
        hooks.push("apiservice-status-available-controller");
    }
    hooks.extend([
        "apiservice-registration-controller",
        "apiservice-discovery-controller",
        "kube-apiserver-autoregistration",
    ]);
    hooks
}

impl HealthModel {
    /// The checks a kube-apiserver of version 1.`minor` registers.
    pub fn for_version(minor: u32) -> HealthModel {
        let ok = |n: &str| Check { name: n.to_string(), failure: None };
        let hooks: Vec<Check> = poststarthooks(minor).into_iter().map(|h| ok(&format!("poststarthook/{h}"))).collect();
        let tail = [
            ok("autoregister-completion"),
            ok("poststarthook/apiservice-openapi-controller"),
            ok("poststarthook/apiservice-openapiv3-controller"),
        ];
        let mut livez = vec![ok("ping"), ok("log"), ok("etcd")];
        livez.extend(hooks.iter().cloned());
        livez.extend(tail.iter().cloned());
        let mut healthz = livez.clone();
        healthz.retain(|c| c.name != "autoregister-completion" || minor < 99);
        let mut readyz = vec![ok("ping"), ok("log"), ok("etcd"), ok("etcd-readiness"), ok("informer-sync")];
        readyz.extend(hooks);
        readyz.extend(tail);
        readyz.push(ok("shutdown"));
        HealthModel { livez, readyz, healthz }
    }

    /// Makes `check` fail in every endpoint that has it.
    /// Whether the replica's etcd is out of reach: its `etcd` check fails.
    pub fn etcd_unreachable(&self) -> bool {
        self.readyz.iter().any(|c| c.name == "etcd" && c.failure.is_some())
    }

    pub fn fail(&mut self, check: &str, reason: &str) {
        for list in [&mut self.livez, &mut self.readyz, &mut self.healthz] {
            for c in list.iter_mut().filter(|c| c.name == check) {
                c.failure = Some(reason.to_string());
            }
        }
    }

    pub fn checks(&self, endpoint: &str) -> &[Check] {
        match endpoint {
            "livez" => &self.livez,
            "readyz" => &self.readyz,
            _ => &self.healthz,
        }
    }
}

/// Renders `/<endpoint>` for the query's `verbose` flag and `exclude` values: (status, body).
pub fn render(endpoint: &str, checks: &[Check], verbose: bool, excludes: &[String]) -> (u16, String) {
    let mut remaining: Vec<String> = excludes.to_vec();
    remaining.sort();
    remaining.dedup();
    let mut out = String::new();
    let mut failed = false;
    for c in checks {
        if let Some(pos) = remaining.iter().position(|e| *e == c.name) {
            remaining.remove(pos);
            out.push_str(&format!("[+]{} excluded: ok\n", c.name));
            continue;
        }
        match &c.failure {
            Some(_) => {
                failed = true;
                out.push_str(&format!("[-]{} failed: reason withheld\n", c.name));
            }
            None => out.push_str(&format!("[+]{} ok\n", c.name)),
        }
    }
    if !remaining.is_empty() {
        let quoted: Vec<String> = remaining.iter().map(|e| format!("{e:?}")).collect();
        out.push_str(&format!("warn: some health checks cannot be excluded: no matches for {}\n", quoted.join(", ")));
    }
    if failed {
        // http.Error adds the trailing newline.
        return (500, format!("{out}{endpoint} check failed\n"));
    }
    if !verbose {
        return (200, "ok".to_string());
    }
    (200, format!("{out}{endpoint} check passed\n"))
}

/// Renders `/<endpoint>/<check>`.
pub fn render_single(checks: &[Check], name: &str) -> Option<(u16, String)> {
    let c = checks.iter().find(|c| c.name == name)?;
    Some(match &c.failure {
        Some(reason) => (500, format!("internal server error: {reason}\n")),
        None => (200, "ok".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_healthz_go() {
        let mut m = HealthModel::for_version(33);
        let (code, body) = render("readyz", &m.readyz, false, &[]);
        assert_eq!((code, body.as_str()), (200, "ok"));
        let (code, body) = render("readyz", &m.readyz, true, &["etcd".into(), "nope".into()]);
        assert_eq!(code, 200);
        assert!(body.contains("[+]etcd excluded: ok\n"));
        assert!(body.contains("warn: some health checks cannot be excluded: no matches for \"nope\"\n"));
        assert!(body.ends_with("readyz check passed\n"));
        m.fail("etcd", "etcd client connection not yet established");
        let (code, body) = render("readyz", &m.readyz, false, &[]);
        assert_eq!(code, 500);
        assert!(body.contains("[-]etcd failed: reason withheld\n"));
        assert!(body.ends_with("readyz check failed\n"));
        assert_eq!(render_single(&m.readyz, "etcd").unwrap().0, 500);
        assert_eq!(render_single(&m.readyz, "ping").unwrap(), (200, "ok".to_string()));
        assert!(m.readyz.iter().any(|c| c.name == "shutdown"));
        assert!(!m.livez.iter().any(|c| c.name == "informer-sync"));
    }
}
