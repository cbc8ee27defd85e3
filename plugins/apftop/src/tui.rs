//! The live view: a header with the totals, tabs for the three views, a sortable and filterable
//! table, and a key line. Drawing is a pure function of `App` (tested on ratatui's TestBackend);
//! the loop feeds it snapshots from a sampling task and key events from the terminal.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cpkit::error::{Error, Result};
use cpkit::exit::Status;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::StreamExt;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table};

use crate::gather::{Sampler, Snapshot};
use crate::view::{self, Context, View};

const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const HISTORY: usize = 60;

/// Everything the screen shows.
pub struct App {
    pub view: View,
    /// Sort column and direction per view.
    pub sort: BTreeMap<&'static str, (usize, bool)>,
    pub filter: String,
    pub editing_filter: bool,
    pub paused: bool,
    pub help: bool,
    pub scroll: usize,
    pub snapshot: Option<Snapshot>,
    pub ctx: Context,
    /// Rejections/s per level, one value per refresh.
    pub history: BTreeMap<String, VecDeque<f64>>,
    pub interval: Duration,
}

impl App {
    pub fn new(view: View, ctx: Context, interval: Duration) -> App {
        let mut sort = BTreeMap::new();
        for v in View::ALL {
            let cols = view::columns(v, &ctx);
            let i = cols.iter().position(|c| *c == v.default_sort()).unwrap_or(0);
            sort.insert(v.title(), (i, false));
        }
        App {
            view,
            sort,
            filter: String::new(),
            editing_filter: false,
            paused: false,
            help: false,
            scroll: 0,
            snapshot: None,
            ctx,
            history: BTreeMap::new(),
            interval,
        }
    }

    pub fn update(&mut self, snapshot: Snapshot) {
        if snapshot.total.rates_known {
            for l in &snapshot.total.levels {
                let h = self.history.entry(l.name.clone()).or_default();
                h.push_back(l.rejected_total());
                while h.len() > HISTORY {
                    h.pop_front();
                }
            }
        }
        self.snapshot = Some(snapshot);
    }

    fn sort_of(&self) -> (usize, bool) {
        self.sort.get(self.view.title()).copied().unwrap_or((0, false))
    }

    /// The rows of the current view, filtered and sorted.
    pub fn rows(&self) -> Vec<view::Row> {
        let Some(s) = &self.snapshot else { return Vec::new() };
        let mut rows = view::filter(view::rows(self.view, s, &self.ctx), &self.filter);
        let (col, rev) = self.sort_of();
        view::sort(&mut rows, col, rev);
        rows
    }
}

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
}

pub fn handle_key(app: &mut App, key: KeyEvent) -> Action {
    if key.kind == KeyEventKind::Release {
        return Action::None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Action::Quit;
    }
    if app.editing_filter {
        match key.code {
            KeyCode::Enter => app.editing_filter = false,
            KeyCode::Esc => {
                app.editing_filter = false;
                app.filter.clear();
            }
            KeyCode::Backspace => {
                app.filter.pop();
            }
            KeyCode::Char(c) => app.filter.push(c),
            _ => {}
        }
        app.scroll = 0;
        return Action::None;
    }
    if app.help {
        app.help = false;
        return if matches!(key.code, KeyCode::Char('q')) { Action::Quit } else { Action::None };
    }
    let columns = view::columns(app.view, &app.ctx).len();
    let switch = |app: &mut App, v: View| {
        app.view = v;
        app.scroll = 0;
    };
    let index = View::ALL.iter().position(|v| *v == app.view).unwrap_or(0);
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
        KeyCode::Tab | KeyCode::Right => switch(app, View::ALL[(index + 1) % 3]),
        KeyCode::BackTab | KeyCode::Left => switch(app, View::ALL[(index + 2) % 3]),
        KeyCode::Char('1' | 'l') => switch(app, View::Levels),
        KeyCode::Char('2' | 's') => switch(app, View::Schemas),
        KeyCode::Char('3' | 'f') => switch(app, View::Flows),
        KeyCode::Char('>' | '.') => {
            let (c, r) = app.sort_of();
            app.sort.insert(app.view.title(), ((c + 1) % columns, r));
        }
        KeyCode::Char('<' | ',') => {
            let (c, r) = app.sort_of();
            app.sort.insert(app.view.title(), ((c + columns - 1) % columns, r));
        }
        KeyCode::Char('r') => {
            let (c, r) = app.sort_of();
            app.sort.insert(app.view.title(), (c, !r));
        }
        KeyCode::Char('/') => app.editing_filter = true,
        KeyCode::Char('p' | ' ') => app.paused = !app.paused,
        KeyCode::Char('?' | 'h') => app.help = true,
        KeyCode::Down | KeyCode::Char('j') => app.scroll = app.scroll.saturating_add(1),
        KeyCode::Up | KeyCode::Char('k') => app.scroll = app.scroll.saturating_sub(1),
        KeyCode::PageDown => app.scroll = app.scroll.saturating_add(10),
        KeyCode::PageUp => app.scroll = app.scroll.saturating_sub(10),
        KeyCode::Home => app.scroll = 0,
        _ => {}
    }
    Action::None
}

