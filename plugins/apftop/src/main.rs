//! `kubectl apftop`: a live, top-like view of API Priority and Fairness.

// System calls belong in cpkit, where each unsafe block is justified.
#![forbid(unsafe_code)]

mod config;
mod examples;
mod gather;
mod tui;
mod view;

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cpkit::Cluster;
use cpkit::apf::classify::{Explanation, Requester, Target, explain};
use cpkit::cli::{KubeArgs, OutputArgs, Plugin};
use cpkit::error::{Error, Result};
use cpkit::exit::Status;
use cpkit::output::{self, Table, bold, dim, status_text};
use serde_json::json;

use view::{Context, View};

const PLUGIN: Plugin = Plugin { name: "apftop", version: env!("CARGO_PKG_VERSION") };

/// A live, top-like view of API Priority and Fairness: which priority levels are saturated,
/// which flows are queued or rejected, and who sends them — from every API server replica.
/// Exit codes (--once): 0 OK, 1 WARNING (queuing, a workload's requests rejected, a replica
/// down), 2 CRITICAL (the cluster's own traffic rejected: system, node-high, leader-election,
/// workload-high, exempt; or 429s to us), 3 UNKNOWN, 64 usage.
#[derive(Parser)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true, after_help = examples::ROOT)]
struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    top: TopArgs,
    #[command(flatten)]
    replicas: cpkit::cli::ReplicaArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, clap::Args)]
struct TopArgs {
    /// Time between refreshes (and between the two samples of --once)
    #[arg(long, default_value = "2s", value_parser = cpkit::duration::positive_duration_arg, value_name = "DURATION")]
    interval: Duration,

    /// Sample twice, print the tables once and exit (automatic when stdout is not a terminal)
    #[arg(long)]
    once: bool,

    /// One row per replica instead of the sum over replicas
    #[arg(long)]
    per_replica: bool,

    /// The view to start with
    #[arg(long, value_enum, default_value_t = View::Levels)]
    view: View,
}

