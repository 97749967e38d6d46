//! systemd readiness and watchdog (`sd_notify`): datagrams to the socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace). Without the variable every call is a no-op, so the same
//! binary runs under systemd, Kubernetes or a shell.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to systemd's notification socket, if there is one.
pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
    /// Half of `$WATCHDOG_USEC`: how often to ping, when a watchdog is set.
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|path| {
                let sock = UnixDatagram::unbound().ok()?;
                Some((sock, path))
            });
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|us| *us > 0)
            .map(|us| Duration::from_micros(us / 2));
        Notifier {
            socket,
            watchdog_every,
        }
    }

    /// Sends `state` (e.g. `READY=1`); errors are logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some((sock, path)) = &self.socket else {
            return;
        };
        let res = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
        } else {
            sock.send_to(state.as_bytes(), path)
        };
        if let Err(e) = res {
            tracing::warn!(socket = %path, error = %e, "sd_notify failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), path.display().to_string())),
            watchdog_every: None,
        };
        n.notify("READY=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn no_socket_is_a_no_op() {
        let n = Notifier {
            socket: None,
            watchdog_every: None,
        };
        n.notify("READY=1");
    }
}
