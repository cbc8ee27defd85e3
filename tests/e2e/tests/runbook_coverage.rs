//! The runbook coverage map (`docs/RUNBOOK-COVERAGE.md`): generated from the seed runbooks in
//! `tests/fixtures/seeds/` (every step classified, the document current), and every suite command
//! it names run against the demo cluster as users run it.

use std::path::{Path, PathBuf};

use cpkit_e2e::runbook::{self, DOCUMENTS, Step};
use cpkit_e2e::{describe, kubectl, text};
use testkit::{DemoCluster, Scenario};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Reads tests/fixtures/seeds/*.md (the seed runbooks, copied unchanged).
fn seeds() -> Vec<(&'static str, Vec<Step>)> {
    DOCUMENTS
        .iter()
        .map(|doc| {
            let path = repo().join("tests/fixtures/seeds").join(doc);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (*doc, runbook::extract(doc, &text))
        })
        .collect()
}

#[test]
fn every_seed_step_is_classified_and_the_document_is_current() {
    let documents = seeds();
    let unclassified: Vec<String> = documents
        .iter()
        .flat_map(|(doc, steps)| steps.iter().map(move |s| (doc, s)))
        .filter(|(_, s)| runbook::classify(&s.command).is_none())
        .map(|(doc, s)| format!("{doc} L{}: {}", s.line, s.command))
        .collect();
    assert!(unclassified.is_empty(), "steps no rule knows:\n{}", unclassified.join("\n"));
    // Each document contributes steps (an extraction that lost a document would show here).
    for (doc, steps) in &documents {
        assert!(steps.len() >= 40, "{doc}: only {} steps extracted", steps.len());
    }
    let rendered = runbook::render(&documents);
    let path = repo().join("docs/RUNBOOK-COVERAGE.md");
    if std::env::var_os("UPDATE_RUNBOOK_COVERAGE").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/RUNBOOK-COVERAGE.md is out of date: run `UPDATE_RUNBOOK_COVERAGE=1 cargo test -p cpkit-e2e --test runbook_coverage` and review the diff"
    );
}

#[test]
fn every_suite_command_of_the_map_runs_against_the_demo_cluster() {
    let c = DemoCluster::start(Scenario::HealthyHa).unwrap();
    let env = c.env();
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().display().to_string();
    // A snapshot for the commands that read one.
    let out = kubectl(&["etcdsnap", "save", "--dir", &dir_arg], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let snapshot = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "db"))
        .expect("save wrote a .db file")
        .display()
        .to_string();
    // A webhook configuration for the disarm plans.
    let out = kubectl(&["get", "validatingwebhookconfigurations", "-o", "name"], &env);
    let (names, _) = text(&out);
    let webhook = names.lines().next().expect("the demo cluster has a webhook configuration").to_string();
    // Named with its kind: cert-manager names a validating and a mutating configuration alike.
    let webhook = format!("validatingwebhookconfiguration/{}", webhook.rsplit('/').next().unwrap_or(&webhook));

    let all: Vec<Step> = seeds().into_iter().flat_map(|(_, s)| s).collect();
    let commands = runbook::suite_commands(&all);
    assert!(commands.len() >= 15, "{commands:?}");
    for command in commands {
        let bundle = dir.path().join("bundle.tar.gz").display().to_string();
        let file = if command.contains(" bundle ") { bundle.as_str() } else { snapshot.as_str() };
        let line = command.replace("FILE", file).replace("DIR", &dir_arg).replace("NAME", &webhook);
        let mut args: Vec<&str> = line.split_whitespace().skip(1).collect();
        if args.first() == Some(&"cphealth") && !line.contains(" bundle ") && !line.contains(" rbac") {
            args.extend(["--sample", "0"]);
        }
        if args == ["apftop"] {
            // The live view, one frame.
            args.push("--once");
        }
        let out = kubectl(&args, &env);
        let code = out.status.code();
        let (_, stderr) = text(&out);
        // Usage errors (64) would mean the map names a command that does not exist.
        assert!(code.is_some_and(|c| c <= 3), "`{line}` exited {code:?}: {}", describe(&out));
        assert!(!stderr.contains("unexpected argument"), "`{line}`: {stderr}");
        if command.contains(" bundle ") {
            std::fs::remove_file(file).ok();
        }
    }
}
