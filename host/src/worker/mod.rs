//! The worker process's side of the real cluster: the protocol the
//! coordinator speaks to it ([`protocol`]) and the [`Foreman`] that answers,
//! hosting durable logs and storage and the stateless roles.

mod commit;
mod foreman;
pub mod protocol;

pub use foreman::Foreman;
pub use protocol::{WorkerProtocol, WorkerReply, WorkerRequest};
