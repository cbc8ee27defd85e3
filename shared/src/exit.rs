//! Exit codes: the monitoring-plugin convention (Nagios, Icinga, Sensu) plus 64 for usage errors.

use serde::Serialize;

/// The verdict of a check, ordered from best to worst so that `max` gives the overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    /// Worth knowing, not a fault (a single control-plane node, a replica alive by its identity
    /// lease but not reachable from here). It never raises the exit code.
    Note,
    /// A check that did not run, with its reason (managed control plane, missing permission).
    /// It never raises the exit code.
    Skipped,
    Warning,
    Unknown,
    Critical,
}

impl Status {
    /// CRITICAL when `critical` holds, else WARNING when `warning` does, else OK: one threshold
    /// pair read the same everywhere (`Status::grade(p99 > 5.0, p99 > 1.0)`).
    pub fn grade(critical: bool, warning: bool) -> Status {
        if critical {
            Status::Critical
        } else if warning {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Note => "NOTE",
            Status::Skipped => "SKIPPED",
            Status::Warning => "WARNING",
            Status::Unknown => "UNKNOWN",
            Status::Critical => "CRITICAL",
        }
    }

    /// The monitoring-plugin exit code of this verdict.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok | Status::Note | Status::Skipped => EXIT_OK,
            Status::Warning => EXIT_WARNING,
            Status::Critical => EXIT_CRITICAL,
            Status::Unknown => EXIT_UNKNOWN,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const EXIT_OK: i32 = 0;
pub const EXIT_WARNING: i32 = 1;
pub const EXIT_CRITICAL: i32 = 2;
pub const EXIT_UNKNOWN: i32 = 3;
/// BSD `EX_USAGE`: the command line was wrong.
pub const EXIT_USAGE: i32 = 64;
/// Interrupted by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// `--fail-on warning|critical`: the lowest verdict that makes the command exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FailOn {
    /// Exit non-zero on WARNING, UNKNOWN and CRITICAL (the monitoring-plugin default).
    #[default]
    Warning,
    /// Exit non-zero only on CRITICAL (and UNKNOWN); warnings exit 0.
    Critical,
}

impl FailOn {
    /// The exit code for an overall verdict under this policy.
    pub fn exit_code(self, overall: Status) -> i32 {
        match (self, overall) {
            (FailOn::Critical, Status::Warning) => EXIT_OK,
            (_, s) => s.exit_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins() {
        let all = [Status::Ok, Status::Skipped, Status::Warning, Status::Critical, Status::Unknown];
        assert_eq!(all.iter().copied().max(), Some(Status::Critical));
        assert_eq!([Status::Ok, Status::Skipped].iter().copied().max(), Some(Status::Skipped));
        assert_eq!(Status::Skipped.exit_code(), 0);
    }

    #[test]
    fn fail_on_critical_hides_warnings_only() {
        assert_eq!(FailOn::Critical.exit_code(Status::Warning), 0);
        assert_eq!(FailOn::Critical.exit_code(Status::Critical), 2);
        assert_eq!(FailOn::Critical.exit_code(Status::Unknown), 3);
        assert_eq!(FailOn::Warning.exit_code(Status::Warning), 1);
    }
}
