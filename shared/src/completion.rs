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

/// Where dynamic values come from (the kubeconfig); a trait so tests need no files.
pub trait DynamicValues {
    fn contexts(&self, kubeconfig: Option<&Path>) -> Vec<String>;
    fn clusters(&self, kubeconfig: Option<&Path>) -> Vec<String>;
    fn users(&self, kubeconfig: Option<&Path>) -> Vec<String>;
}

/// Reads names from the kubeconfig kubectl would use.
pub struct KubeconfigValues;

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
}

/// Answers a completion request on stdout; returns the exit code.
pub fn answer(cmd: &mut Command, _plugin: Plugin, words: &[String]) -> i32 {
    let completion = complete(cmd, words, &KubeconfigValues);
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

/// Computes the completion of the last word of `words` (the words after the plugin name).
pub fn complete(cmd: &mut Command, words: &[String], values: &dyn DynamicValues) -> Completion {
    cmd.build();
    let (current, before) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let mut active: &Command = cmd;
    let mut pending_value_for: Option<&Arg> = None;
    let mut positionals_seen = 0usize;
    let mut kubeconfig: Option<PathBuf> = None;
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
                    && let Some(v) = value
                {
                    kubeconfig = Some(PathBuf::from(v));
                }
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
        return complete_value(arg, current, "", kubeconfig.as_deref(), values);
    }
    if !after_double_dash && let Some(long) = current.strip_prefix("--") {
        if let Some((name, partial)) = long.split_once('=') {
            if let Some(arg) = find_long(active, name) {
                return complete_value(arg, partial, &format!("--{name}="), kubeconfig.as_deref(), values);
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
            description: s.get_about().map(|a| a.to_string()).unwrap_or_default(),
        })
        .collect();
    let positional = active.get_positionals().filter(|a| !a.is_hide_set()).nth(positionals_seen);
    let mut directive = DIRECTIVE_NO_FILE_COMP;
    if let Some(arg) = positional {
        let value_completion = complete_value(arg, current, "", kubeconfig.as_deref(), values);
        candidates.extend(value_completion.candidates);
        directive = value_completion.directive;
    }
    Completion { candidates, directive }
}

fn complete_flags(cmd: &Command, current: &str) -> Completion {
    let mut candidates = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
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

fn complete_value(
    arg: &Arg,
    partial: &str,
    prefix: &str,
    kubeconfig: Option<&Path>,
    values: &dyn DynamicValues,
) -> Completion {
    let id = arg.get_id().as_str();
    let dynamic = match id {
        "context" => Some(values.contexts(kubeconfig)),
        "cluster" => Some(values.clusters(kubeconfig)),
        "user" => Some(values.users(kubeconfig)),
        _ => None,
    };
    let is_dynamic = dynamic.is_some();
    let mut candidates: Vec<Candidate> = match dynamic {
        Some(names) => {
            names.into_iter().map(|n| Candidate { value: format!("{prefix}{n}"), description: String::new() }).collect()
        }
        None => arg
            .get_possible_values()
            .into_iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| Candidate {
                value: format!("{prefix}{}", v.get_name()),
                description: v.get_help().map(|h| h.to_string()).unwrap_or_default(),
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
    } else {
        DIRECTIVE_NO_FILE_COMP
    };
    Completion { candidates, directive }
}

/// The `completion` subcommand's arguments, shared by every plugin.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionArgs {
    /// The shell to print a completion script for, or `install` to create the
    /// kubectl_complete-<plugin> link that makes `kubectl <plugin> <TAB>` work
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
    }

    fn run(words: &[&str]) -> Completion {
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        complete(&mut TestCli::command(), &words, &FakeValues)
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
