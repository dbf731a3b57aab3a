//! The guest SDK shared by every ratchet plugin.
//!
//! A plugin is plain Rust: a recovery phase implements [`Phase`], a placement
//! policy implements [`PlacementPolicy`]. Both work on the data types of the
//! WIT package `ratchet:recovery@0.1.0`, generated once here in [`types`], so
//! the same logic compiles natively (for unit tests and the native baseline)
//! and to a `wasm32-wasip2` component.
//!
//! A policy is plain Rust on those types, so it is tested natively:
//!
//! ```
//! use ratchet_guest::PlacementPolicy;
//! use ratchet_guest::types::{Assignment, PlacementError, PlacementRequest};
//!
//! /// Every vacancy on the least loaded healthy nodes, one node each.
//! struct LeastLoaded;
//!
//! impl PlacementPolicy for LeastLoaded {
//!     fn place(request: PlacementRequest) -> Result<Vec<Assignment>, PlacementError> {
//!         let mut load: Vec<(u32, &str)> =
//!             request.nodes.iter().filter(|n| n.healthy).map(|n| (n.load, n.id.as_str())).collect();
//!         let mut answer = Vec::new();
//!         for (index, vacancy) in request.vacancies.iter().enumerate() {
//!             let mut nodes = Vec::new();
//!             for _ in 0..vacancy.count {
//!                 load.sort();
//!                 let Some(least) = load.first_mut() else {
//!                     let message = "no healthy node is left".to_string();
//!                     return Err(PlacementError { vacancy: index as u32, constraint: "capacity".into(), message });
//!                 };
//!                 least.0 += 1;
//!                 nodes.push(least.1.to_string());
//!             }
//!             answer.push(Assignment { vacancy: index as u32, nodes });
//!         }
//!         Ok(answer)
//!     }
//! }
//!
//! // Three nodes of the SDK's scripted test host, asked for one log.
//! let host = ratchet_guest::testing::ScriptedHost::with_nodes(3, 3);
//! let vacancy = ratchet_guest::types::PlacementVacancy {
//!     kind: ratchet_guest::types::ServiceKind::Log,
//!     count: 1,
//!     team: None,
//!     constraints: ratchet_guest::types::PlacementConstraints {
//!         min_distinct_zones: 1,
//!         exclude_nodes: vec![],
//!         required_capabilities: vec![],
//!         distinct_nodes: true,
//!     },
//! };
//! let request = PlacementRequest { vacancies: vec![vacancy], nodes: host.nodes.clone(), teams: vec![] };
//! let answer = LeastLoaded::place(request).unwrap();
//! assert_eq!(answer[0].nodes.len(), 1);
//! ```
//!
//! The WIT glue is one macro call in the plugin crate, built for
//! `wasm32-wasip2`: `ratchet_guest::export_placement_policy!(LeastLoaded);`
//! for a policy, `ratchet_guest::export_phase!(MyPhase);` for a phase.
//!
//! The macros read the WIT from `../../wit` relative to the plugin crate, which
//! holds for every crate under `guest-phases/`, `plugins/` and `examples/`.
//! A crate elsewhere passes its own path: `export_phase!(MyPhase, wit = "wit")`.

#![warn(missing_docs)]

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

pub mod arena;
pub mod collections;
mod host;
pub mod layout;
mod macros;
pub mod placement;
pub mod recruit;
pub mod state_fields;
pub mod testing;

pub use bindings::ratchet::recovery::types;
pub use host::{Host, LogLevel};

/// A recovery phase: one step of the recovery pipeline.
///
/// `run` receives the attempt state and the host, and returns the updated
/// state with the next step. It must not assume any call succeeds: the host's
/// invariant guard may refuse anything.
///
/// [`READS`](Phase::READS) and [`WRITES`](Phase::WRITES) name the fields of
/// the attempt state that cross the component boundary: only the fields read
/// arrive (the others are empty), and only the fields written go back (the
/// host keeps its own value of the others). The defaults, every field in and
/// out, are always correct; declaring less makes a phase faster on a large
/// cluster, where the state holds hundreds of thousands of strings.
pub trait Phase {
    /// The fields `run` looks at.
    const READS: &'static [types::StateField] = state_fields::ALL;

    /// The fields `run` changes. A field written but not read arrives empty,
    /// so `run` must set it whole. By default, the fields read.
    const WRITES: &'static [types::StateField] = Self::READS;

    /// Runs the phase.
    fn run(state: types::AttemptState, host: &mut dyn Host) -> types::PhaseOutcome;
}

