//! The real PostgreSQL and Redis that team mode's integration tests run against
//! (`tests/support/team_services.rs`): they answer, stay on loopback, do not collide when started
//! at once, and leave no process or folder behind, whether the test drops them, panics, exits
//! with a shared server, or is killed.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::team_services::{Postgres, Redis, redis_command, redis_get};

/// How long a stopped server's port and folder may take to disappear.
const GONE_LIMIT: Duration = Duration::from_secs(15);

/// Whether something accepts TCP connections on `127.0.0.1:port`.
fn listening(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok()
}

/// Waits (bounded) until nothing listens on `port` and `folder` is gone.
fn assert_gone(what: &str, port: u16, folder: &Path) {
    let deadline = Instant::now() + GONE_LIMIT;
    while (listening(port) || folder.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !listening(port),
        "{what}: port {port} still accepts connections"
    );
    assert!(
        !folder.exists(),
        "{what}: {} still exists",
        folder.display()
    );
}

#[test]
fn postgres_and_redis_answer_on_loopback_and_leave_nothing_behind() {
    let postgres = Postgres::start().expect("PostgreSQL starts");
    let redis = Redis::start().expect("Redis starts");

    let url = postgres.url();
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/test", postgres.port())
    );
    assert_eq!(postgres.psql(&url, "SELECT 1").unwrap().trim(), "1");
    postgres
        .psql(
            &url,
            "CREATE TABLE usage (who text PRIMARY KEY, tokens bigint NOT NULL); \
             INSERT INTO usage VALUES ('ana', 1200), ('bo', 34);",
        )
        .unwrap();
    assert_eq!(
        postgres
            .psql(&url, "SELECT who, tokens FROM usage ORDER BY who")
            .unwrap(),
        "ana|1200\nbo|34\n"
    );
    assert_eq!(
        postgres.psql(&url, "SHOW server_encoding").unwrap().trim(),
        "UTF8"
    );
    // Only loopback: the server listens on 127.0.0.1 and nowhere else.
    assert_eq!(
        postgres.psql(&url, "SHOW listen_addresses").unwrap().trim(),
        "127.0.0.1"
    );
    let error = postgres.psql(&url, "SELECT * FROM missing").unwrap_err();
    assert!(
        format!("{error:#}").contains("missing"),
        "psql errors say what failed: {error:#}"
    );

    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/", redis.port()));
    assert_eq!(
        redis_command(
            redis.port(),
            &["SET", "team:cooldown:relay-a", "until 12:00"]
        )
        .unwrap(),
        "+OK"
    );
    assert_eq!(
        redis_get(redis.port(), "team:cooldown:relay-a")
            .unwrap()
            .as_deref(),
        Some("until 12:00")
    );
    assert_eq!(redis_get(redis.port(), "team:nothing").unwrap(), None);
    let long = "x".repeat(20_000);
    redis_command(redis.port(), &["SET", "long", &long]).unwrap();
    assert_eq!(redis_get(redis.port(), "long").unwrap(), Some(long));

    let (pg_port, pg_folder) = (postgres.port(), postgres.folder().to_path_buf());
    let (redis_port, redis_folder) = (redis.port(), redis.folder().to_path_buf());
    assert!(listening(pg_port) && listening(redis_port));
    drop(postgres);
    drop(redis);
    // Drop itself waits for the servers: gone at once, not eventually.
    assert!(!listening(pg_port), "PostgreSQL still listens after Drop");
    assert!(!pg_folder.exists(), "PostgreSQL's folder survives Drop");
    assert!(!listening(redis_port), "Redis still listens after Drop");
    assert!(!redis_folder.exists(), "Redis's folder survives Drop");
}

#[test]
fn redis_stop_refuses_connections_and_restart_comes_back_empty_on_the_same_port() {
    let mut redis = Redis::start().expect("Redis starts");
    let port = redis.port();
    redis_command(port, &["SET", "affinity:thread-1", "relay-a"]).unwrap();

    redis.stop();
    let refused = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(redis_command(port, &["PING"]).is_err());
    redis.stop(); // stopping a stopped server is fine

    redis.restart().expect("Redis restarts");
    assert_eq!(redis.port(), port);
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(redis_command(port, &["PING"]).unwrap(), "+PONG");
    assert_eq!(
        redis_get(port, "affinity:thread-1").unwrap(),
        None,
        "no persistence: a restarted Redis is empty"
    );
    // restart on a running server stops it first.
    redis_command(port, &["SET", "k", "v"]).unwrap();
    redis.restart().expect("Redis restarts while running");
    assert_eq!(redis_get(port, "k").unwrap(), None);

    let folder = redis.folder().to_path_buf();
    drop(redis);
    assert!(!listening(port));
    assert!(!folder.exists());
}

#[test]
fn two_postgres_servers_started_at_once_do_not_collide() {
    let starts: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(Postgres::start))
        .collect();
    let servers: Vec<Postgres> = starts
        .into_iter()
        .map(|start| start.join().unwrap().expect("PostgreSQL starts"))
        .collect();
    let (a, b) = (&servers[0], &servers[1]);
    assert_ne!(a.port(), b.port());
    assert_ne!(a.folder(), b.folder());
    a.psql(&a.url(), "CREATE TABLE only_in_a (n int)").unwrap();
    b.psql(&b.url(), "CREATE TABLE only_in_b (n int)").unwrap();
    let tables = |p: &Postgres| {
        p.psql(
            &p.url(),
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'only_in_%'",
        )
        .unwrap()
    };
    assert_eq!(tables(a), "only_in_a\n");
    assert_eq!(tables(b), "only_in_b\n");
}