fn status_style(s: Status) -> Style {
    match s {
        Status::Critical => Style::default().fg(Color::Red),
        Status::Warning => Style::default().fg(Color::Yellow),
        _ => Style::default(),
    }
}

fn sparkline(values: Option<&VecDeque<f64>>, width: usize) -> String {
    let Some(values) = values else { return " ".repeat(width) };
    let tail: Vec<f64> = values.iter().rev().take(width).rev().copied().collect();
    let max = tail.iter().copied().fold(0.0, f64::max);
    let mut s: String = tail
        .iter()
        .map(|v| if max <= 0.0 || *v <= 0.0 { ' ' } else { SPARK[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize] })
        .collect();
    while s.chars().count() < width {
        s.insert(0, ' ');
    }
    s
}

fn bar(util: Option<f64>, width: usize) -> String {
    let Some(u) = util else { return "-".into() };
    let pct = format!("{:>4.0}%", (u * 100.0).min(999.0));
    let cells = width.saturating_sub(pct.len() + 1);
    let filled = ((u.clamp(0.0, 1.0)) * cells as f64).round() as usize;
    format!("{}{} {pct}", "█".repeat(filled), "░".repeat(cells - filled))
}

/// Columns dropped first when the terminal is narrow.
fn drop_order(view: View) -> &'static [&'static str] {
    match view {
        View::Levels => &["REASONS", "CURRENT", "NOMINAL", "REJECTIONS", "WAIT P99", "UTIL"],
        View::Schemas => &["EXECUTING", "IN QUEUE", "PRECEDENCE", "WAIT P99"],
        View::Flows => &["SEATS", "LONGEST WAIT", "PRIORITY LEVEL", "EXECUTING", "FLOW SCHEMA"],
    }
}

