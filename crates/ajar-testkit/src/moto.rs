//! A real EC2 API emulator for the AWS enforcer's tests: moto in server mode, from the Python
//! package index, started on a free loopback port and stopped when dropped.
//!
//! moto comes from the virtual environment `AJAR_MOTO_VENV` names (CI makes it once,
//! `.ci/run`), or else from a throwaway one made for the test process and filled from the
//! index. When neither works the test fails, unless `AJAR_SKIP_SDK=1` says to skip it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The moto release the tests are written against.
pub const PINS: &[&str] = &["moto[server]==5.2.5"];

/// A running moto server.
pub struct Moto {
    child: Child,
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The Python of moto's virtual environment (boto3 is there too).
    pub python: PathBuf,
}

/// The `moto_server` program, or `None` when it cannot be had and skipping was asked for.
fn moto_server() -> Option<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        if let Ok(venv) = std::env::var("AJAR_MOTO_VENV") {
            let bin = PathBuf::from(venv).join("bin/moto_server");
            return if bin.exists() {
                Ok(bin)
            } else {
                Err(format!("AJAR_MOTO_VENV names no moto: {bin:?}"))
            };
        }
        let dir = std::env::temp_dir().join(format!("ajar-moto-{}", std::process::id()));
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .output();
        match made {
            Ok(o) if o.status.success() => {}
            other => {
                return Err(format!(
                    "python3 -m venv failed (Debian: python3-venv): {other:?}"
                ));
            }
        }
        let pip = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PINS)
            .output();
        match pip {
            Ok(o) if o.status.success() => Ok(dir.join("bin/moto_server")),
            Ok(o) => Err(format!(
                "pip could not install moto: {}",
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Err(format!("pip did not run: {e}")),
        }
    });
    match found {
        Ok(bin) => Some(bin.clone()),
        Err(why) if std::env::var("AJAR_SKIP_SDK").is_ok_and(|v| v == "1") => {
            eprintln!("test SKIPPED (AJAR_SKIP_SDK=1): {why}");
            None
        }
        Err(why) => {
            panic!("{why}\n(set AJAR_SKIP_SDK=1 to skip this test where moto cannot be installed)")
        }
    }
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers. `None` when moto
    /// cannot be had and `AJAR_SKIP_SDK=1`. With `verify_after`, moto checks signatures and
    /// IAM permissions after that many calls (`INITIAL_NO_AUTH_ACTION_COUNT`).
    pub fn start_with(verify_after: Option<u32>) -> Option<Moto> {
        let bin = moto_server()?;
        let python = bin.with_file_name("python");
        let mut command = Command::new(bin);
        command
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = verify_after {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let mut child = command.spawn().expect("moto_server starts");
        // Werkzeug says where it listens on stderr; keep reading both so moto never blocks.
        let (tx, rx) = std::sync::mpsc::channel();
        for out in [
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if std::env::var("TEST_LOG").is_ok() {
                        eprintln!("moto: {line}");
                    }
                    if let Some(at) = line.find("Running on http://") {
                        let _ = tx.send(line[at + "Running on ".len()..].trim().to_owned());
                    }
                }
            });
        }
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("moto_server says where it listens");
        let moto = Moto { child, url, python };
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let up = std::net::TcpStream::connect(moto.url.trim_start_matches("http://")).is_ok();
            if up {
                return Some(moto);
            }
            assert!(
                Instant::now() < until,
                "moto never answered at {}",
                moto.url
            );
            #[allow(
                clippy::disallowed_methods,
                reason = "waiting for a process to listen, not for an access window"
            )]
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts moto without signature checks; see [`Moto::start_with`].
    pub fn start() -> Option<Moto> {
        Self::start_with(None)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
