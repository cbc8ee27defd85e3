//! Fitting text to a width: prose wrapped between words, shell commands split where a shell
//! still reads them as one command (` \` between words; JSON inside single quotes between its
//! tokens), cells shortened with `…`. Widths count characters, not ANSI colour codes.

use std::fmt::Write as _;

/// The characters a terminal shows for `text` (ANSI escape sequences take no room).
pub fn display_width(text: &str) -> usize {
    if !text.contains('\x1b') {
        return text.chars().count();
    }
    strip_ansi(text).chars().count()
}

/// `text` without ANSI escape sequences.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// At most `width` characters; a cut is marked with `…` (colour is dropped from a cut cell).
pub fn shorten(text: &str, width: usize) -> String {
    if display_width(text) <= width {
        return text.to_string();
    }
    let plain = strip_ansi(text);
    if width == 0 {
        return String::new();
    }
    let mut out: String = plain.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// Greedy word wrap to `width`; a word longer than a line is cut (the only way it can fit).
pub fn wrap_words(text: &str, width: usize) -> Vec<String> {
    wrap_lines(text, width, width)
}

/// Word wrap whose first line has `first` columns and the others `rest`.
fn wrap_lines(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut line_width = 0;
    let room = |lines: &Vec<String>| if lines.is_empty() { first.max(1) } else { rest.max(1) };
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let mut word = word.to_string();
        let mut word_width = display_width(&word);
        if line_width > 0 && line_width + 1 + word_width > room(&lines) {
            lines.push(std::mem::take(&mut line));
            line_width = 0;
        }
        while line_width == 0 && word_width > room(&lines) {
            let plain = strip_ansi(&word);
            let head: String = plain.chars().take(room(&lines)).collect();
            word = plain.chars().skip(head.chars().count()).collect();
            word_width = display_width(&word);
            lines.push(head);
        }
        if word.is_empty() {
            continue;
        }
        if line_width > 0 {
            line.push(' ');
            line_width += 1;
        }
        line.push_str(&word);
        line_width += word_width;
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// A paragraph: `first` (a label, may be coloured) then `text`, wrapped to `width` with the
/// following lines indented by `indent` spaces; one line when `width` is `None`. Ends in `\n`.
pub fn paragraph(first: &str, text: &str, indent: usize, width: Option<usize>) -> String {
    let Some(width) = width else {
        return format!("{first}{text}\n");
    };
    let lines = wrap_lines(text, width.saturating_sub(display_width(first)), width.saturating_sub(indent));
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(if i == 0 { first } else { &pad });
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// A shell command printed after `prefix` (e.g. `"    $ "`), split so that pasting the lines
/// into a shell runs the same command: ` \` between words, and inside a single-quoted JSON
/// argument after its commas (whitespace between JSON tokens changes nothing). A trailing
/// `# comment` that does not fit goes on its own line above. Ends in `\n`.
pub fn command(prefix: &str, cmd: &str, width: Option<usize>) -> String {
    let one_line = format!("{prefix}{cmd}\n");
    let Some(width) = width else { return one_line };
    if display_width(&one_line) <= width + 1 {
        return one_line;
    }
    let (body, comment) = split_comment(cmd);
    let mut out = String::new();
    let prefix_width = display_width(prefix);
    let comment_prefix = " ".repeat(prefix_width.saturating_sub(2));
    if let Some(c) = comment {
        let text = c.trim_start_matches('#').trim_start();
        let room = width.saturating_sub(comment_prefix.len() + 2).max(1);
        for l in wrap_words(text, room) {
            out.push_str(&format!("{comment_prefix}# {l}\n"));
        }
    }
    if body.trim().is_empty() {
        return out;
    }
    let cont = " ".repeat(prefix_width + 2);
    let mut line = prefix.to_string();
    let mut line_width = prefix_width;
    let mut at_start = true;
    for word in shell_words(body) {
        let w = display_width(&word);
        // Room for the word plus the ` \` that may follow it.
        if !at_start && line_width + 1 + w + 2 > width {
            out.push_str(&line);
            out.push_str(" \\\n");
            line = cont.clone();
            line_width = cont.len();
            at_start = true;
        }
        if !at_start {
            line.push(' ');
            line_width += 1;
        }
        if line_width + w + 2 > width
            && let Some(pieces) = json_pieces(&word)
        {
            // Pieces of one quoted word: lines inside the quotes take no ` \`.
            let inner_indent = " ".repeat(cont.len() + 2);
            let mut first = true;
            for piece in pieces {
                let pw = display_width(&piece);
                if !first && line_width + pw + 2 > width {
                    out.push_str(&line);
                    out.push('\n');
                    line = inner_indent.clone();
                    line_width = inner_indent.len();
                }
                line.push_str(&piece);
                line_width += pw;
                first = false;
            }
        } else if line_width + w + 2 > width && !word.contains(['\'', '"', '\\']) && word.contains(',') {
            // `a=1,b=2,...` unquoted: a backslash-newline inside a word joins it back when the
            // next line starts at column 0.
            let pieces: Vec<&str> = word.split_inclusive(',').collect();
            for (k, piece) in pieces.iter().enumerate() {
                let pw = display_width(piece);
                if k > 0 && line_width + pw + 2 > width {
                    out.push_str(&line);
                    out.push_str("\\\n");
                    line = String::new();
                    line_width = 0;
                }
                line.push_str(piece);
                line_width += pw;
            }
        } else {
            line.push_str(&word);
            line_width += w;
        }
        at_start = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// Text fitted line by line: a line that is too long is wrapped between words (indented two
/// more than it), or split as a command when it starts with `$ `.
pub fn fit_prose(text: &str, width: Option<usize>) -> String {
    fit_lines(text, width, false)
}

/// A script fitted line by line: `#` lines wrap as comments, every other line is a command.
pub fn fit_script(text: &str, width: Option<usize>) -> String {
    fit_lines(text, width, true)
}

fn fit_lines(text: &str, width: Option<usize>, script: bool) -> String {
    let Some(width) = width else { return text.to_string() };
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        if display_width(body) <= width {
            out.push_str(line);
            continue;
        }
        let lead = body.len() - body.trim_start_matches(' ').len();
        let pad = &body[..lead];
        let rest = &body[lead..];
        let fitted = if let Some(comment) = rest.strip_prefix("# ").filter(|_| script) {
            let room = width.saturating_sub(lead + 2);
            wrap_words(comment, room).iter().fold(String::new(), |mut text, l| {
                let _ = writeln!(text, "{pad}# {l}");
                text
            })
        } else if let Some(cmd) = rest.strip_prefix("$ ") {
            command(&format!("{pad}$ "), cmd, Some(width))
        } else if script {
            command(pad, rest, Some(width))
        } else {
            paragraph(pad, rest, lead + 2, Some(width))
        };
        out.push_str(&fitted);
        if !line.ends_with('\n') && out.ends_with('\n') {
            out.pop();
        }
    }
    out
}

/// The command and its trailing `# comment` (a `#` starting a word outside quotes).
fn split_comment(cmd: &str) -> (&str, Option<&str>) {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in cmd.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if prev_space => return (cmd[..i].trim_end(), Some(&cmd[i..])),
            _ => {}
        }
        prev_space = c == ' ';
    }
    (cmd, None)
}

/// Words split at spaces outside quotes (quotes kept, so each word pastes back as it was).
fn shell_words(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in cmd.chars() {
        if escaped {
            word.push(c);
            escaped = false;
            continue;
        }
        match (quote, c) {
            (None, '\\') => {
                word.push(c);
                escaped = true;
            }
            (Some(q), c) if c == q => {
                word.push(c);
                quote = None;
            }
            (None, '\'' | '"') => {
                word.push(c);
                quote = Some(c);
            }
            (None, ' ') => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A word like `-p '[{"op":...}]'`'s argument, `'<json>'`, cut after each comma between JSON
/// tokens; `None` when the word is not single-quoted JSON.
fn json_pieces(word: &str) -> Option<Vec<String>> {
    let start = word.find('\'')?;
    let inner = word[start + 1..].strip_suffix('\'')?;
    if inner.contains('\'') || serde_json::from_str::<serde_json::Value>(inner).is_err() {
        return None;
    }
    let mut pieces = Vec::new();
    let mut piece = word[..=start].to_string();
    let mut in_string = false;
    let mut escaped = false;
    for c in inner.chars() {
        piece.push(c);
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            pieces.push(std::mem::take(&mut piece));
        }
    }
    piece.push('\'');
    pieces.push(piece);
    Some(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_ignore_colour() {
        assert_eq!(display_width("\x1b[31mCRITICAL\x1b[39m"), 8);
        assert_eq!(strip_ansi("\x1b[1mbold\x1b[0m x"), "bold x");
        assert_eq!(shorten("\x1b[31mCRITICAL\x1b[39m", 5), "CRIT…");
        assert_eq!(shorten("ok", 5), "ok");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }

    #[test]
    fn words_wrap_between_words() {
        assert_eq!(wrap_words("one two three four", 9), vec!["one two", "three", "four"]);
        assert_eq!(wrap_words("abcdefghij", 4), vec!["abcd", "efgh", "ij"], "only a word longer than a line is cut");
        assert_eq!(wrap_words("", 4), vec![""]);
        let p = paragraph("cause: ", "the webhook validate.pod.com refuses exec", 2, Some(20));
        assert_eq!(p, "cause: the webhook\n  validate.pod.com\n  refuses exec\n");
        assert!(p.lines().all(|l| l.len() <= 20));
        assert_eq!(paragraph("a: ", "b c", 2, None), "a: b c\n");
    }

    /// What a shell makes of the printed lines: continuations joined, quotes removed.
    fn as_shell_reads(printed: &str) -> Vec<String> {
        let mut joined = String::new();
        for line in printed.lines() {
            let line = line.trim_start();
            if line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("$ ").unwrap_or(line);
            match line.strip_suffix(" \\") {
                Some(head) => {
                    joined.push_str(head);
                    joined.push(' ');
                }
                None => {
                    joined.push_str(line);
                    joined.push('\n');
                }
            }
        }
        // Lines inside quotes were joined with a newline; JSON does not care.
        let mut words = Vec::new();
        for w in shell_words(&joined.replace('\n', "")) {
            words.push(w.trim_matches('\'').to_string());
        }
        words
    }

    #[test]
    fn long_commands_split_where_the_shell_rejoins_them() {
        let cmd = r#"kubectl patch validatingwebhookconfiguration pod-validator --type=json -p '[{"op":"add","path":"/webhooks/0/namespaceSelector","value":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-node-lease","default"]}]}}]'"#;
        let printed = command("    $ ", cmd, Some(80));
        assert!(printed.lines().all(|l| l.chars().count() <= 80), "{printed}");
        assert!(printed.lines().count() > 2, "{printed}");
        let words = as_shell_reads(&printed);
        assert_eq!(words[..5], ["kubectl", "patch", "validatingwebhookconfiguration", "pod-validator", "--type=json"]);
        let json: serde_json::Value = serde_json::from_str(&words[6]).unwrap();
        assert_eq!(json[0]["value"]["matchExpressions"][0]["values"][2], "default");
        // A short command, or no width, stays one line.
        assert_eq!(command("$ ", "kubectl get pods", Some(80)), "$ kubectl get pods\n");
        assert_eq!(command("$ ", cmd, None), format!("$ {cmd}\n"));
    }

    #[test]
    fn scripts_and_prose_fit_line_by_line() {
        let script = "# 4. On cp-1: keep the old data, then restore member cp-1 from the file you copied there.\nsudo etcdutl snapshot restore /tmp/etcd-restore.db \\\n  --initial-cluster cp-1=https://10.0.0.11:2380,cp-2=https://10.0.0.12:2380,cp-3=https://10.0.0.13:2380 \\\n  --data-dir /var/lib/etcd\n";
        let fitted = fit_script(script, Some(60));
        assert!(fitted.lines().all(|l| l.chars().count() <= 60), "{fitted}");
        assert!(fitted.lines().take(2).all(|l| l.starts_with("# ")), "comments stay comments:\n{fitted}");
        // What bash reads: backslash-newline removed.
        let joined = fitted.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n").replace("\\\n", "");
        let joined = joined.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            joined.contains(
                "--initial-cluster cp-1=https://10.0.0.11:2380,cp-2=https://10.0.0.12:2380,cp-3=https://10.0.0.13:2380"
            ),
            "{joined}"
        );
        let prose =
            fit_prose("  - a line of prose that is much too long for a narrow terminal window\nshort\n", Some(40));
        assert_eq!(prose, "  - a line of prose that is much too\n    long for a narrow terminal window\nshort\n");
        assert_eq!(fit_prose("x\n", None), "x\n");
    }

    #[test]
    fn comments_move_above_a_command_that_does_not_fit() {
        let cmd = "journalctl -u kubelet --since -30m | grep -i 'mirror pod'   # on that node, as root";
        let printed = command("    $ ", cmd, Some(60));
        assert!(printed.starts_with("    # on that node, as root\n    $ journalctl"), "{printed}");
        assert!(printed.lines().all(|l| l.chars().count() <= 60), "{printed}");
        assert_eq!(split_comment("echo '#not' x # yes"), ("echo '#not' x", Some("# yes")));
        // A step that is only a comment stays comments, wrapped.
        let only = command(
            "    $ ",
            "# /etc/kubernetes/manifests/etcd.yaml on each node: --quota-backend-bytes=1086324736",
            Some(60),
        );
        assert!(only.lines().all(|l| l.starts_with("    # ") && l.chars().count() <= 60), "{only}");
    }
}
