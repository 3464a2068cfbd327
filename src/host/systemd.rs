//! The systemd service manager protocol (`sd_notify`), for `Type=notify` units with a watchdog
//! (`board/facegate.service`): tell systemd when facegate is ready, and keep feeding the
//! watchdog from the main loop so that a hung loop gets the service restarted.
//!
//! Each notification is one datagram of `KEY=VALUE` lines sent to the Unix socket named in
//! `$NOTIFY_SOCKET` (a path, or an abstract socket name written with a leading `@`). Outside
//! systemd the variable is unset and every call is a no-op returning `Ok(false)`.
//!
//! Why not the `sd-notify` crate: its 0.5.0 connects to `$NOTIFY_SOCKET` as a file path, so an
//! abstract socket (`@name`, which systemd and container managers use) fails; this module
//! handles both and is tested against both.
//!
//! ```no_run
//! use facegate::host::systemd;
//! // ... models loaded, camera and hardware opened ...
//! systemd::notify_ready()?;
//! let feed_every = systemd::watchdog_interval().map(|w| w / 2);
//! // in the main loop, at least every `feed_every`:
//! systemd::notify_watchdog()?;
//! # Ok::<(), facegate::host::systemd::NotifyError>(())
//! ```

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={socket:?} is neither an absolute path nor an abstract name (@name)")]
    BadSocket { socket: OsString },
    #[error("cannot notify systemd through {socket:?}: {source}")]
    Send {
        socket: OsString,
        source: std::io::Error,
    },
}

/// Tell systemd that start-up is complete (`READY=1`). Returns whether a notification was sent
/// (`false`: not started by systemd).
pub fn notify_ready() -> Result<bool, NotifyError> {
    notify("READY=1")
}

/// Feed the watchdog (`WATCHDOG=1`). Call at least every [`watchdog_interval`] / 2.
pub fn notify_watchdog() -> Result<bool, NotifyError> {
    notify("WATCHDOG=1")
}

/// Tell systemd that facegate is shutting down (`STOPPING=1`).
pub fn notify_stopping() -> Result<bool, NotifyError> {
    notify("STOPPING=1")
}

/// A one-line status shown by `systemctl status facegate` (`STATUS=...`).
pub fn notify_status(status: &str) -> Result<bool, NotifyError> {
    // A newline would start a new KEY=VALUE assignment.
    notify(&format!("STATUS={}", status.replace('\n', " ")))
}

/// Send `state` (one or more `KEY=VALUE` lines) to `$NOTIFY_SOCKET`; `Ok(false)` when unset.
pub fn notify(state: &str) -> Result<bool, NotifyError> {
    notify_socket(std::env::var_os("NOTIFY_SOCKET").as_deref(), state)
}

/// The watchdog period systemd expects (`WatchdogSec=` of the unit, passed as
/// `$WATCHDOG_USEC`), or `None` when there is no watchdog for this process (unset, zero,
/// unparsable, or `$WATCHDOG_PID` naming another process).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`notify`] with the socket given: `None` or empty means not under systemd.
pub fn notify_socket(socket: Option<&OsStr>, state: &str) -> Result<bool, NotifyError> {
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return Ok(false);
    };
    let addr = socket_addr(socket)?;
    let send_err = |source| NotifyError::Send {
        socket: socket.to_owned(),
        source,
    };
    let sock = UnixDatagram::unbound().map_err(send_err)?;
    let sent = sock
        .send_to_addr(state.as_bytes(), &addr)
        .map_err(send_err)?;
    if sent != state.len() {
        return Err(send_err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes", state.len()),
        )));
    }
    tracing::trace!(state, "notified systemd");
    Ok(true)
}

/// The socket address `$NOTIFY_SOCKET` names: `@name` is the abstract name `name`, anything
/// else must be an absolute path.
fn socket_addr(socket: &OsStr) -> Result<SocketAddr, NotifyError> {
    let bytes = socket.as_bytes();
    let bad = || NotifyError::BadSocket {
        socket: socket.to_owned(),
    };
    match bytes.first() {
        Some(b'@') => abstract_addr(&bytes[1..]).ok_or_else(bad),
        Some(b'/') => SocketAddr::from_pathname(std::path::Path::new(socket)).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> Option<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name).ok()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> Option<SocketAddr> {
    None
}

/// [`watchdog_interval`] from the variables' values and this process's id.
pub fn watchdog_from(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = pid {
        let pid: u32 = pid.trim().parse().ok()?;
        if pid != my_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(listener: &UnixDatagram) -> String {
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 512];
        let n = listener.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("facegate-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let socket = path.as_os_str();
        assert!(notify_socket(Some(socket), "READY=1").unwrap());
        assert_eq!(recv(&listener), "READY=1");
        assert!(notify_socket(Some(socket), "WATCHDOG=1").unwrap());
        assert_eq!(recv(&listener), "WATCHDOG=1");
        assert!(notify_socket(Some(socket), "STATUS=door locked\nREADY=1").unwrap());
        assert_eq!(recv(&listener), "STATUS=door locked\nREADY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("facegate-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let socket = OsString::from(format!("@{name}"));
        assert!(notify_socket(Some(&socket), "READY=1").unwrap());
        assert_eq!(recv(&listener), "READY=1");
        assert!(notify_socket(Some(&socket), "WATCHDOG=1").unwrap());
        assert_eq!(recv(&listener), "WATCHDOG=1");
    }

    #[test]
    fn no_socket_is_a_no_op_and_bad_sockets_are_errors() {
        assert!(!notify_socket(None, "READY=1").unwrap());
        assert!(!notify_socket(Some(OsStr::new("")), "READY=1").unwrap());
        let e = notify_socket(Some(OsStr::new("relative/notify")), "READY=1").unwrap_err();
        assert!(matches!(e, NotifyError::BadSocket { .. }), "{e}");
        // Nobody listens there: the send fails and says where it tried.
        let e = notify_socket(
            Some(OsStr::new("/nonexistent-facegate-dir/notify")),
            "READY=1",
        )
        .unwrap_err();
        assert!(
            matches!(e, NotifyError::Send { .. }) && e.to_string().contains("nonexistent"),
            "{e}"
        );
    }

    #[test]
    fn watchdog_interval_follows_usec_and_pid() {
        assert_eq!(
            watchdog_from(Some("30000000"), None, 42),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_from(Some("20000000"), Some("42"), 42),
            Some(Duration::from_secs(20))
        );
        assert_eq!(watchdog_from(Some("20000000"), Some("41"), 42), None);
        assert_eq!(watchdog_from(Some("0"), None, 42), None);
        assert_eq!(watchdog_from(Some("soon"), None, 42), None);
        assert_eq!(watchdog_from(None, Some("42"), 42), None);
    }
}
