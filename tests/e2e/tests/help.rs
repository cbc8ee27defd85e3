//! `--help` of every command and subcommand of the four plugins, as users read it through kubectl:
//! it ends with an Examples section in kubectl's style, and every example parses (its flags and
//! subcommands exist).

use cpkit_e2e::{PLUGINS, describe, kubectl, plugin, text};

/// The subcommands listed under `Commands:` of a help text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  ") || l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// Every command path of a plugin: [], [save], [alarm], [alarm, list], ...
fn command_paths(name: &str) -> Vec<Vec<String>> {
    let mut out = vec![vec![]];
    let mut i = 0;
    while i < out.len() {
        let path = out[i].clone();
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (stdout, _) = text(&plugin(name, &args, &[]));
        for sub in subcommands(&stdout) {
            let mut p = path.clone();
            p.push(sub);
            out.push(p);
        }
        i += 1;
    }
    out
}

/// A command line without the variables set before it (`AWS_CA_BUNDLE=ca.pem kubectl …`).
fn without_env_assignments(line: &str) -> &str {
    let mut rest = line.trim();
    while let Some((word, tail)) = rest.split_once(' ')
        && word.contains('=')
        && !word.starts_with('-')
    {
        rest = tail.trim_start();
    }
    rest
}

/// The example command lines of a help text (continuations joined), each up to a pipe or `&&`.
fn examples(help: &str) -> Vec<String> {
    let section = help.split("\nExamples:\n").nth(1).unwrap_or("");
    let joined = section.replace("\\\n", " ");
    joined
        .lines()
        .map(without_env_assignments)
        .filter(|l| l.starts_with("kubectl "))
        .map(|l| l.split(" | ").next().unwrap_or(l).split(" && ").next().unwrap_or(l).trim().to_string())
        .collect()
}

#[test]
fn every_command_ends_with_examples_that_parse() {
    let mut checked = 0;
    for name in PLUGINS {
        let paths = command_paths(name);
        assert!(paths.len() >= 4, "{name}: {paths:?}");
        for path in paths {
            let mut args: Vec<&str> = vec![name];
            args.extend(path.iter().map(String::as_str));
            args.push("--help");
            let out = kubectl(&args, &[]);
            assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
            let (stdout, _) = text(&out);
            let tail = stdout.trim_end();
            let section = tail.rsplit_once("\nExamples:\n").map(|(_, s)| s);
            assert!(section.is_some(), "kubectl {args:?}: no Examples section at the end:\n{stdout}");
            let found = examples(&stdout);
            assert!(!found.is_empty(), "kubectl {args:?}: no example command");
            for example in found {
                // The example's own words, then --help: exit 0 only when every flag and
                // subcommand before it exists.
                let words: Vec<&str> = example.split_whitespace().skip(1).collect();
                assert_eq!(words.first(), Some(&name), "{example}");
                let mut check: Vec<&str> = words.clone();
                check.push("--help");
                let out = kubectl(&check, &[]);
                assert_eq!(out.status.code(), Some(0), "example `{example}` does not parse: {}", describe(&out));
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "{checked} examples checked");
}