#[test]
fn the_shared_postgres_gives_each_test_its_own_database() {
    let shared = Postgres::shared().expect("the shared PostgreSQL starts");
    assert!(std::ptr::eq(shared, Postgres::shared().unwrap()));
    let ledger = shared.create_database("ledger_one").unwrap();
    let other = shared.create_database("ledger_two").unwrap();
    assert_eq!(
        ledger,
        format!("postgres://postgres@127.0.0.1:{}/ledger_one", shared.port())
    );
    shared.psql(&ledger, "CREATE TABLE rows (n int)").unwrap();
    shared
        .psql(&other, "SELECT count(*) FROM rows")
        .expect_err("another database has no such table");
    let error = shared.create_database("ledger_one").unwrap_err();
    assert!(format!("{error:#}").contains("already exists"), "{error:#}");
    let error = shared.create_database("x; DROP DATABASE test").unwrap_err();
    assert!(format!("{error:#}").contains("lowercase"), "{error:#}");
}

#[test]
fn a_panicking_test_still_stops_its_servers() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let postgres = Postgres::start().expect("PostgreSQL starts");
        let redis = Redis::start().expect("Redis starts");
        sender
            .send([
                (postgres.port(), postgres.folder().to_path_buf()),
                (redis.port(), redis.folder().to_path_buf()),
            ])
            .unwrap();
        panic!("a failing team test");
    })
    .join();
    assert!(outcome.is_err());
    for (port, folder) in receiver.recv().unwrap() {
        assert!(!listening(port), "port {port} still accepts connections");
        assert!(!folder.exists(), "{} survives the panic", folder.display());
    }
}

/// Set in the copy of this test binary that [`a_test_process_that_exits_or_is_killed_leaves_no_server_behind`]
/// runs: `exit` (start the shared PostgreSQL and end normally) or `kill` (start servers and wait to
/// be killed); the file to write `PORT FOLDER` lines to is in `..._FILE`.
const CHILD_MODE: &str = "CODEX_HELPER_TEAM_SERVICES_CHILD";
const CHILD_FILE: &str = "CODEX_HELPER_TEAM_SERVICES_CHILD_FILE";
const THIS_TEST: &str = "a_test_process_that_exits_or_is_killed_leaves_no_server_behind";

#[test]
fn a_test_process_that_exits_or_is_killed_leaves_no_server_behind() {
    if let Some(mode) = std::env::var_os(CHILD_MODE) {
        return run_as_child(
            mode.to_str().unwrap(),
            &PathBuf::from(std::env::var_os(CHILD_FILE).unwrap()),
        );
    }
    let folder = tempfile::tempdir().unwrap();
    for mode in ["exit", "kill"] {
        let announced = folder.path().join(format!("{mode}.servers"));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", THIS_TEST, "--test-threads", "1", "--nocapture"])
            .env(CHILD_MODE, mode)
            .env(CHILD_FILE, &announced)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !announced.exists() && Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the {mode} child ended ({status}) before announcing its servers");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let servers: Vec<(u16, PathBuf)> = std::fs::read_to_string(&announced)
            .unwrap_or_else(|_| panic!("the {mode} child announced no servers"))
            .lines()
            .map(|line| {
                let (port, folder) = line.split_once(' ').unwrap();
                (port.parse().unwrap(), PathBuf::from(folder))
            })
            .collect();
        assert!(!servers.is_empty());
        if mode == "kill" {
            for (port, _) in &servers {
                assert!(
                    listening(*port),
                    "the killed child's server on {port} was up"
                );
            }
            child.kill().unwrap();
        }
        let status = child.wait().unwrap();
        assert_eq!(status.success(), mode == "exit", "{mode} child: {status}");
        for (port, server_folder) in &servers {
            assert_gone(&format!("{mode} child"), *port, server_folder);
        }
    }
}

/// The child's side: announce the servers, then end (`exit`) or wait to be killed (`kill`).
fn run_as_child(mode: &str, announce: &Path) {
    let mut lines = Vec::new();
    let mut held = Vec::new();
    if mode == "exit" {
        let shared = Postgres::shared().unwrap();
        lines.push(format!("{} {}", shared.port(), shared.folder().display()));
    } else {
        let postgres = Postgres::start().unwrap();
        let redis = Redis::start().unwrap();
        lines.push(format!(
            "{} {}",
            postgres.port(),
            postgres.folder().display()
        ));
        lines.push(format!("{} {}", redis.port(), redis.folder().display()));
        held.push((postgres, redis));
    }
    let partial = announce.with_extension("partial");
    std::fs::write(&partial, lines.join("\n")).unwrap();
    std::fs::rename(&partial, announce).unwrap();
    if mode == "kill" {
        // Bounded: the parent kills this process long before.
        std::thread::sleep(Duration::from_secs(60));
    }
}
