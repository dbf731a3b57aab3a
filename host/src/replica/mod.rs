//! Replica recovery: how a storage replica that rejoins, or is recruited
//! into a team, is brought up to date.
//!
//! The decision (zero-gap, catch-up, truncation, rebuild) is a plugin in the
//! `replica-recovery` slot, which returns it with its proof. The host owns
//! everything around it:
//! - [`check`]: the plan must fit its figures;
//! - [`session`]: epoch- and endpoint-bound sessions, frozen targets,
//!   budgets that escalate to a rebuild, required truncations, and the
//!   event log of every transition;
//! - [`recover`]: the figures, the plan and the moves, on any
//!   [`Cluster`](crate::cluster::Cluster), before a replica serves.

pub mod check;
pub mod recover;
pub mod session;

pub use crate::status::ReplicaEvent;
pub use check::{check_plan, recoverable};
pub use recover::{LayoutIndex, recover_replica};
pub use session::{Budget, Session, SessionError, SessionId, SessionState, Sessions};
