//! Exec credential plugins (`users[].user.exec`: aws, gke-gcloud-auth-plugin, kubelogin, ...),
//! run by the plugins themselves rather than by kube-rs, which runs them without a time limit
//! and quotes their standard output (the token) in its errors. Here the plugin is a child the
//! tool owns (killed on timeout, on a signal, with the tool), bounded by the request timeout,
//! and no message ever contains what it printed. Protocol: client-go
//! `plugin/pkg/client/auth/exec/exec.go` (KUBERNETES_EXEC_INFO in, an ExecCredential out).

use std::time::Duration;

use kube::config::{ExecConfig, ExecInteractiveMode};
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

/// What a plugin handed over.
#[derive(Clone, Default)]
pub struct Credential {
    pub token: Option<String>,
    /// PEM.
    pub client_certificate: Option<String>,
    /// PEM.
    pub client_key: Option<String>,
    pub expires: Option<jiff::Timestamp>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("expires", &self.expires).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ExecCredential {
    status: Option<Status>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    token: Option<String>,
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
    expiration_timestamp: Option<String>,
}

/// The command line as the user would type it (for messages; arguments hold no secrets by
/// client-go's contract, which passes secrets through the environment).
fn command_line(exec: &ExecConfig) -> String {
    let mut parts = vec![exec.command.clone().unwrap_or_default()];
    parts.extend(exec.args.clone().unwrap_or_default());
    parts.join(" ")
}

/// Runs the plugin of `exec` and reads its ExecCredential, within `timeout`.
pub async fn run(exec: &ExecConfig, timeout: Duration) -> Result<Credential> {
    let Some(program) = exec.command.clone().filter(|c| !c.is_empty()) else {
        return Err(Error::config(
            "The kubeconfig user's exec plugin has no command",
            "users[].user.exec.command is empty",
            "",
        ));
    };
    let line = command_line(exec);
    let mut command = tokio::process::Command::new(&program);
    command.args(exec.args.clone().unwrap_or_default());
    for pair in exec.env.clone().unwrap_or_default() {
        if let (Some(k), Some(v)) = (pair.get("name"), pair.get("value")) {
            command.env(k, v);
        }
    }
    for k in exec.drop_env.clone().unwrap_or_default() {
        command.env_remove(k);
    }
    let interactive = exec.interactive_mode != Some(ExecInteractiveMode::Never);
    let info = serde_json::json!({
        "apiVersion": exec.api_version.clone().unwrap_or_else(|| "client.authentication.k8s.io/v1".into()),
        "kind": "ExecCredential",
        "spec": {"interactive": interactive},
    });
    command.env("KUBERNETES_EXEC_INFO", info.to_string());
    // Its messages (a login prompt, an error) are for the user, as with kubectl; its output is
    // the credential and stays here.
    command
        .stdin(if interactive { std::process::Stdio::inherit() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    let child = crate::process::owned(&mut command).spawn().map_err(|e| {
        let hint = exec.install_hint.clone().unwrap_or_default();
        Error::new(
            if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::ToolMissing } else { ErrorKind::Config },
            format!("Cannot run the exec credential plugin `{program}`"),
            crate::kubeconfig::error_chain(&e),
            if hint.is_empty() {
                format!("Install `{program}` or fix the kubeconfig user's exec command.")
            } else {
                hint
            },
        )
    })?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(Error::io(format!("The exec credential plugin `{program}` failed"), &e)),
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "The exec credential plugin `{program}` did not answer within {}",
                    crate::duration::human_duration(timeout)
                ),
                "it may be waiting for a login (a browser, a prompt) or be stuck; it was stopped",
                format!(
                    "Run it by hand to see what it waits for: `{line}`; raise --request-timeout if it is only slow."
                ),
            ));
        }
    };
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            format!("The exec credential plugin `{program}` failed ({})", exit_text(&out.status)),
            "its own messages are above; what it printed on its output is not shown (it may hold a token)",
            format!("Run `{line}` by hand, log in again if it asks, or check its configuration."),
        ));
    }
    parse(&out.stdout, &program)
}

fn exit_text(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "no exit code".into(),
    }
}

/// Reads an ExecCredential (JSON, or YAML as client-go's decoder accepts). Errors never quote it.
pub fn parse(output: &[u8], program: &str) -> Result<Credential> {
    let not_a_credential = |why: &str| {
        Error::new(
            ErrorKind::Unauthorized,
            format!("The exec credential plugin `{program}` printed no usable ExecCredential"),
            format!("{why} ({} bytes; not shown: it may hold a token)", output.len()),
            "Check the plugin's version and the kubeconfig's exec apiVersion.",
        )
    };
    let text = std::str::from_utf8(output).map_err(|_| not_a_credential("its output is not text"))?;
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => crate::yaml::documents("the exec credential", text)
            .ok()
            .and_then(|d| d.into_iter().next())
            .ok_or_else(|| not_a_credential("its output is neither JSON nor YAML"))?,
    };
    let cred: ExecCredential =
        serde_json::from_value(value).map_err(|_| not_a_credential("its output is not an ExecCredential"))?;
    let status = cred.status.ok_or_else(|| not_a_credential("its ExecCredential has no status"))?;
    if status.token.is_none() && (status.client_certificate_data.is_none() || status.client_key_data.is_none()) {
        return Err(not_a_credential("its ExecCredential has neither a token nor a client certificate and key"));
    }
    Ok(Credential {
        token: status.token,
        client_certificate: status.client_certificate_data,
        client_key: status.client_key_data,
        expires: status.expiration_timestamp.and_then(|t| t.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "k8s-aws-v1.c2VjcmV0LXRva2VuLW1hcmtlcg";

    #[test]
    fn parses_json_and_yaml_credentials() {
        let json = format!(
            r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{TOKEN}","expirationTimestamp":"2026-12-01T12:00:00Z"}}}}"#
        );
        let c = parse(json.as_bytes(), "aws").unwrap();
        assert_eq!(c.token.as_deref(), Some(TOKEN));
        assert!(c.expires.is_some());
        let yaml =
            format!("apiVersion: client.authentication.k8s.io/v1\nkind: ExecCredential\nstatus:\n  token: {TOKEN}\n");
        assert_eq!(parse(yaml.as_bytes(), "aws").unwrap().token.as_deref(), Some(TOKEN));
        assert!(!format!("{c:?}").contains(TOKEN), "Debug never shows the credential");
    }

    #[test]
    fn errors_never_quote_the_output() {
        for output in [
            format!("token: {TOKEN}\nthis is: [not valid"),
            format!("{{\"status\": {{\"tokn\": \"{TOKEN}\"}}}}"),
            format!("Bearer {TOKEN}"),
        ] {
            let e = parse(output.as_bytes(), "aws").unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(!text.contains(TOKEN), "{text}");
            assert!(text.contains("not shown"), "{text}");
        }
    }
}
