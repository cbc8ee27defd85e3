//! The result of a check: a verdict, one line that says what was found, the evidence behind it,
//! sub-checks (each readyz line, each etcd member, each pod), and for anything not OK what to do
//! and what that costs.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::exit::Status;

/// One named fact a verdict rests on ("db size" = "62 MB of 64 MiB (97%)").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}

/// A finding below a check: one member, one pod, one health check line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubCheck {
    pub name: String,
    pub status: Status,
    pub message: String,
}

impl SubCheck {
    /// The line `-v` shows: the name, then the message without the words that only repeat it
    /// (`kube-scheduler: kube-scheduler: leader cp-1` reads `kube-scheduler: leader cp-1`). The
    /// message stays whole in JSON, where it is read without its name beside it.
    pub fn line(&self) -> String {
        let name_words: Vec<&str> = self.name.split_whitespace().collect();
        let mut rest = self.message.trim_start();
        loop {
            let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
            if word.is_empty() || !name_words.contains(&word.trim_end_matches([':', ','])) {
                break;
            }
            rest = after.trim_start();
        }
        match rest {
            "" => self.name.clone(),
            // `cp-1 (https://…): 35/35 checks pass` under `livez cp-1`: the address follows the name.
            r if r.starts_with('(') => format!("{} {r}", self.name),
            r => format!("{}: {r}", self.name),
        }
    }
}

/// What to do about a finding, and what doing it risks (from the runbooks, corrected where
/// upstream sources say they are wrong).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remediation {
    pub action: String,
    /// Commands to run, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// `low`, `medium`, `high`, with what can go wrong.
    pub risk: String,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Stable identifier (`etcd`, `leader-election`).
    pub name: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subchecks: Vec<SubCheck>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remediation: Vec<Remediation>,
    /// The permission whose lack kept this check from running (`get on /metrics`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_permission: Option<String>,
    #[serde(rename = "durationSeconds", serialize_with = "secs")]
    pub duration: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

impl CheckResult {
    pub fn new(name: &str, status: Status, message: impl Into<String>) -> Self {
        CheckResult {
            name: name.to_string(),
            status,
            message: message.into(),
            evidence: Vec::new(),
            subchecks: Vec::new(),
            remediation: Vec::new(),
            missing_permission: None,
            duration: Duration::ZERO,
        }
    }

    pub fn ok(name: &str, message: impl Into<String>) -> Self {
        CheckResult::new(name, Status::Ok, message)
    }

    pub fn skipped(name: &str, reason: impl Into<String>) -> Self {
        CheckResult::new(name, Status::Skipped, reason)
    }

    /// A check that could not run for lack of `permission` (`get on /metrics`): UNKNOWN, since
    /// nothing was verified, with the read-only role that enables it. Checks that do not apply
    /// (a managed control plane) are SKIPPED instead and leave the verdict alone.
    pub fn not_permitted(name: &str, permission: &str) -> Self {
        let mut r = CheckResult::new(name, Status::Unknown, format!("not permitted: needs {permission}"));
        r.missing_permission = Some(permission.to_string());
        r.remediation.push(Remediation {
            action: "Grant the read-only permissions the checks need: `kubectl cphealth rbac` prints the ClusterRole (and the optional etcd exec Role) to apply.".into(),
            commands: vec!["kubectl cphealth rbac".into()],
            risk: "low: read-only permissions".into(),
        });
        r
    }

    /// The result of a check that could not run because of `error`: a missing permission is
    /// UNKNOWN with the permission named (never a false alarm), anything else UNKNOWN with the
    /// error.
    pub fn from_error(name: &str, error: &Error) -> Self {
        match error.kind {
            ErrorKind::Forbidden => match &error.missing_permission {
                Some(p) => CheckResult::not_permitted(name, p),
                None => {
                    let mut r = CheckResult::not_permitted(name, "more permissions");
                    r.message = format!("not permitted: {}", error.why);
                    r
                }
            },
            _ => CheckResult::new(name, Status::Unknown, error.to_string()),
        }
    }

    pub fn push_evidence(&mut self, name: &str, value: impl Into<String>) {
        self.evidence.push(Evidence { name: name.into(), value: value.into() });
    }

    pub fn sub(&mut self, name: impl Into<String>, status: Status, message: impl Into<String>) {
        self.subchecks.push(SubCheck { name: name.into(), status, message: message.into() });
    }

    /// Adds a fix (once: the same action twice is kept once).
    pub fn fix(&mut self, action: impl Into<String>, commands: &[&str], risk: impl Into<String>) {
        let action = action.into();
        if self.remediation.iter().any(|r| r.action == action) {
            return;
        }
        self.remediation.push(Remediation {
            action,
            commands: commands.iter().map(std::string::ToString::to_string).collect(),
            risk: risk.into(),
        });
    }

    /// Raises the status to `s` if it is worse.
    pub fn raise(&mut self, s: Status) {
        self.status = self.status.max(s);
    }

    pub fn with_duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }
}

/// The width a check's message fits in (the MESSAGE column of a 120-column table).
pub const MESSAGE_WIDTH: usize = 120;

