//! Codex's bundled model metadata, from `codex debug models --bundled`, cached per Codex
//! version (in memory and in `~/.codex-helper/cache/`), so the binary runs once per version.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Where the entries come from and where they are kept.
#[derive(Debug)]
pub struct BundledModels {
    /// Behind a lock: `serve` follows a Codex recorded by a `switch on` run while it serves.
    binary: Mutex<PathBuf>,
    cache_dir: PathBuf,
    memory: Mutex<HashMap<String, Arc<Vec<Value>>>>,
    /// The last failure to ask the binary: not retried for a minute (Codex fetches `/models`
    /// at every start; a missing binary must not cost a process launch each time).
    failure: Mutex<Option<(std::time::Instant, String)>>,
}

impl BundledModels {
    pub fn new(binary: PathBuf, cache_dir: PathBuf) -> Self {
        Self {
            binary: Mutex::new(binary),
            cache_dir,
            memory: Mutex::default(),
            failure: Mutex::default(),
        }
    }

    /// The binary asked from now on; a different one gets asked at once (the last failure,
    /// which was the old binary's, is forgotten). The cache stays: it is keyed by version.
    pub fn set_binary(&self, binary: &std::path::Path) {
        let mut current = self.binary.lock().expect("catalog lock");
        if *current != binary {
            *current = binary.to_path_buf();
            *self.failure.lock().expect("catalog lock") = None;
        }
    }

    fn binary(&self) -> PathBuf {
        self.binary.lock().expect("catalog lock").clone()
    }

    fn cache_file(&self, version: &str) -> PathBuf {
        let safe: String = version
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.cache_dir
            .join(format!("codex-bundled-models-{safe}.json"))
    }

    /// The entries for the Codex version a request names (`?client_version=`), else the
    /// installed one's. Blocking: it may run the Codex binary.
    pub fn for_version(&self, client_version: Option<&str>) -> Result<Arc<Vec<Value>>, String> {
        if let Some(v) = client_version {
            if let Some(models) = self.memory.lock().expect("catalog lock").get(v) {
                return Ok(models.clone());
            }
            if let Some(models) = std::fs::read(self.cache_file(v))
                .ok()
                .and_then(|b| parse(&b))
            {
                let models = Arc::new(models);
                self.memory
                    .lock()
                    .expect("catalog lock")
                    .insert(v.to_string(), models.clone());
                return Ok(models);
            }
        }
        if let Some((at, error)) = self.failure.lock().expect("catalog lock").as_ref() {
            if at.elapsed() < std::time::Duration::from_secs(60) {
                return Err(error.clone());
            }
        }
        let installed = self.installed_version().inspect_err(|e| {
            *self.failure.lock().expect("catalog lock") =
                Some((std::time::Instant::now(), e.clone()));
        })?;
        if let Some(v) = client_version.filter(|v| *v != installed) {
            tracing::warn!(
                "Codex {v} asked for models; using the metadata of the installed Codex {installed}"
            );
        }
        if let Some(models) = self.memory.lock().expect("catalog lock").get(&installed) {
            return Ok(models.clone());
        }
        let models = match std::fs::read(self.cache_file(&installed))
            .ok()
            .and_then(|b| parse(&b))
        {
            Some(models) => models,
            None => {
                let bytes = self.run(&["debug", "models", "--bundled"])?;
                let models = parse(&bytes).ok_or_else(|| {
                    format!(
                        "`{} debug models --bundled` did not print a model catalog",
                        self.binary().display()
                    )
                })?;
                let _ = std::fs::create_dir_all(&self.cache_dir);
                let _ = crate::files::write_atomic(
                    &self.cache_file(&installed),
                    &bytes,
                    crate::files::PRIVATE,
                );
                models
            }
        };
        let models = Arc::new(models);
        let mut memory = self.memory.lock().expect("catalog lock");
        memory.insert(installed, models.clone());
        if let Some(v) = client_version {
            memory.insert(v.to_string(), models.clone());
        }
        Ok(models)
    }

    fn installed_version(&self) -> Result<String, String> {
        let out = String::from_utf8_lossy(&self.run(&["--version"])?).into_owned();
        out.split_whitespace()
            .last()
            .map(str::to_string)
            .ok_or_else(|| format!("`{} --version` printed nothing", self.binary().display()))
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        // A scratch home: asking for the bundled list must not read or write the user's.
        let scratch = self.cache_dir.join("codex-home");
        let _ = std::fs::create_dir_all(&scratch);
        let binary = self.binary();
        let output = Command::new(&binary)
            .args(args)
            .env("CODEX_HOME", &scratch)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "cannot run the Codex binary `{}`: {e} (set [proxy] codex_binary)",
                    binary.display()
                )
            })?;
        if !output.status.success() {
            return Err(format!(
                "`{} {}` failed: {}",
                binary.display(),
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
        Ok(output.stdout)
    }
}

fn parse(bytes: &[u8]) -> Option<Vec<Value>> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    value
        .get("models")?
        .as_array()
        .cloned()
        .filter(|m| !m.is_empty())
}
