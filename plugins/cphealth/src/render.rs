//! How a report is printed: a header and one row per check; with `--verbose` every sub-check,
//! evidence and fix; `-o json|yaml` the whole report.

use std::collections::BTreeMap;

use cpkit::exit::Status;
use cpkit::output::wrap::{command, paragraph};
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
    let width = cpkit::output::text_width(wide);
    if !no_headers {
        let version = report.version.clone().unwrap_or_else(|| "unknown".into());
        let managed = report.managed.as_ref().map(|m| format!(", managed: {m}")).unwrap_or_default();
        out.push_str(&paragraph(&format!("{}  ", bold("Context:")), &report.context, 10, width));
        out.push_str(&paragraph(
            &format!("{}   ", bold("Server:")),
            &format!("{} ({version}{managed})", report.server),
            10,
            width,
        ));
        out.push_str(&paragraph(
            &format!("{}  ", bold("Verdict:")),
            &format!("{} — {}", status_text(report.verdict), report.summary_text()),
            10,
            width,
        ));
        let unpermitted: Vec<&str> =
            report.checks.iter().filter(|c| c.missing_permission.is_some()).map(|c| c.name.as_str()).collect();
        if !unpermitted.is_empty() {
            out.push_str(&paragraph(
                &format!("{}   ", bold("Access:")),
                &format!(
                    "{} could not run for lack of permissions: `kubectl cphealth rbac` prints the read-only role",
                    unpermitted.join(", ")
                ),
                10,
                width,
            ));
        }
        out.push('\n');
    }
    // Where the MESSAGE column starts: after CHECK and STATUS and their gaps.
    let name_width = report.checks.iter().map(|c| c.name.len()).max().unwrap_or(0).max(5);
    let status_width = report.checks.iter().map(|c| c.status.as_str().len()).max().unwrap_or(0).max(6);
    let ok_room = width.map(|w| w.saturating_sub(name_width + status_width + 6).max(12)).unwrap_or(140);
    let mut table = Table::new(&["check", "status", "message"]).wide_columns(&["duration", "evidence"]);
    for c in &report.checks {
        let evidence = c.evidence.iter().map(|e| format!("{}={}", e.name, e.value)).collect::<Vec<_>>().join("; ");
        table.row([
            c.name.clone(),
            status_text(c.status),
            // Problems are shown whole (wrapped); OK lines stay one line in the narrow table.
            if wide || c.status != Status::Ok {
                c.message.clone()
            } else {
                cpkit::output::wrap::shorten(&c.message, ok_room)
            },
            cpkit::duration::short_latency(c.duration),
            evidence,
        ]);
    }
    out.push_str(&table.render(wide, no_headers));
    if let Some(d) = &report.diagnosis {
        // Without -v, "What to do" below starts with the likely cause's fix: not said twice.
        push_diagnosis(&mut out, d, width, verbose);
    }
    let mut problems: Vec<&CheckResult> =
        report.checks.iter().filter(|c| !matches!(c.status, Status::Ok | Status::Skipped) || verbose).collect();
    if !verbose {
        // The likely cause's fixes first, its consequences' last: they clear when the cause does.
        problems.sort_by_key(|c| fix_order(report.diagnosis.as_ref(), &c.name));
    }
    // A command is printed once: the first fix that needs it shows it (two checks that see the same
    // pod both point at its logs).
    let mut shown: std::collections::HashSet<&str> = std::collections::HashSet::new();
    if verbose {
        out.push('\n');
        for c in &report.checks {
            out.push_str(&paragraph(&format!("{} {} — ", bold(&c.name), status_text(c.status)), &c.message, 2, width));
            for s in &c.subchecks {
                let status =
                    format!("{}{}", status_text(s.status), " ".repeat(8usize.saturating_sub(s.status.as_str().len())));
                out.push_str(&paragraph(&format!("  {status} "), &s.line(), 11, width));
            }
            for e in &c.evidence {
                // Dimmed line by line: a colour code must not span a wrapped line's indent.
                for line in paragraph("  ", &format!("{}: {}", e.name, e.value), 4, width).lines() {
                    out.push_str(&format!("{}\n", dim(line)));
                }
            }
            for f in &c.remediation {
                push_fix(&mut out, "  fix: ", f, width, &mut shown);
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
            push_fix(&mut out, &format!("{} ", bold(&format!("{}:", names.join(", ")))), f, width, &mut shown);
        }
        out.push_str(&dim("(kubectl cphealth --verbose shows every sub-check and its evidence)\n"));
    }
    out
}

