//! The processes of a real cluster: the coordinator (store, director and the
//! remote cluster) and the worker (a foreman), with the protocol clients and
//! workers use to reach the coordinator.

pub mod coordinator;
pub mod protocol;
pub mod worker;

pub use protocol::{AttemptSummary, CoordinatorProtocol, CoordinatorReply, CoordinatorRequest, Status};
