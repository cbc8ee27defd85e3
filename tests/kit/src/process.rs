//! Child processes that cannot outlive the test: killed on drop (also while a failing test
//! unwinds) and, on Linux, by the kernel when the spawning thread dies (`PR_SET_PDEATHSIG`
//! fires on the death of the *thread*, not the process): start clusters on the thread that
//! keeps them.

use std::io;
use std::process::{Child, Command};

/// Go's garbage collector setting for the control plane's processes: about half as many
/// collections as at the default (100) take a tenth off a real cluster's boot CPU on two cores
/// (healthy-ha: 21.5 against 19.1 CPU-s), for a heap that may grow to three times what is live.
pub const GO_GC: (&str, &str) = ("GOGC", "200");

/// A running child process, killed and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
}

impl ChildGuard {
    /// Spawns `command` with a parent-death signal, so a crashed test leaves no process behind.
    pub fn spawn(name: &str, command: &mut Command) -> io::Result<ChildGuard> {
        ChildGuard::spawn_on_host(name, command, None)
    }

    /// Like `spawn`, with the child in a UTS namespace of its own whose host name is `hostname`
    /// (when the kernel allows it; otherwise the machine's name stays). Several "nodes" on one
    /// machine then have their own names, as kube-apiserver's identity lease and the leader
    /// election holder identities take theirs from `os.Hostname()`.
    pub fn spawn_on_host(name: &str, command: &mut Command, hostname: Option<&str>) -> io::Result<ChildGuard> {
        #[cfg(target_os = "linux")]
        if let Some(host) = hostname {
            use std::os::unix::process::CommandExt;
            let host = host.as_bytes().to_vec();
            // SAFETY: unshare and sethostname are plain system calls, safe between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::unshare(libc::CLONE_NEWUTS) == 0 {
                        libc::sethostname(host.as_ptr().cast(), host.len());
                    }
                    Ok(())
                });
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = hostname;
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            let parent = unsafe { libc::getpid() };
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died before prctl took effect.
                    if libc::getppid() != parent {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn()?;
        Ok(ChildGuard { name: name.to_string(), child: Some(child) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn terminate(&mut self, grace: std::time::Duration) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = std::time::Instant::now() + grace;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a command's stdout and stderr to `raw` as they come and, with `cri`, also to `cri` in
/// the CRI log format the kubelet serves `kubectl logs` from (`<RFC3339Nano> <stream> F <line>`,
/// what containerd writes; kubernetes `pkg/kubelet/kuberuntime/logs/logs.go` parses it). Both
/// streams go through one pipe, copied line by line by a thread that ends when the process
/// closes its side. The command must be dropped after it is spawned (it holds the write end).
pub fn capture_output(command: &mut Command, raw: &std::path::Path, cri: Option<&std::path::Path>) -> io::Result<()> {
    use std::io::{BufRead, Write};
    let (reader, writer) = std::io::pipe()?;
    command.stdout(writer.try_clone()?).stderr(writer);
    let open = |p: &std::path::Path| std::fs::OpenOptions::new().create(true).append(true).open(p);
    let mut raw = open(raw)?;
    let mut cri = cri.map(open).transpose()?;
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(reader);
        let mut line = Vec::new();
        while matches!(lines.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let _ = raw.write_all(&line);
            if let Some(f) = cri.as_mut() {
                let stamp = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
                let body = line.strip_suffix(b"\n").unwrap_or(&line);
                let _ = f.write_all(format!("{stamp} stderr F ").as_bytes());
                let _ = f.write_all(body);
                let _ = f.write_all(b"\n");
            }
            line.clear();
        }
    });
    Ok(())
}

/// Sets a running process's open-files limit, soft and hard (prlimit(2): a process of the same
/// user may lower another's limit).
pub fn set_open_files_limit(pid: u32, limit: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let rlim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
        // SAFETY: prlimit reads `rlim` and writes nothing (old limit pointer is null).
        let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, &rlim, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, limit);
        Err(io::Error::other("open-files limits of other processes are set on Linux only"))
    }
}
