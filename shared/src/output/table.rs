//! kubectl-style tables that fit the terminal: upper-case headers, three spaces between
//! columns, no borders. When a table is wider than the terminal it first drops the columns
//! marked droppable (in the order given), then narrows the flexible columns (a wrapped column
//! breaks its cells between words onto more lines, a shortened one cuts them with `…`), and
//! only then the others. `-o wide` shows every column whole.

use super::wrap::{display_width, shorten, wrap_words};

const GAP: usize = 3;
/// A flexible column is not narrowed below this (or its header, when shorter).
const FLEX_MIN: usize = 12;
/// Droppable columns go while a flexible column would be narrower than this.
const FLEX_COMFORT: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Narrowed only when nothing else is left to narrow.
    Keep,
    /// Narrowed first; cells are cut with `…`.
    Shorten,
    /// Narrowed first; cells break between words onto more lines.
    Wrap,
}

#[derive(Debug, Clone)]
struct Column {
    header: String,
    wide_only: bool,
    fit: Fit,
    /// Position in the drop order (lower goes first), when the column may be dropped.
    drop_rank: Option<usize>,
}

/// A table; see the module documentation for how it fits the terminal.
#[derive(Debug, Clone, Default)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose last column wraps when the table is too wide.
    pub fn new(headers: &[&str]) -> Self {
        let mut columns: Vec<Column> = headers
            .iter()
            .map(|h| Column { header: h.to_uppercase(), wide_only: false, fit: Fit::Keep, drop_rank: None })
            .collect();
        if let Some(last) = columns.last_mut() {
            last.fit = Fit::Wrap;
        }
        Table { columns, rows: Vec::new() }
    }

    /// Adds columns shown only with `-o wide`.
    pub fn wide_columns(mut self, headers: &[&str]) -> Self {
        self.columns.extend(headers.iter().map(|h| Column {
            header: h.to_uppercase(),
            wide_only: true,
            fit: Fit::Wrap,
            drop_rank: None,
        }));
        self
    }

    /// These columns are left out, first to last, while the table is wider than the terminal.
    pub fn droppable(mut self, headers: &[&str]) -> Self {
        for (rank, h) in headers.iter().enumerate() {
            if let Some(c) = self.column_mut(h) {
                c.drop_rank = Some(rank);
            }
        }
        self
    }

    /// These columns are cut with `…` (instead of wrapped) when the table is too wide.
    pub fn shorten(mut self, headers: &[&str]) -> Self {
        self.set_fit(headers, Fit::Shorten);
        self
    }

    /// These columns break between words onto more lines when the table is too wide.
    pub fn wrap(mut self, headers: &[&str]) -> Self {
        self.set_fit(headers, Fit::Wrap);
        self
    }

    /// These columns are narrowed only when nothing else is left to narrow.
    pub fn keep(mut self, headers: &[&str]) -> Self {
        self.set_fit(headers, Fit::Keep);
        self
    }

    fn set_fit(&mut self, headers: &[&str], fit: Fit) {
        for h in headers {
            if let Some(c) = self.column_mut(h) {
                c.fit = fit;
            }
        }
    }

    fn column_mut(&mut self, header: &str) -> Option<&mut Column> {
        let header = header.to_uppercase();
        self.columns.iter_mut().find(|c| c.header == header)
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(|c| c.into().replace('\n', " ")).collect();
        row.resize(self.columns.len(), String::new());
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Renders the table for this terminal (`-o wide`: every column, whole), with a trailing
    /// newline; an empty string when there are no rows.
    pub fn render(&self, wide: bool, no_headers: bool) -> String {
        self.render_to(super::width::text_width(wide), wide, no_headers)
    }

    /// Renders the table fitted to `width` (`None`: not fitted).
    pub fn render_to(&self, width: Option<usize>, wide: bool, no_headers: bool) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let mut keep: Vec<usize> = (0..self.columns.len()).filter(|&i| wide || !self.columns[i].wide_only).collect();
        let natural: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                let cells = self.rows.iter().map(|r| display_width(&r[i])).max().unwrap_or(0);
                if no_headers { cells } else { cells.max(self.columns[i].header.len()) }
            })
            .collect();
        let total = |cols: &[usize], widths: &dyn Fn(usize) -> usize| -> usize {
            cols.iter().map(|&i| widths(i)).sum::<usize>() + GAP * cols.len().saturating_sub(1)
        };
        let mut widths = natural.clone();
        if let Some(limit) = width {
            let mut droppable: Vec<usize> =
                keep.iter().copied().filter(|&i| self.columns[i].drop_rank.is_some()).collect();
            droppable.sort_by_key(|&i| self.columns[i].drop_rank);
            // A column is dropped only while the flexible ones could not keep a readable width.
            let squeezed = |c: usize| {
                if self.columns[c].fit == Fit::Keep { widths[c] } else { widths[c].min(FLEX_COMFORT) }
            };
            for i in droppable {
                if total(&keep, &squeezed) <= limit || keep.len() == 1 {
                    break;
                }
                keep.retain(|&c| c != i);
            }
            let over = total(&keep, &|c| widths[c]).saturating_sub(limit);
            if over > 0 {
                let flexible: Vec<usize> = keep.iter().copied().filter(|&i| self.columns[i].fit != Fit::Keep).collect();
                let floor = |i: usize| FLEX_MIN.min(natural[i]);
                let left = narrow(&mut widths, &flexible, over, &floor);
                // Still too wide: every column gives way, down to a few characters.
                narrow(&mut widths, &keep, left, &|i| 4.min(natural[i]));
            }
        }
        let last = keep.len().saturating_sub(1);
        let mut lines: Vec<String> = Vec::new();
        if !no_headers {
            let cells: Vec<Vec<String>> =
                keep.iter().map(|&i| vec![shorten(&self.columns[i].header, widths[i])]).collect();
            push_row(&mut lines, &cells, &keep, &widths, last);
        }
        for row in &self.rows {
            let cells: Vec<Vec<String>> = keep
                .iter()
                .map(|&i| {
                    let w = widths[i];
                    let cell = &row[i];
                    if display_width(cell) <= w {
                        vec![cell.clone()]
                    } else if self.columns[i].fit == Fit::Wrap {
                        wrap_words(cell, w)
                    } else {
                        vec![shorten(cell, w)]
                    }
                })
                .collect();
            push_row(&mut lines, &cells, &keep, &widths, last);
        }
        let mut text = lines.join("\n");
        text.push('\n');
        crate::redact::scrub(&text)
    }
}

