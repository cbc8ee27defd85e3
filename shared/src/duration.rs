//! Durations the way kubectl reads and prints them.
//!
//! Parsing follows Go's `time.ParseDuration` (which kubectl uses for `--request-timeout`), plus
//! kubectl's extra rule that a bare integer means seconds. Printing follows apimachinery's
//! `duration.HumanDuration`, the AGE column of `kubectl get`.

use std::time::Duration;

/// Error for a duration that Go's `time.ParseDuration` would also reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (use a number with a unit, e.g. 500ms, 5s, 1m30s, 2h, 7d)")]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

fn err(input: &str, reason: &'static str) -> ParseDurationError {
    ParseDurationError { input: input.to_string(), reason }
}

/// Parses `5s`, `1m30s`, `1.5h`, `300ms`, `7d`, `0`, or a bare integer number of seconds (`10`).
/// Negative durations are rejected: no flag of ours has a meaning for them.
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(err(input, "empty value"));
    }
    if let Some(rest) = s.strip_prefix('-') {
        if rest.chars().all(|c| c == '0' || c == '.') {
            return Ok(Duration::ZERO);
        }
        return Err(err(input, "negative durations are not allowed"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| err(input, "number too large"))?;
        return Ok(Duration::from_secs(secs));
    }
    let mut total_nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        if number_len == 0 {
            return Err(err(input, "expected a number"));
        }
        let (number, after) = rest.split_at(number_len);
        if number == "." || number.matches('.').count() > 1 {
            return Err(err(input, "malformed number"));
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after_unit) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            // Days, for retention (`--older-than 7d`).
            "d" => 86_400_000_000_000,
            "" => return Err(err(input, "missing unit")),
            _ => return Err(err(input, "unknown unit")),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 =
            if whole.is_empty() { 0 } else { whole.parse().map_err(|_| err(input, "number too large"))? };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(|| err(input, "duration too large"))?;
        if !frac.is_empty() {
            let digits = frac.len().min(18) as u32;
            let frac_value: u128 = frac[..digits as usize].parse().map_err(|_| err(input, "malformed fraction"))?;
            nanos += frac_value * unit_nanos / 10u128.pow(digits);
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(|| err(input, "duration too large"))?;
        rest = after_unit;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| err(input, "duration too large"))?;
    Ok(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
}

/// A `--request-timeout` style value: `0` means "no timeout".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

impl std::str::FromStr for Timeout {
    type Err = ParseDurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = parse_duration(s)?;
        Ok(Timeout(if d.is_zero() { None } else { Some(d) }))
    }
}

/// Clap value parser for duration flags (`--sample 2s`, `--interval 10s`).
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Clap value parser for durations that must not be zero.
pub fn positive_duration_arg(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d.is_zero() => Err(format!("{s:?} must be greater than zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// Formats an age like kubectl's AGE column: `45s`, `3m20s`, `12m`, `5h3m`, `3d4h`, `40d`, `2y10d`.
pub fn human_duration(d: Duration) -> String {
    human_duration_signed(d.as_secs() as i64)
}

/// Like [`human_duration`] for a signed number of seconds; kubectl tolerates one second of clock
/// skew (`0s`) and prints `<invalid>` beyond that.
pub fn human_duration_signed(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

/// Age of a timestamp relative to `now`, kubectl style.
pub fn age(since: jiff::Timestamp, now: jiff::Timestamp) -> String {
    human_duration_signed(now.as_second() - since.as_second())
}

/// Short human form for latencies: `850µs`, `12ms`, `1.25s`.
pub fn short_latency(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{}ms", micros / 1_000)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// A time limit as it was given: `3s` for whole seconds (not `3.00s`), else as a latency.
pub fn short_limit(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { short_latency(d) }
}

/// Latency given as seconds (from a histogram), printed with [`short_latency`].
pub fn short_latency_secs(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_string();
    }
    short_latency(Duration::from_secs_f64(seconds))
}

/// Formats a timestamp for messages: `2026-11-20 10:00 UTC`.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// "3d ago" / "in 12d", relative to `now`.
pub fn relative_time(t: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    if secs < 0 {
        format!("{} ago", human_duration_signed(-secs))
    } else {
        format!("in {}", human_duration_signed(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("2us").unwrap(), Duration::from_micros(2));
        assert_eq!(parse_duration("2µs").unwrap(), Duration::from_micros(2));
        assert_eq!(parse_duration("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse_duration(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h2m3.25s").unwrap(), Duration::from_millis(3_723_250));
    }

    #[test]
    fn bare_integers_are_seconds_like_kubectl() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!("0".parse::<Timeout>().unwrap(), Timeout(None));
        assert_eq!("0s".parse::<Timeout>().unwrap(), Timeout(None));
        assert_eq!("5s".parse::<Timeout>().unwrap(), Timeout(Some(Duration::from_secs(5))));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "s", "5", "5x", "1.2.3s", "abc", "-5s", "5 s", "."] {
            if bad == "5" {
                continue; // bare integer: kubectl accepts it as seconds
            }
            let e = parse_duration(bad).unwrap_err();
            assert!(e.to_string().contains("invalid duration"), "{bad}: {e}");
        }
        assert!(positive_duration_arg("0s").is_err());
        assert!(positive_duration_arg("2s").is_ok());
    }

    #[test]
    fn human_duration_matches_kubectl() {
        let cases: &[(i64, &str)] = &[
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (12 * 60 + 30, "12m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 3 * 60, "5h3m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (8 * 86400, "8d"),
            (400 * 86400, "400d"),
            (2 * 365 * 86400 + 10 * 86400, "2y10d"),
            (3 * 365 * 86400, "3y"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration_signed(*secs), *want, "{secs}s");
        }
    }

    #[test]
    fn short_latencies() {
        assert_eq!(short_latency(Duration::from_micros(850)), "850µs");
        assert_eq!(short_latency(Duration::from_millis(12)), "12ms");
        assert_eq!(short_latency(Duration::from_millis(1250)), "1.25s");
        assert_eq!(short_latency_secs(f64::NAN), "-");
        // A limit reads as it was given.
        assert_eq!(short_limit(Duration::from_secs(3)), "3s");
        assert_eq!(short_limit(Duration::from_millis(2500)), "2.50s");
    }

    #[test]
    fn times_for_messages_relative_to_the_clock_given() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let earlier = jiff::Timestamp::from_second(1_800_000_000 - 3 * 86_400).unwrap();
        let later = jiff::Timestamp::from_second(1_800_000_000 + 12 * 86_400).unwrap();
        assert_eq!(format_time(earlier), "2027-01-12 08:00 UTC");
        assert_eq!(relative_time(earlier, now), "3d ago");
        assert_eq!(relative_time(later, now), "in 12d");
    }
}
