//! systemd's readiness protocol (sd_notify(3)) for `ajar serve` under `Type=notify`: when
//! `NOTIFY_SOCKET` is set, a datagram such as `READY=1\nSTATUS=…` goes to that socket, a path
//! or (starting with `@`) an abstract name. A failure to notify is logged, never fatal.

use std::ffi::OsStr;

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to the service manager, when there
/// is one; logs a failure.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, state) {
        tracing::warn!(
            socket = %socket.to_string_lossy(),
            "cannot tell the service manager {:?}: {e}",
            state.lines().next().unwrap_or("")
        );
    }
}

#[cfg(target_os = "linux")]
fn send(socket: &OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None if bytes.starts_with(b"/") => SocketAddr::from_pathname(socket)?,
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "NOTIFY_SOCKET is neither an absolute path nor an abstract name (@…)",
            ));
        }
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(std::io::Error::other("the message was cut short"));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send(_socket: &OsStr, _state: &str) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "readiness notification is implemented on Linux only",
    ))
}
