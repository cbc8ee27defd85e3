//! Snapshots kept in object storage — `s3://bucket/prefix/`, `gs://bucket/prefix/`,
//! `az://container/prefix/`, `file:///dir/` — through Apache Arrow's `object_store` crate
//! (request signing, multipart uploads, the standard credential chains). Credentials never come
//! from flags: AWS_* variables, else the shared credentials/config files (AWS_PROFILE), else
//! web identity, the ECS/EKS container endpoints and the instance metadata; GOOGLE_* and AZURE_*
//! likewise. An upload is multipart with a bounded number of parts in flight, and is aborted —
//! no object, no parts left — when anything fails, also when a signal ends the command.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result, TransportCause, transport_cause};

/// Size of one uploaded part (S3 wants at least 5 MiB but for the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once: with `PART_SIZE`, what an upload holds in memory stays under 48 MiB.
pub const PARTS_IN_FLIGHT: usize = 4;

const SCHEMES: [&str; 7] = ["s3://", "s3a://", "gs://", "az://", "azure://", "abfs://", "file://"];

/// True when `text` names a location in object storage rather than a local path.
pub fn is_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    SCHEMES.iter().any(|s| lower.starts_with(s))
}

/// One object under a prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// A prefix in an object store: the "directory" snapshots are saved to and listed from.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    /// `s3://bucket/prefix/`, as the user wrote it up to the prefix, ending in `/`.
    base: String,
    prefix: ObjectPath,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("base", &self.base).finish()
    }
}

/// `s3://bucket/a/b` → ("s3", "bucket", "a/b"); `file:///x/y` → ("file", "", "x/y").
fn split_url(url: &str) -> Result<(String, String, String)> {
    let bad = |why: &str| {
        Error::usage(
            format!("{} is not an object-storage location: {why}", redacted(url)),
            "Write s3://BUCKET/PREFIX/, gs://BUCKET/PREFIX/, az://CONTAINER/PREFIX/ or file:///DIR/.",
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        if !rest.starts_with('/') {
            return Err(bad("a file:// URL needs an absolute path (file:///dir/)"));
        }
        return Ok((scheme, String::new(), rest.trim_matches('/').to_string()));
    }
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("no bucket"));
    }
    if bucket.contains('@') {
        return Err(bad("credentials do not belong in the URL (they come from the environment)"));
    }
    Ok((scheme, bucket.to_string(), path.trim_matches('/').to_string()))
}

/// `url` without user information (`s3://KEY:SECRET@bucket/` → `s3://***@bucket/`).
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// The profile's keys of an AWS shared file (`credentials`: `[name]`; `config`: `[profile name]`,
/// or `[default]`), as `aws configure` writes them.
pub fn aws_profile_keys(text: &str, profile: &str, config_file: bool) -> Vec<(String, String)> {
    let wanted = if config_file && profile != "default" { format!("profile {profile}") } else { profile.to_string() };
    let mut inside = false;
    let mut keys = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == wanted;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            keys.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    keys
}

fn home_file(var: &str, default: &str) -> Option<std::path::PathBuf> {
    match std::env::var_os(var) {
        Some(p) => Some(p.into()),
        None => std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(default)),
    }
}

