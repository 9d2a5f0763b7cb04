//! A throwaway PostgreSQL cluster for the tests, started from Debian's binaries (`initdb`,
//! `postgres`, `createdb` from the `postgresql` package) in a temporary directory on a random
//! port, once per test process; each test gets a fresh database in it. The cluster stops and
//! its directory is removed when the test process ends (its guard pipe closes). No running
//! server is assumed.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a test helper fails loudly"
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Whether the tests run on PostgreSQL (`AJAR_TEST_DB=postgres`).
pub fn enabled() -> bool {
    std::env::var("AJAR_TEST_DB").is_ok_and(|v| v == "postgres")
}

/// A running throwaway cluster. It stops, and its directory is removed, when the test process
/// ends (its guard pipe closes).
pub struct Cluster {
    port: u16,
    bin: PathBuf,
    dir: PathBuf,
    _guard: Mutex<ChildStdin>,
    _keeper: Mutex<Child>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DATABASES: AtomicU64 = AtomicU64::new(0);

/// The directory of the newest installed PostgreSQL's binaries (or `$AJAR_PG_BIN`).
fn bin_dir() -> PathBuf {
    if let Some(b) = std::env::var_os("AJAR_PG_BIN") {
        return PathBuf::from(b);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (Debian package postgresql)")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL version under /usr/lib/postgresql")
        .1
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `sh -c SCRIPT` as the `postgres` user when running as root (PostgreSQL refuses root).
fn shell(script: &str, args: &[&str]) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", script, "sh"]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script, "sh"]);
        c
    };
    c.args(args);
    c
}

impl Cluster {
    /// Starts a cluster of this test's own (e.g. to restart it without disturbing others).
    pub fn start() -> Cluster {
        start()
    }

    /// A fresh, empty database; answers its URL.
    pub fn database(&self) -> String {
        let name = format!("t{}", DATABASES.fetch_add(1, Ordering::SeqCst));
        let port = self.port.to_string();
        let ok = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", &name])
            .status()
            .expect("createdb");
        assert!(ok.success(), "createdb {name} failed");
        format!("postgres://postgres@127.0.0.1:{port}/{name}")
    }

    /// Restarts the server (fast shutdown: open connections are cut), as a database failover
    /// or maintenance would.
    pub fn restart(&self) {
        let ok = shell(
            "\"$2/pg_ctl\" -D \"$1/data\" -w -m fast restart >>\"$1/ctl.log\" 2>&1",
            &[
                &self.dir.display().to_string(),
                &self.bin.display().to_string(),
            ],
        )
        .status()
        .expect("pg_ctl restart");
        assert!(ok.success(), "pg_ctl restart failed");
    }
}

fn start() -> Cluster {
    let bin = bin_dir();
    let dir = std::env::temp_dir().join(format!(
        "ajar-pg-{}-{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("cluster directory");
    if is_root() {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(
            ok.success(),
            "cannot give the cluster directory to postgres"
        );
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("port").port()
    };
    let (dir_s, port_s, bin_s) = (
        dir.display().to_string(),
        port.to_string(),
        bin.display().to_string(),
    );
    let init = shell(
        "\"$3/initdb\" -D \"$1/data\" -U postgres --auth=trust --no-sync -E UTF8 >\"$1/initdb.log\" 2>&1",
        &[&dir_s, &port_s, &bin_s],
    )
    .status()
    .expect("initdb");
    assert!(init.success(), "initdb failed; see {dir_s}/initdb.log");
    // The server lives as long as this process holds the pipe; then it stops and is removed.
    let mut child = shell(
        "\"$3/pg_ctl\" -D \"$1/data\" -w -l \"$1/server.log\" \
         -o \"-p $2 -k $1 -h 127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=400\" start >/dev/null 2>&1; \
         echo started; read _; \"$3/pg_ctl\" -D \"$1/data\" -m immediate stop >/dev/null 2>&1; \
         rm -rf \"$1\"",
        &[&dir_s, &port_s, &bin_s],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .expect("postgres");
    let guard = child.stdin.take().expect("guard pipe");
    let mut started = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut started)
        .expect("postgres started");
    for _ in 0..200 {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port_s, "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Cluster {
                port,
                bin,
                dir,
                _guard: Mutex::new(guard),
                _keeper: Mutex::new(child),
            };
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "waits for a server to start, not for a window"
        )]
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("PostgreSQL did not start; see {dir_s}/server.log");
}

/// A fresh, empty database in the process's shared test cluster (started on first use);
/// answers its URL.
pub fn fresh_database() -> String {
    CLUSTER.get_or_init(start).database()
}
