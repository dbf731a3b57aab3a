//! Phase 14, **assemble-layout**: the new generation, written down.
//!
//! Decides: the new layout: this epoch, the new sequencer, proxies,
//! resolvers and logs, the storage teams (surviving and recruited replicas),
//! a descriptor for each, and the recovery version. It stages the layout with
//! the host, which checks it (I6) and keeps it, then unlocks the services
//! against it in two parallel batches: everything but the proxies, then the
//! proxies, since they open the generation to commits. Stalls when the host
//! refuses the layout or an unlock fails.

use ratchet_guest::layout::{assemble, members};
use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep, StateField};
use ratchet_guest::{Host, Phase, outcome};

/// The phase run after this one.
pub const NEXT: &str = "persist-layout";

/// The assemble-layout phase.
pub struct AssembleLayout;

impl Phase for AssembleLayout {
    const READS: &'static [StateField] = &[
        StateField::OldLayout,
        StateField::OldServices,
        StateField::OldStorageTeams,
        StateField::Recruits,
        StateField::NewLogs,
        StateField::NewStorageTeams,
        StateField::Sequencer,
        StateField::CommitProxies,
        StateField::Resolvers,
        StateField::RecoveryVersion,
    ];
    // The layout is not written back: staged, it is the host's `new-layout`.
    const WRITES: &'static [StateField] = &[];

    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let layout = match assemble(&state) {
            Ok(layout) => layout,
            Err(reason) => return outcome(state, PhaseStep::Failed(reason)),
        };
        if let Err(err) = host.stage_layout(&layout) {
            return outcome(state, PhaseStep::Stalled(format!("staging the layout: {err:?}")));
        }
        let (early, proxies): (Vec<String>, Vec<String>) = members(&layout).into_iter().partition(|id| !layout.commit_proxies.contains(id));
        // Everything else first, in parallel; the proxies last, since they
        // open the generation to commits.
        for batch in [early, proxies] {
            let results = host.unlock(&batch);
            if let Some((id, err)) = batch.iter().zip(results).find_map(|(id, r)| r.err().map(|e| (id, e))) {
                return outcome(state, PhaseStep::Stalled(format!("unlocking {id}: {err:?}")));
            }
        }
        outcome(state, PhaseStep::Next(NEXT.into()))
    }
}

ratchet_guest::export_phase!(AssembleLayout);
ratchet_guest::use_call_arena!();

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_guest::testing::{ScriptedHost, old_layout, state};
    use ratchet_guest::types::{ClusterError, LogAssignment, Recruit, ServiceDescriptor, ServiceKind};

    fn descriptor(id: &str, kind: ServiceKind) -> ServiceDescriptor {
        ServiceDescriptor { id: id.into(), kind, node: "n1".into(), address: String::new() }
    }

    #[test]
    fn builds_the_layout_and_unlocks_proxies_last() {
        let mut s = state(2, Some(old_layout()));
        s.recovery_version = Some(42);
        s.sequencer = Some(descriptor("seq2", ServiceKind::Sequencer));
        s.commit_proxies = vec![descriptor("proxy2", ServiceKind::CommitProxy)];
        s.resolvers = vec![descriptor("res2", ServiceKind::Resolver)];
        s.recruits = vec![Recruit { vacancy_id: "log-0".into(), service: descriptor("log9", ServiceKind::Log) }];
        s.new_logs = vec![LogAssignment { id: "log9".into(), tags: vec![0, 1] }];
        s.new_storage_teams = old_layout().storage_teams;
        let mut host = ScriptedHost::default();
        let out = AssembleLayout::run(s.clone(), &mut host);
        assert_eq!(out.step, PhaseStep::Next(NEXT.into()));
        let layout = host.staged.clone().unwrap();
        assert_eq!((layout.epoch, layout.recovery_version), (2, 42));
        assert_eq!(layout.services.len(), 4 + 6);
        assert_eq!(host.calls[..2], ["stage epoch 2", "unlock log9"], "staged before any unlock");
        assert_eq!(host.calls.last().unwrap(), "unlock proxy2");
        // A layout the host refuses unlocks nothing.
        let mut host = ScriptedHost::default();
        host.stage = Some(Err(ClusterError::Refused("I6: no".into())));
        let out = AssembleLayout::run(s, &mut host);
        assert!(matches!(&out.step, PhaseStep::Stalled(r) if r.contains("I6: no")), "{:?}", out.step);
        assert_eq!(host.calls, ["stage epoch 2"]);
    }

    #[test]
    fn without_a_sequencer_there_is_no_layout() {
        let out = AssembleLayout::run(state(2, None), &mut ScriptedHost::default());
        assert_eq!(out.step, PhaseStep::Failed("no sequencer was started".into()));
    }
}