/// Keys and region of the AWS shared files, for what the environment does not set (the
/// `object_store` chain reads neither file).
fn aws_shared_files() -> Vec<(&'static str, String)> {
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let read = |p: Option<std::path::PathBuf>| p.and_then(|p| crate::input::read_text(&p, 1 << 20).ok());
    let mut out = Vec::new();
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
        && let Some(text) = read(home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"))
    {
        for (k, v) in aws_profile_keys(&text, &profile, false) {
            match k.as_str() {
                "aws_access_key_id" => out.push(("aws_access_key_id", v)),
                "aws_secret_access_key" => out.push(("aws_secret_access_key", v)),
                "aws_session_token" => out.push(("aws_session_token", v)),
                _ => {}
            }
        }
    }
    if let Some(text) = read(home_file("AWS_CONFIG_FILE", ".aws/config")) {
        let region_set = std::env::var_os("AWS_REGION").is_some() || std::env::var_os("AWS_DEFAULT_REGION").is_some();
        for (k, v) in aws_profile_keys(&text, &profile, true) {
            match k.as_str() {
                "region" if !region_set => out.push(("aws_region", v)),
                "endpoint_url" if std::env::var_os("AWS_ENDPOINT_URL").is_none() => out.push(("aws_endpoint", v)),
                "ca_bundle" if std::env::var_os("AWS_CA_BUNDLE").is_none_or(|v| v.is_empty()) => {
                    out.push((CA_BUNDLE_KEY, v));
                }
                _ => {}
            }
        }
    }
    out
}

/// Not an `object_store` setting: the AWS CLI's `ca_bundle` (AWS_CA_BUNDLE), the certificates a
/// store with a private CA is verified against (an on-premises MinIO or Ceph).
const CA_BUNDLE_KEY: &str = "ca_bundle";

/// `options` trusting the certificates of the PEM bundle at `path` besides the system's.
fn with_ca_bundle(options: ClientOptions, path: &std::path::Path) -> Result<ClientOptions> {
    let unusable = |why: String| {
        Error::config(
            format!("Cannot use the CA bundle {} (AWS_CA_BUNDLE or ca_bundle in the AWS config file)", path.display()),
            why,
            "Point AWS_CA_BUNDLE at a PEM file of the certificates that sign the store's (as for the AWS CLI), or unset it.",
        )
    };
    let pem = crate::input::read_text(path, 4 << 20).map_err(|e| unusable(e.why))?;
    let certificates =
        object_store::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| unusable(e.to_string()))?;
    if certificates.is_empty() {
        return Err(unusable("it holds no PEM certificate".into()));
    }
    Ok(certificates.into_iter().fold(options, ClientOptions::with_root_certificate))
}

/// True for an http:// endpoint on this machine: plain HTTP is allowed there (a test server),
/// anywhere else it needs AWS_ALLOW_HTTP=true.
fn loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else { return false };
    let host = rest.split('/').next().unwrap_or_default();
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    host == "localhost" || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn client_options(timeout: Duration) -> ClientOptions {
    ClientOptions::new().with_connect_timeout(Duration::from_secs(5).min(timeout)).with_timeout(timeout)
}

fn retry(timeout: Duration) -> RetryConfig {
    // A few quick retries: mid-incident, a dead store must say so in seconds, not minutes.
    RetryConfig { max_retries: 3, retry_timeout: timeout.min(Duration::from_secs(60)), ..RetryConfig::default() }
}

fn build_error(url: &str, e: object_store::Error) -> Error {
    Error::config(
        format!("Cannot use the object store {url}"),
        e.to_string(),
        "Check the URL and the store's settings in the environment (AWS_REGION, AWS_ENDPOINT_URL; GOOGLE_SERVICE_ACCOUNT; AZURE_STORAGE_ACCOUNT_NAME).",
    )
}

