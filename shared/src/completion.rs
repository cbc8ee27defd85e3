//! Shell completion, from the one clap definition of each plugin.
//!
//! - `kubectl <plugin> completion bash|zsh|fish|powershell` prints a script (clap_complete).
//! - kubectl's plugin completion (kubectl ≥ 1.26): kubectl runs `kubectl_complete-<plugin>` with
//!   the plugin's arguments plus the word being completed, and reads Cobra's format: one
//!   `value<TAB>description` per line, then `:<directive>`. Each binary answers that when
//!   invoked under that name (a symlink made by `completion install`).

use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command, ValueHint};

use crate::cli::Plugin;
use crate::error::{Error, Result};

/// Cobra's completion directives.
pub const DIRECTIVE_DEFAULT: u32 = 0;
pub const DIRECTIVE_NO_SPACE: u32 = 2;
pub const DIRECTIVE_NO_FILE_COMP: u32 = 4;
pub const DIRECTIVE_FILTER_DIRS: u32 = 16;

/// One completion candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub description: String,
}

/// The candidates for the last word of `words` and the directive for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub candidates: Vec<Candidate>,
    pub directive: u32,
}

impl Completion {
    /// Cobra's wire format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.candidates {
            out.push_str(&c.value);
            if !c.description.is_empty() {
                out.push('\t');
                out.push_str(&c.description);
            }
            out.push('\n');
        }
        out.push_str(&format!(":{}\n", self.directive));
        out
    }
}

/// Names that only the cluster knows, completed live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveList {
    /// `webhookguard disarm <TAB>`: validating and mutating webhook configurations.
    WebhookConfigurations,
    /// `etcdsnap --member <TAB>`: the etcd members (their pods in kube-system).
    EtcdMembers,
    /// `--as <TAB>`: service accounts, as `system:serviceaccount:NS:NAME`.
    ServiceAccounts,
}

/// How long a live lookup may take: completion must never hang a shell.
pub const LIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where dynamic values come from (the kubeconfig, the cluster); a trait so tests need neither.
pub trait DynamicValues {
    fn contexts(&self, kubeconfig: Option<&Path>) -> Vec<String>;
    fn clusters(&self, kubeconfig: Option<&Path>) -> Vec<String>;
    fn users(&self, kubeconfig: Option<&Path>) -> Vec<String>;
    /// Live names, through the connection flags typed so far; empty when the cluster does
    /// not answer within [`LIVE_TIMEOUT`].
    fn live(&self, list: LiveList, kube: &crate::cli::KubeArgs) -> Vec<Candidate>;
}

/// Which live list completes an argument (by its clap id, in this plugin).
fn live_list(plugin: &str, arg_id: &str) -> Option<LiveList> {
    match (plugin, arg_id) {
        ("webhookguard", "config") => Some(LiveList::WebhookConfigurations),
        ("etcdsnap", "member") => Some(LiveList::EtcdMembers),
        (_, "as_user") => Some(LiveList::ServiceAccounts),
        _ => None,
    }
}

/// Reads names from the kubeconfig kubectl would use, and live ones from its cluster.
pub struct KubeconfigValues {
    pub plugin: Plugin,
}

impl KubeconfigValues {
    fn load(kubeconfig: Option<&Path>) -> Option<crate::kubeconfig::LoadedKubeconfig> {
        crate::kubeconfig::load(kubeconfig).ok().flatten()
    }
}

impl DynamicValues for KubeconfigValues {
    fn contexts(&self, kubeconfig: Option<&Path>) -> Vec<String> {
        Self::load(kubeconfig).map(|k| k.context_names()).unwrap_or_default()
    }
    fn clusters(&self, kubeconfig: Option<&Path>) -> Vec<String> {
        Self::load(kubeconfig).map(|k| k.cluster_names()).unwrap_or_default()
    }
    fn users(&self, kubeconfig: Option<&Path>) -> Vec<String> {
        Self::load(kubeconfig).map(|k| k.user_names()).unwrap_or_default()
    }
    fn live(&self, list: LiveList, kube: &crate::cli::KubeArgs) -> Vec<Candidate> {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return Vec::new();
        };
        runtime.block_on(async {
            tokio::time::timeout(LIVE_TIMEOUT, live_names(list, kube, self.plugin)).await.unwrap_or_default()
        })
    }
}

