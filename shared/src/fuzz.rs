//! The parsers that read what comes from outside — `/metrics` scrapes, health bodies, etcd
//! snapshots, APF debug dumps, webhook and policy manifests, kubeconfigs — as entry points for
//! the coverage-guided fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer; `dev/fuzz`). The same
//! functions run as ordinary tests over the corpus (`fuzz/corpus/<target>/`), the inputs that
//! once crashed (`fuzz/regressions/<target>/`) and the fixtures. Any panic is a bug; errors are
//! the expected answer to garbage.

use crate::etcd::bbolt::Db;

/// The Prometheus text parser, whole scrapes and line by line.
pub fn metrics(data: &[u8]) {
    let _ = crate::metrics::Scrape::parse(data, &crate::metrics::Selection::all());
    crate::metrics::text::parse_bytes(data, &mut |_| {});
}

/// `/readyz?verbose` and `/livez?verbose` bodies.
pub fn health(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::health::parse(text);
    }
}

/// The bbolt reader: open, walk with its structure check, the last key, the size rule; and the
/// same bytes as a save's stream, in pieces whose size the first byte picks.
pub fn snapshot(data: &[u8]) {
    if let Ok(db) = Db::from_bytes(data.to_vec()) {
        let _ = db.walk(&mut |_, _| Ok(()));
        let _ = db.last_key(b"key");
        let _ = crate::etcd::snapshot::trailer_present(db.file_size, &db.meta);
    }
    let piece = data.first().map_or(1, |b| usize::from(*b) * 37 + 1);
    let mut index = crate::etcd::stream_index::StreamIndex::default();
    for chunk in data.chunks(piece) {
        index.feed(chunk);
    }
    let _ = index.revision(data.len() as u64);
}

/// The three APF debug dumps.
pub fn apf_dumps(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::apf::dump::parse_priority_levels(text);
        let _ = crate::apf::dump::parse_queues(text);
        let _ = crate::apf::dump::parse_requests(text);
    }
}

/// Manifests: YAML streams (aliases, tags), then webhook configurations and their analysis.
pub fn webhooks(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let docs = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map(|d| vec![d]).ok()
    } else {
        crate::yaml::documents("fuzz input", text).ok()
    };
    if let Some(docs) = docs
        && let Ok(configs) = crate::webhooks::configs_from_documents(&docs, "fuzz input")
    {
        let _ = crate::webhooks::analyse(&configs, &crate::webhooks::ClusterFacts::offline());
    }
}

/// Kubeconfigs: kube's parser, then the context, cluster and user checks.
pub fn kubeconfig(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = kube::config::Kubeconfig::from_yaml(text) {
        let loaded = crate::kubeconfig::LoadedKubeconfig { config, files: vec![] };
        let _ = crate::kubeconfig::check_names(&loaded, None, None, None);
    }
}

/// A fuzz target: reads any bytes, and must return (errors are fine) without panicking.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("metrics", metrics),
    ("health", health),
    ("snapshot", snapshot),
    ("apf_dumps", apf_dumps),
    ("webhooks", webhooks),
    ("kubeconfig", kubeconfig),
];

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The files of a directory, recursively (none when it does not exist).
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() { pending.push(p) } else { out.push(p) }
            }
        }
        out.sort();
        out
    }

    /// Each target over its corpus, its regressions, and the fixtures of its kind.
    #[test]
    fn every_target_reads_its_corpus_without_panicking() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let fixtures = root.join("tests/fixtures");
        let seeds: &[(&str, &[&str])] = &[
            ("metrics", &["metrics-excerpts", "clusters"]),
            ("health", &["health"]),
            ("snapshot", &[]),
            ("apf_dumps", &["flowcontrol"]),
            ("webhooks", &["webhooks", "clusters"]),
            ("kubeconfig", &[]),
        ];
        for (name, target) in super::TARGETS {
            let mut inputs = files(&root.join("fuzz/corpus").join(name));
            inputs.extend(files(&root.join("fuzz/regressions").join(name)));
            for (n, dirs) in seeds {
                if n == name {
                    for d in *dirs {
                        inputs.extend(files(&fixtures.join(d)));
                    }
                }
            }
            assert!(!inputs.is_empty(), "{name}: no corpus");
            for input in inputs {
                let data = std::fs::read(&input).unwrap();
                target(&data);
                // Cut short, too: truncation is the commonest damage.
                target(&data[..data.len() / 2]);
            }
        }
    }
}