impl Remote {
    /// The store and prefix of `url`; each request gives up after `timeout`.
    pub fn open(url: &str, timeout: Duration) -> Result<Remote> {
        // reqwest's rustls has no provider of its own here: the one the suite uses (ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (scheme, bucket, prefix) = split_url(url)?;
        let store: Arc<dyn ObjectStore> = match scheme.as_str() {
            "file" => {
                let dir = std::path::PathBuf::from(format!("/{prefix}"));
                if !dir.is_dir() {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("Cannot use {}", redacted(url)),
                        format!("{} is not a directory", dir.display()),
                        "Create it first (a save creates it: --to file:///DIR/).",
                    ));
                }
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| build_error(url, e))?
                    .with_automatic_cleanup(true);
                let base = format!("file://{}/", dir.display());
                return Ok(Remote { store: Arc::new(store), base, prefix: ObjectPath::default() });
            }
            "s3" | "s3a" => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env();
                let mut ca_bundle =
                    std::env::var_os("AWS_CA_BUNDLE").filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
                let mut file_endpoint = String::new();
                for (key, value) in aws_shared_files() {
                    if key == CA_BUNDLE_KEY {
                        ca_bundle = Some(value.into());
                    } else if let Ok(k) = key.parse() {
                        if key == "aws_endpoint" {
                            file_endpoint.clone_from(&value);
                        }
                        builder = builder.with_config(k, value);
                    }
                }
                let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
                    .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .unwrap_or(file_endpoint);
                let mut options = client_options(timeout);
                if loopback_http(&endpoint) {
                    options = options.with_allow_http(true);
                }
                if let Some(path) = ca_bundle {
                    options = with_ca_bundle(options, &path)?;
                }
                // Over TLS the parts are sent as UNSIGNED-PAYLOAD, as the AWS CLI sends them on
                // https (botocore's S3SigV4Auth._should_sha256_sign_payload): TLS guards them in
                // transit and the record's sha256 of the stored bytes is checked on every
                // download, while signing would hash the whole snapshot again, here and in the store.
                if !endpoint.starts_with("http://") && std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none() {
                    builder = builder.with_unsigned_payload(true);
                }
                let builder = builder.with_bucket_name(&bucket).with_client_options(options).with_retry(retry(timeout));
                let builder = if endpoint.is_empty() { builder } else { builder.with_endpoint(&endpoint) };
                Arc::new(builder.build().map_err(|e| build_error(url, e))?)
            }
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&bucket)
                    .with_client_options(client_options(timeout))
                    .with_retry(retry(timeout))
                    .build()
                    .map_err(|e| build_error(url, e))?,
            ),
            "az" | "azure" | "abfs" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(&bucket)
                    .with_client_options(client_options(timeout))
                    .with_retry(retry(timeout))
                    .build()
                    .map_err(|e| build_error(url, e))?,
            ),
            other => {
                return Err(Error::usage(
                    format!("{other}:// is not a supported object store"),
                    "Use s3://, gs://, az:// or file://.",
                ));
            }
        };
        let prefix_path = ObjectPath::parse(&prefix).map_err(|e| {
            Error::usage(format!("{url} has a prefix object stores cannot hold: {e}"), "Use a plain path.")
        })?;
        let base =
            if prefix.is_empty() { format!("{scheme}://{bucket}/") } else { format!("{scheme}://{bucket}/{prefix}/") };
        Ok(Remote { store, base, prefix: prefix_path })
    }

    /// Like `open`, for saving: a `file://` directory is created (0700) when missing.
    pub fn open_for_upload(url: &str, timeout: Duration) -> Result<Remote> {
        if let Ok(("file", _, prefix)) = split_url(url).as_ref().map(|(s, b, p)| (s.as_str(), b, p)) {
            crate::atomic_file::private_dir(std::path::Path::new(&format!("/{prefix}")))?;
        }
        Remote::open(url, timeout)
    }

    /// The prefix of a snapshot's URL and its object name: `s3://b/p/x.db` → (`s3://b/p/`, `x.db`).
    pub fn open_object(url: &str, timeout: Duration) -> Result<(Remote, String)> {
        let (dir, name) = url.trim_end_matches('/').rsplit_once('/').unwrap_or(("", url));
        if name.is_empty() || dir.ends_with(':') || dir.ends_with(":/") {
            return Err(Error::usage(
                format!("{url} does not name a snapshot object"),
                "Give the object's full URL, as `kubectl etcdsnap ls PREFIX` lists it.",
            ));
        }
        Ok((Remote::open(dir, timeout)?, name.to_string()))
    }

    /// `s3://bucket/prefix/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of object `name`.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    fn path(&self, name: &str) -> ObjectPath {
        self.prefix.clone().join(name)
    }

    fn error(&self, doing: &str, name: Option<&str>, e: object_store::Error) -> Error {
        store_error(&name.map(|n| self.url_of(n)).unwrap_or_else(|| self.base.clone()), doing, e)
    }

    /// The objects directly under the prefix.
    pub async fn list(&self) -> Result<Vec<Object>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listed = self.store.list_with_delimiter(prefix).await.map_err(|e| self.error("list", None, e))?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                Some(Object { name, size: m.size, modified: m.last_modified.into() })
            })
            .collect())
    }

    /// A small object (a record), at most `limit` bytes; `None` when there is none.
    pub async fn read_small(&self, name: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        let got = match self.store.get(&self.path(name)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error("read", Some(name), e)),
        };
        if got.meta.size > limit as u64 {
            return Err(Error::invalid_data(
                format!("{} is too large for a record", self.url_of(name)),
                format!("{} bytes, at most {limit} expected", got.meta.size),
            ));
        }
        let bytes = got.bytes().await.map_err(|e| self.error("read", Some(name), e))?;
        Ok(Some(bytes.to_vec()))
    }

    /// Writes a small object whole (a record).
    pub async fn put_small(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&self.path(name), PutPayload::from(bytes))
            .await
            .map_err(|e| self.error("write", Some(name), e))?;
        Ok(())
    }

    /// Whether object `name` exists; a failure says what the caller was `doing` ("read").
    pub async fn exists(&self, name: &str, doing: &str) -> Result<bool> {
        match self.store.head(&self.path(name)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(doing, Some(name), e)),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", Some(name), e)),
        }
    }

    /// Streams object `name` into `out`; returns its size and sha256.
    pub async fn download(&self, name: &str, out: &mut dyn Write) -> Result<(u64, String)> {
        let got = self.store.get(&self.path(name)).await.map_err(|e| self.error("download", Some(name), e))?;
        let mut stream = got.into_stream();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error("download", Some(name), e))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk)
                .map_err(|e| Error::io(format!("Cannot write the download of {}", self.url_of(name)), &e))?;
        }
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Starts a multipart upload of object `name`; refuses to replace one unless `overwrite`.
    pub async fn upload(&self, name: &str, overwrite: bool) -> Result<Upload> {
        // The first request of a save: its failure (no store, no trust, no key) is the save's.
        if !overwrite && self.exists(name, "start the upload of").await? {
            return Err(Error::new(
                ErrorKind::Io,
                format!("{} already exists", self.url_of(name)),
                "refusing to overwrite it",
                "Choose another name, or pass --force to replace it.",
            ));
        }
        let upload = self
            .store
            .put_multipart(&self.path(name))
            .await
            .map_err(|e| self.error("start the upload of", Some(name), e))?;
        Ok(Upload {
            writer: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)),
            buffer: SharedBuffer::default(),
            url: self.url_of(name),
        })
    }
}

