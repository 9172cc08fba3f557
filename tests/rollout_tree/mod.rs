//! A generated `$CODEX_HOME/sessions` tree of rollout files shaped as Codex 0.171 writes them,
//! for the session helpers' tests and benchmark.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use codex_helper::codex::rollouts::rfc3339_utc;

/// A thread in the tree.
#[derive(Debug, Clone)]
pub struct Thread {
    pub id: String,
    pub path: PathBuf,
    pub cwd: PathBuf,
    /// The file's modification time, ms since the epoch.
    pub modified_ms: u64,
    pub typed: String,
    pub answer: String,
}

/// Thread `i`'s id: a v7-looking uuid.
pub fn thread_id(i: usize) -> String {
    format!("0199a1b2-{:04x}-7000-8000-{:012x}", i % 0x10000, i)
}

/// Writes `count` threads under `codex_home/sessions`, spread over the given project
/// directories in turn; thread `i` was last used `count - i` minutes before `newest_ms`, so
/// the last one is the newest.
pub fn generate(
    codex_home: &Path,
    count: usize,
    projects: &[PathBuf],
    newest_ms: u64,
) -> Vec<Thread> {
    let instructions = "You are Codex, a coding agent. ".repeat(120);
    let tool_output = "src/parser/mod.rs:12: fn parse(input: &str) -> Ast {\n".repeat(40);
    let mut threads = Vec::with_capacity(count);
    for i in 0..count {
        let modified_ms = newest_ms - (count - i) as u64 * 60_000;
        let started = rfc3339_utc(modified_ms - 600_000);
        let day = &started[..10];
        let dir = codex_home.join("sessions").join(day.replace('-', "/"));
        std::fs::create_dir_all(&dir).unwrap();
        let id = thread_id(i);
        let name_time = started[..19].replace(':', "-");
        let path = dir.join(format!("rollout-{name_time}-{id}.jsonl"));
        let cwd = projects[i % projects.len()].clone();
        let typed = format!("Please refactor module {i} of the parser and keep the tests green");
        let answer = format!("I refactored module {i}: the parser now reports errors with spans.");
        let cwd_text = cwd.display().to_string();
        let lines = [
            serde_json::json!({"timestamp": started, "type": "session_meta", "payload": {
                "id": id, "timestamp": started, "cwd": cwd_text, "originator": "codex_cli_rs",
                "cli_version": "0.171.0", "base_instructions": {"text": instructions},
                "model_provider": "openai",
                "git": {"commit_hash": format!("{i:040x}"), "branch": "main", "repository_url": "git@example.com:team/app.git"}}}),
            serde_json::json!({"timestamp": started, "type": "response_item", "payload": {
                "type": "message", "role": "user", "content": [{"type": "input_text",
                "text": format!("<environment_context>\n  <cwd>{cwd_text}</cwd>\n</environment_context>")}]}}),
            serde_json::json!({"timestamp": started, "type": "turn_context", "payload": {
                "cwd": cwd_text, "approval_policy": "on-request", "model": "gpt-5.5", "effort": "medium", "summary": "auto"}}),
            serde_json::json!({"timestamp": started, "type": "response_item", "payload": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": typed}]}}),
            serde_json::json!({"timestamp": started, "type": "event_msg", "payload": {
                "type": "user_message", "message": typed, "images": []}}),
            serde_json::json!({"timestamp": started, "type": "response_item", "payload": {
                "type": "reasoning", "summary": [{"type": "summary_text", "text": format!("**Planning the refactor of module {i}**")}],
                "content": null, "encrypted_content": "gAAAAABpZ".repeat(30)}}),
            serde_json::json!({"timestamp": started, "type": "response_item", "payload": {
                "type": "function_call", "name": "shell", "arguments": "{\"command\":[\"rg\",\"-n\",\"fn parse\"]}", "call_id": format!("call_{i}")}}),
            serde_json::json!({"timestamp": started, "type": "response_item", "payload": {
                "type": "function_call_output", "call_id": format!("call_{i}"), "output": tool_output}}),
            serde_json::json!({"timestamp": started, "type": "event_msg", "payload": {"type": "agent_message", "message": answer}}),
            serde_json::json!({"timestamp": started, "type": "response_item", "payload": {
                "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": answer}]}}),
            serde_json::json!({"timestamp": started, "type": "event_msg", "payload": {"type": "token_count",
                "info": {"total_token_usage": {"input_tokens": 12000, "cached_input_tokens": 9000, "output_tokens": 800}}}}),
        ];
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for line in &lines {
            writeln!(file, "{line}").unwrap();
        }
        let file = file.into_inner().unwrap();
        file.set_modified(UNIX_EPOCH + Duration::from_millis(modified_ms))
            .unwrap();
        threads.push(Thread {
            id,
            path,
            cwd,
            modified_ms,
            typed,
            answer,
        });
    }
    threads
}

/// Appends raw lines to a thread's rollout, keeping its modification time.
pub fn append(thread: &Thread, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&thread.path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_millis(thread.modified_ms))
        .unwrap();
}
