//! How a report is printed: a header and one row per check; with `--verbose` every sub-check,
//! evidence and fix; `-o json|yaml` the whole report.

use std::collections::BTreeMap;

use cpkit::exit::Status;
use cpkit::output::{Table, bold, dim, status_text};
use cpkit::report::CheckResult;
use serde::Serialize;

/// The report of one cluster (`kind: HealthReport`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub context: String,
    pub server: String,
    pub version: Option<String>,
    /// EKS, GKE, AKS when the control plane is managed.
    pub managed: Option<String>,
    pub verdict: Status,
    pub started_at: String,
    pub duration_seconds: f64,
    /// Number of checks per status.
    pub summary: BTreeMap<Status, usize>,
    /// The findings linked by the runbooks' decision tree (none when everything is fine).
    pub diagnosis: Option<cpkit::diagnosis::Diagnosis>,
    pub checks: Vec<CheckResult>,
}

impl HealthReport {
    pub fn summary_text(&self) -> String {
        let parts: Vec<String> =
            [Status::Critical, Status::Unknown, Status::Warning, Status::Note, Status::Ok, Status::Skipped]
                .iter()
                .filter_map(|s| self.summary.get(s).map(|n| format!("{n} {s}")))
                .collect();
        format!("{} checks: {}", self.checks.len(), parts.join(", "))
    }

    /// The message of the worst check, for one-line summaries.
    pub fn top_issue(&self) -> String {
        self.checks
            .iter()
            .filter(|c| c.status != Status::Ok && c.status != Status::Skipped)
            .max_by_key(|c| c.status)
            .map(|c| format!("{}: {}", c.name, c.message))
            .unwrap_or_default()
    }
}

/// The table of one report, with its header; `verbose` adds details after it.
pub fn text(report: &HealthReport, wide: bool, no_headers: bool, verbose: bool) -> String {
    let mut out = String::new();
    if !no_headers {
        let version = report.version.clone().unwrap_or_else(|| "unknown".into());
        let managed = report.managed.as_ref().map(|m| format!(", managed: {m}")).unwrap_or_default();
        out.push_str(&format!("{}  {}\n", bold("Context:"), report.context));
        out.push_str(&format!("{}   {} ({version}{managed})\n", bold("Server:"), report.server));
        out.push_str(&format!("{}  {} — {}\n", bold("Verdict:"), status_text(report.verdict), report.summary_text()));
        let unpermitted: Vec<&str> =
            report.checks.iter().filter(|c| c.missing_permission.is_some()).map(|c| c.name.as_str()).collect();
        if !unpermitted.is_empty() {
            out.push_str(&format!(
                "{}  {} could not run for lack of permissions: `kubectl cphealth rbac` prints the read-only role\n",
                bold("Access:"),
                unpermitted.join(", ")
            ));
        }
        out.push('\n');
    }
    let mut table = Table::new(&["check", "status", "message"]).wide_columns(&["duration", "evidence"]);
    for c in &report.checks {
        let evidence = c.evidence.iter().map(|e| format!("{}={}", e.name, e.value)).collect::<Vec<_>>().join("; ");
        table.row([
            c.name.clone(),
            status_text(c.status),
            // Problems are shown whole; only OK lines are shortened in the narrow table.
            if wide || c.status != Status::Ok { c.message.clone() } else { cpkit::output::truncate(&c.message, 140) },
            cpkit::duration::short_latency(c.duration),
            evidence,
        ]);
    }
    out.push_str(&table.render(wide, no_headers));
    if let Some(d) = &report.diagnosis {
        push_diagnosis(&mut out, d);
    }
    let problems: Vec<&CheckResult> =
        report.checks.iter().filter(|c| !matches!(c.status, Status::Ok | Status::Skipped) || verbose).collect();
    if verbose {
        out.push('\n');
        for c in &report.checks {
            out.push_str(&format!("{} {} — {}\n", bold(&c.name), status_text(c.status), c.message));
            for s in &c.subchecks {
                out.push_str(&format!("  {:<8} {}: {}\n", status_text(s.status), s.name, s.message));
            }
            for e in &c.evidence {
                out.push_str(&format!("  {}\n", dim(&format!("{}: {}", e.name, e.value))));
            }
            for f in &c.remediation {
                push_fix(&mut out, f);
            }
            out.push('\n');
        }
    } else if problems.iter().any(|c| !c.remediation.is_empty()) {
        out.push_str(&format!("\n{}\n", bold("What to do:")));
        // A fix shared by several checks (the RBAC one) is printed once, under all their names.
        let mut fixes: Vec<(Vec<&str>, &cpkit::report::Remediation)> = Vec::new();
        for c in problems {
            for f in &c.remediation {
                match fixes.iter_mut().find(|(_, g)| g.action == f.action && g.commands == f.commands) {
                    Some((names, _)) => names.push(&c.name),
                    None => fixes.push((vec![&c.name], f)),
                }
            }
        }
        for (names, f) in fixes {
            out.push_str(&format!("{} ", bold(&format!("{}:", names.join(", ")))));
            push_fix_inline(&mut out, f);
        }
        out.push_str(&dim("(kubectl cphealth --verbose shows every sub-check and its evidence)\n"));
    }
    out
}

