//! What a director reports about its attempts.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::bindings::types::{AttemptState, Epoch, Layout};

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptOutcome {
    /// The new generation is live; its layout is persisted.
    Completed(Layout),
    /// The attempt could not progress; it was rolled back and will be retried.
    Stalled(String),
    /// The attempt cannot succeed; the director stops.
    Failed(String),
    /// A newer epoch took over; this director stops.
    Superseded(Epoch),
}

impl AttemptReport {
    /// Time spent in wasm: the time its phase calls were running, less
    /// what the host spent answering them, when that is less (see
    /// [`PhaseRecord::running`]). The plugin overhead of the attempt:
    /// instantiation, guest code and copying values across the boundary.
    /// Where nothing waits (the in-process cluster), this is the phases'
    /// wall time minus their host calls.
    pub fn wasm_time(&self) -> Duration {
        let phases: Duration = self.timeline.iter().map(|p| p.duration).sum();
        let running: Duration = self.timeline.iter().map(|p| p.running).sum();
        running.min(phases.saturating_sub(self.host_time))
    }

    /// Time inside wasm: the guest code of its phases and of the policies
    /// they asked (see [`PhaseRecord::guest`]). Part of
    /// [`AttemptReport::wasm_time`], which adds instantiation and copying.
    pub fn guest_time(&self) -> Duration {
        self.timeline.iter().map(|p| p.guest).sum()
    }
}

impl AttemptOutcome {
    /// A one-word label.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptOutcome::Completed(_) => "completed",
            AttemptOutcome::Stalled(_) => "stalled",
            AttemptOutcome::Failed(_) => "failed",
            AttemptOutcome::Superseded(_) => "superseded",
        }
    }
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptOutcome::Completed(layout) => write!(f, "completed at epoch {}", layout.epoch),
            AttemptOutcome::Stalled(reason) => write!(f, "stalled: {reason}"),
            AttemptOutcome::Failed(reason) => write!(f, "failed: {reason}"),
            AttemptOutcome::Superseded(newer) => write!(f, "superseded by epoch {newer}"),
        }
    }
}

/// One phase of an attempt, as the timeline shows it.
#[derive(Clone, Debug)]
pub struct PhaseRecord {
    /// The phase (slot) name.
    pub phase: String,
    /// How long the call took, host calls included.
    pub duration: Duration,
    /// Of that, the CPU time the call used (the thread's CPU clock, not
    /// the simulator's): instantiating the plugin, copying values in and
    /// out, the guest's code and the placement and replica policies it
    /// asked for, with the host's own bookkeeping between them, but not
    /// the time spent waiting for the network, the disk or a CPU.
    pub running: Duration,
    /// Of that, the time inside wasm: the guest code of the phase and of
    /// the policies it asked, read at each crossing of the boundary
    /// (instantiation and the host's side of copying values are out).
    pub guest: Duration,
    /// The step it returned, or what stopped it.
    pub outcome: String,
}

/// One attempt.
#[derive(Clone, Debug)]
pub struct AttemptReport {
    /// Its epoch.
    pub epoch: Epoch,
    /// Its number within the director.
    pub attempt: u32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Its phases in order.
    pub timeline: Vec<PhaseRecord>,
    /// Its wall time.
    pub duration: Duration,
    /// The layout it recovered from.
    pub old_layout: Option<Layout>,
    /// Old services it locked.
    pub locked: BTreeSet<String>,
    /// Workers it recruited.
    pub recruited: BTreeSet<String>,
    /// Workers and roles released by its rollback.
    pub released: usize,
    /// Calls the invariant guard refused.
    pub refusals: Vec<crate::guard::Refusal>,
    /// Time spent in host calls during the phases (placement policies, which
    /// run in wasm, excluded).
    pub host_time: Duration,
    /// The storage replicas that join its generation after it persisted
    /// (they were not serving it yet when the attempt ended).
    pub joining: Vec<String>,
    /// The attempt state when it ended.
    pub final_state: Box<AttemptState>,
}

/// Every attempt of one recovery.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// The attempts, in order.
    pub attempts: Vec<AttemptReport>,
}

impl RecoveryReport {
    /// The persisted layout, if the last attempt completed.
    pub fn layout(&self) -> Option<&Layout> {
        match &self.attempts.last()?.outcome {
            AttemptOutcome::Completed(layout) => Some(layout),
            _ => None,
        }
    }

    /// The last attempt.
    pub fn last(&self) -> Option<&AttemptReport> {
        self.attempts.last()
    }
}