/// An object-store failure as one paragraph: what, why, what to do.
pub fn store_error(url: &str, doing: &str, e: object_store::Error) -> Error {
    use object_store::Error as E;
    let what = format!("Cannot {doing} {url}");
    let text = e.to_string();
    // A full store answers 403 in some products (Ceph RGW's QuotaExceeded): before the refusals.
    if let Some(code) = full_store_code(&text) {
        // The prefix the snapshot was going to: what prune works on.
        let prefix = url.rfind('/').map_or(url, |i| &url[..=i]);
        return Error::new(
            ErrorKind::Io,
            what,
            format!("the store is full or over its quota ({code})"),
            format!(
                "Make room: `kubectl etcdsnap prune {prefix} --keep 5` shows what would go (add --yes to delete; the newest verified snapshot is always kept), or raise the bucket's quota or the store's capacity."
            ),
        );
    }
    // Listing answers a refusal as a generic error carrying the status: look at the text too.
    let denied = matches!(e, E::PermissionDenied { .. } | E::Unauthenticated { .. })
        || text.contains("403 Forbidden")
        || text.contains("401 Unauthorized");
    if denied {
        let bad_key =
            ["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AuthenticationFailed"]
                .iter()
                .find(|c| text.contains(*c));
        return match bad_key {
            Some(code) => Error::new(
                ErrorKind::Unauthorized,
                what,
                format!(
                    "the store rejected the credentials ({code}): the key does not exist, the secret is wrong or the session expired"
                ),
                "Check the credentials in the environment or profile (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/credentials; GOOGLE_APPLICATION_CREDENTIALS; AZURE_STORAGE_*) and renew an expired session.",
            ),
            None if matches!(e, E::Unauthenticated { .. }) || text.contains("401 Unauthorized") => Error::new(
                ErrorKind::Unauthorized,
                what,
                "the store did not accept the credentials (401)",
                "Check the credentials in the environment or profile (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*), and that they are not expired.",
            ),
            None => Error::new(
                ErrorKind::Forbidden,
                what,
                "access denied (403): the credentials are valid but lack the permission",
                "Grant the identity s3:PutObject, s3:GetObject, s3:ListBucket, s3:DeleteObject and s3:AbortMultipartUpload on the bucket and prefix (or the store's equivalents).",
            ),
        };
    }
    match &e {
        E::NotFound { .. } => Error::new(
            ErrorKind::NotFound,
            what,
            "no such object (or no such bucket)",
            "List what is there: kubectl etcdsnap ls PREFIX.",
        ),
        _ => {
            if text.contains("NoSuchBucket") {
                return Error::new(
                    ErrorKind::NotFound,
                    what,
                    "the bucket does not exist",
                    "Create it, or check the bucket name and the endpoint (AWS_ENDPOINT_URL).",
                );
            }
            let cause = match transport_cause(&e) {
                // reqwest's words for a request it could not send whole, where object_store's
                // retry error ends the chain above the cause: the store went away mid-request
                // (also when aborting a failed upload's parts fails, which replaces that error).
                TransportCause::Other(_) if text.contains("error sending request") => TransportCause::ConnectionReset,
                cause => cause,
            };
            if cause == TransportCause::TlsUnknownAuthority {
                let fix = if url.starts_with("s3") {
                    "If the store's certificate comes from a private CA (an on-premises MinIO or Ceph), point AWS_CA_BUNDLE (or ca_bundle in the AWS config file) at that CA's PEM file, as for the AWS CLI."
                } else {
                    "If the store's certificate comes from a private CA, add that CA to this machine's trusted certificates."
                };
                let why = "x509: the store's certificate is signed by an unknown authority";
                return Error::new(ErrorKind::Tls, what, why, fix);
            }
            let (kind, why) = match cause {
                TransportCause::ConnectionRefused => (
                    ErrorKind::ConnectionRefused,
                    "connection refused: nothing listens at the store's address".to_string(),
                ),
                TransportCause::ConnectionReset => {
                    (ErrorKind::ConnectionReset, "the connection to the store dropped".to_string())
                }
                TransportCause::Timeout => {
                    (ErrorKind::Timeout, "i/o timeout: the store did not answer in time".to_string())
                }
                TransportCause::Dns => (ErrorKind::Dns, "the store's host name does not resolve".to_string()),
                TransportCause::TlsExpired(_)
                | TransportCause::TlsNotYetValid(_)
                | TransportCause::TlsBadName(_)
                | TransportCause::Tls(_) => (ErrorKind::Tls, format!("TLS with the store failed: {text}")),
                _ => (ErrorKind::Failed, text),
            };
            Error::new(
                kind,
                what,
                why,
                "Check that the store is reachable from here (the endpoint: AWS_ENDPOINT_URL, a proxy, a VPN) and retry.",
            )
        }
    }
}