/// The column that is truncated (down to 12 characters) before another one is dropped.
fn flexible(view: View) -> &'static str {
    match view {
        View::Levels => "REASONS",
        View::Schemas => "FLOW SCHEMA",
        View::Flows => "TOP REQUEST",
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let [header, tabs, body, footer] =
        Layout::vertical([Constraint::Length(3), Constraint::Length(1), Constraint::Min(3), Constraint::Length(1)])
            .areas(area);
    draw_header(frame, app, header);
    draw_tabs(frame, app, tabs);
    draw_table(frame, app, body);
    draw_footer(frame, app, footer);
    if app.help {
        draw_help(frame, area);
    }
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let lines = match &app.snapshot {
        None => vec![Line::from("apftop"), Line::from("sampling every API server replica…")],
        Some(s) => {
            let verdict = view::verdict(s);
            let (state, rates) = view::summary(s);
            let title =
                format!("apftop — {} — {}{}", verdict.as_str(), s.taken_at, if app.paused { " — PAUSED" } else { "" });
            let style = status_style(verdict).add_modifier(Modifier::BOLD);
            if area.width as usize >= title.chars().count() + rates.chars().count() + 3 {
                vec![Line::from(vec![Span::styled(title, style), Span::raw(format!(" · {rates}"))]), Line::from(state)]
            } else {
                vec![Line::from(Span::styled(title, style)), Line::from(state), Line::from(rates)]
            }
        }
    };
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = Vec::new();
    for (i, v) in View::ALL.iter().enumerate() {
        let text = format!(" {} {} ", i + 1, v.title());
        let style = if *v == app.view {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::default()
        };
        spans.push(Span::styled(text, style));
    }
    if !app.filter.is_empty() || app.editing_filter {
        spans.push(Span::raw(format!("  filter: {}{}", app.filter, if app.editing_filter { "▏" } else { "" })));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_table(frame: &mut Frame, app: &App, area: Rect) {
    let Some(snapshot) = &app.snapshot else {
        frame.render_widget(Paragraph::new("waiting for the first sample…"), area);
        return;
    };
    let mut headers: Vec<String> =
        view::columns(app.view, &app.ctx).iter().map(std::string::ToString::to_string).collect();
    let rows = app.rows();
    let mut cells: Vec<Vec<String>> = rows.iter().map(|r| r.cells.clone()).collect();
    let sparkline_width = 12;
    let levels = app.view == View::Levels;
    if levels {
        // UTIL becomes a bar, and a sparkline of rejections follows.
        let util = headers.iter().position(|h| h == "UTIL");
        headers.push("REJECTIONS".into());
        for (row, r) in cells.iter_mut().zip(&rows) {
            if let Some(u) = util {
                row[u] = bar(r.utilisation, 11);
            }
            row.push(sparkline(r.level.as_ref().and_then(|l| app.history.get(l)), sparkline_width));
        }
    }
    // Natural widths, then drop columns until they fit.
    let width_of = |i: usize| {
        cells.iter().map(|r| r.get(i).map(|c| c.chars().count()).unwrap_or(0)).max().unwrap_or(0).max(headers[i].len())
    };
    let mut shown: Vec<usize> = (0..headers.len()).collect();
    let mut widths: Vec<usize> = (0..headers.len()).map(|i| width_of(i).min(48)).collect();
    let total = |shown: &[usize], widths: &[usize]| shown.iter().map(|&i| widths[i] + 1).sum::<usize>();
    let flex = headers.iter().position(|h| h == flexible(app.view));
    let mut drops = drop_order(app.view).iter();
    loop {
        let over = total(&shown, &widths).saturating_sub(area.width as usize);
        if over == 0 {
            break;
        }
        if let Some(f) = flex.filter(|f| shown.contains(f))
            && widths[f].saturating_sub(12) >= over
        {
            widths[f] -= over;
            break;
        }
        match drops.next() {
            Some(name) => {
                if let Some(i) = headers.iter().position(|h| h == name) {
                    shown.retain(|&x| x != i);
                }
            }
            None => {
                // Nothing left to drop: the first column gives way.
                if let Some(&first) = shown.first() {
                    widths[first] = widths[first].saturating_sub(over).max(8);
                }
                break;
            }
        }
    }
    let (sort_col, reverse) = app.sort_of();
    let header = Row::new(shown.iter().map(|&i| {
        let mut h = headers[i].clone();
        if i == sort_col {
            h.push(if reverse { '▲' } else { '▼' });
        }
        Cell::from(h)
    }))
    .style(Style::default().add_modifier(Modifier::BOLD));
    let visible = (area.height as usize).saturating_sub(1);
    let skip = app.scroll.min(rows.len().saturating_sub(visible));
    let body = cells.iter().zip(&rows).skip(skip).take(visible).map(|(row, r)| {
        Row::new(shown.iter().map(|&i| {
            let text = row.get(i).cloned().unwrap_or_default();
            Cell::from(cpkit::output::wrap::shorten(&text, widths[i]))
        }))
        .style(status_style(r.status))
    });
    let table =
        Table::new(body, shown.iter().map(|&i| Constraint::Length(widths[i] as u16))).header(header).column_spacing(1);
    frame.render_widget(table, area);
    if rows.is_empty() {
        let text = match app.view {
            View::Flows if snapshot.flows.is_empty() => "no request is queued or executing right now",
            _ if !app.filter.is_empty() => "nothing matches the filter",
            _ => "no data",
        };
        let y = area.y + 1;
        if y < area.y + area.height {
            frame.render_widget(Paragraph::new(text), Rect { x: area.x, y, width: area.width, height: 1 });
        }
    }
}

fn draw_footer(frame: &mut Frame, app: &App, area: Rect) {
    let text = if app.editing_filter {
        "type to filter · Enter keep · Esc clear".to_string()
    } else if let Some(n) = app.snapshot.as_ref().and_then(|s| {
        s.replicas
            .iter()
            .find_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.name)))
            .or_else(|| s.notes.first().cloned())
    }) {
        n
    } else {
        format!(
            "q quit · tab view · </> sort · r reverse · / filter · p pause · ? help · every {}",
            cpkit::duration::human_duration(app.interval)
        )
    };
    frame.render_widget(
        Paragraph::new(cpkit::output::wrap::shorten(&text, area.width as usize))
            .style(Style::default().add_modifier(Modifier::DIM)),
        area,
    );
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let lines = [
        "1 / l   priority levels",
        "2 / s   flow schemas",
        "3 / f   flows (who is queued)",
        "tab ←→  next / previous view",
        "< >     sort by the previous / next column",
        "r       reverse the sort",
        "/       filter rows (Esc clears)",
        "p space pause / resume refreshing",
        "↑↓ PgUp PgDn  scroll",
        "q Esc   quit",
    ];
    let w = 46.min(area.width);
    let h = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines.iter().map(|l| Line::from(*l)).collect::<Vec<_>>())
            .block(Block::default().borders(Borders::ALL).title(" keys ")),
        rect,
    );
}

