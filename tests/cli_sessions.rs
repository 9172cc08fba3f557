//! `codex-helper session list|recent|last|search|transcript` on a generated tree of 10,000
//! rollout files (plus a few odd ones), through the real binary.

mod rollout_tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rollout_tree::{Thread, generate, thread_id};
use serde_json::Value;

const THREADS: usize = 10_000;
const LIMIT: Duration = Duration::from_secs(120);

struct Tree {
    _root: tempfile::TempDir,
    codex: PathBuf,
    helper: PathBuf,
    alpha: PathBuf,
    beta: PathBuf,
    elsewhere: PathBuf,
    threads: Vec<Thread>,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        assert!(self.ok, "failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

impl Tree {
    fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        let child = Command::new(env!("CARGO_BIN_EXE_codex-helper"))
            .args(args)
            .current_dir(cwd)
            .env("CODEX_HOME", &self.codex)
            .env("CODEX_HELPER_HOME", &self.helper)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || send.send(child.wait_with_output()));
        let Ok(output) = receive.recv_timeout(LIMIT) else {
            // SAFETY: killing the child this test started, by its pid.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("`session {args:?}` did not finish in {LIMIT:?}");
        };
        let output = output.unwrap();
        Output {
            ok: output.status.success(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

fn ids(listing: &Value) -> Vec<String> {
    listing["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn tree() -> Tree {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    let projects: Vec<PathBuf> = ["alpha", "beta", "gamma", "delta"]
        .iter()
        .map(|p| work.join(p))
        .collect();
    for dir in &projects {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
    }
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let codex = root.path().join("codex");
    let helper = root.path().join("helper");
    let now = codex_helper::time::now_ms() - 10_000;
    let projects: Vec<PathBuf> = projects.iter().map(|p| p.canonicalize().unwrap()).collect();
    let threads = generate(&codex, THREADS, &projects, now);

    // Thread 5000 (alpha) gains an answer to search for, a line that is not JSON, and a
    // 5 MiB line (a huge tool output) that also mentions the word and must be passed over.
    let odd = &threads[5000];
    let answer = serde_json::json!({"timestamp": "2026-11-30T10:00:00.000Z", "type": "response_item",
        "payload": {"type": "message", "role": "assistant", "content": [{"type": "output_text",
        "text": "Shipped the fix; next stop Zanzibar for the release party."}]}});
    let huge = serde_json::json!({"type": "response_item", "payload": {"type": "function_call_output",
        "call_id": "big", "output": format!("zanzibar {}", "x".repeat(5 << 20))}});
    rollout_tree::append(odd, &format!("{{not json\n{huge}\n{answer}\n"));

    // The newest file: a thread nobody typed in (left out), and a file that is not a rollout.
    let day = odd.path.parent().unwrap();
    let empty = day.join(format!(
        "rollout-2026-11-30T23-59-59-{}.jsonl",
        thread_id(99_999)
    ));
    std::fs::write(
        &empty,
        format!(
            "{}\n",
            serde_json::json!({"type": "session_meta", "payload": {"id": thread_id(99_999), "cwd": projects[0]}})
        ),
    )
    .unwrap();
    std::fs::write(day.join("notes.txt"), "not a rollout").unwrap();

    Tree {
        _root: root,
        codex,
        helper,
        alpha: projects[0].clone(),
        beta: projects[1].clone(),
        elsewhere,
        threads,
    }
}

#[test]
fn session_helpers_over_ten_thousand_rollouts() {
    let t = tree();
    let newest_alpha = thread_id(THREADS - 4); // i % 4 == 0
    let odd_id = thread_id(5000);

    // list: this project's threads, newest first, with their facts and turn counts.
    let listing = t.run(&t.alpha, &["session", "list", "--json"]).json();
    let listed = ids(&listing);
    assert_eq!(listed.len(), 20);
    assert_eq!(listed[0], newest_alpha);
    assert_eq!(listed[1], thread_id(THREADS - 8));
    assert_eq!(listing["other_projects"], false);
    assert_eq!(listing["files"], THREADS + 1);
    let first = &listing["sessions"][0];
    assert_eq!(first["cwd"], t.alpha.display().to_string());
    assert_eq!(first["model"], "gpt-5.5");
    assert_eq!(first["provider"], "openai");
    assert_eq!(first["git"]["branch"], "main");
    assert_eq!(first["user_turns"], 1);
    assert_eq!(first["assistant_turns"], 1);
    assert_eq!(
        first["first_message"],
        format!(
            "Please refactor module {} of the parser and keep the tests green",
            THREADS - 4
        )
    );
    let updated: Vec<u64> = listing["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["updated_ms"].as_u64().unwrap())
        .collect();
    assert!(updated.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(
        listing["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["cwd"] == t.alpha.display().to_string())
    );

    // From a folder inside the project, as text, with a limit.
    let text = t.run(&t.alpha.join("sub"), &["session", "list", "--limit", "3"]);
    assert!(text.ok, "{}", text.stderr);
    let shown: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.contains("0199a1b2-"))
        .collect();
    assert_eq!(shown.len(), 4, "{}", text.stdout); // three threads and the resume hint
    assert!(shown[0].ends_with(&newest_alpha));
    assert!(shown[2].ends_with(&thread_id(THREADS - 12)));
    assert!(
        text.stdout
            .contains(&format!("Resume one with: codex resume {newest_alpha}"))
    );
    assert!(
        text.stdout
            .contains("> Please refactor module 9996 of the parser")
    );

    // Every project; and from an unrelated folder, every project with a note.
    let all = t
        .run(
            &t.alpha,
            &["session", "list", "--all", "--limit", "5", "--json"],
        )
        .json();
    assert_eq!(
        ids(&all)[0],
        thread_id(THREADS - 1),
        "the thread nobody typed in is left out"
    );
    let other = t.run(&t.elsewhere, &["session", "list", "--limit", "2"]);
    assert!(
        other.stdout.starts_with("No thread belongs to"),
        "{}",
        other.stdout
    );
    assert!(other.stdout.contains(&thread_id(THREADS - 1)));

    // last: the newest thread of a project, and how to resume it.
    let last = t
        .run(
            &t.elsewhere,
            &[
                "session",
                "last",
                "--path",
                t.beta.to_str().unwrap(),
                "--json",
            ],
        )
        .json();
    assert_eq!(last["id"], thread_id(THREADS - 3));
    assert_eq!(
        last["resume_command"],
        format!("codex resume {}", thread_id(THREADS - 3))
    );
    let last_text = t.run(&t.beta, &["session", "last"]);
    assert!(last_text.stdout.contains(&format!(
        "Resume it: codex resume {}",
        thread_id(THREADS - 3)
    )));
    let none = t.run(&t.elsewhere, &["session", "last"]);
    assert!(!none.ok);
    assert!(
        none.stderr.contains("no Codex thread belongs to"),
        "{}",
        none.stderr
    );

    // search: case-insensitive over what was typed and answered, with the passage; the
    // 5 MiB line that also holds the word is passed over and counted.
    let found = t
        .run(&t.elsewhere, &["session", "search", "ZANZIBAR", "--json"])
        .json();
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{found}");
    assert_eq!(hits[0]["session"]["id"], odd_id);
    assert_eq!(hits[0]["matches"], 1);
    assert_eq!(hits[0]["snippets"][0]["role"], "assistant");
    assert_eq!(
        hits[0]["snippets"][0]["text"],
        "Shipped the fix; next stop Zanzibar for the release party."
    );
    assert_eq!(found["files_searched"], THREADS + 1);
    assert_eq!(
        found["skipped_lines"], 2,
        "the line that is not JSON and the 5 MiB one"
    );

    let typed = t.run(
        &t.elsewhere,
        &["session", "search", "module 9998 OF THE parser"],
    );
    assert!(typed.ok, "{}", typed.stderr);
    assert!(typed.stdout.contains(&thread_id(9998)), "{}", typed.stdout);
    assert!(
        typed
            .stdout
            .contains("user: Please refactor module 9998 of the parser")
    );
    assert!(
        typed.stderr.contains("2 line(s) skipped"),
        "{}",
        typed.stderr
    );

    // Each message once: the typed text is recorded twice by Codex (event and item).
    let beta_hits = t
        .run(
            &t.alpha,
            &[
                "session",
                "search",
                "refactor",
                "--limit",
                "2",
                "--path",
                t.beta.to_str().unwrap(),
                "--json",
            ],
        )
        .json();
    let beta_hits = beta_hits["hits"].as_array().unwrap();
    assert_eq!(beta_hits.len(), 2);
    assert_eq!(beta_hits[0]["session"]["id"], thread_id(THREADS - 3));
    assert_eq!(beta_hits[1]["session"]["id"], thread_id(THREADS - 7));
    assert_eq!(beta_hits[0]["matches"], 2, "one typed, one answered");
    let missing = t
        .run(
            &t.alpha,
            &["session", "search", "no such words anywhere", "--json"],
        )
        .json();
    assert_eq!(missing["hits"].as_array().unwrap().len(), 0);

    // transcript: messages, reasoning, tool calls and outputs (shortened), bad lines counted.
    let shown = t.run(&t.elsewhere, &["session", "transcript", &odd_id]);
    assert!(shown.ok, "{}", shown.stderr);
    let out = &shown.stdout;
    assert!(
        out.contains("user:\n    Please refactor module 5000 of the parser"),
        "{out}"
    );
    assert!(out.contains("reasoning:\n    **Planning the refactor of module 5000**"));
    assert!(
        out.contains(
            "tool call shell (call_5000):\n    {\"command\":[\"rg\",\"-n\",\"fn parse\"]}"
        )
    );
    assert!(out.contains("tool output (call_5000):\n    src/parser/mod.rs:12"));
    assert!(out.contains("…(shortened)"));
    assert!(out.contains("assistant:\n    Shipped the fix; next stop Zanzibar"));
    assert!(
        !out.contains("environment_context"),
        "injected context is not a user turn"
    );
    assert!(
        shown.stderr.contains("2 line(s) skipped"),
        "{}",
        shown.stderr
    );

    let json = t
        .run(&t.elsewhere, &["session", "transcript", &odd_id, "--json"])
        .json();
    let kinds: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "user",
            "reasoning",
            "tool_call",
            "tool_output",
            "assistant",
            "assistant"
        ]
    );
    assert_eq!(json["skipped_lines"], 2);
    assert_eq!(json["session"]["id"], odd_id);
    assert_eq!(json["items"][3]["truncated"], true);
    assert_eq!(
        json["items"][3]["output"].as_str().unwrap().chars().count(),
        400
    );

    let tail = t
        .run(
            &t.elsewhere,
            &[
                "session",
                "transcript",
                t.threads[5000].path.to_str().unwrap(),
                "--tail",
                "2",
                "--messages-only",
                "--json",
            ],
        )
        .json();
    assert_eq!(tail["total_items"], 3);
    let texts: Vec<&str> = tail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            t.threads[5000].answer.as_str(),
            "Shipped the fix; next stop Zanzibar for the release party."
        ]
    );

    let ambiguous = t.run(&t.elsewhere, &["session", "transcript", "0199a1b2"]);
    assert!(!ambiguous.ok);
    assert!(
        ambiguous.stderr.contains("is the start of"),
        "{}",
        ambiguous.stderr
    );
    let unknown = t.run(&t.elsewhere, &["session", "transcript", "no-such-thread"]);
    assert!(
        unknown.stderr.contains("no Codex thread `no-such-thread`"),
        "{}",
        unknown.stderr
    );

    // recent: every project's threads used in the window, newest first.
    let before = codex_helper::time::now_ms();
    let recent = t
        .run(
            &t.elsewhere,
            &[
                "session", "recent", "--since", "2h", "--limit", "500", "--json",
            ],
        )
        .json();
    let recent_ids = ids(&recent);
    assert!(
        (100..=120).contains(&recent_ids.len()),
        "{}",
        recent_ids.len()
    );
    assert_eq!(recent_ids[0], thread_id(THREADS - 1));
    assert_eq!(recent_ids[1], thread_id(THREADS - 2));
    assert!(
        recent["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["updated_ms"].as_u64().unwrap() + 2 * 3_600_000 >= before)
    );
    let nothing = t
        .run(
            &t.elsewhere,
            &["session", "recent", "--since", "0", "--json"],
        )
        .json();
    assert_eq!(ids(&nothing).len(), 0);
    let bad = t.run(&t.elsewhere, &["session", "recent", "--since", "lately"]);
    assert!(
        !bad.ok && bad.stderr.contains("expected e.g. 30m"),
        "{}",
        bad.stderr
    );
}
