//! The real-world captures under `tests/fixtures/` (a verbatim copy of the team's
//! `../shared/fixtures`, see its SOURCES.md), read with every address rewritten to loopback:
//! nothing the kit serves may lead a client to dial an address from a capture.

use std::path::PathBuf;

use serde_json::Value;

/// The fixtures directory (`CPKIT_FIXTURES` overrides).
pub fn dir() -> PathBuf {
    if let Ok(d) = std::env::var("CPKIT_FIXTURES") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("fixtures")
}

/// The capture directory for Kubernetes 1.`minor` (the nearest of 1.31–1.34).
pub fn cluster_dir(minor: u32) -> PathBuf {
    dir().join("clusters").join(format!("k8s-1.{}", minor.clamp(31, 34)))
}

pub fn read(relative: &str) -> std::io::Result<String> {
    std::fs::read_to_string(dir().join(relative))
}

/// Rewrites every IPv4 address that is not loopback to a loopback one, keeping the structure:
/// `192.168.x.y` (the capture's node) becomes `127.0.0.2` (the first control-plane node),
/// `a.b.c.d` becomes `127.b.c.d` (10.96.0.1 → 127.96.0.1).
pub fn rewrite_addresses(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let at_start =
            bytes[i].is_ascii_digit() && (i == 0 || !(bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.'));
        if let Some((octets, len)) = if at_start { parse_quad(&bytes[i..]) } else { None } {
            let followed_ok = bytes.get(i + len).is_none_or(|b| {
                !(b.is_ascii_digit() || *b == b'.' && bytes.get(i + len + 1).is_some_and(u8::is_ascii_digit))
            });
            if followed_ok {
                let [a, b, c, d] = octets;
                let new = if a == 127 || a == 0 {
                    format!("{a}.{b}.{c}.{d}")
                } else if a == 192 && b == 168 {
                    "127.0.0.2".to_string()
                } else {
                    format!("127.{b}.{c}.{d}")
                };
                out.push_str(&new);
                i += len;
                continue;
            }
        }
        let ch = text[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn parse_quad(bytes: &[u8]) -> Option<([u8; 4], usize)> {
    let mut octets = [0u8; 4];
    let mut pos = 0;
    for (k, octet) in octets.iter_mut().enumerate() {
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() && pos - start < 3 {
            pos += 1;
        }
        if pos == start {
            return None;
        }
        let n: u16 = std::str::from_utf8(&bytes[start..pos]).ok()?.parse().ok()?;
        if n > 255 {
            return None;
        }
        *octet = n as u8;
        if k < 3 {
            if bytes.get(pos) != Some(&b'.') {
                return None;
            }
            pos += 1;
        }
    }
    Some((octets, pos))
}

/// The items of a `kind: List` YAML capture, rewritten to loopback.
pub fn list_items(path: &std::path::Path) -> std::io::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    let rewritten = rewrite_addresses(&text);
    let doc: Value =
        serde_yaml::from_str(&rewritten).map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
    Ok(doc["items"].as_array().cloned().unwrap_or_default())
}

/// The API server capture of 1.`minor`, rewritten to loopback.
pub fn apiserver_metrics(minor: u32) -> std::io::Result<String> {
    let text = std::fs::read_to_string(cluster_dir(minor).join("apiserver.metrics"))?;
    Ok(rewrite_addresses(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_private_addresses_to_loopback() {
        assert_eq!(rewrite_addresses("host=\"192.168.67.2:8443\""), "host=\"127.0.0.2:8443\"");
        assert_eq!(rewrite_addresses("clusterIP: 10.96.0.10"), "clusterIP: 127.96.0.10");
        assert_eq!(rewrite_addresses("- 10.244.0.0/24"), "- 127.244.0.0/24");
        assert_eq!(rewrite_addresses("127.0.0.1:2379 and 0.0.0.0"), "127.0.0.1:2379 and 0.0.0.0");
        assert_eq!(rewrite_addresses("version 1.2.3 v1.33.0 le=\"0.005\""), "version 1.2.3 v1.33.0 le=\"0.005\"");
        assert_eq!(rewrite_addresses("2025-11-04T19:07:41Z"), "2025-11-04T19:07:41Z");
    }

    #[test]
    fn every_capture_is_loopback_only_after_rewriting() {
        // Reads tests/fixtures/clusters/k8s-1.3{1..4}/*: no private address survives.
        for minor in 31..=34 {
            for file in ["pods.yaml", "nodes.yaml", "services.yaml", "endpoints.yaml", "apiserver.metrics"] {
                let text = std::fs::read_to_string(cluster_dir(minor).join(file)).unwrap();
                let out = rewrite_addresses(&text);
                for needle in ["192.168.", "10.244.", "10.96."] {
                    assert!(!out.contains(needle), "{minor}/{file} still has {needle}");
                }
            }
        }
    }
}
