//! Gathering what `doctor` checks (the IO at the edge of [`crate::doctor`]): the config,
//! Codex's files, the Codex binary, the helper's port, the ledger, and the relays' clocks.
//! Every wait is bounded.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::codex::discover::{self, CodexBinary};
use crate::codex::switch::{self, CodexFiles};
use crate::config::{Homes, LoadedConfig, load};
use crate::doctor::facts::{
    BinaryFacts, ClockFacts, CodexFacts, ConfigFacts, Facts, LedgerFacts, LedgerStoreFacts,
    LoadedFacts, PortFacts,
};
use crate::ledger::place::LedgerPlace;
use crate::proxy::{Plan, ProxyState};
use crate::running::{self, RunningServe};

/// How long a relay has to answer the clock check.
const CLOCK_LIMIT: Duration = Duration::from_secs(5);
/// How long the port check waits for a connection.
const CONNECT_LIMIT: Duration = Duration::from_secs(1);

/// What to look at.
pub struct Scope {
    /// The port to check; default: the one Codex points at, else the running helper's, else 3211.
    pub port: Option<u16>,
    /// Ask no relay (no clock check).
    pub offline: bool,
}

pub fn gather(homes: &Homes, scope: &Scope) -> Facts {
    let config_path = homes.helper_config();
    let loaded = load::load(&config_path);
    let (config, loaded) = match loaded {
        Ok(None) => (ConfigFacts::Missing, None),
        Err(e) => (ConfigFacts::Invalid(format!("{e:#}")), None),
        Ok(Some(loaded)) => match loaded_facts(&loaded) {
            Ok(facts) => (ConfigFacts::Loaded(facts), Some(loaded)),
            Err(e) => (ConfigFacts::Invalid(format!("{e:#}")), None),
        },
    };
    let files = CodexFiles::new(&homes.codex);
    let codex = codex_facts(&files);
    let running = helper_running(homes);
    let port = scope
        .port
        .or_else(|| codex.helper_url.as_deref().and_then(url_port))
        .or_else(|| running.as_ref().map(|r| r.proxy.port()))
        .unwrap_or(super::serve::DEFAULT_PORT);
    let codex_binary = binary_facts(loaded.as_ref(), &files);
    Facts {
        config_path,
        config,
        codex,
        codex_binary,
        port: port_facts(port, running.as_ref()),
        ledger: ledger_facts(homes, running.as_ref()),
        clock: (!scope.offline).then(|| loaded.as_ref().map(clock_facts).unwrap_or_default()),
    }
}

fn loaded_facts(loaded: &LoadedConfig) -> anyhow::Result<LoadedFacts> {
    let env = |name: &str| std::env::var(name).ok();
    let plan = Plan::from_config(loaded, &env)?;
    let missing_env = plan
        .graph
        .upstreams
        .iter()
        .flat_map(|u| {
            u.credential
                .missing_env
                .iter()
                .map(|var| (u.key().to_string(), var.clone()))
        })
        .collect();
    let mut inline_secrets = Vec::new();
    for (id, provider) in &loaded.config.codex.providers {
        if provider.auth_token.is_some() {
            inline_secrets.push(format!("codex.providers.{id}.auth_token"));
        }
        if provider.api_key.is_some() {
            inline_secrets.push(format!("codex.providers.{id}.api_key"));
        }
    }
    Ok(LoadedFacts {
        ignored_keys: loaded.deferred_keys.clone(),
        missing_env,
        inline_secrets,
        mode: file_mode(&loaded.path),
    })
}

fn file_mode(path: &std::path::Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).ok().map(|m| m.permissions().mode())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn codex_facts(files: &CodexFiles) -> CodexFacts {
    match switch::status(files) {
        Ok(status) => CodexFacts {
            helper_url: status.enabled.then_some(status.base_url).flatten(),
            drift: status.drift,
            unreadable: None,
        },
        Err(e) => CodexFacts {
            unreadable: Some(format!("{e:#}")),
            ..CodexFacts::default()
        },
    }
}

/// The port of a loopback URL such as `http://127.0.0.1:3211/v1`.
fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// The helper running on this home: the lock held and its announcement readable.
fn helper_running(homes: &Homes) -> Option<RunningServe> {
    super::serve_lock::is_held(&super::serve_lock::path(homes))
        .then(|| running::find(&homes.running()))
        .flatten()
}

fn binary_facts(loaded: Option<&LoadedConfig>, files: &CodexFiles) -> BinaryFacts {
    let configured = loaded.map_or_else(
        || "codex".to_string(),
        |l| l.config.proxy.codex_binary.clone(),
    );
    if let Some(path) = discover::configured(&configured) {
        return match discover::probe(&path, discover::Origin::Configured) {
            Some(found) => BinaryFacts::Found(found),
            None => BinaryFacts::ConfiguredNotRunnable(path),
        };
    }
    let recorded: Option<CodexBinary> = files.state().ok().flatten().and_then(|s| s.codex_binary);
    match discover::for_catalog(&configured, recorded.as_ref()) {
        Some(found) => BinaryFacts::Found(found),
        None => BinaryFacts::NotFound,
    }
}

fn port_facts(port: u16, running: Option<&RunningServe>) -> PortFacts {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let in_use = TcpStream::connect_timeout(&addr, CONNECT_LIMIT).is_ok();
    PortFacts {
        port,
        in_use,
        ours: running.is_some_and(|r| r.proxy.port() == port),
        owner: in_use.then(|| super::serve::port_owner(port)).flatten(),
    }
}

