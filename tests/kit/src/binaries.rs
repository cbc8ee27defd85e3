//! Where the test kit finds the control-plane binaries that `dev/build-controlplane` builds from
//! upstream's Go modules (kube-apiserver, kube-controller-manager, kube-scheduler, etcd 3.6,
//! etcdctl, etcdutl, kwok; etcd 3.5's three in `etcd-3.5/`).

use std::path::PathBuf;

/// The directory of the built binaries: `$CPKIT_CONTROLPLANE_BIN`, else the link the build script
/// keeps at `target/controlplane/bin`.
pub fn controlplane_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CPKIT_CONTROLPLANE_BIN") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/controlplane/bin")
}

/// One built binary, or an error that says how to build it.
pub fn controlplane(name: &str) -> std::io::Result<PathBuf> {
    let path = controlplane_dir().join(name);
    if path.is_file() {
        return Ok(path);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!(
            "{} is missing: the real control plane is built from its Go modules by `dev/build-controlplane` \
             (dev/test runs it), or point CPKIT_CONTROLPLANE_BIN at a directory holding it",
            path.display()
        ),
    ))
}

/// `$CPKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/cpkit`, else `~/.cache/cpkit` (as the build script).
pub fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("CPKIT_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cpkit")
}

/// Where `dev/build-tools` installs `tool` at the version the script names (`<tool>_version=`):
/// `<cache>/tools/<tool>-<version>`, once its `.complete` marker is there.
pub fn build_tools_dir(tool: &str) -> std::io::Result<PathBuf> {
    let script = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dev/build-tools"))?;
    let version = script
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{tool}_version=")).map(str::to_string))
        .ok_or_else(|| std::io::Error::other(format!("dev/build-tools names no {tool}_version")))?;
    let dir = cache_root().join(format!("tools/{tool}-{version}"));
    if dir.join(".complete").is_file() {
        Ok(dir)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is missing: run dev/build-tools (the README's test command does)", dir.display()),
        ))
    }
}

/// The kwok stage configurations copied from the kwok module by the build script.
pub fn kwok_stages_dir() -> PathBuf {
    controlplane_dir().join("kwok-stages")
}