#[derive(Subcommand)]
enum Command {
    /// Which FlowSchema and priority level serve a request of --as USER (runner-ups too)
    #[command(after_help = examples::EXPLAIN)]
    Explain(ExplainArgs),
    /// FlowSchemas and priority levels with lint findings and a FlowSchema to isolate a noisy client
    #[command(after_help = examples::CONFIG)]
    Config(ConfigArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct ExplainArgs {
    /// The verb (get, list, watch, create, update, patch, delete; for --nonresource: get, post, ...).
    /// Default: list for --resource, get for --nonresource
    #[arg(long)]
    verb: Option<String>,

    /// The resource: pods, deployments.apps, leases.coordination.k8s.io, pods/log. With -n it
    /// is namespaced; without, cluster-wide (like kubectl get -A)
    #[arg(long, value_name = "RESOURCE", conflicts_with = "nonresource")]
    resource: Option<String>,

    /// A non-resource URL (/healthz, /metrics, /version)
    #[arg(long, value_name = "PATH")]
    nonresource: Option<String>,

    /// Do not send a harmless request as the user to confirm the classification
    #[arg(long)]
    no_confirm: bool,
}

#[derive(Debug, Clone, clap::Args)]
struct ConfigArgs {
    /// Window between the two /metrics samples used for traffic findings (0: configuration only)
    #[arg(long, default_value = "1s", value_parser = cpkit::duration::duration_arg, value_name = "DURATION")]
    sample: Duration,
}

fn main() {
    cpkit::cli::run_plugin::<Cli, _, _>(PLUGIN, run)
}

async fn run(cli: Cli) -> Result<i32> {
    match &cli.command {
        Some(Command::Explain(args)) => explain_command(&cli, args).await,
        Some(Command::Config(args)) => config_command(&cli, args).await,
        None => top_command(&cli).await,
    }
}

async fn view_context(cluster: &Cluster, per_replica: bool) -> (Context, Option<String>) {
    match config::read(cluster).await {
        Ok(c) => (
            Context { precedence: c.schemas.iter().map(|s| (s.name.clone(), s.precedence)).collect(), per_replica },
            None,
        ),
        Err(e) => {
            (Context { precedence: BTreeMap::new(), per_replica }, Some(format!("precedences unknown: {}", e.what)))
        }
    }
}

async fn top_command(cli: &Cli) -> Result<i32> {
    let cluster = Cluster::connect(&cli.kube, PLUGIN).await?;
    let ((ctx, note), sampler) = tokio::join!(
        view_context(&cluster, cli.top.per_replica),
        gather::Sampler::new(&cluster, cli.replicas.replica_timeout)
    );
    let mut sampler = sampler?;
    let interactive = !cli.top.once && !cli.output.is_structured() && cpkit::cli::stdout_is_terminal();
    if interactive {
        let app = tui::App::new(cli.top.view, ctx, cli.top.interval);
        return tui::run(sampler, app).await;
    }
    let mut snapshot = sampler.sample_pair(cli.top.interval, true).await;
    // Nothing reachable at all: one clear error instead of an empty report.
    if snapshot.replicas_ok() == 0
        && let Some(e) = snapshot.replicas.iter().filter_map(|r| r.failure.as_ref()).find(|e| e.kind.is_unreachable())
    {
        return Err(e.clone());
    }
    snapshot.notes.extend(note);
    let verdict = view::verdict(&snapshot);
    cli.output.emit("ApfSnapshot", &json!({"verdict": verdict, "snapshot": snapshot}), || {
        once_text(&snapshot, &ctx, cli.output.is_wide(), cli.output.no_headers)
    })?;
    Ok(verdict.exit_code())
}

fn table_of(
    view: View,
    snapshot: &gather::Snapshot,
    ctx: &Context,
    limit: usize,
    wide: bool,
    no_headers: bool,
) -> String {
    let columns = view::columns(view, ctx);
    let mut rows = view::rows(view, snapshot, ctx);
    let sort = columns.iter().position(|c| *c == view.default_sort()).unwrap_or(0);
    view::sort(&mut rows, sort, false);
    let narrow_out: &[&str] = if wide { &[] } else { &["REASONS", "NOMINAL", "LONGEST WAIT"] };
    let kept: Vec<usize> = (0..columns.len()).filter(|i| !narrow_out.contains(&columns[*i])).collect();
    let headers: Vec<&str> = kept.iter().map(|&i| columns[i]).collect();
    // In a narrow terminal the least telling columns go first; -o wide keeps them all.
    let (droppable, shortened): (&[&str], &[&str]) = match view {
        View::Levels => (&["CURRENT", "WAIT P99", "DISPATCHED/S", "IN QUEUE"], &["PRIORITY LEVEL"]),
        View::Schemas => {
            (&["PRECEDENCE", "WAIT P99", "EXECUTING", "IN QUEUE", "PRIORITY LEVEL"], &["FLOW SCHEMA", "PRIORITY LEVEL"])
        }
        View::Flows => {
            (&["SEATS", "EXECUTING", "FLOW SCHEMA", "PRIORITY LEVEL"], &["USER", "TOP REQUEST", "FLOW SCHEMA"])
        }
    };
    let mut t = Table::new(&headers).droppable(droppable).shorten(shortened).keep(&["UTIL"]);
    for r in rows.iter().take(limit) {
        t.row(kept.iter().map(|&i| r.cells[i].clone()));
    }
    if t.is_empty() {
        return format!("{}\n", dim("(none)"));
    }
    t.render(wide, no_headers)
}

fn once_text(s: &gather::Snapshot, ctx: &Context, wide: bool, no_headers: bool) -> String {
    let mut out = String::new();
    let verdict = view::verdict(s);
    let (state, rates) = view::summary(s);
    out.push_str(&format!("{} {} — {state} · {rates}\n", bold("APF"), status_text(verdict)));
    // One line per distinct failure, naming the replicas it hit.
    let mut failures: Vec<(String, Vec<&str>, Status)> = Vec::new();
    for r in s.replicas.iter().filter(|r| r.error.is_some()) {
        let e = r.error.clone().unwrap_or_default();
        let status = view::replica_failure(s, r);
        match failures.iter_mut().find(|(x, _, st)| *x == e && *st == status) {
            Some((_, names, _)) => names.push(&r.name),
            None => failures.push((e, vec![&r.name], status)),
        }
    }
    for (e, names, status) in failures {
        out.push_str(&format!("  {} {}: {e}\n", status_text(status), names.join(", ")));
    }
    out.push_str(&format!("\n{}\n", bold("Priority levels")));
    out.push_str(&table_of(View::Levels, s, ctx, usize::MAX, wide, no_headers));
    out.push_str(&format!("\n{}\n", bold("Flow schemas")));
    out.push_str(&table_of(View::Schemas, s, ctx, usize::MAX, wide, no_headers));
    out.push_str(&format!("\n{}\n", bold("Top flows (queued or executing now)")));
    out.push_str(&table_of(View::Flows, s, ctx, TOP_FLOWS, wide, no_headers));
    out.push_str(&flow_accounting(s));
    for n in &s.notes {
        out.push_str(&format!("{}\n", dim(&format!("note: {n}"))));
    }
    output::wrap::fit_prose(&out, output::text_width(wide))
}

/// Rows of the top-flows table in the text view.
const TOP_FLOWS: usize = 20;

/// What the top flows leave out: flows past the table, queues the dumps do not explain, and
/// apftop's own requests.
fn flow_accounting(s: &gather::Snapshot) -> String {
    let mut out = String::new();
    if s.flows.len() > TOP_FLOWS {
        let rest = &s.flows[TOP_FLOWS..];
        let queued: usize = rest.iter().map(|f| f.queued).sum();
        out.push_str(&format!("… and {} more flows with {queued} queued (-o json lists them all)\n", rest.len()));
    }
    for a in s.queue_attribution.iter().filter(|a| a.unattributed >= 1.0) {
        out.push_str(&format!(
            "{}: {:.0} queued, {} of them in the flows above; {:.0} unattributed (dispatched or queued between the /metrics scrape and the dump, or on a replica whose dump was not read)\n",
            a.priority_level, a.queued, a.in_flows, a.unattributed
        ));
    }
    if s.observer_requests > 0 {
        out.push_str(&format!(
            "{}\n",
            dim(&format!(
                "left out: {} request(s) of apftop itself (debug dumps, its /metrics scrapes)",
                s.observer_requests
            ))
        ));
    }
    out
}

/// `deployments.apps/status` → (group apps, resource deployments, subresource status).
fn parse_resource(text: &str) -> (String, String, String) {
    let (main, sub) = text.split_once('/').unwrap_or((text, ""));
    let (resource, group) = main.split_once('.').unwrap_or((main, ""));
    let group = if group == "core" { "" } else { group };
    (group.to_string(), resource.to_string(), sub.to_string())
}

fn explain_target(cli: &Cli, args: &ExplainArgs) -> Result<Target> {
    let verb = |default: &str| args.verb.as_deref().unwrap_or(default).to_ascii_lowercase();
    match (&args.resource, &args.nonresource) {
        (_, Some(path)) => {
            if !path.starts_with('/') {
                return Err(Error::usage(
                    format!("--nonresource {path:?} is not a URL path"),
                    "Give a path such as /healthz or /metrics.",
                ));
            }
            Ok(Target::NonResource { verb: verb("get"), path: path.clone() })
        }
        (Some(r), None) => {
            let (group, resource, subresource) = parse_resource(r);
            Ok(Target::Resource {
                verb: verb("list"),
                group,
                resource,
                subresource,
                namespace: cli.kube.namespace.clone().unwrap_or_default(),
            })
        }
        (None, None) => Err(Error::usage(
            "explain needs --resource or --nonresource",
            "e.g. --resource pods -n default, or --nonresource /metrics.",
        )),
    }
}

/// The confirmation request: a harmless read sent as the user; the response header names the
/// FlowSchema the API server picked.
fn confirmation_path(target: &Target) -> Option<String> {
    match target {
        Target::NonResource { verb, path } if verb == "get" => Some(path.clone()),
        // Core resources only: other groups' paths need their served version.
        Target::Resource { verb, group, resource, subresource, namespace }
            if verb == "list" && subresource.is_empty() && group.is_empty() =>
        {
            let ns = if namespace.is_empty() { String::new() } else { format!("/namespaces/{namespace}") };
            Some(format!("/api/v1{ns}/{resource}?limit=1"))
        }
        _ => None,
    }
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Confirmation {
    confirmed: bool,
    flow_schema: Option<String>,
    detail: String,
}

async fn confirm(
    cli: &Cli,
    target: &Target,
    e: &Explanation,
    schemas: &[cpkit::apf::model::FlowSchema],
) -> Confirmation {
    let Some(path) = confirmation_path(target) else {
        return Confirmation {
            confirmed: false,
            flow_schema: None,
            detail: "not confirmed: only list requests of core resources and non-resource GETs are sent as the user"
                .into(),
        };
    };
    let as_client = match Cluster::connect(&cli.kube, PLUGIN).await {
        Ok(c) => c,
        Err(err) => {
            return Confirmation {
                confirmed: false,
                flow_schema: None,
                detail: format!("not confirmed: {}", err.what),
            };
        }
    };
    match as_client.get_raw(&path).await {
        Ok(response) => {
            let uid = response.header("X-Kubernetes-PF-FlowSchema-UID").unwrap_or("").to_string();
            if uid.is_empty() {
                let why = if response.status == 403 {
                    format!(
                        "the API server refused the impersonation (HTTP 403): you need the impersonate verb on users {}",
                        e.requester.user
                    )
                } else {
                    format!("the answer (HTTP {}) carried no X-Kubernetes-PF-FlowSchema-UID header", response.status)
                };
                return Confirmation { confirmed: false, flow_schema: None, detail: format!("not confirmed: {why}") };
            }
            let seen = schemas.iter().find(|s| s.uid == uid).map(|s| s.name.clone());
            let agrees = seen.is_some() && seen == e.flow_schema;
            Confirmation {
                confirmed: agrees,
                detail: match (&seen, agrees) {
                    (Some(name), true) => format!("confirmed: the API server classified GET {path} as {name}"),
                    (Some(name), false) => format!(
                        "the API server classified GET {path} as {name}, not as explained: its configuration changed or it evaluates differently"
                    ),
                    (None, _) => format!(
                        "the API server answered with FlowSchema UID {uid}, which no listed schema has (it changed meanwhile?)"
                    ),
                },
                flow_schema: seen,
            }
        }
        Err(err) => {
            Confirmation { confirmed: false, flow_schema: None, detail: format!("not confirmed: {}", err.what) }
        }
    }
}

async fn explain_command(cli: &Cli, args: &ExplainArgs) -> Result<i32> {
    let Some(user) = cli.kube.as_user.clone() else {
        return Err(Error::usage(
            "explain needs --as USER",
            "e.g. kubectl apftop explain --as system:serviceaccount:monitoring:prometheus --resource pods",
        ));
    };
    let target = explain_target(cli, args)?;
    // Read the configuration as yourself; only the confirmation is sent as the user.
    let me = KubeArgs { as_user: None, as_group: Vec::new(), ..cli.kube.clone() };
    let cluster = Cluster::connect(&me, PLUGIN).await?;
    let cfg = config::read(&cluster).await?;
    let who = Requester::with_implied_groups(&user, &cli.kube.as_group);
    let e = explain(&cfg.schemas, &who, &target);
    let confirmation = if args.no_confirm { None } else { Some(confirm(cli, &target, &e, &cfg.schemas).await) };
    let explanation = json!({"explanation": e, "confirmation": confirmation, "apiVersionRead": format!("flowcontrol.apiserver.k8s.io/{}", cfg.version)});
    cli.output.emit("ApfExplanation", &explanation, || {
        let mut text =
            format!("{} {} as {} (groups: {})\n", bold("Request:"), target.describe(), who.user, who.groups.join(", "));
        match (&e.flow_schema, &e.priority_level) {
            (Some(fs), Some(pl)) => text.push_str(&format!(
                "{} {fs} → priority level {pl}{}\n",
                bold("Matches:"),
                if e.flow.is_empty() { String::new() } else { format!(", flow {:?}", e.flow) }
            )),
            _ => text.push_str(&format!(
                "{} no FlowSchema: the API server falls back to its built-in catch-all\n",
                bold("Matches:")
            )),
        }
        let mut t = Table::new(&["precedence", "flow schema", "priority level", "result"]).shorten(&["flow schema"]);
        for c in &e.considered {
            let result = if Some(&c.flow_schema) == e.flow_schema.as_ref() {
                "MATCH".to_string()
            } else if c.matches {
                "would match too (runner-up)".to_string()
            } else {
                format!("no: {}", c.reason)
            };
            t.row([c.precedence.to_string(), c.flow_schema.clone(), c.priority_level.clone(), result]);
        }
        text.push_str(&format!("\n{}\n", bold("Evaluated in order (precedence, then name):")));
        text.push_str(&t.render(cli.output.is_wide(), cli.output.no_headers));
        if let Some(c) = &confirmation {
            text.push_str(&format!("\n{}\n", c.detail));
        }
        cli.output.fit_prose(&text)
    })?;
    Ok(match confirmation {
        Some(c) if c.flow_schema.is_some() && !c.confirmed => Status::Warning.exit_code(),
        _ => 0,
    })
}

async fn config_command(cli: &Cli, args: &ConfigArgs) -> Result<i32> {
    let cluster = Cluster::connect(&cli.kube, PLUGIN).await?;
    let cfg = config::read(&cluster).await?;
    let snapshot = if args.sample.is_zero() {
        None
    } else {
        let mut sampler = gather::Sampler::new(&cluster, cli.replicas.replica_timeout).await?;
        Some(sampler.sample_pair(args.sample, true).await)
    };
    let findings = cpkit::apf::lint::lint(&cfg.schemas, &cfg.levels, snapshot.as_ref().map(|s| &s.total));
    // The noisiest non-exempt flow, if any is queued or rejected.
    let suggestion = snapshot.as_ref().and_then(|s| {
        let noisy = s.flows.iter().find(|f| f.queued > 0 && !f.priority_levels.iter().any(|l| l == "exempt"))?;
        let (docs, why) = cpkit::apf::lint::isolation_suggestion(&noisy.user, &noisy.verbs, &cfg.schemas)?;
        Some((noisy.user.clone(), docs, why))
    });
    let verdict = findings.iter().map(|f| f.severity).max().unwrap_or(Status::Ok);
    if cli.output.is_structured() {
        output::print_document(
            "ApfConfig",
            &json!({
                "apiVersionRead": format!("flowcontrol.apiserver.k8s.io/{}", cfg.version),
                "verdict": verdict,
                "flowSchemas": cfg.schemas,
                "priorityLevels": cfg.levels,
                "findings": findings,
                "suggestion": suggestion.as_ref().map(|(user, docs, why)| json!({"user": user, "why": why, "objects": docs})),
            }),
            cli.output.output,
        )?;
        return Ok(verdict.exit_code());
    }
    let mut text = format!("{} (flowcontrol.apiserver.k8s.io/{})\n", bold("Flow schemas"), cfg.version);
    let mut t = Table::new(&["precedence", "name", "priority level", "distinguisher", "rules"])
        .wide_columns(&["subjects"])
        .droppable(&["distinguisher", "rules"])
        .shorten(&["name"]);
    for s in &cfg.schemas {
        let subjects: Vec<String> =
            s.rules.iter().flat_map(|r| r.subjects.iter().map(cpkit::apf::model::Subject::describe)).collect();
        t.row([
            s.precedence.to_string(),
            s.name.clone(),
            s.priority_level.clone(),
            s.distinguisher.clone().unwrap_or_else(|| "-".into()),
            s.rules.len().to_string(),
            subjects.join("; "),
        ]);
    }
    text.push_str(&t.render(cli.output.is_wide(), cli.output.no_headers));
    text.push_str(&format!("\n{}\n", bold("Priority levels")));
    let mut t =
        Table::new(&["name", "type", "shares", "lendable", "limit response", "queues", "hand size", "queue length"])
            .droppable(&["hand size", "queue length", "lendable", "queues"]);
    for l in &cfg.levels {
        t.row([
            l.name.clone(),
            if l.exempt { "Exempt".into() } else { "Limited".into() },
            l.nominal_concurrency_shares.to_string(),
            format!("{}%", l.lendable_percent),
            l.limit_response.clone(),
            l.queues.to_string(),
            l.hand_size.to_string(),
            l.queue_length_limit.to_string(),
        ]);
    }
    text.push_str(&t.render(cli.output.is_wide(), cli.output.no_headers));
    text.push_str(&format!(
        "\n{} {}\n",
        bold("Findings:"),
        if findings.is_empty() { "none".to_string() } else { String::new() }
    ));
    for f in &findings {
        text.push_str(&format!(
            "{} {} {}: {}\n  fix: {}\n",
            status_text(f.severity),
            f.kind,
            f.object,
            f.message,
            f.fix
        ));
    }
    // Prose is fitted to the terminal; the YAML is printed as it must be applied.
    let width = output::text_width(cli.output.is_wide());
    let mut text = output::wrap::fit_prose(&text, width);
    if let Some((user, docs, why)) = &suggestion {
        text.push_str(&output::wrap::fit_prose(
            &format!("\n{} {user}\n{why}\n", bold("Suggested isolation for")),
            width,
        ));
        for d in docs {
            text.push_str("---\n");
            text.push_str(&cpkit::yaml::to_string(d)?);
        }
        text.push_str(&dim("Review, then: kubectl apply -f FILE (undo: kubectl delete -f FILE)\n"));
    }
    if let Some(s) = &snapshot {
        for n in &s.notes {
            text.push_str(&output::wrap::fit_prose(&format!("{}\n", dim(&format!("note: {n}"))), width));
        }
    }
    output::write_stdout(&text)?;
    Ok(verdict.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn resources_in_kubectl_spelling() {
        assert_eq!(parse_resource("pods"), (String::new(), "pods".into(), String::new()));
        assert_eq!(parse_resource("deployments.apps/scale"), ("apps".into(), "deployments".into(), "scale".into()));
        assert_eq!(
            parse_resource("leases.coordination.k8s.io"),
            ("coordination.k8s.io".into(), "leases".into(), String::new())
        );
    }

    #[test]
    fn only_harmless_reads_confirm() {
        let list = |group: &str, ns: &str| Target::Resource {
            verb: "list".into(),
            group: group.into(),
            resource: "pods".into(),
            subresource: String::new(),
            namespace: ns.into(),
        };
        assert_eq!(confirmation_path(&list("", "")).as_deref(), Some("/api/v1/pods?limit=1"));
        assert_eq!(
            confirmation_path(&list("", "kube-system")).as_deref(),
            Some("/api/v1/namespaces/kube-system/pods?limit=1")
        );
        assert_eq!(
            confirmation_path(&Target::NonResource { verb: "get".into(), path: "/metrics".into() }).as_deref(),
            Some("/metrics")
        );
        assert_eq!(confirmation_path(&Target::NonResource { verb: "post".into(), path: "/x".into() }), None);
        let mut create = list("", "x");
        if let Target::Resource { verb, .. } = &mut create {
            *verb = "create".into();
        }
        assert_eq!(confirmation_path(&create), None);
    }
}