/// Restores the terminal however the loop ends (error, panic, Ctrl-C).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
        let _ =
            crossterm::execute!(std::io::stdout(), crossterm::terminal::LeaveAlternateScreen, crossterm::cursor::Show);
    }
}

fn term_error(e: std::io::Error) -> Error {
    Error::io("Cannot drive the terminal", &e)
}

/// Runs the live view until the user quits.
pub async fn run(mut sampler: Sampler, mut app: App) -> Result<i32> {
    let paused = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Snapshot>(2);
    let interval = app.interval;
    let sampling_paused = paused.clone();
    let sampling = tokio::spawn(async move {
        loop {
            let started = tokio::time::Instant::now();
            if !sampling_paused.load(Ordering::Relaxed) {
                let snapshot = sampler.sample(true).await;
                if tx.send(snapshot).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep_until(started + interval).await;
        }
    });

    crossterm::terminal::enable_raw_mode().map_err(term_error)?;
    let guard = TerminalGuard;
    crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen, crossterm::cursor::Hide)
        .map_err(term_error)?;
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout())).map_err(term_error)?;
    let mut events = crossterm::event::EventStream::new();
    let code = loop {
        terminal.draw(|f| draw(f, &app)).map_err(term_error)?;
        tokio::select! {
            Some(snapshot) = rx.recv() => app.update(snapshot),
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => {
                    if handle_key(&mut app, key) == Action::Quit {
                        break 0;
                    }
                    paused.store(app.paused, Ordering::Relaxed);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(term_error(e))?,
                None => break 0,
            },
        }
    };
    sampling.abort();
    drop(terminal);
    drop(guard);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gather::ReplicaStatus;
    use cpkit::apf::dump::parse_requests;
    use cpkit::apf::flows;
    use cpkit::apf::stats::{aggregate, replica_stats, selection};
    use cpkit::metrics::Scrape;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn fixture(path: &str) -> String {
        let p = format!("{}/../../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// 100 waits between 5 and 10 seconds.
    fn slow_waits() -> cpkit::metrics::Histogram {
        let mut h = cpkit::metrics::Histogram::default();
        for (le, count) in [(1.0, 0.0), (5.0, 0.0), (10.0, 100.0), (f64::INFINITY, 100.0)] {
            h.add_bucket(le, count);
        }
        h.count = 100.0;
        h.sum = 800.0;
        h
    }

    /// A deterministic snapshot: limits and gauges of the real 1.34 scrape
    /// (tests/fixtures/clusters/k8s-1.34/apiserver.metrics) on two replicas, the rates of an
    /// overload on workload-low, a third replica not answering, and the requests of
    /// tests/fixtures/flowcontrol/website-dump_requests-includeRequestDetails.txt.
    pub fn sample_snapshot() -> Snapshot {
        let scrape = Scrape::parse(fixture("clusters/k8s-1.34/apiserver.metrics").as_bytes(), &selection());
        let mut stats = replica_stats(None, &scrape, 0.0);
        stats.rates_known = true;
        for l in &mut stats.levels {
            l.dispatched_per_second = match l.name.as_str() {
                "workload-low" => 19.0,
                "system" => 4.2,
                "global-default" => 1.5,
                _ => 0.0,
            };
            if l.name == "workload-low" {
                l.inqueue_requests = 320.0;
                l.executing_seats = 52.0;
                l.rejected_per_second =
                    [("queue-full".to_string(), 12.0), ("time-out".to_string(), 1.5)].into_iter().collect();
                l.wait = slow_waits();
            }
        }
        for s in &mut stats.schemas {
            if s.name == "service-accounts" {
                s.dispatched_per_second = 19.0;
                s.inqueue_requests = 320.0;
                s.rejected_per_second =
                    [("queue-full".to_string(), 12.0), ("time-out".to_string(), 1.5)].into_iter().collect();
                s.wait = slow_waits();
            }
        }
        stats.status_429_per_second = 13.5;
        let replica = |name: &str, ok: bool| ReplicaStatus {
            name: name.into(),
            url: format!("https://127.0.0.{}:6443", name.len()),
            ok,
            error: (!ok).then(|| "the API server at https://127.0.0.4:6443 refused the connection".to_string()),
            stats: if ok { stats.clone() } else { Default::default() },
            failure: None,
        };
        let replicas = vec![replica("cp-1", true), replica("cp-2", true), replica("cp-3", false)];
        let total = aggregate(replicas.iter().filter(|r| r.ok).map(|r| &r.stats));
        let requests = parse_requests(&fixture("flowcontrol/website-dump_requests-includeRequestDetails.txt"));
        let pairs: Vec<(String, _)> = requests.into_iter().map(|r| ("cp-1".to_string(), r)).collect();
        Snapshot {
            context: "prod-eu".into(),
            taken_at: "2023-07-18T00:13:19Z".into(),
            window_seconds: 2.0,
            replicas,
            total,
            flows: flows::group(&pairs, "2023-07-18T00:13:19Z".parse().unwrap()),
            observer_requests: 0,
            queue_attribution: vec![],
            notes: vec![],
        }
    }

    fn app(view: View) -> App {
        let mut precedence = BTreeMap::new();
        for fs in cpkit::apf::defaults::flow_schemas() {
            let fs = cpkit::apf::model::FlowSchema::from_value(&fs);
            precedence.insert(fs.name, fs.precedence);
        }
        let mut app = App::new(view, Context { precedence, per_replica: false }, Duration::from_secs(2));
        for r in [0.0, 3.0, 6.0, 13.5] {
            let mut s = sample_snapshot();
            for l in &mut s.total.levels {
                if l.name == "workload-low" {
                    l.rejected_per_second = [("queue-full".to_string(), r)].into_iter().collect();
                }
            }
            app.update(s);
        }
        app.update(sample_snapshot());
        app
    }

    fn screen(app: &App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..height {
            let line: String = (0..width).map(|x| buffer[(x, y)].symbol().to_string()).collect();
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Compares with `src/snapshots/<name>.txt`; `UPDATE_SNAPSHOTS=1` rewrites it.
    fn assert_snapshot(name: &str, actual: &str) {
        let path = format!("{}/src/snapshots/{name}.txt", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
        }
        let expected =
            std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path} missing: run with UPDATE_SNAPSHOTS=1"));
        assert_eq!(actual, expected, "{name} differs from {path}\n{actual}");
    }

    #[test]
    fn every_view_at_80x24_and_160x48() {
        for view in View::ALL {
            for (w, h) in [(80, 24), (160, 48)] {
                let name = format!("{}-{w}x{h}", format!("{view:?}").to_lowercase());
                assert_snapshot(&name, &screen(&app(view), w, h));
            }
        }
    }

    #[test]
    fn the_screens_say_what_matters() {
        let small = screen(&app(View::Levels), 80, 24);
        let lines: Vec<&str> = small.lines().collect();
        // Workload traffic rejected: WARNING, as cphealth says for the same state.
        assert!(lines[0].starts_with("apftop — WARNING"), "{small}");
        assert!(lines[1].contains("2/3 replicas (no answer: cp-3)"), "{small}");
        // Sorted by rejections: the overloaded level first, highlighted, with its sparkline.
        assert!(lines[2].starts_with("rejected/s queue-full 24.0, time-out 3.0 · 429/s 27.0"), "{small}");
        let first_row = lines[5];
        assert!(first_row.starts_with("workload-low"), "{small}");
        assert!(lines.iter().all(|l| l.chars().count() <= 80));
        assert!(lines[23].starts_with("cp-3: the API server at https://127.0.0.4:6443 refused"), "{small}");
        let flows = screen(&app(View::Flows), 80, 24);
        let top = flows.lines().nth(5).unwrap();
        assert!(top.starts_with("system:serviceaccount:default:loadtest"), "{flows}");
        let wide = screen(&app(View::Levels), 160, 48);
        assert!(wide.contains("REASONS") && wide.contains("queue-full 24.0, time-out 3.0"), "{wide}");
        let row = wide.lines().nth(5).unwrap();
        assert!(row.contains("█████") && row.ends_with("▂▃▅█"), "utilisation bar and sparkline: {wide}");
    }

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn keys_switch_sort_filter_pause_and_quit() {
        let mut a = app(View::Levels);
        assert_eq!(handle_key(&mut a, key(KeyCode::Tab)), Action::None);
        assert_eq!(a.view, View::Schemas);
        handle_key(&mut a, key(KeyCode::Char('3')));
        assert_eq!(a.view, View::Flows);
        handle_key(&mut a, key(KeyCode::BackTab));
        assert_eq!(a.view, View::Schemas);
        // Sort by name (column 0), ascending.
        let (c, _) = a.sort_of();
        for _ in 0..c {
            handle_key(&mut a, key(KeyCode::Char('<')));
        }
        assert_eq!(a.rows()[0].cells[0], "catch-all");
        handle_key(&mut a, key(KeyCode::Char('r')));
        assert_eq!(a.rows()[0].cells[0], "system-nodes");
        // Filter.
        handle_key(&mut a, key(KeyCode::Char('/')));
        for ch in "kube-".chars() {
            handle_key(&mut a, key(KeyCode::Char(ch)));
        }
        handle_key(&mut a, key(KeyCode::Enter));
        assert!(a.rows().iter().all(|r| r.cells[0].contains("kube-")), "{:?}", a.rows());
        assert!(screen(&a, 80, 24).contains("filter: kube-"));
        handle_key(&mut a, key(KeyCode::Char('/')));
        handle_key(&mut a, key(KeyCode::Esc));
        assert!(a.filter.is_empty());
        handle_key(&mut a, key(KeyCode::Char('p')));
        assert!(a.paused);
        assert!(screen(&a, 80, 24).lines().next().unwrap().ends_with("PAUSED"));
        handle_key(&mut a, key(KeyCode::Char('?')));
        assert!(screen(&a, 80, 24).contains("reverse the sort"));
        handle_key(&mut a, key(KeyCode::Char('x')));
        assert!(!a.help);
        assert_eq!(handle_key(&mut a, key(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(handle_key(&mut a, KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Action::Quit);
    }
}
