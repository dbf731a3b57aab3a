//! Automatic rollback: a version that traps or times out a number of calls
//! in a row is replaced by the version its slot served before.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::registry::CallOutcome;

/// Consecutive failed calls of each slot's latest-seen version.
pub(super) struct Streaks {
    threshold: u32,
    by_slot: Mutex<BTreeMap<String, (u32, u32)>>,
}

impl Streaks {
    /// Counts towards `threshold` failures in a row; 0 never trips.
    pub fn new(threshold: u32) -> Self {
        Streaks { threshold, by_slot: Mutex::default() }
    }

    /// Notes a call; true when it makes `version` of `slot` reach the
    /// threshold (and starts the count again).
    pub fn note(&self, slot: &str, version: u32, outcome: CallOutcome) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let mut by_slot = self.by_slot.lock().unwrap_or_else(|e| e.into_inner());
        let streak = by_slot.entry(slot.to_string()).or_insert((version, 0));
        if streak.0 != version {
            *streak = (version, 0);
        }
        match outcome {
            CallOutcome::Ok => {
                streak.1 = 0;
                return false;
            }
            // The host's condition: neither for the version nor against it.
            CallOutcome::HostBusy => return false,
            CallOutcome::Timeout | CallOutcome::Trap => {}
        }
        streak.1 += 1;
        if streak.1 >= self.threshold {
            streak.1 = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_k_failures_in_a_row_of_one_version() {
        let streaks = Streaks::new(3);
        assert!(!streaks.note("s", 2, CallOutcome::Trap));
        assert!(!streaks.note("s", 2, CallOutcome::Timeout));
        assert!(!streaks.note("s", 2, CallOutcome::Ok), "a success starts the count again");
        assert!(!streaks.note("s", 2, CallOutcome::Trap));
        assert!(!streaks.note("s", 2, CallOutcome::HostBusy), "a busy host is not the version's failure");
        assert!(!streaks.note("other", 1, CallOutcome::Trap), "slots count apart");
        assert!(!streaks.note("s", 2, CallOutcome::Trap));
        assert!(streaks.note("s", 2, CallOutcome::Trap));
        assert!(!streaks.note("s", 3, CallOutcome::Trap), "a new version starts from zero");
        assert!(!Streaks::new(0).note("s", 1, CallOutcome::Trap));
    }
}
