//! A streaming, zero-copy parser of the Prometheus text exposition format (version 0.0.4).
//!
//! Lines are found with `memchr`, sample names and label blocks are borrowed slices of the
//! input, label values are unescaped only when asked for. Nothing is allocated per sample.
//! Malformed lines are skipped and counted (a diagnostic tool should read what it can of a
//! damaged scrape), the first one is reported with its line number.

use std::borrow::Cow;

/// The `# TYPE` of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl MetricType {
    fn parse(word: &str) -> MetricType {
        match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            _ => MetricType::Untyped,
        }
    }
}

/// One parsed line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// `# HELP <family> <text>` (text still escaped: `\\` and `\n`).
    Help {
        family: &'a str,
        text: &'a str,
    },
    /// `# TYPE <family> <type>`.
    Type {
        family: &'a str,
        kind: MetricType,
    },
    Sample(Sample<'a>),
}

/// A sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Labels<'a>,
    pub value: f64,
    /// Milliseconds since the epoch, when the exposition gives one.
    pub timestamp_ms: Option<i64>,
}

/// The text between `{` and `}` of a sample, parsed lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Labels<'a> {
    raw: &'a str,
}

impl<'a> Labels<'a> {
    pub fn new(raw: &'a str) -> Self {
        Labels { raw }
    }

    pub fn raw(&self) -> &'a str {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.trim().is_empty()
    }

    /// The value of label `name`, unescaped.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// True when label `name` has exactly `value` (no allocation unless the value is escaped).
    pub fn is(&self, name: &str, value: &str) -> bool {
        self.get(name).is_some_and(|v| v == value)
    }

    /// The label pairs in order, values unescaped. Stops at the first malformed pair.
    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter { rest: self.raw }
    }
}

/// Iterator over `name="value"` pairs.
pub struct LabelIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let body = after.strip_prefix('"')?;
        let bytes = body.as_bytes();
        let mut i = 0;
        let mut escaped = false;
        loop {
            let pos = memchr::memchr2(b'"', b'\\', &bytes[i..])? + i;
            if bytes[pos] == b'\\' {
                escaped = true;
                i = pos + 2;
                if i > bytes.len() {
                    return None;
                }
                continue;
            }
            let raw_value = &body[..pos];
            self.rest = &body[pos + 1..];
            let value = if escaped { Cow::Owned(unescape(raw_value)) } else { Cow::Borrowed(raw_value) };
            return Some((name, value));
        }
    }
}

/// Undoes the exposition format's escapes: `\\`, `\"`, `\n`.
pub fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Counts of a parse, with the first problem found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ParseStats {
    pub lines: usize,
    pub samples: usize,
    pub malformed: usize,
    /// `(line number, reason)` of the first malformed line.
    pub first_error: Option<(usize, String)>,
}

impl ParseStats {
    fn malformed(&mut self, line_no: usize, reason: &str) {
        self.malformed += 1;
        if self.first_error.is_none() {
            self.first_error = Some((line_no, reason.to_string()));
        }
    }
}

/// Parses one line (without its newline). `Ok(None)` for blank lines and plain comments.
pub fn parse_line(line: &str) -> Result<Option<Event<'_>>, &'static str> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let trimmed = line.trim_start();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if let Some(comment) = trimmed.strip_prefix('#') {
        return Ok(parse_comment(comment));
    }
    parse_sample(trimmed).map(|s| Some(Event::Sample(s)))
}

fn parse_comment(comment: &str) -> Option<Event<'_>> {
    let comment = comment.trim_start();
    let (keyword, rest) = comment.split_once([' ', '\t'])?;
    let rest = rest.trim_start();
    match keyword {
        "HELP" => {
            let (family, text) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
            Some(Event::Help { family, text: text.trim_start() })
        }
        "TYPE" => {
            let (family, kind) = rest.split_once([' ', '\t'])?;
            Some(Event::Type { family, kind: MetricType::parse(kind.trim()) })
        }
        _ => None,
    }
}

fn parse_sample(line: &str) -> Result<Sample<'_>, &'static str> {
    let bytes = line.as_bytes();
    let name_end = memchr::memchr3(b'{', b' ', b'\t', bytes).unwrap_or(bytes.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("sample without a metric name");
    }
    let (labels, after) = if bytes.get(name_end) == Some(&b'{') {
        let close = find_label_block_end(&bytes[name_end + 1..]).ok_or("unterminated label block")?;
        let raw = &line[name_end + 1..name_end + 1 + close];
        (Labels::new(raw), &line[name_end + 1 + close + 1..])
    } else {
        (Labels::default(), &line[name_end..])
    };
    let after = after.trim_start();
    let value_end = after.find([' ', '\t']).unwrap_or(after.len());
    let value = parse_value(&after[..value_end]).ok_or("invalid sample value")?;
    let rest = after[value_end..].trim();
    let timestamp_ms = if rest.is_empty() { None } else { Some(rest.parse::<i64>().map_err(|_| "invalid timestamp")?) };
    Ok(Sample { name, labels, value, timestamp_ms })
}

