//! Phase 13, **start-resolvers**: conflict detection for the new generation.
//!
//! Decides: the nodes of `desired-resolvers` resolvers, placed by the policy.
//! The host starts them fenced by this epoch. Stalls when placement or a
//! start fails.

use ratchet_guest::recruit::start_phase;
use ratchet_guest::types::{AttemptState, PhaseOutcome, ServiceKind, StateField};
use ratchet_guest::{Host, Phase};

/// The phase run after this one.
pub const NEXT: &str = "assemble-layout";

/// The start-resolvers phase.
pub struct StartResolvers;

impl Phase for StartResolvers {
    const READS: &'static [StateField] = &[];
    const WRITES: &'static [StateField] = &[StateField::Resolvers];

    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let count = state.config.desired_resolvers.max(1);
        start_phase(state, host, ServiceKind::Resolver, count, NEXT, |state, started| state.resolvers = started)
    }
}

ratchet_guest::export_phase!(StartResolvers);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, state};
    use ratchet_guest::types::PhaseStep;

    #[test]
    fn starts_the_desired_resolvers() {
        let mut host = ScriptedHost::with_nodes(3, 3);
        let out = StartResolvers::run(state(1, None), &mut host);
        assert_eq!(out.state.resolvers.len(), 1);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
    }
}
