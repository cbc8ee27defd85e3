//! Flags shared by every plugin (defined once, flattened into each CLI) and the common `main`:
//! completion mode, exit codes, Ctrl-C.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum, ValueHint};

use crate::completion::{CompletionArgs, plugin_definition};
use crate::duration::Timeout;
use crate::error::Error;
use crate::exit::{EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE};
pub use crate::output::{ColorMode, OutputFormat};

/// kubectl's connection flags. Global, so they work before or after a subcommand.
#[derive(Debug, Clone, Args, Default)]
pub struct KubeArgs {
    /// Path to the kubeconfig file to use (default: KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = "Kubernetes connection")]
    pub kubeconfig: Option<PathBuf>,

    /// The name of the kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME", help_heading = "Kubernetes connection")]
    pub context: Option<String>,

    /// The name of the kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME", help_heading = "Kubernetes connection")]
    pub cluster: Option<String>,

    /// The name of the kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME", help_heading = "Kubernetes connection")]
    pub user: Option<String>,

    /// Namespace for namespaced operations (default: the context's namespace)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE", help_heading = "Kubernetes connection")]
    pub namespace: Option<String>,

    /// Username to impersonate for the operation
    #[arg(long = "as", global = true, value_name = "USER", help_heading = "Kubernetes connection")]
    pub as_user: Option<String>,

    /// Group to impersonate (repeat for several groups)
    #[arg(long = "as-group", global = true, value_name = "GROUP", help_heading = "Kubernetes connection")]
    pub as_group: Vec<String>,

    /// Time to wait for each server request (e.g. 5s, 1m; 0 = no limit)
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", help_heading = "Kubernetes connection")]
    pub request_timeout: Timeout,

    /// Do not verify the API server's certificate (insecure; for diagnosis only)
    #[arg(long, global = true, help_heading = "Kubernetes connection")]
    pub insecure_skip_tls_verify: bool,

    /// Server name to use to verify the API server's certificate
    #[arg(long, global = true, value_name = "NAME", help_heading = "Kubernetes connection")]
    pub tls_server_name: Option<String>,
}

impl Default for Timeout {
    fn default() -> Self {
        Timeout(Some(Duration::from_secs(10)))
    }
}

impl KubeArgs {
    /// The per-request timeout (`None` when `--request-timeout=0`).
    pub fn timeout(&self) -> Option<Duration> {
        self.request_timeout.0
    }

    /// The same flags for another context (used by `--contexts a,b`).
    pub fn with_context(&self, context: &str) -> KubeArgs {
        KubeArgs { context: Some(context.to_string()), ..self.clone() }
    }
}

/// Output flags shared by the plugins.
#[derive(Debug, Clone, Args, Default)]
pub struct OutputArgs {
    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table, global = true, help_heading = "Output")]
    pub output: OutputFormat,

    /// Do not print table headers
    #[arg(long, global = true, help_heading = "Output")]
    pub no_headers: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t = ColorMode::Auto, global = true, help_heading = "Output")]
    pub color: ColorMode,
}

impl OutputArgs {
    pub fn is_structured(&self) -> bool {
        matches!(self.output, OutputFormat::Json | OutputFormat::Yaml)
    }

    pub fn is_wide(&self) -> bool {
        self.output == OutputFormat::Wide
    }

    /// Prose wrapped to the terminal's width (not at all with `-o wide` or into a pipe without
    /// COLUMNS); commands are split so that they still paste.
    pub fn fit_prose(&self, text: &str) -> String {
        crate::output::wrap::fit_prose(text, crate::output::text_width(self.is_wide()))
    }

    /// Prints a result: with `-o json|yaml` the document (`kind`, versioned), otherwise the text
    /// `text` renders (called only then).
    pub fn emit<T: serde::Serialize>(&self, kind: &str, doc: &T, text: impl FnOnce() -> String) -> Result<(), Error> {
        if self.is_structured() {
            crate::output::print_document(kind, doc, self.output)
        } else {
            crate::output::write_stdout(&text())
        }
    }
}

