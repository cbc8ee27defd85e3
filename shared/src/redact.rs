//! Keeping secrets out of output and bundles: the kubeconfig's credentials, private keys, and
//! values in pod specs that are secrets more often than not.

use serde_json::Value;

/// Scrubs known secret strings and PEM private keys from text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

pub const REDACTED: &str = "<redacted>";

impl Redactor {
    /// Secrets shorter than 8 characters are ignored: replacing them would mangle ordinary text.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 8).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn text(&self, input: &str) -> String {
        let mut out = strip_private_keys(input);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    /// A JSON value with every string scrubbed.
    pub fn value(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.value(x)),
            Value::Object(o) => o.values_mut().for_each(|x| self.value(x)),
            _ => {}
        }
    }
}

/// The secrets of this run (the kubeconfig user's credentials), scrubbed from everything the
/// plugins print: errors, notes, tables, documents (`output`, `cli`).
static REMEMBERED: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Adds secrets to scrub from all output.
pub fn remember(secrets: impl IntoIterator<Item = String>) {
    // Redactor::new drops the short ones and orders the rest, longest first.
    if let Ok(mut r) = REMEMBERED.write() {
        r.extend(secrets);
    }
}

/// `text` without any remembered secret or private key.
pub fn scrub(text: &str) -> String {
    let remembered = REMEMBERED.read().map(|r| r.clone()).unwrap_or_default();
    if remembered.is_empty() && !text.contains("PRIVATE KEY") {
        return text.to_string();
    }
    Redactor::new(remembered).text(text)
}

/// Removes `-----BEGIN ... PRIVATE KEY-----` blocks.
pub fn strip_private_keys(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("-----BEGIN ") {
        let header_end = rest[start..]
            .find("-----\n")
            .or_else(|| rest[start + 11..].find("-----").map(|p| p + 11))
            .map(|p| start + p);
        let is_key = header_end.is_some_and(|h| rest[start..h].contains("PRIVATE KEY"));
        if !is_key {
            out.push_str(&rest[..start + 11]);
            rest = &rest[start + 11..];
            continue;
        }
        out.push_str(&rest[..start]);
        out.push_str(REDACTED);
        // To the end of the END line; a key cut short is redacted to the end of the text.
        let end = rest[start..].find("PRIVATE KEY-----").and_then(|first| {
            rest[start + first + 16..].find("PRIVATE KEY-----").map(|second| start + first + 16 + second + 16)
        });
        rest = end.map_or("", |end| &rest[end..]);
    }
    out.push_str(rest);
    out
}

const SENSITIVE_FLAG_WORDS: [&str; 4] = ["token", "password", "secret", "key-data"];

/// A pod (or list of pods) fit for a support bundle: env values, last-applied annotations and
/// secret-looking flag values removed.
pub fn sanitize_pod(pod: &mut Value) {
    if let Some(a) = pod["metadata"]["annotations"].as_object_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in pod["spec"][key].as_array_mut().into_iter().flatten() {
            for env in c["env"].as_array_mut().into_iter().flatten() {
                if env.get("value").is_some() {
                    env["value"] = Value::String(REDACTED.into());
                }
            }
            for field in ["command", "args"] {
                for arg in c[field].as_array_mut().into_iter().flatten() {
                    if let Some(s) = arg.as_str()
                        && let Some((flag, _)) = s.split_once('=')
                        && SENSITIVE_FLAG_WORDS.iter().any(|w| flag.to_lowercase().contains(w))
                    {
                        *arg = Value::String(format!("{flag}={REDACTED}"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_secrets_and_keys() {
        let r = Redactor::new(["s3cr3t-token-value".to_string(), "short".to_string()]);
        let text = "token: s3cr3t-token-value\nshort stays\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN EC PRIVATE KEY-----\nBBB\n-----END EC PRIVATE KEY-----\ntail";
        let out = r.text(text);
        assert!(!out.contains("s3cr3t-token-value"));
        assert!(out.contains("short stays"));
        assert!(out.contains("BEGIN CERTIFICATE"), "certificates are public");
        assert!(!out.contains("BBB") && !out.contains("PRIVATE KEY"), "{out}");
        assert!(out.ends_with("tail"));
    }

    #[test]
    fn sanitizes_pods() {
        let mut pod = serde_json::json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "x"}},
            "spec": {"containers": [{"env": [{"name": "A", "value": "hunter2"}, {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                                      "command": ["kube-apiserver", "--oidc-client-secret=abc", "--secure-port=6443"]}]}
        });
        sanitize_pod(&mut pod);
        assert_eq!(pod["spec"]["containers"][0]["env"][0]["value"], REDACTED);
        assert!(pod["spec"]["containers"][0]["env"][1]["valueFrom"].is_object());
        assert_eq!(pod["spec"]["containers"][0]["command"][1], "--oidc-client-secret=<redacted>");
        assert_eq!(pod["spec"]["containers"][0]["command"][2], "--secure-port=6443");
        assert!(pod["metadata"]["annotations"].get("kubectl.kubernetes.io/last-applied-configuration").is_none());
    }
}