/// Joins `parts` with "; " into one line of at most [`MESSAGE_WIDTH`] characters, leading with the
/// first: parts that do not fit are counted ("+2 more"), never cut mid-fact (each is in the
/// sub-checks). A first part longer than the width is kept whole: the key fact is never cut.
pub fn one_line(parts: &[String]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        let rest = parts.len() - i - 1;
        let tail = if rest > 0 { format!("; +{rest} more") } else { String::new() };
        let candidate = if out.is_empty() { part.clone() } else { format!("{out}; {part}") };
        if i == 0 || candidate.chars().count() + tail.chars().count() <= MESSAGE_WIDTH {
            out = candidate;
        } else {
            out.push_str(&format!("; +{} more", rest + 1));
            return out;
        }
    }
    out
}

/// The overall verdict of several checks; SKIPPED checks do not count (a managed cluster with
/// everything visible healthy is OK).
pub fn verdict(results: &[CheckResult]) -> Status {
    // Nothing verified (every check skipped: no permission, nothing visible) is not "OK".
    if !results.is_empty() && results.iter().all(|r| r.status == Status::Skipped) {
        return Status::Unknown;
    }
    // A NOTE is worth reading, not a fault: the report is OK.
    match results.iter().map(|r| r.status).filter(|s| *s != Status::Skipped).max().unwrap_or(Status::Ok) {
        Status::Note => Status::Ok,
        worst => worst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_check_line_says_its_name_once() {
        let line = |name: &str, message: &str| {
            SubCheck { name: name.into(), status: Status::Ok, message: message.into() }.line()
        };
        for (name, message, shown) in [
            (
                "kube-scheduler",
                "kube-scheduler: leader cp-1, renewed 1s ago",
                "kube-scheduler: leader cp-1, renewed 1s ago",
            ),
            ("p99 APPLY", "APPLY p99 48ms", "p99 APPLY: 48ms"),
            ("etcd p99 create", "etcd create p99 45ms", "etcd p99 create: 45ms"),
            (
                "livez cp-1",
                "cp-1 (https://127.0.0.2:6443): 35/35 checks pass",
                "livez cp-1 (https://127.0.0.2:6443): 35/35 checks pass",
            ),
            (
                "replica cp-2",
                "cp-2 (https://127.0.0.3:6443) is down: connection refused",
                "replica cp-2 (https://127.0.0.3:6443) is down: connection refused",
            ),
            // Nothing repeated: the message as it is.
            ("kube-apiserver-cp-1", "Ready, 0 restarts", "kube-apiserver-cp-1: Ready, 0 restarts"),
            (
                "certificate cp-1",
                "served on port 2379: cp-1 expires",
                "certificate cp-1: served on port 2379: cp-1 expires",
            ),
            ("apf workload-low", "", "apf workload-low"),
            ("request", "request", "request"),
        ] {
            assert_eq!(line(name, message), shown, "{name} / {message}");
        }
    }

    #[test]
    fn a_report_of_skipped_checks_only_is_unknown() {
        let skipped = CheckResult::skipped("load", "not permitted");
        assert_eq!(verdict(&[skipped.clone(), skipped.clone()]), Status::Unknown);
        assert_eq!(verdict(&[skipped, CheckResult::ok("nodes", "5/5 Ready")]), Status::Ok);
        assert_eq!(verdict(&[]), Status::Ok);
    }

    #[test]
    fn forbidden_is_unknown_with_the_permission() {
        let e = crate::error::http_error(
            "https://x",
            "GET /metrics",
            403,
            br#"{"message":"forbidden: User \"u\" cannot get path \"/metrics\""}"#,
            None,
            Some(&crate::access::Access::non_resource("get", "/metrics")),
        );
        let r = CheckResult::from_error("load", &e);
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.message, "not permitted: needs get on /metrics");
        assert_eq!(r.missing_permission.as_deref(), Some("get on /metrics"));
        assert_eq!(r.remediation[0].commands, ["kubectl cphealth rbac"]);
        let other = CheckResult::from_error("load", &Error::failed("x", "y", ""));
        assert_eq!(other.status, Status::Unknown);
    }

    #[test]
    fn one_line_counts_what_does_not_fit() {
        let long = |c: char| c.to_string().repeat(50);
        assert_eq!(one_line(&[long('a')]), long('a'));
        assert_eq!(one_line(&[long('a'), long('b')]), format!("{}; {}", long('a'), long('b')));
        assert_eq!(one_line(&[long('a'), long('b'), long('c')]), format!("{}; {}; +1 more", long('a'), long('b')));
        let seventy = |c: char| c.to_string().repeat(70);
        assert_eq!(one_line(&[seventy('a'), seventy('b'), seventy('c')]), format!("{}; +2 more", seventy('a')));
        let key = "k".repeat(150);
        assert_eq!(one_line(&[key.clone(), "x".into()]), format!("{key}; +1 more"), "the key fact is never cut");
        assert!(one_line(&[long('a'), long('b'), "c".into()]).chars().count() <= MESSAGE_WIDTH);
    }

    #[test]
    fn verdict_is_the_worst() {
        let a = CheckResult::ok("a", "");
        let b = CheckResult::skipped("b", "why");
        assert_eq!(verdict(&[a.clone(), b.clone()]), Status::Ok);
        let c = CheckResult::new("c", Status::Warning, "");
        assert_eq!(verdict(&[a.clone(), b.clone(), CheckResult::new("n", Status::Note, "")]), Status::Ok);
        assert_eq!(verdict(&[a, b, c]), Status::Warning);
    }
}
