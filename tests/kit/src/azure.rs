//! An Azure Blob server on loopback for the object-storage tests: Azurite (npm `azurite`,
//! installed by `dev/build-tools`), in memory, with its well-known development account. The
//! tests reach it as a user reaches the emulator (`AZURE_STORAGE_USE_EMULATOR`), and inspect the
//! container with the Blob REST API signed by the account key (Python's standard library only,
//! independent of the product's client).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::ChildGuard;

pub const CONTAINER: &str = "backups";

/// `create` (the container) and `list` (blob name and size per line), signed with Azurite's
/// development account key (SharedKey, Blob service REST API).
const REST: &str = r#"
import base64, email.utils, hashlib, hmac, sys, urllib.request, xml.etree.ElementTree as ET
account = "devstoreaccount1"
key = base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
endpoint, container, op = sys.argv[1], sys.argv[2], sys.argv[3]
method, query = ("PUT", {"restype": "container"}) if op == "create" else ("GET", {"comp": "list", "restype": "container"})
date = email.utils.formatdate(usegmt=True)
headers = {"x-ms-date": date, "x-ms-version": "2021-08-06"}
resource = f"/{account}/{account}/{container}" + "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
length = ""  # a zero Content-Length is signed as empty (versions from 2015-02-21)
to_sign = f"{method}\n\n\n{length}\n\n\n\n\n\n\n\n\n" + "".join(f"{k}:{v}\n" for k, v in sorted(headers.items())) + resource
headers["Authorization"] = f"SharedKey {account}:" + base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
if method == "PUT":
    headers["Content-Length"] = "0"
url = f"{endpoint}/{account}/{container}?" + "&".join(f"{k}={v}" for k, v in query.items())
body = urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers)).read()
if op == "list":
    for blob in ET.fromstring(body).iter("Blob"):
        print(blob.findtext("Name"), blob.findtext("Properties/Content-Length"))
"#;

/// Azurite's blob service on 127.0.0.1 with one container.
pub struct AzureServer {
    pub endpoint: String,
    _dir: tempfile::TempDir,
    _child: ChildGuard,
}

impl AzureServer {
    pub fn start() -> std::io::Result<AzureServer> {
        let bin = crate::binaries::build_tools_dir("azurite")?.join("node_modules/.bin/azurite-blob");
        let port = crate::net::free_port()?;
        let dir = tempfile::Builder::new().prefix("cpkit-azurite-").tempdir()?;
        let child = ChildGuard::spawn(
            "azurite-blob",
            Command::new(bin)
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                // In memory (it refuses --location then): its working directory is a temp dir.
                .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--silent"])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        crate::net::wait_listening(addr, Duration::from_secs(30), "azurite-blob")?;
        let server = AzureServer { endpoint: format!("http://{addr}"), _dir: dir, _child: child };
        server.rest("create")?;
        Ok(server)
    }

    /// The environment a client of the emulator runs with (object_store's and the Azure SDKs').
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            ("AZURITE_BLOB_STORAGE_URL".into(), self.endpoint.clone()),
        ]
    }

    fn rest(&self, op: &str) -> std::io::Result<Vec<u8>> {
        let out = Command::new("python3").args(["-c", REST, &self.endpoint, CONTAINER, op]).output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!("Blob REST {op}: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(out.stdout)
    }

    /// Every blob of the container: name and size.
    pub fn blobs(&self) -> std::io::Result<Vec<(String, u64)>> {
        Ok(crate::s3::names_and_sizes(&self.rest("list")?))
    }
}
