//! The coordinator of a real cluster: its process ([`process`]: the store,
//! the director, the remote cluster and the admin endpoint) and the protocol
//! workers and clients reach it with ([`protocol`]).

pub mod process;
pub mod protocol;

pub use protocol::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest};
