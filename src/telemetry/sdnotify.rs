//! systemd readiness and watchdog (`sd_notify`) through the `sd-notify`
//! crate: datagrams to the socket named by `$NOTIFY_SOCKET` (a path, or
//! `@name` for the abstract namespace). Without the variable every call is
//! a no-op, so the same binary runs under systemd, Kubernetes or a shell.
//! The watchdog is on only when `$WATCHDOG_USEC` is set for this process
//! (`$WATCHDOG_PID` absent or ours: a variable inherited from a parent
//! service is not ours to answer).

use sd_notify::NotifyState;
use std::time::Duration;

/// systemd's notification socket, if there is one.
pub struct Notifier {
    /// `$NOTIFY_SOCKET`, for the log line of a failed send.
    socket: Option<String>,
    /// Half of `$WATCHDOG_USEC`: how often to ping, when a watchdog is set.
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty());
        let watchdog_every = sd_notify::watchdog_enabled()
            .filter(|d| !d.is_zero())
            .map(|d| d / 2);
        Notifier {
            socket,
            watchdog_every,
        }
    }

    /// Sends `state`, one `KEY=value` per line (e.g. `READY=1`); errors
    /// are logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some(path) = &self.socket else {
            return;
        };
        let states: Vec<NotifyState> = state.lines().map(NotifyState::Custom).collect();
        if let Err(e) = sd_notify::notify(&states) {
            tracing::warn!(socket = %path, error = %e, "sd_notify failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_socket_is_a_no_op() {
        let n = Notifier {
            socket: None,
            watchdog_every: None,
        };
        n.notify("READY=1");
    }
}
