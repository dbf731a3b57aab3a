//! The deterministic simulator.
//!
//! One process runs the in-process cluster (the same service state machines
//! the real workers run) under a seeded scheduler with a virtual clock: a
//! current-thread tokio runtime whose clock is paused, so that time moves
//! only when every task waits. Plugins are bounded by fuel, never by wall
//! time. Faults (crashes and restarts, partitions, slow, lost, duplicated
//! and late messages, competing directors, plugin traps) are drawn from the
//! seed under a named [`FaultProfile`], so the same seed always gives the
//! same event trace. After every run, the [`checker`] judges what happened.
//!
//! - [`run`]: the driver of one run, [`simulate`];
//! - [`net`]: the simulated network between the director and the services;
//! - [`history`]: the trace and the facts the checker reads;
//! - [`faults`]: the named fault profiles;
//! - [`plugins`]: plugin traps on demand;
//! - [`adversary`]: the adversary, run natively in the slot a run attacks.

pub mod adversary;
pub mod checker;
pub mod faults;
pub mod history;
pub mod net;
pub mod plugins;
pub mod rng;
pub mod run;

pub use adversary::AdversarySlot;
pub use checker::{Property, Violation};
pub use faults::{FaultProfile, UnknownProfile};
pub use run::{PhaseSpan, Placement, Recovery, RecoveryEnd, ReplicaCounts, SimConfig, SimError, SimRun, simulate};