/// The error code of an answer meaning "no room": MinIO's `XMinioStorageFull` (HTTP 507, or 500
/// before 2021: minio `cmd/api-errors.go`), Ceph RGW's and others' `QuotaExceeded`; else HTTP 507
/// itself (RFC 4918 §11.5, Insufficient Storage).
fn full_store_code(text: &str) -> Option<&'static str> {
    ["XMinioStorageFull", "QuotaExceeded"]
        .into_iter()
        .find(|code| text.contains(code))
        .or_else(|| text.contains("507 Insufficient Storage").then_some("507 Insufficient Storage"))
}

/// An upload that failed: no object was created, and the parts sent are aborted — unless the
/// store cannot be reached to abort them, which the fix says.
fn upload_failed(url: &str, doing: &str, e: object_store::Error) -> Error {
    let mut err = store_error(url, doing, e);
    err.what.push_str(" (no object was created)");
    if err.kind.is_unreachable() {
        err.fix.push_str(" The parts sent so far are aborted on the way out; if the store stays unreachable they remain as an incomplete upload (not an object) until a lifecycle rule with AbortIncompleteMultipartUpload removes them.");
    }
    err
}

/// Bytes written by the (synchronous) encoders, waiting to be handed to the upload.
#[derive(Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        self.0.lock().map(|mut b| std::mem::take(&mut *b)).unwrap_or_default()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("upload buffer poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A multipart upload in progress. Dropped unfinished (an error, a signal), it is aborted: the
/// abort runs as a cleanup the command waits for before it exits (`crate::process`).
pub struct Upload {
    writer: Option<WriteMultipart>,
    buffer: SharedBuffer,
    url: String,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").field("url", &self.url).finish()
    }
}

