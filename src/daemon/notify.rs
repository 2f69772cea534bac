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
        let watchdog = watchdog_period(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        )
        // Feed at half the period, as sd_watchdog_enabled(3) recommends; never spin.
        .map(|p| (p / 2).max(Duration::from_millis(10)));
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

/// sd_watchdog_enabled(3)'s rule: WATCHDOG_USEC gives the period; when WATCHDOG_PID is
/// set it must be our pid (the variable leaked from a parent otherwise). sd-notify 0.4's
/// `watchdog_enabled` insists on WATCHDOG_PID being present, which systemd does not
/// promise, so the rule is spelled out here.
fn watchdog_period(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid {
        Some(p) if p.trim().parse::<u32>().ok() != Some(me) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_follows_sd_watchdog_enabled() {
        let ms = Duration::from_millis;
        assert_eq!(watchdog_period(Some("200000"), None, 7), Some(ms(200)));
        assert_eq!(watchdog_period(Some("200000"), Some("7"), 7), Some(ms(200)));
        assert_eq!(watchdog_period(Some("200000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("soon"), None, 7), None);
        assert_eq!(watchdog_period(None, Some("7"), 7), None);
    }
}
