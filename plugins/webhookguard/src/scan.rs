//! `kubectl webhookguard scan`: every webhook of every configuration, live or from manifests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cpkit::Cluster;
use cpkit::cli::OutputArgs;
use cpkit::error::{Error, Result};
use cpkit::exit::Status;
use cpkit::output::wrap::{command, paragraph};
use cpkit::output::{Table, bold, dim, status_text};
use cpkit::webhooks::{
    Accepted, ClusterFacts, ConfigKind, Finding, Policies, WebhookConfig, analyse, analyse_policies, apply_allowlist,
    worst,
};
use serde::Serialize;

/// The scan result (`kind: WebhookScan`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    /// `cluster <context>` or the files read.
    pub source: String,
    pub verdict: Status,
    pub configurations: Vec<WebhookConfig>,
    /// ValidatingAdmissionPolicies and their bindings.
    #[serde(flatten)]
    pub policies: Policies,
    pub findings: Vec<Finding>,
    /// The backends' serving certificates, checked through a port-forward (live scans).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backend_tls: Vec<BackendTlsRow>,
    /// What could not be known.
    pub notes: Vec<String>,
}

/// One webhook's backend handshake.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsRow {
    pub configuration: String,
    pub webhook: String,
    pub verified: bool,
    #[serde(flatten)]
    pub tls: cpkit::webhooks::analysis::BackendTls,
}

/// Reads manifests: files, directories (recursively, .yaml/.yml/.json; each directory once
/// whatever its symlinks), or `-` for stdin. Regular files only, each at most
/// [`cpkit::input::TEXT_LIMIT`]; an input without a single document is an error, not a clean
/// scan.
pub fn read_manifests(paths: &[PathBuf]) -> Result<(Vec<WebhookConfig>, Policies, String)> {
    use cpkit::input::{TEXT_LIMIT, read_stdin, read_text, walk_files};
    let mut configs = Vec::new();
    let mut policies = Policies::default();
    let mut names = Vec::new();
    let mut documents = 0;
    for p in paths {
        if p.as_os_str() == "-" {
            let text = read_stdin(TEXT_LIMIT)?;
            let (docs, found, found_policies) = parse_text("stdin", &text)?;
            documents += docs;
            configs.extend(found);
            policies.extend(found_policies);
            names.push("stdin".to_string());
            continue;
        }
        for f in walk_files(p, &["yaml", "yml", "json"])? {
            let text = read_text(&f, TEXT_LIMIT)?;
            let (docs, found, found_policies) = parse_text(&f.display().to_string(), &text)?;
            documents += docs;
            configs.extend(found);
            policies.extend(found_policies);
        }
        names.push(p.display().to_string());
    }
    if documents == 0 {
        return Err(Error::invalid_data(
            format!("No Kubernetes objects in {}", names.join(", ")),
            "the input is empty (or holds no .yaml, .yml or .json files)",
        ));
    }
    Ok((configs, policies, names.join(", ")))
}

/// The number of documents in `text`, and the webhook configurations and admission policies
/// among them.
fn parse_text(source: &str, text: &str) -> Result<(usize, Vec<WebhookConfig>, Policies)> {
    let docs = if text.trim_start().starts_with('{') {
        vec![
            serde_json::from_str(text)
                .map_err(|e| Error::invalid_data(format!("Cannot parse {source} as JSON"), e.to_string()))?,
        ]
    } else {
        cpkit::yaml::documents(source, text)?
    };
    Ok((
        docs.len(),
        cpkit::webhooks::configs_from_documents(&docs, source)?,
        cpkit::webhooks::policies_from_documents(&docs, source)?,
    ))
}

/// Reads an allowlist: a YAML list of `{config, webhook?, finding?, reason}` (or `{accepted: [...]}`).
pub fn read_allowlist(path: &Path) -> Result<Vec<Accepted>> {
    let text = cpkit::input::read_text(path, cpkit::input::TEXT_LIMIT)?;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum File {
        List(Vec<Accepted>),
        Wrapped { accepted: Vec<Accepted> },
    }
    match cpkit::yaml::from_str::<File>(&format!("allowlist {}", path.display()), &text)? {
        File::List(l) | File::Wrapped { accepted: l } => Ok(l),
    }
}

