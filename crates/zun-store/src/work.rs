//! Wake-ups of the agents waiting for work, per host: a write that gives a
//! host work wakes that host's agent only, so a process simulating a
//! thousand hosts does not wake a thousand agents for each create.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct WorkSignal {
    hosts: Mutex<HashMap<String, Arc<Notify>>>,
}

impl WorkSignal {
    fn notify_of(&self, host: &str) -> Arc<Notify> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(hosts.entry(host.to_owned()).or_default())
    }

    /// Wakes the agent of `host` (every agent for `None`), leaving it a
    /// permit if it is busy right now, so a write made while it works is not
    /// missed until its next timeout.
    pub(crate) fn wake(&self, host: Option<&str>) {
        let hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let wake = |notify: &Notify| {
            notify.notify_waiters();
            notify.notify_one();
        };
        match host {
            Some(host) => {
                if let Some(notify) = hosts.get(host) {
                    wake(notify);
                }
            }
            None => hosts.values().for_each(|n| wake(n)),
        }
    }

    /// Resolves when `host` may have new work, or after `timeout`.
    pub(crate) async fn wait(&self, host: &str, timeout: Duration) {
        let notify = self.notify_of(host);
        // Timing out is the normal idle path; the caller re-polls either way.
        let _ = tokio::time::timeout(timeout, notify.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_its_host_only() {
        let signal = Arc::new(WorkSignal::default());
        let started = std::time::Instant::now();
        let waiter = |host: &'static str| {
            let signal = Arc::clone(&signal);
            tokio::spawn(async move { signal.wait(host, Duration::from_secs(5)).await })
        };
        let (a, b) = (waiter("a"), waiter("b"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        signal.wake(Some("a"));
        a.await.expect("a");
        assert!(started.elapsed() < Duration::from_secs(2), "a woke at once");
        assert!(!b.is_finished(), "b was not woken");
        signal.wake(None);
        b.await.expect("b");
        assert!(started.elapsed() < Duration::from_secs(2));
        // A wake while nobody waits leaves a permit for the next wait.
        signal.wake(Some("a"));
        let again = std::time::Instant::now();
        signal.wait("a", Duration::from_secs(5)).await;
        assert!(again.elapsed() < Duration::from_secs(1));
    }
}