/// Takes `over` columns off `cols`, widest first, none below its floor; returns what is left.
fn narrow(widths: &mut [usize], cols: &[usize], mut over: usize, floor: &dyn Fn(usize) -> usize) -> usize {
    while over > 0 {
        let Some(&widest) = cols.iter().filter(|&&i| widths[i] > floor(i)).max_by_key(|&&i| widths[i]) else {
            break;
        };
        widths[widest] -= 1;
        over -= 1;
    }
    over
}

/// One row, over as many lines as its tallest (wrapped) cell; the last column is not padded.
fn push_row(lines: &mut Vec<String>, cells: &[Vec<String>], keep: &[usize], widths: &[usize], last: usize) {
    let height = cells.iter().map(Vec::len).max().unwrap_or(1);
    for line_no in 0..height {
        let mut line = String::new();
        for (pos, (&i, cell)) in keep.iter().zip(cells).enumerate() {
            let text = cell.get(line_no).map(String::as_str).unwrap_or("");
            line.push_str(text);
            if pos != last {
                line.push_str(&" ".repeat(widths[i].saturating_sub(display_width(text)) + GAP));
            }
        }
        lines.push(line.trim_end().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_look_like_kubectl() {
        let mut t = Table::new(&["name", "status"]).wide_columns(&["node"]);
        t.row(["etcd-cp1", "Running", "cp1"]);
        t.row(["kube-apiserver-cp1", "CrashLoopBackOff", "cp1"]);
        let narrow = t.render_to(None, false, false);
        assert_eq!(
            narrow,
            "NAME                 STATUS\netcd-cp1             Running\nkube-apiserver-cp1   CrashLoopBackOff\n"
        );
        let wide = t.render_to(None, true, true);
        assert_eq!(wide, "etcd-cp1             Running            cp1\nkube-apiserver-cp1   CrashLoopBackOff   cp1\n");
        assert_eq!(Table::new(&["a"]).render_to(Some(80), false, false), "");
    }

    fn longest(text: &str) -> usize {
        text.lines().map(display_width).max().unwrap_or(0)
    }

    #[test]
    fn a_wide_table_drops_then_narrows_then_wraps() {
        let mut t = Table::new(&["name", "rate", "detail", "message"]).droppable(&["detail"]).shorten(&["name"]);
        t.row([
            "a-very-long-flow-schema-name-that-goes-on",
            "12.5",
            "detail detail detail",
            "the webhook validate.pod.com refuses every pod in kube-system",
        ]);
        let full = t.render_to(None, false, false);
        assert!(full.contains("DETAIL"));
        let fitted = t.render_to(Some(60), false, false);
        assert!(longest(&fitted) <= 60, "{fitted}");
        assert!(!fitted.contains("DETAIL"), "the droppable column goes first:\n{fitted}");
        assert!(fitted.contains('…'), "the shortened column is cut:\n{fitted}");
        // The wrapped message keeps every word, each whole.
        let words: Vec<&str> = fitted.lines().skip(1).flat_map(|l| l.split_whitespace()).collect();
        for w in ["validate.pod.com", "refuses", "kube-system"] {
            assert!(words.contains(&w), "{w} in\n{fitted}");
        }
        assert!(fitted.lines().count() > 2, "the message wrapped onto more lines:\n{fitted}");
        // Coloured cells count by what the terminal shows.
        let mut c = Table::new(&["status", "message"]);
        c.row(["\x1b[31mCRITICAL\x1b[39m", "x"]);
        assert_eq!(c.render_to(Some(40), false, true), "\x1b[31mCRITICAL\x1b[39m   x\n");
    }

    #[test]
    fn nothing_exceeds_the_width_even_with_no_flexible_room() {
        let mut t = Table::new(&["a", "b", "c"]).keep(&["c"]);
        t.row(["x".repeat(50), "y".repeat(50), "z".repeat(50)]);
        let fitted = t.render_to(Some(80), false, false);
        assert!(longest(&fitted) <= 80, "{fitted}");
    }
}