impl Upload {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the encoders write; `send` hands what they wrote to the upload.
    pub fn buffer(&self) -> SharedBuffer {
        self.buffer.clone()
    }

    /// Hands the buffered bytes to the upload, waiting while `PARTS_IN_FLIGHT` parts upload.
    pub async fn send(&mut self) -> Result<()> {
        let bytes = self.buffer.take();
        let url = self.url.clone();
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        writer.write(&bytes);
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| upload_failed(&url, "continue the upload of", e))
    }

    /// Uploads the rest and completes the object.
    pub async fn finish(mut self) -> Result<()> {
        self.send().await?;
        let url = self.url.clone();
        let Some(writer) = self.writer.take() else { return Ok(()) };
        // WriteMultipart aborts the upload itself when completing fails.
        writer.finish().await.map(|_| ()).map_err(|e| upload_failed(&url, "complete the upload of", e))
    }

    /// Aborts the upload: the store drops the parts sent so far.
    pub async fn abort(mut self) -> Result<()> {
        let url = self.url.clone();
        match self.writer.take() {
            Some(w) => w.abort().await.map_err(|e| store_error(&url, "abort the upload of", e)),
            None => Ok(()),
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            crate::process::defer_cleanup(runtime.spawn(async move {
                let _ = writer.abort().await;
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_gone_while_aborting_an_upload_is_told_as_a_dropped_connection() {
        let text = "Error performing DELETE http://127.0.0.1:1/b/k.db?uploadId=x in 661ms, after 3 retries, max_retries: 3, retry_timeout: 60s  - HTTP error: error sending request";
        let e = object_store::Error::Generic { store: "S3", source: Box::new(std::io::Error::other(text)) };
        let err = upload_failed("s3://b/k.db", "complete the upload of", e);
        assert_eq!(err.kind, ErrorKind::ConnectionReset, "{err}");
        assert!(err.why.contains("the connection to the store dropped"), "{err}");
        assert!(err.fix.contains("AbortIncompleteMultipartUpload"), "{err}");
    }

    #[test]
    fn a_full_store_is_told_by_its_code_or_by_507() {
        // object_store's text for a status answer carries the body.
        let minio = "Server returned non-2xx status code: 507 Insufficient Storage: <Error><Code>XMinioStorageFull</Code><Message>Storage backend has reached its minimum free drive threshold.</Message></Error>";
        assert_eq!(full_store_code(minio), Some("XMinioStorageFull"));
        assert_eq!(full_store_code("403 Forbidden: <Code>QuotaExceeded</Code>"), Some("QuotaExceeded"));
        assert_eq!(full_store_code("status code: 507 Insufficient Storage"), Some("507 Insufficient Storage"));
        assert_eq!(full_store_code("500 Internal Server Error: <Code>InternalError</Code>"), None);
    }

    #[test]
    fn urls_name_a_store_a_bucket_and_a_prefix() {
        assert!(is_url("s3://b/p/") && is_url("GS://b") && is_url("file:///tmp/x"));
        assert!(!is_url("/tmp/x.db") && !is_url("backups/s3:/x"));
        assert_eq!(split_url("s3://b/a/b/").unwrap(), ("s3".into(), "b".into(), "a/b".into()));
        assert_eq!(split_url("s3://b").unwrap(), ("s3".into(), "b".into(), String::new()));
        assert_eq!(split_url("file:///var/backups/").unwrap(), ("file".into(), String::new(), "var/backups".into()));
        assert!(split_url("file://relative/x").is_err());
        assert!(split_url("s3:///p").is_err());
        let e = split_url("s3://AKIA:secret@bucket/p").unwrap_err();
        assert!(e.to_string().contains("credentials do not belong in the URL"), "{e}");
        assert!(!e.to_string().contains("secret@"), "the error does not repeat the secret: {e}");
    }

    #[test]
    fn profiles_of_the_shared_files() {
        let credentials =
            "[default]\naws_access_key_id = A1\naws_secret_access_key=S1\n\n[ops]\naws_access_key_id = A2\n";
        assert_eq!(
            aws_profile_keys(credentials, "default", false),
            [("aws_access_key_id".to_string(), "A1".to_string()), ("aws_secret_access_key".into(), "S1".into())]
        );
        assert_eq!(aws_profile_keys(credentials, "ops", false), [("aws_access_key_id".to_string(), "A2".to_string())]);
        let config = "[default]\nregion = eu-west-1\n[profile ops]\nregion = us-east-2\n";
        assert_eq!(aws_profile_keys(config, "ops", true), [("region".to_string(), "us-east-2".to_string())]);
        assert_eq!(aws_profile_keys(config, "default", true), [("region".to_string(), "eu-west-1".to_string())]);
        assert!(aws_profile_keys(config, "missing", true).is_empty());
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        assert!(loopback_http("http://127.0.0.1:9000"));
        assert!(loopback_http("http://localhost:9000/"));
        assert!(loopback_http("http://[::1]:9000"));
        assert!(!loopback_http("http://10.0.0.5:9000"));
        assert!(!loopback_http("https://127.0.0.1:9000"));
    }

    #[tokio::test]
    async fn a_file_store_uploads_lists_reads_and_aborts() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/backups/", dir.path().display());
        assert!(Remote::open(&url, Duration::from_secs(5)).unwrap_err().to_string().contains("is not a directory"));
        let remote = Remote::open_for_upload(&url, Duration::from_secs(5)).unwrap();
        let mut up = remote.upload("a.db", false).await.unwrap();
        let mut w = up.buffer();
        w.write_all(&vec![7u8; PART_SIZE + 10]).unwrap();
        up.send().await.unwrap();
        up.finish().await.unwrap();
        remote.put_small("a.db.json", b"{}".to_vec()).await.unwrap();
        let mut names: Vec<String> = remote.list().await.unwrap().into_iter().map(|o| o.name).collect();
        names.sort();
        assert_eq!(names, ["a.db", "a.db.json"]);
        let mut got = Vec::new();
        let (size, sha) = remote.download("a.db", &mut got).await.unwrap();
        assert_eq!(size, PART_SIZE as u64 + 10);
        assert_eq!(sha, hex::encode(Sha256::digest(vec![7u8; PART_SIZE + 10])));
        assert!(remote.upload("a.db", false).await.unwrap_err().to_string().contains("already exists"));
        // An aborted upload leaves nothing.
        let mut up = remote.upload("b.db", false).await.unwrap();
        up.buffer().write_all(&vec![1u8; PART_SIZE * 2]).unwrap();
        up.send().await.unwrap();
        up.abort().await.unwrap();
        assert!(!remote.exists("b.db", "read").await.unwrap());
        assert_eq!(remote.list().await.unwrap().len(), 2);
        assert_eq!(remote.read_small("missing.json", 100).await.unwrap(), None);
        let (r, name) = Remote::open_object(&format!("{url}a.db"), Duration::from_secs(5)).unwrap();
        assert_eq!((r.base(), name.as_str()), (url.as_str(), "a.db"));
    }
}
