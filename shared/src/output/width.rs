//! How wide the user's terminal is, as kubectl and `ls` decide it: `COLUMNS` first, then the
//! terminal behind stdout; a pipe without `COLUMNS` has no width (scripts get whole lines).

/// Columns below which nothing is fitted any more: narrower than this, tables would be noise.
pub const MIN_WIDTH: usize = 40;

/// The width text is fitted to, or `None` for "do not fit" (`-o wide`, or a pipe without
/// `COLUMNS`).
pub fn text_width(wide: bool) -> Option<usize> {
    if wide {
        return None;
    }
    let columns = std::env::var("COLUMNS").ok();
    width_from(columns.as_deref(), stdout_terminal_columns())
}

/// `COLUMNS` wins when it is a number; otherwise the terminal's size.
pub fn width_from(columns_env: Option<&str>, terminal: Option<usize>) -> Option<usize> {
    let from_env = columns_env.and_then(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 0);
    from_env.or(terminal).map(|w| w.max(MIN_WIDTH))
}

#[cfg(unix)]
fn stdout_terminal_columns() -> Option<usize> {
    // SAFETY: winsize is plain data, for which all-zero bytes are a valid value.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ only writes a winsize into the struct we pass; on a non-terminal it fails.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_col > 0).then_some(size.ws_col as usize)
}

#[cfg(not(unix))]
fn stdout_terminal_columns() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_then_terminal_then_unbounded() {
        assert_eq!(width_from(Some("100"), Some(80)), Some(100));
        assert_eq!(width_from(Some("junk"), Some(80)), Some(80));
        assert_eq!(width_from(Some("0"), None), None);
        assert_eq!(width_from(None, None), None, "a pipe without COLUMNS is not fitted");
        assert_eq!(width_from(Some("10"), None), Some(MIN_WIDTH));
    }
}
