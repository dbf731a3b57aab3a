//! Phase 12, **start-proxies**: where commits enter the new generation.
//!
//! Decides: the nodes of `desired-proxies` commit proxies, spread over zones
//! by the placement policy. The host starts them fenced by this epoch; they
//! accept commits only once the layout is assembled and they are unlocked.
//! Stalls when placement or a start fails.

use ratchet_guest::recruit::start_phase;
use ratchet_guest::types::{AttemptState, PhaseOutcome, ServiceKind, StateField};
use ratchet_guest::{Host, Phase};

/// The phase run after this one.
pub const NEXT: &str = "start-resolvers";

/// The start-proxies phase.
pub struct StartProxies;

impl Phase for StartProxies {
    const READS: &'static [StateField] = &[];
    const WRITES: &'static [StateField] = &[StateField::CommitProxies];

    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let count = state.config.desired_proxies.max(1);
        start_phase(state, host, ServiceKind::CommitProxy, count, NEXT, |state, started| state.commit_proxies = started)
    }
}

ratchet_guest::export_phase!(StartProxies);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, state};
    use ratchet_guest::types::PhaseStep;

    #[test]
    fn starts_the_desired_proxies() {
        let mut host = ScriptedHost::with_nodes(3, 3);
        let mut s = state(1, None);
        s.config.desired_proxies = 2;
        let out = StartProxies::run(s, &mut host);
        assert_eq!(out.state.commit_proxies.len(), 2);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
    }
}
