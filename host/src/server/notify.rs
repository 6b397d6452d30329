//! The systemd readiness protocol (`sd_notify`): with `Type=notify`, systemd waits for
//! `READY=1` on the datagram socket named in `NOTIFY_SOCKET` before it counts the service as
//! started, and `STOPPING=1` tells it a shutdown has begun. Without `NOTIFY_SOCKET` (not under
//! systemd) nothing is sent.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (newline-separated `KEY=VALUE` lines) to the service manager, if there is one.
/// Returns whether it was sent; a failure is logged, never fatal (the service runs either way).
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let sent = (|| -> std::io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            // An abstract socket (Linux).
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            socket.send_to(state.as_bytes(), &path)?;
        }
        Ok(())
    })();
    match sent {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "could not notify the service manager");
            false
        }
    }
}

/// Tells the service manager the service is ready, with a status line.
pub fn ready(status: &str) -> bool {
    notify(&format!(
        "READY=1\nSTATUS={status}\nMAINPID={}",
        std::process::id()
    ))
}

/// Tells the service manager a shutdown has begun.
pub fn stopping() -> bool {
    notify("STOPPING=1\nSTATUS=stopping: running jobs finish")
}
