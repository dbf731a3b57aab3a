//! The worker of a real cluster: its process ([`process`]: registering with
//! the coordinator and serving) and the [`Foreman`] that answers the worker
//! protocol ([`crate::wire`]), hosting durable logs and storage and the
//! stateless roles.

mod commit;
mod foreman;
pub mod process;

pub use crate::wire::{RequestKind, Serving, WorkerProtocol, WorkerReply, WorkerRequest};
pub use foreman::Foreman;
