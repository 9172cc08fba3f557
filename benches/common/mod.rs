//! What the benches share: the real `codex-helper` binary as a child process.

#![allow(dead_code)]

pub mod bare_proxy;
pub mod load;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The real `codex-helper` binary, serving with a config of the bench's.
pub struct ProxyProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// The admin API's address, when it listens.
    pub admin: Option<SocketAddr>,
    _home: tempfile::TempDir,
}

impl ProxyProcess {
    pub fn start(config: &str, binary: std::ffi::OsString) -> Self {
        Self::start_with(config, binary, &["--no-switch"], &[])
    }

    /// `serve --no-tui --port 0` with `args` added (e.g. `--team`) and `env` set.
    pub fn start_with(
        config: &str,
        binary: std::ffi::OsString,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("config.toml"), config).unwrap();
        let mut child = Command::new(binary)
            .args(["serve", "--no-tui", "--port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .env("CODEX_HELPER_HOME", home.path())
            .env("CODEX_HOME", home.path().join("codex"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start codex-helper");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut admin = None;
        let addr = loop {
            let line = lines
                .next()
                .expect("codex-helper exited before listening")
                .unwrap();
            if let Some(rest) = line.split("console: http://").nth(1) {
                admin = rest.split('/').next().and_then(|a| a.parse().ok());
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // The proxy logs one line per request; drain them as a terminal would.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            admin,
            _home: home,
        }
    }

    /// Its `CODEX_HELPER_HOME` (a temporary directory, removed on drop).
    pub fn home(&self) -> &std::path::Path {
        self._home.path()
    }

    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
