//! The processes of a real cluster: the coordinator (store, director and the
//! remote cluster) and the worker (a foreman), with the protocol clients and
//! workers use to reach the coordinator, and the client that commits through
//! the live generation's proxies.

pub mod client;
pub mod coordinator;
pub mod protocol;
pub mod worker;

pub use client::{ClientError, CommitClient};
pub use protocol::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest};
