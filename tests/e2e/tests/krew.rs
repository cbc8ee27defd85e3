//! The krew manifests follow krew's validation rules (krew `internal/index/validation/validate.go`),
//! the krew-release-bot templates render to valid manifests, and the archive the
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

/// What krew-index reviewers ask for beyond krew's validation: a shortDescription well under
/// 50 characters, a description wrapped at 80 columns, and hashes YAML reads as strings (a
/// bare `0000…` is the integer 0, which krew refuses).
fn assert_house_style(path: &Path, text: &str, hashes: bool) {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let short = doc["spec"]["shortDescription"].as_str().unwrap_or_default();
    assert!(short.chars().count() < 50, "{}: shortDescription {short:?}", path.display());
    let description = doc["spec"]["description"].as_str().unwrap_or_default();
    for line in description.lines() {
        assert!(line.chars().count() + 4 <= 80, "{}: description line {line:?}", path.display());
        let flag = line.split_whitespace().any(|w| w.starts_with("--") && w.len() > 2);
        let example = line.starts_with("$ ") || (line.starts_with("kubectl ") && flag);
        assert!(!example, "{}: no usage examples: {line:?}", path.display());
    }
    // The release bot writes real hashes (hex, never read as a number); the placeholders are ours.
    for line in text.lines().filter(|l| hashes && l.trim_start().starts_with("sha256:")) {
        let value = line.trim_start().trim_start_matches("sha256:").trim();
        assert!(value.starts_with('"') && value.ends_with('"'), "{}: unquoted {line:?}", path.display());
    }
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
        assert_house_style(&path, &text, true);
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
        assert_house_style(&path, &rendered, false);
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
    assert!(manifest.contains(&format!("sha256: \"{sha}\"")), "the manifest states the archive's real hash");
    let unpacked = tempfile::tempdir().unwrap();
    unpack(&archive, unpacked.path());
    let bin = unpacked.path().join(format!("kubectl-{p}"));
    use std::os::unix::fs::PermissionsExt;
    assert!(std::fs::metadata(&bin).unwrap().permissions().mode() & 0o111 != 0, "bin is executable");
    assert!(unpacked.path().join("LICENSE").is_file());
    let version = std::process::Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains(&workspace_version()));
}

/// A tool `dev/build-tools` builds, at the version the script names (so the two never disagree).
fn tool(name: &str, installed_as: &str) -> PathBuf {
    let script = std::fs::read_to_string(repo().join("dev/build-tools")).unwrap();
    let key = format!("{name}_version=");
    let version = script.lines().find_map(|l| l.strip_prefix(key.as_str())).expect("dev/build-tools names the version");
    let bin = testkit::binaries::cache_root().join(format!("tools/{name}-{version}/{installed_as}"));
    assert!(bin.is_file(), "{} is missing: run dev/build-tools (the README's test command does)", bin.display());
    bin
}

fn krew_binary() -> PathBuf {
    tool("krew", "kubectl-krew")
}

/// The release workflow (it cannot run here) passes actionlint, which knows GitHub's schema,
/// the actions' inputs and shellcheck's rules for run blocks.
#[test]
fn the_release_workflow_passes_actionlint() {
    let actionlint = tool("actionlint", "actionlint");
    let workflow = repo().join(".github/workflows/release.yml");
    let out = std::process::Command::new(&actionlint).arg(&workflow).output().unwrap();
    assert!(out.status.success(), "{}", cpkit_e2e::describe(&out));
    // Not vacuous: a broken copy is caught.
    let broken = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    let text = std::fs::read_to_string(&workflow)
        .unwrap()
        .replace("runs-on: ${{ matrix.runner }}", "runs-on: ${{ matrix.runnr }}");
    std::fs::write(broken.path(), text).unwrap();
    let out = std::process::Command::new(&actionlint).arg(broken.path()).output().unwrap();
    assert!(!out.status.success(), "{}", cpkit_e2e::describe(&out));
}