async fn live_names(list: LiveList, kube: &crate::cli::KubeArgs, plugin: Plugin) -> Vec<Candidate> {
    #[derive(serde::Deserialize)]
    struct Named {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    }
    use crate::resources::Select;
    use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let Ok(cluster) = crate::Cluster::connect(kube, plugin).await else { return Vec::new() };
    let name = |n: &Named| n.metadata.name.clone().unwrap_or_default();
    match list {
        LiveList::WebhookConfigurations => {
            let mut out: Vec<Candidate> = Vec::new();
            let mut bare: Vec<Candidate> = Vec::new();
            let (validating, mutating) = futures::join!(
                cluster.list_as::<ValidatingWebhookConfiguration, Named>(Select::all()),
                cluster.list_as::<MutatingWebhookConfiguration, Named>(Select::all())
            );
            for (items, kind) in [
                (validating.unwrap_or_default(), "validatingwebhookconfiguration"),
                (mutating.unwrap_or_default(), "mutatingwebhookconfiguration"),
            ] {
                out.extend(
                    items
                        .iter()
                        .map(|i| Candidate { value: format!("{kind}/{}", name(i)), description: String::new() }),
                );
                bare.extend(items.iter().map(|i| Candidate { value: name(i), description: kind.to_string() }));
            }
            // A bare name is offered only when one kind has it (disarm asks which otherwise).
            let unique: Vec<Candidate> =
                bare.iter().filter(|c| bare.iter().filter(|o| o.value == c.value).count() == 1).cloned().collect();
            out.extend(unique);
            out
        }
        // Only etcdsnap offers member names; a plugin built without `etcd` has none to offer.
        #[cfg(not(feature = "etcd"))]
        LiveList::EtcdMembers => Vec::new(),
        #[cfg(feature = "etcd")]
        LiveList::EtcdMembers => crate::etcd::pods::find(&cluster)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| Candidate {
                value: p.member.clone(),
                description: format!("pod {} on {}", p.pod.name, p.pod.node),
            })
            .collect(),
        LiveList::ServiceAccounts => {
            let select = Select { namespace: kube.namespace.as_deref(), ..Select::all() };
            let items: Vec<Named> = cluster.list_as::<ServiceAccount, Named>(select).await.unwrap_or_default();
            items
                .iter()
                .map(|i| Candidate {
                    value: format!(
                        "system:serviceaccount:{}:{}",
                        i.metadata.namespace.as_deref().unwrap_or_default(),
                        name(i)
                    ),
                    description: String::new(),
                })
                .collect()
        }
    }
}

/// The connection flags typed so far, as the plugin would parse them (a value that does not
/// parse is left out rather than failing the completion).
fn kube_args_from(flags: &[(String, Option<String>)]) -> Option<crate::cli::KubeArgs> {
    #[derive(clap::Parser)]
    struct Connection {
        #[command(flatten)]
        kube: crate::cli::KubeArgs,
    }
    let mut argv = vec!["completion".to_string()];
    for (long, value) in flags {
        argv.push(format!("--{long}"));
        argv.extend(value.clone());
    }
    <Connection as clap::Parser>::try_parse_from(&argv)
        .or_else(|_| <Connection as clap::Parser>::try_parse_from(["completion"]))
        .map(|c| c.kube)
        .ok()
}

/// Answers a completion request on stdout; returns the exit code.
pub fn answer(cmd: &mut Command, plugin: Plugin, words: &[String]) -> i32 {
    let completion = complete(cmd, plugin.name, words, &KubeconfigValues { plugin });
    print!("{}", completion.render());
    0
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

fn find_long<'c>(cmd: &'c Command, name: &str) -> Option<&'c Arg> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(name) || a.get_all_aliases().map(|al| al.contains(&name)).unwrap_or(false))
}

fn find_short(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

fn find_subcommand<'c>(cmd: &'c Command, name: &str) -> Option<&'c Command> {
    cmd.get_subcommands().find(|s| s.get_name() == name || s.get_all_aliases().any(|a| a == name))
}

/// The ids of the flags that say which cluster to talk to, for live lookups.
const CONNECTION_FLAGS: [&str; 8] = [
    "kubeconfig",
    "context",
    "cluster",
    "user",
    "namespace",
    "request_timeout",
    "insecure_skip_tls_verify",
    "tls_server_name",
];

/// What the words before the one being completed said.
struct Typed<'a> {
    plugin: &'a str,
    kubeconfig: Option<PathBuf>,
    connection: Vec<(String, Option<String>)>,
}