fn push_diagnosis(out: &mut String, d: &cpkit::diagnosis::Diagnosis) {
    out.push_str(&format!("\n{} {}\n", bold("Diagnosis:"), d.summary));
    if let Some(c) = &d.likely_cause {
        out.push_str(&format!("  {} {}: {}\n", bold("cause"), c.check, c.finding));
    }
    for c in &d.consequences {
        out.push_str(&format!("  ← {}: {} {}\n", c.check, c.finding, dim(&format!("({})", c.because))));
    }
    for i in &d.independent {
        out.push_str(&format!("  {} {i}\n", dim("independent:")));
    }
    if let Some(a) = &d.first_action {
        out.push_str(&format!("  {} {a}\n", bold("first:")));
    }
}

fn push_fix(out: &mut String, f: &cpkit::report::Remediation) {
    out.push_str(&format!("  fix: {}\n", f.action));
    for cmd in &f.commands {
        out.push_str(&format!("    $ {cmd}\n"));
    }
    out.push_str(&format!("    {}\n", dim(&format!("risk: {}", f.risk))));
}

fn push_fix_inline(out: &mut String, f: &cpkit::report::Remediation) {
    out.push_str(&format!("{}\n", f.action));
    for cmd in &f.commands {
        out.push_str(&format!("    $ {cmd}\n"));
    }
    out.push_str(&format!("    {}\n", dim(&format!("risk: {}", f.risk))));
}

/// One row per cluster (`--contexts`, `--all-contexts`).
pub fn multi(reports: &[Result<HealthReport, (String, cpkit::Error)>], wide: bool, no_headers: bool) -> String {
    let mut t = Table::new(&["context", "verdict", "version", "issue"]).wide_columns(&["server", "checks"]);
    for r in reports {
        match r {
            Ok(rep) => t.row([
                rep.context.clone(),
                status_text(rep.verdict),
                rep.version.clone().unwrap_or_default(),
                cpkit::output::truncate(&rep.top_issue(), 100),
                rep.server.clone(),
                rep.summary_text(),
            ]),
            Err((ctx, e)) => t.row([
                ctx.clone(),
                status_text(Status::Unknown),
                String::new(),
                cpkit::output::truncate(&e.to_string(), 100),
                String::new(),
                String::new(),
            ]),
        }
    }
    t.render(wide, no_headers)
}

/// What changed between two rounds of `--watch`.
pub fn changes(previous: &HealthReport, current: &HealthReport) -> Vec<String> {
    let mut out = Vec::new();
    for c in &current.checks {
        match previous.checks.iter().find(|p| p.name == c.name) {
            Some(p) if p.status != c.status => {
                out.push(format!("{}: {} → {}  {}", c.name, p.status, c.status, c.message))
            }
            Some(p) if p.message != c.message && c.status != Status::Ok => {
                out.push(format!("{}: {}  (was: {})", c.name, c.message, p.message))
            }
            None => out.push(format!("{}: new, {}", c.name, c.status)),
            _ => {}
        }
    }
    out
}
