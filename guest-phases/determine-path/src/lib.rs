//! Phase 3, **determine-path**: a new cluster or a recovery?
//!
//! Decides: the path. No logs in the old layout (or no layout) means a new
//! cluster to initialize; any log means a recovery, even when none of the
//! logs could be locked, because initializing over them could lose
//! acknowledged writes (I5, which the host also enforces).

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, RecoveryPath, StateField};
use ratchet_guest::{Host, Phase, outcome};

/// The determine-path phase.
pub struct DeterminePath;

/// The path for a state: initialize only when the old layout names no log.
pub fn choose(state: &AttemptState) -> RecoveryPath {
    match &state.old_layout {
        Some(layout) if !layout.logs.is_empty() => RecoveryPath::Recover,
        _ => RecoveryPath::Initialize,
    }
}

impl Phase for DeterminePath {
    const READS: &'static [StateField] = &[StateField::OldLayout];
    const WRITES: &'static [StateField] = &[StateField::Path];

    fn run(mut state: AttemptState, _host: &mut dyn Host) -> PhaseOutcome {
        let path = choose(&state);
        state.path = Some(path);
        let next = match path {
            RecoveryPath::Initialize => "initialize",
            RecoveryPath::Recover => "plan-log-recovery",
        };
        outcome(state, PhaseStep::Next(next.into()))
    }
}

ratchet_guest::export_phase!(DeterminePath);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};

    #[test]
    fn logs_in_the_old_layout_mean_recover_even_with_none_locked() {
        let out = DeterminePath::run(state(2, Some(old_layout())), &mut ScriptedHost::default());
        assert_eq!(out.state.path, Some(RecoveryPath::Recover));
        assert_eq!(out.step, PhaseStep::Next("plan-log-recovery".into()));
    }

    #[test]
    fn no_layout_or_no_logs_means_initialize() {
        let out = DeterminePath::run(state(1, None), &mut ScriptedHost::default());
        assert_eq!(out.step, PhaseStep::Next("initialize".into()));
        let mut layout = old_layout();
        layout.logs.clear();
        assert_eq!(choose(&state(2, Some(layout))), RecoveryPath::Initialize);
    }
}