/// Computes the completion of the last word of `words` (the words after the plugin name).
pub fn complete(cmd: &mut Command, plugin: &str, words: &[String], values: &dyn DynamicValues) -> Completion {
    cmd.build();
    let (current, before) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let mut active: &Command = cmd;
    let mut pending_value_for: Option<&Arg> = None;
    let mut positionals_seen = 0usize;
    let mut typed = Typed { plugin, kubeconfig: None, connection: Vec::new() };
    let mut after_double_dash = false;
    let mut i = 0;
    while i < before.len() {
        let word = before[i].as_str();
        pending_value_for = None;
        if after_double_dash {
            positionals_seen += 1;
        } else if word == "--" {
            after_double_dash = true;
        } else if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if let Some(arg) = find_long(active, name)
                && takes_value(arg)
            {
                let value = match inline {
                    Some(v) => Some(v.to_string()),
                    None if i + 1 < before.len() => {
                        i += 1;
                        Some(before[i].clone())
                    }
                    None => {
                        pending_value_for = Some(arg);
                        None
                    }
                };
                if name == "kubeconfig"
                    && let Some(v) = &value
                {
                    typed.kubeconfig = Some(PathBuf::from(v));
                }
                if value.is_some() && CONNECTION_FLAGS.contains(&arg.get_id().as_str()) {
                    typed.connection.push((arg.get_long().unwrap_or(name).to_string(), value));
                }
            } else if let Some(arg) = find_long(active, name)
                && CONNECTION_FLAGS.contains(&arg.get_id().as_str())
            {
                typed.connection.push((name.to_string(), None));
            }
        } else if word.len() > 1 && word.starts_with('-') {
            let chars: Vec<char> = word[1..].chars().collect();
            for (k, c) in chars.iter().enumerate() {
                if let Some(arg) = find_short(active, *c)
                    && takes_value(arg)
                {
                    if k + 1 == chars.len() {
                        if i + 1 < before.len() {
                            i += 1;
                            if let Some(long) =
                                arg.get_long().filter(|_| CONNECTION_FLAGS.contains(&arg.get_id().as_str()))
                            {
                                typed.connection.push((long.to_string(), Some(before[i].clone())));
                            }
                        } else {
                            pending_value_for = Some(arg);
                        }
                    }
                    break;
                }
            }
        } else if let Some(sub) = find_subcommand(active, word) {
            active = sub;
            positionals_seen = 0;
        } else {
            positionals_seen += 1;
        }
        i += 1;
    }

    // `--flag value` where the value is being typed.
    if let Some(arg) = pending_value_for {
        return complete_value(arg, current, "", &typed, values);
    }
    if !after_double_dash && let Some(long) = current.strip_prefix("--") {
        if let Some((name, partial)) = long.split_once('=') {
            if let Some(arg) = find_long(active, name) {
                return complete_value(arg, partial, &format!("--{name}="), &typed, values);
            }
            return Completion { candidates: vec![], directive: DIRECTIVE_NO_FILE_COMP };
        }
        return complete_flags(active, current);
    }
    if !after_double_dash && current.starts_with('-') {
        return complete_flags(active, current);
    }

    let mut candidates: Vec<Candidate> = active
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .filter(|s| s.get_name().starts_with(current))
        .map(|s| Candidate {
            value: s.get_name().to_string(),
            description: s.get_about().map(std::string::ToString::to_string).unwrap_or_default(),
        })
        .collect();
    let positional = active.get_positionals().filter(|a| !a.is_hide_set()).nth(positionals_seen);
    let mut directive = DIRECTIVE_NO_FILE_COMP;
    if let Some(arg) = positional {
        let value_completion = complete_value(arg, current, "", &typed, values);
        candidates.extend(value_completion.candidates);
        directive = value_completion.directive;
    }
    Completion { candidates, directive }
}

fn complete_flags(cmd: &Command, current: &str) -> Completion {
    let mut candidates = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let help = arg.get_help().map(std::string::ToString::to_string).unwrap_or_default();
        if let Some(long) = arg.get_long() {
            let flag = format!("--{long}");
            if flag.starts_with(current) {
                candidates.push(Candidate { value: flag, description: help.clone() });
            }
        }
        if current == "-"
            && let Some(short) = arg.get_short()
        {
            candidates.push(Candidate { value: format!("-{short}"), description: help });
        }
    }
    Completion { candidates, directive: DIRECTIVE_NO_FILE_COMP }
}

