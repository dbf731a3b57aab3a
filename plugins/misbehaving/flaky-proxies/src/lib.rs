//! A start-proxies that panics on the first attempt of a director and works
//! on every later one, for the test of a phase trapping mid-attempt (I9).

use ratchet_guest::recruit::start_roles;
use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, ServiceKind};
use ratchet_guest::{Host, Phase, outcome};

/// The flaky phase.
pub struct FlakyProxies;

impl Phase for FlakyProxies {
    fn run(mut state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        assert!(state.attempt > 1, "flaky-proxies traps on attempt {}", state.attempt);
        let step = match start_roles(host, ServiceKind::CommitProxy, state.config.desired_proxies.max(1)) {
            Ok(started) => {
                state.commit_proxies = started;
                PhaseStep::Next("start-resolvers".into())
            }
            Err(reason) => PhaseStep::Stalled(reason),
        };
        outcome(state, step)
    }
}

ratchet_guest::export_phase!(FlakyProxies, wit = "../../../wit");