/// A recovery phase whose outcome crosses to the host as it is: it names
/// the fields it reads and the fields it wrote itself, with no help from the
/// SDK. Only for phases that test the host's checks; see
/// [`export_raw_phase!`].
pub trait RawPhase {
    /// The fields `run` reads.
    fn reads() -> Vec<types::StateField>;

    /// Runs the phase; `written` in the outcome is sent as it is.
    fn run(state: types::AttemptState, host: &mut dyn Host) -> types::PhaseOutcome;
}

/// A placement policy: picks one node for each vacancy.
pub trait PlacementPolicy {
    /// Answers a placement request, or names the constraint that cannot be met.
    fn place(request: types::PlacementRequest) -> Result<Vec<types::Assignment>, types::PlacementError>;
}

/// A replica recovery policy: decides how a storage replica that rejoins, or
/// is recruited into a team, is brought up to date, with its proof.
pub trait ReplicaPolicy {
    /// Decides from the replica's durable version and its shard's history.
    fn decide(history: types::ReplicaHistory) -> types::ReplicaPlan;
}

/// The default recovery pipeline, in order: one slot per phase. A phase
/// steps to one of these names.
pub const PHASES: [&str; 15] = [
    "validate-layout",
    "lock-services",
    "determine-path",
    "initialize",
    "plan-log-recovery",
    "create-vacancies",
    "determine-durable-version",
    "recruit-logs",
    "recruit-storage",
    "replay-logs",
    "start-sequencer",
    "start-proxies",
    "start-resolvers",
    "assemble-layout",
    "persist-layout",
];

/// Builds the outcome of a phase: the state it returns and the next step.
///
/// `written` is filled in by the export glue from [`Phase::WRITES`].
pub fn outcome(state: types::AttemptState, step: types::PhaseStep) -> types::PhaseOutcome {
    types::PhaseOutcome { state, written: Vec::new(), step }
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

/// `prefix` and each number after a `-`: `numbered_id("storage", &[2, 0])`
/// is `storage-2-0`. Written digit by digit, so a phase that names its
/// vacancies does not bring in `core::fmt` (cold code in a fresh instance).
pub fn numbered_id(prefix: &str, numbers: &[u64]) -> String {
    let mut id = String::with_capacity(prefix.len() + 4 * numbers.len());
    id.push_str(prefix);
    for &number in numbers {
        id.push('-');
        let mut digits = [0u8; 20];
        let mut rest = number;
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        id.extend(digits[start..].iter().map(|d| char::from(*d)));
    }
    id
}

/// The WIT name of a cluster error's case and its reason, for log fields:
/// `("unreachable", Some("connection lost: ..."))`. No formatting, so a
/// phase that logs a failed call does not bring in `core::fmt` for it.
pub fn error_parts(err: &types::ClusterError) -> (&'static str, Option<&str>) {
    use types::ClusterError as E;
    match err {
        E::Unreachable(reason) => ("unreachable", Some(reason)),
        E::Superseded(_) => ("superseded", None),
        E::Refused(reason) => ("refused", Some(reason)),
        E::NotFound(reason) => ("not-found", Some(reason)),
        E::Failed(reason) => ("failed", Some(reason)),
    }
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    /// The outcome as it crosses back to the host: only the fields in
    /// `writes` keep their value and are listed as written; every other field
    /// is emptied, so it is not copied out of the guest. The old and the new
    /// layout are never written back (see `old-layout` and `new-layout` in
    /// the WIT: the host owns both).
    pub fn returned(mut outcome: crate::types::PhaseOutcome, writes: &[crate::types::StateField]) -> crate::types::PhaseOutcome {
        use crate::types::StateField;
        let host_owned = [StateField::OldLayout, StateField::OldServices, StateField::OldStorageTeams, StateField::NewLayout];
        let written: Vec<StateField> =
            crate::state_fields::ALL.iter().copied().filter(|f| writes.contains(f) && !host_owned.contains(f)).collect();
        crate::state_fields::keep_in_outcome(&mut outcome.state, &written);
        outcome.written = written;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_ids_read_as_formatted_ones() {
        assert_eq!(numbered_id("log", &[0]), "log-0");
        assert_eq!(numbered_id("storage", &[12, 3]), "storage-12-3");
        assert_eq!(numbered_id("x", &[u64::MAX, 10, 109]), format!("x-{}-10-109", u64::MAX));
        assert_eq!(numbered_id("none", &[]), "none");
    }
}