/// The user's install path, with the real krew: `kubectl krew install --manifest --archive` for
/// each plugin, the plugin runs through kubectl, `completion install` puts its link in krew's bin
/// dir and kubectl completes through it, and `kubectl krew uninstall` removes the plugin.
#[test]
fn the_real_krew_installs_completes_and_uninstalls_every_plugin() {
    let krew = krew_binary();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("krew-root");
    let dist = work.path().join("dist");
    // Only krew, krew's bin dir and kubectl on PATH: no other copy of the plugins.
    let kubectl = which::which("kubectl").expect("kubectl on PATH");
    let path = format!(
        "{}:{}:{}:/usr/bin:/bin",
        krew.parent().unwrap().display(),
        root.join("bin").display(),
        kubectl.parent().unwrap().display()
    );
    // krew's default index is a git clone of GitHub's krew-index; a test talks only to
    // loopback, so the index is an empty local git repository (install from a manifest and an
    // archive needs none; uninstall wants one to exist).
    let index = root.join("index/default");
    std::fs::create_dir_all(index.join("plugins")).unwrap();
    let git = std::process::Command::new("git").args(["init", "--quiet"]).arg(&index).output().unwrap();
    assert!(git.status.success(), "{}", cpkit_e2e::describe(&git));
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&kubectl)
            .args(args)
            .env("PATH", &path)
            .env("KREW_ROOT", &root)
            .env("KREW_NO_UPGRADE_CHECK", "1")
            .env("HOME", work.path())
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl {}: {}", args.join(" "), cpkit_e2e::describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for p in cpkit_e2e::PLUGINS {
        let built = std::process::Command::new(repo().join("dev/krew-archive"))
            .args(["--debug", "--out", dist.to_str().unwrap(), p])
            .env("CARGO_TARGET_DIR", cpkit_e2e::target_dir().parent().unwrap())
            .output()
            .unwrap();
        assert!(built.status.success(), "{}", cpkit_e2e::describe(&built));
        let archive = std::fs::read_dir(&dist)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|a| a.file_name().unwrap().to_string_lossy().starts_with(&format!("kubectl-{p}-")))
            .unwrap();
        let manifest = dist.join(format!("{p}.yaml"));
        run(&[
            "krew",
            "install",
            &format!("--manifest={}", manifest.display()),
            &format!("--archive={}", archive.display()),
        ]);
        assert!(run(&[p, "--version"]).contains(&workspace_version()), "{p} runs through kubectl");
        let linked = run(&[p, "completion", "install"]);
        let completer = root.join(format!("bin/kubectl_complete-{p}"));
        assert!(std::fs::symlink_metadata(&completer).is_ok(), "{linked}");
    }
    let listed = run(&["plugin", "list"]);
    for p in cpkit_e2e::PLUGINS {
        assert!(listed.contains(&root.join(format!("bin/kubectl-{p}")).display().to_string()), "{listed}");
    }
    let installed = run(&["krew", "list"]);
    assert!(cpkit_e2e::PLUGINS.iter().all(|p| installed.contains(p)), "{installed}");
    // kubectl's plugin completion, through the link in krew's bin dir.
    let completed = run(&["__complete", "cphealth", "--o"]);
    assert!(completed.lines().any(|l| l.starts_with("--output")), "{completed}");
    assert!(completed.lines().any(|l| l.starts_with("--only")), "{completed}");
    for p in cpkit_e2e::PLUGINS {
        run(&["krew", "uninstall", p]);
        assert!(!root.join(format!("bin/kubectl-{p}")).exists(), "{p} is uninstalled");
    }
    assert!(!run(&["plugin", "list"]).contains("kubectl-cphealth"));
}

/// dev/release's glibc gate (dev/glibc-check) refuses a binary built against this machine's
/// glibc (2.36 here; it needs 2.34) for the 2.17 baseline, and passes it for a new enough one.
#[test]
fn the_glibc_gate_refuses_a_binary_too_new_for_the_baseline() {
    let bin = cpkit_e2e::plugin_binary("cphealth");
    let check =
        |max: &str| std::process::Command::new(repo().join("dev/glibc-check")).arg(max).arg(&bin).output().unwrap();
    let old = check("2.17");
    assert_eq!(old.status.code(), Some(1), "{}", cpkit_e2e::describe(&old));
    assert!(String::from_utf8_lossy(&old.stderr).contains("newer than 2.17"), "{}", cpkit_e2e::describe(&old));
    let new = check("9.99");
    assert!(new.status.success(), "{}", cpkit_e2e::describe(&new));
}
