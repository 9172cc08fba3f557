//! Real PostgreSQL and Redis servers for team mode's integration tests: each a throwaway
//! instance on loopback, on a free port, in its own temporary folder, gone when the test ends.
//!
//! The servers are Debian's (`postgresql`, `redis-server`, installed by `scripts/test`); a
//! system-wide service those packages may start is never used. PostgreSQL refuses to run as
//! root, so as root (here and in CI) `initdb` and `postgres` run as the `postgres` system user
//! the package creates, in a folder it owns; otherwise as the current user.
//!
//! Cleanup has two layers. `Drop` stops the server (also when a test panics) and removes the
//! folder. And every instance has a watchdog: a small `sh` process, in its own process group,
//! that reads a pipe whose only writer is the test process. When the test process is gone for
//! any reason (normal exit with a server in a `static`, `SIGKILL` by a timeout, Ctrl-C), the
//! kernel closes that pipe, and the watchdog stops the servers whose process ids are in the
//! folder's `watched.pids` and removes the folder. `Postgres::shared` relies on that layer alone,
//! as a `static` is never dropped.
//!
//! Every call here blocks (std processes, short sleeps) and is bounded; from an async test, call
//! them before the code under test runs or in `spawn_blocking`.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long a server may take to accept connections after it is started.
pub const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after it is asked to, before it is killed.
pub const STOP_LIMIT: Duration = Duration::from_secs(5);
/// How many times a start is tried on a new port when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;
/// How much of a server's log an error quotes.
const LOG_TAIL_BYTES: u64 = 3000;
/// The superuser `initdb` creates, whoever runs the server.
pub const POSTGRES_USER: &str = "postgres";
/// The database `Postgres::start` creates for its test.
pub const POSTGRES_DATABASE: &str = "test";

/// A throwaway PostgreSQL server on `127.0.0.1`.
pub struct Postgres {
    bin: PathBuf,
    instance: Instance,
}