/// Position of the `}` closing a label block, skipping quoted values (which may hold `}`).
fn find_label_block_end(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let pos = memchr::memchr2(b'}', b'"', &bytes[i..])? + i;
        if bytes[pos] == b'}' {
            return Some(pos);
        }
        // Inside a quoted value: skip to its closing quote, honouring backslash escapes.
        let mut j = pos + 1;
        loop {
            let q = memchr::memchr2(b'"', b'\\', &bytes[j..])? + j;
            if bytes[q] == b'\\' {
                j = q + 2;
                if j > bytes.len() {
                    return None;
                }
            } else {
                i = q + 1;
                break;
            }
        }
    }
}

/// Parses a sample value: a float, `+Inf`, `-Inf` or `NaN`.
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        "" => None,
        _ => text.parse::<f64>().ok(),
    }
}

/// Parses a whole exposition held in memory.
pub fn parse<'a>(text: &'a str, mut visit: impl FnMut(Event<'a>)) -> ParseStats {
    let mut stats = ParseStats::default();
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[start..]).map(|p| p + start).unwrap_or(bytes.len());
        stats.lines += 1;
        handle_line(&text[start..end], stats.lines, &mut stats, &mut visit);
        start = end + 1;
    }
    stats
}

fn handle_line<'a>(line: &'a str, line_no: usize, stats: &mut ParseStats, visit: &mut impl FnMut(Event<'a>)) {
    match parse_line(line) {
        Ok(Some(event)) => {
            if matches!(event, Event::Sample(_)) {
                stats.samples += 1;
            }
            visit(event);
        }
        Ok(None) => {}
        Err(reason) => stats.malformed(line_no, reason),
    }
}

/// Parses bytes held in memory. Invalid UTF-8 (not allowed by the format) is parsed from a
/// lossy copy through [`StreamParser`], so events then live only for the call of `visit`.
pub fn parse_bytes(bytes: &[u8], visit: &mut dyn FnMut(Event<'_>)) -> ParseStats {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, visit),
        Err(_) => {
            let mut parser = StreamParser::default();
            parser.feed(bytes, visit);
            parser.finish(visit)
        }
    }
}

/// Feeds a body chunk by chunk (as it arrives from the network) without buffering the whole
/// scrape: complete lines are parsed in place, only a line cut by a chunk boundary is copied.
#[derive(Debug, Default)]
pub struct StreamParser {
    carry: Vec<u8>,
    stats: ParseStats,
}