/// How the API server replicas are dialled directly (cphealth, apftop).
#[derive(Debug, Clone, Args)]
pub struct ReplicaArgs {
    /// Connect and TLS-handshake budget of a direct dial to each API server replica; a replica
    /// alive by its identity lease but not reachable from here is a note, not a fault
    #[arg(long, global = true, default_value = "2s", value_parser = crate::duration::positive_duration_arg, value_name = "DURATION")]
    pub replica_timeout: std::time::Duration,
}

impl Default for ReplicaArgs {
    fn default() -> Self {
        ReplicaArgs { replica_timeout: std::time::Duration::from_secs(2) }
    }
}

/// Decides colour once per process: `--color`, then `NO_COLOR`, then whether stdout is a terminal.
fn apply_color(mode: ColorMode) -> bool {
    let enabled = crate::output::color_enabled(mode, std::env::var_os("NO_COLOR").is_some(), stdout_is_terminal());
    owo_colors::set_override(enabled);
    enabled
}

pub fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Identity of a plugin binary, for usage texts and completion.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// The kubectl subcommand, e.g. `cphealth`.
    pub name: &'static str,
    /// `CARGO_PKG_VERSION` of the binary.
    pub version: &'static str,
}

impl Plugin {
    pub fn binary(&self) -> String {
        format!("kubectl-{}", self.name.replace('-', "_"))
    }

    pub fn completer(&self) -> String {
        format!("kubectl_complete-{}", self.name.replace('-', "_"))
    }

    /// The user agent sent to the API server, so audit logs and APF name the tool.
    pub fn user_agent(&self) -> String {
        format!("kubectl-{}/{} (cpkit)", self.name, self.version)
    }
}

/// The common `main` of every plugin: answers completion requests (`argv[0]` is
/// `kubectl_complete-<plugin>`, or the first argument is `__complete`), parses the command line
/// with usage errors exiting 64, runs the command on a Tokio runtime with Ctrl-C handling, and
/// prints errors as one paragraph.
pub fn run_plugin<C, F, Fut>(plugin: Plugin, run: F) -> !
where
    C: clap::Parser,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = Result<i32, Error>>,
{
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let completing = if invoked_as.starts_with("kubectl_complete-") {
        Some(1)
    } else {
        args.get(1).is_some_and(|a| a == "__complete").then_some(2)
    };
    if let Some(skip) = completing {
        let words: Vec<String> = args.iter().skip(skip).map(|a| a.to_string_lossy().into_owned()).collect();
        std::process::exit(crate::completion::answer(&mut plugin_definition::<C>(plugin), plugin, &words));
    }

    // A repeated flag overrides the earlier one, as with kubectl's own flags (pflag).
    let mut command =
        plugin_definition::<C>(plugin).bin_name(format!("kubectl {}", plugin.name)).args_override_self(true);
    let matches = match command.try_get_matches_from_mut(&args) {
        Ok(m) => m,
        Err(e) => exit_on_clap_error(e, Some(&command)),
    };
    // `--color` (every plugin has OutputArgs) holds for errors and completion output too.
    if let Ok(Some(mode)) = matches.try_get_one::<ColorMode>("color") {
        apply_color(*mode);
    }
    if let Some(("completion", sub)) = matches.subcommand() {
        let code = match <CompletionArgs as clap::FromArgMatches>::from_arg_matches(sub) {
            Ok(completion) => exit_code_of(crate::completion::run_completion_command(
                plugin_definition::<C>(plugin),
                plugin,
                &completion,
            )),
            Err(e) => exit_on_clap_error(e, None),
        };
        std::process::exit(code);
    }
    let cli = match <C as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => exit_on_clap_error(e, None),
    };

    // A file-size limit (ulimit -f) must fail the write (EFBIG), which removes the partial file,
    // instead of killing the process with SIGXFSZ and leaving it behind.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(crate::exit::EXIT_UNKNOWN);
        }
    };
    let code = runtime.block_on(async move {
        let code = tokio::select! {
            result = run(cli) => exit_code_of(result),
            signo = crate::process::termination() => {
                eprintln!(
                    "\ninterrupted by {}: nothing was left half-done (partial files removed, child processes stopped)",
                    crate::process::signal_name(signo)
                );
                // The shell's convention: 128 + the signal's number (130 for Ctrl-C).
                if signo == libc::SIGINT { EXIT_INTERRUPTED } else { 128 + signo }
            }
        };
        // What the dropped command left to undo elsewhere (an upload to abort at the store).
        crate::process::finish_cleanups(Duration::from_secs(15)).await;
        code
    });
    // Background tasks (port-forwards, watchers) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code)
}

