//! An S3 server on loopback for the object-storage tests: moto's server mode (PyPI
//! `moto[server]`, installed by `dev/build-tools` into a virtualenv), with moto's IAM
//! authentication on — every request after the bootstrap must be signed with the key the
//! bootstrap created, so a wrong credential is refused as AWS refuses it. The tests inspect the
//! store through boto3 (the virtualenv's, independent of the product's client).
//! `S3Server::start_minio` starts MinIO instead (built from its Go module by `dev/build-tools
//! minio`, for the benchmark: a store written in Go, as deployed, rather than moto's Python).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::ChildGuard;

pub const BUCKET: &str = "backups";
pub const REGION: &str = "us-east-1";

/// The virtualenv `dev/build-tools` installs moto into, at the version the script names.
pub fn moto_dir() -> std::io::Result<PathBuf> {
    crate::binaries::build_tools_dir("moto")
}

/// Creates the bucket with the root credentials MinIO starts with.
const MINIO_BUCKET: &str = r#"
import boto3, sys
boto3.client("s3", endpoint_url=sys.argv[1], region_name=sys.argv[2], aws_access_key_id=sys.argv[4],
             aws_secret_access_key=sys.argv[5]).create_bucket(Bucket=sys.argv[3])
"#;

/// Creates the user, its S3 policy and access key, and the bucket, while moto still accepts
/// unsigned requests (INITIAL_NO_AUTH_ACTION_COUNT); prints the key.
const BOOTSTRAP: &str = r#"
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name=sys.argv[2], aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="etcdsnap")
iam.put_user_policy(UserName="etcdsnap", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="etcdsnap")["AccessKey"]
boto3.client("s3", **kw).create_bucket(Bucket=sys.argv[3])
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;

/// Store operations for the tests: `list` (key and size per line), `uploads` (keys of
/// unfinished multipart uploads), `get KEY` (bytes to stdout), `put KEY` (bytes from stdin).
const INSPECT: &str = r#"
import boto3, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
bucket, op = sys.argv[1], sys.argv[2]
if op == "list":
    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        print(o["Key"], o["Size"])
elif op == "uploads":
    for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        print(u["Key"])
elif op == "get":
    sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=sys.argv[3])["Body"].read())
elif op == "put":
    s3.put_object(Bucket=bucket, Key=sys.argv[3], Body=sys.stdin.buffer.read())
"#;

/// `NAME SIZE` lines (a store's listing printed by a script) as pairs.
pub(crate) fn names_and_sizes(out: &[u8]) -> Vec<(String, u64)> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| {
            let (k, s) = l.rsplit_once(' ')?;
            Some((k.to_string(), s.parse().ok()?))
        })
        .collect()
}

/// How a store serves: plain HTTP, or HTTPS with a certificate of a private CA (as an
/// on-premises store does; clients trust it through AWS_CA_BUNDLE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    Http,
    Https,
}

impl Serving {
    fn scheme(self) -> &'static str {
        match self {
            Serving::Http => "http",
            Serving::Https => "https",
        }
    }
}

/// For HTTPS: a serving certificate for 127.0.0.1, written into `certs` as `public.crt` and
/// `private.key` (MinIO's names), and the CA that signed it, written to `ca_file` (returned).
fn serving_tls(serving: Serving, certs: &std::path::Path, ca_file: PathBuf) -> std::io::Result<Option<PathBuf>> {
    if serving == Serving::Http {
        return Ok(None);
    }
    let ca = crate::pki::Ca::new("cpkit-test-store-ca");
    let leaf = ca.issue(&crate::pki::server_spec("127.0.0.1", &[], &[]), crate::pki::Validity::days(30));
    std::fs::write(certs.join("public.crt"), &leaf.cert_pem)?;
    crate::pki::write_private(&certs.join("private.key"), leaf.key_pem.as_bytes())?;
    std::fs::write(&ca_file, &ca.cert.cert_pem)?;
    Ok(Some(ca_file))
}

/// The virtualenv's Python, trusting the store's CA when it has one (boto3 reads AWS_CA_BUNDLE).
fn python_for(python: &std::path::Path, ca_bundle: Option<&PathBuf>) -> Command {
    let mut cmd = Command::new(python);
    if let Some(ca) = ca_bundle {
        cmd.env("AWS_CA_BUNDLE", ca);
    }
    cmd
}

/// moto on 127.0.0.1 with one bucket and one access key.
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// The CA file clients need, when the store serves HTTPS.
    pub ca_bundle: Option<PathBuf>,
    python: PathBuf,
    child: ChildGuard,
    _data: Option<tempfile::TempDir>,
}