/// Where a check's fixes stand under "What to do": 0 the likely cause, 1 independent findings,
/// 2 the cause's consequences.
fn fix_order(d: Option<&cpkit::diagnosis::Diagnosis>, check: &str) -> u8 {
    match d {
        Some(d) if d.likely_cause.as_ref().is_some_and(|c| c.check == check) => 0,
        Some(d) if d.consequences.iter().any(|c| c.check == check) => 2,
        _ => 1,
    }
}

fn push_diagnosis(out: &mut String, d: &cpkit::diagnosis::Diagnosis, width: Option<usize>, first_action: bool) {
    out.push('\n');
    out.push_str(&paragraph(&format!("{} ", bold("Diagnosis:")), &d.summary, 2, width));
    if let Some(c) = &d.likely_cause {
        out.push_str(&paragraph(&format!("  {} ", bold("cause")), &format!("{}: {}", c.check, c.finding), 4, width));
    }
    for c in &d.consequences {
        let because = dim(&format!("({})", c.because));
        out.push_str(&paragraph("  ← ", &format!("{}: {} {because}", c.check, c.finding), 4, width));
    }
    for i in &d.independent {
        out.push_str(&paragraph(&format!("  {} ", dim("independent:")), i, 4, width));
    }
    if let Some(a) = d.first_action.as_ref().filter(|_| first_action) {
        out.push_str(&paragraph(&format!("  {} ", bold("first:")), a, 4, width));
    }
}

/// A fix: its action after `lead`, its commands not `shown` above (split so they still paste), its
/// risk.
fn push_fix<'r>(
    out: &mut String,
    lead: &str,
    f: &'r cpkit::report::Remediation,
    width: Option<usize>,
    shown: &mut std::collections::HashSet<&'r str>,
) {
    out.push_str(&paragraph(lead, &f.action, 4, width));
    for cmd in &f.commands {
        if shown.insert(cmd.as_str()) {
            out.push_str(&command("    $ ", cmd, width));
        }
    }
    for line in paragraph("    ", &format!("risk: {}", f.risk), 4, width).lines() {
        out.push_str(&format!("{}\n", dim(line)));
    }
}

/// One row per cluster (`--contexts`, `--all-contexts`).
pub fn multi(reports: &[Result<HealthReport, (String, cpkit::Error)>], wide: bool, no_headers: bool) -> String {
    let mut t =
        Table::new(&["context", "verdict", "version", "issue"]).wide_columns(&["server", "checks"]).shorten(&["issue"]);
    for r in reports {
        match r {
            Ok(rep) => t.row([
                rep.context.clone(),
                status_text(rep.verdict),
                rep.version.clone().unwrap_or_default(),
                cpkit::output::wrap::shorten(&rep.top_issue(), 100),
                rep.server.clone(),
                rep.summary_text(),
            ]),
            Err((ctx, e)) => t.row([
                ctx.clone(),
                status_text(Status::Unknown),
                String::new(),
                cpkit::output::wrap::shorten(&e.to_string(), 100),
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
                out.push(format!("{}: {} → {}  {}", c.name, p.status, c.status, c.message));
            }
            Some(p) if p.message != c.message && c.status != Status::Ok => {
                out.push(format!("{}: {}  (was: {})", c.name, c.message, p.message));
            }
            None => out.push(format!("{}: new, {}", c.name, c.status)),
            _ => {}
        }
    }
    out
}
