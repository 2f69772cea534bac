//! systemd's notification protocol (sd_notify(3)): readiness, status, watchdog, reload and
//! stop. Every call is a no-op when NOTIFY_SOCKET is not set, so the daemon behaves the same
//! outside systemd. Failures are logged, never fatal: a supervisor that stopped listening
//! must not take the daemon down.

use sd_notify::NotifyState;
use std::time::Duration;

pub struct Notifier {
    watchdog: Option<Duration>,
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("sd_notify: {e}");
    }
}

impl Notifier {
    pub fn new() -> Notifier {
        let mut usec = 0;
        // WATCHDOG_PID is checked by the crate: a watchdog meant for another process is
        // not ours to feed.
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec).then(|| {
            // Feed at half the period, as sd_watchdog_enabled(3) recommends; never spin.
            Duration::from_micros(usec / 2).max(Duration::from_millis(10))
        });
        Notifier { watchdog }
    }

    /// How often to send WATCHDOG=1, when the service manager asked for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn ready(&self, status: &str) {
        send(&[
            NotifyState::Ready,
            NotifyState::MainPid(std::process::id()),
            NotifyState::Status(status),
        ]);
    }

    pub fn status(&self, status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        send(&[NotifyState::Watchdog]);
    }

    /// Type=notify-reload wants MONOTONIC_USEC with RELOADING=1 to match the reload to the
    /// signal; plain Type=notify ignores it.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    pub fn reloaded(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}
