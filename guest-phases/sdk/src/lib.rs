//! The guest SDK shared by every ratchet plugin.
//!
//! A plugin is plain Rust: a recovery phase implements [`Phase`], a placement
//! policy implements [`PlacementPolicy`]. Both work on the data types of the
//! WIT package `ratchet:recovery@0.1.0`, generated once here in [`types`], so
//! the same logic compiles natively (for unit tests and the native baseline)
//! and to a `wasm32-wasip2` component.
//!
//! The WIT glue is one macro call per plugin crate:
//!
//! ```ignore
//! struct ValidateLayout;
//! impl ratchet_guest::Phase for ValidateLayout { /* ... */ }
//! ratchet_guest::export_phase!(ValidateLayout);
//! ```
//!
//! The macros read the WIT from `../../wit` relative to the plugin crate, which
//! holds for every crate under `guest-phases/`, `plugins/` and `examples/`.
//! A crate elsewhere passes its own path: `export_phase!(MyPhase, wit = "wit")`.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package ratchet:guest-sdk;
            world types-only {
                import ratchet:recovery/types@0.1.0;
            }
        ",
        path: "../../wit",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        generate_all,
    });
}

mod host;
mod macros;
pub mod placement;
pub mod recruit;
pub mod testing;

pub use bindings::ratchet::recovery::types;
pub use host::{Host, LogLevel};

/// A recovery phase: one step of the recovery pipeline.
///
/// `run` receives the attempt state and the host, and returns the updated
/// state with the next step. It must not assume any call succeeds: the host's
/// invariant guard may refuse anything.
pub trait Phase {
    /// Runs the phase.
    fn run(state: types::AttemptState, host: &mut dyn Host) -> types::PhaseOutcome;
}

/// A placement policy: picks one node for each vacancy.
pub trait PlacementPolicy {
    /// Answers a placement request, or names the constraint that cannot be met.
    fn place(
        request: types::PlacementRequest,
    ) -> Result<Vec<types::Assignment>, types::PlacementError>;
}

/// A replica recovery policy: decides how a storage replica that rejoins, or
/// is recruited into a team, is brought up to date, with its proof.
pub trait ReplicaPolicy {
    /// Decides from the replica's durable version and its shard's history.
    fn decide(history: types::ReplicaHistory) -> types::ReplicaPlan;
}

/// Builds the outcome of a phase: the state it returns and the next step.
pub fn outcome(state: types::AttemptState, step: types::PhaseStep) -> types::PhaseOutcome {
    types::PhaseOutcome { state, step }
}

/// The WIT name of a service kind, for messages: `log`, `commit-proxy`, ...
pub fn kind_name(kind: types::ServiceKind) -> &'static str {
    use types::ServiceKind as K;
    match kind {
        K::Log => "log",
        K::Storage => "storage",
        K::Sequencer => "sequencer",
        K::CommitProxy => "commit-proxy",
        K::Resolver => "resolver",
    }
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    /// The outcome as it crosses back to the host: without the old layout,
    /// which the host owns and restores (see `old-layout` in the WIT), so the
    /// largest part of the state is never copied out of the guest.
    pub fn returned(mut outcome: crate::types::PhaseOutcome) -> crate::types::PhaseOutcome {
        outcome.state.old_layout = None;
        outcome
    }
}