fn complete_value(arg: &Arg, partial: &str, prefix: &str, typed: &Typed, values: &dyn DynamicValues) -> Completion {
    // A comma-separated list (`--only etcd,lo`): complete its last item.
    let (prefix, partial) = match arg.get_value_delimiter() {
        Some(d) => match partial.rsplit_once(d) {
            Some((head, last)) => (format!("{prefix}{head}{d}"), last),
            None => (prefix.to_string(), partial),
        },
        None => (prefix.to_string(), partial),
    };
    let prefix = prefix.as_str();
    let id = arg.get_id().as_str();
    let kubeconfig = typed.kubeconfig.as_deref();
    let named = |names: Vec<String>| -> Vec<Candidate> {
        names.into_iter().map(|n| Candidate { value: n, description: String::new() }).collect()
    };
    let dynamic: Option<Vec<Candidate>> = match id {
        "context" => Some(named(values.contexts(kubeconfig))),
        "cluster" => Some(named(values.clusters(kubeconfig))),
        "user" => Some(named(values.users(kubeconfig))),
        _ => live_list(typed.plugin, id)
            .map(|list| kube_args_from(&typed.connection).map(|kube| values.live(list, &kube)).unwrap_or_default()),
    };
    let is_dynamic = dynamic.is_some();
    let mut candidates: Vec<Candidate> = match dynamic {
        Some(found) => found
            .into_iter()
            .map(|c| Candidate { value: format!("{prefix}{}", c.value), description: c.description })
            .collect(),
        None => arg
            .get_possible_values()
            .into_iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| Candidate {
                value: format!("{prefix}{}", v.get_name()),
                description: v.get_help().map(std::string::ToString::to_string).unwrap_or_default(),
            })
            .collect(),
    };
    candidates.retain(|c| c.value[prefix.len()..].starts_with(partial));
    let directive = if candidates.is_empty() && !is_dynamic {
        match arg.get_value_hint() {
            ValueHint::FilePath | ValueHint::AnyPath | ValueHint::ExecutablePath => DIRECTIVE_DEFAULT,
            ValueHint::DirPath => DIRECTIVE_FILTER_DIRS,
            _ => DIRECTIVE_NO_FILE_COMP,
        }
    } else if arg.get_value_delimiter().is_some() {
        // After `etcd,` the user may add another item.
        DIRECTIVE_NO_FILE_COMP | DIRECTIVE_NO_SPACE
    } else {
        DIRECTIVE_NO_FILE_COMP
    };
    Completion { candidates, directive }
}

/// The `completion` subcommand every plugin has: added to its definition by the frame
/// (`cli::run_plugin`), which also answers it, so no plugin declares or handles it.
pub fn completion_subcommand(plugin: Plugin) -> Command {
    <CompletionArgs as clap::Args>::augment_args(Command::new("completion"))
        .about("Print a shell completion script, or install kubectl's plugin completion")
        .after_help(format!(
            "Examples:\n  # Complete kubectl {0} <TAB> in bash and zsh through kubectl\n  kubectl {0} completion install",
            plugin.name
        ))
}

/// A plugin's definition with what the frame adds: what completion scripts and answers are
/// generated from.
pub fn plugin_definition<C: clap::CommandFactory>(plugin: Plugin) -> Command {
    C::command().subcommand(completion_subcommand(plugin))
}

/// The `completion` subcommand's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionArgs {
    /// The shell to print a completion script for, or `install` to create the
    /// kubectl_complete-<plugin> link that makes `kubectl <plugin> <TAB>` work
    #[allow(rustdoc::invalid_html_tags, reason = "clap's help text")]
    #[arg(value_enum)]
    pub target: CompletionTarget,

    /// With `install`: the directory for the link (default: where the plugin is found on PATH)
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionTarget {
    Bash,
    Zsh,
    Fish,
    Powershell,
    /// Create the kubectl_complete-<plugin> link for kubectl's plugin completion
    #[allow(rustdoc::invalid_html_tags, reason = "clap's help text")]
    Install,
}

/// Runs `kubectl <plugin> completion ...`.
pub fn run_completion_command(cmd: Command, plugin: Plugin, args: &CompletionArgs) -> Result<i32> {
    use clap_complete::Shell;
    let shell = match args.target {
        CompletionTarget::Bash => Shell::Bash,
        CompletionTarget::Zsh => Shell::Zsh,
        CompletionTarget::Fish => Shell::Fish,
        CompletionTarget::Powershell => Shell::PowerShell,
        CompletionTarget::Install => {
            let message = install_completer(plugin, args.dir.as_deref())?;
            crate::output::write_stdout(&message)?;
            return Ok(0);
        }
    };
    let mut cmd = cmd;
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut cmd, plugin.binary(), &mut buffer);
    crate::output::write_stdout(&String::from_utf8_lossy(&buffer))?;
    Ok(0)
}