fn ledger_facts(homes: &Homes, running: Option<&RunningServe>) -> Option<LedgerFacts> {
    let store = match LedgerPlace::configured(homes) {
        Ok(LedgerPlace::File(path)) => sqlite_facts(path)?,
        Ok(LedgerPlace::Postgres(url)) => postgres_facts(homes, Ok(&url)),
        // A config that does not load is reported by its own check; only a bad URL is here.
        Err(e) if load::load(&homes.helper_config()).is_ok() => postgres_facts(homes, Err(e)),
        Err(_) => return None,
    };
    let lost_rows = running.and_then(|r| r.admin).and_then(|admin| {
        let status = super::block_on(crate::admin::client::get(admin, "/runtime/status"))
            .ok()?
            .ok()?;
        let ledger = status.get("ledger")?;
        let count = |key: &str| {
            ledger
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        Some(count("dropped") + count("failed"))
    });
    Some(LedgerFacts { store, lost_rows })
}

/// The SQLite file's size and `PRAGMA quick_check`; `None` when there is no file yet.
fn sqlite_facts(path: std::path::PathBuf) -> Option<LedgerStoreFacts> {
    let size_bytes = std::fs::metadata(&path).ok()?.len();
    let quick_check = crate::ledger::store::open_read_only(&path)
        .and_then(|conn| {
            let mut statement = conn.prepare("PRAGMA quick_check(20)")?;
            let rows = statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            anyhow::Ok(rows.join("\n"))
        })
        .map_err(|e| format!("{e:#}"));
    Some(LedgerStoreFacts::File {
        path,
        size_bytes,
        quick_check,
    })
}

/// The PostgreSQL ledger's newest row (connecting within the ledger's own bounds, changing
/// nothing there) and the rows waiting in this machine's spool.
fn postgres_facts(
    homes: &Homes,
    url: Result<&crate::postgres::DatabaseUrl, anyhow::Error>,
) -> LedgerStoreFacts {
    let (shown, newest_age_ms) = match url {
        Ok(url) => (
            url.shown().to_string(),
            crate::ledger::pg::read::newest_started_ms(url)
                .map(|newest| newest.map(|ms| crate::time::now_ms().saturating_sub(ms)))
                .map_err(|e| format!("{e:#}")),
        ),
        Err(e) => ("[ledger] url".to_string(), Err(format!("{e:#}"))),
    };
    let spool = LedgerPlace::spool_path(homes);
    let spool_bytes = std::fs::metadata(&spool).map_or(0, |m| m.len());
    LedgerStoreFacts::Postgres {
        shown,
        newest_age_ms,
        spooled_rows: if spool_bytes > 0 {
            count_lines(&spool)
        } else {
            0
        },
        spool_bytes,
    }
}

/// Lines in a file (the spool: one row a line, capped at 64 MiB by its writer).
fn count_lines(path: &std::path::Path) -> u64 {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let mut reader = std::io::BufReader::new(file).take(256 << 20);
    let mut buffer = [0u8; 64 * 1024];
    let mut lines = 0u64;
    while let Ok(n @ 1..) = reader.read(&mut buffer) {
        lines += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    lines
}

/// Each enabled relay's `Date` against this machine's clock: a `HEAD` of its base URL (no
/// credential sent), through the route the proxy would use, at most [`CLOCK_LIMIT`] each.
fn clock_facts(loaded: &LoadedConfig) -> Vec<ClockFacts> {
    let Ok(state) = ProxyState::for_command(loaded) else {
        return Vec::new();
    };
    let plan = state.plan();
    let asked = super::block_on(futures_util::future::join_all(
        plan.graph.upstreams.iter().map(|upstream| {
            let state = &state;
            async move {
                let skew_ms =
                    match tokio::time::timeout(CLOCK_LIMIT, relay_date(state, upstream)).await {
                        Ok(result) => result,
                        Err(_) => Err(format!("no answer within {} s", CLOCK_LIMIT.as_secs())),
                    };
                ClockFacts {
                    relay: upstream.key().to_string(),
                    skew_ms,
                }
            }
        }),
    ));
    asked.unwrap_or_default()
}

async fn relay_date(
    state: &ProxyState,
    upstream: &crate::routing::Upstream,
) -> Result<i64, String> {
    let client = state.client_for(upstream).map_err(|e| format!("{e:#}"))?;
    let request = http::Request::builder()
        .method(http::Method::HEAD)
        .uri(upstream.base_url.join(""))
        .header(
            http::header::USER_AGENT,
            concat!("codex-helper/", env!("CARGO_PKG_VERSION")),
        )
        .body(bytes::Bytes::new())
        .map_err(|_| "the relay's URL is not usable".to_string())?;
    let response = client
        .send(request)
        .await
        .map_err(|e| format!("cannot reach the relay: {}", e.message))?;
    let now = crate::time::now_ms();
    let date = response
        .headers()
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| "its answer has no Date header".to_string())?;
    let relay_ms = crate::doctor::http_date::parse_ms(date)
        .ok_or_else(|| "its Date header is not an HTTP date".to_string())?;
    Ok(relay_ms as i64 - now as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_of_codexs_helper_url() {
        assert_eq!(url_port("http://127.0.0.1:3211/v1"), Some(3211));
        assert_eq!(url_port("http://[::1]:4000/v1"), Some(4000));
        assert_eq!(url_port("http://localhost/v1"), None);
    }
}
