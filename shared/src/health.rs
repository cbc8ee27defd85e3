//! The API server's `/livez`, `/readyz`, `/healthz` answers (apiserver healthz.go): one line per
//! check, `[+]name ok`, `[-]name failed: reason withheld`, `[+]name excluded: ok`, an optional
//! `warn:` line, and `<endpoint> check passed|failed`. Check names differ between versions, so
//! nothing here knows a list of them.

use serde::Serialize;

/// The state of one check line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Ok,
    Failed,
    Excluded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthLine {
    pub name: String,
    pub state: CheckState,
    /// The reason after `failed:` (usually `reason withheld`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A parsed health answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthBody {
    pub checks: Vec<HealthLine>,
    /// `Some(true)` for `... check passed`, `Some(false)` for `... check failed`, None when the
    /// body has no summary line (plain `ok`, or a truncated capture).
    pub passed: Option<bool>,
    /// `warn:` lines (unknown excludes).
    pub warnings: Vec<String>,
    /// Lines that are none of the above (a proxy's error page, say).
    pub unrecognised: Vec<String>,
}

impl HealthBody {
    pub fn failed(&self) -> impl Iterator<Item = &HealthLine> {
        self.checks.iter().filter(|c| c.state == CheckState::Failed)
    }

    pub fn count(&self, state: CheckState) -> usize {
        self.checks.iter().filter(|c| c.state == state).count()
    }
}

/// Parses a health answer body.
pub fn parse(body: &str) -> HealthBody {
    let mut out = HealthBody { checks: Vec::new(), passed: None, warnings: Vec::new(), unrecognised: Vec::new() };
    for raw in body.lines() {
        let line = raw.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("[+]") {
            let (name, state) = match rest.strip_suffix(" excluded: ok") {
                Some(n) => (n, CheckState::Excluded),
                None => (rest.strip_suffix(" ok").unwrap_or(rest), CheckState::Ok),
            };
            out.checks.push(HealthLine { name: name.to_string(), state, reason: None });
        } else if let Some(rest) = line.strip_prefix("[-]") {
            let (name, reason) = match rest.split_once(" failed: ") {
                Some((n, r)) => (n, Some(r.to_string())),
                None => (rest.strip_suffix(" failed").unwrap_or(rest), None),
            };
            out.checks.push(HealthLine { name: name.to_string(), state: CheckState::Failed, reason });
        } else if let Some(w) = line.strip_prefix("warn: ") {
            out.warnings.push(w.to_string());
        } else if line.ends_with(" check passed") {
            out.passed = Some(true);
        } else if line.ends_with(" check failed") {
            out.passed = Some(false);
        } else if line == "ok" {
            out.passed = Some(true);
        } else {
            out.unrecognised.push(line.to_string());
        }
    }
    if out.passed.is_none() && out.checks.iter().any(|c| c.state == CheckState::Failed) {
        out.passed = Some(false);
    }
    out
}

/// What a failing check usually means, for the hint.
pub fn explain_check(name: &str) -> &'static str {
    match name {
        "etcd" | "etcd-readiness" => {
            "the API server cannot reach etcd (etcd down, quorum lost, certificates, or network)"
        }
        "informer-sync" => "the API server's caches have not synced yet (starting, or etcd is slow)",
        "shutdown" => "the API server is shutting down",
        "ping" | "log" => "the API server process is unhealthy",
        n if n.starts_with("kms-provider") => "the KMS encryption provider does not answer",
        n if n.contains("apiservice") || n == "autoregister-completion" => {
            "aggregated API registration has not completed"
        }
        n if n.starts_with("poststarthook/") => {
            "a start-up step of the API server has not completed (still starting, or stuck)"
        }
        _ => "a health check of the API server fails",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        crate::test_files::text(&format!("tests/fixtures/health/{name}"))
    }

    #[test]
    fn parses_the_website_readyz_verbose_example() {
        // tests/fixtures/health/website-readyz-verbose-pass.txt (kubernetes/website health-checks.md)
        let h = parse(&fixture("website-readyz-verbose-pass.txt"));
        assert_eq!(h.passed, Some(true));
        assert_eq!(h.checks.len(), 18);
        assert_eq!(h.count(CheckState::Ok), 18);
        assert_eq!(h.checks[0].name, "ping");
        assert_eq!(h.checks[3].name, "poststarthook/start-kube-apiserver-admission-initializer");
        assert!(h.unrecognised.is_empty());
    }

    #[test]
    fn parses_excluded_checks() {
        // tests/fixtures/health/website-readyz-verbose-exclude-etcd.txt
        let h = parse(&fixture("website-readyz-verbose-exclude-etcd.txt"));
        assert_eq!(h.passed, Some(true));
        let etcd = h.checks.iter().find(|c| c.name == "etcd").unwrap();
        assert_eq!(etcd.state, CheckState::Excluded);
        assert_eq!(h.count(CheckState::Excluded), 1);
        assert!(h.checks.iter().any(|c| c.name == "shutdown" && c.state == CheckState::Ok));
    }

    #[test]
    fn parses_the_k3s_failing_healthz_capture() {
        // tests/fixtures/health/k3s-issue1385-healthz-verbose-failing-partial.txt (partial capture)
        let h = parse(&fixture("k3s-issue1385-healthz-verbose-failing-partial.txt"));
        assert_eq!(h.passed, Some(false));
        let failed: Vec<&str> = h.failed().map(|c| c.name.as_str()).collect();
        assert_eq!(
            failed,
            [
                "poststarthook/rbac/bootstrap-roles",
                "poststarthook/scheduling/bootstrap-system-priority-classes",
                "poststarthook/ca-registration"
            ]
        );
        assert!(h.failed().all(|c| c.reason.as_deref() == Some("reason withheld")));
        assert_eq!(h.count(CheckState::Ok), 12);
    }

    #[test]
    fn warn_lines_and_plain_ok() {
        let h = parse(
            "[+]ping ok\n[+]etcd excluded: ok\nwarn: some health checks cannot be excluded: no matches for \"nope\"\nreadyz check passed\n",
        );
        assert_eq!(h.warnings.len(), 1);
        assert_eq!(parse("ok").passed, Some(true));
        let broken = parse("<html>502 Bad Gateway</html>");
        assert_eq!(broken.passed, None);
        assert_eq!(broken.unrecognised.len(), 1);
    }
}
