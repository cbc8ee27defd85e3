//! `kubectl cphealth`: the whole control plane checked at once.

use clap::{Parser, Subcommand};
use cpkit::cli::{KubeArgs, OutputArgs, Plugin};
use cpkit::completion::CompletionArgs;
use cpkit::error::{Access, Error};
use cpkit::exit::Status;

const PLUGIN: Plugin = Plugin {
    name: "cphealth",
    version: env!("CARGO_PKG_VERSION"),
};

/// Check the whole Kubernetes control plane at once: API servers, etcd, certificates,
/// leader election, load, webhooks, nodes.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a shell completion script, or install kubectl's plugin completion
    Completion(CompletionArgs),
}

fn main() {
    cpkit::cli::run_plugin::<Cli, _, _>(PLUGIN, run)
}

async fn run(cli: Cli) -> Result<i32, Error> {
    cli.output.apply_color();
    if let Some(Command::Completion(args)) = &cli.command {
        return cpkit::completion::run_completion_command(
            <Cli as clap::CommandFactory>::command(),
            PLUGIN,
            args,
        );
    }
    let cluster = cpkit::Cluster::connect(&cli.kube, PLUGIN).await?;
    let version: serde_json::Value = cluster
        .get_json("/version", &Access::non_resource("get", "/version"))
        .await?;
    let readyz = cluster.get_raw("/readyz?verbose").await?;
    let status = if readyz.status == 200 {
        Status::Ok
    } else {
        Status::Critical
    };
    println!(
        "{}  {}  {}  readyz: {}",
        cluster.info.context,
        cluster.server(),
        version["gitVersion"].as_str().unwrap_or("?"),
        cpkit::output::status_text(status)
    );
    Ok(status.exit_code())
}
