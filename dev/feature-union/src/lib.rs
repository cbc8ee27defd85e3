//! No code: see Cargo.toml. Plugins depend on this crate so that building one alone resolves the
//! same dependency features as the workspace build.
