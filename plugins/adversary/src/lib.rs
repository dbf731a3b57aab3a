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
    fn the_policies_answer_plausibly_and_flawed_now_and_then() {
        use ratchet_guest::types::{PlacementConstraints, PlacementRequest, PlacementVacancy, ReplicaHistory, ReplicaOutcome, ServiceKind};
        let host = ScriptedHost::with_nodes(9, 3);
        let constraints =
            PlacementConstraints { min_distinct_zones: 1, exclude_nodes: vec![], required_capabilities: vec![], distinct_nodes: false };
        let group = |count| PlacementVacancy { kind: ServiceKind::Log, count, team: None, constraints: constraints.clone() };
        let request = PlacementRequest { vacancies: vec![group(2), group(1)], nodes: host.nodes.clone(), teams: vec![] };
        let known = |node: &String| host.nodes.iter().any(|n| &n.id == node);
        let whole = |answer: &[ratchet_guest::types::Assignment]| {
            answer.len() == 2
                && answer.iter().enumerate().all(|(i, a)| a.vacancy == i as u32 && a.nodes.len() == [2, 1][i] && a.nodes.iter().all(known))
        };
        let answers: Vec<_> = (0..200).map(|seed| place(seed, &request)).collect();
        let plausible = answers.iter().filter(|a| a.as_ref().is_ok_and(|a| whole(a))).count();
        assert!(plausible > 100, "{plausible} of 200 answers fit the request");
        assert!(plausible < 200, "every answer fit: the adversary never tries a flawed one");

        let history = ReplicaHistory {
            durable_version: 5,
            oldest_retained: 10,
            head_version: 50,
            committed_version: 50,
            checkpoint_version: Some(20),
        };
        let plans: Vec<_> = (0..200).map(|seed| decide(seed, history)).collect();
        let kinds: std::collections::BTreeSet<String> = plans
            .iter()
            .map(|p| match &p.outcome {
                ReplicaOutcome::ZeroGap => "zero-gap".into(),
                ReplicaOutcome::CatchUp(c) => format!("catch-up {}", format!("{c:?}").split('(').next().unwrap_or_default()),
                ReplicaOutcome::Rebuild(r) => format!("rebuild {}", format!("{r:?}").split('(').next().unwrap_or_default()),
            })
            .collect();
        assert_eq!(kinds.len(), 5, "every kind of plan: {kinds:?}");
        assert!(plans.iter().any(|p| p.history != history), "a forged proof now and then");
    }
}