/// A command's exit code; a failure is printed first.
fn exit_code_of(result: Result<i32, Error>) -> i32 {
    result.unwrap_or_else(|e| {
        print_error(&e);
        e.exit_code()
    })
}

fn exit_on_clap_error(e: clap::Error, command: Option<&clap::Command>) -> ! {
    use clap::error::ErrorKind as K;
    let code = match e.kind() {
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand => EXIT_OK,
        _ => EXIT_USAGE,
    };
    let _ = e.print();
    if let Some(tip) = command.and_then(|c| flag_for_word(c, &e)) {
        eprintln!("  tip: did you mean `{tip}`?");
    }
    std::process::exit(code)
}

/// A word given where no positional argument or subcommand fits, that is a value of one of the
/// command's flags: `kubectl cphealth etcd` → `kubectl cphealth --only etcd`.
fn flag_for_word(command: &clap::Command, e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let word = match e.get(ContextKind::InvalidSubcommand).or_else(|| e.get(ContextKind::InvalidArg)) {
        Some(ContextValue::String(w)) if !w.starts_with('-') => w.clone(),
        _ => return None,
    };
    let flag = command
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .find(|a| a.get_long().is_some() && a.get_possible_values().iter().any(|v| v.matches(&word, false)))?;
    let bin = command.get_bin_name().unwrap_or_else(|| command.get_name());
    Some(format!("{bin} --{} {word}", flag.get_long()?))
}

/// Prints an error as `error: <paragraph>` on stderr.
pub fn print_error(e: &Error) {
    use owo_colors::{OwoColorize, Stream};
    eprintln!("{} {}", "error:".if_supports_color(Stream::Stderr, |t| t.red()), crate::redact::scrub(&e.to_string()));
}

/// Prints a non-fatal note on stderr (never mixed into -o json|yaml output).
pub fn note(text: &str) {
    use owo_colors::{OwoColorize, Stream};
    eprintln!("{} {}", "note:".if_supports_color(Stream::Stderr, |t| t.yellow()), crate::redact::scrub(text));
}

/// A value's name on the command line (`port-forward`, `healthy-ha`), as clap's derive spells it:
/// one table, the enum's.
pub fn value_name<T: ValueEnum>(value: &T) -> String {
    value.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tip_tests {
    use super::*;

    #[test]
    fn value_names_are_claps() {
        assert_eq!(value_name(&OutputFormat::Wide), "wide");
        assert_eq!(value_name(&ColorMode::default()), "auto");
    }

    #[derive(Debug, clap::Parser)]
    struct Demo {
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<Fruit>,
        #[command(subcommand)]
        command: Option<Sub>,
    }

    #[derive(Debug, Clone, Copy, clap::ValueEnum)]
    enum Fruit {
        Apple,
        Pear,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        Peel,
    }

    #[test]
    fn a_flag_value_given_as_a_word_gets_the_flag_suggested() {
        let mut command = <Demo as clap::CommandFactory>::command().bin_name("kubectl demo");
        let e = command.try_get_matches_from_mut(["kubectl-demo", "pear"]).unwrap_err();
        assert_eq!(flag_for_word(&command, &e).as_deref(), Some("kubectl demo --only pear"));
        let e = command.try_get_matches_from_mut(["kubectl-demo", "plum"]).unwrap_err();
        assert_eq!(flag_for_word(&command, &e), None);
    }
}