/// Scans the cluster: configurations, backend facts, runtime evidence from two scrapes.
pub async fn live(
    cluster: &Cluster,
    sample: Duration,
) -> Result<(Vec<WebhookConfig>, Policies, ClusterFacts, Vec<String>)> {
    let (configs, policies) =
        tokio::join!(cpkit::webhooks::gather::read_configs(cluster), cpkit::webhooks::gather::read_policies(cluster));
    let configs = configs?;
    let selection = cpkit::metrics::Selection::families(&[]).with_prefixes(&["apiserver_admission_webhook_"]);
    let metrics = async {
        let first = cpkit::metrics::fetch(cluster, "/metrics", &selection).await?;
        tokio::time::sleep(sample.saturating_sub(first.requested.elapsed())).await;
        let second = cpkit::metrics::fetch(cluster, "/metrics", &selection).await?;
        let secs = second.taken.duration_since(first.taken).as_secs_f64();
        Ok::<_, Error>(cpkit::webhooks::gather::runtime_from_metrics(Some(&first.scrape), &second.scrape, secs))
    };
    let (policies, policy_note) = match policies {
        Ok(p) => (p, None),
        Err(e) => (Policies::default(), Some(format!("admission policies not read ({})", e.why))),
    };
    let ((mut facts, mut notes), runtime, (policy_facts, policy_notes)) = tokio::join!(
        cpkit::webhooks::gather::read_facts(cluster, &configs),
        metrics,
        cpkit::webhooks::gather::read_policy_facts(cluster, &policies)
    );
    match runtime {
        Ok(r) => facts.runtime = r,
        Err(e) => notes.push(format!("admission metrics unknown ({})", e.why)),
    }
    facts.policies = policy_facts;
    notes.extend(policy_note);
    notes.extend(policy_notes);
    Ok((configs, policies, facts, notes))
}

/// Analyses and applies the allowlist.
pub fn report(
    source: String,
    configs: Vec<WebhookConfig>,
    policies: Policies,
    facts: &ClusterFacts,
    notes: Vec<String>,
    allow: &[Accepted],
) -> ScanReport {
    let mut findings = analyse(&configs, facts);
    findings.extend(analyse_policies(&policies, facts));
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.kind.cmp(&b.kind)));
    apply_allowlist(&mut findings, allow);
    let backend_tls = facts
        .backend_tls
        .iter()
        .map(|((configuration, webhook), tls)| BackendTlsRow {
            configuration: configuration.clone(),
            webhook: webhook.clone(),
            verified: tls.error.is_none(),
            tls: tls.clone(),
        })
        .collect();
    ScanReport { source, verdict: worst(&findings), configurations: configs, policies, findings, backend_tls, notes }
}

fn severity_text(f: &Finding) -> String {
    if f.accepted.is_some() {
        return dim("ACCEPTED");
    }
    match f.severity {
        Status::Ok => dim("NOTE"),
        s => status_text(s),
    }
}

fn kind_word(kind: ConfigKind) -> &'static str {
    match kind {
        ConfigKind::Validating => "validating",
        ConfigKind::Mutating => "mutating",
        ConfigKind::ValidatingPolicy => "validating-policy",
        ConfigKind::MutatingPolicy => "mutating-policy",
    }
}

