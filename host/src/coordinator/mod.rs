//! The coordinator of a real cluster: its process ([`process`]: the store,
//! the director, the remote cluster and the admin endpoint). Workers and
//! clients reach it with the coordinator protocol ([`crate::wire`]).

pub mod process;

pub use crate::wire::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest};
