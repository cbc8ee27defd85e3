//! Child processes a plugin owns (the throwaway etcd of `etcdsnap drill`, the restore tool):
//! each in a process group of its own, so that a terminal's Ctrl-C reaches the plugin alone and
//! the plugin decides; killed and reaped when dropped — also when a signal ends the command,
//! since `cli::run_plugin` then drops the command's future; and killed by the kernel if the
//! plugin itself dies (`PR_SET_PDEATHSIG`). The parent-death signal fires when the spawning
//! *thread* exits: the plugins spawn from the runtime's threads, which live as long as they do.

use tokio::process::Command;

/// Sets `command` up as an owned child (see the module documentation).
pub fn owned(command: &mut Command) -> &mut Command {
    command.process_group(0).kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is a plain system call, safe between fork and exec; the closure touches no
    // memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
}

/// Cleanups that must finish even when the command's future is dropped (an interrupted upload
/// aborted at the store): spawned on the runtime, awaited by `finish_cleanups` before exit.
static CLEANUPS: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>> = std::sync::Mutex::new(Vec::new());

/// Registers a spawned cleanup task.
pub fn defer_cleanup(task: tokio::task::JoinHandle<()>) {
    if let Ok(mut tasks) = CLEANUPS.lock() {
        tasks.push(task);
    }
}

/// Waits for the registered cleanups, at most `limit` in all; true when there were any.
pub async fn finish_cleanups(limit: std::time::Duration) -> bool {
    let tasks: Vec<_> = CLEANUPS.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
    if tasks.is_empty() {
        return false;
    }
    let _ = tokio::time::timeout(limit, futures::future::join_all(tasks)).await;
    true
}

/// Resolves when a signal that ends a command arrives — SIGINT (Ctrl-C), SIGTERM (kill,
/// systemd, a CI timeout) or SIGHUP (a closed terminal or SSH session) — with its number. All
/// three interrupt the same way: partial files removed, children killed, the terminal restored.
pub async fn termination() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    async fn next(s: Option<&mut tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => libc::SIGINT,
        _ = next(term.as_mut()) => libc::SIGTERM,
        _ = next(hup.as_mut()) => libc::SIGHUP,
    }
}

/// The name of a terminating signal, for the message.
pub fn signal_name(signo: i32) -> &'static str {
    match signo {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