impl StreamParser {
    /// Parses the complete lines now available; events borrow `chunk` only for the call.
    pub fn feed(&mut self, mut chunk: &[u8], visit: &mut dyn FnMut(Event<'_>)) {
        if !self.carry.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(nl) => {
                    self.carry.extend_from_slice(&chunk[..nl]);
                    chunk = &chunk[nl + 1..];
                    let carried = std::mem::take(&mut self.carry);
                    self.parse_complete(&carried, visit);
                }
                None => {
                    self.carry.extend_from_slice(chunk);
                    return;
                }
            }
        }
        let last_nl = match memchr::memrchr(b'\n', chunk) {
            Some(p) => p,
            None => {
                self.carry.extend_from_slice(chunk);
                return;
            }
        };
        self.parse_complete(&chunk[..last_nl], visit);
        self.carry.extend_from_slice(&chunk[last_nl + 1..]);
    }

    fn parse_complete(&mut self, lines: &[u8], visit: &mut dyn FnMut(Event<'_>)) {
        let text = String::from_utf8_lossy(lines);
        let bytes = text.as_bytes();
        let mut start = 0;
        while start <= bytes.len() {
            let end = memchr::memchr(b'\n', &bytes[start..]).map(|p| p + start).unwrap_or(bytes.len());
            self.stats.lines += 1;
            let line_no = self.stats.lines;
            let mut forward = |e: Event<'_>| visit(e);
            handle_line(&text[start..end], line_no, &mut self.stats, &mut forward);
            start = end + 1;
        }
    }

    /// Parses a last line without a newline and returns the counts.
    pub fn finish(mut self, visit: &mut dyn FnMut(Event<'_>)) -> ParseStats {
        if !self.carry.is_empty() {
            let carried = std::mem::take(&mut self.carry);
            self.parse_complete(&carried, visit);
        }
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Vec<(String, Vec<(String, String)>, f64)>;

    fn samples(text: &str) -> Parsed {
        let mut out = Vec::new();
        parse(text, |e| {
            if let Event::Sample(s) = e {
                out.push((
                    s.name.to_string(),
                    s.labels.iter().map(|(k, v)| (k.to_string(), v.into_owned())).collect(),
                    s.value,
                ));
            }
        });
        out
    }

    #[test]
    fn parses_help_type_and_samples() {
        let text = "# HELP http_requests_total The total number of HTTP requests.\n\
                    # TYPE http_requests_total counter\n\
                    http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                    http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n";
        let mut events = Vec::new();
        let stats = parse(text, |e| events.push(format!("{e:?}")));
        assert_eq!(stats.samples, 2);
        assert_eq!(stats.malformed, 0);
        assert!(
            events[0]
                .contains("Help { family: \"http_requests_total\", text: \"The total number of HTTP requests.\" }")
        );
        assert!(events[1].contains("Type { family: \"http_requests_total\", kind: Counter }"));
        let s = samples(text);
        assert_eq!(s[1].2, 3.0);
        assert_eq!(s[0].1, vec![("method".into(), "post".into()), ("code".into(), "200".into())]);
    }

    #[test]
    fn escaped_label_values_and_braces_inside_quotes() {
        let text = r#"msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
weird{a="x}y",b="}"} 1
"#;
        let s = samples(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].1[0].1, r"C:\DIR\FILE.TXT");
        assert_eq!(s[0].1[1].1, "Cannot find file:\n\"FILE.TXT\"");
        assert_eq!(s[0].2, 1.458255915e9);
        assert_eq!(s[1].1, vec![("a".into(), "x}y".into()), ("b".into(), "}".into())]);
    }

    #[test]
    fn special_values_and_timestamps() {
        let text = "a +Inf\nb -Inf\nc NaN\nd 1e-3 -1000\ne{le=\"+Inf\"} 7\n";
        let s = samples(text);
        assert_eq!(s[0].2, f64::INFINITY);
        assert_eq!(s[1].2, f64::NEG_INFINITY);
        assert!(s[2].2.is_nan());
        assert_eq!(s[3].2, 0.001);
        assert_eq!(s[4].1[0].1, "+Inf");
        let mut ts = None;
        parse("d 1 -1000\n", |e| {
            if let Event::Sample(s) = e {
                ts = s.timestamp_ms;
            }
        });
        assert_eq!(ts, Some(-1000));
    }

    #[test]
    fn malformed_lines_are_skipped_and_reported() {
        let text = "ok 1\nbroken{a=\"x\" 1\nnovalue\nbad xyz\nalso_ok{} 2\n";
        let s = samples(text);
        assert_eq!(s.len(), 2);
        let stats = parse(text, |_| {});
        assert_eq!(stats.malformed, 3);
        assert_eq!(stats.first_error.as_ref().map(|e| e.0), Some(2));
    }

    #[test]
    fn trailing_commas_spaces_and_crlf() {
        let s = samples("m{a=\"1\", b=\"2\",} 3\r\n");
        assert_eq!(s[0].1, vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(s[0].2, 3.0);
    }

    #[test]
    fn label_lookup() {
        let labels = Labels::new(r#"verb="LIST",resource="pods",code="200""#);
        assert_eq!(labels.get("resource").as_deref(), Some("pods"));
        assert!(labels.is("verb", "LIST"));
        assert!(!labels.is("verb", "GET"));
        assert!(labels.get("missing").is_none());
    }

    #[test]
    fn stream_parser_matches_whole_parse_at_every_split() {
        let text = "# TYPE x counter\nx{a=\"1\"} 1\nx{a=\"2\"} 2\ny 3";
        let whole = samples(text);
        for split in 0..text.len() {
            let mut p = StreamParser::default();
            let mut got = Vec::new();
            let mut visit = |e: Event<'_>| {
                if let Event::Sample(s) = e {
                    got.push((s.name.to_string(), s.value));
                }
            };
            p.feed(&text.as_bytes()[..split], &mut visit);
            p.feed(&text.as_bytes()[split..], &mut visit);
            let stats = p.finish(&mut visit);
            assert_eq!(got.len(), whole.len(), "split at {split}");
            assert_eq!(stats.samples, 3);
            assert_eq!(got[2], ("y".to_string(), 3.0));
        }
    }
}