/// The table and the fixes.
/// The scan as text: one line per finding (the SUMMARY cut to the terminal unless `verbose`),
/// then why and the fix for each, fitted to the terminal.
pub fn render(r: &ScanReport, out: &OutputArgs, verbose: bool) -> String {
    let width = cpkit::output::text_width(out.is_wide());
    let webhooks: usize = r.configurations.iter().map(|c| c.webhooks.len()).sum();
    let mut text = String::new();
    if !out.no_headers {
        text.push_str(&paragraph(
            &format!("{} ", bold("Scanned")),
            &format!(
                "{} configuration{} ({webhooks} webhook{}){} from {} — {}",
                r.configurations.len(),
                if r.configurations.len() == 1 { "" } else { "s" },
                if webhooks == 1 { "" } else { "s" },
                match (r.policies.policies.len(), r.policies.bindings.len()) {
                    (0, 0) => String::new(),
                    (p, b) => format!(
                        ", {p} admission polic{} ({b} binding{})",
                        if p == 1 { "y" } else { "ies" },
                        if b == 1 { "" } else { "s" }
                    ),
                },
                r.source,
                status_text(r.verdict)
            ),
            2,
            width,
        ));
        text.push('\n');
    }
    let mut t =
        Table::new(&["severity", "finding", "configuration", "webhook", "summary"]).wide_columns(&["evidence", "fix"]);
    // Narrow terminals lose CONFIGURATION first: "Why, and the fix" below names it.
    t = t.droppable(&["configuration"]);
    if !verbose {
        t = t.shorten(&["summary"]);
    }
    for f in &r.findings {
        t.row([
            severity_text(f),
            f.kind.label().to_string(),
            format!("{}/{}", kind_word(f.config_kind), f.config),
            f.webhook.clone(),
            f.summary.clone(),
            f.evidence.iter().map(|e| format!("{}: {}", e.name, e.value)).collect::<Vec<_>>().join("; "),
            f.fix.as_ref().map(|x| x.command.clone()).unwrap_or_default(),
        ]);
    }
    if t.is_empty() {
        text.push_str("No findings: no webhook can lock this cluster.\n");
    } else {
        text.push_str(&t.render(out.is_wide(), out.no_headers));
    }
    // One set lookup per webhook (comparing each with every finding was quadratic).
    let with_findings: std::collections::HashSet<(ConfigKind, &str, &str)> =
        r.findings.iter().map(|f| (f.config_kind, f.config.as_str(), f.webhook.as_str())).collect();
    let clean: Vec<String> = r
        .configurations
        .iter()
        .flat_map(|c| {
            let with_findings = &with_findings;
            c.webhooks
                .iter()
                .filter(move |w| !with_findings.contains(&(c.kind, c.name.as_str(), w.name.as_str())))
                .map(move |w| format!("{} ({}/{})", w.name, kind_word(c.kind), c.name))
        })
        .collect();
    if !clean.is_empty() {
        text.push('\n');
        text.push_str(&paragraph(&format!("{} ", bold("Without findings:")), &clean.join(", "), 2, width));
    }
    let to_fix: Vec<&Finding> =
        r.findings.iter().filter(|f| f.severity != Status::Ok && f.accepted.is_none()).collect();
    if !to_fix.is_empty() {
        text.push_str(&format!("\n{}\n", bold("Why, and the fix:")));
        for f in to_fix {
            text.push_str(&paragraph(
                &format!("{} ", bold(f.kind.label())),
                &format!("{} ({}): {}", f.webhook, f.config, f.explanation),
                2,
                width,
            ));
            if verbose {
                for e in &f.evidence {
                    text.push_str(&paragraph(&format!("  {}: ", e.name), &e.value, 4, width));
                }
            }
            if let Some(fix) = &f.fix {
                text.push_str(&paragraph("  fix: ", &fix.description, 4, width));
                text.push_str(&command("    $ ", &fix.command, width));
            }
        }
    }
    if verbose && !r.backend_tls.is_empty() {
        text.push_str(&format!("\n{}\n", bold("Backend TLS (through a port-forward, as the API server checks it):")));
        for b in &r.backend_tls {
            let verdict = match &b.tls.error {
                None => "verified".to_string(),
                Some(e) => format!("REJECTED ({e})"),
            };
            let ns = b.tls.server_name.split('.').nth(1).unwrap_or("");
            text.push_str(&paragraph(
                &format!("  {} ({}): ", b.webhook, b.configuration),
                &format!("{verdict}: {}", b.tls.describe(ns)),
                4,
                width,
            ));
        }
    }
    for n in &r.notes {
        for line in paragraph("note: ", n, 2, width).lines() {
            text.push_str(&format!("{}\n", dim(line)));
        }
    }
    text
}
