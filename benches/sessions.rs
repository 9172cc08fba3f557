//! Session helper figures: `session list` and `session search` over 10,000 generated rollout
//! files, through the real binary. Run with `cargo bench --bench sessions`. Uses a temporary
//! folder.

#[path = "../tests/rollout_tree/mod.rs"]
mod rollout_tree;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

const THREADS: usize = 10_000;
const RUNS: usize = 3;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let others: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("other-{i}")))
        .collect();
    let mut projects = vec![project.canonicalize().unwrap()];
    projects.extend(others);
    let codex = dir.path().join("codex");
    let started = Instant::now();
    rollout_tree::generate(&codex, THREADS, &projects, codex_helper::time::now_ms());
    println!(
        "generated {THREADS} rollout files in {:.2?}",
        started.elapsed()
    );

    let binary = env!("CARGO_BIN_EXE_codex-helper");
    let cases: [(&str, &[&str]); 5] = [
        (
            "session list (this project, 20)",
            &["session", "list", "--json"],
        ),
        (
            "session list --all --limit 200",
            &["session", "list", "--all", "--limit", "200", "--json"],
        ),
        ("session last", &["session", "last", "--json"]),
        (
            "session search (no match: every file read)",
            &["session", "search", "no such words", "--json"],
        ),
        (
            "session search (common word, 20 hits)",
            &["session", "search", "PARSER", "--json"],
        ),
    ];
    for (name, args) in cases {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let status = Command::new(binary)
                .args(args)
                .current_dir(&project)
                .env("CODEX_HOME", &codex)
                .env("CODEX_HELPER_HOME", dir.path().join("helper"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{name} failed");
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "{name:<46} median {:>8.1?}  best {:>8.1?}",
            times[RUNS / 2],
            times[0]
        );
    }
}