impl S3Server {
    /// The server's process, for benchmarks that account its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    pub fn start() -> std::io::Result<S3Server> {
        S3Server::start_serving(Serving::Http)
    }

    pub fn start_serving(serving: Serving) -> std::io::Result<S3Server> {
        let dir = moto_dir()?;
        let port = crate::net::free_port()?;
        let certs = tempfile::Builder::new().prefix("cpkit-moto-").tempdir()?;
        let mut cmd = Command::new(dir.join("bin/moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let ca_bundle = serving_tls(serving, certs.path(), certs.path().join("ca.crt"))?;
        if ca_bundle.is_some() {
            cmd.arg("--ssl").arg("--ssl-cert").arg(certs.path().join("public.crt"));
            cmd.arg("--ssl-key").arg(certs.path().join("private.key"));
        }
        let child = ChildGuard::spawn(
            "moto_server",
            // The bootstrap's four actions run unsigned; every later request is checked.
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "4").stdout(Stdio::null()).stderr(Stdio::null()),
        )?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        crate::net::wait_listening(addr, Duration::from_secs(30), "moto_server")?;
        let endpoint = format!("{}://{addr}", serving.scheme());
        let python = dir.join("bin/python");
        let out =
            python_for(&python, ca_bundle.as_ref()).args(["-c", BOOTSTRAP, &endpoint, REGION, BUCKET]).output()?;
        let printed = String::from_utf8_lossy(&out.stdout).to_string();
        let mut words = printed.split_whitespace();
        let (Some(access_key), Some(secret_key)) = (words.next(), words.next()) else {
            return Err(std::io::Error::other(format!(
                "moto bootstrap failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        };
        Ok(S3Server {
            endpoint,
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            ca_bundle,
            python,
            child,
            _data: Some(certs),
        })
    }

    /// MinIO on 127.0.0.1 with one bucket, its data in a temporary directory, the root user as
    /// the only credential.
    pub fn start_minio(serving: Serving) -> std::io::Result<S3Server> {
        let minio = crate::binaries::build_tools_dir("minio")?.join("minio");
        let data = tempfile::Builder::new().prefix("cpkit-minio-").tempdir()?;
        let (drive, certs) = (data.path().join("drive"), data.path().join("certs"));
        std::fs::create_dir_all(&drive)?;
        std::fs::create_dir_all(&certs)?;
        let ca_bundle = serving_tls(serving, &certs, data.path().join("ca.crt"))?;
        let port = crate::net::free_port()?;
        let console = crate::net::free_port()?;
        let (access_key, secret_key) = ("cpkit-bench", "cpkit-bench-secret");
        let child = ChildGuard::spawn(
            "minio",
            Command::new(minio)
                .arg("server")
                .arg(&drive)
                .arg("--certs-dir")
                .arg(&certs)
                .args(["--quiet", "--address", &format!("127.0.0.1:{port}")])
                .args(["--console-address", &format!("127.0.0.1:{console}")])
                .env("MINIO_ROOT_USER", access_key)
                .env("MINIO_ROOT_PASSWORD", secret_key)
                .env("MINIO_BROWSER", "off")
                .env("MINIO_UPDATE", "off")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        crate::net::wait_listening(addr, Duration::from_secs(30), "minio")?;
        let endpoint = format!("{}://{addr}", serving.scheme());
        let python = moto_dir()?.join("bin/python");
        // MinIO listens before its object layer is ready: retry the bucket's creation briefly.
        let mut attempts = 0;
        loop {
            let out = python_for(&python, ca_bundle.as_ref())
                .args(["-c", MINIO_BUCKET, &endpoint, REGION, BUCKET, access_key, secret_key])
                .output()?;
            if out.status.success() {
                break;
            }
            attempts += 1;
            if attempts == 50 {
                let why = String::from_utf8_lossy(&out.stderr);
                return Err(std::io::Error::other(format!("creating MinIO's bucket failed: {why}")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(S3Server {
            endpoint,
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            ca_bundle,
            python,
            child,
            _data: Some(data),
        })
    }

    /// The environment a client of this store runs with (the standard AWS variables).
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_with_endpoint(&self.endpoint)
    }

    /// The same credentials, pointed at another endpoint (a proxy in front of this server).
    pub fn env_with_endpoint(&self, endpoint: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL".into(), endpoint.to_string()),
            ("AWS_ACCESS_KEY_ID".into(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ("AWS_REGION".into(), REGION.into()),
            // Never reach for the instance metadata service (not loopback).
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ];
        if let Some(ca) = &self.ca_bundle {
            env.push(("AWS_CA_BUNDLE".into(), ca.display().to_string()));
        }
        env
    }

    fn inspect(&self, args: &[&str], stdin: Option<&[u8]>) -> std::io::Result<Vec<u8>> {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-c", INSPECT, BUCKET]).args(args).envs(self.env());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            std::io::Write::write_all(&mut pipe, bytes)?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!("boto3 {args:?}: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(out.stdout)
    }

    /// Every object of the bucket: key and size.
    pub fn objects(&self) -> std::io::Result<Vec<(String, u64)>> {
        Ok(names_and_sizes(&self.inspect(&["list"], None)?))
    }

    /// Keys of multipart uploads started and neither completed nor aborted.
    pub fn unfinished_uploads(&self) -> std::io::Result<Vec<String>> {
        let out = self.inspect(&["uploads"], None)?;
        Ok(String::from_utf8_lossy(&out).lines().map(str::to_string).collect())
    }

    pub fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        self.inspect(&["get", key], None)
    }

    pub fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.inspect(&["put", key], Some(bytes)).map(|_| ())
    }

    /// The server dies (the store dropped mid-way).
    pub fn kill(&mut self) {
        self.child.kill();
    }
}
