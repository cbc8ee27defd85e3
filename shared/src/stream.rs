//! Exec and port-forward into pods over the API server's WebSocket streaming protocol
//! (`v5.channel.k8s.io`/`v4.channel.k8s.io`), with timeouts and explained failures.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

use crate::access::Access;
use crate::client::Cluster;
use crate::error::{Error, ErrorKind, Result, http_error};

/// What a command run in a container produced.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// 0 on success; the command's exit code otherwise; -1 when it could not start.
    pub exit_code: i32,
    /// The runtime's message when the command failed to start or failed (e.g. "executable file
    /// not found in $PATH").
    pub failure: Option<String>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// A one-line reason for a failed command: the runtime's message, else stderr's last line.
    pub fn failure_reason(&self) -> String {
        if let Some(f) = &self.failure
            && !f.is_empty()
        {
            return f.clone();
        }
        let stderr = self.stderr_text();
        stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| format!("exit code {}", self.exit_code))
    }
}

fn stream_error(cluster: &Cluster, err: kube::Error, access: &Access, what: &str) -> Error {
    match &err {
        kube::Error::Api(status) => {
            let body = serde_json::to_vec(status).unwrap_or_default();
            http_error(cluster.server(), what, status.code, &body, None, Some(access))
        }
        kube::Error::UpgradeConnection(e) => {
            let text = crate::kubeconfig::error_chain(e);
            if let Some(code) = text
                .split_whitespace()
                .find_map(|w| w.trim_matches(|c: char| !c.is_ascii_digit()).parse::<u16>().ok())
                .filter(|c| (400..600).contains(c))
            {
                return http_error(cluster.server(), what, code, text.as_bytes(), None, Some(access));
            }
            Error::new(
                ErrorKind::Failed,
                format!("Cannot open a stream for {what}"),
                text,
                "The API server (or a proxy in front of it) refused the WebSocket upgrade; kubectl ≥ 1.30 uses the same protocol.",
            )
        }
        _ => cluster.classify(&err),
    }
}

/// Runs `command` in a container and collects its output, bounded by `timeout`.
pub async fn exec(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    timeout: Duration,
) -> Result<ExecOutput> {
    let access = Access::resource("create", "", "pods", Some(namespace)).with_subresource("exec");
    let what = format!("exec in pod {namespace}/{pod}");
    let api: Api<Pod> = Api::namespaced(cluster.kube().clone(), namespace);
    let mut params = AttachParams::default().stdin(false).stdout(true).stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let run = async {
        let mut attached = api
            .exec(pod, command.iter().cloned(), &params)
            .await
            .map_err(|e| stream_error(cluster, e, &access, &what))?;
        let mut stdout = attached.stdout();
        let mut stderr = attached.stderr();
        let status = attached.take_status();
        let read_out = async {
            let mut buf = Vec::new();
            if let Some(s) = stdout.as_mut() {
                s.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(s) = stderr.as_mut() {
                s.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let (out, err) = tokio::try_join!(read_out, read_err).map_err(|e| {
            Error::new(ErrorKind::ConnectionReset, format!("The {what} stream broke"), e.to_string(), "")
        })?;
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        let _ = attached.join().await;
        let mut output = ExecOutput { stdout: out, stderr: err, exit_code: 0, failure: None };
        if let Some(status) = status {
            apply_status(&mut output, &status);
        }
        Ok(output)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("The {what} did not finish within {}", crate::duration::short_limit(timeout)),
            "the command hung or the node is slow to answer",
            "Raise --timeout, or check the node and the container runtime.",
        )),
    }
}

/// Reads the exit status the API server sends on the error channel.
fn apply_status(output: &mut ExecOutput, status: &ExecStatus) {
    if status.status.as_deref() == Some("Success") {
        return;
    }
    let exit = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse::<i32>().ok());
    match exit {
        Some(code) => output.exit_code = code,
        None => {
            output.exit_code = -1;
            output.failure = Some(status.message.clone().unwrap_or_default());
        }
    }
}

type ExecStatus = k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

/// A port-forward tunnel to one port of a pod.
pub struct Tunnel {
    pub stream: tokio::io::DuplexStream,
    pub(crate) forwarder: kube::api::Portforwarder,
}

impl Tunnel {
    /// Closes the tunnel (the WebSocket) once the stream is no longer needed.
    pub fn abort(&self) {
        self.forwarder.abort();
    }
}

/// Opens a port-forward to `port` of a pod (for hostNetwork pods such as etcd that is the node's
/// port), bounded by `timeout`.
pub async fn port_forward(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    port: u16,
    timeout: Duration,
) -> Result<Tunnel> {
    let access = Access::resource("create", "", "pods", Some(namespace)).with_subresource("portforward");
    let what = format!("port-forward to {namespace}/{pod}:{port}");
    let api: Api<Pod> = Api::namespaced(cluster.kube().clone(), namespace);
    let mut forwarder = match tokio::time::timeout(timeout, api.portforward(pod, &[port])).await {
        Ok(r) => r.map_err(|e| stream_error(cluster, e, &access, &what))?,
        Err(_) => {
            return Err(crate::error::transport_error(
                "the API server",
                cluster.server(),
                crate::error::TransportCause::Timeout,
                Some(timeout),
            ));
        }
    };
    let stream = forwarder.take_stream(port).ok_or_else(|| {
        Error::new(
            ErrorKind::Failed,
            format!("The {what} gave no stream"),
            "the API server did not open the port's channel",
            "",
        )
    })?;
    Ok(Tunnel { stream, forwarder })
}

/// Runs `use_stream` over a port-forward to `port` of a pod, the whole of it (opening included)
/// bounded by `timeout`, and closes the tunnel after, whatever the outcome. `what` names the read
/// in the timeout's error.
pub async fn through_port_forward<T, F, Fut>(
    cluster: &Cluster,
    (namespace, pod, port): (&str, &str, u16),
    timeout: Duration,
    what: &str,
    use_stream: F,
) -> Result<T>
where
    F: FnOnce(tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let read = async {
        let Tunnel { stream, forwarder } = port_forward(cluster, namespace, pod, port, timeout).await?;
        let result = use_stream(stream).await;
        forwarder.abort();
        result
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            what.to_string(),
            format!("no answer within {}s", timeout.as_secs()),
            "",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_come_from_the_status_causes() {
        let status: ExecStatus = serde_json::from_str(
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#,
        )
        .unwrap();
        let mut out = ExecOutput::default();
        apply_status(&mut out, &status);
        assert_eq!(out.exit_code, 3);
        assert!(!out.success());

        let not_found: ExecStatus = serde_json::from_str(
            r#"{"metadata":{},"status":"Failure","message":"OCI runtime exec failed: exec failed: unable to start container process: exec: \"tar\": executable file not found in $PATH: unknown","reason":"InternalError","code":500}"#,
        )
        .unwrap();
        let mut out = ExecOutput::default();
        apply_status(&mut out, &not_found);
        assert_eq!(out.exit_code, -1);
        assert!(out.failure_reason().contains("executable file not found"));

        let ok: ExecStatus = serde_json::from_str(r#"{"metadata":{},"status":"Success"}"#).unwrap();
        let mut out = ExecOutput::default();
        apply_status(&mut out, &ok);
        assert!(out.success());
    }
}
