// Empty: a package's build-dependencies take part in feature resolution only when it has a build
// script, and the host-side features (syn's, for the derive macros) are unified through them.
fn main() {}