impl Postgres {
    /// Initialises a cluster in a new temporary folder (UTF8, C locale, trust authentication
    /// on the local socket and loopback only), starts it on a free loopback port with its socket
    /// in that folder (fsync off, small buffers), waits until it accepts connections and creates
    /// the database [`POSTGRES_DATABASE`].
    pub fn start() -> Result<Postgres> {
        let bin = postgres_bin_dir()?;
        let owner = server_user()?;
        let mut instance = Instance::new("codex-helper-pg-", libc::SIGQUIT)?;
        let folder = instance.folder().to_path_buf();
        let socket = folder.join("socket");
        fs::create_dir(&socket).context("creating the PostgreSQL socket folder")?;
        owner.give(&folder)?;
        owner.give(&socket)?;
        let initdb = owner
            .command(&bin.join("initdb"), &folder)
            .arg("--pgdata")
            .arg(folder.join("data"))
            .args([
                "--username",
                POSTGRES_USER,
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--auth-local",
                "trust",
                "--auth-host",
                "trust",
                "--no-sync",
                "--no-instructions",
            ])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", bin.join("initdb").display()))?;
        if !initdb.status.success() {
            bail!(
                "initdb failed ({}): {}{}",
                initdb.status,
                String::from_utf8_lossy(&initdb.stdout),
                String::from_utf8_lossy(&initdb.stderr)
            );
        }
        let log = folder.join("postgres.log");
        instance.start_on_a_free_port(|instance| {
            let port = instance.port.to_string();
            let mut server = owner.command(&bin.join("postgres"), &folder);
            server
                .arg("-D")
                .arg(folder.join("data"))
                .arg("-k")
                .arg(&socket)
                .args(["-p", &port])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off"])
                .args(["-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"])
                .args(["-c", "shared_buffers=16MB"])
                .args(["-c", "max_connections=100"]);
            instance.spawn(&mut server, &log)?;
            instance.wait_ready("postgres", &log, START_LIMIT, |port| {
                Command::new(bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p", &port.to_string()])
                    .stdin(Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success())
            })
        })?;
        let postgres = Postgres { bin, instance };
        postgres.create_database(POSTGRES_DATABASE)?;
        Ok(postgres)
    }

    /// One server for the whole test binary, started by the first caller; each test creates its
    /// own database in it with [`Postgres::create_database`]. A `static` is never dropped: the
    /// server is stopped and its folder removed by its watchdog when the test process exits.
    pub fn shared() -> Result<&'static Postgres> {
        static SHARED: OnceLock<std::result::Result<Postgres, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Postgres::start().map_err(|error| format!("{error:#}")))
            .as_ref()
            .map_err(|error| anyhow!("the shared PostgreSQL did not start: {error}"))
    }

    /// `postgres://postgres@127.0.0.1:PORT/test`, the database `start` created.
    pub fn url(&self) -> String {
        self.database_url(POSTGRES_DATABASE)
    }

    /// The URL of database `name` on this server.
    pub fn database_url(&self, name: &str) -> String {
        format!(
            "postgres://{POSTGRES_USER}@127.0.0.1:{}/{name}",
            self.instance.port
        )
    }

    pub fn port(&self) -> u16 {
        self.instance.port
    }

    /// The temporary folder holding the cluster, its socket and `postgres.log`.
    pub fn folder(&self) -> &Path {
        self.instance.folder()
    }

    /// Creates database `name` (lowercase letters, digits and `_`, at most 63) and returns its
    /// URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        if !is_plain_identifier(name) {
            bail!(
                "database name {name:?}: use 1-63 lowercase letters, digits or _, not starting with a digit"
            );
        }
        self.psql(
            &self.database_url("postgres"),
            &format!("CREATE DATABASE {name}"),
        )?;
        Ok(self.database_url(name))
    }

    /// Runs `sql` with this server's `psql` against `url` (stopping at the first error) and
    /// returns its output unaligned, tuples only: one row a line, columns split by `|`.
    pub fn psql(&self, url: &str, sql: &str) -> Result<String> {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        if !output.status.success() {
            bail!(
                "psql {sql:?} on {url} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A throwaway Redis server on `127.0.0.1`, without persistence.
pub struct Redis {
    instance: Instance,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port in a new temporary folder (no RDB, no
    /// AOF) and waits until it answers `PING`.
    pub fn start() -> Result<Redis> {
        let mut redis = Redis {
            // SIGKILL, as a crash: `stop` is Redis going down under the code under test.
            instance: Instance::new("codex-helper-redis-", libc::SIGKILL)?,
        };
        redis
            .instance
            .start_on_a_free_port(|instance| Redis::launch(instance, START_LIMIT))?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.instance.port)
    }

    pub fn port(&self) -> u16 {
        self.instance.port
    }

    /// The temporary folder holding `redis.conf` and `redis.log`.
    pub fn folder(&self) -> &Path {
        self.instance.folder()
    }

    /// Kills the server (`SIGKILL`, as a crash): connections are refused until
    /// [`Redis::restart`]; its data is gone.
    pub fn stop(&mut self) {
        self.instance.stop();
    }

    /// Starts the server again on the same port (stopping it first if it runs), empty, and
    /// waits until it answers `PING`.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        // The port was ours a moment ago; another process taking it meanwhile is retried
        // within the bound rather than moved away from, as clients hold this address.
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match Redis::launch(&mut self.instance, left) {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() >= deadline => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Starts `redis-server` on the instance's port and waits (at most `limit`) for `PONG`.
    fn launch(instance: &mut Instance, limit: Duration) -> Result<()> {
        let folder = instance.folder().to_path_buf();
        let conf = folder.join("redis.conf");
        let log = folder.join("redis.log");
        fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {}\nprotected-mode no\ndaemonize no\nsave \"\"\n\
                 appendonly no\ndir {}\nlogfile \"\"\ndatabases 16\n",
                instance.port,
                folder.display()
            ),
        )
        .context("writing redis.conf")?;
        let mut server = Command::new(redis_server_bin()?);
        server.arg(&conf).current_dir(&folder);
        instance.spawn(&mut server, &log)?;
        instance.wait_ready("redis-server", &log, limit, |port| {
            redis_command(port, &["PING"]).is_ok_and(|reply| reply == "+PONG")
        })
    }
}

/// One server process on a loopback port in its own temporary folder, with its watchdog.
/// Dropping it stops the server, then removes the folder.
struct Instance {
    port: u16,
    server: Option<Child>,
    /// What `stop` sends before it waits and kills.
    stop_signal: libc::c_int,
    watchdog: Watchdog,
    /// Last, so it is removed after the server stopped.
    folder: tempfile::TempDir,
}

impl Instance {
    fn new(prefix: &str, stop_signal: libc::c_int) -> Result<Instance> {
        let folder = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("creating a server folder")?;
        Ok(Instance {
            port: 0,
            server: None,
            stop_signal,
            watchdog: Watchdog::start(folder.path())?,
            folder,
        })
    }

    fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// Runs `start` on a free port, again on another one if it fails (the port may have been
    /// taken between choosing and binding it), at most [`PORT_ATTEMPTS`] times.
    fn start_on_a_free_port(
        &mut self,
        mut start: impl FnMut(&mut Instance) -> Result<()>,
    ) -> Result<()> {
        let mut last_error = anyhow!("no start was tried");
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port()?;
            match start(self) {
                Ok(()) => return Ok(()),
                Err(error) => {
                    self.stop();
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    /// Spawns `command` as the server, its output appended to `log`, watched by the watchdog.
    fn spawn(&mut self, command: &mut Command, log: &Path) -> Result<()> {
        let server = command
            .stdin(Stdio::null())
            .stdout(append(log)?)
            .stderr(append(log)?)
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        self.watchdog.watch(&[server.id()])?;
        self.server = Some(server);
        Ok(())
    }

    /// Polls `ready(port)` until it holds, the server exits (an error quoting its log), or
    /// `limit` passes (the same).
    fn wait_ready(
        &mut self,
        name: &str,
        log: &Path,
        limit: Duration,
        mut ready: impl FnMut(u16) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten())
            {
                bail!(
                    "{name} exited ({status}) before accepting connections on port {}; its log ends:\n{}",
                    self.port,
                    log_tail(log)
                );
            }
            if ready(self.port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{name} did not accept connections on port {} within {limit:?}; its log ends:\n{}",
                    self.port,
                    log_tail(log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends the stop signal, waits up to [`STOP_LIMIT`], then kills; nothing is left watched.
    fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            stop_child(&mut server, self.stop_signal);
        }
        let _ = self.watchdog.watch(&[]);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
        self.watchdog.release();
    }
}

/// Sends one command to the Redis on `127.0.0.1:port` (RESP arrays of bulk strings) and returns
/// the first line of its reply without the line break, e.g. `+PONG`, `+OK`, `$5` (bulk reply;
/// see [`redis_get`]), `-ERR ...`. Bounded by a 2 s timeout per step.
pub fn redis_command(port: u16, args: &[&str]) -> Result<String> {
    let mut reply = redis_exchange(port, args)?;
    let end = reply.find("\r\n").unwrap_or(reply.len());
    reply.truncate(end);
    Ok(reply)
}

/// `GET key` on the Redis at `127.0.0.1:port`: the value, or `None` when there is none.
pub fn redis_get(port: u16, key: &str) -> Result<Option<String>> {
    let reply = redis_exchange(port, &["GET", key])?;
    let (head, rest) = reply
        .split_once("\r\n")
        .ok_or_else(|| anyhow!("unexpected GET reply {reply:?}"))?;
    if head == "$-1" {
        return Ok(None);
    }
    let length: usize = head
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("unexpected GET reply {reply:?}"))?;
    rest.get(..length)
        .map(|value| Some(value.to_string()))
        .ok_or_else(|| anyhow!("short GET reply {reply:?}"))
}

/// Writes one command and reads until the reply looks complete (a simple reply line, or a bulk
/// header and its body), at most 64 KiB.
fn redis_exchange(port: u16, args: &[&str]) -> Result<String> {
    const STEP: Duration = Duration::from_secs(2);
    const CAP: usize = 64 * 1024;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, STEP)
        .with_context(|| format!("connecting to Redis on {address}"))?;
    stream.set_read_timeout(Some(STEP))?;
    stream.set_write_timeout(Some(STEP))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply_complete(&reply) {
        let n = stream.read(&mut chunk).context("reading Redis's reply")?;
        if n == 0 {
            bail!("Redis closed the connection mid-reply");
        }
        reply.extend_from_slice(&chunk[..n]);
        if reply.len() > CAP {
            bail!("Redis's reply exceeds {CAP} bytes");
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Whether `reply` holds one whole simple, error, integer or bulk-string reply.
fn reply_complete(reply: &[u8]) -> bool {
    let Some(line_end) = reply.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    if reply[0] != b'$' {
        return true;
    }
    match std::str::from_utf8(&reply[1..line_end])
        .ok()
        .and_then(|n| n.parse::<i64>().ok())
    {
        Some(length) if length >= 0 => reply.len() >= line_end + 2 + length as usize + 2,
        _ => true,
    }
}

/// The directory of Debian's PostgreSQL server binaries (`/usr/lib/postgresql/N/bin`, the
/// highest N with `initdb`), else the one `initdb` on `PATH` is in.
pub fn postgres_bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    find_on_path("initdb")
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .ok_or_else(|| {
            anyhow!(
                "PostgreSQL's server binaries are not installed (no /usr/lib/postgresql/*/bin/initdb): \
                 run scripts/test, or apt-get install postgresql"
            )
        })
}

/// `redis-server`: Debian's `/usr/bin/redis-server`, else the one on `PATH`.
pub fn redis_server_bin() -> Result<PathBuf> {
    let debian = PathBuf::from("/usr/bin/redis-server");
    if debian.is_file() {
        return Ok(debian);
    }
    find_on_path("redis-server").ok_or_else(|| {
        anyhow!("redis-server is not installed: run scripts/test, or apt-get install redis-server")
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Whether `name` can be used unquoted as a PostgreSQL identifier.
fn is_plain_identifier(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Who runs PostgreSQL: the `postgres` system user when we are root, else ourselves.
struct ServerUser {
    ids: Option<(u32, u32)>,
}

fn server_user() -> Result<ServerUser> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(ServerUser { ids: None });
    }
    let id = |flag: &str| -> Result<u32> {
        let output = Command::new("id")
            .args([flag, POSTGRES_USER])
            .output()
            .context("running id")?;
        if !output.status.success() {
            bail!(
                "PostgreSQL refuses to run as root and there is no `{POSTGRES_USER}` user to run it as: \
                 apt-get install postgresql creates it"
            );
        }
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .context("parsing the output of id")
    };
    Ok(ServerUser {
        ids: Some((id("-u")?, id("-g")?)),
    })
}

impl ServerUser {
    /// Makes `path` the server user's.
    fn give(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("giving {} to {POSTGRES_USER}", path.display()))?;
        }
        Ok(())
    }

    /// `program`, run as the server user in `folder`.
    fn command(&self, program: &Path, folder: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir(folder);
        if let Some((uid, gid)) = self.ids {
            // std drops the supplementary groups when it changes from root to `uid`.
            command.uid(uid).gid(gid);
        }
        command
    }
}

/// The test process's last word to a server folder: see the module comment.
struct Watchdog {
    folder: PathBuf,
    child: Option<Child>,
    pipe: Option<ChildStdin>,
}

/// Reads stdin until a line or its end. `released`: the test process cleaned up itself. Else
/// (the pipe closed: the test process is gone) stops the watched processes, bounded, and
/// removes the folder.
const WATCHDOG_SCRIPT: &str = r#"
trap '' INT TERM HUP
IFS= read -r word || word=""
[ "$word" = released ] && exit 0
pids=$(cat "$1/watched.pids" 2>/dev/null)
# Whether a watched process still runs (a zombie nobody reaps does not count).
alive() {
  for p in $pids; do
    read -r _ _ state _ < "/proc/$p/stat" 2>/dev/null || continue
    [ "$state" != Z ] && return 0
  done
  return 1
}
if [ -n "$pids" ]; then
  kill -QUIT $pids 2>/dev/null
  i=0
  while [ $i -lt 50 ] && alive; do sleep 0.1; i=$((i+1)); done
  kill -KILL $pids 2>/dev/null
fi
rm -rf "$1"
"#;

impl Watchdog {
    fn start(folder: &Path) -> Result<Watchdog> {
        let mut child = Command::new("sh")
            .args(["-c", WATCHDOG_SCRIPT, "watchdog"])
            .arg(folder)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting the server watchdog (sh)")?;
        let pipe = child.stdin.take();
        Ok(Watchdog {
            folder: folder.to_path_buf(),
            child: Some(child),
            pipe,
        })
    }

    /// Records the processes to stop if the test process dies (none once they are stopped, so a
    /// reused process id is never signalled).
    fn watch(&self, pids: &[u32]) -> Result<()> {
        let text: Vec<String> = pids.iter().map(u32::to_string).collect();
        let path = self.folder.join("watched.pids");
        let partial = self.folder.join("watched.pids.partial");
        fs::write(&partial, text.join(" ")).context("writing watched.pids")?;
        fs::rename(&partial, &path).context("writing watched.pids")
    }

    /// Tells the watchdog the servers are stopped and waits (bounded) for it to exit.
    fn release(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(b"released\n");
        }
        if let Some(mut child) = self.child.take() {
            stop_child_after(&mut child, STOP_LIMIT);
        }
    }
}

/// Sends `signal` to `child`, waits up to [`STOP_LIMIT`] for it to exit, then kills it.
fn stop_child(child: &mut Child, signal: libc::c_int) {
    if let Ok(None) = child.try_wait() {
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill has no memory preconditions; the child is not reaped yet, so its
            // id is still its own.
            unsafe { libc::kill(pid, signal) };
        }
    }
    stop_child_after(child, STOP_LIMIT);
}

/// Waits up to `limit` for `child` to exit, then kills and reaps it.
fn stop_child_after(child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A free loopback port the kernel picked (free now; a start retries if it is taken before use).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("picking a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `path` opened for appending (created), to hand to a server as its stdout or stderr.
fn append(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The last [`LOG_TAIL_BYTES`] of a server's log.
fn log_tail(path: &Path) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)));
    let mut tail = Vec::new();
    let _ = file.take(LOG_TAIL_BYTES).read_to_end(&mut tail);
    String::from_utf8_lossy(&tail).into_owned()
}
