//! The krew manifests follow krew's validation rules (krew `internal/index/validation/validate.go`,
//! FIELD-GUIDE §7), the krew-release-bot templates render to valid manifests, and the archive the
//! dev script builds for this machine unpacks to an executable plugin plus LICENSE with the hash
//! its manifest states.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::Digest;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn workspace_version() -> String {
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("version = ")).expect("workspace version");
    line.trim_start_matches("version = ").trim_matches('"').to_string()
}

fn is_semver_with_v(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let core = rest.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// krew's checks; returns the problems found.
fn validate(file_stem: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let doc: Value = match serde_yaml::from_str::<serde_yaml::Value>(text).map(|v| serde_json::to_value(v).unwrap()) {
        Ok(v) => v,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    if doc["apiVersion"] != "krew.googlecontainertools.github.com/v1alpha2" {
        problems.push("apiVersion".into());
    }
    if doc["kind"] != "Plugin" {
        problems.push("kind".into());
    }
    let name = doc["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        problems.push(format!("metadata.name {name:?} does not match ^[\\w-]+$"));
    }
    if name != file_stem {
        problems.push(format!("metadata.name {name:?} differs from the file name {file_stem:?}"));
    }
    let spec = &doc["spec"];
    let short = spec["shortDescription"].as_str().unwrap_or("");
    if short.trim().is_empty() || short.contains('\n') {
        problems.push("shortDescription must be one non-empty line".into());
    }
    let version = spec["version"].as_str().unwrap_or("");
    if !is_semver_with_v(version) {
        problems.push(format!("version {version:?} is not semver with a leading v"));
    }
    if version != format!("v{}", workspace_version()) {
        problems.push(format!("version {version:?} is not the workspace version v{}", workspace_version()));
    }
    let platforms = spec["platforms"].as_array().cloned().unwrap_or_default();
    if platforms.is_empty() {
        problems.push("no platforms".into());
    }
    let mut selectors = BTreeSet::new();
    for (i, p) in platforms.iter().enumerate() {
        let labels = p["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
        if labels.is_empty() && p["selector"]["matchExpressions"].is_null() {
            problems.push(format!("platform {i}: empty selector"));
        }
        if labels.keys().any(|k| k != "os" && k != "arch") {
            problems.push(format!("platform {i}: selector keys other than os/arch"));
        }
        let key = format!(
            "{}/{}",
            labels.get("os").and_then(Value::as_str).unwrap_or("*"),
            labels.get("arch").and_then(Value::as_str).unwrap_or("*")
        );
        if !selectors.insert(key.clone()) {
            problems.push(format!("platform {i}: selector {key} overlaps another"));
        }
        let uri = p["uri"].as_str().unwrap_or("");
        if !(uri.ends_with(".tar.gz") || uri.ends_with(".zip")) || !uri.starts_with("https://") {
            problems.push(format!("platform {i}: uri {uri:?}"));
        }
        let sha = p["sha256"].as_str().unwrap_or("");
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            problems.push(format!("platform {i}: sha256 {sha:?} does not match ^[a-f0-9]{{64}}$"));
        }
        let bin = p["bin"].as_str().unwrap_or("");
        if bin.is_empty() {
            problems.push(format!("platform {i}: empty bin"));
        }
        match p.get("files") {
            None => {}
            Some(Value::Array(files)) if !files.is_empty() => {
                if files
                    .iter()
                    .any(|f| f["from"].as_str().unwrap_or("").is_empty() || f["to"].as_str().unwrap_or("").is_empty())
                {
                    problems.push(format!("platform {i}: files entries need from and to"));
                }
                if !files.iter().any(|f| f["from"] == "LICENSE") {
                    problems.push(format!("platform {i}: LICENSE is not extracted"));
                }
                if !files.iter().any(|f| f["from"].as_str() == Some(bin)) {
                    problems.push(format!("platform {i}: bin {bin} is not extracted"));
                }
            }
            Some(_) => problems.push(format!("platform {i}: files must be absent or non-empty")),
        }
    }
    problems
}

#[test]
fn committed_manifests_pass_krew_validation() {
    let dir = repo().join("krew-manifests");
    let mut seen = Vec::new();
    for p in cpkit_e2e::PLUGINS {
        let path = dir.join(format!("{p}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let problems = validate(p, &text);
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let platforms: Vec<String> = doc["spec"]["platforms"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["selector"]["matchLabels"]["os"].as_str().unwrap(),
                    p["selector"]["matchLabels"]["arch"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"], "{p}");
        seen.push(p);
    }
    assert_eq!(seen.len(), 4, "one manifest per plugin: krew installs one bin per manifest");
    // A broken manifest is caught (the validator is not vacuous).
    let good = std::fs::read_to_string(dir.join("cphealth.yaml")).unwrap();
    assert!(!validate("cphealth", &good.replace("version: v", "version: ")).is_empty());
    assert!(!validate("other", &good).is_empty());
    assert!(!validate("cphealth", &good.replace("- from: LICENSE", "- from: README")).is_empty());
}

#[test]
fn release_bot_templates_render_to_valid_manifests() {
    for p in cpkit_e2e::PLUGINS {
        let path = repo().join(format!("krew-manifests/templates/{p}.krew.yaml"));
        let template = std::fs::read_to_string(&path).unwrap();
        assert!(template.contains("{{ .TagName }}"));
        let tag = format!("v{}", workspace_version());
        // What krew-release-bot does: addURIAndSha becomes uri + sha256 of the downloaded archive.
        let mut rendered = String::new();
        for line in template.lines() {
            if let Some(rest) = line.trim().strip_prefix("{{addURIAndSha \"") {
                let url = rest.split('"').next().unwrap().replace("{{ .TagName }}", &tag);
                rendered.push_str(&format!("    uri: {url}\n    sha256: {}\n", "a".repeat(64)));
            } else {
                rendered.push_str(&line.replace("{{ .TagName }}", &tag));
                rendered.push('\n');
            }
        }
        let problems = validate(p, &rendered);
        assert!(problems.is_empty(), "{}: {problems:#?}\n{rendered}", path.display());
    }
}

fn unpack(archive: &Path, into: &Path) {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.unpack(into).unwrap();
}

#[test]
fn host_archive_unpacks_to_an_executable_plugin_and_license() {
    let out = tempfile::tempdir().unwrap();
    let p = "webhookguard";
    let status = std::process::Command::new(repo().join("dev/krew-archive"))
        .args(["--debug", "--out", out.path().to_str().unwrap(), p])
        .env("CARGO_TARGET_DIR", cpkit_e2e::target_dir().parent().unwrap())
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", cpkit_e2e::describe(&status));
    let archive = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();
    let manifest = std::fs::read_to_string(out.path().join(format!("{p}.yaml"))).unwrap();
    assert!(validate(p, &manifest).is_empty(), "{:?}", validate(p, &manifest));
    let bytes = std::fs::read(&archive).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    assert!(manifest.contains(&format!("sha256: {sha}")), "the manifest states the archive's real hash");
    let unpacked = tempfile::tempdir().unwrap();
    unpack(&archive, unpacked.path());
    let bin = unpacked.path().join(format!("kubectl-{p}"));
    use std::os::unix::fs::PermissionsExt;
    assert!(std::fs::metadata(&bin).unwrap().permissions().mode() & 0o111 != 0, "bin is executable");
    assert!(unpacked.path().join("LICENSE").is_file());
    let version = std::process::Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains(&workspace_version()));
}
