//! The repository's test inputs, read by unit tests by their path from its root
//! (`tests/fixtures/…`, real-world inputs written outside this project; `fuzz/corpus/…`).

/// The bytes of `relative`; a missing file fails the test with its path.
pub fn bytes(relative: &str) -> Vec<u8> {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text of `relative`.
pub fn text(relative: &str) -> String {
    String::from_utf8(bytes(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}
