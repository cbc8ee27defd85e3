//! Printing results: kubectl-like borderless tables, coloured statuses, and JSON/YAML documents
//! with a versioned `apiVersion`/`kind` so scripts can rely on their shape.

use clap::ValueEnum;
use owo_colors::{OwoColorize, Stream};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::exit::Status;

mod table;
mod width;
pub mod wrap;

/// `-o`: how results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// A kubectl-style table
    #[default]
    Table,
    /// The table with extra columns
    Wide,
    /// The full result as JSON (versioned apiVersion/kind)
    Json,
    /// The full result as YAML (versioned apiVersion/kind)
    Yaml,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorMode {
    /// Colour when stdout is a terminal and NO_COLOR is unset
    #[default]
    Auto,
    Always,
    Never,
}

pub use table::Table;
pub use width::text_width;

/// The `apiVersion` of every document the suite prints with `-o json|yaml`.
pub const API_VERSION: &str = "cpkit.dev/v1alpha1";

/// `--color` resolved: `always`/`never` win; `auto` colours only a terminal without `NO_COLOR`.
pub fn color_enabled(mode: ColorMode, no_color_env: bool, stdout_is_tty: bool) -> bool {
    match mode {
        ColorMode::Always => true,
        ColorMode::Never => false,
        ColorMode::Auto => stdout_is_tty && !no_color_env,
    }
}

/// A status word, coloured when colour is on.
pub fn status_text(status: Status) -> String {
    let text = status.as_str();
    match status {
        Status::Ok => text.if_supports_color(Stream::Stdout, |t| t.green()).to_string(),
        Status::Note => text.if_supports_color(Stream::Stdout, |t| t.cyan()).to_string(),
        Status::Warning => text.if_supports_color(Stream::Stdout, |t| t.yellow()).to_string(),
        Status::Critical => text.if_supports_color(Stream::Stdout, |t| t.red()).to_string(),
        Status::Unknown => text.if_supports_color(Stream::Stdout, |t| t.magenta()).to_string(),
        Status::Skipped => text.if_supports_color(Stream::Stdout, |t| t.dimmed()).to_string(),
    }
}

/// Bold text when colour is on (table titles, headers of sections).
pub fn bold(text: &str) -> String {
    text.if_supports_color(Stream::Stdout, |t| t.bold()).to_string()
}

/// Dimmed text when colour is on (evidence, hints).
pub fn dim(text: &str) -> String {
    text.if_supports_color(Stream::Stdout, |t| t.dimmed()).to_string()
}

#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// Renders `body` as a versioned document: `apiVersion: cpkit.dev/v1alpha1`, `kind: <kind>`,
/// then the body's fields.
pub fn render_document<T: Serialize>(kind: &str, body: &T, format: OutputFormat) -> Result<String> {
    let doc = Document { api_version: API_VERSION, kind, body };
    match format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&doc)
                .map_err(|e| Error::invalid_data("Cannot print the result as JSON", e.to_string()))?;
            text.push('\n');
            Ok(crate::redact::scrub(&text))
        }
        OutputFormat::Yaml => {
            // Through a JSON value, so YAML holds exactly the JSON data (serde_yaml would tag
            // enums); apiVersion and kind stay first.
            let body = serde_json::to_value(body)
                .map_err(|e| Error::invalid_data("Cannot print the result as YAML", e.to_string()))?;
            let mut ordered = serde_json::Map::new();
            ordered.insert("apiVersion".into(), API_VERSION.into());
            ordered.insert("kind".into(), kind.into());
            let mut text = crate::yaml::to_string(&serde_json::Value::Object(ordered))?;
            match body {
                serde_json::Value::Object(fields) if !fields.is_empty() => {
                    text.push_str(&crate::yaml::to_string(&fields)?);
                }
                serde_json::Value::Object(_) => {}
                other => text.push_str(&crate::yaml::to_string(&serde_json::json!({ "value": other }))?),
            }
            Ok(crate::redact::scrub(&text))
        }
        OutputFormat::Table | OutputFormat::Wide => Err(Error::usage(
            "render_document needs -o json or -o yaml",
            "This is a bug in the plugin; please report it.",
        )),
    }
}

/// Prints [`render_document`] to stdout.
pub fn print_document<T: Serialize>(kind: &str, body: &T, format: OutputFormat) -> Result<()> {
    let text = render_document(kind, body, format)?;
    write_stdout(&text)
}

/// Writes to stdout, scrubbed of this run's secrets (`redact::remember`); a closed pipe
/// (`| head`) ends quietly instead of panicking like `print!`.
pub fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let text = crate::redact::scrub(text);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::io("Cannot write to stdout", &e)),
    }
}

/// Formats a byte count: `512 B`, `1.5 KiB`, `2.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn color_rules() {
        assert!(color_enabled(ColorMode::Always, true, false));
        assert!(!color_enabled(ColorMode::Never, false, true));
        assert!(color_enabled(ColorMode::Auto, false, true));
        assert!(!color_enabled(ColorMode::Auto, true, true), "NO_COLOR wins in auto mode");
        assert!(!color_enabled(ColorMode::Auto, false, false), "no colour in a pipe");
    }

    #[test]
    fn documents_are_versioned() {
        #[derive(Serialize)]
        struct Body {
            verdict: &'static str,
        }
        let json = render_document("HealthReport", &Body { verdict: "OK" }, OutputFormat::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["kind"], "HealthReport");
        assert_eq!(v["verdict"], "OK");
        let yaml = render_document("HealthReport", &Body { verdict: "OK" }, OutputFormat::Yaml).unwrap();
        assert!(yaml.starts_with("apiVersion: cpkit.dev/v1alpha1\nkind: HealthReport\nverdict: OK\n"), "{yaml}");
        // Enums are plain data in YAML, as in JSON (no `!Variant` tags).
        #[derive(Serialize)]
        enum Target {
            Url(String),
        }
        #[derive(Serialize)]
        struct WithEnum {
            action: Target,
        }
        let yaml =
            render_document("X", &WithEnum { action: Target::Url("https://a".into()) }, OutputFormat::Yaml).unwrap();
        assert_eq!(yaml, "apiVersion: cpkit.dev/v1alpha1\nkind: X\naction:\n  Url: https://a\n");
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(2 * 1024 * 1024 * 1024), "2.0 GiB");
    }
}
