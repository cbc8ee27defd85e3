//! Finding external tools (etcdctl, etcdutl, etcd, kubectl) on PATH, with an explanation when one
//! is missing.

use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};

/// How to get a tool, for the error message.
fn install_hint(tool: &str) -> &'static str {
    match tool {
        "etcdctl" => {
            "Install it (Debian/Ubuntu: `sudo apt install etcd-client`; or take etcdctl from an etcd release at https://github.com/etcd-io/etcd/releases) and put it on PATH."
        }
        "etcdutl" => {
            "etcdutl ships with etcd 3.5+ releases (https://github.com/etcd-io/etcd/releases); with etcd 3.4 the same is done by `etcdctl snapshot restore`, which is used when etcdutl is absent."
        }
        "etcd" => {
            "Install the etcd server (Debian/Ubuntu: `sudo apt install etcd-server`) or take it from an etcd release."
        }
        "kubectl" => "Install kubectl: https://kubernetes.io/docs/tasks/tools/",
        _ => "Install it and put it on PATH.",
    }
}

/// Finds `tool` on PATH (or uses `explicit`, which must exist).
pub fn find_tool(tool: &str, explicit: Option<&std::path::Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(Error::new(
            ErrorKind::ToolMissing,
            format!("{tool} not found at {}", path.display()),
            "the file does not exist",
            install_hint(tool),
        ));
    }
    which::which(tool).map_err(|_| {
        Error::new(
            ErrorKind::ToolMissing,
            format!("{tool} was not found on PATH"),
            "this command runs it locally",
            install_hint(tool),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_explain_how_to_install() {
        let e = find_tool("etcdctl-definitely-not-here", None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ToolMissing);
        assert!(e.to_string().contains("was not found on PATH"));
        let e = find_tool("etcdctl", Some(std::path::Path::new("/nonexistent/etcdctl"))).unwrap_err();
        assert!(e.to_string().contains("apt install etcd-client"), "{e}");
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn finds_a_tool_that_exists() {
        // `sh` exists on every machine these tests run on.
        assert!(find_tool("sh", None).unwrap().is_file());
    }
}
