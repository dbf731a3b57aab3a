//! A counter that rises whenever a service registers or comes back, which a
//! stalled director waits on to retry at once.
//!
//! Not a `tokio::sync::watch`: a watch spreads its waiters over several
//! internal queues picked at random, so two directors woken by the same
//! registration would run in a random order and a simulated run would not
//! replay from its seed. Here waiters are woken in an order fixed by when
//! they began to wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
struct Shared {
    count: AtomicU64,
    notify: Notify,
}

/// The cluster's side: announces registrations. Clones announce to the
/// same waiters.
#[derive(Clone, Default)]
pub struct Registrations {
    shared: Arc<Shared>,
}

impl Registrations {
    /// No registration yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A service registered or came back: wakes every waiter.
    pub fn announce(&self) {
        self.shared.count.fetch_add(1, Ordering::SeqCst);
        self.shared.notify.notify_waiters();
    }

    /// A watch that sees the registrations from now on.
    pub fn subscribe(&self) -> RegistrationWatch {
        RegistrationWatch { seen: self.shared.count.load(Ordering::SeqCst), shared: self.shared.clone() }
    }
}

/// A director's side: waits for the next registration.
pub struct RegistrationWatch {
    shared: Arc<Shared>,
    seen: u64,
}

impl RegistrationWatch {
    /// Returns once a registration newer than the last one seen happened
    /// (at once if one already did). Cancel-safe.
    pub async fn changed(&mut self) {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Registered before the count is read, so no announcement falls
            // between the check and the wait.
            notified.as_mut().enable();
            let now = self.shared.count.load(Ordering::SeqCst);
            if now != self.seen {
                self.seen = now;
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_sees_registrations_after_it_subscribed() {
        let registrations = Registrations::new();
        registrations.announce();
        let mut watch = registrations.subscribe();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), watch.changed()).await;
        assert!(waiting.is_err(), "nothing new since subscribing");
        registrations.announce();
        tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed()).await.expect("woken");
    }

    #[tokio::test]
    async fn every_waiter_is_woken() {
        let registrations = Arc::new(Registrations::new());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let mut watch = registrations.subscribe();
                tokio::spawn(async move { watch.changed().await })
            })
            .collect();
        tokio::task::yield_now().await;
        registrations.announce();
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        }
    }
}
