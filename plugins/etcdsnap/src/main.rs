//! `kubectl etcdsnap`.

use clap::{Parser, Subcommand};
use cpkit::cli::{KubeArgs, OutputArgs, Plugin};
use cpkit::completion::CompletionArgs;
use cpkit::error::{Access, Error};

const PLUGIN: Plugin = Plugin { name: "etcdsnap", version: env!("CARGO_PKG_VERSION") };

/// etcdsnap
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
        return cpkit::completion::run_completion_command(<Cli as clap::CommandFactory>::command(), PLUGIN, args);
    }
    let cluster = cpkit::Cluster::connect(&cli.kube, PLUGIN).await?;
    let version: serde_json::Value = cluster.get_json("/version", &Access::non_resource("get", "/version")).await?;
    println!("{} {}", cluster.info.context, version["gitVersion"].as_str().unwrap_or("?"));
    Ok(0)
}