/// Creates `kubectl_complete-<plugin>` as a relative symlink to `kubectl-<plugin>` in the
/// directory where the plugin is found on PATH (for krew, `~/.krew/bin`, whose plugin link
/// keeps pointing at the current version after upgrades).
pub fn install_completer(plugin: Plugin, dir: Option<&Path>) -> Result<String> {
    let binary = plugin.binary();
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            let found = which::which(&binary)
                .or_else(|_| std::env::current_exe())
                .map_err(|e| Error::io(format!("Cannot find {binary} on PATH or this program's path"), &e))?;
            found
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| Error::failed(format!("{} has no parent directory", found.display()), "", ""))?
        }
    };
    let link = dir.join(plugin.completer());
    let target_in_dir = dir.join(&binary);
    let target: PathBuf = if target_in_dir.exists() {
        PathBuf::from(&binary)
    } else {
        std::env::current_exe().map_err(|e| Error::io("Cannot find this program's path", &e))?
    };
    if let Ok(existing) = std::fs::read_link(&link) {
        if existing == target {
            return Ok(format!(
                "{} already links to {}: `kubectl {} <TAB>` completes.\n",
                link.display(),
                target.display(),
                plugin.name
            ));
        }
        std::fs::remove_file(&link).map_err(|e| Error::io(format!("Cannot replace {}", link.display()), &e))?;
    } else if link.exists() {
        return Err(Error::failed(
            format!("{} exists and is not a link", link.display()),
            "it was not made by this command",
            "Remove it yourself if it is stale, then run this again.",
        ));
    }
    make_link(&target, &link)?;
    Ok(format!(
        "created {} -> {}\nkubectl ≥ 1.26 now completes `kubectl {} <TAB>` (with kubectl's own shell completion enabled, e.g. `source <(kubectl completion bash)`).\nTo undo: rm {}\n",
        link.display(),
        target.display(),
        plugin.name,
        link.display()
    ))
}

#[cfg(unix)]
fn make_link(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).map_err(|e| Error::io(format!("Cannot create {}", link.display()), &e))
}

