//! A seeded adversary for every slot, to attack what the host guarantees
//! (S1–S6 in `docs/invariants.md`) rather than to recover anything.
//!
//! - In a phase slot ([`run_phase`]) it makes random host calls with random
//!   arguments: ids from the state and junk, ranges around what the locked
//!   logs hold and inverted ones, repeated ids, layouts edited at random
//!   from what the default phases would stage; sometimes it carries a whole
//!   recovery out on its own with a flaw somewhere; and it returns a random
//!   step with random edits of the state, host-owned fields included.
//! - In the placement slot ([`place`]) and the replica-recovery slot
//!   ([`decide`]) it answers with plausible answers, flawed now and then.
//!
//! The same code runs natively in the simulator (fast: `ratchet experiment
//! --adversary SLOT`) and, built into a component, in any phase slot of a
//! real cluster (`--plugin SLOT=FILE`), where it seeds itself from the
//! epoch, the attempt and the host's clock.

mod edits;
mod host;
mod phase;
mod policies;
mod rng;

pub use host::{AdversaryHost, SyncHost, block_on};
pub use phase::run_phase;
pub use policies::{decide, place};
pub use rng::{Rng, mix};

use ratchet_guest::types::{AttemptState, PhaseOutcome, StateField};
use ratchet_guest::{Host, RawPhase};

/// The adversary as a component in a phase slot.
pub struct Adversary;

impl RawPhase for Adversary {
    fn reads() -> Vec<StateField> {
        ratchet_guest::state_fields::ALL.to_vec()
    }

    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let seed = mix(&[state.epoch, u64::from(state.attempt), host.now_ms()]);
        block_on(run_phase(seed, state, &mut SyncHost(host), None))
    }
}

ratchet_guest::export_raw_phase!(Adversary, wit = "../../wit");
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};

    #[test]
    fn a_seed_gives_the_same_calls_and_the_seeds_differ() {
        let calls = |seed: u64| {
            let mut host = ScriptedHost::with_nodes(9, 3);
            let outcome = block_on(run_phase(seed, state(2, Some(old_layout())), &mut SyncHost(&mut host), None));
            (host.calls, format!("{:?}", outcome.step))
        };
        assert_eq!(calls(7), calls(7));
        let distinct: std::collections::BTreeSet<_> = (0..50).map(calls).collect();
        assert!(distinct.len() > 40, "50 seeds, {} distinct attacks", distinct.len());
    }

    #[test]
    fn policies_answer_every_request() {
        let host = ScriptedHost::with_nodes(9, 3);
        let request = ratchet_guest::types::PlacementRequest { vacancies: Vec::new(), nodes: host.nodes.clone(), teams: Vec::new() };
        for seed in 0..100 {
            let _ = place(seed, &request);
        }
    }
}
