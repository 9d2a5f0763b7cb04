//! `ajar serve` under systemd's `Type=notify`: with `NOTIFY_SOCKET` set (a path, or an abstract
//! name starting with `@`) it sends `READY=1` and a status once it listens; a socket nobody
//! listens on is logged, and the server serves anyway.

use super::{ajar, listening_url};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Starts `ajar serve` on a fresh data directory with `NOTIFY_SOCKET=socket`.
fn serve_notifying(data: &std::path::Path, socket: &str) -> Child {
    ajar()
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", socket)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first datagram on `socket`, within 60 seconds.
fn receive(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification within 60 s");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// `GET /readyz` at `url` (http://HOST:PORT) answers 200.
fn assert_ready(url: &str) {
    use std::io::{Read, Write};
    let host = url.strip_prefix("http://").unwrap();
    let mut tcp = std::net::TcpStream::connect(host).unwrap();
    write!(
        tcp,
        "GET /readyz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn serve_tells_systemd_it_is_ready_once_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut child = serve_notifying(&dir.path().join("data"), path.to_str().unwrap());
    let message = receive(&socket);
    let url = listening_url(&mut child);
    let lines: Vec<&str> = message.lines().collect();
    assert!(lines.contains(&"READY=1"), "{message:?}");
    assert!(
        lines.contains(&format!("STATUS=listening on {url}").as_str()),
        "{message:?}"
    );
    // Ready means ready: the listener answers.
    assert_ready(&url);
    stop(child);
}

#[test]
fn serve_notifies_an_abstract_socket_and_outlives_a_missing_one() {
    use std::os::linux::net::SocketAddrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("ajar-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    let child = serve_notifying(&dir.path().join("a"), &format!("@{name}"));
    assert!(receive(&socket).lines().any(|l| l == "READY=1"));
    stop(child);

    // Nobody listens at this path: the failure is logged and the server runs on.
    let missing = dir.path().join("nobody");
    let mut child = serve_notifying(&dir.path().join("b"), missing.to_str().unwrap());
    let url = listening_url(&mut child);
    assert_ready(&url);
    assert!(child.try_wait().unwrap().is_none(), "still running");
    stop(child);
}
