//! The worker of a real cluster: its process ([`process`]: registering with
//! the coordinator and serving), the protocol the coordinator and clients
//! speak to it ([`protocol`]) and the [`Foreman`] that answers, hosting
//! durable logs and storage and the stateless roles.

mod commit;
mod foreman;
pub mod process;
pub mod protocol;

pub use foreman::Foreman;
pub use protocol::{RequestKind, Serving, WorkerProtocol, WorkerReply, WorkerRequest};