#[cfg(not(unix))]
fn make_link(target: &Path, link: &Path) -> Result<()> {
    let exe = if target.is_absolute() { target.to_path_buf() } else { link.with_file_name(target) };
    std::fs::copy(&exe, link.with_extension("exe"))
        .map(|_| ())
        .map_err(|e| Error::io(format!("Cannot create {}", link.display()), &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        kube: crate::cli::KubeArgs,
        #[command(flatten)]
        output: crate::cli::OutputArgs,
        #[command(subcommand)]
        command: Option<TestCommand>,
    }

    #[derive(Subcommand)]
    enum TestCommand {
        /// Save a snapshot
        Save {
            #[arg(value_hint = ValueHint::FilePath)]
            file: Option<PathBuf>,
        },
        /// Show status
        Status,
        /// Defuse a configuration
        Disarm {
            config: String,
            #[arg(long)]
            member: Option<String>,
            #[arg(long, value_delimiter = ',', value_parser = ["etcd", "load", "leader-election"])]
            only: Vec<String>,
        },
    }

    struct FakeValues;
    impl DynamicValues for FakeValues {
        fn contexts(&self, kubeconfig: Option<&Path>) -> Vec<String> {
            match kubeconfig {
                Some(p) => vec![format!("from-{}", p.display())],
                None => vec!["prod".into(), "staging".into()],
            }
        }
        fn clusters(&self, _: Option<&Path>) -> Vec<String> {
            vec!["c1".into()]
        }
        fn users(&self, _: Option<&Path>) -> Vec<String> {
            vec!["admin".into()]
        }
        fn live(&self, list: LiveList, kube: &crate::cli::KubeArgs) -> Vec<Candidate> {
            // Echoes what it was asked and through which connection flags.
            let name = format!(
                "{list:?}@{}@{}",
                kube.context.as_deref().unwrap_or("-"),
                kube.namespace.as_deref().unwrap_or("-")
            );
            vec![Candidate { value: name, description: String::new() }]
        }
    }

    fn run_as(plugin: &str, words: &[&str]) -> Completion {
        let words: Vec<String> = words.iter().map(std::string::ToString::to_string).collect();
        complete(&mut TestCli::command(), plugin, &words, &FakeValues)
    }

    fn run(words: &[&str]) -> Completion {
        run_as("cphealth", words)
    }

    fn values(c: &Completion) -> Vec<&str> {
        c.candidates.iter().map(|c| c.value.as_str()).collect()
    }

    #[test]
    fn completes_long_flags_by_prefix() {
        let c = run(&["--con"]);
        assert_eq!(values(&c), vec!["--context"]);
        assert_eq!(c.directive, DIRECTIVE_NO_FILE_COMP);
        assert!(c.render().starts_with("--context\tThe name of the kubeconfig context to use\n"));
        assert!(c.render().ends_with(":4\n"));
    }

    #[test]
    fn completes_contexts_from_the_kubeconfig() {
        assert_eq!(values(&run(&["--context", ""])), vec!["prod", "staging"]);
        assert_eq!(values(&run(&["--context", "st"])), vec!["staging"]);
        assert_eq!(values(&run(&["--context=p"])), vec!["--context=prod"]);
        assert_eq!(values(&run(&["--kubeconfig", "/x", "--context", ""])), vec!["from-/x"]);
        assert_eq!(values(&run(&["save", "--cluster", ""])), vec!["c1"], "global flags after a subcommand");
    }

    #[test]
    fn completes_enum_values_and_subcommands() {
        assert_eq!(values(&run(&["-o", ""])), vec!["table", "wide", "json", "yaml"]);
        assert_eq!(values(&run(&["--output", "j"])), vec!["json"]);
        assert_eq!(values(&run(&["s"])), vec!["save", "status"]);
        assert_eq!(values(&run(&["--context", "prod", "st"])), vec!["status"]);
    }

    #[test]
    fn live_names_go_through_the_typed_connection_flags() {
        assert_eq!(
            values(&run_as("webhookguard", &["--context", "prod", "-n", "ops", "disarm", ""])),
            vec!["WebhookConfigurations@prod@ops"]
        );
        assert_eq!(values(&run_as("etcdsnap", &["disarm", "x", "--member", ""])), vec!["EtcdMembers@-@-"]);
        assert_eq!(values(&run_as("apftop", &["--as", "system:"])), Vec::<&str>::new(), "filtered by what is typed");
        assert_eq!(values(&run_as("apftop", &["--as", ""])), vec!["ServiceAccounts@-@-"]);
        // Another plugin's argument of the same name is not looked up.
        assert_eq!(values(&run_as("cphealth", &["disarm", ""])), Vec::<&str>::new());
    }

    #[test]
    fn comma_lists_complete_their_last_item() {
        let c = run(&["disarm", "x", "--only", "etcd,le"]);
        assert_eq!(values(&c), vec!["etcd,leader-election"]);
        assert_eq!(c.directive, DIRECTIVE_NO_FILE_COMP | DIRECTIVE_NO_SPACE);
        assert_eq!(
            values(&run(&["disarm", "x", "--only="])),
            vec!["--only=etcd", "--only=load", "--only=leader-election"]
        );
    }

    #[test]
    fn file_arguments_fall_back_to_file_completion() {
        let c = run(&["save", ""]);
        assert!(c.candidates.is_empty());
        assert_eq!(c.directive, DIRECTIVE_DEFAULT);
        let c = run(&["--kubeconfig", ""]);
        assert_eq!(c.directive, DIRECTIVE_DEFAULT);
    }

    #[test]
    fn install_creates_a_relative_link_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = Plugin { name: "cphealth", version: "0.0.0" };
        std::fs::write(dir.path().join("kubectl-cphealth"), b"#!/bin/sh\n").unwrap();
        let msg = install_completer(plugin, Some(dir.path())).unwrap();
        assert!(msg.contains("created"), "{msg}");
        assert!(msg.contains("To undo: rm"), "{msg}");
        let link = dir.path().join("kubectl_complete-cphealth");
        assert_eq!(std::fs::read_link(&link).unwrap(), PathBuf::from("kubectl-cphealth"));
        let again = install_completer(plugin, Some(dir.path())).unwrap();
        assert!(again.contains("already links"), "{again}");
        // A foreign file is never replaced.
        std::fs::remove_file(&link).unwrap();
        std::fs::write(&link, b"x").unwrap();
        assert!(install_completer(plugin, Some(dir.path())).is_err());
    }
}
